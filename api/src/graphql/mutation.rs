//! The mutation root. Every mutation is recorded in the audit log (see
//! [`audited`]): who, which mutation, the object's id, the outcome code and
//! the client's address; never argument values.

use std::future::Future;

use async_graphql::{Context, ID, Object};
use uuid::Uuid;

use super::enums::{Permission, Role};
use super::inputs::{
    CreateEnvironmentInput, CreateProgramInput, CreateRunInput, UpdateProgramInput,
};
use super::objects::{
    ApiToken, AuthPayload, CreatedApiToken, Credential, Environment, Program, Run, User,
};
use super::{app, principal};
use crate::http::ClientAddr;
use crate::services::audit::{self, AuditEntry};
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
        let client = ctx
            .data_opt::<crate::http::ClientAddr>()
            .and_then(|c| c.0)
            .map(|a| a.ip());
        let result = users::login_from(app(ctx), client, &email, &password).await;
        let login_email = email.trim().to_lowercase().replace('\0', "");
        let (actor_id, outcome) = match &result {
            Ok((_, user)) => (Some(user.id), audit::SUCCESS.to_owned()),
            Err(error) => (None, error.code().to_owned()),
        };
        audit::record(
            app(ctx),
            AuditEntry {
                actor_id,
                actor_email: Some(login_email.clone()),
                action: "login".to_owned(),
                object: Some(login_email),
                outcome,
                client_addr: client_addr(ctx),
            },
        )
        .await;
        let (token, user) = result?;
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
        audited(ctx, "createUser", None, |u: &User| Some(u.0.id), async {
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
        })
        .await
    }

    /// A long-lived token for scripts; the token is shown only in this answer.
    async fn create_api_token(
        &self,
        ctx: &Context<'_>,
        name: String,
        expires_in_days: Option<i32>,
    ) -> async_graphql::Result<CreatedApiToken> {
        audited(
            ctx,
            "createApiToken",
            None,
            |t: &CreatedApiToken| Some(t.api_token.0.id),
            async {
                let principal = principal(ctx)?;
                let (token, row) =
                    users::create_api_token(app(ctx), principal, &name, expires_in_days).await?;
                Ok(CreatedApiToken {
                    token,
                    api_token: ApiToken(row),
                })
            },
        )
        .await
    }

    async fn revoke_api_token(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<bool> {
        audited(ctx, "revokeApiToken", Some(&id), |_: &bool| None, async {
            let principal = principal(ctx)?;
            let id = validation::id("id", &id)?;
            Ok(users::revoke_api_token(app(ctx), principal, id).await?)
        })
        .await
    }

    async fn create_program(
        &self,
        ctx: &Context<'_>,
        input: CreateProgramInput,
    ) -> async_graphql::Result<Program> {
        audited(
            ctx,
            "createProgram",
            None,
            |p: &Program| Some(p.0.program.id),
            async {
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
            },
        )
        .await
    }

    async fn update_program(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateProgramInput,
    ) -> async_graphql::Result<Program> {
        audited(
            ctx,
            "updateProgram",
            Some(&id),
            |p: &Program| Some(p.0.program.id),
            async {
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
            },
        )
        .await
    }

    async fn delete_program(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<bool> {
        audited(ctx, "deleteProgram", Some(&id), |_: &bool| None, async {
            let principal = principal(ctx)?;
            let id = validation::id("id", &id)?;
            Ok(programs::delete(app(ctx), principal, id).await?)
        })
        .await
    }

    async fn create_environment(
        &self,
        ctx: &Context<'_>,
        input: CreateEnvironmentInput,
    ) -> async_graphql::Result<Environment> {
        audited(
            ctx,
            "createEnvironment",
            None,
            |e: &Environment| Some(e.0.environment.id),
            async {
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
            },
        )
        .await
    }

    async fn start_environment(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<Environment> {
        audited(
            ctx,
            "startEnvironment",
            Some(&id),
            |e: &Environment| Some(e.0.environment.id),
            async {
                let principal = principal(ctx)?;
                let id = validation::id("id", &id)?;
                Ok(Environment(
                    environments::start(app(ctx), principal, id).await?,
                ))
            },
        )
        .await
    }

    async fn stop_environment(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<Environment> {
        audited(
            ctx,
            "stopEnvironment",
            Some(&id),
            |e: &Environment| Some(e.0.environment.id),
            async {
                let principal = principal(ctx)?;
                let id = validation::id("id", &id)?;
                Ok(Environment(
                    environments::stop(app(ctx), principal, id).await?,
                ))
            },
        )
        .await
    }

    async fn delete_environment(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<bool> {
        audited(
            ctx,
            "deleteEnvironment",
            Some(&id),
            |_: &bool| None,
            async {
                let principal = principal(ctx)?;
                let id = validation::id("id", &id)?;
                Ok(environments::delete(app(ctx), principal, id).await?)
            },
        )
        .await
    }

    /// Queues a run of the program's current version in the environment.
    async fn create_run(
        &self,
        ctx: &Context<'_>,
        input: CreateRunInput,
    ) -> async_graphql::Result<Run> {
        audited(ctx, "createRun", None, |r: &Run| Some(r.0.run.id), async {
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
        })
        .await
    }

    async fn cancel_run(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Run> {
        audited(
            ctx,
            "cancelRun",
            Some(&id),
            |r: &Run| Some(r.0.run.id),
            async {
                let principal = principal(ctx)?;
                let id = validation::id("id", &id)?;
                Ok(Run(runs::cancel(app(ctx), principal, id).await?))
            },
        )
        .await
    }

    /// A new run (attempt + 1) of the same program version, environment and arguments.
    async fn retry_run(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Run> {
        audited(
            ctx,
            "retryRun",
            Some(&id),
            |r: &Run| Some(r.0.run.id),
            async {
                let principal = principal(ctx)?;
                let id = validation::id("id", &id)?;
                Ok(Run(runs::retry(app(ctx), principal, id).await?))
            },
        )
        .await
    }

    /// grant a user a permission on a program or environment (replaces an earlier grant)
    async fn share_asset(
        &self,
        ctx: &Context<'_>,
        asset_id: ID,
        user_email: String,
        permission: Permission,
    ) -> async_graphql::Result<bool> {
        audited(ctx, "shareAsset", Some(&asset_id), |_: &bool| None, async {
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
        })
        .await
    }

    async fn unshare_asset(
        &self,
        ctx: &Context<'_>,
        asset_id: ID,
        user_email: String,
    ) -> async_graphql::Result<bool> {
        audited(
            ctx,
            "unshareAsset",
            Some(&asset_id),
            |_: &bool| None,
            async {
                let principal = principal(ctx)?;
                let asset_id = validation::id("assetId", &asset_id)?;
                Ok(sharing::unshare(app(ctx), principal, asset_id, &user_email).await?)
            },
        )
        .await
    }

    /// the value is write-only: no query ever returns it
    async fn create_credential(
        &self,
        ctx: &Context<'_>,
        name: String,
        value: String,
    ) -> async_graphql::Result<Credential> {
        audited(
            ctx,
            "createCredential",
            None,
            |c: &Credential| Uuid::parse_str(&c.id).ok(),
            async {
                let principal = principal(ctx)?;
                Ok(credentials::create(app(ctx), principal, &name, &value)
                    .await?
                    .into())
            },
        )
        .await
    }

    async fn delete_credential(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<bool> {
        audited(ctx, "deleteCredential", Some(&id), |_: &bool| None, async {
            let principal = principal(ctx)?;
            let id = validation::id("id", &id)?;
            Ok(credentials::delete(app(ctx), principal, id).await?)
        })
        .await
    }
}

/// The client's IP address, when the transport knows it.
fn client_addr(ctx: &Context<'_>) -> Option<String> {
    ctx.data_opt::<ClientAddr>()
        .and_then(|addr| addr.0)
        .map(|addr| addr.ip().to_string())
}

/// The id of an object from an `ID` argument; not a UUID is not an id, and
/// is not recorded (it could be anything the client typed).
fn object_id(id: &ID) -> Option<String> {
    Uuid::parse_str(id).ok().map(|id| id.to_string())
}

/// Runs a mutation's `work` and records it in the audit log: the caller,
/// `action`, the object (the `object` argument — for `retryRun` the run
/// retried — or else the id of what it created) and the
/// outcome (`SUCCESS` or the error code). Recording never fails the
/// mutation.
async fn audited<T>(
    ctx: &Context<'_>,
    action: &'static str,
    object: Option<&ID>,
    created: impl FnOnce(&T) -> Option<Uuid>,
    work: impl Future<Output = async_graphql::Result<T>>,
) -> async_graphql::Result<T> {
    let result = work.await;
    let (object, outcome) = match &result {
        Ok(value) => (
            object
                .and_then(object_id)
                .or_else(|| created(value).map(|id| id.to_string())),
            audit::SUCCESS.to_owned(),
        ),
        Err(error) => (
            object.and_then(object_id),
            error
                .extensions
                .as_ref()
                .and_then(|e| e.get("code"))
                .and_then(|code| match code {
                    async_graphql::Value::String(code) => Some(code.clone()),
                    _ => None,
                })
                .unwrap_or_else(|| "ERROR".to_owned()),
        ),
    };
    let actor = principal(ctx).ok();
    audit::record(
        app(ctx),
        AuditEntry {
            actor_id: actor.map(|p| p.id()),
            actor_email: actor.map(|p| p.user.email.clone()),
            action: action.to_owned(),
            object,
            outcome,
            client_addr: client_addr(ctx),
        },
    )
    .await;
    result
}

#[cfg(test)]
mod tests {
    /// A new mutation must be recorded too: each one's name appears in this
    /// file as the action it records.
    #[test]
    fn every_mutation_is_audited() {
        let sdl = crate::graphql::sdl();
        let start = sdl.find("type Mutation {").expect("a Mutation type");
        let block = &sdl[start..];
        let block = &block[..block.find("\n}").expect("the end of Mutation")];
        let source = include_str!("mutation.rs");
        let mut names = 0;
        for line in block.lines().skip(1) {
            let line = line.trim();
            let Some(end) = line.find(['(', ':']) else {
                continue;
            };
            let name = &line[..end];
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric()) {
                continue;
            }
            names += 1;
            let recorded = format!("\"{name}\"");
            assert!(
                source.contains(&recorded),
                "mutation {name} is not recorded in the audit log: wrap it in `audited`"
            );
        }
        assert!(names >= 10, "found only {names} mutations in {block}");
    }
}
