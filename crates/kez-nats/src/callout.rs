//! The auth callout decision: verify nats-server's authorization request, check that the
//! client holds the key it presents, and answer with a signed allow or deny.
//!
//! The registry lookup happens between [`AuthRequest::client_key`] and the answer; it is
//! the caller's (the worker's), so this module stays pure and the clock is passed in.

use crate::jwt::{self, JwtError};
use crate::nkey::{self, KeyType, NkeyError};
use data_encoding::{BASE64, BASE64URL_NOPAD, HEXLOWER};
use ed25519_dalek::{Signature, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

/// Seconds of clock difference tolerated between nats-server and the worker when
/// checking the request's `exp` (nats-server sets it to `iat` + its auth timeout).
pub const EXPIRY_LEEWAY_SECONDS: i64 = 10;

/// The account key that signs answers and user JWTs (a secret of the worker).
pub struct Issuer {
    key: SigningKey,
    public: String,
}

impl Issuer {
    /// From an account seed (`SA…`).
    pub fn from_seed(seed: &str) -> Result<Issuer, NkeyError> {
        let key = SigningKey::from_bytes(&nkey::decode_seed(KeyType::Account, seed)?);
        let public = nkey::encode_public(KeyType::Account, key.verifying_key().as_bytes());
        Ok(Issuer { key, public })
    }

    /// The public account nkey (`A…`), for `nats.conf`'s `auth_callout.issuer`.
    pub fn public_nkey(&self) -> &str {
        &self.public
    }
}

/// Where allowed users land, for how long, and what they may use.
#[derive(Debug, Clone)]
pub struct Grant {
    /// The target account name (`aud` of the user JWT), e.g. `KEZ`.
    pub account: String,
    /// Lifetime of a user JWT. It bounds how long a removed key stays connected.
    pub ttl_seconds: i64,
    pub limits: UserLimits,
}

/// The user JWT's limits (nats-server enforces them per connection). Never -1 (unlimited):
/// every registration buys a connection, so a squatter must not buy a firehose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserLimits {
    /// Subscriptions at once. A client needs one for its inbox.
    pub subs: i64,
    /// Bytes of one message.
    pub payload: i64,
    /// Bytes in flight to the client.
    pub data: i64,
}

impl UserLimits {
    pub const DEFAULT: UserLimits = UserLimits { subs: 10, payload: 262_144, data: 4_194_304 };

    /// From `NATS_USER_SUBS`, `NATS_USER_PAYLOAD_BYTES`, `NATS_USER_DATA_BYTES`: each a positive
    /// integer, or unset for the default.
    pub fn parse(subs: Option<&str>, payload: Option<&str>, data: Option<&str>) -> Result<UserLimits, String> {
        let one = |name: &str, value: Option<&str>, default: i64| match value.map(str::trim) {
            None | Some("") => Ok(default),
            Some(v) => match v.parse::<i64>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(format!("{name}: {v:?} is not a positive integer")),
            },
        };
        Ok(UserLimits {
            subs: one("NATS_USER_SUBS", subs, Self::DEFAULT.subs)?,
            payload: one("NATS_USER_PAYLOAD_BYTES", payload, Self::DEFAULT.payload)?,
            data: one("NATS_USER_DATA_BYTES", data, Self::DEFAULT.data)?,
        })
    }
}

/// Why a request cannot be answered at all (there is nobody trustworthy to answer to).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestError {
    Jwt(JwtError),
    /// Signed, but not a version 2 authorization request with the fields we need.
    NotAnAuthorizationRequest(String),
}

/// Why a client is refused. The reason text goes back to nats-server (and its logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    RequestExpired,
    /// nats-server always sets `exp`; a request without one would stay valid for ever.
    RequestWithoutExpiry,
    NkeyRequired,
    NonceSignatureInvalid,
    /// A "nonce" that is not one nats-server makes: a signature over it (a registration, a
    /// message header) was made for another use, and proves no login.
    NonceMalformed,
    KeyNotRegistered,
}

impl Denial {
    pub fn reason(self) -> &'static str {
        match self {
            Denial::RequestExpired => "authorization request expired",
            Denial::RequestWithoutExpiry => "authorization request has no exp",
            Denial::NkeyRequired => "nkey authentication required",
            Denial::NonceSignatureInvalid => "nonce signature invalid",
            Denial::NonceMalformed => "nonce is not a nats-server nonce",
            Denial::KeyNotRegistered => "key not registered",
        }
    }
}

