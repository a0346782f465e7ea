//! delivery-events, the real binary against the emulators: the pipeline's own state change
//! events (emitted by the emulator as CodePipeline does, routed by the template's rule) tell the
//! team how a release ended, tell the merged pull request its deploy, and count DORA's keys in
//! EMF lines that the EMF specification's structure accepts.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failed test

use integration_tests::runtime_api::InvocationResult;
use integration_tests::scenarios::deliveries::{DeliveryScenario, REGISTRY};
use serde_json::Value;

const DIGEST: &str = "sha256:5b0bcabd1ed22e9fb1310cf6c2dec7cdef19f0ad69efa1f392e94a4333501270";
const PREVIOUS: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com/shop:5d1e2c3b4a59";

/// The responses of the invocations, each a success.
fn responses(delivered: Vec<(Value, InvocationResult)>) -> Vec<Value> {
    delivered
        .into_iter()
        .map(|(event, result)| match result {
            InvocationResult::Response(value) => value,
            other => panic!("{} failed: {other:?}", event["detail"]["state"]),
        })
        .collect()
}

fn eks_deploy_variables(commit: &str) -> Vec<(&'static str, String)> {
    vec![
        ("IMAGE", format!("{REGISTRY}@{DIGEST}")),
        ("IMAGE_DIGEST", DIGEST.to_owned()),
        ("IMAGE_TAG", commit[..12].to_owned()),
        ("PREVIOUS_IMAGE", PREVIOUS.to_owned()),
    ]
}

