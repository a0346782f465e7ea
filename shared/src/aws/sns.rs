use std::time::Duration;

use aws_sdk_sns::Client;
use aws_sdk_sns::config::AsyncSleep;
use aws_sdk_sns::types::{MessageAttributeValue, PublishBatchRequestEntry};

use super::upstream;
use crate::error::UpstreamError;
use crate::ports::{Notification, Notifier};

/// [`Notifier`] publishing to one SNS topic.
#[derive(Debug, Clone)]
pub struct SnsTopic {
    client: Client,
    topic_arn: String,
}

impl SnsTopic {
    /// Publishes to `topic_arn` through `client`.
    pub fn new(client: Client, topic_arn: impl Into<String>) -> Self {
        Self {
            client,
            topic_arn: topic_arn.into(),
        }
    }
}

/// The most entries one PublishBatch takes ("up to 10 messages", PublishBatch API reference).
const MAX_BATCH_ENTRIES: usize = 10;

/// The most one PublishBatch may carry: "the maximum total payload size (the sum of the
/// individual lengths of all of the batched messages) [is] 256 KB (262,144 bytes)".
const MAX_BATCH_BYTES: usize = 262_144;

/// How many times an entry SNS failed for a reason of its own (`SenderFault` false: an internal
/// error, throttling) is sent in all: the SDK retries a whole failed request, not the failed
/// entries of a request that succeeded.
const MAX_ENTRY_ATTEMPTS: u32 = 3;

/// The pause before sending failed entries again, times the attempt number.
const ENTRY_RETRY_DELAY: Duration = Duration::from_millis(50);

/// What an entry weighs against [`MAX_BATCH_BYTES`]: its message, subject and attributes
/// (names, data type and values), counted generously.
fn payload_bytes(notification: &Notification) -> usize {
    notification.body.len()
        + notification.subject.len()
        + notification
            .attributes
            .iter()
            .map(|(name, value)| name.len() + "String".len() + value.len())
            .sum::<usize>()
}

/// `pending` (indexes into `notifications`) cut into batches SNS takes: at most
/// [`MAX_BATCH_ENTRIES`] entries and [`MAX_BATCH_BYTES`] each (an entry heavier than that alone
/// goes alone, for SNS to refuse).
fn batches(pending: &[usize], notifications: &[Notification]) -> Vec<Vec<usize>> {
    let mut batches: Vec<Vec<usize>> = Vec::new();
    let mut bytes = 0;
    for &index in pending {
        let weight = payload_bytes(&notifications[index]);
        match batches.last_mut() {
            Some(batch) if batch.len() < MAX_BATCH_ENTRIES && bytes + weight <= MAX_BATCH_BYTES => {
                batch.push(index);
                bytes += weight;
            }
            _ => {
                batches.push(vec![index]);
                bytes = weight;
            }
        }
    }
    batches
}

fn attributes(
    operation: &'static str,
    notification: &Notification,
) -> Result<Vec<(String, MessageAttributeValue)>, UpstreamError> {
    notification
        .attributes
        .iter()
        .map(|(name, value)| {
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
                .map(|attribute| (name.clone(), attribute))
                .map_err(|error| {
                    UpstreamError::new("SNS", operation, None, format!("attribute {name}"))
                        .with_source(error)
                })
        })
        .collect()
}

/// The entry of `notification`, identified by its index (unique within the request).
fn entry(
    index: usize,
    notification: &Notification,
) -> Result<PublishBatchRequestEntry, UpstreamError> {
    let mut entry = PublishBatchRequestEntry::builder()
        .id(index.to_string())
        .subject(&notification.subject)
        .message(&notification.body);
    for (name, attribute) in attributes("PublishBatch", notification)? {
        entry = entry.message_attributes(name, attribute);
    }
    entry.build().map_err(|error| {
        UpstreamError::new("SNS", "PublishBatch", None, "invalid entry").with_source(error)
    })
}

