use super::*;
use crate::domain::{encode_lower_hex, SMALL_ORDER_Y};
use crate::timestamp::parse_rfc3339_ms;
use curve25519_dalek::edwards::CompressedEdwardsY;
use curve25519_dalek::traits::Identity;
use ed25519_dalek::{Signer, SigningKey};
use serde_json::{json, Value};

const VECTORS: &str = include_str!("../../tests/vectors/registration.json");

fn vectors() -> Value {
    serde_json::from_str(VECTORS).unwrap()
}

fn vector(name: &str) -> Value {
    vectors()["vectors"].as_array().unwrap().iter().find(|v| v["name"] == name).unwrap().clone()
}

fn kez_lat() -> ServerDomain {
    ServerDomain::parse("kez.lat").unwrap()
}

fn vector_now() -> i64 {
    parse_rfc3339_ms(vectors()["now"].as_str().unwrap()).unwrap()
}

fn signing_key(seed_byte: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed_byte; 32])
}

fn primary_of(key: &SigningKey) -> String {
    format!("ed25519:{}", encode_lower_hex(key.verifying_key().as_bytes()))
}

/// A payload signed by `key`; `edit` changes the payload before signing.
fn signed(key: &SigningKey, edit: impl FnOnce(&mut Value)) -> Value {
    let mut payload = json!({
        "type": PAYLOAD_TYPE, "version": 1, "handle": "alice", "primary": primary_of(key),
        "server": "kez.lat", "created_at": "2026-11-26T10:52:13Z",
    });
    edit(&mut payload);
    let parsed: Payload = serde_json::from_value(payload.clone()).unwrap();
    let sig = key.sign(&canonical_payload(&parsed));
    json!({
        "kez": ENVELOPE_TAG,
        "payload": payload,
        "signature": { "alg": SIGNATURE_ALG, "key": primary_of(key), "sig": encode_lower_hex(&sig.to_bytes()) },
    })
}

fn check(envelope: &Value) -> Result<Registration, ApiError> {
    let body = serde_json::to_vec(envelope).unwrap();
    verify(parse_envelope(&body)?, &kez_lat(), vector_now())
}

