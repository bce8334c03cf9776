//! Handle registration: the signed envelope, and the checks that make it a registration.
//!
//! The signature is Ed25519 over the RFC 8785 (JCS) canonical bytes of `payload`.
//! The checks run in a fixed order, so a client always gets the first thing wrong.

use crate::api::UserRecord;
use crate::domain::is_small_order_encoding;
use crate::domain::{decode_lower_hex, ClaimedKey, Handle, HandleError, PrimaryKey, ServerDomain};
use crate::error::{ApiError, StatementKind};
use crate::timestamp::parse_rfc3339_ms;
use curve25519_dalek::Scalar;
use ed25519_dalek::Signature;
use serde::{Deserialize, Serialize};

pub const ENVELOPE_TAG: &str = "handle_registration";
pub const PAYLOAD_TYPE: &str = "kez.chat.handle_registration";
pub const PAYLOAD_VERSION: u64 = 1;
pub const SIGNATURE_ALG: &str = "ed25519-sha512-jcs";
/// How far `created_at` may be from the server's clock, either way.
pub const MAX_CLOCK_SKEW_SECONDS: i64 = 300;
/// Request bodies larger than this are refused before parsing. A real envelope is ~500 bytes.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// The wire form. Unknown fields are refused so that what is stored is exactly what was
/// signed and checked; duplicate keys are refused by serde_json for the same reason.
///
/// Every struct declares its fields in JCS order (RFC 8785 §3.2.3: sorted by UTF-16 code
/// units; here all ASCII), so serde_json writes the canonical form directly: serde_json
/// escapes strings as JCS does, and the only number is `version`, an integer checked to be 1
/// before anything is canonicalized. A test compares with serde_jcs.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    pub kez: String,
    pub payload: Payload,
    pub signature: EnvelopeSignature,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Payload {
    pub created_at: String,
    pub handle: String,
    pub primary: String,
    pub server: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub version: u64,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvelopeSignature {
    pub alg: String,
    pub key: String,
    pub sig: String,
}

/// A registration that passed every check, ready to be stored.
#[derive(Debug)]
pub struct Registration {
    pub handle: Handle,
    pub primary: PrimaryKey,
    /// The whole envelope in JCS form, kept so clients can re-verify the binding later.
    pub envelope_jcs: String,
}

/// Parses a request body as an envelope: 400 `invalid_json` for bad JSON,
/// 400 `invalid_envelope` for JSON of the wrong shape.
pub fn parse_envelope(body: &[u8]) -> Result<Envelope, ApiError> {
    parse_json(body)
}

/// A body as a statement's wire form `T`: `invalid_json`, or `invalid_envelope` for JSON of
/// the wrong shape.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        let detail = e.to_string();
        if e.is_data() {
            ApiError::InvalidEnvelope(detail)
        } else {
            ApiError::InvalidJson(detail)
        }
    })
}

/// The JCS (RFC 8785) bytes of the payload: what the signature covers, the same bytes a
/// client gets from canonicalizing the JSON it sent (see `Envelope` for why serde_json
/// writes them).
pub fn canonical_payload(payload: &Payload) -> Vec<u8> {
    serde_json::to_vec(payload).expect("strings and integers always serialize")
}

/// Runs the checks in the contract's order and returns the registration to store, with
/// ed25519-dalek's strict verification for the signature.
pub fn verify(envelope: Envelope, server: &ServerDomain, now_ms: i64) -> Result<Registration, ApiError> {
    check(envelope, server, now_ms)?.verify_natively()
}

/// An envelope that passed every check but the signature's equation: its strict rules
/// (canonical `s`, an `R` and a key not of small order) are checked; that the key is a
/// point is left to the equation, and decoded only if it fails (`ClaimedKey`).
/// The equation is checked natively by ed25519-dalek (`verify_natively`), or, in the worker,
/// by the runtime's Ed25519 (WebCrypto, `conclude`), several times faster there than Rust
/// compiled for size. Checks 5 to 7 have run too, but their first failure is held: a bad
/// signature must be reported before them.
pub struct Signed {
    primary: ClaimedKey,
    signature: Signature,
    message: Vec<u8>,
    /// The handle, the envelope's JCS form and when it says it was signed (Unix ms).
    checked: Result<(Handle, String, i64), ApiError>,
}

