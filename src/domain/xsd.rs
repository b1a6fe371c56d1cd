//! XML Schema's integer, date and dateTime values, read by XSD's lexical rules and compared by value.
//!
//! libxml2 decides whether a lexical form is valid; these types turn every form it
//! accepts into a value the gateway can compare, store and publish. A valid value
//! the gateway cannot hold (an integer beyond `i64`, a year chrono cannot represent)
//! is `XsdValueError::Beyond`, reported under its own rule, never as a schema error.

use chrono::{DateTime, FixedOffset, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Europe::Amsterdam;
use std::cmp::Ordering;

/// Why a text is not a usable XSD value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum XsdValueError {
    /// Not in the type's lexical space (libxml2 reports these as schema errors).
    #[error("not a valid {kind}: {reason}")]
    Lexical { kind: &'static str, reason: String },
    /// A valid value outside what the gateway stores and publishes.
    #[error("{what} lies beyond what the gateway stores ({limit})")]
    Beyond { what: String, limit: &'static str },
}

impl XsdValueError {
    fn lexical(kind: &'static str, reason: impl Into<String>) -> XsdValueError {
        XsdValueError::Lexical {
            kind,
            reason: reason.into(),
        }
    }
}

/// The whitespace XML counts (space, tab, CR, LF); xs:string keeps it, collapsed types drop it at the ends.
fn collapse(text: &str) -> &str {
    text.trim_matches(|c: char| matches!(c, ' ' | '\t' | '\r' | '\n'))
}

/// An xs:integer (or a restriction of it) by value: no upper bound, `+7`, `007` and `-0` allowed.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct XsdInteger {
    negative: bool,
    /// Decimal digits without leading zeros; "0" for zero (which is never negative).
    digits: String,
}

/// The largest value the store holds in an integer column.
pub(crate) const INTEGER_LIMIT: &str = "at most 9223372036854775807";

impl XsdInteger {
    /// Reads the lexical form `[+-]?[0-9]+` after collapsing whitespace.
    pub(crate) fn parse(text: &str) -> Result<XsdInteger, XsdValueError> {
        let text = collapse(text);
        let (negative, unsigned) = match text.as_bytes().first() {
            Some(b'-') => (true, &text[1..]),
            Some(b'+') => (false, &text[1..]),
            _ => (false, text),
        };
        if unsigned.is_empty() || !unsigned.bytes().all(|byte| byte.is_ascii_digit()) {
            return Err(XsdValueError::lexical(
                "xs:integer",
                format!("'{text}' is not an optional sign followed by digits"),
            ));
        }
        let digits = unsigned.trim_start_matches('0');
        let digits = if digits.is_empty() { "0" } else { digits };
        Ok(XsdInteger {
            negative: negative && digits != "0",
            digits: digits.to_string(),
        })
    }

    pub(crate) fn is_negative(&self) -> bool {
        self.negative
    }

    /// The value as `i64`, or `Beyond` when the store cannot hold it.
    pub(crate) fn to_i64(&self) -> Result<i64, XsdValueError> {
        let canonical = self.to_string();
        canonical.parse().map_err(|_| XsdValueError::Beyond {
            what: format!(
                "the integer {}",
                crate::domain::violation::shorten(&canonical, 40)
            ),
            limit: INTEGER_LIMIT,
        })
    }
}

impl std::fmt::Display for XsdInteger {
    /// The canonical form: no `+`, no leading zeros, `0` for `-0`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.negative {
            f.write_str("-")?;
        }
        f.write_str(&self.digits)
    }
}

impl Ord for XsdInteger {
    fn cmp(&self, other: &Self) -> Ordering {
        let magnitude = self
            .digits
            .len()
            .cmp(&other.digits.len())
            .then_with(|| self.digits.cmp(&other.digits));
        match (self.negative, other.negative) {
            (false, false) => magnitude,
            (true, true) => magnitude.reverse(),
            (true, false) => Ordering::Less,
            (false, true) => Ordering::Greater,
        }
    }
}

