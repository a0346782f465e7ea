//! Things the tests set up in the emulators through the real AWS APIs: repositories, commits,
//! pipelines.

use aws_config::SdkConfig;
use aws_sdk_codecommit::primitives::Blob;
use aws_sdk_codecommit::types::PutFileEntry;
use aws_sdk_codepipeline::types::{
    ActionCategory, ActionDeclaration, ActionOwner, ActionTypeId, ArtifactStore, ArtifactStoreType,
    ExecutionMode, InputArtifact, OutputArtifact, PipelineDeclaration, PipelineType,
    StageDeclaration,
};

/// Creates an empty CodeCommit repository.
pub async fn repository(sdk: &SdkConfig, name: &str) {
    aws_sdk_codecommit::Client::new(sdk)
        .create_repository()
        .repository_name(name)
        .repository_description("created by a test")
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateRepository {name}: {e:?}"));
}

/// Commits one file change to `branch` (creating it on the first commit) and returns the
/// commit id.
pub async fn commit(
    sdk: &SdkConfig,
    repository: &str,
    branch: &str,
    parent: Option<&str>,
    message: &str,
) -> String {
    let file = PutFileEntry::builder()
        .file_path("CHANGELOG.md")
        .file_content(Blob::new(format!("{message}\n")))
        .build()
        .unwrap();
    aws_sdk_codecommit::Client::new(sdk)
        .create_commit()
        .repository_name(repository)
        .branch_name(branch)
        .set_parent_commit_id(parent.map(str::to_owned))
        .author_name("Mary Major")
        .email("mary.major@example.com")
        .commit_message(message)
        .put_files(file)
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateCommit on {repository}/{branch}: {e:?}"))
        .commit_id()
        .unwrap()
        .to_owned()
}

/// Creates the IAM role CodePipeline assumes (moto checks it exists and trusts CodePipeline).
pub async fn pipeline_role(sdk: &SdkConfig, name: &str) -> String {
    let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"codepipeline.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
    aws_sdk_iam::Client::new(sdk)
        .create_role()
        .role_name(name)
        .assume_role_policy_document(trust)
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateRole {name}: {e:?}"))
        .role()
        .unwrap()
        .arn()
        .to_owned()
}

/// A V2 pipeline to create: a CodeCommit source action `Source` (output `SourceOutput`, namespace
/// `SourceVariables`), then the stages added, in order, as `infra/pipeline.yaml` declares them.
#[derive(Debug, Clone)]
pub struct PipelineSpec {
    name: String,
    repository: String,
    branch: String,
    stages: Vec<StageDeclaration>,
    mode: Option<ExecutionMode>,
}

fn action(
    name: &str,
    category: ActionCategory,
    provider: &str,
) -> aws_sdk_codepipeline::types::builders::ActionDeclarationBuilder {
    ActionDeclaration::builder()
        .name(name)
        .run_order(1)
        .action_type_id(
            ActionTypeId::builder()
                .category(category)
                .owner(ActionOwner::Aws)
                .provider(provider)
                .version("1")
                .build()
                .unwrap(),
        )
}

fn stage(name: &str, action: ActionDeclaration) -> StageDeclaration {
    StageDeclaration::builder()
        .name(name)
        .actions(action)
        .build()
        .unwrap()
}

