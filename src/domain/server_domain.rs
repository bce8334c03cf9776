//! The domain this server answers for: the `server` in `handle@server`.

use std::fmt;

/// A lowercase host name with an optional port (`kez.lat`, `localhost:8787`).
/// Built once from configuration; compared case-insensitively with what clients send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerDomain(String);

impl ServerDomain {
    pub fn parse(s: &str) -> Result<ServerDomain, String> {
        let lower = s.to_ascii_lowercase();
        let (host, port) = match lower.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (lower.as_str(), None),
        };
        let host_ok = !host.is_empty()
            && host.len() <= 253
            && host.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            });
        let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|n| n > 0) && !p.starts_with('0'));
        if host_ok && port_ok {
            Ok(ServerDomain(lower))
        } else {
            Err(format!("\"{s}\" is not a host name (with an optional port)"))
        }
    }

    /// True when `other` names this server, ignoring ASCII case.
    pub fn matches(&self, other: &str) -> bool {
        self.0.eq_ignore_ascii_case(other)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ServerDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_host_names_with_optional_port() {
        for ok in ["kez.lat", "localhost", "localhost:8787", "a-b.example.org", "127.0.0.1"] {
            assert_eq!(ServerDomain::parse(ok).unwrap().as_str(), ok);
        }
        assert_eq!(ServerDomain::parse("KEZ.Lat").unwrap().as_str(), "kez.lat");
    }

    #[test]
    fn rejects_what_is_not_a_host_name() {
        for bad in [
            "",
            "kez..lat",
            ".kez.lat",
            "-kez.lat",
            "kez.lat:",
            "kez.lat:0",
            "kez.lat:99999",
            "kez.lat:08",
            "https://kez.lat",
            "kez.lat/",
            "kez lat",
            "alice@kez.lat",
        ] {
            assert!(ServerDomain::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn matches_ignoring_case() {
        let domain = ServerDomain::parse("kez.lat").unwrap();
        assert!(domain.matches("KEZ.LAT"));
        assert!(!domain.matches("kez.lat."));
        assert!(!domain.matches("evil.lat"));
    }
}