impl PartialOrd for XsdInteger {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Reads an XSD integer that the store keeps as a non-negative `i64` (scores, norm bounds).
pub(crate) fn parse_stored_count(text: &str) -> Result<u64, XsdValueError> {
    let value = XsdInteger::parse(text)?;
    if value.is_negative() {
        return Err(XsdValueError::lexical(
            "xs:nonNegativeInteger",
            format!("{value} is negative"),
        ));
    }
    Ok(value.to_i64()? as u64)
}

/// The date part shared by xs:date and xs:dateTime: a proleptic Gregorian date whose
/// year may have more than four digits or a minus sign (year 0000 is refused, as libxml2 does).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct XsdDate {
    pub(crate) year: i64,
    pub(crate) month: u8,
    pub(crate) day: u8,
    /// The timezone offset in minutes, if one was given.
    pub(crate) offset_minutes: Option<i16>,
}

/// The years chrono (and so the store's instants and xAPI timestamps) can represent.
const YEAR_LIMIT: &str = "years -262143 to 262142";

impl XsdDate {
    /// Reads an xs:date: `-?YYYY-MM-DD` with an optional timezone.
    pub(crate) fn parse(text: &str) -> Result<XsdDate, XsdValueError> {
        let text = collapse(text);
        let (date, rest) = parse_date_part(text, "xs:date")?;
        let offset_minutes = parse_timezone(rest, "xs:date")?;
        Ok(XsdDate {
            offset_minutes,
            ..date
        })
    }

    /// The calendar date, or `Beyond` for a year chrono cannot represent.
    pub(crate) fn naive(&self) -> Result<NaiveDate, XsdValueError> {
        i32::try_from(self.year)
            .ok()
            .and_then(|year| NaiveDate::from_ymd_opt(year, self.month.into(), self.day.into()))
            .ok_or_else(|| XsdValueError::Beyond {
                what: format!("the year {}", self.year),
                limit: YEAR_LIMIT,
            })
    }

    /// The order of dates as the calendar has it, the timezone aside.
    pub(crate) fn calendar_key(&self) -> (i64, u8, u8) {
        (self.year, self.month, self.day)
    }

    fn next_day(self) -> XsdDate {
        if self.day < days_in_month(self.year, self.month) {
            return XsdDate {
                day: self.day + 1,
                ..self
            };
        }
        if self.month < 12 {
            return XsdDate {
                month: self.month + 1,
                day: 1,
                ..self
            };
        }
        // libxml2 has no year 0000 either: -0001 is followed by 0001.
        let year = if self.year == -1 { 1 } else { self.year + 1 };
        XsdDate {
            year,
            month: 1,
            day: 1,
            ..self
        }
    }
}

/// An xs:dateTime, with `24:00:00` already turned into 00:00:00 of the next day.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct XsdDateTime {
    pub(crate) date: XsdDate,
    pub(crate) hour: u8,
    pub(crate) minute: u8,
    pub(crate) second: u8,
    /// The fraction of the second, cut to nanoseconds (what chrono and the store keep).
    pub(crate) nanosecond: u32,
}

impl XsdDateTime {
    /// Reads an xs:dateTime: `date 'T' hh:mm:ss(.s+)?` with an optional timezone.
    pub(crate) fn parse(text: &str) -> Result<XsdDateTime, XsdValueError> {
        const KIND: &str = "xs:dateTime";
        let text = collapse(text);
        let (date, rest) = parse_date_part(text, KIND)?;
        let rest = rest
            .strip_prefix('T')
            .ok_or_else(|| XsdValueError::lexical(KIND, "no 'T' between date and time"))?;
        let bytes = rest.as_bytes();
        if bytes.len() < 8 || bytes[2] != b':' || bytes[5] != b':' {
            return Err(XsdValueError::lexical(KIND, "the time is not hh:mm:ss"));
        }
        let hour = two_digits(&rest[0..2], KIND)?;
        let minute = two_digits(&rest[3..5], KIND)?;
        let second = two_digits(&rest[6..8], KIND)?;
        let mut rest = &rest[8..];
        let mut nanosecond = 0u32;
        let mut fraction_is_zero = true;
        if let Some(after_dot) = rest.strip_prefix('.') {
            let length = after_dot
                .bytes()
                .take_while(|byte| byte.is_ascii_digit())
                .count();
            if length == 0 {
                return Err(XsdValueError::lexical(KIND, "no digits after the '.'"));
            }
            let fraction = &after_dot[..length];
            fraction_is_zero = fraction.bytes().all(|byte| byte == b'0');
            let mut nanos = String::from(&fraction[..length.min(9)]);
            while nanos.len() < 9 {
                nanos.push('0');
            }
            nanosecond = nanos.parse().expect("nine digits");
            rest = &after_dot[length..];
        }
        let offset_minutes = parse_timezone(rest, KIND)?;
        if minute > 59 || second > 59 {
            return Err(XsdValueError::lexical(KIND, "minutes or seconds above 59"));
        }
        let date = XsdDate {
            offset_minutes,
            ..date
        };
        match hour {
            0..=23 => Ok(XsdDateTime {
                date,
                hour,
                minute,
                second,
                nanosecond,
            }),
            // 24:00:00 is the first instant of the next day.
            24 if minute == 0 && second == 0 && fraction_is_zero => Ok(XsdDateTime {
                date: date.next_day(),
                hour: 0,
                minute: 0,
                second: 0,
                nanosecond: 0,
            }),
            _ => Err(XsdValueError::lexical(
                KIND,
                "the hour is above 23 (24 only as 24:00:00)",
            )),
        }
    }

