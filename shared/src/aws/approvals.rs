use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use aws_sdk_codepipeline::Client;
use aws_sdk_codepipeline::types::{ApprovalResult, ApprovalStatus, ExecutionMode};
use aws_smithy_types::date_time::Format;

use super::upstream;
use crate::approval_link::{Approval, Decision};
use crate::error::UpstreamError;
use crate::ports::{ApprovalApi, ApprovalState, Revision};

const SERVICE: &str = "CodePipeline";

/// How many pages of ListActionExecutions (100 runs each, newest first) are searched for an
/// approval: a waiting approval is at most 7 days old, and a thousand action runs cover that for
/// any pipeline that is not run every few minutes.
const MAX_ACTION_EXECUTION_PAGES: usize = 10;

/// [`ApprovalApi`] over AWS CodePipeline.
///
/// Where an approval's token is read depends on the pipeline's execution mode, read with
/// GetPipeline once per cold start and pipeline: SUPERSEDED and QUEUED pipelines show it in
/// GetPipelineState; a PARALLEL pipeline shows none there ("For a pipeline where the execution
/// mode is set to PARALLEL, the token ... is not available", PutApprovalResult API reference), and
/// the approval is the action execution of ListActionExecutions whose `externalExecutionId` is
/// the token PutApprovalResult takes.
#[derive(Debug, Clone)]
pub struct CodePipelineApprovals {
    client: Client,
    parallel: Arc<Mutex<HashMap<String, bool>>>,
}

impl CodePipelineApprovals {
    /// An adapter over `client`.
    pub fn new(client: Client) -> Self {
        Self {
            client,
            parallel: Arc::default(),
        }
    }

    /// Whether `pipeline` runs in PARALLEL mode.
    async fn is_parallel(&self, pipeline: &str) -> Result<bool, UpstreamError> {
        if let Some(known) = self
            .parallel
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(pipeline)
        {
            return Ok(*known);
        }
        let output = self
            .client
            .get_pipeline()
            .name(pipeline)
            .send()
            .await
            .map_err(|error| upstream(SERVICE, "GetPipeline", error))?;
        // V1 pipelines and V2 ones without a mode run SUPERSEDED.
        let parallel = output
            .pipeline()
            .and_then(|declaration| declaration.execution_mode())
            == Some(&ExecutionMode::Parallel);
        self.parallel
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(pipeline.to_owned(), parallel);
        Ok(parallel)
    }

    /// The approval action's latest run, from GetPipelineState (SUPERSEDED and QUEUED modes).
    async fn latest_run(
        &self,
        pipeline: &str,
        stage: &str,
        action: &str,
    ) -> Result<ApprovalState, UpstreamError> {
        const OPERATION: &str = "GetPipelineState";
        let output = self
            .client
            .get_pipeline_state()
            .name(pipeline)
            .send()
            .await
            .map_err(|error| upstream(SERVICE, OPERATION, error))?;
        let stage_state = output
            .stage_states()
            .iter()
            .find(|state| state.stage_name() == Some(stage))
            .ok_or_else(|| {
                UpstreamError::new(
                    SERVICE,
                    OPERATION,
                    Some("StageNotFoundException".into()),
                    format!("pipeline {pipeline} has no stage {stage}"),
                )
            })?;
        let action_state = stage_state
            .action_states()
            .iter()
            .find(|state| state.action_name() == Some(action))
            .ok_or_else(|| {
                UpstreamError::new(
                    SERVICE,
                    OPERATION,
                    Some("ActionNotFoundException".into()),
                    format!("stage {stage} of pipeline {pipeline} has no action {action}"),
                )
            })?;
        let latest = action_state.latest_execution();
        Ok(ApprovalState {
            execution_id: stage_state
                .latest_execution()
                .map(|execution| execution.pipeline_execution_id().to_owned()),
            status: latest
                .and_then(|run| run.status())
                .map(|status| status.as_str().to_owned()),
            token: latest.and_then(|run| run.token()).map(str::to_owned),
            summary: latest.and_then(|run| run.summary()).map(str::to_owned),
            last_updated_by: latest
                .and_then(|run| run.last_updated_by())
                .map(str::to_owned),
        })
    }

