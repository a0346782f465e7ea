//! The approval links' Function URL.
//!
//! - `GET ?link=…` changes nothing: it checks the link (signature, expiry), checks with
//!   GetPipelineState that the approval still waits for that token, and shows a confirmation
//!   page with a form. Email security scanners that pre-fetch links stop there.
//! - `POST` (that form) carries the link, the page's anti-forgery value and its cookie; only then
//!   is PutApprovalResult called, with a summary naming the approver and their comment.
//!
//! Every refusal is a small page with its own status, and changes nothing. Links, tokens and
//! form values are never logged: a token shows only as its fingerprint.

use lambda_http::http::{Method, StatusCode, header};
use lambda_http::{Body, Request, Response};
use shared::UpstreamError;
use shared::approval_link::{
    ApprovalLink, Decision, FormError, FormGuard, LinkError, SigningKey, fingerprint,
    nonce_from_cookie,
};
use shared::ports::{ApprovalApi, ApprovalState, Revision};
use tracing::{info, warn};

use crate::page::{Page, Tone, escape, facts};

/// The cookie holding the form guard's nonce. `__Host-`: only ever set by this origin, over
/// HTTPS, for the whole origin.
pub const COOKIE: &str = "__Host-approval";
/// The largest POST body taken; the real form is well under 4 KiB.
pub const MAX_BODY_BYTES: usize = 16 * 1024;
/// The longest comment taken, in characters (the summary CodePipeline keeps is at most 512).
pub const MAX_COMMENT_CHARS: usize = 300;
const MAX_SUMMARY_CHARS: usize = 512;
const ALLOW: &str = "GET, POST";

/// The ports and key requests are handled with, built once per cold start.
#[derive(Debug)]
pub struct Deps<A> {
    approvals: A,
    key: SigningKey,
}

impl<A: ApprovalApi> Deps<A> {
    /// Dependencies over `approvals`, signing with `key`.
    pub fn new(approvals: A, key: SigningKey) -> Self {
        Self { approvals, key }
    }
}

/// Parses a raw Lambda payload as a Function URL request (the API Gateway HTTP API v2 format,
/// which Function URLs share), as [`crate::function_url::parse`] does.
pub use crate::function_url::parse;

/// Handles one Function URL request at `now` (seconds since the epoch); `fresh_nonce` is 16
/// random bytes, used if the browser has no nonce cookie yet.
pub async fn handle<A: ApprovalApi>(
    deps: &Deps<A>,
    request: Request,
    now: i64,
    fresh_nonce: [u8; 16],
) -> Response<Body> {
    let page = match *request.method() {
        Method::GET => show(deps, &request, now, fresh_nonce).await,
        Method::POST => decide(deps, &request, now).await,
        _ => {
            info!(method = %request.method(), "method not allowed");
            Page {
                allow: Some(ALLOW),
                ..Page::message(
                    StatusCode::METHOD_NOT_ALLOWED,
                    Tone::Error,
                    "Method not allowed",
                    "Open the link from your approval email in a browser.",
                )
            }
        }
    };
    page.into_response()
}

async fn show<A: ApprovalApi>(
    deps: &Deps<A>,
    request: &Request,
    now: i64,
    fresh_nonce: [u8; 16],
) -> Page {
    let Some(signed) = field(request.uri().query().unwrap_or_default(), "link") else {
        info!("request without a link refused");
        return bad_request("This page needs the link from your approval email.");
    };
    let link = match ApprovalLink::verify(&signed, &deps.key, now) {
        Ok(link) => link,
        Err(error) => return refused_link(&error),
    };
    let token_id = fingerprint(&link.approval.token);
    let approval = &link.approval;
    let state = match deps
        .approvals
        .approval_state(
            &approval.pipeline,
            &approval.stage,
            &approval.action,
            &approval.token,
        )
        .await
    {
        Ok(state) => state,
        Err(error) => return upstream_page(&link, &token_id, &error),
    };
    if !state.is_waiting_for(&approval.token) {
        info!(pipeline = %approval.pipeline, stage = %approval.stage, approver = %link.approver, token = %token_id, "link opened after the approval was decided");
        return already_decided(Some(&state));
    }
    let revision = match state.execution_id.as_deref() {
        Some(execution_id) => deps
            .approvals
            .execution_revision(&approval.pipeline, execution_id)
            .await
            .unwrap_or_else(|error| {
                warn!(pipeline = %approval.pipeline, error = %shared::error::ErrorChain(&error), "cannot look the commit up; showing the page without it");
                None
            }),
        None => None,
    };
    let nonce = cookie(request, COOKIE)
        .and_then(|value| nonce_from_cookie(&value))
        .unwrap_or(fresh_nonce);
    let signature = ApprovalLink::signature_of(&signed).unwrap_or_default();
    let guard = FormGuard::issue(&deps.key, signature, now, &nonce);
    info!(pipeline = %approval.pipeline, stage = %approval.stage, approver = %link.approver, decision = link.decision.as_str(), token = %token_id, "confirmation page shown");
    confirmation(&link, &signed, &guard, revision.as_ref())
}

