//! At-least-once delivery, out of order: EventBridge and SNS may deliver every event twice, and
//! in any order. Each function here, the real binary against the emulators, gets a sequence in
//! which every event comes twice and in a shuffled (deterministic) order, and each effect must
//! happen exactly once: one pipeline execution per pushed commit, one notification per build
//! state change, one "build started" and one result comment per pull-request commit (and the
//! approval of the newest head only), one email per approval and approver, one decision per
//! approval, one patch and one job result per deployment job, one message, one pull-request
//! comment and one metric line per pipeline execution's end.
//!
//! The orders: "interleaved" (A B A' B') and "reversed" (B A B' A'), where A' is A delivered
//! again, byte for byte (same event id).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failed test

use std::time::Duration;

use aws_sdk_codecommit::types::ApprovalState;
use integration_tests::approvals::{APPROVERS, ApprovalScenario, heading, hidden_field};
use integration_tests::calls::CallCounter;
use integration_tests::fixtures;
use integration_tests::function::spawn_function;
use integration_tests::http::{Answer, send};
use integration_tests::scenarios::build_status::BuildStatusScenario;
use integration_tests::scenarios::deliveries::DeliveryScenario;
use integration_tests::scenarios::deployments::{
    DeploymentScenario, PipelineRun, V1, container_images,
};
use integration_tests::scenarios::pull_requests::{PullRequestScenario, build_id};
use integration_tests::scenarios::pushes::PushScenario;
use integration_tests::{Function, unique};
use serde_json::{Value, json};

/// `events` in the given order (indices into `events`).
fn in_order<'a>(events: &'a [Value], order: &[usize]) -> Vec<&'a Value> {
    order.iter().map(|&i| &events[i]).collect()
}

/// The `outcome` of each response.
fn outcome_kinds(outcomes: &[Value]) -> Vec<&str> {
    outcomes
        .iter()
        .map(|o| o["outcome"].as_str().unwrap())
        .collect()
}

/// Interleaved: A B A' B'.
const INTERLEAVED: [usize; 4] = [0, 1, 0, 1];
/// Reversed: B A B' A'.
const REVERSED: [usize; 4] = [1, 0, 1, 0];

// --- codecommit-push ---------------------------------------------------------------------------

/// Pushes to `main`, and codecommit-push routing them to the pipeline.
struct Pushes {
    scenario: PushScenario,
    function: Function,
}

impl Pushes {
    async fn new() -> (Self, String) {
        let scenario = PushScenario::new().await;
        let function = scenario.function(&scenario.routes()).await;
        let first = scenario.first.clone();
        (Self { scenario, function }, first)
    }

    async fn commit(&self, parent: &str, message: &str) -> String {
        self.scenario.commit(parent, message).await
    }

    /// The push event of `commit` (after `parent`), with its own event id.
    fn push(&self, parent: &str, commit: &str) -> Value {
        let mut event = self.scenario.push_event("push-main.json", commit);
        event["resources"] = json!([format!(
            "arn:aws:codecommit:us-east-1:123456789012:{}",
            self.scenario.repository
        )]);
        event["detail"]["oldCommitId"] = json!(parent);
        event
    }

