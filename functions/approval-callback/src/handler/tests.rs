use std::sync::Mutex;

use lambda_http::http::HeaderMap;
use mockall::predicate::eq;
use serde_json::Value;
use shared::approval_link::{Approval, Approver};
use shared::ports::{MockApprovalApi, reply};

use super::*;

/// The key the sample events in `events/approval-callback/` are signed with.
const SAMPLE_KEY: &[u8] = b"sample signing key: for the sample events only, never deployed";
const TOKEN: &str = "1a2b3c4d-573f-4ea7-a67e-0123456789ab";
/// 2026-11-23T10:05:00Z: when the sample POST's page was served.
const SAMPLE_NOW: i64 = 1_795_428_300;
const NOW: i64 = SAMPLE_NOW + 60;
const HOST: &str = "abcdefghijklmnopqrstuvwxyz012345.lambda-url.us-east-1.on.aws";

fn key() -> SigningKey {
    SigningKey::new(SAMPLE_KEY).unwrap()
}

fn sample(name: &str) -> Value {
    let path = format!(
        "{}/../../events/approval-callback/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn request(name: &str) -> Request {
    parse(sample(name)).unwrap()
}

fn approval() -> Approval {
    Approval {
        pipeline: "shop-main".into(),
        stage: "Approval".into(),
        action: "ProductionGate".into(),
        token: TOKEN.into(),
    }
}

fn signed(decision: Decision, expires_at: i64) -> String {
    ApprovalLink::new(
        approval(),
        Approver::new("alice@example.com").unwrap(),
        decision,
        expires_at,
    )
    .sign(&key())
}

fn waiting() -> ApprovalState {
    ApprovalState {
        execution_id: Some("e-1".into()),
        status: Some("InProgress".into()),
        token: Some(TOKEN.into()),
        ..ApprovalState::default()
    }
}

/// The approval as GetPipelineState shows it once decided with `summary`.
fn decided_with(status: &str, summary: &str) -> ApprovalState {
    ApprovalState {
        execution_id: Some("e-1".into()),
        status: Some(status.into()),
        token: None,
        summary: Some(summary.into()),
        last_updated_by: None,
    }
}

/// States GetPipelineState answers, one per call, in order.
fn states(approvals: &mut MockApprovalApi, states: Vec<ApprovalState>) {
    let count = states.len();
    let queue = Mutex::new(states.into_iter().rev().collect::<Vec<_>>());
    approvals
        .expect_approval_state()
        .times(count)
        .returning(move |_, _, _, _| reply(Ok(queue.lock().unwrap().pop().unwrap())));
}

/// An approval API that only answers reads: a decision would fail the test.
fn reading(state: ApprovalState) -> MockApprovalApi {
    let mut approvals = MockApprovalApi::new();
    approvals
        .expect_approval_state()
        .with(
            eq("shop-main"),
            eq("Approval"),
            eq("ProductionGate"),
            eq(TOKEN),
        )
        .return_once(move |_, _, _, _| reply(Ok(state)));
    approvals.expect_execution_revision().returning(|_, _| {
        reply(Ok(Some(Revision {
            id: "0ccf1ae1bf4c7d610115754eef7bf8c60e7f167e".into(),
            summary: Some("feat: one-click <checkout>".into()),
            url: None,
        })))
    });
    approvals
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    html: String,
}

async fn answer(approvals: MockApprovalApi, request: Request, now: i64) -> Answer {
    let deps = Deps::new(approvals, key());
    let response = handle(&deps, request, now, [42; 16]).await;
    let html = match response.body() {
        Body::Text(text) => text.clone(),
        other => panic!("expected an HTML page, got {other:?}"),
    };
    Answer {
        status: response.status(),
        headers: response.headers().clone(),
        html,
    }
}

fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).unwrap() + marker.len();
    html[start..].split('"').next().unwrap().to_owned()
}

fn get(signed: &str) -> Request {
    lambda_http::http::Request::builder()
        .method("GET")
        .uri(format!("https://{HOST}/?link={signed}"))
        .header("host", HOST)
        .body(Body::Empty)
        .unwrap()
}

fn post(form: &str, cookie: Option<&str>) -> Request {
    let mut builder = lambda_http::http::Request::builder()
        .method("POST")
        .uri(format!("https://{HOST}/"))
        .header("host", HOST)
        .header("origin", format!("https://{HOST}"))
        .header("sec-fetch-site", "same-origin")
        .header("content-type", "application/x-www-form-urlencoded");
    if let Some(cookie) = cookie {
        builder = builder.header("cookie", format!("other=1; {COOKIE}={cookie}"));
    }
    builder.body(Body::from(form.to_owned())).unwrap()
}

