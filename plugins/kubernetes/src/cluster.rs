//! The connection to the Kubernetes API server: its configuration found on
//! first use (the settings' kubeconfig, else `KUBECONFIG` or
//! `~/.kube/config`, else the pod's service account), errors explained in
//! words a person can act on, the namespaces this server used and the
//! NetworkPolicy that denies runs' egress in each.

use std::collections::BTreeSet;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicySpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, LabelSelectorRequirement, ObjectMeta,
};
use kube::api::PostParams;
use kube::config::{KubeConfigOptions, Kubeconfig, KubeconfigError};
use kube::{Api, Client, Config};
use playground_executors::ExecutorError;
use tokio::sync::OnceCell;

use crate::manifest::LABEL_RUN;

/// The NetworkPolicy that denies all egress of run pods in a namespace.
pub const NETWORK_POLICY_NAME: &str = "playground-deny-egress";

/// How long one API request (not a watch or a log stream) may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the client's configuration comes from.
pub(crate) enum Source {
    /// A kubeconfig file (`None`: `KUBECONFIG` or `~/.kube/config`, else
    /// in-cluster) and context.
    Kubeconfig {
        path: Option<PathBuf>,
        context: Option<String>,
    },
    /// A configuration made by the caller.
    Config(Box<Config>),
}

/// A client once the configuration was found, and what messages name.
#[derive(Clone)]
pub(crate) struct Connected {
    pub client: Client,
    pub url: String,
    pub default_namespace: String,
}

pub(crate) struct Cluster {
    source: Source,
    connected: OnceCell<Connected>,
    /// Namespaces runs were started in (for `list_started`).
    namespaces: Mutex<BTreeSet<String>>,
    /// Namespaces whose NetworkPolicy is known to exist.
    policies: Mutex<BTreeSet<String>>,
}

impl Cluster {
    pub(crate) fn new(source: Source) -> Self {
        Self {
            source,
            connected: OnceCell::new(),
            namespaces: Mutex::new(BTreeSet::new()),
            policies: Mutex::new(BTreeSet::new()),
        }
    }

    /// The client, made on first use. Nothing is contacted; a failure (no
    /// configuration) is not cached, so the next call looks again.
    pub(crate) async fn connect(&self) -> Result<&Connected, ExecutorError> {
        self.connected
            .get_or_try_init(|| async {
                let config = match &self.source {
                    Source::Config(config) => (**config).clone(),
                    Source::Kubeconfig { path, context } => {
                        load_config(path.as_ref(), context.as_deref()).await?
                    }
                };
                let url = config.cluster_url.to_string();
                let url = url.trim_end_matches('/').to_owned();
                let default_namespace = config.default_namespace.clone();
                let client = Client::try_from(config).map_err(|e| {
                    ExecutorError::new(format!(
                        "cannot make a Kubernetes client for {url}: {}",
                        describe(&e)
                    ))
                })?;
                Ok(Connected {
                    client,
                    url,
                    default_namespace,
                })
            })
            .await
    }

    /// Remembers that runs went to `namespace`.
    pub(crate) fn used(&self, namespace: &str) {
        self.namespaces
            .lock()
            .expect("namespaces lock")
            .insert(namespace.to_owned());
    }

    /// The namespaces to look for runs' Jobs in: those used and the
    /// configuration's default.
    pub(crate) fn namespaces(&self, connected: &Connected) -> BTreeSet<String> {
        let mut namespaces = self.namespaces.lock().expect("namespaces lock").clone();
        namespaces.insert(connected.default_namespace.clone());
        namespaces
    }

    /// Makes sure the NetworkPolicy denying run pods' egress exists in
    /// `namespace` (asked once per namespace and server process).
    pub(crate) async fn ensure_network_policy(
        &self,
        connected: &Connected,
        namespace: &str,
    ) -> Result<bool, ExecutorError> {
        if self
            .policies
            .lock()
            .expect("policies lock")
            .contains(namespace)
        {
            return Ok(false);
        }
        let api: Api<NetworkPolicy> = Api::namespaced(connected.client.clone(), namespace);
        let found = request(connected, "could not read the NetworkPolicy", async {
            api.get_opt(NETWORK_POLICY_NAME).await
        })
        .await?;
        let created = match found {
            Some(_) => false,
            None => {
                let created = request(connected, "could not create the NetworkPolicy", async {
                    match api
                        .create(&PostParams::default(), &network_policy(namespace))
                        .await
                    {
                        Ok(_) => Ok(true),
                        Err(e) if is_already_exists(&e) => Ok(false),
                        Err(e) => Err(e),
                    }
                })
                .await?;
                if created {
                    tracing::info!(namespace, "created the NetworkPolicy {NETWORK_POLICY_NAME}");
                }
                created
            }
        };
        self.policies
            .lock()
            .expect("policies lock")
            .insert(namespace.to_owned());
        Ok(created)
    }
}