#[test]
fn fixed_vector_canonicalizes_and_verifies() {
    let v = vector("valid");
    let envelope: Envelope = serde_json::from_value(v["envelope"].clone()).unwrap();
    assert_eq!(String::from_utf8(canonical_payload(&envelope.payload)).unwrap(), v["canonical_payload"]);
    let registration = verify(envelope, &kez_lat(), vector_now()).unwrap();
    assert_eq!(registration.handle.as_str(), "alice");
    assert_eq!(registration.primary.to_string(), vectors()["primary"]);
    // The stored envelope is the JCS form of what was sent.
    let stored: Value = serde_json::from_str(&registration.envelope_jcs).unwrap();
    assert_eq!(stored, v["envelope"]);
    assert!(registration.envelope_jcs.starts_with(r#"{"kez":"handle_registration","payload":{"created_at":"#));
}

#[test]
fn fixed_vector_seed_gives_the_vector_key() {
    let seed = decode_lower_hex(vectors()["secret_seed_hex"].as_str().unwrap()).unwrap();
    let key = SigningKey::from_bytes(&seed.try_into().unwrap());
    assert_eq!(primary_of(&key), vectors()["primary"]);
}

#[test]
fn jcs_escaping_matches_the_javascript_canonicalizer() {
    // Signed over JCS bytes made by JavaScript: verifying proves both sides canonicalize
    // escapes, non-ASCII and astral characters alike; then the handle rule rejects it.
    let v = vector("unicode_handle");
    let envelope: Envelope = serde_json::from_value(v["envelope"].clone()).unwrap();
    assert_eq!(String::from_utf8(canonical_payload(&envelope.payload)).unwrap(), v["canonical_payload"]);
    assert_eq!(verify(envelope, &kez_lat(), vector_now()).unwrap_err(), ApiError::InvalidHandle);
}

#[test]
fn key_order_and_whitespace_of_the_request_do_not_matter() {
    let v = vector("valid");
    let p = &v["envelope"]["payload"];
    let body = format!(
        "{{ \"signature\" : {} ,\n \"payload\": {{\"version\":1, \"server\":{}, \"primary\":{}, \"handle\":{}, \"created_at\":{}, \"type\":{} }}, \"kez\":\"handle_registration\" }}",
        v["envelope"]["signature"], p["server"], p["primary"], p["handle"], p["created_at"], p["type"]
    );
    assert!(verify(parse_envelope(body.as_bytes()).unwrap(), &kez_lat(), vector_now()).is_ok());
}

#[test]
fn accepts_a_fresh_registration() {
    let key = signing_key(1);
    let registration = check(&signed(&key, |_| {})).unwrap();
    assert_eq!(registration.primary.to_string(), primary_of(&key));
}

#[test]
fn rejects_bodies_that_are_not_json_or_of_the_wrong_shape() {
    assert!(matches!(parse_envelope(b"not json"), Err(ApiError::InvalidJson(_))));
    assert!(matches!(parse_envelope(b"{\"kez\":"), Err(ApiError::InvalidJson(_))));
    assert!(matches!(parse_envelope(b""), Err(ApiError::InvalidJson(_))));
    assert!(matches!(parse_envelope(&[0xff, 0xfe]), Err(ApiError::InvalidJson(_))));
    assert!(matches!(parse_envelope(b"[]"), Err(ApiError::InvalidEnvelope(_))));
    assert!(matches!(parse_envelope(b"{}"), Err(ApiError::InvalidEnvelope(_))));
    let good = signed(&signing_key(1), |_| {});
    for broken in [
        |e: &mut Value| e["payload"].as_object_mut().unwrap().remove("handle").map(drop).unwrap(),
        |e: &mut Value| e["payload"]["version"] = json!("1"),
        |e: &mut Value| e["payload"]["version"] = json!(1.5),
        |e: &mut Value| e["payload"]["version"] = json!(-1),
        |e: &mut Value| e["payload"]["handle"] = json!(null),
        |e: &mut Value| e["payload"]["extra"] = json!("field"),
        |e: &mut Value| e["extra"] = json!(1),
        |e: &mut Value| e["signature"] = json!("abc"),
        |e: &mut Value| e["signature"]["extra"] = json!(true),
    ] {
        let mut envelope = good.clone();
        broken(&mut envelope);
        assert!(matches!(check(&envelope), Err(ApiError::InvalidEnvelope(_))), "{envelope}");
    }
}

#[test]
fn rejects_duplicate_keys() {
    let body = r#"{"kez":"handle_registration","kez":"handle_registration","payload":{},"signature":{}}"#;
    assert!(matches!(parse_envelope(body.as_bytes()), Err(ApiError::InvalidEnvelope(_))));
}

#[test]
fn each_rule_has_its_own_error() {
    let key = signing_key(2);
    let cases: Vec<(Value, ApiError)> = vec![
        (
            {
                let mut e = signed(&key, |_| {});
                e["kez"] = json!("something_else");
                e
            },
            ApiError::UnsupportedEnvelope(StatementKind::Registration),
        ),
        (
            signed(&key, |p| p["type"] = json!("kez.chat.other")),
            ApiError::UnsupportedPayload(StatementKind::Registration),
        ),
        (signed(&key, |p| p["version"] = json!(2)), ApiError::UnsupportedPayload(StatementKind::Registration)),
        (
            {
                let mut e = signed(&key, |_| {});
                e["signature"]["key"] = json!(primary_of(&signing_key(3)));
                e
            },
            ApiError::KeyMismatch(StatementKind::Registration),
        ),
        (
            {
                let mut e = signed(&key, |_| {});
                e["signature"]["alg"] = json!("EdDSA");
                e
            },
            ApiError::UnsupportedAlgorithm,
        ),
        (
            {
                let upper = primary_of(&key).to_uppercase().replace("ED25519", "ed25519");
                let mut e = signed(&key, |p| p["primary"] = json!(upper));
                e["signature"]["key"] = json!(upper);
                e
            },
            ApiError::InvalidPrimaryKey,
        ),
        (
            {
                let mut e = signed(&key, |_| {});
                e["payload"]["handle"] = json!("mallory");
                e
            },
            ApiError::InvalidSignature,
        ),
        (
            {
                let mut e = signed(&key, |_| {});
                e["signature"]["sig"] = json!("00");
                e
            },
            ApiError::InvalidSignature,
        ),
        (
            {
                let mut e = signed(&key, |_| {});
                e["signature"]["sig"] = json!("zz".repeat(64));
                e
            },
            ApiError::InvalidSignature,
        ),
        (signed(&key, |p| p["server"] = json!("evil.example")), ApiError::WrongServer { expected: "kez.lat".into() }),
        (signed(&key, |p| p["handle"] = json!("al")), ApiError::InvalidHandle),
        (signed(&key, |p| p["handle"] = json!("Alice")), ApiError::InvalidHandle),
        (signed(&key, |p| p["handle"] = json!("admin")), ApiError::ReservedHandle),
        (signed(&key, |p| p["created_at"] = json!("2026-11-26 10:52:13")), ApiError::InvalidTimestamp),
        (signed(&key, |p| p["created_at"] = json!("2026-11-26T10:47:59Z")), ApiError::ClockSkew { max_seconds: 300 }),
        (signed(&key, |p| p["created_at"] = json!("2026-11-26T10:58:01Z")), ApiError::ClockSkew { max_seconds: 300 }),
    ];
    for (envelope, expected) in cases {
        assert_eq!(check(&envelope).unwrap_err(), expected, "{envelope}");
    }
}

#[test]
fn flipping_any_signature_bit_is_caught() {
    let good = signed(&signing_key(4), |_| {});
    let sig = decode_lower_hex(good["signature"]["sig"].as_str().unwrap()).unwrap();
    for bit in (0..512).step_by(37) {
        let mut bad = sig.clone();
        bad[bit / 8] ^= 1 << (bit % 8);
        let mut envelope = good.clone();
        envelope["signature"]["sig"] = json!(encode_lower_hex(&bad));
        assert_eq!(check(&envelope).unwrap_err(), ApiError::InvalidSignature, "bit {bit}");
    }
}

/// The signature with s + L (the group order) in place of s: the equation still holds.
fn with_s_plus_l(sig: &[u8]) -> Vec<u8> {
    const L: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let mut sig = sig.to_vec();
    let mut carry = 0u16;
    for i in 0..32 {
        let sum = u16::from(sig[32 + i]) + u16::from(L[i]) + carry;
        sig[32 + i] = sum as u8;
        carry = sum >> 8;
    }
    sig
}

#[test]
fn non_canonical_signature_scalar_is_refused() {
    // s + L verifies under lax rules but is malleable; strict verification refuses it.
    let good = signed(&signing_key(5), |_| {});
    let sig = with_s_plus_l(&decode_lower_hex(good["signature"]["sig"].as_str().unwrap()).unwrap());
    let mut envelope = good.clone();
    envelope["signature"]["sig"] = json!(encode_lower_hex(&sig));
    assert_eq!(check(&envelope).unwrap_err(), ApiError::InvalidSignature);
}

/// The checks before the equation, as the worker runs them (its equation is WebCrypto's).
fn check_rules(envelope: &Value) -> Result<Signed, ApiError> {
    let body = serde_json::to_vec(envelope).unwrap();
    super::check(parse_envelope(&body)?, &kez_lat(), vector_now())
}

#[test]
fn strict_rules_hold_before_any_equation_is_checked() {
    // Whatever checks the equation, a malleable s or a small-order R never reaches it.
    let good = signed(&signing_key(7), |_| {});
    let sig = decode_lower_hex(good["signature"]["sig"].as_str().unwrap()).unwrap();
    let with_sig = |sig: &[u8]| {
        let mut envelope = good.clone();
        envelope["signature"]["sig"] = json!(encode_lower_hex(sig));
        envelope
    };
    let s_plus_l = with_s_plus_l(&sig);
    // R = the identity point, and R = a point of order 8 spelled with its sign bit set.
    let mut identity_r = sig.clone();
    identity_r[..32].copy_from_slice(&SMALL_ORDER_Y[1]);
    let mut order_8_r = sig.clone();
    order_8_r[..32].copy_from_slice(&SMALL_ORDER_Y[2]);
    order_8_r[31] |= 0x80;
    for bad in [s_plus_l, identity_r, order_8_r] {
        assert_eq!(check_rules(&with_sig(&bad)).err(), Some(ApiError::InvalidSignature));
    }
    assert!(check_rules(&good).is_ok());
    // An R with no point on the curve is left to the equation, which refuses it.
    let mut no_point = sig.clone();
    no_point[..32].copy_from_slice(&[2u8; 32]);
    assert!(CompressedEdwardsY([2u8; 32]).decompress().is_none());
    let rules = check_rules(&with_sig(&no_point)).expect("not a rule of its own");
    assert_eq!(rules.verify_natively().err(), Some(ApiError::InvalidSignature));
}

#[test]
fn a_key_that_is_no_point_is_named_whichever_check_fails() {
    // The key is decoded only once something failed, and is then the error reported: it
    // comes before the signature in the contract's order.
    let no_point = format!("ed25519:{}", encode_lower_hex(&[2u8; 32]));
    let good = signed(&signing_key(8), |_| {});
    let mut envelope = good.clone();
    envelope["payload"]["primary"] = json!(no_point);
    envelope["signature"]["key"] = json!(no_point);
    // The signature is well formed: the equation fails, then the key is named.
    let rules = check_rules(&envelope).expect("a point is not checked before the equation");
    assert_eq!(rules.conclude(false).err(), Some(ApiError::InvalidPrimaryKey));
    assert_eq!(check(&envelope).err(), Some(ApiError::InvalidPrimaryKey));
    // The signature is malformed: the key is still named first.
    envelope["signature"]["sig"] = json!("00");
    assert_eq!(check_rules(&envelope).err(), Some(ApiError::InvalidPrimaryKey));
    // A small-order key is refused by its encoding, before anything else.
    let small = format!("ed25519:{}", encode_lower_hex(&SMALL_ORDER_Y[1]));
    envelope["payload"]["primary"] = json!(small);
    envelope["signature"]["key"] = json!(small);
    assert_eq!(check_rules(&envelope).err(), Some(ApiError::InvalidPrimaryKey));
    // A good key with the same malformed signature is a bad signature.
    let mut bad_sig = good;
    bad_sig["signature"]["sig"] = json!("00");
    assert_eq!(check_rules(&bad_sig).err(), Some(ApiError::InvalidSignature));
}

#[test]
fn the_small_order_list_is_every_encoding_of_every_small_order_point() {
    // Every 32-byte string that decodes to a point of small order is in the list: the group of
    // small order is the 8 multiples of an order-8 point, and each y is written at most twice
    // (y and y + p, below 2^255) with either sign bit.
    let order_8 = CompressedEdwardsY(SMALL_ORDER_Y[2]).decompress().unwrap();
    let mut point = curve25519_dalek::EdwardsPoint::identity();
    let mut seen = std::collections::HashSet::new();
    for _ in 0..8 {
        let y = point.compress().to_bytes();
        assert!(point.is_small_order() && is_small_order_encoding(&y));
        seen.insert(y);
        point += order_8;
    }
    assert_eq!(seen.len(), 8, "8 distinct points: the generator is of order 8");
    // Their other spellings: y + p fits below 2^255 (p = 2^255 − 19) only when y < 19.
    point = curve25519_dalek::EdwardsPoint::identity();
    for _ in 0..8 {
        let y = point.compress().to_bytes();
        if y[1..31].iter().all(|b| *b == 0) && y[31] & 0x7f == 0 && y[0] < 19 {
            let mut y_plus_p = [0xffu8; 32];
            y_plus_p[0] = 0xed + y[0];
            y_plus_p[31] = 0x7f;
            assert!(is_small_order_encoding(&y_plus_p));
        }
        point += order_8;
    }
    // And every spelling in the list decodes to a point of small order, or to none.
    for (i, y) in SMALL_ORDER_Y.iter().enumerate() {
        for sign in [0, 0x80] {
            let mut encoding = *y;
            encoding[31] |= sign;
            if let Some(decoded) = CompressedEdwardsY(encoding).decompress() {
                assert!(decoded.is_small_order(), "entry {i}, sign {sign:#x}");
            }
        }
    }
}

#[test]
fn a_failed_equation_is_reported_before_later_rules() {
    let bad_handle = signed(&signing_key(8), |p| p["handle"] = json!("Bad Handle"));
    let rules = || check_rules(&bad_handle).expect("the signature's rules hold");
    assert_eq!(rules().conclude(false).unwrap_err(), ApiError::InvalidSignature);
    assert_eq!(rules().conclude(true).unwrap_err(), ApiError::InvalidHandle);
    assert_eq!(rules().verify_natively().unwrap_err(), ApiError::InvalidHandle);
    let good = check_rules(&signed(&signing_key(8), |_| {})).unwrap();
    // What the runtime is asked to verify is exactly what the key signed.
    let key = ed25519_dalek::VerifyingKey::from_bytes(good.key_bytes()).unwrap();
    let signature = ed25519_dalek::Signature::from_bytes(&good.signature_bytes());
    assert!(key.verify_strict(good.message(), &signature).is_ok());
    assert_eq!(good.conclude(true).unwrap().handle.as_str(), "alice");
}

#[test]
fn server_case_is_accepted_but_uppercase_signature_hex_is_not() {
    let mut envelope = signed(&signing_key(6), |p| p["server"] = json!("KEZ.lat"));
    assert!(check(&envelope).is_ok());
    // Stored as sent, uppercase hex would burn the handle and key: every client rejects it.
    let sig = envelope["signature"]["sig"].as_str().unwrap().to_owned();
    let letter = sig.find(|c: char| c.is_ascii_alphabetic()).expect("128 hex digits of this key hold a letter");
    let mut one_upper = sig.clone();
    one_upper.replace_range(letter..=letter, &sig[letter..=letter].to_uppercase());
    for changed in [sig.to_uppercase(), one_upper] {
        envelope["signature"]["sig"] = json!(changed);
        assert_eq!(check(&envelope).unwrap_err(), ApiError::InvalidSignature);
    }
}

#[test]
fn clock_window_is_inclusive_at_five_minutes_either_way() {
    let key = signing_key(7);
    // vector now is 10:53:00Z
    for at in ["2026-11-26T10:48:00Z", "2026-11-26T10:58:00Z", "2026-11-26T11:58:00+01:00"] {
        assert!(check(&signed(&key, |p| p["created_at"] = json!(at))).is_ok(), "{at}");
    }
}

#[test]
fn checks_run_in_the_contract_order() {
    let key = signing_key(8);
    // Everything wrong at once: the first rule wins, and so on down the list.
    let mut e = signed(&key, |p| {
        p["server"] = json!("evil.example");
        p["handle"] = json!("x");
        p["created_at"] = json!("long ago");
    });
    assert_eq!(check(&e).unwrap_err(), ApiError::WrongServer { expected: "kez.lat".into() });
    e["signature"]["sig"] = json!("00".repeat(64));
    assert_eq!(check(&e).unwrap_err(), ApiError::InvalidSignature);
    e["signature"]["key"] = json!(primary_of(&signing_key(9)));
    assert_eq!(check(&e).unwrap_err(), ApiError::KeyMismatch(StatementKind::Registration));
    e["payload"]["version"] = json!(7);
    assert_eq!(check(&e).unwrap_err(), ApiError::UnsupportedPayload(StatementKind::Registration));
    e["kez"] = json!("x");
    assert_eq!(check(&e).unwrap_err(), ApiError::UnsupportedEnvelope(StatementKind::Registration));

    let e = signed(&key, |p| {
        p["handle"] = json!("x");
        p["created_at"] = json!("long ago");
    });
    assert_eq!(check(&e).unwrap_err(), ApiError::InvalidHandle);
}

#[test]
fn a_lost_registration_is_told_why_by_the_row_that_holds_its_skeleton() {
    let row = |handle: &str, key: &str, released_at: Option<&str>| UserRecord {
        handle: handle.into(),
        primary_key: key.into(),
        registered_at: "2026-12-01T00:00:00Z".into(),
        envelope: "{}".into(),
        released_at: released_at.map(Into::into),
        log: None,
    };
    let cutoff = "2026-11-02T12:00:00Z";
    let lost = |holder: &UserRecord, handle: &str, key: &str| lost_to(holder, handle, key, cutoff, 30);
    // Held: the plain conflicts.
    assert_eq!(lost(&row("alice", "ed25519:aa", None), "alice", "ed25519:bb"), ApiError::HandleTaken);
    assert_eq!(lost(&row("a1ice", "ed25519:aa", None), "alice", "ed25519:aa"), ApiError::KeyAlreadyRegistered);
    assert_eq!(lost(&row("a1ice", "ed25519:aa", None), "alice", "ed25519:bb"), ApiError::HandleConfusable);
    // Released by another key within the quarantine; or after it, or by its own key, yet kept:
    // released by a statement signed after this registration.
    let recent = Some("2026-12-01T00:00:00Z");
    assert_eq!(
        lost(&row("alice", "ed25519:aa", recent), "alice", "ed25519:bb"),
        ApiError::HandleQuarantined { days: 30 }
    );
    assert_eq!(lost(&row("alice", "ed25519:aa", Some(cutoff)), "alice", "ed25519:bb"), ApiError::StatementSuperseded);
    assert_eq!(lost(&row("alice", "ed25519:aa", recent), "alice", "ed25519:aa"), ApiError::StatementSuperseded);
    // A released lookalike is still a lookalike.
    assert_eq!(lost(&row("a1ice", "ed25519:aa", recent), "alice", "ed25519:bb"), ApiError::HandleConfusable);
}

proptest::proptest! {
    /// serde_json writes the payload and the envelope exactly as the JCS reference does, for
    /// any strings (control characters, quotes, backslashes, non-ASCII, astral planes).
    #[test]
    fn serde_json_writes_the_jcs_form(fields in proptest::collection::vec("(?s).*", 9)) {
        let payload = Payload {
            created_at: fields[0].clone(),
            handle: fields[1].clone(),
            primary: fields[2].clone(),
            server: fields[3].clone(),
            kind: fields[4].clone(),
            version: PAYLOAD_VERSION,
        };
        proptest::prop_assert_eq!(canonical_payload(&payload), serde_jcs::to_vec(&payload).unwrap());
        let envelope = Envelope {
            kez: fields[5].clone(),
            payload,
            signature: EnvelopeSignature { alg: fields[6].clone(), key: fields[7].clone(), sig: fields[8].clone() },
        };
        proptest::prop_assert_eq!(serde_json::to_string(&envelope).unwrap(), serde_jcs::to_string(&envelope).unwrap());
    }
}
