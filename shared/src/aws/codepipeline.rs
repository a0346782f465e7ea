use aws_sdk_codepipeline::Client;
use aws_sdk_codepipeline::operation::put_job_failure_result::PutJobFailureResultError;
use aws_sdk_codepipeline::operation::put_job_success_result::PutJobSuccessResultError;
use aws_sdk_codepipeline::types::{
    ActionCategory, ActionExecutionDetail, ActionExecutionFilter, ExecutionDetails, FailureDetails,
    FailureType, SourceRevisionOverride, SourceRevisionType,
};

use super::upstream;
use crate::error::UpstreamError;
use crate::ports::{
    ActionHistory, ActionRun, FailureKind, JobFailure, JobResults, JobSuccess, PipelineApi,
    Reported, SourceAction, StartExecution, StartedExecution,
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

    async fn action_runs(
        &self,
        pipeline: &str,
        execution_id: &str,
    ) -> Result<Vec<ActionRun>, UpstreamError> {
        let filter = ActionExecutionFilter::builder()
            .pipeline_execution_id(execution_id)
            .build();
        let mut runs = Vec::new();
        let mut next_token = None;
        for _ in 0..MAX_ACTION_RUN_PAGES {
            let page = self
                .client
                .list_action_executions()
                .pipeline_name(pipeline)
                .filter(filter.clone())
                .max_results(100)
                .set_next_token(next_token)
                .send()
                .await
                .map_err(|error| upstream(SERVICE, "ListActionExecutions", error))?;
            runs.extend(page.action_execution_details().iter().map(action_run));
            next_token = page.next_token().map(str::to_owned);
            if next_token.is_none() {
                break;
            }
        }
        Ok(runs)
    }
}

impl ActionHistory for CodePipeline {
    async fn action_runs(
        &self,
        pipeline: &str,
        execution_id: &str,
    ) -> Result<Vec<ActionRun>, UpstreamError> {
        PipelineApi::action_runs(self, pipeline, execution_id).await
    }
}

/// How many pages (100 runs each) of one execution's action runs are read: an execution runs
/// a few dozen actions at most, even with retried stages.
const MAX_ACTION_RUN_PAGES: usize = 5;

fn time(value: Option<&aws_smithy_types::DateTime>) -> Option<chrono::DateTime<chrono::Utc>> {
    value.and_then(|t| chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos()))
}

