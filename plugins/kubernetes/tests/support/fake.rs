//! A fake Kubernetes API server for the plugin's tests: plain HTTP on
//! 127.0.0.1 and a random port, objects in memory, the real wire format.
//!
//! It serves what the plugin uses: `GET /version`; create, get, list,
//! watch, delete and (JSON merge) patch of namespaced batch/v1 Jobs, v1
//! Pods, ConfigMaps and Secrets and networking.k8s.io/v1 NetworkPolicies,
//! with `labelSelector` and `fieldSelector` (`metadata.name`), a
//! `resourceVersion` on every object and list, `?watch=true` as a chunked
//! stream of `{"type":…,"object":…}` lines from a resource version, `404`
//! and `409` Status objects, the garbage collector (dependents of a deleted
//! object go with it unless orphaned; a Job's default is to orphan, as in
//! Kubernetes), and pod logs (`follow`, `timestamps`, `sinceTime`) that the
//! test appends to. Bodies are checked by deserializing them into the
//! k8s-openapi types. The test plays job controller and kubelet (see
//! `kubelet.rs`); the job controller's first step, creating a Job's pod, is
//! done here.
//!
//! The server runs on a runtime of its own, so [`FakeKube::stop`] can end
//! it and every open connection at once, like an API server going away.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Status, StatusDetails};
use serde_json::{Value, json};
use tokio::sync::watch;

use super::selector::Selector;

/// The kinds of object the fake serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Job,
    Pod,
    ConfigMap,
    Secret,
    NetworkPolicy,
}

impl Kind {
    const ALL: [Kind; 5] = [
        Kind::Job,
        Kind::Pod,
        Kind::ConfigMap,
        Kind::Secret,
        Kind::NetworkPolicy,
    ];

    pub fn api_version(self) -> &'static str {
        match self {
            Kind::Job => "batch/v1",
            Kind::NetworkPolicy => "networking.k8s.io/v1",
            _ => "v1",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Job => "Job",
            Kind::Pod => "Pod",
            Kind::ConfigMap => "ConfigMap",
            Kind::Secret => "Secret",
            Kind::NetworkPolicy => "NetworkPolicy",
        }
    }

    pub fn plural(self) -> &'static str {
        match self {
            Kind::Job => "jobs",
            Kind::Pod => "pods",
            Kind::ConfigMap => "configmaps",
            Kind::Secret => "secrets",
            Kind::NetworkPolicy => "networkpolicies",
        }
    }

    fn group(self) -> &'static str {
        self.api_version()
            .rsplit_once('/')
            .map_or("", |(group, _)| group)
    }

    /// `jobs.batch`, `pods`: how messages name the resource.
    fn qualified(self) -> String {
        match self.group() {
            "" => self.plural().to_owned(),
            group => format!("{}.{group}", self.plural()),
        }
    }

    /// Checks a body is this kind in the wire format.
    fn check(self, value: &Value) -> Result<(), String> {
        fn parse<T: serde::de::DeserializeOwned>(value: &Value) -> Result<(), String> {
            serde_json::from_value::<T>(value.clone())
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
        match self {
            Kind::Job => parse::<Job>(value),
            Kind::Pod => parse::<Pod>(value),
            Kind::ConfigMap => parse::<ConfigMap>(value),
            Kind::Secret => parse::<Secret>(value),
            Kind::NetworkPolicy => parse::<NetworkPolicy>(value),
        }
    }
}

/// One request the fake answered.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: BTreeMap<String, String>,
    pub body: Value,
}

/// One change, as watches replay it.
#[derive(Clone, Debug)]
struct Change {
    rv: u64,
    kind: Kind,
    namespace: String,
    type_: &'static str,
    object: Value,
}

/// How a pod's open log streams are broken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Break {
    /// The stream ends cleanly, as if the output were complete.
    Eof,
    /// The connection is cut mid-stream.
    Reset,
}

#[derive(Debug, Default)]
pub(crate) struct PodLog {
    pub entries: Vec<(Timestamp, Vec<u8>)>,
    pub ended: bool,
    /// Bumped to break the open streams.
    pub n_breaks: u64,
    pub break_mode: Option<Break>,
}

