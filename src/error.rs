//! The API's one error type, mapped once to an HTTP status, a stable code and a sentence.

use kez_nats::callout::RequestError;
use kez_nats::jwt::JwtError;
use serde::Serialize;

/// Every way a request can fail. Client errors say what to fix; `Internal` carries
/// details for the log only, never for the response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    InvalidJson(String),
    InvalidEnvelope(String),
    BodyTooLarge {
        limit: usize,
    },
    UnsupportedEnvelope(StatementKind),
    UnsupportedPayload(StatementKind),
    KeyMismatch(StatementKind),
    UnsupportedAlgorithm,
    InvalidPrimaryKey,
    InvalidSignature,
    WrongServer {
        expected: String,
    },
    InvalidHandle,
    ReservedHandle,
    InvalidTimestamp,
    ClockSkew {
        max_seconds: i64,
    },
    HandleTaken,
    /// The handle was given up less than the quarantine ago, by another key.
    HandleQuarantined {
        days: u32,
    },
    /// A rotation or release of a handle that was given up.
    HandleReleased,
    /// A rotation or release that names a key the handle does not hold now (a wrong key, or
    /// a statement replayed after it applied).
    NotCurrentKey,
    /// A rotation or release signed before the statement in force for its handle (a replay
    /// of an older statement, within the freshness window).
    StatementSuperseded,
    /// A rotation to the key it rotates from.
    SameKey,
    /// Another registered handle looks like this one (the same skeleton).
    HandleConfusable,
    KeyAlreadyRegistered,
    UserNotFound,
    MissingResource,
    InvalidResource,
    /// The `x-kez-bookmark` request header is not a D1 bookmark.
    InvalidBookmark,
    NotFound,
    MethodNotAllowed {
        allow: &'static str,
    },
    /// The NATS callout endpoint was called without a valid bridge signature.
    Unauthorized,
    /// The body is not a verifiable NATS authorization request.
    InvalidAuthorizationRequest(String),
    /// The NATS callout secrets are not set.
    NatsNotConfigured,
    /// A callout from a NATS server not in `NATS_SERVER_KEYS`.
    UnknownNatsServer,
    /// `LOG_SIGNING_SEED` is not set: the log cannot grow, so no statement is accepted.
    LogNotConfigured,
    /// A log tile outside the tree (or a spelling tlog-tiles does not use).
    TileNotFound,
    /// Too many registrations (from one address or for one key) or statements (from one address); retry after `retry_after` seconds.
    RateLimited {
        retry_after: u32,
    },
    /// The database failed or timed out: worth retrying. The detail is for the log only.
    StorageUnavailable(String),
    Internal(String),
}

/// Seconds a client is asked to wait before retrying after `storage_unavailable`.
pub const STORAGE_RETRY_AFTER_SECONDS: u32 = 5;

impl From<RequestError> for ApiError {
    fn from(error: RequestError) -> ApiError {
        ApiError::InvalidAuthorizationRequest(match error {
            RequestError::Jwt(JwtError::Malformed) => "not an ed25519-nkey JWT".into(),
            RequestError::Jwt(JwtError::UnsupportedAlgorithm) => "the JWT algorithm is not ed25519-nkey".into(),
            RequestError::Jwt(JwtError::BadIssuer) => "the issuer is not a server nkey".into(),
            RequestError::Jwt(JwtError::BadSignature) => "the JWT signature does not verify against its issuer".into(),
            RequestError::NotAnAuthorizationRequest(detail) => detail,
        })
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'static str,
    message: &'a str,
}

/// Which signed statement a request carries (the endpoint decides): the errors that name
/// what the statement must say are worded for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatementKind {
    Registration,
    Rotation,
    Release,
}

impl StatementKind {
    fn tag(self) -> &'static str {
        match self {
            StatementKind::Registration => crate::registration::ENVELOPE_TAG,
            StatementKind::Rotation => crate::lifecycle::ROTATION_TAG,
            StatementKind::Release => crate::lifecycle::RELEASE_TAG,
        }
    }

    fn payload_type(self) -> &'static str {
        match self {
            StatementKind::Registration => crate::registration::PAYLOAD_TYPE,
            StatementKind::Rotation => crate::lifecycle::ROTATION_TYPE,
            StatementKind::Release => crate::lifecycle::RELEASE_TYPE,
        }
    }
}

