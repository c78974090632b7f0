//! Go's number formatting as Prometheus templates print it: `%v`/`%g` (shortest digits, `e+06`
//! exponents), `%.4g`, `%f`, `%d`, `%s`, `%q`, `%x` and widths, plus the `humanize*` functions.
//! Users compare alert texts against what Prometheus sent before, so the digits must match.

use super::Value;

/// Go's `strconv.FormatFloat(v, 'g', prec, 64)`; `prec = None` is the shortest representation.
pub fn format_g(v: f64, prec: Option<usize>) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf".into() } else { "-Inf".into() };
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0".into() } else { "0".into() };
    }
    // Significant digits and decimal exponent from Rust's scientific formatting.
    let sci = match prec {
        None => format!("{v:e}"),
        Some(p) => format!("{:.*e}", p.max(1) - 1, v),
    };
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let negative = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    let digits = digits.trim_end_matches('0');
    let digits = if digits.is_empty() { "0" } else { digits };
    // Go switches to an exponent from 6 digits on for the shortest form, from `prec` otherwise
    // (or from the digit count when the digits end before the decimal point does).
    let eprec = match prec {
        None => 6,
        Some(p) => {
            let (p, nd) = (p.max(1) as i32, digits.len() as i32);
            if p > nd && nd > exp { nd } else { p }
        }
    };
    let mut out = String::new();
    if negative {
        out.push('-');
    }
    if exp < -4 || exp >= eprec {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        out.push_str(&format!("{:02}", exp.abs()));
    } else if exp < 0 {
        out.push_str("0.");
        out.push_str(&"0".repeat((-exp - 1) as usize));
        out.push_str(digits);
    } else {
        let int_len = exp as usize + 1;
        if digits.len() <= int_len {
            out.push_str(digits);
            out.push_str(&"0".repeat(int_len - digits.len()));
        } else {
            out.push_str(&digits[..int_len]);
            out.push('.');
            out.push_str(&digits[int_len..]);
        }
    }
    out
}

/// Go's `%v` of a float64 (what `{{ $value }}` prints): shortest digits, exponent from 1e6 up
/// or below 1e-4.
pub fn format_float_v(v: f64) -> String {
    format_g(v, None)
}

/// `humanize`: SI prefixes, 4 significant digits.
pub fn humanize(mut v: f64) -> String {
    if v == 0.0 || v.is_nan() || v.is_infinite() {
        return format_g(v, Some(4));
    }
    let mut prefix = "";
    if v.abs() >= 1.0 {
        for p in ["k", "M", "G", "T", "P", "E", "Z", "Y"] {
            if v.abs() < 1000.0 {
                break;
            }
            prefix = p;
            v /= 1000.0;
        }
    } else {
        for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
            if v.abs() >= 1.0 {
                break;
            }
            prefix = p;
            v *= 1000.0;
        }
    }
    format!("{}{prefix}", format_g(v, Some(4)))
}

/// `humanize1024`: binary prefixes for values of at least 1.
pub fn humanize1024(mut v: f64) -> String {
    if v.abs() <= 1.0 || v.is_nan() || v.is_infinite() {
        return format_g(v, Some(4));
    }
    let mut prefix = "";
    for p in ["ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"] {
        if v.abs() < 1024.0 {
            break;
        }
        prefix = p;
        v /= 1024.0;
    }
    format!("{}{prefix}", format_g(v, Some(4)))
}

/// `humanizeDuration`: seconds as `1d 2h 3m 4s`, sub-second values with SI prefixes.
pub fn humanize_duration(mut v: f64) -> String {
    if v.is_nan() || v.is_infinite() {
        return format_g(v, Some(4));
    }
    if v == 0.0 {
        return format!("{}s", format_g(v, Some(4)));
    }
    if v.abs() >= 1.0 {
        let sign = if v < 0.0 { "-" } else { "" };
        v = v.abs();
        let d = v as i64;
        let (seconds, minutes, hours, days) = (d % 60, (d / 60) % 60, (d / 3600) % 24, d / 86400);
        return if days != 0 {
            format!("{sign}{days}d {hours}h {minutes}m {seconds}s")
        } else if hours != 0 {
            format!("{sign}{hours}h {minutes}m {seconds}s")
        } else if minutes != 0 {
            format!("{sign}{minutes}m {seconds}s")
        } else {
            format!("{sign}{}s", format_g(v, Some(4)))
        };
    }
    let mut prefix = "";
    for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
        if v.abs() >= 1.0 {
            break;
        }
        prefix = p;
        v *= 1000.0;
    }
    format!("{}{prefix}s", format_g(v, Some(4)))
}

/// `humanizePercentage`: a ratio as a percentage, 4 significant digits.
pub fn humanize_percentage(v: f64) -> String {
    format!("{}%", format_g(v * 100.0, Some(4)))
}

/// `humanizeTimestamp`: Unix seconds as Go prints a UTC `time.Time`.
pub fn humanize_timestamp(v: f64) -> String {
    if v.is_nan() || v.is_infinite() {
        return format_g(v, Some(4));
    }
    let nanos = (v * 1e9) as i64;
    let secs = nanos.div_euclid(1_000_000_000);
    let sub = nanos.rem_euclid(1_000_000_000) as u32;
    match chrono::DateTime::from_timestamp(secs, sub) {
        Some(t) => {
            let frac = if sub == 0 { String::new() } else { format!(".{:09}", sub).trim_end_matches('0').to_string() };
            format!("{}{frac} +0000 UTC", t.format("%Y-%m-%d %H:%M:%S"))
        }
        None => format_g(v, Some(4)),
    }
}

