//! Typed events, and the one place raw payloads become them.
//!
//! Handlers take the raw JSON and parse it here rather than letting the runtime deserialize it:
//! a payload that does not fit then becomes a typed [`InvalidEvent`] naming the field at fault,
//! reported with a stable `errorType`, instead of the runtime's generic deserialization error.

pub mod codebuild;
pub mod codecommit;
pub mod codepipeline;

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::InvalidEvent;

/// Deserializes `payload` into `T`; the error names the JSON path at fault.
pub fn from_value<T: DeserializeOwned>(payload: Value) -> Result<T, InvalidEvent> {
    serde_path_to_error::deserialize(payload).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner().to_string();
        if path == "." {
            InvalidEvent::new(inner)
        } else {
            InvalidEvent::new(format!("{path}: {inner}"))
        }
    })
}

/// Parses an EventBridge event, first checking it is the `source` / `detail-type` this
/// function handles, so a foreign event is named as such rather than as a missing field.
pub fn eventbridge<D>(
    payload: Value,
    source: &str,
    detail_types: &[&str],
) -> Result<EventBridgeEvent<D>, InvalidEvent>
where
    D: Serialize + DeserializeOwned,
{
    let Value::Object(fields) = &payload else {
        return Err(InvalidEvent::new(format!(
            "expected an EventBridge event object, got {}",
            kind_of(&payload)
        )));
    };
    let text = |name: &str| fields.get(name).and_then(Value::as_str);
    match text("source") {
        Some(actual) if actual == source => {}
        Some(actual) => {
            return Err(InvalidEvent::new(format!(
                "event source {actual:?} is not handled here (expected {source:?})"
            )));
        }
        None => return Err(InvalidEvent::missing("source")),
    }
    match text("detail-type") {
        Some(actual) if detail_types.contains(&actual) => {}
        Some(actual) => {
            return Err(InvalidEvent::new(format!(
                "detail-type {actual:?} is not handled here (expected one of {detail_types:?})"
            )));
        }
        None => return Err(InvalidEvent::missing("detail-type")),
    }
    if !fields.contains_key("detail") {
        return Err(InvalidEvent::missing("detail"));
    }
    from_value(payload)
}

/// The JSON kind of `value`, for error messages that never echo the value itself.
pub fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The event id EventBridge gives each event; a redelivery carries the same id.
pub fn event_id<D: Serialize + DeserializeOwned>(
    event: &EventBridgeEvent<D>,
) -> Result<&str, InvalidEvent> {
    event
        .id
        .as_deref()
        .filter(|id| !id.is_empty())
        .ok_or_else(|| InvalidEvent::missing("id"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[derive(Debug, Serialize, serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Detail {
        commit_id: String,
    }

    fn event(detail: Value) -> Value {
        json!({
            "version": "0", "id": "4f1c", "detail-type": "Thing Changed", "source": "aws.thing",
            "account": "123456789012", "time": "2026-11-23T10:00:00Z", "region": "us-east-1",
            "resources": [], "detail": detail
        })
    }

    #[test]
    fn a_matching_event_parses() {
        let parsed: EventBridgeEvent<Detail> = eventbridge(
            event(json!({"commitId": "abc"})),
            "aws.thing",
            &["Thing Changed"],
        )
        .unwrap();
        assert_eq!(parsed.detail.commit_id, "abc");
        assert_eq!(event_id(&parsed).unwrap(), "4f1c");
    }

    #[test]
    fn a_missing_detail_field_is_named_with_its_path() {
        let error =
            eventbridge::<Detail>(event(json!({})), "aws.thing", &["Thing Changed"]).unwrap_err();
        assert_eq!(error.message(), "detail: missing field `commitId`");
    }

    #[test]
    fn a_wrongly_typed_field_is_named_with_its_path() {
        let error = eventbridge::<Detail>(
            event(json!({"commitId": 7})),
            "aws.thing",
            &["Thing Changed"],
        )
        .unwrap_err();
        assert!(
            error.message().starts_with("detail.commitId: invalid type"),
            "{error}"
        );
    }

    #[test]
    fn a_foreign_event_is_named_as_foreign() {
        let mut foreign = event(json!({"commitId": "abc"}));
        foreign["detail-type"] = json!("Other Thing");
        let error = eventbridge::<Detail>(foreign, "aws.thing", &["Thing Changed"]).unwrap_err();
        assert!(
            error
                .message()
                .contains("\"Other Thing\" is not handled here"),
            "{error}"
        );

        let mut foreign = event(json!({"commitId": "abc"}));
        foreign["source"] = json!("aws.other");
        let error = eventbridge::<Detail>(foreign, "aws.thing", &["Thing Changed"]).unwrap_err();
        assert!(error.message().contains("\"aws.other\""), "{error}");
    }

    #[test]
    fn non_objects_and_missing_envelope_fields_are_invalid() {
        let error =
            eventbridge::<Detail>(json!([1, 2]), "aws.thing", &["Thing Changed"]).unwrap_err();
        assert_eq!(
            error.message(),
            "expected an EventBridge event object, got an array"
        );
        let error = eventbridge::<Detail>(
            json!({"source": "aws.thing"}),
            "aws.thing",
            &["Thing Changed"],
        )
        .unwrap_err();
        assert_eq!(error.message(), "missing field `detail-type`");
        let mut no_detail = event(json!({}));
        no_detail.as_object_mut().unwrap().remove("detail");
        let error = eventbridge::<Detail>(no_detail, "aws.thing", &["Thing Changed"]).unwrap_err();
        assert_eq!(error.message(), "missing field `detail`");
    }

    #[test]
    fn an_event_without_an_id_cannot_be_deduplicated() {
        let mut no_id = event(json!({"commitId": "abc"}));
        no_id.as_object_mut().unwrap().remove("id");
        let parsed: EventBridgeEvent<Detail> =
            eventbridge(no_id, "aws.thing", &["Thing Changed"]).unwrap();
        assert_eq!(
            event_id(&parsed).unwrap_err().message(),
            "missing field `id`"
        );
    }
}
