//! Helpers shared by the WASM plugin's tests: environments, executors,
//! WAT programs and a sink that records raw output.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use playground_executors::compliance::TestProgram;
use playground_executors::{
    EnvironmentSpec, ExecutorKind, LogSink, OutputStream, Resources, Runtime,
};
use playground_wasm::{WasmExecutor, WasmSettings};

/// A WASM environment with roomy limits.
pub fn environment(config: serde_json::Value) -> EnvironmentSpec {
    EnvironmentSpec {
        id: "env-wasm-test".to_owned(),
        kind: ExecutorKind::Wasm,
        image: None,
        resources: Resources {
            memory_mb: 256,
            cpu_millis: 1000,
            timeout: Duration::from_secs(60),
            max_log_bytes: 10_000_000,
            pids: 64,
        },
        config,
    }
}

/// An executor caching into `dir`.
pub fn executor(dir: &std::path::Path, python: Option<std::path::PathBuf>) -> WasmExecutor {
    WasmExecutor::new(WasmSettings {
        cache_dir: dir.to_owned(),
        python_wasm: python,
    })
    .expect("the executor starts")
}

/// A program of one WAT file.
pub fn wat(name: &str, text: &str) -> TestProgram {
    TestProgram {
        runtime: Runtime::Wasm,
        entrypoint: format!("{name}.wat"),
        files: vec![(format!("{name}.wat"), text.as_bytes().to_vec())],
        args: Vec::new(),
    }
}

const IMPORTS: &str = r#"
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
"#;

/// A module with the usual imports around `body`.
pub fn module(body: &str) -> String {
    format!("(module {IMPORTS} {body})")
}

/// Prints `out i` and `err i` for i in 1..=50, interleaved.
pub fn ordered_output() -> String {
    module(
        r#"
  (memory (export "memory") 1)
  (data (i32.const 100) "out ")
  (data (i32.const 104) "err ")
  (func $print (param $fd i32) (param $prefix i32) (param $n i32)
    (local $len i32)
    (i32.store (i32.const 200) (i32.load (local.get $prefix)))
    (local.set $len (i32.const 4))
    (if (i32.ge_u (local.get $n) (i32.const 10))
      (then
        (i32.store8 (i32.add (i32.const 200) (local.get $len))
          (i32.add (i32.const 48) (i32.div_u (local.get $n) (i32.const 10))))
        (local.set $len (i32.add (local.get $len) (i32.const 1)))))
    (i32.store8 (i32.add (i32.const 200) (local.get $len))
      (i32.add (i32.const 48) (i32.rem_u (local.get $n) (i32.const 10))))
    (local.set $len (i32.add (local.get $len) (i32.const 1)))
    (i32.store8 (i32.add (i32.const 200) (local.get $len)) (i32.const 10))
    (local.set $len (i32.add (local.get $len) (i32.const 1)))
    (i32.store (i32.const 0) (i32.const 200))
    (i32.store (i32.const 4) (local.get $len))
    (drop (call $fd_write (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8))))
  (func (export "_start")
    (local $i i32)
    (local.set $i (i32.const 1))
    (loop $l
      (call $print (i32.const 1) (i32.const 100) (local.get $i))
      (call $print (i32.const 2) (i32.const 104) (local.get $i))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.le_u (local.get $i) (i32.const 50)))))
"#,
    )
}

/// Exits with `code` through `proc_exit`.
pub fn exit_with(code: i32) -> String {
    module(&format!(
        r#"(memory (export "memory") 1) (func (export "_start") (call $proc_exit (i32.const {code})))"#
    ))
}

/// A busy loop.
pub fn spin() -> String {
    module(r#"(memory (export "memory") 1) (func (export "_start") (loop $l (br $l)))"#)
}

/// Grows memory 1 MiB at a time until refused, then traps.
pub fn memory_hog() -> String {
    module(
        r#"(memory (export "memory") 1)
  (func (export "_start")
    (loop $l (br_if $l (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))
    unreachable)"#,
    )
}

/// Prints 100,000 lines of 100 bytes.
pub fn log_flood() -> String {
    let line = format!("{}\\0a", "x".repeat(99));
    module(&format!(
        r#"(memory (export "memory") 1)
  (data (i32.const 100) "{line}")
  (func (export "_start")
    (local $i i32)
    (i32.store (i32.const 0) (i32.const 100))
    (i32.store (i32.const 4) (i32.const 100))
    (loop $l
      (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 100000)))))"#
    ))
}

