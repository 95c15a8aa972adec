//! Runs that meet trouble, against the fake API server: pods that cannot
//! start (an image that cannot be pulled, no node to schedule on), a log
//! stream that breaks, an API server that goes away, and a server that
//! restarts and follows its Jobs again.

mod support;

use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::batch::v1::Job;
use playground_executors::{Executor, RunOutcome};
use support::*;

#[tokio::test]
async fn an_image_that_cannot_be_pulled_fails_the_run_naming_it() {
    let fake = FakeKube::start();
    let executor = executor(&fake);
    let run_spec = shell("echo");
    let sink = TestSink::new();
    let (_tx, cancel) = no_cancel();
    let launched = Instant::now();
    let handle = executor
        .launch(run_spec.clone(), sink.clone(), cancel)
        .await
        .unwrap();
    let pod = fake.wait_pod(NAMESPACE, &run_spec.run_id).await;
    fake.container_waiting(
        NAMESPACE,
        &pod,
        "ErrImagePull",
        "rpc error: pull access denied for busybox",
    );
    fake.container_waiting(
        NAMESPACE,
        &pod,
        "ImagePullBackOff",
        "Back-off pulling image \"busybox:1.36\"",
    );
    let outcome = within(Duration::from_secs(10), "the outcome", handle.outcome).await;
    let RunOutcome::Failed { reason, .. } = outcome else {
        panic!("{outcome:?}")
    };
    assert!(
        reason.contains("the image busybox:1.36 could not be pulled"),
        "{reason}"
    );
    assert!(
        launched.elapsed() >= short_bounds().image_pull,
        "failed only after the bound"
    );
    assert!(
        sink.system()
            .iter()
            .any(|l| l.starts_with("waiting: the image busybox:1.36")),
        "{:?}",
        sink.system()
    );
    let job = job_name(&run_spec);
    assert!(
        fake.object::<Job>(Kind::Job, NAMESPACE, &job).is_none(),
        "the Job is deleted"
    );
}

#[tokio::test]
async fn an_image_pulled_within_the_bound_is_fine() {
    let fake = FakeKube::start();
    let executor = executor(&fake);
    let run_spec = shell("echo");
    let (_tx, cancel) = no_cancel();
    let handle = executor
        .launch(run_spec.clone(), TestSink::new(), cancel)
        .await
        .unwrap();
    let pod = fake.wait_pod(NAMESPACE, &run_spec.run_id).await;
    fake.container_waiting(NAMESPACE, &pod, "ErrImagePull", "registry timeout");
    tokio::time::sleep(short_bounds().image_pull / 2).await;
    fake.start_container(NAMESPACE, &pod);
    tokio::time::sleep(short_bounds().image_pull).await;
    fake.terminate_container(NAMESPACE, &pod, 0, "Completed");
    let outcome = within(Duration::from_secs(10), "the outcome", handle.outcome).await;
    assert_eq!(outcome, RunOutcome::Exited { code: 0 });
}

#[tokio::test]
async fn an_unschedulable_pod_fails_with_the_schedulers_message() {
    let fake = FakeKube::start();
    let executor = executor(&fake);
    let run_spec = shell("echo");
    let (_tx, cancel) = no_cancel();
    let handle = executor
        .launch(run_spec.clone(), TestSink::new(), cancel)
        .await
        .unwrap();
    let pod = fake.wait_pod(NAMESPACE, &run_spec.run_id).await;
    let message =
        "0/3 nodes are available: 3 Insufficient memory. preemption: 0/3 nodes are available";
    fake.unschedulable(NAMESPACE, &pod, message);
    let outcome = within(Duration::from_secs(10), "the outcome", handle.outcome).await;
    let RunOutcome::Failed { reason, .. } = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(reason, format!("the pod could not be scheduled: {message}"));
}

