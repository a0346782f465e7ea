//! For each function, what it is set up with in the emulators and the events a warm run sends:
//! its sample events from `events/`, pointed at the set-up and made fresh (new event ids, new
//! build ids, new approvals) so each one does its real work instead of hitting an idempotency
//! short cut.

use aws_config::SdkConfig;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use integration_tests::runtime_api::InvocationResult;
use integration_tests::scenarios::deployments::{ecr_repository, push_tag};
use integration_tests::{Emulators, event_id, fixtures, http, kubernetes, sample_event, unique};
use serde_json::{Value, json};
use shared::approval_link::{Approval, ApprovalLink, Approver, Decision, SigningKey};

use crate::measure::outcome_of;

/// The events of one warm run.
pub trait Workload {
    /// The kind and payload of event number `index`.
    async fn event(&mut self, index: usize) -> (String, Value);

    /// Whether `result` is what this kind of event gives.
    fn check(&self, kind: &str, result: &InvocationResult) -> Result<(), String>;

    /// Untimed follow-up in the emulators after an event (finishing the build it started…).
    async fn after(&mut self, _kind: &str, _result: &InvocationResult) {}
}

fn expect(result: &InvocationResult, wanted: &[&str]) -> Result<(), String> {
    let outcome = outcome_of(result);
    if wanted.contains(&outcome.as_str()) {
        Ok(())
    } else {
        Err(format!("outcome {outcome}, expected one of {wanted:?}"))
    }
}

/// A fresh UUID-shaped id.
fn uuid() -> String {
    event_id()
}

// --- codecommit-push -------------------------------------------------------------------------

/// A repository with commits on `main`, a pipeline following it, routes for `main` and
/// `release/*`.
#[derive(Debug, Clone)]
pub struct CodecommitPush {
    repository: String,
    pushed: String,
    skipped: String,
    /// `PIPELINE_ROUTES`.
    pub routes: String,
}

/// The kinds of event, in the order they repeat, with their sample file and expected outcome.
const PUSH_EVENTS: [(&str, &str, &str); 7] = [
    ("push to main", "push-main.json", "started"),
    ("merge into main", "merge-into-main.json", "started"),
    ("push [skip ci]", "push-skip-ci.json", "ignored"),
    (
        "release branch created",
        "branch-created-release.json",
        "started",
    ),
    (
        "push to unrouted branch",
        "push-unrouted-branch.json",
        "ignored",
    ),
    ("tag created", "tag-created.json", "ignored"),
    ("branch deleted", "branch-deleted.json", "ignored"),
];

/// The release branch of the sample `branch-created-release.json`.
const RELEASE_BRANCH: &str = "release/2.4";
/// A routed branch whose tip is the `[skip ci]` commit.
const SKIP_CI_BRANCH: &str = "release/docs";

impl CodecommitPush {
    /// Sets the repository and pipeline up.
    pub async fn setup(sdk: &SdkConfig) -> Self {
        let repository = unique("shop");
        let pipeline = unique("shop-main");
        fixtures::repository(sdk, &repository).await;
        let first = fixtures::commit(sdk, &repository, "main", None, "chore: initial import").await;
        let pushed = fixtures::commit(
            sdk,
            &repository,
            "main",
            Some(&first),
            "feat: one-click checkout",
        )
        .await;
        // Every pushed commit is its branch's tip, as when the push happens: the function
        // ignores a push the branch has moved on from before it reads the commit.
        let codecommit = aws_sdk_codecommit::Client::new(sdk);
        for branch in [RELEASE_BRANCH, SKIP_CI_BRANCH] {
            codecommit
                .create_branch()
                .repository_name(&repository)
                .branch_name(branch)
                .commit_id(&pushed)
                .send()
                .await
                .unwrap();
        }
        let skipped = fixtures::commit(
            sdk,
            &repository,
            SKIP_CI_BRANCH,
            Some(&pushed),
            "docs: fix a typo [skip ci]",
        )
        .await;
        fixtures::pipeline(sdk, &pipeline, &repository, "main").await;
        let routes = json!([
            {"repository": repository, "branch": "main", "pipeline": pipeline},
            {"repository": repository, "branch": "release/*", "pipeline": pipeline},
        ])
        .to_string();
        Self {
            repository,
            pushed,
            skipped,
            routes,
        }
    }
}

