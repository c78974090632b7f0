//! Alertmanager's `time_intervals`: named sets of times of day, weekdays, days of month, months
//! and years, used to mute routes (`mute_time_intervals`) or to limit them (`active_time_intervals`).
//! `location` is an IANA zone (`Europe/Berlin`, `America/New_York`) from the tz database compiled in
//! by `chrono-tz`, with daylight saving as Alertmanager (Go's `time.LoadLocation`) applies it: the
//! instant is converted to the zone's wall clock, then compared, so a skipped hour never matches
//! and a repeated one matches twice; or a fixed offset (`+08:00`, Tarsier's addition).

use chrono::{DateTime, Datelike, FixedOffset, NaiveDateTime, Timelike, Utc};
use serde::{Deserialize, Serialize};

/// A named time interval as written in the config.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamedTimeInterval {
    /// The name routes refer to.
    pub name: String,
    /// The interval matches when any of these matches.
    #[serde(default)]
    pub time_intervals: Vec<TimeIntervalSpec>,
}

/// One interval: every listed field must match (an absent field matches everything).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeIntervalSpec {
    /// Times of day, `start_time` inclusive, `end_time` exclusive (`"24:00"` allowed).
    #[serde(default)]
    pub times: Vec<TimeRange>,
    /// `monday`, `monday:friday`, ...
    #[serde(default)]
    pub weekdays: Vec<String>,
    /// `1`, `1:5`, `-1` (last day), `-3:-1`.
    #[serde(default)]
    pub days_of_month: Vec<String>,
    /// `january`, `1:3`, `december`.
    #[serde(default)]
    pub months: Vec<String>,
    /// `2024`, `2024:2026`.
    #[serde(default)]
    pub years: Vec<String>,
    /// `UTC` (default), an IANA zone such as `Europe/Berlin` (daylight saving applied), or a fixed
    /// offset such as `+08:00`.
    #[serde(default)]
    pub location: Option<String>,
}

/// A `HH:MM` range of the day.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeRange {
    /// Inclusive start, `HH:MM`.
    pub start_time: String,
    /// Exclusive end, `HH:MM` (up to `24:00`).
    pub end_time: String,
}

/// Where wall-clock fields are read.
#[derive(Clone, Copy, Debug)]
enum Location {
    Fixed(FixedOffset),
    Zone(chrono_tz::Tz),
}

impl Location {
    fn wall_clock(self, t: DateTime<Utc>) -> NaiveDateTime {
        match self {
            Location::Fixed(o) => t.with_timezone(&o).naive_local(),
            Location::Zone(z) => t.with_timezone(&z).naive_local(),
        }
    }
}

/// A checked interval, ready to test instants against.
#[derive(Clone, Debug)]
pub struct TimeInterval {
    times: Vec<(u32, u32)>,
    weekdays: Vec<(u32, u32)>,
    days_of_month: Vec<(i32, i32)>,
    months: Vec<(u32, u32)>,
    years: Vec<(i32, i32)>,
    location: Location,
}

impl TimeInterval {
    /// Checks a spec; errors name the offending field.
    pub fn from_spec(spec: &TimeIntervalSpec) -> Result<Self, String> {
        let times = spec
            .times
            .iter()
            .map(|t| {
                let (s, e) = (minutes(&t.start_time)?, minutes(&t.end_time)?);
                if s >= e {
                    return Err(format!("times: start_time {} is not before end_time {}", t.start_time, t.end_time));
                }
                Ok((s, e))
            })
            .collect::<Result<_, String>>()?;
        let weekdays = ranges(&spec.weekdays, "weekdays", |s| {
            ["sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"]
                .iter()
                .position(|d| d.eq_ignore_ascii_case(s))
                .map(|p| p as u32)
        })?;
        let months = ranges(&spec.months, "months", |s| {
            let names = [
                "january",
                "february",
                "march",
                "april",
                "may",
                "june",
                "july",
                "august",
                "september",
                "october",
                "november",
                "december",
            ];
            names
                .iter()
                .position(|m| m.eq_ignore_ascii_case(s))
                .map(|p| p as u32 + 1)
                .or_else(|| s.parse().ok().filter(|m| (1..=12).contains(m)))
        })?;
        let days_of_month = ranges(&spec.days_of_month, "days_of_month", |s| {
            s.parse::<i32>().ok().filter(|d| *d != 0 && (-31..=31).contains(d))
        })?;
        let years = ranges(&spec.years, "years", |s| s.parse::<i32>().ok().filter(|y| *y > 0))?;
        let location = match spec.location.as_deref() {
            None | Some("") => Location::Zone(chrono_tz::UTC),
            Some(loc) => parse_location(loc)?,
        };
        Ok(Self { times, weekdays, days_of_month, months, years, location })
    }

