//! At-least-once delivery, out of order: EventBridge and SNS may deliver every event twice, and
//! in any order. Each function here, the real binary against the emulators, gets a sequence in
//! which every event comes twice and in a shuffled (deterministic) order, and each effect must
//! happen exactly once: one pipeline execution per pushed commit, one notification per build
//! state change, one "build started" and one result comment per pull-request commit (and the
//! approval of the newest head only), one email per approval and approver, one decision per
//! approval, one patch and one job result per deployment job.
//!
//! The orders: "interleaved" (A B A' B') and "reversed" (B A B' A'), where A' is A delivered
//! again, byte for byte (same event id).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failed test

use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_codebuild::types::EnvironmentVariable;
use aws_sdk_codecommit::types::ApprovalState;
use integration_tests::approvals::{APPROVERS, ApprovalScenario, heading};
use integration_tests::aws::sdk_config;
use integration_tests::calls::CallCounter;
use integration_tests::fixtures::{self, Delivered};
use integration_tests::function::spawn_function;
use integration_tests::http::{self, Answer, send};
use integration_tests::{Emulators, Function, event_id, kubernetes, sample_event, unique};
use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use serde_json::{Value, json};

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `events` in the given order (indices into `events`).
fn in_order<'a>(events: &'a [Value], order: &[usize]) -> Vec<&'a Value> {
    order.iter().map(|&i| &events[i]).collect()
}

/// Interleaved: A B A' B'.
const INTERLEAVED: [usize; 4] = [0, 1, 0, 1];
/// Reversed: B A B' A'.
const REVERSED: [usize; 4] = [1, 0, 1, 0];

// --- codecommit-push ---------------------------------------------------------------------------

struct Pushes {
    sdk: SdkConfig,
    repository: String,
    pipeline: String,
    function: Function,
}

impl Pushes {
    async fn new() -> (Self, String) {
        let emulators = Emulators::load();
        let sdk = sdk_config(&emulators).await;
        let repository = unique("shop");
        let pipeline = unique("shop-main");
        fixtures::repository(&sdk, &repository).await;
        let first =
            fixtures::commit(&sdk, &repository, "main", None, "chore: initial import").await;
        fixtures::pipeline(&sdk, &pipeline, &repository, "main").await;
        let mut env = emulators.function_env();
        let routes =
            json!([{"repository": repository, "branch": "main", "pipeline": pipeline}]).to_string();
        env.push(("PIPELINE_ROUTES".into(), routes));
        let function = Function::start("codecommit-push", &env).await;
        (
            Self {
                sdk,
                repository,
                pipeline,
                function,
            },
            first,
        )
    }

    async fn commit(&self, parent: &str, message: &str) -> String {
        fixtures::commit(&self.sdk, &self.repository, "main", Some(parent), message).await
    }

    /// The push event of `commit` (after `parent`), with its own event id.
    fn push(&self, parent: &str, commit: &str) -> Value {
        let mut event = sample_event("codecommit-push", "push-main.json");
        event["id"] = json!(event_id());
        event["resources"] = json!([format!(
            "arn:aws:codecommit:us-east-1:123456789012:{}",
            self.repository
        )]);
        event["detail"]["repositoryName"] = json!(self.repository);
        event["detail"]["commitId"] = json!(commit);
        event["detail"]["oldCommitId"] = json!(parent);
        event
    }

    /// (execution id, commit) of every execution of the pipeline.
    async fn executions(&self) -> Vec<(String, String)> {
        let mut executions: Vec<(String, String)> = aws_sdk_codepipeline::Client::new(&self.sdk)
            .list_pipeline_executions()
            .pipeline_name(&self.pipeline)
            .send()
            .await
            .unwrap()
            .pipeline_execution_summaries()
            .iter()
            .map(|e| {
                (
                    e.pipeline_execution_id().unwrap().to_owned(),
                    e.source_revisions()[0].revision_id().unwrap().to_owned(),
                )
            })
            .collect();
        executions.sort_by(|a, b| a.1.cmp(&b.1));
        executions
    }

