//! Property tests of every parser of untrusted input: on any input, no panic; round trips
//! where there is one; and the committed corpus of nasty inputs (tests/vectors/nasty-inputs.json)
//! through each. `KEZ_FUZZ_CASES` sets the number of random cases per property (256 in the
//! test command; `scripts/fuzz.sh` runs many more).

use crate::domain::{skeleton, Fqhn, Handle, PrimaryKey, ServerDomain};
use crate::registration::{self, canonical_payload, parse_envelope};
use crate::request_url::RequestUrl;
use crate::routes::route;
use crate::timestamp::{format_rfc3339_utc, parse_rfc3339_ms};
use crate::webfinger;
use proptest::prelude::*;

fn cases() -> u32 {
    std::env::var("KEZ_FUZZ_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(256)
}

fn nasty() -> Vec<String> {
    let corpus: serde_json::Value = serde_json::from_str(include_str!("../tests/vectors/nasty-inputs.json")).unwrap();
    corpus["strings"].as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_owned()).collect()
}

/// Any string, biased towards the characters these parsers split on.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[a-z0-9_%:/?&=#@.\\-]{0,80}",
        "(acct:)?[a-zA-Z0-9_.-]{0,40}@[a-zA-Z0-9.:\\[\\]-]{0,40}",
        "ed25519(:|%3[aA])[0-9a-fA-F]{60,68}",
    ]
}

/// Every string parser, on one input: none may panic.
fn every_parser(s: &str) {
    let server = ServerDomain::parse("kez.lat").unwrap();
    let _ = Handle::parse(s);
    let _ = Handle::parse_lookup(s);
    let _ = skeleton(s);
    let _ = PrimaryKey::parse(s);
    let _ = PrimaryKey::lookup_path_segment(s);
    let _ = ServerDomain::parse(s);
    let _ = Fqhn::parse(s);
    let _ = parse_rfc3339_ms(s);
    let _ = webfinger::resolve(Some(s), &server);
    let url = RequestUrl::split(s);
    let _ = (url.origin(), url.path(), url.query_pairs().count());
    for method in ["GET", "POST", "OPTIONS", s] {
        let _ = route(method, s);
    }
    if let Ok(envelope) = parse_envelope(s.as_bytes()) {
        let _ = registration::verify(envelope, &server, 1_795_687_332_000);
    }
}

#[test]
fn the_nasty_corpus_breaks_no_parser() {
    for s in nasty() {
        every_parser(&s);
        // Also as a path and a query, where the worker meets them.
        every_parser(&format!("https://kez.lat/v1/u/{s}?resource={s}"));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn no_parser_panics(s in text()) {
        every_parser(&s);
    }

    #[test]
    fn envelope_bodies_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        if let Ok(envelope) = parse_envelope(&bytes) {
            let _ = registration::verify(envelope, &ServerDomain::parse("kez.lat").unwrap(), 0);
        }
    }

    /// A handle that parses is itself, and registration's rules are stricter than lookup's.
    #[test]
    fn handles_round_trip(s in "[a-z0-9][a-z0-9_-]{2,31}") {
        if let Ok(handle) = Handle::parse(&s) {
            prop_assert_eq!(handle.as_str(), s.as_str());
            let looked_up = Handle::parse_lookup(&s).unwrap();
            prop_assert_eq!(looked_up.as_str(), s.as_str());
            prop_assert_eq!(handle.skeleton(), skeleton(&s));
        }
    }

    /// A key's canonical text parses back to the same key.
    #[test]
    fn primary_keys_round_trip(seed in any::<[u8; 32]>()) {
        let text = format!("ed25519:{}", crate::domain::encode_lower_hex(ed25519_dalek::SigningKey::from_bytes(&seed).verifying_key().as_bytes()));
        let key = PrimaryKey::parse(&text).unwrap();
        prop_assert_eq!(key.to_string(), text.clone());
        prop_assert_eq!(PrimaryKey::lookup_path_segment(&text.replace(':', "%3A")), Some(text));
    }

    /// JCS: the canonical bytes of a payload parse back to the same payload, and are a fixed point.
    #[test]
    fn jcs_round_trips(handle in any::<String>(), primary in any::<String>(), server in any::<String>(), created_at in any::<String>(), version in any::<u64>()) {
        let payload = registration::Payload { kind: registration::PAYLOAD_TYPE.into(), version, handle, primary, server, created_at };
        let bytes = canonical_payload(&payload);
        let back: registration::Payload = serde_json::from_slice(&bytes).unwrap();
        prop_assert_eq!(canonical_payload(&back), bytes);
    }

    /// Timestamps the server writes are timestamps it reads, to the millisecond.
    #[test]
    fn timestamps_round_trip(ms in 0i64..253_402_300_799_000) {
        prop_assert_eq!(parse_rfc3339_ms(&format_rfc3339_utc(ms)), Some(ms - ms % 1000));
    }
}
