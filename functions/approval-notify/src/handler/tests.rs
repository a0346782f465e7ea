use mockall::predicate::eq;
use serde_json::json;
use shared::UpstreamError;
use shared::approval_link::LinkError;
use shared::ports::{
    ActionRun, ApprovalState, MockActionHistory, MockApprovalApi, MockLedger, MockNotifier,
    Notification, reply,
};

use super::*;
use crate::config::Config;

const TOKEN: &str = "1a2b3c4d-573f-4ea7-a67e-0123456789ab";
/// 2026-11-23T10:00:00Z, before the samples' expiry.
const NOW: i64 = 1_795_428_000;
const COMMIT: &str = "0ccf1ae1bf4c7d610115754eef7bf8c60e7f167e";

fn event(name: &str) -> Value {
    let path = format!(
        "{}/../../events/approval-notify/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

/// The settings the sample events are written for: `events/env.json`.
fn config() -> Config {
    let path = format!("{}/../../events/env.json", env!("CARGO_MANIFEST_DIR"));
    let env: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let variables = env["ApprovalNotifyFunction"].clone();
    Config::from_lookup(|name| variables[name].as_str().map(str::to_owned)).unwrap()
}

fn key() -> SigningKey {
    SigningKey::new(b"unit-test signing key of 32+ bytes!!").unwrap()
}

fn waiting() -> ApprovalState {
    ApprovalState {
        execution_id: Some("e-1".into()),
        status: Some("InProgress".into()),
        token: Some(TOKEN.into()),
        ..ApprovalState::default()
    }
}

fn approvals_with(state: Result<ApprovalState, UpstreamError>) -> MockApprovalApi {
    let mut approvals = MockApprovalApi::new();
    approvals
        .expect_approval_state()
        .with(
            eq("shop-main"),
            eq("Approval"),
            eq("ProductionGate"),
            eq(TOKEN),
        )
        .times(1)
        .return_once(move |_, _, _, _| reply(state));
    approvals
        .expect_execution_revision()
        .with(eq("shop-main"), eq("e-1"))
        .returning(|_, _| {
            reply(Ok(Some(Revision {
                id: COMMIT.into(),
                summary: Some("feat: one-click checkout\n\nDetails.".into()),
                url: None,
            })))
        });
    approvals
}

/// An execution history without deploys (a one-environment pipeline): read at most once per
/// delivery, it adds nothing to the email.
fn history() -> MockActionHistory {
    let mut history = MockActionHistory::new();
    history
        .expect_action_runs()
        .with(eq("shop-main"), eq("e-1"))
        .returning(|_, _| reply(Ok(Vec::new())));
    history
}

const APPROVERS: [&str; 2] = ["alice@example.com", "bob@example.com"];

/// A ledger whose one claim call grants every approver's email, and whose one record call
/// records them all.
fn granting_ledger() -> MockLedger {
    let mut ledger = MockLedger::new();
    ledger
        .expect_claim_all()
        .withf(|keys| {
            keys.len() == 2
                && keys.iter().zip(APPROVERS).all(|(key, approver)| {
                    key.starts_with("approval-email/")
                        && key.ends_with(&format!("/{approver}"))
                        && !key.contains(TOKEN)
                })
        })
        .times(1)
        .returning(|keys| reply(Ok(vec![Claim::Granted; keys.len()])));
    ledger
        .expect_complete_all()
        .withf(|keys| keys.len() == 2)
        .times(1)
        .returning(|_| reply(Ok(())));
    ledger
}

/// The approver an email is for, by its filter attribute.
fn addressee(notification: &Notification) -> &str {
    &notification.attributes[0].1
}

fn link_in(body: &str, decision: Decision) -> String {
    let mut lines = body.lines();
    lines
        .find(|line| *line == format!("{}:", decision.verb()))
        .unwrap();
    let url = lines.next().unwrap();
    url.split_once("?link=").unwrap().1.to_owned()
}

#[test]
fn the_sample_notification_parses_and_invalid_ones_are_refused() {
    let notification = parse(event("approval-needed.json")).unwrap();
    assert_eq!(notification.approval.token, TOKEN);
    assert!(parse(event("approval-needed-minimal.json")).is_ok());
    assert!(parse(event("approval-expired.json")).is_ok());
    let error = parse(event("invalid-missing-token.json")).unwrap_err();
    assert!(error.message().contains("missing field `token`"), "{error}");
    let error = parse(event("invalid-not-an-approval.json")).unwrap_err();
    assert!(error.message().contains("not JSON"), "{error}");
}

#[tokio::test]
async fn each_approver_gets_their_own_signed_links_and_the_commit() {
    let mut notifier = MockNotifier::new();
    let published = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Notification>::new()));
    let sink = published.clone();
    notifier
        .expect_publish_all()
        .times(1)
        .returning(move |emails| {
            sink.lock().unwrap().extend(emails.iter().cloned());
            reply((1..=emails.len()).map(|n| Ok(format!("m-{n}"))).collect())
        });
    let deps = Deps::new(
        approvals_with(Ok(waiting())),
        history(),
        notifier,
        granting_ledger(),
        key(),
        config(),
    );

    let outcome = handle(&deps, event("approval-needed.json"), NOW)
        .await
        .unwrap();

    assert_eq!(
        outcome,
        Outcome::Notified {
            pipeline: "shop-main".into(),
            stage: "Approval".into(),
            action: "ProductionGate".into(),
            sent: vec!["alice@example.com".into(), "bob@example.com".into()],
            already_sent: vec![],
            commit_id: Some(COMMIT.into()),
        }
    );
    let published = published.lock().unwrap();
    for (message, approver) in published
        .iter()
        .zip(["alice@example.com", "bob@example.com"])
    {
        assert_eq!(
            message.subject,
            "Approval needed: shop-main (Approval/ProductionGate)"
        );
        assert_eq!(
            message.attributes,
            vec![("approver".to_owned(), approver.to_owned())]
        );
        assert!(
            message.body.contains("0ccf1ae  feat: one-click checkout"),
            "{}",
            message.body
        );
        assert!(message.body.contains("Staging runs the new checkout."));
        assert!(message.body.contains("https://staging.shop.example.com"));
        assert!(
            message.body.contains("Expires:  2099-11-30 10:00 UTC"),
            "{}",
            message.body
        );
        assert!(
            message
                .body
                .contains("http://127.0.0.1:9000/lambda-url/approval-callback/?link=")
        );
        for decision in Decision::ALL {
            let link =
                ApprovalLink::verify(&link_in(&message.body, decision), &key(), NOW).unwrap();
            assert_eq!(link.approver.as_str(), approver);
            assert_eq!(link.decision, decision);
            assert_eq!(link.approval.token, TOKEN);
            assert_eq!(link.approval.pipeline, "shop-main");
            assert_eq!(link.expires_at, 4_099_716_000);
        }
        // Alice's links are not Bob's: the other approver's signature does not verify hers.
        let other = if approver.starts_with("alice") {
            &published[1]
        } else {
            &published[0]
        };
        assert_ne!(
            link_in(&message.body, Decision::Approve),
            link_in(&other.body, Decision::Approve)
        );
    }
}

