//! Signed approval links, and the anti-forgery value of the page they open.
//!
//! approval-notify mails each approver two links (Approve, Reject) to approval-callback's Function
//! URL. A link is `<payload>.<signature>`, both URL-safe base64 without padding:
//!
//! - the payload is a small JSON document binding everything the decision needs: pipeline,
//!   stage, action, CodePipeline's approval token, the approver's address, the decision and the
//!   approval's expiry (seconds since the epoch);
//! - the signature is HMAC-SHA256 over `approval-link/v1` and the payload's base64 text, with the
//!   signing key (read once per cold start from Secrets Manager or SSM). The signature is checked,
//!   in constant time, before the payload is even decoded, so nothing an attacker wrote is parsed.
//!
//! A link is useless after its expiry (checked here) and after the approval is decided
//! (CodePipeline answers `ApprovalAlreadyCompletedException` / `InvalidApprovalTokenException`).
//!
//! The confirmation page carries a per-page [`FormGuard`]: an HMAC over the link's signature, the
//! time the page was served and a random nonce, whose nonce also goes into a `SameSite=Strict`,
//! `HttpOnly` cookie. A POST must carry the link, the guard and the cookie (double submit): a
//! foreign site can make a browser POST, but it can neither read the guard from the page nor send
//! the cookie along; an email scanner that only fetches links never POSTs at all.
//!
//! Links carry an approval token, so they are secrets: never log one. [`fingerprint`] gives a
//! short, one-way name for log correlation.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

const LINK_CONTEXT: &[u8] = b"approval-link/v1\n";
const FORM_CONTEXT: &[u8] = b"approval-form/v1\n";
const PAYLOAD_VERSION: u8 = 1;
/// Links longer than this are refused before any work: a real one is about 400 characters.
pub const MAX_LINK_CHARS: usize = 2048;
/// The shortest signing key accepted: HMAC-SHA256 is as strong as its key, up to 32 bytes.
pub const MIN_KEY_BYTES: usize = 32;
/// How long the confirmation page's form stays valid after the page was served.
pub const FORM_LIFETIME_SECONDS: i64 = 30 * 60;
/// The longest approver address (RFC 5321's limit on a forward path).
pub const MAX_APPROVER_CHARS: usize = 254;

/// The HMAC key links and forms are signed with. Its `Debug` never shows it.
#[derive(Clone)]
pub struct SigningKey {
    // Keyed once; every signature starts from a clone of this state.
    keyed: HmacSha256,
    length: usize,
}

impl SigningKey {
    /// A key of at least [`MIN_KEY_BYTES`] bytes.
    pub fn new(bytes: &[u8]) -> Result<Self, KeyError> {
        let error = KeyError {
            length: bytes.len(),
        };
        if bytes.len() < MIN_KEY_BYTES {
            return Err(error);
        }
        let keyed = <HmacSha256 as KeyInit>::new_from_slice(bytes).map_err(|_| error)?;
        Ok(Self {
            keyed,
            length: bytes.len(),
        })
    }

    fn mac(&self, context: &[u8]) -> HmacSha256 {
        let mut mac = self.keyed.clone();
        mac.update(context);
        mac
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey(<{} bytes>)", self.length)
    }
}

/// A signing key that is too short.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the signing key has {length} bytes; at least {MIN_KEY_BYTES} are needed")]
pub struct KeyError {
    length: usize,
}

/// What the approver decides by following a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// Let the pipeline go on.
    Approve,
    /// Stop the pipeline here.
    Reject,
}

impl Decision {
    /// Both decisions, in the order emails show them.
    pub const ALL: [Decision; 2] = [Decision::Approve, Decision::Reject];

    /// `approve` / `reject`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Approve => "approve",
            Self::Reject => "reject",
        }
    }

    /// CodePipeline's `ApprovalStatus`: `Approved` / `Rejected`.
    pub fn status(self) -> &'static str {
        match self {
            Self::Approve => "Approved",
            Self::Reject => "Rejected",
        }
    }

    /// `Approve` / `Reject`, for buttons and subjects.
    pub fn verb(self) -> &'static str {
        match self {
            Self::Approve => "Approve",
            Self::Reject => "Reject",
        }
    }
}

/// One pending manual approval: the action waiting, and CodePipeline's single-use token for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    /// The pipeline.
    #[serde(rename = "p")]
    pub pipeline: String,
    /// The stage holding the approval action.
    #[serde(rename = "s")]
    pub stage: String,
    /// The approval action.
    #[serde(rename = "a")]
    pub action: String,
    /// CodePipeline's approval token: a secret; never log it.
    #[serde(rename = "t")]
    pub token: String,
}

