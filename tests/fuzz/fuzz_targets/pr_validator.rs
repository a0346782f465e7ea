//! pr-validator's event path on arbitrary bytes: the raw payload, any event it takes
//! (`handler::parse`), then the pull-request decision or the build classification with the
//! sample settings, or the sweep's scheduled time.
#![no_main]

use std::sync::LazyLock;

use fuzz_support::{check_invalid, payload, sample_setting};
use libfuzzer_sys::fuzz_target;
use pr_validator::build::{self, Interest};
use pr_validator::config::Config;
use pr_validator::handler::{self, Incoming};
use pr_validator::pull_request::{self, Decision, is_pull_request_id};
use shared::events::MAX_EVENT_BYTES;
use shared::events::codebuild::{self, BUILD_STATE_CHANGE};
use shared::events::codecommit::{self, PULL_REQUEST_STATE_CHANGE};
use shared::events::schedule;
use shared::text::is_commit_id;

static CONFIG: LazyLock<Config> = LazyLock::new(|| {
    Config::from_lookup(sample_setting("PullRequestValidatorFunction"))
        .unwrap_or_else(|error| panic!("events/env.json: {error}"))
});

fuzz_target!(|data: &[u8]| {
    let Some(payload) = payload(data, MAX_EVENT_BYTES) else {
        return;
    };
    match handler::parse(payload) {
        Ok(Incoming::PullRequest(event)) => {
            assert_eq!(event.source, codecommit::SOURCE);
            assert_eq!(event.detail_type, PULL_REQUEST_STATE_CHANGE);
            match pull_request::decide(&event, &CONFIG) {
                Ok(Decision::Validate(candidate)) => {
                    // A build is only ever asked for a real pull request id and commit.
                    assert!(
                        is_pull_request_id(&candidate.pull_request_id),
                        "{candidate:?}"
                    );
                    assert!(is_commit_id(&candidate.source_commit), "{candidate:?}");
                }
                Ok(Decision::Ignore(_)) => {}
                Err(error) => check_invalid(&error),
            }
        }
        Ok(Incoming::Build(event)) => {
            assert_eq!(event.source, codebuild::SOURCE);
            assert_eq!(event.detail_type, BUILD_STATE_CHANGE);
            match build::classify(&event.detail, &CONFIG) {
                Ok(Interest::Report(finished)) => {
                    // A result is only ever reported on a real pull request id and commit.
                    assert!(
                        is_pull_request_id(&finished.pull_request_id),
                        "{finished:?}"
                    );
                    assert!(is_commit_id(&finished.source_commit), "{finished:?}");
                    assert!(finished.status.is_final(), "{finished:?}");
                }
                Ok(Interest::Ignore(_)) => {}
                Err(error) => check_invalid(&error),
            }
        }
        Ok(Incoming::Sweep(event)) => {
            assert_eq!(event.source, schedule::SOURCE);
            assert_eq!(event.detail_type, schedule::SCHEDULED_EVENT);
            if let Err(error) = schedule::scheduled_at(&event) {
                check_invalid(&error);
            }
        }
        Err(error) => check_invalid(&error),
    }
});
