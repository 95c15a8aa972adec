//! The executor plugins compiled into this build: one registration line per
//! plugin, each behind its cargo feature.

#[allow(unused_imports)]
use std::sync::Arc;

use playground_executors::Registry;

use crate::config::ServeConfig;

pub fn registry(config: &ServeConfig, instance_id: &str) -> anyhow::Result<Registry> {
    let _ = instance_id;
    let _ = config;
    #[allow(unused_mut)]
    let mut registry = Registry::new();
    #[cfg(feature = "wasm")]
    registry.register(Arc::new(
        playground_wasm::WasmExecutor::new(playground_wasm::WasmSettings {
            cache_dir: config.database.data_dir.join("wasm-cache"),
            python_wasm: config.wasm.python_wasm.clone(),
        })
        .map_err(|e| anyhow::anyhow!("starting the WASM executor: {}", e.message))?,
    ));
    #[cfg(feature = "docker")]
    registry.register(Arc::new(playground_docker::DockerExecutor::new(
        playground_docker::DockerSettings {
            host: config.docker.docker_host.clone(),
            instance_id: instance_id.to_owned(),
            work_dir: config.database.data_dir.join("docker-work"),
        },
    )));
    #[cfg(feature = "kubernetes")]
    registry.register(Arc::new(playground_kubernetes::KubernetesExecutor::new(
        playground_kubernetes::KubernetesSettings {
            kubeconfig: config.kubernetes.kubeconfig.clone(),
            context: config.kubernetes.kube_context.clone(),
            instance_id: instance_id.to_owned(),
            bounds: Default::default(),
        },
    )));
    Ok(registry)
}
