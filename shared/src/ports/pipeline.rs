use std::collections::BTreeMap;
use std::future::Future;

use chrono::{DateTime, Utc};

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

    /// Every action run of execution `execution_id` of `pipeline` (ListActionExecutions), newest
    /// first: what each action reported, when, and who decided an approval.
    fn action_runs(
        &self,
        pipeline: &str,
        execution_id: &str,
    ) -> impl Future<Output = Result<Vec<ActionRun>, UpstreamError>> + Send;
}

/// One action's run in a pipeline execution, as ListActionExecutions tells it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ActionRun {
    /// The stage.
    pub stage: String,
    /// The action.
    pub action: String,
    /// Its category: `Source`, `Build`, `Test`, `Approval`, `Deploy`, `Invoke`.
    pub category: String,
    /// Its provider: `CodeCommit`, `CodeBuild`, `Manual`, `Lambda`…
    pub provider: String,
    /// `InProgress`, `Succeeded`, `Failed`, `Abandoned`.
    pub status: String,
    /// When it started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it last changed (for a finished run: when it ended).
    pub updated_at: Option<DateTime<Utc>>,
    /// Who last changed it (the ARN of the identity that decided an approval).
    pub updated_by: Option<String>,
    /// What it reported (a failure's text, an approval's summary, a commit's message).
    pub summary: Option<String>,
    /// Its link (a build's page, a commit's page).
    pub url: Option<String>,
    /// Its id outside CodePipeline (a commit id, a build id, a job's id).
    pub external_id: Option<String>,
    /// The error code of a failed run.
    pub error_code: Option<String>,
    /// The error message of a failed run.
    pub error_message: Option<String>,
    /// Its log stream, when CodePipeline ran it on its own compute.
    pub log_stream_arn: Option<String>,
    /// Its configuration as declared (`RepositoryName`, `FunctionName`…).
    pub configuration: BTreeMap<String, String>,
    /// The output variables it set.
    pub output_variables: BTreeMap<String, String>,
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
