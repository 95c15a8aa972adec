//! Environments: creation (validated by the executor plugin, then prepared
//! in the background: CREATING → READY or FAILED), the start/stop state
//! machine, deletion, reads and lists.

use std::time::Duration;

use chrono::Utc;
use playground_entities::{
    AssetKind, EnvironmentStatus, ExecutorKind, RunStatus, environments, grants, runs,
};
use playground_executors::{EnvironmentSpec, LogSink, OutputStream, Resources};
use playground_policies::{Action, Grant, Kind};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, JoinType, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, Set, TransactionTrait, TryIntoModel,
};
use uuid::Uuid;

use crate::app::{App, AppState};
use crate::auth::Principal;
use crate::authz::{self, grant_to_i16};
use crate::error::{ApiError, ApiResult};
use crate::services::pagination::{Page, PageRequest, into_page};
use crate::services::programs::grants_on;
use crate::validation::{self, ResourceDraft};

/// An environment together with the caller's permission on it.
#[derive(Clone, Debug)]
pub struct EnvironmentView {
    pub environment: environments::Model,
    pub grant: Grant,
}

pub struct NewEnvironment {
    pub name: String,
    pub executor: ExecutorKind,
    pub image: Option<String>,
    pub resources: ResourceDraft,
    pub config: Option<serde_json::Value>,
}

pub fn executor_kind(kind: ExecutorKind) -> playground_executors::ExecutorKind {
    match kind {
        ExecutorKind::Wasm => playground_executors::ExecutorKind::Wasm,
        ExecutorKind::Docker => playground_executors::ExecutorKind::Docker,
        ExecutorKind::Kubernetes => playground_executors::ExecutorKind::Kubernetes,
    }
}

/// The plugin's view of a stored environment.
pub fn spec(environment: &environments::Model) -> EnvironmentSpec {
    EnvironmentSpec {
        id: environment.id.to_string(),
        kind: executor_kind(environment.executor),
        image: environment.image.clone(),
        resources: Resources {
            memory_mb: environment.memory_mb as u32,
            cpu_millis: environment.cpu_millis as u32,
            timeout: Duration::from_secs(environment.timeout_seconds as u64),
            max_log_bytes: environment.max_log_bytes as u64,
            pids: environment.pids as u32,
        },
        config: environment.config.clone(),
    }
}

pub async fn create(
    app: &AppState,
    principal: &Principal,
    input: NewEnvironment,
) -> ApiResult<EnvironmentView> {
    authz::require(app, principal, Kind::Environment, Action::Create)?;
    let name = validation::name("name", &input.name)?;
    let resources = validation::resources(input.resources, &app.config.limits)?;
    let image = input
        .image
        .map(|i| i.trim().to_owned())
        .filter(|i| !i.is_empty());
    let now = Utc::now();
    let environment = environments::ActiveModel {
        id: Set(Uuid::now_v7()),
        owner_id: Set(principal.id()),
        name: Set(name),
        executor: Set(input.executor),
        image: Set(image),
        memory_mb: Set(resources.memory_mb),
        cpu_millis: Set(resources.cpu_millis),
        timeout_seconds: Set(resources.timeout_seconds),
        max_log_bytes: Set(resources.max_log_bytes as i64),
        pids: Set(resources.pids),
        config: Set(input.config.unwrap_or_else(|| serde_json::json!({}))),
        status: Set(EnvironmentStatus::Creating),
        status_reason: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        deleted_at: Set(None),
    };
    // Pure validation by the plugin, before anything is stored.
    let draft = environment.clone().try_into_model()?;
    let kind = executor_kind(input.executor);
    let Some(executor) = app.registry.get(kind) else {
        return Err(ApiError::bad_input(format!(
            "executor: this server was built without the {kind} executor; pick one listed by the executors query"
        )));
    };
    executor
        .validate(&spec(&draft))
        .map_err(|e| ApiError::bad_input(e.message))?;

    let txn = app.db.begin().await?;
    let environment = environment.insert(&txn).await?;
    grants::ActiveModel {
        asset_id: Set(environment.id),
        user_id: Set(principal.id()),
        asset_kind: Set(AssetKind::Environment),
        permission: Set(grant_to_i16(Grant::Admin)),
        created_at: Set(now),
    }
    .insert(&txn)
    .await?;
    txn.commit().await?;
    app.grants.forget(environment.id);
    spawn_prepare(app.clone(), environment.clone());
    Ok(EnvironmentView {
        environment,
        grant: Grant::Admin,
    })
}

