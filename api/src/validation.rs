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
/// components, no backslashes or control characters (NUL included).
/// Files arrive as JSON content (text or base64), never as archives or
/// file-system entries, so a symlink, hard link or device file cannot be
/// uploaded: every path becomes a regular file the server writes itself.
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
            "a\0b",
            "\0",
            "..",
            ".",
            "a/..",
            "a/./b",
            "//server/share",
            "C:\\x",
            "\\\\server\\share",
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

    mod properties {
        //! Arbitrary input to every check: no panic, and what is accepted
        //! keeps the promised shape.

        use clap::Parser;
        use proptest::prelude::*;

        use super::super::*;

        #[derive(Parser)]
        struct LimitsOnly {
            #[command(flatten)]
            limits: Limits,
        }

        fn limits() -> Limits {
            LimitsOnly::parse_from(["test"]).limits
        }

        /// Text of the kind that breaks path and name checks: separators,
        /// dots, NUL and other control characters, non-ASCII, any length.
        fn hostile_text() -> impl Strategy<Value = String> {
            let pieces = prop_oneof![
                Just("..".to_owned()),
                Just(".".to_owned()),
                Just("/".to_owned()),
                Just("\\".to_owned()),
                Just("\0".to_owned()),
                Just("\n".to_owned()),
                Just(" ".to_owned()),
                Just("C:".to_owned()),
                Just("ü".to_owned()),
                Just("\u{202e}".to_owned()),
                Just("\u{fffd}".to_owned()),
                "[a-z]{1,8}",
            ];
            prop_oneof![
                4 => any::<String>(),
                4 => proptest::collection::vec(pieces, 0..24).prop_map(|p| p.concat()),
                2 => proptest::collection::vec(any::<u8>(), 0..512)
                    .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
                1 => "[a./]{1000,1100}",
                1 => (0usize..70_000).prop_map(|n| "x".repeat(n)),
            ]
        }

        fn assert_safe_path(accepted: &str) {
            assert!(!accepted.is_empty());
            assert!(accepted.len() <= MAX_PATH_BYTES, "{accepted:?}");
            assert!(!accepted.starts_with('/'), "{accepted:?}");
            assert!(!accepted.contains('\\'), "{accepted:?}");
            assert!(!accepted.contains('\0'), "{accepted:?}");
            assert!(!accepted.chars().any(char::is_control), "{accepted:?}");
            for component in accepted.split('/') {
                assert!(
                    !matches!(component, "" | "." | ".."),
                    "{accepted:?} has a {component:?} component"
                );
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            #[test]
            fn accepted_paths_stay_inside_the_program(value in hostile_text()) {
                if let Ok(accepted) = path(&value) {
                    prop_assert_eq!(&accepted, &value);
                    assert_safe_path(&accepted);
                }
            }

            #[test]
            fn paths_built_from_components(
                components in proptest::collection::vec(
                    prop_oneof![Just(".."), Just("."), Just(""), Just("a"), Just("b.py"), Just("a\\b"), Just("\0")],
                    1..8,
                ),
                absolute in any::<bool>(),
            ) {
                let value = format!("{}{}", if absolute { "/" } else { "" }, components.join("/"));
                let accepted = path(&value);
                let clean = !absolute
                    && components.iter().all(|c| matches!(*c, "a" | "b.py"));
                prop_assert_eq!(accepted.is_ok(), clean, "{:?}", value);
            }

            #[test]
            fn names_are_trimmed_bounded_and_nul_free(field in "[a-z]{0,10}", value in hostile_text()) {
                let _ = no_nul(&field, &value);
                if let Ok(accepted) = name(&field, &value) {
                    let n_chars = accepted.chars().count();
                    prop_assert!((1..=MAX_NAME_CHARS).contains(&n_chars));
                    prop_assert_eq!(accepted.trim(), accepted.as_str());
                    prop_assert!(!accepted.contains('\0'));
                }
                if let Ok(accepted) = description(Some(value.clone())) {
                    prop_assert!(!accepted.contains('\0'));
                    prop_assert!(accepted.chars().count() <= MAX_DESCRIPTION_CHARS);
                }
                let _ = password(&value);
            }

            #[test]
            fn tags_are_bounded_distinct_and_nul_free(
                values in proptest::option::of(proptest::collection::vec(hostile_text(), 0..30)),
            ) {
                if let Ok(accepted) = tags(values) {
                    prop_assert!(accepted.len() <= MAX_TAGS);
                    let distinct: HashSet<&String> = accepted.iter().collect();
                    prop_assert_eq!(distinct.len(), accepted.len());
                    for tag in &accepted {
                        prop_assert!((1..=MAX_TAG_CHARS).contains(&tag.chars().count()));
                        prop_assert!(!tag.contains('\0'));
                    }
                }
            }

            #[test]
            fn env_var_names_match_the_pattern(value in hostile_text()) {
                if let Ok(accepted) = env_var_name("env", &value) {
                    let mut chars = accepted.chars();
                    let first = chars.next().unwrap();
                    prop_assert!(first.is_ascii_alphabetic() || first == '_');
                    prop_assert!(chars.all(|c| c.is_ascii_alphanumeric() || c == '_'));
                    prop_assert!(accepted.len() <= 256);
                }
            }

            #[test]
            fn args_are_bounded_and_nul_free(
                values in proptest::option::of(proptest::collection::vec(hostile_text(), 0..40)),
            ) {
                if let Ok(accepted) = args(values) {
                    prop_assert!(accepted.len() <= MAX_ARGS);
                    for arg in &accepted {
                        prop_assert!(arg.len() <= MAX_ARG_BYTES && !arg.contains('\0'));
                    }
                }
            }

            #[test]
            fn emails_and_ids_never_panic(value in hostile_text()) {
                if let Ok(accepted) = email(&value) {
                    prop_assert_eq!(accepted.matches('@').count(), 1);
                    prop_assert!(!accepted.contains(char::is_whitespace));
                    prop_assert!(!accepted.contains('\0'));
                }
                if let Ok(uuid) = id("id", &value) {
                    prop_assert_eq!(Uuid::parse_str(&value).ok(), Some(uuid));
                }
            }

            #[test]
            fn file_sets_and_entrypoints(
                drafts in proptest::collection::vec(
                    (
                        hostile_text(),
                        proptest::option::of(".{0,64}"),
                        proptest::option::of(prop_oneof!["[A-Za-z0-9+/=]{0,64}", ".{0,32}"]),
                    ),
                    0..12,
                ),
                entry in hostile_text(),
            ) {
                let limits = limits();
                let drafts: Vec<FileDraft> = drafts
                    .into_iter()
                    .map(|(path, content, content_base64)| FileDraft { path, content, content_base64 })
                    .collect();
                if let Ok(checked) = files(drafts, &limits) {
                    prop_assert!(!checked.is_empty() && checked.len() <= limits.max_files);
                    let distinct: HashSet<&str> = checked.iter().map(|f| f.path.as_str()).collect();
                    prop_assert_eq!(distinct.len(), checked.len());
                    for file in &checked {
                        assert_safe_path(&file.path);
                    }
                    let paths = || checked.iter().map(|f| f.path.as_str());
                    if let Ok(accepted) = entrypoint(&entry, paths()) {
                        prop_assert!(paths().any(|p| p == accepted));
                    }
                    let first = checked[0].path.clone();
                    prop_assert_eq!(entrypoint(&first, paths()).ok(), Some(first));
                }
            }

            #[test]
            fn resources_are_positive_and_within_the_maxima(
                memory_mb in proptest::option::of(any::<i32>()),
                cpu_millis in proptest::option::of(any::<i32>()),
                timeout_seconds in proptest::option::of(any::<i32>()),
                max_log_bytes in proptest::option::of(any::<i32>()),
                pids in proptest::option::of(any::<i32>()),
            ) {
                let limits = limits();
                let draft = ResourceDraft { memory_mb, cpu_millis, timeout_seconds, max_log_bytes, pids };
                if let Ok(checked) = resources(draft, &limits) {
                    prop_assert!((1..=limits.max_memory_mb).contains(&checked.memory_mb));
                    prop_assert!((1..=limits.max_cpu_millis).contains(&checked.cpu_millis));
                    prop_assert!((1..=limits.max_timeout_seconds).contains(&checked.timeout_seconds));
                    prop_assert!((1..=limits.max_log_bytes).contains(&checked.max_log_bytes));
                    prop_assert!((1..=limits.max_pids).contains(&checked.pids));
                }
            }
        }
    }
}
