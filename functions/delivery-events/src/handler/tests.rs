use mockall::Sequence;
use mockall::predicate::eq;
use shared::UpstreamError;
use shared::emf::MetricDocument;
use shared::ports::{
    ActionRun, MergedPullRequest, MockLedger, MockMergedPullRequests, MockMetrics, MockNotifier,
    MockPipelineApi, MockPullRequestApi, MockRestoreClock, Notification, reply,
};

use super::*;
use crate::report::tests::{COMMIT, EXECUTION, RunBuilder, approved, deployed_runs, run, source};

fn event(name: &str) -> Value {
    let path = format!(
        "{}/../../events/delivery-events/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

/// The settings the sample events are written for: `events/env.json`.
fn config() -> Config {
    let path = format!("{}/../../events/env.json", env!("CARGO_MANIFEST_DIR"));
    let env: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let variables = env["DeliveryEventsFunction"].clone();
    Config::from_lookup(move |name| variables[name].as_str().map(str::to_owned)).unwrap()
}

fn end_of(name: &str) -> Result<ExecutionEnd, IgnoreReason> {
    classify(&parse(event(name)).unwrap(), &config())
}

#[test]
fn only_the_executions_own_end_tells() {
    for (name, state) in [
        ("pipeline-succeeded.json", EndState::Succeeded),
        ("pipeline-failed.json", EndState::Failed),
        ("pipeline-stopped.json", EndState::Stopped),
        ("pipeline-superseded.json", EndState::Superseded),
        ("pipeline-canceled.json", EndState::Canceled),
        ("pipeline-rollback-succeeded.json", EndState::Succeeded),
    ] {
        assert_eq!(end_of(name).unwrap().state, state, "{name}");
    }
    for name in ["pipeline-started.json", "pipeline-stopping.json"] {
        assert!(
            matches!(end_of(name), Err(IgnoreReason::NotEnded { .. })),
            "{name}"
        );
    }
    // A failed action may be retried by its stage: the execution's FAILED tells, with the
    // failed action read from the execution's runs.
    for name in [
        "action-failed.json",
        "approval-rejected.json",
        "action-succeeded.json",
        "action-started.json",
        "stage-failed.json",
        "stage-started-without-stage.json",
    ] {
        assert_eq!(end_of(name), Err(IgnoreReason::NotTheEnd), "{name}");
    }
}

#[test]
fn the_end_carries_environment_attempt_time_and_console_link() {
    let end = end_of("pipeline-failed-second-attempt.json").unwrap();
    assert_eq!(end.attempt, 2);
    assert_eq!(end.environment, "production");
    assert_eq!(end.at.to_rfc3339(), "2026-11-23T15:10:00+00:00");
    assert_eq!(
        end.console_link.as_deref(),
        Some(
            "https://us-east-1.console.aws.amazon.com/codesuite/codepipeline/pipelines/shop-main/executions/3137f7cb-7cf7-4f7a-9b3e-1234567890ab/timeline?region=us-east-1"
        )
    );
    assert_eq!(
        end_of("release-succeeded.json").unwrap().environment,
        "staging"
    );
    assert_eq!(end_of("pipeline-failed.json").unwrap().attempt, 1);
    assert!(!end_of("pipeline-succeeded.json").unwrap().rollback);
    assert!(end_of("pipeline-rollback-succeeded.json").unwrap().rollback);
}

#[test]
fn bad_events_are_named() {
    let message = |value: Value| parse(value).unwrap_err().message().to_owned();
    assert!(message(event("invalid-missing-execution-id.json")).contains("execution-id"));
    assert!(message(event("invalid-action-without-stage.json")).contains("detail.stage"));
    let mut empty = event("pipeline-failed.json");
    empty["detail"]["pipeline"] = Value::from("  ");
    assert!(message(empty).contains("detail.pipeline"));
    let mut foreign = event("pipeline-failed.json");
    foreign["source"] = Value::from("aws.codebuild");
    assert!(message(foreign).contains("source"));
    let mut state = event("pipeline-failed.json");
    state["detail"]["state"] = Value::from(7);
    assert!(message(state).contains("detail.state"));
    let mut attempt = event("pipeline-failed.json");
    attempt["detail"]["pipeline-execution-attempt"] = Value::from("one");
    assert!(message(attempt).contains("pipeline-execution-attempt"));
    let mut timeless = event("pipeline-failed.json");
    timeless.as_object_mut().unwrap().remove("time");
    assert!(message(timeless).contains("time"));
}

/// Mocks that expect nothing: each test adds exactly the calls it expects.
struct Mocks {
    notifier: MockNotifier,
    ledger: MockLedger,
    pipelines: MockPipelineApi,
    pull_requests: MockPullRequestApi,
    merges: MockMergedPullRequests,
    restores: MockRestoreClock,
    metrics: MockMetrics,
}

type TestDeps = Deps<
    MockNotifier,
    MockLedger,
    MockPipelineApi,
    MockPullRequestApi,
    MockMergedPullRequests,
    MockRestoreClock,
    MockMetrics,
>;

impl Mocks {
    fn new() -> Self {
        Self {
            notifier: MockNotifier::new(),
            ledger: MockLedger::new(),
            pipelines: MockPipelineApi::new(),
            pull_requests: MockPullRequestApi::new(),
            merges: MockMergedPullRequests::new(),
            restores: MockRestoreClock::new(),
            metrics: MockMetrics::new(),
        }
    }

    fn deps(self) -> TestDeps {
        Deps {
            notifier: self.notifier,
            ledger: self.ledger,
            pipelines: self.pipelines,
            pull_requests: self.pull_requests,
            merges: self.merges,
            restores: self.restores,
            metrics: self.metrics,
            config: config(),
        }
    }

    fn runs(&mut self, runs: Vec<ActionRun>) {
        self.pipelines
            .expect_action_runs()
            .with(eq("shop-main"), eq(EXECUTION))
            .times(1)
            .returning(move |_, _| reply(Ok(runs.clone())));
    }

    /// The ledger answers `claim` for the effect `effect` of the FAILED/SUCCEEDED… end.
    fn claim(&mut self, state: &str, effect: &str, claim: Claim, seq: &mut Sequence) {
        let key = format!("delivery#shop-main#{EXECUTION}#1#{state}#{effect}");
        self.ledger
            .expect_claim()
            .with(eq(key.clone()))
            .times(1)
            .in_sequence(seq)
            .returning(move |_| reply(Ok(claim)));
    }

    fn complete(&mut self, state: &str, effect: &str, seq: &mut Sequence) {
        let key = format!("delivery#shop-main#{EXECUTION}#1#{state}#{effect}");
        self.ledger
            .expect_complete()
            .with(eq(key))
            .times(1)
            .in_sequence(seq)
            .returning(|_| reply(Ok(())));
    }

    fn merged(&mut self) {
        self.merges
            .expect_merged_as()
            .with(eq("shop"), eq(COMMIT))
            .times(1)
            .returning(|_, _| {
                reply(Ok(Some(MergedPullRequest {
                    repository: "shop".into(),
                    merge_commit: COMMIT.into(),
                    pull_request_id: "42".into(),
                    title: "One-click checkout".into(),
                    destination_commit: "d".repeat(40),
                    source_commit: COMMIT.into(),
                })))
            });
    }
}

#[tokio::test]
async fn a_deploy_is_told_by_email_on_its_pull_request_and_in_the_metrics_once_each() {
    let mut seq = Sequence::new();
    let mut mocks = Mocks::new();
    mocks.runs(deployed_runs());
    mocks.claim("SUCCEEDED", "notification", Claim::Granted, &mut seq);
    mocks
        .notifier
        .expect_publish()
        .withf(|n: &Notification| {
            n.subject == "DEPLOYED: shop-main to production (0ccf1ae feat: one-click checkout)"
                && n.attributes[2] == ("status".into(), "DEPLOYED".into())
        })
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| reply(Ok("message-1".to_owned())));
    mocks.complete("SUCCEEDED", "notification", &mut seq);
    mocks.merged();
    mocks.claim("SUCCEEDED", "comment", Claim::Granted, &mut seq);
    mocks
        .pull_requests
        .expect_post_comment()
        .withf(|c: &PullRequestComment| {
            c.pull_request_id == "42"
                && c.repository == "shop"
                && c.before_commit_id == "d".repeat(40)
                && c.after_commit_id == COMMIT
                && c.client_request_token == format!("delivery-{EXECUTION}-1-deployed")
                && c.content.starts_with("Deployed to production at 14:02 UTC (sha256:ab12cd34ef56…, approved by alice@example.com)")
        })
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| {
            reply(Ok(PostedComment::Posted {
                comment_id: "comment-1".into(),
            }))
        });
    mocks.complete("SUCCEEDED", "comment", &mut seq);
    mocks.claim("SUCCEEDED", "metrics", Claim::Granted, &mut seq);
    mocks
        .restores
        .expect_deployed()
        .withf(|service, deploy, at| {
            service == "shop-main#production"
                && deploy == EXECUTION
                && at.to_rfc3339() == "2026-11-23T14:02:00+00:00"
        })
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _, _| reply(Ok(Some(std::time::Duration::from_secs(3600)))));
    mocks
        .metrics
        .expect_emit()
        .withf(|d: &MetricDocument| {
            let json = d.to_json();
            json["Deployments"] == 1.0
                && json["DeploymentFailed"] == 0.0
                && json["TimeToRestoreSeconds"] == 3600.0
                && json["LeadTimeSeconds"].is_number()
                && json["Pipeline"] == "shop-main"
                && json["Environment"] == "production"
        })
        .times(1)
        .in_sequence(&mut seq)
        .return_const(());
    mocks.complete("SUCCEEDED", "metrics", &mut seq);

    let outcome = handle(&mocks.deps(), event("pipeline-succeeded.json"))
        .await
        .unwrap();
    assert_eq!(
        outcome,
        Outcome::Told {
            status: "DEPLOYED".into(),
            subject: "DEPLOYED: shop-main to production (0ccf1ae feat: one-click checkout)".into(),
            message_id: Some("message-1".into()),
            pull_request_id: Some("42".into()),
            comment_id: Some("comment-1".into()),
            metrics: vec![
                "Deployments".into(),
                "DeploymentFailed".into(),
                "LeadTimeSeconds".into(),
                "TimeToRestoreSeconds".into()
            ],
            already_done: vec![],
        }
    );
}