fn form(signed: &str, guard: &str, comment: &str) -> String {
    form_urlencoded::Serializer::new(String::new())
        .append_pair("link", signed)
        .append_pair("form", guard)
        .append_pair("comment", comment)
        .finish()
}

#[test]
fn function_url_samples_parse_and_other_events_do_not() {
    let request = request("post-approve.json");
    assert_eq!(request.method(), Method::POST);
    assert!(cookie(&request, COOKIE).is_some());
    assert!(request.body().as_ref().starts_with(b"link="));
    assert!(parse(sample("invalid-not-a-function-url-request.json")).is_err());
}

#[tokio::test]
async fn a_link_shows_a_confirmation_page_and_changes_nothing() {
    let answer = answer(reading(waiting()), request("get-approve.json"), NOW).await;

    assert_eq!(answer.status, StatusCode::OK);
    let html = &answer.html;
    assert!(html.contains("<h1>Approve shop-main?</h1>"), "{html}");
    assert!(html.contains("<dd>Approval / ProductionGate</dd>"));
    assert!(html.contains("<code>0ccf1ae</code> feat: one-click &lt;checkout&gt;"));
    assert!(html.contains("<dd>alice@example.com</dd>"));
    assert!(html.contains("<dd>2099-11-30 10:00 UTC</dd>"));
    assert!(
        html.contains("<button type=\"submit\" id=\"decide\" class=\"approve\">Approve</button>")
    );
    assert!(!html.contains("<script"));
    let cookie = answer.headers["set-cookie"].to_str().unwrap();
    assert!(cookie.starts_with("__Host-approval="), "{cookie}");
    assert!(cookie.contains("; Path=/; Secure; HttpOnly; SameSite=Strict"));
    // The guard verifies for this link and this cookie.
    let nonce = cookie.split(['=', ';']).nth(1).unwrap();
    let link = hidden(html, "link");
    FormGuard::verify(
        &key(),
        ApprovalLink::signature_of(&link).unwrap(),
        Some(&hidden(html, "form")),
        Some(nonce),
        NOW,
    )
    .unwrap();
}

#[tokio::test]
async fn a_reject_link_shows_a_reject_button() {
    let answer = answer(reading(waiting()), request("get-reject.json"), NOW).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(answer.html.contains("class=\"reject\">Reject</button>"));
}

#[tokio::test]
async fn a_second_page_in_the_same_browser_reuses_its_nonce() {
    let mut request = get(&signed(Decision::Approve, NOW + 3600));
    let nonce = "AAECAwQFBgcICQoLDA0ODw";
    request
        .headers_mut()
        .insert("cookie", format!("{COOKIE}={nonce}").parse().unwrap());
    let answer = answer(reading(waiting()), request, NOW).await;
    let cookie = answer.headers["set-cookie"].to_str().unwrap();
    assert!(
        cookie.starts_with(&format!("{COOKIE}={nonce};")),
        "{cookie}"
    );
}

#[tokio::test]
async fn bad_links_get_their_own_status_without_any_call() {
    let cases = [
        (
            "get-without-link.json",
            StatusCode::BAD_REQUEST,
            "Link not valid",
        ),
        ("get-tampered.json", StatusCode::FORBIDDEN, "Link not valid"),
        ("get-expired.json", StatusCode::GONE, "Link expired"),
    ];
    for (name, status, heading) in cases {
        let answer = answer(MockApprovalApi::new(), request(name), NOW).await;
        assert_eq!(answer.status, status, "{name}");
        assert!(
            answer.html.contains(&format!("<h1>{heading}</h1>")),
            "{name}: {}",
            answer.html
        );
        assert!(!answer.headers.contains_key("set-cookie"), "{name}");
    }
    let cut = signed(Decision::Approve, NOW + 60);
    for length in [cut.len() - 1, cut.len() - 4, cut.len() - 5] {
        let truncated = answer(MockApprovalApi::new(), get(&cut[..length]), NOW).await;
        assert!(
            matches!(
                truncated.status,
                StatusCode::BAD_REQUEST | StatusCode::FORBIDDEN
            ),
            "{}",
            truncated.status
        );
    }
}

