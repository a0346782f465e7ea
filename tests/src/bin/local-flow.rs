//! The whole flow against the local emulators, with the real function binaries, told as a
//! timeline of what each person sees. Run it with `tests/scripts/flow`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::ExitCode;

use integration_tests::aws::sdk_config;
use integration_tests::timeline::Timeline;
use integration_tests::{Emulators, Function, event_id, fixtures, sample_event};
use serde_json::json;

const REPOSITORY: &str = "shop";
const PIPELINE: &str = "shop-main";

#[tokio::main]
async fn main() -> ExitCode {
    let emulators = Emulators::load();
    let sdk = sdk_config(&emulators).await;
    let pipelines = aws_sdk_codepipeline::Client::new(&sdk);
    let mut timeline = Timeline::new();

    timeline.chapter("Set-up: a repository and its pipeline");
    fixtures::repository(&sdk, REPOSITORY).await;
    let initial = fixtures::commit(&sdk, REPOSITORY, "main", None, "chore: initial import").await;
    fixtures::pipeline(&sdk, PIPELINE, REPOSITORY, "main").await;
    timeline.step(
        "platform team",
        &format!("CodeCommit repository {REPOSITORY}, pipeline {PIPELINE} (Source → Build)"),
    );
    let mut env = emulators.function_env();
    env.push((
        "PIPELINE_ROUTES".into(),
        json!([{"repository": REPOSITORY, "branch": "main", "pipeline": PIPELINE}]).to_string(),
    ));
    let push_function = Function::start("codecommit-push", &env).await;

    timeline.chapter("A developer pushes to main");
    let pushed = fixtures::commit(
        &sdk,
        REPOSITORY,
        "main",
        Some(&initial),
        "feat: one-click checkout",
    )
    .await;
    timeline.step(
        "developer",
        &format!("git push origin main  ({})", &pushed[..7]),
    );
    let mut event = sample_event("codecommit-push", "push-main.json");
    event["id"] = json!(event_id());
    event["detail"]["repositoryName"] = json!(REPOSITORY);
    event["detail"]["commitId"] = json!(pushed);
    event["detail"]["oldCommitId"] = json!(initial);
    let response = push_function.invoke(&event).await;
    let execution_id = match &response {
        integration_tests::runtime_api::InvocationResult::Response(value) => value["executions"][0]
            ["executionId"]
            .as_str()
            .map(str::to_owned),
        other => {
            timeline.step("codecommit-push", &format!("failed: {other:?}"));
            None
        }
    };
    timeline.expect(
        execution_id.is_some(),
        "codecommit-push started the pipeline",
    );
    let executions = pipelines
        .list_pipeline_executions()
        .pipeline_name(PIPELINE)
        .send()
        .await
        .unwrap();
    let summaries = executions.pipeline_execution_summaries();
    let revision = summaries
        .first()
        .and_then(|s| s.source_revisions().first())
        .and_then(|r| r.revision_id())
        .unwrap_or_default()
        .to_owned();
    timeline.step(
        "CodePipeline",
        &format!(
            "{PIPELINE}: execution {} on commit {}",
            execution_id.as_deref().unwrap_or("-"),
            revision.get(..7).unwrap_or("-")
        ),
    );
    timeline.expect(
        revision == pushed,
        "the execution builds exactly the pushed commit",
    );

    timeline.chapter("EventBridge delivers the same push again");
    let again = push_function.invoke(&event).await;
    let same = matches!(&again, integration_tests::runtime_api::InvocationResult::Response(v)
        if v["executions"][0]["executionId"].as_str() == execution_id.as_deref());
    let count = pipelines
        .list_pipeline_executions()
        .pipeline_name(PIPELINE)
        .send()
        .await
        .unwrap()
        .pipeline_execution_summaries()
        .len();
    timeline.step(
        "CodePipeline",
        &format!("{count} execution(s) of {PIPELINE}"),
    );
    timeline.expect(same && count == 1, "the redelivery started nothing more");

    timeline.chapter("A documentation-only push asks to skip CI");
    let docs = fixtures::commit(
        &sdk,
        REPOSITORY,
        "main",
        Some(&pushed),
        "docs: fix a typo [skip ci]",
    )
    .await;
    timeline.step(
        "developer",
        &format!("git push origin main  ({}, \"[skip ci]\")", &docs[..7]),
    );
    let mut skip = sample_event("codecommit-push", "push-skip-ci.json");
    skip["id"] = json!(event_id());
    skip["detail"]["repositoryName"] = json!(REPOSITORY);
    skip["detail"]["commitId"] = json!(docs);
    let skipped = push_function.invoke(&skip).await;
    let ignored = matches!(&skipped, integration_tests::runtime_api::InvocationResult::Response(v)
        if v["reason"]["kind"] == "skipCi");
    timeline.step("codecommit-push", "ignored: the commit asks to skip CI");
    timeline.expect(ignored, "no pipeline run for a [skip ci] commit");

    integration_tests::approvals::tell(&mut timeline).await;

    timeline.finish()
}
