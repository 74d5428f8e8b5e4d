//! Five-field cron schedules (`minute hour day-of-month month day-of-week`, in UTC), as
//! crontab(5) writes them: `*`, numbers, ranges `a-b`, lists `a,b`, steps `*/n` and `a-b/n`,
//! and the macros `@hourly`, `@daily`, `@weekly`, `@monthly`. Enough for backup schedules,
//! without a dependency.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A parsed schedule; its text is kept for display and serialization.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cron {
    text: String,
    minutes: u64,
    hours: u32,
    days: u32,
    months: u16,
    weekdays: u8,
    /// Both day fields restricted: a day matches either (crontab's rule).
    either_day: bool,
}

const FIELDS: [(&str, u32, u32); 5] = [
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 7),
];

impl Cron {
    pub fn parse(text: &str) -> Result<Self, String> {
        let expanded = match text.trim() {
            "@hourly" => "0 * * * *",
            "@daily" | "@midnight" => "0 0 * * *",
            "@weekly" => "0 0 * * 0",
            "@monthly" => "0 0 1 * *",
            t => t,
        };
        let parts: Vec<&str> = expanded.split_whitespace().collect();
        if parts.len() != 5 {
            return Err(format!(
                "invalid schedule {text:?}: expected five fields (minute hour day-of-month month day-of-week), like \"0 3 * * *\", or @daily"
            ));
        }
        let mut sets = [0u64; 5];
        for (i, (part, (name, lo, hi))) in parts.iter().zip(FIELDS).enumerate() {
            sets[i] = field(part, lo, hi)
                .map_err(|why| format!("invalid schedule {text:?}: {name} {part:?}: {why}"))?;
        }
        // Sunday is 0 or 7.
        let mut weekdays = sets[4];
        if weekdays & (1 << 7) != 0 {
            weekdays |= 1;
        }
        Ok(Cron {
            text: text.trim().to_owned(),
            minutes: sets[0],
            hours: sets[1] as u32,
            days: sets[2] as u32,
            months: sets[3] as u16,
            weekdays: (weekdays & 0x7f) as u8,
            either_day: !parts[2].starts_with('*') && !parts[4].starts_with('*'),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The first time the schedule fires strictly after `after` (milliseconds since the epoch,
    /// UTC), within eight years; `None` for a schedule that never fires (February 30th).
    pub fn next_after(&self, after: i64) -> Option<i64> {
        const MINUTE: i64 = 60_000;
        let mut t = (after.div_euclid(MINUTE) + 1) * MINUTE;
        let end = after + 8 * 366 * 24 * 60 * MINUTE;
        while t <= end {
            let days = t.div_euclid(86_400_000);
            let (_, month, day) = civil(days);
            let weekday = (days + 4).rem_euclid(7) as u32; // 1970-01-01 was a Thursday.
            let day_ok = {
                let dom = self.days & (1 << day) != 0;
                let dow = self.weekdays & (1 << weekday) != 0;
                if self.either_day {
                    dom || dow
                } else {
                    dom && dow
                }
            };
            if self.months & (1 << month) == 0 || !day_ok {
                t = (days + 1) * 86_400_000;
                continue;
            }
            let minute_of_day = t.rem_euclid(86_400_000) / MINUTE;
            let (hour, minute) = ((minute_of_day / 60) as u32, (minute_of_day % 60) as u32);
            if self.hours & (1 << hour) == 0 {
                t = days * 86_400_000 + (i64::from(hour) + 1) * 60 * MINUTE;
                continue;
            }
            if self.minutes & (1 << minute) == 0 {
                t += MINUTE;
                continue;
            }
            return Some(t);
        }
        None
    }
}

/// One field as a bit set of the values it allows.
fn field(text: &str, lo: u32, hi: u32) -> Result<u64, String> {
    let mut set = 0u64;
    for item in text.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => {
                let step: u32 = s
                    .parse()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| format!("step {s:?} is not a positive number"))?;
                (r, step)
            }
            None => (item, 1),
        };
        let number = |s: &str| -> Result<u32, String> {
            let n: u32 = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
            if n < lo || n > hi {
                return Err(format!("{n} is outside {lo}-{hi}"));
            }
            Ok(n)
        };
        let (from, to) = match range {
            "*" => (lo, hi),
            r => match r.split_once('-') {
                Some((a, b)) => (number(a)?, number(b)?),
                None if step > 1 => (number(r)?, hi),
                None => {
                    let n = number(r)?;
                    (n, n)
                }
            },
        };
        if from > to {
            return Err(format!("range {from}-{to} runs backwards"));
        }
        let mut v = from;
        while v <= to {
            set |= 1 << v;
            v += step;
        }
    }
    Ok(set)
}

/// Year, month (1-12) and day (1-31) of a day counted from 1970-01-01 (Hinnant's algorithm).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

impl Serialize for Cron {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Cron {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Cron::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl schemars::JsonSchema for Cron {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Cron".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "a cron schedule in UTC: minute hour day-of-month month day-of-week, like \"0 3 * * *\", or @hourly, @daily, @weekly, @monthly"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Milliseconds of a UTC time given as `YYYY-MM-DDTHH:MM:00Z`.
    fn at(s: &str) -> i64 {
        humantime::parse_rfc3339(s)
            .expect("a time")
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_millis() as i64
    }

