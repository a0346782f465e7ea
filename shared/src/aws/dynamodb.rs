use std::time::{Duration, SystemTime, UNIX_EPOCH};

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::AsyncSleep;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Put, PutRequest, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
    WriteRequest,
};
use chrono::{DateTime, Utc};

use super::upstream;
use crate::error::UpstreamError;
use crate::ports::{Claim, Ledger, MergedPullRequest, MergedPullRequests, RestoreClock};

const SERVICE: &str = "DynamoDB";

/// A claim is granted when the key is new, when its pending claim outlived its lease, or when
/// the pending claim is this very request's (an SDK retry after a lost answer).
const CLAIM_CONDITION: &str =
    "attribute_not_exists(pk) OR (#state = :pending AND (claimedAt < :stale OR claimId = :claim))";

/// The most actions one TransactWriteItems takes ("groups up to 100 action requests").
const MAX_TRANSACTION_ITEMS: usize = 100;

/// How many TransactWriteItems a group of claims is sent in at most. A transaction whose
/// condition fails on some items is cancelled whole; the next one leaves those out, so two
/// suffice unless other invocations claim the same keys meanwhile.
const MAX_CLAIM_ROUNDS: usize = 4;

/// The most put and delete requests one BatchWriteItem takes.
const MAX_BATCH_WRITE_ITEMS: usize = 25;

/// How many times a BatchWriteItem is sent for the items DynamoDB left unprocessed.
const MAX_BATCH_WRITE_ATTEMPTS: u32 = 4;

/// The pause before sending unprocessed items again, times the attempt number ("we strongly
/// recommend that you use an exponential backoff algorithm", BatchWriteItem API reference).
const UNPROCESSED_RETRY_DELAY: Duration = Duration::from_millis(50);

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

/// What a claim that could not be granted found: done, or someone else's pending claim.
fn refused_claim(item: Option<&HashMap<String, AttributeValue>>) -> Claim {
    match item.and_then(|item| item.get("state")) {
        Some(AttributeValue::S(state)) if state == "done" => Claim::Done,
        _ => Claim::Pending,
    }
}

/// A claim on one key, written as one item; the same for PutItem and for a transaction's Put.
struct ClaimRequest {
    item: HashMap<String, AttributeValue>,
    values: HashMap<String, AttributeValue>,
}

impl DynamoLedger {
    fn claim_request(&self, key: &str) -> ClaimRequest {
        let now = now();
        let stale = now.saturating_sub(self.lease);
        let claim_id = claim_id(key);
        let item = HashMap::from([
            ("pk".to_owned(), AttributeValue::S(key.to_owned())),
            ("state".to_owned(), AttributeValue::S("pending".into())),
            (
                "claimedAt".to_owned(),
                AttributeValue::N(now.as_secs().to_string()),
            ),
            ("claimId".to_owned(), AttributeValue::S(claim_id.clone())),
            (
                "expiresAt".to_owned(),
                AttributeValue::N((now + self.retention).as_secs().to_string()),
            ),
        ]);
        let values = HashMap::from([
            (":pending".to_owned(), AttributeValue::S("pending".into())),
            (
                ":stale".to_owned(),
                AttributeValue::N(stale.as_secs().to_string()),
            ),
            (":claim".to_owned(), AttributeValue::S(claim_id)),
        ]);
        ClaimRequest { item, values }
    }

