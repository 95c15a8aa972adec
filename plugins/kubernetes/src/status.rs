//! How a run stands, judged purely from the last seen Job and pod: still
//! going (perhaps with a problem that fails the run if it lasts), or ended
//! with an outcome.

use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use playground_executors::RunOutcome;

use crate::manifest::CONTAINER_NAME;

/// What is known of a run's objects.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Seen<'a> {
    pub job: Option<&'a Job>,
    /// The Job was listed or watched and is gone.
    pub job_gone: bool,
    pub pod: Option<&'a Pod>,
}

/// What the run needs to be judged.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Facts<'a> {
    pub image: &'a str,
    pub memory_mb: u32,
    pub timeout: Duration,
}

/// Something keeping a run from starting, which fails it if it lasts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum ProblemKind {
    /// The image cannot be pulled (or the container created).
    Start,
    /// The scheduler finds no node for the pod.
    Unschedulable,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Problem {
    pub kind: ProblemKind,
    /// The run's failure reason if the problem lasts.
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Going {
        problem: Option<Problem>,
    },
    Ended(RunOutcome),
    /// The Job ended but its pod was not seen ending: the pod's watch may
    /// lag the Job's, so look at the pod before taking this outcome.
    JobEnded(RunOutcome),
    /// The program exited with an error but the Job was not seen ending:
    /// its deadline may have killed the program, so look at the Job before
    /// taking this outcome.
    PodEnded(RunOutcome),
}

impl Verdict {
    /// The outcome, whether or not it needs confirming.
    pub(crate) fn outcome(self) -> Option<RunOutcome> {
        match self {
            Verdict::Ended(outcome) | Verdict::JobEnded(outcome) | Verdict::PodEnded(outcome) => {
                Some(outcome)
            }
            Verdict::Going { .. } => None,
        }
    }
}

/// What the log follower needs to know of the pod.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct PodView {
    pub pod_name: Option<String>,
    /// The container started (it has or had output).
    pub started: bool,
    /// The container stopped: its output is complete.
    pub terminated: bool,
    /// The run is over: read what is left once and stop.
    pub run_ended: bool,
}

/// Judges a run from its objects.
pub(crate) fn judge(seen: Seen<'_>, facts: Facts<'_>) -> Verdict {
    if let Some(job) = seen.job
        && let Some(condition) = job_condition(job, &["Failed", "FailureTarget"])
        && condition.0 == "DeadlineExceeded"
    {
        return Verdict::Ended(RunOutcome::TimedOut {
            after: facts.timeout,
        });
    }
    let status = seen.pod.and_then(container_status);
    if let Some(terminated) = status
        .and_then(|s| s.state.as_ref())
        .and_then(|s| s.terminated.as_ref())
    {
        let code = terminated.exit_code;
        let reason = terminated.reason.as_deref().unwrap_or("");
        return Verdict::Ended(match reason {
            "OOMKilled" => RunOutcome::Failed {
                reason: format!(
                    "the program exceeded its memory limit of {} MB and was killed (exit code {code})",
                    facts.memory_mb
                ),
                exit_code: Some(code),
            },
            "" | "Error" | "Completed" if code != 0 && !job_ended(seen.job) => {
                return Verdict::PodEnded(RunOutcome::Exited { code });
            }
            "" | "Error" | "Completed" => RunOutcome::Exited { code },
            other => RunOutcome::Failed {
                reason: with_message(
                    format!("the container ended with {other} (exit code {code})"),
                    terminated.message.as_deref(),
                ),
                exit_code: Some(code),
            },
        });
    }
    if let Some(job) = seen.job {
        if job_condition(job, &["Complete", "SuccessCriteriaMet"]).is_some() {
            return Verdict::JobEnded(RunOutcome::Exited { code: 0 });
        }
        if let Some((reason, message)) = job_condition(job, &["Failed"]) {
            return Verdict::JobEnded(RunOutcome::Failed {
                reason: with_message(format!("the Job failed ({reason})"), Some(message)),
                exit_code: None,
            });
        }
    }
    if let Some(pod) = seen.pod {
        let pod_status = pod.status.as_ref();
        if pod_status.and_then(|s| s.phase.as_deref()) == Some("Failed") {
            let reason = pod_status
                .and_then(|s| s.reason.as_deref())
                .unwrap_or("no reason given");
            return Verdict::Ended(RunOutcome::Failed {
                reason: with_message(
                    format!("the pod failed ({reason})"),
                    pod_status.and_then(|s| s.message.as_deref()),
                ),
                exit_code: None,
            });
        }
    }
    if seen.job_gone {
        return Verdict::Ended(RunOutcome::Failed {
            reason: "the run's Job was deleted before the program ended".to_owned(),
            exit_code: None,
        });
    }
    if let Some(waiting) = status
        .and_then(|s| s.state.as_ref())
        .and_then(|s| s.waiting.as_ref())
    {
        let reason = waiting.reason.as_deref().unwrap_or("");
        let message = waiting.message.as_deref();
        let image = facts.image;
        match reason {
            "InvalidImageName" => {
                return Verdict::Ended(RunOutcome::Failed {
                    reason: with_message(
                        format!("the image {image} is not a valid image reference"),
                        message,
                    ),
                    exit_code: None,
                });
            }
            "ErrImagePull" | "ImagePullBackOff" | "ErrImageNeverPull" => {
                return going(
                    ProblemKind::Start,
                    with_message(
                        format!("the image {image} could not be pulled ({reason})"),
                        message,
                    ),
                );
            }
            "CreateContainerConfigError" | "CreateContainerError" | "RunContainerError" => {
                return going(
                    ProblemKind::Start,
                    with_message(
                        format!("the container could not be started ({reason})"),
                        message,
                    ),
                );
            }
            _ => {}
        }
    }
    if let Some(condition) = seen
        .pod
        .and_then(|p| p.status.as_ref())
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "PodScheduled"))
        && condition.status == "False"
        && condition.reason.as_deref() == Some("Unschedulable")
    {
        return going(
            ProblemKind::Unschedulable,
            with_message(
                "the pod could not be scheduled".to_owned(),
                condition.message.as_deref(),
            ),
        );
    }
    Verdict::Going { problem: None }
}

