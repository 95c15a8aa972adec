//! Status transitions of running runs (RUNNING, and the terminal status),
//! written for many runs at once: one task takes every transition queued
//! and applies them in one transaction, with one UPDATE per group of runs
//! that move the same way, instead of one statement and commit per run.

use std::collections::HashMap;

use playground_entities::{RunStatus, runs};
use sea_orm::{DatabaseConnection, TransactionTrait};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::claim;

/// Most transitions applied in one transaction.
const MAX_BATCH: usize = 512;

/// A change of one run's status.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Transition {
    /// STARTING → RUNNING.
    Running { executor_ref: Option<String> },
    /// Any active status → a terminal one.
    Finish {
        status: RunStatus,
        exit_code: Option<i32>,
        reason: Option<String>,
    },
}

/// The row after the transition; `None` when this server no longer held
/// the run (or it was not in the expected status).
pub type Applied = Result<Option<runs::Model>, String>;

struct Request {
    run_id: Uuid,
    transition: Transition,
    reply: oneshot::Sender<Applied>,
}

/// The handle to the transition task.
#[derive(Clone)]
pub struct TransitionWriter {
    sender: mpsc::UnboundedSender<Request>,
}

impl TransitionWriter {
    pub fn spawn(db: DatabaseConnection, owner: String) -> Self {
        let (sender, receiver) = mpsc::unbounded_channel();
        tokio::spawn(apply_loop(db, owner, receiver));
        Self { sender }
    }

    /// Applies a transition to a run this server holds.
    pub async fn apply(&self, run_id: Uuid, transition: Transition) -> Applied {
        let (reply, answer) = oneshot::channel();
        let request = Request {
            run_id,
            transition,
            reply,
        };
        if self.sender.send(request).is_err() {
            return Err("the transition writer has stopped".to_owned());
        }
        answer
            .await
            .unwrap_or_else(|_| Err("the transition writer has stopped".to_owned()))
    }
}

async fn apply_loop(
    db: DatabaseConnection,
    owner: String,
    mut receiver: mpsc::UnboundedReceiver<Request>,
) {
    while let Some(first) = receiver.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH
            && let Ok(request) = receiver.try_recv()
        {
            batch.push(request);
        }
        // Group runs that move the same way; a run appears once per batch
        // in practice (its supervisor waits for each answer).
        let mut groups: HashMap<Transition, Vec<Uuid>> = HashMap::new();
        for request in &batch {
            groups
                .entry(request.transition.clone())
                .or_default()
                .push(request.run_id);
        }
        let result = if groups.len() == 1 {
            // One statement commits on its own: no transaction to open.
            let (transition, run_ids) = groups.iter().next().expect("one group");
            apply_group(&db, &owner, transition, run_ids)
                .await
                .map(|moved| moved.into_iter().map(|row| (row.id, row)).collect())
        } else {
            async {
                let txn = db.begin().await?;
                let mut rows: HashMap<Uuid, runs::Model> = HashMap::new();
                for (transition, run_ids) in &groups {
                    let moved = apply_group(&txn, &owner, transition, run_ids).await?;
                    rows.extend(moved.into_iter().map(|row| (row.id, row)));
                }
                txn.commit().await?;
                Ok::<_, sea_orm::DbErr>(rows)
            }
            .await
        };
        match result {
            Ok(mut rows) => {
                for request in batch {
                    let _ = request.reply.send(Ok(rows.remove(&request.run_id)));
                }
            }
            Err(error) => {
                let message = error.to_string();
                for request in batch {
                    let _ = request.reply.send(Err(message.clone()));
                }
            }
        }
    }
}

async fn apply_group<C: sea_orm::ConnectionTrait>(
    db: &C,
    owner: &str,
    transition: &Transition,
    run_ids: &[Uuid],
) -> Result<Vec<runs::Model>, sea_orm::DbErr> {
    match transition {
        Transition::Running { executor_ref } => {
            claim::mark_running(db, run_ids, owner, executor_ref.clone()).await
        }
        Transition::Finish {
            status,
            exit_code,
            reason,
        } => claim::finish(db, run_ids, owner, *status, *exit_code, reason.clone()).await,
    }
}
