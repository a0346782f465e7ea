use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use super::*;

const NOW: i64 = 1_795_000_000;
const TOKEN: &str = "1a2b3c4d-573f-4ea7-a67e-0123456789ab";

fn key() -> SigningKey {
    SigningKey::new(b"0123456789abcdef0123456789abcdef-test-key").unwrap()
}

fn other_key() -> SigningKey {
    SigningKey::new(b"another key of at least thirty-two bytes!").unwrap()
}

fn approval() -> Approval {
    Approval {
        pipeline: "shop-main".into(),
        stage: "Approval".into(),
        action: "ProductionGate".into(),
        token: TOKEN.into(),
    }
}

fn link(decision: Decision) -> ApprovalLink {
    ApprovalLink::new(
        approval(),
        Approver::new("Alice@Example.com").unwrap(),
        decision,
        NOW + 3600,
    )
}

/// The link's payload as JSON, changed by `edit`, re-encoded, with the original signature.
fn tampered(signed: &str, edit: impl FnOnce(&mut Value)) -> String {
    let (payload, signature) = signed.split_once('.').unwrap();
    let mut document: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    edit(&mut document);
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&document).unwrap());
    format!("{payload}.{signature}")
}

#[test]
fn a_signed_link_verifies_to_what_was_signed() {
    let original = link(Decision::Approve);
    let signed = original.sign(&key());
    assert!(signed.len() < 400, "{} characters", signed.len());
    assert!(
        signed
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)),
        "URL-safe as it is: {signed}"
    );
    let verified = ApprovalLink::verify(&signed, &key(), NOW).unwrap();
    assert_eq!(verified, original);
    assert_eq!(verified.approver.as_str(), "alice@example.com");
    assert_eq!(verified.approval.token, TOKEN);
}

#[test]
fn approve_and_reject_links_differ_and_cannot_be_swapped() {
    let approve = link(Decision::Approve).sign(&key());
    let reject = link(Decision::Reject).sign(&key());
    assert_ne!(approve, reject);
    let (approve_payload, _) = approve.split_once('.').unwrap();
    let (_, reject_signature) = reject.split_once('.').unwrap();
    let swapped = format!("{approve_payload}.{reject_signature}");
    assert_eq!(
        ApprovalLink::verify(&swapped, &key(), NOW),
        Err(LinkError::BadSignature)
    );
}

#[test]
fn every_field_of_the_payload_is_covered_by_the_signature() {
    let signed = link(Decision::Reject).sign(&key());
    let edits: [(&str, Value); 8] = [
        ("p", json!("shop-release")),
        ("s", json!("Deploy")),
        ("a", json!("OtherGate")),
        ("t", json!("ffffffff-573f-4ea7-a67e-0123456789ab")),
        ("u", json!("mallory@example.com")),
        ("d", json!("approve")),
        ("e", json!(NOW + 86_400 * 365)),
        ("v", json!(2)),
    ];
    for (field, value) in edits {
        let forged = tampered(&signed, |document| document[field] = value.clone());
        assert_eq!(
            ApprovalLink::verify(&forged, &key(), NOW),
            Err(LinkError::BadSignature),
            "changing {field} must break the signature"
        );
    }
    let added = tampered(&signed, |document| document["x"] = json!("extra"));
    assert_eq!(
        ApprovalLink::verify(&added, &key(), NOW),
        Err(LinkError::BadSignature)
    );
    // Even re-encoding the very same JSON differently changes the signed text.
    let reordered = tampered(&signed, |_| {});
    assert_eq!(
        ApprovalLink::verify(&reordered, &key(), NOW).is_ok(),
        reordered == signed
    );
}