#[tokio::test]
async fn a_redelivery_mails_nobody_twice() {
    let mut ledger = MockLedger::new();
    ledger
        .expect_claim_all()
        .withf(|keys| keys.len() == 2)
        .times(1)
        .returning(|_| reply(Ok(vec![Claim::Done, Claim::Done])));
    let deps = Deps::new(
        approvals_with(Ok(waiting())),
        history(),
        MockNotifier::new(),
        ledger,
        key(),
        config(),
    );

    let outcome = handle(&deps, event("approval-needed.json"), NOW)
        .await
        .unwrap();

    let Outcome::Notified {
        sent, already_sent, ..
    } = outcome
    else {
        panic!("{outcome:?}");
    };
    assert!(sent.is_empty());
    assert_eq!(already_sent.len(), 2);
}

#[tokio::test]
async fn an_approver_whose_claim_is_pending_fails_the_delivery_so_it_is_retried() {
    let mut ledger = MockLedger::new();
    ledger
        .expect_claim_all()
        .times(1)
        .returning(|_| reply(Ok(vec![Claim::Pending, Claim::Done])));
    let deps = Deps::new(
        approvals_with(Ok(waiting())),
        history(),
        MockNotifier::new(),
        ledger,
        key(),
        config(),
    );

    let error = handle(&deps, event("approval-needed.json"), NOW)
        .await
        .unwrap_err();

    assert_eq!(error.error_type(), "Upstream");
    assert!(error.to_string().contains("ClaimPending"), "{error}");
}

