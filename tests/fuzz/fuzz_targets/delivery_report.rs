//! delivery-events' report on arbitrary action runs: what ListActionExecutions could answer
//! (any category, status, summary, error message, output variables, approver), for every way an
//! execution ends. The message fits SNS, the comment fits CodeCommit, the metrics are numbers,
//! and a digest is only ever one the deploy reported.
#![no_main]

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use delivery_events::dora;
use delivery_events::report::{EndState, ExecutionEnd, Report};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use shared::ports::{ActionRun, MAX_COMMENT_CHARS, MAX_SUBJECT_CHARS};

fn text(value: &Value, name: &str) -> Option<String> {
    value.get(name)?.as_str().map(str::to_owned)
}

fn time(value: &Value, name: &str) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(value.get(name)?.as_i64()?, 0)
}

fn run(value: &Value) -> ActionRun {
    let map = |name: &str| -> BTreeMap<String, String> {
        value
            .get(name)
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                    .collect()
            })
            .unwrap_or_default()
    };
    ActionRun {
        stage: text(value, "stage").unwrap_or_default(),
        action: text(value, "action").unwrap_or_default(),
        category: text(value, "category").unwrap_or_default(),
        provider: text(value, "provider").unwrap_or_default(),
        status: text(value, "status").unwrap_or_default(),
        started_at: time(value, "started"),
        updated_at: time(value, "updated"),
        updated_by: text(value, "updatedBy"),
        summary: text(value, "summary"),
        url: text(value, "url"),
        external_id: text(value, "externalId"),
        error_code: text(value, "errorCode"),
        error_message: text(value, "errorMessage"),
        log_stream_arn: text(value, "logStreamArn"),
        configuration: map("configuration"),
        output_variables: map("outputVariables"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(Value::Array(items)) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let runs: Vec<ActionRun> = items.iter().take(50).map(run).collect();
    let ends = [
        (EndState::Succeeded, false),
        (EndState::Succeeded, true),
        (EndState::Failed, false),
        (EndState::Failed, true),
        (EndState::Stopped, false),
        (EndState::Superseded, false),
        (EndState::Canceled, false),
    ];
    for (state, rollback) in ends {
        let end = ExecutionEnd {
            pipeline: "shop-main".into(),
            execution_id: "3137f7cb-7cf7-4f7a-9b3e-1234567890ab".into(),
            attempt: 1,
            state,
            at: DateTime::from_timestamp(1_795_000_000, 0).unwrap_or_default(),
            environment: "production".into(),
            console_link: None,
            rollback,
        };
        let report = Report::build(end, &runs);
        let notification = report.notification();
        assert!(notification.subject.chars().count() <= MAX_SUBJECT_CHARS);
        assert!(
            notification
                .subject
                .bytes()
                .all(|b| b == b' ' || b.is_ascii_graphic())
        );
        if let Some(comment) = report.pull_request_comment() {
            assert!(
                comment.chars().count() <= MAX_COMMENT_CHARS,
                "{} characters",
                comment.chars().count()
            );
        }
        if let Some(digest) = report.deploy.as_ref().and_then(|d| d.digest.as_deref()) {
            assert!(
                digest.starts_with("sha256:") && digest.len() == 71,
                "{digest:?}"
            );
            let reported = runs
                .iter()
                .any(|r| r.output_variables.values().any(|v| v.contains(digest)));
            assert!(reported, "a digest no run reported: {digest}");
        }
        if let Some(document) = dora::document(&report, None) {
            assert!(
                document
                    .metrics
                    .iter()
                    .all(|m| m.value.is_finite() && m.value >= 0.0)
            );
            assert!(dora::counts(&report));
        }
    }
});
