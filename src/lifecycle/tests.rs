use super::*;
use crate::domain::encode_lower_hex;
use ed25519_dalek::{Signer, SigningKey};
use serde_json::{json, Value};

const NOW_MS: i64 = 1_764_000_000_000;

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn primary(key: &SigningKey) -> String {
    format!("ed25519:{}", encode_lower_hex(key.verifying_key().as_bytes()))
}

fn server() -> ServerDomain {
    ServerDomain::parse("kez.lat").unwrap()
}

fn sign(key: &SigningKey, payload: &Value) -> Value {
    let message = serde_jcs::to_vec(payload).unwrap();
    json!({ "alg": SIGNATURE_ALG, "key": primary(key), "sig": encode_lower_hex(&key.sign(&message).to_bytes()) })
}

fn created_at() -> String {
    crate::timestamp::format_rfc3339_utc(NOW_MS)
}

/// A rotation of `alice` from key 1 to key 2, with `edit` applied to the payload before signing.
fn rotation(edit: impl FnOnce(&mut Value)) -> Value {
    let (old, new) = (key(1), key(2));
    let mut payload = json!({
        "type": ROTATION_TYPE, "version": 1, "handle": "alice", "server": "kez.lat",
        "old": primary(&old), "new": primary(&new), "created_at": created_at(),
    });
    edit(&mut payload);
    json!({ "kez": ROTATION_TAG, "signatures": [sign(&old, &payload), sign(&new, &payload)], "payload": payload })
}

fn release(edit: impl FnOnce(&mut Value)) -> Value {
    let holder = key(1);
    let mut payload = json!({
        "type": RELEASE_TYPE, "version": 1, "handle": "alice", "server": "kez.lat",
        "primary": primary(&holder), "created_at": created_at(),
    });
    edit(&mut payload);
    json!({ "kez": RELEASE_TAG, "signature": sign(&holder, &payload), "payload": payload })
}

fn rotate(envelope: &Value) -> Result<Statement, ApiError> {
    check_rotation(parse_rotation(&serde_json::to_vec(envelope).unwrap())?, &server(), NOW_MS)?.verify_natively()
}

fn give_up(envelope: &Value) -> Result<Statement, ApiError> {
    check_release(parse_release(&serde_json::to_vec(envelope).unwrap())?, &server(), NOW_MS)?.verify_natively()
}

#[test]
fn a_rotation_signed_by_both_keys_applies_and_is_stored_in_jcs() {
    let envelope = rotation(|_| {});
    let statement = rotate(&envelope).unwrap();
    assert_eq!(statement.handle.to_string(), "alice");
    assert_eq!(statement.change, Change::Rotation { old: primary(&key(1)), new: primary(&key(2)) });
    assert_eq!(statement.envelope_jcs, serde_jcs::to_string(&envelope).unwrap());
}