    async fn deliver(&self, event: &Value) -> Value {
        self.function.invoke(event).await.response()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn pushes_delivered_twice_and_out_of_order_start_one_execution_per_commit_and_never_an_older_one_last()
 {
    // Interleaved, as the pushes happen: A lands and is delivered, B lands, then B, A', B'.
    let (scenario, first) = Pushes::new().await;
    let a = scenario.commit(&first, "feat: cart").await;
    let push_a = scenario.push(&first, &a);
    let started_a = scenario.deliver(&push_a).await;
    assert_eq!(started_a["outcome"], "started", "{started_a}");
    let b = scenario.commit(&a, "feat: checkout").await;
    let events = [push_a, scenario.push(&a, &b)];
    let mut outcomes = Vec::new();
    for event in in_order(&events, &INTERLEAVED[1..]) {
        outcomes.push(scenario.deliver(event).await);
    }
    let [started_b, late_a, again_b] = <[Value; 3]>::try_from(outcomes).unwrap();
    assert_eq!(started_b["outcome"], "started", "{started_b}");
    assert_eq!(late_a["outcome"], "ignored", "{late_a}");
    assert_eq!(late_a["reason"]["kind"], "superseded", "{late_a}");
    assert_eq!(again_b["outcome"], "started", "{again_b}");
    assert_eq!(
        again_b["executions"][0]["executionId"], started_b["executions"][0]["executionId"],
        "a redelivery answers the execution already started"
    );
    let mut expected = vec![
        (
            started_a["executions"][0]["executionId"]
                .as_str()
                .unwrap()
                .to_owned(),
            a.clone(),
        ),
        (
            started_b["executions"][0]["executionId"]
                .as_str()
                .unwrap()
                .to_owned(),
            b.clone(),
        ),
    ];
    expected.sort_by(|x, y| x.1.cmp(&y.1));
    assert_eq!(
        scenario.executions().await,
        expected,
        "one execution per commit"
    );

    // Reversed: both pushes land before EventBridge delivers anything, then B A B' A'. The
    // older push is never built: it would deploy after the newer one.
    let (scenario, first) = Pushes::new().await;
    let a = scenario.commit(&first, "feat: cart").await;
    let b = scenario.commit(&a, "feat: checkout").await;
    let events = [scenario.push(&first, &a), scenario.push(&a, &b)];
    let mut outcomes = Vec::new();
    for event in in_order(&events, &REVERSED) {
        outcomes.push(scenario.deliver(event).await);
    }
    let kinds: Vec<&str> = outcomes
        .iter()
        .map(|o| o["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["started", "ignored", "started", "ignored"],
        "{outcomes:?}"
    );
    assert_eq!(outcomes[1]["reason"]["tip"], b.as_str());
    let executions = scenario.executions().await;
    assert_eq!(executions.len(), 1, "{executions:?}");
    assert_eq!(executions[0].1, b, "only the newest commit is built");
    assert_eq!(
        outcomes[2]["executions"][0]["executionId"],
        executions[0].0.as_str()
    );
}

// --- codebuild-status --------------------------------------------------------------------------

const COMMIT: &str = "0ccf1ae1bf4c7d610115754eef7bf8c60e7f167e";

struct Builds {
    emulators: Emulators,
    sdk: SdkConfig,
    project: String,
    inbox: String,
    function: Function,
}

impl Builds {
    async fn new() -> Self {
        let emulators = Emulators::load();
        let sdk = sdk_config(&emulators).await;
        let project = unique("shop-image");
        fixtures::image_project(&sdk, &project).await;
        let table = unique("ledger");
        fixtures::ledger_table(&sdk, &table).await;
        let (topic, inbox) = fixtures::topic_with_inbox(&sdk, &unique("builds"), None).await;
        let mut env = emulators.function_env();
        env.extend([
            ("TOPIC_ARN".to_owned(), topic),
            ("LEDGER_TABLE".to_owned(), table),
            ("PR_VALIDATION_PROJECT".to_owned(), "shop-pr".to_owned()),
        ]);
        let function = Function::start("codebuild-status", &env).await;
        Self {
            emulators,
            sdk,
            project,
            inbox,
            function,
        }
    }

    async fn start_build(&self) -> String {
        let variable = |name: &str, value: &str| {
            EnvironmentVariable::builder()
                .name(name)
                .value(value)
                .build()
                .unwrap()
        };
        aws_sdk_codebuild::Client::new(&self.sdk)
            .start_build()
            .project_name(&self.project)
            .environment_variables_override(variable("SOURCE_BRANCH", "main"))
            .environment_variables_override(variable("SOURCE_COMMIT", COMMIT))
            .send()
            .await
            .unwrap()
            .build_value()
            .unwrap()
            .id()
            .unwrap()
            .to_owned()
    }

    async fn finish(&self, build: &str, status: &str) {
        let body = json!({"buildId": build, "status": status, "durationSeconds": 192});
        let (code, answer) = http::json(
            "POST",
            &format!("{}/codebuild/complete", self.emulators.admin),
            Some(&body),
        )
        .await;
        assert_eq!(code, 200, "{answer}");
    }

    async fn event(&self, build: &str) -> Value {
        let url = format!(
            "{}/codebuild/event?buildId={}",
            self.emulators.admin,
            encode(build)
        );
        let (code, event) = http::json("GET", &url, None).await;
        assert_eq!(code, 200, "{event}");
        event
    }

    async fn inbox(&self) -> Vec<Delivered> {
        fixtures::received(&self.sdk, &self.inbox).await
    }

    /// Build #1 of main failed, build #2 fixed it; the events are (#1 FAILED, #2 SUCCEEDED)
    /// and #2's IN_PROGRESS event, taken while it ran.
    async fn failed_then_fixed(&self) -> ([Value; 2], Value) {
        let failed = self.start_build().await;
        self.finish(&failed, "FAILED").await;
        let fixed = self.start_build().await;
        let running = self.event(&fixed).await;
        self.finish(&fixed, "SUCCEEDED").await;
        (
            [self.event(&failed).await, self.event(&fixed).await],
            running,
        )
    }

    /// (status, subject) of what reached the inbox.
    async fn notified(&self) -> Vec<(String, String)> {
        let mut notified: Vec<(String, String)> = self
            .inbox()
            .await
            .into_iter()
            .map(|m| (m.attributes["status"].clone(), m.subject))
            .collect();
        notified.sort();
        notified
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn build_state_changes_delivered_twice_and_out_of_order_notify_once_each() {
    for (order, name) in [(INTERLEAVED, "interleaved"), (REVERSED, "reversed")] {
        let scenario = Builds::new().await;
        let (events, running) = scenario.failed_then_fixed().await;

        let mut outcomes = Vec::new();
        for event in in_order(&events, &order) {
            outcomes.push(scenario.function.invoke(event).await.response());
        }
        // The IN_PROGRESS event of #2 arrives last, after its SUCCEEDED: nothing.
        let late = scenario.function.invoke(&running).await.response();

        let kinds: Vec<&str> = outcomes
            .iter()
            .map(|o| o["outcome"].as_str().unwrap())
            .collect();
        assert_eq!(
            kinds,
            ["notified", "notified", "ignored", "ignored"],
            "{name}: {outcomes:?}"
        );
        for again in &outcomes[2..] {
            assert_eq!(
                again["reason"]["kind"], "alreadyNotified",
                "{name}: {again}"
            );
        }
        assert_eq!(late["reason"]["kind"], "notFinished", "{name}: {late}");
        let notified = scenario.notified().await;
        let statuses: Vec<&str> = notified.iter().map(|(s, _)| s.as_str()).collect();
        assert_eq!(statuses, ["FAILED", "FIXED"], "{name}: {notified:?}");
        assert!(
            notified[0]
                .1
                .starts_with(&format!("FAILED: {} #1 on main", scenario.project)),
            "{name}: {notified:?}"
        );
        assert!(
            notified[1]
                .1
                .starts_with(&format!("FIXED: {} #2 on main", scenario.project)),
            "{name}: {notified:?}"
        );
    }
}

// --- pr-validator ------------------------------------------------------------------------------

struct PullRequests {
    emulators: Emulators,
    bot: SdkConfig,
    author: SdkConfig,
    repository: String,
    project: String,
    head: String,
    function: Function,
}

impl PullRequests {
    async fn new() -> Self {
        let emulators = Emulators::load();
        let bot = sdk_config(&emulators).await;
        let author = fixtures::user(&emulators, &bot, &unique("mary")).await;
        let repository = unique("shop");
        fixtures::repository(&bot, &repository).await;
        let main = fixtures::commit(&author, &repository, "main", None, "Initial commit").await;
        aws_sdk_codecommit::Client::new(&bot)
            .create_branch()
            .repository_name(&repository)
            .branch_name("feature/cart")
            .commit_id(&main)
            .send()
            .await
            .unwrap();
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
            ("PR_DESTINATIONS".to_owned(), "main".to_owned()),
        ]);
        let function = Function::start("pr-validator", &env).await;
        Self {
            emulators,
            bot,
            author,
            repository,
            project,
            head,
            function,
        }
    }

    async fn open(&self) -> String {
        fixtures::pull_request(
            &self.author,
            &self.repository,
            "feature/cart",
            "main",
            "Add the cart",
        )
        .await
    }

    async fn push(&self, message: &str) -> String {
        fixtures::commit(
            &self.author,
            &self.repository,
            "feature/cart",
            Some(&self.head),
            message,
        )
        .await
    }

    async fn pull_request_event(&self, id: &str, kind: &str) -> Value {
        let url = format!(
            "{}/codecommit/pull-request-event?pullRequestId={id}&repositoryName={}&event={kind}",
            self.emulators.admin, self.repository
        );
        let (code, event) = http::json("GET", &url, None).await;
        assert_eq!(code, 200, "{event}");
        event
    }

    async fn finish(&self, build: &str, status: &str) {
        let body = json!({"buildId": build, "status": status, "durationSeconds": 190});
        let (code, answer) = http::json(
            "POST",
            &format!("{}/codebuild/complete", self.emulators.admin),
            Some(&body),
        )
        .await;
        assert_eq!(code, 200, "{answer}");
    }

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

    async fn deliver(&self, event: &Value) -> Value {
        self.function.invoke(event).await.response()
    }

    async fn comments(&self, id: &str) -> Vec<String> {
        aws_sdk_codecommit::Client::new(&self.author)
            .get_comments_for_pull_request()
            .pull_request_id(id)
            .send()
            .await
            .unwrap()
            .comments_for_pull_request_data()
            .iter()
            .flat_map(|group| group.comments())
            .map(|comment| comment.content().unwrap_or_default().to_owned())
            .collect()
    }

    /// The approval states of `revision`.
    async fn approvals_of(&self, id: &str, revision: &str) -> Vec<ApprovalState> {
        aws_sdk_codecommit::Client::new(&self.author)
            .get_pull_request_approval_states()
            .pull_request_id(id)
            .revision_id(revision)
            .send()
            .await
            .unwrap()
            .approvals
            .unwrap_or_default()
            .into_iter()
            .filter_map(|a| a.approval_state)
            .collect()
    }

    /// The pull request's current revision.
    async fn revision(&self, id: &str) -> String {
        aws_sdk_codecommit::Client::new(&self.author)
            .get_pull_request()
            .pull_request_id(id)
            .send()
            .await
            .unwrap()
            .pull_request
            .unwrap()
            .revision_id
            .unwrap()
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

fn build_id(response: &Value) -> String {
    response["buildId"]
        .as_str()
        .unwrap_or_else(|| panic!("no buildId in {response}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn pull_request_events_delivered_twice_and_out_of_order_comment_once_and_approve_only_the_newest_head()
 {
    // Interleaved: the pull request is opened (C) and its build #1 of the first head starts; the
    // author pushes (U); #1 passes before it can be stopped (R1); then U, R1, C', U', R1' in that
    // order; #2 fails (R2); R2, R1'', R2'. The older head's success arrives after the newer
    // head's build started and after its failure: it must approve nothing.
    let scenario = PullRequests::new().await;
    let id = scenario.open().await;
    let created = scenario.pull_request_event(&id, "pullRequestCreated").await;
    let started = scenario.deliver(&created).await;
    assert_eq!(started["outcome"], "buildStarted", "{started}");
    let first = build_id(&started);
    let newer = scenario.push("Fix the cart").await;
    let updated = scenario
        .pull_request_event(&id, "pullRequestSourceBranchUpdated")
        .await;
    scenario.finish(&first, "SUCCEEDED").await;
    let first_result = scenario.build_event(&first).await;

    let events = [created, updated, first_result];
    let mut outcomes = Vec::new();
    for event in in_order(&events, &[1, 2, 0, 1, 2]) {
        outcomes.push(scenario.deliver(event).await);
    }
    let kinds: Vec<&str> = outcomes
        .iter()
        .map(|o| o["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "buildStarted",
            "superseded",
            "ignored",
            "buildStarted",
            "superseded"
        ],
        "{outcomes:?}"
    );
    let second = build_id(&outcomes[0]);
    assert_eq!(outcomes[0]["commitId"], newer.as_str());
    assert_eq!(outcomes[2]["reason"]["kind"], "stale", "{}", outcomes[2]);
    assert_eq!(outcomes[3]["buildId"], second.as_str());
    assert_eq!(outcomes[3]["alreadyRunning"], true);
    let revision = scenario.revision(&id).await;
    assert!(
        scenario.approvals_of(&id, &revision).await.is_empty(),
        "the older head's success approves nothing"
    );

    scenario.finish(&second, "FAILED").await;
    let second_result = scenario.build_event(&second).await;
    let results = [events[2].clone(), second_result];
    let mut outcomes = Vec::new();
    for event in in_order(&results, &[1, 0, 1]) {
        outcomes.push(scenario.deliver(event).await);
    }
    let kinds: Vec<&str> = outcomes
        .iter()
        .map(|o| o["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["reported", "superseded", "reported"],
        "{outcomes:?}"
    );
    assert_eq!(outcomes[0]["approval"], "REVOKE");
    assert_eq!(
        scenario.approvals_of(&id, &revision).await,
        [ApprovalState::Revoke],
        "the newest head failed: the older head's late success does not approve it"
    );
    assert_eq!(scenario.build_count().await, 2, "one build per head");
    let comments = scenario.comments(&id).await;
    let (old, new) = (&scenario.head[..7], &newer[..7]);
    assert_eq!(comments.len(), 4, "{comments:#?}");
    assert!(comments[0].starts_with(&format!("Build started for `{old}`")));
    assert!(comments[1].starts_with(&format!("Build started for `{new}`")));
    assert!(
        comments[2].contains(&format!("of `{old}` passed")) && comments[2].contains("superseded"),
        "{}",
        comments[2]
    );
    assert!(
        comments[3].starts_with("![build failing]") && comments[3].contains(&format!("`{new}`")),
        "{}",
        comments[3]
    );

    // Reversed: the author pushes before EventBridge delivers anything, then U C U' C'; the
    // newer head's build passes, and its result comes twice.
    let scenario = PullRequests::new().await;
    let id = scenario.open().await;
    let created = scenario.pull_request_event(&id, "pullRequestCreated").await;
    let newer = scenario.push("Fix the cart").await;
    let updated = scenario
        .pull_request_event(&id, "pullRequestSourceBranchUpdated")
        .await;
    let events = [created, updated];
    let mut outcomes = Vec::new();
    for event in in_order(&events, &REVERSED) {
        outcomes.push(scenario.deliver(event).await);
    }
    let kinds: Vec<&str> = outcomes
        .iter()
        .map(|o| o["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["buildStarted", "ignored", "buildStarted", "ignored"],
        "{outcomes:?}"
    );
    let build = build_id(&outcomes[0]);
    assert_eq!(outcomes[2]["buildId"], build.as_str());
    scenario.finish(&build, "SUCCEEDED").await;
    let result = scenario.build_event(&build).await;
    for _ in 0..2 {
        let reported = scenario.deliver(&result).await;
        assert_eq!(reported["approval"], "APPROVE", "{reported}");
    }
    let revision = scenario.revision(&id).await;
    assert_eq!(
        scenario.approvals_of(&id, &revision).await,
        [ApprovalState::Approve]
    );
    assert_eq!(scenario.build_count().await, 1);
    let comments = scenario.comments(&id).await;
    assert_eq!(comments.len(), 2, "{comments:#?}");
    assert!(comments[0].starts_with(&format!("Build started for `{}`", &newer[..7])));
    assert!(
        comments[1].starts_with("![build passing]"),
        "{}",
        comments[1]
    );
}

// --- approval-notify ---------------------------------------------------------------------------

/// Another pipeline notifying the scenario's requests topic, waiting at its approval.
async fn another_approval(scenario: &ApprovalScenario) -> String {
    let sdk = &scenario.sdk;
    let repository = unique("shop");
    let pipeline = unique("shop-main");
    fixtures::repository(sdk, &repository).await;
    fixtures::commit(sdk, &repository, "main", None, "feat: gift cards").await;
    fixtures::approval_pipeline(
        sdk,
        &pipeline,
        &repository,
        "main",
        &scenario.requests_topic,
    )
    .await;
    aws_sdk_codepipeline::Client::new(sdk)
        .start_pipeline_execution()
        .name(&pipeline)
        .send()
        .await
        .unwrap();
    pipeline
}

/// The SNS event Lambda gets for the approval notification of `pipeline`.
async fn approval_event(scenario: &ApprovalScenario, pipeline: &str) -> Value {
    let url = format!(
        "{}/sns/published?topicArn={}",
        scenario.emulators.admin, scenario.requests_topic
    );
    let (status, body) = http::json("GET", &url, None).await;
    assert_eq!(status, 200, "{body}");
    let published: Vec<&Value> = body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| {
            serde_json::from_str::<Value>(m["message"].as_str().unwrap()).unwrap()["approval"]
                ["pipelineName"]
                == pipeline
        })
        .collect();
    assert_eq!(published.len(), 1, "one notification per approval: {body}");
    let mut event = sample_event("approval-notify", "approval-needed.json");
    let record = &mut event["Records"][0];
    record["Sns"]["TopicArn"] = json!(scenario.requests_topic);
    record["Sns"]["MessageId"] = published[0]["messageId"].clone();
    record["Sns"]["Subject"] = published[0]["subject"].clone();
    record["Sns"]["Message"] = published[0]["message"].clone();
    event
}

#[tokio::test(flavor = "multi_thread")]
async fn approval_notifications_delivered_twice_and_out_of_order_mail_each_approver_once_per_approval()
 {
    let scenario = ApprovalScenario::new().await;
    let mut pipelines = vec![scenario.pipeline.clone()];
    for _ in 0..3 {
        pipelines.push(another_approval(&scenario).await);
    }
    let mut events = Vec::new();
    for pipeline in &pipelines {
        events.push(approval_event(&scenario, pipeline).await);
    }

    // Approvals 0 and 1 interleaved (A B A' B'), 2 and 3 reversed (D C D' C').
    let order = [0, 1, 0, 1, 3, 2, 3, 2];
    let mut outcomes = Vec::new();
    for event in in_order(&events, &order) {
        outcomes.push(scenario.notify.invoke(event).await.response());
    }
    for (i, outcome) in outcomes.iter().enumerate() {
        assert_eq!(outcome["outcome"], "notified", "{outcome}");
        assert_eq!(outcome["pipeline"], pipelines[order[i]].as_str());
        let first = !order[..i].contains(&order[i]);
        let (sent, already) = if first {
            (json!(APPROVERS), json!([]))
        } else {
            (json!([]), json!(APPROVERS))
        };
        assert_eq!(outcome["sent"], sent, "delivery {i}: {outcome}");
        assert_eq!(outcome["alreadySent"], already, "delivery {i}: {outcome}");
    }
    for approver in APPROVERS {
        let inbox = scenario.inbox(approver).await;
        assert_eq!(inbox.len(), pipelines.len(), "{approver}: {inbox:#?}");
        for pipeline in &pipelines {
            let about = inbox
                .iter()
                .filter(|m| {
                    m["subject"]
                        .as_str()
                        .unwrap_or_default()
                        .contains(pipeline.as_str())
                })
                .count();
            assert_eq!(about, 1, "{approver} gets one email about {pipeline}");
        }
    }
}

// --- approval-callback -------------------------------------------------------------------------

fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} field in {html}"))
        + marker.len();
    html[start..].split('"').next().unwrap().to_owned()
}

/// A decision ready to send: the link's URL, the page's form (with `comment`) and its cookie.
struct ReadyForm {
    url: String,
    body: String,
    cookie: String,
}

async fn open_page(link: &str, comment: &str) -> ReadyForm {
    let page = send("GET", link, &[("accept", "text/html")], "").await;
    assert_eq!(page.status, 200, "{}", page.body);
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("link", &hidden(&page.body, "link"))
        .append_pair("form", &hidden(&page.body, "form"))
        .append_pair("comment", comment)
        .finish();
    let cookie = page
        .header("set-cookie")
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    ReadyForm {
        url: link.to_owned(),
        body,
        cookie,
    }
}

async fn post(scenario: &ApprovalScenario, form: &ReadyForm) -> Answer {
    let origin = scenario.callback.origin();
    send(
        "POST",
        &form.url,
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            ("origin", origin.as_str()),
            ("sec-fetch-site", "same-origin"),
            ("cookie", form.cookie.as_str()),
        ],
        &form.body,
    )
    .await
}

/// A second approval-callback process polling the same Function URL, as Lambda runs concurrent
/// requests in separate instances: two requests at once really race.
async fn second_instance(scenario: &ApprovalScenario) -> tokio::process::Child {
    let secret = unique("approval-signing-key");
    fixtures::secret(&scenario.sdk, &secret, &scenario.signing_key).await;
    let mut env = scenario.emulators.function_env();
    env.push(("SIGNING_KEY".into(), format!("secretsmanager:{secret}")));
    let (mut child, _logs) = spawn_function(
        "approval-callback",
        &format!("{}/.rt/approval-callback", scenario.callback.origin()),
        &env,
    );
    // Let it finish its cold start (the key from Secrets Manager) and poll.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        matches!(child.try_wait(), Ok(None)),
        "the second instance started and polls"
    );
    child
}

/// The emulator's record of the scenario's approval: (status, summary).
async fn recorded(scenario: &ApprovalScenario) -> (String, Value) {
    let (code, body) = http::json(
        "GET",
        &format!("{}/codepipeline/approvals", scenario.emulators.admin),
        None,
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let ours: Vec<&Value> = body["approvals"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["pipelineName"] == scenario.pipeline.as_str())
        .collect();
    assert_eq!(ours.len(), 1, "{ours:?}");
    (
        ours[0]["status"].as_str().unwrap().to_owned(),
        ours[0]["summary"].clone(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_decision_sent_twice_at_once_is_recorded_once() {
    let scenario = ApprovalScenario::new().await;
    scenario.deliver().await;
    let _second = second_instance(&scenario).await;
    let calls = CallCounter::start(
        &scenario.emulators,
        "codepipeline",
        "PutApprovalResult",
        &scenario.pipeline,
    )
    .await;
    let (approve, _) = scenario.links_of("alice@example.com").await;
    let form = open_page(&approve, "Ship it").await;

    // A double click: the same form twice, at once.
    let (one, two) = tokio::join!(post(&scenario, &form), post(&scenario, &form));
    // And once more, later.
    let three = post(&scenario, &form).await;

    let statuses = [one.status, two.status];
    assert!(
        statuses.contains(&200) && statuses.iter().all(|s| [200, 409].contains(s)),
        "{statuses:?}: {} / {}",
        one.body,
        two.body
    );
    for answer in [&one, &two] {
        if answer.status == 200 {
            assert_eq!(heading(&answer.body), "Approved: thank you");
        }
    }
    assert_eq!(three.status, 409, "{}", three.body);
    assert_eq!(
        recorded(&scenario).await,
        (
            "Approved".to_owned(),
            json!("Approved by alice@example.com via the email link: Ship it")
        )
    );
    assert_eq!(scenario.execution_status().await, "Succeeded");
    // CodePipeline took one decision; a request that raced the first may have asked too and
    // been told "already completed"; the later one did not ask.
    let made = calls.count().await;
    assert!((1..=2).contains(&made), "{made} PutApprovalResult calls");
}

#[tokio::test(flavor = "multi_thread")]
async fn approve_and_reject_racing_record_exactly_one_decision() {
    let scenario = ApprovalScenario::new().await;
    scenario.deliver().await;
    let _second = second_instance(&scenario).await;
    let calls = CallCounter::start(
        &scenario.emulators,
        "codepipeline",
        "PutApprovalResult",
        &scenario.pipeline,
    )
    .await;
    let (approve, _) = scenario.links_of("alice@example.com").await;
    let (_, reject) = scenario.links_of("bob@example.com").await;
    let approving = open_page(&approve, "").await;
    let rejecting = open_page(&reject, "").await;

    // Both press at once, then each presses again (out of order: Bob first).
    let (alice, bob) = tokio::join!(post(&scenario, &approving), post(&scenario, &rejecting));
    let bob_again = post(&scenario, &rejecting).await;
    let alice_again = post(&scenario, &approving).await;

    let (status, summary) = recorded(&scenario).await;
    let (winner, loser) = match status.as_str() {
        "Approved" => (&alice, &bob),
        "Rejected" => (&bob, &alice),
        other => panic!("the approval is {other}"),
    };
    assert_eq!(winner.status, 200, "{}", winner.body);
    assert_eq!(loser.status, 409, "{}", loser.body);
    assert_eq!(heading(&loser.body), "Already decided");
    assert_eq!(bob_again.status, 409, "{}", bob_again.body);
    assert_eq!(alice_again.status, 409, "{}", alice_again.body);
    let expected = if status == "Approved" {
        "Approved by alice@example.com via the email link"
    } else {
        "Rejected by bob@example.com via the email link"
    };
    assert_eq!(summary, json!(expected));
    let made = calls.count().await;
    assert!((1..=2).contains(&made), "{made} PutApprovalResult calls");
}

// --- eks-deploy --------------------------------------------------------------------------------

const V1: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com/shop:v1";

struct Deploys {
    emulators: Emulators,
    sdk: SdkConfig,
    client: kube::Client,
    cluster: String,
    namespace: String,
    function: Function,
}

struct PipelineRun {
    name: String,
    execution_id: String,
}

impl Deploys {
    async fn new() -> Self {
        let emulators = Emulators::load();
        let sdk = sdk_config(&emulators).await;
        let cluster = unique("shop-prod");
        kubernetes::eks_cluster(&sdk, &cluster).await;
        let client = kubernetes::client(&emulators);
        let namespace = unique("shop");
        kubernetes::deployment(&client, &namespace, "web", 3, 2, &[("web", V1)]).await;
        let function = Function::start("eks-deploy", &emulators.function_env()).await;
        Self {
            emulators,
            sdk,
            client,
            cluster,
            namespace,
            function,
        }
    }

    /// A pipeline deploying `image` to the scenario's Deployment, waiting at its Deploy action.
    async fn run(&self, image: &str) -> PipelineRun {
        let repository = unique("shop-repo");
        fixtures::repository(&self.sdk, &repository).await;
        fixtures::commit(&self.sdk, &repository, "main", None, "feat: checkout").await;
        let name = unique("shop-main");
        let parameters = json!({"cluster": self.cluster, "namespace": self.namespace,
            "deployment": "web", "container": "web", "image": "#{BuildVariables.IMAGE_URI}"});
        fixtures::deploy_pipeline(
            &self.sdk,
            &name,
            &repository,
            "eks-deploy",
            &parameters.to_string(),
        )
        .await;
        let execution_id = aws_sdk_codepipeline::Client::new(&self.sdk)
            .start_pipeline_execution()
            .name(&name)
            .send()
            .await
            .unwrap()
            .pipeline_execution_id()
            .unwrap()
            .to_owned();
        fixtures::complete_action(
            &self.emulators,
            &execution_id,
            "Build",
            "Build",
            "Succeeded",
            json!({"IMAGE_URI": image}),
        )
        .await;
        PipelineRun { name, execution_id }
    }

    async fn job(&self, run: &PipelineRun) -> Value {
        let jobs = fixtures::waiting_jobs(&self.emulators, &run.name).await;
        assert_eq!(jobs.len(), 1, "{jobs:?}");
        jobs[0]["event"].clone()
    }

    async fn image(&self) -> String {
        let deployment = Api::<Deployment>::namespaced(self.client.clone(), &self.namespace)
            .get("web")
            .await
            .unwrap();
        deployment.spec.unwrap().template.spec.unwrap().containers[0]
            .image
            .clone()
            .unwrap()
    }

    /// The PATCHes of the scenario's Deployment.
    async fn patches(&self) -> usize {
        kubernetes::requests(&self.emulators)
            .await
            .into_iter()
            .filter(|r| {
                r["method"] == "PATCH"
                    && r["path"]
                        .as_str()
                        .unwrap_or_default()
                        .contains(&format!("/namespaces/{}/", self.namespace))
            })
            .count()
    }

    async fn status(&self, run: &PipelineRun) -> String {
        aws_sdk_codepipeline::Client::new(&self.sdk)
            .get_pipeline_execution()
            .pipeline_name(&run.name)
            .pipeline_execution_id(&run.execution_id)
            .send()
            .await
            .unwrap()
            .pipeline_execution()
            .unwrap()
            .status()
            .unwrap()
            .as_str()
            .to_owned()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn deploy_jobs_invoked_twice_and_out_of_order_patch_once_and_report_once_each() {
    for (order, name) in [(INTERLEAVED, "interleaved"), (REVERSED, "reversed")] {
        let scenario = Deploys::new().await;
        let images = [
            format!(
                "123456789012.dkr.ecr.us-east-1.amazonaws.com/shop:{}",
                unique("a")
            ),
            format!(
                "123456789012.dkr.ecr.us-east-1.amazonaws.com/shop:{}",
                unique("b")
            ),
        ];
        let runs = [
            scenario.run(&images[0]).await,
            scenario.run(&images[1]).await,
        ];
        let jobs = [scenario.job(&runs[0]).await, scenario.job(&runs[1]).await];
        let before = scenario.patches().await;

        let mut outcomes = Vec::new();
        for event in in_order(&jobs, &order) {
            outcomes.push(scenario.function.invoke(event).await.response());
        }

        let kinds: Vec<&str> = outcomes
            .iter()
            .map(|o| o["outcome"].as_str().unwrap())
            .collect();
        assert_eq!(
            kinds,
            [
                "succeeded",
                "succeeded",
                "alreadyReported",
                "alreadyReported"
            ],
            "{name}: {outcomes:?}"
        );
        assert_eq!(
            scenario.patches().await - before,
            2,
            "{name}: one patch per job, none for a redelivery"
        );
        let last = &images[order[1]];
        assert_eq!(
            &scenario.image().await,
            last,
            "{name}: the image of the job that ran last stays"
        );
        for run in &runs {
            assert_eq!(scenario.status(run).await, "Succeeded", "{name}");
        }
    }
}
