//! Users and their credentials: login, the first-start admin, user
//! management for admins, and API tokens.

use std::net::IpAddr;

use chrono::Utc;
use playground_entities::{Role, api_tokens, users};
use playground_policies::{Action, Kind};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, Set,
};
use uuid::Uuid;

use crate::app::App;
use crate::auth::{self, Principal};
use crate::authz;
use crate::error::{ApiError, ApiResult, InternalContext};
use crate::validation;

/// Checks a password and issues a session token, for a client at `client`.
/// Failed attempts are counted per email and per client address (in memory,
/// per process: see `limits`); over the limit, attempts are refused with
/// `RATE_LIMITED` before the password is checked. A success clears the
/// email's count.
pub async fn login_from(
    app: &App,
    client: Option<IpAddr>,
    email: &str,
    password: &str,
) -> ApiResult<(String, users::Model)> {
    let email = email.trim().to_lowercase().replace('\0', "");
    app.login_limiter.check(&email, client)?;
    let user = users::Entity::find()
        .filter(users::Column::Email.eq(&email))
        .one(&app.read)
        .await?;
    let hash = user.as_ref().map_or_else(
        || auth::decoy_hash().to_owned(),
        |u| u.password_hash.clone(),
    );
    let password = password.to_owned();
    let matches = tokio::task::spawn_blocking(move || auth::verify_password(&hash, &password))
        .await
        .internal("verifying a password")?;
    match user {
        Some(user) if matches => {
            app.login_limiter.record_success(&email);
            Ok((app.authenticator.issue(user.id)?, user))
        }
        _ => {
            app.login_limiter.record_failure(&email, client);
            Err(ApiError::unauthenticated(
                "wrong email or password: check both and try again",
            ))
        }
    }
}

/// Inserts a user. Used by `createUser`, the CLI and the first start.
pub async fn insert_user(
    db: &DatabaseConnection,
    email: &str,
    password: &str,
    display_name: Option<String>,
    role: Role,
) -> ApiResult<users::Model> {
    let email = validation::email(email)?;
    validation::password(password)?;
    let display_name = match display_name {
        Some(name) => validation::name("displayName", &name)?,
        None => email.split('@').next().unwrap_or_default().to_owned(),
    };
    if users::Entity::find()
        .filter(users::Column::Email.eq(&email))
        .count(db)
        .await?
        > 0
    {
        return Err(ApiError::conflict(format!(
            "a user with email {email} already exists"
        )));
    }
    let password = password.to_owned();
    let password_hash = tokio::task::spawn_blocking(move || auth::hash_password(&password))
        .await
        .internal("hashing a password")?
        .internal("hashing a password")?;
    let user = users::ActiveModel {
        id: Set(Uuid::now_v7()),
        email: Set(email),
        display_name: Set(display_name),
        role: Set(role),
        password_hash: Set(password_hash),
        created_at: Set(Utc::now()),
    };
    Ok(user.insert(db).await?)
}

pub async fn create_user(
    app: &App,
    principal: &Principal,
    email: &str,
    password: &str,
    display_name: Option<String>,
    role: Role,
) -> ApiResult<users::Model> {
    authz::require(app, principal, Kind::User, Action::Create)?;
    insert_user(&app.db, email, password, display_name, role).await
}

pub async fn list_users(app: &App, principal: &Principal) -> ApiResult<Vec<users::Model>> {
    authz::require(app, principal, Kind::User, Action::List)?;
    Ok(users::Entity::find()
        .order_by_asc(users::Column::CreatedAt)
        .all(&app.read)
        .await?)
}

/// What first start did.
pub enum FirstStart {
    /// Users exist already.
    NotFirst,
    /// The configured admin was created.
    CreatedConfigured(String),
    /// `admin@localhost` was created with this random password.
    CreatedDefault { email: String, password: String },
}

/// Creates the first admin when the database has no users.
pub async fn bootstrap_admin(
    db: &DatabaseConnection,
    email: Option<&str>,
    password: Option<&str>,
) -> ApiResult<FirstStart> {
    if users::Entity::find().count(db).await? > 0 {
        return Ok(FirstStart::NotFirst);
    }
    match (email, password) {
        (Some(email), Some(password)) => {
            let user = insert_user(db, email, password, None, Role::Admin).await?;
            Ok(FirstStart::CreatedConfigured(user.email))
        }
        _ => {
            let password = auth::random_password();
            let user = insert_user(db, "admin@localhost", &password, None, Role::Admin).await?;
            Ok(FirstStart::CreatedDefault {
                email: user.email,
                password,
            })
        }
    }
}

pub async fn create_api_token(
    app: &App,
    principal: &Principal,
    name: &str,
    expires_in_days: Option<i32>,
) -> ApiResult<(String, api_tokens::Model)> {
    authz::require(app, principal, Kind::Token, Action::Create)?;
    let name = validation::name("name", name)?;
    let expires_at = match expires_in_days {
        None => None,
        Some(days) if (1..=3650).contains(&days) => {
            Some(Utc::now() + chrono::Duration::days(days as i64))
        }
        Some(days) => {
            return Err(ApiError::bad_input(format!(
                "expiresInDays must be between 1 and 3650, got {days}"
            )));
        }
    };
    let (token, prefix, token_hash) = auth::new_api_token();
    let row = api_tokens::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(principal.id()),
        name: Set(name),
        prefix: Set(prefix),
        token_hash: Set(token_hash),
        created_at: Set(Utc::now()),
        expires_at: Set(expires_at),
        last_used_at: Set(None),
        revoked_at: Set(None),
    }
    .insert(&app.db)
    .await?;
    Ok((token, row))
}

pub async fn api_tokens(app: &App, principal: &Principal) -> ApiResult<Vec<api_tokens::Model>> {
    Ok(api_tokens::Entity::find()
        .filter(api_tokens::Column::UserId.eq(principal.id()))
        .filter(api_tokens::Column::RevokedAt.is_null())
        .order_by_desc(api_tokens::Column::Id)
        .all(&app.read)
        .await?)
}

/// Revokes one of the caller's tokens (admins: anyone's).
pub async fn revoke_api_token(app: &App, principal: &Principal, id: Uuid) -> ApiResult<bool> {
    let Some(token) = api_tokens::Entity::find_by_id(id).one(&app.read).await? else {
        return Err(ApiError::not_found("API token"));
    };
    let grant = if token.user_id == principal.id() {
        playground_policies::Grant::Admin
    } else {
        playground_policies::Grant::None
    };
    authz::check(app, principal, Kind::Token, Action::Revoke, grant)?;
    if token.revoked_at.is_some() {
        return Ok(true);
    }
    let mut active: api_tokens::ActiveModel = token.into();
    active.revoked_at = Set(Some(Utc::now()));
    active.update(&app.db).await?;
    Ok(true)
}

pub async fn find_user(db: &DatabaseConnection, id: Uuid) -> ApiResult<users::Model> {
    users::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))
}
