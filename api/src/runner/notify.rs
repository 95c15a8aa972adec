//! Cross-replica events over PostgreSQL LISTEN/NOTIFY: new runs (wake the
//! schedulers), stored log lines and status changes (for subscriptions on
//! other replicas), and cancel requests (for the replica running the run).
//! With SQLite there is one server and this is a no-op.

use std::sync::Arc;
use std::time::Duration;

use sea_orm::sqlx::postgres::PgListener;
use sea_orm::{ConnectionTrait, DatabaseConnection};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::events::{Hub, RunEvent};

const CHANNEL: &str = "playground_events";

/// Sends events to the other replicas.
#[derive(Clone)]
pub struct Notifier {
    sender: Option<mpsc::UnboundedSender<String>>,
    origin: Arc<str>,
}

/// An event from another replica.
#[derive(Debug, PartialEq, Eq)]
pub enum Remote {
    RunQueued,
    LogsStored { run_id: Uuid, last_seq: i64 },
    StatusChanged { run_id: Uuid },
    CancelRequested { run_id: Uuid },
}

impl Notifier {
    pub fn disabled() -> Self {
        Self {
            sender: None,
            origin: Arc::from(""),
        }
    }

    /// A notifier that sends through `db` (PostgreSQL).
    pub fn postgres(db: DatabaseConnection, origin: &str) -> Self {
        let (sender, mut receiver) = mpsc::unbounded_channel::<String>();
        tokio::spawn(async move {
            while let Some(payload) = receiver.recv().await {
                // Payloads are built from ids and numbers only.
                let sql = format!("SELECT pg_notify('{CHANNEL}', '{payload}')");
                if let Err(error) = db.execute_unprepared(&sql).await {
                    tracing::warn!(?error, "NOTIFY failed");
                }
            }
        });
        Self {
            sender: Some(sender),
            origin: Arc::from(origin),
        }
    }

    fn send(&self, body: String) {
        if let Some(sender) = &self.sender {
            let _ = sender.send(format!("{}|{body}", self.origin));
        }
    }

    pub fn run_queued(&self) {
        self.send("queued".to_owned());
    }

    pub fn logs_stored(&self, run_id: Uuid, last_seq: i64) {
        self.send(format!("logs|{run_id}|{last_seq}"));
    }

    pub fn status_changed(&self, run_id: Uuid) {
        self.send(format!("status|{run_id}"));
    }

    pub fn cancel_requested(&self, run_id: Uuid) {
        self.send(format!("cancel|{run_id}"));
    }
}

/// Parses a payload; `None` for our own events and for garbage.
pub fn parse(payload: &str, own_origin: &str) -> Option<Remote> {
    let mut parts = payload.split('|');
    let origin = parts.next()?;
    if origin == own_origin {
        return None;
    }
    match parts.next()? {
        "queued" => Some(Remote::RunQueued),
        "logs" => Some(Remote::LogsStored {
            run_id: parts.next()?.parse().ok()?,
            last_seq: parts.next()?.parse().ok()?,
        }),
        "status" => Some(Remote::StatusChanged {
            run_id: parts.next()?.parse().ok()?,
        }),
        "cancel" => Some(Remote::CancelRequested {
            run_id: parts.next()?.parse().ok()?,
        }),
        _ => None,
    }
}

/// Listens for other replicas' events until the process ends, reconnecting
/// after errors. `on_event` handles each.
pub fn spawn_listener(
    url: String,
    origin: String,
    hub: Arc<Hub>,
    on_event: impl Fn(Remote) + Send + Sync + 'static,
) {
    tokio::spawn(async move {
        loop {
            match PgListener::connect(&url).await {
                Ok(mut listener) => {
                    if let Err(error) = listener.listen(CHANNEL).await {
                        tracing::warn!(?error, "LISTEN failed; retrying");
                    } else {
                        // Whatever was sent while not listening is lost:
                        // subscribers re-read the database.
                        hub.resync_all();
                        loop {
                            match listener.recv().await {
                                Ok(notification) => {
                                    if let Some(event) = parse(notification.payload(), &origin) {
                                        if let Remote::LogsStored { run_id, last_seq } = event {
                                            hub.publish(run_id, RunEvent::LogsStored { last_seq });
                                        } else {
                                            on_event(event);
                                        }
                                    }
                                }
                                Err(error) => {
                                    tracing::warn!(
                                        ?error,
                                        "the LISTEN connection failed; reconnecting"
                                    );
                                    break;
                                }
                            }
                        }
                    }
                }
                Err(error) => tracing::warn!(?error, "cannot open a LISTEN connection; retrying"),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip_and_own_events_are_ignored() {
        let run_id = Uuid::new_v4();
        assert_eq!(
            parse(&format!("a|logs|{run_id}|42"), "b"),
            Some(Remote::LogsStored {
                run_id,
                last_seq: 42
            })
        );
        assert_eq!(parse(&format!("a|status|{run_id}"), "a"), None);
        assert_eq!(parse("a|queued", "b"), Some(Remote::RunQueued));
        assert_eq!(parse("garbage", "b"), None);
        assert_eq!(parse("a|logs|nope|1", "b"), None);
    }
}
