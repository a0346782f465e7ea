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