    /// The run of the approval action whose request is `token`, from ListActionExecutions
    /// (PARALLEL mode, where several executions may wait at the same approval at once). An
    /// approval not found is one of no known state.
    async fn run_with_token(
        &self,
        pipeline: &str,
        stage: &str,
        action: &str,
        token: &str,
    ) -> Result<ApprovalState, UpstreamError> {
        let mut next_token = None;
        for _ in 0..MAX_ACTION_EXECUTION_PAGES {
            let page = self
                .client
                .list_action_executions()
                .pipeline_name(pipeline)
                .max_results(100)
                .set_next_token(next_token)
                .send()
                .await
                .map_err(|error| upstream(SERVICE, "ListActionExecutions", error))?;
            let found = page.action_execution_details().iter().find(|detail| {
                detail.stage_name() == Some(stage)
                    && detail.action_name() == Some(action)
                    && detail
                        .output()
                        .and_then(|output| output.execution_result())
                        .and_then(|result| result.external_execution_id())
                        == Some(token)
            });
            if let Some(detail) = found {
                let result = detail.output().and_then(|output| output.execution_result());
                return Ok(ApprovalState {
                    execution_id: detail.pipeline_execution_id().map(str::to_owned),
                    status: detail.status().map(|status| status.as_str().to_owned()),
                    token: Some(token.to_owned()),
                    summary: result
                        .and_then(|result| result.external_execution_summary())
                        .map(str::to_owned),
                    last_updated_by: detail.updated_by().map(str::to_owned),
                });
            }
            next_token = page.next_token().map(str::to_owned);
            if next_token.is_none() {
                break;
            }
        }
        Ok(ApprovalState::default())
    }
}

impl ApprovalApi for CodePipelineApprovals {
    async fn approval_state(
        &self,
        pipeline: &str,
        stage: &str,
        action: &str,
        token: &str,
    ) -> Result<ApprovalState, UpstreamError> {
        if self.is_parallel(pipeline).await? {
            self.run_with_token(pipeline, stage, action, token).await
        } else {
            self.latest_run(pipeline, stage, action).await
        }
    }

    async fn execution_revision(
        &self,
        pipeline: &str,
        execution_id: &str,
    ) -> Result<Option<Revision>, UpstreamError> {
        let output = self
            .client
            .get_pipeline_execution()
            .pipeline_name(pipeline)
            .pipeline_execution_id(execution_id)
            .send()
            .await
            .map_err(|error| upstream(SERVICE, "GetPipelineExecution", error))?;
        Ok(output.pipeline_execution().and_then(|execution| {
            execution.artifact_revisions().iter().find_map(|revision| {
                revision.revision_id().map(|id| Revision {
                    id: id.to_owned(),
                    summary: revision.revision_summary().map(str::to_owned),
                    url: revision.revision_url().map(str::to_owned),
                })
            })
        }))
    }