#[derive(Default)]
pub(crate) struct Store {
    rv: u64,
    pub objects: BTreeMap<(Kind, String, String), Value>,
    history: Vec<Change>,
    pub logs: HashMap<(String, String), PodLog>,
    pub requests: Vec<Recorded>,
    n_pods: u64,
}

pub(crate) struct Shared {
    pub store: Mutex<Store>,
    /// Bumped on every change of objects or logs.
    pub generation: watch::Sender<u64>,
    /// When set, requests must carry `Authorization: Bearer <token>`.
    pub token: Option<String>,
    pub version: String,
}

/// A running fake API server.
pub struct FakeKube {
    pub(crate) shared: Arc<Shared>,
    url: String,
    runtime: Mutex<Option<tokio::runtime::Runtime>>,
}

impl FakeKube {
    pub fn start() -> FakeKube {
        Self::start_with(None)
    }

    /// A server that answers 401 to requests without this bearer token.
    pub fn start_with(token: Option<&str>) -> FakeKube {
        let shared = Arc::new(Shared {
            store: Mutex::new(Store::default()),
            generation: watch::channel(0).0,
            token: token.map(str::to_owned),
            version: "v1.33.1-fake".to_owned(),
        });
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        listener
            .set_nonblocking(true)
            .expect("a non-blocking socket");
        let url = format!("http://{}", listener.local_addr().expect("an address"));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime for the fake API server");
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(shared.clone());
        runtime.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("a listener");
            axum::serve(listener, app)
                .await
                .expect("the fake API server runs");
        });
        FakeKube {
            shared,
            url,
            runtime: Mutex::new(Some(runtime)),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// A client configuration for this server.
    pub fn config(&self) -> kube::Config {
        kube::Config::new(self.url.parse().expect("a URL"))
    }

    /// Stops the server and drops every open connection.
    pub fn stop(&self) {
        if let Some(runtime) = self.runtime.lock().unwrap().take() {
            runtime.shutdown_background();
        }
    }

    /// Every request answered so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.store.lock().unwrap().requests.clone()
    }
}

impl Drop for FakeKube {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Shared {
    /// Stores a new or changed object under a fresh resource version and
    /// tells the watches.
    pub(crate) fn put(
        &self,
        store: &mut Store,
        kind: Kind,
        mut object: Value,
        type_: &'static str,
    ) -> Value {
        store.rv += 1;
        let rv = store.rv;
        object["apiVersion"] = json!(kind.api_version());
        object["kind"] = json!(kind.name());
        object["metadata"]["resourceVersion"] = json!(rv.to_string());
        let namespace = str_at(&object, "/metadata/namespace");
        let name = str_at(&object, "/metadata/name");
        store
            .objects
            .insert((kind, namespace.clone(), name), object.clone());
        store.history.push(Change {
            rv,
            kind,
            namespace,
            type_,
            object: object.clone(),
        });
        self.generation.send_modify(|g| *g += 1);
        object
    }

    /// Removes an object and, unless orphaned, its dependents.
    pub(crate) fn remove(
        &self,
        store: &mut Store,
        kind: Kind,
        namespace: &str,
        name: &str,
        cascade: bool,
    ) -> Option<Value> {
        let mut object = store
            .objects
            .remove(&(kind, namespace.to_owned(), name.to_owned()))?;
        store.rv += 1;
        object["metadata"]["resourceVersion"] = json!(store.rv.to_string());
        store.history.push(Change {
            rv: store.rv,
            kind,
            namespace: namespace.to_owned(),
            type_: "DELETED",
            object: object.clone(),
        });
        if kind == Kind::Pod {
            let key = (namespace.to_owned(), name.to_owned());
            store.logs.entry(key).or_default().ended = true;
        }
        if cascade {
            let uid = str_at(&object, "/metadata/uid");
            let dependents: Vec<(Kind, String)> = store
                .objects
                .iter()
                .filter(|((_, ns, _), value)| {
                    ns == namespace
                        && value["metadata"]["ownerReferences"]
                            .as_array()
                            .is_some_and(|refs| refs.iter().any(|r| r["uid"] == json!(uid)))
                })
                .map(|((kind, _, name), _)| (*kind, name.clone()))
                .collect();
            for (kind, name) in dependents {
                self.remove(store, kind, namespace, &name, true);
            }
        }
        self.generation.send_modify(|g| *g += 1);
        Some(object)
    }