#[test]
fn every_rotation_rule_has_its_code() {
    let old_only = {
        let mut e = rotation(|_| {});
        e["signatures"] = json!([e["signatures"][0].clone()]);
        e
    };
    let swapped = {
        let mut e = rotation(|_| {});
        let (a, b) = (e["signatures"][0].clone(), e["signatures"][1].clone());
        e["signatures"] = json!([b, a]);
        e
    };
    let new_by_stranger = {
        let mut e = rotation(|_| {});
        let payload = e["payload"].clone();
        e["signatures"][1]["sig"] = sign(&key(3), &payload)["sig"].clone();
        e
    };
    let old_by_stranger = {
        let mut e = rotation(|_| {});
        let payload = e["payload"].clone();
        e["signatures"][0]["sig"] = sign(&key(3), &payload)["sig"].clone();
        e
    };
    let same = {
        let old = key(1);
        let mut payload = rotation(|_| {})["payload"].clone();
        payload["new"] = json!(primary(&old));
        json!({ "kez": ROTATION_TAG, "signatures": [sign(&old, &payload), sign(&old, &payload)], "payload": payload })
    };
    let cases: Vec<(&str, Value, ApiError)> = vec![
        (
            "tag",
            {
                let mut e = rotation(|_| {});
                e["kez"] = json!("handle_registration");
                e
            },
            ApiError::UnsupportedEnvelope(StatementKind::Rotation),
        ),
        ("type", rotation(|p| p["type"] = json!(RELEASE_TYPE)), ApiError::UnsupportedPayload(StatementKind::Rotation)),
        ("version", rotation(|p| p["version"] = json!(2)), ApiError::UnsupportedPayload(StatementKind::Rotation)),
        ("one signature", old_only, ApiError::KeyMismatch(StatementKind::Rotation)),
        ("signatures swapped", swapped, ApiError::KeyMismatch(StatementKind::Rotation)),
        (
            "alg",
            {
                let mut e = rotation(|_| {});
                e["signatures"][1]["alg"] = json!("EdDSA");
                e
            },
            ApiError::UnsupportedAlgorithm,
        ),
        ("same key", same, ApiError::SameKey),
        ("new key's signature by another key", new_by_stranger, ApiError::InvalidSignature),
        ("old key's signature by another key", old_by_stranger, ApiError::InvalidSignature),
        (
            "server",
            rotation(|p| p["server"] = json!("other.example")),
            ApiError::WrongServer { expected: "kez.lat".into() },
        ),
        ("handle", rotation(|p| p["handle"] = json!("Alice")), ApiError::InvalidHandle),
        (
            "stale",
            rotation(|p| p["created_at"] = json!("2020-01-01T00:00:00Z")),
            ApiError::ClockSkew { max_seconds: 300 },
        ),
    ];
    for (name, envelope, expected) in cases {
        assert_eq!(rotate(&envelope).err(), Some(expected), "{name}");
    }
    let mut extra = rotation(|_| {});
    extra["note"] = json!("x");
    assert!(matches!(rotate(&extra), Err(ApiError::InvalidEnvelope(_))));
}

#[test]
fn a_release_signed_by_its_key_applies_and_others_do_not() {
    let statement = give_up(&release(|_| {})).unwrap();
    assert_eq!(statement.change, Change::Release { primary: primary(&key(1)) });
    let mut by_other = release(|_| {});
    let payload = by_other["payload"].clone();
    by_other["signature"]["sig"] = sign(&key(2), &payload)["sig"].clone();
    assert_eq!(give_up(&by_other).err(), Some(ApiError::InvalidSignature));
    let mut mismatch = release(|_| {});
    mismatch["signature"]["key"] = json!(primary(&key(2)));
    assert_eq!(give_up(&mismatch).err(), Some(ApiError::KeyMismatch(StatementKind::Release)));
    // A name reserved (or a lookalike refused) since its holder registered it stays theirs to
    // give up: only the form is checked here, and the database whether the key holds it.
    for held in ["admin", "adm1n", "kez-support"] {
        assert_eq!(give_up(&release(|p| p["handle"] = json!(held))).unwrap().handle.as_str(), held);
        assert_eq!(rotate(&rotation(|p| p["handle"] = json!(held))).unwrap().handle.as_str(), held);
    }
    assert_eq!(give_up(&release(|p| p["handle"] = json!("Admin"))).err(), Some(ApiError::InvalidHandle));
}

#[test]
fn a_refused_statement_says_why_from_the_handle_as_it_is() {
    let change = Change::Release { primary: "ed25519:aa".into() };
    assert_eq!(refusal(&change, None), ApiError::UserNotFound);
    assert_eq!(refusal(&change, Some(("ed25519:aa", true))), ApiError::HandleReleased);
    assert_eq!(refusal(&change, Some(("ed25519:bb", false))), ApiError::NotCurrentKey);
    assert_eq!(
        refusal(&change, Some(("ed25519:aa", false))),
        ApiError::StatementSuperseded,
        "held by its key: a later statement is in force"
    );
}

#[test]
fn the_quarantine_is_30_days_unless_set() {
    assert_eq!(parse_quarantine_days(None), Ok(30));
    assert_eq!(parse_quarantine_days(Some(" 7 ")), Ok(7));
    assert_eq!(parse_quarantine_days(Some("0")), Ok(0));
    for bad in ["-1", "3651", "a month", "1.5"] {
        assert!(parse_quarantine_days(Some(bad)).is_err(), "{bad}");
    }
}
