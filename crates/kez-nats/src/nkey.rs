//! NATS nkeys: base32 (RFC 4648, no padding) of a prefix byte, 32 key bytes and a
//! CRC-16/XMODEM (little-endian). Seeds carry a second prefix byte for the key type.

use data_encoding::BASE32_NOPAD;

/// The kinds of nkey the callout deals with, by their one-letter prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    /// `U`: a user (a client, the bridge, the per-connection `user_nkey`).
    User,
    /// `A`: an account (the issuer that signs callout answers).
    Account,
    /// `N`: a server (signs the callout requests).
    Server,
}

impl KeyType {
    fn prefix(self) -> u8 {
        match self {
            KeyType::User => 20 << 3,
            KeyType::Account => 0,
            KeyType::Server => 13 << 3,
        }
    }

    fn from_prefix(byte: u8) -> Option<KeyType> {
        [KeyType::User, KeyType::Account, KeyType::Server].into_iter().find(|t| t.prefix() == byte)
    }
}

const SEED_PREFIX: u8 = 18 << 3; // 'S'

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NkeyError {
    /// Not base32 of the right length, or a bad checksum.
    Malformed,
    /// A valid nkey of another type than the one expected.
    WrongType,
}

/// Encodes a 32-byte Ed25519 public key as an nkey of the given type.
pub fn encode_public(key_type: KeyType, key: &[u8; 32]) -> String {
    let mut raw = Vec::with_capacity(35);
    raw.push(key_type.prefix());
    raw.extend_from_slice(key);
    push_crc(&mut raw);
    BASE32_NOPAD.encode(&raw)
}

/// Decodes a public nkey, which must be of `expected` type.
pub fn decode_public(expected: KeyType, nkey: &str) -> Result<[u8; 32], NkeyError> {
    let raw = checked_raw(nkey, 35)?;
    if KeyType::from_prefix(raw[0]) != Some(expected) {
        return Err(NkeyError::WrongType);
    }
    Ok(raw[1..33].try_into().expect("35 bytes checked"))
}

/// Encodes a 32-byte Ed25519 seed as an nkey seed (`SU…`, `SA…`).
pub fn encode_seed(key_type: KeyType, seed: &[u8; 32]) -> String {
    let prefix = key_type.prefix();
    let mut raw = Vec::with_capacity(36);
    raw.push(SEED_PREFIX | prefix >> 5);
    raw.push((prefix & 31) << 3);
    raw.extend_from_slice(seed);
    push_crc(&mut raw);
    BASE32_NOPAD.encode(&raw)
}

/// Decodes an nkey seed, which must be of `expected` type, to its 32 Ed25519 seed bytes.
pub fn decode_seed(expected: KeyType, seed: &str) -> Result<[u8; 32], NkeyError> {
    let raw = checked_raw(seed.trim(), 36)?;
    if raw[0] & 0xf8 != SEED_PREFIX {
        return Err(NkeyError::WrongType);
    }
    let prefix = (raw[0] & 7) << 5 | (raw[1] & 0xf8) >> 3;
    if KeyType::from_prefix(prefix) != Some(expected) {
        return Err(NkeyError::WrongType);
    }
    Ok(raw[2..34].try_into().expect("36 bytes checked"))
}

fn checked_raw(text: &str, len: usize) -> Result<Vec<u8>, NkeyError> {
    let raw = BASE32_NOPAD.decode(text.as_bytes()).map_err(|_| NkeyError::Malformed)?;
    if raw.len() != len {
        return Err(NkeyError::Malformed);
    }
    let (body, crc) = raw.split_at(len - 2);
    if crc16(body).to_le_bytes() != crc {
        return Err(NkeyError::Malformed);
    }
    Ok(raw)
}

fn push_crc(raw: &mut Vec<u8>) {
    let crc = crc16(raw);
    raw.extend_from_slice(&crc.to_le_bytes());
}

/// CRC-16/XMODEM (polynomial 0x1021, initial 0).
fn crc16(data: &[u8]) -> u16 {
    data.iter().fold(0u16, |mut crc, &byte| {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 { crc << 1 ^ 0x1021 } else { crc << 1 };
        }
        crc
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Keys seen in real traffic from nats-server 2.15.1 (../shared/notes/nats-samples).
    const SERVER: &str = "NARYLX6TM2IZ46GLSVFAEPPPGCWHPWW5HEYIGDP3VRLUZ5AYT7PCPP5X";
    const ISSUER: &str = "ADAUJL6BHWYVJNO4E27DF23P7QXS3JKJHAAILHEBLTM5VSBUJ3TGCOEX";
    const CLIENT: &str = "UBG3CTAUMTCGPEQWPZRPIT7W3GP5RSC6NDTMIM5D4ZHAAF4YGNSOEKO2";
    const CLIENT_HEX: &str = "4db14c1464c46792167e62f44ff6d99fd8c85e68e6c433a3e64e0017983364e2";

    #[test]
    fn decodes_real_keys_and_round_trips() {
        for (key_type, nkey) in [(KeyType::Server, SERVER), (KeyType::Account, ISSUER), (KeyType::User, CLIENT)] {
            let raw = decode_public(key_type, nkey).unwrap();
            assert_eq!(encode_public(key_type, &raw), nkey);
        }
    }

    #[test]
    fn a_kez_key_is_a_user_nkey() {
        // The user claims of that sample grant the inbox of this hex key to this nkey.
        let raw = decode_public(KeyType::User, CLIENT).unwrap();
        let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, CLIENT_HEX);
    }

    #[test]
    fn rejects_wrong_types_and_corruption() {
        assert_eq!(decode_public(KeyType::User, SERVER), Err(NkeyError::WrongType));
        assert_eq!(decode_public(KeyType::Server, ISSUER), Err(NkeyError::WrongType));
        let mut corrupt = CLIENT.to_string();
        corrupt.replace_range(10..11, if &CLIENT[10..11] == "A" { "B" } else { "A" });
        assert_eq!(decode_public(KeyType::User, &corrupt), Err(NkeyError::Malformed));
        assert_eq!(decode_public(KeyType::User, "U"), Err(NkeyError::Malformed));
        assert_eq!(decode_public(KeyType::User, "not base32!"), Err(NkeyError::Malformed));
        assert_eq!(decode_public(KeyType::User, &CLIENT.to_lowercase()), Err(NkeyError::Malformed));
    }

    #[test]
    fn seeds_round_trip_with_their_type() {
        let seed = [7u8; 32];
        for (key_type, letter) in [(KeyType::User, "SU"), (KeyType::Account, "SA"), (KeyType::Server, "SN")] {
            let text = encode_seed(key_type, &seed);
            assert!(text.starts_with(letter), "{text}");
            assert_eq!(decode_seed(key_type, &text), Ok(seed));
            assert_eq!(decode_seed(key_type, &format!("{text}\n")), Ok(seed), "seed files end with a newline");
        }
        assert_eq!(decode_seed(KeyType::Account, &encode_seed(KeyType::User, &seed)), Err(NkeyError::WrongType));
        assert_eq!(decode_seed(KeyType::User, CLIENT), Err(NkeyError::Malformed));
    }

    #[test]
    fn crc16_xmodem_check_value() {
        assert_eq!(crc16(b"123456789"), 0x31c3);
    }
}
