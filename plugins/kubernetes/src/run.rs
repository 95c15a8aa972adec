//! Following one run's Job to its end by watching it and its pod (no
//! polling): output to the sink as it arrives, the timeout (the Job's
//! `activeDeadlineSeconds`, and this server's own timer as a backstop),
//! cancel (the Job deleted), start problems that last too long, an API
//! server out of reach for too long, and the outcome once all output
//! reached the sink.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, ListParams, PropagationPolicy};
use kube::runtime::watcher::{self, Event};
use kube::runtime::{WatchStreamExt, watcher as watch_objects};
use kube::{Api, Client, ResourceExt};
use playground_executors::{CancelReceiver, LogSink, RunOutcome};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::Bounds;
use crate::cluster::{chain, describe, is_not_found};
use crate::logs::{self, LastError};
use crate::manifest::LABEL_RUN;
use crate::status::{self, Facts, PodView, Problem, ProblemKind, Seen, Verdict};

/// How long output may keep arriving after the program ended.
const DRAIN_LIMIT: Duration = Duration::from_secs(30);

/// How long output is still read after this server stopped a run.
const STOP_DRAIN: Duration = Duration::from_secs(2);

/// How long a read that confirms an outcome may take.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest a watch request lasts; a silently dropped connection is
/// noticed a few seconds after it.
const WATCH_TIMEOUT_SECONDS: u32 = 60;

/// One launched (or found again) Job to follow.
pub(crate) struct Supervised {
    pub client: Client,
    pub url: String,
    pub namespace: String,
    pub job_name: String,
    pub run_id: String,
    pub image: String,
    pub memory_mb: u32,
    pub timeout: Duration,
    /// When this server stops the run for its timeout.
    pub deadline: Instant,
    pub bounds: Bounds,
    pub sink: Arc<dyn LogSink>,
    pub cancel: CancelReceiver,
}

/// Why this server stopped a run.
enum Stop {
    Cancelled { reason: String, grace: Duration },
    TimedOut,
    Failed(String),
}

/// How following ended.
enum Finish {
    /// The program ended; its outcome.
    Ended(RunOutcome),
    Stopped(Stop),
    /// The API server stayed out of reach.
    Lost(String),
}

/// What the watches saw so far.
#[derive(Default)]
struct Objects {
    job: Option<Job>,
    job_gone: bool,
    pods: BTreeMap<String, Pod>,
    /// Objects listed since a watch (re)started, replacing the others when
    /// the listing is done.
    job_listing: Option<Option<Job>>,
    pod_listing: Option<BTreeMap<String, Pod>>,
}

impl Objects {
    fn job_event(&mut self, event: Event<Job>) {
        match event {
            Event::Apply(job) => self.job = Some(job),
            Event::Delete(_) => {
                self.job = None;
                self.job_gone = true;
            }
            Event::Init => self.job_listing = Some(None),
            Event::InitApply(job) => self.job_listing = Some(Some(job)),
            Event::InitDone => {
                let listed = self.job_listing.take().flatten();
                self.job_gone = listed.is_none();
                self.job = listed;
            }
        }
    }

    fn pod_event(&mut self, event: Event<Pod>) {
        match event {
            Event::Apply(pod) => {
                self.pods.insert(pod.name_any(), pod);
            }
            Event::Delete(pod) => {
                self.pods.remove(&pod.name_any());
            }
            Event::Init => self.pod_listing = Some(BTreeMap::new()),
            Event::InitApply(pod) => {
                self.pod_listing
                    .get_or_insert_with(BTreeMap::new)
                    .insert(pod.name_any(), pod);
            }
            Event::InitDone => self.pods = self.pod_listing.take().unwrap_or_default(),
        }
    }

    /// Judges the run and tells the log follower about its pod.
    fn judge(&self, facts: Facts<'_>, view_tx: &watch::Sender<PodView>) -> Verdict {
        let seen = Seen {
            job: self.job.as_ref(),
            job_gone: self.job_gone,
            pod: self.pod(),
        };
        let view = status::pod_view(seen.pod);
        view_tx.send_if_modified(|current| {
            let changed = *current != view;
            *current = view;
            changed
        });
        status::judge(seen, facts)
    }

