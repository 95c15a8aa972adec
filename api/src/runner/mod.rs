//! The scheduler: claims QUEUED runs from the durable queue (woken at once
//! by `createRun`, and by other replicas through NOTIFY), keeps their leases
//! alive, supervises each run through its executor, finishes runs whose
//! server died, and drains on shutdown.
//!
//! The loop is small on purpose: claiming, heartbeats and recovery are
//! separate tasks; one run's life is in `supervise`.

pub mod claim;
pub mod logs;
pub mod notify;
mod supervise;
pub mod transitions;

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use playground_entities::{ExecutorKind, runs};
use playground_executors::{CancelRequest, Health};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use tokio::sync::{Notify, watch};
use uuid::Uuid;

use crate::app::AppState;
use crate::config::SchedulerConfig;
use crate::services::environments::executor_kind;
use logs::LogWriter;
use notify::Notifier;

/// Most runs claimed by one statement.
const CLAIM_BATCH: u64 = 64;
/// Most launch templates kept in memory.
const MAX_TEMPLATES: usize = 1024;
/// How often what finished runs left on the engines is looked for.
const CLEANUP_PERIOD: Duration = Duration::from_secs(60);
/// How long a plugin's health answer is trusted before asking again.
const HEALTH_TTL: Duration = Duration::from_secs(2);

/// A run this server is executing.
struct RunControl {
    kind: ExecutorKind,
    cancel: watch::Sender<Option<CancelRequest>>,
}

/// The scheduler's state, part of the app.
pub struct Scheduler {
    config: SchedulerConfig,
    /// `<stable id>:<boot id>`: the lease owner name of this process.
    owner: String,
    /// `<stable id>:`, shared by every boot of this server.
    stable_prefix: String,
    wake: Notify,
    changed: Notify,
    running: Mutex<HashMap<Uuid, RunControl>>,
    stopping: AtomicBool,
    health: Mutex<HashMap<ExecutorKind, (Instant, bool)>>,
    /// (program, version, environment) → what their runs share.
    templates: Mutex<HashMap<(Uuid, i32, Uuid), std::sync::Arc<supervise::LaunchTemplate>>>,
    pub writer: LogWriter,
    pub notifier: Notifier,
    pub transitions: transitions::TransitionWriter,
}

impl Scheduler {
    pub fn new(
        config: SchedulerConfig,
        stable_id: &str,
        writer: LogWriter,
        notifier: Notifier,
        db: sea_orm::DatabaseConnection,
    ) -> Self {
        let boot = Uuid::new_v4().simple().to_string();
        let owner = format!("{stable_id}:{}", &boot[..12]);
        Self {
            transitions: transitions::TransitionWriter::spawn(db, owner.clone()),
            config,
            owner,
            stable_prefix: format!("{stable_id}:"),
            wake: Notify::new(),
            changed: Notify::new(),
            running: Mutex::new(HashMap::new()),
            stopping: AtomicBool::new(false),
            health: Mutex::new(HashMap::new()),
            templates: Mutex::new(HashMap::new()),
            writer,
            notifier,
        }
    }

