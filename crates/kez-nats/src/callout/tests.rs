//! Against real claim sets captured from nats-server 2.15.1 (see testdata/README.md).
use super::*;
use ed25519_dalek::Signer;
use serde_json::{json, Value};

/// `iat` of the captured requests.
const NOW: i64 = 1_795_687_332;

fn sample(name: &str) -> Value {
    let text = match name {
        "request_allow" => include_str!("../../testdata/request_allow.json"),
        "request_deny_key_not_registered" => include_str!("../../testdata/request_deny_key_not_registered.json"),
        "request_deny_nonce_signature_invalid" => {
            include_str!("../../testdata/request_deny_nonce_signature_invalid.json")
        }
        "request_deny_nkey_authentication_required" => {
            include_str!("../../testdata/request_deny_nkey_authentication_required.json")
        }
        "response_allow" => include_str!("../../testdata/response_allow.json"),
        "response_deny_key_not_registered" => include_str!("../../testdata/response_deny_key_not_registered.json"),
        "user_claims" => include_str!("../../testdata/user_claims.json"),
        other => panic!("no sample {other}"),
    };
    serde_json::from_str(text).unwrap()
}

fn server_key() -> SigningKey {
    SigningKey::from_bytes(&[5; 32])
}

fn server_nkey() -> String {
    nkey::encode_public(KeyType::Server, server_key().verifying_key().as_bytes())
}

fn issuer() -> Issuer {
    Issuer::from_seed(&nkey::encode_seed(KeyType::Account, &[6; 32])).unwrap()
}

fn grant() -> Grant {
    Grant { account: "KEZ".into(), ttl_seconds: 3600, limits: UserLimits::DEFAULT }
}

/// The captured claims, signed as if by our test server (everything else unchanged).
fn token(mut claims: Value) -> String {
    claims["iss"] = json!(server_nkey());
    claims["nats"]["server_id"]["id"] = json!(server_nkey());
    jwt::encode(&claims, &server_key())
}

fn request(name: &str) -> AuthRequest {
    AuthRequest::verify(&token(sample(name))).unwrap()
}

fn decode_answer(answer: &str) -> Value {
    jwt::decode_verified(answer, KeyType::Account).unwrap()
}

#[test]
fn real_allow_request_passes_and_answers_like_the_captured_answer() {
    let req = request("request_allow");
    assert_eq!(req.check_fresh(NOW), Ok(()));
    let key = req.client_key().unwrap();
    assert_eq!(HEXLOWER.encode(&key), "4db14c1464c46792167e62f44ff6d99fd8c85e68e6c433a3e64e0017983364e2");

    let answer = decode_answer(&allow(&req, "alice", &key, &issuer(), &grant(), NOW));
    let captured = sample("response_allow");
    assert_eq!(answer["aud"], json!(server_nkey()));
    assert_eq!(answer["sub"], captured["sub"], "sub is the per-connection user_nkey");
    assert_eq!(answer["iss"], json!(issuer().public_nkey()));
    assert_eq!(answer["iat"], json!(NOW));
    assert_eq!(answer["nats"]["type"], captured["nats"]["type"]);
    assert_eq!(answer["nats"]["version"], captured["nats"]["version"]);
    assert!(answer["nats"].get("error").is_none());

    let user: Value = jwt::decode_verified(answer["nats"]["jwt"].as_str().unwrap(), KeyType::Account).unwrap();
    let mut expected = sample("user_claims");
    // The captured claims were unlimited (-1); ours carry the grant's limits.
    let limits = UserLimits::DEFAULT;
    for (field, value) in [("subs", limits.subs), ("payload", limits.payload), ("data", limits.data)] {
        assert_eq!(expected["nats"][field], json!(-1));
        expected["nats"][field] = json!(value);
    }
    for field in ["aud", "name", "nats", "sub"] {
        assert_eq!(user[field], expected[field], "{field}");
    }
    assert_eq!(user["iss"], json!(issuer().public_nkey()));
    assert_eq!(user["exp"], json!(NOW + 3600));
    assert_eq!(user["jti"].as_str().unwrap().len(), 52);
}

