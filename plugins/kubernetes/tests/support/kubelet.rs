//! The test's side of the fake API server: it plays job controller and
//! kubelet (pod phases, container states, Job conditions, log output) and
//! reads what the plugin stored. Also the pod log endpoint, which serves
//! what the test appended the way the kubelet does (a timestamp at the
//! start of each line with `timestamps=true`, `sinceTime` by entry).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::response::Response;
use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::fake::{Break, FakeKube, Kind, PodLog, Shared, now_seconds, status, str_at};

impl FakeKube {
    /// An object as stored.
    pub fn object<K: DeserializeOwned>(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
    ) -> Option<K> {
        let store = self.shared.store.lock().unwrap();
        store
            .objects
            .get(&(kind, namespace.to_owned(), name.to_owned()))
            .map(|value| serde_json::from_value(value.clone()).expect("a stored object"))
    }

    /// Every object of a kind in a namespace.
    pub fn objects<K: DeserializeOwned>(&self, kind: Kind, namespace: &str) -> Vec<K> {
        let store = self.shared.store.lock().unwrap();
        store
            .objects
            .iter()
            .filter(|((k, ns, _), _)| *k == kind && ns == namespace)
            .map(|(_, value)| serde_json::from_value(value.clone()).expect("a stored object"))
            .collect()
    }

    /// Stores an object as if someone had created it.
    pub fn insert<K: Serialize>(&self, kind: Kind, object: &K) {
        let mut value = serde_json::to_value(object).expect("JSON");
        if value["metadata"]["uid"].is_null() {
            value["metadata"]["uid"] = json!(uuid::Uuid::new_v4().to_string());
        }
        if value["metadata"]["creationTimestamp"].is_null() {
            value["metadata"]["creationTimestamp"] = json!(now_seconds());
        }
        let mut store = self.shared.store.lock().unwrap();
        self.shared.put(&mut store, kind, value, "ADDED");
    }

    /// Changes a stored object (a new resource version, a MODIFIED event).
    pub fn update<K: Serialize + DeserializeOwned>(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
        change: impl FnOnce(&mut K),
    ) {
        let mut store = self.shared.store.lock().unwrap();
        let value = store
            .objects
            .get(&(kind, namespace.to_owned(), name.to_owned()))
            .unwrap_or_else(|| panic!("no {kind:?} {namespace}/{name}"))
            .clone();
        let mut object: K = serde_json::from_value(value).expect("a stored object");
        change(&mut object);
        let value = serde_json::to_value(&object).expect("JSON");
        self.shared.put(&mut store, kind, value, "MODIFIED");
    }

    /// Changes a stored object's JSON.
    pub fn update_json(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
        change: impl FnOnce(&mut Value),
    ) {
        let mut store = self.shared.store.lock().unwrap();
        let mut value = store
            .objects
            .get(&(kind, namespace.to_owned(), name.to_owned()))
            .unwrap_or_else(|| panic!("no {kind:?} {namespace}/{name}"))
            .clone();
        change(&mut value);
        self.shared.put(&mut store, kind, value, "MODIFIED");
    }

    /// Deletes an object as someone else would (dependents go too).
    pub fn remove(&self, kind: Kind, namespace: &str, name: &str) {
        let mut store = self.shared.store.lock().unwrap();
        self.shared.remove(&mut store, kind, namespace, name, true);
    }

    /// Waits until the pod of a run exists; its name.
    pub async fn wait_pod(&self, namespace: &str, run_id: &str) -> String {
        self.wait_for(|fake| {
            fake.objects::<Pod>(Kind::Pod, namespace)
                .into_iter()
                .find(|pod| {
                    pod.metadata
                        .labels
                        .as_ref()
                        .and_then(|l| l.get("playground.run"))
                        .is_some_and(|r| r == run_id)
                })
                .and_then(|pod| pod.metadata.name)
        })
        .await
    }

