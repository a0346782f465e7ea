use std::future::Future;

use crate::error::UpstreamError;

/// Reading a CodeCommit repository.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait RepositoryApi: Send + Sync {
    /// The commit `commit_id` of `repository`.
    fn commit(
        &self,
        repository: &str,
        commit_id: &str,
    ) -> impl Future<Output = Result<Commit, UpstreamError>> + Send;

    /// The commit `branch` of `repository` points to now; `None` when there is no such branch
    /// (it was deleted).
    fn branch_tip(
        &self,
        repository: &str,
        branch: &str,
    ) -> impl Future<Output = Result<Option<String>, UpstreamError>> + Send;
}

/// A commit, as much of it as the functions use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    /// The full commit id.
    pub id: String,
    /// The whole commit message.
    pub message: String,
    /// The author's name, when recorded.
    pub author: Option<String>,
}

impl Commit {
    /// The first line of the message.
    pub fn subject(&self) -> &str {
        self.message.lines().next().unwrap_or_default().trim()
    }
}
