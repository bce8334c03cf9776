//! A handle: the local part of `handle@server`.

use std::fmt;

/// Names nobody may register: system and role accounts people trust by default,
/// and the project's own brand, so that nobody can impersonate the operator.
const RESERVED: &[&str] = &[
    // system and infrastructure
    "root",
    "admin",
    "administrator",
    "sysadmin",
    "system",
    "daemon",
    "nobody",
    "operator",
    "localhost",
    "server",
    "host",
    "hostmaster",
    "node",
    "relay",
    "nats",
    "bridge",
    "bot",
    "null",
    "undefined",
    "anonymous",
    "everyone",
    "all",
    "here",
    "me",
    "self",
    "test",
    // mail and web role accounts (RFC 2142)
    "postmaster",
    "webmaster",
    "abuse",
    "security",
    "noc",
    "usenet",
    "news",
    "uucp",
    "ftp",
    "www",
    "mail",
    "email",
    "smtp",
    "imap",
    "pop",
    "dns",
    "mx",
    "noreply",
    "no-reply",
    "no_reply",
    "donotreply",
    "do-not-reply",
    "mailer-daemon",
    // service and role names
    "api",
    "app",
    "apps",
    "auth",
    "login",
    "logout",
    "signin",
    "signup",
    "register",
    "account",
    "accounts",
    "settings",
    "status",
    "health",
    "healthz",
    "internal",
    "well-known",
    "webfinger",
    "directory",
    "u",
    "v1",
    "v2",
    "static",
    "assets",
    "cdn",
    "help",
    "info",
    "support",
    "contact",
    "feedback",
    "billing",
    "legal",
    "privacy",
    "terms",
    "tos",
    "policy",
    "press",
    "sales",
    "marketing",
    "jobs",
    "team",
    "staff",
    "official",
    "moderator",
    "mod",
    "mods",
    "owner",
    "owners",
    "verify",
    "verified",
    // brand
    "kez",
    "kezchat",
    "kez-chat",
    "kez_chat",
    "kezlat",
    "kez-lat",
];

/// Why a string is not a handle. Each maps to its own API error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandleError {
    /// Wrong length, characters outside `a-z0-9_-`, or a bad first character.
    Invalid,
    /// Well formed, but on the reserved list.
    Reserved,
}

/// A registrable handle: 3-32 characters of `a-z0-9_-`, starting with a letter or
/// digit, and not reserved. `parse` is the only way to build one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Handle(String);

impl Handle {
    pub const MIN_LEN: usize = 3;
    pub const MAX_LEN: usize = 32;

    /// Parses a handle exactly as given: no case folding, no trimming, so that the
    /// handle a key signed is the handle that gets registered.
    pub fn parse(s: &str) -> Result<Handle, HandleError> {
        if !is_well_formed(s) {
            return Err(HandleError::Invalid);
        }
        if RESERVED.contains(&s) {
            return Err(HandleError::Reserved);
        }
        Ok(Handle(s.to_owned()))
    }

    /// Parses a handle someone is looking up, where case does not matter
    /// (`Alice` finds `alice`). Reserved names are never registered, so they
    /// are reported like any unknown handle.
    pub fn parse_lookup(s: &str) -> Result<Handle, HandleError> {
        Handle::parse(&s.to_ascii_lowercase())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn is_well_formed(s: &str) -> bool {
    let bytes = s.as_bytes();
    (Handle::MIN_LEN..=Handle::MAX_LEN).contains(&bytes.len())
        && (bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit())
        && bytes.iter().all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_valid_handles() {
        for ok in ["abc", "alice", "bob_smith", "a-b", "0day", "x".repeat(32).as_str(), "a__"] {
            assert_eq!(Handle::parse(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn rejects_bad_length() {
        assert_eq!(Handle::parse(""), Err(HandleError::Invalid));
        assert_eq!(Handle::parse("ab"), Err(HandleError::Invalid));
        assert_eq!(Handle::parse(&"x".repeat(33)), Err(HandleError::Invalid));
    }

    #[test]
    fn rejects_bad_characters_and_first_character() {
        for bad in
            ["Alice", "al ice", "al.ice", "al@ice", "_alice", "-alice", "alicé", "al\u{0}ice", "ａｌｉｃｅ", "alice\n"]
        {
            assert_eq!(Handle::parse(bad), Err(HandleError::Invalid), "{bad:?}");
        }
    }

    #[test]
    fn multibyte_length_is_counted_in_bytes_and_rejected() {
        // 3 characters but 6 bytes: must not pass the length check and then slip through.
        assert_eq!(Handle::parse("ééé"), Err(HandleError::Invalid));
    }

    #[test]
    fn rejects_reserved_names() {
        for reserved in [
            "admin",
            "root",
            "support",
            "security",
            "postmaster",
            "webmaster",
            "abuse",
            "api",
            "www",
            "help",
            "info",
            "noreply",
            "kez",
            "system",
        ] {
            assert_eq!(Handle::parse(reserved), Err(HandleError::Reserved), "{reserved}");
        }
    }

    #[test]
    fn reserved_list_holds_only_well_formed_names() {
        for name in RESERVED {
            assert!(is_well_formed(name) || name.len() < Handle::MIN_LEN, "{name}");
        }
    }

    #[test]
    fn lookup_folds_case_but_registration_does_not() {
        assert_eq!(Handle::parse_lookup("AliCE").unwrap().as_str(), "alice");
        assert_eq!(Handle::parse("AliCE"), Err(HandleError::Invalid));
        assert_eq!(Handle::parse_lookup("ADMIN"), Err(HandleError::Reserved));
    }

    /// The web app checks handles before sending them; its copy of the list must be this one.
    #[test]
    fn web_app_reserved_list_is_this_list() {
        let web: Vec<String> = serde_json::from_str(include_str!("../../web/src/lib/reserved-handles.json")).unwrap();
        assert_eq!(web, RESERVED);
    }
}