fn confirmation(
    link: &ApprovalLink,
    signed: &str,
    guard: &FormGuard,
    revision: Option<&Revision>,
) -> Page {
    let decision = link.decision;
    let (tone, verb, consequence) = match decision {
        Decision::Approve => (
            Tone::Approve,
            "approve",
            "The pipeline goes on to its next stage.",
        ),
        Decision::Reject => (Tone::Reject, "reject", "The pipeline execution stops here."),
    };
    let mut content =
        format!("<p>You are about to <strong>{verb}</strong> this change. {consequence}</p>");
    content.push_str(&facts(&what_is_decided(link, revision)));
    content.push_str(&format!(
        "<form method=\"post\" action=\"\">\
<input type=\"hidden\" name=\"link\" value=\"{link}\">\
<input type=\"hidden\" name=\"form\" value=\"{form}\">\
<label for=\"comment\">Comment <span class=\"fine\">(optional, recorded with your decision)</span></label>\
<textarea id=\"comment\" name=\"comment\" rows=\"3\" maxlength=\"{MAX_COMMENT_CHARS}\"></textarea>\
<button type=\"submit\" id=\"decide\" class=\"{class}\">{button}</button></form>\
<p class=\"fine\">Nothing has been decided yet. This link is yours alone and stops working once \
the approval is decided or expires.</p>",
        link = escape(signed),
        form = escape(&guard.form_value),
        class = tone_class(decision),
        button = decision.verb(),
    ));
    Page {
        status: StatusCode::OK,
        tone,
        heading: format!("{} {}?", decision.verb(), link.approval.pipeline),
        content,
        cookie: Some(format!(
            "{COOKIE}={}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age={}",
            guard.cookie_value,
            shared::approval_link::FORM_LIFETIME_SECONDS
        )),
        allow: None,
    }
}

fn tone_class(decision: Decision) -> &'static str {
    match decision {
        Decision::Approve => "approve",
        Decision::Reject => "reject",
    }
}

fn what_is_decided(
    link: &ApprovalLink,
    revision: Option<&Revision>,
) -> Vec<(&'static str, String)> {
    let approval = &link.approval;
    let mut rows = vec![
        ("Pipeline", escape(&approval.pipeline)),
        (
            "Stage",
            format!("{} / {}", escape(&approval.stage), escape(&approval.action)),
        ),
    ];
    if let Some(revision) = revision {
        let short = revision.id.get(..7).unwrap_or(&revision.id);
        let subject = revision
            .summary
            .as_deref()
            .and_then(|summary| summary.lines().next())
            .unwrap_or_default();
        rows.push((
            "Commit",
            format!("<code>{}</code> {}", escape(short), escape(subject)),
        ));
    }
    rows.push(("Approver", escape(link.approver.as_str())));
    rows.push(("Link expires", escape(&format_time(link.expires_at))));
    rows
}

