use std::time::{Duration, SystemTime, UNIX_EPOCH};

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use chrono::{DateTime, Utc};

use super::upstream;
use crate::error::UpstreamError;
use crate::ports::{Claim, Ledger, MergedPullRequest, MergedPullRequests, RestoreClock};

const SERVICE: &str = "DynamoDB";

/// A claim is granted when the key is new, when its pending claim outlived its lease, or when
/// the pending claim is this very request's (an SDK retry after a lost answer).
const CLAIM_CONDITION: &str =
    "attribute_not_exists(pk) OR (#state = :pending AND (claimedAt < :stale OR claimId = :claim))";

/// [`Ledger`], [`MergedPullRequests`] and [`RestoreClock`] in one DynamoDB table with a string
/// partition key `pk` and TTL on `expiresAt`; each keeps its items under a prefix of its own
/// (`merge#`, `restore#`; ledger keys are the callers').
#[derive(Debug, Clone)]
pub struct DynamoLedger {
    client: Client,
    table: String,
    lease: Duration,
    retention: Duration,
}

impl DynamoLedger {
    /// A ledger in `table`. A claim not completed within `lease` may be taken over by a retry;
    /// records are kept for `retention` (longer than any redelivery).
    pub fn new(
        client: Client,
        table: impl Into<String>,
        lease: Duration,
        retention: Duration,
    ) -> Self {
        Self {
            client,
            table: table.into(),
            lease,
            retention,
        }
    }
}

fn now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// An id for one claim request, unique across processes and calls: the SDK resends the same
/// request when an attempt's answer is lost, and the id lets that retry recognise the claim its
/// own first attempt wrote instead of taking it for another invocation's.
fn claim_id(key: &str) -> String {
    use sha2::{Digest, Sha256};
    use std::sync::atomic::{AtomicU64, Ordering};
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let mut hasher = Sha256::new();
    hasher.update(now().as_nanos().to_le_bytes());
    hasher.update(std::process::id().to_le_bytes());
    hasher.update(CALLS.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    hasher.update(key.as_bytes());
    hasher
        .finalize()
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Ledger for DynamoLedger {
    async fn claim(&self, key: &str) -> Result<Claim, UpstreamError> {
        let now = now();
        let stale = now.saturating_sub(self.lease);
        let claim_id = claim_id(key);
        let result = send_put(
            self.client
                .put_item()
                .table_name(&self.table)
                .item("pk", AttributeValue::S(key.to_owned()))
                .item("state", AttributeValue::S("pending".into()))
                .item("claimedAt", AttributeValue::N(now.as_secs().to_string()))
                .item("claimId", AttributeValue::S(claim_id.clone()))
                .item(
                    "expiresAt",
                    AttributeValue::N((now + self.retention).as_secs().to_string()),
                )
                // New, or a pending claim whose invocation died before completing or releasing it,
                // or this very request's claim, written by an attempt whose answer was lost.
                .condition_expression(CLAIM_CONDITION)
                .expression_attribute_names("#state", "state")
                .expression_attribute_values(":pending", AttributeValue::S("pending".into()))
                .expression_attribute_values(
                    ":stale",
                    AttributeValue::N(stale.as_secs().to_string()),
                )
                .expression_attribute_values(":claim", AttributeValue::S(claim_id))
                // Tell "done" from "someone else's claim, still pending" without a second read.
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                ),
        )
        .await;
        match result {
            Ok(_) => Ok(Claim::Granted),
            Err(error) => match error.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(failed)) => {
                    let state = failed.item().and_then(|item| item.get("state"));
                    Ok(match state {
                        Some(AttributeValue::S(state)) if state == "done" => Claim::Done,
                        _ => Claim::Pending,
                    })
                }
                _ => Err(upstream(SERVICE, "PutItem", error)),
            },
        }
    }

    async fn complete(&self, key: &str) -> Result<(), UpstreamError> {
        send_update(
            self.client
                .update_item()
                .table_name(&self.table)
                .key("pk", AttributeValue::S(key.to_owned()))
                .update_expression("SET #state = :done")
                .expression_attribute_names("#state", "state")
                .expression_attribute_values(":done", AttributeValue::S("done".into())),
        )
        .await
        .map_err(|error| upstream(SERVICE, "UpdateItem", error))?;
        Ok(())
    }

    async fn release(&self, key: &str) -> Result<(), UpstreamError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(key.to_owned()))
            .condition_expression("#state = :pending")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":pending", AttributeValue::S("pending".into()))
            .send()
            .await
            .map_err(|error| upstream(SERVICE, "DeleteItem", error))?;
        Ok(())
    }
}

