use std::future::Future;

use crate::error::UpstreamError;

/// Reading CodeCommit pull requests, commenting on them and approving them.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait PullRequestApi: Send + Sync {
    /// The pull request `pull_request_id` as it is now.
    fn pull_request(
        &self,
        pull_request_id: &str,
    ) -> impl Future<Output = Result<PullRequest, UpstreamError>> + Send;

    /// Posts `comment`. Idempotent under `comment.client_request_token`: a token already used
    /// is answered [`PostedComment::AlreadyPosted`], never a second comment.
    fn post_comment(
        &self,
        comment: &PullRequestComment,
    ) -> impl Future<Output = Result<PostedComment, UpstreamError>> + Send;

    /// The `clientRequestToken`s of the comments on pull request `pull_request_id`: what tells
    /// which of its comments were posted already (at most the first few thousand comments).
    fn comment_tokens(
        &self,
        pull_request_id: &str,
    ) -> impl Future<Output = Result<Vec<String>, UpstreamError>> + Send;

    /// Sets the caller's approval of revision `revision_id` of the pull request. Setting the
    /// same state again changes nothing.
    fn update_approval(
        &self,
        pull_request_id: &str,
        revision_id: &str,
        approval: PullRequestApproval,
    ) -> impl Future<Output = Result<(), UpstreamError>> + Send;
}

/// A pull request, as much of it as the functions use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequest {
    /// Its id.
    pub id: String,
    /// Its title.
    pub title: String,
    /// Whether it is open.
    pub open: bool,
    /// Whether it was merged.
    pub merged: bool,
    /// The commit its merge made on the destination branch (`mergeMetadata.mergeCommitId`).
    pub merge_commit: Option<String>,
    /// Its current revision: approvals are given on it.
    pub revision_id: String,
    /// Who opened it.
    pub author_arn: Option<String>,
    /// The repository.
    pub repository: String,
    /// The branch to merge from (`refs/heads/...`).
    pub source_reference: String,
    /// The branch to merge into (`refs/heads/...`).
    pub destination_reference: String,
    /// The tip of the source branch: the commit under review.
    pub source_commit: String,
    /// The tip of the destination branch.
    pub destination_commit: String,
}

/// A general comment on a pull request's comparison of two commits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequestComment {
    /// The pull request.
    pub pull_request_id: String,
    /// Its repository.
    pub repository: String,
    /// The destination side of the comparison.
    pub before_commit_id: String,
    /// The source side of the comparison.
    pub after_commit_id: String,
    /// Markdown, at most 10,240 characters.
    pub content: String,
    /// Makes the post idempotent: the same token never posts twice.
    pub client_request_token: String,
}

/// The most a comment may hold.
pub const MAX_COMMENT_CHARS: usize = 10_240;

/// What posting a comment did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PostedComment {
    /// The comment is there (posted now, or by an earlier identical request).
    Posted {
        /// Its id.
        comment_id: String,
    },
    /// A comment was already posted under this token, with other content.
    AlreadyPosted,
}

/// An approval state a reviewer gives a revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PullRequestApproval {
    /// Approve it.
    Approve,
    /// Take an approval back (or record that there is none).
    Revoke,
}

impl PullRequestApproval {
    /// The state as CodeCommit spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Approve => "APPROVE",
            Self::Revoke => "REVOKE",
        }
    }
}
