use mockall::Sequence;
use mockall::predicate::eq;
use shared::UpstreamError;
use shared::ports::{MockLedger, MockNotifier, reply};

use super::*;

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

fn report(name: &str) -> Result<Report, IgnoreReason> {
    classify(&parse(event(name)).unwrap(), &config())
}

const EXECUTION: &str = "3137f7cb-7cf7-4f7a-9b3e-1234567890ab";

#[test]
fn endings_are_told_by_the_pipeline_and_failed_actions() {
    for (name, ending) in [
        ("pipeline-succeeded.json", Ending::Deployed),
        ("pipeline-failed.json", Ending::Failed),
        ("pipeline-stopped.json", Ending::Stopped),
        ("pipeline-superseded.json", Ending::Superseded),
        ("action-failed.json", Ending::Failed),
        ("approval-rejected.json", Ending::ApprovalRejected),
    ] {
        assert_eq!(report(name).unwrap().ending, ending, "{name}");
    }
    assert_eq!(
        report("pipeline-started.json"),
        Err(IgnoreReason::NotEnded {
            state: "STARTED".into()
        })
    );
    assert_eq!(report("stage-failed.json"), Err(IgnoreReason::NotTheEnd));
    assert_eq!(
        report("action-succeeded.json"),
        Err(IgnoreReason::NotTheEnd)
    );
}

#[test]
fn a_failed_action_says_where_what_and_where_to_look() {
    let notification = report("action-failed.json").unwrap().notification();
    assert_eq!(
        notification.subject,
        "FAILED: shop-main to production at Deploy / EksDeploy"
    );
    let body = &notification.body;
    assert!(
        body.contains("failed at Deploy / EksDeploy at 2026-11-23 14:01 UTC"),
        "{body}"
    );
    assert!(body.contains("Error: JobFailed"), "{body}");
    assert!(
        body.contains("Reported: rollout of shop/web did not finish"),
        "{body}"
    );
    assert!(
        body.contains("Details: https://console.aws.amazon.com/cloudwatch/"),
        "{body}"
    );
    assert!(body.contains(EXECUTION), "{body}");
    assert_eq!(
        notification.attributes,
        vec![
            ("pipeline".to_owned(), "shop-main".to_owned()),
            ("environment".to_owned(), "production".to_owned()),
            ("status".to_owned(), "FAILED".to_owned()),
        ]
    );
}

#[test]
fn a_rejected_approval_carries_the_comment() {
    let notification = report("approval-rejected.json").unwrap().notification();
    assert!(
        notification.subject.starts_with("REJECTED: shop-main"),
        "{}",
        notification.subject
    );
    assert!(
        notification
            .body
            .contains("Comment: Rejected by alice@example.com: staging shows checkout errors"),
        "{}",
        notification.body
    );
    assert_eq!(notification.attributes[2].1, "REJECTED");
}

#[test]
fn the_environment_comes_from_the_pipeline() {
    let staging = report("release-succeeded.json").unwrap();
    assert_eq!(staging.environment, "staging");
    assert_eq!(
        staging.notification().subject,
        "DEPLOYED: shop-release to staging"
    );
}

#[test]
fn one_key_per_execution_and_outcome_whichever_event_tells_it() {
    let key = |name| report(name).unwrap().deduplication_key();
    let failed = format!("delivery#shop-main#{EXECUTION}#FAILED");
    assert_eq!(key("pipeline-failed.json"), failed);
    assert_eq!(key("action-failed.json"), failed);
    assert_eq!(key("approval-rejected.json"), failed);
    assert_ne!(key("pipeline-succeeded.json"), failed);
    assert_ne!(
        key("pipeline-stopped.json"),
        key("pipeline-superseded.json")
    );
}

#[test]
fn bad_events_are_named() {
    let message = |value: Value| parse(value).unwrap_err().message().to_owned();
    assert!(
        message(event("invalid-missing-execution-id.json")).contains("execution-id"),
        "{}",
        message(event("invalid-missing-execution-id.json"))
    );
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
}

fn deps(notifier: MockNotifier, ledger: MockLedger) -> Deps<MockNotifier, MockLedger> {
    Deps::new(notifier, ledger, config())
}

#[tokio::test]
async fn a_deploy_is_claimed_published_and_recorded() {
    let key = format!("delivery#shop-main#{EXECUTION}#SUCCEEDED");
    let mut seq = Sequence::new();
    let mut ledger = MockLedger::new();
    let mut notifier = MockNotifier::new();
    ledger
        .expect_claim()
        .with(eq(key.clone()))
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| reply(Ok(Claim::Granted)));
    notifier
        .expect_publish()
        .withf(|n: &Notification| {
            n.subject == "DEPLOYED: shop-main to production"
                && n.attributes[2] == ("status".into(), "DEPLOYED".into())
        })
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| reply(Ok("message-1".to_owned())));
    ledger
        .expect_complete()
        .with(eq(key))
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| reply(Ok(())));
    let outcome = handle(&deps(notifier, ledger), event("pipeline-succeeded.json"))
        .await
        .unwrap();
    assert_eq!(
        outcome,
        Outcome::Notified {
            subject: "DEPLOYED: shop-main to production".into(),
            status: "DEPLOYED".into(),
            message_id: "message-1".into(),
        }
    );
}

#[tokio::test]
async fn a_redelivered_or_second_event_of_the_same_end_tells_nothing() {
    let mut ledger = MockLedger::new();
    ledger
        .expect_claim()
        .times(1)
        .returning(|_| reply(Ok(Claim::Done)));
    let outcome = handle(
        &deps(MockNotifier::new(), ledger),
        event("pipeline-failed.json"),
    )
    .await
    .unwrap();
    assert_eq!(
        outcome,
        Outcome::Ignored {
            reason: IgnoreReason::AlreadyNotified
        }
    );
}

#[tokio::test]
async fn a_pending_claim_fails_so_lambda_retries() {
    let mut ledger = MockLedger::new();
    ledger
        .expect_claim()
        .times(1)
        .returning(|_| reply(Ok(Claim::Pending)));
    let error = handle(
        &deps(MockNotifier::new(), ledger),
        event("action-failed.json"),
    )
    .await
    .unwrap_err();
    match error {
        FunctionError::Upstream(error) => assert!(Claim::is_pending_error(&error)),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_failed_publish_gives_the_claim_back() {
    let mut seq = Sequence::new();
    let mut ledger = MockLedger::new();
    let mut notifier = MockNotifier::new();
    ledger
        .expect_claim()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| reply(Ok(Claim::Granted)));
    notifier
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
    ledger
        .expect_release()
        .with(eq(format!("delivery#shop-main#{EXECUTION}#STOPPED")))
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| reply(Ok(())));
    let error = handle(&deps(notifier, ledger), event("pipeline-stopped.json"))
        .await
        .unwrap_err();
    assert_eq!(error.error_type(), "Upstream");
}

#[tokio::test]
async fn events_that_are_not_an_end_touch_nothing() {
    for name in [
        "pipeline-started.json",
        "stage-failed.json",
        "action-succeeded.json",
    ] {
        let outcome = handle(&deps(MockNotifier::new(), MockLedger::new()), event(name))
            .await
            .unwrap();
        assert!(matches!(outcome, Outcome::Ignored { .. }), "{name}");
    }
    let error = handle(
        &deps(MockNotifier::new(), MockLedger::new()),
        event("invalid-missing-execution-id.json"),
    )
    .await
    .unwrap_err();
    assert_eq!(error.error_type(), "InvalidEvent");
}