    /// The job controller's first step: a Job's pod, from its template.
    fn create_pod_of(&self, store: &mut Store, job: &Value) {
        store.n_pods += 1;
        let job_name = str_at(job, "/metadata/name");
        let uid = str_at(job, "/metadata/uid");
        let namespace = str_at(job, "/metadata/namespace");
        let template = &job["spec"]["template"];
        let mut labels = template["metadata"]["labels"].clone();
        if !labels.is_object() {
            labels = json!({});
        }
        for (key, value) in [
            ("job-name", &job_name),
            ("batch.kubernetes.io/job-name", &job_name),
            ("controller-uid", &uid),
            ("batch.kubernetes.io/controller-uid", &uid),
        ] {
            labels[key] = json!(value);
        }
        let pod = json!({
            "metadata": {
                "name": format!("{job_name}-{:05x}", store.n_pods),
                "namespace": namespace,
                "uid": new_uid(),
                "creationTimestamp": now_seconds(),
                "labels": labels,
                "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": job_name, "uid": uid,
                    "controller": true, "blockOwnerDeletion": true}],
            },
            "spec": template["spec"].clone(),
            "status": {"phase": "Pending"},
        });
        self.put(store, Kind::Pod, pod, "ADDED");
        let mut job = job.clone();
        job["status"] = json!({"startTime": now_seconds(), "active": 1});
        self.put(store, Kind::Job, job, "MODIFIED");
    }
}

/// Every request: authentication, then routing by path.
async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Query(query): Query<BTreeMap<String, String>>,
    body: Bytes,
) -> Response {
    let body_value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    shared.store.lock().unwrap().requests.push(Recorded {
        method: method.to_string(),
        path: uri.path().to_owned(),
        query: query.clone(),
        body: body_value.clone(),
    });
    if let Some(token) = &shared.token {
        let expected = format!("Bearer {token}");
        if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
            return status(401, "Unauthorized", "Unauthorized".to_owned(), None);
        }
    }
    let segments: Vec<&str> = uri.path().trim_matches('/').split('/').collect();
    let (api_version, rest) = match segments.as_slice() {
        ["version"] => {
            return json_response(
                200,
                &json!({"major": "1", "minor": "33", "gitVersion": shared.version, "gitCommit": "fake",
                    "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.24",
                    "compiler": "gc", "platform": "linux/amd64"}),
            );
        }
        ["api", "v1", rest @ ..] => ("v1".to_owned(), rest),
        ["apis", group, version, rest @ ..] => (format!("{group}/{version}"), rest),
        _ => {
            return status(
                404,
                "NotFound",
                "the server could not find the requested resource".to_owned(),
                None,
            );
        }
    };
    let (namespace, plural, name, subresource) = match rest {
        ["namespaces", ns, plural] => (*ns, *plural, None, None),
        ["namespaces", ns, plural, name] => (*ns, *plural, Some(*name), None),
        ["namespaces", ns, plural, name, sub] => (*ns, *plural, Some(*name), Some(*sub)),
        _ => {
            return status(
                404,
                "NotFound",
                "the server could not find the requested resource".to_owned(),
                None,
            );
        }
    };
    let Some(kind) = Kind::ALL
        .into_iter()
        .find(|k| k.plural() == plural && k.api_version() == api_version)
    else {
        return status(
            404,
            "NotFound",
            "the server could not find the requested resource".to_owned(),
            None,
        );
    };
    match (method, name, subresource) {
        (Method::GET, None, None)
            if query.get("watch").is_some_and(|w| w == "true" || w == "1") =>
        {
            watch(&shared, kind, namespace, &query)
        }
        (Method::GET, None, None) => list(&shared, kind, namespace, &query),
        (Method::POST, None, None) => create(&shared, kind, namespace, body_value),
        (Method::GET, Some(name), None) => get(&shared, kind, namespace, name),
        (Method::DELETE, Some(name), None) => delete(&shared, kind, namespace, name, &body_value),
        (Method::PATCH, Some(name), None) => {
            let content_type = headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            patch(&shared, kind, namespace, name, content_type, body_value)
        }
        (Method::GET, Some(name), Some("log")) if kind == Kind::Pod => {
            super::kubelet::log(&shared, namespace, name, &query)
        }
        _ => status(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource".to_owned(),
            None,
        ),
    }
}