async fn decide<A: ApprovalApi>(deps: &Deps<A>, request: &Request, now: i64) -> Page {
    let body: &[u8] = request.body().as_ref();
    if body.len() > MAX_BODY_BYTES {
        info!(bytes = body.len(), "oversized POST refused");
        return Page::message(
            StatusCode::PAYLOAD_TOO_LARGE,
            Tone::Error,
            "Request too large",
            "Nothing was changed. Keep your comment short and try again from the approval page.",
        );
    }
    if let Err(reason) = same_origin(request) {
        warn!(reason, "cross-site POST refused");
        return forbidden(
            "Form not accepted",
            "Nothing was changed. Decisions can only be sent from the approval page itself: open the link from your email again.",
        );
    }
    let is_form = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        info!("POST that is not a form refused");
        return bad_request("The decision must be sent from the approval page's form.");
    }
    let form = String::from_utf8_lossy(body);
    let Some(signed) = field(&form, "link") else {
        info!("form without a link refused");
        return bad_request("The form did not carry the approval link.");
    };
    let link = match ApprovalLink::verify(&signed, &deps.key, now) {
        Ok(link) => link,
        Err(error) => return refused_link(&error),
    };
    let token_id = fingerprint(&link.approval.token);
    let signature = ApprovalLink::signature_of(&signed).unwrap_or_default();
    if let Err(error) = FormGuard::verify(
        &deps.key,
        signature,
        field(&form, "form").as_deref(),
        cookie(request, COOKIE).as_deref(),
        now,
    ) {
        warn!(pipeline = %link.approval.pipeline, approver = %link.approver, token = %token_id, error = %error, "form guard refused");
        let text = match error {
            FormError::Stale => {
                "This page was open too long. Nothing was changed: open the link from your email again."
            }
            FormError::Missing | FormError::Forged => {
                "Nothing was changed. Decisions can only be sent from the approval page itself, in the browser that opened it: open the link from your email again."
            }
        };
        return forbidden("Form not accepted", text);
    }
    let comment = match comment(field(&form, "comment").as_deref().unwrap_or_default()) {
        Ok(comment) => comment,
        Err(text) => {
            info!("overlong comment refused");
            return bad_request(&text);
        }
    };
    let summary = summary(&link, &comment);
    let approval = &link.approval;
    // Only while the approval waits for this link's token: a form replayed after the decision,
    // or sent for an approval that has moved on, changes nothing and calls nothing more.
    let before = match deps
        .approvals
        .approval_state(
            &approval.pipeline,
            &approval.stage,
            &approval.action,
            &approval.token,
        )
        .await
    {
        Ok(state) => state,
        Err(error) => return upstream_page(&link, &token_id, &error),
    };
    if !before.is_waiting_for(&approval.token) {
        info!(pipeline = %approval.pipeline, approver = %link.approver, token = %token_id, "decision refused: the approval no longer waits for this link");
        return already_decided(Some(&before));
    }
    match deps
        .approvals
        .decide(approval, link.decision, &summary)
        .await
    {
        Ok(approved_at) => {
            info!(pipeline = %approval.pipeline, stage = %approval.stage, action = %approval.action, approver = %link.approver, decision = link.decision.as_str(), token = %token_id, "approval decided");
            decided(&link, &summary, approved_at.as_deref())
        }
        Err(error) => match error.code() {
            Some("ApprovalAlreadyCompletedException") => {
                // The SDK retries a call whose answer was lost (a timed-out attempt): if the
                // first attempt was recorded, the retry is told "already completed", and the
                // approval holds exactly this request's decision and summary.
                match deps
                    .approvals
                    .approval_state(
                        &approval.pipeline,
                        &approval.stage,
                        &approval.action,
                        &approval.token,
                    )
                    .await
                {
                    Ok(after) if records(&before, &after, link.decision, &summary) => {
                        info!(pipeline = %approval.pipeline, stage = %approval.stage, action = %approval.action, approver = %link.approver, decision = link.decision.as_str(), token = %token_id, "approval decided (recorded by an earlier attempt of this request)");
                        decided(&link, &summary, None)
                    }
                    Ok(after) => {
                        info!(pipeline = %approval.pipeline, approver = %link.approver, token = %token_id, "decision refused: already decided");
                        already_decided(Some(&after))
                    }
                    Err(_) => already_decided(None),
                }
            }
            _ => upstream_page(&link, &token_id, &error),
        },
    }
}

