//! The message CodePipeline publishes to an SNS topic when a manual approval action starts
//! waiting, as SNS hands it to a Lambda function (`Records[0].Sns.Message` holds the JSON).
//!
//! The shape is CodePipeline's documented "JSON data format for manual approval notifications":
//! `region`, `consoleLink`, and `approval` with the pipeline, stage, action, single-use `token`,
//! `expires` (`2016-07-07T20:22Z`, minutes in UTC), `externalEntityLink`, `approvalReviewLink` and
//! `customData`.

use aws_lambda_events::event::sns::SnsEvent;
use chrono::{DateTime, NaiveDateTime};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::InvalidEvent;
use crate::events::{from_value, kind_of, quoted};

/// The notification of one pending approval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalNotification {
    /// The pipeline's region.
    pub region: String,
    /// The pipeline in the console.
    #[serde(default)]
    pub console_link: Option<String>,
    /// The approval itself.
    pub approval: ApprovalRequest,
}

/// What is waiting for approval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalRequest {
    /// The pipeline.
    pub pipeline_name: String,
    /// The stage holding the approval action.
    pub stage_name: String,
    /// The approval action.
    pub action_name: String,
    /// The single-use approval token: a secret; never log it.
    pub token: String,
    /// When the approval expires (`2026-11-30T10:00Z`).
    pub expires: String,
    /// The action's `ExternalEntityLink` ("URL for review"), when configured.
    #[serde(default)]
    pub external_entity_link: Option<String>,
    /// The approval in the console (it carries the token: never log it).
    #[serde(default)]
    pub approval_review_link: Option<String>,
    /// The action's `CustomData` ("comments"), when configured.
    #[serde(default)]
    pub custom_data: Option<String>,
}

/// The approval notification in an SNS event delivered to Lambda. SNS delivers one record per
/// invocation; several would all be read.
pub fn parse_sns(payload: Value) -> Result<Vec<ApprovalNotification>, InvalidEvent> {
    if !payload.is_object() {
        return Err(InvalidEvent::new(format!(
            "expected an SNS event object, got {}",
            kind_of(&payload)
        )));
    }
    let event: SnsEvent = from_value(payload)?;
    if event.records.is_empty() {
        return Err(InvalidEvent::new("Records: the SNS event holds no record"));
    }
    event
        .records
        .iter()
        .enumerate()
        .map(|(index, record)| {
            let message: Value = serde_json::from_str(&record.sns.message).map_err(|_| {
                InvalidEvent::new(format!(
                    "Records[{index}].Sns.Message: not JSON (not an approval notification)"
                ))
            })?;
            let notification: ApprovalNotification = from_value(message).map_err(|error| {
                InvalidEvent::new(format!("Records[{index}].Sns.Message: {}", error.message()))
            })?;
            notification.validate(index)?;
            Ok(notification)
        })
        .collect()
}

impl ApprovalNotification {
    fn validate(&self, index: usize) -> Result<(), InvalidEvent> {
        let approval = &self.approval;
        let field = |name: &str| format!("Records[{index}].Sns.Message.approval.{name}");
        for (name, value) in [
            ("pipelineName", &approval.pipeline_name),
            ("stageName", &approval.stage_name),
            ("actionName", &approval.action_name),
        ] {
            // CodePipeline's own rule for these names.
            let valid = !value.is_empty()
                && value.len() <= 100
                && value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '@' | '_' | '-'));
            if !valid {
                return Err(InvalidEvent::new(format!(
                    "{}: not a CodePipeline name",
                    field(name)
                )));
            }
        }
        // The token's own pattern (a UUID); its value is never echoed.
        if !is_approval_token(&approval.token) {
            return Err(InvalidEvent::new(format!(
                "{}: not an approval token",
                field("token")
            )));
        }
        if self.expires_at().is_none() {
            return Err(InvalidEvent::new(format!(
                "{}: {} is not a time like 2026-11-30T10:00Z",
                field("expires"),
                quoted(&approval.expires)
            )));
        }
        Ok(())
    }

    /// When the approval expires, in seconds since the epoch.
    pub fn expires_at(&self) -> Option<i64> {
        parse_expiry(&self.approval.expires)
    }
}

/// Whether `token` has the shape of a CodePipeline approval token (a UUID).
pub fn is_approval_token(token: &str) -> bool {
    let groups: Vec<&str> = token.split('-').collect();
    groups.len() == 5
        && groups.iter().zip([8, 4, 4, 4, 12]).all(|(group, length)| {
            group.len() == length && group.bytes().all(|b| b.is_ascii_hexdigit())
        })
}

