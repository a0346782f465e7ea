use aws_sdk_sns::Client;
use aws_sdk_sns::types::MessageAttributeValue;

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

impl Notifier for SnsTopic {
    async fn publish(&self, notification: &Notification) -> Result<String, UpstreamError> {
        let mut request = self
            .client
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(&notification.subject)
            .message(&notification.body);
        for (name, value) in &notification.attributes {
            let attribute = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
                .map_err(|error| {
                    UpstreamError::new("SNS", "Publish", None, format!("attribute {name}"))
                        .with_source(error)
                })?;
            request = request.message_attributes(name, attribute);
        }
        let output = request
            .send()
            .await
            .map_err(|error| upstream("SNS", "Publish", error))?;
        Ok(output.message_id().unwrap_or_default().to_owned())
    }
}
