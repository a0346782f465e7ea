//! codecommit-push, the real binary under the Runtime API emulator, against the emulated
//! CodeCommit and CodePipeline.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failed test

use integration_tests::scenarios::pushes::PushScenario;
use integration_tests::{Emulators, Function, sample_event, unique};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn a_push_starts_the_routed_pipeline_on_exactly_that_commit_and_a_redelivery_starts_nothing_more()
 {
    let scenario = PushScenario::new().await;
    let pushed = scenario
        .commit(&scenario.first, "feat: one-click checkout")
        .await;
    let function = scenario.function(&scenario.routes()).await;
    let event = scenario.push_event("push-main.json", &pushed);

    let response = function.invoke(&event).await.response();

    assert_eq!(response["outcome"], "started");
    assert_eq!(response["commitId"], pushed);
    let execution_id = response["executions"][0]["executionId"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(response["executions"][0]["pipeline"], scenario.pipeline);

    let executions = scenario.executions().await;
    assert_eq!(executions.len(), 1);
    assert_eq!(
        executions[0].pipeline_execution_id(),
        Some(execution_id.as_str())
    );
    let revision = &executions[0].source_revisions()[0];
    assert_eq!(revision.action_name(), "Source");
    assert_eq!(revision.revision_id(), Some(pushed.as_str()));

    let execution = aws_sdk_codepipeline::Client::new(&scenario.sdk)
        .get_pipeline_execution()
        .pipeline_name(&scenario.pipeline)
        .pipeline_execution_id(&execution_id)
        .send()
        .await
        .unwrap();
    let artifact = &execution.pipeline_execution().unwrap().artifact_revisions()[0];
    assert_eq!(artifact.revision_id(), Some(pushed.as_str()));
    assert_eq!(
        artifact.revision_summary(),
        Some("feat: one-click checkout")
    );

    // EventBridge delivers the same event again (same id): the same execution, nothing new.
    let again = function.invoke(&event).await.response();
    assert_eq!(again["executions"][0]["executionId"], execution_id.as_str());
    assert_eq!(scenario.executions().await.len(), 1);

    let logs = function.log_records();
    let started = logs
        .iter()
        .filter(|r| r["fields"]["message"] == "pipeline started")
        .count();
    assert_eq!(started, 2, "one log line per invocation: {logs:?}");

    // A newer push lands; the older push's event comes once more, late: it starts nothing,
    // so the older commit can never deploy after the newer one.
    let later = scenario.commit(&pushed, "feat: later work").await;
    let late = function.invoke(&event).await.response();
    assert_eq!(late["outcome"], "ignored", "{late}");
    assert_eq!(late["reason"]["kind"], "superseded", "{late}");
    assert_eq!(late["reason"]["tip"], later.as_str());
    assert_eq!(scenario.executions().await.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_commit_asking_to_skip_ci_starts_nothing() {
    let scenario = PushScenario::new().await;
    let docs = scenario
        .commit(&scenario.first, "docs: fix a typo\n\n[skip ci]")
        .await;
    let function = scenario.function(&scenario.routes()).await;

    let response = function
        .invoke(&scenario.push_event("push-skip-ci.json", &docs))
        .await
        .response();

    assert_eq!(response["outcome"], "ignored");
    assert_eq!(response["reason"]["kind"], "skipCi");
    assert!(scenario.executions().await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn unrouted_branches_tags_and_deletions_start_nothing() {
    let scenario = PushScenario::new().await;
    let function = scenario.function(&scenario.routes()).await;

    for (sample, kind) in [
        ("push-unrouted-branch.json", "unrouted"),
        ("tag-created.json", "tag"),
        ("branch-deleted.json", "referenceDeleted"),
    ] {
        let response = function
            .invoke(&scenario.push_event(sample, &scenario.first))
            .await
            .response();
        assert_eq!(response["outcome"], "ignored", "{sample}");
        assert_eq!(response["reason"]["kind"], kind, "{sample}");
    }
    assert!(scenario.executions().await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_malformed_event_is_an_invalid_event_error_with_a_log_line() {
    let scenario = PushScenario::new().await;
    let function = scenario.function(&scenario.routes()).await;

    let result = function
        .invoke(&sample_event(
            "codecommit-push",
            "invalid-missing-commit-id.json",
        ))
        .await;

    assert_eq!(result.error_type(), "InvalidEvent");
    let logs = function.log_records();
    assert!(
        logs.iter().any(|r| r["level"] == "ERROR"
            && r["fields"]["error_type"] == "InvalidEvent"
            && r["fields"]["error"]
                .as_str()
                .unwrap_or_default()
                .contains("detail.commitId")),
        "{logs:?}"
    );
    // The function survives the bad event and takes the next one.
    let result = function.invoke(&json!({"not": "an event"})).await;
    assert_eq!(result.error_type(), "InvalidEvent");
    assert!(scenario.executions().await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_route_to_a_missing_pipeline_fails_the_invocation_so_lambda_retries_it() {
    let scenario = PushScenario::new().await;
    let routes = json!([{"repository": scenario.repository, "branch": "main", "pipeline": unique("gone"), "sourceAction": "Source"}]);
    let function = scenario.function(&routes.to_string()).await;

    let result = function
        .invoke(&scenario.push_event("push-main.json", &scenario.first))
        .await;

    assert_eq!(result.error_type(), "Upstream");
    let InvocationError { message } = InvocationError::of(&result);
    assert!(message.contains("PipelineNotFoundException"), "{message}");
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_routes_stop_the_function_at_cold_start_with_a_config_error() {
    let emulators = Emulators::load();
    let mut env = emulators.function_env();
    env.push((
        "PIPELINE_ROUTES".into(),
        r#"[{"repository":"shop","branch":"main"}]"#.into(),
    ));
    let function = Function::start("codecommit-push", &env).await;

    let (error, status) = function.init_failure().await;

    assert_eq!(error.error_type, "Config");
    assert!(error.error_message.contains("PIPELINE_ROUTES"), "{error:?}");
    assert!(
        error.error_message.contains("missing field `pipeline`"),
        "{error:?}"
    );
    assert!(!status.success());
}

struct InvocationError {
    message: String,
}

impl InvocationError {
    fn of(result: &integration_tests::runtime_api::InvocationResult) -> Self {
        match result {
            integration_tests::runtime_api::InvocationResult::Error { error_message, .. } => Self {
                message: error_message.clone(),
            },
            other => panic!("expected an error, got {other:?}"),
        }
    }
}
