//! A fully qualified handle: `handle@server`, as people write it and WebFinger asks for it.

use super::{Handle, HandleError, ServerDomain};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FqhnError {
    /// Not `<something>@<host name>`.
    Malformed,
    /// The part before `@` is not a handle anyone could have registered.
    Handle(HandleError),
}

/// `handle@server`, both parts case-folded: people type `Alice@KEZ.lat` and mean `alice@kez.lat`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fqhn {
    handle: Handle,
    server: ServerDomain,
}

impl Fqhn {
    pub fn parse(s: &str) -> Result<Fqhn, FqhnError> {
        let (user, host) = s.rsplit_once('@').ok_or(FqhnError::Malformed)?;
        if user.is_empty() {
            return Err(FqhnError::Malformed);
        }
        let server = ServerDomain::parse(host).map_err(|_| FqhnError::Malformed)?;
        let handle = Handle::parse_lookup(user).map_err(FqhnError::Handle)?;
        Ok(Fqhn { handle, server })
    }

    pub fn new(handle: Handle, server: ServerDomain) -> Fqhn {
        Fqhn { handle, server }
    }

    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    pub fn server(&self) -> &ServerDomain {
        &self.server
    }
}

impl fmt::Display for Fqhn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.handle, self.server)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_folds_case() {
        let fqhn = Fqhn::parse("Alice@KEZ.lat").unwrap();
        assert_eq!(fqhn.handle().as_str(), "alice");
        assert_eq!(fqhn.server().as_str(), "kez.lat");
        assert_eq!(fqhn.to_string(), "alice@kez.lat");
    }

    #[test]
    fn rejects_malformed() {
        for bad in ["alice", "@kez.lat", "alice@", "alice@kez..lat", "alice@@", ""] {
            assert_eq!(Fqhn::parse(bad), Err(FqhnError::Malformed), "{bad:?}");
        }
    }

    #[test]
    fn reports_bad_handles_separately() {
        assert_eq!(Fqhn::parse("a!b@kez.lat"), Err(FqhnError::Handle(HandleError::Invalid)));
        assert_eq!(Fqhn::parse("Admin@kez.lat").unwrap().handle().as_str(), "admin");
        // The last `@` separates: `a@b` is not a handle.
        assert_eq!(Fqhn::parse("a@b@kez.lat"), Err(FqhnError::Handle(HandleError::Invalid)));
    }
}