    /// The run's pod: the first created (a Job of one attempt has one).
    fn pod(&self) -> Option<&Pod> {
        self.pods.values().min_by(|a, b| {
            let at = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
            at(a)
                .cmp(&at(b))
                .then_with(|| a.name_any().cmp(&b.name_any()))
        })
    }
}

/// Since when a watch has been failing, and its last error.
#[derive(Default)]
struct Failing(Option<(Instant, String)>);

impl Failing {
    fn record(&mut self, error: &watcher::Error) {
        let reason = match error {
            watcher::Error::InitialListFailed(e)
            | watcher::Error::WatchStartFailed(e)
            | watcher::Error::WatchFailed(e) => describe(e),
            other => chain(other),
        };
        match &mut self.0 {
            Some((_, last)) => *last = reason,
            None => self.0 = Some((Instant::now(), reason)),
        }
    }
}

/// Follows the Job to its end. Resolves after all output went to the sink
/// (or could not be read); the Job stays until the handle's clean-up.
pub(crate) async fn supervise(mut run: Supervised) -> RunOutcome {
    let jobs: Api<Job> = Api::namespaced(run.client.clone(), &run.namespace);
    let pods: Api<Pod> = Api::namespaced(run.client.clone(), &run.namespace);
    let (view_tx, view_rx) = watch::channel(PodView::default());
    let last_log_error = LastError::default();
    let mut follower = tokio::spawn(logs::follow(
        pods.clone(),
        view_rx,
        run.sink.clone(),
        last_log_error.clone(),
    ));
    let finish = watch_to_end(&mut run, &jobs, &pods, &view_tx).await;
    view_tx.send_modify(|view| view.run_ended = true);
    let program_ended = matches!(finish, Finish::Ended(_));
    let (outcome, drain) = match finish {
        Finish::Ended(outcome) => (outcome, Some(DRAIN_LIMIT)),
        Finish::Stopped(stop) => {
            let grace = match &stop {
                Stop::Cancelled { grace, .. } => *grace,
                _ => Duration::ZERO,
            };
            delete_job(&jobs, &run.job_name, grace, run.sink.as_ref()).await;
            let outcome = match stop {
                Stop::Cancelled { reason, .. } => RunOutcome::Cancelled { reason },
                Stop::TimedOut => RunOutcome::TimedOut { after: run.timeout },
                Stop::Failed(reason) => RunOutcome::Failed {
                    reason,
                    exit_code: None,
                },
            };
            (outcome, Some(grace + STOP_DRAIN))
        }
        Finish::Lost(reason) => (
            RunOutcome::Failed {
                reason,
                exit_code: None,
            },
            None,
        ),
    };
    let drained = match drain {
        Some(limit) => tokio::time::timeout(limit, &mut follower).await.is_ok(),
        None => false,
    };
    if !drained {
        follower.abort();
        if program_ended {
            let why = last_log_error
                .lock()
                .expect("log error lock")
                .clone()
                .unwrap_or_else(|| {
                    format!(
                        "it was still arriving {} s after the program ended",
                        DRAIN_LIMIT.as_secs()
                    )
                });
            run.sink
                .system(&format!("the program's output may be incomplete: {why}"));
        }
    }
    outcome
}

/// Problems keeping the run from starting: since when, and which were
/// told to the log.
#[derive(Default)]
struct Problems {
    current: Option<(ProblemKind, Instant, String)>,
    noted: Vec<ProblemKind>,
}

impl Problems {
    /// When the current problem fails the run.
    fn deadline(&self, bounds: &Bounds) -> Option<Instant> {
        let (kind, since, _) = self.current.as_ref()?;
        Some(
            *since
                + match kind {
                    ProblemKind::Start => bounds.image_pull,
                    ProblemKind::Unschedulable => bounds.unschedulable,
                },
        )
    }

