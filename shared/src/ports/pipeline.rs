use std::future::Future;

use crate::error::UpstreamError;

/// Starting and inspecting CodePipeline executions.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait PipelineApi: Send + Sync {
    /// Starts `request.pipeline` on exactly `request.commit_id`. Idempotent under
    /// `request.client_request_token`: the same token never starts a second execution.
    fn start_execution(
        &self,
        request: &StartExecution,
    ) -> impl Future<Output = Result<StartedExecution, UpstreamError>> + Send;

    /// The source actions of `pipeline` that read from CodeCommit `repository`.
    fn codecommit_source_actions(
        &self,
        pipeline: &str,
        repository: &str,
    ) -> impl Future<Output = Result<Vec<SourceAction>, UpstreamError>> + Send;
}

/// A pipeline execution to start on one commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartExecution {
    /// The pipeline's name.
    pub pipeline: String,
    /// The source action whose revision is pinned.
    pub source_action: String,
    /// The commit to build.
    pub commit_id: String,
    /// Idempotency token: the same token never starts a second execution.
    pub client_request_token: String,
}

/// An execution that was started (or had already been started with the same token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartedExecution {
    /// The pipeline's name.
    pub pipeline: String,
    /// CodePipeline's execution id.
    pub execution_id: String,
}

/// A source action of a pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceAction {
    /// The action's name, as `sourceRevisions` names it.
    pub name: String,
    /// The branch the action is configured to follow.
    pub branch: Option<String>,
}
