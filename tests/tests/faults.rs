//! Faults, with the real function binaries against the emulators: AWS throttling, 5xx and lost
//! answers (injected with `POST /_emulator/aws/faults`), a Kubernetes API that answers 409 / 500
//! or cuts its watch, and an AWS endpoint that goes away in the middle of a call.
//!
//! Each test says what the user sees, and counts the effects: no pipeline start, comment, email
//! or approval lost or doubled. Every fault carries a `match` on this test's unique names, so it
//! never hits another test sharing the emulators, and every test checks its fault was hit (a
//! fault nothing matched proves nothing).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failed test

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use integration_tests::approvals::{APPROVERS, ApprovalScenario, decide_by_link};
use integration_tests::calls::AwsFault;
use integration_tests::runtime_api::InvocationResult;
use integration_tests::scenarios::deliveries::DeliveryScenario;
use integration_tests::scenarios::deployments::{DeploymentScenario, V1, V2, container_images};
use integration_tests::scenarios::pull_requests::PullRequestScenario;
use integration_tests::scenarios::pushes::PushScenario;
use integration_tests::{Function, kubernetes};
use k8s_openapi::api::apps::v1::Deployment;
use serde_json::{Value, json};
use shared::approval_link::fingerprint;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// The longest any one test may take, set-up included.
const TEST_LIMIT: Duration = Duration::from_secs(120);
/// How long one SDK attempt may take before it is abandoned and retried.
const ATTEMPT_TIMEOUT: Duration = Duration::from_millis(2000);
/// How long one SDK call may take over all its attempts.
const OPERATION_TIMEOUT: Duration = Duration::from_millis(10_000);
/// How late a "lost" answer comes: well past the attempt timeout.
const LOST_ANSWER_DELAY_SECONDS: f64 = 5.0;

/// Runs a test body, failing it when it takes longer than [`TEST_LIMIT`].
async fn within<T>(body: impl Future<Output = T>) -> T {
    tokio::time::timeout(TEST_LIMIT, body)
        .await
        .unwrap_or_else(|_| panic!("the test did not finish within {TEST_LIMIT:?}"))
}

/// The function environment for the emulators, with the SDK's retries on (the harness turns
/// them off) and short, explicit back-offs and time limits (`shared::aws::sdk`).
fn with_sdk_retries(mut env: Vec<(String, String)>) -> Vec<(String, String)> {
    let settings = [
        ("AWS_MAX_ATTEMPTS", "3".to_owned()),
        ("SDK_INITIAL_BACKOFF_MS", "50".to_owned()),
        ("SDK_MAX_BACKOFF_MS", "200".to_owned()),
        ("SDK_CONNECT_TIMEOUT_MS", "1000".to_owned()),
        (
            "SDK_ATTEMPT_TIMEOUT_MS",
            ATTEMPT_TIMEOUT.as_millis().to_string(),
        ),
        (
            "SDK_OPERATION_TIMEOUT_MS",
            OPERATION_TIMEOUT.as_millis().to_string(),
        ),
    ];
    env.retain(|(name, _)| !settings.iter().any(|(setting, _)| setting == name));
    env.extend(settings.map(|(name, value)| (name.to_owned(), value)));
    env
}

/// `text` as a regular expression matching exactly it.
fn literal(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let special = ".^$*+?{}[]\\|()".contains(c);
            special.then_some('\\').into_iter().chain([c])
        })
        .collect()
}

/// The error type and message of a failed invocation.
fn failure(result: &InvocationResult) -> (&str, &str) {
    match result {
        InvocationResult::Error {
            error_type,
            error_message,
        } => (error_type, error_message),
        InvocationResult::Response(value) => panic!("expected a failure, got {value}"),
    }
}

// ---------------------------------------------------------------------------------------------
// codecommit-push

/// A repository with a pushed commit on `main`, a pipeline following it, and the push event.
struct Push {
    scenario: PushScenario,
    /// The commit pushed.
    commit: String,
}

impl Push {
    async fn new() -> Self {
        let scenario = PushScenario::new().await;
        let commit = scenario
            .commit(&scenario.first, "feat: one-click checkout")
            .await;
        Self { scenario, commit }
    }