    /// The problem the last judgement found (if any); a new kind is noted
    /// in the log once.
    fn see(&mut self, found: Option<Problem>, sink: &dyn LogSink) {
        let Some(found) = found else {
            self.current = None;
            return;
        };
        if !self.noted.contains(&found.kind) {
            self.noted.push(found.kind);
            sink.system(&format!("waiting: {}", found.reason));
        }
        let since = match self.current.take() {
            Some((kind, since, _)) if kind == found.kind => since,
            _ => Instant::now(),
        };
        self.current = Some((found.kind, since, found.reason));
    }
}

/// The run's objects on the API server, read directly when a watch may
/// lag.
struct Reader<'a> {
    jobs: &'a Api<Job>,
    pods: &'a Api<Pod>,
    job_name: &'a str,
    run_id: &'a str,
}

impl Reader<'_> {
    /// Reads the Job once; a failed read changes nothing.
    async fn job(&self, objects: &mut Objects) {
        let read = tokio::time::timeout(READ_TIMEOUT, self.jobs.get_opt(self.job_name)).await;
        if let Ok(Ok(found)) = read {
            objects.job_gone = found.is_none();
            objects.job = found;
        }
    }

    /// Reads the run's pods once; a failed read changes nothing.
    async fn pods(&self, objects: &mut Objects) {
        let params = ListParams::default().labels(&format!("{LABEL_RUN}={}", self.run_id));
        if let Ok(Ok(list)) = tokio::time::timeout(READ_TIMEOUT, self.pods.list(&params)).await {
            objects.pods = list.items.into_iter().map(|p| (p.name_any(), p)).collect();
        }
    }

    /// Judges the run, reading the object whose watch may lag the other's
    /// before taking an outcome that depends on it.
    async fn judge(
        &self,
        objects: &mut Objects,
        facts: Facts<'_>,
        view_tx: &watch::Sender<PodView>,
    ) -> Verdict {
        let verdict = objects.judge(facts, view_tx);
        match verdict {
            Verdict::JobEnded(_) => self.pods(objects).await,
            Verdict::PodEnded(_) => self.job(objects).await,
            _ => return verdict,
        }
        objects.judge(facts, view_tx)
    }
}

/// Watches the Job and its pod until the run ends or is stopped.
async fn watch_to_end(
    run: &mut Supervised,
    jobs: &Api<Job>,
    pods: &Api<Pod>,
    view_tx: &watch::Sender<PodView>,
) -> Finish {
    let config = watcher::Config::default().timeout(WATCH_TIMEOUT_SECONDS);
    let job_selector = format!("metadata.name={}", run.job_name);
    let mut job_events = events(watch_objects(
        jobs.clone(),
        config.clone().fields(&job_selector),
    ));
    let pod_selector = format!("{LABEL_RUN}={}", run.run_id);
    let mut pod_events = events(watch_objects(pods.clone(), config.labels(&pod_selector)));
    let reader = Reader {
        jobs,
        pods,
        job_name: &run.job_name,
        run_id: &run.run_id,
    };
    let facts = Facts {
        image: &run.image,
        memory_mb: run.memory_mb,
        timeout: run.timeout,
    };
    let mut objects = Objects::default();
    let (mut job_failing, mut pod_failing) = (Failing::default(), Failing::default());
    let mut problems = Problems::default();
    let mut cancel_open = true;
    let far = Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600);
    if let Some(request) = run.cancel.borrow_and_update().clone() {
        return cancelled(request);
    }
    loop {
        let problem_at = problems.deadline(&run.bounds);
        let failing = [&job_failing.0, &pod_failing.0]
            .into_iter()
            .flatten()
            .min_by_key(|(since, _)| *since);
        let lost_at = failing.map(|(since, _)| *since + run.bounds.api_unreachable);
        let lost_because = failing.map(|(_, error)| error.clone()).unwrap_or_default();
        tokio::select! {
            event = job_events.next() => match event {
                Some(Ok(event)) => {
                    job_failing = Failing::default();
                    objects.job_event(event);
                }
                Some(Err(error)) => job_failing.record(&error),
                None => return Finish::Lost("the watch of the Job ended".to_owned()),
            },
            event = pod_events.next() => match event {
                Some(Ok(event)) => {
                    pod_failing = Failing::default();
                    objects.pod_event(event);
                }
                Some(Err(error)) => pod_failing.record(&error),
                None => return Finish::Lost("the watch of the pod ended".to_owned()),
            },
            changed = run.cancel.changed(), if cancel_open => match changed {
                Ok(()) => {
                    if let Some(request) = run.cancel.borrow_and_update().clone() {
                        return cancelled(request);
                    }
                }
                Err(_) => cancel_open = false,
            },
            () = tokio::time::sleep_until(run.deadline) => {
                // The program may have ended just now (or, for a run
                // followed again, long ago): look before stopping it.
                reader.job(&mut objects).await;
                reader.pods(&mut objects).await;
                return match objects.judge(facts, view_tx).outcome() {
                    Some(outcome) => Finish::Ended(outcome),
                    None => Finish::Stopped(Stop::TimedOut),
                };
            }
            () = tokio::time::sleep_until(problem_at.unwrap_or(far)), if problem_at.is_some() => {
                let (_, _, reason) = problems.current.take().expect("a problem");
                return Finish::Stopped(Stop::Failed(reason));
            }
            () = tokio::time::sleep_until(lost_at.unwrap_or(far)), if lost_at.is_some() => {
                return Finish::Lost(format!(
                    "lost contact with the Kubernetes API server at {} for {} s while the run was in progress: {lost_because}",
                    run.url,
                    run.bounds.api_unreachable.as_secs_f64().round()
                ));
            }
        }
        match reader.judge(&mut objects, facts, view_tx).await {
            Verdict::Going { problem } => problems.see(problem, run.sink.as_ref()),
            ended => return Finish::Ended(ended.outcome().expect("an ended run's outcome")),
        }
    }
}

