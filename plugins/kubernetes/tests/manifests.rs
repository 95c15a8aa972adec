//! The deployment manifests in `deploy/kubernetes/*.yaml` (at the
//! workspace root): every document parses into the k8s-openapi type of its
//! `kind`, the Role grants exactly the plugin's
//! [`REQUIRED_PERMISSIONS`] (no more, no `*`), and it is bound to the
//! service account the Deployment runs as.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{
    ConfigMap, Namespace, PersistentVolumeClaim, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use playground_kubernetes::REQUIRED_PERMISSIONS;
use serde::Deserialize;

/// Every object of the manifests, typed.
#[derive(Default)]
struct Manifests {
    roles: Vec<Role>,
    role_bindings: Vec<RoleBinding>,
    deployments: Vec<Deployment>,
    service_accounts: Vec<ServiceAccount>,
    n_documents: usize,
}

fn manifest_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/kubernetes")
}

fn typed<T: serde::de::DeserializeOwned>(value: serde_yaml::Value, file: &Path, kind: &str) -> T {
    serde_yaml::from_value(value).unwrap_or_else(|e| {
        panic!(
            "{}: a {kind} that is not a valid {kind}: {e}",
            file.display()
        )
    })
}

fn check<T: serde::de::DeserializeOwned>(value: serde_yaml::Value, file: &Path, kind: &str) {
    let _: T = typed(value, file, kind);
}

fn load() -> Manifests {
    let dir = manifest_dir();
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| {
        panic!(
            "{} is missing ({e}): the deployment manifests (Namespace, ServiceAccount, Role, RoleBinding, Deployment, Service) belong there",
            dir.display()
        )
    });
    let mut files: Vec<PathBuf> = entries
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no *.yaml in {}", dir.display());
    let mut manifests = Manifests::default();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("a readable manifest");
        for document in serde_yaml::Deserializer::from_str(&text) {
            let value = serde_yaml::Value::deserialize(document)
                .unwrap_or_else(|e| panic!("{}: not YAML: {e}", file.display()));
            if value.is_null() {
                continue;
            }
            manifests.n_documents += 1;
            let kind = value
                .get("kind")
                .and_then(serde_yaml::Value::as_str)
                .unwrap_or_else(|| panic!("{}: a document without a kind", file.display()))
                .to_owned();
            match kind.as_str() {
                "Namespace" => check::<Namespace>(value, &file, &kind),
                "ServiceAccount" => manifests.service_accounts.push(typed(value, &file, &kind)),
                "Role" => manifests.roles.push(typed(value, &file, &kind)),
                "RoleBinding" => manifests.role_bindings.push(typed(value, &file, &kind)),
                "Deployment" => manifests.deployments.push(typed(value, &file, &kind)),
                "Service" => check::<Service>(value, &file, &kind),
                "Secret" => check::<Secret>(value, &file, &kind),
                "ConfigMap" => check::<ConfigMap>(value, &file, &kind),
                "PersistentVolumeClaim" => check::<PersistentVolumeClaim>(value, &file, &kind),
                "NetworkPolicy" => check::<NetworkPolicy>(value, &file, &kind),
                other => panic!(
                    "{}: unexpected kind {other} (ClusterRoles are not wanted: the plugin needs a namespaced Role)",
                    file.display()
                ),
            }
        }
    }
    manifests
}

/// (API group, resource, verb) triples.
fn required() -> BTreeSet<(String, String, String)> {
    REQUIRED_PERMISSIONS
        .iter()
        .flat_map(|(group, resource, verbs)| {
            verbs.iter().map(move |verb| {
                (
                    (*group).to_owned(),
                    (*resource).to_owned(),
                    (*verb).to_owned(),
                )
            })
        })
        .collect()
}

fn granted(role: &Role) -> BTreeSet<(String, String, String)> {
    let mut granted = BTreeSet::new();
    for rule in role.rules.as_deref().unwrap_or_default() {
        assert!(
            rule.resource_names.is_none() && rule.non_resource_urls.is_none(),
            "the plugin's Role names resources the plugin does not: {rule:?}"
        );
        for group in rule.api_groups.as_deref().unwrap_or_default() {
            for resource in rule.resources.as_deref().unwrap_or_default() {
                for verb in &rule.verbs {
                    for value in [group, resource, verb] {
                        assert!(!value.contains('*'), "the Role grants a wildcard: {rule:?}");
                    }
                    granted.insert((group.clone(), resource.clone(), verb.clone()));
                }
            }
        }
    }
    granted
}

#[test]
fn every_document_parses_into_its_kind() {
    let manifests = load();
    assert!(
        manifests.n_documents >= 6,
        "{} documents",
        manifests.n_documents
    );
    assert_eq!(manifests.deployments.len(), 1, "one Deployment");
}

#[test]
fn the_role_grants_exactly_what_the_plugin_uses() {
    let manifests = load();
    assert_eq!(manifests.roles.len(), 1, "one Role for the plugin");
    let role = &manifests.roles[0];
    let granted = granted(role);
    let required = required();
    let missing: Vec<_> = required.difference(&granted).collect();
    assert!(missing.is_empty(), "the Role lacks {missing:?}");
    let extra: Vec<_> = granted.difference(&required).collect();
    assert!(
        extra.is_empty(),
        "the Role grants more than the plugin uses: {extra:?}"
    );
}

#[test]
fn the_role_is_bound_to_the_deployments_service_account() {
    let manifests = load();
    let role = &manifests.roles[0];
    let deployment = &manifests.deployments[0];
    let pod = deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .expect("a pod template");
    let account = pod
        .service_account_name
        .as_deref()
        .expect("the Deployment names its service account");
    assert!(
        manifests
            .service_accounts
            .iter()
            .any(|sa| sa.metadata.name.as_deref() == Some(account)),
        "the ServiceAccount {account} is among the manifests"
    );
    let binding = manifests
        .role_bindings
        .iter()
        .find(|b| {
            b.role_ref.kind == "Role" && Some(&b.role_ref.name) == role.metadata.name.as_ref()
        })
        .expect("a RoleBinding of the Role");
    let namespace = deployment.metadata.namespace.as_deref();
    assert!(
        binding
            .subjects
            .as_deref()
            .unwrap_or_default()
            .iter()
            .any(|s| s.kind == "ServiceAccount"
                && s.name == account
                && (s.namespace.is_none() || s.namespace.as_deref() == namespace)),
        "the RoleBinding binds the Deployment's service account: {binding:?}"
    );
}