#[test]
fn real_deny_answers_carry_the_reason() {
    let req = request("request_deny_key_not_registered");
    assert!(req.client_key().is_ok(), "the key proved itself; the registry refuses it");
    let answer = decode_answer(&deny(&req, Denial::KeyNotRegistered, &issuer(), NOW));
    let captured = sample("response_deny_key_not_registered");
    assert_eq!(answer["nats"], captured["nats"]);
    assert_eq!(answer["sub"], captured["sub"]);
    assert_eq!(answer["aud"], json!(server_nkey()));
}

#[test]
fn a_signature_by_another_key_is_refused() {
    // Captured: the client presented alice's public key but signed the nonce with another key.
    assert_eq!(request("request_deny_nonce_signature_invalid").client_key(), Err(Denial::NonceSignatureInvalid));
}

#[test]
fn user_password_logins_are_refused() {
    assert_eq!(request("request_deny_nkey_authentication_required").client_key(), Err(Denial::NkeyRequired));
}

#[test]
fn padded_standard_base64_signatures_are_accepted() {
    let mut claims = sample("request_allow");
    let sig = BASE64URL_NOPAD.decode(claims["nats"]["connect_opts"]["sig"].as_str().unwrap().as_bytes()).unwrap();
    claims["nats"]["connect_opts"]["sig"] = json!(BASE64.encode(&sig));
    assert!(AuthRequest::verify(&token(claims)).unwrap().client_key().is_ok());
}

#[test]
fn missing_nonce_or_signature_is_refused() {
    for path in [("client_info", "nonce"), ("connect_opts", "sig"), ("connect_opts", "nkey")] {
        let mut claims = sample("request_allow");
        claims["nats"][path.0].as_object_mut().unwrap().remove(path.1);
        assert_eq!(AuthRequest::verify(&token(claims)).unwrap().client_key(), Err(Denial::NkeyRequired), "{path:?}");
    }
    let mut claims = sample("request_allow");
    claims["nats"]["client_info"]["nonce"] = json!("another-nonce");
    assert_eq!(AuthRequest::verify(&token(claims)).unwrap().client_key(), Err(Denial::NonceSignatureInvalid));
}

#[test]
fn a_signature_made_for_another_use_is_no_login() {
    // Anyone can read a registration's payload and signature from a lookup; offered as a
    // "nonce" and its signature, they verify, but no nats-server makes such a nonce.
    let client = SigningKey::from_bytes(&[9; 32]);
    let signed = |nonce: &str| {
        let mut claims = sample("request_allow");
        claims["nats"]["client_info"]["nonce"] = json!(nonce);
        claims["nats"]["connect_opts"]["nkey"] =
            json!(nkey::encode_public(KeyType::User, client.verifying_key().as_bytes()));
        claims["nats"]["connect_opts"]["sig"] =
            json!(BASE64URL_NOPAD.encode(&client.sign(nonce.as_bytes()).to_bytes()));
        AuthRequest::verify(&token(claims)).unwrap().client_key()
    };
    let payload =
        r#"{"created_at":"2026-12-04T00:00:00Z","handle":"alice","primary":"ed25519:00","server":"localhost"}"#;
    for other_use in [payload, "kez-msg-v1\0{}", "short", &"a".repeat(65), "has space11"] {
        assert_eq!(signed(other_use), Err(Denial::NonceMalformed), "{other_use:?}");
    }
    // The same key over nonces of nats-server's form logs in.
    for nonce in ["tVl6ZlC1WbuMzUs", "abcdefghijk", &"Az09-_".repeat(10)] {
        assert_eq!(signed(nonce), Ok(client.verifying_key().to_bytes()), "{nonce:?}");
    }
}

#[test]
fn an_expiry_at_the_end_of_time_does_not_overflow() {
    let mut claims = sample("request_allow");
    claims["exp"] = json!(i64::MAX);
    assert_eq!(AuthRequest::verify(&token(claims)).unwrap().check_fresh(NOW), Ok(()));
}

