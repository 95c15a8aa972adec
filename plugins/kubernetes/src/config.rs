//! `KubernetesConfig`: the settings of a KUBERNETES environment, validated
//! purely. Every rejection names the field (type errors included: each
//! field's deserializer prefixes its name).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Toleration;
use playground_executors::{ConfigError, EnvironmentSpec, parse_config};
use serde::{Deserialize, Deserializer};

/// The namespace runs go to unless an environment names another.
pub const DEFAULT_NAMESPACE: &str = "default";

/// How long a finished Job stays (seconds) unless an environment says.
pub const DEFAULT_TTL_SECONDS_AFTER_FINISHED: u32 = 300;

/// The longest `ttlSecondsAfterFinished` an environment may ask for (a
/// week): the server removes Jobs once their output is stored, the TTL
/// only catches what a stopped server left.
pub const MAX_TTL_SECONDS_AFTER_FINISHED: u32 = 7 * 24 * 3600;

/// A KUBERNETES environment's `config`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KubernetesConfig {
    /// The namespace of the run's Job, ConfigMap, Secret and the
    /// NetworkPolicy that denies their egress (a DNS-1123 label).
    #[serde(default = "default_namespace", deserialize_with = "de_namespace")]
    pub namespace: String,
    /// The service account the pod runs as (its token is never mounted).
    #[serde(default, deserialize_with = "de_service_account_name")]
    pub service_account_name: Option<String>,
    /// Node labels the pod must be scheduled on.
    #[serde(default, deserialize_with = "de_node_selector")]
    pub node_selector: BTreeMap<String, String>,
    /// Taints the pod tolerates, as Kubernetes `Toleration` objects.
    #[serde(default, deserialize_with = "de_tolerations")]
    pub tolerations: Vec<Toleration>,
    /// Names of Secrets (in `namespace`) to pull the image with.
    #[serde(default, deserialize_with = "de_image_pull_secrets")]
    pub image_pull_secrets: Vec<String>,
    /// How long Kubernetes keeps a finished Job before deleting it.
    #[serde(
        default = "default_ttl",
        deserialize_with = "de_ttl_seconds_after_finished"
    )]
    pub ttl_seconds_after_finished: u32,
}

impl Default for KubernetesConfig {
    fn default() -> Self {
        Self {
            namespace: default_namespace(),
            service_account_name: None,
            node_selector: BTreeMap::new(),
            tolerations: Vec::new(),
            image_pull_secrets: Vec::new(),
            ttl_seconds_after_finished: DEFAULT_TTL_SECONDS_AFTER_FINISHED,
        }
    }
}

fn default_namespace() -> String {
    DEFAULT_NAMESPACE.to_owned()
}

fn default_ttl() -> u32 {
    DEFAULT_TTL_SECONDS_AFTER_FINISHED
}

/// Deserializes one field, naming it in any error.
fn named<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    field: &str,
    deserializer: D,
) -> Result<T, D::Error> {
    T::deserialize(deserializer).map_err(|e| serde::de::Error::custom(format!("{field}: {e}")))
}

macro_rules! named_field {
    ($fn_name:ident, $field:literal, $type:ty) => {
        fn $fn_name<'de, D: Deserializer<'de>>(deserializer: D) -> Result<$type, D::Error> {
            named($field, deserializer)
        }
    };
}

named_field!(de_namespace, "namespace", String);
named_field!(
    de_service_account_name,
    "serviceAccountName",
    Option<String>
);
named_field!(de_node_selector, "nodeSelector", BTreeMap<String, String>);
named_field!(de_tolerations, "tolerations", Vec<Toleration>);
named_field!(de_image_pull_secrets, "imagePullSecrets", Vec<String>);
named_field!(
    de_ttl_seconds_after_finished,
    "ttlSecondsAfterFinished",
    u32
);

