//! Runs: creating one (a QUEUED row of the program's current version),
//! cancelling, retrying, reading, listing and paging through logs.

use chrono::{SubsecRound, Utc};
use playground_entities::{
    AssetKind, EnvironmentStatus, ExecutorKind, ProgramRuntime, RunStatus, credentials, grants,
    run_logs, runs,
};
use playground_policies::{Action, Grant, Kind};
use sea_orm::sea_query::{Expr, Query};
use sea_orm::{
    ColumnTrait, Condition, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
};
use uuid::Uuid;

use crate::app::{App, AppState};
use crate::auth::Principal;
use crate::authz::{self, grant_to_i16};
use crate::error::{ApiError, ApiResult};
use crate::events::{LogLine, RunEvent, StatusEvent};
use crate::services::environments::{self, status_name};
use crate::services::pagination::{Page, PageRequest, into_page};
use crate::services::programs;
use crate::validation;

pub const DEFAULT_LOG_PAGE: u64 = 1000;
pub const MAX_LOG_PAGE: u64 = 10_000;

/// A run together with the caller's permission on it.
#[derive(Clone, Debug)]
pub struct RunView {
    pub run: runs::Model,
    pub grant: Grant,
}

pub struct NewRun {
    pub program_id: Uuid,
    pub environment_id: Uuid,
    pub args: Option<Vec<String>>,
    pub env: Option<Vec<(String, String)>>,
    pub credential_ids: Option<Vec<Uuid>>,
}

#[derive(Default)]
pub struct RunFilter {
    pub status: Option<RunStatus>,
    pub program_id: Option<Uuid>,
    pub environment_id: Option<Uuid>,
}

pub async fn create(app: &AppState, principal: &Principal, input: NewRun) -> ApiResult<RunView> {
    authz::require(app, principal, Kind::Run, Action::Create)?;
    let program = programs::load(app, principal, input.program_id).await?;
    authz::check(
        app,
        principal,
        Kind::Program,
        Action::Execute,
        program.grant,
    )?;
    let environment = environments::load(app, principal, input.environment_id).await?;
    authz::check(
        app,
        principal,
        Kind::Environment,
        Action::Execute,
        environment.grant,
    )?;
    let args = validation::args(input.args)?;
    let env = check_env(input.env)?;
    let credential_ids = check_credentials(app, principal, input.credential_ids).await?;
    compatible(program.program.runtime, environment.environment.executor)?;
    runnable(environment.environment.status)?;
    let now = stored_now();
    insert(
        app,
        principal,
        &environment.environment,
        runs::Model {
            id: Uuid::now_v7(),
            program_id: program.program.id,
            program_version: program.program.current_version,
            environment_id: environment.environment.id,
            owner_id: principal.id(),
            status: RunStatus::Queued,
            exit_code: None,
            failure_reason: None,
            args: serde_json::json!(args),
            env: serde_json::json!(env),
            credential_ids: serde_json::json!(credential_ids),
            attempt: 1,
            retry_of: None,
            lease_owner: None,
            lease_expires_at: None,
            executor_ref: None,
            cancel_reason: None,
            queued_at: now,
            started_at: None,
            finished_at: None,
            updated_at: now,
        },
    )
    .await
}

/// A new run (attempt + 1) of the same program version, environment, args,
/// env and credentials as a finished run.
pub async fn retry(app: &AppState, principal: &Principal, id: Uuid) -> ApiResult<RunView> {
    let RunView { run, grant } = load(app, principal, id).await?;
    authz::check(app, principal, Kind::Run, Action::Retry, grant)?;
    let uses_credentials = run
        .credential_ids
        .as_array()
        .is_some_and(|ids| !ids.is_empty());
    if uses_credentials && run.owner_id != principal.id() {
        return Err(ApiError::forbidden(
            "this run used its owner's credentials, which only its owner may use: ask them to retry it",
        ));
    }
    if !run.status.is_terminal() {
        return Err(ApiError::conflict(format!(
            "the run is still {}: cancel it or wait for it to end before retrying",
            run_status_name(run.status)
        )));
    }
    let program = programs::load(app, principal, run.program_id).await?;
    authz::check(
        app,
        principal,
        Kind::Program,
        Action::Execute,
        program.grant,
    )?;
    let environment = environments::load(app, principal, run.environment_id).await?;
    authz::check(
        app,
        principal,
        Kind::Environment,
        Action::Execute,
        environment.grant,
    )?;
    runnable(environment.environment.status)?;
    let now = stored_now();
    insert(
        app,
        principal,
        &environment.environment,
        runs::Model {
            id: Uuid::now_v7(),
            status: RunStatus::Queued,
            exit_code: None,
            failure_reason: None,
            attempt: run.attempt + 1,
            retry_of: Some(run.id),
            owner_id: principal.id(),
            lease_owner: None,
            lease_expires_at: None,
            executor_ref: None,
            cancel_reason: None,
            queued_at: now,
            started_at: None,
            finished_at: None,
            updated_at: now,
            ..run
        },
    )
    .await
}