/// Whether `after` is the approval `before` waited for, decided as `decision` with `summary`.
fn records(
    before: &ApprovalState,
    after: &ApprovalState,
    decision: Decision,
    summary: &str,
) -> bool {
    let status = match decision {
        Decision::Approve => "Succeeded",
        Decision::Reject => "Failed",
    };
    after.execution_id.is_some()
        && after.execution_id == before.execution_id
        && after.status.as_deref() == Some(status)
        && after.summary.as_deref() == Some(summary)
}

fn decided(link: &ApprovalLink, summary: &str, approved_at: Option<&str>) -> Page {
    let (tone, heading) = match link.decision {
        Decision::Approve => (Tone::Ok, "Approved"),
        Decision::Reject => (Tone::Warn, "Rejected"),
    };
    let mut rows = what_is_decided(link, None);
    rows.retain(|(label, _)| *label != "Link expires");
    rows.push(("Recorded", escape(summary)));
    if let Some(at) = approved_at {
        let shown = chrono::DateTime::parse_from_rfc3339(at)
            .map(|time| time.format("%Y-%m-%d %H:%M:%S UTC").to_string())
            .unwrap_or_else(|_| at.to_owned());
        rows.push(("At", escape(&shown)));
    }
    let next = match link.decision {
        Decision::Approve => "The pipeline goes on to its next stage.",
        Decision::Reject => "The pipeline execution stops here.",
    };
    Page {
        status: StatusCode::OK,
        tone,
        heading: format!("{heading}: thank you"),
        content: format!(
            "<p>Your decision is recorded. {next}</p>{}<p class=\"fine\">You can close this page.</p>",
            facts(&rows)
        ),
        cookie: None,
        allow: None,
    }
}

fn already_decided(state: Option<&ApprovalState>) -> Page {
    let mut text = String::from("This approval has already been decided, so nothing was changed.");
    if let Some(state) = state {
        let outcome = match state.status.as_deref() {
            Some("Succeeded") => Some("It was approved."),
            Some("Failed") => Some("It was rejected or it expired."),
            Some("Abandoned") => Some("The pipeline execution was stopped or superseded."),
            Some("InProgress") => {
                Some("A newer approval request is waiting: use the link from the latest email.")
            }
            _ => None,
        };
        if let Some(outcome) = outcome {
            text.push(' ');
            text.push_str(outcome);
        }
    }
    let mut content = format!("<p>{}</p>", escape(&text));
    if let Some(summary) = state.and_then(|s| s.summary.as_deref()) {
        content.push_str(&facts(&[("Recorded", escape(summary))]));
    }
    Page {
        status: StatusCode::CONFLICT,
        tone: Tone::Warn,
        heading: "Already decided".into(),
        content,
        cookie: None,
        allow: None,
    }
}

fn refused_link(error: &LinkError) -> Page {
    match error {
        LinkError::Malformed => {
            info!("malformed link refused");
            bad_request("This link is incomplete. Open it again from your approval email, in full.")
        }
        LinkError::BadSignature => {
            warn!("link with a bad signature refused");
            forbidden(
                "Link not valid",
                "This link has been altered, or was not issued by this service. Nothing was changed.",
            )
        }
        LinkError::Expired { expired_at } => {
            info!(expired_at, "expired link refused");
            Page::message(
                StatusCode::GONE,
                Tone::Warn,
                "Link expired",
                &format!(
                    "This approval request expired at {}. Nothing was changed.",
                    format_time(*expired_at)
                ),
            )
        }
    }
}

fn upstream_page(link: &ApprovalLink, token_id: &str, error: &UpstreamError) -> Page {
    let approval = &link.approval;
    match error.code() {
        Some(
            "PipelineNotFoundException" | "StageNotFoundException" | "ActionNotFoundException",
        ) => {
            info!(pipeline = %approval.pipeline, token = %token_id, code = error.code(), "approval no longer exists");
            Page::message(
                StatusCode::NOT_FOUND,
                Tone::Warn,
                "Approval not found",
                "This pipeline or its approval step no longer exists. Nothing was changed.",
            )
        }
        Some("InvalidApprovalTokenException") => {
            info!(pipeline = %approval.pipeline, token = %token_id, "approval token no longer valid");
            Page::message(
                StatusCode::GONE,
                Tone::Warn,
                "Approval no longer open",
                "This approval request is no longer open (it was decided, expired or replaced by a newer one). Nothing was changed.",
            )
        }
        Some("ValidationException") => {
            warn!(pipeline = %approval.pipeline, token = %token_id, error = %error, "CodePipeline refused the request");
            bad_request("CodePipeline refused this request as invalid. Nothing was changed.")
        }
        _ => {
            warn!(pipeline = %approval.pipeline, token = %token_id, error = %shared::error::ErrorChain(error), "CodePipeline unavailable");
            Page::message(
                StatusCode::BAD_GATEWAY,
                Tone::Error,
                "Try again in a moment",
                "CodePipeline could not be reached, so nothing was changed. Reload this page to try again.",
            )
        }
    }
}

