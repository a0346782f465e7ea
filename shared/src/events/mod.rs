//! Typed events, and the one place raw payloads become them.
//!
//! Handlers take the raw JSON and parse it here rather than letting the runtime deserialize it:
//! a payload that does not fit then becomes a typed [`InvalidEvent`] naming the field at fault,
//! reported with a stable `errorType`, instead of the runtime's generic deserialization error.

pub mod approval;
pub mod codebuild;
pub mod codecommit;
pub mod codepipeline;
pub mod schedule;

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
pub use serde_json::value::RawValue;

use crate::error::InvalidEvent;

/// The largest event an EventBridge- or SNS-triggered function takes. EventBridge and SNS cap
/// their events at 256 KB, and the real ones are a few KB: anything larger was not sent by them.
pub const MAX_EVENT_BYTES: usize = 256 * 1024;

/// The largest request the Function URL function takes: Lambda's own limit for a synchronous
/// invocation (the function refuses bodies over 16 KiB itself, with a page).
pub const MAX_REQUEST_BYTES: usize = 6 * 1024 * 1024;

/// How much of a value an error message quotes: enough to recognize it, never a whole
/// attacker-sized string in a log line.
const MAX_QUOTED_CHARS: usize = 64;

/// The payload Lambda handed over, as JSON.
///
/// The functions take their events as [`RawValue`] (which the runtime checks is JSON, at any
/// depth) and parse them here, so that an oversized payload or one nested deeper than serde_json's
/// limit of 128 levels is a typed [`InvalidEvent`] logged by the function, not the runtime's own
/// untyped deserialization error.
pub fn payload(raw: &RawValue, max_bytes: usize) -> Result<Value, InvalidEvent> {
    let text = raw.get();
    if text.len() > max_bytes {
        return Err(InvalidEvent::new(format!(
            "the event has {} bytes; at most {max_bytes} are taken",
            text.len()
        )));
    }
    serde_json::from_str(text).map_err(|error| {
        if error.to_string().starts_with("recursion limit exceeded") {
            InvalidEvent::new("the event is nested deeper than 128 levels")
        } else {
            InvalidEvent::new(format!("the event is not JSON ({:?})", error.classify()))
        }
    })
}

/// `value` in quotes for an error message, cut to a few dozen characters (control characters
/// escaped), so that whatever an event holds, the message naming it stays one short line.
pub fn quoted(value: &str) -> String {
    if value.chars().count() <= MAX_QUOTED_CHARS {
        return format!("{value:?}");
    }
    let cut: String = value.chars().take(MAX_QUOTED_CHARS).collect();
    format!("{cut:?}… ({} characters)", value.chars().count())
}

/// How much of a JSON path, and of serde's reason, an error message keeps.
const MAX_PATH_CHARS: usize = 160;
const MAX_REASON_CHARS: usize = 240;

/// `text` with control characters escaped, cut to `max` characters.
fn one_short_line(text: &str, max: usize) -> String {
    let mut line = String::new();
    for (kept, c) in text.chars().enumerate() {
        if kept == max {
            line.push_str(&format!("… ({} characters)", text.chars().count()));
            return line;
        }
        if c.is_control() {
            line.extend(c.escape_default());
        } else {
            line.push(c);
        }
    }
    line
}

/// Deserializes `payload` into `T`; the error names the JSON path at fault.
pub fn from_value<T: DeserializeOwned>(payload: Value) -> Result<T, InvalidEvent> {
    serde_path_to_error::deserialize(payload).map_err(|error| {
        // Both quote the event: serde's "unknown variant `…`" and a path through an
        // attacker-named key would otherwise put whole strings, newlines and all, in the log.
        let path = one_short_line(&error.path().to_string(), MAX_PATH_CHARS);
        let inner = one_short_line(&error.into_inner().to_string(), MAX_REASON_CHARS);
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
                "event source {} is not handled here (expected {source:?})",
                quoted(actual)
            )));
        }
        None => return Err(InvalidEvent::missing("source")),
    }
    match text("detail-type") {
        Some(actual) if detail_types.contains(&actual) => {}
        Some(actual) => {
            return Err(InvalidEvent::new(format!(
                "detail-type {} is not handled here (expected one of {detail_types:?})",
                quoted(actual)
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
    fn payloads_too_large_or_too_deep_are_invalid_events() {
        let raw = |text: &str| RawValue::from_string(text.to_owned()).unwrap();
        assert_eq!(
            payload(&raw(r#"{"a": [1, 2]}"#), 100).unwrap(),
            json!({"a": [1, 2]})
        );
        let big = raw(&format!("{{\"a\": \"{}\"}}", "x".repeat(300)));
        assert_eq!(
            payload(&big, 100).unwrap_err().message(),
            "the event has 309 bytes; at most 100 are taken"
        );
        let deep = raw(&format!("{}{}", "[".repeat(200), "]".repeat(200)));
        assert_eq!(
            payload(&deep, 1000).unwrap_err().message(),
            "the event is nested deeper than 128 levels"
        );
    }

    #[test]
    fn serde_reasons_and_paths_quoting_the_event_stay_one_short_line() {
        #[derive(Debug, serde::Deserialize)]
        enum Status {
            Open,
        }
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Event {
            status: Status,
            labels: std::collections::BTreeMap<String, u8>,
        }
        let variant = format!("{}\n{}", "a".repeat(5_000), "b".repeat(5_000));
        let error = from_value::<Event>(json!({"status": variant, "labels": {}})).unwrap_err();
        assert!(
            error.message().starts_with("status: unknown variant `aaa"),
            "{error}"
        );
        assert!(error.message().len() < 400, "{}", error.message().len());
        let key = format!("{}\r{}", "k".repeat(3_000), "k");
        let error =
            from_value::<Event>(json!({"status": "Open", "labels": {key: "x"}})).unwrap_err();
        assert!(error.message().starts_with("labels.kkk"), "{error}");
        assert!(error.message().len() < 500, "{}", error.message().len());
        assert!(!error.message().contains(['\n', '\r']), "{error}");
        assert_eq!(one_short_line("a\u{7}b", 10), "a\\u{7}b");
        assert_eq!(one_short_line("abcdef", 3), "abc… (6 characters)");
    }

    #[test]
    fn quoted_values_are_cut_and_escaped() {
        assert_eq!(quoted("aws.thing"), "\"aws.thing\"");
        assert_eq!(quoted("a\nb"), "\"a\\nb\"");
        let long = quoted(&"é".repeat(10_000));
        assert!(long.ends_with("… (10000 characters)"), "{long}");
        assert!(long.chars().count() < 100, "{long}");
    }

    #[test]
    fn a_huge_foreign_source_is_not_echoed_whole() {
        let mut foreign = event(json!({"commitId": "abc"}));
        foreign["source"] = json!("x".repeat(100_000));
        let error = eventbridge::<Detail>(foreign, "aws.thing", &["Thing Changed"]).unwrap_err();
        assert!(error.message().len() < 200, "{}", error.message().len());
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