/// Every request of an operation goes through one place: the least-privilege test reads the
/// SDK calls off the code, one per operation.
async fn send_put(
    request: aws_sdk_dynamodb::operation::put_item::builders::PutItemFluentBuilder,
) -> Result<aws_sdk_dynamodb::operation::put_item::PutItemOutput, SdkError<PutItemError>> {
    request.send().await
}

async fn send_update(
    request: aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder,
) -> Result<aws_sdk_dynamodb::operation::update_item::UpdateItemOutput, SdkError<UpdateItemError>> {
    request.send().await
}

async fn send_get(
    request: aws_sdk_dynamodb::operation::get_item::builders::GetItemFluentBuilder,
) -> Result<
    aws_sdk_dynamodb::operation::get_item::GetItemOutput,
    SdkError<aws_sdk_dynamodb::operation::get_item::GetItemError>,
> {
    request.send().await
}

/// The item recording the merge that made `commit_id` in `repository`.
fn merge_key(repository: &str, commit_id: &str) -> String {
    format!("merge#{repository}#{commit_id}")
}

/// The item recording `service`'s outage, if any, and its last successful deploy.
fn restore_key(service: &str) -> String {
    format!("restore#{service}")
}

fn text(item: &HashMap<String, AttributeValue>, name: &str) -> Option<String> {
    match item.get(name) {
        Some(AttributeValue::S(value)) => Some(value.clone()),
        _ => None,
    }
}

fn number(item: &HashMap<String, AttributeValue>, name: &str) -> Option<i64> {
    match item.get(name) {
        Some(AttributeValue::N(value)) => value.parse().ok(),
        _ => None,
    }
}

fn seconds(at: DateTime<Utc>) -> AttributeValue {
    AttributeValue::N(at.timestamp().to_string())
}

fn condition_failed(error: &SdkError<UpdateItemError>) -> bool {
    matches!(
        error.as_service_error(),
        Some(UpdateItemError::ConditionalCheckFailedException(_))
    )
}

impl MergedPullRequests for DynamoLedger {
    async fn record_merge(&self, merge: &MergedPullRequest) -> Result<(), UpstreamError> {
        let expires = now() + self.retention;
        send_put(
            self.client
                .put_item()
                .table_name(&self.table)
                .item(
                    "pk",
                    AttributeValue::S(merge_key(&merge.repository, &merge.merge_commit)),
                )
                .item("repository", AttributeValue::S(merge.repository.clone()))
                .item("mergeCommit", AttributeValue::S(merge.merge_commit.clone()))
                .item(
                    "pullRequestId",
                    AttributeValue::S(merge.pull_request_id.clone()),
                )
                .item("title", AttributeValue::S(merge.title.clone()))
                .item(
                    "destinationCommit",
                    AttributeValue::S(merge.destination_commit.clone()),
                )
                .item(
                    "sourceCommit",
                    AttributeValue::S(merge.source_commit.clone()),
                )
                .item(
                    "expiresAt",
                    AttributeValue::N(expires.as_secs().to_string()),
                ),
        )
        .await
        .map_err(|error| upstream(SERVICE, "PutItem", error))?;
        Ok(())
    }

    async fn merged_as(
        &self,
        repository: &str,
        commit_id: &str,
    ) -> Result<Option<MergedPullRequest>, UpstreamError> {
        let output = send_get(
            self.client
                .get_item()
                .table_name(&self.table)
                .key("pk", AttributeValue::S(merge_key(repository, commit_id)))
                .consistent_read(true),
        )
        .await
        .map_err(|error| upstream(SERVICE, "GetItem", error))?;
        let Some(item) = output.item() else {
            return Ok(None);
        };
        let field = |name: &str| text(item, name).unwrap_or_default();
        Ok(Some(MergedPullRequest {
            repository: repository.to_owned(),
            merge_commit: commit_id.to_owned(),
            pull_request_id: field("pullRequestId"),
            title: field("title"),
            destination_commit: field("destinationCommit"),
            source_commit: field("sourceCommit"),
        })
        .filter(|merge| !merge.pull_request_id.is_empty()))
    }
}