#[tokio::test]
async fn a_link_to_a_decided_approval_says_so() {
    let decided = ApprovalState {
        execution_id: Some("e-1".into()),
        status: Some("Succeeded".into()),
        token: None,
        summary: Some("Approved by bob@example.com via the email link".into()),
        last_updated_by: None,
    };
    let decided = answer(reading(decided), request("get-approve.json"), NOW).await;
    assert_eq!(decided.status, StatusCode::CONFLICT);
    assert!(decided.html.contains("It was approved."));
    assert!(decided.html.contains("Approved by bob@example.com"));
    assert!(!decided.html.contains("<form"));

    // A newer run of the same action waits with another token: this link is stale.
    let newer = ApprovalState {
        token: Some("99999999-573f-4ea7-a67e-0123456789ab".into()),
        ..waiting()
    };
    let stale = answer(reading(newer), request("get-approve.json"), NOW).await;
    assert_eq!(stale.status, StatusCode::CONFLICT);
    assert!(stale.html.contains("newer approval request"));
}

#[tokio::test]
async fn missing_pipelines_and_unreachable_codepipeline_change_nothing() {
    for (code, status) in [
        (Some("PipelineNotFoundException"), StatusCode::NOT_FOUND),
        (Some("ActionNotFoundException"), StatusCode::NOT_FOUND),
        (Some("ThrottlingException"), StatusCode::BAD_GATEWAY),
        (None, StatusCode::BAD_GATEWAY),
    ] {
        let mut approvals = MockApprovalApi::new();
        approvals
            .expect_approval_state()
            .return_once(move |_, _, _, _| {
                reply(Err(UpstreamError::new(
                    "CodePipeline",
                    "GetPipelineState",
                    code.map(str::to_owned),
                    "no",
                )))
            });
        let answer = answer(approvals, request("get-approve.json"), NOW).await;
        assert_eq!(answer.status, status, "{code:?}");
    }
}

#[tokio::test]
async fn the_sample_post_records_the_decision_with_approver_and_comment() {
    let mut approvals = MockApprovalApi::new();
    states(&mut approvals, vec![waiting()]);
    approvals
        .expect_decide()
        .with(
            eq(approval()),
            eq(Decision::Approve),
            eq("Approved by alice@example.com via the email link: Staging looks good."),
        )
        .times(1)
        .returning(|_, _, _| reply(Ok(Some("2026-11-23T10:06:00Z".into()))));

    let answer = answer(approvals, request("post-approve.json"), NOW).await;

    assert_eq!(answer.status, StatusCode::OK, "{}", answer.html);
    assert!(answer.html.contains("<h1>Approved: thank you</h1>"));
    assert!(answer.html.contains("Staging looks good."));
    assert!(answer.html.contains("2026-11-23 10:06:00 UTC"));
}

#[tokio::test]
async fn a_page_then_its_form_decides_once_and_a_replay_is_refused() {
    let link = signed(Decision::Reject, NOW + 3600);
    let page = answer(reading(waiting()), get(&link), NOW).await;
    let nonce = page.headers["set-cookie"]
        .to_str()
        .unwrap()
        .split(['=', ';'])
        .nth(1)
        .unwrap()
        .to_owned();
    let body = form(
        &link,
        &hidden(&page.html, "form"),
        "  Not\u{7} before the\nfreeze <b>ends</b>  ",
    );

    let summary =
        "Rejected by alice@example.com via the email link: Not before the freeze <b>ends</b>";
    let mut approvals = MockApprovalApi::new();
    // The replay finds the approval decided: it is refused before any decision is sent.
    states(
        &mut approvals,
        vec![waiting(), decided_with("Failed", summary)],
    );
    approvals
        .expect_decide()
        .withf(move |_, decision, sent| *decision == Decision::Reject && sent == summary)
        .times(1)
        .returning(|_, _, _| reply(Ok(None)));
    let deps = Deps::new(approvals, key());

    let first = handle(&deps, post(&body, Some(&nonce)), NOW + 5, [0; 16]).await;
    assert_eq!(first.status(), StatusCode::OK);
    let Body::Text(html) = first.body() else {
        panic!()
    };
    assert!(html.contains("<h1>Rejected: thank you</h1>"));
    assert!(html.contains("freeze &lt;b&gt;ends&lt;/b&gt;"), "{html}");

    let replay = handle(&deps, post(&body, Some(&nonce)), NOW + 9, [0; 16]).await;
    assert_eq!(replay.status(), StatusCode::CONFLICT);
}

