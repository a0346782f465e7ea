use std::future::Future;

use crate::error::UpstreamError;

/// The merged pull requests, by the commit their merge put on the destination branch: what tells
/// which pull request a deployed commit came from.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait MergedPullRequests: Send + Sync {
    /// Records `merge` (recording it again changes nothing).
    fn record_merge(
        &self,
        merge: &MergedPullRequest,
    ) -> impl Future<Output = Result<(), UpstreamError>> + Send;

    /// The pull request whose merge made `commit_id` in `repository`, if one did.
    fn merged_as(
        &self,
        repository: &str,
        commit_id: &str,
    ) -> impl Future<Output = Result<Option<MergedPullRequest>, UpstreamError>> + Send;
}

/// A merged pull request, as much as a comment on it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergedPullRequest {
    /// The repository.
    pub repository: String,
    /// The commit the merge put on the destination branch (`mergeMetadata.mergeCommitId`).
    pub merge_commit: String,
    /// The pull request.
    pub pull_request_id: String,
    /// Its title.
    pub title: String,
    /// The destination side of its comparison (a comment's `beforeCommitId`).
    pub destination_commit: String,
    /// The source side (a comment's `afterCommitId`).
    pub source_commit: String,
}