/// Traps at once.
pub fn trap() -> String {
    module(r#"(memory (export "memory") 1) (func (export "_start") unreachable)"#)
}

/// Writes its args to stdout and its environment to stderr, one per line.
pub fn args_and_env() -> String {
    r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_sizes_get" (func $args_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_get" (func $args_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get" (func $environ_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_get" (func $environ_get (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  ;; Turns the NUL terminators of [ptr, ptr+len) into newlines and writes it.
  (func $lines (param $fd i32) (param $ptr i32) (param $len i32)
    (local $i i32)
    (block $done
      (loop $l
        (br_if $done (i32.ge_u (local.get $i) (local.get $len)))
        (if (i32.eqz (i32.load8_u (i32.add (local.get $ptr) (local.get $i))))
          (then (i32.store8 (i32.add (local.get $ptr) (local.get $i)) (i32.const 10))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $l)))
    (i32.store (i32.const 16) (local.get $ptr))
    (i32.store (i32.const 20) (local.get $len))
    (drop (call $fd_write (local.get $fd) (i32.const 16) (i32.const 1) (i32.const 24))))
  (func (export "_start")
    (drop (call $args_sizes_get (i32.const 0) (i32.const 4)))
    (drop (call $args_get (i32.const 1024) (i32.const 4096)))
    (call $lines (i32.const 1) (i32.const 4096) (i32.load (i32.const 4)))
    (drop (call $environ_sizes_get (i32.const 0) (i32.const 4)))
    (drop (call $environ_get (i32.const 1024) (i32.const 8192)))
    (call $lines (i32.const 2) (i32.const 8192) (i32.load (i32.const 4)))))"#
        .to_owned()
}

/// Copies /work/data.txt to stdout, then tries to create /work/x and exits
/// with the errno of that (100 + errno if data.txt could not be opened).
pub fn files_read_only() -> String {
    r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open" (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "data.txt")
  (data (i32.const 120) "x")
  (func (export "_start")
    (local $e i32)
    (local.set $e (call $path_open (i32.const 3) (i32.const 1) (i32.const 100) (i32.const 8)
      (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 16)))
    (if (local.get $e) (then (call $proc_exit (i32.add (i32.const 100) (local.get $e)))))
    (i32.store (i32.const 32) (i32.const 2000))
    (i32.store (i32.const 36) (i32.const 1000))
    (drop (call $fd_read (i32.load (i32.const 16)) (i32.const 32) (i32.const 1) (i32.const 40)))
    (i32.store (i32.const 48) (i32.const 2000))
    (i32.store (i32.const 52) (i32.load (i32.const 40)))
    (drop (call $fd_write (i32.const 1) (i32.const 48) (i32.const 1) (i32.const 56)))
    (local.set $e (call $path_open (i32.const 3) (i32.const 1) (i32.const 120) (i32.const 1)
      (i32.const 1) (i64.const 64) (i64.const 0) (i32.const 0) (i32.const 16)))
    (call $proc_exit (local.get $e))))"#
        .to_owned()
}

/// A sink keeping raw chunks, for checks while a run is in flight.
#[derive(Default)]
pub struct RawSink {
    pub chunks: Mutex<Vec<(OutputStream, Vec<u8>)>>,
}

impl RawSink {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Everything written to `stream` so far.
    pub fn text(&self, stream: OutputStream) -> String {
        let chunks = self.chunks.lock().unwrap();
        let bytes: Vec<u8> = chunks
            .iter()
            .filter(|(s, _)| *s == stream)
            .flat_map(|(_, b)| b.iter().copied())
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl LogSink for RawSink {
    fn write(&self, stream: OutputStream, bytes: &[u8]) {
        self.chunks.lock().unwrap().push((stream, bytes.to_vec()));
    }

    fn system(&self, _line: &str) {}
}

/// The run spec of `program` on `environment`.
pub fn run_spec(
    program: &TestProgram,
    environment: &EnvironmentSpec,
    env: &[(&str, &str)],
) -> playground_executors::RunSpec {
    playground_executors::RunSpec {
        run_id: format!("run-{}", program.entrypoint),
        program_id: format!("program-{}", program.entrypoint),
        program_version: 1,
        runtime: program.runtime,
        entrypoint: program.entrypoint.clone(),
        files: program
            .files
            .iter()
            .map(|(path, content)| playground_executors::ProgramFile {
                path: path.clone(),
                content: content.clone().into(),
            })
            .collect(),
        args: program.args.clone(),
        env: env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        secrets: Vec::new(),
        environment: environment.clone(),
    }
}

/// Launches a run and waits for its outcome, with its raw output.
pub async fn run(
    executor: &dyn playground_executors::Executor,
    spec: playground_executors::RunSpec,
) -> (playground_executors::RunOutcome, Arc<RawSink>) {
    let sink = RawSink::new();
    let (_cancel_tx, cancel_rx) = tokio::sync::watch::channel(None);
    let handle = executor
        .launch(spec, sink.clone(), cancel_rx)
        .await
        .unwrap_or_else(|e| panic!("launch failed: {e}"));
    let outcome = tokio::time::timeout(Duration::from_secs(300), handle.outcome)
        .await
        .expect("the run ends");
    (outcome, sink)
}
