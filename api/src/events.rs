//! The in-process fan-out of run events: status changes and new log lines,
//! per run, to every live subscription. The database stays the source of
//! truth; an event is a prompt to deliver, and a subscriber that falls
//! behind re-reads what it missed from the database.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use playground_entities::{LogStream, RunStatus};
use tokio::sync::broadcast;
use uuid::Uuid;

/// How many events a slow subscriber may fall behind before it re-reads.
const CHANNEL_CAPACITY: usize = 1024;

/// A run's status changed.
#[derive(Clone, Debug, PartialEq)]
pub struct StatusEvent {
    pub run_id: Uuid,
    pub status: RunStatus,
    pub exit_code: Option<i32>,
    pub failure_reason: Option<String>,
    pub at: DateTime<Utc>,
}

/// One stored log line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine {
    pub seq: i64,
    pub stream: LogStream,
    pub line: String,
    pub timestamp: DateTime<Utc>,
}

/// What subscribers of one run receive.
#[derive(Clone, Debug)]
pub enum RunEvent {
    Status(StatusEvent),
    /// Lines just stored, in `seq` order.
    Logs(Arc<Vec<LogLine>>),
    /// Another server stored lines up to `last_seq`; read them from the
    /// database.
    LogsStored {
        last_seq: i64,
    },
}

/// Per-run broadcast channels, created on first subscription and dropped
/// when their last subscriber leaves.
#[derive(Default)]
pub struct Hub {
    channels: Mutex<HashMap<Uuid, broadcast::Sender<RunEvent>>>,
}

impl Hub {
    pub fn subscribe(&self, run_id: Uuid) -> broadcast::Receiver<RunEvent> {
        let mut channels = self.channels.lock().expect("hub lock");
        channels
            .entry(run_id)
            .or_insert_with(|| broadcast::channel(CHANNEL_CAPACITY).0)
            .subscribe()
    }

    /// Delivers an event to the run's subscribers, if it has any.
    pub fn publish(&self, run_id: Uuid, event: RunEvent) {
        let mut channels = self.channels.lock().expect("hub lock");
        if let Some(sender) = channels.get(&run_id)
            && sender.send(event).is_err()
        {
            channels.remove(&run_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(run_id: Uuid) -> RunEvent {
        RunEvent::Status(StatusEvent {
            run_id,
            status: RunStatus::Running,
            exit_code: None,
            failure_reason: None,
            at: Utc::now(),
        })
    }

    #[tokio::test]
    async fn events_reach_only_their_runs_subscribers() {
        let hub = Hub::default();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let mut sub_a = hub.subscribe(a);
        let mut sub_b = hub.subscribe(b);
        hub.publish(a, status(a));
        assert!(matches!(sub_a.recv().await.unwrap(), RunEvent::Status(e) if e.run_id == a));
        assert!(sub_b.try_recv().is_err());
    }

    #[tokio::test]
    async fn channels_without_subscribers_are_dropped() {
        let hub = Hub::default();
        let run_id = Uuid::new_v4();
        drop(hub.subscribe(run_id));
        hub.publish(run_id, status(run_id));
        assert!(hub.channels.lock().unwrap().is_empty());
    }
}