/// Go's `fmt.Sprintf` for the verbs templates use.
pub fn sprintf(format: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut args = args.iter();
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut flags = String::new();
        while let Some(&f) = chars.peek() {
            if matches!(f, '-' | '+' | ' ' | '0' | '#') {
                flags.push(f);
                chars.next();
            } else {
                break;
            }
        }
        let mut width = String::new();
        while let Some(&d) = chars.peek().filter(|d| d.is_ascii_digit()) {
            width.push(d);
            chars.next();
        }
        let mut precision: Option<usize> = None;
        if chars.peek() == Some(&'.') {
            chars.next();
            let mut p = String::new();
            while let Some(&d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                p.push(d);
                chars.next();
            }
            precision = Some(p.parse().unwrap_or(0));
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.next() else {
            out.push_str(&format!("%!{verb}(MISSING)"));
            continue;
        };
        let text = format_verb(verb, precision, &flags, arg);
        let width: usize = width.parse().unwrap_or(0);
        let len = text.chars().count();
        if len >= width {
            out.push_str(&text);
        } else if flags.contains('-') {
            out.push_str(&text);
            out.push_str(&" ".repeat(width - len));
        } else if flags.contains('0') && !matches!(verb, 's' | 'q' | 'v') {
            let (sign, body) = if let Some(b) = text.strip_prefix('-') { ("-", b) } else { ("", text.as_str()) };
            out.push_str(sign);
            out.push_str(&"0".repeat(width - len));
            out.push_str(body);
        } else {
            out.push_str(&" ".repeat(width - len));
            out.push_str(&text);
        }
    }
    let extra: Vec<&Value> = args.collect();
    if !extra.is_empty() {
        out.push_str("%!(EXTRA ");
        out.push_str(&extra.iter().map(|v| format!("{}={}", v.go_type(), v.to_text())).collect::<Vec<_>>().join(", "));
        out.push(')');
    }
    out
}

fn format_verb(verb: char, precision: Option<usize>, flags: &str, arg: &Value) -> String {
    let plus = |s: String, positive: bool| if flags.contains('+') && positive { format!("+{s}") } else { s };
    match (verb, arg) {
        ('v', _) | ('s', Value::Str(_)) => arg.to_text(),
        ('s', _) => format!("%!s({}={})", arg.go_type(), arg.to_text()),
        ('q', Value::Str(s)) => format!("{s:?}"),
        ('d', Value::Int(i)) => plus(i.to_string(), *i >= 0),
        ('d', Value::Float(f)) => format!("%!d(float64={})", format_float_v(*f)),
        ('f' | 'F', _) | ('e' | 'g' | 'G' | 'E', _) => match arg.as_f64() {
            Some(f) => {
                let s = match verb {
                    'f' | 'F' => {
                        if f.is_infinite() {
                            if f > 0.0 { "+Inf".into() } else { "-Inf".into() }
                        } else {
                            format!("{:.*}", precision.unwrap_or(6), f)
                        }
                    }
                    'e' | 'E' => {
                        let s = format!("{:.*e}", precision.unwrap_or(6), f);
                        let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
                        let e: i32 = e.parse().unwrap_or(0);
                        let s = format!("{m}e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs());
                        if verb == 'E' { s.to_uppercase() } else { s }
                    }
                    _ => format_g(f, precision),
                };
                plus(s, f >= 0.0)
            }
            None => format!("%!{verb}({}={})", arg.go_type(), arg.to_text()),
        },
        ('x', Value::Int(i)) => format!("{i:x}"),
        ('x', Value::Str(s)) => s.bytes().map(|b| format!("{b:02x}")).collect(),
        ('t', Value::Bool(b)) => b.to_string(),
        _ => format!("%!{verb}({}={})", arg.go_type(), arg.to_text()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_g_formatting() {
        assert_eq!(format_g(1234.5678, Some(4)), "1235");
        assert_eq!(format_g(2.0, Some(4)), "2");
        assert_eq!(format_g(0.000012345, Some(4)), "1.234e-05");
        assert_eq!(format_g(123456.0, Some(4)), "1.235e+05");
        assert_eq!(format_float_v(0.5), "0.5");
        assert_eq!(format_float_v(1e6), "1e+06");
        assert_eq!(format_float_v(123456.0), "123456");
        assert_eq!(format_float_v(1234567.0), "1.234567e+06");
        assert_eq!(format_float_v(0.0001), "0.0001");
        assert_eq!(format_float_v(0.00001), "1e-05");
        assert_eq!(format_float_v(f64::INFINITY), "+Inf");
    }

    #[test]
    fn humanize_functions_match_prometheus() {
        assert_eq!(humanize(1234567.0), "1.235M");
        assert_eq!(humanize(0.0012), "1.2m");
        assert_eq!(humanize(0.0), "0");
        assert_eq!(humanize1024(1048576.0), "1Mi");
        assert_eq!(humanize_duration(90061.0), "1d 1h 1m 1s");
        assert_eq!(humanize_duration(1.5), "1.5s");
        assert_eq!(humanize_duration(0.0015), "1.5ms");
        assert_eq!(humanize_percentage(0.12345), "12.35%");
        assert_eq!(humanize_timestamp(1435065584.128), "2015-06-23 13:19:44.128 +0000 UTC");
    }

    #[test]
    fn printf_verbs() {
        assert_eq!(sprintf("%.2f%%", &[Value::Float(12.3456)]), "12.35%");
        assert_eq!(sprintf("%d items", &[Value::Int(3)]), "3 items");
        assert_eq!(sprintf("%s=%v", &[Value::Str("a".into()), Value::Float(1.5)]), "a=1.5");
        assert_eq!(sprintf("%5.1f|%-4s|", &[Value::Float(4.26), Value::Str("x".into())]), "  4.3|x   |");
        assert_eq!(sprintf("%q", &[Value::Str("a\"b".into())]), "\"a\\\"b\"");
    }
}
