//! Response bodies and configuration of the public API, free of worker types.

use crate::domain::{Fqhn, Handle, PrimaryKey, ServerDomain};
use crate::log::stored::{LogKey, LogView};
use crate::webfinger::Subject;
use ed25519_dalek::VerifyingKey;
use kez_nats::callout::{Grant, Issuer, UserLimits};
use kez_nats::nkey::{self, KeyType};
use serde::{Deserialize, Serialize};

/// The server's configuration, checked once per request from the worker's `[vars]`.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerDomain,
    /// Base URL of the sig server, without a trailing slash.
    pub sig_server_url: String,
    /// The nostr relays the web app uses unless its user picks others.
    pub relays: Vec<String>,
}

/// `REGISTRATION_RATE_LIMITS`: `on` (the default, also when unset) or `off` (for a server that
/// limits registrations in front of the worker, and for tests that register many handles from
/// one address). How many per period is the `[[ratelimits]]` bindings' own configuration.
pub fn parse_rate_limits(value: Option<&str>) -> Result<bool, String> {
    match value.map(str::trim) {
        None | Some("") | Some("on") => Ok(true),
        Some("off") => Ok(false),
        Some(other) => Err(format!("REGISTRATION_RATE_LIMITS: \"{other}\" is neither \"on\" nor \"off\"")),
    }
}

/// At most this many default relays: each costs every client a connection.
const MAX_RELAYS: usize = 20;

impl Config {
    /// `relays` is `NOSTR_RELAYS`: ws:// or wss:// URLs separated by commas or whitespace.
    pub fn parse(server_domain: &str, sig_server_url: &str, relays: &str) -> Result<Config, String> {
        let server = ServerDomain::parse(server_domain).map_err(|e| format!("SERVER_DOMAIN: {e}"))?;
        let sig_server_url = sig_server_url.trim_end_matches('/');
        let scheme_ok = sig_server_url.starts_with("https://") || sig_server_url.starts_with("http://");
        if !scheme_ok || sig_server_url.contains(char::is_whitespace) {
            return Err(format!("SIG_SERVER_URL: \"{sig_server_url}\" is not an http(s) URL"));
        }
        let relays: Vec<String> = relays
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|r| !r.is_empty())
            .map(str::to_owned)
            .collect();
        if let Some(bad) = relays.iter().find(|r| !is_relay_url(r)) {
            return Err(format!("NOSTR_RELAYS: {bad:?} is not a ws:// or wss:// URL"));
        }
        if relays.len() > MAX_RELAYS {
            return Err(format!("NOSTR_RELAYS: {} relays, at most {MAX_RELAYS}", relays.len()));
        }
        Ok(Config { server, sig_server_url: sig_server_url.to_owned(), relays })
    }

    /// `hex` is the 64 lowercase hex digits of a primary key.
    pub fn sigchain_url(&self, hex: &str) -> String {
        format!("{}/v1/sigchains/ed25519/{hex}", self.sig_server_url)
    }
}

/// `wss://` anywhere; plain `ws://` only on this machine (the app's CSP allows no more).
fn is_relay_url(url: &str) -> bool {
    let well_formed =
        |rest: &str| !rest.is_empty() && !rest.starts_with('/') && rest.chars().all(|c| c.is_ascii_graphic());
    if let Some(rest) = url.strip_prefix("wss://") {
        return well_formed(rest);
    }
    let Some(rest) = url.strip_prefix("ws://") else { return false };
    let authority = rest.split('/').next().unwrap_or_default();
    let host = authority.rsplit_once(':').filter(|(_, port)| port.parse::<u16>().is_ok()).map_or(authority, |(h, _)| h);
    well_formed(rest) && matches!(host, "localhost" | "127.0.0.1" | "[::1]")
}

/// The NATS auth callout's configuration: the issuer account seed and the bridge's
/// public key are secrets of the worker; the rest are plain vars.
pub struct NatsConfig {
    pub issuer: Issuer,
    pub bridge_key: VerifyingKey,
    pub grant: Grant,
    /// `NATS_SERVER_KEYS`: the only servers (`N…`) whose requests are answered; any if empty.
    pub servers: Vec<String>,
}