#[test]
fn a_damaged_signature_is_refused() {
    let signed = link(Decision::Approve).sign(&key());
    let (payload, signature) = signed.split_once('.').unwrap();
    let mut bytes = URL_SAFE_NO_PAD.decode(signature).unwrap();

    for position in [0, 15, 31] {
        let mut flipped = bytes.clone();
        flipped[position] ^= 0x01;
        let forged = format!("{payload}.{}", URL_SAFE_NO_PAD.encode(&flipped));
        assert_eq!(
            ApprovalLink::verify(&forged, &key(), NOW),
            Err(LinkError::BadSignature),
            "bit flipped in byte {position}"
        );
    }
    bytes.truncate(16);
    let truncated = format!("{payload}.{}", URL_SAFE_NO_PAD.encode(&bytes));
    assert_eq!(
        ApprovalLink::verify(&truncated, &key(), NOW),
        Err(LinkError::BadSignature)
    );
    let empty = format!("{payload}.");
    assert_eq!(
        ApprovalLink::verify(&empty, &key(), NOW),
        Err(LinkError::BadSignature)
    );
}

#[test]
fn a_link_signed_with_another_key_is_refused() {
    let foreign = link(Decision::Approve).sign(&other_key());
    assert_eq!(
        ApprovalLink::verify(&foreign, &key(), NOW),
        Err(LinkError::BadSignature)
    );
}

#[test]
fn malformed_links_are_refused_without_parsing_them() {
    let signed = link(Decision::Approve).sign(&key());
    let too_long = format!("{}.{}", "A".repeat(MAX_LINK_CHARS), "B");
    let cases = [
        String::new(),
        "no-dot-at-all".into(),
        ".signature-only".into(),
        format!("{signed}.extra"),
        format!("{}!.abc", signed.split_once('.').unwrap().0),
        signed.replace('.', ".%%"),
        too_long,
    ];
    for case in cases {
        let error = ApprovalLink::verify(&case, &key(), NOW).unwrap_err();
        assert!(
            matches!(error, LinkError::Malformed | LinkError::BadSignature),
            "{case:?}: {error:?}"
        );
    }
    assert_eq!(
        ApprovalLink::verify("", &key(), NOW),
        Err(LinkError::Malformed)
    );
    assert_eq!(
        ApprovalLink::verify(&format!("{signed}.x"), &key(), NOW),
        Err(LinkError::Malformed)
    );
}

#[test]
fn a_link_is_refused_from_its_expiry_on() {
    let signed = link(Decision::Approve).sign(&key());
    assert!(ApprovalLink::verify(&signed, &key(), NOW + 3599).is_ok());
    assert_eq!(
        ApprovalLink::verify(&signed, &key(), NOW + 3600),
        Err(LinkError::Expired {
            expired_at: NOW + 3600
        })
    );
    // The expiry is only reported for a genuine link.
    let forged = tampered(&signed, |document| document["p"] = json!("other"));
    assert_eq!(
        ApprovalLink::verify(&forged, &key(), NOW + 7200),
        Err(LinkError::BadSignature)
    );
    assert!(ApprovalLink::authenticate(&signed, &key()).is_ok());
}

#[test]
fn a_future_payload_version_signed_with_our_key_is_malformed_not_trusted() {
    let mut future = link(Decision::Approve);
    future.version = 9;
    let signed = future.sign(&key());
    assert_eq!(
        ApprovalLink::verify(&signed, &key(), NOW),
        Err(LinkError::Malformed)
    );
}

#[test]
fn short_keys_are_refused_and_keys_never_show_in_debug() {
    assert_eq!(
        SigningKey::new(b"short").unwrap_err().to_string(),
        "the signing key has 5 bytes; at least 32 are needed"
    );
    let shown = format!("{:?}", key());
    assert_eq!(shown, "SigningKey(<41 bytes>)");
}

#[test]
fn approvers_are_email_addresses() {
    assert_eq!(
        Approver::new(" Bob.Builder@Example.COM ").unwrap().as_str(),
        "bob.builder@example.com"
    );
    for bad in [
        "",
        "bob",
        "@example.com",
        "bob@",
        "bob@localhost",
        "a@b@c.com",
        "bob smith@example.com",
        "<bob@example.com>",
    ] {
        assert!(Approver::new(bad).is_err(), "{bad:?}");
    }
    // Trimmed, so a trailing newline from a config file is harmless.
    assert!(Approver::new("bob@example.com\n").is_ok());
    let long = format!("{}@example.com", "a".repeat(250));
    assert!(Approver::new(&long).is_err());
}

