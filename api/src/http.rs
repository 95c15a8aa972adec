//! The HTTP surface: GraphQL over POST, GraphiQL, GraphQL over WebSocket
//! (graphql-transport-ws and the legacy graphql-ws), and the health probes.

use std::net::SocketAddr;

use async_graphql::Data;
use async_graphql::http::{ALL_WEBSOCKET_PROTOCOLS, GraphiQLSource};
use async_graphql_axum::{GraphQLProtocol, GraphQLRequest, GraphQLResponse, GraphQLWebSocket};
use axum::Router;
use axum::extract::ws::{CloseFrame, Message};
use axum::extract::{ConnectInfo, State, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use futures::{SinkExt, StreamExt};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::trace::TraceLayer;

use crate::app::AppState;
use crate::auth::Auth;
use crate::db;
use crate::error::with_default_code;
use crate::graphql::PlaygroundSchema;

/// Largest WebSocket message accepted.
const MAX_WS_MESSAGE_BYTES: usize = 1024 * 1024;

/// Messages queued for a WebSocket before the producer waits.
const WS_SEND_QUEUE: usize = 1024;

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

pub fn router(app: AppState, schema: PlaygroundSchema) -> Router {
    let max_body_bytes = app.config.limits.max_body_bytes;
    Router::new()
        .route("/graphql", get(graphiql).post(graphql))
        .route("/graphql/ws", get(graphql_ws))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(HttpState { app, schema })
        .layer(RequestBodyLimitLayer::new(max_body_bytes))
        .layer(TraceLayer::new_for_http())
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
    request: GraphQLRequest,
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
    upgrade
        .max_message_size(MAX_WS_MESSAGE_BYTES)
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
            GraphQLWebSocket::new_with_pair(sink, stream, schema, protocol)
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
                .serve()
                .await
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