/// The pod as the log follower sees it.
pub(crate) fn pod_view(pod: Option<&Pod>) -> PodView {
    let Some(pod) = pod else {
        return PodView::default();
    };
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    let state = container_status(pod).and_then(|s| s.state.as_ref());
    let terminated = state.is_some_and(|s| s.terminated.is_some())
        || matches!(phase, Some("Succeeded" | "Failed"));
    PodView {
        pod_name: pod.metadata.name.clone(),
        started: terminated || state.is_some_and(|s| s.running.is_some()),
        terminated,
        run_ended: false,
    }
}

fn going(kind: ProblemKind, reason: String) -> Verdict {
    Verdict::Going {
        problem: Some(Problem { kind, reason }),
    }
}

fn container_status(pod: &Pod) -> Option<&ContainerStatus> {
    pod.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .iter()
        .find(|s| s.name == CONTAINER_NAME)
}

/// Whether the Job has a final condition.
fn job_ended(job: Option<&Job>) -> bool {
    job.is_some_and(|job| job_condition(job, &["Complete", "Failed", "FailureTarget"]).is_some())
}

/// The reason and message of the first true condition of one of `types`.
fn job_condition<'a>(job: &'a Job, types: &[&str]) -> Option<(&'a str, &'a str)> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| types.contains(&c.type_.as_str()) && c.status == "True")
        .map(|c| {
            (
                c.reason.as_deref().unwrap_or(""),
                c.message.as_deref().unwrap_or(""),
            )
        })
}

