//! One run's life on this server: build its spec, launch it (or reattach
//! to it after a restart), record RUNNING, wait for the outcome, store the
//! last lines, record the terminal status.

use std::sync::Arc;

use playground_entities::{
    ProgramRuntime, RunStatus, credentials, environments, programs, run_logs, runs,
};
use playground_executors::{
    CancelReceiver, LogPipeline, LogSink, RunHandle, RunOutcome, RunSpec, Runtime,
};
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use uuid::Uuid;

use super::logs::RunLogSink;
use super::transitions::Transition;
use crate::app::AppState;
use crate::services::environments::spec as environment_spec;
use crate::services::programs::version_files_cached;
use crate::services::runs::publish_status;

/// How often recording a terminal status is tried before giving up (the
/// lease then expires and another server finishes the run).
const FINISH_ATTEMPTS: u32 = 6;

/// The reason given when a run's server stopped and the run cannot be
/// followed again.
pub const SERVER_STOPPED: &str = "the server stopped during the run";

/// Supervises a claimed run. `reattach` is set for runs taken over from a
/// server that died.
pub async fn supervise(
    app: AppState,
    run: runs::Model,
    cancel: CancelReceiver,
    reattach: Option<playground_entities::ExecutorKind>,
) {
    let run_id = run.id;
    let task = tokio::spawn(run_to_end(app.clone(), run, cancel, reattach.is_some()));
    if let Err(panic) = task.await {
        tracing::error!(run = %run_id, ?panic, "the run's supervisor failed");
        // Lines already queued are stored before the terminal status.
        app.scheduler.writer.flush().await;
        finish(
            &app,
            run_id,
            RunStatus::Failed,
            None,
            Some("internal error while supervising the run".to_owned()),
        )
        .await;
    }
    app.scheduler.unregister(run_id);
}

async fn run_to_end(app: AppState, run: runs::Model, cancel: CancelReceiver, reattaching: bool) {
    let run_id = run.id;
    let (spec, max_log_bytes) = match build_spec(&app, &run).await {
        Ok(built) => built,
        Err(reason) => {
            if let Ok(pipeline) = resumed_pipeline(&app, run_id, u64::MAX).await {
                let sink = RunLogSink::new(run_id, pipeline, app.scheduler.writer.clone());
                sink.finish(&[format!("failed to start: {reason}")]).await;
            }
            finish(&app, run_id, RunStatus::Failed, None, Some(reason)).await;
            return;
        }
    };
    let Some(executor) = app.registry.get(spec.environment.kind).cloned() else {
        let reason = format!(
            "this server was built without the {} executor",
            spec.environment.kind
        );
        finish(&app, run_id, RunStatus::Failed, None, Some(reason)).await;
        return;
    };

    if reattaching {
        let mut pipeline = match resumed_pipeline(&app, run_id, max_log_bytes).await {
            Ok(pipeline) => pipeline,
            Err(error) => {
                // Leave the run to the next recovery round.
                tracing::error!(run = %run_id, ?error, "reading the run's log to resume it failed");
                return;
            }
        };
        pipeline.mask(spec.secrets.iter().map(|(_, value)| value.as_str()));
        let sink = RunLogSink::new(run_id, pipeline, app.scheduler.writer.clone());
        // A server that stopped between starting the run and recording
        // RUNNING left no reference; the engine's labels still name it.
        let external_ref = match run.executor_ref.clone() {
            Some(external_ref) => Some(external_ref),
            None => executor.list_started().await.ok().and_then(|started| {
                started
                    .into_iter()
                    .find(|s| s.run_id == run_id.to_string())
                    .map(|s| s.external_ref)
            }),
        };
        let followed = match external_ref.as_deref() {
            Some(external_ref) => {
                executor
                    .reattach(spec, external_ref, sink.clone(), cancel)
                    .await
            }
            None => None,
        };
        match followed {
            Some(handle) => {
                sink.system("the server restarted; following the run again");
                follow(&app, run_id, handle, sink).await;
            }
            None => {
                sink.finish(&[format!("failed: {SERVER_STOPPED}")]).await;
                finish(
                    &app,
                    run_id,
                    RunStatus::Failed,
                    None,
                    Some(SERVER_STOPPED.to_owned()),
                )
                .await;
            }
        }
        return;
    }

    let mut pipeline = LogPipeline::new(max_log_bytes);
    // Credential values never reach the log.
    pipeline.mask(spec.secrets.iter().map(|(_, value)| value.as_str()));
    let sink = RunLogSink::new(run_id, pipeline, app.scheduler.writer.clone());
    let kind = spec.environment.kind;
    match executor.launch(spec, sink.clone(), cancel).await {
        Ok(handle) => {
            let external_ref = handle.external_ref.clone();
            let running = Transition::Running {
                executor_ref: external_ref,
            };
            match app.scheduler.transitions.apply(run_id, running).await {
                Ok(Some(run)) => {
                    publish_status(&app, &run);
                    app.scheduler.notifier.status_changed(run_id);
                }
                Ok(None) => {
                    tracing::warn!(run = %run_id, "the run left STARTING before it was marked RUNNING")
                }
                Err(error) => tracing::error!(run = %run_id, ?error, "recording RUNNING failed"),
            }
            sink.system(&format!(
                "started on {kind} by server {}",
                app.scheduler.owner()
            ));
            follow(&app, run_id, handle, sink).await;
        }
        // The engine went away before the run started: it waits in the
        // queue until the engine is back.
        Err(error) if error.engine_unavailable && sink.is_pristine() => {
            tracing::warn!(run = %run_id, reason = %error.message, "the engine is unavailable; the run goes back to the queue");
            app.scheduler.mark_unavailable(kind);
            match super::claim::requeue(&app.db, run_id, app.scheduler.owner()).await {
                Ok(Some(run)) => {
                    publish_status(&app, &run);
                    app.scheduler.notifier.status_changed(run_id);
                    app.scheduler.queue_changed();
                }
                Ok(None) => {}
                Err(error) => {
                    tracing::error!(run = %run_id, ?error, "putting the run back in the queue failed")
                }
            }
        }
        Err(error) => {
            sink.finish(&[format!("failed to start: {}", error.message)])
                .await;
            finish(&app, run_id, RunStatus::Failed, None, Some(error.message)).await;
        }
    }
}

