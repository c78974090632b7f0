//! The CRI log format written by containerd and CRI-O:
//! `<RFC 3339 time> <stdout|stderr> <P|F>[:<more tags>] <message>`.

use std::borrow::Cow;

use super::{Framed, Stream};

/// Parses one CRI line; `None` if it is not one.
pub(crate) fn parse_cri(line: &str) -> Option<Framed<'_>> {
    let (time, rest) = line.split_once(' ')?;
    // Require the date-time shape so bare numbers are not mistaken for Unix timestamps.
    if !time.contains('T') {
        return None;
    }
    let timestamp_ns = parse_rfc3339_ns(time).or_else(|| model::time::parse_loki_time(time).ok())?;
    let (stream, rest) = rest.split_once(' ').unwrap_or((rest, ""));
    let stream = Stream::parse(stream)?;
    let (tags, message) = rest.split_once(' ').unwrap_or((rest, ""));
    let partial = match tags.split(':').next() {
        Some("P") => true,
        Some("F") => false,
        _ => return None,
    };
    Some(Framed { timestamp_ns: Some(timestamp_ns), stream, partial, message: Cow::Borrowed(message) })
}

/// Fast path for the fixed layout runtimes write (`2021-02-16T09:21:15.518430714Z`, `+00:00`
/// offsets, 0 to 9 fraction digits); `None` sends anything else to the general parser.
pub(crate) fn parse_rfc3339_ns(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |from: usize, len: usize| -> Option<i64> {
        let mut v = 0i64;
        for &c in &b[from..from + len] {
            if !c.is_ascii_digit() {
                return None;
            }
            v = v * 10 + i64::from(c - b'0');
        }
        Some(v)
    };
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut i = 19;
    let mut nanos = 0i64;
    if b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let digits = i - start;
        if digits == 0 || digits > 9 {
            return None;
        }
        nanos = num(start, digits)? * 10i64.pow((9 - digits) as u32);
    }
    let offset_secs = match &b[i..] {
        b"Z" | b"z" => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let digits = [*h1, *h2, *m1, *m2];
            if !digits.iter().all(u8::is_ascii_digit) {
                return None;
            }
            let h = i64::from(digits[0] - b'0') * 10 + i64::from(digits[1] - b'0');
            let m = i64::from(digits[2] - b'0') * 10 + i64::from(digits[3] - b'0');
            let secs = h * 3600 + m * 60;
            if *sign == b'+' { secs } else { -secs }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_secs;
    secs.checked_mul(1_000_000_000)?.checked_add(nanos)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containerd_and_crio_lines() {
        let f = parse_cri("2021-02-16T09:21:15.518430714Z stdout F example: 10").unwrap();
        assert_eq!(f.timestamp_ns, Some(1_613_467_275_518_430_714));
        assert_eq!((f.stream, f.partial, f.message.as_ref()), (Stream::Stdout, false, "example: 10"));
        let f = parse_cri("2021-02-16T08:59:33.254364766+00:00 stderr P part").unwrap();
        assert_eq!((f.stream, f.partial, f.message.as_ref()), (Stream::Stderr, true, "part"));
        let f = parse_cri("2021-02-16T08:59:33Z stdout F").unwrap();
        assert_eq!(f.message, "");
    }

    #[test]
    fn the_fast_time_parser_agrees_with_chrono() {
        for t in [
            "2021-02-16T09:21:15.518430714Z",
            "2021-02-16T08:59:33.254364766+00:00",
            "2021-02-16T08:59:33+02:30",
            "2000-02-29T23:59:59.5-07:00",
            "1969-12-31T23:59:59.000000001Z",
            "2026-11-27T03:15:00Z",
        ] {
            assert_eq!(parse_rfc3339_ns(t), Some(model::time::parse_loki_time(t).unwrap()), "{t}");
        }
        for t in ["2021-02-16 09:21:15Z", "2021-02-16T09:21:15", "2021-13-16T09:21:15Z", "2021-02-16T09:21:15.Z"] {
            assert_eq!(parse_rfc3339_ns(t), None, "{t}");
        }
    }

    proptest::proptest! {
        #[test]
        fn the_fast_time_parser_matches_chrono_on_any_instant(secs in -2_000_000_000i64..4_000_000_000, nanos in 0u32..1_000_000_000, off in -720i32..840) {
            let offset = chrono::FixedOffset::east_opt(off * 60).unwrap();
            let t = chrono::DateTime::from_timestamp(secs, nanos).unwrap().with_timezone(&offset);
            let text = t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
            proptest::prop_assert_eq!(parse_rfc3339_ns(&text), Some(secs * 1_000_000_000 + i64::from(nanos)), "{}", text);
        }
    }

    #[test]
    fn non_cri_lines_are_refused() {
        for line in [
            "hello world",
            "1613467275 stdout F x",
            "2021-02-16T09:21:15Z stdin F x",
            "2021-02-16T09:21:15Z stdout X x",
            "",
        ] {
            assert!(parse_cri(line).is_none(), "{line:?}");
        }
    }
}