#[derive(Debug, Deserialize)]
struct RequestClaims {
    iss: String,
    exp: Option<i64>,
    nats: RequestNats,
}

#[derive(Debug, Deserialize)]
struct RequestNats {
    #[serde(rename = "type")]
    kind: String,
    version: u32,
    user_nkey: String,
    server_id: ServerId,
    #[serde(default)]
    client_info: ClientInfo,
    #[serde(default)]
    connect_opts: ConnectOpts,
}

#[derive(Debug, Deserialize)]
struct ServerId {
    id: String,
}

#[derive(Debug, Default, Deserialize)]
struct ClientInfo {
    nonce: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct ConnectOpts {
    nkey: Option<String>,
    sig: Option<String>,
}

/// An authorization request whose signature by a server key has been verified.
#[derive(Debug)]
pub struct AuthRequest {
    claims: RequestClaims,
}

impl AuthRequest {
    /// Verifies the request JWT: `ed25519-nkey`, signed by its `iss` server key,
    /// `authorization_request` version 2, `user_nkey` a user key, `server_id.id` = `iss`.
    pub fn verify(token: &str) -> Result<AuthRequest, RequestError> {
        let claims: RequestClaims = jwt::decode_verified(token, KeyType::Server).map_err(|e| match e {
            // Any JSON at all (read, not kept): the claims are there but not an authorization request's.
            JwtError::Malformed => match jwt::decode_verified::<serde::de::IgnoredAny>(token, KeyType::Server) {
                Ok(_) => RequestError::NotAnAuthorizationRequest("missing or mistyped claims".into()),
                Err(e) => RequestError::Jwt(e),
            },
            other => RequestError::Jwt(other),
        })?;
        let nats = &claims.nats;
        if nats.kind != "authorization_request" || nats.version != 2 {
            return Err(RequestError::NotAnAuthorizationRequest(format!(
                "type {:?} version {}",
                nats.kind, nats.version
            )));
        }
        if nkey::decode_public(KeyType::User, &nats.user_nkey).is_err() {
            return Err(RequestError::NotAnAuthorizationRequest("user_nkey is not a user nkey".into()));
        }
        if nats.server_id.id != claims.iss {
            return Err(RequestError::NotAnAuthorizationRequest("server_id.id is not the issuer".into()));
        }
        Ok(AuthRequest { claims })
    }

    /// The server that asked (`N…`).
    pub fn server_id(&self) -> &str {
        &self.claims.iss
    }

    /// The per-connection key nats-server made for this client (not the client's key).
    pub fn user_nkey(&self) -> &str {
        &self.claims.nats.user_nkey
    }

    /// Refuses requests past their `exp` (with [`EXPIRY_LEEWAY_SECONDS`]), and requests
    /// without one.
    pub fn check_fresh(&self, now_unix_seconds: i64) -> Result<(), Denial> {
        match self.claims.exp {
            None => Err(Denial::RequestWithoutExpiry),
            Some(exp) if now_unix_seconds > exp.saturating_add(EXPIRY_LEEWAY_SECONDS) => Err(Denial::RequestExpired),
            Some(_) => Ok(()),
        }
    }

    /// Whether the asking server is one of `allowed` (`N…` keys); any server when `allowed`
    /// is empty. The request is signed by its server, so this cannot be forged.
    pub fn from_allowed_server(&self, allowed: &[String]) -> bool {
        allowed.is_empty() || allowed.contains(&self.claims.iss)
    }

