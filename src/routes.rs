//! Which handler a request goes to, decided from its method and path alone.

use crate::caching::Freshness;
use crate::error::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route<'a> {
    Healthz,
    /// The raw, not yet validated path segment.
    LookupHandle(&'a str),
    /// `GET /v1/by-primary/:primary`; the raw path segment.
    LookupPrimary(&'a str),
    Register,
    /// `POST /v1/rotate`: a `key_rotation` statement.
    Rotate,
    /// `POST /v1/release`: a `handle_release` statement.
    Release,
    WebFinger,
    NatsAuth,
    /// `GET /log/checkpoint`: the log's newest signed checkpoint.
    LogCheckpoint,
    /// `GET /log/tile/…`: a C2SP tlog-tiles tile or entry bundle; the path below `/log/`.
    LogTile(&'a str),
    /// A CORS preflight for one of the public read endpoints.
    Preflight,
    /// Not an API path: the single-page app's static assets.
    Assets,
}

/// Paths under these prefixes are the API: they never fall through to the app.
pub const API_PREFIXES: [&str; 4] = ["/v1/", "/.well-known/", "/internal/", "/log/"];

pub const READ_METHODS: &str = "GET, HEAD, OPTIONS";
const POST_METHOD: &str = "POST";

pub fn route<'a>(method: &str, path: &'a str) -> Result<Route<'a>, ApiError> {
    match path {
        "/v1/healthz" => public_read(method, Route::Healthz),
        "/.well-known/webfinger" => public_read(method, Route::WebFinger),
        "/v1/register" => post_only(method, Route::Register),
        "/v1/rotate" => post_only(method, Route::Rotate),
        "/v1/release" => post_only(method, Route::Release),
        "/internal/nats/auth" => post_only(method, Route::NatsAuth),
        "/log/checkpoint" => public_read(method, Route::LogCheckpoint),
        _ => {
            if let Some(tile) = path.strip_prefix("/log/").filter(|rest| rest.starts_with("tile/")) {
                return public_read(method, Route::LogTile(tile));
            }
            if let Some(handle) = one_segment_after(path, "/v1/u/") {
                public_read(method, Route::LookupHandle(handle))
            } else if let Some(primary) = one_segment_after(path, "/v1/by-primary/") {
                public_read(method, Route::LookupPrimary(primary))
            } else if API_PREFIXES.iter().any(|prefix| path.starts_with(prefix)) {
                Err(ApiError::NotFound)
            } else {
                Ok(Route::Assets)
            }
        }
    }
}

/// The single, non-empty path segment after `prefix`.
fn one_segment_after<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    path.strip_prefix(prefix).filter(|rest| !rest.is_empty() && !rest.contains('/'))
}

impl Route<'_> {
    /// Public read endpoints answer any origin, so browser clients elsewhere can resolve handles.
    pub fn allows_any_origin(&self) -> bool {
        matches!(
            self,
            Route::Healthz
                | Route::LookupHandle(_)
                | Route::LookupPrimary(_)
                | Route::WebFinger
                | Route::LogCheckpoint
                | Route::LogTile(_)
                | Route::Preflight
        )
    }
}

impl Route<'_> {
    /// The lookups: their answers are cached (`caching`) and vary with the bookmark.
    pub fn is_lookup(&self) -> bool {
        matches!(self, Route::LookupHandle(_) | Route::LookupPrimary(_) | Route::WebFinger)
    }

    /// How an error of this route may be cached: a lookup's 404 is a negative answer a
    /// client may keep for a few seconds; every other error is never stored.
    pub fn error_freshness(&self, error: &ApiError) -> Freshness {
        if self.is_lookup() && *error == ApiError::UserNotFound {
            Freshness::Negative
        } else {
            Freshness::NoStore
        }
    }
}

fn public_read<'a>(method: &str, route: Route<'a>) -> Result<Route<'a>, ApiError> {
    match method {
        "GET" | "HEAD" => Ok(route),
        "OPTIONS" => Ok(Route::Preflight),
        _ => Err(ApiError::MethodNotAllowed { allow: READ_METHODS }),
    }
}

