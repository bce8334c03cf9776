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

/// How a handle is reduced to its skeleton: what it looks like, whatever the characters
/// (UTS #39's idea, for this alphabet). Applied in this order, each as a global replace of
/// non-overlapping occurrences from the left, exactly as SQLite's `replace()` does, so the
/// migration computes the same skeletons for handles registered before it. The separators
/// go, then digits and letters that pass for others (UTS #39 confusables: `0`→`o`, `1`→`l`,
/// `i`→`l` as `I`, and `5`→`s`), then pairs that pass for one letter (`rn`, `vv`, `cl`).
/// `web/src/lib/handle-skeleton.json` is this list (a test checks it).
pub const SKELETON_STEPS: &[(&str, &str)] =
    &[("-", ""), ("_", ""), ("0", "o"), ("1", "l"), ("i", "l"), ("5", "s"), ("rn", "m"), ("vv", "w"), ("cl", "d")];

/// The skeleton of a well-formed handle: two handles with the same skeleton look alike.
pub fn skeleton(handle: &str) -> String {
    SKELETON_STEPS.iter().fold(handle.to_owned(), |s, (from, to)| s.replace(from, to))
}

/// Why a string is not a handle. Each maps to its own API error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandleError {
    /// Wrong length, characters outside `a-z0-9_-`, or a bad first character.
    Invalid,
    /// Well formed, but on the reserved list, or looking like a name on it (same skeleton).
    Reserved,
}

