//! Storing run output: one writer task batches the lines of every run into
//! multi-row inserts (flushed within ~50 ms), then announces them to live
//! subscribers. Lines reach subscribers only after they are stored, so a
//! subscriber that finds a gap can always fill it from the database.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use playground_entities::{LogStream, run_logs};
use playground_executors::{LineStream, LogPipeline, LogSink, NumberedLine, OutputStream};
use sea_orm::{DatabaseConnection, EntityTrait, Set, TransactionTrait};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::events::{Hub, LogLine, RunEvent};
use crate::runner::notify::Notifier;

/// Longest a line waits before it is written.
const FLUSH_INTERVAL: Duration = Duration::from_millis(50);
/// Most lines in one write.
const MAX_BATCH_LINES: usize = 20_000;
/// Most lines in one hub event: with [`crate::events::CHANNEL_CAPACITY`]
/// (256) events per run, a subscriber that falls behind holds at most
/// 512,000 lines in memory before it reads the database instead.
const EVENT_LINES: usize = 2_000;
/// Rows per INSERT statement (keeps under the databases' parameter limits).
const ROWS_PER_STATEMENT: usize = 1_000;

enum Message {
    Lines(Uuid, Vec<NumberedLine>),
    /// Answered once everything sent before it is stored.
    Flush(oneshot::Sender<()>),
}

/// The handle to the writer task.
#[derive(Clone)]
pub struct LogWriter {
    sender: mpsc::UnboundedSender<Message>,
}

impl LogWriter {
    pub fn spawn(db: DatabaseConnection, hub: Arc<Hub>, notifier: Notifier) -> Self {
        let (sender, receiver) = mpsc::unbounded_channel();
        tokio::spawn(write_loop(db, hub, notifier, receiver));
        Self { sender }
    }

    fn send(&self, run_id: Uuid, lines: Vec<NumberedLine>) {
        if !lines.is_empty() {
            let _ = self.sender.send(Message::Lines(run_id, lines));
        }
    }

    /// Waits until every line sent so far is stored.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.sender.send(Message::Flush(done)).is_ok() {
            let _ = wait.await;
        }
    }
}

/// What the writer has collected for its next write.
#[derive(Default)]
struct Pending {
    batch: Vec<(Uuid, Vec<NumberedLine>)>,
    flushes: Vec<oneshot::Sender<()>>,
    n_lines: usize,
}

impl Pending {
    fn take(&mut self, message: Message) {
        match message {
            Message::Lines(run_id, lines) => {
                self.n_lines += lines.len();
                self.batch.push((run_id, lines));
            }
            Message::Flush(done) => self.flushes.push(done),
        }
    }
}

async fn write_loop(
    db: DatabaseConnection,
    hub: Arc<Hub>,
    notifier: Notifier,
    mut receiver: mpsc::UnboundedReceiver<Message>,
) {
    while let Some(first) = receiver.recv().await {
        let deadline = tokio::time::Instant::now() + FLUSH_INTERVAL;
        let mut pending = Pending::default();
        pending.take(first);
        loop {
            // Everything already queued joins this write.
            while pending.n_lines < MAX_BATCH_LINES
                && let Ok(message) = receiver.try_recv()
            {
                pending.take(message);
            }
            // Someone waits for this write, or it is full: write now.
            if !pending.flushes.is_empty() || pending.n_lines >= MAX_BATCH_LINES {
                break;
            }
            match tokio::time::timeout_at(deadline, receiver.recv()).await {
                Ok(Some(message)) => pending.take(message),
                Ok(None) | Err(_) => break,
            }
        }
        if !pending.batch.is_empty() {
            store(&db, &hub, &notifier, pending.batch).await;
        }
        for done in pending.flushes {
            let _ = done.send(());
        }
    }
}

async fn store(
    db: &DatabaseConnection,
    hub: &Hub,
    notifier: &Notifier,
    batch: Vec<(Uuid, Vec<NumberedLine>)>,
) {
    let now = Utc::now();
    let all: Vec<&(Uuid, Vec<NumberedLine>)> = batch.iter().collect();
    if let Err(error) = insert(db, &all, now).await {
        // One bad row must not cost the other runs their lines: store run
        // by run, each with a few retries.
        tracing::warn!(
            ?error,
            "storing a batch of log lines failed; retrying run by run"
        );
        for item in &batch {
            let mut stored = false;
            for attempt in 0..3u32 {
                if attempt > 0 {
                    tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
                }
                match insert(db, &[item], now).await {
                    Ok(()) => {
                        stored = true;
                        break;
                    }
                    Err(error) => {
                        tracing::warn!(run = %item.0, attempt, ?error, "storing log lines failed")
                    }
                }
            }
            if !stored {
                tracing::error!(run = %item.0, n_lines = item.1.len(), "log lines could not be stored and are lost");
            }
        }
    }
    for (run_id, lines) in batch {
        let last_seq = lines.last().map_or(0, |l| l.seq);
        for event in events_of(lines, now) {
            hub.publish(run_id, RunEvent::Logs(event));
        }
        notifier.logs_stored(run_id, last_seq);
    }
}