/// Waits for the outcome, stores the closing lines, records the status.
async fn follow(app: &AppState, run_id: Uuid, handle: RunHandle, sink: Arc<RunLogSink>) {
    let RunHandle {
        outcome, cleanup, ..
    } = handle;
    let outcome = outcome.await;
    app.scheduler.release(run_id);
    let (status, exit_code, reason, closing) = match outcome {
        RunOutcome::Exited { code: 0 } => (
            RunStatus::Succeeded,
            Some(0),
            None,
            "exited with code 0".to_owned(),
        ),
        RunOutcome::Exited { code } => {
            let reason = format!("the program exited with code {code}");
            (RunStatus::Failed, Some(code), Some(reason.clone()), reason)
        }
        RunOutcome::Failed { reason, exit_code } => (
            RunStatus::Failed,
            exit_code,
            Some(reason.clone()),
            format!("failed: {reason}"),
        ),
        RunOutcome::TimedOut { after } => {
            let reason = format!(
                "timed out after {} s (the environment's timeoutSeconds)",
                after.as_secs_f64().round()
            );
            (RunStatus::TimedOut, None, Some(reason.clone()), reason)
        }
        RunOutcome::Cancelled { reason } => {
            (RunStatus::Cancelled, None, Some(reason.clone()), reason)
        }
    };
    sink.finish(&[closing]).await;
    // The output is stored: what the run left on the engine can go.
    if let Some(cleanup) = cleanup {
        tokio::spawn(cleanup);
    }
    finish(app, run_id, status, exit_code, reason).await;
}

/// Records a terminal status, retrying while the database fails (a run is
/// never left RUNNING for a passing error), and tells subscribers.
async fn finish(
    app: &AppState,
    run_id: Uuid,
    status: RunStatus,
    exit_code: Option<i32>,
    reason: Option<String>,
) {
    let mut delay = std::time::Duration::from_millis(200);
    for attempt in 1..=FINISH_ATTEMPTS {
        let transition = Transition::Finish {
            status,
            exit_code,
            reason: reason.clone(),
        };
        match app.scheduler.transitions.apply(run_id, transition).await {
            Ok(Some(run)) => {
                publish_status(app, &run);
                app.scheduler.notifier.status_changed(run_id);
                return;
            }
            Ok(None) => {
                tracing::warn!(run = %run_id, "the run was no longer held by this server when it ended");
                return;
            }
            Err(error) => {
                tracing::error!(run = %run_id, attempt, ?error, "recording the end of a run failed");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(std::time::Duration::from_secs(5));
            }
        }
    }
}

/// A pipeline that continues a run's stored log: numbering after the last
/// stored line, the cap counting what is stored, and the stored program
/// lines dropped when the plugin replays them.
async fn resumed_pipeline(
    app: &AppState,
    run_id: Uuid,
    max_log_bytes: u64,
) -> Result<LogPipeline, sea_orm::DbErr> {
    let mut query = Query::select();
    query
        .expr_as(Expr::cust("COALESCE(MAX(seq), 0)"), "last_seq")
        .expr_as(
            Expr::cust(
                "CAST(COALESCE(SUM(CASE WHEN stream <> 'SYSTEM' THEN LENGTH(line) + 1 ELSE 0 END), 0) AS BIGINT)",
            ),
            "used",
        )
        .expr_as(
            Expr::cust("CAST(COALESCE(SUM(CASE WHEN stream = 'STDOUT' THEN 1 ELSE 0 END), 0) AS BIGINT)"),
            "n_stdout",
        )
        .expr_as(
            Expr::cust("CAST(COALESCE(SUM(CASE WHEN stream = 'STDERR' THEN 1 ELSE 0 END), 0) AS BIGINT)"),
            "n_stderr",
        )
        .from(run_logs::Entity)
        .and_where(Expr::col(run_logs::Column::RunId).eq(run_id));
    let row = app
        .db
        .query_one(&query)
        .await?
        .ok_or_else(|| sea_orm::DbErr::Custom("no aggregate row".to_owned()))?;
    let last_seq: i64 = row.try_get("", "last_seq")?;
    let used: i64 = row.try_get("", "used")?;
    let n_stdout: i64 = row.try_get("", "n_stdout")?;
    let n_stderr: i64 = row.try_get("", "n_stderr")?;
    let mut pipeline =
        LogPipeline::resume(last_seq, max_log_bytes, u64::try_from(used).unwrap_or(0));
    pipeline.skip_replayed(
        u64::try_from(n_stdout).unwrap_or(0),
        u64::try_from(n_stderr).unwrap_or(0),
    );
    Ok(pipeline)
}