/// Denies all egress of pods labelled `playground.run` (no egress rules
/// with the Egress policy type). Needs a network plugin that enforces
/// NetworkPolicies.
pub fn network_policy(namespace: &str) -> NetworkPolicy {
    NetworkPolicy {
        metadata: ObjectMeta {
            name: Some(NETWORK_POLICY_NAME.to_owned()),
            namespace: Some(namespace.to_owned()),
            labels: Some(
                [(
                    "app.kubernetes.io/managed-by".to_owned(),
                    "playground".to_owned(),
                )]
                .into(),
            ),
            ..Default::default()
        },
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_expressions: Some(vec![LabelSelectorRequirement {
                    key: LABEL_RUN.to_owned(),
                    operator: "Exists".to_owned(),
                    values: None,
                }]),
                match_labels: None,
            }),
            policy_types: Some(vec!["Egress".to_owned()]),
            egress: None,
            ingress: None,
        }),
    }
}

/// Runs one API request with a time limit, explaining a failure.
pub(crate) async fn request<T>(
    connected: &Connected,
    doing: &str,
    call: impl Future<Output = Result<T, kube::Error>>,
) -> Result<T, ExecutorError> {
    match tokio::time::timeout(REQUEST_TIMEOUT, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(ExecutorError::new(format!(
            "{doing}: {}",
            explain(&connected.url, &e)
        ))),
        Err(_) => Err(ExecutorError::new(format!(
            "{doing}: the Kubernetes API server at {} did not answer within {} s",
            connected.url,
            REQUEST_TIMEOUT.as_secs()
        ))),
    }
}

/// Finds the client configuration: the named kubeconfig, else
/// `KUBECONFIG` or `~/.kube/config`, else the pod's service account.
async fn load_config(
    path: Option<&PathBuf>,
    context: Option<&str>,
) -> Result<Config, ExecutorError> {
    let options = KubeConfigOptions {
        context: context.map(str::to_owned),
        ..Default::default()
    };
    let unusable = |what: String, e: &KubeconfigError| {
        ExecutorError::new(format!("cannot use the kubeconfig {what}: {}", chain(e)))
    };
    if let Some(path) = path {
        let kubeconfig =
            Kubeconfig::read_from(path).map_err(|e| unusable(path.display().to_string(), &e))?;
        return Config::from_custom_kubeconfig(kubeconfig, &options)
            .await
            .map_err(|e| unusable(path.display().to_string(), &e));
    }
    match Config::from_kubeconfig(&options).await {
        Ok(config) => Ok(config),
        Err(KubeconfigError::FindPath) => incluster(),
        Err(KubeconfigError::ReadConfig(e, _))
            if e.kind() == std::io::ErrorKind::NotFound
                && std::env::var_os("KUBECONFIG").is_none() =>
        {
            incluster()
        }
        Err(e) => Err(unusable(
            match std::env::var_os("KUBECONFIG") {
                Some(paths) => format!("in KUBECONFIG ({})", paths.to_string_lossy()),
                None => "~/.kube/config".to_owned(),
            },
            &e,
        )),
    }
}

fn incluster() -> Result<Config, ExecutorError> {
    if std::env::var_os("KUBERNETES_SERVICE_HOST").is_none() {
        return Err(ExecutorError::new(
            "no kubeconfig found: set the server's kubeconfig setting (PLAYGROUND_KUBECONFIG) or KUBECONFIG, create ~/.kube/config, or run Playground in a pod with a service account",
        ));
    }
    Config::incluster().map_err(|e| {
        ExecutorError::new(format!(
            "cannot use the pod's service account to reach Kubernetes: {}",
            chain(&e)
        ))
    })
}

/// An error from the API server (or on the way to it) in words a person
/// can act on.
pub(crate) fn explain(url: &str, error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) if status.code == 401 => format!(
            "the Kubernetes API server at {url} refused the credentials (401 Unauthorized): renew the kubeconfig's token or certificate, or check the service account"
        ),
        kube::Error::Api(status) if status.code == 403 => format!(
            "Kubernetes forbade it (403): {}: grant the permissions in deploy/kubernetes (the plugin's REQUIRED_PERMISSIONS) to Playground's account",
            status.message.trim()
        ),
        kube::Error::Api(_) => describe(error),
        _ => format!(
            "the Kubernetes API server at {url} is unreachable: {}",
            describe(error)
        ),
    }
}

/// The server's message alone, or the error with its causes.
pub(crate) fn describe(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) if !status.message.trim().is_empty() => {
            status.message.trim().to_owned()
        }
        other => chain(other),
    }
}

/// An error and its causes, each once.
pub(crate) fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

pub(crate) fn is_not_found(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 404)
}

pub(crate) fn is_already_exists(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 409)
}