impl RestoreClock for DynamoLedger {
    async fn deploy_failed(&self, service: &str, at: DateTime<Utc>) -> Result<(), UpstreamError> {
        let result = send_update(
self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(restore_key(service)))
            .update_expression("SET failedSince = :at")
            // An outage already open keeps its start; a failure older than the last success
            // (a late event) opens none.
            .condition_expression(
                "attribute_not_exists(failedSince) AND (attribute_not_exists(lastDeployAt) OR lastDeployAt < :at)",
            )
            .expression_attribute_values(":at", seconds(at)),
)
.await;
        match result {
            Ok(_) => Ok(()),
            Err(error) if condition_failed(&error) => Ok(()),
            Err(error) => Err(upstream(SERVICE, "UpdateItem", error)),
        }
    }

    async fn deployed(
        &self,
        service: &str,
        deploy: &str,
        at: DateTime<Utc>,
    ) -> Result<Option<std::time::Duration>, UpstreamError> {
        let key = AttributeValue::S(restore_key(service));
        let output = send_get(
            self.client
                .get_item()
                .table_name(&self.table)
                .key("pk", key.clone())
                .consistent_read(true),
        )
        .await
        .map_err(|error| upstream(SERVICE, "GetItem", error))?;
        let item = output.item().cloned().unwrap_or_default();
        // The same deploy told again (a retry after the metric was lost) learns the same answer.
        if text(&item, "restoredBy").as_deref() == Some(deploy) {
            return Ok(number(&item, "restoredSeconds")
                .and_then(|s| u64::try_from(s).ok())
                .map(std::time::Duration::from_secs));
        }
        match number(&item, "failedSince") {
            Some(since) if since <= at.timestamp() => {
                let restored = u64::try_from(at.timestamp() - since).unwrap_or_default();
                let result = send_update(
self
                    .client
                    .update_item()
                    .table_name(&self.table)
                    .key("pk", key)
                    .update_expression(
                        "SET lastDeployAt = :at, restoredBy = :deploy, restoredSeconds = :restored REMOVE failedSince",
                    )
                    .condition_expression("failedSince = :since")
                    .expression_attribute_values(":at", seconds(at))
                    .expression_attribute_values(":deploy", AttributeValue::S(deploy.to_owned()))
                    .expression_attribute_values(
                        ":restored",
                        AttributeValue::N(restored.to_string()),
                    )
                    .expression_attribute_values(":since", AttributeValue::N(since.to_string())),
)
.await;
                match result {
                    Ok(_) => Ok(Some(std::time::Duration::from_secs(restored))),
                    // Another deploy closed it meanwhile: a retry reads what it left.
                    Err(error) => Err(upstream(SERVICE, "UpdateItem", error)),
                }
            }
            _ => {
                let result = send_update(
                    self.client
                        .update_item()
                        .table_name(&self.table)
                        .key("pk", key)
                        .update_expression("SET lastDeployAt = :at")
                        .condition_expression(
                            "attribute_not_exists(lastDeployAt) OR lastDeployAt < :at",
                        )
                        .expression_attribute_values(":at", seconds(at)),
                )
                .await;
                match result {
                    Ok(_) => Ok(None),
                    Err(error) if condition_failed(&error) => Ok(None),
                    Err(error) => Err(upstream(SERVICE, "UpdateItem", error)),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::Client;
    use aws_sdk_dynamodb::operation::delete_item::DeleteItemOutput;
    use aws_sdk_dynamodb::operation::put_item::PutItemOutput;
    use aws_sdk_dynamodb::types::error::ConditionalCheckFailedException;
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    use super::*;

    fn ledger(client: Client) -> DynamoLedger {
        DynamoLedger::new(
            client,
            "ledger",
            Duration::from_secs(120),
            Duration::from_secs(3600),
        )
    }

    #[tokio::test]
    async fn a_claim_is_a_conditional_put_and_a_failed_condition_tells_done_from_pending() {
        let granted = mock!(Client::put_item)
            .match_requests(|request| {
                request.table_name() == Some("ledger")
                    && request.item().and_then(|i| i.get("pk")) == Some(&AttributeValue::S("k-1".into()))
                    && request.condition_expression() == Some(CLAIM_CONDITION)
                    && matches!(
                        request.item().and_then(|i| i.get("claimId")),
                        Some(AttributeValue::S(id)) if request.expression_attribute_values().and_then(|v| v.get(":claim")) == Some(&AttributeValue::S(id.clone()))
                    )
            })
            .then_output(|| PutItemOutput::builder().build());
        let refused = |state: &'static str| {
            mock!(Client::put_item)
                .match_requests(|request| {
                    request.return_values_on_condition_check_failure()
                        == Some(&ReturnValuesOnConditionCheckFailure::AllOld)
                })
                .then_error(move || {
                    PutItemError::ConditionalCheckFailedException(
                        ConditionalCheckFailedException::builder()
                            .item("state", AttributeValue::S(state.into()))
                            .build(),
                    )
                })
        };
        let (done, pending) = (refused("done"), refused("pending"));
        let client = mock_client!(
            aws_sdk_dynamodb,
            RuleMode::Sequential,
            [&granted, &done, &pending]
        );
        let ledger = ledger(client);

        assert_eq!(ledger.claim("k-1").await.unwrap(), Claim::Granted);
        assert_eq!(ledger.claim("k-1").await.unwrap(), Claim::Done);
        assert_eq!(ledger.claim("k-1").await.unwrap(), Claim::Pending);
        assert_eq!(
            (granted.num_calls(), done.num_calls(), pending.num_calls()),
            (1, 1, 1)
        );
    }

    #[test]
    fn every_claim_request_has_an_id_of_its_own() {
        let (first, second) = (claim_id("k-1"), claim_id("k-1"));
        assert_ne!(first, second);
        assert_eq!(first.len(), 32);
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(seconds, 0).unwrap()
    }

    #[tokio::test]
    async fn a_success_after_a_failure_closes_the_outage_once_and_says_how_long_it_lasted() {
        use aws_sdk_dynamodb::operation::get_item::GetItemOutput;
        use aws_sdk_dynamodb::operation::update_item::UpdateItemOutput;
        let open = mock!(Client::get_item)
            .match_requests(|r| {
                r.key().and_then(|k| k.get("pk"))
                    == Some(&AttributeValue::S("restore#shop-main#production".into()))
                    && r.consistent_read() == Some(true)
            })
            .then_output(|| {
                GetItemOutput::builder()
                    .item("failedSince", AttributeValue::N("1000".into()))
                    .build()
            });
        let close = mock!(Client::update_item)
            .match_requests(|r| {
                r.condition_expression() == Some("failedSince = :since")
                    && r.expression_attribute_values()
                        .and_then(|v| v.get(":restored"))
                        == Some(&AttributeValue::N("600".into()))
            })
            .then_output(|| UpdateItemOutput::builder().build());
        let closed = mock!(Client::get_item).then_output(|| {
            GetItemOutput::builder()
                .item("restoredBy", AttributeValue::S("e-2".into()))
                .item("restoredSeconds", AttributeValue::N("600".into()))
                .build()
        });
        let client = mock_client!(
            aws_sdk_dynamodb,
            RuleMode::Sequential,
            [&open, &close, &closed]
        );
        let clock = ledger(client);
        let service = "shop-main#production";
        assert_eq!(
            clock.deployed(service, "e-2", at(1600)).await.unwrap(),
            Some(Duration::from_secs(600))
        );
        // Told again: the same answer, nothing written.
        assert_eq!(
            clock.deployed(service, "e-2", at(1600)).await.unwrap(),
            Some(Duration::from_secs(600))
        );
        assert_eq!(
            (open.num_calls(), close.num_calls(), closed.num_calls()),
            (1, 1, 1)
        );
    }

    #[tokio::test]
    async fn a_failure_opens_an_outage_only_when_none_is_open_and_none_was_restored_since() {
        use aws_sdk_dynamodb::types::error::ConditionalCheckFailedException;
        let refused = mock!(Client::update_item)
            .match_requests(|r| {
                r.condition_expression().is_some_and(|c| {
                    c.contains("attribute_not_exists(failedSince)")
                        && c.contains("lastDeployAt < :at")
                })
            })
            .then_error(|| {
                UpdateItemError::ConditionalCheckFailedException(
                    ConditionalCheckFailedException::builder().build(),
                )
            });
        let clock = ledger(mock_client!(aws_sdk_dynamodb, [&refused]));
        clock
            .deploy_failed("shop-main#production", at(1000))
            .await
            .unwrap();
        assert_eq!(refused.num_calls(), 1);
    }

    #[tokio::test]
    async fn a_merge_is_found_by_repository_and_commit() {
        use aws_sdk_dynamodb::operation::get_item::GetItemOutput;
        let found = mock!(Client::get_item)
            .match_requests(|r| {
                r.key().and_then(|k| k.get("pk"))
                    == Some(&AttributeValue::S("merge#shop#c-1".into()))
            })
            .then_output(|| {
                GetItemOutput::builder()
                    .item("pullRequestId", AttributeValue::S("7".into()))
                    .item("title", AttributeValue::S("Cart".into()))
                    .item("destinationCommit", AttributeValue::S("d-1".into()))
                    .item("sourceCommit", AttributeValue::S("s-1".into()))
                    .build()
            });
        let missing = mock!(Client::get_item).then_output(|| GetItemOutput::builder().build());
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, [&found, &missing]);
        let merges = ledger(client);
        let merge = merges.merged_as("shop", "c-1").await.unwrap().unwrap();
        assert_eq!(merge.pull_request_id, "7");
        assert_eq!(merge.source_commit, "s-1");
        assert_eq!(merges.merged_as("shop", "c-2").await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_release_deletes_only_a_pending_claim() {
        let release = mock!(Client::delete_item)
            .match_requests(|request| request.condition_expression() == Some("#state = :pending"))
            .then_output(|| DeleteItemOutput::builder().build());
        let ledger = ledger(mock_client!(aws_sdk_dynamodb, [&release]));

        ledger.release("k-1").await.unwrap();
        assert_eq!(release.num_calls(), 1);
    }
}