/// An approver, named by the email address their links are sent to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Approver(String);

impl Approver {
    /// An approver's address: one `@` between non-empty parts, no spaces or control characters,
    /// at most [`MAX_APPROVER_CHARS`] characters. Stored lower-case, so the `approver` message
    /// attribute matches a subscription's filter policy however the address was typed.
    pub fn new(address: &str) -> Result<Self, String> {
        let address = address.trim();
        let valid = address.len() <= MAX_APPROVER_CHARS
            && address
                .split_once('@')
                .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'))
            && address.matches('@').count() == 1
            && !address
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | '"'));
        if valid {
            Ok(Self(address.to_lowercase()))
        } else {
            Err(format!("{address:?} is not an email address"))
        }
    }

    /// The address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Approver {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(&value)
    }
}

impl From<Approver> for String {
    fn from(value: Approver) -> Self {
        value.0
    }
}

impl fmt::Display for Approver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Everything one link stands for.
// No `deny_unknown_fields`: serde does not support it with `flatten`, and the signature already
// covers every byte of the payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalLink {
    #[serde(rename = "v")]
    version: u8,
    /// The approval decided on.
    #[serde(flatten)]
    pub approval: Approval,
    /// Who decides.
    #[serde(rename = "u")]
    pub approver: Approver,
    /// What they decide.
    #[serde(rename = "d")]
    pub decision: Decision,
    /// When the approval expires, in seconds since the epoch: the link is refused from then on.
    #[serde(rename = "e")]
    pub expires_at: i64,
}

/// Why a link was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// Not shaped like a link at all (missing, cut short, not base64, too long).
    #[error("the link is malformed")]
    Malformed,
    /// Well formed, but not signed with our key: tampered with or forged.
    #[error("the link's signature does not match")]
    BadSignature,
    /// Genuine, but the approval expired.
    #[error("the link expired at {expired_at}")]
    Expired {
        /// When it expired, in seconds since the epoch.
        expired_at: i64,
    },
}

impl ApprovalLink {
    /// The link `approver` follows to make `decision` on `approval`, valid until `expires_at`.
    pub fn new(
        approval: Approval,
        approver: Approver,
        decision: Decision,
        expires_at: i64,
    ) -> Self {
        Self {
            version: PAYLOAD_VERSION,
            approval,
            approver,
            decision,
            expires_at,
        }
    }

    /// The signed text that goes into the URL (`?link=...`); URL-safe as it is.
    pub fn sign(&self, key: &SigningKey) -> String {
        // Serializing a struct of strings and numbers cannot fail.
        let json = serde_json::to_vec(self).unwrap_or_default();
        let payload = URL_SAFE_NO_PAD.encode(json);
        let signature = URL_SAFE_NO_PAD.encode(link_mac(key, &payload).finalize().into_bytes());
        format!("{payload}.{signature}")
    }

    /// Checks `text`'s signature (in constant time), then its content, then its expiry at `now`
    /// (seconds since the epoch).
    pub fn verify(text: &str, key: &SigningKey, now: i64) -> Result<Self, LinkError> {
        let link = Self::authenticate(text, key)?;
        if now >= link.expires_at {
            return Err(LinkError::Expired {
                expired_at: link.expires_at,
            });
        }
        Ok(link)
    }

    /// Checks the signature and content but not the expiry.
    pub fn authenticate(text: &str, key: &SigningKey) -> Result<Self, LinkError> {
        let (payload, signature) = split_signed(text)?;
        link_mac(key, payload)
            .verify_slice(&signature)
            .map_err(|_| LinkError::BadSignature)?;
        // Signed by us, so this only fails for a link from a future version of the format.
        let json = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| LinkError::Malformed)?;
        let link: Self = serde_json::from_slice(&json).map_err(|_| LinkError::Malformed)?;
        if link.version != PAYLOAD_VERSION {
            return Err(LinkError::Malformed);
        }
        Ok(link)
    }

    /// The signature part of `text`, which the page's [`FormGuard`] is bound to.
    pub fn signature_of(text: &str) -> Option<&str> {
        text.rsplit_once('.').map(|(_, signature)| signature)
    }
}

fn link_mac(key: &SigningKey, payload: &str) -> HmacSha256 {
    let mut mac = key.mac(LINK_CONTEXT);
    mac.update(payload.as_bytes());
    mac
}

