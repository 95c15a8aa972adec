//! New runs, stored for many `createRun` requests at once: one task takes
//! every run waiting and stores them with one INSERT, so a burst of
//! requests costs the database's writer one statement instead of one per
//! run. Each request still waits until its run is stored.

use playground_entities::runs;
use sea_orm::{ActiveModelTrait, DatabaseConnection, DbErr, EntityTrait};
use tokio::sync::{mpsc, oneshot};

/// Most runs in one INSERT (20 columns each, well within SQLite's limit on
/// bound values).
const MAX_BATCH: usize = 256;

type Request = (runs::Model, oneshot::Sender<Result<(), DbErr>>);

/// The handle to the insert task.
#[derive(Clone)]
pub struct RunInserter {
    sender: mpsc::UnboundedSender<Request>,
}

impl RunInserter {
    pub fn spawn(db: DatabaseConnection) -> Self {
        let (sender, receiver) = mpsc::unbounded_channel();
        tokio::spawn(insert_loop(db, receiver));
        Self { sender }
    }

    /// Stores a new run; the row is exactly `run`.
    pub async fn insert(&self, run: runs::Model) -> Result<runs::Model, DbErr> {
        let (reply, answer) = oneshot::channel();
        let stopped = || DbErr::Custom("the run writer has stopped".to_owned());
        self.sender
            .send((run.clone(), reply))
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())??;
        Ok(run)
    }
}

async fn insert_loop(db: DatabaseConnection, mut receiver: mpsc::UnboundedReceiver<Request>) {
    while let Some(first) = receiver.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH
            && let Ok(request) = receiver.try_recv()
        {
            batch.push(request);
        }
        if batch.len() > 1 {
            let rows = batch
                .iter()
                .map(|(run, _)| runs::ActiveModel::from(run.clone()).reset_all());
            if runs::Entity::insert_many(rows).exec(&db).await.is_ok() {
                for (_, reply) in batch {
                    let _ = reply.send(Ok(()));
                }
                continue;
            }
            // One bad row (its program deleted meanwhile, say) fails the
            // statement: store them one by one, so each request gets its
            // own answer.
        }
        for (run, reply) in batch {
            let stored = runs::ActiveModel::from(run)
                .reset_all()
                .insert(&db)
                .await
                .map(|_| ());
            let _ = reply.send(stored);
        }
    }
}
