//! codecommit-push's event path on arbitrary bytes: the raw payload, the EventBridge envelope
//! and the repository change (`handler::parse`), then the routing decision with the sample routes.
#![no_main]

use std::sync::LazyLock;

use codecommit_push::config::{Config, Routes};
use codecommit_push::handler::{self, Decision};
use fuzz_support::{check_invalid, payload, sample_setting};
use libfuzzer_sys::fuzz_target;
use shared::events::MAX_EVENT_BYTES;
use shared::events::codecommit::{REPOSITORY_STATE_CHANGE, SOURCE};
use shared::text::is_commit_id;

static ROUTES: LazyLock<Routes> = LazyLock::new(|| {
    Config::from_lookup(sample_setting("CodeCommitPushFunction"))
        .unwrap_or_else(|error| panic!("events/env.json: {error}"))
        .routes
});

fuzz_target!(|data: &[u8]| {
    let Some(payload) = payload(data, MAX_EVENT_BYTES) else {
        return;
    };
    let event = match handler::parse(payload) {
        Ok(event) => event,
        Err(error) => return check_invalid(&error),
    };
    // Only the one source and detail-type this function is subscribed to gets through.
    assert_eq!(event.source, SOURCE);
    assert_eq!(event.detail_type, REPOSITORY_STATE_CHANGE);
    match handler::decide(&event, &ROUTES) {
        Ok(Decision::Build(push)) => {
            // A pipeline is only ever started on a whole commit id, for a routed branch, with
            // the event id as idempotency token.
            assert!(is_commit_id(&push.commit_id), "{push:?}");
            assert!(!push.routes.is_empty(), "{push:?}");
            assert!(!push.event_id.is_empty(), "{push:?}");
            assert_eq!(push.repository, event.detail.repository_name);
        }
        Ok(Decision::Ignore(_)) => {}
        Err(error) => check_invalid(&error),
    }
});