impl ApiError {
    pub fn status(&self) -> u16 {
        use ApiError::*;
        match self {
            InvalidJson(_)
            | InvalidEnvelope(_)
            | UnsupportedEnvelope(_)
            | UnsupportedPayload(_)
            | KeyMismatch(_)
            | UnsupportedAlgorithm
            | InvalidPrimaryKey
            | InvalidSignature
            | WrongServer { .. }
            | InvalidHandle
            | InvalidTimestamp
            | ClockSkew { .. }
            | MissingResource
            | InvalidResource
            | InvalidBookmark
            | SameKey
            | InvalidAuthorizationRequest(_) => 400,
            Unauthorized => 401,
            ReservedHandle | UnknownNatsServer => 403,
            UserNotFound | NotFound | TileNotFound => 404,
            MethodNotAllowed { .. } => 405,
            HandleTaken
            | HandleConfusable
            | KeyAlreadyRegistered
            | HandleQuarantined { .. }
            | HandleReleased
            | NotCurrentKey
            | StatementSuperseded => 409,
            RateLimited { .. } => 429,
            BodyTooLarge { .. } => 413,
            Internal(_) => 500,
            NatsNotConfigured | LogNotConfigured | StorageUnavailable(_) => 503,
        }
    }

    /// The stable, machine-readable code. Clients branch on this, so never rename one.
    pub fn code(&self) -> &'static str {
        use ApiError::*;
        match self {
            InvalidJson(_) => "invalid_json",
            InvalidEnvelope(_) => "invalid_envelope",
            BodyTooLarge { .. } => "body_too_large",
            UnsupportedEnvelope(_) => "unsupported_envelope",
            UnsupportedPayload(_) => "unsupported_payload",
            KeyMismatch(_) => "key_mismatch",
            UnsupportedAlgorithm => "unsupported_algorithm",
            InvalidPrimaryKey => "invalid_primary_key",
            InvalidSignature => "invalid_signature",
            WrongServer { .. } => "wrong_server",
            InvalidHandle => "invalid_handle",
            ReservedHandle => "handle_reserved",
            InvalidTimestamp => "invalid_timestamp",
            ClockSkew { .. } => "clock_skew",
            HandleTaken => "handle_taken",
            HandleQuarantined { .. } => "handle_quarantined",
            HandleReleased => "handle_released",
            NotCurrentKey => "not_current_key",
            StatementSuperseded => "statement_superseded",
            SameKey => "same_key",
            HandleConfusable => "handle_confusable",
            KeyAlreadyRegistered => "key_already_registered",
            UserNotFound => "user_not_found",
            MissingResource => "missing_resource",
            InvalidResource => "invalid_resource",
            InvalidBookmark => "invalid_bookmark",
            NotFound => "not_found",
            MethodNotAllowed { .. } => "method_not_allowed",
            Unauthorized => "unauthorized",
            InvalidAuthorizationRequest(_) => "invalid_authorization_request",
            NatsNotConfigured => "nats_not_configured",
            UnknownNatsServer => "unknown_nats_server",
            LogNotConfigured => "log_not_configured",
            TileNotFound => "tile_not_found",
            StorageUnavailable(_) => "storage_unavailable",
            RateLimited { .. } => "rate_limited",
            Internal(_) => "internal_error",
        }
    }

    pub fn message(&self) -> String {
        use ApiError::*;
        match self {
            InvalidJson(detail) => format!("The request body is not valid JSON: {detail}."),
            InvalidEnvelope(detail) => format!("The envelope has the wrong shape: {detail}."),
            BodyTooLarge { limit } => format!("The request body is larger than {limit} bytes."),
            UnsupportedEnvelope(kind) => format!("The envelope's \"kez\" tag must be \"{}\" here.", kind.tag()),
            UnsupportedPayload(kind) => format!("The payload must be of type \"{}\", version 1.", kind.payload_type()),
            KeyMismatch(StatementKind::Rotation) => "A rotation needs two signatures: by the payload's old key, then by its new key.".into(),
            KeyMismatch(_) => "The signing key must be the payload's primary key.".into(),
            UnsupportedAlgorithm => "The signature algorithm must be \"ed25519-sha512-jcs\".".into(),
            InvalidPrimaryKey => "A key must be \"ed25519:\" followed by 64 lowercase hex digits of a valid Ed25519 public key.".into(),
            InvalidSignature => "A signature does not verify against its key over the JCS-canonical payload.".into(),
            WrongServer { expected } => format!("This statement is for another server; this server is \"{expected}\"."),
            InvalidHandle => "A handle is 3 to 32 characters of a-z, 0-9, \"_\" and \"-\", starting with a letter or digit.".into(),
            ReservedHandle => "This handle is reserved and cannot be registered.".into(),
            InvalidTimestamp => "\"created_at\" must be an RFC 3339 timestamp, such as 2026-01-01T12:00:00Z.".into(),
            ClockSkew { max_seconds } => format!("\"created_at\" is more than {max_seconds} seconds away from the server's clock; check your device's time and sign again."),
            HandleTaken => "This handle is already registered.".into(),
            HandleQuarantined { days } => format!("This handle was given up less than {days} days ago; only the key that held it may take it back until then."),
            HandleReleased => "This handle was given up: it has no key to rotate or release.".into(),
            NotCurrentKey => "The statement names a key this handle does not hold now: a wrong key, or a statement that already applied.".into(),
            StatementSuperseded => "The statement in force for this handle was signed after this one, or in the same millisecond (by created_at): sign a new statement.".into(),
            SameKey => "A rotation must move the handle to a different key.".into(),
            HandleConfusable => "A registered handle looks like this one (0 and o, 1, i and l, rn and m, vv and w, cl and d, 5 and s, and \"-\" and \"_\" count as the same); choose another.".into(),
            KeyAlreadyRegistered => "This primary key already has a handle on this server.".into(),
            UserNotFound => "No user with this handle is registered here.".into(),
            MissingResource => "The \"resource\" query parameter is required.".into(),
            InvalidResource => "\"resource\" must be an acct: URI such as acct:alice@example.org.".into(),
            InvalidBookmark => "The x-kez-bookmark header must be a bookmark this server returned (hex groups joined by \"-\"), or be left out.".into(),
            NotFound => "There is no such API endpoint.".into(),
            MethodNotAllowed { allow } => format!("This endpoint only allows {allow}."),
            Unauthorized => "Only the NATS bridge may call this endpoint: a fresh, valid bridge signature is required.".into(),
            InvalidAuthorizationRequest(detail) => format!("The body is not a valid NATS authorization request: {detail}."),
            NatsNotConfigured => "The NATS auth callout is not configured on this server.".into(),
            UnknownNatsServer => "This NATS server is not one this worker answers for (NATS_SERVER_KEYS).".into(),
            LogNotConfigured => "This server's transparency log has no signing key (LOG_SIGNING_SEED), so it accepts no registrations; nothing was written.".into(),
            TileNotFound => "There is no such tile in this log: see /log/checkpoint for its size, and C2SP tlog-tiles for the paths.".into(),
            RateLimited { retry_after } => {
                format!("Too many requests of this kind from this address or for this key; nothing was written. Try again in {retry_after} seconds.")
            }
            StorageUnavailable(_) => format!(
                "The directory's storage is unavailable right now. Try again in {STORAGE_RETRY_AFTER_SECONDS} seconds (a write that was made after all is then refused as made already)."
            ),
            Internal(_) => "The server hit an internal error; it has been logged.".into(),
        }
    }

    /// `{"error":"<code>","message":"<sentence>"}`. `incident` is a reference that is also
    /// written to the log next to the details, so an operator can find what a user saw.
    pub fn to_json(&self, incident: Option<&str>) -> String {
        let mut message = self.message();
        if let Some(incident) = incident {
            message = format!("{message} Incident {incident}.");
        }
        serde_json::to_string(&ErrorBody { error: self.code(), message: &message })
            .expect("two strings always serialize")
    }

    /// Maps a storage failure to the client error it means, in one place: the database
    /// enforces uniqueness, so a lost registration race arrives here as a conflict; anything
    /// else (the database down, timing out, or without its schema) is `storage_unavailable`,
    /// never a 500.
    pub fn from_storage(detail: &str) -> ApiError {
        if detail.contains("UNIQUE constraint failed") {
            if detail.contains("registrations.primary_key") {
                return ApiError::KeyAlreadyRegistered;
            }
            if detail.contains("registrations.handle") {
                return ApiError::HandleTaken;
            }
            if detail.contains("registrations.skeleton") {
                return ApiError::HandleConfusable;
            }
        }
        ApiError::StorageUnavailable(detail.to_owned())
    }

    /// The 409 for a registration (`handle`, `key`) that lost to `holder` on their shared
    /// skeleton: the same handle is taken, the same key already registered, else they look alike.
    pub fn conflict_with(holder_handle: &str, holder_key: &str, handle: &str, key: &str) -> ApiError {
        if holder_handle == handle {
            ApiError::HandleTaken
        } else if holder_key == key {
            ApiError::KeyAlreadyRegistered
        } else {
            ApiError::HandleConfusable
        }
    }

    /// Details for the log, if any (never sent to the client).
    pub fn log_detail(&self) -> Option<&str> {
        match self {
            ApiError::Internal(detail) | ApiError::StorageUnavailable(detail) => Some(detail),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_violations_become_conflicts() {
        assert_eq!(
            ApiError::from_storage("D1_ERROR: UNIQUE constraint failed: registrations.handle: SQLITE_CONSTRAINT"),
            ApiError::HandleTaken
        );
        assert_eq!(
            ApiError::from_storage("UNIQUE constraint failed: registrations.primary_key"),
            ApiError::KeyAlreadyRegistered
        );
        assert_eq!(
            ApiError::from_storage("D1_ERROR: UNIQUE constraint failed: registrations.skeleton: SQLITE_CONSTRAINT"),
            ApiError::HandleConfusable
        );
        assert_eq!(ApiError::conflict_with("alice", "ed25519:aa", "alice", "ed25519:bb"), ApiError::HandleTaken);
        assert_eq!(
            ApiError::conflict_with("alice", "ed25519:aa", "a1ice", "ed25519:aa"),
            ApiError::KeyAlreadyRegistered
        );
        assert_eq!(ApiError::conflict_with("alice", "ed25519:aa", "a1ice", "ed25519:bb"), ApiError::HandleConfusable);
        let down = ApiError::from_storage("D1_ERROR: no such table: registrations");
        assert!(matches!(down, ApiError::StorageUnavailable(_)));
        assert_eq!((down.status(), down.code()), (503, "storage_unavailable"));
        assert!(!down.to_json(None).contains("no such table"), "details stay in the log");
    }

    #[test]
    fn internal_details_never_reach_the_body() {
        let body = ApiError::Internal("secret stack trace".into()).to_json(Some("ab12"));
        assert!(!body.contains("secret"));
        assert!(body.contains("it has been logged. Incident ab12."), "{body}");
        assert_eq!(ApiError::Internal(String::new()).status(), 500);
    }

    #[test]
    fn statement_errors_name_what_the_endpoint_takes() {
        for (kind, tag, payload_type) in [
            (StatementKind::Registration, "handle_registration", "kez.chat.handle_registration"),
            (StatementKind::Rotation, "key_rotation", "kez.chat.key_rotation"),
            (StatementKind::Release, "handle_release", "kez.chat.handle_release"),
        ] {
            let envelope = ApiError::UnsupportedEnvelope(kind);
            assert_eq!((envelope.status(), envelope.code()), (400, "unsupported_envelope"));
            assert!(envelope.message().contains(&format!("\"{tag}\"")), "{}", envelope.message());
            let payload = ApiError::UnsupportedPayload(kind);
            assert_eq!((payload.status(), payload.code()), (400, "unsupported_payload"));
            assert!(payload.message().contains(&format!("\"{payload_type}\"")), "{}", payload.message());
            assert_eq!(ApiError::KeyMismatch(kind).code(), "key_mismatch");
        }
        assert!(ApiError::KeyMismatch(StatementKind::Rotation).message().contains("old key, then by its new key"));
        assert!(ApiError::KeyMismatch(StatementKind::Release).message().contains("primary key"));
    }

    #[test]
    fn body_is_code_and_message() {
        let body: serde_json::Value = serde_json::from_str(&ApiError::HandleTaken.to_json(None)).unwrap();
        assert_eq!(body["error"], "handle_taken");
        assert_eq!(body["message"], "This handle is already registered.");
        assert_eq!(body.as_object().unwrap().len(), 2);
    }
}
