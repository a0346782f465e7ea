use std::future::Future;

use crate::error::UpstreamError;
use crate::ports::ActionRun;

/// What the actions of one pipeline execution did, as CodePipeline recorded it: the one
/// capability a reader of an execution's history needs (approval-notify's promotion facts),
/// without the rest of [`crate::ports::PipelineApi`].
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait ActionHistory: Send + Sync {
    /// Every action run of execution `execution_id` of `pipeline` (ListActionExecutions),
    /// newest first.
    fn action_runs(
        &self,
        pipeline: &str,
        execution_id: &str,
    ) -> impl Future<Output = Result<Vec<ActionRun>, UpstreamError>> + Send;
}
