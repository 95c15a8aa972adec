//! WASM runs beyond the compliance suite: binary and text modules, invalid
//! modules, traps, read-only files, args and env, the disk cache, and a
//! throughput figure for trivial runs.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use playground_executors::compliance::TestProgram;
use playground_executors::{Executor, OutputStream, RunOutcome, Runtime};

fn binary(name: &str, text: &str) -> TestProgram {
    TestProgram {
        runtime: Runtime::Wasm,
        entrypoint: format!("{name}.wasm"),
        files: vec![(format!("{name}.wasm"), wat::parse_str(text).unwrap())],
        args: Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_and_text_modules_run() {
    let cache = tempfile::tempdir().unwrap();
    let executor = common::executor(cache.path(), None);
    let env = common::environment(serde_json::Value::Null);
    for program in [
        binary("exit5", &common::exit_with(5)),
        common::wat("exit5", &common::exit_with(5)),
    ] {
        let (outcome, _) = common::run(&executor, common::run_spec(&program, &env, &[])).await;
        assert_eq!(
            outcome,
            RunOutcome::Exited { code: 5 },
            "{}",
            program.entrypoint
        );
    }
    // A module that returns from `_start` exits 0.
    let program = common::wat("ok", &common::module(r#"(func (export "_start"))"#));
    let (outcome, _) = common::run(&executor, common::run_spec(&program, &env, &[])).await;
    assert_eq!(outcome, RunOutcome::Exited { code: 0 });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_modules_fail_cleanly() {
    let cache = tempfile::tempdir().unwrap();
    let executor = common::executor(cache.path(), None);
    let env = common::environment(serde_json::Value::Null);
    let (_tx, rx) = tokio::sync::watch::channel(None);
    let cases = [
        (
            TestProgram {
                runtime: Runtime::Wasm,
                entrypoint: "bad.wasm".to_owned(),
                files: vec![("bad.wasm".to_owned(), b"\0asm\x01\0\0\0garbage".to_vec())],
                args: Vec::new(),
            },
            "not valid WebAssembly",
        ),
        (
            common::wat("bad", "(module (func"),
            "not valid WebAssembly text",
        ),
        (
            common::wat(
                "lib",
                r#"(module (import "env" "f" (func)) (func (export "_start")))"#,
            ),
            "cannot be linked",
        ),
    ];
    for (program, expected) in cases {
        let sink = common::RawSink::new();
        let error = match executor
            .launch(common::run_spec(&program, &env, &[]), sink, rx.clone())
            .await
        {
            Ok(_) => panic!("{} should not launch", program.entrypoint),
            Err(e) => e.message,
        };
        assert!(error.contains(expected), "{error}");
    }
    // No `_start`: the run fails with a reason.
    let program = common::wat("nostart", "(module (memory 1))");
    let (outcome, _) = common::run(&executor, common::run_spec(&program, &env, &[])).await;
    assert!(
        matches!(&outcome, RunOutcome::Failed { reason, .. } if reason.contains("_start")),
        "{outcome:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trap_fails_the_run_naming_the_trap() {
    let cache = tempfile::tempdir().unwrap();
    let executor = common::executor(cache.path(), None);
    let env = common::environment(serde_json::Value::Null);
    let program = common::wat("trap", &common::trap());
    let (outcome, _) = common::run(&executor, common::run_spec(&program, &env, &[])).await;
    match outcome {
        RunOutcome::Failed { reason, exit_code } => {
            assert!(reason.contains("trapped"), "{reason}");
            assert!(reason.contains("unreachable"), "{reason}");
            assert_eq!(exit_code, None);
        }
        other => panic!("expected Failed, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn program_files_are_read_only_at_work() {
    let cache = tempfile::tempdir().unwrap();
    let executor = common::executor(cache.path(), None);
    let env = common::environment(serde_json::Value::Null);
    let mut program = common::wat("files", &common::files_read_only());
    program
        .files
        .push(("data.txt".to_owned(), b"hello from /work\n".to_vec()));
    let (outcome, sink) = common::run(&executor, common::run_spec(&program, &env, &[])).await;
    assert_eq!(sink.text(OutputStream::Stdout), "hello from /work\n");
    match outcome {
        // WASI errno: 2 = acces, 63 = perm, 69 = rofs, 76 = notcapable.
        RunOutcome::Exited { code } => {
            assert!(
                [2, 63, 69, 76].contains(&code),
                "creating /work/x gave errno {code}"
            )
        }
        other => panic!("expected an exit with the errno, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn args_and_env_are_visible() {
    let cache = tempfile::tempdir().unwrap();
    let executor = common::executor(cache.path(), None);
    let env = common::environment(serde_json::Value::Null);
    let mut program = common::wat("args", &common::args_and_env());
    program.args = vec!["one".to_owned(), "two words".to_owned()];
    let spec = common::run_spec(&program, &env, &[("GREETING", "hi"), ("EMPTY", "")]);
    let (outcome, sink) = common::run(&executor, spec).await;
    assert_eq!(outcome, RunOutcome::Exited { code: 0 });
    assert_eq!(
        sink.text(OutputStream::Stdout),
        "args.wat\none\ntwo words\n"
    );
    assert_eq!(sink.text(OutputStream::Stderr), "GREETING=hi\nEMPTY=\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shell_programs_are_refused() {
    let cache = tempfile::tempdir().unwrap();
    let executor = common::executor(cache.path(), None);
    let env = common::environment(serde_json::Value::Null);
    let program = TestProgram {
        runtime: Runtime::Shell,
        entrypoint: "run.sh".to_owned(),
        files: vec![("run.sh".to_owned(), b"echo hi".to_vec())],
        args: Vec::new(),
    };
    let (_tx, rx) = tokio::sync::watch::channel(None);
    let Err(error) = executor
        .launch(
            common::run_spec(&program, &env, &[]),
            common::RawSink::new(),
            rx,
        )
        .await
    else {
        panic!("a SHELL program launched");
    };
    assert!(error.message.contains("DOCKER or KUBERNETES"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_executor_loads_modules_from_the_disk_cache() {
    let cache = tempfile::tempdir().unwrap();
    let env = common::environment(serde_json::Value::Null);
    let program = common::wat("cached", &common::exit_with(4));
    let first = common::executor(cache.path(), None);
    for _ in 0..3 {
        let (outcome, _) = common::run(&first, common::run_spec(&program, &env, &[])).await;
        assert_eq!(outcome, RunOutcome::Exited { code: 4 });
    }
    assert_eq!(first.n_compilations(), 1, "compiled once for three runs");
    drop(first);
    let cached = std::fs::read_dir(cache.path())
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension() == Some("cwasm".as_ref()))
        .count();
    assert_eq!(cached, 1, "one module on disk");
    let second = common::executor(cache.path(), None);
    let (outcome, _) = common::run(&second, common::run_spec(&program, &env, &[])).await;
    assert_eq!(outcome, RunOutcome::Exited { code: 4 });
    assert_eq!(
        second.n_compilations(),
        0,
        "the restarted executor did not compile"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_names_the_engine() {
    let cache = tempfile::tempdir().unwrap();
    let executor = common::executor(cache.path(), None);
    match executor.health().await {
        playground_executors::Health::Available { detail } => {
            assert!(detail.contains("wasmtime 48"), "{detail}")
        }
        other => panic!("{other:?}"),
    }
}

/// Trivial runs launched concurrently; prints runs/s (set WASM_BENCH_RUNS to
/// change the count).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trivial_runs_throughput() {
    let cache = tempfile::tempdir().unwrap();
    let executor = Arc::new(common::executor(cache.path(), None));
    let env = common::environment(serde_json::Value::Null);
    let program = binary(
        "trivial",
        &common::module(r#"(memory (export "memory") 1) (func (export "_start"))"#),
    );
    let spec = common::run_spec(&program, &env, &[]);
    let _ = common::run(executor.as_ref(), spec.clone()).await;
    let runs: usize = std::env::var("WASM_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let concurrency = 64;
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..concurrency {
        let (executor, spec) = (executor.clone(), spec.clone());
        let count = runs / concurrency + usize::from(worker < runs % concurrency);
        tasks.spawn(async move {
            for _ in 0..count {
                let (outcome, _) = common::run(executor.as_ref(), spec.clone()).await;
                assert_eq!(outcome, RunOutcome::Exited { code: 0 });
            }
        });
    }
    while let Some(result) = tasks.join_next().await {
        result.unwrap();
    }
    let elapsed = started.elapsed();
    let rate = runs as f64 / elapsed.as_secs_f64();
    eprintln!("{runs} trivial runs in {elapsed:?}: {rate:.0} runs/s");
    assert!(elapsed < Duration::from_secs(120));
}
