//! GraphQL object types. Each wraps a service type and resolves its fields;
//! nested objects (owners, files, a run's program) load on demand.

use async_graphql::dataloader::DataLoader;
use async_graphql::{ComplexObject, Context, ID, Json, Object, SimpleObject};
use base64::Engine;
use chrono::{DateTime, Utc};
use playground_entities::{api_tokens, audit_events, credentials, users};
use playground_policies::Kind;

use super::enums::{
    EnvironmentStatus, ExecutorKind, LogStream, Permission, ProgramRuntime, Role, RunStatus,
};
use super::loaders::UserLoader;
use super::{app, principal};
use crate::authz;
use crate::error::{ApiError, ApiResult};
use crate::events;
use crate::services::environments;
use crate::services::environments::EnvironmentView;
use crate::services::programs::{self, ProgramView, StoredFile};
use crate::services::runs::{self, RunView};

pub struct User(pub users::Model);

#[Object]
impl User {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn email(&self) -> &str {
        &self.0.email
    }
    async fn display_name(&self) -> &str {
        &self.0.display_name
    }
    async fn role(&self) -> Role {
        self.0.role.into()
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

/// Loads a user through the request's batching loader.
async fn user_by_id(ctx: &Context<'_>, id: uuid::Uuid) -> ApiResult<User> {
    let loader = ctx.data_unchecked::<DataLoader<UserLoader>>();
    loader
        .load_one(id)
        .await
        .map_err(|e| ApiError::internal(anyhow::anyhow!("loading a user: {e}")))?
        .map(User)
        .ok_or_else(|| ApiError::not_found("user"))
}

#[derive(SimpleObject)]
pub struct AuthPayload {
    pub token: String,
    pub user: User,
}

pub struct ApiToken(pub api_tokens::Model);

#[Object]
impl ApiToken {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// The public start of the token, to recognise it.
    async fn prefix(&self) -> &str {
        &self.0.prefix
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.0.expires_at
    }
    async fn last_used_at(&self) -> Option<DateTime<Utc>> {
        self.0.last_used_at
    }
}

#[derive(SimpleObject)]
pub struct CreatedApiToken {
    /// The token itself: shown only now, store it safely.
    pub token: String,
    pub api_token: ApiToken,
}

pub struct ProgramFile(pub StoredFile);

#[Object]
impl ProgramFile {
    async fn path(&self) -> &str {
        &self.0.path
    }
    async fn size(&self) -> i32 {
        i32::try_from(self.0.size).unwrap_or(i32::MAX)
    }
    async fn sha256(&self) -> &str {
        &self.0.sha256
    }
    /// UTF-8 text, or null when the file is binary
    async fn content(&self) -> Option<&str> {
        std::str::from_utf8(&self.0.content).ok()
    }
    async fn content_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(&self.0.content)
    }
}

pub struct Program(pub ProgramView);

#[Object]
impl Program {
    async fn id(&self) -> ID {
        ID(self.0.program.id.to_string())
    }
    async fn name(&self) -> &str {
        &self.0.program.name
    }
    async fn description(&self) -> &str {
        &self.0.program.description
    }
    async fn tags(&self) -> Vec<String> {
        serde_json::from_value(self.0.program.tags.clone()).unwrap_or_default()
    }
    async fn runtime(&self) -> ProgramRuntime {
        self.0.program.runtime.into()
    }
    async fn entrypoint(&self) -> &str {
        &self.0.program.entrypoint
    }
    /// The current version: 1 at creation, one more for each change of files or entrypoint.
    async fn version(&self) -> i32 {
        self.0.program.current_version
    }
    /// The files of the current version.
    #[graphql(complexity = "20 + child_complexity")]
    async fn files(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<ProgramFile>> {
        // Reached through a run the caller may see (`Run.program`) without
        // a grant to view the program: its identity, not its files.
        if !authz::can_view(app(ctx), principal(ctx)?, Kind::Program, self.0.grant) {
            return Ok(Vec::new());
        }
        let program = &self.0.program;
        let files = programs::version_files(app(ctx), program.id, program.current_version).await?;
        Ok(files.into_iter().map(ProgramFile).collect())
    }
    async fn owner(&self, ctx: &Context<'_>) -> async_graphql::Result<User> {
        Ok(user_by_id(ctx, self.0.program.owner_id).await?)
    }
    /// the caller's effective permission on this program
    async fn my_permission(&self) -> Permission {
        Permission::from_grant(self.0.grant)
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.program.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.program.updated_at
    }
}

#[derive(SimpleObject)]
pub struct Resources {
    pub memory_mb: i32,
    pub cpu_millis: i32,
    pub timeout_seconds: i32,
    pub max_log_bytes: i32,
    pub pids: i32,
}

pub struct Environment(pub EnvironmentView);

impl Environment {
    /// Whether the caller may view the environment itself. Through a run it
    /// may see (`Run.environment`) it may not: then it sees the
    /// environment's identity, not its image, config or status reason.
    fn viewable(&self, ctx: &Context<'_>) -> async_graphql::Result<bool> {
        Ok(authz::can_view(
            app(ctx),
            principal(ctx)?,
            Kind::Environment,
            self.0.grant,
        ))
    }
}

#[Object]
impl Environment {
    async fn id(&self) -> ID {
        ID(self.0.environment.id.to_string())
    }
    async fn name(&self) -> &str {
        &self.0.environment.name
    }
    async fn executor(&self) -> ExecutorKind {
        self.0.environment.executor.into()
    }
    /// container image for DOCKER and KUBERNETES
    async fn image(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<&str>> {
        Ok(if self.viewable(ctx)? {
            self.0.environment.image.as_deref()
        } else {
            None
        })
    }
    async fn resources(&self) -> Resources {
        let e = &self.0.environment;
        Resources {
            memory_mb: e.memory_mb,
            cpu_millis: e.cpu_millis,
            timeout_seconds: e.timeout_seconds,
            max_log_bytes: i32::try_from(e.max_log_bytes).unwrap_or(i32::MAX),
            pids: e.pids,
        }
    }
    /// executor-specific settings, validated when the environment is created
    async fn config(&self, ctx: &Context<'_>) -> async_graphql::Result<Json<serde_json::Value>> {
        Ok(Json(if self.viewable(ctx)? {
            self.0.environment.config.clone()
        } else {
            serde_json::json!({})
        }))
    }
    async fn status(&self) -> EnvironmentStatus {
        self.0.environment.status.into()
    }
    /// Why the environment FAILED, in words a person understands.
    async fn status_reason(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<&str>> {
        Ok(if self.viewable(ctx)? {
            self.0.environment.status_reason.as_deref()
        } else {
            None
        })
    }
    async fn owner(&self, ctx: &Context<'_>) -> async_graphql::Result<User> {
        Ok(user_by_id(ctx, self.0.environment.owner_id).await?)
    }
    /// the caller's effective permission on this environment
    async fn my_permission(&self) -> Permission {
        Permission::from_grant(self.0.grant)
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.environment.created_at
    }
}

#[derive(SimpleObject)]
pub struct LogLine {
    pub seq: i32,
    pub stream: LogStream,
    pub line: String,
    pub timestamp: DateTime<Utc>,
}

impl From<events::LogLine> for LogLine {
    fn from(line: events::LogLine) -> Self {
        LogLine {
            seq: i32::try_from(line.seq).unwrap_or(i32::MAX),
            stream: line.stream.into(),
            line: line.line,
            timestamp: line.timestamp,
        }
    }
}

pub struct Run(pub RunView);

#[Object]
impl Run {
    async fn id(&self) -> ID {
        ID(self.0.run.id.to_string())
    }
    async fn program(&self, ctx: &Context<'_>) -> async_graphql::Result<Program> {
        let view = programs::load_for_run(app(ctx), principal(ctx)?, self.0.run.program_id).await?;
        Ok(Program(view))
    }
    async fn program_version(&self) -> i32 {
        self.0.run.program_version
    }
    async fn environment(&self, ctx: &Context<'_>) -> async_graphql::Result<Environment> {
        let view = environments::load_for_run(app(ctx), principal(ctx)?, self.0.run.environment_id)
            .await?;
        Ok(Environment(view))
    }
    async fn status(&self) -> RunStatus {
        self.0.run.status.into()
    }
    async fn exit_code(&self) -> Option<i32> {
        self.0.run.exit_code
    }
    /// why the run failed, timed out or was cancelled, in words a person understands
    async fn failure_reason(&self) -> Option<&str> {
        self.0.run.failure_reason.as_deref()
    }
    async fn args(&self) -> Vec<String> {
        serde_json::from_value(self.0.run.args.clone()).unwrap_or_default()
    }
    async fn attempt(&self) -> i32 {
        self.0.run.attempt
    }
    async fn owner(&self, ctx: &Context<'_>) -> async_graphql::Result<User> {
        Ok(user_by_id(ctx, self.0.run.owner_id).await?)
    }
    async fn queued_at(&self) -> DateTime<Utc> {
        self.0.run.queued_at
    }
    async fn started_at(&self) -> Option<DateTime<Utc>> {
        self.0.run.started_at
    }
    async fn finished_at(&self) -> Option<DateTime<Utc>> {
        self.0.run.finished_at
    }
    /// Stored log lines after `afterSeq` (default 0), at most `first` (default 1000, at most 10000).
    #[graphql(complexity = "10 + child_complexity")]
    async fn logs(
        &self,
        ctx: &Context<'_>,
        after_seq: Option<i32>,
        first: Option<i32>,
    ) -> async_graphql::Result<Vec<LogLine>> {
        let lines = runs::logs(
            app(ctx),
            self.0.run.id,
            after_seq.unwrap_or(0).into(),
            first,
        )
        .await?;
        Ok(lines.into_iter().map(LogLine::from).collect())
    }
}

#[derive(SimpleObject)]
pub struct RunStatusEvent {
    pub run_id: ID,
    pub status: RunStatus,
    pub exit_code: Option<i32>,
    pub failure_reason: Option<String>,
    pub at: DateTime<Utc>,
}

impl From<events::StatusEvent> for RunStatusEvent {
    fn from(event: events::StatusEvent) -> Self {
        RunStatusEvent {
            run_id: ID(event.run_id.to_string()),
            status: event.status.into(),
            exit_code: event.exit_code,
            failure_reason: event.failure_reason,
            at: event.at,
        }
    }
}

#[derive(SimpleObject)]
pub struct ExecutorInfo {
    pub kind: ExecutorKind,
    pub available: bool,
    /// why it is unavailable, or the engine's version when it is
    pub detail: String,
}

#[derive(SimpleObject)]
#[graphql(complex)]
pub struct Credential {
    pub id: ID,
    pub name: String,
    pub created_at: DateTime<Utc>,
    #[graphql(skip)]
    pub owner_id: uuid::Uuid,
}

#[ComplexObject]
impl Credential {
    async fn owner(&self, ctx: &Context<'_>) -> async_graphql::Result<User> {
        Ok(user_by_id(ctx, self.owner_id).await?)
    }
}

impl From<credentials::Model> for Credential {
    fn from(model: credentials::Model) -> Self {
        Credential {
            id: ID(model.id.to_string()),
            name: model.name,
            created_at: model.created_at,
            owner_id: model.owner_id,
        }
    }
}

/// One entry of the audit log: a mutation or a login attempt. Holds no
/// argument values (no passwords, tokens or credential values).
pub struct AuditEvent(pub audit_events::Model);

#[Object]
impl AuditEvent {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn at(&self) -> DateTime<Utc> {
        self.0.at
    }
    /// The signed-in caller; null for anonymous calls, failed logins and
    /// deleted users.
    async fn actor(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<User>> {
        let Some(id) = self.0.actor_id else {
            return Ok(None);
        };
        Ok(crate::error::found(user_by_id(ctx, id).await)?)
    }
    /// The caller's email at the time (for a login: the email tried).
    async fn actor_email(&self) -> Option<&str> {
        self.0.actor_email.as_deref()
    }
    /// The mutation's name (`createRun`, `login`, …).
    async fn action(&self) -> &str {
        &self.0.action
    }
    /// The id of the object acted on (or created), or a login's email.
    async fn object(&self) -> Option<&str> {
        self.0.object.as_deref()
    }
    /// `SUCCESS`, or the error's `extensions.code` (`FORBIDDEN`, …).
    async fn outcome(&self) -> &str {
        &self.0.outcome
    }
    /// The client's IP address, when known.
    async fn client_address(&self) -> Option<&str> {
        self.0.client_addr.as_deref()
    }
}