#[tokio::test]
async fn a_failed_email_releases_its_claim_records_the_others_and_fails() {
    let mut notifier = MockNotifier::new();
    notifier
        .expect_publish_all()
        .withf(|emails| emails.iter().map(addressee).eq(APPROVERS))
        .times(1)
        .returning(|_| {
            reply(vec![
                Err(UpstreamError::new(
                    "SNS",
                    "PublishBatch",
                    Some("InternalError".into()),
                    "try again",
                )),
                Ok("m-2".into()),
            ])
        });
    let mut ledger = MockLedger::new();
    ledger
        .expect_claim_all()
        .times(1)
        .returning(|_| reply(Ok(vec![Claim::Granted, Claim::Granted])));
    ledger
        .expect_release()
        .withf(|key| key.ends_with("/alice@example.com"))
        .times(1)
        .returning(|_| reply(Ok(())));
    ledger
        .expect_complete_all()
        .withf(|keys| keys.len() == 1 && keys[0].ends_with("/bob@example.com"))
        .times(1)
        .returning(|_| reply(Ok(())));
    let deps = Deps::new(
        approvals_with(Ok(waiting())),
        history(),
        notifier,
        ledger,
        key(),
        config(),
    );

    let error = handle(&deps, event("approval-needed.json"), NOW)
        .await
        .unwrap_err();
    assert_eq!(error.error_type(), "Upstream");
    assert!(error.to_string().contains("InternalError"), "{error}");
}

#[tokio::test]
async fn only_the_approvers_not_yet_mailed_are_mailed_and_recorded() {
    let mut notifier = MockNotifier::new();
    notifier
        .expect_publish_all()
        .withf(|emails| emails.len() == 1 && addressee(&emails[0]) == "bob@example.com")
        .times(1)
        .returning(|_| reply(vec![Ok("m-2".into())]));
    let mut ledger = MockLedger::new();
    ledger
        .expect_claim_all()
        .times(1)
        .returning(|_| reply(Ok(vec![Claim::Done, Claim::Granted])));
    ledger
        .expect_complete_all()
        .withf(|keys| keys.len() == 1 && keys[0].ends_with("/bob@example.com"))
        .times(1)
        .returning(|_| reply(Ok(())));
    let deps = Deps::new(
        approvals_with(Ok(waiting())),
        history(),
        notifier,
        ledger,
        key(),
        config(),
    );

    let outcome = handle(&deps, event("approval-needed.json"), NOW)
        .await
        .unwrap();
    let Outcome::Notified {
        sent, already_sent, ..
    } = outcome
    else {
        panic!("{outcome:?}");
    };
    assert_eq!(sent, vec!["bob@example.com".to_owned()]);
    assert_eq!(already_sent, vec!["alice@example.com".to_owned()]);
}

