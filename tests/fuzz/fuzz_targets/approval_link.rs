//! The approval links' verifier (`ApprovalLink::verify` / `authenticate`) and the confirmation
//! form's guard (`FormGuard::verify`), on texts made from arbitrary bytes.
//!
//! The first byte picks what is fuzzed and how: a link, a form value or a cookie, taken raw or
//! made from a genuine one (the bytes appended, prepended, or written over it), or a link whose
//! payload is arbitrary but whose signature is genuine (so the decoding after the signature
//! check is reached too).
//!
//! What must hold: nothing panics; a link is accepted only if it is exactly the text we sign for
//! what it says (no second spelling of a signed link is taken), never with another key, and
//! only before its expiry; a signed payload that is accepted is a valid link that signs and
//! verifies again to itself; a form is accepted only with the genuine form value's signature and
//! issue time and the genuine cookie.
#![no_main]

use std::sync::LazyLock;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use libfuzzer_sys::fuzz_target;
use sha2::Sha256;
use shared::approval_link::{
    Approval, ApprovalLink, Approver, Decision, FormGuard, LinkError, SigningKey,
};

/// The key the sample events are signed with (approval-callback's unit tests); never deployed.
const SAMPLE_KEY: &[u8] = b"sample signing key: for the sample events only, never deployed";
/// The time links are checked at: before the sample links expire.
const NOW: i64 = 1_795_428_360;
const NONCE: [u8; 16] = [7; 16];

static KEY: LazyLock<SigningKey> =
    LazyLock::new(|| SigningKey::new(SAMPLE_KEY).unwrap_or_else(|error| panic!("{error}")));
static OTHER_KEY: LazyLock<SigningKey> = LazyLock::new(|| {
    SigningKey::new(b"another deployment's key, as long as a real one")
        .unwrap_or_else(|error| panic!("{error}"))
});

/// The sample approval's Approve link, as approval-notify mails it.
static GENUINE: LazyLock<String> = LazyLock::new(|| {
    let approver = Approver::new("alice@example.com").unwrap_or_else(|error| panic!("{error}"));
    let approval = Approval {
        pipeline: "shop-main".to_owned(),
        stage: "Approval".to_owned(),
        action: "ProductionGate".to_owned(),
        token: "1a2b3c4d-573f-4ea7-a67e-0123456789ab".to_owned(),
    };
    ApprovalLink::new(approval, approver, Decision::Approve, 4_099_716_000).sign(&KEY)
});

/// `base` changed by `bytes` as `how` says (0 raw, 1 appended, 2 prepended, 3 written over).
fn edit(base: &str, how: u8, bytes: &[u8]) -> String {
    let fuzzed = String::from_utf8_lossy(bytes);
    match how % 4 {
        0 => fuzzed.into_owned(),
        1 => format!("{base}{fuzzed}"),
        2 => format!("{fuzzed}{base}"),
        _ => {
            let mut text = base.as_bytes().to_vec();
            for pair in bytes.chunks_exact(2) {
                let at = usize::from(pair[0]) % text.len().max(1);
                if let Some(byte) = text.get_mut(at) {
                    *byte = pair[1];
                }
            }
            String::from_utf8_lossy(&text).into_owned()
        }
    }
}

fn check_link(text: &str) {
    let link = match ApprovalLink::authenticate(text, &KEY) {
        Ok(link) => link,
        Err(_) => {
            assert!(ApprovalLink::verify(text, &KEY, NOW).is_err());
            return;
        }
    };
    // The one spelling of what it says is the one we sign: anything else is refused.
    assert_eq!(link.sign(&KEY), text, "a second spelling of a signed link");
    assert_eq!(
        ApprovalLink::authenticate(text, &OTHER_KEY),
        Err(LinkError::BadSignature)
    );
    check_expiry(text, &link);
}

fn check_expiry(text: &str, link: &ApprovalLink) {
    assert_eq!(
        ApprovalLink::verify(text, &KEY, link.expires_at),
        Err(LinkError::Expired {
            expired_at: link.expires_at
        })
    );
    if let Some(before) = link.expires_at.checked_sub(1) {
        assert_eq!(ApprovalLink::verify(text, &KEY, before).as_ref(), Ok(link));
    }
}

/// A link with `payload` as its payload text, and a genuine signature over it: what the
/// verifier decodes only after the signature matched.
fn check_signed_payload(payload: &str) {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(SAMPLE_KEY) else {
        return;
    };
    mac.update(b"approval-link/v1\n");
    mac.update(payload.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    let text = format!("{payload}.{signature}");
    let Ok(link) = ApprovalLink::authenticate(&text, &KEY) else {
        return;
    };
    // Whatever was signed, what is taken is a valid link: its approver an address, and signing
    // it again gives a link that verifies to the same.
    assert_eq!(
        Approver::new(link.approver.as_str()).as_ref(),
        Ok(&link.approver)
    );
    let again = link.sign(&KEY);
    assert_eq!(ApprovalLink::authenticate(&again, &KEY).as_ref(), Ok(&link));
    check_expiry(&again, &link);
}

fn check_form(form_value: &str, cookie: &str) {
    let signature = ApprovalLink::signature_of(&GENUINE).unwrap_or_default();
    let genuine = FormGuard::issue(&KEY, signature, NOW, &NONCE);
    let verified = FormGuard::verify(&KEY, signature, Some(form_value), Some(cookie), NOW);
    if verified.is_err() {
        return;
    }
    // Taken only with the genuine signature, issue time and cookie. (The time is read as a
    // number, so `0…` or `+…` spellings of it are taken too: they change nothing it means.)
    let (issued, mac) = form_value.split_once('.').unwrap_or_default();
    let (_, genuine_mac) = genuine.form_value.split_once('.').unwrap_or_default();
    assert_eq!(mac, genuine_mac, "a form value with another signature");
    assert_eq!(
        issued.parse::<i64>(),
        Ok(NOW),
        "a form value of another time"
    );
    assert_eq!(
        cookie, genuine.cookie_value,
        "a form taken with another cookie"
    );
    assert!(FormGuard::verify(&OTHER_KEY, signature, Some(form_value), Some(cookie), NOW).is_err());
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, bytes)) = data.split_first() else {
        return;
    };
    match mode % 5 {
        0 | 1 => check_link(&edit(&GENUINE, mode / 5, bytes)),
        2 => check_signed_payload(&String::from_utf8_lossy(bytes)),
        3 => check_signed_payload(&URL_SAFE_NO_PAD.encode(bytes)),
        _ => {
            let signature = ApprovalLink::signature_of(&GENUINE).unwrap_or_default();
            let genuine = FormGuard::issue(&KEY, signature, NOW, &NONCE);
            if mode / 5 % 2 == 0 {
                check_form(
                    &edit(&genuine.form_value, mode / 10, bytes),
                    &genuine.cookie_value,
                );
            } else {
                check_form(
                    &genuine.form_value,
                    &edit(&genuine.cookie_value, mode / 10, bytes),
                );
            }
        }
    }
});
