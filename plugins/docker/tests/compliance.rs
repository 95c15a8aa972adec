//! The shared executor compliance suite, run against the Docker plugin
//! with SHELL programs on the busybox test image.

mod support;

use playground_executors::Runtime;
use playground_executors::compliance::{CompliancePrograms, TestProgram, run_suite};

fn shell(name: &str, script: &str) -> TestProgram {
    TestProgram {
        runtime: Runtime::Shell,
        entrypoint: format!("{name}.sh"),
        files: vec![(format!("{name}.sh"), script.as_bytes().to_vec())],
        args: Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_executor_passes_the_compliance_suite() {
    let Some(engine) = support::engine("compliance").await else {
        return;
    };
    let programs = CompliancePrograms {
        ordered_output: shell(
            "ordered",
            "i=1\nwhile [ $i -le 50 ]; do\n  echo \"out $i\"\n  echo \"err $i\" >&2\n  i=$((i + 1))\ndone\n",
        ),
        exit_3: shell("exit3", "exit 3\n"),
        spin: shell("spin", "while :; do :; done\n"),
        // `tail` keeps the whole newline-free input in memory.
        memory_hog: shell("hog", "head -c 400m /dev/zero | tail\n"),
        log_flood: shell(
            "flood",
            "awk 'BEGIN { for (i = 1; i <= 100000; i++) printf \"line %06d %s\\n\", i, \"abcdefghij abcdefghij abcdefghij abcdefghij abcdefghij abcdefghij abcdefghij ab\" }'\n",
        ),
    };
    run_suite(
        engine.executor.clone(),
        engine.environment(support::BUSYBOX, serde_json::Value::Null),
        programs,
    )
    .await;
    engine.assert_instance_clean().await;
}