/// The callout's plain `[vars]`, as read (unset ones `None`).
#[derive(Default)]
pub struct NatsVars<'a> {
    pub account: &'a str,
    pub ttl_seconds: &'a str,
    pub server_keys: Option<&'a str>,
    pub subs: Option<&'a str>,
    pub payload_bytes: Option<&'a str>,
    pub data_bytes: Option<&'a str>,
}

impl NatsConfig {
    /// `Ok(None)` when the two secrets are not set (the callout is then unavailable).
    pub fn parse(
        issuer_seed: Option<&str>,
        bridge_key: Option<&str>,
        vars: &NatsVars,
    ) -> Result<Option<NatsConfig>, String> {
        let (account, ttl_seconds) = (vars.account, vars.ttl_seconds);
        let (Some(issuer_seed), Some(bridge_key)) = (issuer_seed, bridge_key) else {
            return Ok(None);
        };
        let issuer = Issuer::from_seed(issuer_seed)
            .map_err(|e| format!("NATS_ISSUER_SEED is not an account seed (SA...): {e:?}"))?;
        let bridge_key = nkey::decode_public(KeyType::User, bridge_key.trim())
            .ok()
            .and_then(|raw| VerifyingKey::from_bytes(&raw).ok())
            .ok_or("NATS_BRIDGE_KEY is not a user public nkey (U...)")?;
        if account.is_empty() || account.contains(char::is_whitespace) {
            return Err(format!("NATS_ACCOUNT {account:?} is not an account name"));
        }
        let ttl_seconds: i64 = ttl_seconds
            .parse()
            .ok()
            .filter(|ttl| (1..=7 * 24 * 3600).contains(ttl))
            .ok_or(format!("NATS_USER_JWT_TTL_SECONDS {ttl_seconds:?} is not 1..604800"))?;
        let servers = vars
            .server_keys
            .unwrap_or_default()
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|k| !k.is_empty())
            .map(|k| match nkey::decode_public(KeyType::Server, k) {
                Ok(_) => Ok(k.to_owned()),
                Err(_) => Err(format!("NATS_SERVER_KEYS: {k:?} is not a server public nkey (N...)")),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let limits = UserLimits::parse(vars.subs, vars.payload_bytes, vars.data_bytes)?;
        let grant = Grant { account: account.to_owned(), ttl_seconds, limits };
        Ok(Some(NatsConfig { issuer, bridge_key, grant, servers }))
    }
}

/// The stored envelope if it looks like the JSON object the worker wrote (a cheap check
/// against hand-edited rows; the full check is the client's signature verification).
fn stored_object(envelope: &str) -> Option<&str> {
    let trimmed = envelope.trim();
    (trimmed.starts_with('{') && trimmed.ends_with('}')).then_some(trimmed)
}

/// `GET /v1/healthz`.
#[derive(Serialize)]
/// Also what the web app needs to start: the server's domain and its default relays.
pub struct Health<'a> {
    pub status: &'static str,
    pub server: &'a str,
    pub version: &'static str,
    pub relays: &'a [String],
    /// The transparency log's origin and the verifier key its checkpoints are signed with;
    /// `null` when no log key is set.
    pub log: Option<HealthLog<'a>>,
}

#[derive(Serialize)]
pub struct HealthLog<'a> {
    pub origin: &'a str,
    pub verifier_key: &'a str,
    pub checkpoint: &'static str,
}

impl<'a> Health<'a> {
    pub fn new(config: &'a Config, log: Option<&'a LogKey>) -> Health<'a> {
        Health {
            status: "ok",
            server: config.server.as_str(),
            version: env!("CARGO_PKG_VERSION"),
            relays: &config.relays,
            log: log.map(|key| HealthLog {
                origin: &key.origin,
                verifier_key: &key.verifier_key,
                checkpoint: "/log/checkpoint",
            }),
        }
    }
}