    /// The lease owner name of this process.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Asks the claim loop to look at the queue now.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    fn n_running(&self, kind: ExecutorKind) -> usize {
        let running = self.running.lock().expect("running lock");
        running.values().filter(|r| r.kind == kind).count()
    }

    fn limit(&self, kind: ExecutorKind) -> usize {
        match kind {
            ExecutorKind::Wasm => self.config.wasm_concurrency,
            ExecutorKind::Docker => self.config.docker_concurrency,
            ExecutorKind::Kubernetes => self.config.kubernetes_concurrency,
        }
    }

    fn register(&self, run_id: Uuid, kind: ExecutorKind) -> watch::Receiver<Option<CancelRequest>> {
        let (cancel, receiver) = watch::channel(None);
        self.running
            .lock()
            .expect("running lock")
            .insert(run_id, RunControl { kind, cancel });
        receiver
    }

    fn unregister(&self, run_id: Uuid) {
        self.running.lock().expect("running lock").remove(&run_id);
        self.changed.notify_waiters();
        self.wake();
    }

    /// Sends a cancel request to a run executing here; false when it is not.
    pub fn cancel_local(&self, run_id: Uuid, reason: String) -> bool {
        let running = self.running.lock().expect("running lock");
        match running.get(&run_id) {
            Some(control) => {
                let _ = control.cancel.send(Some(CancelRequest {
                    grace: Duration::from_secs(self.config.cancel_grace_seconds),
                    reason,
                }));
                true
            }
            None => false,
        }
    }

    async fn healthy(&self, app: &AppState, kind: ExecutorKind) -> bool {
        if let Some((at, ok)) = self.health.lock().expect("health lock").get(&kind)
            && at.elapsed() < HEALTH_TTL
        {
            return *ok;
        }
        let ok = match app.registry.get(executor_kind(kind)) {
            Some(executor) => matches!(executor.health().await, Health::Available { .. }),
            None => false,
        };
        self.health
            .lock()
            .expect("health lock")
            .insert(kind, (Instant::now(), ok));
        ok
    }

    /// Takes an engine found unreachable as unavailable until its health is
    /// asked again, so its runs wait in the queue meanwhile.
    pub fn mark_unavailable(&self, kind: playground_executors::ExecutorKind) {
        let kind = match kind {
            playground_executors::ExecutorKind::Wasm => ExecutorKind::Wasm,
            playground_executors::ExecutorKind::Docker => ExecutorKind::Docker,
            playground_executors::ExecutorKind::Kubernetes => ExecutorKind::Kubernetes,
        };
        self.health
            .lock()
            .expect("health lock")
            .insert(kind, (Instant::now(), false));
    }

    fn lease_until(&self) -> chrono::DateTime<Utc> {
        Utc::now() + chrono::Duration::seconds(self.config.lease_seconds as i64)
    }

    /// Starts the claim loop, the heartbeat and recovery.
    pub fn start(app: &AppState) {
        tokio::spawn(claim_loop(app.clone()));
        tokio::spawn(heartbeat_loop(app.clone()));
    }

    /// Stops claiming, lets runs finish for the grace period, then cancels
    /// what is left and waits for it to be recorded.
    pub async fn shutdown(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.wake();
        let grace = Duration::from_secs(self.config.shutdown_grace_seconds);
        if !self.wait_idle(grace).await {
            let ids: Vec<Uuid> = self
                .running
                .lock()
                .expect("running lock")
                .keys()
                .copied()
                .collect();
            tracing::warn!(
                n_runs = ids.len(),
                "runs still going after the shutdown grace period; cancelling them"
            );
            for run_id in ids {
                self.cancel_local(
                    run_id,
                    format!(
                        "cancelled: the server shut down and the run did not finish within {}s",
                        grace.as_secs()
                    ),
                );
            }
            let cancel_grace = Duration::from_secs(self.config.cancel_grace_seconds);
            self.wait_idle(cancel_grace + Duration::from_secs(5)).await;
        }
    }

    async fn wait_idle(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let changed = self.changed.notified();
            if self.running.lock().expect("running lock").is_empty() {
                return true;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return self.running.lock().expect("running lock").is_empty();
            }
        }
    }
}