impl SnsTopic {
    /// Sends one PublishBatch of `batch` (indexes into `notifications`); records each entry's
    /// outcome in `outcomes` and returns the entries worth sending again.
    async fn publish_batch(
        &self,
        batch: &[usize],
        notifications: &[Notification],
        outcomes: &mut [Option<Result<String, UpstreamError>>],
    ) -> Vec<usize> {
        const OPERATION: &str = "PublishBatch";
        let mut entries = Vec::with_capacity(batch.len());
        let mut sendable = Vec::with_capacity(batch.len());
        for &index in batch {
            match entry(index, &notifications[index]) {
                Ok(entry) => {
                    entries.push(entry);
                    sendable.push(index);
                }
                Err(error) => outcomes[index] = Some(Err(error)),
            }
        }
        if entries.is_empty() {
            return Vec::new();
        }
        let output = match self
            .client
            .publish_batch()
            .topic_arn(&self.topic_arn)
            .set_publish_batch_request_entries(Some(entries))
            .send()
            .await
        {
            Ok(output) => output,
            Err(error) => {
                // The SDK already retried what a retry could mend: every entry failed with it.
                let error = upstream("SNS", OPERATION, error);
                for &index in &sendable {
                    outcomes[index] = Some(Err(UpstreamError::new(
                        "SNS",
                        OPERATION,
                        error.code().map(str::to_owned),
                        error.message(),
                    )));
                }
                return Vec::new();
            }
        };
        let index_of = |id: &str| id.parse::<usize>().ok().filter(|i| sendable.contains(i));
        for published in output.successful() {
            if let Some(index) = published.id().and_then(index_of) {
                outcomes[index] = Some(Ok(published.message_id().unwrap_or_default().to_owned()));
            }
        }
        let mut again = Vec::new();
        for failed in output.failed() {
            let Some(index) = index_of(failed.id()) else {
                continue;
            };
            outcomes[index] = Some(Err(UpstreamError::new(
                "SNS",
                OPERATION,
                Some(failed.code().to_owned()),
                failed.message().unwrap_or_default(),
            )));
            // A sender's fault (an invalid entry) fails the same way however often it is sent.
            if !failed.sender_fault() {
                again.push(index);
            }
        }
        for &index in &sendable {
            if outcomes[index].is_none() {
                outcomes[index] = Some(Err(UpstreamError::new(
                    "SNS",
                    OPERATION,
                    None,
                    "the answer tells neither success nor failure of this entry",
                )));
            }
        }
        again
    }
}

impl Notifier for SnsTopic {
    async fn publish_all(
        &self,
        notifications: &[Notification],
    ) -> Vec<Result<String, UpstreamError>> {
        let mut outcomes: Vec<Option<Result<String, UpstreamError>>> =
            notifications.iter().map(|_| None).collect();
        let mut pending: Vec<usize> = (0..notifications.len()).collect();
        for attempt in 1..=MAX_ENTRY_ATTEMPTS {
            if pending.is_empty() {
                break;
            }
            if attempt > 1
                && let Some(sleep) = self.client.config().sleep_impl()
            {
                sleep.sleep(ENTRY_RETRY_DELAY * (attempt - 1)).await;
            }
            let mut again = Vec::new();
            for batch in batches(&pending, notifications) {
                // Clear the previous attempt's failures: what is not answered now is an error.
                for &index in &batch {
                    outcomes[index] = None;
                }
                again.extend(
                    self.publish_batch(&batch, notifications, &mut outcomes)
                        .await,
                );
            }
            pending = again;
        }
        outcomes
            .into_iter()
            .map(|outcome| {
                outcome.unwrap_or_else(|| {
                    Err(UpstreamError::new("SNS", "PublishBatch", None, "not sent"))
                })
            })
            .collect()
    }