/// Now, at the precision the databases keep (microseconds), so the row a
/// request answers with is the row stored.
fn stored_now() -> chrono::DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// Stores a new run, QUEUED. When it can start at once (a free slot, nobody
/// queued before it) this request's server claims it straight away;
/// otherwise the claim loop (of this server or another) takes it in turn.
async fn insert(
    app: &AppState,
    principal: &Principal,
    environment: &playground_entities::environments::Model,
    run: runs::Model,
) -> ApiResult<RunView> {
    let takes_runs = matches!(
        environment.status,
        EnvironmentStatus::Ready | EnvironmentStatus::Running
    );
    let slot = crate::runner::Scheduler::start_now(app, environment.executor, takes_runs);
    if slot.is_none() {
        app.scheduler.queuing();
    }
    // Stored and followed up in a task of its own, so a client that hangs
    // up meanwhile leaves no run unclaimed and unannounced.
    let task_app = app.clone();
    let stored = tokio::spawn(async move {
        let app = task_app;
        let run = app.scheduler.inserts.insert(run).await?;
        publish_status(&app, &run);
        match slot {
            Some(slot) => crate::runner::claim_created(&app, run.id, slot),
            None => {
                app.scheduler.queue_changed();
                app.scheduler.notifier.run_queued();
            }
        }
        Ok::<_, sea_orm::DbErr>(run)
    });
    let run = stored
        .await
        .map_err(|e| ApiError::internal(anyhow::anyhow!("storing a run failed: {e}")))??;
    let grant = run_grant(app, principal, &run).await?;
    Ok(RunView { run, grant })
}

/// Whether an environment's executor runs programs of a runtime: WASM
/// modules only on WASM, shell scripts only in containers.
fn compatible(runtime: ProgramRuntime, executor: ExecutorKind) -> ApiResult<()> {
    match (runtime, executor) {
        (ProgramRuntime::Wasm, ExecutorKind::Wasm)
        | (ProgramRuntime::Python, _)
        | (ProgramRuntime::Shell, ExecutorKind::Docker | ExecutorKind::Kubernetes) => Ok(()),
        (ProgramRuntime::Wasm, _) => Err(ApiError::bad_input(
            "environmentId: WASM programs run on WASM environments; pick one whose executor is WASM",
        )),
        (ProgramRuntime::Shell, _) => Err(ApiError::bad_input(
            "environmentId: SHELL programs run on DOCKER or KUBERNETES environments; pick one of those",
        )),
    }
}

fn runnable(status: EnvironmentStatus) -> ApiResult<()> {
    match status {
        EnvironmentStatus::Creating
        | EnvironmentStatus::Ready
        | EnvironmentStatus::Starting
        | EnvironmentStatus::Running => Ok(()),
        EnvironmentStatus::Failed => Err(ApiError::conflict(
            "the environment FAILED to prepare: read its statusReason, fix it and create a new environment",
        )),
        other => Err(ApiError::conflict(format!(
            "the environment is {}: start it with startEnvironment first",
            status_name(other)
        ))),
    }
}