fn action_run(detail: &ActionExecutionDetail) -> ActionRun {
    let input = detail.input();
    let kind = input.and_then(|i| i.action_type_id());
    let result = detail.output().and_then(|o| o.execution_result());
    let error = result.and_then(|r| r.error_details());
    let owned = |value: Option<&str>| value.map(str::to_owned);
    ActionRun {
        stage: detail.stage_name().unwrap_or_default().to_owned(),
        action: detail.action_name().unwrap_or_default().to_owned(),
        category: kind
            .map(|k| k.category().as_str().to_owned())
            .unwrap_or_default(),
        provider: kind.map(|k| k.provider().to_owned()).unwrap_or_default(),
        status: detail
            .status()
            .map(|s| s.as_str().to_owned())
            .unwrap_or_default(),
        started_at: time(detail.start_time()),
        updated_at: time(detail.last_update_time()),
        updated_by: owned(detail.updated_by()),
        summary: owned(result.and_then(|r| r.external_execution_summary())),
        url: owned(result.and_then(|r| r.external_execution_url())),
        external_id: owned(result.and_then(|r| r.external_execution_id())),
        error_code: owned(error.and_then(|e| e.code())),
        error_message: owned(error.and_then(|e| e.message())),
        log_stream_arn: owned(result.and_then(|r| r.log_stream_arn())),
        configuration: input
            .and_then(|i| i.configuration())
            .map(|c| c.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default(),
        output_variables: detail
            .output()
            .and_then(|o| o.output_variables())
            .map(|v| v.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default(),
    }
}

/// CodePipeline caps the summary of a job result at this many characters.
const MAX_SUMMARY: usize = 2048;
/// … and a failure message at this many.
const MAX_FAILURE_MESSAGE: usize = 5000;

impl JobResults for CodePipeline {
    async fn succeed(&self, job_id: &str, result: &JobSuccess) -> Result<Reported, UpstreamError> {
        let details = ExecutionDetails::builder()
            .summary(crate::text::clip(&result.summary, MAX_SUMMARY))
            .set_external_execution_id(result.external_execution_id.clone())
            .set_percent_complete(result.percent_complete.map(i32::from))
            .build();
        let outcome =
            self.client
                .put_job_success_result()
                .job_id(job_id)
                .execution_details(details)
                .set_continuation_token(result.continuation_token.clone())
                .set_output_variables(
                    (!result.output_variables.is_empty() && result.continuation_token.is_none())
                        .then(|| {
                            result
                                .output_variables
                                .iter()
                                .map(|(k, v)| (k.clone(), v.clone()))
                                .collect()
                        }),
                )
                .send()
                .await;
        match outcome {
            Ok(_) => Ok(Reported::Recorded),
            // A redelivered invocation reports a job that is no longer in progress: it was reported.
            Err(error)
                if matches!(
                    error.as_service_error(),
                    Some(PutJobSuccessResultError::InvalidJobStateException(_))
                ) =>
            {
                Ok(Reported::AlreadyReported)
            }
            Err(error) => Err(upstream(SERVICE, "PutJobSuccessResult", error)),
        }
    }

    async fn fail(&self, job_id: &str, failure: &JobFailure) -> Result<Reported, UpstreamError> {
        let kind = match failure.kind {
            FailureKind::ConfigurationError => FailureType::ConfigurationError,
            FailureKind::JobFailed => FailureType::JobFailed,
        };
        let details = FailureDetails::builder()
            .r#type(kind)
            .message(crate::text::clip(&failure.message, MAX_FAILURE_MESSAGE))
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
            Err(error)
                if matches!(
                    error.as_service_error(),
                    Some(PutJobFailureResultError::InvalidJobStateException(_))
                ) =>
            {
                Ok(Reported::AlreadyReported)
            }
            Err(error) => Err(upstream(SERVICE, "PutJobFailureResult", error)),
        }
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_codepipeline::Client;
    use aws_sdk_codepipeline::operation::put_job_failure_result::PutJobFailureResultOutput;
    use aws_sdk_codepipeline::operation::put_job_success_result::PutJobSuccessResultOutput;
    use aws_sdk_codepipeline::operation::start_pipeline_execution::StartPipelineExecutionOutput;
    use aws_sdk_codepipeline::types::error::{InvalidJobStateException, JobNotFoundException};
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    use super::*;

    #[tokio::test]
    async fn an_executions_action_runs_are_read_page_by_page() {
        use aws_sdk_codepipeline::operation::list_action_executions::ListActionExecutionsOutput;
        use aws_sdk_codepipeline::types::{
            ActionExecutionDetail, ActionExecutionInput, ActionExecutionOutput,
            ActionExecutionResult, ActionExecutionStatus, ActionOwner, ActionTypeId, ErrorDetails,
        };
        let deploy = ActionExecutionDetail::builder()
            .pipeline_execution_id("e-1")
            .stage_name("Deploy")
            .action_name("EksDeploy")
            .status(ActionExecutionStatus::Failed)
            .start_time(aws_smithy_types::DateTime::from_secs(1_795_000_000))
            .last_update_time(aws_smithy_types::DateTime::from_secs(1_795_000_090))
            .input(
                ActionExecutionInput::builder()
                    .action_type_id(
                        ActionTypeId::builder()
                            .category(ActionCategory::Invoke)
                            .owner(ActionOwner::Aws)
                            .provider("Lambda")
                            .version("1")
                            .build()
                            .unwrap(),
                    )
                    .configuration("FunctionName", "eks-deploy")
                    .build(),
            )
            .output(
                ActionExecutionOutput::builder()
                    .execution_result(
                        ActionExecutionResult::builder()
                            .external_execution_summary("rollout failed")
                            .error_details(
                                ErrorDetails::builder()
                                    .code("JobFailed")
                                    .message("rollout failed. Rolled back to shop:v1.")
                                    .build(),
                            )
                            .build(),
                    )
                    .output_variables("IMAGE", "shop:v2")
                    .build(),
            )
            .build();
        let first = mock!(Client::list_action_executions)
            .match_requests(|request| {
                request.pipeline_name() == Some("shop-main")
                    && request.filter().and_then(|f| f.pipeline_execution_id()) == Some("e-1")
                    && request.next_token().is_none()
            })
            .then_output(move || {
                ListActionExecutionsOutput::builder()
                    .action_execution_details(deploy.clone())
                    .next_token("page-2")
                    .build()
            });
        let second = mock!(Client::list_action_executions)
            .match_requests(|request| request.next_token() == Some("page-2"))
            .then_output(|| {
                ListActionExecutionsOutput::builder()
                    .action_execution_details(
                        ActionExecutionDetail::builder()
                            .stage_name("Source")
                            .action_name("Source")
                            .build(),
                    )
                    .build()
            });
        let client = mock_client!(
            aws_sdk_codepipeline,
            RuleMode::Sequential,
            [&first, &second]
        );
        // Through the history port (approval-notify's promotion facts), which reads the same
        // records as PipelineApi::action_runs.
        let runs = ActionHistory::action_runs(&CodePipeline::new(client), "shop-main", "e-1")
            .await
            .unwrap();
        assert_eq!(runs.len(), 2);
        let deploy = &runs[0];
        assert_eq!(
            (
                deploy.stage.as_str(),
                deploy.action.as_str(),
                deploy.category.as_str()
            ),
            ("Deploy", "EksDeploy", "Invoke")
        );
        assert_eq!(deploy.status, "Failed");
        assert_eq!(deploy.provider, "Lambda");
        assert_eq!(deploy.error_code.as_deref(), Some("JobFailed"));
        assert_eq!(
            deploy.error_message.as_deref(),
            Some("rollout failed. Rolled back to shop:v1.")
        );
        assert_eq!(deploy.output_variables["IMAGE"], "shop:v2");
        assert_eq!(deploy.configuration["FunctionName"], "eks-deploy");
        assert_eq!(
            deploy.updated_at.map(|t| t.timestamp()),
            Some(1_795_000_090)
        );
        assert_eq!(runs[1].stage, "Source");
        assert_eq!((first.num_calls(), second.num_calls()), (1, 1));
    }

    #[tokio::test]
    async fn an_execution_is_started_on_the_commit_with_the_token() {
        let start = mock!(Client::start_pipeline_execution)
            .match_requests(|request| {
                let revision = &request.source_revisions()[0];
                request.name() == Some("shop-main")
                    && request.client_request_token()
                        == Some("7c9a8f14-3b2e-4d61-9f0a-5e8b1c2d3e4f")
                    && revision.action_name() == "Source"
                    && revision.revision_type() == &SourceRevisionType::CommitId
                    && revision.revision_value() == "0ccf1ae1bf4c7d610115754eef7bf8c60e7f167e"
            })
            .then_output(|| {
                StartPipelineExecutionOutput::builder()
                    .pipeline_execution_id("e-1")
                    .build()
            });
        let pipelines = CodePipeline::new(mock_client!(aws_sdk_codepipeline, [&start]));

        let started = pipelines
            .start_execution(&StartExecution {
                pipeline: "shop-main".into(),
                source_action: "Source".into(),
                commit_id: "0ccf1ae1bf4c7d610115754eef7bf8c60e7f167e".into(),
                client_request_token: "7c9a8f14-3b2e-4d61-9f0a-5e8b1c2d3e4f".into(),
            })
            .await
            .unwrap();

        assert_eq!(started.execution_id, "e-1");
        assert_eq!(start.num_calls(), 1);
    }

    #[tokio::test]
    async fn a_job_already_reported_is_not_an_error_but_a_missing_one_is() {
        let already = mock!(Client::put_job_success_result).then_error(|| {
            PutJobSuccessResultError::InvalidJobStateException(
                InvalidJobStateException::builder()
                    .message("job is Succeeded")
                    .build(),
            )
        });
        let jobs = CodePipeline::new(mock_client!(aws_sdk_codepipeline, [&already]));
        let success = JobSuccess {
            summary: "done".into(),
            continuation_token: None,
            external_execution_id: None,
            percent_complete: None,
            output_variables: Default::default(),
        };
        assert_eq!(
            jobs.succeed("j-1", &success).await.unwrap(),
            Reported::AlreadyReported
        );
        assert_eq!(already.num_calls(), 1);

        let missing = mock!(Client::put_job_success_result).then_error(|| {
            let meta = aws_smithy_types::error::ErrorMetadata::builder()
                .code("JobNotFoundException")
                .message("no job j-2")
                .build();
            PutJobSuccessResultError::JobNotFoundException(
                JobNotFoundException::builder()
                    .message("no job j-2")
                    .meta(meta)
                    .build(),
            )
        });
        let jobs = CodePipeline::new(mock_client!(aws_sdk_codepipeline, [&missing]));
        let error = jobs.succeed("j-2", &success).await.unwrap_err();
        assert_eq!(error.code(), Some("JobNotFoundException"));
        assert_eq!(missing.num_calls(), 1);
    }

    #[tokio::test]
    async fn results_carry_the_continuation_and_clipped_texts() {
        let long = "x".repeat(6000);
        let success = mock!(Client::put_job_success_result)
            .match_requests(|request| {
                request.job_id() == Some("j-1")
                    && request.continuation_token() == Some("{\"image\":\"shop:v2\"}")
                    && request
                        .execution_details()
                        .and_then(|d| d.summary())
                        .map(|s| s.chars().count())
                        == Some(2048)
                    && request
                        .execution_details()
                        .and_then(|d| d.percent_complete())
                        == Some(33)
                    && request.output_variables().is_none()
            })
            .then_output(|| PutJobSuccessResultOutput::builder().build());
        let failure = mock!(Client::put_job_failure_result)
            .match_requests(|request| {
                let details = request.failure_details().unwrap();
                details.r#type() == &FailureType::ConfigurationError
                    && details.message().chars().count() == 5000
            })
            .then_output(|| PutJobFailureResultOutput::builder().build());
        let jobs = CodePipeline::new(mock_client!(aws_sdk_codepipeline, [&success, &failure]));

        jobs.succeed(
            "j-1",
            &JobSuccess {
                summary: long.clone(),
                continuation_token: Some("{\"image\":\"shop:v2\"}".into()),
                external_execution_id: None,
                percent_complete: Some(33),
                // Not sent with a continuation token: CodePipeline refuses them there.
                output_variables: [("IMAGE".to_owned(), "shop:v2".to_owned())].into(),
            },
        )
        .await
        .unwrap();
        jobs.fail(
            "j-1",
            &JobFailure {
                kind: FailureKind::ConfigurationError,
                message: long,
                external_execution_id: None,
            },
        )
        .await
        .unwrap();
        assert_eq!((success.num_calls(), failure.num_calls()), (1, 1));
    }
}
