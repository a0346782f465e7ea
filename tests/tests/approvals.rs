//! Manual approvals by email link, end to end: the emulated pipeline waits at its approval and
//! publishes CodePipeline's notification; approval-notify (the real binary under the Runtime API
//! emulator) mails each approver; approval-callback (the real binary behind a Function URL served
//! by `cargo lambda watch`) shows the page and records the decision.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failed test

use aws_sdk_codepipeline::types::ExecutionMode;
use integration_tests::approvals::{
    APPROVERS, ApprovalScenario, decide_by_link, heading, hidden_field, link_after,
};
use integration_tests::calls::{AwsFault, CallCounter};
use integration_tests::http::{Answer, send};
use integration_tests::runtime_api::InvocationResult;
use integration_tests::{Emulators, Function, fixtures, sample_event, unique};
use serde_json::json;
use shared::approval_link::{Approval, ApprovalLink, Approver, Decision, SigningKey};

/// `name=value` of the page's Set-Cookie, as the browser sends it back.
fn cookie_of(page: &Answer) -> String {
    page.header("set-cookie")
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

fn form(link: &str, guard: &str, comment: &str) -> String {
    form_urlencoded::Serializer::new(String::new())
        .append_pair("link", link)
        .append_pair("form", guard)
        .append_pair("comment", comment)
        .finish()
}

async fn get(url: &str) -> Answer {
    send("GET", url, &[("accept", "text/html")], "").await
}

/// The POST a browser sends from the page at `page_url`.
async fn post_from_page(
    scenario: &ApprovalScenario,
    page_url: &str,
    body: &str,
    cookie: Option<&str>,
) -> Answer {
    let origin = scenario.callback.origin();
    let mut headers = vec![
        ("content-type", "application/x-www-form-urlencoded"),
        ("origin", origin.as_str()),
        ("sec-fetch-site", "same-origin"),
    ];
    if let Some(cookie) = cookie {
        headers.push(("cookie", cookie));
    }
    send("POST", page_url, &headers, body).await
}

fn link_param(url: &str) -> String {
    url.split_once("?link=").unwrap().1.to_owned()
}

/// Nothing either function logged shows the token or any part of a link's signature.
async fn assert_no_secrets_logged(scenario: &ApprovalScenario, token: &str, links: &[&str]) {
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let logs = [scenario.notify.logs(), scenario.callback.logs()].concat();
    assert!(logs.len() > 3, "the functions log: {logs:?}");
    for line in &logs {
        assert!(!line.contains(token), "a token was logged: {line}");
        for link in links {
            let signature = ApprovalLink::signature_of(&link_param(link))
                .unwrap()
                .to_owned();
            assert!(!line.contains(&signature), "a link was logged: {line}");
        }
    }
}

/// In every execution mode, the approvers' emails name the commit and their links decide.
async fn approved_by_link_in(mode: ExecutionMode) -> ApprovalScenario {
    let scenario = ApprovalScenario::in_mode(mode.clone()).await;
    let outcome = scenario.deliver().await;
    assert_eq!(outcome["outcome"], "notified", "{mode:?}: {outcome}");
    assert_eq!(outcome["sent"], json!(APPROVERS), "{mode:?}");
    assert_eq!(
        outcome["commitId"],
        scenario.commit_id.as_str(),
        "{mode:?}: the email names the commit"
    );
    let (approve, _) = scenario.links_of("alice@example.com").await;
    let decided = decide_by_link(&approve, &scenario.callback.origin(), "ship it").await;
    assert_eq!(
        (decided.page.status, decided.page_heading.as_str()),
        (200, format!("Approve {}?", scenario.pipeline).as_str()),
        "{mode:?}: {}",
        decided.page.body
    );
    assert!(
        decided.page.body.contains(&scenario.commit_id[..7]),
        "{mode:?}: the page names the commit"
    );
    assert_eq!(
        (decided.result.status, decided.result_heading.as_str()),
        (200, "Approved: thank you"),
        "{mode:?}: {}",
        decided.result.body
    );
    assert_eq!(scenario.execution_status().await, "Succeeded", "{mode:?}");
    let recorded = scenario.recorded_approvals().await;
    assert_eq!(recorded.len(), 1, "{mode:?}: {recorded:?}");
    assert_eq!(recorded[0]["status"], "Approved");
    assert_eq!(
        recorded[0]["summary"],
        "Approved by alice@example.com via the email link: ship it"
    );
    scenario
}

#[tokio::test(flavor = "multi_thread")]
async fn a_superseded_pipeline_is_approved_by_link() {
    approved_by_link_in(ExecutionMode::Superseded).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_queued_pipeline_is_approved_by_link() {
    approved_by_link_in(ExecutionMode::Queued).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_parallel_pipeline_is_approved_by_link_and_each_execution_by_its_own_links() {
    // GetPipelineState shows no token in PARALLEL mode: the approval is found and decided
    // through ListActionExecutions' externalExecutionId.
    let scenario = approved_by_link_in(ExecutionMode::Parallel).await;

    // Two more executions wait at the approval at once; each email's links decide its own.
    let second = scenario.start_another().await;
    let third = scenario.start_another().await;
    let published = scenario.published_requests().await;
    let messages = published["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 3, "{published}");
    for message in &messages[1..] {
        let event = scenario.requests_event(message);
        let outcome = scenario.notify.invoke(&event).await.response();
        assert_eq!(outcome["outcome"], "notified", "{outcome}");
    }
    let bob = scenario.inbox("bob@example.com").await;
    assert_eq!(bob.len(), 3, "{bob:?}");
    let reject_third = link_after(bob[2]["message"].as_str().unwrap(), "Reject:").unwrap();
    let decided = decide_by_link(&reject_third, &scenario.callback.origin(), "").await;
    assert_eq!(
        (decided.result.status, decided.result_heading.as_str()),
        (200, "Rejected: thank you"),
        "{}",
        decided.result.body
    );
    assert_eq!(scenario.status_of(&third).await, "Failed");
    assert_eq!(
        scenario.status_of(&second).await,
        "InProgress",
        "the other execution still waits"
    );
    // The decided link is dead; the waiting one's still works.
    let again = decide_by_link(&reject_third, &scenario.callback.origin(), "").await;
    assert_eq!(again.page.status, 409, "{}", again.page.body);
    let approve_second = link_after(bob[1]["message"].as_str().unwrap(), "Approve:").unwrap();
    let decided = decide_by_link(&approve_second, &scenario.callback.origin(), "").await;
    assert_eq!(decided.result.status, 200, "{}", decided.result.body);
    assert_eq!(scenario.status_of(&second).await, "Succeeded");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_approver_approves_from_the_email_link_and_the_pipeline_goes_on() {
    let scenario = ApprovalScenario::new().await;
    let waiting = scenario.approval_state().await;
    assert_eq!(waiting.status().unwrap().as_str(), "InProgress");
    let token = waiting.token().unwrap().to_owned();

    // CodePipeline's notification reaches approval-notify: one email per approver.
    let outcome = scenario.deliver().await;
    assert_eq!(outcome["outcome"], "notified", "{outcome}");
    assert_eq!(outcome["sent"], json!(APPROVERS));
    assert_eq!(outcome["commitId"], scenario.commit_id.as_str());
    // SNS delivers it again: nobody is mailed twice.
    let again = scenario.deliver().await;
    assert_eq!(again["sent"], json!([]));
    assert_eq!(again["alreadySent"], json!(APPROVERS));

    // Each approver's subscription lets only their own email through.
    let alice_inbox = scenario.inbox("alice@example.com").await;
    assert_eq!(alice_inbox.len(), 1);
    assert_eq!(
        alice_inbox[0]["attributes"]["approver"],
        "alice@example.com"
    );
    let email = alice_inbox[0]["message"].as_str().unwrap();
    assert!(
        email.contains(&format!(
            "{}  feat: one-click checkout",
            &scenario.commit_id[..7]
        )),
        "{email}"
    );
    assert!(email.contains("Staging runs the new checkout."), "{email}");
    assert!(
        email.contains("https://staging.shop.example.com"),
        "{email}"
    );
    let (approve, _) = scenario.links_of("alice@example.com").await;
    let (_, bob_reject) = scenario.links_of("bob@example.com").await;
    assert!(approve.starts_with(&scenario.callback.url()), "{approve}");

    // Opening the link (as a mail scanner would, twice) shows the page and changes nothing.
    for _ in 0..2 {
        let page = get(&approve).await;
        assert_eq!(page.status, 200, "{}", page.body);
        assert!(
            page.body
                .contains(&format!("<h1>Approve {}?</h1>", scenario.pipeline))
        );
        assert!(page.body.contains("feat: one-click checkout"));
        assert!(page.body.contains("<dd>alice@example.com</dd>"));
        assert!(
            page.header("content-security-policy")
                .starts_with("default-src 'none'")
        );
        assert_eq!(page.header("x-frame-options"), "DENY");
        assert_eq!(page.header("cache-control"), "no-store");
    }
    assert_eq!(
        scenario.approval_state().await.status().unwrap().as_str(),
        "InProgress"
    );

    let page = get(&approve).await;
    let body = form(
        &hidden_field(&page.body, "link"),
        &hidden_field(&page.body, "form"),
        "Ship it",
    );
    let cookie = cookie_of(&page);
    assert!(cookie.starts_with("__Host-approval="), "{cookie}");

    // The form without its cookie (another browser, a forged request) is refused.
    let refused = post_from_page(&scenario, &approve, &body, None).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert_eq!(
        scenario.approval_state().await.status().unwrap().as_str(),
        "InProgress"
    );

    // Pressing Approve records the decision, naming the approver and their comment.
    let done = post_from_page(&scenario, &approve, &body, Some(&cookie)).await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(
        done.body.contains("<h1>Approved: thank you</h1>"),
        "{}",
        done.body
    );
    let decided = scenario.approval_state().await;
    assert_eq!(decided.status().unwrap().as_str(), "Succeeded");
    assert_eq!(
        decided.summary(),
        Some("Approved by alice@example.com via the email link: Ship it")
    );
    assert_eq!(scenario.execution_status().await, "Succeeded");

    // The links are useless now: a replayed form, the same link, another approver's link.
    let replay = post_from_page(&scenario, &approve, &body, Some(&cookie)).await;
    assert_eq!(replay.status, 409, "{}", replay.body);
    assert_eq!(get(&approve).await.status, 409);
    let bob = get(&bob_reject).await;
    assert_eq!(bob.status, 409);
    assert!(bob.body.contains("It was approved."), "{}", bob.body);

    assert_no_secrets_logged(&scenario, &token, &[&approve, &bob_reject]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rejection_from_the_email_link_stops_the_execution() {
    let scenario = ApprovalScenario::new().await;
    scenario.deliver().await;
    let (_, reject) = scenario.links_of("bob@example.com").await;

    let page = get(&reject).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("class=\"reject\">Reject</button>"));
    let body = form(
        &hidden_field(&page.body, "link"),
        &hidden_field(&page.body, "form"),
        "",
    );
    let done = post_from_page(&scenario, &reject, &body, Some(&cookie_of(&page))).await;

    assert_eq!(done.status, 200, "{}", done.body);
    assert!(done.body.contains("<h1>Rejected: thank you</h1>"));
    let decided = scenario.approval_state().await;
    assert_eq!(decided.status().unwrap().as_str(), "Failed");
    assert_eq!(
        decided.summary(),
        Some("Rejected by bob@example.com via the email link")
    );
    assert_eq!(scenario.execution_status().await, "Failed");
}

#[tokio::test(flavor = "multi_thread")]
async fn tampered_forged_expired_and_malformed_requests_change_nothing() {
    let scenario = ApprovalScenario::new().await;
    scenario.deliver().await;
    let (approve, _) = scenario.links_of("alice@example.com").await;
    let base = scenario.callback.url();
    let key = SigningKey::new(scenario.signing_key.as_bytes()).unwrap();
    let genuine = ApprovalLink::verify(&link_param(&approve), &key, 0).unwrap();
    let signed = |link: &ApprovalLink, key: &SigningKey| format!("{base}?link={}", link.sign(key));

    // Mallory turns Alice's link into her own: the signature no longer matches.
    let (payload, signature) = link_param(&approve)
        .split_once('.')
        .map(|(p, s)| (p.to_owned(), s.to_owned()))
        .unwrap();
    let mallory = ApprovalLink::new(
        genuine.approval.clone(),
        Approver::new("mallory@example.com").unwrap(),
        Decision::Approve,
        genuine.expires_at,
    )
    .sign(&key);
    let (mallory_payload, _) = mallory.split_once('.').unwrap();
    assert_ne!(payload, mallory_payload);
    let forged_key = SigningKey::new(b"not the deployment's key, but long enough").unwrap();
    let expired = ApprovalLink::new(
        genuine.approval.clone(),
        genuine.approver.clone(),
        Decision::Approve,
        1_700_000_000,
    );
    let wrong_token = ApprovalLink::new(
        Approval {
            token: "00000000-0000-4000-8000-000000000000".into(),
            ..genuine.approval.clone()
        },
        genuine.approver.clone(),
        Decision::Approve,
        genuine.expires_at,
    );

    let cases = [
        (
            "tampered",
            format!("{base}?link={mallory_payload}.{signature}"),
            403,
        ),
        (
            "signed with another key",
            signed(&genuine, &forged_key),
            403,
        ),
        ("expired", signed(&expired, &key), 410),
        ("no link", base.clone(), 400),
        ("cut short", format!("{base}?link={payload}"), 400),
        (
            "for a token the action never had",
            signed(&wrong_token, &key),
            409,
        ),
    ];
    for (case, url, status) in cases {
        let answer = get(&url).await;
        assert_eq!(answer.status, status, "{case}: {}", answer.body);
        assert!(answer.body.contains("<h1>"), "{case}: a page");
        assert!(!answer.body.contains("<form"), "{case}: no form");
    }

    let wrong_method = send("PUT", &approve, &[], "").await;
    assert_eq!(wrong_method.status, 405);
    assert_eq!(wrong_method.header("allow"), "GET, POST");

    let page = get(&approve).await;
    let cookie = cookie_of(&page);
    let guard = hidden_field(&page.body, "form");
    let oversized = post_from_page(&scenario, &approve, &"x".repeat(20_000), Some(&cookie)).await;
    assert_eq!(oversized.status, 413);
    let cross_site = send(
        "POST",
        &approve,
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            ("origin", "https://evil.example.com"),
            ("sec-fetch-site", "cross-site"),
            ("cookie", &cookie),
        ],
        &form(&link_param(&approve), &guard, "pwned"),
    )
    .await;
    assert_eq!(cross_site.status, 403);
    let forged_form = post_from_page(
        &scenario,
        &approve,
        &form(&signed(&expired, &key), &guard, ""),
        Some(&cookie),
    )
    .await;
    assert_eq!(
        forged_form.status, 400,
        "a whole URL is not a link: {}",
        forged_form.body
    );

    let state = scenario.approval_state().await;
    assert_eq!(state.status().unwrap().as_str(), "InProgress");
    assert_eq!(scenario.execution_status().await, "InProgress");
}

/// The regular expression of a literal text.
fn literal(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let special = ".^$*+?{}[]\\|()".contains(c);
            special.then_some('\\').into_iter().chain([c])
        })
        .collect()
}

/// A fault failing `approver`'s entry in the next `count` PublishBatch requests to the
/// scenario's approvers' topic (SNS's own fault: `InternalError`, not the sender's).
async fn failing_email_of(scenario: &ApprovalScenario, approver: &str, count: u32) -> AwsFault {
    let topic = scenario.approvers_topic.rsplit(':').next().unwrap();
    AwsFault::add(
        &scenario.emulators,
        json!({"service": "sns", "operation": "PublishBatch", "match": literal(topic),
               "entries": format!("StringValue={}", literal(approver)), "count": count}),
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn every_approver_is_mailed_in_one_batch_and_a_redelivery_publishes_nothing() {
    let scenario = ApprovalScenario::new().await;
    let topic = scenario.approvers_topic.rsplit(':').next().unwrap();
    let batches = CallCounter::start(&scenario.emulators, "sns", "PublishBatch", topic).await;
    let publishes = CallCounter::start(&scenario.emulators, "sns", "Publish", topic).await;

    let first = scenario.deliver().await;
    assert_eq!(first["sent"], json!(APPROVERS), "{first}");
    let again = scenario.deliver().await;
    assert_eq!(again["sent"], json!([]), "{again}");
    assert_eq!(again["alreadySent"], json!(APPROVERS), "{again}");

    // One batch for both emails, none for the redelivery, and no single Publish.
    assert_eq!((batches.count().await, publishes.count().await), (1, 0));
    for approver in APPROVERS {
        assert_eq!(scenario.inbox(approver).await.len(), 1, "{approver}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_email_sns_fails_in_a_batch_is_sent_again_alone_and_nobody_gets_two() {
    let scenario = ApprovalScenario::new().await;
    // Alice's entry fails in the batch and once more in the retry of the failed entries; the
    // third attempt gets through.
    let fault = failing_email_of(&scenario, APPROVERS[0], 2).await;

    let outcome = scenario.deliver().await;

    assert_eq!(outcome["sent"], json!(APPROVERS), "{outcome}");
    let view = fault.view().await;
    assert_eq!(
        view["batches"],
        json!([{"entries": 2, "failed": 1}, {"entries": 1, "failed": 1}]),
        "the retries carried Alice's email alone: {view}"
    );
    for approver in APPROVERS {
        assert_eq!(scenario.inbox(approver).await.len(), 1, "{approver}");
    }
    let again = scenario.deliver().await;
    assert_eq!(again["alreadySent"], json!(APPROVERS), "{again}");
    for approver in APPROVERS {
        assert_eq!(scenario.inbox(approver).await.len(), 1, "{approver}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_email_sns_keeps_failing_fails_the_delivery_and_its_retry_mails_exactly_that_approver() {
    let scenario = ApprovalScenario::new().await;
    // Alice's entry fails on every attempt of the first delivery (the batch and two retries).
    let fault = failing_email_of(&scenario, APPROVERS[0], 3).await;
    let event = scenario.approval_event().await;

    let failed = scenario.notify.invoke(&event).await;

    let InvocationResult::Error {
        error_type,
        error_message,
    } = &failed
    else {
        panic!("the delivery should fail: {failed:?}");
    };
    assert_eq!(error_type, "Upstream");
    assert!(error_message.contains("InternalError"), "{error_message}");
    assert_eq!(fault.served().await, 3);
    assert!(scenario.inbox(APPROVERS[0]).await.is_empty());
    assert_eq!(scenario.inbox(APPROVERS[1]).await.len(), 1);

    // SNS retries the delivery: Alice's claim was given back, Bob's email is recorded.
    let retried = scenario.notify.invoke(&event).await.response();
    assert_eq!(retried["sent"], json!([APPROVERS[0]]), "{retried}");
    assert_eq!(retried["alreadySent"], json!([APPROVERS[1]]), "{retried}");
    for approver in APPROVERS {
        assert_eq!(scenario.inbox(approver).await.len(), 1, "{approver}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_message_that_is_not_an_approval_is_an_invalid_event() {
    let scenario = ApprovalScenario::new().await;
    let result = scenario
        .notify
        .invoke(&sample_event(
            "approval-notify",
            "invalid-not-an-approval.json",
        ))
        .await;
    assert_eq!(result.error_type(), "InvalidEvent");
    assert!(scenario.inbox("alice@example.com").await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signing_key_too_short_stops_the_function_at_cold_start() {
    let emulators = Emulators::load();
    let sdk = integration_tests::aws::sdk_config(&emulators).await;
    let secret = unique("short-key");
    fixtures::secret(&sdk, &secret, "too-short").await;
    let mut env = emulators.function_env();
    env.extend([
        (
            "APPROVERS_TOPIC_ARN".into(),
            "arn:aws:sns:us-east-1:123456789012:approvers".into(),
        ),
        ("APPROVERS".into(), "alice@example.com".into()),
        ("CALLBACK_URL".into(), "http://127.0.0.1:9/".into()),
        ("SIGNING_KEY".into(), format!("secretsmanager:{secret}")),
        ("LEDGER_TABLE".into(), "ledger".into()),
    ]);
    let function = Function::start("approval-notify", &env).await;

    let (error, status) = function.init_failure().await;

    assert_eq!(error.error_type, "Config");
    assert!(error.error_message.contains("SIGNING_KEY"), "{error:?}");
    assert!(error.error_message.contains("at least 32"), "{error:?}");
    assert!(!status.success());
}

// --- Approval links under attack ---------------------------------------------------------------

/// Nothing either function logged contains any of `secrets`: tokens, signed links and their
/// parts, anti-forgery values, cookie nonces.
async fn assert_nothing_logged_of(scenario: &ApprovalScenario, secrets: &[String]) {
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let logs = [scenario.notify.logs(), scenario.callback.logs()].concat();
    assert!(logs.len() > 3, "the functions log: {logs:?}");
    for secret in secrets {
        assert!(secret.len() >= 16, "too short to search for: {secret}");
        for line in &logs {
            assert!(
                !line.contains(secret.as_str()),
                "{secret} was logged: {line}"
            );
        }
    }
}

/// What a signed link (the `link=` value) gives away if logged: itself, its payload (the token
/// in base64) and its signature.
fn parts_of(link_url: &str) -> Vec<String> {
    let signed = link_param(link_url);
    let (payload, signature) = signed.split_once('.').unwrap();
    vec![signed.clone(), payload.to_owned(), signature.to_owned()]
}

/// Sends a request and waits (up to 3 s) for approval-callback to log `message` for it; returns
/// the answer.
async fn logged<F: std::future::Future<Output = Answer>>(
    scenario: &ApprovalScenario,
    message: &str,
    request: F,
) -> Answer {
    let before = scenario.callback.logs().len();
    let answer = request.await;
    for _ in 0..60 {
        let found = scenario.callback.logs()[before..].iter().any(|line| {
            serde_json::from_str::<serde_json::Value>(line)
                .is_ok_and(|record| record["fields"]["message"] == message)
        });
        if found {
            return answer;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!(
        "no log line {message:?} for the request answered {}: {:?}",
        answer.status,
        &scenario.callback.logs()[before..]
    );
}

/// `link`'s payload with `from` replaced by `to`, under the original signature.
fn edited(link_url: &str, from: &str, to: &str) -> String {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let (base, signed) = link_url.split_once("?link=").unwrap();
    let (payload, signature) = signed.split_once('.').unwrap();
    let json = String::from_utf8(URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    assert!(json.contains(from), "{json}");
    let forged = URL_SAFE_NO_PAD.encode(json.replace(from, to));
    format!("{base}?link={forged}.{signature}")
}

async fn put_approval_results(scenario: &ApprovalScenario) -> CallCounter {
    CallCounter::start(
        &scenario.emulators,
        "codepipeline",
        "PutApprovalResult",
        &scenario.pipeline,
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn link_scanners_swapped_decisions_and_forged_forms_decide_nothing_and_each_refusal_is_logged()
 {
    let scenario = ApprovalScenario::new().await;
    scenario.deliver().await;
    let token = scenario.approval_state().await.token().unwrap().to_owned();
    let calls = put_approval_results(&scenario).await;
    let (approve, _) = scenario.links_of("alice@example.com").await;
    let (_, bob_reject) = scenario.links_of("bob@example.com").await;
    let mut secrets = vec![token];
    secrets.extend(parts_of(&approve));
    secrets.extend(parts_of(&bob_reject));

    // Mail scanners follow every link, some of them more than once: each gets the page, and
    // nothing is decided.
    for agent in [
        "Mozilla/5.0 (compatible; Barracuda Sentinel (EE))",
        "Microsoft Office Existence Discovery",
        "Mozilla/5.0 (compatible; proofpoint-urldefense)",
        "Mimecast URL Protect",
        "Mozilla/5.0 (compatible; Barracuda Sentinel (EE))",
    ] {
        for link in [&approve, &bob_reject] {
            let page = logged(
                &scenario,
                "confirmation page shown",
                send("GET", link, &[("user-agent", agent)], ""),
            )
            .await;
            assert_eq!(page.status, 200, "{agent}: {}", page.body);
            assert!(page.body.contains("Nothing has been decided yet."));
            secrets.push(hidden_field(&page.body, "form"));
            secrets.push(cookie_of(&page).split_once('=').unwrap().1.to_owned());
        }
    }
    let head = logged(
        &scenario,
        "method not allowed",
        send(
            "HEAD",
            &approve,
            &[("user-agent", "Mimecast URL Protect")],
            "",
        ),
    )
    .await;
    assert_eq!(head.status, 405);
    assert_eq!(head.header("allow"), "GET, POST");

    // Alice's Approve link edited to Reject, under its original signature.
    let swapped = edited(&approve, "\"d\":\"approve\"", "\"d\":\"reject\"");
    let refused = logged(
        &scenario,
        "link with a bad signature refused",
        get(&swapped),
    )
    .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(!refused.body.contains("<form"));
    // ... and sent with a genuine page's form and cookie.
    let page = get(&approve).await;
    let cookie = cookie_of(&page);
    let guard = hidden_field(&page.body, "form");
    secrets.push(guard.clone());
    let refused = logged(
        &scenario,
        "link with a bad signature refused",
        post_from_page(
            &scenario,
            &approve,
            &form(&link_param(&swapped), &guard, "no"),
            Some(&cookie),
        ),
    )
    .await;
    assert_eq!(refused.status, 403, "{}", refused.body);

    // Same-site POSTs with the cookie but without the page's anti-forgery value, with a made-up
    // one, with one whose MAC is altered, and with the value of Bob's page.
    let without = form_urlencoded::Serializer::new(String::new())
        .append_pair("link", &link_param(&approve))
        .append_pair("comment", "")
        .finish();
    let (issued, mac) = guard.split_once('.').unwrap();
    let altered = format!(
        "{issued}.{}{}",
        if mac.starts_with('A') { "B" } else { "A" },
        &mac[1..]
    );
    let bob_page = get(&bob_reject).await;
    let bob_guard = hidden_field(&bob_page.body, "form");
    secrets.push(bob_guard.clone());
    for (case, body) in [
        ("no anti-forgery value", without),
        (
            "a made-up value",
            form(&link_param(&approve), "1700000000.bm90IGEgbWFj", ""),
        ),
        (
            "an altered value",
            form(&link_param(&approve), &altered, ""),
        ),
        (
            "another page's value",
            form(&link_param(&approve), &bob_guard, ""),
        ),
    ] {
        let refused = logged(
            &scenario,
            "form guard refused",
            post_from_page(&scenario, &approve, &body, Some(&cookie)),
        )
        .await;
        assert_eq!(refused.status, 403, "{case}: {}", refused.body);
        assert_eq!(heading(&refused.body), "Form not accepted", "{case}");
    }

    let state = scenario.approval_state().await;
    assert_eq!(state.status().unwrap().as_str(), "InProgress");
    assert_eq!(scenario.execution_status().await, "InProgress");
    assert_eq!(calls.count().await, 0, "no PutApprovalResult at all");
    assert_nothing_logged_of(&scenario, &secrets).await;
    assert_no_secrets_logged(&scenario, &secrets[0], &[&approve, &bob_reject]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_link_used_again_after_the_decision_is_told_so_and_calls_codepipeline_no_more() {
    let scenario = ApprovalScenario::new().await;
    scenario.deliver().await;
    let token = scenario.approval_state().await.token().unwrap().to_owned();
    let calls = put_approval_results(&scenario).await;
    let (approve, alice_reject) = scenario.links_of("alice@example.com").await;
    let (_, bob_reject) = scenario.links_of("bob@example.com").await;
    // Bob opens his Reject page, and leaves it open.
    let bob_page = get(&bob_reject).await;
    let bob_form = form(
        &hidden_field(&bob_page.body, "link"),
        &hidden_field(&bob_page.body, "form"),
        "Not yet",
    );
    let bob_cookie = cookie_of(&bob_page);

    // Alice approves.
    let page = get(&approve).await;
    let alice_form = form(
        &hidden_field(&page.body, "link"),
        &hidden_field(&page.body, "form"),
        "Ship it",
    );
    let alice_cookie = cookie_of(&page);
    let done = logged(
        &scenario,
        "approval decided",
        post_from_page(&scenario, &approve, &alice_form, Some(&alice_cookie)),
    )
    .await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert_eq!(calls.count().await, 1);

    // Every link and form used again: told it is decided, and what was recorded.
    for link in [&approve, &alice_reject, &bob_reject] {
        let again = logged(
            &scenario,
            "link opened after the approval was decided",
            get(link),
        )
        .await;
        assert_eq!(again.status, 409, "{}", again.body);
        assert_eq!(heading(&again.body), "Already decided");
        assert!(again.body.contains("It was approved."), "{}", again.body);
        assert!(
            again
                .body
                .contains("Approved by alice@example.com via the email link: Ship it"),
            "{}",
            again.body
        );
        assert!(!again.body.contains("<form"));
    }
    for (who, url, body, cookie) in [
        ("alice", &approve, &alice_form, &alice_cookie),
        ("bob", &bob_reject, &bob_form, &bob_cookie),
        ("alice", &approve, &alice_form, &alice_cookie),
    ] {
        let again = logged(
            &scenario,
            "decision refused: the approval no longer waits for this link",
            post_from_page(&scenario, url, body, Some(cookie)),
        )
        .await;
        assert_eq!(again.status, 409, "{who}: {}", again.body);
        assert_eq!(heading(&again.body), "Already decided");
    }

    let decided = scenario.approval_state().await;
    assert_eq!(decided.status().unwrap().as_str(), "Succeeded");
    assert_eq!(
        decided.summary(),
        Some("Approved by alice@example.com via the email link: Ship it")
    );
    assert_eq!(scenario.execution_status().await, "Succeeded");
    assert_eq!(calls.count().await, 1, "one PutApprovalResult in all");
    let mut secrets = vec![token.clone()];
    for link in [&approve, &alice_reject, &bob_reject] {
        secrets.extend(parts_of(link));
    }
    secrets.push(hidden_field(&page.body, "form"));
    secrets.push(hidden_field(&bob_page.body, "form"));
    assert_nothing_logged_of(&scenario, &secrets).await;
    assert_no_secrets_logged(&scenario, &token, &[&approve, &alice_reject, &bob_reject]).await;
}