#[tokio::test]
async fn emails_sent_but_not_recorded_still_succeed() {
    let mut notifier = MockNotifier::new();
    notifier
        .expect_publish_all()
        .times(1)
        .returning(|emails| reply(emails.iter().map(|_| Ok("m".into())).collect()));
    let mut ledger = MockLedger::new();
    ledger
        .expect_claim_all()
        .times(1)
        .returning(|keys| reply(Ok(vec![Claim::Granted; keys.len()])));
    ledger.expect_complete_all().times(1).returning(|_| {
        reply(Err(UpstreamError::new(
            "DynamoDB",
            "BatchWriteItem",
            None,
            "timeout",
        )))
    });
    let deps = Deps::new(
        approvals_with(Ok(waiting())),
        history(),
        notifier,
        ledger,
        key(),
        config(),
    );

    let outcome = handle(&deps, event("approval-needed.json"), NOW)
        .await
        .unwrap();
    assert!(
        matches!(&outcome, Outcome::Notified { sent, .. } if sent.len() == 2),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn a_failed_claim_mails_nobody_and_fails() {
    let mut ledger = MockLedger::new();
    ledger.expect_claim_all().times(1).returning(|_| {
        reply(Err(UpstreamError::new(
            "DynamoDB",
            "TransactWriteItems",
            Some("ProvisionedThroughputExceededException".into()),
            "slow down",
        )))
    });
    let deps = Deps::new(
        approvals_with(Ok(waiting())),
        history(),
        MockNotifier::new(),
        ledger,
        key(),
        config(),
    );

    let error = handle(&deps, event("approval-needed.json"), NOW)
        .await
        .unwrap_err();
    assert_eq!(error.error_type(), "Upstream");
}

#[tokio::test]
async fn a_failed_lookup_still_mails_everyone_without_the_commit() {
    let mut approvals = MockApprovalApi::new();
    approvals
        .expect_approval_state()
        .times(1)
        .returning(|_, _, _, _| {
            reply(Err(UpstreamError::new(
                "CodePipeline",
                "GetPipelineState",
                None,
                "timeout",
            )))
        });
    let mut notifier = MockNotifier::new();
    notifier
        .expect_publish_all()
        .withf(|emails| emails.len() == 2 && emails.iter().all(|n| !n.body.contains("Commit:")))
        .times(1)
        .returning(|emails| reply(emails.iter().map(|_| Ok("m".into())).collect()));
    let deps = Deps::new(
        approvals,
        history(),
        notifier,
        granting_ledger(),
        key(),
        config(),
    );

    let outcome = handle(&deps, event("approval-needed-minimal.json"), NOW)
        .await
        .unwrap();
    assert!(matches!(
        outcome,
        Outcome::Notified {
            commit_id: None,
            ..
        }
    ));
}

#[tokio::test]
async fn decided_or_expired_approvals_mail_nobody() {
    let decided = ApprovalState {
        execution_id: Some("e-1".into()),
        status: Some("Succeeded".into()),
        summary: Some("Approved by alice@example.com".into()),
        ..ApprovalState::default()
    };
    let deps = Deps::new(
        approvals_with(Ok(decided)),
        history(),
        MockNotifier::new(),
        MockLedger::new(),
        key(),
        config(),
    );
    let outcome = handle(&deps, event("approval-needed.json"), NOW)
        .await
        .unwrap();
    assert!(matches!(outcome, Outcome::Ignored { .. }), "{outcome:?}");

    let deps = Deps::new(
        MockApprovalApi::new(),
        history(),
        MockNotifier::new(),
        MockLedger::new(),
        key(),
        config(),
    );
    let outcome = handle(&deps, event("approval-expired.json"), NOW)
        .await
        .unwrap();
    assert_eq!(
        outcome,
        Outcome::Ignored {
            reason: "the approval has expired".into()
        }
    );
}

#[tokio::test]
async fn invalid_events_are_typed_errors_and_call_nothing() {
    for name in ["invalid-missing-token.json", "invalid-not-an-approval.json"] {
        let deps = Deps::new(
            MockApprovalApi::new(),
            history(),
            MockNotifier::new(),
            MockLedger::new(),
            key(),
            config(),
        );
        let error = handle(&deps, event(name), NOW).await.unwrap_err();
        assert_eq!(error.error_type(), "InvalidEvent", "{name}");
        assert!(!error.to_string().contains(TOKEN));
    }
}

#[test]
fn links_expire_with_the_approval() {
    let notification = parse(event("approval-needed.json")).unwrap();
    let approver = Approver::new("alice@example.com").unwrap();
    let [(_, approve), _] = links(
        &key(),
        "https://x.lambda-url.us-east-1.on.aws/",
        &notification,
        &approver,
        NOW + 10,
    );
    let signed = approve.split_once("?link=").unwrap().1;
    assert!(ApprovalLink::verify(signed, &key(), NOW).is_ok());
    assert_eq!(
        ApprovalLink::verify(signed, &key(), NOW + 10),
        Err(LinkError::Expired {
            expired_at: NOW + 10
        })
    );
}

const STAGING_DIGEST: &str =
    "sha256:ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12";

/// The execution `e-1` of the generated pipeline, waiting at ApproveProduction since 10:00:
/// built 09:40, in staging since 09:48.
fn staging_then_approval() -> Vec<ActionRun> {
    let at = |hour: u32, minute: u32| {
        chrono::DateTime::from_timestamp(NOW - 10 * 3600 + i64::from(hour * 3600 + minute * 60), 0)
    };
    let variables = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    vec![
        ActionRun {
            stage: "ApproveProduction".into(),
            action: "ProductionGate".into(),
            category: "Approval".into(),
            status: "InProgress".into(),
            started_at: at(10, 0),
            updated_at: at(10, 0),
            ..ActionRun::default()
        },
        ActionRun {
            stage: "DeployStaging".into(),
            action: "Deploy".into(),
            category: "Invoke".into(),
            status: "Succeeded".into(),
            started_at: at(9, 45),
            updated_at: at(9, 48),
            summary: Some("shop/web: container web runs sha256:ab12cd34ef56… (tag 0ccf1ae) on 3 of 3 replicas (rolled out in 41 s); baked 15m, alarm shop-5xx OK throughout".into()),
            output_variables: variables(&[("IMAGE_DIGEST", STAGING_DIGEST)]),
            ..ActionRun::default()
        },
        ActionRun {
            stage: "Build".into(),
            action: "Build".into(),
            category: "Build".into(),
            status: "Succeeded".into(),
            started_at: at(9, 40),
            updated_at: at(9, 45),
            output_variables: variables(&[("IMAGE_DIGEST", STAGING_DIGEST)]),
            ..ActionRun::default()
        },
    ]
}

#[tokio::test]
async fn the_production_approval_names_the_digest_the_commit_and_how_staging_has_done() {
    // The sample, at the generated pipeline's approval stage.
    let mut payload = event("approval-needed.json");
    let message = payload["Records"][0]["Sns"]["Message"]
        .as_str()
        .unwrap()
        .replace(
            "\"stageName\": \"Approval\"",
            "\"stageName\": \"ApproveProduction\"",
        );
    payload["Records"][0]["Sns"]["Message"] = json!(message);
    let mut approvals = MockApprovalApi::new();
    approvals
        .expect_approval_state()
        .with(
            eq("shop-main"),
            eq("ApproveProduction"),
            eq("ProductionGate"),
            eq(TOKEN),
        )
        .times(1)
        .returning(|_, _, _, _| reply(Ok(waiting())));
    approvals
        .expect_execution_revision()
        .with(eq("shop-main"), eq("e-1"))
        .times(1)
        .returning(|_, _| {
            reply(Ok(Some(Revision {
                id: COMMIT.into(),
                summary: Some("feat: one-click checkout".into()),
                url: None,
            })))
        });
    let mut history = MockActionHistory::new();
    history
        .expect_action_runs()
        .with(eq("shop-main"), eq("e-1"))
        .times(1)
        .returning(|_, _| reply(Ok(staging_then_approval())));
    let published = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Notification>::new()));
    let sink = published.clone();
    let mut notifier = MockNotifier::new();
    notifier
        .expect_publish_all()
        .times(1)
        .returning(move |emails| {
            sink.lock().unwrap().extend(emails.iter().cloned());
            reply((1..=emails.len()).map(|n| Ok(format!("m-{n}"))).collect())
        });
    let deps = Deps::new(
        approvals,
        history,
        notifier,
        granting_ledger(),
        key(),
        config(),
    );

    handle(&deps, payload, NOW).await.unwrap();

    let published = published.lock().unwrap();
    assert_eq!(published.len(), 2);
    for email in published.iter() {
        let body = &email.body;
        assert!(
            body.contains(&format!("  Image:    {STAGING_DIGEST}\n")),
            "{body}"
        );
        assert!(
            body.contains("  Commit:   0ccf1ae  feat: one-click checkout\n"),
            "{body}"
        );
        // NOW is 10:00 UTC; staging's deploy ended at 09:48.
        assert!(
            body.contains("  So far:   in staging since 09:48 UTC (12 min), rollout succeeded: shop/web: container web runs sha256:ab12cd34ef56… (tag 0ccf1ae) on 3 of 3 replicas (rolled out in 41 s); baked 15m, alarm shop-5xx OK throughout\n"),
            "{body}"
        );
    }
}

#[tokio::test]
async fn an_unreadable_history_still_mails_the_approvers_without_it() {
    let mut history = MockActionHistory::new();
    history.expect_action_runs().times(1).returning(|_, _| {
        reply(Err(UpstreamError::new(
            "CodePipeline",
            "ListActionExecutions",
            Some("ThrottlingException".into()),
            "Rate exceeded",
        )))
    });
    let published = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Notification>::new()));
    let sink = published.clone();
    let mut notifier = MockNotifier::new();
    notifier
        .expect_publish_all()
        .times(1)
        .returning(move |emails| {
            sink.lock().unwrap().extend(emails.iter().cloned());
            reply((1..=emails.len()).map(|n| Ok(format!("m-{n}"))).collect())
        });
    let deps = Deps::new(
        approvals_with(Ok(waiting())),
        history,
        notifier,
        granting_ledger(),
        key(),
        config(),
    );

    handle(&deps, event("approval-needed.json"), NOW)
        .await
        .unwrap();

    let published = published.lock().unwrap();
    assert_eq!(published.len(), 2);
    assert!(!published[0].body.contains("So far:"));
    assert!(
        published[0]
            .body
            .contains("0ccf1ae  feat: one-click checkout")
    );
}