    async fn publish(&self, notification: &Notification) -> Result<String, UpstreamError> {
        let mut request = self
            .client
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(&notification.subject)
            .message(&notification.body);
        for (name, attribute) in attributes("Publish", notification)? {
            request = request.message_attributes(name, attribute);
        }
        let output = request
            .send()
            .await
            .map_err(|error| upstream("SNS", "Publish", error))?;
        Ok(output.message_id().unwrap_or_default().to_owned())
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_sns::Client;
    use aws_sdk_sns::operation::publish::PublishOutput;
    use aws_sdk_sns::operation::publish_batch::{PublishBatchInput, PublishBatchOutput};
    use aws_sdk_sns::types::{BatchResultErrorEntry, PublishBatchResultEntry};
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    use super::*;

    #[tokio::test]
    async fn a_notification_is_published_with_its_subject_and_string_attributes() {
        let publish = mock!(Client::publish)
            .match_requests(|request| {
                let attributes = request.message_attributes().unwrap();
                request.topic_arn() == Some("arn:aws:sns:us-east-1:123456789012:builds")
                    && request.subject() == Some("FAILED: shop-image #42")
                    && request.message() == Some("body")
                    && attributes.len() == 2
                    && attributes["status"].data_type() == "String"
                    && attributes["status"].string_value() == Some("FAILED")
            })
            .then_output(|| PublishOutput::builder().message_id("m-1").build());
        let topic = SnsTopic::new(
            mock_client!(aws_sdk_sns, [&publish]),
            "arn:aws:sns:us-east-1:123456789012:builds",
        );
        let notification = Notification::new(
            "FAILED: shop-image #42",
            "body".into(),
            vec![
                ("project".into(), "shop-image".into()),
                ("status".into(), "FAILED".into()),
            ],
        );

        assert_eq!(topic.publish(&notification).await.unwrap(), "m-1");
        assert_eq!(publish.num_calls(), 1);
    }

    const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:approvers";

    fn email(approver: &str) -> Notification {
        Notification::new(
            "Approval needed: shop-main",
            format!("links for {approver}"),
            vec![("approver".into(), approver.into())],
        )
    }

    /// The approvers of a batch request's entries, as `id=approver`.
    fn entries(request: &PublishBatchInput) -> Vec<String> {
        request
            .publish_batch_request_entries()
            .iter()
            .map(|entry| {
                let approver = entry
                    .message_attributes()
                    .and_then(|attributes| attributes.get("approver"))
                    .and_then(|value| value.string_value())
                    .unwrap_or_default();
                format!("{}={approver}", entry.id())
            })
            .collect()
    }

    fn published(ids: &[&str]) -> PublishBatchOutput {
        let mut output = PublishBatchOutput::builder();
        for id in ids {
            output = output.successful(
                PublishBatchResultEntry::builder()
                    .id(*id)
                    .message_id(format!("m-{id}"))
                    .build(),
            );
        }
        output.set_failed(Some(Vec::new())).build()
    }

    fn failed(id: &str, code: &str, sender_fault: bool) -> BatchResultErrorEntry {
        BatchResultErrorEntry::builder()
            .id(id)
            .code(code)
            .message("refused")
            .sender_fault(sender_fault)
            .build()
            .unwrap()
    }

    #[tokio::test]
    async fn emails_go_ten_to_a_batch_and_only_the_entries_sns_failed_are_sent_again() {
        let approvers: Vec<String> = (0..12).map(|i| format!("a{i}@example.com")).collect();
        let emails: Vec<Notification> = approvers.iter().map(|a| email(a)).collect();
        let first = mock!(Client::publish_batch)
            .match_requests(|request| {
                let entries = entries(request);
                request.topic_arn() == Some(TOPIC)
                    && entries.len() == 10
                    && entries[0] == "0=a0@example.com"
                    && entries[9] == "9=a9@example.com"
                    && request.publish_batch_request_entries().iter().all(|entry| {
                        entry.subject() == Some("Approval needed: shop-main")
                            && entry.message().starts_with("links for ")
                    })
            })
            .then_output(|| {
                let mut output = PublishBatchOutput::builder();
                for id in ["0", "1", "2", "5", "6", "7", "8", "9"] {
                    output = output.successful(
                        PublishBatchResultEntry::builder()
                            .id(id)
                            .message_id(format!("m-{id}"))
                            .build(),
                    );
                }
                output
                    .failed(failed("3", "InternalError", false))
                    .failed(failed("4", "InvalidParameter", true))
                    .build()
            });
        let second = mock!(Client::publish_batch)
            .match_requests(|request| {
                entries(request) == ["10=a10@example.com", "11=a11@example.com"]
            })
            .then_output(|| published(&["10", "11"]));
        let retry = mock!(Client::publish_batch)
            .match_requests(|request| entries(request) == ["3=a3@example.com"])
            .then_output(|| published(&["3"]));
        let topic = SnsTopic::new(
            mock_client!(aws_sdk_sns, RuleMode::Sequential, [&first, &second, &retry]),
            TOPIC,
        );

        let outcomes = topic.publish_all(&emails).await;

        assert_eq!(outcomes.len(), 12);
        for (index, outcome) in outcomes.iter().enumerate() {
            if index == 4 {
                let error = outcome.as_ref().unwrap_err();
                assert_eq!(error.code(), Some("InvalidParameter"));
            } else {
                assert_eq!(outcome.as_ref().unwrap(), &format!("m-{index}"));
            }
        }
        assert_eq!(
            (first.num_calls(), second.num_calls(), retry.num_calls()),
            (1, 1, 1)
        );
    }

    #[tokio::test]
    async fn an_entry_sns_keeps_failing_is_sent_a_bounded_number_of_times() {
        let emails = [email("alice@example.com"), email("bob@example.com")];
        let first = mock!(Client::publish_batch)
            .match_requests(|request| entries(request).len() == 2)
            .then_output(|| {
                PublishBatchOutput::builder()
                    .successful(
                        PublishBatchResultEntry::builder()
                            .id("1")
                            .message_id("m-1")
                            .build(),
                    )
                    .failed(failed("0", "InternalError", false))
                    .build()
            });
        let again = mock!(Client::publish_batch)
            .match_requests(|request| entries(request) == ["0=alice@example.com"])
            .then_output(|| {
                PublishBatchOutput::builder()
                    .set_successful(Some(Vec::new()))
                    .failed(failed("0", "InternalError", false))
                    .build()
            });
        let topic = SnsTopic::new(
            mock_client!(aws_sdk_sns, RuleMode::MatchAny, [&again, &first]),
            TOPIC,
        );

        let outcomes = topic.publish_all(&emails).await;

        assert_eq!(
            outcomes[0].as_ref().unwrap_err().code(),
            Some("InternalError")
        );
        assert_eq!(outcomes[1].as_ref().unwrap(), "m-1");
        assert_eq!(
            (first.num_calls(), again.num_calls()),
            (1, MAX_ENTRY_ATTEMPTS as usize - 1)
        );
    }

    #[tokio::test]
    async fn a_batch_refused_whole_fails_each_of_its_entries() {
        use aws_sdk_sns::operation::publish_batch::PublishBatchError;
        use aws_sdk_sns::types::error::AuthorizationErrorException;
        let emails = [email("alice@example.com"), email("bob@example.com")];
        let refused = mock!(Client::publish_batch).then_error(|| {
            PublishBatchError::AuthorizationErrorException(
                AuthorizationErrorException::builder()
                    .message("not allowed")
                    .build(),
            )
        });
        let topic = SnsTopic::new(mock_client!(aws_sdk_sns, [&refused]), TOPIC);

        let outcomes = topic.publish_all(&emails).await;

        assert!(outcomes.iter().all(|outcome| {
            outcome.as_ref().is_err_and(|error| {
                error.operation() == "PublishBatch" && error.message().contains("not allowed")
            })
        }));
        assert_eq!(refused.num_calls(), 1);
    }

    #[test]
    fn batches_hold_at_most_ten_entries_and_256_kib() {
        let big = Notification::new("s", "x".repeat(100_000), vec![]);
        let small = Notification::new("s", "x".into(), vec![]);
        let notifications: Vec<Notification> = [big.clone(), big.clone(), big]
            .into_iter()
            .chain(std::iter::repeat_n(small, 11))
            .collect();
        let all: Vec<usize> = (0..notifications.len()).collect();
        let cut = batches(&all, &notifications);
        let sizes: Vec<usize> = cut.iter().map(Vec::len).collect();
        // Two big ones fill most of a batch; the third starts the next, with nine small ones.
        assert_eq!(sizes, [2, 10, 2]);
        assert_eq!(cut.concat(), all);
    }
}
