//! Pure checks of user input. Each error names the field and says what to
//! change; nothing here touches the database.

use std::collections::HashSet;

use base64::Engine;
use bytes::Bytes;
use uuid::Uuid;

use crate::config::{Limits, resource_defaults};
use crate::error::{ApiError, ApiResult};

pub const MAX_NAME_CHARS: usize = 100;
pub const MAX_DESCRIPTION_CHARS: usize = 10_000;
pub const MAX_TAGS: usize = 20;
pub const MAX_TAG_CHARS: usize = 50;
pub const MAX_PATH_BYTES: usize = 1024;
pub const MAX_ARGS: usize = 1000;
pub const MAX_ARG_BYTES: usize = 64 * 1024;
pub const MAX_ENV_VARS: usize = 200;
pub const MAX_EMAIL_CHARS: usize = 320;
pub const MIN_PASSWORD_CHARS: usize = 8;

/// A file as it arrives in a request.
pub struct FileDraft {
    pub path: String,
    pub content: Option<String>,
    pub content_base64: Option<String>,
}

/// A checked file, decoded.
pub struct CheckedFile {
    pub path: String,
    pub content: Bytes,
}

/// Text without NUL characters (neither database stores them the same
/// way, PostgreSQL not at all).
pub fn no_nul<'a>(field: &str, value: &'a str) -> ApiResult<&'a str> {
    if value.contains('\0') {
        return Err(ApiError::bad_input(format!(
            "{field} contains a NUL character (U+0000); remove it"
        )));
    }
    Ok(value)
}

/// A name: 1 to 100 characters after trimming.
pub fn name(field: &str, value: &str) -> ApiResult<String> {
    let trimmed = no_nul(field, value)?.trim();
    let n_chars = trimmed.chars().count();
    if n_chars == 0 {
        return Err(ApiError::bad_input(format!("{field} must not be empty")));
    }
    if n_chars > MAX_NAME_CHARS {
        return Err(ApiError::bad_input(format!(
            "{field} is {n_chars} characters long; use at most {MAX_NAME_CHARS}"
        )));
    }
    Ok(trimmed.to_owned())
}

pub fn description(value: Option<String>) -> ApiResult<String> {
    let value = value.unwrap_or_default();
    no_nul("description", &value)?;
    if value.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(ApiError::bad_input(format!(
            "description is too long; use at most {MAX_DESCRIPTION_CHARS} characters"
        )));
    }
    Ok(value)
}

/// Tags: at most 20, each 1–50 characters; duplicates are folded.
pub fn tags(values: Option<Vec<String>>) -> ApiResult<Vec<String>> {
    let values = values.unwrap_or_default();
    if values.len() > MAX_TAGS {
        return Err(ApiError::bad_input(format!(
            "tags has {} entries; use at most {MAX_TAGS}",
            values.len()
        )));
    }
    let mut seen = HashSet::new();
    let mut tags = Vec::with_capacity(values.len());
    for value in values {
        let tag = no_nul("tags", &value)?.trim().to_owned();
        let n_chars = tag.chars().count();
        if n_chars == 0 || n_chars > MAX_TAG_CHARS {
            return Err(ApiError::bad_input(format!(
                "tags: each tag must be 1 to {MAX_TAG_CHARS} characters, got {value:?}"
            )));
        }
        if seen.insert(tag.clone()) {
            tags.push(tag);
        }
    }
    Ok(tags)
}

/// A program file path: relative, `/`-separated, no `.`/`..` or empty
/// components, no backslashes or control characters.
pub fn path(value: &str) -> ApiResult<String> {
    let bad = |why: &str| {
        ApiError::bad_input(format!(
            "files: path {value:?} {why}; use a relative path like \"src/main.py\""
        ))
    };
    if value.is_empty() {
        return Err(bad("is empty"));
    }
    if value.len() > MAX_PATH_BYTES {
        return Err(bad("is too long"));
    }
    if value.starts_with('/') {
        return Err(bad("is absolute"));
    }
    if value.contains('\\') {
        return Err(bad("contains a backslash"));
    }
    if value.chars().any(char::is_control) {
        return Err(bad("contains a control character"));
    }
    for component in value.split('/') {
        match component {
            "" => return Err(bad("has an empty component")),
            "." | ".." => return Err(bad("contains a '.' or '..' component")),
            _ => {}
        }
    }
    Ok(value.to_owned())
}

