//! Python programs on the CPython-for-WASI interpreter named by
//! `PLAYGROUND_PYTHON_WASM` (skipped with a notice when it is unset):
//! precompiling at prepare and the disk cache, imports of sibling files,
//! args, the memory limit, read-only files, streaming, timeout.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use playground_executors::compliance::TestProgram;
use playground_executors::{CancelRequest, Executor, LogSink, OutputStream, RunOutcome, Runtime};

fn interpreter() -> Option<PathBuf> {
    let Some(path) = std::env::var_os("PLAYGROUND_PYTHON_WASM") else {
        eprintln!("SKIPPED: PLAYGROUND_PYTHON_WASM is not set, Python-in-WASM tests not run");
        return None;
    };
    let path = PathBuf::from(path);
    assert!(
        path.is_file(),
        "PLAYGROUND_PYTHON_WASM names {}, which does not exist",
        path.display()
    );
    Some(path)
}

fn python(files: &[(&str, &str)], args: &[&str]) -> TestProgram {
    TestProgram {
        runtime: Runtime::Python,
        entrypoint: files[0].0.to_owned(),
        files: files
            .iter()
            .map(|(p, c)| ((*p).to_owned(), c.as_bytes().to_vec()))
            .collect(),
        args: args.iter().map(|a| (*a).to_owned()).collect(),
    }
}

struct NoEvents;

impl LogSink for NoEvents {
    fn write(&self, _: OutputStream, _: &[u8]) {}
    fn system(&self, line: &str) {
        eprintln!("prepare: {line}");
    }
}

/// One test, so the interpreter is compiled once for all checks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_programs_run_on_the_wasi_interpreter() {
    let Some(path) = interpreter() else { return };
    let cache = tempfile::tempdir().unwrap();
    let env = common::environment(serde_json::Value::Null);

    // prepare() compiles the interpreter once; a restarted executor loads it.
    let first = common::executor(cache.path(), Some(path.clone()));
    let started = Instant::now();
    first.prepare(&env, &NoEvents).await.expect("prepare");
    let compile_time = started.elapsed();
    assert_eq!(first.n_compilations(), 1);
    drop(first);
    let executor = common::executor(cache.path(), Some(path.clone()));
    let started = Instant::now();
    executor
        .prepare(&env, &NoEvents)
        .await
        .expect("prepare again");
    let load_time = started.elapsed();
    eprintln!("interpreter: compiled in {compile_time:?}, loaded from the cache in {load_time:?}");
    assert_eq!(
        executor.n_compilations(),
        0,
        "the cached interpreter was recompiled"
    );
    assert!(
        load_time * 3 < compile_time,
        "{load_time:?} vs {compile_time:?}"
    );

    // Imports of the program's other files, and args.
    let program = python(
        &[
            (
                "main.py",
                "import sys\nimport helper\nprint(sys.argv[0])\nprint(helper.greet(sys.argv[1:]))\n",
            ),
            (
                "helper.py",
                "def greet(args):\n    return 'hello ' + ','.join(args)\n",
            ),
        ],
        &["a", "b c"],
    );
    let (outcome, sink) = common::run(&executor, common::run_spec(&program, &env, &[])).await;
    assert_eq!(
        outcome,
        RunOutcome::Exited { code: 0 },
        "{}",
        sink.text(OutputStream::Stderr)
    );
    assert_eq!(
        sink.text(OutputStream::Stdout),
        "/work/main.py\nhello a,b c\n"
    );
    assert_eq!(executor.n_compilations(), 0, "runs do not compile");

    // The memory limit: CPython gets MemoryError, the run fails naming memory.
    let mut small = env.clone();
    small.resources.memory_mb = 64;
    let program = python(
        &[("hog.py", "x = bytearray(10**9)\nprint('allocated')\n")],
        &[],
    );
    let (outcome, sink) = common::run(&executor, common::run_spec(&program, &small, &[])).await;
    match &outcome {
        RunOutcome::Failed { reason, .. } => {
            assert!(reason.contains("memory limit of 64 MB"), "{reason}")
        }
        other => panic!("expected Failed, got {other:?}"),
    }
    assert!(sink.text(OutputStream::Stderr).contains("MemoryError"));

    // /work is read-only.
    let program = python(
        &[(
            "write.py",
            "try:\n    open('/work/x', 'w')\nexcept OSError as e:\n    print('denied', type(e).__name__)\n    raise SystemExit(7)\n",
        )],
        &[],
    );
    let (outcome, sink) = common::run(&executor, common::run_spec(&program, &env, &[])).await;
    assert_eq!(
        outcome,
        RunOutcome::Exited { code: 7 },
        "{}",
        sink.text(OutputStream::Stderr)
    );
    assert!(sink.text(OutputStream::Stdout).starts_with("denied"));

    // Output streams while the program runs; cancel stops it.
    let program = python(
        &[("stream.py", "print('first line')\nwhile True:\n    pass\n")],
        &[],
    );
    let sink = common::RawSink::new();
    let (cancel_tx, cancel_rx) = tokio::sync::watch::channel(None);
    let handle = executor
        .launch(
            common::run_spec(&program, &env, &[]),
            sink.clone(),
            cancel_rx,
        )
        .await
        .expect("launch");
    let waited = Instant::now();
    while !sink.text(OutputStream::Stdout).contains("first line") {
        assert!(
            waited.elapsed() < Duration::from_secs(30),
            "no output while running"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cancel_tx
        .send(Some(CancelRequest {
            grace: Duration::from_millis(200),
            reason: "cancelled by the test".to_owned(),
        }))
        .unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(2), handle.outcome)
        .await
        .expect("cancelled within 2 s");
    assert_eq!(
        outcome,
        RunOutcome::Cancelled {
            reason: "cancelled by the test".to_owned()
        }
    );

    // A program sleeping in a host call still times out.
    let mut timed = env.clone();
    timed.resources.timeout = Duration::from_secs(1);
    let program = python(&[("sleep.py", "import time\ntime.sleep(60)\n")], &[]);
    let started = Instant::now();
    let (outcome, _) = common::run(&executor, common::run_spec(&program, &timed, &[])).await;
    assert!(
        matches!(outcome, RunOutcome::TimedOut { .. }),
        "{outcome:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn python_without_an_interpreter_is_refused_clearly() {
    let cache = tempfile::tempdir().unwrap();
    let executor = common::executor(cache.path(), None);
    let env = common::environment(serde_json::Value::Null);
    executor
        .prepare(&env, &NoEvents)
        .await
        .expect("no python: WASM only");
    let program = python(&[("main.py", "print(1)\n")], &[]);
    let (_tx, rx) = tokio::sync::watch::channel(None);
    let Err(error) = executor
        .launch(
            common::run_spec(&program, &env, &[]),
            common::RawSink::new(),
            rx,
        )
        .await
    else {
        panic!("launched without an interpreter");
    };
    assert!(error.message.contains("PLAYGROUND_PYTHON_WASM"), "{error}");
    assert!(error.message.contains("pythonWasm"), "{error}");

    let missing =
        common::environment(serde_json::json!({"pythonWasm": "/nonexistent/python.wasm"}));
    let error = executor.prepare(&missing, &NoEvents).await.unwrap_err();
    assert!(
        error.message.contains("/nonexistent/python.wasm"),
        "{error}"
    );
}
