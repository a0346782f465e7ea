//! pr-validator, the real binary, against the emulated CodeCommit pull requests and CodeBuild:
//! the comments and approval states a pull request's author sees.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failed test

use aws_config::SdkConfig;
use aws_sdk_codecommit::types::ApprovalState;
use integration_tests::aws::sdk_config;
use integration_tests::{Emulators, Function, fixtures, http, unique};
use serde_json::{Value, json};

/// A repository with `main` and `feature/cart` one commit ahead, a validation project building
/// it, an author (an IAM user), and pr-validator running as another identity.
struct Scenario {
    emulators: Emulators,
    /// The function's identity: the approver.
    bot: SdkConfig,
    /// The pull requests' author.
    author: SdkConfig,
    repository: String,
    project: String,
    main: String,
    head: String,
    function: Function,
}

impl Scenario {
    async fn new() -> Self {
        let emulators = Emulators::load();
        let bot = sdk_config(&emulators).await;
        let author = fixtures::user(&emulators, &bot, &unique("mary")).await;
        let repository = unique("shop");
        fixtures::repository(&bot, &repository).await;
        let main = fixtures::commit(&author, &repository, "main", None, "Initial commit").await;
        for branch in ["feature/cart", "develop"] {
            aws_sdk_codecommit::Client::new(&bot)
                .create_branch()
                .repository_name(&repository)
                .branch_name(branch)
                .commit_id(&main)
                .send()
                .await
                .unwrap();
        }
        let head = fixtures::commit(
            &author,
            &repository,
            "feature/cart",
            Some(&main),
            "Add the cart",
        )
        .await;
        let project = unique("shop-pr");
        fixtures::validation_project(&bot, &project, &repository, &emulators.region).await;
        let mut env = emulators.function_env();
        env.extend([
            ("PR_VALIDATION_PROJECT".to_owned(), project.clone()),
            ("PR_REPOSITORIES".to_owned(), repository.clone()),
            ("PR_DESTINATIONS".to_owned(), "main,release/*".to_owned()),
        ]);
        let function = Function::start("pr-validator", &env).await;
        Self {
            emulators,
            bot,
            author,
            repository,
            project,
            main,
            head,
            function,
        }
    }

    async fn open(&self, destination: &str) -> String {
        fixtures::pull_request(
            &self.author,
            &self.repository,
            "feature/cart",
            destination,
            "Add the cart",
        )
        .await
    }

    /// The author pushes another commit to the pull request's branch.
    async fn push(&self, parent: &str, message: &str) -> String {
        fixtures::commit(
            &self.author,
            &self.repository,
            "feature/cart",
            Some(parent),
            message,
        )
        .await
    }

    /// The event CodeCommit emits for the pull request as it is now.
    async fn pull_request_event(&self, id: &str, kind: &str) -> Value {
        let url = format!(
            "{}/codecommit/pull-request-event?pullRequestId={id}&repositoryName={}&event={kind}",
            self.emulators.admin, self.repository
        );
        let (code, event) = http::json("GET", &url, None).await;
        assert_eq!(code, 200, "{event}");
        event
    }

    /// Finishes `build` with `status`, as CodeBuild would.
    async fn finish(&self, build: &str, status: &str) {
        let mut body = json!({"buildId": build, "status": status, "durationSeconds": 190});
        if status == "FAILED" {
            body["context"] = json!(
                "COMMAND_EXECUTION_ERROR: Error while executing command: cargo test --locked. Reason: exit status 101"
            );
        }
        let (code, answer) = http::json(
            "POST",
            &format!("{}/codebuild/complete", self.emulators.admin),
            Some(&body),
        )
        .await;
        assert_eq!(code, 200, "{answer}");
    }

    /// The EventBridge event CodeBuild emits for `build` now.
    async fn build_event(&self, build: &str) -> Value {
        let url = format!(
            "{}/codebuild/event?buildId={}",
            self.emulators.admin,
            encode(build)
        );
        let (code, event) = http::json("GET", &url, None).await;
        assert_eq!(code, 200, "{event}");
        event
    }

    async fn invoke(&self, event: &Value) -> Value {
        self.function.invoke(event).await.response()
    }