/// A program's file set: paths valid and distinct, exactly one of
/// `content`/`contentBase64` each, within the count and size limits.
pub fn files(drafts: Vec<FileDraft>, limits: &Limits) -> ApiResult<Vec<CheckedFile>> {
    if drafts.is_empty() {
        return Err(ApiError::bad_input(
            "files must contain at least one file (the entrypoint)",
        ));
    }
    if drafts.len() > limits.max_files {
        return Err(ApiError::bad_input(format!(
            "files has {} entries; a program may have at most {}",
            drafts.len(),
            limits.max_files
        )));
    }
    let mut seen = HashSet::new();
    let mut total: u64 = 0;
    let mut checked = Vec::with_capacity(drafts.len());
    for draft in drafts {
        let path = path(&draft.path)?;
        if !seen.insert(path.clone()) {
            return Err(ApiError::bad_input(format!(
                "files: path {path:?} appears more than once"
            )));
        }
        let content = match (draft.content, draft.content_base64) {
            (Some(text), None) => Bytes::from(text),
            (None, Some(encoded)) => Bytes::from(
                base64::engine::general_purpose::STANDARD
                    .decode(encoded.trim())
                    .map_err(|e| {
                        ApiError::bad_input(format!(
                            "files: contentBase64 of {path:?} is not valid base64 ({e})"
                        ))
                    })?,
            ),
            _ => {
                return Err(ApiError::bad_input(format!(
                    "files: give exactly one of content or contentBase64 for {path:?}"
                )));
            }
        };
        total += content.len() as u64;
        if total > limits.max_program_bytes {
            return Err(ApiError::bad_input(format!(
                "files add up to more than {} bytes, the most a program may hold",
                limits.max_program_bytes
            )));
        }
        checked.push(CheckedFile { path, content });
    }
    Ok(checked)
}

/// The entrypoint must be one of the program's files.
pub fn entrypoint<'a>(value: &str, mut paths: impl Iterator<Item = &'a str>) -> ApiResult<String> {
    if paths.any(|p| p == value) {
        Ok(value.to_owned())
    } else {
        Err(ApiError::bad_input(format!(
            "entrypoint {value:?} is not among the program's files; name one of the file paths"
        )))
    }
}

/// Requested resources, each optional.
#[derive(Default)]
pub struct ResourceDraft {
    pub memory_mb: Option<i32>,
    pub cpu_millis: Option<i32>,
    pub timeout_seconds: Option<i32>,
    pub max_log_bytes: Option<i32>,
    pub pids: Option<i32>,
}

/// Checked resources: every value positive and within the server's maxima.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckedResources {
    pub memory_mb: i32,
    pub cpu_millis: i32,
    pub timeout_seconds: i32,
    pub max_log_bytes: i32,
    pub pids: i32,
}

pub fn resources(draft: ResourceDraft, limits: &Limits) -> ApiResult<CheckedResources> {
    fn one(field: &str, value: Option<i32>, default: i32, max: i32) -> ApiResult<i32> {
        let value = value.unwrap_or(default);
        if value <= 0 {
            return Err(ApiError::bad_input(format!(
                "resources.{field} must be positive, got {value}"
            )));
        }
        if value > max {
            return Err(ApiError::bad_input(format!(
                "resources.{field} is {value}; this server allows at most {max}"
            )));
        }
        Ok(value)
    }
    Ok(CheckedResources {
        memory_mb: one(
            "memoryMb",
            draft.memory_mb,
            resource_defaults::MEMORY_MB,
            limits.max_memory_mb,
        )?,
        cpu_millis: one(
            "cpuMillis",
            draft.cpu_millis,
            resource_defaults::CPU_MILLIS,
            limits.max_cpu_millis,
        )?,
        timeout_seconds: one(
            "timeoutSeconds",
            draft.timeout_seconds,
            resource_defaults::TIMEOUT_SECONDS,
            limits.max_timeout_seconds,
        )?,
        max_log_bytes: one(
            "maxLogBytes",
            draft.max_log_bytes,
            resource_defaults::MAX_LOG_BYTES,
            limits.max_log_bytes,
        )?,
        pids: one("pids", draft.pids, resource_defaults::PIDS, limits.max_pids)?,
    })
}