/// Prepares an environment in the background and records READY or FAILED.
pub fn spawn_prepare(app: AppState, environment: environments::Model) {
    tokio::spawn(async move {
        let id = environment.id;
        let outcome = match app.registry.get(executor_kind(environment.executor)) {
            Some(executor) => executor
                .prepare(&spec(&environment), &PrepareEvents::new(app.clone(), id))
                .await
                .map_err(|e| e.message),
            None => Err(format!(
                "this server was built without the {} executor",
                executor_kind(environment.executor)
            )),
        };
        let (status, reason) = match outcome {
            Ok(()) => (EnvironmentStatus::Ready, None),
            Err(reason) => (EnvironmentStatus::Failed, Some(reason)),
        };
        let result = environments::Entity::update_many()
            .col_expr(environments::Column::Status, Expr::value(status))
            .col_expr(environments::Column::StatusReason, Expr::value(reason))
            .col_expr(environments::Column::UpdatedAt, Expr::value(Utc::now()))
            .filter(environments::Column::Id.eq(id))
            .filter(environments::Column::Status.eq(EnvironmentStatus::Creating))
            .exec(&app.db)
            .await;
        if let Err(error) = result {
            tracing::error!(environment = %id, ?error, "recording the end of preparation");
        }
        app.scheduler.queue_changed();
    });
}

/// Picks up environments whose preparation a stopped server left unfinished.
pub async fn resume_preparation(app: &AppState) -> anyhow::Result<()> {
    let pending = environments::Entity::find()
        .filter(environments::Column::Status.eq(EnvironmentStatus::Creating))
        .filter(environments::Column::DeletedAt.is_null())
        .all(&app.read)
        .await?;
    for environment in pending {
        spawn_prepare(app.clone(), environment);
    }
    Ok(())
}

/// Preparation progress, logged until environments get an event log.
/// Where a plugin's preparation progress goes: the server log, and the
/// environment's `statusReason` while it is CREATING (at most twice a
/// second), so users see what it is waiting for.
struct PrepareEvents {
    app: AppState,
    environment_id: Uuid,
    last_shown: std::sync::Mutex<Option<std::time::Instant>>,
}

/// Least time between two progress updates of an environment.
const PROGRESS_PERIOD: Duration = Duration::from_millis(500);
/// Longest progress line shown in `statusReason`.
const MAX_PROGRESS_CHARS: usize = 300;

impl PrepareEvents {
    fn new(app: AppState, environment_id: Uuid) -> Self {
        Self {
            app,
            environment_id,
            last_shown: Default::default(),
        }
    }

    fn show(&self, line: &str) {
        let line = line.trim();
        tracing::info!(environment = %self.environment_id, "{line}");
        if line.is_empty() {
            return;
        }
        {
            let mut last = self.last_shown.lock().expect("progress lock");
            if last.is_some_and(|at| at.elapsed() < PROGRESS_PERIOD) {
                return;
            }
            *last = Some(std::time::Instant::now());
        }
        let progress: String = line.chars().take(MAX_PROGRESS_CHARS).collect();
        let (app, id) = (self.app.clone(), self.environment_id);
        tokio::spawn(async move {
            let result = environments::Entity::update_many()
                .col_expr(
                    environments::Column::StatusReason,
                    Expr::value(Some(progress)),
                )
                .filter(environments::Column::Id.eq(id))
                .filter(environments::Column::Status.eq(EnvironmentStatus::Creating))
                .exec(&app.db)
                .await;
            if let Err(error) = result {
                tracing::warn!(environment = %id, ?error, "recording preparation progress failed");
            }
        });
    }
}

impl LogSink for PrepareEvents {
    fn write(&self, _stream: OutputStream, bytes: &[u8]) {
        self.show(&String::from_utf8_lossy(bytes));
    }

    fn system(&self, line: &str) {
        self.show(line);
    }
}

/// Moves an environment `from` one of the given states through `via` to
/// `to`, atomically; anything else is a `CONFLICT`.
async fn transition(
    app: &App,
    principal: &Principal,
    id: Uuid,
    verb: &str,
    from: &[EnvironmentStatus],
    via: EnvironmentStatus,
    to: EnvironmentStatus,
) -> ApiResult<EnvironmentView> {
    let EnvironmentView { environment, grant } = load(app, principal, id).await?;
    authz::check(app, principal, Kind::Environment, Action::Edit, grant)?;
    let illegal = |status: EnvironmentStatus| {
        ApiError::conflict(format!(
            "cannot {verb} the environment: it is {}, and {verb} works only from {}",
            status_name(status),
            from.iter()
                .map(|s| status_name(*s))
                .collect::<Vec<_>>()
                .join(" or ")
        ))
    };
    if !from.contains(&environment.status) {
        return Err(illegal(environment.status));
    }
    for (expected, next) in [(from.to_vec(), via), (vec![via], to)] {
        let moved = environments::Entity::update_many()
            .col_expr(environments::Column::Status, Expr::value(next))
            .col_expr(
                environments::Column::StatusReason,
                Expr::value(None::<String>),
            )
            .col_expr(environments::Column::UpdatedAt, Expr::value(Utc::now()))
            .filter(environments::Column::Id.eq(id))
            .filter(environments::Column::Status.is_in(expected))
            .exec(&app.db)
            .await?;
        if moved.rows_affected != 1 {
            let current = load(app, principal, id).await?.environment.status;
            return Err(illegal(current));
        }
    }
    Ok(load(app, principal, id).await?.with_grant(grant))
}