/// A run's stored lines as hub events of at most [`EVENT_LINES`] lines, in
/// order. A subscriber holds at most the hub's capacity in events, so this
/// bounds what a slow subscriber keeps in memory by lines, not by writes.
fn events_of(
    lines: Vec<NumberedLine>,
    timestamp: chrono::DateTime<Utc>,
) -> impl Iterator<Item = Arc<Vec<LogLine>>> {
    let mut lines = lines.into_iter().peekable();
    std::iter::from_fn(move || {
        lines.peek()?;
        let event: Vec<LogLine> = lines
            .by_ref()
            .take(EVENT_LINES)
            .map(|l| LogLine {
                seq: l.seq,
                stream: stream_of(l.stream),
                line: l.line,
                timestamp,
            })
            .collect();
        Some(Arc::new(event))
    })
}

/// Inserts the lines of some runs in one transaction.
async fn insert(
    db: &DatabaseConnection,
    batch: &[&(Uuid, Vec<NumberedLine>)],
    now: chrono::DateTime<Utc>,
) -> Result<(), sea_orm::DbErr> {
    if db.get_database_backend() == sea_orm::DbBackend::Sqlite {
        return insert_sqlite(db.get_sqlite_connection_pool(), batch, now)
            .await
            .map_err(|e| sea_orm::DbErr::Exec(sea_orm::RuntimeErr::SqlxError(e.into())));
    }
    let rows: Vec<run_logs::ActiveModel> = batch
        .iter()
        .flat_map(|(run_id, lines)| {
            lines.iter().map(move |line| run_logs::ActiveModel {
                run_id: Set(*run_id),
                seq: Set(line.seq),
                stream: Set(stream_of(line.stream)),
                line: Set(line.line.clone()),
                timestamp: Set(now),
            })
        })
        .collect();
    let txn = db.begin().await?;
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        run_logs::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(&txn)
            .await?;
    }
    txn.commit().await
}

/// SQLite: the statements bound straight from the lines, without building
/// models and a query per batch (the rows and their encoding are the ones
/// the entity writes). Lines are the bulk of what the server stores, so
/// this is its busiest statement.
async fn insert_sqlite(
    pool: &sea_orm::sqlx::SqlitePool,
    batch: &[&(Uuid, Vec<NumberedLine>)],
    now: chrono::DateTime<Utc>,
) -> Result<(), sea_orm::sqlx::Error> {
    let rows: Vec<(Uuid, &NumberedLine)> = batch
        .iter()
        .flat_map(|(run_id, lines)| lines.iter().map(move |line| (*run_id, line)))
        .collect();
    // As the driver encodes a time (every line of the batch has the same).
    let stored_at = now.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false);
    let bound = |chunk: &[(Uuid, &'_ NumberedLine)]| {
        // Only placeholders vary; every value is bound.
        let sql = sea_orm::sqlx::AssertSqlSafe(sqlite_insert(chunk.len()));
        let mut query = sea_orm::sqlx::query(sql);
        for (run_id, line) in chunk {
            query = query
                .bind(*run_id)
                .bind(line.seq)
                .bind(stream_name(line.stream))
                .bind(line.line.as_str())
                .bind(stored_at.as_str());
        }
        query
    };
    let mut chunks = rows.chunks(ROWS_PER_STATEMENT);
    let mut txn = pool.begin().await?;
    let mut next = chunks.next().map(bound);
    while let Some(query) = next.take() {
        // The next statement is bound here while SQLite runs this one on
        // the connection's thread.
        let (done, following) =
            futures::join!(query.execute(&mut *txn), async { chunks.next().map(bound) });
        done?;
        next = following;
    }
    txn.commit().await
}

/// The INSERT of `n` lines. (The connection keeps the statement prepared
/// for each text it has seen.)
fn sqlite_insert(n: usize) -> String {
    let mut sql = String::with_capacity(100 + n * 17);
    sql.push_str(
        "INSERT INTO \"run_logs\" (\"run_id\", \"seq\", \"stream\", \"line\", \"timestamp\") VALUES ",
    );
    for i in 0..n {
        sql.push_str(if i == 0 {
            "(?, ?, ?, ?, ?)"
        } else {
            ", (?, ?, ?, ?, ?)"
        });
    }
    sql
}

/// The stored name of a stream (the entity's value).
fn stream_name(stream: LineStream) -> &'static str {
    match stream {
        LineStream::Stdout => "STDOUT",
        LineStream::Stderr => "STDERR",
        LineStream::System => "SYSTEM",
    }
}

pub fn stream_of(stream: LineStream) -> LogStream {
    match stream {
        LineStream::Stdout => LogStream::Stdout,
        LineStream::Stderr => LogStream::Stderr,
        LineStream::System => LogStream::System,
    }
}

/// One run's log sink: the pipeline (split, number, cap) feeding the
/// writer.
pub struct RunLogSink {
    run_id: Uuid,
    pipeline: Mutex<LogPipeline>,
    writer: LogWriter,
}

