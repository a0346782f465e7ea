use aws_sdk_codecommit::Client;
use aws_sdk_codecommit::operation::get_branch::GetBranchError;
use aws_sdk_codecommit::operation::post_comment_for_pull_request::PostCommentForPullRequestError;
use aws_sdk_codecommit::types::{ApprovalState, PullRequestStatusEnum};

use super::upstream;
use crate::error::UpstreamError;
use crate::ports::{
    Commit, PostedComment, PullRequest, PullRequestApi, PullRequestApproval, PullRequestComment,
    RepositoryApi,
};

const SERVICE: &str = "CodeCommit";

/// [`RepositoryApi`] and [`PullRequestApi`] over AWS CodeCommit.
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

    async fn branch_tip(
        &self,
        repository: &str,
        branch: &str,
    ) -> Result<Option<String>, UpstreamError> {
        let result = self
            .client
            .get_branch()
            .repository_name(repository)
            .branch_name(branch)
            .send()
            .await;
        match result {
            Ok(output) => Ok(output
                .branch()
                .and_then(|branch| branch.commit_id())
                .map(str::to_owned)),
            Err(error)
                if matches!(
                    error.as_service_error(),
                    Some(GetBranchError::BranchDoesNotExistException(_))
                ) =>
            {
                Ok(None)
            }
            Err(error) => Err(upstream(SERVICE, "GetBranch", error)),
        }
    }
}

/// How many pages of comments (100 each) are read for their tokens: the function's own comments
/// are a few per build, far fewer than this.
const MAX_COMMENT_PAGES: usize = 20;

impl PullRequestApi for CodeCommit {
    async fn pull_request(&self, pull_request_id: &str) -> Result<PullRequest, UpstreamError> {
        const OPERATION: &str = "GetPullRequest";
        let output = self
            .client
            .get_pull_request()
            .pull_request_id(pull_request_id)
            .send()
            .await
            .map_err(|error| upstream(SERVICE, OPERATION, error))?;
        let incomplete = |what: &str| {
            UpstreamError::new(
                SERVICE,
                OPERATION,
                None,
                format!("the answer has no {what}"),
            )
        };
        let pull_request = output
            .pull_request()
            .ok_or_else(|| incomplete("pullRequest"))?;
        // CodeCommit pull requests have exactly one target.
        let target = pull_request
            .pull_request_targets()
            .first()
            .ok_or_else(|| incomplete("pullRequestTargets"))?;
        let text = |value: Option<&str>, what: &str| {
            value
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
                .ok_or_else(|| incomplete(what))
        };
        Ok(PullRequest {
            id: pull_request
                .pull_request_id()
                .unwrap_or(pull_request_id)
                .to_owned(),
            title: pull_request.title().unwrap_or_default().to_owned(),
            open: pull_request.pull_request_status() == Some(&PullRequestStatusEnum::Open),
            merged: target
                .merge_metadata()
                .is_some_and(|merge| merge.is_merged()),
            merge_commit: target
                .merge_metadata()
                .and_then(|merge| merge.merge_commit_id())
                .filter(|id| !id.is_empty())
                .map(str::to_owned),
            revision_id: text(pull_request.revision_id(), "revisionId")?,
            author_arn: pull_request.author_arn().map(str::to_owned),
            repository: text(target.repository_name(), "repositoryName")?,
            source_reference: text(target.source_reference(), "sourceReference")?,
            destination_reference: text(target.destination_reference(), "destinationReference")?,
            source_commit: text(target.source_commit(), "sourceCommit")?,
            destination_commit: text(target.destination_commit(), "destinationCommit")?,
        })
    }