    /// Every comment on the pull request, oldest first, as its author reads them.
    async fn comments(&self, id: &str) -> Vec<String> {
        let output = aws_sdk_codecommit::Client::new(&self.author)
            .get_comments_for_pull_request()
            .pull_request_id(id)
            .send()
            .await
            .unwrap();
        output
            .comments_for_pull_request_data()
            .iter()
            .flat_map(|group| group.comments())
            .map(|comment| comment.content().unwrap_or_default().to_owned())
            .collect()
    }

    /// The pull request's current revision and head.
    async fn revision(&self, id: &str) -> (String, String) {
        let pull_request = aws_sdk_codecommit::Client::new(&self.author)
            .get_pull_request()
            .pull_request_id(id)
            .send()
            .await
            .unwrap()
            .pull_request
            .unwrap();
        let head = pull_request.pull_request_targets()[0]
            .source_commit()
            .unwrap()
            .to_owned();
        (pull_request.revision_id.unwrap(), head)
    }

    /// The approval states of the pull request's current revision, by state.
    async fn approvals(&self, id: &str) -> Vec<ApprovalState> {
        let (revision, _) = self.revision(id).await;
        let approvals = aws_sdk_codecommit::Client::new(&self.author)
            .get_pull_request_approval_states()
            .pull_request_id(id)
            .revision_id(revision)
            .send()
            .await
            .unwrap()
            .approvals
            .unwrap_or_default();
        for approval in &approvals {
            assert!(
                !approval
                    .user_arn()
                    .unwrap_or_default()
                    .contains("user/mary"),
                "the author never approves: {approval:?}"
            );
        }
        approvals
            .into_iter()
            .filter_map(|a| a.approval_state)
            .collect()
    }

    async fn build_status(&self, build: &str) -> String {
        let builds = aws_sdk_codebuild::Client::new(&self.bot)
            .batch_get_builds()
            .ids(build)
            .send()
            .await
            .unwrap()
            .builds
            .unwrap_or_default();
        builds[0].build_status().unwrap().as_str().to_owned()
    }