impl Workload for CodecommitPush {
    async fn event(&mut self, index: usize) -> (String, Value) {
        let (kind, file, _) = PUSH_EVENTS[index % PUSH_EVENTS.len()];
        let mut event = sample_event("codecommit-push", file);
        event["id"] = json!(uuid());
        event["detail"]["repositoryName"] = json!(self.repository);
        if event["detail"].get("commitId").is_some() {
            let commit = if file == "push-skip-ci.json" {
                event["detail"]["referenceName"] = json!(SKIP_CI_BRANCH);
                event["detail"]["referenceFullName"] =
                    json!(format!("refs/heads/{SKIP_CI_BRANCH}"));
                &self.skipped
            } else {
                &self.pushed
            };
            event["detail"]["commitId"] = json!(commit);
        }
        (kind.to_owned(), event)
    }

    fn check(&self, kind: &str, result: &InvocationResult) -> Result<(), String> {
        let (_, _, wanted) = PUSH_EVENTS.iter().find(|(k, _, _)| *k == kind).unwrap();
        expect(result, &[wanted])
    }
}

// --- codebuild-status ------------------------------------------------------------------------

/// A pipeline build project whose last build of `main` failed, a topic and a ledger table.
#[derive(Debug, Clone)]
pub struct CodebuildStatus {
    project: String,
    /// `TOPIC_ARN`.
    pub topic: String,
    /// `LEDGER_TABLE`.
    pub table: String,
    region: String,
}

const BUILD_EVENTS: [(&str, &str, &str); 6] = [
    ("build failed", "build-failed.json", "notified"),
    (
        "build succeeded (fix check)",
        "build-succeeded.json",
        "notified",
    ),
    ("build stopped", "build-stopped.json", "notified"),
    ("build timed out", "build-timed-out.json", "notified"),
    ("build in progress", "build-in-progress.json", "ignored"),
    (
        "pull-request build",
        "pull-request-build-failed.json",
        "ignored",
    ),
];

impl CodebuildStatus {
    /// Sets the project (with a failed build of `main` in its history), topic and table up.
    pub async fn setup(emulators: &Emulators, sdk: &SdkConfig) -> Self {
        use aws_sdk_codebuild::types::{
            ArtifactsType, ComputeType, EnvironmentType, EnvironmentVariable, ProjectArtifacts,
            ProjectEnvironment, ProjectSource, SourceType,
        };
        let project = unique("shop-image");
        let codebuild = aws_sdk_codebuild::Client::new(sdk);
        codebuild
            .create_project()
            .name(&project)
            .source(
                ProjectSource::builder()
                    .r#type(SourceType::Codepipeline)
                    .location("pipeline")
                    .build()
                    .unwrap(),
            )
            .artifacts(
                ProjectArtifacts::builder()
                    .r#type(ArtifactsType::Codepipeline)
                    .location("pipeline")
                    .build()
                    .unwrap(),
            )
            .environment(
                ProjectEnvironment::builder()
                    .r#type(EnvironmentType::ArmContainer)
                    .image("aws/codebuild/amazonlinux-aarch64-standard:3.0")
                    .compute_type(ComputeType::BuildGeneral1Small)
                    .build()
                    .unwrap(),
            )
            .service_role("arn:aws:iam::123456789012:role/shop-codebuild")
            .send()
            .await
            .unwrap();
        for status in ["SUCCEEDED", "FAILED"] {
            let build = codebuild
                .start_build()
                .project_name(&project)
                .environment_variables_override(
                    EnvironmentVariable::builder()
                        .name("SOURCE_BRANCH")
                        .value("main")
                        .build()
                        .unwrap(),
                )
                .send()
                .await
                .unwrap()
                .build_value()
                .and_then(|b| b.id())
                .unwrap()
                .to_owned();
            let (code, answer) = http::json(
                "POST",
                &format!("{}/codebuild/complete", emulators.admin),
                Some(&json!({"buildId": build, "status": status, "durationSeconds": 180})),
            )
            .await;
            assert_eq!(code, 200, "{answer}");
        }
        let table = unique("ledger");
        fixtures::ledger_table(sdk, &table).await;
        let topic = fixtures::topic(sdk, &unique("builds")).await;
        Self {
            project,
            topic,
            table,
            region: emulators.region.clone(),
        }
    }