#[tokio::test]
async fn forged_posts_are_refused_before_any_call() {
    let link = signed(Decision::Approve, NOW + 3600);
    let guard = FormGuard::issue(
        &key(),
        ApprovalLink::signature_of(&link).unwrap(),
        NOW,
        &[1; 16],
    );
    let other = signed(Decision::Reject, NOW + 3600);
    let other_guard = FormGuard::issue(
        &key(),
        ApprovalLink::signature_of(&other).unwrap(),
        NOW,
        &[1; 16],
    );
    let good = form(&link, &guard.form_value, "");
    let expired = signed(Decision::Approve, NOW - 1);
    let tampered = link.replacen('e', "f", 1);

    let mut cross_site = post(&good, Some(&guard.cookie_value));
    cross_site
        .headers_mut()
        .insert("sec-fetch-site", "cross-site".parse().unwrap());
    let mut foreign_origin = post(&good, Some(&guard.cookie_value));
    foreign_origin
        .headers_mut()
        .insert("origin", "https://evil.example.com".parse().unwrap());
    let mut null_origin = post(&good, Some(&guard.cookie_value));
    null_origin.headers_mut().remove("sec-fetch-site");
    null_origin
        .headers_mut()
        .insert("origin", "null".parse().unwrap());
    let mut not_a_form = post(&good, Some(&guard.cookie_value));
    not_a_form
        .headers_mut()
        .insert("content-type", "application/json".parse().unwrap());

    let cases: Vec<(&str, Request, StatusCode)> = vec![
        (
            "sample without cookie",
            request("post-without-cookie.json"),
            StatusCode::FORBIDDEN,
        ),
        (
            "sample cross-site",
            request("post-cross-site.json"),
            StatusCode::FORBIDDEN,
        ),
        ("no cookie", post(&good, None), StatusCode::FORBIDDEN),
        (
            "another browser's cookie",
            post(&good, Some("AgICAgICAgICAgICAgICAg")),
            StatusCode::FORBIDDEN,
        ),
        (
            "another page's guard",
            post(
                &form(&link, &other_guard.form_value, ""),
                Some(&guard.cookie_value),
            ),
            StatusCode::FORBIDDEN,
        ),
        (
            "no guard",
            post(&format!("link={link}"), Some(&guard.cookie_value)),
            StatusCode::FORBIDDEN,
        ),
        ("cross-site", cross_site, StatusCode::FORBIDDEN),
        ("foreign origin", foreign_origin, StatusCode::FORBIDDEN),
        (
            "null origin from an unknown site",
            null_origin,
            StatusCode::FORBIDDEN,
        ),
        (
            "tampered link",
            post(
                &form(&tampered, &guard.form_value, ""),
                Some(&guard.cookie_value),
            ),
            StatusCode::FORBIDDEN,
        ),
        (
            "expired link",
            post(
                &form(&expired, &guard.form_value, ""),
                Some(&guard.cookie_value),
            ),
            StatusCode::GONE,
        ),
        (
            "no link",
            post("comment=hi", Some(&guard.cookie_value)),
            StatusCode::BAD_REQUEST,
        ),
        ("not a form", not_a_form, StatusCode::BAD_REQUEST),
        (
            "comment too long",
            post(
                &form(&link, &guard.form_value, &"x".repeat(301)),
                Some(&guard.cookie_value),
            ),
            StatusCode::BAD_REQUEST,
        ),
        (
            "oversized",
            post(&"x".repeat(MAX_BODY_BYTES + 1), Some(&guard.cookie_value)),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
    ];
    for (case, request, status) in cases {
        let answer = answer(MockApprovalApi::new(), request, NOW).await;
        assert_eq!(answer.status, status, "{case}: {}", answer.html);
    }
    let stale = answer(
        MockApprovalApi::new(),
        post(&good, Some(&guard.cookie_value)),
        NOW + 1801,
    )
    .await;
    assert_eq!(stale.status, StatusCode::FORBIDDEN);
    assert!(stale.html.contains("open too long"));
}

#[tokio::test]
async fn the_pages_own_form_under_no_referrer_is_accepted() {
    // Chromium sends `Origin: null` for a form on a `Referrer-Policy: no-referrer` page.
    let link = signed(Decision::Approve, NOW + 3600);
    let guard = FormGuard::issue(
        &key(),
        ApprovalLink::signature_of(&link).unwrap(),
        NOW,
        &[1; 16],
    );
    let mut request = post(
        &form(&link, &guard.form_value, ""),
        Some(&guard.cookie_value),
    );
    request
        .headers_mut()
        .insert("origin", "null".parse().unwrap());
    let mut approvals = MockApprovalApi::new();
    states(&mut approvals, vec![waiting()]);
    approvals
        .expect_decide()
        .times(1)
        .returning(|_, _, _| reply(Ok(None)));
    let answer = answer(approvals, request, NOW).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.html);
}

