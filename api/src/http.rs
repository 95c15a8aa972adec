//! The HTTP surface: GraphQL over POST, GraphiQL, GraphQL over WebSocket
//! (graphql-transport-ws and the legacy graphql-ws), and the health probes.

use std::net::SocketAddr;

use async_graphql::Data;
use async_graphql::ParseRequestError;
use async_graphql::http::{ALL_WEBSOCKET_PROTOCOLS, GraphiQLSource};
use async_graphql_axum::{GraphQLProtocol, GraphQLRequest, GraphQLResponse, GraphQLWebSocket};
use axum::Router;
use axum::extract::ws::{CloseFrame, Message};
use axum::extract::{ConnectInfo, State, WebSocketUpgrade};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use futures::{SinkExt, StreamExt};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::trace::TraceLayer;

use crate::app::AppState;
use crate::auth::Auth;
use crate::db;
use crate::error::with_default_code;
use crate::graphql::PlaygroundSchema;
use crate::graphql::direct::WsExecutor;

/// Messages queued for a WebSocket before the producer waits.
const WS_SEND_QUEUE: usize = 1024;

/// How much a WebSocket reads from its connection at a time. Clients send
/// little (subscribe, complete, ping); the reader zeroes this much of its
/// buffer every time it is polled, and a subscription that streams results
/// polls it once per result, so the 128 KiB default cost a 128 KiB memset
/// per log line sent.
const WS_READ_BUFFER: usize = 4 * 1024;

/// How long a new WebSocket may take to send `connection_init`.
const CONNECTION_INIT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

#[derive(Clone)]
struct HttpState {
    app: AppState,
    schema: PlaygroundSchema,
}

/// Where a request came from, for the audit log.
#[derive(Clone, Debug)]
pub struct ClientAddr(pub Option<SocketAddr>);

/// The routes. Fails when a configured CORS origin is not a valid header
/// value.
pub fn router(app: AppState, schema: PlaygroundSchema) -> anyhow::Result<Router> {
    let max_body_bytes = app.config.limits.max_body_bytes;
    let mut graphql_routes = Router::new()
        .route("/graphql", get(graphiql).post(graphql))
        .route("/graphql/ws", get(graphql_ws));
    if let Some(cors) = cors_layer(&app.config.hardening.cors_origins)? {
        graphql_routes = graphql_routes.layer(cors);
    }
    Ok(graphql_routes
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(HttpState { app, schema })
        .layer(RequestBodyLimitLayer::new(max_body_bytes))
        .layer(TraceLayer::new_for_http()))
}