    /// codecommit-push with the SDK's retries, reaching AWS at `endpoint`.
    async fn function(&self, endpoint: Option<&str>) -> Function {
        let mut env = with_sdk_retries(self.scenario.emulators.function_env());
        if let Some(endpoint) = endpoint {
            env.retain(|(name, _)| name != "AWS_ENDPOINT_URL");
            env.push(("AWS_ENDPOINT_URL".into(), endpoint.to_owned()));
        }
        self.scenario
            .function_with_env(env, &self.scenario.routes())
            .await
    }

    /// The push event, with a fresh id.
    fn event(&self) -> Value {
        self.scenario.push_event("push-main.json", &self.commit)
    }

    /// A fault on this pipeline's StartPipelineExecution.
    async fn start_fault(&self, fault: Value) -> AwsFault {
        let mut body = json!({
            "service": "codepipeline",
            "operation": "StartPipelineExecution",
            "match": literal(&format!("\"{}\"", self.scenario.pipeline)),
        });
        body.as_object_mut()
            .unwrap()
            .extend(fault.as_object().unwrap().clone());
        AwsFault::add(&self.scenario.emulators, body).await
    }

    /// The pipeline's executions, as (id, commit built).
    async fn executions(&self) -> Vec<(String, String)> {
        self.scenario
            .executions()
            .await
            .iter()
            .map(|summary| {
                (
                    summary.pipeline_execution_id().unwrap().to_owned(),
                    summary.source_revisions()[0]
                        .revision_id()
                        .unwrap_or_default()
                        .to_owned(),
                )
            })
            .collect()
    }

    /// Asserts the pipeline ran exactly once, on the pushed commit, as `execution_id`.
    async fn assert_one_execution(&self, execution_id: &str) {
        assert_eq!(
            self.executions().await,
            [(execution_id.to_owned(), self.commit.clone())],
            "exactly one execution, on the pushed commit"
        );
    }
}

