use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};

use super::upstream;
use crate::error::UpstreamError;
use crate::ports::{Claim, Ledger};

const SERVICE: &str = "DynamoDB";

/// A claim is granted when the key is new, when its pending claim outlived its lease, or when
/// the pending claim is this very request's (an SDK retry after a lost answer).
const CLAIM_CONDITION: &str =
    "attribute_not_exists(pk) OR (#state = :pending AND (claimedAt < :stale OR claimId = :claim))";

/// [`Ledger`] in a DynamoDB table with a string partition key `pk` and TTL on `expiresAt`.
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
        let result = self
            .client
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
            .expression_attribute_values(":stale", AttributeValue::N(stale.as_secs().to_string()))
            .expression_attribute_values(":claim", AttributeValue::S(claim_id))
            // Tell "done" from "someone else's claim, still pending" without a second read.
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
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
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(key.to_owned()))
            .update_expression("SET #state = :done")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":done", AttributeValue::S("done".into()))
            .send()
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