impl PipelineSpec {
    /// A pipeline `name` delivering `branch` of `repository`.
    pub fn new(name: &str, repository: &str, branch: &str) -> Self {
        let source = action("Source", ActionCategory::Source, "CodeCommit")
            .namespace("SourceVariables")
            .configuration("RepositoryName", repository)
            .configuration("BranchName", branch)
            // codecommit-push starts the pipeline on the pushed commit.
            .configuration("PollForSourceChanges", "false")
            .output_artifacts(
                OutputArtifact::builder()
                    .name("SourceOutput")
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap();
        Self {
            name: name.to_owned(),
            repository: repository.to_owned(),
            branch: branch.to_owned(),
            stages: vec![stage("Source", source)],
            mode: None,
        }
    }

    /// Runs in execution mode `mode` (without: CodePipeline's default, SUPERSEDED).
    pub fn execution_mode(mut self, mode: ExecutionMode) -> Self {
        self.mode = Some(mode);
        self
    }

    /// Adds stage `Build`: a CodeBuild action `Build` on `project`, namespace `BuildVariables`,
    /// passing the branch and commit as codebuild-status reads them.
    pub fn build(mut self, project: &str) -> Self {
        let build = action("Build", ActionCategory::Build, "CodeBuild")
            .namespace("BuildVariables")
            .configuration("ProjectName", project)
            .configuration(
                "EnvironmentVariables",
                r##"[{"name":"SOURCE_BRANCH","value":"#{SourceVariables.BranchName}","type":"PLAINTEXT"},{"name":"SOURCE_COMMIT","value":"#{SourceVariables.CommitId}","type":"PLAINTEXT"}]"##,
            )
            .input_artifacts(InputArtifact::builder().name("SourceOutput").build().unwrap())
            .build()
            .unwrap();
        self.stages.push(stage("Build", build));
        self
    }

    /// Adds stage `Approval`: a manual approval `ProductionGate` notifying `topic_arn`.
    pub fn approval(mut self, topic_arn: &str) -> Self {
        let gate = action("ProductionGate", ActionCategory::Approval, "Manual")
            .configuration("NotificationArn", topic_arn)
            .configuration("ExternalEntityLink", "https://staging.shop.example.com")
            .configuration(
                "CustomData",
                "Staging runs the new checkout. Approve to deploy it to production.",
            )
            .build()
            .unwrap();
        self.stages.push(stage("Approval", gate));
        self
    }

    /// Adds stage `Deploy`: a Lambda invoke action `Deploy` of `function` with `user_parameters`.
    pub fn deploy(mut self, function: &str, user_parameters: &str) -> Self {
        let deploy = action("Deploy", ActionCategory::Invoke, "Lambda")
            .configuration("FunctionName", function)
            .configuration("UserParameters", user_parameters)
            .build()
            .unwrap();
        self.stages.push(stage("Deploy", deploy));
        self
    }

    /// Adds stage `Approve<Environment>`: a manual approval `<Environment>Gate` notifying
    /// `topic_arn`, as infra/environments.py generates it.
    pub fn environment_approval(mut self, title: &str, topic_arn: &str) -> Self {
        let gate = action(&format!("{title}Gate"), ActionCategory::Approval, "Manual")
            .configuration("NotificationArn", topic_arn)
            .configuration(
                "CustomData",
                "Promote #{SourceVariables.CommitId}, image #{BuildVariables.IMAGE_DIGEST}?",
            )
            .build()
            .unwrap();
        self.stages.push(stage(&format!("Approve{title}"), gate));
        self
    }

    /// Adds stage `Deploy<Environment>`: a Lambda invoke action `Deploy` of `function` with
    /// `user_parameters`, namespace `Deploy<Environment>Variables`, as infra/environments.py
    /// generates it.
    pub fn environment_deploy(
        mut self,
        title: &str,
        function: &str,
        user_parameters: &str,
    ) -> Self {
        let deploy = action("Deploy", ActionCategory::Invoke, "Lambda")
            .namespace(format!("Deploy{title}Variables"))
            .configuration("FunctionName", function)
            .configuration("UserParameters", user_parameters)
            .build()
            .unwrap();
        self.stages.push(stage(&format!("Deploy{title}"), deploy));
        self
    }

    /// Creates it, with the IAM role CodePipeline assumes.
    pub async fn create(self, sdk: &SdkConfig) {
        let role = pipeline_role(sdk, &format!("{}-role", self.name)).await;
        let declaration = PipelineDeclaration::builder()
            .name(&self.name)
            .role_arn(role)
            .pipeline_type(PipelineType::V2)
            .artifact_store(
                ArtifactStore::builder()
                    .r#type(ArtifactStoreType::S3)
                    .location("pipeline-artifacts")
                    .build()
                    .unwrap(),
            )
            .set_stages(Some(self.stages))
            .set_execution_mode(self.mode)
            .build()
            .unwrap();
        aws_sdk_codepipeline::Client::new(sdk)
            .create_pipeline()
            .pipeline(declaration)
            .send()
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "CreatePipeline {} ({} {}): {e:?}",
                    self.name, self.repository, self.branch
                )
            });
    }
}