impl Signed {
    /// The signed bytes: the JCS form of the payload.
    pub fn message(&self) -> &[u8] {
        &self.message
    }

    pub fn signature_bytes(&self) -> [u8; 64] {
        self.signature.to_bytes()
    }

    pub fn key_bytes(&self) -> &[u8; 32] {
        self.primary.as_bytes()
    }

    pub fn primary(&self) -> &ClaimedKey {
        &self.primary
    }

    /// What would be registered if the equation holds: the handle, the envelope's JCS form
    /// and its `created_at` (Unix ms); `None` if a later check failed (its error comes from
    /// `conclude`).
    pub fn pending(&self) -> Option<(&Handle, &str, i64)> {
        self.checked.as_ref().ok().map(|(handle, jcs, signed_at_ms)| (handle, jcs.as_str(), *signed_at_ms))
    }

    /// The registration, once the equation was checked elsewhere (`equation_holds`).
    pub fn conclude(self, equation_holds: bool) -> Result<Registration, ApiError> {
        if !equation_holds {
            return Err(bad_key_or_signature(self.primary));
        }
        let (handle, envelope_jcs, _) = self.checked?;
        Ok(Registration { handle, primary: self.primary.verified(), envelope_jcs })
    }

    /// ed25519-dalek's strict verification, rules and equation.
    pub fn verify_natively(self) -> Result<Registration, ApiError> {
        let holds = ed25519_dalek::VerifyingKey::from_bytes(self.primary.as_bytes())
            .is_ok_and(|key| key.verify_strict(&self.message, &self.signature).is_ok());
        self.conclude(holds)
    }
}

/// The strict rules of a signature, beyond its equation (as `verify_strict`): `s` below the
/// group order (no malleable `s + L`), `R` not of small order. That `R` is a point at all is
/// left to the equation, which compares it byte for byte with a computed point's canonical
/// encoding (RFC 8032 §5.1.7; WebCrypto and `verify_strict` alike): decoding it here would
/// cost a field square root per registration.
pub(crate) fn strict_signature(signature: &Signature) -> bool {
    let s_canonical = bool::from(Scalar::from_canonical_bytes(*signature.s_bytes()).is_some());
    s_canonical && !is_small_order_encoding(signature.r_bytes())
}

/// Runs the checks in the contract's order, all but the signature's equation (`Signed`).
pub fn check(envelope: Envelope, server: &ServerDomain, now_ms: i64) -> Result<Signed, ApiError> {
    // (1) envelope tag
    if envelope.kez != ENVELOPE_TAG {
        return Err(ApiError::UnsupportedEnvelope(StatementKind::Registration));
    }
    let payload = &envelope.payload;
    // (2) payload type and version
    if payload.kind != PAYLOAD_TYPE || payload.version != PAYLOAD_VERSION {
        return Err(ApiError::UnsupportedPayload(StatementKind::Registration));
    }
    // (3) the signing key is the key being registered
    if envelope.signature.key != payload.primary {
        return Err(ApiError::KeyMismatch(StatementKind::Registration));
    }
    // (4) strict Ed25519 over the canonical payload
    if envelope.signature.alg != SIGNATURE_ALG {
        return Err(ApiError::UnsupportedAlgorithm);
    }
    let (primary, signature) = claimed_signature(&payload.primary, &envelope.signature.sig)?;
    let message = canonical_payload(payload);
    // (5) to (7)
    // A new name passes every rule, the reserved names and their lookalikes included.
    let checked = later_checks(server, &payload.server, &payload.handle, Handle::parse, &payload.created_at, now_ms)
        .map(|(handle, signed_at_ms)| {
            (handle, serde_json::to_string(&envelope).expect("strings and integers always serialize"), signed_at_ms)
        });
    Ok(Signed { primary, signature, message, checked })
}