#[tokio::test]
async fn a_redelivered_end_finds_every_effect_done_and_produces_none() {
    let mut seq = Sequence::new();
    let mut mocks = Mocks::new();
    mocks.runs(deployed_runs());
    mocks.claim("SUCCEEDED", "notification", Claim::Done, &mut seq);
    mocks.merged();
    mocks.claim("SUCCEEDED", "comment", Claim::Done, &mut seq);
    mocks.claim("SUCCEEDED", "metrics", Claim::Done, &mut seq);
    let outcome = handle(&mocks.deps(), event("pipeline-succeeded.json"))
        .await
        .unwrap();
    match outcome {
        Outcome::Told {
            message_id,
            comment_id,
            metrics,
            already_done,
            ..
        } => {
            assert_eq!((message_id, comment_id), (None, None));
            assert!(metrics.is_empty());
            assert_eq!(already_done, ["notification", "comment", "metrics"]);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_commit_no_pull_request_merged_gets_no_comment() {
    let mut seq = Sequence::new();
    let mut mocks = Mocks::new();
    mocks.runs(deployed_runs());
    mocks.claim("SUCCEEDED", "notification", Claim::Done, &mut seq);
    mocks
        .merges
        .expect_merged_as()
        .times(1)
        .returning(|_, _| reply(Ok(None)));
    mocks.claim("SUCCEEDED", "metrics", Claim::Done, &mut seq);
    let outcome = handle(&mocks.deps(), event("pipeline-succeeded.json"))
        .await
        .unwrap();
    assert!(
        matches!(
            &outcome,
            Outcome::Told {
                pull_request_id: None,
                comment_id: None,
                ..
            }
        ),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn a_rolled_back_deploy_opens_the_restore_clock_and_counts_a_failed_change() {
    let runs = vec![
        run("Deploy", "EksDeploy", "Invoke")
            .between("2026-11-23T13:58:05Z", "2026-11-23T14:01:50Z")
            .failed(
                "rollout failed: ImagePullBackOff. Rolled back to shop:5d1e (rollout complete).",
            ),
        approved(),
        source(),
    ];
    let mut seq = Sequence::new();
    let mut mocks = Mocks::new();
    mocks.runs(runs);
    mocks.claim("FAILED", "notification", Claim::Granted, &mut seq);
    mocks
        .notifier
        .expect_publish()
        .withf(|n: &Notification| n.subject == "ROLLED BACK: shop-main in production")
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| reply(Ok("message-2".to_owned())));
    mocks.complete("FAILED", "notification", &mut seq);
    mocks.merged();
    mocks.claim("FAILED", "comment", Claim::Granted, &mut seq);
    mocks
        .pull_requests
        .expect_post_comment()
        .withf(|c: &PullRequestComment| {
            c.content
                .starts_with("Rolled back in production at 14:02 UTC")
                && c.client_request_token == format!("delivery-{EXECUTION}-1-rolled_back")
        })
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| reply(Ok(PostedComment::AlreadyPosted)));
    mocks.complete("FAILED", "comment", &mut seq);
    mocks.claim("FAILED", "metrics", Claim::Granted, &mut seq);
    mocks
        .restores
        .expect_deploy_failed()
        .withf(|service, _| service == "shop-main#production")
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _| reply(Ok(())));
    mocks
        .metrics
        .expect_emit()
        .withf(|d: &MetricDocument| {
            let json = d.to_json();
            json["DeploymentFailures"] == 1.0 && json["DeploymentFailed"] == 1.0
        })
        .times(1)
        .in_sequence(&mut seq)
        .return_const(());
    mocks.complete("FAILED", "metrics", &mut seq);
    let outcome = handle(&mocks.deps(), event("pipeline-failed.json"))
        .await
        .unwrap();
    assert!(
        matches!(&outcome, Outcome::Told { status, comment_id: None, .. } if status == "ROLLED_BACK"),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn a_rejected_approval_is_told_by_email_only() {
    let rejected = run("Approval", "ProductionGate", "Approval")
        .summary("Rejected by alice@example.com via the email link: staging shows checkout errors")
        .failed("Rejected by alice@example.com via the email link: staging shows checkout errors");
    let mut seq = Sequence::new();
    let mut mocks = Mocks::new();
    mocks.runs(vec![rejected, source()]);
    mocks.claim("FAILED", "notification", Claim::Granted, &mut seq);
    mocks
        .notifier
        .expect_publish()
        .withf(|n: &Notification| {
            n.subject.starts_with("REJECTED:")
                && n.body
                    .contains("Rejected by: alice@example.com: staging shows checkout errors")
        })
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| reply(Ok("message-3".to_owned())));
    mocks.complete("FAILED", "notification", &mut seq);
    let outcome = handle(&mocks.deps(), event("pipeline-failed.json"))
        .await
        .unwrap();
    assert!(
        matches!(&outcome, Outcome::Told { status, metrics, .. } if status == "REJECTED" && metrics.is_empty())
    );
}

#[tokio::test]
async fn a_failed_publish_gives_its_claim_back_yet_the_other_effects_go_ahead() {
    let mut seq = Sequence::new();
    let mut mocks = Mocks::new();
    mocks.runs(deployed_runs());
    mocks.claim("SUCCEEDED", "notification", Claim::Granted, &mut seq);
    mocks
        .notifier
        .expect_publish()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| {
            reply(Err(UpstreamError::new(
                "SNS",
                "Publish",
                Some("Throttled".into()),
                "slow down",
            )))
        });
    mocks
        .ledger
        .expect_release()
        .with(eq(format!(
            "delivery#shop-main#{EXECUTION}#1#SUCCEEDED#notification"
        )))
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| reply(Ok(())));
    mocks.merged();
    mocks.claim("SUCCEEDED", "comment", Claim::Done, &mut seq);
    mocks.claim("SUCCEEDED", "metrics", Claim::Done, &mut seq);
    let error = handle(&mocks.deps(), event("pipeline-succeeded.json"))
        .await
        .unwrap_err();
    assert_eq!(error.error_type(), "Upstream");
}

#[tokio::test]
async fn a_pending_claim_fails_so_lambda_retries() {
    let mut seq = Sequence::new();
    let mut mocks = Mocks::new();
    mocks.runs(vec![]);
    mocks.claim("STOPPED", "notification", Claim::Pending, &mut seq);
    let error = handle(&mocks.deps(), event("pipeline-stopped.json"))
        .await
        .unwrap_err();
    match error {
        FunctionError::Upstream(error) => assert!(Claim::is_pending_error(&error)),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn an_unreadable_execution_fails_before_telling_anything() {
    let mut mocks = Mocks::new();
    mocks
        .pipelines
        .expect_action_runs()
        .times(1)
        .returning(|_, _| {
            reply(Err(UpstreamError::new(
                "CodePipeline",
                "ListActionExecutions",
                Some("ThrottlingException".into()),
                "Rate exceeded",
            )))
        });
    let error = handle(&mocks.deps(), event("pipeline-succeeded.json"))
        .await
        .unwrap_err();
    assert_eq!(error.error_type(), "Upstream");
}

#[tokio::test]
async fn events_that_are_not_an_end_touch_nothing() {
    for name in [
        "pipeline-started.json",
        "pipeline-stopping.json",
        "stage-failed.json",
        "stage-started-without-stage.json",
        "action-failed.json",
        "action-started.json",
    ] {
        let outcome = handle(&Mocks::new().deps(), event(name)).await.unwrap();
        assert!(matches!(outcome, Outcome::Ignored { .. }), "{name}");
    }
    let error = handle(
        &Mocks::new().deps(),
        event("invalid-missing-execution-id.json"),
    )
    .await
    .unwrap_err();
    assert_eq!(error.error_type(), "InvalidEvent");
}
