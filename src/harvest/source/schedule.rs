//! When a source runs: a fixed interval (`15m`) or a five-field cron expression in UTC.
//!
//! Cron parsing is croner's (OCPS 1.x: ranges, steps, lists, `L`, `#`, nicknames such as
//! `@daily`). Seconds fields are refused: a harvest more often than once a minute is never
//! what a tenant needs and is unkind to the sites harvested. Intervals have the same floor.

use std::fmt;

use croner::parser::{CronParser, Seconds};
use croner::Cron;
use time::OffsetDateTime;

use super::values::{string_serde, HumanDuration};

/// Shortest interval between runs.
pub const MIN_INTERVAL_SECS: u64 = 60;

#[derive(Clone)]
pub enum Schedule {
    Interval(HumanDuration),
    Cron { text: String, cron: Box<Cron> },
}

impl Schedule {
    pub fn parse(s: &str) -> Result<Self, String> {
        let t = s.trim();
        // An interval starts with a digit and has no spaces; a cron expression has fields.
        if t.starts_with(|c: char| c.is_ascii_digit()) && !t.contains(char::is_whitespace) {
            let d = HumanDuration::parse(t)?;
            if d.secs() < MIN_INTERVAL_SECS {
                return Err(format!(
                    "interval {t:?} is shorter than one minute; use at least 1m"
                ));
            }
            return Ok(Schedule::Interval(d));
        }
        let parser = CronParser::builder().seconds(Seconds::Disallowed).build();
        let cron = parser.parse(t).map_err(|e| {
            format!(
                "invalid schedule {t:?}: {e}; use an interval such as \"15m\" or a five-field cron expression such as \"0 3 * * *\""
            )
        })?;
        Ok(Schedule::Cron {
            text: t.to_owned(),
            cron: Box::new(cron),
        })
    }

    /// The first run time strictly after `after` (UTC), `None` if the pattern never
    /// fires again (e.g. `0 0 30 2 *`) or the time is outside what chrono represents.
    pub fn next_after(&self, after: OffsetDateTime) -> Option<OffsetDateTime> {
        match self {
            Schedule::Interval(d) => after.checked_add(time::Duration::try_from(d.0).ok()?),
            Schedule::Cron { cron, .. } => {
                let start =
                    chrono::DateTime::from_timestamp(after.unix_timestamp(), after.nanosecond())?;
                let next = cron.find_next_occurrence(&start, false).ok()?;
                OffsetDateTime::from_unix_timestamp(next.timestamp()).ok()
            }
        }
    }
}

impl PartialEq for Schedule {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Schedule({self})")
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Interval(d) => d.fmt(f),
            Schedule::Cron { text, .. } => f.write_str(text),
        }
    }
}
string_serde!(Schedule);

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn intervals_and_cron() {
        let t = datetime!(2024-03-01 10:07:30 UTC);
        let s = Schedule::parse("15m").unwrap();
        assert_eq!(s.next_after(t), Some(datetime!(2024-03-01 10:22:30 UTC)));
        let s = Schedule::parse("0 3 * * *").unwrap();
        assert_eq!(s.next_after(t), Some(datetime!(2024-03-02 03:00:00 UTC)));
        let s = Schedule::parse("*/10 * * * 1-5").unwrap();
        assert_eq!(s.next_after(t), Some(datetime!(2024-03-01 10:10:00 UTC)));
        assert_eq!(Schedule::parse("@daily").unwrap().to_string(), "@daily");
    }

    #[test]
    fn bad_schedules_say_what_to_write() {
        for bad in ["30s", "0 0 3 * * *", "61 * * * *", "every day", "", "15"] {
            let e = Schedule::parse(bad).unwrap_err();
            assert!(e.contains("use") || e.contains("unit"), "{bad}: {e}");
        }
    }
}