    async fn post_comment(
        &self,
        comment: &PullRequestComment,
    ) -> Result<PostedComment, UpstreamError> {
        let result = self
            .client
            .post_comment_for_pull_request()
            .pull_request_id(&comment.pull_request_id)
            .repository_name(&comment.repository)
            .before_commit_id(&comment.before_commit_id)
            .after_commit_id(&comment.after_commit_id)
            .content(&comment.content)
            .client_request_token(&comment.client_request_token)
            .send()
            .await;
        match result {
            Ok(output) => Ok(PostedComment::Posted {
                comment_id: output
                    .comment()
                    .and_then(|c| c.comment_id())
                    .unwrap_or_default()
                    .to_owned(),
            }),
            // The token was used before with other content (a build link, a commit that has
            // moved on since): that comment is the one this request meant to post.
            Err(error)
                if matches!(
                    error.as_service_error(),
                    Some(PostCommentForPullRequestError::IdempotencyParameterMismatchException(_))
                ) =>
            {
                Ok(PostedComment::AlreadyPosted)
            }
            Err(error) => Err(upstream(SERVICE, "PostCommentForPullRequest", error)),
        }
    }

    async fn comment_tokens(&self, pull_request_id: &str) -> Result<Vec<String>, UpstreamError> {
        let mut tokens = Vec::new();
        let mut next_token = None;
        for _ in 0..MAX_COMMENT_PAGES {
            let page = self
                .client
                .get_comments_for_pull_request()
                .pull_request_id(pull_request_id)
                .max_results(100)
                .set_next_token(next_token)
                .send()
                .await
                .map_err(|error| upstream(SERVICE, "GetCommentsForPullRequest", error))?;
            tokens.extend(
                page.comments_for_pull_request_data()
                    .iter()
                    .flat_map(|group| group.comments())
                    .filter_map(|comment| comment.client_request_token())
                    .map(str::to_owned),
            );
            next_token = page.next_token().map(str::to_owned);
            if next_token.is_none() {
                break;
            }
        }
        Ok(tokens)
    }

    async fn update_approval(
        &self,
        pull_request_id: &str,
        revision_id: &str,
        approval: PullRequestApproval,
    ) -> Result<(), UpstreamError> {
        let state = match approval {
            PullRequestApproval::Approve => ApprovalState::Approve,
            PullRequestApproval::Revoke => ApprovalState::Revoke,
        };
        self.client
            .update_pull_request_approval_state()
            .pull_request_id(pull_request_id)
            .revision_id(revision_id)
            .approval_state(state)
            .send()
            .await
            .map_err(|error| upstream(SERVICE, "UpdatePullRequestApprovalState", error))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_codecommit::operation::get_comments_for_pull_request::GetCommentsForPullRequestOutput;
    use aws_sdk_codecommit::types::{Comment, CommentsForPullRequest};
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    use super::*;

    fn comments(tokens: &[Option<&str>]) -> CommentsForPullRequest {
        let mut group = CommentsForPullRequest::builder().pull_request_id("17");
        for token in tokens {
            group = group.comments(
                Comment::builder()
                    .content("text")
                    .set_client_request_token(token.map(str::to_owned))
                    .build(),
            );
        }
        group.build()
    }

    #[tokio::test]
    async fn comment_tokens_are_read_page_by_page() {
        let first = mock!(Client::get_comments_for_pull_request)
            .match_requests(|r| {
                r.pull_request_id() == Some("17")
                    && r.next_token().is_none()
                    && r.max_results() == Some(100)
            })
            .then_output(|| {
                GetCommentsForPullRequestOutput::builder()
                    .comments_for_pull_request_data(comments(&[Some("prv-17-started-1"), None]))
                    .next_token("page-2")
                    .build()
            });
        let second = mock!(Client::get_comments_for_pull_request)
            .match_requests(|r| r.next_token() == Some("page-2"))
            .then_output(|| {
                GetCommentsForPullRequestOutput::builder()
                    .comments_for_pull_request_data(comments(&[Some("prv-17-result-2")]))
                    .build()
            });
        let codecommit = CodeCommit::new(mock_client!(
            aws_sdk_codecommit,
            RuleMode::Sequential,
            [&first, &second]
        ));

        assert_eq!(
            codecommit.comment_tokens("17").await.unwrap(),
            ["prv-17-started-1", "prv-17-result-2"]
        );
        assert_eq!((first.num_calls(), second.num_calls()), (1, 1));
    }
}
