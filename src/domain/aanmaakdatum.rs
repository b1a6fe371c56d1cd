//! Reading xs:dateTime values such as aanmaakdatum into instants that can be ordered.

use super::xsd::{XsdDateTime, XsdValueError};
use chrono::{DateTime, Utc};

/// Reads an xs:dateTime as XSD defines it (`24:00:00`, long and negative years, any
/// fraction, offsets to ±14:00) into an instant; see `XsdDateTime::to_instant` for
/// values without offset (Europe/Amsterdam wall-clock time).
pub fn parse_datetime(text: &str) -> Result<DateTime<Utc>, XsdValueError> {
    XsdDateTime::parse(text)?.to_instant()
}

/// Microseconds since the epoch: the comparable form kept in the store.
pub fn to_micros(instant: DateTime<Utc>) -> i64 {
    instant.timestamp_micros()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected_utc: &str) {
        let parsed = parse_datetime(input).unwrap();
        assert_eq!(parsed.to_rfc3339(), expected_utc, "input {input}");
    }

    #[test]
    fn offsets_and_local_times() {
        check("2026-10-01T08:00:00Z", "2026-10-01T08:00:00+00:00");
        check("2026-10-01T08:00:00+02:00", "2026-10-01T06:00:00+00:00");
        // Summer time: UTC+2.
        check("2026-10-01T08:00:00", "2026-10-01T06:00:00+00:00");
        // Winter time: UTC+1.
        check("2026-12-01T08:00:00", "2026-12-01T07:00:00+00:00");
        check("2026-12-01T08:00:00.250", "2026-12-01T07:00:00.250+00:00");
        // Autumn fold (2026-10-25 03:00 CEST -> 02:00 CET): the earlier instant.
        check("2026-10-25T02:30:00", "2026-10-25T00:30:00+00:00");
        // Spring gap (2026-03-29 02:00 -> 03:00): one hour later.
        check("2026-03-29T02:30:00", "2026-03-29T01:30:00+00:00");
        assert!(parse_datetime("gisteren").is_err());
    }
}
