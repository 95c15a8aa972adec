//! A small GraphQL-over-WebSocket client speaking both protocols of `/graphql/ws`:
//! `graphql-transport-ws` and the legacy `graphql-ws` (subscriptions-transport-ws).

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

use super::app::TestApp;

const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WsProtocol {
    /// `graphql-transport-ws`: subscribe / next / error / complete.
    TransportWs,
    /// legacy `graphql-ws`: start / data / error / complete / stop.
    LegacyWs,
}

impl WsProtocol {
    pub fn name(self) -> &'static str {
        match self {
            WsProtocol::TransportWs => "graphql-transport-ws",
            WsProtocol::LegacyWs => "graphql-ws",
        }
    }
}

/// What the server sent, in protocol-neutral terms.
#[derive(Clone, Debug)]
pub enum WsEvent {
    Ack,
    /// a result of an operation (`next` / `data`): its `{data, errors}` payload
    Next(Value),
    /// an operation failed (`error`): its payload
    Error(Value),
    Complete,
    /// legacy protocol: `connection_error`
    ConnectionError(Value),
    /// the server closed the connection (close code when a close frame came)
    Closed {
        code: Option<u16>,
        reason: String,
    },
}

pub struct WsClient {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    protocol: WsProtocol,
}

impl WsClient {
    /// Opens the WebSocket asking for `protocol` and checks that the server selected it.
    pub async fn connect(app: &TestApp, protocol: WsProtocol) -> WsClient {
        let mut request = app
            .ws_url()
            .into_client_request()
            .expect("a WebSocket request");
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static(protocol.name()),
        );
        let (socket, response) = connect_async(request)
            .await
            .unwrap_or_else(|err| panic!("WebSocket handshake on /graphql/ws failed: {err}"));
        let selected = response
            .headers()
            .get("sec-websocket-protocol")
            .and_then(|value| value.to_str().ok());
        assert_eq!(
            selected,
            Some(protocol.name()),
            "the server must select the requested subprotocol"
        );
        WsClient { socket, protocol }
    }

    /// Connects and authenticates with `{"Authorization": "Bearer <token>"}`; panics unless
    /// the server acknowledges.
    pub async fn connect_with_token(app: &TestApp, protocol: WsProtocol, token: &str) -> WsClient {
        let mut client = WsClient::connect(app, protocol).await;
        if let Err(event) = client.init(bearer_payload(token)).await {
            panic!("connection_init was not acknowledged: {event:?}");
        }
        client
    }

    pub async fn send_json(&mut self, value: Value) {
        self.socket
            .send(Message::text(value.to_string()))
            .await
            .expect("send a WebSocket message");
    }

    /// Sends `connection_init`; `Ok` on `connection_ack`, else the event that came instead.
    pub async fn init(&mut self, payload: Value) -> Result<(), WsEvent> {
        self.send_json(json!({ "type": "connection_init", "payload": payload }))
            .await;
        match self.next_event().await {
            WsEvent::Ack => Ok(()),
            other => Err(other),
        }
    }

    /// Starts an operation (`subscribe` or `start`) with the id `id`.
    pub async fn subscribe(&mut self, id: &str, query: &str, variables: Value) {
        let kind = match self.protocol {
            WsProtocol::TransportWs => "subscribe",
            WsProtocol::LegacyWs => "start",
        };
        self.send_json(json!({
            "id": id,
            "type": kind,
            "payload": { "query": query, "variables": variables },
        }))
        .await;
    }

    /// The next meaningful event (keep-alives and pings are answered and skipped); panics
    /// after 10 s of silence.
    pub async fn next_event(&mut self) -> WsEvent {
        loop {
            let Ok(message) = tokio::time::timeout(EVENT_TIMEOUT, self.socket.next()).await else {
                panic!("no WebSocket message within {EVENT_TIMEOUT:?}");
            };
            let text = match message {
                None => {
                    return WsEvent::Closed {
                        code: None,
                        reason: "stream ended".to_owned(),
                    };
                }
                Some(Err(err)) => {
                    return WsEvent::Closed {
                        code: None,
                        reason: err.to_string(),
                    };
                }
                Some(Ok(Message::Close(frame))) => {
                    return WsEvent::Closed {
                        code: frame.as_ref().map(|frame| u16::from(frame.code)),
                        reason: frame
                            .map(|frame| frame.reason.as_str().to_owned())
                            .unwrap_or_default(),
                    };
                }
                Some(Ok(Message::Text(text))) => text,
                Some(Ok(_)) => continue,
            };
            let value: Value = serde_json::from_str(text.as_str())
                .unwrap_or_else(|err| panic!("WebSocket message is not JSON ({err}): {text}"));
            let payload = value.get("payload").cloned().unwrap_or(Value::Null);
            match value["type"].as_str().unwrap_or_default() {
                "connection_ack" => return WsEvent::Ack,
                "ping" => self.send_json(json!({ "type": "pong" })).await,
                "pong" | "ka" => {}
                "next" | "data" => return WsEvent::Next(payload),
                "error" => return WsEvent::Error(payload),
                "complete" => return WsEvent::Complete,
                "connection_error" => return WsEvent::ConnectionError(payload),
                other => panic!("unexpected WebSocket message type {other:?}: {text}"),
            }
        }
    }

    /// The `data` of the next result; panics on anything else.
    pub async fn next_data(&mut self) -> Value {
        match self.next_event().await {
            WsEvent::Next(payload) => {
                let has_errors = payload
                    .get("errors")
                    .and_then(Value::as_array)
                    .is_some_and(|errors| !errors.is_empty());
                assert!(!has_errors, "operation result with errors: {payload}");
                payload["data"].clone()
            }
            other => panic!("expected a result, got {other:?}"),
        }
    }

    /// Waits for the end of the current operation; panics on anything else.
    pub async fn expect_complete(&mut self) {
        match self.next_event().await {
            WsEvent::Complete => {}
            other => panic!("expected complete, got {other:?}"),
        }
    }
}

pub fn bearer_payload(token: &str) -> Value {
    json!({ "Authorization": format!("Bearer {token}") })
}