    /// The function's settings besides the emulators.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("TOPIC_ARN".into(), self.topic.clone()),
            ("LEDGER_TABLE".into(), self.table.clone()),
            ("PR_VALIDATION_PROJECT".into(), "shop-pr".into()),
        ]
    }
}

impl Workload for CodebuildStatus {
    async fn event(&mut self, index: usize) -> (String, Value) {
        let (kind, file, _) = BUILD_EVENTS[index % BUILD_EVENTS.len()];
        let mut event = sample_event("codebuild-status", file);
        event["id"] = json!(uuid());
        let detail = &mut event["detail"];
        let project = if file.starts_with("pull-request") {
            detail["project-name"].as_str().unwrap().to_owned()
        } else {
            self.project.clone()
        };
        // A build the ledger has not seen: every notification is really sent.
        let build = format!(
            "arn:aws:codebuild:{}:123456789012:build/{project}:{}",
            self.region,
            uuid()
        );
        detail["project-name"] = json!(project);
        detail["build-id"] = json!(build);
        event["resources"] = json!([build]);
        (kind.to_owned(), event)
    }

    fn check(&self, kind: &str, result: &InvocationResult) -> Result<(), String> {
        let (_, _, wanted) = BUILD_EVENTS.iter().find(|(k, _, _)| *k == kind).unwrap();
        expect(result, &[wanted])
    }
}

// --- pr-validator ----------------------------------------------------------------------------

/// Open pull requests of a validated repository, each going round: opened (a build starts),
/// its build finishes (the result is reported), an event that concerns no validation.
#[derive(Debug)]
pub struct PrValidator {
    emulators: Emulators,
    repository: String,
    /// `PR_VALIDATION_PROJECT`.
    pub project: String,
    pull_requests: Vec<String>,
    /// The build the last "opened" event started, per pull request.
    builds: Vec<Option<String>>,
    /// The pull request of the event being handled.
    current: usize,
    finished: usize,
}

const PR_EVENTS: [&str; 3] = [
    "pull request opened",
    "validation build finished",
    "pull request into another branch",
];

impl PrValidator {
    /// A repository with `pool` pull requests from their own branches into `main`.
    pub async fn setup(emulators: &Emulators, bot: &SdkConfig, pool: usize) -> Self {
        let author = fixtures::user(emulators, bot, &unique("mary")).await;
        let repository = unique("shop");
        fixtures::repository(bot, &repository).await;
        let main = fixtures::commit(&author, &repository, "main", None, "Initial commit").await;
        let mut pull_requests = Vec::new();
        for n in 0..pool {
            let branch = format!("feature/cart-{n}");
            aws_sdk_codecommit::Client::new(bot)
                .create_branch()
                .repository_name(&repository)
                .branch_name(&branch)
                .commit_id(&main)
                .send()
                .await
                .unwrap();
            fixtures::commit(&author, &repository, &branch, Some(&main), "Add the cart").await;
            pull_requests.push(
                fixtures::pull_request(&author, &repository, &branch, "main", "Add the cart").await,
            );
        }
        let project = unique("shop-pr");
        fixtures::validation_project(bot, &project, &repository, &emulators.region).await;
        Self {
            emulators: emulators.clone(),
            repository,
            project,
            builds: vec![None; pull_requests.len()],
            pull_requests,
            current: 0,
            finished: 0,
        }
    }

