//! delivery-events' event path on arbitrary bytes: the raw payload, the EventBridge envelope and
//! the CodePipeline execution, stage or action change (`handler::parse`), then whether it tells
//! an end with the sample settings (`handler::classify`) and, for an end, the whole report of
//! an execution without action runs: the message, the pull-request comment and the metrics.
#![no_main]

use std::sync::LazyLock;

use delivery_events::config::Config;
use delivery_events::handler;
use delivery_events::report::Report;
use fuzz_support::{check_invalid, payload, sample_setting};
use libfuzzer_sys::fuzz_target;
use shared::events::MAX_EVENT_BYTES;
use shared::events::codepipeline::SOURCE;
use shared::ports::MAX_SUBJECT_CHARS;

static CONFIG: LazyLock<Config> = LazyLock::new(|| {
    Config::from_lookup(sample_setting("DeliveryEventsFunction"))
        .unwrap_or_else(|error| panic!("events/env.json: {error}"))
});

fuzz_target!(|data: &[u8]| {
    let Some(payload) = payload(data, MAX_EVENT_BYTES) else {
        return;
    };
    let event = match handler::parse(payload) {
        Ok(event) => event,
        Err(error) => return check_invalid(&error),
    };
    assert_eq!(event.source, SOURCE);
    assert!(!event.detail.execution_id.trim().is_empty());
    let Ok(end) = handler::classify(&event, &CONFIG) else {
        return;
    };
    assert!(end.attempt >= 1);
    let report = Report::build(end, &[]);
    let notification = report.notification();
    assert!(notification.subject.chars().count() <= MAX_SUBJECT_CHARS);
    assert!(
        notification
            .subject
            .bytes()
            .all(|b| b == b' ' || b.is_ascii_graphic())
    );
    let _ = report.pull_request_comment();
    let _ = delivery_events::dora::document(&report, None);
});