fn execution_of(response: &Value) -> String {
    assert_eq!(response["outcome"], "started", "{response}");
    response["executions"][0]["executionId"]
        .as_str()
        .unwrap_or_else(|| panic!("no execution in {response}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_throttled_pipeline_start_is_retried_and_the_push_starts_exactly_one_execution() {
    within(async {
        let push = Push::new().await;
        let function = push.function(None).await;
        // Throttled twice; the SDK's third attempt gets through.
        let fault = push.start_fault(json!({"status": 400, "count": 2})).await;

        let response = function.invoke(&push.event()).await.response();

        let execution_id = execution_of(&response);
        assert_eq!(fault.served().await, 2, "both throttled attempts were made");
        push.assert_one_execution(&execution_id).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pipeline_start_whose_answer_is_lost_is_retried_with_its_token_and_starts_one_execution()
{
    within(async {
        let push = Push::new().await;
        let function = push.function(None).await;
        // The first attempt starts the pipeline, but its answer comes after the attempt timeout.
        let fault = push
            .start_fault(json!({"delaySeconds": LOST_ANSWER_DELAY_SECONDS, "count": 1}))
            .await;

        let started = Instant::now();
        let response = function.invoke(&push.event()).await.response();
        let took = started.elapsed();

        let execution_id = execution_of(&response);
        assert_eq!(fault.served().await, 1);
        assert!(
            took >= ATTEMPT_TIMEOUT && took < OPERATION_TIMEOUT,
            "the lost answer was waited for one attempt timeout, then retried: {took:?}"
        );
        // The retry carried the same clientRequestToken: CodePipeline answered the execution
        // the first attempt started.
        push.assert_one_execution(&execution_id).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pipeline_start_failing_on_every_attempt_fails_the_invocation_and_its_redelivery_starts_one()
 {
    within(async {
        let push = Push::new().await;
        let mut function = push.function(None).await;
        let fault = push
            .start_fault(json!({"status": 500, "code": "InternalFailure", "count": 3}))
            .await;
        let event = push.event();

        let started = Instant::now();
        let result = function.invoke(&event).await;
        let took = started.elapsed();

        // Lambda sees an Upstream error, so it retries the event (then its dead-letter queue).
        let (error_type, message) = failure(&result);
        assert_eq!(error_type, "Upstream");
        assert!(message.contains("StartPipelineExecution"), "{message}");
        assert!(message.contains("InternalFailure"), "{message}");
        assert_eq!(
            fault.served().await,
            3,
            "every one of the 3 attempts was made"
        );
        assert!(took < OPERATION_TIMEOUT, "{took:?}");
        assert!(push.executions().await.is_empty(), "nothing started");
        let logs = function.log_records();
        assert!(
            logs.iter()
                .any(|r| r["level"] == "ERROR" && r["fields"]["error_type"] == "Upstream"),
            "{logs:?}"
        );
        assert!(function.is_running());

        // The redelivery, once CodePipeline is back, starts it exactly once.
        let response = function.invoke(&event).await.response();
        let execution_id = execution_of(&response);
        assert_eq!(fault.served().await, 3);
        push.assert_one_execution(&execution_id).await;
        // And a second redelivery answers the same execution.
        let again = function.invoke(&event).await.response();
        assert_eq!(execution_of(&again), execution_id);
        push.assert_one_execution(&execution_id).await;
    })
    .await;
}

/// A TCP proxy on 127.0.0.1 in front of the AWS emulator, which can be stopped (its listener
/// closed and every open connection dropped, as when the server dies) and started again on
/// the same port.
struct Proxy {
    port: u16,
    upstream: SocketAddr,
    serving: Option<tokio::task::JoinHandle<()>>,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut proxy = Self {
            port,
            upstream,
            serving: None,
        };
        proxy.serve(listener);
        proxy
    }

    fn serve(&mut self, listener: TcpListener) {
        let upstream = self.upstream;
        self.serving = Some(tokio::spawn(async move {
            // Dropped (aborted) with the accept loop, so stopping cuts every connection.
            let mut connections = JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                connections.spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        }));
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Closes the port and every connection through it.
    async fn stop(&mut self) {
        if let Some(serving) = self.serving.take() {
            serving.abort();
            let _ = serving.await;
        }
    }

    /// Listens on the same port again.
    async fn restart(&mut self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).await.unwrap();
        self.serve(listener);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn aws_going_away_mid_start_fails_the_invocation_quickly_and_the_redelivery_starts_the_same_execution()
 {
    within(async {
        let push = Push::new().await;
        let upstream: SocketAddr = push
            .scenario
            .emulators
            .aws
            .endpoint
            .trim_start_matches("http://")
            .parse()
            .unwrap();
        let mut proxy = Proxy::start(upstream).await;
        let mut function = push.function(Some(&proxy.url())).await;
        // The start reaches AWS and takes effect; AWS goes away before it answers.
        let fault = push
            .start_fault(json!({"delaySeconds": LOST_ANSWER_DELAY_SECONDS, "count": 1}))
            .await;
        let event = push.event();

        let started = Instant::now();
        let (result, ()) = tokio::join!(function.invoke(&event), async {
            for _ in 0..200 {
                if fault.served().await == 1 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            proxy.stop().await;
        });
        let took = started.elapsed();

        assert_eq!(fault.served().await, 1, "the start reached AWS");
        let (error_type, message) = failure(&result);
        assert_eq!(error_type, "Upstream", "{message}");
        assert!(message.contains("StartPipelineExecution"), "{message}");
        assert!(
            took < OPERATION_TIMEOUT,
            "the retries against a closed port end well within the time limits: {took:?}"
        );
        let logs = function.log_records();
        assert!(
            logs.iter().any(|r| r["level"] == "ERROR"
                && r["fields"]["error_type"] == "Upstream"
                && r["fields"]["error"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("StartPipelineExecution")),
            "{logs:?}"
        );
        assert!(function.is_running(), "no panic, no exit");
        // What the user sees in CodePipeline: the one execution the lost call started.
        let executions = push.executions().await;
        assert_eq!(executions.len(), 1, "{executions:?}");

        // AWS is back; Lambda redelivers the event to the same process.
        proxy.restart().await;
        let response = function.invoke(&event).await.response();
        assert_eq!(execution_of(&response), executions[0].0);
        push.assert_one_execution(&executions[0].0).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_aws_endpoint_that_refuses_connections_fails_the_invocation_within_the_connect_limits() {
    within(async {
        let push = Push::new().await;
        let closed = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let mut function = push
            .function(Some(&format!("http://127.0.0.1:{closed}")))
            .await;
        let event = push.event();

        let started = Instant::now();
        let result = function.invoke(&event).await;
        let took = started.elapsed();

        let (error_type, message) = failure(&result);
        assert_eq!(error_type, "Upstream", "{message}");
        assert!(took < OPERATION_TIMEOUT, "{took:?}");
        assert!(function.is_running(), "no panic, no exit");
        // The next event is taken, and fails the same way, no slower.
        let result = function.invoke(&event).await;
        assert_eq!(failure(&result).0, "Upstream");
        assert!(push.executions().await.is_empty());

        // Restarted against a working endpoint, the redelivery starts the pipeline once.
        let working = push.function(None).await;
        let response = working.invoke(&event).await.response();
        push.assert_one_execution(&execution_of(&response)).await;
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// pr-validator

#[tokio::test(flavor = "multi_thread")]
async fn the_author_sees_one_build_and_one_comment_when_start_build_is_throttled_and_the_comment_answer_is_lost()
 {
    within(async {
        let scenario = PullRequestScenario::with(&[], "main", &with_sdk_retries(Vec::new())).await;
        let id = scenario.open("main").await;
        let event = scenario.pull_request_event(&id, "pullRequestCreated").await;

        let throttled = AwsFault::add(
            &scenario.emulators,
            json!({"service": "codebuild", "operation": "StartBuild", "match": literal(&scenario.project), "status": 400, "count": 1}),
        )
        .await;
        let lost = AwsFault::add(
            &scenario.emulators,
            json!({"service": "codecommit", "operation": "PostCommentForPullRequest", "match": literal(&scenario.repository), "delaySeconds": LOST_ANSWER_DELAY_SECONDS, "count": 1}),
        )
        .await;

        let response = scenario.invoke(&event).await;

        assert_eq!(response["outcome"], "buildStarted", "{response}");
        assert_eq!(throttled.served().await, 1);
        assert_eq!(lost.served().await, 1);
        assert_eq!(
            scenario.builds().await,
            [response["buildId"].as_str().unwrap()]
        );
        let posted = scenario.comments(&id).await;
        assert_eq!(posted.len(), 1, "one comment: {posted:?}");
        assert!(posted[0].starts_with("Build started for "), "{}", posted[0]);

        // EventBridge delivers the event again: the same build, still one comment.
        let again = scenario.invoke(&event).await;
        assert_eq!(again["buildId"], response["buildId"], "{again}");
        assert_eq!(scenario.builds().await.len(), 1);
        assert_eq!(scenario.comments(&id).await.len(), 1);
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// delivery-events

/// A merged pull request deployed: the end's event, not delivered yet.
async fn deployed(scenario: &DeliveryScenario) -> (String, Value) {
    let merged = scenario
        .merge_pull_request("feat: one-click checkout")
        .await;
    let execution = scenario.run_to_approval(&merged.commit).await;
    scenario.decide(true, "alice@example.com", "go").await;
    scenario
        .deploy_succeeds(
            &execution,
            &[(
                "IMAGE_DIGEST",
                "sha256:5b0bcabd1ed22e9fb1310cf6c2dec7cdef19f0ad69efa1f392e94a4333501270",
            )],
        )
        .await;
    let end = scenario
        .bus
        .new_events()
        .await
        .into_iter()
        .filter(|e| scenario.bus.routes(e))
        .last()
        .unwrap();
    (merged.pull_request_id, end)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deploy_is_told_once_when_sns_fails_every_attempt_and_the_redelivery_mails_and_comments_once()
 {
    within(async {
        let scenario = DeliveryScenario::new(&with_sdk_retries(Vec::new())).await;
        let (pull_request, end) = deployed(&scenario).await;
        let topic = scenario.topic.rsplit(':').next().unwrap().to_owned();
        // SNS answers 500 on every attempt of this invocation (the SDK tries 3 times).
        let fault = AwsFault::add(
            &scenario.emulators,
            json!({"service": "sns", "operation": "Publish", "match": literal(&topic), "status": 500, "count": 3}),
        )
        .await;

        let first = scenario.function.invoke(&end).await;
        let (error_type, _) = failure(&first);
        assert_eq!(error_type, "Upstream");
        assert_eq!(fault.served().await, 3);
        assert!(scenario.inbox().await.is_empty(), "nothing was mailed");
        // The other effects went ahead: the comment and the metric line, once.
        assert_eq!(scenario.comments(&pull_request).await.len(), 1);
        assert_eq!(scenario.metric_documents().len(), 1);

        // Lambda retries the event: the email goes out, nothing else is repeated.
        let again = scenario.function.invoke(&end).await.response();
        assert_eq!(again["alreadyDone"], json!(["comment", "metrics"]), "{again}");
        assert!(again["messageId"].is_string(), "{again}");
        assert_eq!(scenario.inbox().await.len(), 1);
        assert_eq!(scenario.comments(&pull_request).await.len(), 1);
        assert_eq!(scenario.metric_documents().len(), 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pull_request_comment_whose_answer_is_lost_is_posted_once_and_the_email_is_not_repeated()
{
    within(async {
        let scenario = DeliveryScenario::new(&with_sdk_retries(Vec::new())).await;
        let (pull_request, end) = deployed(&scenario).await;
        // The comment is posted, but its answer comes after the attempt timeout: the SDK's
        // retry carries the same clientRequestToken and CodeCommit answers the same comment.
        let lost = AwsFault::add(
            &scenario.emulators,
            json!({"service": "codecommit", "operation": "PostCommentForPullRequest", "match": literal(&scenario.repository), "delaySeconds": LOST_ANSWER_DELAY_SECONDS, "count": 1}),
        )
        .await;

        let response = scenario.function.invoke(&end).await.response();

        assert_eq!(lost.served().await, 1);
        assert_eq!(response["status"], "DEPLOYED", "{response}");
        assert_eq!(scenario.inbox().await.len(), 1);
        assert_eq!(scenario.comments(&pull_request).await.len(), 1);
        let again = scenario.function.invoke(&end).await.response();
        assert_eq!(
            again["alreadyDone"],
            json!(["notification", "comment", "metrics"]),
            "{again}"
        );
        assert!(scenario.inbox().await.is_empty());
        assert_eq!(scenario.comments(&pull_request).await.len(), 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn action_runs_unreadable_fail_the_invocation_before_anything_is_told() {
    within(async {
        let scenario = DeliveryScenario::new(&with_sdk_retries(Vec::new())).await;
        let (pull_request, end) = deployed(&scenario).await;
        let fault = AwsFault::add(
            &scenario.emulators,
            json!({"service": "codepipeline", "operation": "ListActionExecutions", "match": literal(&scenario.pipeline), "status": 400, "code": "ThrottlingException", "count": 3}),
        )
        .await;

        let result = scenario.function.invoke(&end).await;
        let (error_type, message) = failure(&result);
        assert_eq!(error_type, "Upstream", "{message}");
        assert_eq!(fault.served().await, 3);
        assert!(scenario.inbox().await.is_empty());
        assert!(scenario.comments(&pull_request).await.is_empty());
        assert!(scenario.metric_documents().is_empty());

        let told = scenario.function.invoke(&end).await.response();
        assert_eq!(told["alreadyDone"], json!([]), "{told}");
        assert_eq!(scenario.inbox().await.len(), 1);
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// approval-notify and approval-callback

#[tokio::test(flavor = "multi_thread")]
async fn each_approver_gets_exactly_one_email_when_sns_throttles_and_a_redelivery_mails_nobody_again()
 {
    within(async {
        let scenario =
            ApprovalScenario::with_function_env(&with_sdk_retries(Vec::new())[..]).await;
        let topic = scenario.approvers_topic.rsplit(':').next().unwrap();
        // The approvers' emails (one batch) are throttled twice, then sent on the SDK's third
        // attempt.
        let fault = AwsFault::add(
            &scenario.emulators,
            json!({"service": "sns", "operation": "PublishBatch", "match": literal(topic), "status": 400, "count": 2}),
        )
        .await;

        let response = scenario.deliver().await;

        assert_eq!(response["outcome"], "notified", "{response}");
        assert_eq!(response["sent"], json!(APPROVERS), "{response}");
        assert_eq!(fault.served().await, 2);
        for approver in APPROVERS {
            assert_eq!(scenario.inbox(approver).await.len(), 1, "{approver}");
        }

        // SNS delivers the notification again: the ledger knows both emails went out.
        let again = scenario.deliver().await;
        assert_eq!(again["sent"], json!([]), "{again}");
        assert_eq!(again["alreadySent"], json!(APPROVERS), "{again}");
        for approver in APPROVERS {
            assert_eq!(scenario.inbox(approver).await.len(), 1, "{approver}");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn each_approver_gets_exactly_one_email_when_the_ledger_claims_answer_is_lost() {
    within(async {
        let scenario =
            ApprovalScenario::with_function_env(&with_sdk_retries(Vec::new())[..]).await;
        let event = scenario.approval_event().await;
        let message: Value =
            serde_json::from_str(event["Records"][0]["Sns"]["Message"].as_str().unwrap()).unwrap();
        let token = message["approval"]["token"].as_str().unwrap();
        let key = format!("approval-email/{}/{}", fingerprint(token), APPROVERS[0]);
        // The claims on the approvers' emails (one transaction) are written, but the answer
        // comes after the attempt timeout: the SDK's retry finds the claims this same request
        // wrote.
        let fault = AwsFault::add(
            &scenario.emulators,
            json!({"service": "dynamodb", "operation": "TransactWriteItems", "match": literal(&key), "delaySeconds": LOST_ANSWER_DELAY_SECONDS, "count": 1}),
        )
        .await;

        let response = scenario.notify.invoke(&event).await.response();

        assert_eq!(fault.served().await, 1);
        assert_eq!(response["outcome"], "notified", "{response}");
        assert_eq!(response["sent"], json!(APPROVERS), "{response}");
        for approver in APPROVERS {
            assert_eq!(scenario.inbox(approver).await.len(), 1, "{approver}");
        }
        // And a redelivery mails nobody again.
        let again = scenario.notify.invoke(&event).await.response();
        assert_eq!(again["alreadySent"], json!(APPROVERS), "{again}");
        for approver in APPROVERS {
            assert_eq!(scenario.inbox(approver).await.len(), 1, "{approver}");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_approver_whose_decision_answer_was_lost_sees_it_approved_and_it_is_recorded_once() {
    within(async {
        let scenario =
            ApprovalScenario::with_function_env(&with_sdk_retries(Vec::new())[..]).await;
        scenario.deliver().await;
        let (approve, _) = scenario.links_of("alice@example.com").await;
        // PutApprovalResult records the decision, but its answer comes after the attempt
        // timeout: the SDK's retry is told the approval is already completed.
        let fault = AwsFault::add(
            &scenario.emulators,
            json!({"service": "codepipeline", "operation": "PutApprovalResult", "match": literal(&scenario.pipeline), "delaySeconds": LOST_ANSWER_DELAY_SECONDS, "count": 1}),
        )
        .await;

        let decided = decide_by_link(&approve, &scenario.callback.origin(), "Ship it").await;

        assert_eq!(fault.served().await, 1);
        assert_eq!(decided.result.status, 200, "{}", decided.result.body);
        assert_eq!(decided.result_heading, "Approved: thank you");
        let state = scenario.approval_state().await;
        assert_eq!(state.status().unwrap().as_str(), "Succeeded");
        assert_eq!(
            state.summary(),
            Some("Approved by alice@example.com via the email link: Ship it")
        );
        assert_eq!(scenario.execution_status().await, "Succeeded");
        let ours = scenario.recorded_approvals().await;
        assert_eq!(ours.len(), 1, "one approval: {ours:?}");
        assert_eq!(ours[0]["status"], "Approved", "{ours:?}");
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// eks-deploy

/// A Deployment `web` (3 replicas, rolled out on V1, a progress deadline of 30 s) in a namespace
/// of its own, and eks-deploy with the SDK's retries.
async fn rollout() -> DeploymentScenario {
    DeploymentScenario::with(&[("web", V1)], 30, &with_sdk_retries(Vec::new())).await
}

/// The requests eks-deploy made to the rollout's namespace so far: (method, watch, status, query).
async fn requests(rollout: &DeploymentScenario) -> Vec<(String, bool, u64, Value)> {
    rollout
        .requests()
        .await
        .into_iter()
        .map(|r| {
            (
                r["method"].as_str().unwrap_or_default().to_owned(),
                r["watch"].as_bool().unwrap_or(false),
                r["status"].as_u64().unwrap_or_default(),
                r["query"].clone(),
            )
        })
        .collect()
}

fn images(deployment: &Deployment) -> Vec<String> {
    container_images(deployment)
        .into_iter()
        .map(|(_, image)| image)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_patch_refused_with_409_then_500_is_read_again_and_retried_and_the_image_is_set_once() {
    within(async {
        let rollout = rollout().await;
        let before = rollout.deployment().await;
        let patch_path = format!("/namespaces/{}/deployments/web$", rollout.namespace);
        // A real conflict: someone changes the Deployment just before the patch arrives, and
        // the API server refuses the patch's stale resourceVersion; then a server error.
        for fault in [json!({"race": true}), json!({"status": 500})] {
            let mut body = json!({"method": "PATCH", "pathRegex": patch_path, "count": 1});
            body.as_object_mut()
                .unwrap()
                .extend(fault.as_object().unwrap().clone());
            kubernetes::control(&rollout.emulators, "faults", body).await;
        }

        let response = rollout
            .function
            .invoke(&rollout.params(V2))
            .await
            .response();

        assert_eq!(response["outcome"], "succeeded", "{response}");
        let made: Vec<(String, bool, u64)> = requests(&rollout)
            .await
            .into_iter()
            .filter(|(method, watch, _, _)| method == "PATCH" || (method == "GET" && !watch))
            .map(|(method, watch, status, _)| (method, watch, status))
            .collect();
        assert_eq!(
            made,
            [
                // No canary left behind by an earlier release, then the Deployment.
                ("GET".to_owned(), false, 404),
                ("GET".to_owned(), false, 200),
                ("PATCH".to_owned(), false, 409),
                // The conflict: read again, recompute the patch.
                ("GET".to_owned(), false, 200),
                ("PATCH".to_owned(), false, 500),
                // The server error: the same patch again after a back-off.
                ("PATCH".to_owned(), false, 200),
            ]
        );
        let after = rollout.deployment().await;
        assert_eq!(images(&after), [rollout.v2_pinned()]);
        assert_eq!(
            after.metadata.generation,
            before.metadata.generation.map(|g| g + 1),
            "the spec changed once"
        );
        let annotations = after.metadata.annotations.unwrap_or_default();
        assert_eq!(
            annotations
                .get("eks-deploy.cicd/previous-image")
                .map(String::as_str),
            Some(format!("web={V1}").as_str())
        );
        let logs = rollout.function.log_records();
        assert!(
            logs.iter().any(|r| r["level"] == "WARN"
                && r["fields"]["message"] == "transient Kubernetes API failure, retrying"),
            "{logs:?}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_patch_failing_with_500_on_every_attempt_fails_the_deploy_with_the_reason_and_changes_nothing()
 {
    within(async {
        let rollout = rollout().await;
        let before = rollout.deployment().await;
        kubernetes::control(
                &rollout.emulators,
                "faults",
                json!({"method": "PATCH", "pathRegex": format!("/namespaces/{}/deployments/web$", rollout.namespace), "status": 500, "count": 5}),
            )
            .await;

        let response = rollout
            .function
            .invoke(&rollout.params(V2))
            .await
            .response();

        // A direct invocation answers the failure; the deploy is not left half done.
        assert_eq!(response["outcome"], "failed", "{response}");
        let message = response["message"].as_str().unwrap();
        assert!(
            message.starts_with(&format!(
                "{}/web: PATCH deployment failed after 5 attempts: 500 ",
                rollout.namespace
            )),
            "{message}"
        );
        let patches = requests(&rollout)
            .await
            .into_iter()
            .filter(|(method, ..)| method == "PATCH")
            .count();
        assert_eq!(patches, 5);
        let after = rollout.deployment().await;
        assert_eq!(images(&after), [V1]);
        assert_eq!(after.metadata.generation, before.metadata.generation);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_unavailable_on_every_attempt_is_retried_only_as_often_as_eks_deploy_says() {
    within(async {
        let rollout = rollout().await;
        // More 503s than any retry policy would take: only eks-deploy's own (5 attempts,
        // bounded by its deadline, logged) may decide, not one hidden below it.
        kubernetes::control(
            &rollout.emulators,
            "faults",
            json!({"method": "PATCH", "pathRegex": format!("/namespaces/{}/deployments/web$", rollout.namespace),
                   "status": 503, "count": 100}),
        )
        .await;

        let response = rollout.function.invoke(&rollout.params(V2)).await.response();

        assert_eq!(response["outcome"], "failed", "{response}");
        let message = response["message"].as_str().unwrap();
        assert!(
            message.contains("PATCH deployment failed after 5 attempts: 503"),
            "{message}"
        );
        let patches = requests(&rollout)
            .await
            .into_iter()
            .filter(|(method, ..)| method == "PATCH")
            .count();
        assert_eq!(patches, 5);
        assert_eq!(images(&rollout.deployment().await), [V1]);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_patch_whose_answer_is_lost_to_a_reset_connection_is_not_applied_twice() {
    within(async {
        let rollout = rollout().await;
        let before = rollout.deployment().await;
        // The API server applies the patch; the connection is reset before its answer.
        kubernetes::control(
            &rollout.emulators,
            "faults",
            json!({"method": "PATCH", "pathRegex": format!("/namespaces/{}/deployments/web$", rollout.namespace),
                   "reset": "after", "count": 1}),
        )
        .await;

        let response = rollout.function.invoke(&rollout.params(V2)).await.response();

        assert_eq!(response["outcome"], "succeeded", "{response}");
        let made: Vec<(String, u64)> = requests(&rollout)
            .await
            .into_iter()
            .filter(|(method, watch, ..)| method == "PATCH" || (method == "GET" && !watch))
            .map(|(method, _, status, _)| (method, status))
            .collect();
        assert_eq!(
            made,
            [
                // No canary left behind by an earlier release, then the Deployment.
                ("GET".to_owned(), 404),
                ("GET".to_owned(), 200),
                // Applied, answer lost: the same patch again carries a resourceVersion that is
                // no longer current, so the API server refuses it...
                ("PATCH".to_owned(), 200),
                ("PATCH".to_owned(), 409),
                // ...and the fresh read shows the image already set: nothing more to patch.
                ("GET".to_owned(), 200),
            ]
        );
        let after = rollout.deployment().await;
        assert_eq!(images(&after), [rollout.v2_pinned()]);
        assert_eq!(
            after.metadata.generation,
            before.metadata.generation.map(|g| g + 1),
            "the spec changed once"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_watch_cut_mid_rollout_resumes_from_the_last_resource_version_and_the_rollout_completes()
{
    within(async {
        let rollout = rollout().await;
        // The next two watches of this namespace's deployments are cut after one event each.
        kubernetes::control(
                &rollout.emulators,
                "drop-watches",
                json!({"events": 1, "count": 2, "pathRegex": format!("/namespaces/{}/deployments$", rollout.namespace)}),
            )
            .await;
        let before = requests(&rollout).await.len();

        let response = rollout.function.invoke(&rollout.params(V2)).await.response();

        assert_eq!(response["outcome"], "succeeded", "{response}");
        let after = rollout.deployment().await;
        let status = after.status.unwrap();
        assert_eq!(
            (status.updated_replicas, status.available_replicas),
            (Some(3), Some(3))
        );
        let made = requests(&rollout).await.split_off(before);
        let kinds: Vec<(&str, bool)> = made
            .iter()
            .map(|(method, watch, ..)| (method.as_str(), *watch))
            .collect();
        assert_eq!(
            kinds[..3],
            [("GET", false), ("GET", false), ("PATCH", false)],
            "{made:?}"
        );
        // Only watches after the patch: no fresh read (that is for 410 Gone only).
        assert!(kinds[3..].iter().all(|kind| *kind == ("GET", true)), "{made:?}");
        let versions: Vec<u64> = made[3..]
            .iter()
            .map(|(.., query)| {
                query["resourceVersion"]
                    .as_str()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| panic!("a watch without a resourceVersion: {made:?}"))
            })
            .collect();
        assert!(
            versions.len() >= 3,
            "two cut watches, then one to the end: {made:?}"
        );
        assert!(
            versions.windows(2).all(|pair| pair[0] < pair[1]),
            "each watch resumes after the last event seen: {versions:?}"
        );
        assert!(versions[0] > 0);
    })
    .await;
}
