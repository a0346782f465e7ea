//! A pipeline waiting for a manual approval, with approval-notify and approval-callback running
//! against the emulators: the set-up the approval tests, the browser test and the local flow share.

use aws_config::SdkConfig;
use aws_sdk_codepipeline::types::ExecutionMode;
use serde_json::{Value, json};

use crate::aws::sdk_config;
use crate::fixtures::PipelineSpec;
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
        Self::with_function_env(&[]).await
    }

    /// Like [`Self::new`], with `extra` added to both functions' environment (SDK retry and
    /// timeout settings, say).
    pub async fn with_function_env(extra: &[(String, String)]) -> Self {
        Self::with(None, extra).await
    }

    /// Like [`Self::new`], with a pipeline in execution mode `mode`.
    pub async fn in_mode(mode: ExecutionMode) -> Self {
        Self::with(Some(mode), &[]).await
    }

    async fn with(mode: Option<ExecutionMode>, extra: &[(String, String)]) -> Self {
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
        let mut spec = PipelineSpec::new(&pipeline, &repository, "main").approval(&requests_topic);
        if let Some(mode) = mode {
            spec = spec.execution_mode(mode);
        }
        spec.create(&sdk).await;

        let key_setting = format!("secretsmanager:{secret}");
        let mut callback_env = emulators.function_env();
        callback_env.push(("SIGNING_KEY".into(), key_setting.clone()));
        callback_env.extend(extra.iter().cloned());
        let callback = FunctionUrl::start("approval-callback", &callback_env).await;
        let mut notify_env = emulators.function_env();
        notify_env.extend([
            ("APPROVERS_TOPIC_ARN".into(), approvers_topic.clone()),
            ("APPROVERS".into(), APPROVERS.join(",")),
            ("CALLBACK_URL".into(), callback.url()),
            ("SIGNING_KEY".into(), key_setting),
            ("LEDGER_TABLE".into(), ledger),
        ]);
        notify_env.extend(extra.iter().cloned());
        let notify = Function::start("approval-notify", &notify_env).await;

        let execution_id = start_on(&sdk, &pipeline, &commit_id).await;
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

    /// Starts another execution of the pipeline on the same commit; returns its id.
    pub async fn start_another(&self) -> String {
        start_on(&self.sdk, &self.pipeline, &self.commit_id).await
    }

    /// The SNS event Lambda would get for the notification CodePipeline published.
    pub async fn approval_event(&self) -> Value {
        let published = self.published_requests().await;
        let messages = published["messages"].as_array().unwrap();
        assert_eq!(
            messages.len(),
            1,
            "one notification per approval: {published}"
        );
        self.requests_event(&messages[0])
    }

    /// What the requests topic has published, as the emulator answers: `{messages: [{messageId,
    /// subject, message}]}`.
    pub async fn published_requests(&self) -> Value {
        let url = format!(
            "{}/sns/published?topicArn={}",
            self.emulators.admin, self.requests_topic
        );
        let (status, body) = http::json("GET", &url, None).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// The SNS event Lambda would get for `published`, one of [`Self::published_requests`].
    pub fn requests_event(&self, published: &Value) -> Value {
        let mut event = sample_event("approval-notify", "approval-needed.json");
        let record = &mut event["Records"][0];
        record["Sns"]["TopicArn"] = json!(self.requests_topic);
        record["Sns"]["MessageId"] = published["messageId"].clone();
        record["Sns"]["Subject"] = published["subject"].clone();
        record["Sns"]["Message"] = published["message"].clone();
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
        (
            link_after(body, "Approve:").unwrap(),
            link_after(body, "Reject:").unwrap(),
        )
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
        self.status_of(&self.execution_id).await
    }

    /// The status of the pipeline's execution `execution_id`.
    pub async fn status_of(&self, execution_id: &str) -> String {
        aws_sdk_codepipeline::Client::new(&self.sdk)
            .get_pipeline_execution()
            .pipeline_name(&self.pipeline)
            .pipeline_execution_id(execution_id)
            .send()
            .await
            .unwrap()
            .pipeline_execution()
            .and_then(|e| e.status())
            .map(|s| s.as_str().to_owned())
            .unwrap_or_default()
    }

    /// The emulator's record of the pipeline's approvals: `{pipelineName, status, summary, ...}`
    /// each.
    pub async fn recorded_approvals(&self) -> Vec<Value> {
        let (code, body) = http::json(
            "GET",
            &format!("{}/codepipeline/approvals", self.emulators.admin),
            None,
        )
        .await;
        assert_eq!(code, 200, "{body}");
        body["approvals"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["pipelineName"] == self.pipeline.as_str())
            .cloned()
            .collect()
    }
}

/// Starts `pipeline` on `commit_id`; returns the execution's id.
async fn start_on(sdk: &SdkConfig, pipeline: &str, commit_id: &str) -> String {
    aws_sdk_codepipeline::Client::new(sdk)
        .start_pipeline_execution()
        .name(pipeline)
        .source_revisions(
            aws_sdk_codepipeline::types::SourceRevisionOverride::builder()
                .action_name("Source")
                .revision_type(aws_sdk_codepipeline::types::SourceRevisionType::CommitId)
                .revision_value(commit_id)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap()
        .pipeline_execution_id()
        .unwrap()
        .to_owned()
}

/// The URL on the line after `label` (`Approve:`, `Reject:`) in an approval email.
pub fn link_after(email: &str, label: &str) -> Option<String> {
    let mut lines = email.lines();
    lines.find(|line| *line == label)?;
    lines.next().map(str::to_owned)
}

/// What a person sees deciding by link: the page the link opens, and the answer to its form.
#[derive(Debug)]
pub struct Decided {
    /// The page (GET).
    pub page: http::Answer,
    /// Its heading.
    pub page_heading: String,
    /// The answer to the form (POST).
    pub result: http::Answer,
    /// Its heading.
    pub result_heading: String,
}

/// Opens `link` as a browser would, then sends the page's form with `comment`, the page's
/// cookie and the headers a browser sends for a same-origin form (`origin` is the callback's).
pub async fn decide_by_link(link: &str, origin: &str, comment: &str) -> Decided {
    let page = http::send("GET", link, &[("accept", "text/html")], "").await;
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
        .append_pair("comment", comment)
        .finish();
    let cookie = page
        .header("set-cookie")
        .split(';')
        .next()
        .unwrap_or_default()
        .to_owned();
    let result = http::send(
        "POST",
        link,
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            ("origin", origin),
            ("sec-fetch-site", "same-origin"),
            ("cookie", &cookie),
        ],
        &form,
    )
    .await;
    Decided {
        page_heading: heading(&page.body),
        result_heading: heading(&result.body),
        page,
        result,
    }
}

/// The value of the page's hidden form field `name`.
pub fn hidden_field(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} field in {html}"))
        + marker.len();
    html[start..].split('"').next().unwrap().to_owned()
}

/// The `<h1>` of a page.
pub fn heading(html: &str) -> String {
    html.split_once("<h1>")
        .and_then(|(_, rest)| rest.split_once("</h1>"))
        .map(|(text, _)| text.to_owned())
        .unwrap_or_default()
}