async fn deploy(scenario: &DeliveryScenario, execution: &str, commit: &str) {
    let variables = eks_deploy_variables(commit);
    let pairs: Vec<(&str, &str)> = variables.iter().map(|(k, v)| (*k, v.as_str())).collect();
    scenario.deploy_succeeds(execution, &pairs).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_merged_pull_request_deployed_is_told_to_the_team_on_the_pull_request_and_in_the_metrics_once()
 {
    let scenario = DeliveryScenario::new(&[]).await;
    let merged = scenario
        .merge_pull_request("feat: one-click checkout")
        .await;
    let execution = scenario.run_to_approval(&merged.commit).await;
    scenario
        .decide(true, "alice@example.com", "Looks good on staging")
        .await;
    deploy(&scenario, &execution, &merged.commit).await;

    // Only the execution's end is routed: every stage and action event before it stays out.
    let told = responses(scenario.deliver().await);
    assert_eq!(told.len(), 1, "{told:?}");
    let response = &told[0];
    assert_eq!(response["outcome"], "told", "{response}");
    assert_eq!(response["status"], "DEPLOYED", "{response}");
    assert_eq!(response["pullRequestId"], merged.pull_request_id.as_str());

    let mail = scenario.inbox().await;
    assert_eq!(mail.len(), 1, "{mail:?}");
    let mail = &mail[0];
    assert_eq!(
        mail.subject,
        format!(
            "DEPLOYED: {} to production ({} feat: one-click checkout)",
            scenario.pipeline,
            &merged.commit[..7]
        )
    );
    for expected in [
        "Approved by: alice@example.com: Looks good on staging",
        &format!("Digest: {DIGEST}"),
        &format!("Image: {REGISTRY}@{DIGEST}"),
        "Push to running: ",
        &format!("Execution: {execution}"),
    ] {
        assert!(
            mail.message.contains(expected),
            "{expected:?} not in:\n{}",
            mail.message
        );
    }
    assert_eq!(mail.attributes["pipeline"], scenario.pipeline);
    assert_eq!(mail.attributes["environment"], "production");
    assert_eq!(mail.attributes["status"], "DEPLOYED");

    let comments = scenario.comments(&merged.pull_request_id).await;
    assert_eq!(comments.len(), 1, "{comments:?}");
    assert!(
        comments[0].contains(" UTC (sha256:5b0bcabd1ed2…, approved by alice@example.com)"),
        "{}",
        comments[0]
    );
    assert!(
        comments[0].starts_with("Deployed to production at "),
        "{}",
        comments[0]
    );

    let metrics = scenario.metric_documents();
    assert_eq!(metrics.len(), 1, "{metrics:?}");
    let line = &metrics[0];
    assert_eq!(line["Pipeline"], scenario.pipeline.as_str());
    assert_eq!(line["Environment"], "production");
    assert_eq!(line["Deployments"], 1.0);
    assert_eq!(line["DeploymentFailed"], 0.0);
    assert!(line["LeadTimeSeconds"].as_f64().unwrap() >= 0.0, "{line}");
    assert!(
        line.get("TimeToRestoreSeconds").is_none(),
        "no outage was open: {line}"
    );

    // EventBridge delivers the end twice more: nothing is told again.
    for _ in 0..2 {
        let again = scenario
            .function
            .invoke(&last_end_event(&scenario).await)
            .await
            .response();
        assert_eq!(
            again["alreadyDone"],
            serde_json::json!(["notification", "comment", "metrics"]),
            "{again}"
        );
    }
    assert!(scenario.inbox().await.is_empty());
    assert_eq!(scenario.comments(&merged.pull_request_id).await.len(), 1);
    assert_eq!(scenario.metric_documents().len(), 1);
}

/// The last pipeline-level end event the emulator emitted for the scenario's pipeline.
async fn last_end_event(scenario: &DeliveryScenario) -> Value {
    let url = format!(
        "{}/codepipeline/events?pipeline={}",
        scenario.emulators.admin, scenario.pipeline
    );
    let (_, answer) = integration_tests::http::json("GET", &url, None).await;
    answer["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].clone())
        .filter(|e| scenario.bus.routes(e))
        .last()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rolled_back_deploy_says_why_and_the_next_deploy_says_how_long_the_restore_took() {
    let scenario = DeliveryScenario::new(&[]).await;
    let broken = scenario.merge_pull_request("feat: new image base").await;
    let execution = scenario.run_to_approval(&broken.commit).await;
    scenario.decide(true, "alice@example.com", "ship it").await;
    scenario
        .deploy_fails(
            &execution,
            &format!(
                "rollout of shop/web did not finish: container web: ImagePullBackOff. Rolled back to {PREVIOUS} (rollout complete)."
            ),
        )
        .await;
    let told = responses(scenario.deliver().await);
    assert_eq!(told.len(), 1, "{told:?}");
    assert_eq!(told[0]["status"], "ROLLED_BACK", "{}", told[0]);

    let mail = scenario.inbox().await;
    assert_eq!(mail.len(), 1, "{mail:?}");
    assert_eq!(
        mail[0].subject,
        format!("ROLLED BACK: {} in production", scenario.pipeline)
    );
    assert!(
        mail[0]
            .message
            .contains(&format!("production runs {PREVIOUS} again")),
        "{}",
        mail[0].message
    );
    assert!(
        mail[0].message.contains("ImagePullBackOff"),
        "the reason is told: {}",
        mail[0].message
    );
    let comments = scenario.comments(&broken.pull_request_id).await;
    assert_eq!(comments.len(), 1, "{comments:?}");
    assert!(
        comments[0].starts_with("Rolled back in production at ")
            && comments[0]
                .contains("(rollout of shop/web did not finish: container web: ImagePullBackOff)"),
        "{}",
        comments[0]
    );
    let metrics = scenario.metric_documents();
    assert_eq!(metrics.len(), 1, "{metrics:?}");
    assert_eq!(metrics[0]["DeploymentFailures"], 1.0);
    assert_eq!(metrics[0]["DeploymentFailed"], 1.0);

    // The fix goes out: the outage that began with the failed deploy ends.
    let fix = scenario.merge_pull_request("fix: image base").await;
    let execution = scenario.run_to_approval(&fix.commit).await;
    scenario.decide(true, "alice@example.com", "fixed").await;
    deploy(&scenario, &execution, &fix.commit).await;
    let told = responses(scenario.deliver().await);
    assert_eq!(told[0]["status"], "DEPLOYED", "{}", told[0]);
    let metrics = scenario.metric_documents();
    assert_eq!(metrics.len(), 2, "{metrics:?}");
    let restored = metrics[1]["TimeToRestoreSeconds"].as_f64();
    assert!(
        restored.is_some_and(|seconds| (0.0..600.0).contains(&seconds)),
        "the restore took the seconds between the two deploys: {}",
        metrics[1]
    );
    assert_eq!(scenario.comments(&fix.pull_request_id).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rejected_approval_names_who_and_why_and_tells_no_pull_request_nor_metric() {
    let scenario = DeliveryScenario::new(&[]).await;
    let merged = scenario.merge_pull_request("feat: gift cards").await;
    let _ = scenario.run_to_approval(&merged.commit).await;
    scenario
        .decide(false, "bob@example.com", "staging shows checkout errors")
        .await;
    let told = responses(scenario.deliver().await);
    assert_eq!(told.len(), 1, "{told:?}");
    assert_eq!(told[0]["status"], "REJECTED", "{}", told[0]);
    let mail = scenario.inbox().await;
    assert_eq!(mail.len(), 1, "{mail:?}");
    assert_eq!(
        mail[0].subject,
        format!(
            "REJECTED: {} to production at Approval / ProductionGate",
            scenario.pipeline
        )
    );
    assert!(
        mail[0]
            .message
            .contains("Rejected by: bob@example.com: staging shows checkout errors"),
        "{}",
        mail[0].message
    );
    assert!(scenario.comments(&merged.pull_request_id).await.is_empty());
    assert!(scenario.metric_documents().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_commit_pushed_without_a_pull_request_is_told_but_commented_nowhere_and_a_failed_build_is_no_failed_deploy()
 {
    let scenario = DeliveryScenario::new(&[]).await;
    let commit = scenario.push_to_main("chore: bump dependencies").await;
    let execution = scenario.run_to_approval(&commit).await;
    scenario.decide(true, "alice@example.com", "ok").await;
    // Today's eks-deploy (or another deploy action) reports no variables: no digest is invented.
    scenario.deploy_succeeds(&execution, &[]).await;
    let told = responses(scenario.deliver().await);
    assert_eq!(told[0]["status"], "DEPLOYED", "{}", told[0]);
    assert!(told[0].get("pullRequestId").is_none(), "{}", told[0]);
    let mail = scenario.inbox().await;
    assert!(
        mail[0]
            .message
            .contains("Digest: unknown (the deploy action reported none)"),
        "{}",
        mail[0].message
    );

    let _ = scenario.build_fails().await;
    let told = responses(scenario.deliver().await);
    assert_eq!(told[0]["status"], "FAILED", "{}", told[0]);
    let mail = scenario.inbox().await;
    assert_eq!(
        mail[0].subject,
        format!(
            "FAILED: {} to production at Build / Build",
            scenario.pipeline
        )
    );
    // One deploy counted; the failed build counted nowhere.
    let metrics = scenario.metric_documents();
    assert_eq!(metrics.len(), 1, "{metrics:?}");
    assert_eq!(metrics[0]["Deployments"], 1.0);
}