fn check_env(env: Option<Vec<(String, String)>>) -> ApiResult<Vec<serde_json::Value>> {
    let env = env.unwrap_or_default();
    if env.len() > validation::MAX_ENV_VARS {
        return Err(ApiError::bad_input(format!(
            "env has {} entries; use at most {}",
            env.len(),
            validation::MAX_ENV_VARS
        )));
    }
    env.into_iter()
        .map(|(name, value)| {
            let name = validation::env_var_name("env", &name)?;
            if value.contains('\0') || value.len() > validation::MAX_ARG_BYTES {
                return Err(ApiError::bad_input(format!(
                    "env: the value of {name} must be at most {} bytes with no NUL character",
                    validation::MAX_ARG_BYTES
                )));
            }
            Ok(serde_json::json!({ "name": name, "value": value }))
        })
        .collect()
}

async fn check_credentials(
    app: &App,
    principal: &Principal,
    ids: Option<Vec<Uuid>>,
) -> ApiResult<Vec<String>> {
    let ids = ids.unwrap_or_default();
    for id in &ids {
        let owned = credentials::Entity::find_by_id(*id)
            .filter(credentials::Column::OwnerId.eq(principal.id()))
            .count(&app.read)
            .await?;
        if owned == 0 {
            return Err(ApiError::NotFound(format!(
                "credential {id} not found among yours: only your own credentials can be used"
            )));
        }
    }
    Ok(ids.iter().map(Uuid::to_string).collect())
}

/// Cancels a run that has not ended.
pub async fn cancel(app: &App, principal: &Principal, id: Uuid) -> ApiResult<RunView> {
    let RunView { run, grant } = load(app, principal, id).await?;
    authz::check(app, principal, Kind::Run, Action::Cancel, grant)?;
    if run.status.is_terminal() {
        return Err(ApiError::conflict(format!(
            "the run has already ended ({}); nothing to cancel",
            run_status_name(run.status)
        )));
    }
    let now = Utc::now();
    let reason = format!("cancelled by {}", principal.user.email);
    // A queued run is cancelled right here.
    let moved = runs::Entity::update_many()
        .col_expr(runs::Column::Status, Expr::value(RunStatus::Cancelled))
        .col_expr(
            runs::Column::FailureReason,
            Expr::value(Some(reason.clone())),
        )
        .col_expr(runs::Column::FinishedAt, Expr::value(Some(now)))
        .col_expr(runs::Column::UpdatedAt, Expr::value(now))
        .filter(runs::Column::Id.eq(id))
        .filter(runs::Column::Status.eq(RunStatus::Queued))
        .exec(&app.db)
        .await?;
    if moved.rows_affected == 1 {
        let run = load(app, principal, id).await?.run;
        publish_status(app, &run);
        app.scheduler.notifier.status_changed(id);
        return Ok(RunView { run, grant });
    }
    // A starting or running run is stopped by the server executing it;
    // wait a little for it to end so the answer usually shows CANCELLED.
    let mut events = app.hub.subscribe(id);
    crate::runner::record_cancel_request(app, id, &reason).await?;
    if !app.scheduler.cancel_local(id, reason) {
        app.scheduler.notifier.cancel_requested(id);
    }
    let wait = std::time::Duration::from_secs(app.config.scheduler.cancel_grace_seconds + 2);
    let _ = tokio::time::timeout(wait, async {
        loop {
            match events.recv().await {
                Ok(RunEvent::Status(event)) if event.status.is_terminal() => break,
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            }
        }
    })
    .await;
    let run = load(app, principal, id).await?.run;
    Ok(RunView { run, grant })
}

/// Tells live subscribers about a run's current status.
pub fn publish_status(app: &App, run: &runs::Model) {
    app.hub.publish(
        run.id,
        RunEvent::Status(StatusEvent {
            run_id: run.id,
            status: run.status,
            exit_code: run.exit_code,
            failure_reason: run.failure_reason.clone(),
            at: run.updated_at,
        }),
    );
}

/// The caller's permission on a run: its owner and global admins hold
/// ADMIN; users with ADMIN on its program may view it.
pub async fn run_grant(app: &App, principal: &Principal, run: &runs::Model) -> ApiResult<Grant> {
    if principal.is_admin() || run.owner_id == principal.id() {
        return Ok(Grant::Admin);
    }
    let on_program = authz::effective_grant(app, principal, run.program_id).await?;
    Ok(if on_program == Grant::Admin {
        Grant::View
    } else {
        Grant::None
    })
}