#[test]
fn expiry_is_checked_with_leeway_and_required() {
    let req = request("request_allow");
    let exp = sample("request_allow")["exp"].as_i64().unwrap();
    assert_eq!(req.check_fresh(exp + EXPIRY_LEEWAY_SECONDS), Ok(()));
    assert_eq!(req.check_fresh(exp + EXPIRY_LEEWAY_SECONDS + 1), Err(Denial::RequestExpired));
    let mut without = sample("request_allow");
    without.as_object_mut().unwrap().remove("exp");
    assert_eq!(AuthRequest::verify(&token(without)).unwrap().check_fresh(NOW), Err(Denial::RequestWithoutExpiry));
}

#[test]
fn only_listed_servers_when_a_list_is_set() {
    let req = request("request_allow");
    assert!(req.from_allowed_server(&[]));
    assert!(req.from_allowed_server(&["NOTHER".into(), server_nkey()]));
    assert!(!req.from_allowed_server(&["NOTHER".into()]));
}

#[test]
fn user_limits_default_and_parse() {
    assert_eq!(UserLimits::parse(None, None, None), Ok(UserLimits::DEFAULT));
    assert_eq!(
        UserLimits::parse(Some("3"), Some(" 1024 "), Some("")),
        Ok(UserLimits { subs: 3, payload: 1024, data: UserLimits::DEFAULT.data })
    );
    for bad in ["-1", "0", "many", "1.5"] {
        assert!(UserLimits::parse(Some(bad), None, None).is_err(), "{bad}");
    }
}

#[test]
fn requests_not_signed_by_a_server_key_are_refused() {
    let claims = sample("request_allow");
    // Signed by an account key that calls itself the issuer.
    let mut forged = claims.clone();
    let account = SigningKey::from_bytes(&[7; 32]);
    forged["iss"] = json!(nkey::encode_public(KeyType::Account, account.verifying_key().as_bytes()));
    assert_eq!(
        AuthRequest::verify(&jwt::encode(&forged, &account)).unwrap_err(),
        RequestError::Jwt(JwtError::BadIssuer)
    );
    // Claims to be our server, signed by someone else.
    let mut impostor = claims.clone();
    impostor["iss"] = json!(server_nkey());
    impostor["nats"]["server_id"]["id"] = json!(server_nkey());
    let signed = jwt::encode(&impostor, &SigningKey::from_bytes(&[8; 32]));
    assert_eq!(AuthRequest::verify(&signed).unwrap_err(), RequestError::Jwt(JwtError::BadSignature));
    assert_eq!(AuthRequest::verify("not a jwt").unwrap_err(), RequestError::Jwt(JwtError::Malformed));
}

#[test]
fn other_claim_types_are_refused() {
    for (field, value) in [("type", json!("authorization_response")), ("version", json!(1))] {
        let mut claims = sample("request_allow");
        claims["nats"][field] = value;
        assert!(
            matches!(AuthRequest::verify(&token(claims)), Err(RequestError::NotAnAuthorizationRequest(_))),
            "{field}"
        );
    }
    let mut claims = sample("request_allow");
    claims["nats"].as_object_mut().unwrap().remove("user_nkey");
    assert!(matches!(AuthRequest::verify(&token(claims)), Err(RequestError::NotAnAuthorizationRequest(_))));
    let mut claims = sample("request_allow");
    claims["nats"]["user_nkey"] = json!(server_nkey());
    assert!(matches!(AuthRequest::verify(&token(claims)), Err(RequestError::NotAnAuthorizationRequest(_))));
    // server_id must be the signer.
    let mut claims = sample("request_allow");
    claims["iss"] = json!(server_nkey());
    let signed = jwt::encode(&claims, &server_key());
    assert!(matches!(AuthRequest::verify(&signed), Err(RequestError::NotAnAuthorizationRequest(_))));
}

#[test]
fn inbox_permissions() {
    let (publish, subscribe) = permissions("ab");
    assert_eq!(publish, ["kez.inbox.ab.>", "kez.inbox.*.ab.>"]);
    assert_eq!(subscribe, ["kez.inbox.ab.>"]);
}
