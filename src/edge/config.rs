//! The worker's configuration, read and checked once per isolate: vars and secrets cannot
//! change without a new deployment, and deriving the issuer's public key costs a scalar
//! multiplication.

use crate::api::{parse_rate_limits, Config, NatsConfig, NatsVars};
use crate::caching::CacheSettings;
use crate::error::ApiError;
use crate::lifecycle::parse_quarantine_days;
use crate::log::stored::LogKey;
use std::sync::OnceLock;
use worker::{console_error, Env};

static CONFIG: OnceLock<Result<Config, String>> = OnceLock::new();
static NATS_CONFIG: OnceLock<Result<Option<NatsConfig>, String>> = OnceLock::new();
static RATE_LIMITS: OnceLock<Result<bool, String>> = OnceLock::new();
static CACHE: OnceLock<Result<CacheSettings, String>> = OnceLock::new();
static QUARANTINE: OnceLock<Result<u32, String>> = OnceLock::new();
static LOG_KEY: OnceLock<Result<Option<LogKey>, String>> = OnceLock::new();

/// With the caching settings broken, answers are built as if caching were off.
pub const CACHE_OFF: CacheSettings = CacheSettings { ttl_seconds: 0, isolate_entries: 0 };

fn var(env: &Env, name: &str) -> Option<String> {
    env.var(name).ok().map(|v| v.to_string())
}

pub fn config(env: &Env) -> Result<&'static Config, ApiError> {
    CONFIG
        .get_or_init(|| {
            let required = |name: &str| var(env, name).ok_or(format!("{name} is not set"));
            // NOSTR_RELAYS may be left out: the app then has no relays until its user adds some.
            let relays = var(env, "NOSTR_RELAYS").unwrap_or_default();
            Config::parse(&required("SERVER_DOMAIN")?, &required("SIG_SERVER_URL")?, &relays)
        })
        .as_ref()
        .map_err(|e| ApiError::Internal(e.clone()))
}

/// `LOOKUP_CACHE_SECONDS` and `LOOKUP_CACHE_ENTRIES` (README, "Caching").
pub fn cache_settings(env: &Env) -> Result<&'static CacheSettings, ApiError> {
    CACHE
        .get_or_init(|| {
            CacheSettings::parse(
                var(env, "LOOKUP_CACHE_SECONDS").as_deref(),
                var(env, "LOOKUP_CACHE_ENTRIES").as_deref(),
            )
        })
        .as_ref()
        .map_err(|e| ApiError::Internal(e.clone()))
}

pub fn rate_limits(env: &Env) -> Result<bool, ApiError> {
    RATE_LIMITS
        .get_or_init(|| parse_rate_limits(var(env, "REGISTRATION_RATE_LIMITS").as_deref()))
        .clone()
        .map_err(ApiError::Internal)
}

pub fn nats_config(env: &Env) -> Result<&'static NatsConfig, ApiError> {
    match read_nats_config(env) {
        Ok(Some(nats)) => Ok(nats),
        Ok(None) => {
            console_error!("nats callout called, but NATS_ISSUER_SEED and NATS_BRIDGE_KEY are not both set");
            Err(ApiError::NatsNotConfigured)
        }
        Err(e) => Err(ApiError::Internal(e.clone())),
    }
}

/// `RELEASE_QUARANTINE_DAYS` (`lifecycle::parse_quarantine_days`).
pub fn quarantine_days(env: &Env) -> Result<u32, ApiError> {
    QUARANTINE
        .get_or_init(|| parse_quarantine_days(var(env, "RELEASE_QUARANTINE_DAYS").as_deref()))
        .clone()
        .map_err(ApiError::Internal)
}

/// `LOG_SIGNING_SEED` (a secret; `scripts/dev.sh` makes one locally): the key that signs the
/// log's checkpoints. Without it the log cannot grow, so registrations are refused
/// (`log_not_configured`); lookups and the log's endpoints still answer.
pub fn log_key(env: &Env) -> Result<&'static LogKey, ApiError> {
    match read_log_key(env) {
        Ok(Some(key)) => Ok(key),
        Ok(None) => {
            console_error!("LOG_SIGNING_SEED is not set: registrations are refused");
            Err(ApiError::LogNotConfigured)
        }
        Err(e) => Err(ApiError::Internal(e.clone())),
    }
}

/// The log key if it is set and valid (healthz publishes its verifier key).
pub fn log_key_if_set(env: &Env) -> Option<&'static LogKey> {
    read_log_key(env).as_ref().ok().and_then(Option::as_ref)
}

fn read_log_key(env: &Env) -> &'static Result<Option<LogKey>, String> {
    LOG_KEY.get_or_init(|| {
        let seed = env.secret("LOG_SIGNING_SEED").ok().map(|v| v.to_string()).filter(|v| !v.is_empty());
        match seed {
            None => Ok(None),
            Some(seed) => {
                let server = config(env).map_err(|e| e.log_detail().unwrap_or_default().to_owned())?.server.clone();
                LogKey::parse(&seed, &server).map(Some)
            }
        }
    })
}

fn read_nats_config(env: &Env) -> &'static Result<Option<NatsConfig>, String> {
    NATS_CONFIG.get_or_init(|| {
        // Secrets, from `wrangler secret put` (or .dev.vars / --var locally).
        let secret = |name: &str| env.secret(name).ok().map(|v| v.to_string()).filter(|v| !v.is_empty());
        let (account, ttl) = (var(env, "NATS_ACCOUNT"), var(env, "NATS_USER_JWT_TTL_SECONDS"));
        let (servers, subs, payload, data) = (
            var(env, "NATS_SERVER_KEYS"),
            var(env, "NATS_USER_SUBS"),
            var(env, "NATS_USER_PAYLOAD_BYTES"),
            var(env, "NATS_USER_DATA_BYTES"),
        );
        NatsConfig::parse(
            secret("NATS_ISSUER_SEED").as_deref(),
            secret("NATS_BRIDGE_KEY").as_deref(),
            &NatsVars {
                account: account.as_deref().unwrap_or("KEZ"),
                ttl_seconds: ttl.as_deref().unwrap_or("3600"),
                server_keys: servers.as_deref(),
                subs: subs.as_deref(),
                payload_bytes: payload.as_deref(),
                data_bytes: data.as_deref(),
            },
        )
    })
}

/// Only for the benchmark build: the NATS config if it is set.
#[cfg(feature = "bench")]
pub fn nats_config_if_set(env: &Env) -> Option<&'static NatsConfig> {
    read_nats_config(env).as_ref().ok().and_then(Option::as_ref)
}
