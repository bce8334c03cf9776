//! Lifecycle statements: `key_rotation` moves a handle to a new key, signed by the old key and
//! by the new one (so it proves the user holds the new key and was allowed by the old);
//! `handle_release` gives a handle up, signed by its key. Each is checked as a registration
//! is (the exact wire form, JCS + strict Ed25519, a fixed order, so a client always gets the
//! first thing wrong). Whether it follows the handle's current state is the database's to
//! decide, in the transaction that logs it (`edge::statements`).

use crate::domain::{ClaimedKey, Handle, HandleError, ServerDomain};
use crate::error::{ApiError, StatementKind};
use crate::registration::{
    bad_key_or_signature, claimed_signature, decode_signature, later_checks, strict_signature, EnvelopeSignature,
    PAYLOAD_VERSION, SIGNATURE_ALG,
};
use ed25519_dalek::Signature;
use serde::{Deserialize, Serialize};

pub const ROTATION_TAG: &str = "key_rotation";
pub const ROTATION_TYPE: &str = "kez.chat.key_rotation";
pub const RELEASE_TAG: &str = "handle_release";
pub const RELEASE_TYPE: &str = "kez.chat.handle_release";
pub const DAY_MS: i64 = 86_400_000;

/// A statement is about a handle already held, so only its form is checked: a name reserved
/// since it was registered (or a lookalike registered before lookalikes were refused) stays
/// its holder's to rotate or release, and the database refuses a handle the key does not hold.
const STATEMENT_HANDLE: fn(&str) -> Result<Handle, HandleError> = Handle::parse_stored;

/// `RELEASE_QUARANTINE_DAYS`: how long a given-up handle stays out of reach of other keys (its
/// own key may take it back at any time). 0 to 3650; 30 when unset.
pub fn parse_quarantine_days(value: Option<&str>) -> Result<u32, String> {
    match value.map(str::trim) {
        None | Some("") => Ok(30),
        Some(v) => v
            .parse::<u32>()
            .ok()
            .filter(|days| *days <= 3650)
            .ok_or_else(|| format!("RELEASE_QUARANTINE_DAYS: \"{v}\" is not a whole number of days from 0 to 3650")),
    }
}

/// Fields in JCS order, as for the registration: serde_json writes the canonical form.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotationEnvelope {
    pub kez: String,
    pub payload: RotationPayload,
    /// The old key's signature, then the new key's, both over the payload's JCS bytes.
    pub signatures: Vec<EnvelopeSignature>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotationPayload {
    pub created_at: String,
    pub handle: String,
    pub new: String,
    pub old: String,
    pub server: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub version: u64,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseEnvelope {
    pub kez: String,
    pub payload: ReleasePayload,
    pub signature: EnvelopeSignature,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleasePayload {
    pub created_at: String,
    pub handle: String,
    pub primary: String,
    pub server: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub version: u64,
}

/// What a statement asks of the handle's current state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// From `old` (the handle's current key) to `new` (a key with no handle).
    Rotation { old: String, new: String },
    /// The handle, held by `primary`, is given up.
    Release { primary: String },
}

impl Change {
    /// The key the handle must hold now for the statement to apply.
    pub fn current_key(&self) -> &str {
        match self {
            Change::Rotation { old, .. } => old,
            Change::Release { primary } => primary,
        }
    }
}

/// A statement that passed every check: what to apply, and the envelope to store and log.
#[derive(Debug)]
pub struct Statement {
    pub handle: Handle,
    pub change: Change,
    pub envelope_jcs: String,
    /// Its `created_at`, in Unix ms: it applies only if the statement in force (the
    /// registration, or the last rotation) was not signed later, so that a replay of an
    /// older statement, within the freshness window, cannot undo a newer one.
    pub signed_at_ms: i64,
}

/// A statement that passed every check but its signatures' equations (checked by WebCrypto in
/// the worker, `conclude`, or natively, `verify_natively`). Later checks have run too; their
/// first failure is held, since a bad signature is reported before them.
pub struct SignedStatement {
    /// Each key with its signature over `message`, in the envelope's order.
    proofs: Vec<(ClaimedKey, Signature)>,
    message: Vec<u8>,
    checked: Result<Statement, ApiError>,
}

impl SignedStatement {
    pub fn message(&self) -> &[u8] {
        &self.message
    }

    /// `(key, signature)` bytes to verify, in order.
    pub fn proofs(&self) -> impl Iterator<Item = ([u8; 32], [u8; 64])> + '_ {
        self.proofs.iter().map(|(key, sig)| (*key.as_bytes(), sig.to_bytes()))
    }

    /// What would be applied if every equation holds; `None` if a later check failed.
    pub fn pending(&self) -> Option<&Statement> {
        self.checked.as_ref().ok()
    }

    /// The statement, once each signature's equation was checked (`holds`, in order).
    pub fn conclude(self, holds: &[bool]) -> Result<Statement, ApiError> {
        if holds.len() != self.proofs.len() {
            return Err(ApiError::Internal("a statement concluded without every equation".into()));
        }
        for ((key, _), holds) in self.proofs.into_iter().zip(holds) {
            if !holds {
                return Err(bad_key_or_signature(key));
            }
        }
        self.checked
    }

    /// ed25519-dalek's strict verification of every signature.
    pub fn verify_natively(self) -> Result<Statement, ApiError> {
        let holds: Vec<bool> = self
            .proofs
            .iter()
            .map(|(key, sig)| {
                ed25519_dalek::VerifyingKey::from_bytes(key.as_bytes())
                    .is_ok_and(|key| key.verify_strict(&self.message, sig).is_ok())
            })
            .collect();
        self.conclude(&holds)
    }
}