/// Creates a V2 pipeline Source → Build on `repository`/`branch` (the push tests' pipeline).
pub async fn pipeline(sdk: &SdkConfig, name: &str, repository: &str, branch: &str) {
    PipelineSpec::new(name, repository, branch)
        .build(&format!("{name}-image"))
        .create(sdk)
        .await;
}

/// Creates a V2 pipeline Source → Approval (`ProductionGate`, notifying `topic_arn`).
pub async fn approval_pipeline(
    sdk: &SdkConfig,
    name: &str,
    repository: &str,
    branch: &str,
    topic_arn: &str,
) {
    PipelineSpec::new(name, repository, branch)
        .approval(topic_arn)
        .create(sdk)
        .await;
}

/// Creates a V2 pipeline Source → Build → Deploy (a Lambda invoke action of `function`).
pub async fn deploy_pipeline(
    sdk: &SdkConfig,
    name: &str,
    repository: &str,
    function: &str,
    user_parameters: &str,
) {
    PipelineSpec::new(name, repository, "main")
        .build(&format!("{name}-image"))
        .deploy(function, user_parameters)
        .create(sdk)
        .await;
}

/// Creates an SNS topic and returns its ARN.
pub async fn topic(sdk: &SdkConfig, name: &str) -> String {
    aws_sdk_sns::Client::new(sdk)
        .create_topic()
        .name(name)
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateTopic {name}: {e:?}"))
        .topic_arn()
        .unwrap()
        .to_owned()
}

/// Subscribes `address` by email to `topic_arn`, receiving only messages whose `approver`
/// attribute is `address` (as the template's per-approver subscriptions do).
pub async fn approver_subscription(sdk: &SdkConfig, topic_arn: &str, address: &str) {
    let policy = serde_json::json!({"approver": [address]}).to_string();
    aws_sdk_sns::Client::new(sdk)
        .subscribe()
        .topic_arn(topic_arn)
        .protocol("email")
        .endpoint(address)
        .attributes("FilterPolicy", policy)
        .send()
        .await
        .unwrap_or_else(|e| panic!("Subscribe {address}: {e:?}"));
}

/// Creates a Secrets Manager secret holding `value`.
pub async fn secret(sdk: &SdkConfig, name: &str, value: &str) {
    aws_sdk_secretsmanager::Client::new(sdk)
        .create_secret()
        .name(name)
        .secret_string(value)
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateSecret {name}: {e:?}"));
}

/// Creates a ledger table like the template's `NotificationLedgerTable` (string key `pk`).
pub async fn ledger_table(sdk: &SdkConfig, name: &str) {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    aws_sdk_dynamodb::Client::new(sdk)
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("pk")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateTable {name}: {e:?}"));
}

/// An SNS topic, and an SQS queue subscribed to it (with `filter_policy` on the message
/// attributes, when given) standing in for a person's inbox. Returns (topic ARN, queue URL).
pub async fn topic_with_inbox(
    sdk: &SdkConfig,
    name: &str,
    filter_policy: Option<&str>,
) -> (String, String) {
    let topic = aws_sdk_sns::Client::new(sdk)
        .create_topic()
        .name(name)
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateTopic {name}: {e:?}"))
        .topic_arn()
        .unwrap()
        .to_owned();
    let queue_url = inbox(sdk, &topic, &format!("{name}-inbox"), filter_policy).await;
    (topic, queue_url)
}

