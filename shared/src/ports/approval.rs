use std::future::Future;

use crate::approval_link::{Approval, Decision};
use crate::error::UpstreamError;

/// Reading and deciding CodePipeline manual approvals.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait ApprovalApi: Send + Sync {
    /// The state of the approval request `token` of approval action `action` in `stage` of
    /// `pipeline`: in SUPERSEDED and QUEUED pipelines the action's latest run (GetPipelineState,
    /// which shows the token of the request waiting), in PARALLEL ones the run whose request
    /// `token` is (ListActionExecutions: GetPipelineState shows no token there).
    fn approval_state(
        &self,
        pipeline: &str,
        stage: &str,
        action: &str,
        token: &str,
    ) -> impl Future<Output = Result<ApprovalState, UpstreamError>> + Send;

    /// The revision execution `execution_id` of `pipeline` builds, when it has one
    /// (GetPipelineExecution's first artifact revision).
    fn execution_revision(
        &self,
        pipeline: &str,
        execution_id: &str,
    ) -> impl Future<Output = Result<Option<Revision>, UpstreamError>> + Send;

    /// Records `decision` on `approval` with `summary` (PutApprovalResult); returns when
    /// CodePipeline recorded it (RFC 3339), when it says.
    fn decide(
        &self,
        approval: &Approval,
        decision: Decision,
        summary: &str,
    ) -> impl Future<Output = Result<Option<String>, UpstreamError>> + Send;
}

/// What CodePipeline tells of an approval action's run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApprovalState {
    /// The pipeline execution the run belongs to.
    pub execution_id: Option<String>,
    /// `InProgress`, `Succeeded` (approved), `Failed` (rejected or expired), `Abandoned`…;
    /// `None` when the action never ran.
    pub status: Option<String>,
    /// The approval token, while the action waits: a secret; never log it.
    pub token: Option<String>,
    /// The summary recorded with the decision.
    pub summary: Option<String>,
    /// Who last changed the action (an IAM ARN), when CodePipeline says.
    pub last_updated_by: Option<String>,
}

impl ApprovalState {
    /// Whether the approval with `token` still waits for a decision.
    pub fn is_waiting_for(&self, token: &str) -> bool {
        self.status.as_deref() == Some("InProgress") && self.token.as_deref() == Some(token)
    }
}

/// A source revision a pipeline execution builds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revision {
    /// The commit id (or other revision id).
    pub id: String,
    /// The commit message, when known.
    pub summary: Option<String>,
    /// A link to the revision, when known.
    pub url: Option<String>,
}