    /// Whether `t` falls inside the interval.
    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        let local = self.location.wall_clock(t);
        let minute = local.hour() * 60 + local.minute();
        let in_range = |v: u32, rs: &[(u32, u32)]| rs.is_empty() || rs.iter().any(|(a, b)| (*a..=*b).contains(&v));
        if !self.times.is_empty() && !self.times.iter().any(|(s, e)| minute >= *s && minute < *e) {
            return false;
        }
        if !in_range(local.weekday().num_days_from_sunday(), &self.weekdays) || !in_range(local.month(), &self.months) {
            return false;
        }
        if !self.years.is_empty() && !self.years.iter().any(|(a, b)| (*a..=*b).contains(&local.year())) {
            return false;
        }
        if !self.days_of_month.is_empty() {
            let days_in_month = days_in_month(local.year(), local.month()) as i32;
            let day = local.day() as i32;
            let abs = |d: i32| if d < 0 { days_in_month + 1 + d } else { d };
            if !self.days_of_month.iter().any(|(a, b)| (abs(*a)..=abs(*b)).contains(&day)) {
                return false;
            }
        }
        true
    }
}

fn days_in_month(year: i32, month: u32) -> u32 {
    let (ny, nm) = if month == 12 { (year + 1, 1) } else { (year, month + 1) };
    let first_next = chrono::NaiveDate::from_ymd_opt(ny, nm, 1).expect("valid date");
    first_next.pred_opt().expect("valid date").day()
}

