//! The whole story of the local flow, as a test: every step a person would see must happen.
//! It runs the same code as `tests/scripts/flow` (`integration_tests::story`), with names of its
//! own so it can share the emulators with the other tests.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failed test

use integration_tests::story::{self, Names};
use integration_tests::timeline::Timeline;

#[tokio::test(flavor = "multi_thread")]
async fn from_a_push_to_a_rolled_back_bad_image_every_step_happens() {
    let mut timeline = Timeline::new();

    story::tell(Names::unique(), &mut timeline).await;

    let failures = timeline.failures();
    assert!(
        failures.is_empty(),
        "steps that did not happen: {failures:#?}"
    );
    assert!(
        timeline.checks() >= 20,
        "the story checked only {} steps",
        timeline.checks()
    );
}