    /// The client's own Ed25519 key, once it has proven it holds it: its signature over
    /// the server's nonce must verify. nats-server does not check this for callout users.
    /// The nonce must look like one nats-server makes (what the project's clients alone
    /// sign, docs/PROTOCOL.md §2.1), so that a signature the key made for another use (a
    /// registration, a message header) does not pass for a login.
    pub fn client_key(&self) -> Result<[u8; 32], Denial> {
        let (Some(nkey), Some(sig), Some(nonce)) = (
            self.claims.nats.connect_opts.nkey.as_deref(),
            self.claims.nats.connect_opts.sig.as_deref(),
            self.claims.nats.client_info.nonce.as_deref(),
        ) else {
            return Err(Denial::NkeyRequired);
        };
        if !is_server_nonce(nonce) {
            return Err(Denial::NonceMalformed);
        }
        let key = nkey::decode_public(KeyType::User, nkey).map_err(|_| Denial::NkeyRequired)?;
        let verifying = VerifyingKey::from_bytes(&key).map_err(|_| Denial::NonceSignatureInvalid)?;
        // Clients send base64url without padding (Go, Rust) or standard base64 with padding (Python).
        let signature: [u8; 64] = BASE64URL_NOPAD
            .decode(sig.as_bytes())
            .or_else(|_| BASE64.decode(sig.as_bytes()))
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or(Denial::NonceSignatureInvalid)?;
        verifying
            .verify_strict(nonce.as_bytes(), &Signature::from_bytes(&signature))
            .map_err(|_| Denial::NonceSignatureInvalid)?;
        Ok(key)
    }
}

/// What nats-server's nonces look like: 11 to 64 URL-safe base64 characters (`checkNatsNonce`
/// in scripts/lib/nats.mjs, the rule the project's clients sign by).
fn is_server_nonce(nonce: &str) -> bool {
    (11..=64).contains(&nonce.len()) && nonce.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The NATS subjects a client may use: `kez.inbox.<recipient-hex>.<sender-hex>.<...>`.
/// It reads only its own inbox, and writes to any inbox but only under its own sender token.
pub fn permissions(own_hex: &str) -> (Vec<String>, Vec<String>) {
    let publish = vec![format!("kez.inbox.{own_hex}.>"), format!("kez.inbox.*.{own_hex}.>")];
    let subscribe = vec![format!("kez.inbox.{own_hex}.>")];
    (publish, subscribe)
}

#[derive(Serialize)]
struct Allow {
    allow: Vec<String>,
}

#[derive(Serialize)]
struct UserNats {
    #[serde(rename = "pub")]
    publish: Allow,
    #[serde(rename = "sub")]
    subscribe: Allow,
    subs: i64,
    data: i64,
    payload: i64,
    #[serde(rename = "type")]
    kind: &'static str,
    version: u32,
}

#[derive(Serialize)]
struct UserClaims<'a> {
    aud: &'a str,
    exp: i64,
    iat: i64,
    iss: &'a str,
    jti: String,
    name: &'a str,
    nats: UserNats,
    sub: &'a str,
}

#[derive(Serialize)]
struct ResponseNats {
    #[serde(skip_serializing_if = "Option::is_none")]
    jwt: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'static str>,
    #[serde(rename = "type")]
    kind: &'static str,
    version: u32,
}

#[derive(Serialize)]
struct ResponseClaims<'a> {
    aud: &'a str,
    iat: i64,
    iss: &'a str,
    jti: String,
    nats: ResponseNats,
    sub: &'a str,
}

/// Lets the client in as `handle`, with the inbox permissions of its key.
pub fn allow(
    request: &AuthRequest,
    handle: &str,
    client_key: &[u8; 32],
    issuer: &Issuer,
    grant: &Grant,
    now: i64,
) -> String {
    let (publish, subscribe) = permissions(&HEXLOWER.encode(client_key));
    let mut user = UserClaims {
        aud: &grant.account,
        exp: now + grant.ttl_seconds,
        iat: now,
        iss: &issuer.public,
        jti: String::new(),
        name: handle,
        nats: UserNats {
            publish: Allow { allow: publish },
            subscribe: Allow { allow: subscribe },
            subs: grant.limits.subs,
            data: grant.limits.data,
            payload: grant.limits.payload,
            kind: "user",
            version: 2,
        },
        sub: request.user_nkey(),
    };
    user.jti = jwt::jti_for(&user);
    let user_jwt = jwt::encode(&user, &issuer.key);
    respond(
        request,
        ResponseNats { jwt: Some(user_jwt), error: None, kind: "authorization_response", version: 2 },
        issuer,
        now,
    )
}

/// Refuses the client, saying why.
pub fn deny(request: &AuthRequest, denial: Denial, issuer: &Issuer, now: i64) -> String {
    respond(
        request,
        ResponseNats { jwt: None, error: Some(denial.reason()), kind: "authorization_response", version: 2 },
        issuer,
        now,
    )
}

fn respond(request: &AuthRequest, nats: ResponseNats, issuer: &Issuer, now: i64) -> String {
    let mut claims = ResponseClaims {
        aud: request.server_id(),
        iat: now,
        iss: &issuer.public,
        jti: String::new(),
        nats,
        sub: request.user_nkey(),
    };
    claims.jti = jwt::jti_for(&claims);
    jwt::encode(&claims, &issuer.key)
}

#[cfg(test)]
mod tests;