impl KubernetesConfig {
    /// Checks a whole environment: an image, a valid config object.
    pub fn from_environment(environment: &EnvironmentSpec) -> Result<Self, ConfigError> {
        image_of(environment)?;
        let config: KubernetesConfig = parse_config(&environment.config)?;
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), ConfigError> {
        if !is_dns_label(&self.namespace) {
            return Err(field_error(
                "namespace",
                format!(
                    "must be a Kubernetes namespace name (lower-case letters, digits and '-', at most 63 characters, starting and ending with a letter or digit), got {:?}",
                    self.namespace
                ),
            ));
        }
        if let Some(name) = &self.service_account_name
            && !is_dns_subdomain(name)
        {
            return Err(field_error(
                "serviceAccountName",
                format!("must be a Kubernetes object name, got {name:?}"),
            ));
        }
        for (key, value) in &self.node_selector {
            if !is_label_key(key) {
                return Err(field_error(
                    "nodeSelector",
                    format!("{key:?} is not a Kubernetes label key"),
                ));
            }
            if !is_label_value(value) {
                return Err(field_error(
                    "nodeSelector",
                    format!("the value {value:?} of {key:?} is not a Kubernetes label value"),
                ));
            }
        }
        for (idx, toleration) in self.tolerations.iter().enumerate() {
            check_toleration(idx, toleration)?;
        }
        for (idx, name) in self.image_pull_secrets.iter().enumerate() {
            if !is_dns_subdomain(name) {
                return Err(field_error(
                    &format!("imagePullSecrets[{idx}]"),
                    format!("must be the name of a Secret, got {name:?}"),
                ));
            }
        }
        if self.ttl_seconds_after_finished > MAX_TTL_SECONDS_AFTER_FINISHED {
            return Err(field_error(
                "ttlSecondsAfterFinished",
                format!(
                    "must be at most {MAX_TTL_SECONDS_AFTER_FINISHED} (a week), got {}",
                    self.ttl_seconds_after_finished
                ),
            ));
        }
        Ok(())
    }
}

fn check_toleration(idx: usize, toleration: &Toleration) -> Result<(), ConfigError> {
    let field = |name: &str| format!("tolerations[{idx}].{name}");
    let operator = toleration.operator.as_deref().unwrap_or("Equal");
    match operator {
        "Equal" => {}
        "Exists" => {
            if toleration.value.as_deref().is_some_and(|v| !v.is_empty()) {
                return Err(field_error(
                    &field("value"),
                    "must be empty when the operator is Exists".to_owned(),
                ));
            }
        }
        other => {
            return Err(field_error(
                &field("operator"),
                format!("must be Equal or Exists, got {other:?}"),
            ));
        }
    }
    if let Some(key) = toleration.key.as_deref()
        && !key.is_empty()
        && !is_label_key(key)
    {
        return Err(field_error(
            &field("key"),
            format!("{key:?} is not a Kubernetes label key"),
        ));
    }
    if toleration.key.as_deref().unwrap_or("").is_empty() && operator != "Exists" {
        return Err(field_error(
            &field("operator"),
            "must be Exists when the key is empty".to_owned(),
        ));
    }
    match toleration.effect.as_deref().unwrap_or("") {
        "" | "NoSchedule" | "PreferNoSchedule" | "NoExecute" => {}
        other => {
            return Err(field_error(
                &field("effect"),
                format!("must be NoSchedule, PreferNoSchedule or NoExecute, got {other:?}"),
            ));
        }
    }
    if toleration.toleration_seconds.is_some() && toleration.effect.as_deref() != Some("NoExecute")
    {
        return Err(field_error(
            &field("tolerationSeconds"),
            "is only allowed with the effect NoExecute".to_owned(),
        ));
    }
    Ok(())
}

fn field_error(field: &str, problem: String) -> ConfigError {
    ConfigError::new(format!("config: {field} {problem}"))
}

/// The environment's image, trimmed; required for KUBERNETES.
pub(crate) fn image_of(environment: &EnvironmentSpec) -> Result<&str, ConfigError> {
    match environment.image.as_deref().map(str::trim) {
        None | Some("") => Err(ConfigError::new(
            "image is required for KUBERNETES environments: name a container image such as \"python:3.12-slim\"",
        )),
        Some(image) if image.contains(char::is_whitespace) => Err(ConfigError::new(format!(
            "image: {image:?} is not an image reference (it contains white space)"
        ))),
        Some(image) => Ok(image),
    }
}

/// A DNS-1123 label: what namespaces (and Job names) must be.
pub(crate) fn is_dns_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// A DNS-1123 subdomain: what most object names must be.
pub(crate) fn is_dns_subdomain(name: &str) -> bool {
    name.len() <= 253
        && name.split('.').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        })
}

/// A label value: at most 63 characters, alphanumerics with `-_.` inside.
pub(crate) fn is_label_value(value: &str) -> bool {
    value.is_empty()
        || (value.len() <= 63
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            && value.as_bytes()[0].is_ascii_alphanumeric()
            && value.as_bytes()[value.len() - 1].is_ascii_alphanumeric())
}

