//! How the bridge proves a request to the worker is its own: an Ed25519 signature over
//! the time and the SHA-256 of the body, checked against the bridge's public key.
//! The worker stores only that public key; nothing secret sits in its configuration.

use data_encoding::{BASE64URL_NOPAD, HEXLOWER};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

/// Unix seconds at which the bridge signed.
pub const TIME_HEADER: &str = "x-kez-bridge-time";
/// base64url (no padding) Ed25519 signature over [`signed_message`].
pub const SIGNATURE_HEADER: &str = "x-kez-bridge-signature";
/// How far the signing time may be from the worker's clock, either way.
pub const MAX_SKEW_SECONDS: i64 = 60;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BridgeAuthError {
    Missing,
    Stale,
    BadSignature,
}

/// `kez-nats-bridge-v1\n<unix seconds>\n<hex sha256 of body>`.
pub fn signed_message(unix_seconds: i64, body: &[u8]) -> Vec<u8> {
    format!("kez-nats-bridge-v1\n{unix_seconds}\n{}", HEXLOWER.encode(&Sha256::digest(body))).into_bytes()
}

/// The signature header value for a body sent at `unix_seconds`.
pub fn sign(key: &SigningKey, unix_seconds: i64, body: &[u8]) -> String {
    BASE64URL_NOPAD.encode(&key.sign(&signed_message(unix_seconds, body)).to_bytes())
}

/// Checks the two headers of a request against the bridge's public key.
pub fn verify(
    bridge: &VerifyingKey,
    time_header: Option<&str>,
    signature_header: Option<&str>,
    body: &[u8],
    now_unix_seconds: i64,
) -> Result<(), BridgeAuthError> {
    let (Some(time), Some(signature)) = (time_header, signature_header) else {
        return Err(BridgeAuthError::Missing);
    };
    let time: i64 = time.trim().parse().map_err(|_| BridgeAuthError::Missing)?;
    if time.abs_diff(now_unix_seconds) > MAX_SKEW_SECONDS.unsigned_abs() {
        return Err(BridgeAuthError::Stale);
    }
    let signature: [u8; 64] = BASE64URL_NOPAD
        .decode(signature.trim().as_bytes())
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or(BridgeAuthError::BadSignature)?;
    bridge
        .verify_strict(&signed_message(time, body), &Signature::from_bytes(&signature))
        .map_err(|_| BridgeAuthError::BadSignature)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_795_687_332;

    fn bridge() -> SigningKey {
        SigningKey::from_bytes(&[9; 32])
    }

    #[test]
    fn accepts_its_own_signature_within_the_window() {
        for at in [NOW, NOW - 60, NOW + 60] {
            let sig = sign(&bridge(), at, b"jwt");
            assert_eq!(verify(&bridge().verifying_key(), Some(&at.to_string()), Some(&sig), b"jwt", NOW), Ok(()));
        }
    }

    #[test]
    fn refuses_missing_stale_and_forged() {
        let key = bridge().verifying_key();
        let sig = sign(&bridge(), NOW, b"jwt");
        let now = NOW.to_string();
        assert_eq!(verify(&key, None, Some(&sig), b"jwt", NOW), Err(BridgeAuthError::Missing));
        assert_eq!(verify(&key, Some(&now), None, b"jwt", NOW), Err(BridgeAuthError::Missing));
        assert_eq!(verify(&key, Some("soon"), Some(&sig), b"jwt", NOW), Err(BridgeAuthError::Missing));
        let old = sign(&bridge(), NOW - 61, b"jwt");
        assert_eq!(verify(&key, Some(&(NOW - 61).to_string()), Some(&old), b"jwt", NOW), Err(BridgeAuthError::Stale));
        // Another body, another time, another key, garbage.
        assert_eq!(verify(&key, Some(&now), Some(&sig), b"jwt2", NOW), Err(BridgeAuthError::BadSignature));
        assert_eq!(
            verify(&key, Some(&(NOW + 1).to_string()), Some(&sig), b"jwt", NOW),
            Err(BridgeAuthError::BadSignature)
        );
        let other = sign(&SigningKey::from_bytes(&[8; 32]), NOW, b"jwt");
        assert_eq!(verify(&key, Some(&now), Some(&other), b"jwt", NOW), Err(BridgeAuthError::BadSignature));
        assert_eq!(verify(&key, Some(&now), Some("AAAA"), b"jwt", NOW), Err(BridgeAuthError::BadSignature));
    }
}
