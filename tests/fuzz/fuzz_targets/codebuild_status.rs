//! codebuild-status's event path on arbitrary bytes: the raw payload, the EventBridge envelope
//! and the build change or the sweep's scheduled event (`handler::parse`), then what the build
//! asks for with the sample settings, or the sweep's scheduled time.
#![no_main]

use std::sync::LazyLock;

use codebuild_status::config::Config;
use codebuild_status::handler::{self, Incoming};
use fuzz_support::{check_invalid, payload, sample_setting};
use libfuzzer_sys::fuzz_target;
use shared::events::MAX_EVENT_BYTES;
use shared::events::codebuild::{BUILD_STATE_CHANGE, SOURCE};
use shared::events::schedule;

static CONFIG: LazyLock<Config> = LazyLock::new(|| {
    Config::from_lookup(sample_setting("CodeBuildStatusFunction"))
        .unwrap_or_else(|error| panic!("events/env.json: {error}"))
});

fuzz_target!(|data: &[u8]| {
    let Some(payload) = payload(data, MAX_EVENT_BYTES) else {
        return;
    };
    let event = match handler::parse(payload) {
        Ok(Incoming::Build(event)) => event,
        Ok(Incoming::Sweep(event)) => {
            assert_eq!(event.source, schedule::SOURCE);
            assert_eq!(event.detail_type, schedule::SCHEDULED_EVENT);
            if let Err(error) = schedule::scheduled_at(&event) {
                check_invalid(&error);
            }
            return;
        }
        Err(error) => return check_invalid(&error),
    };
    assert_eq!(event.source, SOURCE);
    assert_eq!(event.detail_type, BUILD_STATE_CHANGE);
    let _ = shared::events::event_id(&event);
    // Pure: never panics, whatever the build says.
    let _ = handler::classify(&event.detail, &CONFIG);
    let _ = event.detail.outcome();
});
