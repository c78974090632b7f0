//! Reading label values as Loki's label filters do: Go durations (`1.5s`, `250ms`, `1h30m`) and
//! humanized byte sizes (`1KB` = 1000, `1KiB` = 1024), both for query literals and extracted values.

/// A Go `time.ParseDuration` string in seconds; `None` when it is not one.
pub fn parse_go_duration(input: &str) -> Option<f64> {
    let (negative, mut rest) = match input.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, input.strip_prefix('+').unwrap_or(input)),
    };
    if rest == "0" {
        return Some(0.0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total = 0.0;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let number: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let units: [(&str, f64); 8] = [
            ("ns", 1e-9),
            ("us", 1e-6),
            ("µs", 1e-6),
            ("μs", 1e-6),
            ("ms", 1e-3),
            ("s", 1.0),
            ("m", 60.0),
            ("h", 3600.0),
        ];
        let (unit, scale) = units.iter().find(|(u, _)| rest.starts_with(u))?;
        rest = &rest[unit.len()..];
        total += number * scale;
    }
    Some(if negative { -total } else { total })
}

/// A humanized byte size (go-humanize's `ParseBytes`): `42`, `1KB`, `1.5 MiB`, `3gb`.
pub fn parse_bytes(input: &str) -> Option<f64> {
    let split = input.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(input.len());
    let number: f64 = input[..split].parse().ok()?;
    let unit = input[split..].trim().to_ascii_lowercase();
    let scale = match unit.as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "ki" | "kib" => 1024.0,
        "m" | "mb" => 1e6,
        "mi" | "mib" => 1024.0 * 1024.0,
        "g" | "gb" => 1e9,
        "gi" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tb" => 1e12,
        "ti" | "tib" => 1024f64.powi(4),
        "p" | "pb" => 1e15,
        "pi" | "pib" => 1024f64.powi(5),
        _ => return None,
    };
    Some(number * scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("250ms"), Some(0.25));
        assert_eq!(parse_go_duration("1h30m"), Some(5400.0));
        assert_eq!(parse_go_duration("1.5s"), Some(1.5));
        assert_eq!(parse_go_duration("-2s"), Some(-2.0));
        assert!((parse_go_duration("100us").unwrap() - 1e-4).abs() < 1e-12);
        assert_eq!(parse_go_duration("0"), Some(0.0));
        assert_eq!(parse_go_duration("12"), None);
        assert_eq!(parse_go_duration("5x"), None);
        assert_eq!(parse_go_duration(""), None);
    }

    #[test]
    fn byte_sizes() {
        assert_eq!(parse_bytes("1KB"), Some(1000.0));
        assert_eq!(parse_bytes("1KiB"), Some(1024.0));
        assert_eq!(parse_bytes("1.5 MB"), Some(1.5e6));
        assert_eq!(parse_bytes("42"), Some(42.0));
        assert_eq!(parse_bytes("3gb"), Some(3e9));
        assert_eq!(parse_bytes("KB"), None);
        assert_eq!(parse_bytes("1XB"), None);
    }
}
