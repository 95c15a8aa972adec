//! The subscription root: live run status and logs. Both check access,
//! subscribe to the event hub, and only then read the database, so nothing
//! that happens in between is missed; the database fills any gap.

use async_graphql::{Context, ID, Subscription};
use futures::{Stream, StreamExt};
use playground_entities::RunStatus;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

use super::objects::{LogLine, RunStatusEvent};
use super::{app, principal};
use crate::app::AppState;
use crate::auth::Principal;
use crate::events::{self, RunEvent, StatusEvent};
use crate::limits::SubscriptionSlot;
use crate::services::runs;
use crate::validation;

/// Lines read from the database per query while catching up.
const CATCH_UP_BATCH: u64 = 2000;

pub struct SubscriptionRoot;

/// Where a status stands in the run state machine; statuses only move
/// forward, so an older event arriving late is skipped.
fn rank(status: RunStatus) -> u8 {
    match status {
        RunStatus::Queued => 0,
        RunStatus::Starting => 1,
        RunStatus::Running => 2,
        _ => 3,
    }
}

fn snapshot(run: playground_entities::runs::Model) -> StatusEvent {
    StatusEvent {
        run_id: run.id,
        status: run.status,
        exit_code: run.exit_code,
        failure_reason: run.failure_reason,
        at: run.updated_at,
    }
}

/// A slot among the user's open subscriptions (`RATE_LIMITED` over the
/// limit); the stream holds it, so it is freed when the subscription
/// completes, is stopped, or its connection closes.
fn subscription_slot(
    app: &crate::app::App,
    principal: &crate::auth::Principal,
) -> async_graphql::Result<SubscriptionSlot> {
    Ok(app.subscriptions.acquire(
        principal.id(),
        app.config.hardening.max_subscriptions_per_user,
    )?)
}

#[Subscription(name = "Subscription")]
impl SubscriptionRoot {
    /// the current status at once, then every change; completes after a terminal status
    async fn run_status(
        &self,
        ctx: &Context<'_>,
        run_id: ID,
    ) -> async_graphql::Result<impl Stream<Item = RunStatusEvent> + use<>> {
        let app = app(ctx).clone();
        let principal = principal(ctx)?.clone();
        let run_id = validation::id("runId", &run_id)?;
        runs::load(&app, &principal, run_id).await?;
        let slot = subscription_slot(&app, &principal)?;
        let mut events = app.hub.subscribe(run_id);
        let run = runs::load(&app, &principal, run_id).await?.run;
        Ok(async_stream::stream! {
            let _slot = slot;
            let mut last = snapshot(run);
            yield RunStatusEvent::from(last.clone());
            while !last.status.is_terminal() {
                let next = match events.recv().await {
                    Ok(RunEvent::Status(event)) => Some(event),
                    Ok(RunEvent::Logs(_)) | Ok(RunEvent::LogsStored { .. }) => None,
                    Ok(RunEvent::Resync) | Err(RecvError::Lagged(_)) | Err(RecvError::Closed) => {
                        match runs::load(&app, &principal, run_id).await {
                            Ok(view) => Some(snapshot(view.run)),
                            Err(_) => break,
                        }
                    }
                };
                if let Some(event) = next
                    && rank(event.status) > rank(last.status)
                {
                    last = event;
                    yield RunStatusEvent::from(last.clone());
                }
            }
        })
    }