/// What every run of one program version in one environment shares; all
/// of it is immutable, so it is read from the database once.
pub struct LaunchTemplate {
    runtime: Runtime,
    entrypoint: String,
    files: Vec<playground_executors::ProgramFile>,
    environment: playground_executors::EnvironmentSpec,
}

async fn template(app: &AppState, run: &runs::Model) -> Result<Arc<LaunchTemplate>, String> {
    let key = (run.program_id, run.program_version, run.environment_id);
    if let Some(template) = app
        .scheduler
        .templates
        .lock()
        .expect("templates lock")
        .get(&key)
    {
        return Ok(template.clone());
    }
    let internal = |what: &str| format!("internal error while {what}; the server log has details");
    let program = programs::Entity::find_by_id(run.program_id)
        .one(&app.read)
        .await
        .map_err(|_| internal("loading the program"))?
        .ok_or("the program no longer exists")?;
    let environment = environments::Entity::find_by_id(run.environment_id)
        .one(&app.read)
        .await
        .map_err(|_| internal("loading the environment"))?
        .ok_or("the environment no longer exists")?;
    let files = version_files_cached(app, program.id, run.program_version)
        .await
        .map_err(|e| format!("cannot read the program's files: {}", e.message()))?;
    let entrypoint = playground_entities::program_versions::Entity::find()
        .filter(playground_entities::program_versions::Column::ProgramId.eq(program.id))
        .filter(playground_entities::program_versions::Column::Version.eq(run.program_version))
        .one(&app.read)
        .await
        .map_err(|_| internal("loading the program version"))?
        .map(|v| v.entrypoint)
        .unwrap_or(program.entrypoint.clone());
    let template = Arc::new(LaunchTemplate {
        runtime: match program.runtime {
            ProgramRuntime::Wasm => Runtime::Wasm,
            ProgramRuntime::Python => Runtime::Python,
            ProgramRuntime::Shell => Runtime::Shell,
        },
        entrypoint,
        files: files
            .iter()
            .map(|f| playground_executors::ProgramFile {
                path: f.path.clone(),
                content: f.content.clone(),
            })
            .collect(),
        environment: environment_spec(&environment),
    });
    let mut templates = app.scheduler.templates.lock().expect("templates lock");
    if templates.len() >= super::MAX_TEMPLATES {
        templates.clear();
    }
    templates.insert(key, template.clone());
    Ok(template)
}

/// Everything the plugin needs, from the run's row and its template.
async fn build_spec(app: &AppState, run: &runs::Model) -> Result<(RunSpec, u64), String> {
    let internal = |what: &str| format!("internal error while {what}; the server log has details");
    let template = template(app, run).await?;
    let args: Vec<String> = serde_json::from_value(run.args.clone()).unwrap_or_default();
    let env: Vec<(String, String)> =
        serde_json::from_value::<Vec<serde_json::Value>>(run.env.clone())
            .unwrap_or_default()
            .into_iter()
            .filter_map(|v| {
                Some((
                    v["name"].as_str()?.to_owned(),
                    v["value"].as_str()?.to_owned(),
                ))
            })
            .collect();
    let credential_ids: Vec<String> =
        serde_json::from_value(run.credential_ids.clone()).unwrap_or_default();
    let mut secrets = Vec::with_capacity(credential_ids.len());
    for id in credential_ids {
        let Ok(id) = Uuid::parse_str(&id) else {
            continue;
        };
        let credential = credentials::Entity::find_by_id(id)
            .filter(credentials::Column::OwnerId.eq(run.owner_id))
            .one(&app.read)
            .await
            .map_err(|_| internal("loading a credential"))?
            .ok_or("a credential of the run was deleted")?;
        let value = app
            .vault
            .open(&credential.nonce, &credential.ciphertext)
            .map_err(|e| e.to_string())?;
        secrets.push((
            credential.name,
            String::from_utf8_lossy(&value).into_owned(),
        ));
    }
    let max_log_bytes = template.environment.resources.max_log_bytes;
    Ok((
        RunSpec {
            run_id: run.id.to_string(),
            program_id: run.program_id.to_string(),
            program_version: run.program_version,
            runtime: template.runtime,
            entrypoint: template.entrypoint.clone(),
            files: template.files.clone(),
            args,
            env,
            secrets,
            environment: template.environment.clone(),
        },
        max_log_bytes,
    ))
}