    async fn decide(
        &self,
        approval: &Approval,
        decision: Decision,
        summary: &str,
    ) -> Result<Option<String>, UpstreamError> {
        const OPERATION: &str = "PutApprovalResult";
        let result = ApprovalResult::builder()
            .summary(summary)
            .status(ApprovalStatus::from(decision.status()))
            .build()
            .map_err(|error| {
                UpstreamError::new(SERVICE, OPERATION, None, "invalid approval result")
                    .with_source(error)
            })?;
        let output = self
            .client
            .put_approval_result()
            .pipeline_name(&approval.pipeline)
            .stage_name(&approval.stage)
            .action_name(&approval.action)
            .token(&approval.token)
            .result(result)
            .send()
            .await
            .map_err(|error| upstream(SERVICE, OPERATION, error))?;
        Ok(output
            .approved_at()
            .and_then(|time| time.fmt(Format::DateTime).ok()))
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_codepipeline::operation::get_pipeline::GetPipelineOutput;
    use aws_sdk_codepipeline::operation::get_pipeline_state::GetPipelineStateOutput;
    use aws_sdk_codepipeline::operation::list_action_executions::ListActionExecutionsOutput;
    use aws_sdk_codepipeline::types::{
        ActionExecution, ActionExecutionDetail, ActionExecutionOutput, ActionExecutionResult,
        ActionExecutionStatus, ActionState, PipelineDeclaration, StageExecution,
        StageExecutionStatus, StageState,
    };
    use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};

    use super::*;

    const PIPELINE: &str = "shop-main";
    const EXECUTION: &str = "5a7b9c1d-2e3f-4a5b-8c6d-7e8f9a0b1c2d";

    fn get_pipeline(mode: Option<ExecutionMode>) -> Rule {
        mock!(Client::get_pipeline)
            .match_requests(|r| r.name() == Some(PIPELINE))
            .then_output(move || {
                GetPipelineOutput::builder()
                    .pipeline(
                        PipelineDeclaration::builder()
                            .name(PIPELINE)
                            .role_arn("arn:aws:iam::123456789012:role/shop-main")
                            .set_stages(Some(Vec::new()))
                            .set_execution_mode(mode.clone())
                            .build()
                            .unwrap(),
                    )
                    .build()
            })
    }

    fn waiting_state() -> Rule {
        mock!(Client::get_pipeline_state)
            .match_requests(|r| r.name() == Some(PIPELINE))
            .then_output(|| {
                GetPipelineStateOutput::builder()
                    .stage_states(
                        StageState::builder()
                            .stage_name("Approval")
                            .latest_execution(
                                StageExecution::builder()
                                    .pipeline_execution_id(EXECUTION)
                                    .status(StageExecutionStatus::InProgress)
                                    .build()
                                    .unwrap(),
                            )
                            .action_states(
                                ActionState::builder()
                                    .action_name("ProductionGate")
                                    .latest_execution(
                                        ActionExecution::builder()
                                            .status(ActionExecutionStatus::InProgress)
                                            .token("token-1")
                                            .build(),
                                    )
                                    .build(),
                            )
                            .build(),
                    )
                    .build()
            })
    }

    fn approval_run(
        execution: &str,
        request: &str,
        status: ActionExecutionStatus,
    ) -> ActionExecutionDetail {
        ActionExecutionDetail::builder()
            .pipeline_execution_id(execution)
            .stage_name("Approval")
            .action_name("ProductionGate")
            .status(status)
            .output(
                ActionExecutionOutput::builder()
                    .execution_result(
                        ActionExecutionResult::builder()
                            .external_execution_id(request)
                            .external_execution_summary("Approved by alice@example.com")
                            .build(),
                    )
                    .build(),
            )
            .build()
    }

    async fn state_for(approvals: &CodePipelineApprovals, token: &str) -> ApprovalState {
        approvals
            .approval_state(PIPELINE, "Approval", "ProductionGate", token)
            .await
            .unwrap()
    }

    fn approvals_over(rules: &[&Rule]) -> CodePipelineApprovals {
        CodePipelineApprovals::new(mock_client!(
            aws_sdk_codepipeline,
            RuleMode::Sequential,
            rules
        ))
    }

    #[tokio::test]
    async fn a_superseded_pipeline_shows_its_token_in_the_pipeline_state_and_its_mode_is_read_once()
    {
        let mode = get_pipeline(Some(ExecutionMode::Superseded));
        let first = waiting_state();
        let second = waiting_state();
        let approvals = approvals_over(&[&mode, &first, &second]);

        for _ in 0..2 {
            let state = state_for(&approvals, "token-1").await;
            assert!(state.is_waiting_for("token-1"), "{state:?}");
            assert_eq!(state.execution_id.as_deref(), Some(EXECUTION));
        }
        assert_eq!(
            (mode.num_calls(), first.num_calls(), second.num_calls()),
            (1, 1, 1)
        );
    }

