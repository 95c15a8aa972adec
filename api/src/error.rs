//! The one error type of the request path, and the one place that turns it
//! into a GraphQL error with `extensions.code`.

use async_graphql::ErrorExtensions;
use sea_orm::{DbErr, SqlErr};

/// An error a client sees. Messages say what to do; internal details are
/// logged, never sent.
#[derive(Debug)]
pub enum ApiError {
    Unauthenticated(String),
    Forbidden(String),
    NotFound(String),
    BadInput(String),
    Conflict(String),
    Unavailable(String),
    /// Too many attempts; `retry_after_seconds` goes to
    /// `extensions.retryAfterSeconds`.
    RateLimited {
        message: String,
        retry_after_seconds: u64,
    },
    /// Logged with its context; the client gets a generic message.
    Internal(anyhow::Error),
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthenticated(_) => "UNAUTHENTICATED",
            ApiError::Forbidden(_) => "FORBIDDEN",
            ApiError::NotFound(_) => "NOT_FOUND",
            ApiError::BadInput(_) => "BAD_USER_INPUT",
            ApiError::Conflict(_) => "CONFLICT",
            ApiError::Unavailable(_) => "UNAVAILABLE",
            ApiError::RateLimited { .. } => "RATE_LIMITED",
            ApiError::Internal(_) => "INTERNAL",
        }
    }

    pub fn message(&self) -> String {
        match self {
            ApiError::Unauthenticated(m)
            | ApiError::Forbidden(m)
            | ApiError::NotFound(m)
            | ApiError::BadInput(m)
            | ApiError::Conflict(m)
            | ApiError::Unavailable(m)
            | ApiError::RateLimited { message: m, .. } => m.clone(),
            ApiError::Internal(_) => {
                "internal error: the server could not complete the request; try again, and report it if it persists".to_owned()
            }
        }
    }

    pub fn bad_input(message: impl Into<String>) -> Self {
        ApiError::BadInput(message.into())
    }

    pub fn not_found(what: &str) -> Self {
        ApiError::NotFound(format!(
            "{what} not found: check the id, and that it was shared with you"
        ))
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        ApiError::Forbidden(message.into())
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        ApiError::Conflict(message.into())
    }

    pub fn unauthenticated(message: impl Into<String>) -> Self {
        ApiError::Unauthenticated(message.into())
    }

    pub fn internal(error: impl Into<anyhow::Error>) -> Self {
        ApiError::Internal(error.into())
    }
}

/// `Some` for a value, `None` for `NOT_FOUND`, other errors as they are.
pub fn found<T>(result: ApiResult<T>) -> ApiResult<Option<T>> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(ApiError::NotFound(_)) => Ok(None),
        Err(error) => Err(error),
    }
}

impl From<DbErr> for ApiError {
    fn from(error: DbErr) -> Self {
        if let Some(SqlErr::UniqueConstraintViolation(_)) = error.sql_err() {
            return ApiError::Conflict(
                "that already exists: pick another name or value".to_owned(),
            );
        }
        ApiError::Internal(anyhow::Error::new(error).context("database"))
    }
}

impl From<ApiError> for async_graphql::Error {
    fn from(error: ApiError) -> Self {
        if let ApiError::Internal(cause) = &error {
            tracing::error!(error = ?cause, "internal error");
        }
        let code = error.code();
        let retry_after = match &error {
            ApiError::RateLimited {
                retry_after_seconds,
                ..
            } => Some(*retry_after_seconds),
            _ => None,
        };
        async_graphql::Error::new(error.message()).extend_with(|_, e| {
            e.set("code", code);
            if let Some(seconds) = retry_after {
                e.set("retryAfterSeconds", seconds);
            }
        })
    }
}

/// Gives `extensions.code` to errors that async-graphql raises itself
/// (syntax errors, unknown fields, wrong variable types, depth and
/// complexity limits): they are all the client's input to fix.
pub fn with_default_code(mut error: async_graphql::ServerError) -> async_graphql::ServerError {
    let has_code = error
        .extensions
        .as_ref()
        .is_some_and(|e| e.get("code").is_some());
    if !has_code {
        let mut extensions = error.extensions.take().unwrap_or_default();
        extensions.set("code", "BAD_USER_INPUT");
        error.extensions = Some(extensions);
    }
    error
}

/// Wraps any error as an `ApiError::Internal` with context.
pub trait InternalContext<T> {
    fn internal(self, context: &'static str) -> ApiResult<T>;
}

impl<T, E: Into<anyhow::Error>> InternalContext<T> for Result<T, E> {
    fn internal(self, context: &'static str) -> ApiResult<T> {
        self.map_err(|e| ApiError::Internal(e.into().context(context)))
    }
}