    /// The put of a claim in a transaction.
    fn claim_put(&self, claim: &ClaimRequest) -> Result<TransactWriteItem, UpstreamError> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(claim.item.clone()))
            .condition_expression(CLAIM_CONDITION)
            .expression_attribute_names("#state", "state")
            .set_expression_attribute_values(Some(claim.values.clone()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(|error| {
                UpstreamError::new(SERVICE, "TransactWriteItems", None, "invalid claim")
                    .with_source(error)
            })?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// Claims `group` (indexes into `requests`, at most [`MAX_TRANSACTION_ITEMS`]) in
    /// transactions: all granted, or the transaction is cancelled and its reasons say which
    /// items' conditions failed (done or pending: answered) and which would have been written
    /// (sent again without the others).
    async fn claim_group(
        &self,
        group: Vec<usize>,
        requests: &[ClaimRequest],
        claims: &mut [Option<Claim>],
    ) -> Result<(), UpstreamError> {
        const OPERATION: &str = "TransactWriteItems";
        let mut pending = group;
        for _ in 0..MAX_CLAIM_ROUNDS {
            if pending.is_empty() {
                return Ok(());
            }
            let items = pending
                .iter()
                .map(|&index| self.claim_put(&requests[index]))
                .collect::<Result<Vec<_>, _>>()?;
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items))
                .send()
                .await;
            let error = match result {
                Ok(_) => {
                    for &index in &pending {
                        claims[index] = Some(Claim::Granted);
                    }
                    return Ok(());
                }
                Err(error) => error,
            };
            let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) =
                error.as_service_error()
            else {
                return Err(upstream(SERVICE, OPERATION, error));
            };
            let reasons = cancelled.cancellation_reasons();
            if reasons.len() != pending.len() {
                return Err(upstream(SERVICE, OPERATION, error));
            }
            let mut again = Vec::new();
            for (&index, reason) in pending.iter().zip(reasons) {
                match reason.code() {
                    Some("ConditionalCheckFailed") => {
                        claims[index] = Some(refused_claim(reason.item()));
                    }
                    // "None": this item was fine, the others cancelled the transaction;
                    // "TransactionConflict": another transaction was writing it just then.
                    None | Some("None" | "TransactionConflict") => again.push(index),
                    Some(_) => return Err(upstream(SERVICE, OPERATION, error)),
                }
            }
            pending = again;
        }
        if pending.is_empty() {
            return Ok(());
        }
        Err(UpstreamError::new(
            SERVICE,
            OPERATION,
            Some("TransactionConflict".into()),
            format!(
                "{} claims still conflicting after {MAX_CLAIM_ROUNDS} transactions",
                pending.len()
            ),
        ))
    }
}

