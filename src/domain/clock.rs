//! The gateway's one "now" and "today" (Europe/Amsterdam): the wall clock, or a fixed instant that a test injects.

use chrono::{DateTime, NaiveDate, Utc};

/// Where the current time comes from. Every "now" and "today" of the gateway is read
/// through this, so that a rule that depends on the time can be checked at any instant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Clock {
    /// The system's wall clock.
    #[default]
    System,
    /// Always this instant (the unit tests' seam).
    #[cfg(test)]
    Fixed(DateTime<Utc>),
}

impl Clock {
    pub(crate) fn now(self) -> DateTime<Utc> {
        match self {
            Clock::System => Utc::now(),
            #[cfg(test)]
            Clock::Fixed(instant) => instant,
        }
    }

    /// Today in the Netherlands: the day mandates and grants are checked against.
    pub(crate) fn today(self) -> NaiveDate {
        self.now()
            .with_timezone(&chrono_tz::Europe::Amsterdam)
            .date_naive()
    }
}

/// Today in the Netherlands on the wall clock: where no `Clock` is passed in (the read API's
/// grants, the CLI's defaults), this is the day, so that no caller computes its own.
pub(crate) fn today() -> NaiveDate {
    Clock::System.today()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn today_is_the_day_in_amsterdam() {
        let at = |text: &str| Clock::Fixed(text.parse().expect("an RFC 3339 instant"));
        assert_eq!(at("2026-12-31T22:59:59Z").today().to_string(), "2026-12-31");
        assert_eq!(at("2026-12-31T23:00:00Z").today().to_string(), "2027-01-01");
        assert_eq!(at("2026-06-30T22:00:00Z").today().to_string(), "2026-07-01");
    }
}
