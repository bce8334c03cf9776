//! The parts of a request URL the API needs, split from the absolute, normalized URL the
//! runtime hands over. A full URL parser (and its IDNA tables) would more than double the
//! worker's size for what is three slices and a query decoder.

use std::borrow::Cow;

/// `scheme://authority` + path + query of one request URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestUrl<'a> {
    origin: &'a str,
    path: &'a str,
    query: &'a str,
}

impl<'a> RequestUrl<'a> {
    /// Splits an absolute URL such as `https://kez.lat/v1/u/alice?x=1#f`. The runtime always
    /// gives an absolute URL with a path; anything else yields path `/`.
    pub fn split(url: &'a str) -> RequestUrl<'a> {
        let without_fragment = url.split_once('#').map_or(url, |(before, _)| before);
        let (before_query, query) = without_fragment.split_once('?').unwrap_or((without_fragment, ""));
        // The scheme ends at the first ':' (a char search: a `str` pattern sets up a
        // two-way searcher on every request).
        let authority_start = match before_query.find(':') {
            Some(i) if before_query[i..].starts_with("://") => i + 3,
            _ => 0,
        };
        let path_start = before_query[authority_start..].find('/').map_or(before_query.len(), |i| authority_start + i);
        let path = &before_query[path_start..];
        RequestUrl { origin: &before_query[..path_start], path: if path.is_empty() { "/" } else { path }, query }
    }

    pub fn origin(&self) -> &'a str {
        self.origin
    }

    /// The path, still percent-encoded, as routing expects it.
    pub fn path(&self) -> &'a str {
        self.path
    }

    /// The query's `application/x-www-form-urlencoded` pairs, decoded.
    pub fn query_pairs(&self) -> impl Iterator<Item = (Cow<'a, str>, Cow<'a, str>)> {
        form_urlencoded::parse(self.query.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_origin_path_and_query() {
        let url = RequestUrl::split(
            "https://kez.lat:8443/.well-known/webfinger?resource=acct%3Aalice%40kez.lat&rel=a+b#frag",
        );
        assert_eq!(url.origin(), "https://kez.lat:8443");
        assert_eq!(url.path(), "/.well-known/webfinger");
        let pairs: Vec<_> = url.query_pairs().collect();
        assert_eq!(pairs, [("resource".into(), "acct:alice@kez.lat".into()), ("rel".into(), "a b".into())]);
    }

    #[test]
    fn paths_stay_encoded_and_edge_cases_hold() {
        assert_eq!(RequestUrl::split("http://127.0.0.1:8787/v1/u/%41lice").path(), "/v1/u/%41lice");
        assert_eq!(RequestUrl::split("http://h").path(), "/");
        assert_eq!(RequestUrl::split("http://h?x=1").path(), "/");
        assert_eq!(RequestUrl::split("http://h/a/b?c=/d").path(), "/a/b");
        assert_eq!(RequestUrl::split("http://h/a#/b?c").path(), "/a");
        assert_eq!(RequestUrl::split("http://h/").origin(), "http://h");
        assert_eq!(RequestUrl::split("http://h/?%zz=%").query_pairs().count(), 1);
    }
}