    /// The function's settings besides the emulators.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("PR_VALIDATION_PROJECT".into(), self.project.clone()),
            ("PR_REPOSITORIES".into(), self.repository.clone()),
            ("PR_DESTINATIONS".into(), "main,release/*".into()),
        ]
    }

    fn slot(&self, index: usize) -> usize {
        (index / PR_EVENTS.len()) % self.pull_requests.len()
    }
}

impl Workload for PrValidator {
    async fn event(&mut self, index: usize) -> (String, Value) {
        let kind = PR_EVENTS[index % PR_EVENTS.len()];
        let slot = self.slot(index);
        self.current = slot;
        let id = &self.pull_requests[slot];
        let event = match kind {
            "pull request opened" => {
                let url = format!(
                    "{}/codecommit/pull-request-event?pullRequestId={id}&repositoryName={}&event=pullRequestCreated",
                    self.emulators.admin, self.repository
                );
                let (code, event) = http::json("GET", &url, None).await;
                assert_eq!(code, 200, "{event}");
                event
            }
            "validation build finished" => {
                let build = self.builds[slot].take().unwrap();
                let url = format!(
                    "{}/codebuild/event?buildId={}",
                    self.emulators.admin,
                    form_urlencoded::byte_serialize(build.as_bytes()).collect::<String>()
                );
                let (code, event) = http::json("GET", &url, None).await;
                assert_eq!(code, 200, "{event}");
                event
            }
            _ => {
                let mut event = sample_event("pr-validator", "other-destination.json");
                event["id"] = json!(uuid());
                event["detail"]["repositoryNames"] = json!([self.repository]);
                event["detail"]["pullRequestId"] = json!(id);
                event
            }
        };
        (kind.to_owned(), event)
    }

    fn check(&self, kind: &str, result: &InvocationResult) -> Result<(), String> {
        match kind {
            "pull request opened" => expect(result, &["buildStarted"]),
            "validation build finished" => expect(result, &["reported"]),
            _ => expect(result, &["ignored"]),
        }
    }

    async fn after(&mut self, kind: &str, result: &InvocationResult) {
        if kind != "pull request opened" {
            return;
        }
        let InvocationResult::Response(response) = result else {
            return;
        };
        let build = response["buildId"].as_str().unwrap().to_owned();
        // Alternate passing and failing builds: both approve or revoke, then comment.
        let status = if self.finished.is_multiple_of(2) {
            "SUCCEEDED"
        } else {
            "FAILED"
        };
        self.finished += 1;
        let (code, answer) = http::json(
            "POST",
            &format!("{}/codebuild/complete", self.emulators.admin),
            Some(&json!({"buildId": build, "status": status, "durationSeconds": 190})),
        )
        .await;
        assert_eq!(code, 200, "{answer}");
        self.builds[self.current] = Some(build);
    }
}

// --- eks-deploy ------------------------------------------------------------------------------

/// An EKS cluster leading to the local cluster, and a Deployment in a namespace with eks-deploy's
/// Role.
#[derive(Debug, Clone)]
pub struct EksDeploy {
    cluster: String,
    namespace: String,
    images: [String; 2],
}

const EKS_EVENTS: [&str; 2] = ["new image (rollout)", "image already running"];

impl EksDeploy {
    /// Creates the cluster and the Deployment `web` running the first image, its pods Ready
    /// after `ready_after` (kwok's default when `None`).
    pub async fn setup(
        emulators: &Emulators,
        sdk: &SdkConfig,
        replicas: i32,
        progress_deadline: i32,
        ready_after: Option<&str>,
    ) -> Self {
        let cluster = unique("shop-prod");
        kubernetes::eks_cluster(sdk, &cluster).await;
        let namespace = unique("shop");
        let images = [
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/shop:v1".to_owned(),
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/shop:v2".to_owned(),
        ];
        // eks-deploy pins an ECR image to the digest its tag names: both are in the registry.
        ecr_repository(emulators, "shop").await;
        for tag in ["v1", "v2"] {
            push_tag(emulators, "shop", tag).await;
        }
        let client = kubernetes::client(emulators);
        kubernetes::namespace_for_eks_deploy(&client, &namespace, |_| {}).await;
        let mut spec = kubernetes::DeploymentSpec::new(&namespace, "web", &[("web", &images[0])])
            .replicas(replicas)
            .progress_deadline(progress_deadline);
        if let Some(delay) = ready_after {
            spec = spec.ready_after(delay);
        }
        spec.create(&client).await;
        Self {
            cluster,
            namespace,
            images,
        }
    }

