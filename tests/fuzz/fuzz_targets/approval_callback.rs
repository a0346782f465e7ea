//! approval-callback on arbitrary bytes: the raw payload, our own Function URL conversion
//! (`function_url::parse`, which replaced lambda_http's panicking one), then the whole request
//! handling (`handler::handle`) against CodePipeline stubbed as waiting for the sample approval.
//!
//! What must hold: no request makes the function panic or fail (every refusal is a 4xx page),
//! and a decision reaches CodePipeline only from a POST carrying a link signed with the key,
//! unexpired, naming that approval and decision, with the anti-forgery form value that matches
//! one of its cookies. The seeds (`events/approval-callback`) hold links, a form and a cookie
//! signed with the samples' key, so the fuzzer starts from requests that do decide.
#![no_main]

use std::future::{Future, ready};
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use approval_callback::function_url;
use approval_callback::handler::{self, COOKIE, Deps};
use fuzz_support::{check_invalid, payload};
use libfuzzer_sys::fuzz_target;
use shared::UpstreamError;
use shared::approval_link::{Approval, ApprovalLink, Decision, FormGuard, SigningKey};
use shared::events::MAX_REQUEST_BYTES;
use shared::ports::{ApprovalApi, ApprovalState, Revision};

/// The key the sample events are signed with (approval-callback's unit tests); never deployed.
const SAMPLE_KEY: &[u8] = b"sample signing key: for the sample events only, never deployed";
/// The sample approval's token: the one the stub says CodePipeline waits for.
const SAMPLE_TOKEN: &str = "1a2b3c4d-573f-4ea7-a67e-0123456789ab";
/// A minute after the sample form was served (`post-approve.json`), so its guard is fresh.
const NOW: i64 = 1_795_428_300 + 60;

/// CodePipeline, waiting for the sample approval, recording decisions.
#[derive(Debug, Default)]
struct Pipeline {
    decided: Arc<Mutex<Vec<(Approval, Decision)>>>,
}

impl ApprovalApi for Pipeline {
    fn approval_state(
        &self,
        _pipeline: &str,
        _stage: &str,
        _action: &str,
        _token: &str,
    ) -> impl Future<Output = Result<ApprovalState, UpstreamError>> + Send {
        ready(Ok(ApprovalState {
            execution_id: Some("8d2a9c1e-0000-4000-8000-000000000000".to_owned()),
            status: Some("InProgress".to_owned()),
            token: Some(SAMPLE_TOKEN.to_owned()),
            ..ApprovalState::default()
        }))
    }

    fn execution_revision(
        &self,
        _pipeline: &str,
        _execution_id: &str,
    ) -> impl Future<Output = Result<Option<Revision>, UpstreamError>> + Send {
        ready(Ok(Some(Revision {
            id: "0ccf1ae5c1f6a1b2c3d4e5f60718293a4b5c6d7e".to_owned(),
            summary: Some("Checkout: keep the cart\non reload".to_owned()),
            url: None,
        })))
    }

    fn decide(
        &self,
        approval: &Approval,
        decision: Decision,
        _summary: &str,
    ) -> impl Future<Output = Result<Option<String>, UpstreamError>> + Send {
        if let Ok(mut decided) = self.decided.lock() {
            decided.push((approval.clone(), decision));
        }
        ready(Ok(Some("2026-11-23T10:06:00Z".to_owned())))
    }
}

/// Runs `future`, which never waits: the stub answers at once.
fn run<T>(future: impl Future<Output = T>) -> T {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(value) => value,
        Poll::Pending => panic!("the handler waited on a stub that never makes it wait"),
    }
}

fn form_fields<'a>(form: &'a [u8], name: &'a str) -> impl Iterator<Item = String> + 'a {
    form_urlencoded::parse(form)
        .filter(move |(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

fuzz_target!(|data: &[u8]| {
    let Some(payload) = payload(data, MAX_REQUEST_BYTES) else {
        return;
    };
    let request = match function_url::parse(payload) {
        Ok(request) => request,
        Err(error) => return check_invalid(&error),
    };
    let method = request.method().as_str().to_owned();
    let body = request.body().as_ref().to_vec();
    let cookies: Vec<String> = request
        .headers()
        .get_all("cookie")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned())
        .collect();

    let Ok(key) = SigningKey::new(SAMPLE_KEY) else {
        panic!("the sample key is too short");
    };
    let decided = Arc::default();
    let pipeline = Pipeline {
        decided: Arc::clone(&decided),
    };
    let deps = Deps::new(pipeline, key.clone());
    let response = run(handler::handle(&deps, request, NOW, [7; 16]));
    let status = response.status().as_u16();
    assert!(
        (200..500).contains(&status),
        "a request answered with {status}: only CodePipeline failing may do that"
    );

    let Ok(decided) = decided.lock().map(|decided| decided.clone()) else {
        return;
    };
    for (approval, decision) in decided {
        assert_eq!(method, "POST", "a decision from a {method}");
        assert_eq!(status, 200, "a decision answered with {status}");
        // Some link of the form is genuine, unexpired, and is the one decided.
        let genuine = form_fields(&body, "link").find(|signed| {
            ApprovalLink::verify(signed, &key, NOW)
                .is_ok_and(|link| link.approval == approval && link.decision == decision)
        });
        let Some(signed) = genuine else {
            panic!("a decision without a genuine link for it");
        };
        let signature = ApprovalLink::signature_of(&signed).unwrap_or_default();
        // ... and its page's form value goes with one of the request's cookies.
        let guarded = form_fields(&body, "form").any(|form| {
            cookies.iter().any(|cookie| {
                FormGuard::verify(&key, signature, Some(&form), Some(cookie), NOW).is_ok()
            })
        });
        assert!(
            guarded,
            "a decision without the page's form value and cookie"
        );
    }
});
