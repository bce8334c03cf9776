//! WebFinger (RFC 7033) for `acct:handle@server` resources.

use crate::domain::{Fqhn, FqhnError, Handle, ServerDomain};
use crate::error::ApiError;
use serde::Serialize;

/// Link relation of the user's JSON lookup document (`GET /v1/u/:handle`).
pub const REL_USER: &str = "https://kez.chat/rel/user";
/// Link relation of the user's sigchain on the sig server.
pub const REL_SIGCHAIN: &str = "https://kez.chat/rel/sigchain";
/// Property carrying the user's primary key, `ed25519:<hex>`.
pub const PROP_PRIMARY: &str = "https://kez.chat/ns/primary";

/// Resolves the `resource` query parameter to a handle of this server.
/// 400 when it is missing or not an `acct:` URI; 404 for another domain or a name
/// nobody could have registered (reserved or malformed local part).
pub fn resolve(resource: Option<&str>, server: &ServerDomain) -> Result<Handle, ApiError> {
    let resource = resource.filter(|r| !r.is_empty()).ok_or(ApiError::MissingResource)?;
    let acct = match resource.get(..5) {
        Some(scheme) if scheme.eq_ignore_ascii_case("acct:") => &resource[5..],
        _ => return Err(ApiError::InvalidResource),
    };
    let fqhn = Fqhn::parse(acct).map_err(|e| match e {
        FqhnError::Malformed => ApiError::InvalidResource,
        FqhnError::Handle(_) => ApiError::UserNotFound,
    })?;
    if fqhn.server() != server {
        return Err(ApiError::UserNotFound);
    }
    Ok(fqhn.handle().clone())
}

#[derive(Serialize)]
struct Jrd<'a> {
    subject: String,
    aliases: [&'a str; 1],
    properties: Properties<'a>,
    links: Vec<Link<'a>>,
}

/// The JRD's one property, the user's key (`PROP_PRIMARY`; a test holds the name to it).
#[derive(Serialize)]
struct Properties<'a> {
    #[serde(rename = "https://kez.chat/ns/primary")]
    primary: &'a str,
}

#[derive(Serialize)]
struct Link<'a> {
    rel: &'static str,
    #[serde(rename = "type")]
    media_type: &'static str,
    href: &'a str,
}

/// What a JRD says of a user: from a whole `UserView`, or from a row's binding alone.
pub struct Subject<'a> {
    pub handle: &'a str,
    pub fqhn: &'a str,
    pub primary: &'a str,
    pub sigchain_url: &'a str,
}

/// The JSON Resource Descriptor for a user. `origin` is this server's public origin
/// (`https://kez.lat`); `rels`, when not empty, keeps only links with those relations.
pub fn jrd(user: &Subject<'_>, origin: &str, rels: &[String]) -> String {
    let user_url = format!("{origin}/v1/u/{}", user.handle);
    let links = [
        Link { rel: REL_USER, media_type: "application/json", href: &user_url },
        Link { rel: REL_SIGCHAIN, media_type: "application/json", href: user.sigchain_url },
    ]
    .into_iter()
    .filter(|link| rels.is_empty() || rels.iter().any(|r| r == link.rel))
    .collect();
    let jrd = Jrd {
        subject: format!("acct:{}", user.fqhn),
        aliases: [&user_url],
        properties: Properties { primary: user.primary },
        links,
    };
    serde_json::to_string(&jrd).expect("strings always serialize")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Config, UserRecord, UserView};
    use serde_json::Value;

    fn server() -> ServerDomain {
        ServerDomain::parse("kez.lat").unwrap()
    }

    #[test]
    fn resolves_acct_case_insensitively() {
        for resource in ["acct:alice@kez.lat", "ACCT:Alice@KEZ.LAT", "acct:ALICE@kez.lat"] {
            assert_eq!(resolve(Some(resource), &server()).unwrap().as_str(), "alice", "{resource}");
        }
    }

    #[test]
    fn missing_or_malformed_is_400() {
        assert_eq!(resolve(None, &server()), Err(ApiError::MissingResource));
        assert_eq!(resolve(Some(""), &server()), Err(ApiError::MissingResource));
        for bad in [
            "alice@kez.lat",
            "https://kez.lat/alice",
            "acct:",
            "acct:alice",
            "acct:@kez.lat",
            "acct:alice@",
            "mailto:alice@kez.lat",
            "acc",
        ] {
            assert_eq!(resolve(Some(bad), &server()), Err(ApiError::InvalidResource), "{bad}");
        }
    }

    #[test]
    fn other_domains_and_impossible_names_are_404() {
        for unknown in ["acct:alice@evil.example", "acct:a!b@kez.lat", "acct:alice@kez.lat.evil"] {
            assert_eq!(resolve(Some(unknown), &server()), Err(ApiError::UserNotFound), "{unknown}");
        }
        // A reserved name is looked up: its holder may have registered it before it was reserved.
        assert_eq!(resolve(Some("acct:admin@kez.lat"), &server()).unwrap().as_str(), "admin");
    }

    fn alice() -> UserView {
        let config = Config::parse("kez.lat", "https://sig.kez.lat", "").unwrap();
        let record = UserRecord {
            handle: "alice".into(),
            primary_key: "ed25519:d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a".into(),
            registered_at: "2026-11-26T10:52:13Z".into(),
            envelope: "{}".into(),
            released_at: None,
            log: None,
        };
        UserView::from_record(&record, &config).unwrap()
    }

    #[test]
    fn jrd_has_subject_links_and_primary_property() {
        let jrd: Value = serde_json::from_str(&jrd(&alice().subject(), "https://kez.lat", &[])).unwrap();
        assert_eq!(jrd["subject"], "acct:alice@kez.lat");
        assert_eq!(jrd["aliases"][0], "https://kez.lat/v1/u/alice");
        assert_eq!(jrd["properties"][PROP_PRIMARY], alice().primary);
        assert_eq!(jrd["links"][0]["rel"], REL_USER);
        assert_eq!(jrd["links"][0]["href"], "https://kez.lat/v1/u/alice");
        assert_eq!(jrd["links"][1]["rel"], REL_SIGCHAIN);
        assert_eq!(jrd["links"][1]["href"], alice().sigchain_url);
    }

    #[test]
    fn rel_filters_links_only() {
        let only_sigchain: Value =
            serde_json::from_str(&jrd(&alice().subject(), "https://kez.lat", &[REL_SIGCHAIN.to_owned()])).unwrap();
        assert_eq!(only_sigchain["links"].as_array().unwrap().len(), 1);
        assert_eq!(only_sigchain["links"][0]["rel"], REL_SIGCHAIN);
        assert_eq!(only_sigchain["subject"], "acct:alice@kez.lat");
        let none: Value =
            serde_json::from_str(&jrd(&alice().subject(), "https://kez.lat", &["unknown".to_owned()])).unwrap();
        assert_eq!(none["links"].as_array().unwrap().len(), 0);
    }
}
