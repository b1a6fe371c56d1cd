//! Property tests of the domain parsers whose input is open: `SchoolCode::parse` and the aanmaakdatum (xs:dateTime) parser.

use super::aanmaakdatum::{parse_datetime, to_micros};
use super::xsd::XsdDateTime;
use super::SchoolCode;
use chrono::{DateTime, Duration, FixedOffset, NaiveDate, Utc};
use proptest::prelude::*;

/// A brincode (two digits, two capitals) with an optional two-digit dependancecode.
fn brin_form() -> impl Strategy<Value = String> {
    "[0-9]{2}[A-Z]{2}([0-9]{2})?"
}

/// Instants from year 2 to 9998 (so that no offset writes year 0000 or 10000), to the nanosecond.
fn instant() -> impl Strategy<Value = DateTime<Utc>> {
    let first = NaiveDate::from_ymd_opt(2, 1, 1)
        .and_then(|date| date.and_hms_opt(0, 0, 0))
        .expect("a date")
        .and_utc()
        .timestamp();
    let last = NaiveDate::from_ymd_opt(9998, 12, 31)
        .and_then(|date| date.and_hms_opt(23, 59, 59))
        .expect("a date")
        .and_utc()
        .timestamp();
    (first..=last, 0u32..1_000_000_000).prop_map(|(seconds, nanos)| {
        DateTime::from_timestamp(seconds, nanos).expect("in chrono's range")
    })
}

/// Offsets XSD allows: -14:00 to +14:00, whole minutes.
fn offset() -> impl Strategy<Value = FixedOffset> {
    (-14 * 60..=14 * 60)
        .prop_map(|minutes: i32| FixedOffset::east_opt(minutes * 60).expect("within a day"))
}

/// An xs:dateTime as a sender may write it: with a fraction (trailing zeros kept) and an
/// offset, `Z` for zero, in the given offset's local time.
fn written(instant: DateTime<Utc>, offset: FixedOffset, zulu: bool) -> String {
    let local = instant.with_timezone(&offset);
    let zone = if zulu && offset.local_minus_utc() == 0 {
        "Z".to_string()
    } else {
        local.format("%:z").to_string()
    };
    format!("{}{zone}", local.format("%Y-%m-%dT%H:%M:%S%.9f"))
}

proptest! {
    #[test]
    fn school_code_parse_never_panics_and_accepts_exactly_the_nonblank_short_codes(text in "\\PC{0,300}") {
        let trimmed = text.trim();
        match SchoolCode::parse(&text) {
            Ok(code) => {
                prop_assert!(!trimmed.is_empty() && trimmed.len() <= 256);
                // The written form has no surrounding space, and reads back as itself.
                prop_assert_eq!(code.as_str().trim(), code.as_str());
                prop_assert_eq!(SchoolCode::parse(code.as_str()), Ok(code.clone()));
            }
            Err(_) => prop_assert!(trimmed.is_empty() || trimmed.len() > 256),
        }
    }

    #[test]
    fn school_code_parts_build_the_same_code(text in prop_oneof![brin_form(), "[ -~]{1,40}"]) {
        if let Ok(code) = SchoolCode::parse(&text) {
            let (brincode, dependancecode, schoolkey) = code.parts();
            prop_assert_eq!(SchoolCode::from_parts(brincode, dependancecode, schoolkey), Some(code.clone()));
            prop_assert_eq!(code.to_string(), code.as_str());
        }
    }

    #[test]
    fn school_code_brin_forms_split_into_brincode_and_dependancecode(text in brin_form()) {
        let code = SchoolCode::parse(&text).expect("a brin form");
        let (brincode, dependancecode, schoolkey) = code.parts();
        prop_assert_eq!(brincode, Some(&text[..4]));
        prop_assert_eq!(schoolkey, None);
        // Dependancecode 00 means the brincode alone, and is folded away.
        let expected = match &text[4..] {
            "" | "00" => None,
            dependancecode => Some(dependancecode),
        };
        prop_assert_eq!(dependancecode, expected);
    }

    #[test]
    fn aanmaakdatum_parser_never_panics_on_any_text(text in "\\PC{0,60}") {
        let _ = parse_datetime(&text);
    }

    #[test]
    fn aanmaakdatum_parser_never_panics_on_near_misses(
        text in "-?[0-9]{1,6}-[0-9]{1,3}-[0-9]{1,3}T[0-9]{1,3}:[0-9]{1,3}:[0-9]{1,3}(\\.[0-9]{0,25})?(Z|[+-][0-9]{2}:[0-9]{2})?",
    ) {
        let _ = parse_datetime(&text);
    }

    #[test]
    fn aanmaakdatum_round_trips_through_any_offset(
        instant in instant(),
        offset in offset(),
        zulu in any::<bool>(),
    ) {
        let text = written(instant, offset, zulu);
        prop_assert_eq!(parse_datetime(&text), Ok(instant), "{}", text);
    }

    #[test]
    fn aanmaakdatum_order_is_the_order_of_the_instants(
        first in instant(),
        second in instant(),
        first_offset in offset(),
        second_offset in offset(),
    ) {
        let first_micros = to_micros(parse_datetime(&written(first, first_offset, false)).expect("valid"));
        let second_micros = to_micros(parse_datetime(&written(second, second_offset, false)).expect("valid"));
        prop_assert_eq!(first_micros.cmp(&second_micros), to_micros(first).cmp(&to_micros(second)));
    }

    #[test]
    fn aanmaakdatum_24_00_00_is_midnight_of_the_next_day(
        day in 0i64..3_000_000,
        offset in offset(),
    ) {
        let date = NaiveDate::from_ymd_opt(1, 1, 1).expect("a date") + Duration::days(day);
        let zone = offset.to_string();
        let end_of_day = format!("{}T24:00:00{zone}", date.format("%Y-%m-%d"));
        let next_midnight = format!("{}T00:00:00{zone}", (date + Duration::days(1)).format("%Y-%m-%d"));
        prop_assert_eq!(XsdDateTime::parse(&end_of_day), XsdDateTime::parse(&next_midnight));
        prop_assert_eq!(parse_datetime(&end_of_day), parse_datetime(&next_midnight));
    }
}
