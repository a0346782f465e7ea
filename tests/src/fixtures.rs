//! Things the tests set up in the emulators through the real AWS APIs: repositories, commits,
//! pipelines.

use aws_config::SdkConfig;
use aws_sdk_codecommit::primitives::Blob;
use aws_sdk_codecommit::types::PutFileEntry;
use aws_sdk_codepipeline::types::{
    ActionCategory, ActionDeclaration, ActionOwner, ActionTypeId, ArtifactStore, ArtifactStoreType,
    InputArtifact, OutputArtifact, PipelineDeclaration, PipelineType, StageDeclaration,
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

/// Creates a V2 pipeline: a CodeCommit source action `Source` on `repository`/`branch`, then a
/// CodeBuild action `Build`.
pub async fn pipeline(sdk: &SdkConfig, name: &str, repository: &str, branch: &str) {
    let role = pipeline_role(sdk, &format!("{name}-role")).await;
    let source = ActionDeclaration::builder()
        .name("Source")
        .action_type_id(
            ActionTypeId::builder()
                .category(ActionCategory::Source)
                .owner(ActionOwner::Aws)
                .provider("CodeCommit")
                .version("1")
                .build()
                .unwrap(),
        )
        .configuration("RepositoryName", repository)
        .configuration("BranchName", branch)
        .configuration("PollForSourceChanges", "false")
        .output_artifacts(
            OutputArtifact::builder()
                .name("SourceOutput")
                .build()
                .unwrap(),
        )
        .run_order(1)
        .build()
        .unwrap();
    let build = ActionDeclaration::builder()
        .name("Build")
        .action_type_id(
            ActionTypeId::builder()
                .category(ActionCategory::Build)
                .owner(ActionOwner::Aws)
                .provider("CodeBuild")
                .version("1")
                .build()
                .unwrap(),
        )
        .configuration("ProjectName", format!("{name}-image"))
        .input_artifacts(
            InputArtifact::builder()
                .name("SourceOutput")
                .build()
                .unwrap(),
        )
        .run_order(1)
        .build()
        .unwrap();
    let declaration = PipelineDeclaration::builder()
        .name(name)
        .role_arn(role)
        .pipeline_type(PipelineType::V2)
        .artifact_store(
            ArtifactStore::builder()
                .r#type(ArtifactStoreType::S3)
                .location("pipeline-artifacts")
                .build()
                .unwrap(),
        )
        .stages(
            StageDeclaration::builder()
                .name("Source")
                .actions(source)
                .build()
                .unwrap(),
        )
        .stages(
            StageDeclaration::builder()
                .name("Build")
                .actions(build)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    aws_sdk_codepipeline::Client::new(sdk)
        .create_pipeline()
        .pipeline(declaration)
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreatePipeline {name}: {e:?}"));
}

/// Creates a V2 pipeline: a CodeCommit source action `Source` on `repository`/`branch`, then a
/// stage `Approval` whose manual approval action `ProductionGate` notifies `topic_arn`.
pub async fn approval_pipeline(
    sdk: &SdkConfig,
    name: &str,
    repository: &str,
    branch: &str,
    topic_arn: &str,
) {
    let role = pipeline_role(sdk, &format!("{name}-role")).await;
    let source = ActionDeclaration::builder()
        .name("Source")
        .action_type_id(
            ActionTypeId::builder()
                .category(ActionCategory::Source)
                .owner(ActionOwner::Aws)
                .provider("CodeCommit")
                .version("1")
                .build()
                .unwrap(),
        )
        .configuration("RepositoryName", repository)
        .configuration("BranchName", branch)
        .configuration("PollForSourceChanges", "false")
        .output_artifacts(
            OutputArtifact::builder()
                .name("SourceOutput")
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let gate = ActionDeclaration::builder()
        .name("ProductionGate")
        .action_type_id(
            ActionTypeId::builder()
                .category(ActionCategory::Approval)
                .owner(ActionOwner::Aws)
                .provider("Manual")
                .version("1")
                .build()
                .unwrap(),
        )
        .configuration("NotificationArn", topic_arn)
        .configuration("ExternalEntityLink", "https://staging.shop.example.com")
        .configuration(
            "CustomData",
            "Staging runs the new checkout. Approve to deploy it to production.",
        )
        .build()
        .unwrap();
    let declaration = PipelineDeclaration::builder()
        .name(name)
        .role_arn(role)
        .pipeline_type(PipelineType::V2)
        .artifact_store(
            ArtifactStore::builder()
                .r#type(ArtifactStoreType::S3)
                .location("pipeline-artifacts")
                .build()
                .unwrap(),
        )
        .stages(
            StageDeclaration::builder()
                .name("Source")
                .actions(source)
                .build()
                .unwrap(),
        )
        .stages(
            StageDeclaration::builder()
                .name("Approval")
                .actions(gate)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    aws_sdk_codepipeline::Client::new(sdk)
        .create_pipeline()
        .pipeline(declaration)
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreatePipeline {name}: {e:?}"));
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