fn create(shared: &Shared, kind: Kind, namespace: &str, mut object: Value) -> Response {
    if let Err(e) = kind.check(&object) {
        return status(
            400,
            "BadRequest",
            format!("the body is not a {}: {e}", kind.name()),
            None,
        );
    }
    let name = str_at(&object, "/metadata/name");
    if name.is_empty() {
        return status(
            422,
            "Invalid",
            format!("{} is invalid: metadata.name: Required value", kind.name()),
            None,
        );
    }
    let body_namespace = str_at(&object, "/metadata/namespace");
    if !body_namespace.is_empty() && body_namespace != namespace {
        return status(
            400,
            "BadRequest",
            "the namespace of the provided object does not match the namespace sent on the request"
                .to_owned(),
            None,
        );
    }
    let mut store = shared.store.lock().unwrap();
    if store
        .objects
        .contains_key(&(kind, namespace.to_owned(), name.clone()))
    {
        return status(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", kind.qualified()),
            Some((kind, &name)),
        );
    }
    object["metadata"]["namespace"] = json!(namespace);
    object["metadata"]["uid"] = json!(new_uid());
    object["metadata"]["creationTimestamp"] = json!(now_seconds());
    if let Some(metadata) = object["metadata"].as_object_mut() {
        metadata.remove("resourceVersion");
    }
    if kind == Kind::Job
        && let Some(job) = object.as_object_mut()
    {
        job.remove("status");
    }
    let stored = shared.put(&mut store, kind, object, "ADDED");
    if kind == Kind::Job {
        shared.create_pod_of(&mut store, &stored);
    }
    json_response(201, &stored)
}

fn get(shared: &Shared, kind: Kind, namespace: &str, name: &str) -> Response {
    let store = shared.store.lock().unwrap();
    match store
        .objects
        .get(&(kind, namespace.to_owned(), name.to_owned()))
    {
        Some(object) => json_response(200, object),
        None => not_found(kind, name),
    }
}

fn list(
    shared: &Shared,
    kind: Kind,
    namespace: &str,
    query: &BTreeMap<String, String>,
) -> Response {
    let selector = Selector::parse(query);
    let store = shared.store.lock().unwrap();
    let items: Vec<Value> = store
        .objects
        .iter()
        .filter(|((k, ns, _), object)| *k == kind && ns == namespace && selector.matches(object))
        .map(|(_, object)| {
            // Items of a list carry no kind, as from a real API server.
            let mut item = object.clone();
            if let Some(item) = item.as_object_mut() {
                item.remove("apiVersion");
                item.remove("kind");
            }
            item
        })
        .collect();
    json_response(
        200,
        &json!({"apiVersion": kind.api_version(), "kind": format!("{}List", kind.name()),
            "metadata": {"resourceVersion": store.rv.to_string()}, "items": items}),
    )
}

fn delete(shared: &Shared, kind: Kind, namespace: &str, name: &str, options: &Value) -> Response {
    let propagation = options["propagationPolicy"].as_str();
    // Jobs orphan their pods unless told otherwise (batch/v1's default).
    let cascade = match propagation {
        Some("Orphan") => false,
        Some(_) => true,
        None => kind != Kind::Job,
    };
    let mut store = shared.store.lock().unwrap();
    match shared.remove(&mut store, kind, namespace, name, cascade) {
        Some(object) => json_response(
            200,
            &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                "details": {"name": name, "group": kind.group(), "kind": kind.plural(), "uid": object["metadata"]["uid"]}}),
        ),
        None => not_found(kind, name),
    }
}

fn patch(
    shared: &Shared,
    kind: Kind,
    namespace: &str,
    name: &str,
    content_type: &str,
    patch: Value,
) -> Response {
    if !content_type.starts_with("application/merge-patch+json")
        && !content_type.starts_with("application/strategic-merge-patch+json")
    {
        return status(
            415,
            "UnsupportedMediaType",
            format!("the fake does not do {content_type} patches"),
            None,
        );
    }
    let mut store = shared.store.lock().unwrap();
    let Some(current) = store
        .objects
        .get(&(kind, namespace.to_owned(), name.to_owned()))
        .cloned()
    else {
        return not_found(kind, name);
    };
    let mut patched = current.clone();
    merge_patch(&mut patched, &patch);
    for field in ["uid", "creationTimestamp", "name", "namespace"] {
        patched["metadata"][field] = current["metadata"][field].clone();
    }
    if let Err(e) = kind.check(&patched) {
        return status(
            422,
            "Invalid",
            format!("the patched object is not a {}: {e}", kind.name()),
            None,
        );
    }
    let stored = shared.put(&mut store, kind, patched, "MODIFIED");
    json_response(200, &stored)
}