/// A body as a rotation envelope: 400 `invalid_json`, or `invalid_envelope` for the wrong shape.
pub fn parse_rotation(body: &[u8]) -> Result<RotationEnvelope, ApiError> {
    crate::registration::parse_json(body)
}

/// A body as a release envelope: 400 `invalid_json`, or `invalid_envelope` for the wrong shape.
pub fn parse_release(body: &[u8]) -> Result<ReleaseEnvelope, ApiError> {
    crate::registration::parse_json(body)
}

/// A rotation's checks in the contract's order, all but the equations.
pub fn check_rotation(
    envelope: RotationEnvelope,
    server: &ServerDomain,
    now_ms: i64,
) -> Result<SignedStatement, ApiError> {
    if envelope.kez != ROTATION_TAG {
        return Err(ApiError::UnsupportedEnvelope(StatementKind::Rotation));
    }
    let p = &envelope.payload;
    if p.kind != ROTATION_TYPE || p.version != PAYLOAD_VERSION {
        return Err(ApiError::UnsupportedPayload(StatementKind::Rotation));
    }
    let [by_old, by_new] = &envelope.signatures[..] else {
        return Err(ApiError::KeyMismatch(StatementKind::Rotation));
    };
    if by_old.key != p.old || by_new.key != p.new {
        return Err(ApiError::KeyMismatch(StatementKind::Rotation));
    }
    if by_old.alg != SIGNATURE_ALG || by_new.alg != SIGNATURE_ALG {
        return Err(ApiError::UnsupportedAlgorithm);
    }
    let old = ClaimedKey::parse(&p.old).map_err(|_| ApiError::InvalidPrimaryKey)?;
    let new = ClaimedKey::parse(&p.new).map_err(|_| ApiError::InvalidPrimaryKey)?;
    if old == new {
        return Err(ApiError::SameKey);
    }
    let mut proofs = Vec::with_capacity(2);
    for (key, signature) in [(old, by_old), (new, by_new)] {
        let Some(signature) = decode_signature(&signature.sig).filter(strict_signature) else {
            return Err(bad_key_or_signature(key));
        };
        proofs.push((key, signature));
    }
    let message = serde_json::to_vec(p).expect("strings and integers always serialize");
    let checked = later_checks(server, &p.server, &p.handle, STATEMENT_HANDLE, &p.created_at, now_ms).map(
        |(handle, signed_at_ms)| Statement {
            handle,
            change: Change::Rotation { old: p.old.clone(), new: p.new.clone() },
            envelope_jcs: serde_json::to_string(&envelope).expect("strings and integers always serialize"),
            signed_at_ms,
        },
    );
    Ok(SignedStatement { proofs, message, checked })
}

/// A release's checks in the contract's order, all but the equation.
pub fn check_release(
    envelope: ReleaseEnvelope,
    server: &ServerDomain,
    now_ms: i64,
) -> Result<SignedStatement, ApiError> {
    if envelope.kez != RELEASE_TAG {
        return Err(ApiError::UnsupportedEnvelope(StatementKind::Release));
    }
    let p = &envelope.payload;
    if p.kind != RELEASE_TYPE || p.version != PAYLOAD_VERSION {
        return Err(ApiError::UnsupportedPayload(StatementKind::Release));
    }
    if envelope.signature.key != p.primary {
        return Err(ApiError::KeyMismatch(StatementKind::Release));
    }
    if envelope.signature.alg != SIGNATURE_ALG {
        return Err(ApiError::UnsupportedAlgorithm);
    }
    let (primary, signature) = claimed_signature(&p.primary, &envelope.signature.sig)?;
    let message = serde_json::to_vec(p).expect("strings and integers always serialize");
    let checked = later_checks(server, &p.server, &p.handle, STATEMENT_HANDLE, &p.created_at, now_ms).map(
        |(handle, signed_at_ms)| Statement {
            handle,
            change: Change::Release { primary: p.primary.clone() },
            envelope_jcs: serde_json::to_string(&envelope).expect("strings and integers always serialize"),
            signed_at_ms,
        },
    );
    Ok(SignedStatement { proofs: vec![(primary, signature)], message, checked })
}

/// Why a statement did not apply, from the handle's row as it is now (`None`: no such handle):
/// the statement must name the handle's current key, and the handle must not be released.
pub fn refusal(change: &Change, row: Option<(&str, bool)>) -> ApiError {
    match row {
        None => ApiError::UserNotFound,
        Some((_, true)) => ApiError::HandleReleased,
        Some((current, false)) if current != change.current_key() => ApiError::NotCurrentKey,
        // It named the current key and the handle is held (the row is read in the write's own
        // transaction): the statement in force was not signed before it.
        Some(_) => ApiError::StatementSuperseded,
    }
}

#[cfg(test)]
mod tests;
