//! The small HTML pages approvers see, with the headers that keep them safe.
//!
//! No script at all; the one style block is allowed by its hash in the Content-Security-Policy,
//! so nothing injected could run or restyle the page. Every value shown is HTML-escaped.

use std::fmt::Write as _;
use std::sync::OnceLock;

use lambda_http::http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Response};
use shared::approval_link::csp_hash;

const STYLE: &str = "\
*{box-sizing:border-box}\
body{margin:0;min-height:100vh;display:flex;align-items:center;justify-content:center;\
background:#f3f4f6;color:#111827;font:16px/1.5 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif}\
main{width:100%;max-width:34rem;margin:2rem 1rem;background:#fff;border-radius:12px;\
box-shadow:0 1px 3px rgba(0,0,0,.08),0 8px 24px rgba(0,0,0,.06);padding:2rem;border-top:6px solid #6b7280}\
main.approve{border-top-color:#15803d}main.reject{border-top-color:#b91c1c}\
main.ok{border-top-color:#15803d}main.warn{border-top-color:#b45309}main.error{border-top-color:#b91c1c}\
.brand{margin:0 0 .25rem;font-size:.8rem;letter-spacing:.06em;text-transform:uppercase;color:#6b7280}\
h1{margin:0 0 1rem;font-size:1.5rem;line-height:1.25}\
p{margin:0 0 1rem}\
dl{display:grid;grid-template-columns:max-content 1fr;gap:.4rem 1rem;margin:0 0 1.5rem;\
padding:1rem;background:#f9fafb;border-radius:8px}\
dt{color:#6b7280}dd{margin:0;overflow-wrap:anywhere}\
code{font:.9em ui-monospace,SFMono-Regular,Menlo,monospace;background:#e5e7eb;padding:.1em .3em;border-radius:4px}\
label{display:block;font-weight:600;margin-bottom:.35rem}\
textarea{width:100%;font:inherit;padding:.6rem;border:1px solid #d1d5db;border-radius:8px;resize:vertical;margin-bottom:1rem}\
button{width:100%;font:inherit;font-weight:600;color:#fff;border:0;border-radius:8px;padding:.8rem;cursor:pointer}\
button.approve{background:#15803d}button.reject{background:#b91c1c}\
.fine{margin:1rem 0 0;font-size:.85rem;color:#6b7280}";

/// How a page is coloured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    /// A confirmation page for an approval.
    Approve,
    /// A confirmation page for a rejection.
    Reject,
    /// Done.
    Ok,
    /// Nothing changed, and nothing is wrong with the person's request.
    Warn,
    /// Refused.
    Error,
}

impl Tone {
    fn class(self) -> &'static str {
        match self {
            Self::Approve => "approve",
            Self::Reject => "reject",
            Self::Ok => "ok",
            Self::Warn => "warn",
            Self::Error => "error",
        }
    }
}

/// One page: status, heading, and body (already HTML).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The HTTP status.
    pub status: StatusCode,
    /// The colour.
    pub tone: Tone,
    /// The heading (plain text).
    pub heading: String,
    /// The content, as HTML built with [`escape`].
    pub content: String,
    /// A `Set-Cookie` value.
    pub cookie: Option<String>,
    /// The `Allow` header of a 405.
    pub allow: Option<&'static str>,
}

impl Page {
    /// A page with one paragraph of plain text.
    pub fn message(status: StatusCode, tone: Tone, heading: &str, text: &str) -> Self {
        Self {
            status,
            tone,
            heading: heading.to_owned(),
            content: format!("<p>{}</p>", escape(text)),
            cookie: None,
            allow: None,
        }
    }

    /// The HTTP response.
    pub fn into_response(self) -> Response<Body> {
        let html = format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<meta name=\"robots\" content=\"noindex, nofollow\">\
<title>{title} · Approvals</title><style>{STYLE}</style></head>\
<body><main class=\"{class}\"><p class=\"brand\">CI/CD to Amazon EKS · Approvals</p>\
<h1>{title}</h1>{content}</main></body></html>\n",
            title = escape(&self.heading),
            class = self.tone.class(),
            content = self.content,
        );
        let mut response = Response::new(Body::from(html));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        let fixed = [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ];
        for (name, value) in fixed {
            headers.insert(name, HeaderValue::from_static(value));
        }
        if let Ok(policy) = HeaderValue::from_str(content_security_policy()) {
            headers.insert(header::CONTENT_SECURITY_POLICY, policy);
        }
        if let Some(allow) = self.allow {
            headers.insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        if let Some(cookie) = self.cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
            headers.insert(header::SET_COOKIE, cookie);
        }
        response
    }
}

/// No script, no frames, forms only back to this page, and only our own style block.
pub fn content_security_policy() -> &'static str {
    static POLICY: OnceLock<String> = OnceLock::new();
    POLICY.get_or_init(|| {
        format!(
            "default-src 'none'; style-src 'sha256-{}'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            csp_hash(STYLE)
        )
    })
}

/// `text` safe inside HTML text and double-quoted attributes.
pub fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// A definition list of (label, HTML value) rows.
pub fn facts(rows: &[(&str, String)]) -> String {
    let mut html = String::from("<dl>");
    for (label, value) in rows {
        let _ = write!(html, "<dt>{}</dt><dd>{value}</dd>", escape(label));
    }
    html.push_str("</dl>");
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everything_shown_is_escaped() {
        assert_eq!(
            escape("<script>alert(\"x\")</script> & 'y'"),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
        let page = Page::message(StatusCode::OK, Tone::Ok, "<b>hi</b>", "<i>there</i>");
        let response = page.into_response();
        let Body::Text(html) = response.body() else {
            panic!("text body");
        };
        assert!(html.contains("<h1>&lt;b&gt;hi&lt;/b&gt;</h1>"));
        assert!(html.contains("<p>&lt;i&gt;there&lt;/i&gt;</p>"));
    }

    #[test]
    fn every_page_carries_the_security_headers() {
        let response = Page::message(StatusCode::GONE, Tone::Warn, "Expired", "x").into_response();
        assert_eq!(response.status(), StatusCode::GONE);
        let headers = response.headers();
        assert_eq!(headers["x-frame-options"], "DENY");
        assert_eq!(headers["referrer-policy"], "no-referrer");
        assert_eq!(headers["cache-control"], "no-store");
        assert_eq!(headers["content-type"], "text/html; charset=utf-8");
        let policy = headers["content-security-policy"].to_str().unwrap();
        assert!(policy.starts_with("default-src 'none'; style-src 'sha256-"));
        assert!(!policy.contains("unsafe"));
        assert!(policy.contains(&csp_hash(STYLE)));
    }
}