#[test]
fn decisions_name_codepipeline_statuses() {
    assert_eq!(Decision::Approve.status(), "Approved");
    assert_eq!(Decision::Reject.status(), "Rejected");
    assert_eq!(Decision::Reject.as_str(), "reject");
    assert_eq!(Decision::Approve.verb(), "Approve");
}

fn guard_for(signed: &str, now: i64) -> FormGuard {
    FormGuard::issue(
        &key(),
        ApprovalLink::signature_of(signed).unwrap(),
        now,
        &[7; 16],
    )
}

#[test]
fn a_form_guard_verifies_with_its_cookie_for_its_link() {
    let signed = link(Decision::Approve).sign(&key());
    let signature = ApprovalLink::signature_of(&signed).unwrap();
    let guard = guard_for(&signed, NOW);
    assert_eq!(nonce_from_cookie(&guard.cookie_value), Some([7; 16]));
    assert_eq!(nonce_from_cookie("short"), None);
    assert_eq!(
        FormGuard::verify(
            &key(),
            signature,
            Some(&guard.form_value),
            Some(&guard.cookie_value),
            NOW + 60
        ),
        Ok(())
    );
}

#[test]
fn every_tampered_form_guard_is_refused() {
    let signed = link(Decision::Approve).sign(&key());
    let signature = ApprovalLink::signature_of(&signed).unwrap();
    let guard = guard_for(&signed, NOW);
    let other_link = link(Decision::Reject).sign(&key());
    let other_guard = guard_for(&other_link, NOW);
    let (issued, mac) = guard.form_value.split_once('.').unwrap();
    let verify = |form: Option<&str>, cookie: Option<&str>, signature: &str, now: i64| {
        FormGuard::verify(&key(), signature, form, cookie, now)
    };

    // Missing halves of the double submit.
    assert_eq!(
        verify(None, Some(&guard.cookie_value), signature, NOW),
        Err(FormError::Missing)
    );
    assert_eq!(
        verify(Some(&guard.form_value), None, signature, NOW),
        Err(FormError::Missing)
    );
    assert_eq!(
        verify(Some("garbage"), Some(&guard.cookie_value), signature, NOW),
        Err(FormError::Missing)
    );
    // Another browser's cookie.
    let stranger = URL_SAFE_NO_PAD.encode([9; 16]);
    assert_eq!(
        verify(Some(&guard.form_value), Some(&stranger), signature, NOW),
        Err(FormError::Forged)
    );
    // A guard from another link's page.
    assert_eq!(
        verify(
            Some(&other_guard.form_value),
            Some(&guard.cookie_value),
            signature,
            NOW
        ),
        Err(FormError::Forged)
    );
    // A moved issue time, to stretch the form's life.
    let moved = format!("{}.{mac}", issued.parse::<i64>().unwrap() + 600);
    assert_eq!(
        verify(Some(&moved), Some(&guard.cookie_value), signature, NOW),
        Err(FormError::Forged)
    );
    // Signed with another key.
    let foreign = FormGuard::issue(&other_key(), signature, NOW, &[7; 16]);
    assert_eq!(
        verify(
            Some(&foreign.form_value),
            Some(&guard.cookie_value),
            signature,
            NOW
        ),
        Err(FormError::Forged)
    );
    // Too old, or from the future.
    assert_eq!(
        verify(
            Some(&guard.form_value),
            Some(&guard.cookie_value),
            signature,
            NOW + FORM_LIFETIME_SECONDS + 1
        ),
        Err(FormError::Stale)
    );
    assert_eq!(
        verify(
            Some(&guard.form_value),
            Some(&guard.cookie_value),
            signature,
            NOW - 3600
        ),
        Err(FormError::Stale)
    );
}

#[test]
fn fingerprints_are_short_stable_and_one_way() {
    let print = fingerprint(TOKEN);
    assert_eq!(print.len(), 12);
    assert_eq!(print, fingerprint(TOKEN));
    assert_ne!(print, fingerprint("another token"));
    assert!(!TOKEN.contains(&print));
    // The SHA-256 of "" is well known.
    assert_eq!(fingerprint(""), "e3b0c44298fc");
    assert_eq!(csp_hash(""), "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
}