    /// The direct-invocation parameters for `image`.
    pub fn params(&self, image: &str) -> Value {
        let mut event = sample_event("eks-deploy", "direct-deploy.json");
        event["cluster"] = json!(self.cluster);
        event["namespace"] = json!(self.namespace);
        event["image"] = json!(image);
        event
    }

    /// The cluster's name.
    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    /// The Deployment's namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }
}

impl Workload for EksDeploy {
    async fn event(&mut self, index: usize) -> (String, Value) {
        // v2, v2 again, v1, v1 again…: every other event rolls a new image out.
        let image = &self.images[(index / 2 + 1) % 2];
        (
            EKS_EVENTS[index % 2].to_owned(),
            self.params(&image.clone()),
        )
    }

    fn check(&self, _kind: &str, result: &InvocationResult) -> Result<(), String> {
        expect(result, &["succeeded"])
    }
}

// --- approvals -------------------------------------------------------------------------------

/// The approvers every approval is mailed to.
pub const APPROVERS: [&str; 2] = ["alice@example.com", "bob@example.com"];

/// A pipeline Source → Approval, the topics CodePipeline and approval-notify publish to, the
/// signing key and the ledger; each approval is a new execution of the pipeline.
#[derive(Debug, Clone)]
pub struct Approvals {
    emulators: Emulators,
    sdk: SdkConfig,
    pipeline: String,
    commit: String,
    requests_topic: String,
    approvers_topic: String,
    secret: String,
    key: String,
    ledger: String,
}

impl Approvals {
    /// Sets everything up; no execution runs yet.
    pub async fn setup(emulators: &Emulators, sdk: &SdkConfig) -> Self {
        let repository = unique("shop");
        let pipeline = unique("shop-main");
        let requests_topic = fixtures::topic(sdk, &unique("approval-requests")).await;
        let approvers_topic = fixtures::topic(sdk, &unique("approvers")).await;
        for approver in APPROVERS {
            fixtures::approver_subscription(sdk, &approvers_topic, approver).await;
        }
        let secret = unique("approval-signing-key");
        let key = format!("{}-0123456789abcdefghijklmnopqrstuvwxyz", unique("key"));
        fixtures::secret(sdk, &secret, &key).await;
        let ledger = unique("ledger");
        fixtures::ledger_table(sdk, &ledger).await;
        fixtures::repository(sdk, &repository).await;
        let commit = fixtures::commit(sdk, &repository, "main", None, "feat: checkout").await;
        fixtures::approval_pipeline(sdk, &pipeline, &repository, "main", &requests_topic).await;
        Self {
            emulators: emulators.clone(),
            sdk: sdk.clone(),
            pipeline,
            commit,
            requests_topic,
            approvers_topic,
            secret,
            key,
            ledger,
        }
    }

    /// approval-notify's settings besides the emulators.
    pub fn notify_env(&self) -> Vec<(String, String)> {
        vec![
            ("APPROVERS_TOPIC_ARN".into(), self.approvers_topic.clone()),
            ("APPROVERS".into(), APPROVERS.join(",")),
            (
                "CALLBACK_URL".into(),
                "http://127.0.0.1:9000/approval".into(),
            ),
            (
                "SIGNING_KEY".into(),
                format!("secretsmanager:{}", self.secret),
            ),
            ("LEDGER_TABLE".into(), self.ledger.clone()),
        ]
    }

    /// approval-callback's settings besides the emulators.
    pub fn callback_env(&self) -> Vec<(String, String)> {
        vec![(
            "SIGNING_KEY".into(),
            format!("secretsmanager:{}", self.secret),
        )]
    }