#[tokio::test]
async fn a_broken_log_stream_resumes_without_duplicates_or_gaps() {
    let fake = FakeKube::start();
    let executor = executor(&fake);
    let run_spec = shell("echo");
    let sink = TestSink::new();
    let (_tx, cancel) = no_cancel();
    let handle = executor
        .launch(run_spec.clone(), sink.clone(), cancel)
        .await
        .unwrap();
    let pod = fake.wait_pod(NAMESPACE, &run_spec.run_id).await;
    fake.start_container(NAMESPACE, &pod);
    // Lines in the same second, two with the very same timestamp: a
    // resumed stream (sinceTime has second precision) sends them again.
    let second = Timestamp::from_second(Timestamp::now().as_second()).unwrap();
    let at = |millis: i64| second + SignedDuration::from_millis(millis);
    fake.log_at(NAMESPACE, &pod, at(100), b"one\n");
    fake.log_at(NAMESPACE, &pod, at(200), b"two\n");
    fake.log_at(NAMESPACE, &pod, at(200), b"two again\n");
    fake.log_at(NAMESPACE, &pod, at(300), b"three, in ");
    sink.wait_raw("the output before the break", |raw| {
        raw == "one\ntwo\ntwo again\nthree, in "
    })
    .await;
    // The stream ends as if the output were complete, mid-line.
    fake.break_logs(NAMESPACE, &pod, Break::Eof);
    fake.log_at(NAMESPACE, &pod, at(300), b"parts\n");
    fake.log_at(NAMESPACE, &pod, at(400), b"four\n");
    sink.wait_raw("the output after the first break", |raw| {
        raw.ends_with("four\n")
    })
    .await;
    // The connection is cut.
    fake.break_logs(NAMESPACE, &pod, Break::Reset);
    fake.log_at(NAMESPACE, &pod, at(400), b"four again\n");
    fake.log_at(NAMESPACE, &pod, at(1500), b"five\n");
    sink.wait_raw("the output after the second break", |raw| {
        raw.ends_with("five\n")
    })
    .await;
    fake.terminate_container(NAMESPACE, &pod, 0, "Completed");
    let outcome = within(Duration::from_secs(10), "the outcome", handle.outcome).await;
    assert_eq!(outcome, RunOutcome::Exited { code: 0 });
    assert_eq!(
        sink.raw(),
        "one\ntwo\ntwo again\nthree, in parts\nfour\nfour again\nfive\n"
    );
    assert!(
        fake.n_log_requests(&pod) >= 3,
        "the stream was opened again"
    );
    let resumed = fake
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/log"))
        .nth(1)
        .unwrap();
    assert_eq!(resumed.query.get("sinceTime"), Some(&second.to_string()));
    assert_eq!(
        resumed.query.get("timestamps").map(String::as_str),
        Some("true")
    );
}

#[tokio::test]
async fn an_api_server_gone_for_too_long_fails_the_run() {
    let fake = FakeKube::start();
    let executor = executor(&fake);
    let run_spec = shell("sleep 1000");
    let sink = TestSink::new();
    let (_tx, cancel) = no_cancel();
    let handle = executor
        .launch(run_spec.clone(), sink.clone(), cancel)
        .await
        .unwrap();
    let pod = fake.wait_pod(NAMESPACE, &run_spec.run_id).await;
    fake.start_container(NAMESPACE, &pod);
    fake.log_lines(NAMESPACE, &pod, &["still here"]);
    sink.wait_raw("the output", |raw| raw == "still here\n")
        .await;
    let stopped = Instant::now();
    fake.stop();
    let outcome = within(Duration::from_secs(20), "the outcome", handle.outcome).await;
    let elapsed = stopped.elapsed();
    let RunOutcome::Failed { reason, exit_code } = outcome else {
        panic!("{outcome:?}")
    };
    assert!(
        reason.starts_with(&format!(
            "lost contact with the Kubernetes API server at {}",
            fake.url()
        )),
        "{reason}"
    );
    assert_eq!(exit_code, None);
    let bound = short_bounds().api_unreachable;
    assert!(
        elapsed >= bound && elapsed < bound + Duration::from_secs(3),
        "failed after {elapsed:?}"
    );
}

#[tokio::test]
async fn a_restarted_server_follows_the_job_again() {
    let fake = FakeKube::start();
    let first = executor(&fake);
    let run_spec = shell("echo");
    let first_sink = TestSink::new();
    let (_tx, cancel) = no_cancel();
    let handle = first
        .launch(run_spec.clone(), first_sink.clone(), cancel)
        .await
        .unwrap();
    let external_ref = handle.external_ref.clone().unwrap();
    let pod = fake.wait_pod(NAMESPACE, &run_spec.run_id).await;
    fake.start_container(NAMESPACE, &pod);
    fake.log_lines(NAMESPACE, &pod, &["1", "2", "3"]);
    first_sink
        .wait_raw("the first lines", |raw| raw == "1\n2\n3\n")
        .await;
    drop(handle);

    // A new server process: the server stored two lines before it stopped.
    let second = executor(&fake);
    let sink = TestSink::resumed(2);
    let (_tx, cancel) = no_cancel();
    let handle = second
        .reattach(run_spec.clone(), &external_ref, sink.clone(), cancel)
        .await
        .expect("the Job is found");
    sink.wait_raw("the replayed output", |raw| raw == "1\n2\n3\n")
        .await;
    fake.log_lines(NAMESPACE, &pod, &["4"]);
    fake.terminate_container(NAMESPACE, &pod, 4, "Error");
    let outcome = within(Duration::from_secs(10), "the outcome", handle.outcome).await;
    assert_eq!(outcome, RunOutcome::Exited { code: 4 });
    assert_eq!(
        sink.raw(),
        "1\n2\n3\n4\n",
        "the output is replayed from the start"
    );
    assert_eq!(sink.stdout(), ["3", "4"], "the sink drops what was stored");

    // Nothing to follow: a missing Job, another run's Job, a bad reference.
    let (_tx, cancel) = no_cancel();
    assert!(
        second
            .reattach(
                run_spec.clone(),
                "default/playground-run-gone",
                TestSink::new(),
                cancel.clone()
            )
            .await
            .is_none()
    );
    let other = shell("echo");
    assert!(
        second
            .reattach(other, &external_ref, TestSink::new(), cancel.clone())
            .await
            .is_none()
    );
    assert!(
        second
            .reattach(run_spec, "nonsense", TestSink::new(), cancel)
            .await
            .is_none()
    );
}

