//! `DockerConfig`: the settings of a DOCKER environment, validated purely.

use playground_executors::{ConfigError, EnvironmentSpec, parse_config};
use serde::Deserialize;

/// The user programs run as unless an environment names another.
pub const DEFAULT_USER: &str = "65534:65534";

/// The size of the writable `/tmp` unless an environment names another.
pub const DEFAULT_TMP_SIZE_MB: u32 = 64;

/// The largest `/tmp` an environment may ask for.
pub const MAX_TMP_SIZE_MB: u32 = 4096;

/// How the dependency layer installs `requirements.txt`, which is copied
/// with the program's wheel and sdist files into `/deps`.
pub const DEFAULT_INSTALL_COMMAND: &str =
    "python3 -m pip install --no-cache-dir --no-index --find-links /deps -r /deps/requirements.txt";

/// A DOCKER environment's `config`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DockerConfig {
    /// `uid[:gid]` the program runs as; numeric and never root.
    #[serde(default = "default_user")]
    pub user: String,
    /// When the engine pulls the environment's image.
    #[serde(default)]
    pub pull_policy: PullPolicy,
    /// Size of the writable tmpfs at `/tmp`, in MB.
    #[serde(default = "default_tmp_size_mb")]
    pub tmp_size_mb: u32,
    /// Shell command that installs `/deps/requirements.txt` into the
    /// dependency layer of PYTHON programs (run as root, without network).
    #[serde(default = "default_install_command")]
    pub install_command: String,
}

/// When the image is pulled from its registry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PullPolicy {
    /// Pull only when the engine does not have the image.
    #[default]
    IfNotPresent,
    /// Pull at every prepare and launch.
    Always,
    /// Never pull: the image must already be on the engine.
    Never,
}

impl Default for DockerConfig {
    fn default() -> Self {
        Self {
            user: default_user(),
            pull_policy: PullPolicy::default(),
            tmp_size_mb: DEFAULT_TMP_SIZE_MB,
            install_command: default_install_command(),
        }
    }
}

fn default_user() -> String {
    DEFAULT_USER.to_owned()
}

fn default_tmp_size_mb() -> u32 {
    DEFAULT_TMP_SIZE_MB
}

fn default_install_command() -> String {
    DEFAULT_INSTALL_COMMAND.to_owned()
}

impl DockerConfig {
    /// Checks a whole environment: an image, a valid config object.
    pub fn from_environment(environment: &EnvironmentSpec) -> Result<Self, ConfigError> {
        image_of(environment)?;
        let config: DockerConfig = parse_config(&environment.config)?;
        check_user(&config.user)?;
        if !(1..=MAX_TMP_SIZE_MB).contains(&config.tmp_size_mb) {
            return Err(ConfigError::new(format!(
                "config: tmpSizeMb must be between 1 and {MAX_TMP_SIZE_MB}, got {}",
                config.tmp_size_mb
            )));
        }
        if config.install_command.trim().is_empty() {
            return Err(ConfigError::new(
                "config: installCommand must be a shell command, not empty",
            ));
        }
        if config.install_command.contains(['\n', '\r']) {
            return Err(ConfigError::new(
                "config: installCommand must be one line (join commands with &&)",
            ));
        }
        Ok(config)
    }
}

/// The environment's image, trimmed; required for DOCKER.
pub(crate) fn image_of(environment: &EnvironmentSpec) -> Result<&str, ConfigError> {
    match environment.image.as_deref().map(str::trim) {
        None | Some("") => Err(ConfigError::new(
            "image is required for DOCKER environments: name a container image such as \"python:3.12-slim\"",
        )),
        Some(image) if image.contains(char::is_whitespace) => Err(ConfigError::new(format!(
            "image: {image:?} is not an image reference (it contains white space)"
        ))),
        Some(image) => Ok(image),
    }
}

