//! The WASM executor plugin: runs WebAssembly (WASI preview 1) modules, and
//! Python through a CPython build for WASI, in a sandbox inside the server
//! process.

mod config;

use async_trait::async_trait;
use playground_executors::{
    CancelReceiver, ConfigError, EnvironmentSpec, Executor, ExecutorError, ExecutorKind, Health,
    LogSink, RunHandle, RunSpec,
};

pub use config::WasmConfig;

/// Runs programs in an in-process WebAssembly sandbox.
#[derive(Default)]
pub struct WasmExecutor {}

impl WasmExecutor {
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl Executor for WasmExecutor {
    fn kind(&self) -> ExecutorKind {
        ExecutorKind::Wasm
    }

    async fn health(&self) -> Health {
        Health::Available {
            detail: "in-process WebAssembly sandbox (WASI preview 1)".to_owned(),
        }
    }

    fn validate(&self, environment: &EnvironmentSpec) -> Result<(), ConfigError> {
        WasmConfig::from_environment(environment).map(|_| ())
    }

    async fn launch(
        &self,
        run_spec: RunSpec,
        _sink: std::sync::Arc<dyn LogSink>,
        _cancel: CancelReceiver,
    ) -> Result<RunHandle, ExecutorError> {
        Err(ExecutorError::new(format!(
            "run {}: this server cannot execute WASM runs yet",
            run_spec.run_id
        )))
    }
}