pub async fn start(app: &App, principal: &Principal, id: Uuid) -> ApiResult<EnvironmentView> {
    use EnvironmentStatus::*;
    let started = transition(
        app,
        principal,
        id,
        "start",
        &[Ready, Stopped],
        Starting,
        Running,
    )
    .await?;
    // Runs queued while it was STARTING can be claimed now.
    app.scheduler.queue_changed();
    Ok(started)
}

pub async fn stop(app: &App, principal: &Principal, id: Uuid) -> ApiResult<EnvironmentView> {
    use EnvironmentStatus::*;
    transition(
        app,
        principal,
        id,
        "stop",
        &[Ready, Running],
        Stopping,
        Stopped,
    )
    .await
}

pub async fn delete(app: &App, principal: &Principal, id: Uuid) -> ApiResult<bool> {
    let EnvironmentView { environment, grant } = load(app, principal, id).await?;
    authz::check(app, principal, Kind::Environment, Action::Delete, grant)?;
    let n_active = runs::Entity::find()
        .filter(runs::Column::EnvironmentId.eq(id))
        .filter(runs::Column::Status.is_in([
            RunStatus::Queued,
            RunStatus::Starting,
            RunStatus::Running,
        ]))
        .count(&app.read)
        .await?;
    if n_active > 0 {
        return Err(ApiError::conflict(format!(
            "the environment has {n_active} unfinished run(s): cancel them or wait for them to end, then delete it"
        )));
    }
    let mut active: environments::ActiveModel = environment.into();
    active.deleted_at = Set(Some(Utc::now()));
    active.update(&app.db).await?;
    Ok(true)
}

impl EnvironmentView {
    fn with_grant(mut self, grant: Grant) -> Self {
        self.grant = grant;
        self
    }
}

pub fn status_name(status: EnvironmentStatus) -> &'static str {
    match status {
        EnvironmentStatus::Creating => "CREATING",
        EnvironmentStatus::Ready => "READY",
        EnvironmentStatus::Starting => "STARTING",
        EnvironmentStatus::Running => "RUNNING",
        EnvironmentStatus::Stopping => "STOPPING",
        EnvironmentStatus::Stopped => "STOPPED",
        EnvironmentStatus::Failed => "FAILED",
    }
}

/// An environment the caller may view (not deleted), or `NOT_FOUND`.
pub async fn load(app: &App, principal: &Principal, id: Uuid) -> ApiResult<EnvironmentView> {
    let environment = environments::Entity::find_by_id(id)
        .filter(environments::Column::DeletedAt.is_null())
        .one(&app.read)
        .await?
        .ok_or_else(|| ApiError::not_found("environment"))?;
    let grant = authz::effective_grant(app, principal, id).await?;
    if !authz::can_view(app, principal, Kind::Environment, grant) {
        return Err(ApiError::not_found("environment"));
    }
    Ok(EnvironmentView { environment, grant })
}

/// An environment by id even when deleted, for the runs that used it.
pub async fn load_for_run(
    app: &App,
    principal: &Principal,
    id: Uuid,
) -> ApiResult<EnvironmentView> {
    let environment = environments::Entity::find_by_id(id)
        .one(&app.read)
        .await?
        .ok_or_else(|| ApiError::not_found("environment"))?;
    let grant = authz::effective_grant(app, principal, id).await?;
    Ok(EnvironmentView { environment, grant })
}

/// `null` for what does not exist or is not visible to the caller.
pub async fn get(app: &App, principal: &Principal, id: Uuid) -> ApiResult<Option<EnvironmentView>> {
    crate::error::found(load(app, principal, id).await)
}

pub async fn list(
    app: &App,
    principal: &Principal,
    page: PageRequest,
) -> ApiResult<Page<EnvironmentView>> {
    let mut query = environments::Entity::find().filter(environments::Column::DeletedAt.is_null());
    if !principal.is_admin() {
        query = query
            .join(
                JoinType::InnerJoin,
                environments::Entity::belongs_to(grants::Entity)
                    .from(environments::Column::Id)
                    .to(grants::Column::AssetId)
                    .into(),
            )
            .filter(grants::Column::UserId.eq(principal.id()))
            .filter(grants::Column::Permission.gte(grant_to_i16(Grant::View)));
    }
    let total_count = query.clone().count(&app.read).await?;
    if let Some(after) = page.after {
        query = query.filter(environments::Column::Id.lt(after));
    }
    let rows = query
        .order_by_desc(environments::Column::Id)
        .limit(page.first + 1)
        .all(&app.read)
        .await?;
    let page = into_page(rows, page, total_count);
    let grants = grants_on(app, principal, page.items.iter().map(|e| e.id).collect()).await?;
    Ok(Page {
        items: page
            .items
            .into_iter()
            .map(|environment| {
                let grant = grants(environment.id);
                EnvironmentView { environment, grant }
            })
            .collect(),
        has_next_page: page.has_next_page,
        total_count: page.total_count,
    })
}
