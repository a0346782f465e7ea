//! Merged pull requests are recorded by the commit their merge made, so that delivery-events
//! can tell a deploy of that commit on the pull request it came from.
//!
//! The merge event names the branches' tips, not the merge commit (a squash or three-way merge
//! makes a new one): GetPullRequest's `mergeMetadata.mergeCommitId` is read, and the record
//! written under it. Recording twice changes nothing, so a redelivery just writes it again.

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use shared::events::codecommit::{PullRequestEventKind, PullRequestStateChange};
use shared::ports::{MergedPullRequest, MergedPullRequests, PullRequestApi};
use shared::{FunctionError, UpstreamError};
use tracing::{info, warn};

use crate::config::Config;
use crate::handler::{IgnoreReason, Outcome};

/// Merges are not recorded: no ledger table is configured (the function's type when it has
/// none; its methods are never called).
#[derive(Debug, Clone, Copy, Default)]
pub struct NotRecorded;

impl MergedPullRequests for NotRecorded {
    async fn record_merge(&self, _merge: &MergedPullRequest) -> Result<(), UpstreamError> {
        Ok(())
    }

    async fn merged_as(
        &self,
        _repository: &str,
        _commit_id: &str,
    ) -> Result<Option<MergedPullRequest>, UpstreamError> {
        Ok(None)
    }
}

/// Whether `event` says a pull request was merged.
pub fn is_merge(event: &EventBridgeEvent<PullRequestStateChange>) -> bool {
    event.detail.event == PullRequestEventKind::PullRequestMergeStatusUpdated
        && event.detail.is_merged
}

/// Records the merge `event` tells of.
pub async fn record<P: PullRequestApi, G: MergedPullRequests>(
    pull_requests: &P,
    merges: &G,
    config: &Config,
    event: &EventBridgeEvent<PullRequestStateChange>,
) -> Result<Outcome, FunctionError> {
    let detail = &event.detail;
    if !crate::pull_request::is_pull_request_id(&detail.pull_request_id) {
        return Err(shared::InvalidEvent::new(
            "detail.pullRequestId: not a pull request id (digits)",
        )
        .into());
    }
    if let Some(repository) = detail.repository()
        && !config.validates_repository(repository)
    {
        return Ok(Outcome::Ignored {
            reason: IgnoreReason::OtherRepository {
                repository: repository.to_owned(),
            },
        });
    }
    let current = pull_requests.pull_request(&detail.pull_request_id).await?;
    let Some(merge_commit) = current.merge_commit.clone().filter(|_| current.merged) else {
        // The event says merged and GetPullRequest does not (yet): a retry reads it again.
        warn!(pull_request_id = %current.id, "merged, but GetPullRequest names no merge commit");
        return Err(UpstreamError::new(
            "CodeCommit",
            "GetPullRequest",
            None,
            format!(
                "pull request {} is merged but has no mergeMetadata.mergeCommitId yet",
                current.id
            ),
        )
        .into());
    };
    merges
        .record_merge(&MergedPullRequest {
            repository: current.repository.clone(),
            merge_commit: merge_commit.clone(),
            pull_request_id: current.id.clone(),
            title: current.title.clone(),
            destination_commit: current.destination_commit.clone(),
            source_commit: current.source_commit.clone(),
        })
        .await?;
    info!(pull_request_id = %current.id, merge_commit = %merge_commit, "merge recorded");
    Ok(Outcome::MergeRecorded {
        pull_request_id: current.id,
        merge_commit,
    })
}

#[cfg(test)]
mod tests {
    use mockall::predicate::eq;
    use serde_json::Value;
    use shared::ports::{MockMergedPullRequests, MockPullRequestApi, PullRequest, reply};

    use super::*;

    const MERGE: &str = "4c2b9d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f708";

    fn merged_event() -> EventBridgeEvent<PullRequestStateChange> {
        let path = format!(
            "{}/../../events/pr-validator/pull-request-merged.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let payload: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        match crate::handler::parse(payload).unwrap() {
            crate::handler::Incoming::PullRequest(event) => event,
            other => panic!("{other:?}"),
        }
    }

    fn config() -> Config {
        let path = format!("{}/../../events/env.json", env!("CARGO_MANIFEST_DIR"));
        let env: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let variables = env["PullRequestValidatorFunction"].clone();
        Config::from_lookup(move |name| variables[name].as_str().map(str::to_owned)).unwrap()
    }

    fn merged(id: &str, merge_commit: Option<&str>) -> PullRequest {
        PullRequest {
            id: id.into(),
            title: "Add the cart".into(),
            open: false,
            merged: true,
            merge_commit: merge_commit.map(str::to_owned),
            revision_id: "r".repeat(64),
            author_arn: None,
            repository: "shop".into(),
            source_reference: "refs/heads/feature/cart".into(),
            destination_reference: "refs/heads/main".into(),
            source_commit: "s".repeat(40),
            destination_commit: "d".repeat(40),
        }
    }

    #[tokio::test]
    async fn a_merge_is_recorded_under_the_commit_it_made() {
        let event = merged_event();
        assert!(is_merge(&event));
        let id = event.detail.pull_request_id.clone();
        let mut pulls = MockPullRequestApi::new();
        let answer = merged(&id, Some(MERGE));
        pulls
            .expect_pull_request()
            .with(eq(id.clone()))
            .times(1)
            .returning(move |_| reply(Ok(answer.clone())));
        let mut merges = MockMergedPullRequests::new();
        let expected = MergedPullRequest {
            repository: "shop".into(),
            merge_commit: MERGE.into(),
            pull_request_id: id.clone(),
            title: "Add the cart".into(),
            destination_commit: "d".repeat(40),
            source_commit: "s".repeat(40),
        };
        merges
            .expect_record_merge()
            .with(eq(expected))
            .times(1)
            .returning(|_| reply(Ok(())));
        let outcome = record(&pulls, &merges, &config(), &event).await.unwrap();
        assert_eq!(
            outcome,
            Outcome::MergeRecorded {
                pull_request_id: id,
                merge_commit: MERGE.into()
            }
        );
    }

    #[tokio::test]
    async fn a_merge_without_its_commit_yet_fails_so_the_retry_reads_it_again() {
        let event = merged_event();
        let id = event.detail.pull_request_id.clone();
        let mut pulls = MockPullRequestApi::new();
        let answer = merged(&id, None);
        pulls
            .expect_pull_request()
            .times(1)
            .returning(move |_| reply(Ok(answer.clone())));
        let error = record(&pulls, &MockMergedPullRequests::new(), &config(), &event)
            .await
            .unwrap_err();
        assert_eq!(error.error_type(), "Upstream");
    }

    #[tokio::test]
    async fn a_merge_in_a_repository_not_validated_is_not_recorded() {
        let mut event = merged_event();
        event.detail.repository_names = vec!["other".into()];
        let outcome = record(
            &MockPullRequestApi::new(),
            &MockMergedPullRequests::new(),
            &config(),
            &event,
        )
        .await
        .unwrap();
        assert!(matches!(outcome, Outcome::Ignored { .. }), "{outcome:?}");
    }
}
