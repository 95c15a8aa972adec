//! The WASM executor plugin: runs WebAssembly (WASI preview 1) modules, and
//! Python through a CPython build for WASI, in a sandbox inside the server
//! process (wasmtime).
//!
//! One [`wasmtime::Engine`] per executor, with epoch interruption driven by
//! a ticker thread (timeouts, cancel, and yielding to the async runtime).
//! Modules are compiled once and cached on disk and in memory
//! ([`cache`]); a program's files are written once per distinct set and
//! preopened read-only at `/work` ([`files`]); each run gets its own store,
//! limits and WASI context ([`run`]), and its output goes straight to the
//! run's sink ([`output`]).

mod cache;
mod config;
mod files;
mod output;
mod run;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use playground_executors::{
    CancelReceiver, ConfigError, EnvironmentSpec, Executor, ExecutorError, ExecutorKind, Health,
    LogSink, RunHandle, RunOutcome, RunSpec, Runtime,
};
use wasmtime::{Config, Engine, Linker};

use crate::cache::{ModuleCache, Source};
use crate::files::FileSets;
use crate::run::{RunPlan, State, WORK_DIR};

pub use config::WasmConfig;

/// The wasmtime version this plugin is built with.
pub const WASMTIME_VERSION: &str = "48.0.8";

/// How often the epoch advances: the granularity of timeouts and cancels.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Server-wide settings of the WASM executor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WasmSettings {
    /// Where compiled modules are cached (e.g. `<data-dir>/wasm-cache`).
    pub cache_dir: PathBuf,
    /// The CPython-for-WASI interpreter used for PYTHON programs when an
    /// environment does not name one (`PLAYGROUND_PYTHON_WASM`).
    pub python_wasm: Option<PathBuf>,
}

/// Runs programs in an in-process WebAssembly sandbox.
pub struct WasmExecutor {
    engine: Engine,
    cache: Arc<ModuleCache>,
    files: FileSets,
    settings: WasmSettings,
    ticker_stop: Arc<AtomicBool>,
    /// Guests run on threads of their own, so programs that use all the
    /// CPU cannot starve the server's requests and database work.
    guests: Option<tokio::runtime::Runtime>,
}

impl WasmExecutor {
    /// Builds the engine and starts its epoch ticker. Fails only if wasmtime
    /// cannot be set up on this machine.
    pub fn new(settings: WasmSettings) -> Result<Self, ExecutorError> {
        let mut config = Config::new();
        // Instances use the on-demand allocator. Measured on 2 cores
        // (release): ~28,000 trivial runs/s through `launch`, so the pooling
        // allocator's gain (15-30 % in an earlier measurement) is not worth
        // its fixed caps: a bounded number of concurrent instances (a run
        // past the cap fails to instantiate) and per-slot table and
        // instance-size limits a large module such as CPython must fit.
        config.epoch_interruption(true);
        let engine = Engine::new(&config)
            .map_err(|e| ExecutorError::new(format!("cannot start wasmtime: {e:#}")))?;
        let mut linker: Linker<State> = Linker::new(&engine);
        wasmtime_wasi::p1::add_to_linker_async(&mut linker, State::wasi)
            .map_err(|e| ExecutorError::new(format!("cannot set up WASI: {e:#}")))?;
        let cache = Arc::new(ModuleCache::new(
            engine.clone(),
            linker,
            settings.cache_dir.clone(),
        ));
        let ticker_stop = Arc::new(AtomicBool::new(false));
        let (ticker_engine, stop) = (engine.clone(), ticker_stop.clone());
        std::thread::Builder::new()
            .name("wasm-epoch".to_owned())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    ticker_engine.increment_epoch();
                }
            })
            .map_err(|e| ExecutorError::new(format!("cannot start the epoch ticker: {e}")))?;
        let n_threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let guests = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n_threads)
            .thread_name("wasm-guest")
            .enable_all()
            .build()
            .map_err(|e| ExecutorError::new(format!("cannot start the guest threads: {e}")))?;
        Ok(Self {
            guests: Some(guests),
            engine,
            cache,
            files: FileSets::new(&settings.cache_dir),
            settings,
            ticker_stop,
        })
    }

    /// How many modules this executor compiled (loads from the disk cache
    /// do not count).
    pub fn n_compilations(&self) -> u64 {
        self.cache.compilations()
    }

    /// The Python interpreter an environment uses, if any.
    fn python_path(&self, config: &WasmConfig) -> Option<PathBuf> {
        config
            .python_wasm
            .as_ref()
            .map(PathBuf::from)
            .or_else(|| self.settings.python_wasm.clone())
    }

    fn config(environment: &EnvironmentSpec) -> Result<WasmConfig, ExecutorError> {
        WasmConfig::from_environment(environment).map_err(|e| ExecutorError::new(e.message))
    }
}

impl Drop for WasmExecutor {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
        // May be dropped inside an async context, where a blocking shutdown
        // would panic.
        if let Some(guests) = self.guests.take() {
            guests.shutdown_background();
        }
    }
}

#[async_trait]
impl Executor for WasmExecutor {
    fn kind(&self) -> ExecutorKind {
        ExecutorKind::Wasm
    }