    async fn build_count(&self) -> usize {
        aws_sdk_codebuild::Client::new(&self.bot)
            .list_builds_for_project()
            .project_name(&self.project)
            .send()
            .await
            .unwrap()
            .ids()
            .len()
    }
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn build_id(response: &Value) -> String {
    response["buildId"]
        .as_str()
        .unwrap_or_else(|| panic!("no buildId in {response}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_author_sees_the_build_start_then_fail_and_no_approval_even_after_redeliveries() {
    let scenario = Scenario::new().await;
    let id = scenario.open("main").await;
    let created = scenario.pull_request_event(&id, "pullRequestCreated").await;

    let response = scenario.invoke(&created).await;

    assert_eq!(response["outcome"], "buildStarted", "{response}");
    assert_eq!(response["commitId"], scenario.head.as_str());
    let build = build_id(&response);
    let short = &scenario.head[..7];
    let comments = scenario.comments(&id).await;
    assert_eq!(comments.len(), 1, "{comments:?}");
    assert!(
        comments[0].starts_with(&format!(
            "Build started for `{short}`: [{} #1](https://us-east-1.console.aws.amazon.com/codesuite/codebuild/",
            scenario.project
        )),
        "{}",
        comments[0]
    );
    // The build is of exactly the head, and says which pull request it validates.
    let started = aws_sdk_codebuild::Client::new(&scenario.bot)
        .batch_get_builds()
        .ids(&build)
        .send()
        .await
        .unwrap()
        .builds
        .unwrap()
        .remove(0);
    assert_eq!(started.source_version(), Some(scenario.head.as_str()));
    let variables: Vec<(String, String)> = started
        .environment()
        .unwrap()
        .environment_variables()
        .iter()
        .map(|v| (v.name().to_owned(), v.value().to_owned()))
        .collect();
    assert!(variables.contains(&("PULL_REQUEST_ID".into(), id.clone())));
    assert!(variables.contains(&("PULL_REQUEST_SOURCE_COMMIT".into(), scenario.head.clone())));
    assert!(variables.contains(&(
        "PULL_REQUEST_DESTINATION_COMMIT".into(),
        scenario.main.clone()
    )));

    // EventBridge delivers the event again: the same build, no second comment.
    let again = scenario.invoke(&created).await;
    assert_eq!(again["buildId"], build.as_str(), "{again}");
    assert_eq!(again["alreadyRunning"], true);
    assert_eq!(scenario.build_count().await, 1);
    assert_eq!(scenario.comments(&id).await.len(), 1);

    scenario.finish(&build, "FAILED").await;
    let failed = scenario.build_event(&build).await;
    let response = scenario.invoke(&failed).await;
    assert_eq!(response["outcome"], "reported", "{response}");
    assert_eq!(response["approval"], "REVOKE");

    let comments = scenario.comments(&id).await;
    assert_eq!(comments.len(), 2, "{comments:?}");
    let result = &comments[1];
    assert!(
        result.starts_with(
            "![build failing](https://img.shields.io/badge/build-failing-red)\n\n**Build ["
        ),
        "{result}"
    );
    assert!(
        result.contains(&format!("of `{short}` failed** after 3 min 10 s.")),
        "{result}"
    );
    assert!(result.contains("The BUILD phase ended FAILED:"), "{result}");
    assert!(result.contains("Reason: exit status 101"), "{result}");
    assert!(result.contains("[Logs](https://console.aws.amazon.com/cloudwatch/"));
    assert_eq!(
        scenario.approvals(&id).await,
        [ApprovalState::Revoke],
        "the function's approval is revoked"
    );

    // CodeBuild repeats the news under a new event id: nothing new for the author.
    let repeated = scenario.build_event(&build).await;
    assert_ne!(repeated["id"], failed["id"]);
    let again = scenario.invoke(&repeated).await;
    assert_eq!(again["outcome"], "reported", "{again}");
    assert_eq!(scenario.comments(&id).await.len(), 2);
    assert_eq!(scenario.approvals(&id).await, [ApprovalState::Revoke]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_push_stops_the_old_build_marks_it_superseded_and_only_the_new_head_is_approved() {
    let scenario = Scenario::new().await;
    let id = scenario.open("main").await;
    let created = scenario.pull_request_event(&id, "pullRequestCreated").await;
    let first = build_id(&scenario.invoke(&created).await);
    let (first_revision, _) = scenario.revision(&id).await;

    let newer = scenario.push(&scenario.head, "Fix the cart").await;
    let (revision, head) = scenario.revision(&id).await;
    assert_eq!(head, newer);
    assert_ne!(revision, first_revision);
    let updated = scenario
        .pull_request_event(&id, "pullRequestSourceBranchUpdated")
        .await;
    let response = scenario.invoke(&updated).await;
    assert_eq!(response["outcome"], "buildStarted", "{response}");
    assert_eq!(response["stopped"], json!([first]));
    let second = build_id(&response);
    assert_ne!(second, first);
    assert_eq!(scenario.build_status(&first).await, "STOPPED");
    assert_eq!(scenario.build_status(&second).await, "IN_PROGRESS");

    // The creation event arrives late: the pull request has moved on, nothing is built.
    let late = scenario.invoke(&created).await;
    assert_eq!(late["reason"]["kind"], "stale", "{late}");
    assert_eq!(scenario.build_count().await, 2);

    // The stopped build's event: superseded, no approval.
    let stopped = scenario.build_event(&first).await;
    let response = scenario.invoke(&stopped).await;
    assert_eq!(response["outcome"], "superseded", "{response}");
    assert!(scenario.approvals(&id).await.is_empty());
    // Delivered again: the same comment is not posted twice (counted below).
    let again = scenario.invoke(&stopped).await;
    assert_eq!(again["outcome"], "superseded", "{again}");

    scenario.finish(&second, "SUCCEEDED").await;
    let passed = scenario.build_event(&second).await;
    let response = scenario.invoke(&passed).await;
    assert_eq!(response["approval"], "APPROVE", "{response}");
    assert_eq!(scenario.approvals(&id).await, [ApprovalState::Approve]);

    let comments = scenario.comments(&id).await;
    let (old, new) = (&scenario.head[..7], &newer[..7]);
    assert_eq!(comments.len(), 4, "{comments:?}");
    assert!(comments[0].starts_with(&format!("Build started for `{old}`")));
    assert!(comments[1].starts_with(&format!("Build started for `{new}`")));
    assert!(
        comments[2].contains(&format!(
            "of `{old}` was stopped, but it is superseded by `{new}`: its result changes no approval."
        )),
        "{}",
        comments[2]
    );
    assert!(
        comments[3].starts_with(
            "![build passing](https://img.shields.io/badge/build-passing-brightgreen)"
        ),
        "{}",
        comments[3]
    );
    assert!(comments[3].contains(&format!("of `{new}` passed** in 3 min 10 s.")));
    assert!(comments[3].contains("This revision is approved."));
}

#[tokio::test(flavor = "multi_thread")]
async fn other_destinations_closed_and_merged_pull_requests_get_nothing_and_reopening_builds_again()
{
    let scenario = Scenario::new().await;
    let develop = scenario.open("develop").await;
    let response = scenario
        .invoke(
            &scenario
                .pull_request_event(&develop, "pullRequestCreated")
                .await,
        )
        .await;
    assert_eq!(response["reason"]["kind"], "otherDestination", "{response}");
    assert!(scenario.comments(&develop).await.is_empty());

    let id = scenario.open("main").await;
    let first = build_id(
        &scenario
            .invoke(&scenario.pull_request_event(&id, "pullRequestCreated").await)
            .await,
    );
    aws_sdk_codecommit::Client::new(&scenario.author)
        .update_pull_request_status()
        .pull_request_id(&id)
        .pull_request_status(aws_sdk_codecommit::types::PullRequestStatusEnum::Closed)
        .send()
        .await
        .unwrap();
    let closed = scenario
        .invoke(
            &scenario
                .pull_request_event(&id, "pullRequestStatusChanged")
                .await,
        )
        .await;
    assert_eq!(closed["reason"]["kind"], "closed", "{closed}");

    // The build finishes after the pull request closed: nothing is said or approved.
    scenario.finish(&first, "SUCCEEDED").await;
    let late = scenario.invoke(&scenario.build_event(&first).await).await;
    assert_eq!(late["reason"]["kind"], "closed", "{late}");
    assert_eq!(scenario.comments(&id).await.len(), 1);

    // Reopened (the console's Reopen): validated again, with a new build of the same head.
    let (code, reopened) = http::json(
        "POST",
        &format!(
            "{}/codecommit/reopen-pull-request",
            scenario.emulators.admin
        ),
        Some(&json!({"pullRequestId": id})),
    )
    .await;
    assert_eq!(code, 200, "{reopened}");
    let response = scenario
        .invoke(
            &scenario
                .pull_request_event(&id, "pullRequestStatusChanged")
                .await,
        )
        .await;
    assert_eq!(response["outcome"], "buildStarted", "{response}");
    let second = build_id(&response);
    assert_ne!(second, first);
    assert_eq!(scenario.comments(&id).await.len(), 2);

    // Merged while its build runs: the merge event and the build's end change nothing.
    aws_sdk_codecommit::Client::new(&scenario.author)
        .merge_pull_request_by_fast_forward()
        .pull_request_id(&id)
        .repository_name(&scenario.repository)
        .send()
        .await
        .unwrap();
    let merged = scenario
        .invoke(
            &scenario
                .pull_request_event(&id, "pullRequestMergeStatusUpdated")
                .await,
        )
        .await;
    assert_eq!(merged["reason"]["kind"], "merged", "{merged}");
    scenario.finish(&second, "FAILED").await;
    let late = scenario.invoke(&scenario.build_event(&second).await).await;
    assert_eq!(late["reason"]["kind"], "merged", "{late}");
    assert_eq!(scenario.comments(&id).await.len(), 2);
    assert!(scenario.approvals(&id).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_events_are_invalid_event_errors_and_bad_settings_stop_the_cold_start() {
    let scenario = Scenario::new().await;
    for name in [
        "invalid-missing-source-commit.json",
        "invalid-foreign-push.json",
        "invalid-build-without-commit.json",
    ] {
        let mut event = integration_tests::sample_event("pr-validator", name);
        if event["source"] == "aws.codebuild" {
            event["detail"]["project-name"] = json!(scenario.project);
        }
        let result = scenario.function.invoke(&event).await;
        assert_eq!(result.error_type(), "InvalidEvent", "{name}");
    }

    let mut env = scenario.emulators.function_env();
    env.push(("PR_VALIDATION_PROJECT".into(), "shop-pr".into()));
    env.push(("PR_REPOSITORIES".into(), "shop".into()));
    let broken = Function::start("pr-validator", &env).await;
    let (error, _) = broken.init_failure().await;
    assert_eq!(error.error_type, "Config");
    assert!(
        error.error_message.contains("PR_DESTINATIONS"),
        "{}",
        error.error_message
    );
}
