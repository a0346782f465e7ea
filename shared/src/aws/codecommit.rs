use aws_sdk_codecommit::Client;

use super::upstream;
use crate::error::UpstreamError;
use crate::ports::{Commit, RepositoryApi};

const SERVICE: &str = "CodeCommit";

/// [`RepositoryApi`] over AWS CodeCommit.
#[derive(Debug, Clone)]
pub struct CodeCommit {
    client: Client,
}

impl CodeCommit {
    /// An adapter over `client`.
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

impl RepositoryApi for CodeCommit {
    async fn commit(&self, repository: &str, commit_id: &str) -> Result<Commit, UpstreamError> {
        let output = self
            .client
            .get_commit()
            .repository_name(repository)
            .commit_id(commit_id)
            .send()
            .await
            .map_err(|error| upstream(SERVICE, "GetCommit", error))?;
        let commit = output.commit().ok_or_else(|| {
            UpstreamError::new(SERVICE, "GetCommit", None, "the answer carries no commit")
        })?;
        Ok(Commit {
            id: commit.commit_id().unwrap_or(commit_id).to_owned(),
            message: commit.message().unwrap_or_default().to_owned(),
            author: commit.author().and_then(|a| a.name()).map(str::to_owned),
        })
    }
}