fn cancelled(request: playground_executors::CancelRequest) -> Finish {
    Finish::Stopped(Stop::Cancelled {
        reason: request.reason,
        grace: request.grace,
    })
}

type Events<K> = std::pin::Pin<Box<dyn Stream<Item = Result<Event<K>, watcher::Error>> + Send>>;

fn events<K, S>(stream: S) -> Events<K>
where
    S: Stream<Item = Result<Event<K>, watcher::Error>> + Send + 'static,
{
    stream.default_backoff().boxed()
}

/// Deletes a run's Job and (in the background) its pod, ConfigMap and
/// Secret. A few tries; a Job that cannot be deleted still stops at its
/// deadline and goes after its TTL.
async fn delete_job(jobs: &Api<Job>, job_name: &str, grace: Duration, sink: &dyn LogSink) {
    let params = DeleteParams {
        grace_period_seconds: Some(u32::try_from(grace.as_secs()).unwrap_or(u32::MAX)),
        propagation_policy: Some(PropagationPolicy::Background),
        ..Default::default()
    };
    let mut last_error = String::new();
    for attempt in 0..3u32 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(300 * u64::from(attempt))).await;
        }
        match tokio::time::timeout(Duration::from_secs(10), jobs.delete(job_name, &params)).await {
            Ok(Ok(_)) => return,
            Ok(Err(e)) if is_not_found(&e) => return,
            Ok(Err(e)) => last_error = describe(&e),
            Err(_) => last_error = "the API server did not answer".to_owned(),
        }
    }
    tracing::warn!(job = job_name, "could not delete a run's Job: {last_error}");
    sink.system(&format!(
        "could not delete the Job {job_name}: {last_error}; it stops at its deadline"
    ));
}

/// Deletes a run's Job in the background (the handle's clean-up and
/// `discard`); a Job already gone is fine.
pub(crate) async fn remove_job(jobs: &Api<Job>, job_name: &str) -> Result<(), kube::Error> {
    let params = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        ..Default::default()
    };
    match jobs.delete(job_name, &params).await {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(e),
    }
}

/// The handle's clean-up: removes the Job, logging a failure.
pub(crate) fn cleanup(jobs: Api<Job>, job_name: String) -> futures::future::BoxFuture<'static, ()> {
    Box::pin(async move {
        match tokio::time::timeout(Duration::from_secs(30), remove_job(&jobs, &job_name)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(job = %job_name, "could not remove a run's Job: {}", describe(&e))
            }
            Err(_) => tracing::warn!(job = %job_name, "could not remove a run's Job: no answer"),
        }
    })
}