/// An environment variable name: `[A-Za-z_][A-Za-z0-9_]*`.
pub fn env_var_name(field: &str, value: &str) -> ApiResult<String> {
    let mut chars = value.chars();
    let valid = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && value.len() <= 256;
    if valid {
        Ok(value.to_owned())
    } else {
        Err(ApiError::bad_input(format!(
            "{field}: {value:?} is not a valid environment variable name; use letters, digits and '_', not starting with a digit"
        )))
    }
}

/// Run arguments: at most 1,000, each at most 64 KiB.
pub fn args(values: Option<Vec<String>>) -> ApiResult<Vec<String>> {
    let values = values.unwrap_or_default();
    if values.len() > MAX_ARGS {
        return Err(ApiError::bad_input(format!(
            "args has {} entries; use at most {MAX_ARGS}",
            values.len()
        )));
    }
    if values
        .iter()
        .any(|a| a.len() > MAX_ARG_BYTES || a.contains('\0'))
    {
        return Err(ApiError::bad_input(format!(
            "args: each argument must be at most {MAX_ARG_BYTES} bytes with no NUL character"
        )));
    }
    Ok(values)
}

/// An email address, lower-cased: something@something, no spaces.
pub fn email(value: &str) -> ApiResult<String> {
    let value = no_nul("email", value)?.trim().to_lowercase();
    let valid = value.len() <= MAX_EMAIL_CHARS
        && !value.contains(char::is_whitespace)
        && value.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && !domain.is_empty() && !domain.contains('@')
        });
    if valid {
        Ok(value)
    } else {
        Err(ApiError::bad_input(format!(
            "email {value:?} is not an email address like name@example.com"
        )))
    }
}

pub fn password(value: &str) -> ApiResult<()> {
    if value.chars().count() < MIN_PASSWORD_CHARS {
        return Err(ApiError::bad_input(format!(
            "password must be at least {MIN_PASSWORD_CHARS} characters long"
        )));
    }
    Ok(())
}

/// An object id as the API shows it (a UUID).
pub fn id(field: &str, value: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(value).map_err(|_| {
        ApiError::bad_input(format!(
            "{field} {value:?} is not a valid id; use an id returned by the API"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_must_stay_inside_the_program() {
        assert!(path("main.py").is_ok());
        assert!(path("src/lib/util.py").is_ok());
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../b",
            "a//b",
            "./a",
            "a\\b",
            "a/",
            "a\nb",
        ] {
            assert!(path(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(name("name", "  hi ").unwrap(), "hi");
        assert!(name("name", "   ").is_err());
        assert!(name("name", &"x".repeat(100)).is_ok());
        assert!(name("name", &"x".repeat(101)).is_err());
    }

    #[test]
    fn env_var_names() {
        assert!(env_var_name("env", "PATH").is_ok());
        assert!(env_var_name("env", "_x1").is_ok());
        for bad in ["", "1A", "A-B", "A B", "É"] {
            assert!(env_var_name("env", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn emails() {
        assert_eq!(email(" Ada@Example.com ").unwrap(), "ada@example.com");
        for bad in ["", "ada", "@x", "a@", "a b@c", "a@b@c"] {
            assert!(email(bad).is_err(), "{bad:?}");
        }
    }
}
