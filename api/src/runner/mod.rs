//! The scheduler: claims QUEUED runs from the durable queue (woken at once
//! by `createRun`, and by other replicas through NOTIFY), keeps their leases
//! alive, supervises each run through its executor, finishes runs whose
//! server died, and drains on shutdown.
//!
//! The loop is small on purpose: claiming, heartbeats and recovery are
//! separate tasks; one run's life is in `supervise`.

pub mod claim;
pub mod inserts;
pub mod logs;
pub mod notify;
mod supervise;
pub mod transitions;

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
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
const CLAIM_BATCH: usize = 64;
/// Most launch templates kept in memory.
const MAX_TEMPLATES: usize = 1024;
/// How often what finished runs left on the engines is looked for.
const CLEANUP_PERIOD: Duration = Duration::from_secs(60);
/// How long a plugin's health answer is trusted before asking again.
const HEALTH_TTL: Duration = Duration::from_secs(2);

/// A run this server holds: executing, or recording how it ended.
struct RunControl {
    kind: ExecutorKind,
    cancel: watch::Sender<Option<CancelRequest>>,
    /// Whether the run still takes one of its kind's slots: from its claim
    /// until its executor reports the outcome. Storing its last lines and
    /// its terminal status does not hold a slot.
    executing: bool,
}

/// The executor kinds, in the order of [`Scheduler::queued`].
const KINDS: [ExecutorKind; 3] = [
    ExecutorKind::Wasm,
    ExecutorKind::Docker,
    ExecutorKind::Kubernetes,
];

