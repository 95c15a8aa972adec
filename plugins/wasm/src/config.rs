//! `WasmConfig`: the settings of a WASM environment, validated purely.

use playground_executors::{ConfigError, EnvironmentSpec, parse_config};
use serde::Deserialize;

/// A WASM environment's `config`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WasmConfig {
    /// Path (on the server) of a CPython build for WASI, for PYTHON
    /// programs; default: the server's `PLAYGROUND_PYTHON_WASM`.
    pub python_wasm: Option<String>,
}

impl WasmConfig {
    /// Checks a whole environment: no image, a valid config object.
    pub fn from_environment(environment: &EnvironmentSpec) -> Result<Self, ConfigError> {
        if environment.image.is_some() {
            return Err(ConfigError::new(
                "image: WASM environments run modules in the server and take no container image; leave image out",
            ));
        }
        let config: WasmConfig = parse_config(&environment.config)?;
        if config.python_wasm.as_deref().is_some_and(str::is_empty) {
            return Err(ConfigError::new(
                "config: pythonWasm must be a path to a python.wasm file, not empty",
            ));
        }
        Ok(config)
    }
}