fn split_signed(text: &str) -> Result<(&str, Vec<u8>), LinkError> {
    if text.is_empty() || text.len() > MAX_LINK_CHARS {
        return Err(LinkError::Malformed);
    }
    let (payload, signature) = text.split_once('.').ok_or(LinkError::Malformed)?;
    if payload.is_empty() || signature.contains('.') {
        return Err(LinkError::Malformed);
    }
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| LinkError::Malformed)?;
    Ok((payload, signature))
}

/// The anti-forgery value of one confirmation page: `<issued-at>.<nonce>.<mac>` in the form, and
/// the nonce alone in a cookie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormGuard {
    /// The hidden form field's value.
    pub form_value: String,
    /// The cookie's value (the random nonce).
    pub cookie_value: String,
}

/// Why a POST's anti-forgery value was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    /// The form field or the cookie is missing or malformed.
    #[error("the form's anti-forgery value or cookie is missing")]
    Missing,
    /// They do not belong together, or not to this link.
    #[error("the form's anti-forgery value does not match")]
    Forged,
    /// The page was served too long ago (or claims a time in the future).
    #[error("the form is too old")]
    Stale,
}

impl FormGuard {
    /// A guard for the page showing `link_signature`, served at `now`, with a fresh `nonce`
    /// (16 random bytes; reuse the browser's current cookie nonce so several open pages work).
    pub fn issue(key: &SigningKey, link_signature: &str, now: i64, nonce: &[u8]) -> Self {
        let nonce = URL_SAFE_NO_PAD.encode(nonce);
        let mac = URL_SAFE_NO_PAD.encode(
            form_mac(key, link_signature, now, &nonce)
                .finalize()
                .into_bytes(),
        );
        Self {
            form_value: format!("{now}.{mac}"),
            cookie_value: nonce,
        }
    }

    /// Checks a POST: the form value must be ours, for this link, for this cookie, and younger
    /// than [`FORM_LIFETIME_SECONDS`].
    pub fn verify(
        key: &SigningKey,
        link_signature: &str,
        form_value: Option<&str>,
        cookie_value: Option<&str>,
        now: i64,
    ) -> Result<(), FormError> {
        let (Some(form_value), Some(nonce)) = (form_value, cookie_value) else {
            return Err(FormError::Missing);
        };
        if form_value.len() > 128 || nonce.is_empty() || nonce.len() > 64 {
            return Err(FormError::Missing);
        }
        let (issued, mac) = form_value.split_once('.').ok_or(FormError::Missing)?;
        let issued: i64 = issued.parse().map_err(|_| FormError::Missing)?;
        let mac = URL_SAFE_NO_PAD
            .decode(mac)
            .map_err(|_| FormError::Missing)?;
        form_mac(key, link_signature, issued, nonce)
            .verify_slice(&mac)
            .map_err(|_| FormError::Forged)?;
        // Checked after the MAC, so a forger learns nothing from which error they get.
        if issued > now + 60 || now - issued > FORM_LIFETIME_SECONDS {
            return Err(FormError::Stale);
        }
        Ok(())
    }
}

/// The nonce in a cookie [`FormGuard::issue`] set, so a second page opened in the same browser
/// reuses it instead of invalidating the first page's form.
pub fn nonce_from_cookie(value: &str) -> Option<[u8; 16]> {
    URL_SAFE_NO_PAD
        .decode(value)
        .ok()
        .and_then(|bytes| <[u8; 16]>::try_from(bytes).ok())
}

fn form_mac(key: &SigningKey, link_signature: &str, issued: i64, nonce: &str) -> HmacSha256 {
    let mut mac = key.mac(FORM_CONTEXT);
    // Fields are separated by newlines, which none of them can contain.
    mac.update(link_signature.as_bytes());
    mac.update(b"\n");
    mac.update(issued.to_string().as_bytes());
    mac.update(b"\n");
    mac.update(nonce.as_bytes());
    mac
}

/// A short one-way name of a secret (an approval token, a link) for logs and ledger keys: the
/// first 12 hex digits of its SHA-256.
pub fn fingerprint(secret: &str) -> String {
    let digest = Sha256::digest(secret.as_bytes());
    digest.iter().take(6).map(|b| format!("{b:02x}")).collect()
}

/// The SHA-256 of `text` in standard base64, as a Content-Security-Policy hash source wants it.
pub fn csp_hash(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(text.as_bytes()))
}

#[cfg(test)]
mod tests;
