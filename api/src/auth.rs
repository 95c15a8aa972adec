//! Authentication: argon2id password hashes, session JWTs (HS256) and API
//! tokens, and turning an `Authorization` header into an [`Auth`].

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier, phc::PasswordHash};
use chrono::Utc;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use playground_entities::{Role, api_tokens, users};
use rand::distr::{Alphanumeric, SampleString};
use sea_orm::{ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, Set};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::error::{ApiError, ApiResult, InternalContext};

/// The prefix every API token starts with.
pub const API_TOKEN_PREFIX: &str = "pgt_";

/// A signed-in caller.
#[derive(Clone, Debug)]
pub struct Principal {
    pub user: users::Model,
}

impl Principal {
    pub fn id(&self) -> Uuid {
        self.user.id
    }

    pub fn role(&self) -> playground_policies::Role {
        match self.user.role {
            Role::Admin => playground_policies::Role::Admin,
            Role::Developer => playground_policies::Role::Developer,
            Role::Viewer => playground_policies::Role::Viewer,
        }
    }

    pub fn is_admin(&self) -> bool {
        self.user.role == Role::Admin
    }
}

/// Who is calling, as far as the request's credentials tell.
#[derive(Clone, Debug)]
pub enum Auth {
    /// No credentials were sent.
    Anonymous,
    User(Principal),
    /// Credentials were sent but are not valid; the reason says which.
    Invalid(String),
    /// The credentials could not be checked (the database failed).
    Unavailable,
}

impl Auth {
    /// The signed-in caller, or `UNAUTHENTICATED`.
    pub fn principal(&self) -> ApiResult<&Principal> {
        match self {
            Auth::User(principal) => Ok(principal),
            Auth::Anonymous => Err(ApiError::unauthenticated(
                "sign in first: send `Authorization: Bearer <token>` with a token from `login` or an API token",
            )),
            Auth::Invalid(reason) => Err(ApiError::unauthenticated(reason.clone())),
            Auth::Unavailable => Err(ApiError::Unavailable(
                "the server cannot check credentials right now; try again shortly".to_owned(),
            )),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    iat: i64,
    exp: i64,
}

/// Issues and checks session tokens and API tokens.
pub struct Authenticator {
    encoding_key: EncodingKey,
    decoding_key: DecodingKey,
    validation: Validation,
    expiry: Duration,
    /// Users recently read, so a burst of requests costs one lookup.
    users: std::sync::Mutex<HashMap<Uuid, (Instant, users::Model)>>,
}

/// How long a user read for a request is reused by the next ones. A change
/// to a user (its role) applies everywhere within this time.
const USER_TTL: Duration = Duration::from_secs(2);
/// Most users remembered at once.
const MAX_CACHED_USERS: usize = 10_000;

impl Authenticator {
    pub fn new(secret: &[u8], expiry: Duration) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Self {
            encoding_key: EncodingKey::from_secret(secret),
            decoding_key: DecodingKey::from_secret(secret),
            validation,
            expiry,
            users: Default::default(),
        }
    }

    /// A user by id, from the short-lived cache or the database.
    async fn user(&self, db: &DatabaseConnection, id: Uuid) -> ApiResult<Option<users::Model>> {
        if let Some((at, user)) = self.users.lock().expect("users lock").get(&id)
            && at.elapsed() < USER_TTL
        {
            return Ok(Some(user.clone()));
        }
        let user = users::Entity::find_by_id(id).one(db).await?;
        if let Some(user) = &user {
            let mut users = self.users.lock().expect("users lock");
            if users.len() >= MAX_CACHED_USERS {
                users.retain(|_, (at, _)| at.elapsed() < USER_TTL);
                if users.len() >= MAX_CACHED_USERS {
                    users.clear();
                }
            }
            users.insert(id, (Instant::now(), user.clone()));
        }
        Ok(user)
    }

    /// A session token for `user_id`.
    pub fn issue(&self, user_id: Uuid) -> ApiResult<String> {
        let now = Utc::now().timestamp();
        let claims = Claims {
            sub: user_id.to_string(),
            iat: now,
            exp: now + self.expiry.as_secs() as i64,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding_key)
            .internal("signing a session token")
    }

    /// Resolves an `Authorization` header value: lookups through `read`,
    /// the API token's last use through `write`.
    pub async fn authenticate(
        &self,
        read: &DatabaseConnection,
        write: &DatabaseConnection,
        header: Option<&str>,
    ) -> Auth {
        let Some(header) = header else {
            return Auth::Anonymous;
        };
        let Some(token) = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
        else {
            return Auth::Invalid(
                "malformed Authorization header: send `Authorization: Bearer <token>`".to_owned(),
            );
        };
        let result = if token.starts_with(API_TOKEN_PREFIX) {
            self.authenticate_api_token(read, write, token).await
        } else {
            self.authenticate_jwt(read, token).await
        };
        match result {
            Ok(Some(user)) => Auth::User(Principal { user }),
            Ok(None) => Auth::Invalid(
                "the token is not valid (unknown, revoked or for a deleted user): sign in again"
                    .to_owned(),
            ),
            Err(ApiError::Unauthenticated(reason)) => Auth::Invalid(reason),
            Err(ApiError::Internal(cause)) => {
                tracing::error!(error = ?cause, "checking credentials");
                Auth::Unavailable
            }
            Err(error) => Auth::Invalid(error.message()),
        }
    }

    async fn authenticate_jwt(
        &self,
        db: &DatabaseConnection,
        token: &str,
    ) -> ApiResult<Option<users::Model>> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding_key, &self.validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                    ApiError::unauthenticated("the session token has expired: sign in again")
                }
                _ => ApiError::unauthenticated(
                    "the session token is not valid: sign in again with `login`",
                ),
            })?;
        let Ok(user_id) = Uuid::parse_str(&data.claims.sub) else {
            return Ok(None);
        };
        self.user(db, user_id).await
    }

    async fn authenticate_api_token(
        &self,
        db: &DatabaseConnection,
        write: &DatabaseConnection,
        token: &str,
    ) -> ApiResult<Option<users::Model>> {
        let Some(prefix) = api_token_prefix(token) else {
            return Ok(None);
        };
        let Some(row) = api_tokens::Entity::find()
            .filter(api_tokens::Column::Prefix.eq(prefix))
            .one(db)
            .await?
        else {
            return Ok(None);
        };
        if !constant_time_eq(row.token_hash.as_bytes(), hash_api_token(token).as_bytes()) {
            return Ok(None);
        }
        if row.revoked_at.is_some() {
            return Err(ApiError::unauthenticated(
                "this API token was revoked: create a new one",
            ));
        }
        let now = Utc::now();
        if row.expires_at.is_some_and(|at| at <= now) {
            return Err(ApiError::unauthenticated(
                "this API token has expired: create a new one",
            ));
        }
        // Record use, at most once a minute, to keep reads cheap.
        if row
            .last_used_at
            .is_none_or(|at| now - at > chrono::Duration::seconds(60))
        {
            let user_id = row.user_id;
            let mut active: api_tokens::ActiveModel = row.into();
            active.last_used_at = Set(Some(now));
            active.update(write).await?;
            return self.user(db, user_id).await;
        }
        self.user(db, row.user_id).await
    }
}