fn kind_index(kind: ExecutorKind) -> usize {
    match kind {
        ExecutorKind::Wasm => 0,
        ExecutorKind::Docker => 1,
        ExecutorKind::Kubernetes => 2,
    }
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
    /// Per kind, slots taken for runs being claimed (see [`Reservation`]).
    reserved: [AtomicUsize; 3],
    /// Per kind, bumped whenever runs of that kind may be waiting in the
    /// queue (a run queued, put back, or its environment became ready).
    queued: [AtomicU64; 3],
    /// Per kind, the value of `queued` when a claim last found no more
    /// claimable runs. While the two are equal the queue holds none, and a
    /// new run may start at once without passing anyone.
    drained: [AtomicU64; 3],
    stopping: AtomicBool,
    health: Mutex<HashMap<ExecutorKind, (Instant, bool)>>,
    /// (program, version, environment) → what their runs share.
    templates: Mutex<HashMap<(Uuid, i32, Uuid), std::sync::Arc<supervise::LaunchTemplate>>>,
    pub writer: LogWriter,
    pub notifier: Notifier,
    pub transitions: transitions::TransitionWriter,
    pub inserts: inserts::RunInserter,
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
            inserts: inserts::RunInserter::spawn(db.clone()),
            transitions: transitions::TransitionWriter::spawn(db, owner.clone()),
            config,
            owner,
            stable_prefix: format!("{stable_id}:"),
            wake: Notify::new(),
            changed: Notify::new(),
            running: Mutex::new(HashMap::new()),
            reserved: [
                AtomicUsize::new(0),
                AtomicUsize::new(0),
                AtomicUsize::new(0),
            ],
            // What the queue holds at start is unknown until the first claim.
            queued: [AtomicU64::new(1), AtomicU64::new(1), AtomicU64::new(1)],
            drained: [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)],
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

    /// Tells the claim loop that runs may be waiting in the queue, and
    /// wakes it.
    pub fn queue_changed(&self) {
        self.queuing();
        self.wake();
    }

    /// Notes that a run is about to be queued (before its row is stored, so
    /// that no new run passes it meanwhile; [`Scheduler::queue_changed`]
    /// follows once it is stored).
    pub fn queuing(&self) {
        for queued in &self.queued {
            queued.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn may_have_queued(&self, kind: ExecutorKind) -> bool {
        let k = kind_index(kind);
        self.queued[k].load(Ordering::SeqCst) != self.drained[k].load(Ordering::SeqCst)
    }

    fn executing(running: &HashMap<Uuid, RunControl>, kind: ExecutorKind) -> usize {
        running
            .values()
            .filter(|r| r.kind == kind && r.executing)
            .count()
    }

    /// Takes up to `at_most` free slots of `kind` for runs about to be
    /// claimed; `None` when none is free. Slots are taken under the lock of
    /// the running runs, so claims made at once never pass the limit.
    fn reserve(app: &AppState, kind: ExecutorKind, at_most: usize) -> Option<Reservation> {
        let scheduler = &app.scheduler;
        let reserved = &scheduler.reserved[kind_index(kind)];
        let running = scheduler.running.lock().expect("running lock");
        let used = Self::executing(&running, kind) + reserved.load(Ordering::SeqCst);
        let free = scheduler.limit(kind).saturating_sub(used).min(at_most);
        if free == 0 {
            return None;
        }
        reserved.fetch_add(free, Ordering::SeqCst);
        Some(Reservation {
            app: app.clone(),
            kind,
            n: free,
        })
    }

    /// A slot for a run being created, when it can start at once: its
    /// environment takes runs, its engine was healthy when last asked, a
    /// slot of its kind is free and no queued run of its kind waits (so it
    /// passes no one). `createRun` then claims that run itself
    /// ([`claim_created`]) instead of waking the claim loop.
    pub fn start_now(
        app: &AppState,
        kind: ExecutorKind,
        environment_takes_runs: bool,
    ) -> Option<Reservation> {
        let scheduler = &app.scheduler;
        if !environment_takes_runs
            || scheduler.stopping.load(Ordering::SeqCst)
            || scheduler.may_have_queued(kind)
            || !scheduler.last_healthy(kind)
        {
            return None;
        }
        Self::reserve(app, kind, 1)
    }

    /// The run's executor reported its outcome: its slot is free for the
    /// next run while its end is recorded.
    fn release(&self, run_id: Uuid) {
        if let Some(control) = self.running.lock().expect("running lock").get_mut(&run_id) {
            control.executing = false;
        }
        self.wake();
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
        self.running.lock().expect("running lock").insert(
            run_id,
            RunControl {
                kind,
                cancel,
                executing: true,
            },
        );
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

    /// Whether the engine of `kind` was healthy when last asked (never
    /// asks it: for the request path). An answer gone stale costs little:
    /// a run whose engine turns out unreachable goes back to the queue.
    fn last_healthy(&self, kind: ExecutorKind) -> bool {
        self.health
            .lock()
            .expect("health lock")
            .get(&kind)
            .is_some_and(|(_, ok)| *ok)
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

    pub fn lease_until(&self) -> chrono::DateTime<Utc> {
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
            if self.idle() {
                return true;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return self.idle();
            }
        }
    }

    /// No run held, and no run being claimed.
    fn idle(&self) -> bool {
        self.running.lock().expect("running lock").is_empty()
            && self
                .reserved
                .iter()
                .all(|reserved| reserved.load(Ordering::SeqCst) == 0)
    }
}

async fn claim_loop(app: AppState) {
    let scheduler = &app.scheduler;
    while !scheduler.stopping.load(Ordering::SeqCst) {
        let mut more = false;
        for kind in KINDS {
            let Some(mut reservation) = Scheduler::reserve(&app, kind, CLAIM_BATCH) else {
                continue;
            };
            if !scheduler.healthy(&app, kind).await {
                continue;
            }
            let batch = reservation.n as u64;
            let queued = scheduler.queued[kind_index(kind)].load(Ordering::SeqCst);
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
                    if (claimed.len() as u64) < batch {
                        // Nothing claimable was left when the claim ran;
                        // what was queued since has bumped `queued`.
                        scheduler.drained[kind_index(kind)].store(queued, Ordering::SeqCst);
                    }
                    more |= claimed.len() as u64 == batch;
                    for run in claimed {
                        let cancel = reservation.register(run.id);
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

/// Slots taken for runs about to be claimed. Each claimed run is
/// registered in one ([`Reservation::register`]); what is left is given
/// back when the reservation is dropped.
pub struct Reservation {
    app: AppState,
    kind: ExecutorKind,
    n: usize,
}

impl Reservation {
    /// Registers a claimed run in one of the slots.
    fn register(&mut self, run_id: Uuid) -> watch::Receiver<Option<CancelRequest>> {
        let receiver = self.app.scheduler.register(run_id, self.kind);
        if self.n > 0 {
            self.n -= 1;
            self.app.scheduler.reserved[kind_index(self.kind)].fetch_sub(1, Ordering::SeqCst);
        }
        receiver
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let scheduler = &self.app.scheduler;
        scheduler.reserved[kind_index(self.kind)].fetch_sub(self.n, Ordering::SeqCst);
        scheduler.changed.notify_waiters();
    }
}

/// Claims a run `createRun` has just queued, in the slot it took with
/// [`Scheduler::start_now`], and supervises it: the run starts without
/// waiting for the claim loop. If the claim loop (or another server, or a
/// cancel) got to it first, the slot is given back.
pub fn claim_created(app: &AppState, run_id: Uuid, mut reservation: Reservation) {
    let app = app.clone();
    tokio::spawn(async move {
        let scheduler = &app.scheduler;
        if scheduler.stopping.load(Ordering::SeqCst) {
            // Shutting down: the run waits in the queue for the next server.
            return;
        }
        match claim::claim_one(&app.db, run_id, &scheduler.owner, scheduler.lease_until()).await {
            Ok(Some(run)) => {
                let cancel = reservation.register(run.id);
                drop(reservation);
                crate::services::runs::publish_status(&app, &run);
                scheduler.notifier.status_changed(run.id);
                tokio::spawn(supervise::supervise(app.clone(), run, cancel, None));
            }
            Ok(None) => {}
            Err(error) => {
                tracing::error!(run = %run_id, ?error, "claiming a new run failed; it waits in the queue");
                drop(reservation);
                scheduler.queue_changed();
            }
        }
    });
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
        notify::Remote::RunQueued => app.scheduler.queue_changed(),
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
