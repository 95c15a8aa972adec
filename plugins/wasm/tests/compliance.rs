//! The shared executor compliance suite, run against the WASM plugin with
//! WAT programs.

mod common;

use std::sync::Arc;

use playground_executors::compliance::{CompliancePrograms, run_suite};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wasm_executor_passes_the_compliance_suite() {
    let cache = tempfile::tempdir().unwrap();
    let executor = Arc::new(common::executor(cache.path(), None));
    let programs = CompliancePrograms {
        ordered_output: common::wat("ordered", &common::ordered_output()),
        exit_3: common::wat("exit3", &common::exit_with(3)),
        spin: common::wat("spin", &common::spin()),
        memory_hog: common::wat("hog", &common::memory_hog()),
        log_flood: common::wat("flood", &common::log_flood()),
    };
    run_suite(
        executor,
        common::environment(serde_json::Value::Null),
        programs,
    )
    .await;
}
