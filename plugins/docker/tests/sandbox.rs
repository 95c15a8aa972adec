//! What a program sees inside its container: arguments, environment and
//! imports for SHELL and PYTHON, and the sandbox (read-only files and root,
//! no network, an unprivileged user without capabilities, a pids limit).

mod support;

use std::time::Duration;

use playground_executors::{LineStream, RunOutcome, Runtime};
use serde_json::json;
use support::{BUSYBOX, PYTHON, lines};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shell_programs_get_args_env_and_exit_codes() {
    let Some(engine) = support::engine("shell-args").await else {
        return;
    };
    let mut spec = engine.shell(
        "echo \"argc $#\"\nfor a in \"$@\"; do echo \"arg <$a>\"; done\necho \"greeting $GREETING\"\necho \"pwd $(pwd)\"\necho oops >&2\nexit 5\n",
    );
    spec.args = vec!["one".to_owned(), "two words".to_owned(), "".to_owned()];
    spec.env = vec![("GREETING".to_owned(), "hello there".to_owned())];
    let (outcome, output) = engine.run(spec).await;
    assert_eq!(outcome, RunOutcome::Exited { code: 5 }, "{output:?}");
    assert_eq!(
        lines(&output, LineStream::Stdout),
        [
            "argc 3",
            "arg <one>",
            "arg <two words>",
            "arg <>",
            "greeting hello there",
            "pwd /work"
        ]
    );
    assert_eq!(lines(&output, LineStream::Stderr), ["oops"]);
    engine.assert_clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_programs_get_args_env_and_import_their_files() {
    let Some(engine) = support::engine("python-args").await else {
        return;
    };
    let main = r#"
import os, sys
import helper
from pkg.util import double
print("args", sys.argv[1:])
print("greeting", os.environ["GREETING"])
print("helper", helper.NAME, double(21))
print("cwd", os.getcwd())
print("to stderr", file=sys.stderr)
sys.exit(int(sys.argv[1]))
"#;
    let mut spec = engine.spec(
        Runtime::Python,
        "main.py",
        vec![
            ("main.py", main.as_bytes().to_vec()),
            ("helper.py", b"NAME = 'helper'\n".to_vec()),
            ("pkg/__init__.py", Vec::new()),
            (
                "pkg/util.py",
                b"def double(x):\n    return 2 * x\n".to_vec(),
            ),
        ],
        engine.environment(PYTHON, serde_json::Value::Null),
    );
    spec.args = vec!["4".to_owned(), "x y".to_owned()];
    spec.env = vec![("GREETING".to_owned(), "hi".to_owned())];
    let (outcome, output) = engine.run(spec).await;
    assert_eq!(outcome, RunOutcome::Exited { code: 4 }, "{output:?}");
    assert_eq!(
        lines(&output, LineStream::Stdout),
        [
            "args ['4', 'x y']",
            "greeting hi",
            "helper helper 42",
            "cwd /work"
        ]
    );
    assert_eq!(lines(&output, LineStream::Stderr), ["to stderr"]);
    engine.assert_clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_programs_in_subdirectories_import_their_neighbours() {
    let Some(engine) = support::engine("python-subdir").await else {
        return;
    };
    let spec = engine.spec(
        Runtime::Python,
        "app/main.py",
        vec![
            ("app/main.py", b"import near\nprint(near.VALUE)\n".to_vec()),
            ("app/near.py", b"VALUE = 'near'\n".to_vec()),
        ],
        engine.environment(PYTHON, serde_json::Value::Null),
    );
    let (outcome, output) = engine.run(spec).await;
    assert_eq!(outcome, RunOutcome::Exited { code: 0 }, "{output:?}");
    assert_eq!(lines(&output, LineStream::Stdout), ["near"]);
    engine.assert_clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn program_files_and_root_are_read_only_and_tmp_is_writable() {
    let Some(engine) = support::engine("read-only").await else {
        return;
    };
    let script = r#"
if touch /work/new 2>/dev/null; then echo "work writable"; else echo "work read-only"; fi
if echo x >> /work/main.sh 2>/dev/null; then echo "main writable"; else echo "main read-only"; fi
if touch /etc/new 2>/dev/null; then echo "root writable"; else echo "root read-only"; fi
if echo data > /tmp/file && [ "$(cat /tmp/file)" = data ]; then echo "tmp writable"; fi
grep ' /tmp ' /proc/mounts | grep -q 'nosuid,nodev' && echo "tmp nosuid nodev"
"#;
    let (outcome, output) = engine.run(engine.shell(script)).await;
    assert_eq!(outcome, RunOutcome::Exited { code: 0 }, "{output:?}");
    assert_eq!(
        lines(&output, LineStream::Stdout),
        [
            "work read-only",
            "main read-only",
            "root read-only",
            "tmp writable",
            "tmp nosuid nodev"
        ]
    );
    engine.assert_clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tmp_size_is_limited() {
    let Some(engine) = support::engine("tmp-size").await else {
        return;
    };
    let mut spec = engine.shell(
        "if head -c 20m /dev/zero > /tmp/big 2>/dev/null; then echo fits; else echo full; fi\n",
    );
    spec.environment.config = json!({"tmpSizeMb": 8});
    let (outcome, output) = engine.run(spec).await;
    assert_eq!(outcome, RunOutcome::Exited { code: 0 }, "{output:?}");
    assert_eq!(lines(&output, LineStream::Stdout), ["full"]);
    engine.assert_clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_have_no_network_but_loopback() {
    let Some(engine) = support::engine("network").await else {
        return;
    };
    let (outcome, output) = engine.run(engine.shell("ls /sys/class/net\n")).await;
    assert_eq!(outcome, RunOutcome::Exited { code: 0 }, "{output:?}");
    assert_eq!(lines(&output, LineStream::Stdout), ["lo"]);
    engine.assert_clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn programs_run_unprivileged() {
    let Some(engine) = support::engine("user").await else {
        return;
    };
    let script = "id -u\nid -g\ngrep -E '^(CapEff|CapBnd|NoNewPrivs):' /proc/self/status | tr -s '\\t ' ' '\n";
    let (outcome, output) = engine.run(engine.shell(script)).await;
    assert_eq!(outcome, RunOutcome::Exited { code: 0 }, "{output:?}");
    assert_eq!(
        lines(&output, LineStream::Stdout),
        [
            "65534",
            "65534",
            "CapEff: 0000000000000000",
            "CapBnd: 0000000000000000",
            "NoNewPrivs: 1"
        ]
    );

    let mut spec = engine.shell("id -u\nid -g\n");
    spec.environment.config = json!({"user": "1234:4321"});
    let (outcome, output) = engine.run(spec).await;
    assert_eq!(outcome, RunOutcome::Exited { code: 0 }, "{output:?}");
    assert_eq!(lines(&output, LineStream::Stdout), ["1234", "4321"]);
    engine.assert_clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fork_bomb_is_held_by_the_pids_limit() {
    let Some(engine) = support::engine("fork-bomb").await else {
        return;
    };
    // The main shell forks once, before the bomb goes off, then watches the
    // container's pids cgroup with builtins only, so it keeps working while
    // forks are refused: the most processes at once, and the refusals.
    let script = r#"
bomb() { bomb | bomb & }
bomb &
cgroup=/sys/fs/cgroup/pids
[ -r $cgroup/pids.current ] || cgroup=/sys/fs/cgroup
max=0
refused=0
i=0
while [ $i -lt 50000 ] && [ $refused -lt 100 ]; do
  read -r current < $cgroup/pids.current
  [ $current -gt $max ] && max=$current
  read -r name refused < $cgroup/pids.events
  i=$((i + 1))
done
echo "max processes $max"
echo "refused $refused"
echo survived
"#;
    let mut spec = engine.shell(script);
    spec.environment.resources.pids = 32;
    spec.environment.resources.timeout = Duration::from_secs(30);
    let (outcome, output) = engine.run(spec).await;
    assert_eq!(outcome, RunOutcome::Exited { code: 0 }, "{output:?}");
    let stdout = lines(&output, LineStream::Stdout);
    let number = |prefix: &str| -> usize {
        stdout
            .iter()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} in {stdout:?}"))
            .parse()
            .unwrap()
    };
    let max = number("max processes ");
    assert!(
        (2..=32).contains(&max),
        "{max} processes under a limit of 32"
    );
    assert!(number("refused ") > 0, "no fork was refused: {stdout:?}");
    assert_eq!(stdout.last().map(String::as_str), Some("survived"));

    // The engine and the executor carry on.
    let (outcome, _) = engine.run(engine.shell("echo fine\n")).await;
    assert_eq!(outcome, RunOutcome::Exited { code: 0 });
    engine.assert_clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_reach_the_container() {
    let Some(engine) = support::engine("limits").await else {
        return;
    };
    // cgroup v1 and v2 name the files differently.
    let script = r#"
for f in /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/memory.max; do
  [ -r "$f" ] && echo "memory $(cat "$f")"
done
for f in /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/pids.max; do
  [ -r "$f" ] && echo "pids $(cat "$f")"
done
for f in /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us; do
  [ -r "$f" ] && echo "cpu $(cat "$f")" && break
done
[ -r /sys/fs/cgroup/cpu.max ] && echo "cpu $(cut -d' ' -f1 /sys/fs/cgroup/cpu.max)"
true
"#;
    let mut spec = engine.shell(script);
    spec.environment.resources.memory_mb = 96;
    spec.environment.resources.pids = 40;
    spec.environment.resources.cpu_millis = 500;
    let (outcome, output) = engine.run(spec).await;
    assert_eq!(outcome, RunOutcome::Exited { code: 0 }, "{output:?}");
    let stdout = lines(&output, LineStream::Stdout);
    assert!(
        stdout.contains(&format!("memory {}", 96 * 1024 * 1024)),
        "{stdout:?}"
    );
    assert!(stdout.contains(&"pids 40".to_owned()), "{stdout:?}");
    // Half a CPU: 50 ms of every 100 ms period.
    assert!(stdout.contains(&"cpu 50000".to_owned()), "{stdout:?}");
    engine.assert_clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_interpreter_is_reported_by_the_run() {
    let Some(engine) = support::engine("no-python").await else {
        return;
    };
    let spec = engine.spec(
        Runtime::Python,
        "main.py",
        vec![("main.py", b"print(1)\n".to_vec())],
        engine.environment(BUSYBOX, serde_json::Value::Null),
    );
    let (outcome, output) = engine.run(spec).await;
    assert_eq!(outcome, RunOutcome::Exited { code: 127 }, "{output:?}");
    let stderr = lines(&output, LineStream::Stderr).join("\n");
    assert!(stderr.contains("python3"), "{stderr}");
    engine.assert_clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_the_engine_refuses_fails_the_launch_and_leaves_nothing() {
    let Some(engine) = support::engine("refused").await else {
        return;
    };
    let mut spec = engine.shell("echo never\n");
    spec.environment.resources.memory_mb = 2;
    let sink = playground_executors::compliance::CapturingSink::new(1_000_000);
    let (_cancel_tx, cancel_rx) = tokio::sync::watch::channel(None);
    let launched =
        playground_executors::Executor::launch(engine.executor.as_ref(), spec, sink, cancel_rx)
            .await;
    let error = match launched {
        Ok(_) => panic!("a 2 MB memory limit is below the engine's minimum"),
        Err(e) => e.message,
    };
    assert!(error.contains("could not create the container"), "{error}");
    assert!(error.to_lowercase().contains("memory"), "{error}");
    engine.assert_clean().await;
}