    /// Starts an execution, which waits at its approval; returns the SNS event CodePipeline's
    /// notification makes and the approval's token.
    async fn next_approval(&self) -> (Value, String) {
        aws_sdk_codepipeline::Client::new(&self.sdk)
            .start_pipeline_execution()
            .name(&self.pipeline)
            .source_revisions(
                aws_sdk_codepipeline::types::SourceRevisionOverride::builder()
                    .action_name("Source")
                    .revision_type(aws_sdk_codepipeline::types::SourceRevisionType::CommitId)
                    .revision_value(&self.commit)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        let url = format!(
            "{}/sns/published?topicArn={}",
            self.emulators.admin, self.requests_topic
        );
        let (status, body) = http::json("GET", &url, None).await;
        assert_eq!(status, 200, "{body}");
        let latest = body["messages"].as_array().unwrap().last().unwrap().clone();
        let message: Value = serde_json::from_str(latest["message"].as_str().unwrap()).unwrap();
        let token = message["approval"]["token"].as_str().unwrap().to_owned();
        let mut event = sample_event("approval-notify", "approval-needed.json");
        let record = &mut event["Records"][0];
        record["Sns"]["TopicArn"] = json!(self.requests_topic);
        record["Sns"]["MessageId"] = latest["messageId"].clone();
        record["Sns"]["Subject"] = latest["subject"].clone();
        record["Sns"]["Message"] = latest["message"].clone();
        (event, token)
    }

    /// Decides the waiting approval, so the next execution can reach it.
    async fn decide(&self, token: &str) {
        aws_sdk_codepipeline::Client::new(&self.sdk)
            .put_approval_result()
            .pipeline_name(&self.pipeline)
            .stage_name("Approval")
            .action_name("ProductionGate")
            .token(token)
            .result(
                aws_sdk_codepipeline::types::ApprovalResult::builder()
                    .status(aws_sdk_codepipeline::types::ApprovalStatus::Approved)
                    .summary("benchmark")
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
    }
}

/// approval-notify: a new approval every time (then decided, untimed), and now and then the
/// notification of one that already expired.
#[derive(Debug)]
pub struct ApprovalNotify {
    approvals: Approvals,
    token: Option<String>,
}

const NOTIFY_EVENTS: [&str; 4] = [
    "approval needed",
    "approval needed",
    "approval needed",
    "approval already expired",
];

impl ApprovalNotify {
    /// Over `approvals`.
    pub fn new(approvals: Approvals) -> Self {
        Self {
            approvals,
            token: None,
        }
    }
}

impl Workload for ApprovalNotify {
    async fn event(&mut self, index: usize) -> (String, Value) {
        let kind = NOTIFY_EVENTS[index % NOTIFY_EVENTS.len()];
        if kind == "approval already expired" {
            return (
                kind.to_owned(),
                sample_event("approval-notify", "approval-expired.json"),
            );
        }
        let (event, token) = self.approvals.next_approval().await;
        self.token = Some(token);
        (kind.to_owned(), event)
    }

    fn check(&self, kind: &str, result: &InvocationResult) -> Result<(), String> {
        match kind {
            "approval needed" => expect(result, &["notified"]),
            _ => expect(result, &["ignored"]),
        }
    }

    async fn after(&mut self, _kind: &str, _result: &InvocationResult) {
        if let Some(token) = self.token.take() {
            self.approvals.decide(&token).await;
        }
    }
}

/// approval-callback: for each new approval, the approver opens the link (GET: the page) and
/// presses Approve (POST from that page: PutApprovalResult); in between, a tampered link and a
/// mail scanner's HEAD, refused without any AWS call.
#[derive(Debug)]
pub struct ApprovalCallback {
    approvals: Approvals,
    key: SigningKey,
    link: String,
    page: Option<Value>,
}

const CALLBACK_EVENTS: [(&str, u64); 4] = [
    ("open the link (GET)", 200),
    ("approve (POST from the page)", 200),
    ("tampered link (GET)", 403),
    ("mail scanner (HEAD)", 405),
];

impl ApprovalCallback {
    /// Over `approvals`.
    pub fn new(approvals: Approvals) -> Self {
        let key = SigningKey::new(approvals.key.as_bytes()).unwrap();
        Self {
            approvals,
            key,
            link: String::new(),
            page: None,
        }
    }
}

fn with_link(mut event: Value, link: &str) -> Value {
    event["rawQueryString"] = json!(format!("link={link}"));
    event["queryStringParameters"] = json!({"link": link});
    event
}

/// The value of the page's hidden field `name`.
fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} field in {html}"))
        + marker.len();
    html[start..].split('"').next().unwrap().to_owned()
}

