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

#[cfg(test)]
mod tests {
    use aws_sdk_sns::Client;
    use aws_sdk_sns::operation::publish::PublishOutput;
    use aws_smithy_mocks::{mock, mock_client};

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
}
