//! How lookups are cached: the settings, the `Cache-Control` of each kind of answer, strong
//! ETags and conditional requests, the read-your-writes bookmark, and the per-isolate cache
//! of positive answers. Pure, with the clock passed in; `edge::cache` is the glue.
//!
//! One staleness bound holds for every layer: an answer is served from a cache only while
//! it is younger than the TTL, counted from when it was read from D1 (`read_at_ms`), never
//! from when a layer received it. A registration never leaves a stale entry behind, because
//! only positive answers are cached on the server and a binding, once made, does not change.

use crate::domain::encode_lower_hex;
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// The request header that carries a D1 bookmark, and the response header that returns one.
pub const BOOKMARK_HEADER: &str = "x-kez-bookmark";

/// Seconds a browser or shared cache may keep a negative answer (404), at most the TTL.
pub const NEGATIVE_MAX_AGE_SECONDS: u32 = 5;

/// The per-isolate cache's byte bound (bodies and keys); its entry bound is configurable.
pub const ISOLATE_CACHE_BYTES: usize = 2 * 1024 * 1024;

const DEFAULT_TTL_SECONDS: u32 = 60;
const MAX_TTL_SECONDS: u32 = 3600;
const DEFAULT_ENTRIES: usize = 1000;
const MAX_ENTRIES: usize = 100_000;

/// `LOOKUP_CACHE_SECONDS` and `LOOKUP_CACHE_ENTRIES`, checked once per isolate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheSettings {
    /// How long a positive answer may be served after it was read: by the isolate cache, the
    /// edge cache and (`max-age`) browsers. 0 turns the server's caches off.
    pub ttl_seconds: u32,
    /// Entries of the per-isolate cache; 0 turns that layer off (the edge cache stays).
    pub isolate_entries: usize,
}

impl CacheSettings {
    pub fn parse(ttl: Option<&str>, entries: Option<&str>) -> Result<CacheSettings, String> {
        fn number<T>(name: &str, value: Option<&str>, default: T, max: T) -> Result<T, String>
        where
            T: std::str::FromStr + PartialOrd + std::fmt::Display,
        {
            match value.map(str::trim).filter(|v| !v.is_empty()) {
                None => Ok(default),
                Some(v) => v
                    .parse()
                    .ok()
                    .filter(|n| *n <= max)
                    .ok_or(format!("{name}: \"{v}\" is not a whole number 0..={max}")),
            }
        }
        Ok(CacheSettings {
            ttl_seconds: number("LOOKUP_CACHE_SECONDS", ttl, DEFAULT_TTL_SECONDS, MAX_TTL_SECONDS)?,
            isolate_entries: number("LOOKUP_CACHE_ENTRIES", entries, DEFAULT_ENTRIES, MAX_ENTRIES)?,
        })
    }

    pub fn ttl_ms(&self) -> i64 {
        i64::from(self.ttl_seconds) * 1000
    }

    /// Whether the server keeps positive answers at all (both layers).
    pub fn server_caching(&self) -> bool {
        self.ttl_seconds > 0
    }

    /// `Cache-Control` of an answer of this kind.
    pub fn cache_control(&self, kind: Freshness) -> String {
        let ttl = self.ttl_seconds;
        match kind {
            Freshness::Positive if ttl > 0 => format!("public, max-age={ttl}, stale-while-revalidate={ttl}"),
            Freshness::Negative if ttl > 0 => format!("public, max-age={}", NEGATIVE_MAX_AGE_SECONDS.min(ttl)),
            // With the TTL at 0 a client may keep the answer but must ask again (an ETag
            // answers a repeated positive lookup with a body-less 304).
            Freshness::Positive | Freshness::Negative => "no-cache".to_owned(),
            Freshness::NoStore => "no-store".to_owned(),
        }
    }
}

/// What a client and any shared cache may do with an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// A user found by a lookup or WebFinger: the TTL, then revalidation.
    Positive,
    /// 404 for a lookup: a few seconds, so a flood of lookups of a name is absorbed by
    /// browsers, yet a handle registered a moment later is soon found.
    Negative,
    /// Everything else: errors, registrations, the callout, healthz, and any answer read
    /// through a bookmark (it is for the one client that holds the bookmark).
    NoStore,
}

/// A strong ETag for a body: the first 128 bits of its SHA-256, in hex, quoted.
pub fn etag(body: &[u8]) -> String {
    format!("\"{}\"", encode_lower_hex(&Sha256::digest(body)[..16]))
}

/// Whether an `If-None-Match` header matches `etag` (RFC 9110 §13.1.2: `*`, or any listed
/// tag by the weak comparison, so `W/"x"` matches `"x"`).
pub fn none_match(if_none_match: &str, etag: &str) -> bool {
    if_none_match.trim() == "*"
        || if_none_match.split(',').map(str::trim).any(|tag| tag.strip_prefix("W/").unwrap_or(tag) == etag)
}