    /// stored lines after afterSeq, then live lines, with no gap and no duplicate; completes when the run has ended and every line was sent
    async fn run_logs(
        &self,
        ctx: &Context<'_>,
        run_id: ID,
        after_seq: Option<i32>,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<LogLine>> + use<>> {
        let app = app(ctx).clone();
        let principal = principal(ctx)?.clone();
        let lines = log_lines(app, principal, &run_id, after_seq).await?;
        Ok(lines.map(|line| line.map(LogLine::from)))
    }
}

/// The lines of a run for a `runLogs` subscriber: access checked, then the
/// stored lines after `after_seq` and the live ones, with no gap and no
/// duplicate, ending when the run has ended and every line was given. (The
/// WebSocket endpoint's direct path for `runLogs` streams the same lines.)
pub(crate) async fn log_lines(
    app: AppState,
    principal: Principal,
    run_id: &ID,
    after_seq: Option<i32>,
) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<events::LogLine>> + use<>> {
    let run_id = validation::id("runId", run_id)?;
    runs::load(&app, &principal, run_id).await?;
    let mut events = app.hub.subscribe(run_id);
    let mut ended = runs::load(&app, &principal, run_id)
        .await?
        .run
        .status
        .is_terminal();
    let mut last_seq = i64::from(after_seq.unwrap_or(0).max(0));
    let slot = subscription_slot(&app, &principal)?;
    Ok(async_stream::stream! {
        let _slot = slot;
        // A live batch that arrived while catching up: the database only
        // has to fill in the lines before it, then it is sent. A subscriber
        // that falls behind thus rejoins the live lines as soon as it has
        // caught up with the oldest batch still queued for it, instead of
        // reading the database for as long as the run writes faster.
        let mut pending: Option<std::sync::Arc<Vec<events::LogLine>>> = None;
        loop {
            // Catch up from the database.
            loop {
                let until = pending.as_ref().and_then(|lines| lines.first()).map(|l| l.seq);
                if !ended && until.is_some_and(|until| last_seq + 1 >= until) {
                    break;
                }
                let lines = match runs::read_logs(&app.read, run_id, last_seq, CATCH_UP_BATCH).await {
                    Ok(lines) => lines,
                    Err(error) => {
                        yield Err(async_graphql::Error::from(error));
                        return;
                    }
                };
                let n_lines = lines.len() as u64;
                let mut reached = false;
                for line in lines {
                    if !ended && until.is_some_and(|until| line.seq >= until) {
                        reached = true;
                        break;
                    }
                    last_seq = line.seq;
                    yield Ok(line);
                }
                if reached || n_lines < CATCH_UP_BATCH {
                    break;
                }
                if pending.is_none() {
                    match events.try_recv() {
                        Ok(RunEvent::Logs(lines)) => pending = Some(lines),
                        Ok(RunEvent::Status(event)) => ended |= event.status.is_terminal(),
                        Ok(RunEvent::LogsStored { .. }) | Err(TryRecvError::Empty) => {}
                        Ok(RunEvent::Resync) | Err(TryRecvError::Lagged(_)) | Err(TryRecvError::Closed) => {
                            match has_ended(&app, &principal, run_id).await {
                                Ok(has_ended) => ended = has_ended,
                                Err(error) => {
                                    yield Err(error);
                                    return;
                                }
                            }
                        }
                    }
                }
            }
            if let Some(lines) = pending.take() {
                // The database has been read up to this batch: lines still
                // missing before it were never stored (the writer gave up
                // on them), so the stream goes on after them.
                if let Some(first) = lines.iter().find(|line| line.seq > last_seq) {
                    last_seq = last_seq.max(first.seq - 1);
                }
                let (next, gap) = continuing(&lines, last_seq);
                for line in next {
                    last_seq = line.seq;
                    yield Ok(line.clone());
                }
                if gap {
                    continue;
                }
            }
            // Every line is stored before the terminal status is.
            if ended {
                return;
            }
            // Follow live lines until a gap, the end, or falling behind.
            loop {
                match events.recv().await {
                    Ok(RunEvent::Logs(lines)) => {
                        let (next, gap) = continuing(&lines, last_seq);
                        if next.is_empty() && gap {
                            // Lines are missing before this batch: fill
                            // them in from the database, then send it.
                            pending = Some(lines);
                            break;
                        }
                        for line in next {
                            last_seq = line.seq;
                            yield Ok(line.clone());
                        }
                        if gap {
                            break;
                        }
                    }
                    Ok(RunEvent::LogsStored { last_seq: stored }) => {
                        if stored > last_seq {
                            break;
                        }
                    }
                    Ok(RunEvent::Status(event)) => {
                        if event.status.is_terminal() {
                            ended = true;
                            break;
                        }
                    }
                    Ok(RunEvent::Resync) | Err(RecvError::Lagged(_)) | Err(RecvError::Closed) => {
                        match has_ended(&app, &principal, run_id).await {
                            Ok(has_ended) => ended = has_ended,
                            Err(error) => {
                                yield Err(error);
                                return;
                            }
                        }
                        break;
                    }
                }
            }
        }
    })
}

/// Whether the run has ended, read again (events may have been missed).
async fn has_ended(
    app: &AppState,
    principal: &Principal,
    run_id: uuid::Uuid,
) -> async_graphql::Result<bool> {
    Ok(runs::load(app, principal, run_id)
        .await?
        .run
        .status
        .is_terminal())
}

/// The lines of a batch (in `seq` order) that follow `last_seq` without a
/// gap, and whether lines are missing after them (or before them, when
/// none follow).
fn continuing(lines: &[events::LogLine], last_seq: i64) -> (&[events::LogLine], bool) {
    let rest = &lines[lines.partition_point(|line| line.seq <= last_seq)..];
    let n = rest
        .iter()
        .zip(last_seq + 1..)
        .take_while(|(line, seq)| line.seq == *seq)
        .count();
    (&rest[..n], n < rest.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(seqs: &[i64]) -> Vec<events::LogLine> {
        seqs.iter()
            .map(|&seq| events::LogLine {
                seq,
                stream: playground_entities::LogStream::Stdout,
                line: seq.to_string(),
                timestamp: chrono::Utc::now(),
            })
            .collect()
    }

    fn seqs(lines: &[events::LogLine]) -> Vec<i64> {
        lines.iter().map(|line| line.seq).collect()
    }

    #[test]
    fn a_batch_continues_after_the_last_line_sent() {
        let batch = lines(&[4, 5, 6, 7]);
        let (next, gap) = continuing(&batch, 3);
        assert_eq!((seqs(next), gap), (vec![4, 5, 6, 7], false));
        // Lines already sent are skipped.
        let (next, gap) = continuing(&batch, 5);
        assert_eq!((seqs(next), gap), (vec![6, 7], false));
        let (next, gap) = continuing(&batch, 9);
        assert_eq!((seqs(next), gap), (vec![], false));
    }

    #[test]
    fn missing_lines_are_a_gap() {
        let batch = lines(&[6, 7]);
        let (next, gap) = continuing(&batch, 3);
        assert_eq!((seqs(next), gap), (vec![], true));
        let batch = lines(&[4, 5, 8]);
        let (next, gap) = continuing(&batch, 3);
        assert_eq!((seqs(next), gap), (vec![4, 5], true));
    }
}
