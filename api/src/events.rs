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
pub const CHANNEL_CAPACITY: usize = 256;

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
    /// Events may have been missed (a lost connection to other servers):
    /// re-read the database.
    Resync,
}

/// Per-run broadcast channels, created on first subscription and dropped
/// when their last subscriber leaves.
#[derive(Default)]
pub struct Hub {
    channels: Mutex<HashMap<Uuid, broadcast::Sender<RunEvent>>>,
}

/// One subscriber's end of a run's channel; the channel is dropped with
/// its last subscriber.
pub struct HubReceiver {
    run_id: Uuid,
    receiver: broadcast::Receiver<RunEvent>,
    hub: Arc<Hub>,
}

impl HubReceiver {
    pub async fn recv(&mut self) -> Result<RunEvent, broadcast::error::RecvError> {
        self.receiver.recv().await
    }

    /// The next event if one is queued.
    pub fn try_recv(&mut self) -> Result<RunEvent, broadcast::error::TryRecvError> {
        self.receiver.try_recv()
    }
}

impl Drop for HubReceiver {
    fn drop(&mut self) {
        let mut channels = self.hub.channels.lock().expect("hub lock");
        // This receiver still counts until the fields are dropped.
        if channels
            .get(&self.run_id)
            .is_some_and(|sender| sender.receiver_count() <= 1)
        {
            channels.remove(&self.run_id);
        }
    }
}

impl Hub {
    pub fn subscribe(self: &Arc<Self>, run_id: Uuid) -> HubReceiver {
        let mut channels = self.channels.lock().expect("hub lock");
        let receiver = channels
            .entry(run_id)
            .or_insert_with(|| broadcast::channel(CHANNEL_CAPACITY).0)
            .subscribe();
        HubReceiver {
            run_id,
            receiver,
            hub: self.clone(),
        }
    }

    /// Tells every subscriber to re-read the database.
    pub fn resync_all(&self) {
        let channels = self.channels.lock().expect("hub lock");
        for sender in channels.values() {
            let _ = sender.send(RunEvent::Resync);
        }
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
        let hub = Arc::new(Hub::default());
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let mut sub_a = hub.subscribe(a);
        let mut sub_b = hub.subscribe(b);
        hub.publish(a, status(a));
        assert!(matches!(sub_a.recv().await.unwrap(), RunEvent::Status(e) if e.run_id == a));
        assert!(sub_b.receiver.try_recv().is_err());
    }

    #[tokio::test]
    async fn channels_are_dropped_with_their_last_subscriber() {
        let hub = Arc::new(Hub::default());
        let run_id = Uuid::new_v4();
        let first = hub.subscribe(run_id);
        let second = hub.subscribe(run_id);
        drop(first);
        assert_eq!(hub.channels.lock().unwrap().len(), 1);
        drop(second);
        assert!(hub.channels.lock().unwrap().is_empty());
    }
}