/// One row of the registry, as stored.
#[derive(Debug, Clone, Deserialize)]
pub struct UserRecord {
    pub handle: String,
    pub primary_key: String,
    pub registered_at: String,
    /// The signed statement that set the binding (a registration or a rotation, or the
    /// release of a released handle), JCS-canonical JSON.
    pub envelope: String,
    /// When the handle was given up (RFC 3339), if it was.
    #[serde(default)]
    pub released_at: Option<String>,
    /// Where the statement that set this binding is in the log, with its proof (lookups).
    #[serde(skip)]
    pub log: Option<LogView>,
}

/// Who a stored binding names, as every view shows it: all a WebFinger JRD needs.
pub struct Named {
    pub handle: String,
    pub fqhn: String,
    pub primary: String,
    pub sigchain_url: String,
}

impl Named {
    /// From a stored row's handle and key. A row that breaks the domain rules means the
    /// database was edited by hand: an error, never served. The key's text form is checked;
    /// its curve point was checked when it was registered (decoding it again on every lookup
    /// would cost more than the rest of the request).
    pub fn read(handle: &str, primary_key: &str, config: &Config) -> Result<Named, String> {
        let handle = Handle::parse_stored(handle).map_err(|e| format!("stored handle {handle:?}: {e:?}"))?;
        let hex = PrimaryKey::stored_hex(primary_key).ok_or_else(|| format!("stored key {primary_key:?}"))?;
        Ok(Named {
            fqhn: Fqhn::new(handle.clone(), config.server.clone()).to_string(),
            handle: handle.to_string(),
            sigchain_url: config.sigchain_url(hex),
            primary: primary_key.to_owned(),
        })
    }

    pub fn subject(&self) -> Subject<'_> {
        Subject { handle: &self.handle, fqhn: &self.fqhn, primary: &self.primary, sigchain_url: &self.sigchain_url }
    }
}

/// The public view of a registered user: the lookup body and the registration's 201 body.
#[derive(Debug, Serialize)]
pub struct UserView {
    pub handle: String,
    pub fqhn: String,
    pub primary: String,
    pub sigchain_url: String,
    pub registered_at: String,
    /// The log's proof that `envelope` is in the log this server signed: `null` while the
    /// statement is not yet in a signed checkpoint (docs/TRANSPARENCY.md).
    pub log: Option<LogView>,
    /// The signed registration envelope, as stored (JCS JSON), so a client can check the
    /// handle-to-key binding itself instead of trusting this server. Spliced into the body
    /// by [`UserView::to_json`] as it is: parsing it again would pull a general JSON parser
    /// (float tables included) into the worker for text it wrote itself.
    #[serde(skip)]
    pub envelope: String,
}

impl UserView {
    /// Builds the view from a stored row (its binding as `Named::read` checks it).
    pub fn from_record(record: &UserRecord, config: &Config) -> Result<UserView, String> {
        let Named { handle, fqhn, primary, sigchain_url } = Named::read(&record.handle, &record.primary_key, config)?;
        Ok(UserView {
            fqhn,
            handle,
            sigchain_url,
            primary,
            registered_at: record.registered_at.clone(),
            log: record.log.clone(),
            envelope: stored_object(&record.envelope).ok_or("stored envelope is not a JSON object")?.to_owned(),
        })
    }

    pub fn subject(&self) -> Subject<'_> {
        Subject { handle: &self.handle, fqhn: &self.fqhn, primary: &self.primary, sigchain_url: &self.sigchain_url }
    }

    /// The JSON body: the fields above, then `"envelope"` with the stored envelope.
    pub fn to_json(&self) -> String {
        let mut body = serde_json::to_string(self).expect("strings always serialize");
        body.pop(); // the closing brace
        body.reserve(self.envelope.len() + 13);
        body.push_str(",\"envelope\":");
        body.push_str(&self.envelope);
        body.push('}');
        body
    }
}

/// A given-up handle, as lookups answer it (410) and its release's 201: the release, signed
/// by the key that held the handle, with its place in the log.
#[derive(Debug, Serialize)]
pub struct ReleasedView {
    pub error: &'static str,
    pub message: &'static str,
    pub handle: String,
    pub primary: String,
    pub released_at: String,
    pub log: Option<LogView>,
    #[serde(skip)]
    pub envelope: String,
}