    async fn health(&self) -> Health {
        let python = match &self.settings.python_wasm {
            Some(path) if path.is_file() => format!("Python interpreter {}", path.display()),
            Some(path) => format!("Python interpreter {} is missing", path.display()),
            None => "no default Python interpreter (PLAYGROUND_PYTHON_WASM unset)".to_owned(),
        };
        Health::Available {
            detail: format!("wasmtime {WASMTIME_VERSION} (in-process, WASI preview 1); {python}"),
        }
    }

    fn validate(&self, environment: &EnvironmentSpec) -> Result<(), ConfigError> {
        WasmConfig::from_environment(environment).map(|_| ())
    }

    async fn prepare(
        &self,
        environment: &EnvironmentSpec,
        events: &dyn LogSink,
    ) -> Result<(), ExecutorError> {
        let config = Self::config(environment)?;
        let Some(path) = self.python_path(&config) else {
            events.system("no Python interpreter configured: this environment runs WASM modules");
            return Ok(());
        };
        if !path.is_file() {
            return Err(ExecutorError::new(format!(
                "the Python interpreter {} does not exist; set PLAYGROUND_PYTHON_WASM or config.pythonWasm to a CPython-for-WASI .wasm file",
                path.display()
            )));
        }
        events.system(&format!(
            "preparing the Python interpreter {}",
            path.display()
        ));
        let started = Instant::now();
        let before = self.cache.compilations();
        self.cache
            .get(Source::File(path.clone()))
            .await
            .map_err(|e| {
                ExecutorError::new(format!("Python interpreter {}: {e}", path.display()))
            })?;
        let how = if self.cache.compilations() > before {
            "compiled"
        } else {
            "loaded from the cache"
        };
        events.system(&format!(
            "Python interpreter ready ({how} in {:.1} s)",
            started.elapsed().as_secs_f64()
        ));
        Ok(())
    }

    async fn launch(
        &self,
        run_spec: RunSpec,
        sink: Arc<dyn LogSink>,
        cancel: CancelReceiver,
    ) -> Result<RunHandle, ExecutorError> {
        let config = Self::config(&run_spec.environment)?;
        let entrypoint = run_spec.entrypoint.clone();
        let file = run_spec.files.iter().find(|f| f.path == entrypoint);
        let mut env: Vec<(String, String)> = run_spec.all_env().cloned().collect();
        let (pre, argv) = match run_spec.runtime {
            Runtime::Shell => {
                return Err(ExecutorError::new(
                    "SHELL programs need a DOCKER or KUBERNETES environment",
                ));
            }
            Runtime::Wasm => {
                let file = file.ok_or_else(|| missing_entrypoint(&entrypoint))?;
                let content = file.content.clone();
                let is_text = entrypoint.ends_with(".wat")
                    || (!entrypoint.ends_with(".wasm") && !content.starts_with(b"\0asm"));
                let source = if is_text {
                    Source::Text(content)
                } else {
                    Source::Binary(content)
                };
                let pre = self
                    .cache
                    .get(source)
                    .await
                    .map_err(|e| ExecutorError::new(format!("{entrypoint}: {e}")))?;
                let mut argv = vec![entrypoint.clone()];
                argv.extend(run_spec.args.iter().cloned());
                (pre, argv)
            }
            Runtime::Python => {
                file.ok_or_else(|| missing_entrypoint(&entrypoint))?;
                let path = self.python_path(&config).ok_or_else(|| {
                    ExecutorError::new(
                        "PYTHON programs need a Python interpreter: set PLAYGROUND_PYTHON_WASM on the server or config.pythonWasm on the environment",
                    )
                })?;
                let pre = self
                    .cache
                    .get(Source::File(path.clone()))
                    .await
                    .map_err(|e| {
                        ExecutorError::new(format!("Python interpreter {}: {e}", path.display()))
                    })?;
                for (key, value) in [("PYTHONUNBUFFERED", "1"), ("PYTHONDONTWRITEBYTECODE", "1")] {
                    if !env.iter().any(|(k, _)| k == key) {
                        env.push((key.to_owned(), value.to_owned()));
                    }
                }
                let mut argv = vec!["python".to_owned(), format!("{WORK_DIR}/{entrypoint}")];
                argv.extend(run_spec.args.iter().cloned());
                (pre, argv)
            }
        };
        let resources = run_spec.environment.resources;
        let work = self
            .files
            .directory(&run_spec.files)
            .await
            .map_err(ExecutorError::new)?;
        let plan = RunPlan {
            argv,
            env,
            work,
            memory_mb: resources.memory_mb,
            timeout: resources.timeout,
        };
        let guests = self
            .guests
            .as_ref()
            .expect("the guest runtime lives as long as the executor");
        let task = guests.spawn(run::execute(self.engine.clone(), pre, plan, sink, cancel));
        Ok(RunHandle {
            external_ref: None,
            outcome: Box::pin(async move {
                task.await.unwrap_or_else(|e| RunOutcome::Failed {
                    reason: format!("the sandbox failed: {e}"),
                    exit_code: None,
                })
            }),
            cleanup: None,
        })
    }
}

fn missing_entrypoint(entrypoint: &str) -> ExecutorError {
    ExecutorError::new(format!(
        "the entrypoint {entrypoint} is not one of the program's files"
    ))
}
