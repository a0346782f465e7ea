//! A pipeline waiting for a manual approval, with approval-notify and approval-callback running
//! against the emulators: the set-up the approval tests, the browser test and the local flow share.

use aws_config::SdkConfig;
use serde_json::{Value, json};

use crate::aws::sdk_config;
use crate::runtime_api::InvocationResult;
use crate::{Emulators, Function, FunctionUrl, fixtures, http, sample_event, unique};

/// The approvers every scenario mails.
pub const APPROVERS: [&str; 2] = ["alice@example.com", "bob@example.com"];

/// One pipeline execution waiting at its approval, and both functions.
pub struct ApprovalScenario {
    /// Where the emulators are.
    pub emulators: Emulators,
    /// SDK configuration for the emulators.
    pub sdk: SdkConfig,
    /// The pipeline.
    pub pipeline: String,
    /// The execution waiting for approval.
    pub execution_id: String,
    /// The commit it builds.
    pub commit_id: String,
    /// The topic CodePipeline notifies.
    pub requests_topic: String,
    /// The approvers' topic.
    pub approvers_topic: String,
    /// The signing key (the secret's value), so tests can forge and sign links.
    pub signing_key: String,
    /// approval-notify under the Runtime API emulator.
    pub notify: Function,
    /// approval-callback behind its Function URL.
    pub callback: FunctionUrl,
}

impl std::fmt::Debug for ApprovalScenario {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApprovalScenario")
            .field("pipeline", &self.pipeline)
            .finish()
    }
}

impl ApprovalScenario {
    /// Sets everything up and runs a pipeline execution up to its approval.
    pub async fn new() -> Self {
        let emulators = Emulators::load();
        let sdk = sdk_config(&emulators).await;
        let repository = unique("shop");
        let pipeline = unique("shop-main");
        let requests_topic = fixtures::topic(&sdk, &unique("approval-requests")).await;
        let approvers_topic = fixtures::topic(&sdk, &unique("approvers")).await;
        for approver in APPROVERS {
            fixtures::approver_subscription(&sdk, &approvers_topic, approver).await;
        }
        let secret = unique("approval-signing-key");
        let signing_key = format!(
            "{}{}",
            unique("key"),
            "-0123456789abcdefghijklmnopqrstuvwxyz"
        );
        fixtures::secret(&sdk, &secret, &signing_key).await;
        let ledger = unique("ledger");
        fixtures::ledger_table(&sdk, &ledger).await;
        fixtures::repository(&sdk, &repository).await;
        let first =
            fixtures::commit(&sdk, &repository, "main", None, "chore: initial import").await;
        let commit_id = fixtures::commit(
            &sdk,
            &repository,
            "main",
            Some(&first),
            "feat: one-click checkout",
        )
        .await;
        fixtures::approval_pipeline(&sdk, &pipeline, &repository, "main", &requests_topic).await;

        let key_setting = format!("secretsmanager:{secret}");
        let mut callback_env = emulators.function_env();
        callback_env.push(("SIGNING_KEY".into(), key_setting.clone()));
        let callback = FunctionUrl::start("approval-callback", &callback_env).await;
        let mut notify_env = emulators.function_env();
        notify_env.extend([
            ("APPROVERS_TOPIC_ARN".into(), approvers_topic.clone()),
            ("APPROVERS".into(), APPROVERS.join(",")),
            ("CALLBACK_URL".into(), callback.url()),
            ("SIGNING_KEY".into(), key_setting),
            ("LEDGER_TABLE".into(), ledger),
        ]);
        let notify = Function::start("approval-notify", &notify_env).await;

        let execution_id = aws_sdk_codepipeline::Client::new(&sdk)
            .start_pipeline_execution()
            .name(&pipeline)
            .source_revisions(
                aws_sdk_codepipeline::types::SourceRevisionOverride::builder()
                    .action_name("Source")
                    .revision_type(aws_sdk_codepipeline::types::SourceRevisionType::CommitId)
                    .revision_value(&commit_id)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap()
            .pipeline_execution_id()
            .unwrap()
            .to_owned();
        Self {
            emulators,
            sdk,
            pipeline,
            execution_id,
            commit_id,
            requests_topic,
            approvers_topic,
            signing_key,
            notify,
            callback,
        }
    }

    /// The SNS event Lambda would get for the notification CodePipeline published.
    pub async fn approval_event(&self) -> Value {
        let url = format!(
            "{}/sns/published?topicArn={}",
            self.emulators.admin, self.requests_topic
        );
        let (status, body) = http::json("GET", &url, None).await;
        assert_eq!(status, 200, "{body}");
        let messages = body["messages"].as_array().unwrap();
        assert_eq!(messages.len(), 1, "one notification per approval: {body}");
        let mut event = sample_event("approval-notify", "approval-needed.json");
        let record = &mut event["Records"][0];
        record["Sns"]["TopicArn"] = json!(self.requests_topic);
        record["Sns"]["MessageId"] = messages[0]["messageId"].clone();
        record["Sns"]["Subject"] = messages[0]["subject"].clone();
        record["Sns"]["Message"] = messages[0]["message"].clone();
        event
    }

    /// Delivers the approval notification to approval-notify; returns its response.
    pub async fn deliver(&self) -> Value {
        match self.notify.invoke(&self.approval_event().await).await {
            InvocationResult::Response(value) => value,
            other => panic!("approval-notify failed: {other:?}"),
        }
    }

    /// The emails `address` received (after the subscriptions' filter policies).
    pub async fn inbox(&self, address: &str) -> Vec<Value> {
        let url = format!("{}/sns/inbox?endpoint={address}", self.emulators.admin);
        let (status, body) = http::json("GET", &url, None).await;
        assert_eq!(status, 200, "{body}");
        body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["topicArn"] == self.approvers_topic.as_str())
            .cloned()
            .collect()
    }