/// A new API token: (full token shown once, public prefix, stored hash).
pub fn new_api_token() -> (String, String, String) {
    let mut rng = rand::rng();
    let prefix = format!(
        "{API_TOKEN_PREFIX}{}",
        Alphanumeric.sample_string(&mut rng, 8)
    );
    let secret = Alphanumeric.sample_string(&mut rng, 40);
    let token = format!("{prefix}_{secret}");
    let hash = hash_api_token(&token);
    (token, prefix, hash)
}

fn api_token_prefix(token: &str) -> Option<&str> {
    let rest = token.strip_prefix(API_TOKEN_PREFIX)?;
    let end = rest.find('_')?;
    Some(&token[..API_TOKEN_PREFIX.len() + end])
}

fn hash_api_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// An argon2id hash of `password` in PHC string form.
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let hash = Argon2::default()
        .hash_password(password.as_bytes())
        .map_err(|e| anyhow::anyhow!("hashing a password: {e}"))?;
    Ok(hash.to_string())
}

/// Whether `password` matches the stored `hash`.
pub fn verify_password(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A password hash that matches nothing, verified against when the email is
/// unknown so that a wrong email takes as long as a wrong password.
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password("decoy-password-never-matches").unwrap_or_default())
}

/// A random password for the first-start admin.
pub fn random_password() -> String {
    Alphanumeric.sample_string(&mut rand::rng(), 24)
}

/// Reads a secret kept in the data directory, generating it (mode 0600) the
/// first time.
pub fn load_or_create_secret(path: &Path) -> anyhow::Result<Vec<u8>> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::read(path) {
        Ok(bytes) if !bytes.is_empty() => return Ok(bytes),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    }
    let secret = Alphanumeric.sample_string(&mut rand::rng(), 64);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(secret.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(secret.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_tokens_carry_their_prefix() {
        let (token, prefix, hash) = new_api_token();
        assert!(token.starts_with(&prefix));
        assert_eq!(api_token_prefix(&token), Some(prefix.as_str()));
        assert_eq!(hash, hash_api_token(&token));
        assert_eq!(prefix.len(), API_TOKEN_PREFIX.len() + 8);
    }

    #[test]
    fn passwords_verify_only_themselves() {
        let hash = hash_password("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password(&hash, "correct horse"));
        assert!(!verify_password(&hash, "wrong horse"));
        assert!(!verify_password("not a hash", "correct horse"));
    }

    #[test]
    fn session_tokens_round_trip_and_reject_other_secrets() {
        let issuer = Authenticator::new(b"one", Duration::from_secs(60));
        let other = Authenticator::new(b"two", Duration::from_secs(60));
        let token = issuer.issue(Uuid::nil()).unwrap();
        assert!(
            jsonwebtoken::decode::<Claims>(&token, &issuer.decoding_key, &issuer.validation)
                .is_ok()
        );
        assert!(
            jsonwebtoken::decode::<Claims>(&token, &other.decoding_key, &other.validation).is_err()
        );
    }
}