/// Why a registration of `handle` by `key` lost to `holder`, the row on its skeleton (read
/// after the insert failed). A released row of the very handle outlives the write for one of
/// two reasons: another key gave it up after `cutoff` (RFC 3339; the quarantine), or its
/// release was not signed before this registration (a registration replayed to take back a
/// handle its key has since given up).
pub fn lost_to(holder: &UserRecord, handle: &str, key: &str, cutoff: &str, quarantine_days: u32) -> ApiError {
    match &holder.released_at {
        Some(released_at) if holder.handle == handle => {
            if holder.primary_key != key && released_at.as_str() > cutoff {
                ApiError::HandleQuarantined { days: quarantine_days }
            } else {
                ApiError::StatementSuperseded
            }
        }
        _ => ApiError::conflict_with(&holder.handle, &holder.primary_key, handle, key),
    }
}

/// Check 4 for one signature, all but its equation: its key parses, and the signature decodes
/// and follows the strict rules. A failure names the key if it is no curve point.
pub(crate) fn claimed_signature(key: &str, sig: &str) -> Result<(ClaimedKey, Signature), ApiError> {
    let key = ClaimedKey::parse(key).map_err(|_| ApiError::InvalidPrimaryKey)?;
    match decode_signature(sig).filter(strict_signature) {
        Some(signature) => Ok((key, signature)),
        None => Err(bad_key_or_signature(key)),
    }
}

/// Checks 5 to 7, the same for every statement: meant for this server, a valid handle (by
/// `handle_rule`), a fresh `created_at`.
pub(crate) fn later_checks(
    server: &ServerDomain,
    named: &str,
    handle: &str,
    handle_rule: fn(&str) -> Result<Handle, HandleError>,
    created_at: &str,
    now_ms: i64,
) -> Result<(Handle, i64), ApiError> {
    if !server.matches(named) {
        return Err(ApiError::WrongServer { expected: server.to_string() });
    }
    let handle = handle_rule(handle).map_err(|e| match e {
        HandleError::Invalid => ApiError::InvalidHandle,
        HandleError::Reserved => ApiError::ReservedHandle,
    })?;
    Ok((handle, fresh(created_at, now_ms)?))
}

/// Check 7: `created_at` is RFC 3339 and within `MAX_CLOCK_SKEW_SECONDS` of `now_ms`; the
/// time it says, in Unix ms.
pub(crate) fn fresh(created_at: &str, now_ms: i64) -> Result<i64, ApiError> {
    let created_ms = parse_rfc3339_ms(created_at).ok_or(ApiError::InvalidTimestamp)?;
    if created_ms.abs_diff(now_ms) > MAX_CLOCK_SKEW_SECONDS.unsigned_abs() * 1000 {
        return Err(ApiError::ClockSkew { max_seconds: MAX_CLOCK_SKEW_SECONDS });
    }
    Ok(created_ms)
}

/// Why a signature did not verify: its key is not a curve point (`invalid_primary_key`, the
/// earlier check in the contract's order), or else the signature is bad.
pub(crate) fn bad_key_or_signature(key: ClaimedKey) -> ApiError {
    match key.decode() {
        None => ApiError::InvalidPrimaryKey,
        Some(_) => ApiError::InvalidSignature,
    }
}

/// 128 lowercase hex digits to a signature; `None` otherwise. Lowercase only, as for
/// `primary`: the envelope is stored exactly as verified, and every client rejects other hex.
pub(crate) fn decode_signature(hex: &str) -> Option<Signature> {
    let bytes: [u8; 64] = decode_lower_hex(hex)?.try_into().ok()?;
    Some(Signature::from_bytes(&bytes))
}

#[cfg(test)]
mod tests;
