//! The mutation root.

use async_graphql::{Context, ID, Object};

use super::enums::{Permission, Role};
use super::inputs::{
    CreateEnvironmentInput, CreateProgramInput, CreateRunInput, UpdateProgramInput,
};
use super::objects::{
    ApiToken, AuthPayload, CreatedApiToken, Credential, Environment, Program, Run, User,
};
use super::{app, principal};
use crate::services::{credentials, environments, programs, runs, sharing, users};
use crate::validation;

pub struct MutationRoot;

#[Object(name = "Mutation")]
impl MutationRoot {
    /// Signs in with email and password; the token goes in `Authorization: Bearer …`.
    async fn login(
        &self,
        ctx: &Context<'_>,
        email: String,
        password: String,
    ) -> async_graphql::Result<AuthPayload> {
        let (token, user) = users::login(app(ctx), &email, &password).await?;
        Ok(AuthPayload {
            token,
            user: User(user),
        })
    }

    /// admin only
    async fn create_user(
        &self,
        ctx: &Context<'_>,
        email: String,
        password: String,
        display_name: Option<String>,
        role: Role,
    ) -> async_graphql::Result<User> {
        let principal = principal(ctx)?;
        let user = users::create_user(
            app(ctx),
            principal,
            &email,
            &password,
            display_name,
            role.into(),
        )
        .await?;
        Ok(User(user))
    }

    /// A long-lived token for scripts; the token is shown only in this answer.
    async fn create_api_token(
        &self,
        ctx: &Context<'_>,
        name: String,
        expires_in_days: Option<i32>,
    ) -> async_graphql::Result<CreatedApiToken> {
        let principal = principal(ctx)?;
        let (token, row) =
            users::create_api_token(app(ctx), principal, &name, expires_in_days).await?;
        Ok(CreatedApiToken {
            token,
            api_token: ApiToken(row),
        })
    }

    async fn revoke_api_token(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<bool> {
        let principal = principal(ctx)?;
        let id = validation::id("id", &id)?;
        Ok(users::revoke_api_token(app(ctx), principal, id).await?)
    }

    async fn create_program(
        &self,
        ctx: &Context<'_>,
        input: CreateProgramInput,
    ) -> async_graphql::Result<Program> {
        let principal = principal(ctx)?;
        let input = programs::NewProgram {
            name: input.name,
            description: input.description,
            tags: input.tags,
            runtime: input.runtime.into(),
            entrypoint: input.entrypoint,
            files: input.files.into_iter().map(Into::into).collect(),
        };
        Ok(Program(programs::create(app(ctx), principal, input).await?))
    }

    async fn update_program(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateProgramInput,
    ) -> async_graphql::Result<Program> {
        let principal = principal(ctx)?;
        let id = validation::id("id", &id)?;
        let changes = programs::ProgramChanges {
            name: input.name,
            description: input.description,
            tags: input.tags,
            entrypoint: input.entrypoint,
            files: input
                .files
                .map(|files| files.into_iter().map(Into::into).collect()),
        };
        Ok(Program(
            programs::update(app(ctx), principal, id, changes).await?,
        ))
    }

    async fn delete_program(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<bool> {
        let principal = principal(ctx)?;
        let id = validation::id("id", &id)?;
        Ok(programs::delete(app(ctx), principal, id).await?)
    }

    async fn create_environment(
        &self,
        ctx: &Context<'_>,
        input: CreateEnvironmentInput,
    ) -> async_graphql::Result<Environment> {
        let principal = principal(ctx)?;
        let input = environments::NewEnvironment {
            name: input.name,
            executor: input.executor.into(),
            image: input.image,
            resources: input.resources.unwrap_or_default().into(),
            config: input.config.map(|c| c.0),
        };
        Ok(Environment(
            environments::create(app(ctx), principal, input).await?,
        ))
    }

    async fn start_environment(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<Environment> {
        let principal = principal(ctx)?;
        let id = validation::id("id", &id)?;
        Ok(Environment(
            environments::start(app(ctx), principal, id).await?,
        ))
    }

    async fn stop_environment(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<Environment> {
        let principal = principal(ctx)?;
        let id = validation::id("id", &id)?;
        Ok(Environment(
            environments::stop(app(ctx), principal, id).await?,
        ))
    }

    async fn delete_environment(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<bool> {
        let principal = principal(ctx)?;
        let id = validation::id("id", &id)?;
        Ok(environments::delete(app(ctx), principal, id).await?)
    }

    /// Queues a run of the program's current version in the environment.
    async fn create_run(
        &self,
        ctx: &Context<'_>,
        input: CreateRunInput,
    ) -> async_graphql::Result<Run> {
        let principal = principal(ctx)?;
        let credential_ids = input
            .credential_ids
            .map(|ids| {
                ids.iter()
                    .map(|id| validation::id("credentialIds", id))
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?;
        let input = runs::NewRun {
            program_id: validation::id("programId", &input.program_id)?,
            environment_id: validation::id("environmentId", &input.environment_id)?,
            args: input.args,
            env: input
                .env
                .map(|vars| vars.into_iter().map(|v| (v.name, v.value)).collect()),
            credential_ids,
        };
        Ok(Run(runs::create(app(ctx), principal, input).await?))
    }

    async fn cancel_run(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Run> {
        let principal = principal(ctx)?;
        let id = validation::id("id", &id)?;
        Ok(Run(runs::cancel(app(ctx), principal, id).await?))
    }

    /// A new run (attempt + 1) of the same program version, environment and arguments.
    async fn retry_run(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Run> {
        let principal = principal(ctx)?;
        let id = validation::id("id", &id)?;
        Ok(Run(runs::retry(app(ctx), principal, id).await?))
    }

    /// grant a user a permission on a program or environment (replaces an earlier grant)
    async fn share_asset(
        &self,
        ctx: &Context<'_>,
        asset_id: ID,
        user_email: String,
        permission: Permission,
    ) -> async_graphql::Result<bool> {
        let principal = principal(ctx)?;
        let asset_id = validation::id("assetId", &asset_id)?;
        Ok(sharing::share(
            app(ctx),
            principal,
            asset_id,
            &user_email,
            permission.to_grant(),
        )
        .await?)
    }

    async fn unshare_asset(
        &self,
        ctx: &Context<'_>,
        asset_id: ID,
        user_email: String,
    ) -> async_graphql::Result<bool> {
        let principal = principal(ctx)?;
        let asset_id = validation::id("assetId", &asset_id)?;
        Ok(sharing::unshare(app(ctx), principal, asset_id, &user_email).await?)
    }

    /// the value is write-only: no query ever returns it
    async fn create_credential(
        &self,
        ctx: &Context<'_>,
        name: String,
        value: String,
    ) -> async_graphql::Result<Credential> {
        let principal = principal(ctx)?;
        Ok(credentials::create(app(ctx), principal, &name, &value)
            .await?
            .into())
    }

    async fn delete_credential(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<bool> {
        let principal = principal(ctx)?;
        let id = validation::id("id", &id)?;
        Ok(credentials::delete(app(ctx), principal, id).await?)
    }
}