impl Workload for ApprovalCallback {
    async fn event(&mut self, index: usize) -> (String, Value) {
        let (kind, _) = CALLBACK_EVENTS[index % CALLBACK_EVENTS.len()];
        let event = match index % CALLBACK_EVENTS.len() {
            0 => {
                let (_, token) = self.approvals.next_approval().await;
                let approval = Approval {
                    pipeline: self.approvals.pipeline.clone(),
                    stage: "Approval".into(),
                    action: "ProductionGate".into(),
                    token,
                };
                let expires = chrono_now() + 3600;
                self.link = ApprovalLink::new(
                    approval,
                    Approver::new(APPROVERS[0]).unwrap(),
                    Decision::Approve,
                    expires,
                )
                .sign(&self.key);
                with_link(
                    sample_event("approval-callback", "get-approve.json"),
                    &self.link,
                )
            }
            1 => {
                let page = self.page.take().unwrap();
                let html = page["body"].as_str().unwrap();
                let cookie = page["cookies"][0]
                    .as_str()
                    .unwrap()
                    .split(';')
                    .next()
                    .unwrap()
                    .to_owned();
                let form = form_urlencoded::Serializer::new(String::new())
                    .append_pair("link", &hidden(html, "link"))
                    .append_pair("form", &hidden(html, "form"))
                    .append_pair("comment", "Staging looks good.")
                    .finish();
                let mut event = with_link(
                    sample_event("approval-callback", "post-approve.json"),
                    &self.link,
                );
                event["cookies"] = json!([cookie]);
                event["body"] = json!(STANDARD.encode(form));
                event["isBase64Encoded"] = json!(true);
                event
            }
            2 => sample_event("approval-callback", "get-tampered.json"),
            _ => sample_event("approval-callback", "head-scanner-prefetch.json"),
        };
        (kind.to_owned(), event)
    }

    fn check(&self, kind: &str, result: &InvocationResult) -> Result<(), String> {
        let (_, status) = CALLBACK_EVENTS.iter().find(|(k, _)| *k == kind).unwrap();
        expect(result, &[format!("status:{status}").as_str()])
    }

