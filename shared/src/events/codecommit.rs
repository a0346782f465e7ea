//! CodeCommit events as EventBridge delivers them. `aws_lambda_events` has the SNS-era
//! `CodeCommitEvent` but not these EventBridge details, so they are typed here after
//! <https://docs.aws.amazon.com/codecommit/latest/userguide/monitoring-events.html>.

use serde::{Deserialize, Serialize};

/// The EventBridge `source` of every CodeCommit event.
pub const SOURCE: &str = "aws.codecommit";

/// `detail-type` of pushes, branch and tag creation and deletion.
pub const REPOSITORY_STATE_CHANGE: &str = "CodeCommit Repository State Change";

/// What happened to a reference (branch or tag) of a repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RepositoryStateChange {
    /// `referenceCreated`, `referenceUpdated`, `referenceDeleted`, `unreferencedMergeCommitCreated`.
    pub event: RepositoryEventKind,
    /// The repository's name.
    pub repository_name: String,
    /// The repository's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository_id: Option<String>,
    /// `branch` or `tag`; absent on unreferenced merge commits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_type: Option<ReferenceType>,
    /// The branch or tag name (`main`, `release/1.2`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_name: Option<String>,
    /// The full reference (`refs/heads/main`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_full_name: Option<String>,
    /// The commit the reference now points to; absent when it was deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit_id: Option<String>,
    /// The commit the reference pointed to before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_commit_id: Option<String>,
    /// Who pushed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller_user_arn: Option<String>,
}

/// The kind of repository change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RepositoryEventKind {
    /// A branch or tag was created.
    ReferenceCreated,
    /// A branch or tag moved to another commit (a push, a merge, a force-push).
    ReferenceUpdated,
    /// A branch or tag was deleted.
    ReferenceDeleted,
    /// A merge commit was made that no reference points to (yet).
    UnreferencedMergeCommitCreated,
    /// A kind CodeCommit may add later: ignored rather than failed, so a new event kind
    /// never lands in the dead-letter queue.
    #[serde(other)]
    Other,
}

/// What kind of reference changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ReferenceType {
    /// A branch (`refs/heads/...`).
    Branch,
    /// A tag (`refs/tags/...`).
    Tag,
    /// Anything else.
    #[serde(other)]
    Other,
}