#[tokio::test]
async fn a_reattached_run_keeps_its_deadline() {
    let fake = FakeKube::start();
    let first = executor(&fake);
    let mut run_spec = shell("sleep 1000");
    run_spec.environment.resources.timeout = Duration::from_secs(2);
    let (_tx, cancel) = no_cancel();
    let handle = first
        .launch(run_spec.clone(), TestSink::new(), cancel)
        .await
        .unwrap();
    let external_ref = handle.external_ref.clone().unwrap();
    drop(handle);
    // The Job was created 1.5 s before the restart (the fake stamps whole
    // seconds).
    let job = job_name(&run_spec);
    let created = Timestamp::now() - SignedDuration::from_millis(1500);
    fake.update::<Job>(Kind::Job, NAMESPACE, &job, |job| {
        job.metadata.creation_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(created),
        );
    });
    let second = executor(&fake);
    let (_tx, cancel) = no_cancel();
    let reattached = Instant::now();
    let handle = second
        .reattach(run_spec, &external_ref, TestSink::new(), cancel)
        .await
        .unwrap();
    let outcome = within(Duration::from_secs(10), "the outcome", handle.outcome).await;
    assert_eq!(
        outcome,
        RunOutcome::TimedOut {
            after: Duration::from_secs(2)
        }
    );
    assert!(
        reattached.elapsed() < Duration::from_millis(1200),
        "{:?}",
        reattached.elapsed()
    );
}

#[tokio::test]
async fn a_job_deleted_by_someone_else_fails_the_run() {
    let fake = FakeKube::start();
    let executor = executor(&fake);
    let run_spec = shell("sleep 1000");
    let (_tx, cancel) = no_cancel();
    let handle = executor
        .launch(run_spec.clone(), TestSink::new(), cancel)
        .await
        .unwrap();
    let pod = fake.wait_pod(NAMESPACE, &run_spec.run_id).await;
    fake.start_container(NAMESPACE, &pod);
    fake.remove(Kind::Job, NAMESPACE, &job_name(&run_spec));
    let outcome = within(Duration::from_secs(10), "the outcome", handle.outcome).await;
    let RunOutcome::Failed { reason, .. } = outcome else {
        panic!("{outcome:?}")
    };
    assert!(reason.contains("deleted"), "{reason}");
}

#[tokio::test]
async fn a_run_that_ended_while_no_server_watched_keeps_its_outcome() {
    let fake = FakeKube::start();
    let first = executor(&fake);
    let mut run_spec = shell("echo done");
    run_spec.environment.resources.timeout = Duration::from_secs(30);
    let (_tx, cancel) = no_cancel();
    let handle = first
        .launch(run_spec.clone(), TestSink::new(), cancel)
        .await
        .unwrap();
    let external_ref = handle.external_ref.clone().unwrap();
    let pod = fake.wait_pod(NAMESPACE, &run_spec.run_id).await;
    fake.start_container(NAMESPACE, &pod);
    fake.log_lines(NAMESPACE, &pod, &["done"]);
    fake.terminate_container(NAMESPACE, &pod, 0, "Completed");
    let job = job_name(&run_spec);
    fake.job_condition(NAMESPACE, &job, "Complete", "CompletionsReached", "");
    within(Duration::from_secs(10), "the first outcome", handle.outcome).await;
    // Found again long after its deadline.
    fake.update::<Job>(Kind::Job, NAMESPACE, &job, |job| {
        job.metadata.creation_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                Timestamp::now() - SignedDuration::from_secs(3600),
            ));
    });
    let second = executor(&fake);
    let sink = TestSink::new();
    let (_tx, cancel) = no_cancel();
    let handle = second
        .reattach(run_spec, &external_ref, sink.clone(), cancel)
        .await
        .unwrap();
    let outcome = within(Duration::from_secs(10), "the outcome", handle.outcome).await;
    assert_eq!(outcome, RunOutcome::Exited { code: 0 });
    assert_eq!(sink.raw(), "done\n", "the output is replayed");
}
