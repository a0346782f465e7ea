use aws_sdk_codepipeline::Client;
use aws_sdk_codepipeline::types::{
    ActionCategory, ExecutionDetails, FailureDetails, FailureType, SourceRevisionOverride,
    SourceRevisionType,
};

use super::upstream;
use crate::error::UpstreamError;
use crate::ports::{
    FailureKind, JobFailure, JobResults, JobSuccess, PipelineApi, Reported, SourceAction,
    StartExecution, StartedExecution,
};

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

/// CodePipeline caps the summary of a job result at this many characters.
const MAX_SUMMARY: usize = 2048;
/// … and a failure message at this many.
const MAX_FAILURE_MESSAGE: usize = 5000;

fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut clipped: String = text.chars().take(max - 1).collect();
    clipped.push('…');
    clipped
}

fn job_result_error<E>(
    operation: &'static str,
    error: aws_smithy_runtime_api::client::result::SdkError<
        E,
        aws_smithy_runtime_api::http::Response,
    >,
) -> Result<Reported, UpstreamError>
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata
        + std::error::Error
        + Send
        + Sync
        + 'static,
{
    use aws_smithy_types::error::metadata::ProvideErrorMetadata as _;
    // A redelivered invocation reports a job that is no longer in progress: it was reported.
    if error.code() == Some("InvalidJobStateException") {
        return Ok(Reported::AlreadyReported);
    }
    Err(upstream(SERVICE, operation, error))
}

impl JobResults for CodePipeline {
    async fn succeed(&self, job_id: &str, result: &JobSuccess) -> Result<Reported, UpstreamError> {
        let details = ExecutionDetails::builder()
            .summary(clip(&result.summary, MAX_SUMMARY))
            .set_external_execution_id(result.external_execution_id.clone())
            .set_percent_complete(result.percent_complete.map(i32::from))
            .build();
        let outcome = self
            .client
            .put_job_success_result()
            .job_id(job_id)
            .execution_details(details)
            .set_continuation_token(result.continuation_token.clone())
            .send()
            .await;
        match outcome {
            Ok(_) => Ok(Reported::Recorded),
            Err(error) => job_result_error("PutJobSuccessResult", error),
        }
    }

    async fn fail(&self, job_id: &str, failure: &JobFailure) -> Result<Reported, UpstreamError> {
        let kind = match failure.kind {
            FailureKind::ConfigurationError => FailureType::ConfigurationError,
            FailureKind::JobFailed => FailureType::JobFailed,
        };
        let details = FailureDetails::builder()
            .r#type(kind)
            .message(clip(&failure.message, MAX_FAILURE_MESSAGE))
            .set_external_execution_id(failure.external_execution_id.clone())
            .build()
            .map_err(|error| {
                UpstreamError::new(
                    SERVICE,
                    "PutJobFailureResult",
                    None,
                    "invalid failure details",
                )
                .with_source(error)
            })?;
        let outcome = self
            .client
            .put_job_failure_result()
            .job_id(job_id)
            .failure_details(details)
            .send()
            .await;
        match outcome {
            Ok(_) => Ok(Reported::Recorded),
            Err(error) => job_result_error("PutJobFailureResult", error),
        }
    }
}
