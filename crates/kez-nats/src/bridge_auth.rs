//! How the bridge proves a request to the worker is its own: an Ed25519 signature over
//! the method, the path, the time and the SHA-256 of the body, checked against the bridge's
//! public key, and accepted once. The worker stores only that public key; nothing secret
//! sits in its configuration.

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
    /// A signature already accepted within its window.
    Replayed,
}

/// The request a signature covers: a signature for one endpoint is worth nothing at another.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub method: &'a str,
    /// The URL path, without the query.
    pub path: &'a str,
}

/// `kez-nats-bridge-v2\n<METHOD>\n<path>\n<unix seconds>\n<hex sha256 of body>`.
pub fn signed_message(target: Target<'_>, unix_seconds: i64, body: &[u8]) -> Vec<u8> {
    format!(
        "kez-nats-bridge-v2\n{}\n{}\n{unix_seconds}\n{}",
        target.method.to_ascii_uppercase(),
        target.path,
        HEXLOWER.encode(&Sha256::digest(body))
    )
    .into_bytes()
}

/// The signature header value for a request sent at `unix_seconds`.
pub fn sign(key: &SigningKey, target: Target<'_>, unix_seconds: i64, body: &[u8]) -> String {
    BASE64URL_NOPAD.encode(&key.sign(&signed_message(target, unix_seconds, body)).to_bytes())
}

/// Remembers the signatures accepted within the last [`MAX_SKEW_SECONDS`] window (either way),
/// so that each is accepted once. Older ones are refused as stale anyway, so they are
/// forgotten: memory is bounded by what the bridge signs in two minutes.
/// Each signature is kept as its first 16 bytes (32 bytes an entry with its time): Ed25519
/// signatures of different messages do not share them by chance.
#[derive(Debug, Default)]
pub struct ReplayGuard {
    seen: std::collections::HashMap<u128, i64>,
}

impl ReplayGuard {
    /// Records a verified signature made at `time`; false if it was accepted before.
    pub fn first_use(&mut self, signature: &[u8; 64], time: i64, now_unix_seconds: i64) -> bool {
        self.seen.retain(|_, at| at.abs_diff(now_unix_seconds) <= MAX_SKEW_SECONDS.unsigned_abs());
        let id = u128::from_le_bytes(signature[..16].try_into().expect("16 of 64 bytes"));
        self.seen.insert(id, time).is_none()
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

/// Checks the two headers of a request against the bridge's public key and the request it
/// was sent as, then that the signature is used for the first time.
pub fn verify(
    bridge: &VerifyingKey,
    target: Target<'_>,
    time_header: Option<&str>,
    signature_header: Option<&str>,
    body: &[u8],
    now_unix_seconds: i64,
    replays: &mut ReplayGuard,
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
        .verify_strict(&signed_message(target, time, body), &Signature::from_bytes(&signature))
        .map_err(|_| BridgeAuthError::BadSignature)?;
    if !replays.first_use(&signature, time, now_unix_seconds) {
        return Err(BridgeAuthError::Replayed);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_795_687_332;

    fn bridge() -> SigningKey {
        SigningKey::from_bytes(&[9; 32])
    }

    const AUTH: Target<'static> = Target { method: "POST", path: "/internal/nats/auth" };

    fn check(
        sig: &str,
        at: i64,
        body: &[u8],
        target: Target<'_>,
        replays: &mut ReplayGuard,
    ) -> Result<(), BridgeAuthError> {
        verify(&bridge().verifying_key(), target, Some(&at.to_string()), Some(sig), body, NOW, replays)
    }

    #[test]
    fn accepts_its_own_signature_within_the_window_once() {
        let mut replays = ReplayGuard::default();
        for at in [NOW, NOW - 60, NOW + 60] {
            let sig = sign(&bridge(), AUTH, at, b"jwt");
            assert_eq!(check(&sig, at, b"jwt", AUTH, &mut replays), Ok(()));
            assert_eq!(check(&sig, at, b"jwt", AUTH, &mut replays), Err(BridgeAuthError::Replayed));
        }
        // Forgotten once outside the window, where it is refused as stale anyway.
        assert!(replays.first_use(&[1; 64], NOW, NOW));
        assert!(replays.first_use(&[2; 64], NOW + 200, NOW + 200));
        assert_eq!(replays.len(), 1);
    }

    #[test]
    fn a_signature_covers_the_method_and_the_path() {
        let mut replays = ReplayGuard::default();
        let sig = sign(&bridge(), AUTH, NOW, b"jwt");
        for other in
            [Target { method: "PUT", path: AUTH.path }, Target { method: "POST", path: "/internal/nats/other" }]
        {
            assert_eq!(check(&sig, NOW, b"jwt", other, &mut replays), Err(BridgeAuthError::BadSignature));
        }
        // Method case does not matter; the path is exact.
        assert_eq!(check(&sig, NOW, b"jwt", Target { method: "post", path: AUTH.path }, &mut replays), Ok(()));
    }

    #[test]
    fn refuses_missing_stale_and_forged() {
        let key = bridge().verifying_key();
        let mut replays = ReplayGuard::default();
        let sig = sign(&bridge(), AUTH, NOW, b"jwt");
        let now = NOW.to_string();
        let mut v =
            |time: Option<&str>, sig: Option<&str>, body: &[u8]| verify(&key, AUTH, time, sig, body, NOW, &mut replays);
        assert_eq!(v(None, Some(&sig), b"jwt"), Err(BridgeAuthError::Missing));
        assert_eq!(v(Some(&now), None, b"jwt"), Err(BridgeAuthError::Missing));
        assert_eq!(v(Some("soon"), Some(&sig), b"jwt"), Err(BridgeAuthError::Missing));
        let old = sign(&bridge(), AUTH, NOW - 61, b"jwt");
        assert_eq!(v(Some(&(NOW - 61).to_string()), Some(&old), b"jwt"), Err(BridgeAuthError::Stale));
        // Another body, another time, another key, garbage.
        assert_eq!(v(Some(&now), Some(&sig), b"jwt2"), Err(BridgeAuthError::BadSignature));
        assert_eq!(v(Some(&(NOW + 1).to_string()), Some(&sig), b"jwt"), Err(BridgeAuthError::BadSignature));
        let other = sign(&SigningKey::from_bytes(&[8; 32]), AUTH, NOW, b"jwt");
        assert_eq!(v(Some(&now), Some(&other), b"jwt"), Err(BridgeAuthError::BadSignature));
        assert_eq!(v(Some(&now), Some("AAAA"), b"jwt"), Err(BridgeAuthError::BadSignature));
    }
}
