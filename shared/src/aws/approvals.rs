use aws_sdk_codepipeline::Client;
use aws_sdk_codepipeline::types::{ApprovalResult, ApprovalStatus};
use aws_smithy_types::date_time::Format;

use super::upstream;
use crate::approval_link::{Approval, Decision};
use crate::error::UpstreamError;
use crate::ports::{ApprovalApi, ApprovalState, Revision};

const SERVICE: &str = "CodePipeline";

/// [`ApprovalApi`] over AWS CodePipeline.
#[derive(Debug, Clone)]
pub struct CodePipelineApprovals {
    client: Client,
}

impl CodePipelineApprovals {
    /// An adapter over `client`.
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

impl ApprovalApi for CodePipelineApprovals {
    async fn approval_state(
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
