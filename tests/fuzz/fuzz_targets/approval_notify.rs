//! approval-notify's event path on arbitrary bytes: the raw payload, the SNS envelope and the
//! approval notification in it (`handler::parse`), then the links each sample approver is mailed.
//!
//! What must hold: a notification that parses is a valid one (CodePipeline names, a token of
//! the UUID shape, an expiry), and every link made for it is accepted by approval-callback's
//! verifier and names exactly that approval.
#![no_main]

use std::sync::LazyLock;

use approval_notify::config::Config;
use approval_notify::handler;
use fuzz_support::{check_invalid, payload, sample_setting};
use libfuzzer_sys::fuzz_target;
use shared::approval_link::{ApprovalLink, SigningKey};
use shared::events::MAX_EVENT_BYTES;
use shared::events::approval::is_approval_token;

static CONFIG: LazyLock<Config> = LazyLock::new(|| {
    Config::from_lookup(sample_setting("ApprovalNotifyFunction"))
        .unwrap_or_else(|error| panic!("events/env.json: {error}"))
});

static KEY: LazyLock<SigningKey> = LazyLock::new(|| {
    SigningKey::new(b"the fuzz targets' key: signs nothing outside them")
        .unwrap_or_else(|error| panic!("{error}"))
});

fn is_codepipeline_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._@-".contains(&b))
}

fuzz_target!(|data: &[u8]| {
    let Some(payload) = payload(data, MAX_EVENT_BYTES) else {
        return;
    };
    let notification = match handler::parse(payload) {
        Ok(notification) => notification,
        Err(error) => return check_invalid(&error),
    };
    let approval = &notification.approval;
    for name in [
        &approval.pipeline_name,
        &approval.stage_name,
        &approval.action_name,
    ] {
        assert!(is_codepipeline_name(name), "{name:?}");
    }
    assert!(is_approval_token(&approval.token));
    let Some(expires_at) = notification.expires_at() else {
        panic!(
            "a notification without an expiry was taken: {:?}",
            approval.expires
        );
    };
    for approver in &CONFIG.approvers {
        for (decision, url) in handler::links(
            &KEY,
            &CONFIG.callback_url,
            &notification,
            approver,
            expires_at,
        ) {
            let Some(signed) = url.strip_prefix(&format!("{}?link=", CONFIG.callback_url)) else {
                panic!("a link not to the callback: {url}");
            };
            // What approval-callback does with it, just before it expires.
            let link = ApprovalLink::verify(signed, &KEY, expires_at.saturating_sub(1))
                .unwrap_or_else(|error| panic!("a mailed link is refused: {error}"));
            assert_eq!(link.approval.pipeline, approval.pipeline_name);
            assert_eq!(link.approval.stage, approval.stage_name);
            assert_eq!(link.approval.action, approval.action_name);
            assert_eq!(link.approval.token, approval.token);
            assert_eq!(&link.approver, approver);
            assert_eq!(link.decision, decision);
            assert_eq!(link.expires_at, expires_at);
        }
    }
});