impl ReleasedView {
    pub fn from_record(record: &UserRecord) -> Option<ReleasedView> {
        Some(ReleasedView {
            error: "handle_released",
            message: "This handle was given up by its key; the signed release is in \"envelope\".",
            handle: record.handle.clone(),
            primary: record.primary_key.clone(),
            released_at: record.released_at.clone()?,
            log: record.log.clone(),
            envelope: stored_object(&record.envelope)?.to_owned(),
        })
    }

    /// The JSON body, `"envelope"` spliced in last as `UserView::to_json` does.
    pub fn to_json(&self) -> String {
        let mut body = serde_json::to_string(self).expect("strings always serialize");
        body.pop();
        body.push_str(",\"envelope\":");
        body.push_str(&self.envelope);
        body.push('}');
        body
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config::parse("kez.lat", "http://localhost:7878/", "wss://relay.one, wss://relay.two/path\nws://127.0.0.1:7000")
            .unwrap()
    }

    #[test]
    fn rate_limits_are_on_unless_turned_off() {
        for on in [None, Some(""), Some("on"), Some(" on ")] {
            assert_eq!(parse_rate_limits(on), Ok(true), "{on:?}");
        }
        assert_eq!(parse_rate_limits(Some("off")), Ok(false));
        for bad in ["yes", "false", "0", "OFF"] {
            assert!(parse_rate_limits(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn config_trims_and_checks() {
        assert_eq!(config().sig_server_url, "http://localhost:7878");
        assert!(Config::parse("kez.lat", "ftp://x", "").is_err());
        assert!(Config::parse("kez.lat", "localhost:7878", "").is_err());
        assert!(Config::parse("kez.lat", "https://", "").is_err());
        assert!(Config::parse("kez.lat", "https://sig kez.lat", "").is_err());
        assert!(Config::parse("", "http://localhost:7878", "").is_err());
        assert!(Config::parse("https://kez.lat", "http://localhost:7878", "").is_err());
    }

    #[test]
    fn relays_are_wss_or_loopback_ws() {
        let relays = |list: &str| Config::parse("kez.lat", "http://localhost:7878", list).map(|c| c.relays);
        for bad in ["https://relay.one", "wss://", "ws://relay.example.org", "ws://localhost.evil:80", "relay.one"] {
            assert!(relays(bad).is_err(), "{bad}");
        }
        assert!(relays(&"wss://r ".repeat(21)).is_err());
        assert_eq!(relays("ws://localhost ws://[::1]:7000/x").unwrap(), ["ws://localhost", "ws://[::1]:7000/x"]);
        assert_eq!(relays(" ").unwrap(), Vec::<String>::new());
    }

    #[test]
    fn user_view_has_the_contract_fields() {
        let record = UserRecord {
            handle: "alice".into(),
            primary_key: "ed25519:d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a".into(),
            registered_at: "2026-11-26T10:52:13Z".into(),
            envelope: r#"{"kez":"handle_registration"}"#.into(),
            released_at: None,
            log: None,
        };
        let view: serde_json::Value =
            serde_json::from_str(&UserView::from_record(&record, &config()).unwrap().to_json()).unwrap();
        assert_eq!(
            view,
            serde_json::json!({
                "handle": "alice",
                "fqhn": "alice@kez.lat",
                "primary": "ed25519:d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
                "sigchain_url": "http://localhost:7878/v1/sigchains/ed25519/d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
                "registered_at": "2026-11-26T10:52:13Z",
                "log": null,
                "envelope": {"kez": "handle_registration"},
            })
        );
        let log = LogView { index: 4, checkpoint: "c\n".into(), inclusion_proof: vec!["AA==".into()] };
        let view = UserView::from_record(&UserRecord { log: Some(log), ..record }, &config()).unwrap().to_json();
        assert!(
            view.contains(r#""log":{"index":4,"checkpoint":"c\n","inclusion_proof":["AA=="]},"envelope":"#),
            "{view}"
        );
    }

    #[test]
    fn corrupt_rows_are_not_served() {
        let good_key = "ed25519:d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
        let record = |primary_key: &str, envelope: &str| UserRecord {
            handle: "alice".into(),
            primary_key: primary_key.into(),
            registered_at: String::new(),
            envelope: envelope.into(),
            released_at: None,
            log: None,
        };
        assert!(UserView::from_record(&record("garbage", "{}"), &config()).is_err());
        assert!(UserView::from_record(&record(good_key, "[1]"), &config()).is_err());
        assert!(UserView::from_record(&record(good_key, ""), &config()).is_err());
        assert!(UserView::from_record(&record(good_key, "{}"), &config()).is_ok());
    }

    #[test]
    fn nats_config_needs_both_secrets_and_checks_them() {
        let seed = nkey::encode_seed(KeyType::Account, &[1; 32]);
        let bridge = nkey::encode_public(
            KeyType::User,
            ed25519_dalek::SigningKey::from_bytes(&[2; 32]).verifying_key().as_bytes(),
        );
        let vars = |account, ttl_seconds| NatsVars { account, ttl_seconds, ..NatsVars::default() };
        assert!(NatsConfig::parse(None, Some(&bridge), &vars("KEZ", "3600")).unwrap().is_none());
        assert!(NatsConfig::parse(Some(&seed), None, &vars("KEZ", "3600")).unwrap().is_none());
        let config = NatsConfig::parse(Some(&seed), Some(&bridge), &vars("KEZ", "3600")).unwrap().unwrap();
        assert_eq!(config.grant.ttl_seconds, 3600);
        assert_eq!(config.grant.limits, UserLimits::DEFAULT);
        assert!(config.servers.is_empty());
        assert!(config.issuer.public_nkey().starts_with('A'));
        // Keys swapped, bad lifetimes, bad account.
        assert!(NatsConfig::parse(Some(&bridge), Some(&seed), &vars("KEZ", "3600")).is_err());
        assert!(NatsConfig::parse(Some(&seed), Some(&bridge), &vars("KEZ", "0")).is_err());
        assert!(NatsConfig::parse(Some(&seed), Some(&bridge), &vars("KEZ", "1h")).is_err());
        assert!(NatsConfig::parse(Some(&seed), Some(&bridge), &vars("", "3600")).is_err());
        // Server keys and limits.
        let server = kez_nats::nkey::encode_public(KeyType::Server, &[3; 32]);
        let with =
            NatsVars { server_keys: Some(&format!("{server}, {server}")), subs: Some("2"), ..vars("KEZ", "3600") };
        let config = NatsConfig::parse(Some(&seed), Some(&bridge), &with).unwrap().unwrap();
        assert_eq!(config.servers, [server.clone(), server.clone()]);
        assert_eq!(config.grant.limits.subs, 2);
        for bad in [
            NatsVars { server_keys: Some(&bridge), ..vars("KEZ", "3600") },
            NatsVars { data_bytes: Some("-1"), ..vars("KEZ", "3600") },
        ] {
            assert!(NatsConfig::parse(Some(&seed), Some(&bridge), &bad).is_err());
        }
    }

    #[test]
    fn health_reports_server_and_version() {
        let health = serde_json::to_value(Health::new(&config(), None)).unwrap();
        assert_eq!(health["log"], serde_json::Value::Null);
        assert_eq!(health["status"], "ok");
        assert_eq!(health["server"], "kez.lat");
        assert_eq!(health["version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(
            health["relays"],
            serde_json::json!(["wss://relay.one", "wss://relay.two/path", "ws://127.0.0.1:7000"])
        );
        let key = LogKey::parse(&"01".repeat(32), &config().server).unwrap();
        let health = serde_json::to_value(Health::new(&config(), Some(&key))).unwrap();
        assert_eq!(health["log"]["origin"], "kez.lat/log");
        assert_eq!(health["log"]["verifier_key"], key.verifier_key.as_str());
        assert_eq!(health["log"]["checkpoint"], "/log/checkpoint");
    }
}
