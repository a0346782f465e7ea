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
    pull_request_story(&emulators, &sdk, &docs, &mut timeline).await;

    timeline.finish()
}

/// A pull request validated by pr-validator: the comments and approval states its author sees.
async fn pull_request_story(
    emulators: &Emulators,
    sdk: &aws_config::SdkConfig,
    main: &str,
    timeline: &mut Timeline,
) {
    const PROJECT: &str = "shop-pr";
    timeline.chapter("A developer opens a pull request");
    let author = fixtures::user(emulators, sdk, "mary").await;
    let codecommit = aws_sdk_codecommit::Client::new(sdk);
    codecommit
        .create_branch()
        .repository_name(REPOSITORY)
        .branch_name("feature/cart")
        .commit_id(main)
        .send()
        .await
        .unwrap();
    let first = fixtures::commit(
        &author,
        REPOSITORY,
        "feature/cart",
        Some(main),
        "feat: cart",
    )
    .await;
    fixtures::validation_project(sdk, PROJECT, REPOSITORY, &emulators.region).await;
    let mut env = emulators.function_env();
    env.extend([
        ("PR_VALIDATION_PROJECT".to_owned(), PROJECT.to_owned()),
        ("PR_REPOSITORIES".to_owned(), REPOSITORY.to_owned()),
        ("PR_DESTINATIONS".to_owned(), "main".to_owned()),
    ]);
    let validator = Function::start("pr-validator", &env).await;
    let id =
        fixtures::pull_request(&author, REPOSITORY, "feature/cart", "main", "Add the cart").await;
    timeline.step(
        "developer",
        &format!(
            "opens pull request {id}: feature/cart → main ({})",
            &first[..7]
        ),
    );
    let first_build = validate(emulators, &validator, &id, "pullRequestCreated", timeline).await;
    let mut seen = show_comments(&author, &id, 0, timeline).await;
    timeline.expect(
        first_build.is_some(),
        "pr-validator started a build of the head",
    );

    timeline.chapter("The developer pushes again before the build ends");
    let second = fixtures::commit(
        &author,
        REPOSITORY,
        "feature/cart",
        Some(&first),
        "fix: cart totals",
    )
    .await;
    timeline.step(
        "developer",
        &format!("git push origin feature/cart  ({})", &second[..7]),
    );
    let second_build = validate(
        emulators,
        &validator,
        &id,
        "pullRequestSourceBranchUpdated",
        timeline,
    )
    .await;
    if let Some(old) = &first_build {
        report(emulators, &validator, old, timeline).await;
    }
    seen = show_comments(&author, &id, seen, timeline).await;
    timeline.expect(seen == 3, "the old build was stopped and marked superseded");

    timeline.chapter("The build of the new head fails");
    if let Some(build) = &second_build {
        finish(emulators, build, "FAILED").await;
        report(emulators, &validator, build, timeline).await;
    }
    seen = show_comments(&author, &id, seen, timeline).await;
    let states = approvals(&author, &id).await;
    timeline.step("CodeCommit", &format!("approval states: {states:?}"));
    timeline.expect(states == ["REVOKE"], "no approval for a failing revision");

    timeline.chapter("A fix, and the build passes");
    let third = fixtures::commit(
        &author,
        REPOSITORY,
        "feature/cart",
        Some(&second),
        "fix: the test",
    )
    .await;
    timeline.step(
        "developer",
        &format!("git push origin feature/cart  ({})", &third[..7]),
    );
    let third_build = validate(
        emulators,
        &validator,
        &id,
        "pullRequestSourceBranchUpdated",
        timeline,
    )
    .await;
    if let Some(build) = &third_build {
        finish(emulators, build, "SUCCEEDED").await;
        report(emulators, &validator, build, timeline).await;
    }
    show_comments(&author, &id, seen, timeline).await;
    let states = approvals(&author, &id).await;
    timeline.step("CodeCommit", &format!("approval states: {states:?}"));
    timeline.expect(states == ["APPROVE"], "the passing revision is approved");
}

/// Gives pr-validator the pull-request event CodeCommit emits now; returns the build started.
async fn validate(
    emulators: &Emulators,
    validator: &Function,
    id: &str,
    kind: &str,
    timeline: &Timeline,
) -> Option<String> {
    let url = format!(
        "{}/codecommit/pull-request-event?pullRequestId={id}&event={kind}",
        emulators.admin
    );
    let (_, event) = integration_tests::http::json("GET", &url, None).await;
    match validator.invoke(&event).await {
        integration_tests::runtime_api::InvocationResult::Response(value) => {
            timeline.step("pr-validator", &format!("{kind}: {value}"));
            value["buildId"].as_str().map(str::to_owned)
        }
        other => {
            timeline.step("pr-validator", &format!("failed: {other:?}"));
            None
        }
    }
}

/// Gives pr-validator the event CodeBuild emits for `build` now.
async fn report(emulators: &Emulators, validator: &Function, build: &str, timeline: &Timeline) {
    let encoded: String = build.bytes().map(|b| format!("%{b:02X}")).collect();
    let url = format!("{}/codebuild/event?buildId={encoded}", emulators.admin);
    let (_, event) = integration_tests::http::json("GET", &url, None).await;
    let status = event["detail"]["build-status"]
        .as_str()
        .unwrap_or("?")
        .to_owned();
    timeline.step("CodeBuild", &format!("{build}: {status}"));
    match validator.invoke(&event).await {
        integration_tests::runtime_api::InvocationResult::Response(value) => {
            timeline.step("pr-validator", &value.to_string());
        }
        other => timeline.step("pr-validator", &format!("failed: {other:?}")),
    }
}

async fn finish(emulators: &Emulators, build: &str, status: &str) {
    let mut body = json!({"buildId": build, "status": status, "durationSeconds": 190});
    if status == "FAILED" {
        body["context"] = json!(
            "COMMAND_EXECUTION_ERROR: Error while executing command: cargo test --locked. Reason: exit status 101"
        );
    }
    let url = format!("{}/codebuild/complete", emulators.admin);
    integration_tests::http::json("POST", &url, Some(&body)).await;
}

/// Prints the comments after the first `seen`, as the author reads them; returns how many there are.
async fn show_comments(
    author: &aws_config::SdkConfig,
    id: &str,
    seen: usize,
    timeline: &Timeline,
) -> usize {
    let comments: Vec<String> = aws_sdk_codecommit::Client::new(author)
        .get_comments_for_pull_request()
        .pull_request_id(id)
        .send()
        .await
        .unwrap()
        .comments_for_pull_request_data()
        .iter()
        .flat_map(|group| group.comments())
        .map(|c| c.content().unwrap_or_default().to_owned())
        .collect();
    for comment in comments.iter().skip(seen) {
        timeline.step("author sees", comment);
    }
    comments.len()
}

async fn approvals(author: &aws_config::SdkConfig, id: &str) -> Vec<String> {
    let codecommit = aws_sdk_codecommit::Client::new(author);
    let revision = codecommit
        .get_pull_request()
        .pull_request_id(id)
        .send()
        .await
        .unwrap()
        .pull_request
        .and_then(|p| p.revision_id)
        .unwrap_or_default();
    codecommit
        .get_pull_request_approval_states()
        .pull_request_id(id)
        .revision_id(revision)
        .send()
        .await
        .unwrap()
        .approvals()
        .iter()
        .filter_map(|a| a.approval_state().map(|s| s.as_str().to_owned()))
        .collect()
}
