//! A KEZ primary key: `ed25519:<64 lowercase hex>`.

use ed25519_dalek::VerifyingKey;
use std::fmt;

const PREFIX: &str = "ed25519:";

/// Why a string is not a primary key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrimaryKeyError {
    /// Not `ed25519:` followed by 64 lowercase hex digits.
    Malformed,
    /// Well formed, but not a usable Ed25519 public key (not a curve point, or of small order).
    NotAPublicKey,
}

/// An Ed25519 public key in its one canonical text form. Lowercase only: the text
/// is the registry's unique key, so two spellings of one key must not both exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrimaryKey {
    bytes: [u8; 32],
}

/// A key in its text form and not of small order, not yet known to be a curve point. A
/// signature that verifies with it proves it is one (the equation decodes it), so a
/// registration decodes it (a field square root) only when something failed, to tell a bad
/// key from a bad signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedKey {
    bytes: [u8; 32],
}

impl ClaimedKey {
    pub fn parse(s: &str) -> Result<ClaimedKey, PrimaryKeyError> {
        let hex = s.strip_prefix(PREFIX).ok_or(PrimaryKeyError::Malformed)?;
        let bytes: [u8; 32] =
            decode_lower_hex(hex).and_then(|v| v.try_into().ok()).ok_or(PrimaryKeyError::Malformed)?;
        if is_small_order_encoding(&bytes) {
            return Err(PrimaryKeyError::NotAPublicKey);
        }
        Ok(ClaimedKey { bytes })
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.bytes
    }

    /// The key, if it is a curve point.
    pub fn decode(self) -> Option<PrimaryKey> {
        VerifyingKey::from_bytes(&self.bytes).is_ok().then_some(PrimaryKey { bytes: self.bytes })
    }

    /// The key, once a signature verified with it: the equation decoded it as a point.
    pub fn verified(self) -> PrimaryKey {
        PrimaryKey { bytes: self.bytes }
    }
}

impl fmt::Display for ClaimedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PREFIX}{}", encode_lower_hex(&self.bytes))
    }
}

/// The y coordinates (little-endian, sign bit clear) of the points of small order, as they
/// can be encoded: 0 (order 4), 1 (order 1), the two of order 8, and p − 1 (order 2), plus
/// p and p + 1, the other spellings of 0 and 1. Either sign bit: each y names ±x. (The list
/// libsodium refuses; a test derives it from the curve.)
pub(crate) const SMALL_ORDER_Y: [[u8; 32]; 7] = [
    hex32("0000000000000000000000000000000000000000000000000000000000000000"),
    hex32("0100000000000000000000000000000000000000000000000000000000000000"),
    hex32("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"),
    hex32("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"),
    hex32("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
    hex32("edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
    hex32("eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
];

/// Whether 32 bytes encode a point of small order (in any spelling), without decoding them.
pub(crate) fn is_small_order_encoding(encoding: &[u8; 32]) -> bool {
    let mut y = *encoding;
    y[31] &= 0x7f;
    SMALL_ORDER_Y.contains(&y)
}

const fn hex32(hex: &str) -> [u8; 32] {
    const fn nibble(c: u8) -> u8 {
        match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => panic!("not lowercase hex"),
        }
    }
    let hex = hex.as_bytes();
    assert!(hex.len() == 64);
    let mut bytes = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        bytes[i] = nibble(hex[2 * i]) << 4 | nibble(hex[2 * i + 1]);
        i += 1;
    }
    bytes
}

impl PrimaryKey {
    /// The text form, a key not of small order, and a curve point.
    pub fn parse(s: &str) -> Result<PrimaryKey, PrimaryKeyError> {
        ClaimedKey::parse(s)?.decode().ok_or(PrimaryKeyError::NotAPublicKey)
    }

    /// The hex digits of a key in its canonical text form, without decoding the curve point:
    /// for keys that were fully parsed when they were stored.
    pub fn stored_hex(s: &str) -> Option<&str> {
        s.strip_prefix(PREFIX).filter(|hex| hex.len() == 64 && decode_lower_hex(hex).is_some())
    }

    /// The stored form of a key as it appears in a lookup path, where the `:` may arrive
    /// percent-encoded (`ed25519%3A…`); `None` unless it is then `ed25519:` + 64 lowercase hex.
    pub fn lookup_path_segment(raw: &str) -> Option<String> {
        let primary = match raw.get(..10) {
            Some(prefix) if prefix.eq_ignore_ascii_case("ed25519%3a") => format!("{PREFIX}{}", &raw[10..]),
            _ => raw.to_owned(),
        };
        PrimaryKey::stored_hex(&primary)?;
        Some(primary)
    }

    /// The 64 lowercase hex digits, without the `ed25519:` prefix.
    pub fn hex(&self) -> String {
        encode_lower_hex(&self.bytes)
    }
}

impl fmt::Display for PrimaryKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PREFIX}{}", self.hex())
    }
}

/// Decodes lowercase hex only; `None` for odd length, uppercase or other characters.
pub fn decode_lower_hex(s: &str) -> Option<Vec<u8>> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        }
    }
    let bytes = s.as_bytes();
    if bytes.len() % 2 != 0 {
        return None;
    }
    bytes.chunks_exact(2).map(|pair| Some(nibble(pair[0])? << 4 | nibble(pair[1])?)).collect()
}

pub fn encode_lower_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0x0f)] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 8032 section 7.1, test 1 public key.
    const RFC8032_PK: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";

    #[test]
    fn parses_and_prints_round_trip() {
        let text = format!("ed25519:{RFC8032_PK}");
        let key = PrimaryKey::parse(&text).unwrap();
        assert_eq!(key.to_string(), text);
        assert_eq!(key.hex(), RFC8032_PK);
    }

    #[test]
    fn rejects_malformed_text() {
        let upper = format!("ed25519:{}", RFC8032_PK.to_uppercase());
        let short = format!("ed25519:{}", &RFC8032_PK[..62]);
        let long = format!("ed25519:{RFC8032_PK}00");
        let no_prefix = RFC8032_PK.to_string();
        let other_alg = format!("x25519:{RFC8032_PK}");
        let padded = format!(" ed25519:{RFC8032_PK}");
        for bad in [upper, short, long, no_prefix, other_alg, padded, String::new()] {
            assert_eq!(PrimaryKey::parse(&bad), Err(PrimaryKeyError::Malformed), "{bad}");
        }
    }

    #[test]
    fn rejects_small_order_points() {
        // The identity point (y = 1) is a valid encoding of a point of order 1.
        let identity = format!("ed25519:01{}", "00".repeat(31));
        assert_eq!(PrimaryKey::parse(&identity), Err(PrimaryKeyError::NotAPublicKey));
    }

    #[test]
    fn stored_hex_checks_the_text_form_only() {
        assert_eq!(PrimaryKey::stored_hex(&format!("ed25519:{RFC8032_PK}")), Some(RFC8032_PK));
        assert_eq!(PrimaryKey::stored_hex(&format!("ed25519:{}", RFC8032_PK.to_uppercase())), None);
        assert_eq!(PrimaryKey::stored_hex(RFC8032_PK), None);
        assert_eq!(PrimaryKey::stored_hex("ed25519:00"), None);
    }

    #[test]
    fn hex_helpers() {
        assert_eq!(decode_lower_hex("00ff10"), Some(vec![0, 255, 16]));
        assert_eq!(decode_lower_hex("0"), None);
        assert_eq!(decode_lower_hex("FF"), None);
        assert_eq!(decode_lower_hex("zz"), None);
        assert_eq!(encode_lower_hex(&[0, 255, 16]), "00ff10");
    }
}