impl RunLogSink {
    pub fn new(run_id: Uuid, pipeline: LogPipeline, writer: LogWriter) -> Arc<Self> {
        Arc::new(Self {
            run_id,
            pipeline: Mutex::new(pipeline),
            writer,
        })
    }

    /// Flushes unterminated lines, adds closing SYSTEM lines, and waits
    /// until everything is stored.
    /// Whether nothing has been written to this run's log yet.
    pub fn is_pristine(&self) -> bool {
        self.pipeline.lock().expect("pipeline lock").next_seq() == 1
    }

    pub async fn finish(&self, closing: &[String]) {
        let mut out = Vec::new();
        {
            let mut pipeline = self.pipeline.lock().expect("pipeline lock");
            pipeline.finish(&mut out);
            for line in closing {
                pipeline.system(line, &mut out);
            }
        }
        self.writer.send(self.run_id, out);
        self.writer.flush().await;
    }
}

impl LogSink for RunLogSink {
    fn write(&self, stream: OutputStream, bytes: &[u8]) {
        let mut out = Vec::new();
        self.pipeline
            .lock()
            .expect("pipeline lock")
            .write(stream, bytes, &mut out);
        self.writer.send(self.run_id, out);
    }

    fn system(&self, line: &str) {
        let mut out = Vec::new();
        self.pipeline
            .lock()
            .expect("pipeline lock")
            .system(line, &mut out);
        self.writer.send(self.run_id, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::ActiveEnum;

    #[test]
    fn stored_stream_names_are_the_entitys() {
        for stream in [LineStream::Stdout, LineStream::Stderr, LineStream::System] {
            assert_eq!(stream_name(stream), stream_of(stream).to_value());
        }
    }

    /// The lines the direct INSERT stores are the rows the entity would
    /// store: same values, same SQLite types.
    #[tokio::test]
    async fn lines_are_stored_as_the_entity_stores_them() {
        use sea_orm::{ActiveModelTrait, ConnectOptions, ConnectionTrait, Database, Statement};
        let mut options = ConnectOptions::new("sqlite::memory:");
        options.max_connections(1).sqlx_logging(false);
        let db = Database::connect(options).await.unwrap();
        crate::db::migrate(&db).await.unwrap();
        db.execute_unprepared("PRAGMA foreign_keys = OFF")
            .await
            .unwrap();
        let now = Utc::now();
        let (direct, entity) = (Uuid::now_v7(), Uuid::now_v7());
        let line = NumberedLine {
            seq: 7,
            stream: LineStream::Stderr,
            line: "héllo \"quoted\" ✓".to_owned(),
        };
        let batch = (direct, vec![line.clone()]);
        insert_sqlite(db.get_sqlite_connection_pool(), &[&batch], now)
            .await
            .unwrap();
        run_logs::ActiveModel {
            run_id: Set(entity),
            seq: Set(line.seq),
            stream: Set(stream_of(line.stream)),
            line: Set(line.line.clone()),
            timestamp: Set(now),
        }
        .insert(&db)
        .await
        .unwrap();
        let rows = db
            .query_all_raw(Statement::from_string(
                sea_orm::DbBackend::Sqlite,
                "SELECT typeof(run_id) || typeof(seq) || typeof(stream) || typeof(line) || typeof(timestamp) AS types, \
                 hex(seq) || '|' || stream || '|' || line || '|' || timestamp AS row FROM run_logs ORDER BY run_id",
            ))
            .await
            .unwrap();
        let rows: Vec<(String, String)> = rows
            .iter()
            .map(|r| {
                (
                    r.try_get("", "types").unwrap(),
                    r.try_get("", "row").unwrap(),
                )
            })
            .collect();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0], rows[1]);
    }

    #[test]
    fn stored_lines_reach_the_hub_in_events_of_bounded_size() {
        let lines: Vec<NumberedLine> = (1..=4_500)
            .map(|seq| NumberedLine {
                seq,
                stream: LineStream::Stdout,
                line: format!("line {seq}"),
            })
            .collect();
        let events: Vec<Arc<Vec<LogLine>>> = events_of(lines, Utc::now()).collect();
        let sizes: Vec<usize> = events.iter().map(|e| e.len()).collect();
        assert_eq!(sizes, [2_000, 2_000, 500]);
        let seqs: Vec<i64> = events
            .iter()
            .flat_map(|e| e.iter().map(|l| l.seq))
            .collect();
        assert_eq!(seqs, (1..=4_500).collect::<Vec<i64>>());
        assert_eq!(events_of(Vec::new(), Utc::now()).count(), 0);
    }

    #[test]
    fn the_insert_has_five_placeholders_per_line() {
        let sql = sqlite_insert(3);
        assert_eq!(sql.matches('?').count(), 15);
        assert!(sql.ends_with("(?, ?, ?, ?, ?), (?, ?, ?, ?, ?), (?, ?, ?, ?, ?)"));
    }
}
