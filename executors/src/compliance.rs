//! The executor compliance suite (feature `test-support`): one set of checks
//! every plugin runs, so all executors behave the same for ordered output,
//! exit codes, timeout, cancel, the memory limit and the log cap.
//!
//! A plugin's test provides [`CompliancePrograms`] — the same behaviours
//! written for its runtime — and an environment, then calls [`run_suite`].

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::{
    CancelRequest, EnvironmentSpec, Executor, LineStream, LogPipeline, LogSink, NumberedLine,
    OutputStream, ProgramFile, RunOutcome, RunSpec, Runtime,
};

/// A program for one check.
#[derive(Clone, Debug)]
pub struct TestProgram {
    pub runtime: Runtime,
    pub entrypoint: String,
    pub files: Vec<(String, Vec<u8>)>,
    pub args: Vec<String>,
}

/// The behaviours the suite needs, written for the plugin's runtime.
#[derive(Clone, Debug)]
pub struct CompliancePrograms {
    /// Prints `out 1`..`out 50` to stdout and `err 1`..`err 50` to stderr,
    /// interleaved, then exits 0.
    pub ordered_output: TestProgram,
    /// Exits with code 3 without printing.
    pub exit_3: TestProgram,
    /// Never ends on its own (a busy loop).
    pub spin: TestProgram,
    /// Allocates memory until it is stopped (far more than 64 MB).
    pub memory_hog: TestProgram,
    /// Prints 100,000 lines of about 100 bytes each, then exits 0.
    pub log_flood: TestProgram,
}

/// A sink that keeps every numbered line, for assertions.
pub struct CapturingSink {
    pipeline: Mutex<LogPipeline>,
    lines: Mutex<Vec<NumberedLine>>,
}

impl CapturingSink {
    pub fn new(max_log_bytes: u64) -> Arc<Self> {
        Arc::new(Self {
            pipeline: Mutex::new(LogPipeline::new(max_log_bytes)),
            lines: Mutex::new(Vec::new()),
        })
    }

    /// Flushes partial lines and returns everything captured.
    pub fn finish(&self) -> Vec<NumberedLine> {
        let mut out = Vec::new();
        self.pipeline.lock().unwrap().finish(&mut out);
        let mut lines = self.lines.lock().unwrap();
        lines.extend(out);
        lines.clone()
    }

    pub fn lines_of(lines: &[NumberedLine], stream: LineStream) -> Vec<String> {
        lines
            .iter()
            .filter(|l| l.stream == stream)
            .map(|l| l.line.clone())
            .collect()
    }
}

impl LogSink for CapturingSink {
    fn write(&self, stream: OutputStream, bytes: &[u8]) {
        let mut out = Vec::new();
        self.pipeline.lock().unwrap().write(stream, bytes, &mut out);
        self.lines.lock().unwrap().extend(out);
    }

    fn system(&self, line: &str) {
        let mut out = Vec::new();
        self.pipeline.lock().unwrap().system(line, &mut out);
        self.lines.lock().unwrap().extend(out);
    }
}

fn spec(program: &TestProgram, environment: &EnvironmentSpec, name: &str) -> RunSpec {
    RunSpec {
        run_id: format!("compliance-{name}-{}", std::process::id()),
        program_id: format!("compliance-{name}"),
        program_version: 1,
        runtime: program.runtime,
        entrypoint: program.entrypoint.clone(),
        files: program
            .files
            .iter()
            .map(|(path, content)| ProgramFile {
                path: path.clone(),
                content: Bytes::from(content.clone()),
            })
            .collect(),
        args: program.args.clone(),
        env: vec![("PLAYGROUND_COMPLIANCE".to_owned(), "1".to_owned())],
        secrets: Vec::new(),
        environment: environment.clone(),
    }
}

/// Launches one program and waits for its outcome, cancelling after
/// `cancel_after` when given.
pub async fn run_program(
    executor: &dyn Executor,
    environment: &EnvironmentSpec,
    program: &TestProgram,
    name: &str,
    cancel_after: Option<Duration>,
) -> (RunOutcome, Vec<NumberedLine>, Duration) {
    let sink = CapturingSink::new(environment.resources.max_log_bytes);
    let (cancel_tx, cancel_rx) = tokio::sync::watch::channel(None);
    let started = Instant::now();
    let handle = executor
        .launch(spec(program, environment, name), sink.clone(), cancel_rx)
        .await
        .unwrap_or_else(|e| panic!("{name}: launch failed: {e}"));
    if let Some(after) = cancel_after {
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            let _ = cancel_tx.send(Some(CancelRequest {
                grace: Duration::from_millis(200),
                reason: "cancelled by the compliance suite".to_owned(),
            }));
            // Keep the sender alive until the run is over.
            tokio::time::sleep(Duration::from_secs(60)).await;
        });
    }
    let outcome = tokio::time::timeout(Duration::from_secs(120), handle.finish())
        .await
        .unwrap_or_else(|_| panic!("{name}: the run did not end within 120 s"));
    (outcome, sink.finish(), started.elapsed())
}

