//! One run: a fresh WASI context and [`Store`] with the environment's memory
//! limit, the program files preopened read-only at `/work`, instantiation
//! from a cached [`InstancePre`], and a watch on the timeout and the cancel
//! signal, which stop the guest through epoch interruption.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use playground_executors::{CancelReceiver, LogSink, OutputStream, RunOutcome};
use wasmtime::{Engine, InstancePre, ResourceLimiter, Store, Trap, UpdateDeadline};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtxBuilder};

use crate::output::SinkStream;

/// Where the program files appear inside the sandbox.
pub(crate) const WORK_DIR: &str = "/work";

/// How long a stopped guest may take to reach its next epoch check before
/// its call is dropped (a guest blocked in a host call never reaches one).
const STOP_WAIT: Duration = Duration::from_millis(100);

/// The most table elements a run may have.
const MAX_TABLE_ELEMENTS: usize = 1_000_000;

const RUNNING: u8 = 0;
const TIMED_OUT: u8 = 1;
const CANCELLED: u8 = 2;

/// The state of one run's [`Store`].
pub(crate) struct State {
    wasi: WasiP1Ctx,
    limits: Limits,
}

impl State {
    pub(crate) fn wasi(&mut self) -> &mut WasiP1Ctx {
        &mut self.wasi
    }
}

/// The memory limit of one run, remembering whether it refused a growth.
struct Limits {
    max_memory_bytes: usize,
    refused: bool,
}

impl ResourceLimiter for Limits {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_memory_bytes {
            self.refused = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

/// What to run, resolved by the executor.
pub(crate) struct RunPlan {
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    /// The program files, preopened read-only at [`WORK_DIR`].
    pub work: PathBuf,
    pub memory_mb: u32,
    pub timeout: Duration,
}

/// Runs `pre` to the end under `plan`'s limits; all output has gone to
/// `sink` when this returns.
pub(crate) async fn execute(
    engine: Engine,
    pre: InstancePre<State>,
    plan: RunPlan,
    sink: Arc<dyn LogSink>,
    mut cancel: CancelReceiver,
) -> RunOutcome {
    let mut builder = WasiCtxBuilder::new();
    builder
        .args(&plan.argv)
        .envs(&plan.env)
        .stdout(SinkStream::new(sink.clone(), OutputStream::Stdout))
        .stderr(SinkStream::new(sink, OutputStream::Stderr))
        .allow_ip_name_lookup(false)
        .allow_tcp(false)
        .allow_udp(false);
    if let Err(e) = builder.preopened_dir(&plan.work, WORK_DIR, FsPerms::ReadOnly) {
        return failed(format!("could not give the program its files: {e:#}"));
    }
    let max_memory_bytes = (plan.memory_mb as usize).saturating_mul(1024 * 1024);
    let state = State {
        wasi: builder.build_p1(),
        limits: Limits {
            max_memory_bytes,
            refused: false,
        },
    };
    let mut store = Store::new(&engine, state);
    store.limiter(|state| &mut state.limits);
    let stop = Arc::new(AtomicU8::new(RUNNING));
    let stop_flag = stop.clone();
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        if stop_flag.load(Ordering::Relaxed) != RUNNING {
            return Err(wasmtime::Error::msg("the run was stopped"));
        }
        // Give the async runtime a turn every tick, so a spinning guest
        // does not hold a worker thread and the timeout/cancel watch runs.
        Ok(UpdateDeadline::Yield(1))
    });

    let mut cancel_reason = None;
    if let Some(request) = cancel.borrow_and_update().clone() {
        cancel_reason = Some(request.reason);
        stop.store(CANCELLED, Ordering::Relaxed);
    }
    let now = tokio::time::Instant::now();
    let deadline = now
        .checked_add(plan.timeout)
        .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600));

    let result = {
        let store = &mut store;
        let call = async move {
            let instance = pre.instantiate_async(&mut *store).await?;
            let Some(start) = instance.get_func(&mut *store, "_start") else {
                return Err(wasmtime::Error::msg(NO_START));
            };
            start
                .typed::<(), ()>(&*store)?
                .call_async(&mut *store, ())
                .await
        };
        tokio::pin!(call);
        let sleep = tokio::time::sleep_until(deadline);
        tokio::pin!(sleep);
        let mut cancel_open = true;
        let mut finished = None;
        while stop.load(Ordering::Relaxed) == RUNNING {
            tokio::select! {
                result = &mut call => {
                    finished = Some(result);
                    break;
                }
                () = &mut sleep => stop.store(TIMED_OUT, Ordering::Relaxed),
                changed = cancel.changed(), if cancel_open => match changed {
                    Ok(()) => {
                        if let Some(request) = cancel.borrow_and_update().clone() {
                            cancel_reason = Some(request.reason);
                            stop.store(CANCELLED, Ordering::Relaxed);
                        }
                    }
                    Err(_) => cancel_open = false,
                },
            }
        }
        match finished {
            Some(result) => Some(result),
            // Stopped: the guest traps at its next epoch check; one blocked
            // in a host call is dropped (wasmtime unwinds its stack).
            None => tokio::time::timeout(STOP_WAIT, &mut call).await.ok(),
        }
    };
    let refused = store.data().limits.refused;
    drop(store);

    match stop.load(Ordering::Relaxed) {
        TIMED_OUT => RunOutcome::TimedOut {
            after: plan.timeout,
        },
        CANCELLED => RunOutcome::Cancelled {
            reason: cancel_reason.unwrap_or_else(|| "cancelled".to_owned()),
        },
        _ => classify(result, refused, plan.memory_mb),
    }
}

const NO_START: &str = "the module exports no `_start` function: it is not a WASI command module";

/// The outcome of a call that ended by itself.
fn classify(result: Option<wasmtime::Result<()>>, refused: bool, memory_mb: u32) -> RunOutcome {
    let memory = format!("the program exceeded its memory limit of {memory_mb} MB");
    let error = match result {
        None => return failed("the run was stopped by the engine".to_owned()),
        Some(Ok(())) => return RunOutcome::Exited { code: 0 },
        Some(Err(error)) => error,
    };
    if let Some(exit) = error.downcast_ref::<I32Exit>() {
        return if refused && exit.0 != 0 {
            RunOutcome::Failed {
                reason: format!("{memory} (it exited with code {})", exit.0),
                exit_code: Some(exit.0),
            }
        } else {
            RunOutcome::Exited { code: exit.0 }
        };
    }
    let detail = match error.downcast_ref::<Trap>() {
        Some(trap) => format!("the program trapped: {trap}"),
        None if error.to_string() == NO_START => NO_START.to_owned(),
        None => format!("the program failed: {error:#}"),
    };
    if refused {
        failed(format!("{memory}; then {detail}"))
    } else {
        failed(detail)
    }
}

fn failed(reason: String) -> RunOutcome {
    RunOutcome::Failed {
        reason,
        exit_code: None,
    }
}
