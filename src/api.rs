//! Response bodies and configuration of the public API, free of worker types.

use crate::domain::{Fqhn, Handle, PrimaryKey, ServerDomain};
use serde::{Deserialize, Serialize};

/// The server's configuration, checked once per request from the worker's `[vars]`.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerDomain,
    /// Base URL of the sig server, without a trailing slash.
    pub sig_server_url: String,
}

impl Config {
    pub fn parse(server_domain: &str, sig_server_url: &str) -> Result<Config, String> {
        let server = ServerDomain::parse(server_domain).map_err(|e| format!("SERVER_DOMAIN: {e}"))?;
        let sig_server_url = sig_server_url.trim_end_matches('/');
        let scheme_ok = sig_server_url.starts_with("https://") || sig_server_url.starts_with("http://");
        if !scheme_ok || sig_server_url.contains(char::is_whitespace) || sig_server_url.ends_with("//") {
            return Err(format!("SIG_SERVER_URL: {sig_server_url:?} is not an http(s) URL"));
        }
        Ok(Config { server, sig_server_url: sig_server_url.to_owned() })
    }

    pub fn sigchain_url(&self, primary: &PrimaryKey) -> String {
        format!("{}/v1/sigchains/ed25519/{}", self.sig_server_url, primary.hex())
    }
}

/// `GET /v1/healthz`.
#[derive(Serialize)]
pub struct Health<'a> {
    pub status: &'static str,
    pub server: &'a str,
    pub version: &'static str,
}

impl<'a> Health<'a> {
    pub fn new(config: &'a Config) -> Health<'a> {
        Health { status: "ok", server: config.server.as_str(), version: env!("CARGO_PKG_VERSION") }
    }
}

/// One row of the registry, as stored.
#[derive(Debug, Clone, Deserialize)]
pub struct UserRecord {
    pub handle: String,
    pub primary_key: String,
    pub registered_at: String,
}

/// The public view of a registered user: the lookup body and the registration's 201 body.
#[derive(Debug, Serialize)]
pub struct UserView {
    pub handle: String,
    pub fqhn: String,
    pub primary: String,
    pub sigchain_url: String,
    pub registered_at: String,
}

impl UserView {
    /// Builds the view from a stored row. A row that breaks the domain rules means the
    /// database was edited by hand: reported as an internal error, never served.
    pub fn from_record(record: &UserRecord, config: &Config) -> Result<UserView, String> {
        let handle = Handle::parse(&record.handle).map_err(|e| format!("stored handle {:?}: {e:?}", record.handle))?;
        let primary = PrimaryKey::parse(&record.primary_key)
            .map_err(|e| format!("stored key {:?}: {e:?}", record.primary_key))?;
        Ok(UserView {
            fqhn: Fqhn::new(handle.clone(), config.server.clone()).to_string(),
            handle: handle.to_string(),
            sigchain_url: config.sigchain_url(&primary),
            primary: primary.to_string(),
            registered_at: record.registered_at.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config::parse("kez.lat", "http://localhost:7878/").unwrap()
    }

    #[test]
    fn config_trims_and_checks() {
        assert_eq!(config().sig_server_url, "http://localhost:7878");
        assert!(Config::parse("kez.lat", "ftp://x").is_err());
        assert!(Config::parse("kez.lat", "localhost:7878").is_err());
        assert!(Config::parse("", "http://localhost:7878").is_err());
        assert!(Config::parse("https://kez.lat", "http://localhost:7878").is_err());
    }

    #[test]
    fn user_view_has_the_contract_fields() {
        let record = UserRecord {
            handle: "alice".into(),
            primary_key: "ed25519:d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a".into(),
            registered_at: "2026-11-26T10:52:13Z".into(),
        };
        let view = serde_json::to_value(UserView::from_record(&record, &config()).unwrap()).unwrap();
        assert_eq!(
            view,
            serde_json::json!({
                "handle": "alice",
                "fqhn": "alice@kez.lat",
                "primary": "ed25519:d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
                "sigchain_url": "http://localhost:7878/v1/sigchains/ed25519/d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
                "registered_at": "2026-11-26T10:52:13Z",
            })
        );
    }

    #[test]
    fn corrupt_rows_are_not_served() {
        let record = UserRecord { handle: "alice".into(), primary_key: "garbage".into(), registered_at: String::new() };
        assert!(UserView::from_record(&record, &config()).is_err());
    }

    #[test]
    fn health_reports_server_and_version() {
        let health = serde_json::to_value(Health::new(&config())).unwrap();
        assert_eq!(health["status"], "ok");
        assert_eq!(health["server"], "kez.lat");
        assert_eq!(health["version"], env!("CARGO_PKG_VERSION"));
    }
}