    /// Polls `check` until it gives something (at most 10 s).
    pub async fn wait_for<T>(&self, mut check: impl FnMut(&FakeKube) -> Option<T>) -> T {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(found) = check(self) {
                return found;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the fake API server did not reach the expected state within 10 s"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The kubelet started the container.
    pub fn start_container(&self, namespace: &str, pod: &str) {
        self.update_json(Kind::Pod, namespace, pod, |pod| {
            pod["status"] = json!({
                "phase": "Running",
                "startTime": now_seconds(),
                "conditions": [{"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "True"}],
                "containerStatuses": [container_status(json!({"running": {"startedAt": now_seconds()}}), true)],
            });
        });
    }

    /// The container waits, e.g. for its image (`ErrImagePull`).
    pub fn container_waiting(&self, namespace: &str, pod: &str, reason: &str, message: &str) {
        self.update_json(Kind::Pod, namespace, pod, |pod| {
            pod["status"] = json!({
                "phase": "Pending",
                "conditions": [{"type": "PodScheduled", "status": "True"}],
                "containerStatuses": [container_status(json!({"waiting": {"reason": reason, "message": message}}), false)],
            });
        });
    }

    /// The scheduler finds no node for the pod.
    pub fn unschedulable(&self, namespace: &str, pod: &str, message: &str) {
        self.update_json(Kind::Pod, namespace, pod, |pod| {
            pod["status"] = json!({
                "phase": "Pending",
                "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                    "message": message, "lastTransitionTime": now_seconds()}],
            });
        });
    }

    /// The container ended: its log ends, the pod's phase follows the exit
    /// code.
    pub fn terminate_container(&self, namespace: &str, pod: &str, exit_code: i32, reason: &str) {
        self.end_log(namespace, pod);
        self.update_json(Kind::Pod, namespace, pod, |pod| {
            pod["status"] = json!({
                "phase": if exit_code == 0 { "Succeeded" } else { "Failed" },
                "conditions": [{"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "False"}],
                "containerStatuses": [container_status(json!({"terminated": {"exitCode": exit_code, "reason": reason,
                    "startedAt": now_seconds(), "finishedAt": now_seconds()}}), false)],
            });
        });
    }

    /// The job controller records a condition (`Complete`, `Failed`…).
    pub fn job_condition(
        &self,
        namespace: &str,
        job: &str,
        type_: &str,
        reason: &str,
        message: &str,
    ) {
        self.update_json(Kind::Job, namespace, job, |job| {
            let conditions = job["status"]["conditions"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let mut conditions = conditions;
            conditions.push(
                json!({"type": type_, "status": "True", "reason": reason, "message": message,
                "lastTransitionTime": now_seconds(), "lastProbeTime": now_seconds()}),
            );
            job["status"]["conditions"] = json!(conditions);
            job["status"]["active"] = json!(0);
        });
    }

    /// Appends a log entry with a timestamp.
    pub fn log_at(&self, namespace: &str, pod: &str, at: Timestamp, bytes: &[u8]) {
        let mut store = self.shared.store.lock().unwrap();
        let log = store
            .logs
            .entry((namespace.to_owned(), pod.to_owned()))
            .or_default();
        log.entries.push((at, bytes.to_vec()));
        drop(store);
        self.shared.generation.send_modify(|g| *g += 1);
    }

    /// Appends log entries (lines, each ending in a newline) stamped now.
    pub fn log_lines(&self, namespace: &str, pod: &str, lines: &[&str]) {
        for line in lines {
            self.log_at(
                namespace,
                pod,
                Timestamp::now(),
                format!("{line}\n").as_bytes(),
            );
        }
    }

    /// No more output: open log streams end once they sent everything.
    pub fn end_log(&self, namespace: &str, pod: &str) {
        let mut store = self.shared.store.lock().unwrap();
        store
            .logs
            .entry((namespace.to_owned(), pod.to_owned()))
            .or_default()
            .ended = true;
        drop(store);
        self.shared.generation.send_modify(|g| *g += 1);
    }

    /// Breaks the pod's open log streams.
    pub fn break_logs(&self, namespace: &str, pod: &str, mode: Break) {
        let mut store = self.shared.store.lock().unwrap();
        let log = store
            .logs
            .entry((namespace.to_owned(), pod.to_owned()))
            .or_default();
        log.n_breaks += 1;
        log.break_mode = Some(mode);
        drop(store);
        self.shared.generation.send_modify(|g| *g += 1);
    }

    /// How many log requests the pod got.
    pub fn n_log_requests(&self, pod: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.path.ends_with(&format!("/pods/{pod}/log")))
            .count()
    }
}

fn container_status(state: Value, ready: bool) -> Value {
    json!({"name": "program", "image": "busybox", "imageID": "", "ready": ready, "restartCount": 0, "started": ready, "state": state})
}

/// `GET …/pods/{name}/log`: the entries appended so far, then (with
/// `follow`) new ones until the log ends, the pod goes or the test breaks
/// the stream.
pub(crate) fn log(
    shared: &Arc<Shared>,
    namespace: &str,
    pod: &str,
    query: &BTreeMap<String, String>,
) -> Response {
    let key = (namespace.to_owned(), pod.to_owned());
    {
        let store = shared.store.lock().unwrap();
        let Some(object) = store
            .objects
            .get(&(Kind::Pod, namespace.to_owned(), pod.to_owned()))
        else {
            return status(
                404,
                "NotFound",
                format!("pods \"{pod}\" not found"),
                Some((Kind::Pod, pod)),
            );
        };
        if query.get("container").is_some_and(|c| c != "program") {
            return status(
                400,
                "BadRequest",
                format!(
                    "container {} is not valid for pod {pod}",
                    query["container"]
                ),
                None,
            );
        }
        let state = &object["status"]["containerStatuses"][0]["state"];
        if state["running"].is_null() && state["terminated"].is_null() {
            return status(
                400,
                "BadRequest",
                format!(
                    "container \"program\" in pod \"{pod}\" is waiting to start: {}",
                    str_at(state, "/waiting/reason")
                ),
                None,
            );
        }
    }
    let follow = query.get("follow").is_some_and(|f| f == "true");
    let timestamps = query.get("timestamps").is_some_and(|t| t == "true");
    let since: Option<Timestamp> = query
        .get("sinceTime")
        .map(|s| s.parse().expect("an RFC 3339 sinceTime"));
    let shared = shared.clone();
    let stream = async_stream::stream! {
        let mut generation = shared.generation.subscribe();
        let n_breaks = shared.store.lock().unwrap().logs.get(&key).map_or(0, |l| l.n_breaks);
        let mut position = 0;
        let mut at_line_start = true;
        loop {
            generation.borrow_and_update();
            let (entries, ended, broken) = {
                let store = shared.store.lock().unwrap();
                let empty = PodLog::default();
                let log = store.logs.get(&key).unwrap_or(&empty);
                let entries = log.entries[position.min(log.entries.len())..].to_vec();
                position = log.entries.len();
                let broken = (log.n_breaks != n_breaks).then_some(log.break_mode).flatten();
                (entries, log.ended, broken)
            };
            if let Some(mode) = broken {
                if mode == Break::Reset {
                    yield Err(std::io::Error::other("connection reset by the test"));
                }
                break;
            }
            for (at, bytes) in entries {
                if since.is_some_and(|since| at < since) {
                    continue;
                }
                let mut chunk = Vec::new();
                if timestamps && at_line_start {
                    chunk.extend_from_slice(format!("{at} ").as_bytes());
                }
                chunk.extend_from_slice(&bytes);
                at_line_start = bytes.ends_with(b"\n");
                yield Ok::<Bytes, std::io::Error>(Bytes::from(chunk));
            }
            if ended || !follow {
                break;
            }
            if generation.changed().await.is_err() {
                break;
            }
        }
    };
    Response::builder()
        .status(200)
        .header("content-type", "text/plain")
        .body(Body::from_stream(stream))
        .expect("a response")
}

/// A Job as the plugin made it, for checks.
pub fn job_of(fake: &FakeKube, namespace: &str, name: &str) -> Job {
    fake.object(Kind::Job, namespace, name)
        .unwrap_or_else(|| panic!("no Job {namespace}/{name}"))
}