/// A label key: `[prefix/]name`, the prefix a DNS subdomain.
pub(crate) fn is_label_key(key: &str) -> bool {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    prefix.is_none_or(is_dns_subdomain) && !name.is_empty() && is_label_value(name)
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
            kind: ExecutorKind::Kubernetes,
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

    fn error(config: serde_json::Value) -> String {
        KubernetesConfig::from_environment(&environment(Some("busybox"), config))
            .unwrap_err()
            .message
    }

    #[test]
    fn defaults_apply_to_an_empty_config() {
        let config =
            KubernetesConfig::from_environment(&environment(Some("busybox"), json!(null))).unwrap();
        assert_eq!(config, KubernetesConfig::default());
        assert_eq!(config.namespace, "default");
        assert_eq!(config.ttl_seconds_after_finished, 300);
    }

    #[test]
    fn every_field_is_read() {
        let config = KubernetesConfig::from_environment(&environment(
            Some("busybox"),
            json!({
                "namespace": "runs",
                "serviceAccountName": "runner",
                "nodeSelector": {"kubernetes.io/os": "linux", "pool": "batch"},
                "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "runs", "effect": "NoSchedule"}],
                "imagePullSecrets": ["registry"],
                "ttlSecondsAfterFinished": 60,
            }),
        ))
        .unwrap();
        assert_eq!(config.namespace, "runs");
        assert_eq!(config.service_account_name.as_deref(), Some("runner"));
        assert_eq!(config.node_selector["pool"], "batch");
        assert_eq!(config.tolerations[0].key.as_deref(), Some("dedicated"));
        assert_eq!(config.tolerations[0].effect.as_deref(), Some("NoSchedule"));
        assert_eq!(config.image_pull_secrets, ["registry"]);
        assert_eq!(config.ttl_seconds_after_finished, 60);
    }

    #[test]
    fn image_is_required_with_the_existing_message() {
        for image in [None, Some(""), Some("  ")] {
            let message = KubernetesConfig::from_environment(&environment(image, json!({})))
                .unwrap_err()
                .message;
            assert_eq!(
                message,
                "image is required for KUBERNETES environments: name a container image such as \"python:3.12-slim\""
            );
        }
    }

    #[test]
    fn each_rejection_names_its_field() {
        for (config, field) in [
            (json!({"bogus": 1}), "bogus"),
            (json!({"namespace": "Not_A_Label"}), "namespace"),
            (json!({"namespace": 3}), "namespace"),
            (json!({"namespace": "a".repeat(64)}), "namespace"),
            (
                json!({"serviceAccountName": "Bad Name"}),
                "serviceAccountName",
            ),
            (json!({"serviceAccountName": ["x"]}), "serviceAccountName"),
            (json!({"nodeSelector": {"bad key!": "x"}}), "nodeSelector"),
            (
                json!({"nodeSelector": {"pool": "bad value!"}}),
                "nodeSelector",
            ),
            (json!({"nodeSelector": ["pool"]}), "nodeSelector"),
            (json!({"tolerations": {"key": "x"}}), "tolerations"),
            (
                json!({"tolerations": [{"key": "x", "operator": "Maybe"}]}),
                "tolerations[0].operator",
            ),
            (
                json!({"tolerations": [{"key": "x", "effect": "Sometimes"}]}),
                "tolerations[0].effect",
            ),
            (
                json!({"tolerations": [{"key": "x", "operator": "Exists", "value": "y"}]}),
                "tolerations[0].value",
            ),
            (
                json!({"tolerations": [{"key": "x", "tolerationSeconds": 5}]}),
                "tolerations[0].tolerationSeconds",
            ),
            (
                json!({"imagePullSecrets": ["ok", "Not OK"]}),
                "imagePullSecrets[1]",
            ),
            (json!({"imagePullSecrets": "registry"}), "imagePullSecrets"),
            (
                json!({"ttlSecondsAfterFinished": -1}),
                "ttlSecondsAfterFinished",
            ),
            (
                json!({"ttlSecondsAfterFinished": "soon"}),
                "ttlSecondsAfterFinished",
            ),
            (
                json!({"ttlSecondsAfterFinished": 7 * 24 * 3600 + 1}),
                "ttlSecondsAfterFinished",
            ),
        ] {
            let message = error(config.clone());
            assert!(
                message.contains(field),
                "{config}: {message} should name {field}"
            );
        }
    }

    #[test]
    fn tolerations_of_every_taint_are_allowed() {
        let config = KubernetesConfig::from_environment(&environment(
            Some("busybox"),
            json!({"tolerations": [{"operator": "Exists"}, {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 30}]}),
        ))
        .unwrap();
        assert_eq!(config.tolerations.len(), 2);
    }

    #[test]
    fn names_and_labels_follow_kubernetes_rules() {
        assert!(is_dns_label("playground-runs"));
        assert!(!is_dns_label("-x") && !is_dns_label("x-") && !is_dns_label("X"));
        assert!(is_dns_subdomain("registry.example.com"));
        assert!(!is_dns_subdomain("a..b") && !is_dns_subdomain(""));
        assert!(is_label_key("kubernetes.io/os") && is_label_key("pool"));
        assert!(!is_label_key("/x") && !is_label_key("a/b/c"));
        assert!(is_label_value("") && is_label_value("0190a1b2-c3d4"));
        assert!(!is_label_value("-x") && !is_label_value(&"a".repeat(64)));
    }
}