impl Ledger for DynamoLedger {
    async fn claim(&self, key: &str) -> Result<Claim, UpstreamError> {
        let claim = self.claim_request(key);
        let result = send_put(
            self.client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(claim.item))
                // New, or a pending claim whose invocation died before completing or releasing it,
                // or this very request's claim, written by an attempt whose answer was lost.
                .condition_expression(CLAIM_CONDITION)
                .expression_attribute_names("#state", "state")
                .set_expression_attribute_values(Some(claim.values))
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
                    Ok(refused_claim(failed.item()))
                }
                _ => Err(upstream(SERVICE, "PutItem", error)),
            },
        }
    }

    async fn claim_all(&self, keys: &[String]) -> Result<Vec<Claim>, UpstreamError> {
        // One claim id per key for the whole call: a later transaction (or the SDK's retry of
        // one whose answer was lost) recognises the claims its predecessors wrote.
        let requests: Vec<ClaimRequest> = keys.iter().map(|key| self.claim_request(key)).collect();
        let mut claims: Vec<Option<Claim>> = vec![None; keys.len()];
        let indexes: Vec<usize> = (0..keys.len()).collect();
        for group in indexes.chunks(MAX_TRANSACTION_ITEMS) {
            self.claim_group(group.to_vec(), &requests, &mut claims)
                .await?;
        }
        claims
            .into_iter()
            .map(|claim| {
                claim.ok_or_else(|| {
                    UpstreamError::new(SERVICE, "TransactWriteItems", None, "claim not answered")
                })
            })
            .collect()
    }

    async fn complete_all(&self, keys: &[String]) -> Result<(), UpstreamError> {
        const OPERATION: &str = "BatchWriteItem";
        let expires = AttributeValue::N((now() + self.retention).as_secs().to_string());
        for group in keys.chunks(MAX_BATCH_WRITE_ITEMS) {
            // BatchWriteItem only puts whole items: the record replaces the claim, which is ours.
            let mut requests = group
                .iter()
                .map(|key| {
                    PutRequest::builder()
                        .item("pk", AttributeValue::S(key.clone()))
                        .item("state", AttributeValue::S("done".into()))
                        .item("expiresAt", expires.clone())
                        .build()
                        .map(|put| WriteRequest::builder().put_request(put).build())
                        .map_err(|error| {
                            UpstreamError::new(SERVICE, OPERATION, None, "invalid record")
                                .with_source(error)
                        })
                })
                .collect::<Result<Vec<_>, _>>()?;
            for attempt in 1..=MAX_BATCH_WRITE_ATTEMPTS {
                if attempt > 1
                    && let Some(sleep) = self.client.config().sleep_impl()
                {
                    sleep.sleep(UNPROCESSED_RETRY_DELAY * (attempt - 1)).await;
                }
                let output = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, requests)
                    .send()
                    .await
                    .map_err(|error| upstream(SERVICE, OPERATION, error))?;
                requests = output
                    .unprocessed_items()
                    .and_then(|unprocessed| unprocessed.get(&self.table))
                    .cloned()
                    .unwrap_or_default();
                if requests.is_empty() {
                    break;
                }
            }
            if !requests.is_empty() {
                return Err(UpstreamError::new(
                    SERVICE,
                    OPERATION,
                    None,
                    format!(
                        "{} records still unprocessed after {MAX_BATCH_WRITE_ATTEMPTS} attempts",
                        requests.len()
                    ),
                ));
            }
        }
        Ok(())
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

    /// The partition keys a transaction puts, in order.
    fn transaction_keys(
        request: &aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsInput,
    ) -> Vec<String> {
        request
            .transact_items()
            .iter()
            .filter_map(|item| item.put())
            .filter_map(|put| match put.item().get("pk") {
                Some(AttributeValue::S(key)) => Some(key.clone()),
                _ => None,
            })
            .collect()
    }

    fn keys(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| (*name).to_owned()).collect()
    }

    #[tokio::test]
    async fn claims_go_in_one_transaction_and_a_cancelled_one_is_sent_again_without_the_refused() {
        use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsOutput;
        use aws_sdk_dynamodb::types::CancellationReason;
        use aws_sdk_dynamodb::types::error::TransactionCanceledException;
        let cancelled = mock!(Client::transact_write_items)
            .match_requests(|request| {
                transaction_keys(request) == ["k-1", "k-2", "k-3"]
                    && request.transact_items().iter().all(|item| {
                        item.put().is_some_and(|put| {
                            put.table_name() == "ledger"
                                && put.condition_expression() == Some(CLAIM_CONDITION)
                                && put.return_values_on_condition_check_failure()
                                    == Some(&ReturnValuesOnConditionCheckFailure::AllOld)
                        })
                    })
            })
            .then_error(|| {
                let refused = |state: &str| {
                    CancellationReason::builder()
                        .code("ConditionalCheckFailed")
                        .item("state", AttributeValue::S(state.into()))
                        .build()
                };
                TransactWriteItemsError::TransactionCanceledException(
                    TransactionCanceledException::builder()
                        .cancellation_reasons(refused("done"))
                        .cancellation_reasons(CancellationReason::builder().code("None").build())
                        .cancellation_reasons(refused("pending"))
                        .build(),
                )
            });
        let granted = mock!(Client::transact_write_items)
            .match_requests(|request| transaction_keys(request) == ["k-2"])
            .then_output(|| TransactWriteItemsOutput::builder().build());
        let client = mock_client!(
            aws_sdk_dynamodb,
            RuleMode::Sequential,
            [&cancelled, &granted]
        );

        let claims = ledger(client)
            .claim_all(&keys(&["k-1", "k-2", "k-3"]))
            .await
            .unwrap();

        assert_eq!(claims, [Claim::Done, Claim::Granted, Claim::Pending]);
        assert_eq!((cancelled.num_calls(), granted.num_calls()), (1, 1));
    }

    #[tokio::test]
    async fn more_claims_than_a_transaction_takes_go_in_several() {
        use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsOutput;
        let first = mock!(Client::transact_write_items)
            .match_requests(|request| {
                let keys = transaction_keys(request);
                keys.len() == 100 && keys[0] == "k-0" && keys[99] == "k-99"
            })
            .then_output(|| TransactWriteItemsOutput::builder().build());
        let second = mock!(Client::transact_write_items)
            .match_requests(|request| transaction_keys(request) == ["k-100"])
            .then_output(|| TransactWriteItemsOutput::builder().build());
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, [&first, &second]);
        let all: Vec<String> = (0..101).map(|i| format!("k-{i}")).collect();

        let claims = ledger(client).claim_all(&all).await.unwrap();

        assert_eq!(claims, vec![Claim::Granted; 101]);
        assert_eq!((first.num_calls(), second.num_calls()), (1, 1));
    }

    #[tokio::test]
    async fn claims_that_keep_conflicting_fail_after_a_bounded_number_of_transactions() {
        use aws_sdk_dynamodb::types::CancellationReason;
        use aws_sdk_dynamodb::types::error::TransactionCanceledException;
        let conflicting = mock!(Client::transact_write_items).then_error(|| {
            TransactWriteItemsError::TransactionCanceledException(
                TransactionCanceledException::builder()
                    .cancellation_reasons(
                        CancellationReason::builder()
                            .code("TransactionConflict")
                            .build(),
                    )
                    .build(),
            )
        });
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&conflicting]);

        let error = ledger(client).claim_all(&keys(&["k-1"])).await.unwrap_err();

        assert_eq!(error.code(), Some("TransactionConflict"));
        assert_eq!(conflicting.num_calls(), MAX_CLAIM_ROUNDS);
    }

    /// The partition keys a batch write puts in the ledger table, in order.
    fn batch_keys(
        request: &aws_sdk_dynamodb::operation::batch_write_item::BatchWriteItemInput,
    ) -> Vec<String> {
        request
            .request_items()
            .and_then(|items| items.get("ledger"))
            .into_iter()
            .flatten()
            .filter_map(|write| write.put_request())
            .filter(|put| put.item().get("state") == Some(&AttributeValue::S("done".into())))
            .filter_map(|put| match put.item().get("pk") {
                Some(AttributeValue::S(key)) => Some(key.clone()),
                _ => None,
            })
            .collect()
    }

    #[tokio::test]
    async fn records_go_in_batches_of_25_and_unprocessed_ones_are_sent_again() {
        use aws_sdk_dynamodb::operation::batch_write_item::BatchWriteItemOutput;
        let all: Vec<String> = (0..27).map(|i| format!("k-{i}")).collect();
        let first = mock!(Client::batch_write_item)
            .match_requests(|request| batch_keys(request).len() == 25)
            .then_output(|| {
                let unprocessed = WriteRequest::builder()
                    .put_request(
                        PutRequest::builder()
                            .item("pk", AttributeValue::S("k-3".into()))
                            .item("state", AttributeValue::S("done".into()))
                            .build()
                            .unwrap(),
                    )
                    .build();
                BatchWriteItemOutput::builder()
                    .unprocessed_items("ledger", vec![unprocessed])
                    .build()
            });
        let again = mock!(Client::batch_write_item)
            .match_requests(|request| batch_keys(request) == ["k-3"])
            .then_output(|| BatchWriteItemOutput::builder().build());
        let rest = mock!(Client::batch_write_item)
            .match_requests(|request| batch_keys(request) == ["k-25", "k-26"])
            .then_output(|| BatchWriteItemOutput::builder().build());
        let client = mock_client!(
            aws_sdk_dynamodb,
            RuleMode::Sequential,
            [&first, &again, &rest]
        );

        ledger(client).complete_all(&all).await.unwrap();

        assert_eq!(
            (first.num_calls(), again.num_calls(), rest.num_calls()),
            (1, 1, 1)
        );
    }

    #[tokio::test]
    async fn records_left_unprocessed_on_every_attempt_are_an_error() {
        use aws_sdk_dynamodb::operation::batch_write_item::BatchWriteItemOutput;
        let never = mock!(Client::batch_write_item).then_output(|| {
            let unprocessed = WriteRequest::builder()
                .put_request(
                    PutRequest::builder()
                        .item("pk", AttributeValue::S("k-1".into()))
                        .build()
                        .unwrap(),
                )
                .build();
            BatchWriteItemOutput::builder()
                .unprocessed_items("ledger", vec![unprocessed])
                .build()
        });
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&never]);

        let error = ledger(client)
            .complete_all(&keys(&["k-1"]))
            .await
            .unwrap_err();

        assert!(error.message().contains("unprocessed"), "{error}");
        assert_eq!(never.num_calls(), MAX_BATCH_WRITE_ATTEMPTS as usize);
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