/// Parses CodePipeline's expiry (`2016-07-07T20:22Z`; seconds and RFC 3339 offsets accepted too)
/// into seconds since the epoch.
pub fn parse_expiry(text: &str) -> Option<i64> {
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Some(time.timestamp());
    }
    ["%Y-%m-%dT%H:%MZ", "%Y-%m-%dT%H:%M:%SZ"]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
        .map(|time| time.and_utc().timestamp())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn sns(message: &str) -> Value {
        json!({"Records": [{
            "EventSource": "aws:sns", "EventVersion": "1.0",
            "EventSubscriptionArn": "arn:aws:sns:us-east-1:123456789012:approvals:0b3c",
            "Sns": {
                "Type": "Notification", "MessageId": "95df01b4-ee98-5cb9-9903-4c221d41eb5e",
                "TopicArn": "arn:aws:sns:us-east-1:123456789012:approvals",
                "Subject": "APPROVAL NEEDED: AWS CodePipeline shop-main for action ProductionGate",
                "Message": message, "Timestamp": "2026-11-23T10:00:00.000Z",
                "SignatureVersion": "1", "Signature": "EXAMPLE", "SigningCertUrl": "EXAMPLE",
                "UnsubscribeUrl": "EXAMPLE", "MessageAttributes": {}
            }
        }]})
    }

    fn message() -> Value {
        json!({
            "region": "us-east-1",
            "consoleLink": "https://console.aws.amazon.com/codepipeline/home?region=us-east-1#/view/shop-main",
            "approval": {
                "pipelineName": "shop-main", "stageName": "Approval", "actionName": "ProductionGate",
                "token": "1a2b3c4d-573f-4ea7-a67e-0123456789ab", "expires": "2026-11-30T10:00Z",
                "externalEntityLink": "https://shop.example.com/staging",
                "approvalReviewLink": "https://console.aws.amazon.com/codepipeline/home?region=us-east-1#/view/shop-main/Approval/ProductionGate/approve/1a2b3c4d-573f-4ea7-a67e-0123456789ab",
                "customData": "Check staging first."
            }
        })
    }

    #[test]
    fn the_documented_notification_parses() {
        let [notification] = parse_sns(sns(&message().to_string()))
            .unwrap()
            .try_into()
            .unwrap();
        assert_eq!(notification.approval.pipeline_name, "shop-main");
        assert_eq!(
            notification.approval.custom_data.as_deref(),
            Some("Check staging first.")
        );
        assert_eq!(notification.expires_at(), Some(1_796_032_800));
    }

    #[test]
    fn expiry_times_in_minutes_seconds_or_rfc3339() {
        assert_eq!(parse_expiry("2026-11-30T10:00Z"), Some(1_796_032_800));
        assert_eq!(parse_expiry("2026-11-30T10:00:30Z"), Some(1_796_032_830));
        assert_eq!(
            parse_expiry("2026-11-30T11:00:00+01:00"),
            Some(1_796_032_800)
        );
        assert_eq!(parse_expiry("next week"), None);
    }

    #[test]
    fn bad_messages_name_the_field_and_never_echo_the_token() {
        let mut no_token = message();
        no_token["approval"]
            .as_object_mut()
            .unwrap()
            .remove("token");
        let error = parse_sns(sns(&no_token.to_string())).unwrap_err();
        assert_eq!(
            error.message(),
            "Records[0].Sns.Message: approval: missing field `token`"
        );

        let mut bad_token = message();
        bad_token["approval"]["token"] = json!("secret-but-malformed");
        let error = parse_sns(sns(&bad_token.to_string())).unwrap_err();
        assert!(
            error
                .message()
                .ends_with("approval.token: not an approval token")
        );
        assert!(!error.message().contains("secret-but-malformed"));

        let mut bad_pipeline = message();
        bad_pipeline["approval"]["pipelineName"] = json!("shop main");
        assert!(parse_sns(sns(&bad_pipeline.to_string())).is_err());

        let mut bad_expiry = message();
        bad_expiry["approval"]["expires"] = json!("soon");
        assert!(
            parse_sns(sns(&bad_expiry.to_string()))
                .unwrap_err()
                .message()
                .contains("expires")
        );

        assert!(
            parse_sns(sns("not json"))
                .unwrap_err()
                .message()
                .contains("not JSON")
        );
        assert!(parse_sns(json!({"Records": []})).is_err());
        assert!(parse_sns(json!([1])).is_err());
        assert!(parse_sns(json!({"detail-type": "x"})).is_err());
    }

    #[test]
    fn tokens_have_the_uuid_shape() {
        assert!(is_approval_token("1a2b3c4d-573f-4ea7-a67E-0123456789ab"));
        assert!(!is_approval_token("1a2b3c4d-573f-4ea7-a67E-XAMPLETOKEN"));
        assert!(!is_approval_token(""));
    }
}