/// The page served when the function cannot work safely (no randomness for the form's nonce).
pub fn unavailable() -> Response<Body> {
    Page::message(
        StatusCode::SERVICE_UNAVAILABLE,
        Tone::Error,
        "Try again in a moment",
        "The approval page is unavailable right now. Nothing was changed.",
    )
    .into_response()
}

fn bad_request(text: &str) -> Page {
    Page::message(StatusCode::BAD_REQUEST, Tone::Error, "Link not valid", text)
}

fn forbidden(heading: &str, text: &str) -> Page {
    Page::message(StatusCode::FORBIDDEN, Tone::Error, heading, text)
}

/// A browser sends `Origin` and `Sec-Fetch-Site` with a POST: both must say it came from this
/// very origin. (Requests without them, like curl's, are still held to the form guard.)
///
/// Under `Referrer-Policy: no-referrer` Chromium sends `Origin: null` even for the page's own
/// form, so `null` is taken only together with `Sec-Fetch-Site: same-origin`, which no other
/// site can make a browser send.
fn same_origin(request: &Request) -> Result<(), &'static str> {
    let headers = request.headers();
    let text = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    let site = text("sec-fetch-site");
    if let Some(site) = site
        && !matches!(site, "same-origin" | "none")
    {
        return Err("Sec-Fetch-Site is not same-origin");
    }
    match text("origin") {
        None => Ok(()),
        Some("null") if site == Some("same-origin") => Ok(()),
        Some("null") => Err("Origin is null without Sec-Fetch-Site: same-origin"),
        Some(origin) => {
            let origin_host = origin.split_once("://").map(|(_, host)| host);
            if origin_host.is_some() && origin_host == text("host") {
                Ok(())
            } else {
                Err("Origin is not this host")
            }
        }
    }
}

/// The first value of `name` in a URL-encoded query or form.
fn field(encoded: &str, name: &str) -> Option<String> {
    form_urlencoded::parse(encoded.as_bytes())
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
        .filter(|value| !value.is_empty())
}

/// The value of cookie `name` (lambda_http joins a Function URL's cookies into one header).
fn cookie(request: &Request, name: &str) -> Option<String> {
    request
        .headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_owned())
}

/// The comment on one line, without control characters, at most [`MAX_COMMENT_CHARS`].
fn comment(raw: &str) -> Result<String, String> {
    let clean: String = raw
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .filter(|c| !c.is_control())
        .collect();
    if clean.chars().count() > MAX_COMMENT_CHARS {
        return Err(format!(
            "The comment is longer than {MAX_COMMENT_CHARS} characters. Nothing was changed: go back and shorten it."
        ));
    }
    Ok(clean)
}

/// What CodePipeline records with the decision: who decided, how, and their comment.
pub fn summary(link: &ApprovalLink, comment: &str) -> String {
    let mut summary = format!(
        "{} by {} via the email link",
        link.decision.status(),
        link.approver
    );
    if !comment.is_empty() {
        summary.push_str(": ");
        summary.push_str(comment);
    }
    if summary.chars().count() > MAX_SUMMARY_CHARS {
        summary = summary.chars().take(MAX_SUMMARY_CHARS - 1).collect();
        summary.push('…');
    }
    summary
}

fn format_time(seconds: i64) -> String {
    chrono::DateTime::from_timestamp(seconds, 0)
        .map(|time| time.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| seconds.to_string())
}

#[cfg(test)]
mod tests;