    fn next(cron: &str, after: &str) -> String {
        let c = Cron::parse(cron).expect("parses");
        let t = c.next_after(at(after)).expect("fires");
        humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_millis(t as u64),
        )
        .to_string()
    }

    #[test]
    fn schedules_fire_at_the_next_matching_minute_in_utc() {
        assert_eq!(
            next("0 3 * * *", "2026-12-05T01:30:00Z"),
            "2026-12-05T03:00:00Z"
        );
        assert_eq!(
            next("0 3 * * *", "2026-12-05T03:00:00Z"),
            "2026-12-06T03:00:00Z"
        );
        assert_eq!(
            next("*/15 * * * *", "2026-12-05T01:31:10Z"),
            "2026-12-05T01:45:00Z"
        );
        assert_eq!(
            next("@monthly", "2026-12-05T00:00:00Z"),
            "2027-01-01T00:00:00Z"
        );
        // 2026-12-06 is a Sunday, 0 and 7 alike.
        assert_eq!(
            next("30 2 * * 0", "2026-12-05T00:00:00Z"),
            "2026-12-06T02:30:00Z"
        );
        assert_eq!(
            next("30 2 * * 7", "2026-12-05T00:00:00Z"),
            "2026-12-06T02:30:00Z"
        );
        assert_eq!(
            next("0 0 29 2 *", "2026-12-05T00:00:00Z"),
            "2028-02-29T00:00:00Z"
        );
        // Both day fields: either matches (crontab's rule).
        assert_eq!(
            next("0 0 1 * 1", "2026-12-05T00:00:00Z"),
            "2026-12-07T00:00:00Z"
        );
        assert_eq!(
            next("5-10/5 8,20 * * *", "2026-12-05T08:06:00Z"),
            "2026-12-05T08:10:00Z"
        );
        assert_eq!(
            Cron::parse("0 0 30 2 *").expect("parses").next_after(0),
            None
        );
    }

    #[test]
    fn a_bad_schedule_names_the_field_and_why() {
        let e = Cron::parse("0 25 * * *").expect_err("bad hour");
        assert!(e.contains("hour") && e.contains("outside 0-23"), "{e}");
        let e = Cron::parse("0 3 * *").expect_err("four fields");
        assert!(e.contains("five fields"), "{e}");
        let e = Cron::parse("*/0 * * * *").expect_err("zero step");
        assert!(e.contains("minute") && e.contains("step"), "{e}");
    }
}