    /// (execution id, commit) of every execution of the pipeline.
    async fn executions(&self) -> Vec<(String, String)> {
        let mut executions: Vec<(String, String)> = self
            .scenario
            .executions()
            .await
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
    let kinds = outcome_kinds(&outcomes);
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

/// Build #1 of main failed, build #2 fixed it; the events are (#1 FAILED, #2 SUCCEEDED) and
/// #2's IN_PROGRESS event, taken while it ran.
async fn failed_then_fixed(scenario: &BuildStatusScenario) -> ([Value; 2], Value) {
    let failed = scenario.start_build("main").await;
    scenario.finish(&failed, "FAILED").await;
    let fixed = scenario.start_build("main").await;
    let running = scenario.event(&fixed).await;
    scenario.finish(&fixed, "SUCCEEDED").await;
    (
        [scenario.event(&failed).await, scenario.event(&fixed).await],
        running,
    )
}

/// (status, subject) of what reached the inbox.
async fn notified(scenario: &BuildStatusScenario) -> Vec<(String, String)> {
    let mut notified: Vec<(String, String)> = scenario
        .inbox()
        .await
        .into_iter()
        .map(|m| (m.attributes["status"].clone(), m.subject))
        .collect();
    notified.sort();
    notified
}

#[tokio::test(flavor = "multi_thread")]
async fn build_state_changes_delivered_twice_and_out_of_order_notify_once_each() {
    for (order, name) in [(INTERLEAVED, "interleaved"), (REVERSED, "reversed")] {
        let scenario = BuildStatusScenario::new().await;
        let (events, running) = failed_then_fixed(&scenario).await;

        let mut outcomes = Vec::new();
        for event in in_order(&events, &order) {
            outcomes.push(scenario.function.invoke(event).await.response());
        }
        // The IN_PROGRESS event of #2 arrives last, after its SUCCEEDED: nothing.
        let late = scenario.function.invoke(&running).await.response();

        let kinds = outcome_kinds(&outcomes);
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
        let notified = notified(&scenario).await;
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

/// The approval states of `revision`.
async fn approval_states_of(
    scenario: &PullRequestScenario,
    id: &str,
    revision: &str,
) -> Vec<ApprovalState> {
    scenario
        .approvals(id, revision)
        .await
        .into_iter()
        .filter_map(|a| a.approval_state)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn pull_request_events_delivered_twice_and_out_of_order_comment_once_and_approve_only_the_newest_head()
 {
    // Interleaved: the pull request is opened (C) and its build #1 of the first head starts; the
    // author pushes (U); #1 passes before it can be stopped (R1); then U, R1, C', U', R1' in that
    // order; #2 fails (R2); R2, R1'', R2'. The older head's success arrives after the newer
    // head's build started and after its failure: it must approve nothing.
    let scenario = PullRequestScenario::new().await;
    let id = scenario.open("main").await;
    let created = scenario.pull_request_event(&id, "pullRequestCreated").await;
    let started = scenario.invoke(&created).await;
    assert_eq!(started["outcome"], "buildStarted", "{started}");
    let first = build_id(&started);
    let newer = scenario.push(&scenario.head, "Fix the cart").await;
    let updated = scenario
        .pull_request_event(&id, "pullRequestSourceBranchUpdated")
        .await;
    scenario.finish(&first, "SUCCEEDED").await;
    let first_result = scenario.build_event(&first).await;

    let events = [created, updated, first_result];
    let mut outcomes = Vec::new();
    for event in in_order(&events, &[1, 2, 0, 1, 2]) {
        outcomes.push(scenario.invoke(event).await);
    }
    let kinds = outcome_kinds(&outcomes);
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
    let revision = scenario.revision_and_head(&id).await.0;
    assert!(
        approval_states_of(&scenario, &id, &revision)
            .await
            .is_empty(),
        "the older head's success approves nothing"
    );

    scenario.finish(&second, "FAILED").await;
    let second_result = scenario.build_event(&second).await;
    let results = [events[2].clone(), second_result];
    let mut outcomes = Vec::new();
    for event in in_order(&results, &[1, 0, 1]) {
        outcomes.push(scenario.invoke(event).await);
    }
    let kinds = outcome_kinds(&outcomes);
    assert_eq!(
        kinds,
        ["reported", "superseded", "reported"],
        "{outcomes:?}"
    );
    assert_eq!(outcomes[0]["approval"], "REVOKE");
    assert_eq!(
        approval_states_of(&scenario, &id, &revision).await,
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
    let scenario = PullRequestScenario::new().await;
    let id = scenario.open("main").await;
    let created = scenario.pull_request_event(&id, "pullRequestCreated").await;
    let newer = scenario.push(&scenario.head, "Fix the cart").await;
    let updated = scenario
        .pull_request_event(&id, "pullRequestSourceBranchUpdated")
        .await;
    let events = [created, updated];
    let mut outcomes = Vec::new();
    for event in in_order(&events, &REVERSED) {
        outcomes.push(scenario.invoke(event).await);
    }
    let kinds = outcome_kinds(&outcomes);
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
        let reported = scenario.invoke(&result).await;
        assert_eq!(reported["approval"], "APPROVE", "{reported}");
    }
    let revision = scenario.revision_and_head(&id).await.0;
    assert_eq!(
        approval_states_of(&scenario, &id, &revision).await,
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
    let body = scenario.published_requests().await;
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
    scenario.requests_event(published[0])
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
        .append_pair("link", &hidden_field(&page.body, "link"))
        .append_pair("form", &hidden_field(&page.body, "form"))
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

/// The approval mailed, a second approval-callback instance polling beside the first (dropped,
/// it is killed), and the scenario's PutApprovalResult calls counted.
async fn mailed_approval_with_two_callbacks()
-> (ApprovalScenario, tokio::process::Child, CallCounter) {
    let scenario = ApprovalScenario::new().await;
    scenario.deliver().await;
    let second = second_instance(&scenario).await;
    let calls = CallCounter::start(
        &scenario.emulators,
        "codepipeline",
        "PutApprovalResult",
        &scenario.pipeline,
    )
    .await;
    (scenario, second, calls)
}

/// The emulator's record of the scenario's approval: (status, summary).
async fn recorded(scenario: &ApprovalScenario) -> (String, Value) {
    let ours = scenario.recorded_approvals().await;
    assert_eq!(ours.len(), 1, "{ours:?}");
    (
        ours[0]["status"].as_str().unwrap().to_owned(),
        ours[0]["summary"].clone(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_decision_sent_twice_at_once_is_recorded_once() {
    let (scenario, _second, calls) = mailed_approval_with_two_callbacks().await;
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
    let (scenario, _second, calls) = mailed_approval_with_two_callbacks().await;
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

/// The image of the Deployment's `web` container.
async fn image(scenario: &DeploymentScenario) -> String {
    container_images(&scenario.deployment().await)[0].1.clone()
}

/// The pipeline execution's status.
async fn status(scenario: &DeploymentScenario, run: &PipelineRun) -> String {
    run.status(&scenario.emulators).await.0
}

#[tokio::test(flavor = "multi_thread")]
async fn deploy_jobs_invoked_twice_and_out_of_order_patch_once_and_report_once_each() {
    for (order, name) in [(INTERLEAVED, "interleaved"), (REVERSED, "reversed")] {
        let scenario = DeploymentScenario::new(&[("web", V1)]).await;
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
        // Both in the emulated ECR: a Deployment gets each pinned to its digest.
        let pinned = [
            scenario.push(&images[0]).await,
            scenario.push(&images[1]).await,
        ];
        let runs = [
            scenario.pipeline_run(&images[0], None).await,
            scenario.pipeline_run(&images[1], None).await,
        ];
        let jobs = [
            runs[0].job(&scenario.emulators).await,
            runs[1].job(&scenario.emulators).await,
        ];
        let before = scenario.patches().await;

        let mut outcomes = Vec::new();
        for event in in_order(&jobs, &order) {
            outcomes.push(scenario.function.invoke(event).await.response());
        }

        let kinds = outcome_kinds(&outcomes);
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
        let last = &pinned[order[1]];
        assert_eq!(
            &image(&scenario).await,
            last,
            "{name}: the image of the job that ran last stays"
        );
        for run in &runs {
            assert_eq!(status(&scenario, run).await, "Succeeded", "{name}");
        }
    }
}

// --- delivery-events -----------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn execution_state_changes_delivered_twice_and_out_of_order_tell_each_end_once() {
    for (order, name) in [(INTERLEAVED, "interleaved"), (REVERSED, "reversed")] {
        let scenario = DeliveryScenario::new(&[]).await;
        // A: a merged pull request rejected at the approval; B: the next one deployed.
        let rejected = scenario.merge_pull_request("feat: gift cards").await;
        let _ = scenario.run_to_approval(&rejected.commit).await;
        scenario
            .decide(false, "bob@example.com", "not before the sale")
            .await;
        let deployed = scenario.merge_pull_request("feat: wish lists").await;
        let execution = scenario.run_to_approval(&deployed.commit).await;
        scenario.decide(true, "alice@example.com", "go").await;
        scenario.deploy_succeeds(&execution, &[]).await;
        // Every event CodePipeline emitted, the routed ends and the stage and action events
        // around them (which a broader rule would route too), each delivered twice.
        let events = scenario.bus.new_events().await;
        let ends: Vec<Value> = events
            .iter()
            .filter(|e| scenario.bus.routes(e))
            .cloned()
            .collect();
        assert_eq!(ends.len(), 2, "{name}: {ends:?}");
        let mut outcomes = Vec::new();
        for event in in_order(&ends, &order) {
            outcomes.push(scenario.function.invoke(event).await.response());
        }
        for event in events.iter().filter(|e| !scenario.bus.routes(e)) {
            let ignored = scenario.function.invoke(event).await.response();
            assert_eq!(ignored["outcome"], "ignored", "{name}: {ignored}");
        }
        let told_now: Vec<bool> = outcomes
            .iter()
            .map(|o| {
                o["alreadyDone"]
                    .as_array()
                    .is_some_and(|done| done.is_empty())
            })
            .collect();
        assert_eq!(told_now, [true, true, false, false], "{name}: {outcomes:?}");

        let mut subjects: Vec<String> = scenario
            .inbox()
            .await
            .into_iter()
            .map(|mail| mail.subject)
            .collect();
        subjects.sort();
        assert_eq!(subjects.len(), 2, "{name}: {subjects:?}");
        assert!(subjects[0].starts_with("DEPLOYED:"), "{name}: {subjects:?}");
        assert!(subjects[1].starts_with("REJECTED:"), "{name}: {subjects:?}");
        assert_eq!(
            scenario.comments(&deployed.pull_request_id).await.len(),
            1,
            "{name}"
        );
        assert!(
            scenario
                .comments(&rejected.pull_request_id)
                .await
                .is_empty(),
            "{name}"
        );
        assert_eq!(scenario.metric_documents().len(), 1, "{name}");
    }
}
