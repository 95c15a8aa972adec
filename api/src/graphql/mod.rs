//! The GraphQL schema: types, queries, mutations and subscriptions. Only
//! this module and `http` know GraphQL; resolvers convert between GraphQL
//! types and the services' plain types explicitly.

mod connection;
pub mod direct;
mod enums;
mod inputs;
pub mod limits;
mod loaders;
mod mutation;
mod objects;
mod query;
mod subscription;

use async_graphql::dataloader::DataLoader;
use async_graphql::{Context, Schema};

use crate::app::AppState;
use crate::auth::{Auth, Principal};
use crate::error::{ApiError, ApiResult};

pub use mutation::MutationRoot;
pub use query::QueryRoot;
pub use subscription::SubscriptionRoot;

pub type PlaygroundSchema = Schema<QueryRoot, MutationRoot, SubscriptionRoot>;

/// Builds the schema with the server's limits and shared state.
pub fn build_schema(app: AppState) -> PlaygroundSchema {
    let limits = &app.config.limits;
    Schema::build(QueryRoot, MutationRoot, SubscriptionRoot)
        .limit_depth(limits.max_query_depth)
        .limit_complexity(limits.max_query_complexity)
        .extension(self::limits::QueryShapeLimits {
            max_query_bytes: app.config.hardening.max_query_bytes,
            max_aliases: app.config.hardening.max_query_aliases,
        })
        // No batching delay: the fields of a list resolve in one pass, so
        // their loads are batched anyway, and a delay is pure latency.
        .data(
            DataLoader::new(
                loaders::UserLoader {
                    db: app.read.clone(),
                },
                tokio::spawn,
            )
            .delay(std::time::Duration::ZERO),
        )
        .data(app)
        .finish()
}

/// The SDL of the schema (what `playground schema` prints).
pub fn sdl() -> String {
    Schema::build(QueryRoot, MutationRoot, SubscriptionRoot)
        .finish()
        .sdl()
}

pub(crate) fn app<'a>(ctx: &Context<'a>) -> &'a AppState {
    ctx.data_unchecked::<AppState>()
}

pub(crate) fn principal<'a>(ctx: &Context<'a>) -> ApiResult<&'a Principal> {
    match ctx.data_opt::<Auth>() {
        Some(auth) => auth.principal(),
        None => Auth::Anonymous
            .principal()
            .map_err(|e| ApiError::unauthenticated(e.message())),
    }
}