fn minutes(s: &str) -> Result<u32, String> {
    let bad = || format!("times: {s:?} is not HH:MM between 00:00 and 24:00");
    let (h, m) = s.split_once(':').ok_or_else(bad)?;
    let (h, m): (u32, u32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if m >= 60 || h > 24 || (h == 24 && m != 0) {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

fn ranges<T: PartialOrd + Copy>(
    items: &[String],
    field: &str,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<Vec<(T, T)>, String> {
    items
        .iter()
        .map(|item| {
            let item = item.trim();
            let one = |s: &str| parse(s.trim()).ok_or_else(|| format!("{field}: {item:?} is not valid"));
            // Negative days ("-3:-1") contain ':' after a '-', so split on the first ':' only.
            match item.split_once(':') {
                Some((a, b)) => {
                    let (a, b) = (one(a)?, one(b)?);
                    if a > b {
                        return Err(format!("{field}: range {item:?} starts after it ends"));
                    }
                    Ok((a, b))
                }
                None => one(item).map(|v| (v, v)),
            }
        })
        .collect()
}

fn parse_location(loc: &str) -> Result<Location, String> {
    if let Ok(zone) = loc.parse::<chrono_tz::Tz>() {
        return Ok(Location::Zone(zone));
    }
    let bad = || {
        format!(
            "location: {loc:?} is not supported: use UTC, an IANA zone such as Europe/Berlin, or an offset such as +08:00"
        )
    };
    let sign = match loc.chars().next() {
        Some('+') => 1,
        Some('-') => -1,
        _ => return Err(bad()),
    };
    let (h, m) = loc[1..].split_once(':').unwrap_or((&loc[1..], "0"));
    let (h, m): (i32, i32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    FixedOffset::east_opt(sign * (h * 3600 + m * 60)).filter(|_| h <= 14 && m < 60).map(Location::Fixed).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn spec(yaml: &str) -> TimeInterval {
        TimeInterval::from_spec(&serde_yaml_ng::from_str(yaml).unwrap()).unwrap()
    }

    #[test]
    fn office_hours_in_shanghai() {
        let ti = spec(
            "times: [{start_time: '09:00', end_time: '18:00'}]\nweekdays: ['monday:friday']\nlocation: Asia/Shanghai",
        );
        // 2026-11-27 is a Friday; 01:00 UTC is 09:00 in Shanghai.
        assert!(ti.contains(at("2026-11-27T01:00:00Z")));
        assert!(!ti.contains(at("2026-11-27T00:59:00Z")));
        assert!(!ti.contains(at("2026-11-27T10:00:00Z")), "18:00 is exclusive");
        assert!(!ti.contains(at("2026-11-28T03:00:00Z")), "saturday");
    }

    #[test]
    fn negative_days_count_from_the_month_end() {
        let ti = spec("days_of_month: ['-2:-1']\nmonths: ['february']\nyears: ['2024:2025']");
        assert!(ti.contains(at("2024-02-28T12:00:00Z")));
        assert!(ti.contains(at("2024-02-29T12:00:00Z")));
        assert!(!ti.contains(at("2024-02-27T12:00:00Z")));
        assert!(ti.contains(at("2025-02-27T12:00:00Z")));
        assert!(!ti.contains(at("2026-02-27T12:00:00Z")));
    }

    #[test]
    fn fixed_offsets_and_bad_input() {
        let ti = spec("times: [{start_time: '00:00', end_time: '01:00'}]\nlocation: '-05:00'");
        assert!(ti.contains(at("2026-01-01T05:30:00Z")));
        for bad in [
            "location: Europe/Atlantis",
            "location: Local",
            "weekdays: [funday]",
            "times: [{start_time: '10:00', end_time: '09:00'}]",
            "days_of_month: ['0']",
            "months: ['3:1']",
        ] {
            let s: TimeIntervalSpec = serde_yaml_ng::from_str(bad).unwrap();
            assert!(TimeInterval::from_spec(&s).is_err(), "{bad}");
        }
    }

    #[test]
    fn daylight_saving_moves_the_interval_in_utc() {
        // Business hours in Berlin: 09:00 is 08:00 UTC in winter (CET) and 07:00 UTC in summer
        // (CEST). The switch was on Sunday 2026-03-29 at 02:00 local.
        let berlin = spec("times: [{start_time: '09:00', end_time: '17:00'}]\nlocation: Europe/Berlin");
        assert!(berlin.contains(at("2026-03-27T08:00:00Z")) && !berlin.contains(at("2026-03-27T07:59:00Z")), "CET");
        assert!(berlin.contains(at("2026-03-30T07:00:00Z")) && !berlin.contains(at("2026-03-30T06:59:00Z")), "CEST");
        assert!(!berlin.contains(at("2026-03-30T15:00:00Z")), "17:00 CEST is 15:00 UTC");
        // The skipped hour (02:00-03:00 on the switch day) never matches; the hour around it does.
        let skipped = spec("times: [{start_time: '02:00', end_time: '03:00'}]\nlocation: Europe/Berlin");
        let day = (0..24 * 60).map(|m| at("2026-03-29T00:00:00Z") + chrono::Duration::minutes(m));
        assert_eq!(day.filter(|t| skipped.contains(*t)).count(), 0);
        // New York falls back on 2026-11-01: 01:00-02:00 happens twice, so it matches for two hours.
        let repeated = spec("times: [{start_time: '01:00', end_time: '02:00'}]\nlocation: America/New_York");
        let day = (0..24 * 60).map(|m| at("2026-11-01T00:00:00Z") + chrono::Duration::minutes(m));
        let matched: Vec<DateTime<Utc>> = day.filter(|t| repeated.contains(*t)).collect();
        assert_eq!(matched.len(), 120);
        assert_eq!((matched[0], matched[119]), (at("2026-11-01T05:00:00Z"), at("2026-11-01T06:59:00Z")));
        // Weekdays are the zone's: Monday 00:30 in Shanghai is still Sunday in UTC.
        let monday = spec("weekdays: [monday]\nlocation: Asia/Shanghai");
        assert!(monday.contains(at("2026-11-29T16:30:00Z")) && !monday.contains(at("2026-11-29T15:30:00Z")));
    }
}