/// Subscribes a new SQS queue `queue` to `topic`, with an optional filter policy; returns its URL.
pub async fn inbox(
    sdk: &SdkConfig,
    topic: &str,
    queue: &str,
    filter_policy: Option<&str>,
) -> String {
    let sns = aws_sdk_sns::Client::new(sdk);
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let queue_url = sqs
        .create_queue()
        .queue_name(queue)
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateQueue {queue}: {e:?}"))
        .queue_url()
        .unwrap()
        .to_owned();
    let queue_arn = sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes()
        .and_then(|a| {
            a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn)
                .cloned()
        })
        .unwrap();
    let mut subscribe = sns
        .subscribe()
        .topic_arn(topic)
        .protocol("sqs")
        .endpoint(queue_arn);
    if let Some(policy) = filter_policy {
        subscribe = subscribe.attributes("FilterPolicy", policy);
    }
    subscribe
        .send()
        .await
        .unwrap_or_else(|e| panic!("Subscribe {queue}: {e:?}"));
    queue_url
}

/// An SNS message as a subscriber receives it.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivered {
    /// The subject (the email's subject line).
    pub subject: String,
    /// The message (the email's body).
    pub message: String,
    /// The string message attributes.
    pub attributes: std::collections::BTreeMap<String, String>,
}