    /// The Approve and Reject URLs in the one email `address` received.
    pub async fn links_of(&self, address: &str) -> (String, String) {
        let inbox = self.inbox(address).await;
        assert_eq!(inbox.len(), 1, "{address} should have one email: {inbox:?}");
        let body = inbox[0]["message"].as_str().unwrap();
        let url_after = |label: &str| {
            let mut lines = body.lines();
            lines.find(|line| *line == label).unwrap();
            lines.next().unwrap().to_owned()
        };
        (url_after("Approve:"), url_after("Reject:"))
    }

    /// The approval action's latest run, as GetPipelineState shows it.
    pub async fn approval_state(&self) -> aws_sdk_codepipeline::types::ActionExecution {
        let state = aws_sdk_codepipeline::Client::new(&self.sdk)
            .get_pipeline_state()
            .name(&self.pipeline)
            .send()
            .await
            .unwrap();
        state
            .stage_states()
            .iter()
            .find(|s| s.stage_name() == Some("Approval"))
            .and_then(|s| s.action_states().first())
            .and_then(|a| a.latest_execution())
            .cloned()
            .expect("the approval action has run")
    }

    /// The execution's status.
    pub async fn execution_status(&self) -> String {
        aws_sdk_codepipeline::Client::new(&self.sdk)
            .get_pipeline_execution()
            .pipeline_name(&self.pipeline)
            .pipeline_execution_id(&self.execution_id)
            .send()
            .await
            .unwrap()
            .pipeline_execution()
            .and_then(|e| e.status())
            .map(|s| s.as_str().to_owned())
            .unwrap_or_default()
    }
}

/// The approval chapter of the local flow: the pipeline waits, approvers are mailed, one opens
/// the link, sees the page, presses Approve, and the pipeline goes on.
pub async fn tell(timeline: &mut crate::timeline::Timeline) {
    timeline.chapter("The pipeline waits for a manual approval");
    let scenario = ApprovalScenario::new().await;
    timeline.step(
        "CodePipeline",
        &format!(
            "{}: stage Approval waits (commit {}); notification published to SNS",
            scenario.pipeline,
            &scenario.commit_id[..7]
        ),
    );
    let outcome = scenario.deliver().await;
    timeline.step("approval-notify", &format!("mailed {}", outcome["sent"]));
    timeline.expect(
        outcome["sent"] == json!(APPROVERS),
        "each approver got their own email",
    );
    let again = scenario.deliver().await;
    timeline.expect(
        again["sent"] == json!([]),
        "a redelivered notification mails nobody twice",
    );
    let inbox = scenario.inbox("alice@example.com").await;
    if let Some(email) = inbox.first() {
        let text = email["message"].as_str().unwrap_or_default();
        // The links carry the approval token: the story shows the email without them.
        let shown: Vec<&str> = text
            .lines()
            .filter(|line| !line.contains("?link=") && !line.contains("/approve/"))
            .take(12)
            .collect();
        timeline.step(
            "alice (email)",
            &format!(
                "{}\n{}",
                email["subject"].as_str().unwrap_or_default(),
                shown.join("\n")
            ),
        );
    }
    timeline.expect(inbox.len() == 1, "alice received exactly one email");

    let (approve, _) = scenario.links_of("alice@example.com").await;
    let page = http::send("GET", &approve, &[("accept", "text/html")], "").await;
    timeline.step(
        "alice (browser)",
        &format!(
            "opens the Approve link: HTTP {}, \"{}\"",
            page.status,
            heading(&page.body)
        ),
    );
    let still_waiting = scenario
        .approval_state()
        .await
        .status()
        .map(|s| s.as_str().to_owned());
    timeline.expect(
        page.status == 200 && still_waiting.as_deref() == Some("InProgress"),
        "opening the link shows the page and decides nothing",
    );
    let field = |name: &str| {
        let marker = format!("name=\"{name}\" value=\"");
        page.body
            .split_once(&marker)
            .and_then(|(_, rest)| rest.split('"').next())
            .unwrap_or_default()
            .to_owned()
    };
    let form = form_urlencoded::Serializer::new(String::new())
        .append_pair("link", &field("link"))
        .append_pair("form", &field("form"))
        .append_pair("comment", "Looks good on staging")
        .finish();
    let cookie = page
        .header("set-cookie")
        .split(';')
        .next()
        .unwrap_or_default()
        .to_owned();
    let origin = scenario.callback.origin();
    let done = http::send(
        "POST",
        &approve,
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            ("origin", &origin),
            ("sec-fetch-site", "same-origin"),
            ("cookie", &cookie),
        ],
        &form,
    )
    .await;
    timeline.step(
        "alice (browser)",
        &format!(
            "presses Approve: HTTP {}, \"{}\"",
            done.status,
            heading(&done.body)
        ),
    );
    let decided = scenario.approval_state().await;
    timeline.step(
        "CodePipeline",
        &format!(
            "approval {}: \"{}\"; execution {}",
            decided.status().map(|s| s.as_str()).unwrap_or("-"),
            decided.summary().unwrap_or_default(),
            scenario.execution_status().await
        ),
    );
    timeline.expect(
        decided.status().map(|s| s.as_str()) == Some("Succeeded"),
        "the approval is recorded with alice's name and comment",
    );
    let replay = http::send("GET", &approve, &[], "").await;
    timeline.expect(
        replay.status == 409,
        "the link is useless once the approval is decided",
    );
}

fn heading(html: &str) -> String {
    html.split_once("<h1>")
        .and_then(|(_, rest)| rest.split_once("</h1>"))
        .map(|(text, _)| text.to_owned())
        .unwrap_or_default()
}