/// `uid[:gid]`, both numeric, neither 0.
fn check_user(user: &str) -> Result<(), ConfigError> {
    let invalid = || {
        ConfigError::new(format!(
            "config: user must be a numeric uid[:gid] such as \"{DEFAULT_USER}\", got {user:?}"
        ))
    };
    let (uid, gid) = match user.split_once(':') {
        Some((uid, gid)) => (uid, Some(gid)),
        None => (user, None),
    };
    let ids = std::iter::once(uid).chain(gid);
    let mut any_root = false;
    for id in ids {
        if id == "root" {
            any_root = true;
            continue;
        }
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        let value: u64 = id.parse().map_err(|_| invalid())?;
        if value > u64::from(u32::MAX) {
            return Err(invalid());
        }
        any_root |= value == 0;
    }
    if any_root {
        return Err(ConfigError::new(format!(
            "config: user must not be root (uid or gid 0): programs run as an unprivileged user such as \"{DEFAULT_USER}\", got {user:?}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use playground_executors::{ExecutorKind, Resources};
    use serde_json::json;

    use super::*;

    fn environment(image: Option<&str>, config: serde_json::Value) -> EnvironmentSpec {
        EnvironmentSpec {
            id: "env".to_owned(),
            kind: ExecutorKind::Docker,
            image: image.map(str::to_owned),
            resources: Resources {
                memory_mb: 256,
                cpu_millis: 1000,
                timeout: Duration::from_secs(60),
                max_log_bytes: 1_000_000,
                pids: 64,
            },
            config,
        }
    }

    fn error(image: Option<&str>, config: serde_json::Value) -> String {
        DockerConfig::from_environment(&environment(image, config))
            .unwrap_err()
            .message
    }

    #[test]
    fn defaults_apply_to_an_empty_config() {
        let config =
            DockerConfig::from_environment(&environment(Some("python:3.12"), json!(null))).unwrap();
        assert_eq!(config, DockerConfig::default());
        assert_eq!(config.user, "65534:65534");
        assert_eq!(config.pull_policy, PullPolicy::IfNotPresent);
        assert_eq!(config.tmp_size_mb, 64);
    }

    #[test]
    fn every_field_is_read() {
        let config = DockerConfig::from_environment(&environment(
            Some("python:3.12"),
            json!({"user": "1000:1000", "pullPolicy": "NEVER", "tmpSizeMb": 128, "installCommand": "pip install -r /deps/requirements.txt"}),
        ))
        .unwrap();
        assert_eq!(config.user, "1000:1000");
        assert_eq!(config.pull_policy, PullPolicy::Never);
        assert_eq!(config.tmp_size_mb, 128);
        assert_eq!(
            config.install_command,
            "pip install -r /deps/requirements.txt"
        );
        let config = DockerConfig::from_environment(&environment(
            Some("x"),
            json!({"pullPolicy": "ALWAYS"}),
        ))
        .unwrap();
        assert_eq!(config.pull_policy, PullPolicy::Always);
    }

    #[test]
    fn image_is_required() {
        for image in [None, Some(""), Some("  ")] {
            let message = error(image, json!({}));
            assert!(message.contains("image is required"), "{message}");
        }
        assert!(error(Some("python 3"), json!({})).contains("image"));
    }

    #[test]
    fn unknown_fields_are_named() {
        let message = error(Some("x"), json!({"privileged": true}));
        assert!(message.contains("privileged"), "{message}");
    }

    #[test]
    fn root_users_are_rejected_naming_user() {
        for user in ["0", "root", "0:0", "1000:0", "root:1000", "0:65534"] {
            let message = error(Some("x"), json!({ "user": user }));
            assert!(
                message.contains("user") && message.contains("root"),
                "{user}: {message}"
            );
        }
    }

    #[test]
    fn malformed_users_are_rejected_naming_user() {
        for user in ["", "nobody", "1000:", ":1000", "-1", "1:2:3", "99999999999"] {
            let message = error(Some("x"), json!({ "user": user }));
            assert!(message.contains("user"), "{user}: {message}");
        }
        let message = error(Some("x"), json!({ "user": 1000 }));
        assert!(message.contains("config"), "{message}");
    }

    #[test]
    fn unknown_pull_policies_are_rejected() {
        let message = error(Some("x"), json!({"pullPolicy": "SOMETIMES"}));
        assert!(message.contains("SOMETIMES"), "{message}");
    }

    #[test]
    fn tmp_size_is_bounded() {
        for size in [json!(0), json!(4097), json!(-1), json!("big")] {
            let message = error(Some("x"), json!({ "tmpSizeMb": size }));
            assert!(message.contains("config"), "{size}: {message}");
        }
        assert!(error(Some("x"), json!({"tmpSizeMb": 0})).contains("tmpSizeMb"));
    }

    #[test]
    fn install_command_must_be_one_nonempty_line() {
        let message = error(Some("x"), json!({"installCommand": " "}));
        assert!(message.contains("installCommand"), "{message}");
        let message = error(
            Some("x"),
            json!({"installCommand": "pip install x\nUSER root"}),
        );
        assert!(message.contains("installCommand"), "{message}");
    }
}