async fn claim_loop(app: AppState) {
    let scheduler = &app.scheduler;
    while !scheduler.stopping.load(Ordering::SeqCst) {
        let mut more = false;
        for kind in [
            ExecutorKind::Wasm,
            ExecutorKind::Docker,
            ExecutorKind::Kubernetes,
        ] {
            let free = scheduler
                .limit(kind)
                .saturating_sub(scheduler.n_running(kind));
            if free == 0 || !scheduler.healthy(&app, kind).await {
                continue;
            }
            let batch = (free as u64).min(CLAIM_BATCH);
            match claim::claim(
                &app.db,
                kind,
                batch,
                &scheduler.owner,
                scheduler.lease_until(),
            )
            .await
            {
                Ok(claimed) => {
                    more |= claimed.len() as u64 == batch;
                    for run in claimed {
                        let cancel = scheduler.register(run.id, kind);
                        crate::services::runs::publish_status(&app, &run);
                        scheduler.notifier.status_changed(run.id);
                        tokio::spawn(supervise::supervise(app.clone(), run, cancel, None));
                    }
                }
                Err(error) => tracing::error!(?error, "claiming runs failed"),
            }
        }
        if !more {
            tokio::select! {
                _ = scheduler.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }
}

async fn heartbeat_loop(app: AppState) {
    let scheduler = &app.scheduler;
    let period = Duration::from_millis((scheduler.config.lease_seconds * 1000 / 3).max(200));
    // Renew our leases first, then recover others' runs: at once on start,
    // then every period.
    let mut last_cleanup = None;
    loop {
        let held: Vec<Uuid> = scheduler
            .running
            .lock()
            .expect("running lock")
            .keys()
            .copied()
            .collect();
        match claim::renew(&app.db, &scheduler.owner, &held, scheduler.lease_until()).await {
            Ok(renewed) => {
                // A run we no longer hold is another server's now: stop ours.
                // (A run that ended meanwhile is not renewed either.)
                let renewed: std::collections::HashSet<Uuid> = renewed.into_iter().collect();
                let missing: Vec<Uuid> = held
                    .iter()
                    .filter(|id| !renewed.contains(id))
                    .copied()
                    .collect();
                match claim::taken_by_others(&app.db, &scheduler.owner, &missing).await {
                    Ok(lost) => {
                        for run_id in lost {
                            tracing::warn!(run = %run_id, "lost the run's lease; stopping it here");
                            scheduler
                                .cancel_local(run_id, "the server lost the run's lease".to_owned());
                        }
                    }
                    Err(error) => tracing::error!(?error, "checking runs not renewed failed"),
                }
            }
            Err(error) => tracing::error!(?error, "renewing run leases failed"),
        }
        if !scheduler.stopping.load(Ordering::SeqCst) {
            recover(&app).await;
            if last_cleanup.is_none_or(|at: Instant| at.elapsed() >= CLEANUP_PERIOD) {
                remove_leftovers(&app).await;
                last_cleanup = Some(Instant::now());
            }
        }
        match claim::cancel_requests(&app.db, &scheduler.owner).await {
            Ok(requests) => {
                for (run_id, reason) in requests {
                    scheduler.cancel_local(run_id, reason);
                }
            }
            Err(error) => tracing::error!(?error, "reading cancel requests failed"),
        }
        tokio::time::sleep(period).await;
    }
}

/// Finishes or reattaches active runs whose server died.
async fn recover(app: &AppState) {
    let scheduler = &app.scheduler;
    let orphans = match claim::orphans(&app.db, &scheduler.owner, &scheduler.stable_prefix).await {
        Ok(orphans) => orphans,
        Err(error) => {
            tracing::error!(?error, "looking for orphaned runs failed");
            return;
        }
    };
    for run in orphans {
        if scheduler
            .running
            .lock()
            .expect("running lock")
            .contains_key(&run.id)
        {
            continue;
        }
        match claim::take_over(
            &app.db,
            &run,
            &scheduler.owner,
            &scheduler.stable_prefix,
            scheduler.lease_until(),
        )
        .await
        {
            Ok(true) => {
                tracing::info!(run = %run.id, previous = ?run.lease_owner, "taking over an orphaned run");
                let run = runs::Model {
                    lease_owner: Some(scheduler.owner.clone()),
                    ..run
                };
                let kind = match environment_kind(app, run.environment_id).await {
                    Some(kind) => kind,
                    None => ExecutorKind::Wasm,
                };
                let cancel = scheduler.register(run.id, kind);
                tokio::spawn(supervise::supervise(app.clone(), run, cancel, Some(kind)));
            }
            Ok(false) => {}
            Err(error) => tracing::error!(?error, run = %run.id, "taking over a run failed"),
        }
    }
}

/// Removes what runs left on the engines: containers (or Jobs) of runs
/// that have ended, and of runs the database does not know when this server
/// started them. What belongs to active runs is left to their servers (or
/// to recovery, which reattaches to it).
async fn remove_leftovers(app: &AppState) {
    let scheduler = &app.scheduler;
    let instance_id = scheduler.stable_prefix.trim_end_matches(':');
    for kind in [ExecutorKind::Docker, ExecutorKind::Kubernetes] {
        let Some(executor) = app.registry.get(executor_kind(kind)) else {
            continue;
        };
        if !scheduler.healthy(app, kind).await {
            continue;
        }
        let started = match executor.list_started().await {
            Ok(started) => started,
            Err(error) => {
                tracing::warn!(?kind, error = %error.message, "listing what runs left on the engine failed");
                continue;
            }
        };
        for leftover in started {
            let run_id = Uuid::parse_str(&leftover.run_id).ok();
            if run_id.is_some_and(|id| {
                scheduler
                    .running
                    .lock()
                    .expect("running lock")
                    .contains_key(&id)
            }) {
                continue;
            }
            let run = match run_id {
                Some(id) => match runs::Entity::find_by_id(id).one(&app.read).await {
                    Ok(run) => run,
                    Err(error) => {
                        tracing::warn!(?error, "reading a run to clean up after it failed");
                        continue;
                    }
                },
                None => None,
            };
            let remove = match &run {
                Some(run) => run.status.is_terminal(),
                None => leftover.instance_id == instance_id,
            };
            if !remove {
                continue;
            }
            tracing::info!(run = %leftover.run_id, external_ref = %leftover.external_ref, "removing what a finished run left on the engine");
            if let Err(error) = executor.discard(&leftover.external_ref).await {
                tracing::warn!(run = %leftover.run_id, error = %error.message, "removing a finished run's leftovers failed");
            }
        }
    }
}

async fn environment_kind(app: &AppState, environment_id: Uuid) -> Option<ExecutorKind> {
    playground_entities::environments::Entity::find_by_id(environment_id)
        .one(&app.read)
        .await
        .ok()
        .flatten()
        .map(|e| e.executor)
}

/// Records a cancel request for a run another server may be executing.
pub async fn record_cancel_request(
    app: &crate::app::App,
    run_id: Uuid,
    reason: &str,
) -> Result<(), sea_orm::DbErr> {
    runs::Entity::update_many()
        .col_expr(
            runs::Column::CancelReason,
            Expr::value(Some(reason.to_owned())),
        )
        .filter(runs::Column::Id.eq(run_id))
        .filter(runs::Column::Status.is_in(claim::ACTIVE))
        .filter(runs::Column::CancelReason.is_null())
        .exec(&app.db)
        .await?;
    Ok(())
}

/// Handles an event from another replica.
pub fn on_remote_event(app: &AppState, event: notify::Remote) {
    match event {
        notify::Remote::RunQueued => app.scheduler.wake(),
        notify::Remote::LogsStored { .. } => {}
        notify::Remote::StatusChanged { run_id } => {
            let app = app.clone();
            tokio::spawn(async move {
                if let Ok(Some(run)) = runs::Entity::find_by_id(run_id).one(&app.read).await {
                    crate::services::runs::publish_status(&app, &run);
                }
            });
        }
        notify::Remote::CancelRequested { run_id } => {
            let app = app.clone();
            tokio::spawn(async move {
                if let Ok(Some(run)) = runs::Entity::find_by_id(run_id).one(&app.read).await
                    && let Some(reason) = run.cancel_reason
                {
                    app.scheduler.cancel_local(run_id, reason);
                }
            });
        }
    }
}