/// A D1 session bookmark a client sent back to read its own writes. D1's bookmarks are
/// lowercase hex groups joined by `-` (`00000040-0000000b-00005004-5f2c…`); anything else
/// is refused before it reaches D1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bookmark(String);

impl Bookmark {
    pub const MAX_LEN: usize = 128;

    pub fn parse(s: &str) -> Option<Bookmark> {
        let well_formed = (16..=Self::MAX_LEN).contains(&s.len())
            && s.split('-')
                .all(|group| !group.is_empty() && group.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
        well_formed.then(|| Bookmark(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A cached answer and when it was read from D1.
struct Slot<V> {
    value: V,
    read_at_ms: i64,
    bytes: usize,
    /// Position in the recency order (larger is more recent).
    used: u64,
}

/// The per-isolate cache of positive answers: least recently used out first, bounded in
/// entries and bytes, and nothing served past the TTL counted from the D1 read. Eviction
/// scans for the oldest use (a few thousand entries at most, about a microsecond each in
/// wasm), which costs less upload than an ordered index.
pub struct IsolateCache<V> {
    slots: HashMap<String, Slot<V>>,
    clock: u64,
    bytes: usize,
    max_entries: usize,
    max_bytes: usize,
    ttl_ms: i64,
}

impl<V> IsolateCache<V> {
    pub fn new(max_entries: usize, max_bytes: usize, ttl_ms: i64) -> IsolateCache<V> {
        IsolateCache { slots: HashMap::new(), clock: 0, bytes: 0, max_entries, max_bytes, ttl_ms }
    }

    /// The value and when it was read, if it is still fresh; an expired entry is dropped.
    pub fn get(&mut self, key: &str, now_ms: i64) -> Option<(V, i64)>
    where
        V: Clone,
    {
        // One hash of the key for a hit. (A copy is returned: a borrow returned from this
        // lookup would keep `self` borrowed on the path that removes a stale entry.)
        let slot = self.slots.get_mut(key)?;
        if now_ms - slot.read_at_ms < self.ttl_ms && now_ms >= slot.read_at_ms {
            self.clock += 1;
            slot.used = self.clock;
            return Some((slot.value.clone(), slot.read_at_ms));
        }
        self.remove(key);
        None
    }

    /// Keeps `value` (about `bytes` large), read from D1 at `read_at_ms`; evicts the least
    /// recently used entries to stay within both bounds. Too large or already stale: not kept.
    pub fn insert(&mut self, key: &str, value: V, bytes: usize, read_at_ms: i64, now_ms: i64) {
        let bytes = bytes + key.len();
        self.remove(key);
        if self.max_entries == 0 || bytes > self.max_bytes || now_ms - read_at_ms >= self.ttl_ms {
            return;
        }
        while self.slots.len() >= self.max_entries || self.bytes + bytes > self.max_bytes {
            let Some(oldest) = self.slots.iter().min_by_key(|(_, slot)| slot.used).map(|(k, _)| k.clone()) else {
                break;
            };
            self.remove(&oldest);
        }
        self.clock += 1;
        self.slots.insert(key.to_owned(), Slot { value, read_at_ms, bytes, used: self.clock });
        self.bytes += bytes;
    }

    pub fn remove(&mut self, key: &str) {
        if let Some(slot) = self.slots.remove(key) {
            self.bytes -= slot.bytes;
        }
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_default_and_bounds() {
        let defaults = CacheSettings::parse(None, None).unwrap();
        assert_eq!(defaults, CacheSettings { ttl_seconds: 60, isolate_entries: 1000 });
        assert_eq!(
            CacheSettings::parse(Some(" 0 "), Some("0")).unwrap(),
            CacheSettings { ttl_seconds: 0, isolate_entries: 0 }
        );
        assert_eq!(CacheSettings::parse(Some(""), Some("")).unwrap(), defaults);
        for (ttl, entries) in
            [(Some("-1"), None), (Some("3601"), None), (Some("1m"), None), (None, Some("100001")), (None, Some("x"))]
        {
            assert!(CacheSettings::parse(ttl, entries).is_err(), "{ttl:?} {entries:?}");
        }
    }

    #[test]
    fn cache_control_per_kind() {
        let on = CacheSettings { ttl_seconds: 60, isolate_entries: 10 };
        assert_eq!(on.cache_control(Freshness::Positive), "public, max-age=60, stale-while-revalidate=60");
        assert_eq!(on.cache_control(Freshness::Negative), "public, max-age=5");
        assert_eq!(on.cache_control(Freshness::NoStore), "no-store");
        let short = CacheSettings { ttl_seconds: 2, isolate_entries: 10 };
        assert_eq!(short.cache_control(Freshness::Negative), "public, max-age=2");
        let off = CacheSettings { ttl_seconds: 0, isolate_entries: 10 };
        assert!(!off.server_caching());
        assert_eq!(off.cache_control(Freshness::Positive), "no-cache");
        assert_eq!(off.cache_control(Freshness::Negative), "no-cache");
        assert_eq!(off.cache_control(Freshness::NoStore), "no-store");
    }

    #[test]
    fn etags_are_strong_and_follow_the_body() {
        // SHA-256("abc") = ba7816bf 8f01cfea 414140de 5dae2223 …
        assert_eq!(etag(b"abc"), "\"ba7816bf8f01cfea414140de5dae2223\"");
        assert_ne!(etag(b"abc"), etag(b"abd"));
        assert!(!etag(b"").starts_with("W/"));
    }

    #[test]
    fn if_none_match_uses_the_weak_comparison() {
        let tag = "\"ba7816bf8f01cfea414140de5dae2223\"";
        assert!(none_match(tag, tag));
        assert!(none_match("*", tag));
        assert!(none_match(&format!("\"other\", W/{tag}"), tag));
        assert!(none_match(&format!(" \"x\" ,{tag} "), tag));
        assert!(!none_match("\"other\"", tag));
        assert!(!none_match("ba7816bf8f01cfea414140de5dae2223", tag));
        assert!(!none_match("", tag));
    }

    #[test]
    fn bookmarks_are_d1_shaped() {
        let local = "00000000-00000001-00000000-00000000000000000000000000000000";
        assert_eq!(Bookmark::parse(local).unwrap().as_str(), local);
        assert!(Bookmark::parse("0000007b-0000b26e-00001538-0c3e87bb37b3db5cc52eedb93cd3b96b").is_some());
        for bad in [
            "",
            "first-primary",
            "first-unconstrained",
            "00000000-00000001-00000000-0000000000000000000000000000000G",
            "00000000--00000001-00000000-000000",
            "-00000000-00000001-00000000-000000",
            "00000000 00000001 00000000 000000",
            &"0".repeat(129),
            "0000000",
        ] {
            assert!(Bookmark::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn isolate_cache_serves_until_the_ttl_from_the_read() {
        let mut cache = IsolateCache::new(10, 1000, 60_000);
        cache.insert("u/alice", "body", 4, 1_000, 1_000);
        assert_eq!(cache.get("u/alice", 60_999), Some(("body", 1_000)));
        assert_eq!(cache.get("u/alice", 61_000), None, "expired at the TTL");
        assert!(cache.is_empty(), "an expired entry is dropped");
        // Received late (from the edge cache): its age counts, not the time it arrived.
        cache.insert("u/bob", "body", 4, 1_000, 50_000);
        assert_eq!(cache.get("u/bob", 61_000), None);
        cache.insert("u/carol", "body", 4, 1_000, 61_000);
        assert!(cache.is_empty(), "already stale: not kept");
        // A clock that went backwards never serves.
        cache.insert("u/dave", "body", 4, 5_000, 5_000);
        assert_eq!(cache.get("u/dave", 4_000), None);
    }

    #[test]
    fn isolate_cache_evicts_least_recently_used_within_both_bounds() {
        let mut cache = IsolateCache::new(3, 100, 60_000);
        for key in ["a", "b", "c"] {
            cache.insert(key, key, 9, 0, 0);
        }
        assert!(cache.get("a", 1).is_some());
        cache.insert("d", "d", 9, 0, 2);
        assert_eq!(cache.len(), 3);
        assert!(cache.get("b", 3).is_none(), "b was least recently used");
        assert!(cache.get("a", 3).is_some() && cache.get("c", 3).is_some() && cache.get("d", 3).is_some());
        assert_eq!(cache.bytes(), 30);
        // Bytes: an 85-byte entry (with its key) pushes out the two least recently used.
        cache.insert("e", "e", 84, 0, 4);
        assert_eq!(cache.len(), 2);
        assert!(cache.bytes() <= 100);
        assert!(cache.get("d", 5).is_some() && cache.get("e", 5).is_some());
        // Larger than the whole cache: not kept, nothing evicted for it.
        cache.insert("huge", "huge", 500, 0, 6);
        assert!(cache.get("huge", 6).is_none());
        assert_eq!(cache.len(), 2);
        // Replacing a key keeps the count right.
        cache.insert("d", "d2", 9, 0, 7);
        assert_eq!(cache.get("d", 7), Some(("d2", 0)));
        assert_eq!(cache.bytes(), 10 + 85);
        cache.remove("d");
        cache.remove("missing");
        assert_eq!((cache.len(), cache.bytes()), (1, 85));
    }

    #[test]
    fn isolate_cache_with_no_entries_keeps_nothing() {
        let mut cache = IsolateCache::new(0, 1000, 60_000);
        cache.insert("a", 1, 1, 0, 0);
        assert!(cache.get("a", 0).is_none());
    }
}