    #[tokio::test]
    async fn a_pipeline_without_a_mode_runs_superseded() {
        let mode = get_pipeline(None);
        let state = waiting_state();
        let approvals = approvals_over(&[&mode, &state]);
        let found = state_for(&approvals, "token-1").await;
        assert!(found.is_waiting_for("token-1"));
        assert_eq!((mode.num_calls(), state.num_calls()), (1, 1));
    }

    #[tokio::test]
    async fn a_parallel_pipeline_finds_the_approval_by_its_external_execution_id_page_by_page() {
        const OTHER: &str = "6b8c0d2e-3f4a-4b5c-9d7e-8f9a0b1c2d3e";
        let mode = get_pipeline(Some(ExecutionMode::Parallel));
        let first_page = mock!(Client::list_action_executions)
            .match_requests(|r| {
                r.pipeline_name() == Some(PIPELINE)
                    && r.next_token().is_none()
                    && r.max_results() == Some(100)
            })
            .then_output(|| {
                ListActionExecutionsOutput::builder()
                    .action_execution_details(approval_run(
                        OTHER,
                        "token-2",
                        ActionExecutionStatus::InProgress,
                    ))
                    .next_token("page-2")
                    .build()
            });
        let second_page = mock!(Client::list_action_executions)
            .match_requests(|r| r.next_token() == Some("page-2"))
            .then_output(|| {
                ListActionExecutionsOutput::builder()
                    .action_execution_details(approval_run(
                        EXECUTION,
                        "token-1",
                        ActionExecutionStatus::Succeeded,
                    ))
                    .build()
            });
        let again = mock!(Client::list_action_executions)
            .match_requests(|r| r.next_token().is_none())
            .then_output(|| {
                ListActionExecutionsOutput::builder()
                    .action_execution_details(approval_run(
                        OTHER,
                        "token-2",
                        ActionExecutionStatus::InProgress,
                    ))
                    .build()
            });
        let approvals = approvals_over(&[&mode, &first_page, &second_page, &again]);

        let decided = state_for(&approvals, "token-1").await;
        assert_eq!(decided.execution_id.as_deref(), Some(EXECUTION));
        assert_eq!(decided.status.as_deref(), Some("Succeeded"));
        assert_eq!(
            decided.summary.as_deref(),
            Some("Approved by alice@example.com")
        );
        assert!(!decided.is_waiting_for("token-1"));

        let waiting = state_for(&approvals, "token-2").await;
        assert!(waiting.is_waiting_for("token-2"), "{waiting:?}");
        assert_eq!(waiting.execution_id.as_deref(), Some(OTHER));
        assert_eq!(
            (
                mode.num_calls(),
                first_page.num_calls(),
                second_page.num_calls(),
                again.num_calls()
            ),
            (1, 1, 1, 1)
        );
    }

    #[tokio::test]
    async fn a_parallel_approval_no_run_has_is_of_no_known_state() {
        let mode = get_pipeline(Some(ExecutionMode::Parallel));
        let listed = mock!(Client::list_action_executions).then_output(|| {
            ListActionExecutionsOutput::builder()
                .action_execution_details(approval_run(
                    EXECUTION,
                    "token-1",
                    ActionExecutionStatus::InProgress,
                ))
                .build()
        });
        let approvals = approvals_over(&[&mode, &listed]);
        let unknown = state_for(&approvals, "forged").await;
        assert_eq!(unknown, ApprovalState::default());
        assert_eq!((mode.num_calls(), listed.num_calls()), (1, 1));
    }
}