    /// The instant it names. A value without offset is Europe/Amsterdam wall-clock time:
    /// the standard's own examples carry no offset and every sender is Dutch. In the
    /// autumn fold the earlier instant counts; a time in the spring gap is read one hour on.
    pub(crate) fn to_instant(&self) -> Result<DateTime<Utc>, XsdValueError> {
        let naive: NaiveDateTime = self
            .date
            .naive()?
            .and_hms_nano_opt(
                self.hour.into(),
                self.minute.into(),
                self.second.into(),
                self.nanosecond,
            )
            .expect("checked time of day");
        let beyond = || XsdValueError::Beyond {
            what: format!("the year {}", self.date.year),
            limit: YEAR_LIMIT,
        };
        if let Some(minutes) = self.date.offset_minutes {
            let offset =
                FixedOffset::east_opt(i32::from(minutes) * 60).expect("offset within 14:00");
            return offset
                .from_local_datetime(&naive)
                .single()
                .map(|instant| instant.with_timezone(&Utc))
                .ok_or_else(beyond);
        }
        match Amsterdam.from_local_datetime(&naive) {
            LocalResult::Single(local) => Ok(local.with_timezone(&Utc)),
            LocalResult::Ambiguous(earliest, _) => Ok(earliest.with_timezone(&Utc)),
            LocalResult::None => naive
                .checked_add_signed(chrono::Duration::hours(1))
                .and_then(|shifted| Amsterdam.from_local_datetime(&shifted).earliest())
                .map(|local| local.with_timezone(&Utc))
                .ok_or_else(beyond),
        }
    }
}

fn two_digits(text: &str, kind: &'static str) -> Result<u8, XsdValueError> {
    if text.len() == 2 && text.bytes().all(|byte| byte.is_ascii_digit()) {
        Ok(text.parse().expect("two digits"))
    } else {
        Err(XsdValueError::lexical(
            kind,
            format!("'{text}' is not two digits"),
        ))
    }
}

fn is_leap(year: i64) -> bool {
    // As libxml2 computes it, on the year as written.
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: u8) -> u8 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Reads `-?YYYY-MM-DD` from the start of `text`; returns the date and what follows.
fn parse_date_part<'a>(
    text: &'a str,
    kind: &'static str,
) -> Result<(XsdDate, &'a str), XsdValueError> {
    // Every valid form is ASCII; checking first keeps the byte slicing below on char boundaries.
    if !text.is_ascii() {
        return Err(XsdValueError::lexical(kind, "a character outside ASCII"));
    }
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let year_length = unsigned
        .bytes()
        .take_while(|byte| byte.is_ascii_digit())
        .count();
    let year_text = &unsigned[..year_length];
    if year_length < 4 {
        return Err(XsdValueError::lexical(
            kind,
            "the year has fewer than four digits",
        ));
    }
    if year_length > 4 && year_text.starts_with('0') {
        return Err(XsdValueError::lexical(
            kind,
            "a year of more than four digits has a leading zero",
        ));
    }
    if year_text.bytes().all(|byte| byte == b'0') {
        return Err(XsdValueError::lexical(kind, "there is no year 0000"));
    }
    let magnitude: i64 = year_text.parse().map_err(|_| XsdValueError::Beyond {
        what: format!(
            "the year {}{}",
            if negative { "-" } else { "" },
            crate::domain::violation::shorten(year_text, 40)
        ),
        limit: YEAR_LIMIT,
    })?;
    let year = if negative { -magnitude } else { magnitude };
    let rest = &unsigned[year_length..];
    let bytes = rest.as_bytes();
    if bytes.len() < 6 || bytes[0] != b'-' || bytes[3] != b'-' {
        return Err(XsdValueError::lexical(kind, "the date is not YYYY-MM-DD"));
    }
    let month = two_digits(&rest[1..3], kind)?;
    let day = two_digits(&rest[4..6], kind)?;
    if !(1..=12).contains(&month) {
        return Err(XsdValueError::lexical(
            kind,
            format!("there is no month {month}"),
        ));
    }
    if day == 0 || day > days_in_month(year, month) {
        return Err(XsdValueError::lexical(
            kind,
            format!("month {month} of year {year} has no day {day}"),
        ));
    }
    Ok((
        XsdDate {
            year,
            month,
            day,
            offset_minutes: None,
        },
        &rest[6..],
    ))
}

