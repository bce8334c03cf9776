//! RFC 3339 timestamps. The clock is always passed in as Unix milliseconds
//! (`SystemTime::now()` panics on wasm32; the worker reads `Date.now()`).

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Parses any RFC 3339 timestamp (any offset, optional fraction) to Unix milliseconds.
pub fn parse_rfc3339_ms(s: &str) -> Option<i64> {
    let at = OffsetDateTime::parse(s, &Rfc3339).ok()?;
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).ok()
}

/// Formats Unix milliseconds as RFC 3339 UTC to the second: `2026-11-26T10:52:13Z`.
pub fn format_rfc3339_utc(unix_ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix_ms.div_euclid(1000))
        .ok()
        .and_then(|at| at.format(&Rfc3339).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_utc_offsets_and_fractions() {
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339_ms("2026-11-26T10:52:13.123Z"), Some(1_795_690_333_123));
        assert_eq!(parse_rfc3339_ms("2026-11-26T11:52:13.123+01:00"), Some(1_795_690_333_123));
    }

    #[test]
    fn rejects_what_is_not_rfc3339() {
        for bad in ["", "2026-11-26", "2026-11-26 10:52:13", "2026-11-26T10:52:13", "yesterday", "2026-13-01T00:00:00Z"]
        {
            assert_eq!(parse_rfc3339_ms(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn formats_utc_to_the_second() {
        assert_eq!(format_rfc3339_utc(1_795_690_333_999), "2026-11-26T10:52:13Z");
        assert_eq!(format_rfc3339_utc(0), "1970-01-01T00:00:00Z");
    }
}