/// Everything waiting in the inbox queue `queue_url` (taken out of it).
pub async fn received(sdk: &SdkConfig, queue_url: &str) -> Vec<Delivered> {
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let mut delivered = Vec::new();
    // Bounded: an inbox in a test holds a handful of messages.
    for _ in 0..20 {
        let output = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(0)
            .send()
            .await
            .unwrap();
        let messages = output.messages();
        if messages.is_empty() {
            break;
        }
        for message in messages {
            let envelope: serde_json::Value =
                serde_json::from_str(message.body().unwrap()).unwrap();
            let attributes = envelope["MessageAttributes"]
                .as_object()
                .map(|attributes| {
                    attributes
                        .iter()
                        .map(|(k, v)| {
                            (
                                k.clone(),
                                v["Value"].as_str().unwrap_or_default().to_owned(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            delivered.push(Delivered {
                subject: envelope["Subject"].as_str().unwrap_or_default().to_owned(),
                message: envelope["Message"].as_str().unwrap_or_default().to_owned(),
                attributes,
            });
            sqs.delete_message()
                .queue_url(queue_url)
                .receipt_handle(message.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
    }
    delivered
}

/// Completes an action that waits for the outside world (a build), as that world would.
pub async fn complete_action(
    emulators: &crate::Emulators,
    execution_id: &str,
    stage: &str,
    action: &str,
    status: &str,
    output_variables: serde_json::Value,
) {
    let body = serde_json::json!({"executionId": execution_id, "stage": stage, "action": action,
                                  "status": status, "outputVariables": output_variables});
    let (code, answer) = crate::http::json(
        "POST",
        &format!("{}/codepipeline/complete-action", emulators.admin),
        Some(&body),
    )
    .await;
    assert_eq!(code, 200, "{answer}");
}

/// The jobs CodePipeline has for `pipeline`'s Lambda actions that wait for a result, with the
/// event CodePipeline invokes the function with.
pub async fn waiting_jobs(emulators: &crate::Emulators, pipeline: &str) -> Vec<serde_json::Value> {
    let url = format!(
        "{}/codepipeline/jobs?pipeline={pipeline}&status=InProgress",
        emulators.admin
    );
    let (code, answer) = crate::http::json("GET", &url, None).await;
    assert_eq!(code, 200, "{answer}");
    answer["jobs"].as_array().cloned().unwrap_or_default()
}

/// Creates IAM user `name` with an access key and returns an SDK configuration acting as that
/// user (the emulators name the caller after the key: a pull request's author, say, who is not
/// the function approving it).
pub async fn user(emulators: &crate::Emulators, sdk: &SdkConfig, name: &str) -> SdkConfig {
    let iam = aws_sdk_iam::Client::new(sdk);
    iam.create_user()
        .user_name(name)
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateUser {name}: {e:?}"));
    let key = iam
        .create_access_key()
        .user_name(name)
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateAccessKey {name}: {e:?}"))
        .access_key
        .unwrap();
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(emulators.region.clone()))
        .endpoint_url(&emulators.aws.endpoint)
        .credentials_provider(aws_credential_types::Credentials::new(
            key.access_key_id,
            key.secret_access_key,
            None,
            None,
            "emulator-user",
        ))
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .load()
        .await
}

/// Opens a pull request from `source` into `destination` of `repository`; returns its id.
pub async fn pull_request(
    sdk: &SdkConfig,
    repository: &str,
    source: &str,
    destination: &str,
    title: &str,
) -> String {
    let target = aws_sdk_codecommit::types::Target::builder()
        .repository_name(repository)
        .source_reference(source)
        .destination_reference(destination)
        .build()
        .unwrap();
    aws_sdk_codecommit::Client::new(sdk)
        .create_pull_request()
        .title(title)
        .description("created by a test")
        .targets(target)
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreatePullRequest {repository} {source}->{destination}: {e:?}"))
        .pull_request
        .and_then(|p| p.pull_request_id)
        .unwrap()
}

/// Creates the pull-request validation project: a CodeBuild project building `repository`
/// from CodeCommit with `infra/buildspec-pr.yml`, as `PullRequestProject` in `infra/pipeline.yaml` does.
pub async fn validation_project(sdk: &SdkConfig, name: &str, repository: &str, region: &str) {
    use aws_sdk_codebuild::types::{
        ArtifactsType, ComputeType, EnvironmentType, ProjectArtifacts, ProjectEnvironment,
        ProjectSource, SourceType,
    };
    aws_sdk_codebuild::Client::new(sdk)
        .create_project()
        .name(name)
        .source(
            ProjectSource::builder()
                .r#type(SourceType::Codecommit)
                .location(format!(
                    "https://git-codecommit.{region}.amazonaws.com/v1/repos/{repository}"
                ))
                .buildspec("infra/buildspec-pr.yml")
                .build()
                .unwrap(),
        )
        .artifacts(
            ProjectArtifacts::builder()
                .r#type(ArtifactsType::NoArtifacts)
                .build()
                .unwrap(),
        )
        .environment(
            ProjectEnvironment::builder()
                .r#type(EnvironmentType::ArmContainer)
                .image("aws/codebuild/amazonlinux-aarch64-standard:3.0")
                .compute_type(ComputeType::BuildGeneral1Large)
                .build()
                .unwrap(),
        )
        .service_role("arn:aws:iam::123456789012:role/shop-pr-validation")
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateProject {name}: {e:?}"));
}

/// Creates a pipeline image build project like `ImageBuildProject` of `infra/pipeline.yaml`
/// (moto wants locations even for CODEPIPELINE sources and artifacts; AWS ignores them).
pub async fn image_project(sdk: &SdkConfig, name: &str) {
    aws_sdk_codebuild::Client::new(sdk)
        .create_project()
        .name(name)
        .source(
            aws_sdk_codebuild::types::ProjectSource::builder()
                .r#type(aws_sdk_codebuild::types::SourceType::Codepipeline)
                .location("pipeline")
                .build()
                .unwrap(),
        )
        .artifacts(
            aws_sdk_codebuild::types::ProjectArtifacts::builder()
                .r#type(aws_sdk_codebuild::types::ArtifactsType::Codepipeline)
                .location("pipeline")
                .build()
                .unwrap(),
        )
        .environment(
            aws_sdk_codebuild::types::ProjectEnvironment::builder()
                .r#type(aws_sdk_codebuild::types::EnvironmentType::ArmContainer)
                .image("aws/codebuild/amazonlinux-aarch64-standard:3.0")
                .compute_type(aws_sdk_codebuild::types::ComputeType::BuildGeneral1Small)
                .privileged_mode(true)
                .build()
                .unwrap(),
        )
        .service_role("arn:aws:iam::123456789012:role/shop-image-build")
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateProject {name}: {e:?}"));
}
