//! Property tests of every decoder of untrusted input in this crate: nkeys, JWTs, the
//! callout's authorization request, and the bridge's signature headers. On any input, no
//! panic; round trips where there is one; the committed nasty corpus through each.
//! `KEZ_FUZZ_CASES` sets the number of random cases per property.

use crate::bridge_auth::{self, ReplayGuard, Target};
use crate::callout::AuthRequest;
use crate::jwt;
use crate::nkey::{self, KeyType};
use ed25519_dalek::SigningKey;
use proptest::prelude::*;

fn cases() -> u32 {
    std::env::var("KEZ_FUZZ_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(256)
}

const TYPES: [KeyType; 3] = [KeyType::User, KeyType::Account, KeyType::Server];

fn every_decoder(s: &str) {
    for t in TYPES {
        let _ = nkey::decode_public(t, s);
        let _ = nkey::decode_seed(t, s);
        let _ = jwt::decode_verified::<serde_json::Value>(s, t);
    }
    if let Ok(request) = AuthRequest::verify(s) {
        let _ = (request.check_fresh(0), request.client_key(), request.from_allowed_server(&[]));
    }
    let key = SigningKey::from_bytes(&[9; 32]).verifying_key();
    let target = Target { method: s, path: s };
    let _ = bridge_auth::verify(&key, target, Some(s), Some(s), s.as_bytes(), 0, &mut ReplayGuard::default());
}

#[test]
fn the_nasty_corpus_breaks_no_decoder() {
    let corpus: serde_json::Value =
        serde_json::from_str(include_str!("../../../tests/vectors/nasty-inputs.json")).unwrap();
    for s in corpus["strings"].as_array().unwrap() {
        every_decoder(s.as_str().unwrap());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn no_decoder_panics(s in prop_oneof![any::<String>(), "[A-Z2-7]{0,60}", "[A-Za-z0-9_.=-]{0,200}"]) {
        every_decoder(&s);
    }

    /// A signed JWT with any claims decodes to those claims; one changed character does not verify.
    #[test]
    fn jwts_round_trip(seed in any::<[u8; 32]>(), name in any::<String>(), flip in any::<usize>()) {
        let key = SigningKey::from_bytes(&seed);
        let iss = nkey::encode_public(KeyType::Server, key.verifying_key().as_bytes());
        let claims = serde_json::json!({ "iss": iss, "name": name });
        let token = jwt::encode(&claims, &key);
        prop_assert_eq!(jwt::decode_verified::<serde_json::Value>(&token, KeyType::Server).unwrap(), claims);
        let mut bytes = token.into_bytes();
        let i = flip % bytes.len();
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        if let Ok(changed) = String::from_utf8(bytes) {
            prop_assert!(jwt::decode_verified::<serde_json::Value>(&changed, KeyType::Server).is_err() || changed.split('.').count() != 3);
        }
    }

    /// Every public key and seed encodes and decodes to itself, as its own type only.
    #[test]
    fn nkeys_round_trip(raw in any::<[u8; 32]>()) {
        for t in TYPES {
            prop_assert_eq!(nkey::decode_public(t, &nkey::encode_public(t, &raw)), Ok(raw));
            prop_assert_eq!(nkey::decode_seed(t, &nkey::encode_seed(t, &raw)), Ok(raw));
            for other in TYPES.into_iter().filter(|o| *o != t) {
                prop_assert!(nkey::decode_public(other, &nkey::encode_public(t, &raw)).is_err());
            }
        }
    }

    /// Random headers and bodies never pass the bridge check.
    #[test]
    fn forged_bridge_headers_fail(time in any::<String>(), sig in any::<String>(), body in any::<Vec<u8>>()) {
        let key = SigningKey::from_bytes(&[9; 32]).verifying_key();
        let target = Target { method: "POST", path: "/internal/nats/auth" };
        prop_assert!(bridge_auth::verify(&key, target, Some(&time), Some(&sig), &body, 0, &mut ReplayGuard::default()).is_err());
    }
}