fn post_only<'a>(method: &str, route: Route<'a>) -> Result<Route<'a>, ApiError> {
    match method {
        "POST" => Ok(route),
        _ => Err(ApiError::MethodNotAllowed { allow: POST_METHOD }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_routes() {
        assert_eq!(route("GET", "/v1/healthz"), Ok(Route::Healthz));
        assert_eq!(route("HEAD", "/v1/healthz"), Ok(Route::Healthz));
        assert_eq!(route("GET", "/v1/u/alice"), Ok(Route::LookupHandle("alice")));
        assert_eq!(route("POST", "/v1/register"), Ok(Route::Register));
        assert_eq!(route("POST", "/v1/rotate"), Ok(Route::Rotate));
        assert_eq!(route("POST", "/v1/release"), Ok(Route::Release));
        assert_eq!(route("GET", "/v1/rotate"), Err(ApiError::MethodNotAllowed { allow: POST_METHOD }));
        assert_eq!(route("GET", "/.well-known/webfinger"), Ok(Route::WebFinger));
        assert_eq!(route("POST", "/internal/nats/auth"), Ok(Route::NatsAuth));
        assert_eq!(route("OPTIONS", "/v1/u/alice"), Ok(Route::Preflight));
        assert_eq!(route("GET", "/v1/by-primary/ed25519:ab"), Ok(Route::LookupPrimary("ed25519:ab")));
        assert_eq!(route("GET", "/log/checkpoint"), Ok(Route::LogCheckpoint));
        assert_eq!(route("GET", "/log/tile/0/x001/234.p/5"), Ok(Route::LogTile("tile/0/x001/234.p/5")));
        assert_eq!(route("GET", "/log/tile/entries/000"), Ok(Route::LogTile("tile/entries/000")));
        assert_eq!(route("POST", "/log/checkpoint"), Err(ApiError::MethodNotAllowed { allow: READ_METHODS }));
    }

    #[test]
    fn wrong_methods_are_405_with_allow() {
        assert_eq!(route("POST", "/v1/healthz"), Err(ApiError::MethodNotAllowed { allow: READ_METHODS }));
        assert_eq!(route("DELETE", "/v1/u/alice"), Err(ApiError::MethodNotAllowed { allow: READ_METHODS }));
        assert_eq!(route("GET", "/v1/register"), Err(ApiError::MethodNotAllowed { allow: POST_METHOD }));
        assert_eq!(route("OPTIONS", "/v1/register"), Err(ApiError::MethodNotAllowed { allow: POST_METHOD }));
        assert_eq!(route("get", "/v1/healthz"), Err(ApiError::MethodNotAllowed { allow: READ_METHODS }));
    }

    #[test]
    fn unknown_api_paths_are_404_never_the_app() {
        for path in [
            "/v1/",
            "/v1/nope",
            "/v1/u/",
            "/v1/u/alice/extra",
            "/v1/by-primary/",
            "/v1/by-primary/a/b",
            "/v1/healthz/",
            "/.well-known/nodeinfo",
            "/internal/",
            "/internal/nats",
            "/log/",
            "/log/checkpoint/",
            "/log/tiles/0/000",
        ] {
            assert_eq!(route("GET", path), Err(ApiError::NotFound), "{path}");
        }
    }

    #[test]
    fn every_api_prefix_reaches_the_worker_before_the_assets() {
        // wrangler.toml's `run_worker_first`: a prefix missing there is answered by the app.
        let toml = include_str!("../wrangler.toml");
        let line = toml.lines().find(|l| l.starts_with("run_worker_first")).expect("run_worker_first");
        for prefix in API_PREFIXES {
            assert!(line.contains(&format!("\"{prefix}*\"")), "{prefix} is not in {line}");
        }
    }

    #[test]
    fn everything_else_is_the_app() {
        for path in ["/", "/index.html", "/directory", "/v1", "/assets/app.js"] {
            assert_eq!(route("GET", path), Ok(Route::Assets), "{path}");
        }
    }

    #[test]
    fn only_lookups_are_cached_and_only_their_404() {
        let lookups = [Route::LookupHandle("a"), Route::LookupPrimary("a"), Route::WebFinger];
        for lookup in lookups {
            assert!(lookup.is_lookup());
            assert_eq!(lookup.error_freshness(&ApiError::UserNotFound), Freshness::Negative);
            for error in
                [ApiError::InvalidHandle, ApiError::StorageUnavailable("x".into()), ApiError::Internal("x".into())]
            {
                assert_eq!(lookup.error_freshness(&error), Freshness::NoStore, "{error:?}");
            }
        }
        for other in [Route::Healthz, Route::Register, Route::NatsAuth, Route::Preflight, Route::Assets] {
            assert!(!other.is_lookup());
            assert_eq!(other.error_freshness(&ApiError::UserNotFound), Freshness::NoStore);
        }
    }

    #[test]
    fn only_read_endpoints_allow_any_origin() {
        assert!(Route::Healthz.allows_any_origin());
        assert!(Route::LookupHandle("a").allows_any_origin());
        assert!(Route::LookupPrimary("a").allows_any_origin());
        assert!(Route::LogCheckpoint.allows_any_origin());
        assert!(Route::LogTile("tile/0/000").allows_any_origin());
        assert!(!Route::Register.allows_any_origin());
        assert!(!Route::NatsAuth.allows_any_origin());
    }
}
