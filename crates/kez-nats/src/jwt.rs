//! NATS JWTs: `base64url(header).base64url(claims).base64url(signature)`, signed with
//! Ed25519 by an nkey and marked `alg: ed25519-nkey` (nats-server refuses `EdDSA`).

use crate::nkey::{self, KeyType};
use data_encoding::{BASE32_NOPAD, BASE64URL_NOPAD};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub const ALG: &str = "ed25519-nkey";
const HEADER: &str = r#"{"typ":"JWT","alg":"ed25519-nkey"}"#;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtError {
    /// Not three base64url parts of a JSON header and JSON claims.
    Malformed,
    /// The header names another algorithm than `ed25519-nkey`.
    UnsupportedAlgorithm,
    /// `iss` is not an nkey of the expected type.
    BadIssuer,
    /// The signature does not verify against `iss`.
    BadSignature,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
}

#[derive(Deserialize)]
struct Issuer {
    iss: String,
}

/// Decodes a JWT whose `iss` is an nkey of `issuer_type` and verifies its signature by
/// that key. Returns the claims; trust in `iss` itself is the caller's to decide.
pub fn decode_verified<T: DeserializeOwned>(token: &str, issuer_type: KeyType) -> Result<T, JwtError> {
    let token = token.trim();
    let mut parts = token.split('.');
    let (Some(header_b64), Some(claims_b64), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed);
    };
    let signed_input = &token.as_bytes()[..header_b64.len() + 1 + claims_b64.len()];
    let decode = |part: &str| BASE64URL_NOPAD.decode(part.as_bytes()).map_err(|_| JwtError::Malformed);
    let header: Header = serde_json::from_slice(&decode(header_b64)?).map_err(|_| JwtError::Malformed)?;
    if header.alg != ALG {
        return Err(JwtError::UnsupportedAlgorithm);
    }
    let claims_json = decode(claims_b64)?;
    let Issuer { iss } = serde_json::from_slice(&claims_json).map_err(|_| JwtError::Malformed)?;
    let issuer = nkey::decode_public(issuer_type, &iss).map_err(|_| JwtError::BadIssuer)?;
    let issuer = VerifyingKey::from_bytes(&issuer).map_err(|_| JwtError::BadIssuer)?;
    let signature: [u8; 64] = decode(signature)?.try_into().map_err(|_| JwtError::Malformed)?;
    issuer.verify_strict(signed_input, &Signature::from_bytes(&signature)).map_err(|_| JwtError::BadSignature)?;
    serde_json::from_slice(&claims_json).map_err(|_| JwtError::Malformed)
}

/// Signs claims as an `ed25519-nkey` JWT.
pub fn encode<T: Serialize>(claims: &T, signer: &SigningKey) -> String {
    let claims = serde_json::to_vec(claims).expect("claims are plain structs");
    let mut token = BASE64URL_NOPAD.encode(HEADER.as_bytes());
    token.push('.');
    token.push_str(&BASE64URL_NOPAD.encode(&claims));
    let signature = signer.sign(token.as_bytes());
    token.push('.');
    token.push_str(&BASE64URL_NOPAD.encode(&signature.to_bytes()));
    token
}

/// A JWT id the way the NATS tools make it: base32 of the SHA-256 of the claims
/// serialized with an empty `jti`.
pub fn jti_for<T: Serialize>(claims_without_jti: &T) -> String {
    let json = serde_json::to_vec(claims_without_jti).expect("claims are plain structs");
    BASE32_NOPAD.encode(&Sha256::digest(&json))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn server_key() -> SigningKey {
        SigningKey::from_bytes(&[3; 32])
    }

    fn server_nkey() -> String {
        nkey::encode_public(KeyType::Server, server_key().verifying_key().as_bytes())
    }

    #[test]
    fn round_trips_and_checks_the_issuer() {
        let token = encode(&json!({"iss": server_nkey(), "x": 1}), &server_key());
        let claims: Value = decode_verified(&token, KeyType::Server).unwrap();
        assert_eq!(claims["x"], 1);
        assert_eq!(decode_verified::<Value>(&token, KeyType::Account).unwrap_err(), JwtError::BadIssuer);
    }

    #[test]
    fn header_is_ed25519_nkey() {
        let token = encode(&json!({"iss": server_nkey()}), &server_key());
        let header = BASE64URL_NOPAD.decode(token.split('.').next().unwrap().as_bytes()).unwrap();
        assert_eq!(header, HEADER.as_bytes());
    }

    #[test]
    fn refuses_other_algorithms() {
        let token = encode(&json!({"iss": server_nkey()}), &server_key());
        let eddsa = BASE64URL_NOPAD.encode(br#"{"typ":"JWT","alg":"EdDSA"}"#);
        let swapped = format!("{eddsa}.{}", token.split_once('.').unwrap().1);
        assert_eq!(decode_verified::<Value>(&swapped, KeyType::Server).unwrap_err(), JwtError::UnsupportedAlgorithm);
    }

    #[test]
    fn refuses_tampering_and_other_signers() {
        let token = encode(&json!({"iss": server_nkey(), "admin": false}), &server_key());
        let (head, rest) = token.split_once('.').unwrap();
        let sig = rest.split_once('.').unwrap().1;
        let forged_claims = BASE64URL_NOPAD.encode(json!({"iss": server_nkey(), "admin": true}).to_string().as_bytes());
        let tampered = format!("{head}.{forged_claims}.{sig}");
        assert_eq!(decode_verified::<Value>(&tampered, KeyType::Server).unwrap_err(), JwtError::BadSignature);

        // Signed by another key while claiming to be the server.
        let impostor = encode(&json!({"iss": server_nkey()}), &SigningKey::from_bytes(&[4; 32]));
        assert_eq!(decode_verified::<Value>(&impostor, KeyType::Server).unwrap_err(), JwtError::BadSignature);
    }

    #[test]
    fn refuses_malformed_tokens() {
        let token = encode(&json!({"iss": server_nkey()}), &server_key());
        for bad in [
            String::new(),
            "a.b".to_string(),
            format!("{token}.extra"),
            token.replace('.', ".="),
            "e30.e30.AAAA".to_string(),
            format!("{}.bm90IGpzb24.{}", token.split('.').next().unwrap(), token.rsplit('.').next().unwrap()),
        ] {
            assert!(decode_verified::<Value>(&bad, KeyType::Server).is_err(), "{bad}");
        }
    }

    #[test]
    fn jti_is_stable_and_content_bound() {
        let a = jti_for(&json!({"sub": "x", "jti": ""}));
        assert_eq!(a, jti_for(&json!({"sub": "x", "jti": ""})));
        assert_ne!(a, jti_for(&json!({"sub": "y", "jti": ""})));
        assert_eq!(a.len(), 52);
    }
}
