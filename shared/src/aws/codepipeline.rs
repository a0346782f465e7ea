use aws_sdk_codepipeline::Client;
use aws_sdk_codepipeline::types::{ActionCategory, SourceRevisionOverride, SourceRevisionType};

use super::upstream;
use crate::error::UpstreamError;
use crate::ports::{PipelineApi, SourceAction, StartExecution, StartedExecution};

const SERVICE: &str = "CodePipeline";

/// [`PipelineApi`] over AWS CodePipeline.
#[derive(Debug, Clone)]
pub struct CodePipeline {
    client: Client,
}

impl CodePipeline {
    /// An adapter over `client`.
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

impl PipelineApi for CodePipeline {
    async fn start_execution(
        &self,
        request: &StartExecution,
    ) -> Result<StartedExecution, UpstreamError> {
        const OPERATION: &str = "StartPipelineExecution";
        let revision = SourceRevisionOverride::builder()
            .action_name(&request.source_action)
            .revision_type(SourceRevisionType::CommitId)
            .revision_value(&request.commit_id)
            .build()
            .map_err(|error| {
                UpstreamError::new(SERVICE, OPERATION, None, "invalid source revision")
                    .with_source(error)
            })?;
        let output = self
            .client
            .start_pipeline_execution()
            .name(&request.pipeline)
            .client_request_token(&request.client_request_token)
            .source_revisions(revision)
            .send()
            .await
            .map_err(|error| upstream(SERVICE, OPERATION, error))?;
        let execution_id = output.pipeline_execution_id().ok_or_else(|| {
            UpstreamError::new(
                SERVICE,
                OPERATION,
                None,
                "the answer carries no pipelineExecutionId",
            )
        })?;
        Ok(StartedExecution {
            pipeline: request.pipeline.clone(),
            execution_id: execution_id.to_owned(),
        })
    }

    async fn codecommit_source_actions(
        &self,
        pipeline: &str,
        repository: &str,
    ) -> Result<Vec<SourceAction>, UpstreamError> {
        let output = self
            .client
            .get_pipeline()
            .name(pipeline)
            .send()
            .await
            .map_err(|error| upstream(SERVICE, "GetPipeline", error))?;
        let stages = output.pipeline().map(|p| p.stages()).unwrap_or_default();
        let actions = stages
            .iter()
            .flat_map(|stage| stage.actions())
            .filter(|action| {
                action.action_type_id().is_some_and(|kind| {
                    kind.category() == &ActionCategory::Source && kind.provider() == "CodeCommit"
                })
            })
            .filter(|action| {
                action
                    .configuration()
                    .and_then(|settings| settings.get("RepositoryName"))
                    .is_some_and(|name| name == repository)
            })
            .map(|action| SourceAction {
                name: action.name().to_owned(),
                branch: action
                    .configuration()
                    .and_then(|settings| settings.get("BranchName"))
                    .cloned(),
            })
            .collect();
        Ok(actions)
    }
}
