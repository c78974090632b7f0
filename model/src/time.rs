//! Time parameters as the Prometheus and Loki HTTP APIs take them, and Prometheus durations.
//! Both APIs are used by Grafana with its own formats, so these follow the reference servers'
//! parsing rules exactly (Prometheus `parseTime`/`parseDuration`, Loki `parseTimestamp`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};

fn invalid(input: &str, reason: impl Into<String>) -> Error {
    Error::InvalidTime { input: input.to_string(), reason: reason.into() }
}

/// Now as milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    now_ns() / 1_000_000
}

/// Now as nanoseconds since the Unix epoch.
pub fn now_ns() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as i64).unwrap_or(0)
}

/// Prometheus API time: Unix seconds (with fraction) or RFC 3339. Returns milliseconds.
pub fn parse_prometheus_time(input: &str) -> Result<i64> {
    if let Ok(secs) = input.parse::<f64>() {
        if !secs.is_finite() {
            return Err(invalid(input, "not a finite number"));
        }
        return Ok((secs * 1000.0).round() as i64);
    }
    chrono::DateTime::parse_from_rfc3339(input)
        .map(|t| t.timestamp_millis())
        .map_err(|e| invalid(input, format!("expected Unix seconds or RFC 3339 ({e})")))
}

/// Loki API time: a Unix timestamp in nanoseconds (or seconds when 10 digits or fewer), float
/// seconds, or RFC 3339. Returns nanoseconds.
pub fn parse_loki_time(input: &str) -> Result<i64> {
    if input.contains('.')
        && let Ok(secs) = input.parse::<f64>()
    {
        return Ok((secs * 1e9).round() as i64);
    }
    match input.parse::<i64>() {
        Ok(n) if input.trim_start_matches('-').len() <= 10 => Ok(n.saturating_mul(1_000_000_000)),
        Ok(n) => Ok(n),
        Err(_) => chrono::DateTime::parse_from_rfc3339(input)
            .map(|t| t.timestamp_nanos_opt().unwrap_or(i64::MAX))
            .map_err(|e| invalid(input, format!("expected Unix nanoseconds, seconds or RFC 3339 ({e})"))),
    }
}

/// A Prometheus duration such as `5m`, `1h30m`, `250ms`, `2d`, `1w`, `1y`.
pub fn parse_duration(input: &str) -> Result<Duration> {
    if input == "0" {
        return Ok(Duration::ZERO);
    }
    let units: [(&str, u64); 8] = [
        ("ms", 1),
        ("s", 1_000),
        ("m", 60_000),
        ("h", 3_600_000),
        ("d", 86_400_000),
        ("w", 604_800_000),
        ("y", 31_536_000_000),
        ("", 0),
    ];
    let mut rest = input;
    let mut total_ms: u64 = 0;
    let mut last_rank = usize::MAX;
    if rest.is_empty() {
        return Err(invalid(input, "empty duration"));
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        if digits == 0 {
            return Err(invalid(input, "expected a number before each unit, e.g. 1h30m"));
        }
        let number: u64 = rest[..digits].parse().map_err(|_| invalid(input, "number too large"))?;
        rest = &rest[digits..];
        // "ms" must be tried before "m".
        let (rank, (unit, ms)) = units
            .iter()
            .enumerate()
            .find(|(_, (u, _))| !u.is_empty() && rest.starts_with(u))
            .ok_or_else(|| invalid(input, "unknown unit; use ms, s, m, h, d, w or y"))?;
        // Ranks in decreasing size: y w d h m s ms.
        let size_rank = ["y", "w", "d", "h", "m", "s", "ms"].iter().position(|u| u == unit).unwrap_or(rank);
        if last_rank != usize::MAX && size_rank <= last_rank {
            return Err(invalid(input, "units must appear once each, largest first"));
        }
        last_rank = size_rank;
        rest = &rest[unit.len()..];
        total_ms = number
            .checked_mul(*ms)
            .and_then(|v| total_ms.checked_add(v))
            .ok_or_else(|| invalid(input, "duration too large"))?;
    }
    Ok(Duration::from_millis(total_ms))
}

/// A step or timeout parameter: a Prometheus duration or float seconds.
pub fn parse_duration_or_seconds(input: &str) -> Result<Duration> {
    if let Ok(secs) = input.parse::<f64>() {
        if !(secs.is_finite() && secs >= 0.0) {
            return Err(invalid(input, "must be a non-negative number of seconds"));
        }
        return Ok(Duration::from_secs_f64(secs));
    }
    parse_duration(input)
}

/// Formats a duration the way Prometheus prints it (`1h30m`, `5m`, `250ms`, `0s`).
pub fn format_duration(d: Duration) -> String {
    let mut ms = d.as_millis() as u64;
    if ms == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    for (unit, size) in [
        ("y", 31_536_000_000u64),
        ("w", 604_800_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ] {
        if ms >= size {
            out.push_str(&format!("{}{unit}", ms / size));
            ms %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn prometheus_times() {
        assert_eq!(parse_prometheus_time("1700000000").unwrap(), 1_700_000_000_000);
        assert_eq!(parse_prometheus_time("1700000000.123").unwrap(), 1_700_000_000_123);
        assert_eq!(parse_prometheus_time("2023-11-14T22:13:20Z").unwrap(), 1_700_000_000_000);
        assert_eq!(parse_prometheus_time("2023-11-14T23:13:20+01:00").unwrap(), 1_700_000_000_000);
        assert!(parse_prometheus_time("yesterday").is_err());
    }

    #[test]
    fn loki_times() {
        assert_eq!(parse_loki_time("1700000000").unwrap(), 1_700_000_000_000_000_000);
        assert_eq!(parse_loki_time("1700000000000000000").unwrap(), 1_700_000_000_000_000_000);
        assert_eq!(parse_loki_time("1700000000.5").unwrap(), 1_700_000_000_500_000_000);
        assert_eq!(parse_loki_time("2023-11-14T22:13:20Z").unwrap(), 1_700_000_000_000_000_000);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1y").unwrap(), Duration::from_secs(365 * 86400));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        for bad in ["", "5", "m", "30m1h", "5mm", "1.5h", "-1m"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be rejected");
        }
        assert_eq!(parse_duration_or_seconds("15").unwrap(), Duration::from_secs(15));
        assert_eq!(parse_duration_or_seconds("0.5").unwrap(), Duration::from_millis(500));
    }

    proptest! {
        #[test]
        fn format_then_parse_round_trips(ms in 0u64..10_000_000_000_000) {
            let d = Duration::from_millis(ms);
            prop_assert_eq!(parse_duration(&format_duration(d)).unwrap_or(Duration::ZERO), d);
        }
    }
}