/// CORS for the GraphQL routes: `None` (no CORS headers at all) when no
/// origin is configured, any origin for `*`, else exactly the listed ones.
/// Credentials (cookies) are not allowed: clients send `Authorization`.
pub fn cors_layer(origins: &[String]) -> anyhow::Result<Option<CorsLayer>> {
    let origins: Vec<&str> = origins
        .iter()
        .map(|o| o.trim().trim_end_matches('/'))
        .filter(|o| !o.is_empty())
        .collect();
    if origins.is_empty() {
        return Ok(None);
    }
    let allow_origin = if origins.contains(&"*") {
        AllowOrigin::any()
    } else {
        let values = origins
            .iter()
            .map(|o| {
                HeaderValue::from_str(o).map_err(|_| {
                    anyhow::anyhow!("PLAYGROUND_CORS_ORIGINS: {o:?} is not a valid origin")
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        AllowOrigin::list(values)
    };
    Ok(Some(
        CorsLayer::new()
            .allow_origin(allow_origin)
            .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
            .max_age(std::time::Duration::from_secs(3600)),
    ))
}

/// The response to a body that is not a GraphQL request: a GraphQL-shaped
/// error with `extensions.code`, 413 when too large, else 400. Batches (a
/// JSON array of operations) are refused: one operation per request.
pub struct RequestRejection(ParseRequestError);

impl From<ParseRequestError> for RequestRejection {
    fn from(error: ParseRequestError) -> Self {
        RequestRejection(error)
    }
}

impl IntoResponse for RequestRejection {
    fn into_response(self) -> Response {
        let (status, message) = match &self.0 {
            ParseRequestError::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "the request body is too large".to_owned(),
            ),
            ParseRequestError::UnsupportedBatch => (
                StatusCode::BAD_REQUEST,
                "batched requests are not supported: send one operation per request".to_owned(),
            ),
            other => (
                StatusCode::BAD_REQUEST,
                format!("the request is not a valid GraphQL request: {other}"),
            ),
        };
        let body = serde_json::json!({
            "data": null,
            "errors": [{ "message": message, "extensions": { "code": "BAD_USER_INPUT" } }],
        });
        (status, axum::Json(body)).into_response()
    }
}

async fn graphiql() -> Html<String> {
    Html(
        GraphiQLSource::build()
            .endpoint("/graphql")
            .subscription_endpoint("/graphql/ws")
            .title("Playground GraphiQL")
            .finish(),
    )
}

async fn graphql(
    State(state): State<HttpState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    request: GraphQLRequest<RequestRejection>,
) -> GraphQLResponse {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or("\u{fffd}"));
    let auth = state
        .app
        .authenticator
        .authenticate(&state.app.read, &state.app.db, authorization)
        .await;
    let request = request
        .into_inner()
        .data(auth)
        .data(ClientAddr(Some(client)));
    let mut response = state.schema.execute(request).await;
    response.errors = response.errors.into_iter().map(with_default_code).collect();
    response.into()
}

async fn graphql_ws(
    State(state): State<HttpState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    protocol: GraphQLProtocol,
    upgrade: WebSocketUpgrade,
) -> Response {
    // graphql-transport-ws rejects a connection_init with close code 4403;
    // the legacy graphql-ws answers connection_error.
    let transport_ws = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim() == "graphql-transport-ws");
    let max_message_bytes = state.app.config.hardening.max_ws_message_bytes;
    upgrade
        .read_buffer_size(WS_READ_BUFFER)
        .max_message_size(max_message_bytes)
        .max_frame_size(max_message_bytes)
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |socket| async move {
            let HttpState { app, schema } = state;
            let (mut sink, mut stream) = socket.split();
            // Authenticate the connection_init before the protocol handler
            // sees it, so a rejection can carry the protocol's close code.
            let first = match tokio::time::timeout(CONNECTION_INIT_TIMEOUT, stream.next()).await {
                Ok(Some(Ok(message))) => message,
                _ => return,
            };
            let payload = match &first {
                Message::Text(text) => serde_json::from_str::<serde_json::Value>(text)
                    .ok()
                    .filter(|m| m["type"] == "connection_init")
                    .map(|m| m["payload"].clone()),
                _ => None,
            };
            let authorization = payload.as_ref().and_then(|p| {
                p.get("Authorization")
                    .or_else(|| p.get("authorization"))
                    .and_then(|v| v.as_str())
                    .map(str::to_owned)
            });
            let auth = app
                .authenticator
                .authenticate(&app.read, &app.db, authorization.as_deref())
                .await;
            if let (Auth::Invalid(reason), true) = (&auth, transport_ws) {
                let _ = sink
                    .send(Message::Close(Some(CloseFrame {
                        code: 4403,
                        reason: format!("Forbidden: {reason}").into(),
                    })))
                    .await;
                return;
            }
            let stream = futures::stream::once(async move { Ok(first) }).chain(stream);
            let sink = batching(sink);
            let executor = WsExecutor::new(schema, app.clone());
            let connection = GraphQLWebSocket::new_with_pair(sink, stream, executor, protocol)
                .on_connection_init(move |_| async move {
                    match &auth {
                        Auth::Invalid(reason) => {
                            return Err(async_graphql::Error::new(reason.clone()));
                        }
                        Auth::Unavailable => {
                            return Err(async_graphql::Error::new(
                                "the server cannot check credentials right now; try again shortly",
                            ));
                        }
                        Auth::Anonymous | Auth::User(_) => {}
                    }
                    let mut data = Data::default();
                    data.insert(auth);
                    data.insert(ClientAddr(Some(client)));
                    Ok(data)
                })
                .serve();
            connection.await
        })
}

/// A sink that hands messages to a task which writes everything queued and
/// then flushes once, instead of flushing the socket after every message:
/// a subscription that produces many results (a log replay) costs one write
/// per batch, not one per line.
fn batching(
    mut socket: futures::stream::SplitSink<axum::extract::ws::WebSocket, Message>,
) -> futures::channel::mpsc::Sender<Message> {
    let (sender, mut receiver) = futures::channel::mpsc::channel::<Message>(WS_SEND_QUEUE);
    tokio::spawn(async move {
        while let Some(message) = receiver.next().await {
            if socket.feed(message).await.is_err() {
                return;
            }
            while let Ok(message) = receiver.try_recv() {
                if socket.feed(message).await.is_err() {
                    return;
                }
            }
            if socket.flush().await.is_err() {
                return;
            }
        }
        let _ = socket.close().await;
    });
    sender
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(state): State<HttpState>) -> impl IntoResponse {
    if db::ping(&state.app.db).await {
        (StatusCode::OK, "ready")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "the database does not answer",
        )
    }
}
