//! Reading xs:dateTime values such as aanmaakdatum into instants that can be ordered.

use super::xsd::{XsdDateTime, XsdValueError};
use super::{Rule, Violation};
use chrono::{DateTime, Utc};

/// Reads an xs:dateTime as XSD defines it (`24:00:00`, long and negative years, any
/// fraction, offsets to ±14:00) into an instant; see `XsdDateTime::to_instant` for
/// values without offset (Europe/Amsterdam wall-clock time).
pub(crate) fn parse_datetime(text: &str) -> Result<DateTime<Utc>, XsdValueError> {
    XsdDateTime::parse(text)?.to_instant()
}

/// Microseconds since the epoch: the comparable form kept in the store.
pub(crate) fn to_micros(instant: DateTime<Utc>) -> i64 {
    instant.timestamp_micros()
}

/// An aanmaakdatum may lie at most `skew` after `now` (the sender's clock may run a little
/// ahead). A later one would become the sender's ordering state for the school, and every
/// message it sends afterwards would be refused as out of order (issue 16).
pub(crate) fn check_not_future(
    text: &str,
    micros: i64,
    now: DateTime<Utc>,
    skew: chrono::Duration,
) -> Option<Violation> {
    let latest = now.checked_add_signed(skew)?;
    (micros > to_micros(latest)).then(|| {
        Violation::new(
            Rule::Toekomst,
            format!(
                "aanmaakdatum lies in the future: later than the gateway's time ({}) plus the allowed clock difference of {} s",
                now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                skew.num_seconds()
            ),
        )
        .at_path("school/aanmaakdatum")
        .with_value(text)
    })
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

    #[test]
    fn an_aanmaakdatum_beyond_the_skew_is_in_the_future() {
        let now = parse_datetime("2026-12-01T12:00:00Z").unwrap();
        let skew = chrono::Duration::seconds(300);
        let check = |text: &str| {
            let micros = to_micros(parse_datetime(text).unwrap());
            check_not_future(text, micros, now, skew).map(|violation| violation.rule)
        };
        assert_eq!(check("2026-12-01T12:05:00Z"), None);
        assert_eq!(
            check("2026-12-01T13:05:00"),
            None,
            "13:05 in Amsterdam is 12:05 UTC"
        );
        assert_eq!(check("2026-12-01T12:05:00.000001Z"), Some(Rule::Toekomst));
        assert_eq!(check("9999-12-31T23:59:59.999999"), Some(Rule::Toekomst));
    }
}