/// A registrable handle: 3-32 characters of `a-z0-9_-`, starting with a letter or
/// digit, and neither reserved nor looking like a reserved name. `parse` (or `parse_lookup`,
/// for lookups) is the only way to build one.
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
        if is_reserved(s) || looks_reserved(&skeleton(s)) {
            return Err(HandleError::Reserved);
        }
        Ok(Handle(s.to_owned()))
    }

    /// Parses a handle someone is looking up, where case does not matter (`Alice` finds
    /// `alice`). Only its form is checked: a name reserved, or a lookalike refused, after
    /// it was registered still belongs to its holder, who must stay findable.
    pub fn parse_lookup(s: &str) -> Result<Handle, HandleError> {
        let s = s.to_ascii_lowercase();
        if !is_well_formed(&s) {
            return Err(HandleError::Invalid);
        }
        Ok(Handle(s))
    }

    /// A handle read back from the registry: only its form is checked. It passed `parse`
    /// when it was registered; a name reserved since then must not make its owner vanish,
    /// and checking the reserved list on every lookup cost a fifth of the lookup's time.
    pub fn parse_stored(s: &str) -> Result<Handle, HandleError> {
        if !is_well_formed(s) {
            return Err(HandleError::Invalid);
        }
        Ok(Handle(s.to_owned()))
    }

    /// What the handle looks like (`skeleton`): UNIQUE in the database, so no two
    /// registered handles look alike.
    pub fn skeleton(&self) -> String {
        skeleton(&self.0)
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

/// The project's names, which must not be combined with a reserved one (`kez-support`).
const BRANDS: &[&str] = &["kezchat", "kez"];

/// Whether a skeleton is that of a reserved name, alone or next to a brand (`kez-admin`,
/// `support_kez`): what an impersonator of the operator would register.
fn looks_reserved(looks_like: &str) -> bool {
    let (reserved_skeletons, brand_skeletons) = reserved_skeletons();
    let reserved = |s: &str| reserved_skeletons.iter().any(|name| name == s);
    reserved(looks_like)
        || brand_skeletons.iter().any(|brand| {
            let rest = looks_like.strip_prefix(brand.as_str()).or_else(|| looks_like.strip_suffix(brand.as_str()));
            rest.is_some_and(|rest| !rest.is_empty() && reserved(rest))
        })
}

/// Whether `s` is on the reserved list: a binary search of a sorted copy, made once per
/// process, because every lookup asks (a scan of the list compared each name in turn).
fn is_reserved(s: &str) -> bool {
    static SORTED: std::sync::OnceLock<Vec<&str>> = std::sync::OnceLock::new();
    let sorted = SORTED.get_or_init(|| {
        // Sorted by insertion: the list is short, and the library's sort adds 4 KB of wasm.
        let mut sorted: Vec<&str> = Vec::with_capacity(RESERVED.len());
        for name in RESERVED {
            let at = sorted.partition_point(|sorted_name| sorted_name < name);
            sorted.insert(at, name);
        }
        sorted
    });
    sorted.binary_search(&s).is_ok()
}

/// The skeletons of the reserved names and of the brands, computed once per process.
fn reserved_skeletons() -> &'static (Vec<String>, Vec<String>) {
    static SKELETONS: std::sync::OnceLock<(Vec<String>, Vec<String>)> = std::sync::OnceLock::new();
    SKELETONS
        .get_or_init(|| (RESERVED.iter().map(|n| skeleton(n)).collect(), BRANDS.iter().map(|b| skeleton(b)).collect()))
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
    fn stored_handles_are_checked_for_form_only() {
        // Reserved after it was registered: its owner is still found.
        assert_eq!(Handle::parse_stored("admin").unwrap().as_str(), "admin");
        assert_eq!(Handle::parse_stored("kez-support").unwrap().as_str(), "kez-support");
        for bad in ["", "ab", "Alice", "-abc", "a b c", &"x".repeat(33)] {
            assert_eq!(Handle::parse_stored(bad), Err(HandleError::Invalid), "{bad}");
        }
    }

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

    /// The sorted copy finds every name of the list, and nothing else.
    #[test]
    fn every_reserved_name_is_found_and_no_other() {
        for name in RESERVED {
            assert!(is_reserved(name), "{name}");
        }
        for other in ["alice", "admins", "roo", "zzzz", "aaa", "root_"] {
            assert!(!is_reserved(other), "{other}");
        }
    }

    #[test]
    fn lookup_folds_case_but_registration_does_not() {
        assert_eq!(Handle::parse_lookup("AliCE").unwrap().as_str(), "alice");
        assert_eq!(Handle::parse("AliCE"), Err(HandleError::Invalid));
        // A reserved name is looked up: it may have been registered before it was reserved.
        assert_eq!(Handle::parse_lookup("ADMIN").unwrap().as_str(), "admin");
    }

    #[test]
    fn lookalikes_of_reserved_names_are_reserved() {
        for lookalike in [
            "adm1n",
            "r00t",
            "ro0t",
            "kez-support",
            "support_kez",
            "kezchat-adm1n",
            "sup-port",
            "5upport",
            "adrnin",
            "a_d_m_i_n",
            "adm-in",
            "sys_admin",
        ] {
            assert_eq!(Handle::parse(lookalike), Err(HandleError::Reserved), "{lookalike}");
        }
        // Not lookalikes: other letters, or different skeletons.
        for fine in ["admins", "rooted", "alice", "kezia", "supporter", "kezhelpers"] {
            assert!(Handle::parse(fine).is_ok(), "{fine}");
        }
        // Registered before lookalikes were refused: still found.
        assert_eq!(Handle::parse_lookup("R00T").unwrap().as_str(), "r00t");
    }

    #[test]
    fn skeletons_fold_what_looks_alike() {
        for (a, b) in [
            ("alice", "a1ice"),
            ("alice", "al-ice"),
            ("alice", "aiice"),
            ("modern", "modem"),
            ("vvill", "will"),
            ("clean", "dean"),
            ("s0ng", "song"),
            ("bob_5", "bobs"),
        ] {
            assert_eq!(skeleton(a), skeleton(b), "{a} ~ {b}");
        }
        for (a, b) in [("alice", "alike"), ("bob", "rob"), ("m0m", "mam")] {
            assert_ne!(skeleton(a), skeleton(b), "{a} !~ {b}");
        }
    }

    /// The migration computes skeletons of handles registered before it in SQL: the same steps.
    #[test]
    fn migration_computes_the_same_skeleton() {
        let sql = include_str!("../../migrations/0002_handle_skeletons.sql");
        let expression =
            SKELETON_STEPS.iter().fold("handle".to_owned(), |e, (from, to)| format!("replace({e}, '{from}', '{to}')"));
        assert!(sql.contains(&expression), "the migration must compute {expression}");
    }

    /// The web app checks handles before sending them; its rules must be these.
    #[test]
    fn web_app_skeleton_steps_are_these() {
        let web: Vec<(String, String)> =
            serde_json::from_str(include_str!("../../web/src/lib/handle-skeleton.json")).unwrap();
        let ours: Vec<(String, String)> = SKELETON_STEPS.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        assert_eq!(web, ours);
    }

    /// The web app checks handles before sending them; its copy of the list must be this one.
    #[test]
    fn web_app_reserved_list_is_this_list() {
        let web: Vec<String> = serde_json::from_str(include_str!("../../web/src/lib/reserved-handles.json")).unwrap();
        assert_eq!(web, RESERVED);
    }
}