    async fn after(&mut self, kind: &str, result: &InvocationResult) {
        if kind == CALLBACK_EVENTS[0].0
            && let InvocationResult::Response(page) = result
        {
            self.page = Some(page.clone());
        }
    }
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

// --- delivery-events -------------------------------------------------------------------------

/// A pipeline Source → Build → Deploy with three ended executions (deployed, failed at the
/// build, rolled back by the deploy), a topic and a ledger table.
#[derive(Debug, Clone)]
pub struct DeliveryEvents {
    pipeline: String,
    /// The executions: deployed, build failed, rolled back.
    executions: [String; 3],
    /// `TOPIC_ARN`.
    pub topic: String,
    /// `LEDGER_TABLE`.
    pub table: String,
}

/// The kinds of event, in the order they repeat: (kind, execution index, state, outcome).
const DELIVERY_EVENTS: [(&str, usize, &str, &str); 4] = [
    ("deploy told", 0, "SUCCEEDED", "told"),
    ("failed build told", 1, "FAILED", "told"),
    ("rollback told", 2, "FAILED", "told"),
    ("execution started", 0, "STARTED", "ignored"),
];

impl DeliveryEvents {
    /// Sets the pipeline and its three executions up.
    pub async fn setup(emulators: &Emulators, sdk: &SdkConfig) -> Self {
        let repository = unique("shop");
        fixtures::repository(sdk, &repository).await;
        fixtures::commit(sdk, &repository, "main", None, "feat: one-click checkout").await;
        let pipeline = unique("shop-main");
        fixtures::deploy_pipeline(sdk, &pipeline, &repository, "eks-deploy", "{}").await;
        let codepipeline = aws_sdk_codepipeline::Client::new(sdk);
        let mut executions = Vec::new();
        for (build, deploy) in [
            ("Succeeded", Some(Ok(()))),
            ("Failed", None),
            ("Succeeded", Some(Err(()))),
        ] {
            let execution = codepipeline
                .start_pipeline_execution()
                .name(&pipeline)
                .send()
                .await
                .unwrap()
                .pipeline_execution_id
                .unwrap();
            fixtures::complete_action(emulators, &execution, "Build", "Build", build, json!({}))
                .await;
            if let Some(deployed) = deploy {
                let jobs = fixtures::waiting_jobs(emulators, &pipeline).await;
                let job = jobs
                    .iter()
                    .find(|j| j["executionId"] == execution.as_str())
                    .and_then(|j| j["jobId"].as_str())
                    .unwrap()
                    .to_owned();
                match deployed {
                    Ok(()) => {
                        codepipeline
                            .put_job_success_result()
                            .job_id(job)
                            .output_variables(
                                "IMAGE_DIGEST",
                                "sha256:5b0bcabd1ed22e9fb1310cf6c2dec7cdef19f0ad69efa1f392e94a4333501270",
                            )
                            .send()
                            .await
                            .unwrap();
                    }
                    Err(()) => {
                        codepipeline
                            .put_job_failure_result()
                            .job_id(job)
                            .failure_details(
                                aws_sdk_codepipeline::types::FailureDetails::builder()
                                    .r#type(aws_sdk_codepipeline::types::FailureType::JobFailed)
                                    .message("rollout failed: ImagePullBackOff. Rolled back to shop:v1 (rollout complete).")
                                    .build()
                                    .unwrap(),
                            )
                            .send()
                            .await
                            .unwrap();
                    }
                }
            }
            executions.push(execution);
        }
        let table = unique("ledger");
        fixtures::ledger_table(sdk, &table).await;
        let topic = fixtures::topic(sdk, &unique("deliveries")).await;
        Self {
            pipeline,
            executions: executions.try_into().unwrap(),
            topic,
            table,
        }
    }

    /// The function's settings besides the emulators.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("TOPIC_ARN".into(), self.topic.clone()),
            ("LEDGER_TABLE".into(), self.table.clone()),
            (
                "PIPELINE_ENVIRONMENTS".into(),
                json!({ self.pipeline.clone(): "production" }).to_string(),
            ),
        ]
    }
}

impl Workload for DeliveryEvents {
    async fn event(&mut self, index: usize) -> (String, Value) {
        let (kind, execution, state, _) = DELIVERY_EVENTS[index % DELIVERY_EVENTS.len()];
        let mut event = sample_event("delivery-events", "pipeline-succeeded.json");
        event["id"] = json!(uuid());
        event["resources"] = json!([format!(
            "arn:aws:codepipeline:us-east-1:123456789012:{}",
            self.pipeline
        )]);
        let detail = &mut event["detail"];
        detail["pipeline"] = json!(self.pipeline);
        detail["execution-id"] = json!(self.executions[execution]);
        detail["state"] = json!(state);
        // A new attempt of the execution each time: every end is told anew (message, restore
        // clock, metric line) instead of being found in the ledger.
        detail["pipeline-execution-attempt"] = json!((index + 1) as f64);
        (kind.to_owned(), event)
    }

    fn check(&self, kind: &str, result: &InvocationResult) -> Result<(), String> {
        let (_, _, _, wanted) = DELIVERY_EVENTS.iter().find(|(k, ..)| *k == kind).unwrap();
        expect(result, &[wanted])
    }
}
