//! The query root.

use async_graphql::{Context, ID, Object};
use playground_policies::{Action, Kind};

use super::connection::{
    AuditEventConnection, EnvironmentConnection, ProgramConnection, RunConnection,
};
use super::enums::RunStatus;
use super::objects::{
    ApiToken, AuditEvent, Credential, Environment, ExecutorInfo, Program, Run, User,
};
use super::{app, principal};
use crate::authz;
use crate::services::pagination::page_request;
use crate::services::{audit, environments, programs, runs, users};
use crate::validation;
use playground_executors::Health;

pub struct QueryRoot;

#[Object(name = "Query")]
impl QueryRoot {
    /// The signed-in user.
    async fn me(&self, ctx: &Context<'_>) -> async_graphql::Result<User> {
        Ok(User(principal(ctx)?.user.clone()))
    }

    /// Each executor kind, whether it can take runs now, and why not.
    async fn executors(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<ExecutorInfo>> {
        let principal = principal(ctx)?;
        let app = app(ctx);
        authz::require(app, principal, Kind::Executor, Action::View)?;
        let mut infos = Vec::new();
        for kind in playground_executors::ExecutorKind::ALL {
            let info = match app.registry.get(kind) {
                Some(executor) => match executor.health().await {
                    Health::Available { detail } => ExecutorInfo {
                        kind: kind.into(),
                        available: true,
                        detail,
                    },
                    Health::Unavailable { reason } => ExecutorInfo {
                        kind: kind.into(),
                        available: false,
                        detail: reason,
                    },
                },
                None => ExecutorInfo {
                    kind: kind.into(),
                    available: false,
                    detail: format!("this server was built without the {kind} executor"),
                },
            };
            infos.push(info);
        }
        Ok(infos)
    }

    /// Programs the caller may view, newest first. `search` matches name or
    /// description (case-insensitive); `tag` matches one tag exactly.
    async fn programs(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        search: Option<String>,
        tag: Option<String>,
    ) -> async_graphql::Result<ProgramConnection> {
        let principal = principal(ctx)?;
        let page = page_request(first, after)?;
        let filter = programs::ProgramFilter { search, tag };
        let page = programs::list(app(ctx), principal, filter, page).await?;
        Ok(ProgramConnection::from_page(
            page,
            |v| v.program.id,
            Program,
        ))
    }

    async fn program(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<Program>> {
        let principal = principal(ctx)?;
        let id = validation::id("id", &id)?;
        Ok(programs::get(app(ctx), principal, id).await?.map(Program))
    }

    /// Environments the caller may view, newest first.
    async fn environments(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<EnvironmentConnection> {
        let principal = principal(ctx)?;
        let page = page_request(first, after)?;
        let page = environments::list(app(ctx), principal, page).await?;
        Ok(EnvironmentConnection::from_page(
            page,
            |v| v.environment.id,
            Environment,
        ))
    }

    async fn environment(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<Option<Environment>> {
        let principal = principal(ctx)?;
        let id = validation::id("id", &id)?;
        Ok(environments::get(app(ctx), principal, id)
            .await?
            .map(Environment))
    }

    /// Runs the caller may view (its own; all for admins; those of programs it administers), newest first.
    async fn runs(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        status: Option<RunStatus>,
        program_id: Option<ID>,
        environment_id: Option<ID>,
    ) -> async_graphql::Result<RunConnection> {
        let principal = principal(ctx)?;
        let page = page_request(first, after)?;
        let filter = runs::RunFilter {
            status: status.map(Into::into),
            program_id: program_id
                .map(|id| validation::id("programId", &id))
                .transpose()?,
            environment_id: environment_id
                .map(|id| validation::id("environmentId", &id))
                .transpose()?,
        };
        let page = runs::list(app(ctx), principal, filter, page).await?;
        Ok(RunConnection::from_page(page, |v| v.run.id, Run))
    }

    async fn run(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<Run>> {
        let principal = principal(ctx)?;
        let id = validation::id("id", &id)?;
        Ok(runs::get(app(ctx), principal, id).await?.map(Run))
    }

    /// The caller's credentials (names only; values are never returned).
    async fn credentials(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Credential>> {
        let principal = principal(ctx)?;
        Ok(crate::services::credentials::list(app(ctx), principal)
            .await?
            .into_iter()
            .map(Credential::from)
            .collect())
    }

    /// admin only
    async fn users(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<User>> {
        let principal = principal(ctx)?;
        Ok(users::list_users(app(ctx), principal)
            .await?
            .into_iter()
            .map(User)
            .collect())
    }

    /// The caller's API tokens that are not revoked.
    async fn api_tokens(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<ApiToken>> {
        let principal = principal(ctx)?;
        Ok(users::api_tokens(app(ctx), principal)
            .await?
            .into_iter()
            .map(ApiToken)
            .collect())
    }

    /// admin only: the audit log (every mutation and login attempt), newest
    /// first. `actor` is a user id; `action` a mutation name (`createRun`,
    /// `login`, …); `object` an object id or a login's email.
    async fn audit_events(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        actor: Option<ID>,
        action: Option<String>,
        object: Option<String>,
    ) -> async_graphql::Result<AuditEventConnection> {
        let principal = principal(ctx)?;
        let page = page_request(first, after)?;
        let filter = audit::AuditFilter {
            actor_id: actor.map(|id| validation::id("actor", &id)).transpose()?,
            action,
            object,
        };
        let page = audit::list(app(ctx), principal, filter, page).await?;
        Ok(AuditEventConnection::from_page(page, |e| e.id, AuditEvent))
    }
}