/// Runs every check against `executor`. `environment` is a prepared
/// environment of the plugin's kind; the suite varies its resources.
pub async fn run_suite(
    executor: Arc<dyn Executor>,
    environment: EnvironmentSpec,
    programs: CompliancePrograms,
) {
    let executor = executor.as_ref();

    // Ordered stdout/stderr and exit code 0.
    let (outcome, lines, _) = run_program(
        executor,
        &environment,
        &programs.ordered_output,
        "ordered",
        None,
    )
    .await;
    assert_eq!(
        outcome,
        RunOutcome::Exited { code: 0 },
        "ordered output: {lines:?}"
    );
    let expected = |prefix: &str| {
        (1..=50)
            .map(|i| format!("{prefix} {i}"))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        CapturingSink::lines_of(&lines, LineStream::Stdout),
        expected("out")
    );
    assert_eq!(
        CapturingSink::lines_of(&lines, LineStream::Stderr),
        expected("err")
    );
    let seqs: Vec<i64> = lines.iter().map(|l| l.seq).collect();
    assert_eq!(seqs, (1..=lines.len() as i64).collect::<Vec<_>>());

    // Exit codes.
    let (outcome, _, _) = run_program(executor, &environment, &programs.exit_3, "exit", None).await;
    assert_eq!(outcome, RunOutcome::Exited { code: 3 });

    // Timeout: within a second of the limit.
    let mut timed = environment.clone();
    timed.resources.timeout = Duration::from_secs(1);
    let (outcome, _, elapsed) =
        run_program(executor, &timed, &programs.spin, "timeout", None).await;
    assert!(
        matches!(outcome, RunOutcome::TimedOut { .. }),
        "timeout: got {outcome:?}"
    );
    assert!(
        elapsed < Duration::from_secs(2),
        "timed out after {elapsed:?}, more than a second past the limit"
    );

    // Cancel: within a second of the request.
    let (outcome, _, elapsed) = run_program(
        executor,
        &environment,
        &programs.spin,
        "cancel",
        Some(Duration::from_millis(300)),
    )
    .await;
    assert!(
        matches!(outcome, RunOutcome::Cancelled { .. }),
        "cancel: got {outcome:?}"
    );
    assert!(
        elapsed < Duration::from_millis(1300),
        "ended {elapsed:?} after launch, more than a second after the cancel"
    );

    // Memory limit: the run fails and the reason names memory.
    let mut small = environment.clone();
    small.resources.memory_mb = 64;
    let (outcome, lines, _) =
        run_program(executor, &small, &programs.memory_hog, "memory", None).await;
    match &outcome {
        RunOutcome::Failed { reason, .. } => assert!(
            reason.to_lowercase().contains("memory"),
            "the reason should name the memory limit: {reason}"
        ),
        other => panic!("memory hog: expected Failed, got {other:?} ({lines:?})"),
    }

    // Log cap: the run completes, output stops at the cap, a notice says so.
    let mut capped = environment.clone();
    capped.resources.max_log_bytes = 10_000;
    let (outcome, lines, _) =
        run_program(executor, &capped, &programs.log_flood, "flood", None).await;
    assert_eq!(outcome, RunOutcome::Exited { code: 0 });
    let stdout_bytes: usize = CapturingSink::lines_of(&lines, LineStream::Stdout)
        .iter()
        .map(|l| l.len() + 1)
        .sum();
    assert!(stdout_bytes <= 10_000, "{stdout_bytes} bytes kept");
    assert!(
        stdout_bytes > 5_000,
        "output stopped early: {stdout_bytes} bytes"
    );
    assert!(
        CapturingSink::lines_of(&lines, LineStream::System)
            .iter()
            .any(|l| l.contains("truncated")),
        "a SYSTEM line should say the output was truncated"
    );
}