/// Reads an optional timezone (`Z` or `±hh:mm` within ±14:00) that must end the text.
fn parse_timezone(text: &str, kind: &'static str) -> Result<Option<i16>, XsdValueError> {
    if text.is_empty() {
        return Ok(None);
    }
    if text == "Z" {
        return Ok(Some(0));
    }
    let bytes = text.as_bytes();
    let sign: i16 = match bytes[0] {
        b'+' => 1,
        b'-' => -1,
        _ => {
            return Err(XsdValueError::lexical(
                kind,
                format!("'{text}' is not a timezone"),
            ))
        }
    };
    if bytes.len() != 6 || bytes[3] != b':' {
        return Err(XsdValueError::lexical(kind, "the timezone is not ±hh:mm"));
    }
    let hours = i16::from(two_digits(&text[1..3], kind)?);
    let minutes = i16::from(two_digits(&text[4..6], kind)?);
    if minutes > 59 || hours > 14 || (hours == 14 && minutes > 0) {
        return Err(XsdValueError::lexical(
            kind,
            "the timezone lies outside -14:00..+14:00",
        ));
    }
    Ok(Some(sign * (hours * 60 + minutes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_compare_by_value() {
        let value = |text: &str| XsdInteger::parse(text).unwrap();
        assert_eq!(value("1"), value("01"));
        assert_eq!(value("+1"), value(" 001\n"));
        assert_eq!(value("-0"), value("0"));
        assert_eq!(value("-0").to_string(), "0");
        assert_eq!(value("+007").to_string(), "7");
        assert!(value("-2") < value("-1"));
        assert!(value("9") < value("10"));
        assert!(value("99999999999999999999999") > value("9223372036854775807"));
        for bad in ["", "+", "-", "1 2", "7.0", "0x1", "１"] {
            assert!(XsdInteger::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn integers_beyond_i64_are_beyond_not_lexical() {
        assert_eq!(
            parse_stored_count("9223372036854775807").unwrap(),
            i64::MAX as u64
        );
        assert!(matches!(
            parse_stored_count("9223372036854775808"),
            Err(XsdValueError::Beyond { .. })
        ));
        assert!(matches!(parse_stored_count("-0"), Ok(0)));
        assert!(matches!(
            parse_stored_count("-1"),
            Err(XsdValueError::Lexical { .. })
        ));
    }

    fn instant(text: &str) -> String {
        XsdDateTime::parse(text)
            .unwrap()
            .to_instant()
            .unwrap()
            .to_rfc3339()
    }

    #[test]
    fn date_times_follow_xsd() {
        assert_eq!(instant("2026-10-01T24:00:00Z"), "2026-10-02T00:00:00+00:00");
        assert_eq!(
            instant("2026-12-31T24:00:00.000Z"),
            "2027-01-01T00:00:00+00:00"
        );
        assert_eq!(instant("2024-02-28T24:00:00Z"), "2024-02-29T00:00:00+00:00");
        assert_eq!(
            instant("2026-10-01T08:00:00+14:00"),
            "2026-09-30T18:00:00+00:00"
        );
        assert_eq!(
            instant("2026-10-01T08:00:00-14:00"),
            "2026-10-01T22:00:00+00:00"
        );
        assert_eq!(
            instant("2026-10-01T08:00:00.1234567890123456789012345678901234567890Z"),
            "2026-10-01T08:00:00.123456789+00:00"
        );
        assert_eq!(
            instant("10000-01-01T00:00:00Z"),
            "+10000-01-01T00:00:00+00:00"
        );
        assert_eq!(
            instant("-0001-01-01T00:00:00Z"),
            "-0001-01-01T00:00:00+00:00"
        );
        // Summer and winter time for values without offset.
        assert_eq!(instant("2026-10-01T08:00:00"), "2026-10-01T06:00:00+00:00");
        assert_eq!(instant("2026-12-01T08:00:00"), "2026-12-01T07:00:00+00:00");
        assert_eq!(instant("2026-10-25T02:30:00"), "2026-10-25T00:30:00+00:00");
        assert_eq!(instant("2026-03-29T02:30:00"), "2026-03-29T01:30:00+00:00");
        for bad in [
            "2026-10-01T24:00:01",
            "2026-10-01T24:00:00.001",
            "0000-01-01T00:00:00",
            "02026-10-01T00:00:00",
            "2026-10-01T08:00:00+14:01",
            "2026-10-01T08:00:00-15:00",
            "2026-02-29T08:00:00",
            "2026-10-01T08:00",
            "2026-10-01T08:00:00.",
            "2026-10-01T08:60:00",
            "gisteren",
            "2026-10-01T0é:00:00",
            "2026-1é-01T08:00:00",
            "２０２６-10-01T08:00:00",
        ] {
            assert!(
                matches!(XsdDateTime::parse(bad), Err(XsdValueError::Lexical { .. })),
                "{bad}"
            );
        }
    }

    /// Random texts over the characters these types use: no panic, and integers
    /// round-trip through their canonical form and order as i128 does.
    #[test]
    fn parsers_hold_on_random_text() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(13);
        let alphabet: Vec<char> = "0123456789+-:.TZ \té".chars().collect();
        for _ in 0..20_000 {
            let length = rng.gen_range(0..32);
            let text: String = (0..length)
                .map(|_| alphabet[rng.gen_range(0..alphabet.len())])
                .collect();
            let _ = XsdDate::parse(&text).map(|date| date.naive());
            let _ = XsdDateTime::parse(&text).map(|value| value.to_instant());
            if let Ok(value) = XsdInteger::parse(&text) {
                assert_eq!(XsdInteger::parse(&value.to_string()).unwrap(), value);
            }
        }
        for _ in 0..20_000 {
            let (a, b): (i64, i64) = (rng.gen(), rng.gen_range(-1000..1000));
            let (left, right) = (
                XsdInteger::parse(&format!("{a:+}")).unwrap(),
                XsdInteger::parse(&format!("00{b}"))
                    .unwrap_or_else(|_| XsdInteger::parse(&b.to_string()).unwrap()),
            );
            assert_eq!(left.cmp(&right), a.cmp(&b), "{a} {b}");
            assert_eq!(left.to_i64().unwrap(), a);
        }
    }

    #[test]
    fn years_chrono_cannot_hold_are_beyond() {
        for far in [
            "999999-01-01T00:00:00Z",
            "99999999999999999999999-01-01T00:00:00Z",
        ] {
            let parsed = XsdDateTime::parse(far).and_then(|value| value.to_instant());
            assert!(matches!(parsed, Err(XsdValueError::Beyond { .. })), "{far}");
        }
    }

    #[test]
    fn dates_follow_xsd_and_libxml2_leap_years() {
        let date = |text: &str| XsdDate::parse(text);
        assert_eq!(date("2026-10-01+14:00").unwrap().offset_minutes, Some(840));
        assert!(date("-0004-02-29").is_ok());
        assert!(date("-0001-02-29").is_err());
        assert!(date("2000-02-29").is_ok());
        assert!(date("1900-02-29").is_err());
        assert!(date("12026-10-01").unwrap().naive().is_ok());
        assert!(date("2026-10-01+14:01").is_err());
        assert!(
            date("2026-10-01").unwrap().calendar_key()
                < date("12026-01-01").unwrap().calendar_key()
        );
        assert!(
            date("-0001-12-31").unwrap().calendar_key()
                < date("0001-01-01").unwrap().calendar_key()
        );
    }
}