#[tokio::test]
async fn codepipeline_refusals_are_pages_with_their_own_status() {
    let link = signed(Decision::Approve, NOW + 3600);
    let guard = FormGuard::issue(
        &key(),
        ApprovalLink::signature_of(&link).unwrap(),
        NOW,
        &[1; 16],
    );
    for (code, status) in [
        ("ApprovalAlreadyCompletedException", StatusCode::CONFLICT),
        ("InvalidApprovalTokenException", StatusCode::GONE),
        ("StageNotFoundException", StatusCode::NOT_FOUND),
        ("ValidationException", StatusCode::BAD_REQUEST),
        ("InternalFailure", StatusCode::BAD_GATEWAY),
    ] {
        let mut approvals = MockApprovalApi::new();
        // Still waiting when read again: the refusal was not this request's own decision.
        approvals
            .expect_approval_state()
            .returning(|_, _, _, _| reply(Ok(waiting())));
        approvals
            .expect_decide()
            .times(1)
            .return_once(move |_, _, _| {
                reply(Err(UpstreamError::new(
                    "CodePipeline",
                    "PutApprovalResult",
                    Some(code.into()),
                    "refused",
                )))
            });
        let answer = answer(
            approvals,
            post(
                &form(&link, &guard.form_value, ""),
                Some(&guard.cookie_value),
            ),
            NOW,
        )
        .await;
        assert_eq!(answer.status, status, "{code}");
    }
}

fn approve_post() -> Request {
    let link = signed(Decision::Approve, NOW + 3600);
    let guard = FormGuard::issue(
        &key(),
        ApprovalLink::signature_of(&link).unwrap(),
        NOW,
        &[1; 16],
    );
    post(
        &form(&link, &guard.form_value, "ok"),
        Some(&guard.cookie_value),
    )
}

#[tokio::test]
async fn a_decision_recorded_by_an_attempt_whose_answer_was_lost_is_shown_as_recorded() {
    let summary = "Approved by alice@example.com via the email link: ok";
    let mut approvals = MockApprovalApi::new();
    states(
        &mut approvals,
        vec![waiting(), decided_with("Succeeded", summary)],
    );
    // The SDK's retry of a timed-out PutApprovalResult that did get through.
    approvals.expect_decide().times(1).returning(|_, _, _| {
        reply(Err(UpstreamError::new(
            "CodePipeline",
            "PutApprovalResult",
            Some("ApprovalAlreadyCompletedException".into()),
            "already completed",
        )))
    });

    let answer = answer(approvals, approve_post(), NOW).await;

    assert_eq!(answer.status, StatusCode::OK, "{}", answer.html);
    assert!(answer.html.contains("<h1>Approved: thank you</h1>"));
}

#[tokio::test]
async fn someone_elses_decision_in_between_is_already_decided() {
    let mut approvals = MockApprovalApi::new();
    states(
        &mut approvals,
        vec![
            waiting(),
            decided_with("Failed", "Rejected by bob@example.com via the email link"),
        ],
    );
    approvals.expect_decide().times(1).returning(|_, _, _| {
        reply(Err(UpstreamError::new(
            "CodePipeline",
            "PutApprovalResult",
            Some("ApprovalAlreadyCompletedException".into()),
            "already completed",
        )))
    });

    let answer = answer(approvals, approve_post(), NOW).await;

    assert_eq!(answer.status, StatusCode::CONFLICT, "{}", answer.html);
    assert!(answer.html.contains("It was rejected or it expired."));
}

#[tokio::test]
async fn a_form_for_an_approval_decided_since_sends_no_decision() {
    let mut approvals = MockApprovalApi::new();
    states(
        &mut approvals,
        vec![decided_with("Succeeded", "Approved by bob@example.com")],
    );
    // No expect_decide: a PutApprovalResult would fail the test.

    let answer = answer(approvals, approve_post(), NOW).await;

    assert_eq!(answer.status, StatusCode::CONFLICT, "{}", answer.html);
}

#[tokio::test]
async fn other_methods_are_refused_with_allow() {
    for name in ["delete-wrong-method.json", "head-scanner-prefetch.json"] {
        let answer = answer(MockApprovalApi::new(), request(name), NOW).await;
        assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED, "{name}");
        assert_eq!(answer.headers["allow"], "GET, POST");
    }
}

#[test]
fn summaries_name_the_approver_and_fit_codepipeline() {
    let link = ApprovalLink::authenticate(&signed(Decision::Approve, NOW), &key()).unwrap();
    assert_eq!(
        summary(&link, ""),
        "Approved by alice@example.com via the email link"
    );
    let long = summary(&link, &"é".repeat(600));
    assert_eq!(long.chars().count(), 512);
    assert!(long.ends_with('…'));
}