/// RFC 7386.
fn merge_patch(target: &mut Value, patch: &Value) {
    let Some(patch) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    let target = target.as_object_mut().expect("an object");
    for (key, value) in patch {
        if value.is_null() {
            target.remove(key);
        } else {
            merge_patch(target.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

fn watch(
    shared: &Arc<Shared>,
    kind: Kind,
    namespace: &str,
    query: &BTreeMap<String, String>,
) -> Response {
    let selector = Selector::parse(query);
    let from: u64 = query
        .get("resourceVersion")
        .and_then(|rv| rv.parse().ok())
        .unwrap_or(0);
    let timeout = Duration::from_secs(
        query
            .get("timeoutSeconds")
            .and_then(|t| t.parse().ok())
            .unwrap_or(1800),
    );
    let shared = shared.clone();
    let namespace = namespace.to_owned();
    let stream = async_stream::stream! {
        let mut generation = shared.generation.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        let (current, mut position) = {
            let store = shared.store.lock().unwrap();
            if from == 0 {
                // "Any" version: the current objects as ADDED.
                let current: Vec<Value> = store.objects.iter()
                    .filter(|((k, ns, _), o)| *k == kind && *ns == namespace && selector.matches(o))
                    .map(|(_, o)| o.clone())
                    .collect();
                (current, store.history.len())
            } else {
                let position = store.history.iter().position(|c| c.rv > from).unwrap_or(store.history.len());
                (Vec::new(), position)
            }
        };
        for object in current {
            yield Ok::<Bytes, Infallible>(event_line("ADDED", &object));
        }
        loop {
            generation.borrow_and_update();
            let changes: Vec<Change> = {
                let store = shared.store.lock().unwrap();
                let changes = store.history[position..].to_vec();
                position = store.history.len();
                changes
            };
            for change in changes {
                if change.kind == kind && change.namespace == namespace && selector.matches(&change.object) {
                    yield Ok(event_line(change.type_, &change.object));
                }
            }
            tokio::select! {
                changed = generation.changed() => if changed.is_err() { break },
                () = tokio::time::sleep_until(deadline) => break,
            }
        }
    };
    Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(Body::from_stream(stream))
        .expect("a response")
}

fn event_line(type_: &str, object: &Value) -> Bytes {
    let mut line = serde_json::to_vec(&json!({"type": type_, "object": object})).expect("JSON");
    line.push(b'\n');
    Bytes::from(line)
}

pub(crate) fn status(
    code: u16,
    reason: &str,
    message: String,
    details: Option<(Kind, &str)>,
) -> Response {
    let status = Status {
        code: Some(i32::from(code)),
        message: Some(message),
        reason: Some(reason.to_owned()),
        status: Some("Failure".to_owned()),
        details: details.map(|(kind, name)| StatusDetails {
            name: Some(name.to_owned()),
            group: Some(kind.group().to_owned()),
            kind: Some(kind.plural().to_owned()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut value = serde_json::to_value(&status).expect("JSON");
    value["kind"] = json!("Status");
    value["apiVersion"] = json!("v1");
    json_response(code, &value)
}

fn not_found(kind: Kind, name: &str) -> Response {
    status(
        404,
        "NotFound",
        format!("{} \"{name}\" not found", kind.qualified()),
        Some((kind, name)),
    )
}

pub(crate) fn json_response(code: u16, value: &Value) -> Response {
    Response::builder()
        .status(StatusCode::from_u16(code).expect("a status code"))
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(value).expect("JSON")))
        .expect("a response")
}

pub(crate) fn str_at(value: &Value, pointer: &str) -> String {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn new_uid() -> String {
    uuid::Uuid::new_v4().to_string()
}

pub(crate) fn now_seconds() -> String {
    Timestamp::from_second(Timestamp::now().as_second())
        .expect("a time")
        .to_string()
}