fn with_message(text: String, message: Option<&str>) -> String {
    match message.map(str::trim) {
        Some(message) if !message.is_empty() => format!("{text}: {message}"),
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const FACTS: Facts<'static> = Facts {
        image: "busybox:1.36",
        memory_mb: 64,
        timeout: Duration::from_secs(5),
    };

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p"}, "status": status})).unwrap()
    }

    fn job(conditions: serde_json::Value) -> Job {
        serde_json::from_value(
            json!({"metadata": {"name": "j"}, "status": {"conditions": conditions}}),
        )
        .unwrap()
    }

    fn judge_pod(status: serde_json::Value) -> Verdict {
        let pod = pod(status);
        judge(
            Seen {
                job: None,
                job_gone: false,
                pod: Some(&pod),
            },
            FACTS,
        )
    }

    fn terminated(exit_code: i32, reason: &str) -> serde_json::Value {
        json!({"phase": "Failed", "containerStatuses": [{"name": "program", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": exit_code, "reason": reason}}}]})
    }

    fn waiting(reason: &str, message: &str) -> serde_json::Value {
        json!({"phase": "Pending", "containerStatuses": [{"name": "program", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"waiting": {"reason": reason, "message": message}}}]})
    }

    #[test]
    fn exit_codes_and_oom_kills() {
        assert_eq!(
            judge_pod(terminated(0, "Completed")),
            Verdict::Ended(RunOutcome::Exited { code: 0 })
        );
        assert_eq!(
            judge_pod(terminated(3, "Error")),
            Verdict::PodEnded(RunOutcome::Exited { code: 3 })
        );
        let Verdict::Ended(RunOutcome::Failed { reason, exit_code }) =
            judge_pod(terminated(137, "OOMKilled"))
        else {
            panic!()
        };
        assert!(reason.contains("memory limit of 64 MB"), "{reason}");
        assert_eq!(exit_code, Some(137));
        let Verdict::Ended(RunOutcome::Failed { reason, .. }) =
            judge_pod(terminated(128, "StartError"))
        else {
            panic!()
        };
        assert!(reason.contains("StartError"), "{reason}");
    }

    #[test]
    fn a_deadline_exceeded_job_timed_out() {
        let job = job(
            json!([{"type": "Failed", "status": "True", "reason": "DeadlineExceeded", "message": "Job was active longer than specified deadline"}]),
        );
        let pod = pod(terminated(137, "Error"));
        let seen = Seen {
            job: Some(&job),
            job_gone: false,
            pod: Some(&pod),
        };
        assert_eq!(
            judge(seen, FACTS),
            Verdict::Ended(RunOutcome::TimedOut {
                after: Duration::from_secs(5)
            })
        );
    }

    #[test]
    fn start_problems_name_the_image_or_the_scheduler() {
        let Verdict::Going {
            problem: Some(problem),
        } = judge_pod(waiting("ImagePullBackOff", "Back-off pulling image"))
        else {
            panic!()
        };
        assert_eq!(problem.kind, ProblemKind::Start);
        assert!(
            problem.reason.contains("busybox:1.36"),
            "{}",
            problem.reason
        );
        let Verdict::Ended(RunOutcome::Failed { reason, .. }) =
            judge_pod(waiting("InvalidImageName", "bad"))
        else {
            panic!()
        };
        assert!(reason.contains("busybox:1.36"), "{reason}");
        let Verdict::Going {
            problem: Some(problem),
        } = judge_pod(
            json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
            "message": "0/3 nodes are available: 3 Insufficient memory."}]}),
        )
        else {
            panic!()
        };
        assert_eq!(problem.kind, ProblemKind::Unschedulable);
        assert!(problem.reason.contains("3 Insufficient memory"));
        assert_eq!(
            judge_pod(waiting("ContainerCreating", "")),
            Verdict::Going { problem: None }
        );
    }

    #[test]
    fn job_conditions_end_runs_whose_pod_was_not_seen() {
        let complete = job(json!([{"type": "Complete", "status": "True"}]));
        let seen = Seen {
            job: Some(&complete),
            job_gone: false,
            pod: None,
        };
        assert_eq!(
            judge(seen, FACTS),
            Verdict::JobEnded(RunOutcome::Exited { code: 0 })
        );
        let failed =
            job(json!([{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]));
        let seen = Seen {
            job: Some(&failed),
            job_gone: false,
            pod: None,
        };
        assert!(matches!(
            judge(seen, FACTS),
            Verdict::JobEnded(RunOutcome::Failed { .. })
        ));
        let seen = Seen {
            job: None,
            job_gone: true,
            pod: None,
        };
        assert!(matches!(
            judge(seen, FACTS),
            Verdict::Ended(RunOutcome::Failed { .. })
        ));
    }

    #[test]
    fn the_view_follows_the_container() {
        let view = pod_view(Some(&pod(waiting("ContainerCreating", ""))));
        assert!(!view.started && !view.terminated);
        assert_eq!(view.pod_name.as_deref(), Some("p"));
        let view = pod_view(Some(&pod(terminated(0, "Completed"))));
        assert!(view.started && view.terminated);
    }
}