/// A run the caller may view, or `NOT_FOUND`.
pub async fn load(app: &App, principal: &Principal, id: Uuid) -> ApiResult<RunView> {
    let run = runs::Entity::find_by_id(id)
        .one(&app.read)
        .await?
        .ok_or_else(|| ApiError::not_found("run"))?;
    let grant = run_grant(app, principal, &run).await?;
    if !authz::can_view(app, principal, Kind::Run, grant) {
        return Err(ApiError::not_found("run"));
    }
    Ok(RunView { run, grant })
}

/// `null` for what does not exist or is not visible to the caller.
pub async fn get(app: &App, principal: &Principal, id: Uuid) -> ApiResult<Option<RunView>> {
    crate::error::found(load(app, principal, id).await)
}

pub async fn list(
    app: &App,
    principal: &Principal,
    filter: RunFilter,
    page: PageRequest,
) -> ApiResult<Page<RunView>> {
    let mut query = runs::Entity::find();
    if !principal.is_admin() {
        let administered_programs = Query::select()
            .column(grants::Column::AssetId)
            .from(grants::Entity)
            .and_where(grants::Column::UserId.eq(principal.id()))
            .and_where(grants::Column::AssetKind.eq(AssetKind::Program))
            .and_where(grants::Column::Permission.eq(grant_to_i16(Grant::Admin)))
            .to_owned();
        query = query.filter(
            Condition::any()
                .add(runs::Column::OwnerId.eq(principal.id()))
                .add(runs::Column::ProgramId.in_subquery(administered_programs)),
        );
    }
    if let Some(status) = filter.status {
        query = query.filter(runs::Column::Status.eq(status));
    }
    if let Some(program_id) = filter.program_id {
        query = query.filter(runs::Column::ProgramId.eq(program_id));
    }
    if let Some(environment_id) = filter.environment_id {
        query = query.filter(runs::Column::EnvironmentId.eq(environment_id));
    }
    let total_count = query.clone().count(&app.read).await?;
    if let Some(after) = page.after {
        query = query.filter(runs::Column::Id.lt(after));
    }
    let rows = query
        .order_by_desc(runs::Column::Id)
        .limit(page.first + 1)
        .all(&app.read)
        .await?;
    let page = into_page(rows, page, total_count);
    let mut items = Vec::with_capacity(page.items.len());
    for run in page.items {
        let grant = run_grant(app, principal, &run).await?;
        items.push(RunView { run, grant });
    }
    Ok(Page {
        items,
        has_next_page: page.has_next_page,
        total_count: page.total_count,
    })
}

/// Stored log lines of a run after `after_seq`, in order.
pub async fn logs(
    app: &App,
    run_id: Uuid,
    after_seq: i64,
    first: Option<i32>,
) -> ApiResult<Vec<LogLine>> {
    let limit = match first {
        None => DEFAULT_LOG_PAGE,
        Some(n) if n < 0 => {
            return Err(ApiError::bad_input(format!(
                "first must be zero or more, got {n}"
            )));
        }
        Some(n) => (n as u64).min(MAX_LOG_PAGE),
    };
    read_logs(&app.read, run_id, after_seq, limit).await
}

pub async fn read_logs(
    db: &sea_orm::DatabaseConnection,
    run_id: Uuid,
    after_seq: i64,
    limit: u64,
) -> ApiResult<Vec<LogLine>> {
    let rows = run_logs::Entity::find()
        .filter(run_logs::Column::RunId.eq(run_id))
        .filter(run_logs::Column::Seq.gt(after_seq))
        .order_by_asc(run_logs::Column::Seq)
        .limit(limit)
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .map(|row| LogLine {
            seq: row.seq,
            stream: row.stream,
            line: row.line,
            timestamp: row.timestamp,
        })
        .collect())
}

pub fn run_status_name(status: RunStatus) -> &'static str {
    match status {
        RunStatus::Queued => "QUEUED",
        RunStatus::Starting => "STARTING",
        RunStatus::Running => "RUNNING",
        RunStatus::Succeeded => "SUCCEEDED",
        RunStatus::Failed => "FAILED",
        RunStatus::Cancelled => "CANCELLED",
        RunStatus::TimedOut => "TIMED_OUT",
    }
}
