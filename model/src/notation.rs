//! The series notation of Prometheus's PromQL test scripts and promtool's rule unit tests
//! (`0+1x120`, `1 _ stale`, `_x3`): durations, series lines and their value items, and the float
//! comparison upstream's runners use. Shared by the PromQL conformance runner and
//! `tarsier test-rules`.

use crate::histogram::{CounterResetHint, FloatHistogram, Span};

/// A duration in the scripts' notation (`1m`, `1h30m`, `100ms`, `0`) as milliseconds.
pub fn parse_duration(s: &str) -> Option<i64> {
    let s = s.trim();
    if s == "0" {
        return Some(0);
    }
    let (mut total, mut num, mut rest) = (0i64, String::new(), s);
    while !rest.is_empty() {
        let c = rest.chars().next()?;
        if c.is_ascii_digit() {
            num.push(c);
            rest = &rest[1..];
            continue;
        }
        let (unit, ms) = if rest.starts_with("ms") {
            ("ms", 1)
        } else {
            match c {
                's' => ("s", 1000),
                'm' => ("m", 60_000),
                'h' => ("h", 3_600_000),
                'd' => ("d", 86_400_000),
                'w' => ("w", 604_800_000),
                'y' => ("y", 31_536_000_000),
                _ => return None,
            }
        };
        total += num.parse::<i64>().ok()? * ms;
        num.clear();
        rest = &rest[unit.len()..];
    }
    num.is_empty().then_some(total)
}

/// A value inside a series line: no hex (`0x59` is `0` repeated 60 times there).
pub fn parse_item_value(s: &str) -> Option<f64> {
    if s.starts_with("0x") { None } else { parse_float(s) }
}

/// A number as an expected scalar line (Go's `ParseInt(s, 0, 64)` then `ParseFloat`: hex allowed).
pub fn parse_float(s: &str) -> Option<f64> {
    match s {
        "stale" => Some(crate::stale_nan()),
        "Inf" | "+Inf" | "inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        _ => {
            if let Some(hex) = s.strip_prefix("0x") {
                return i64::from_str_radix(hex, 16).ok().map(|v| v as f64);
            }
            s.parse::<f64>().ok()
        }
    }
}

/// Go's `%g` for the numbers annotations and test expressions quote: the shortest digits, in
/// exponent form (`1e+06`, `1.5e-05`) when the exponent is below -4 or at least 6.
pub fn go_g(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf".into() } else { "-Inf".into() };
    }
    let scientific = format!("{v:e}");
    let Some((mantissa, exp)) = scientific.split_once('e') else { return format!("{v}") };
    let exp: i32 = exp.parse().unwrap_or(0);
    if v != 0.0 && !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    } else {
        format!("{v}")
    }
}

/// A native histogram in the scripts' notation: `{{schema:1 sum:5 count:4 z_bucket:1
/// z_bucket_w:0.001 buckets:[1 2] offset:-1 n_buckets:[1] n_offset:0 custom_values:[1 2]
/// counter_reset_hint:gauge}}` (every key optional; a bucket list is one span at its offset).
pub fn parse_histogram(text: &str) -> Result<FloatHistogram, String> {
    let inner = text
        .trim()
        .strip_prefix("{{")
        .and_then(|t| t.strip_suffix("}}"))
        .ok_or_else(|| format!("bad histogram {text:?}"))?;
    let mut h = FloatHistogram::default();
    let (mut pos, mut neg) = (Vec::new(), Vec::new());
    let (mut pos_offset, mut neg_offset) = (0i32, 0i32);
    let mut rest = inner.trim();
    let number = |s: &str| parse_float(s).ok_or_else(|| format!("bad number {s:?} in histogram {text:?}"));
    let list = |s: &str| -> Result<Vec<f64>, String> { s.split_whitespace().map(number).collect() };
    while !rest.is_empty() {
        let (key, after) = rest.split_once(':').ok_or_else(|| format!("bad histogram {text:?}"))?;
        let key = key.trim();
        let after = after.trim_start();
        let (value, next) = if let Some(body) = after.strip_prefix('[') {
            let (inside, next) = body.split_once(']').ok_or_else(|| format!("unclosed list in {text:?}"))?;
            (inside, next)
        } else {
            after.split_once(char::is_whitespace).unwrap_or((after, ""))
        };
        let int = |s: &str| s.trim().parse::<i32>().map_err(|_| format!("bad {key} {s:?} in histogram {text:?}"));
        match key {
            "schema" => h.schema = int(value)?,
            "sum" => h.sum = number(value)?,
            "count" => h.count = number(value)?,
            "z_bucket" => h.zero_count = number(value)?,
            "z_bucket_w" => h.zero_threshold = number(value)?,
            "buckets" => pos = list(value)?,
            "n_buckets" => neg = list(value)?,
            "offset" => pos_offset = int(value)?,
            "n_offset" => neg_offset = int(value)?,
            "custom_values" => h.custom_values = list(value)?,
            "counter_reset_hint" => {
                h.counter_reset_hint = match value {
                    "unknown" => CounterResetHint::Unknown,
                    "reset" => CounterResetHint::Reset,
                    "not_reset" => CounterResetHint::NotReset,
                    "gauge" => CounterResetHint::Gauge,
                    other => return Err(format!("bad counter_reset_hint {other:?}")),
                }
            }
            other => return Err(format!("unknown histogram key {other:?} in {text:?}")),
        }
        rest = next.trim_start();
    }
    if !pos.is_empty() {
        h.positive_spans = vec![Span { offset: pos_offset, length: pos.len() as u32 }];
        h.positive_buckets = pos;
    }
    if !neg.is_empty() {
        h.negative_spans = vec![Span { offset: neg_offset, length: neg.len() as u32 }];
        h.negative_buckets = neg;
    }
    Ok(h)
}

/// A value slot of a series line: a float or a native histogram.
#[derive(Clone, Debug, PartialEq)]
pub enum SeriesValue {
    Float(f64),
    Histogram(FloatHistogram),
}

/// Expands series items that may hold native histograms: `{{..}}`, `{{..}}xN` (repeated),
/// `{{a}}+{{b}}xN` / `{{a}}-{{b}}xN` (a, a+b, ... N+1 values), floats as [`expand_items`].
pub fn expand_values(items: &[&str]) -> Result<Vec<Option<SeriesValue>>, String> {
    let mut out = Vec::new();
    for item in items {
        if !item.contains("{{") {
            out.extend(expand_items(&[item], false)?.into_iter().map(|v| v.map(SeriesValue::Float)));
            continue;
        }
        let first_end = item.find("}}").ok_or_else(|| format!("bad item {item}"))? + 2;
        let first = parse_histogram(&item[..first_end])?;
        let tail = &item[first_end..];
        if tail.is_empty() {
            out.push(Some(SeriesValue::Histogram(first)));
            continue;
        }
        if let Some(n) = tail.strip_prefix('x') {
            let n: usize = n.parse().map_err(|_| format!("bad item {item}"))?;
            out.extend(std::iter::repeat_n(Some(SeriesValue::Histogram(first)), n + 1));
            continue;
        }
        let sign = tail.chars().next();
        let inc_end = tail.rfind("}}").ok_or_else(|| format!("bad item {item}"))? + 2;
        let inc = parse_histogram(&tail[1..inc_end])?;
        let n: usize =
            tail[inc_end..].strip_prefix('x').and_then(|n| n.parse().ok()).ok_or_else(|| format!("bad item {item}"))?;
        let mut current = first;
        for i in 0..=n {
            if i > 0 {
                let step = match sign {
                    Some('+') => current.add(&inc),
                    Some('-') => current.sub(&inc),
                    _ => return Err(format!("bad item {item}")),
                };
                step.map_err(|e| format!("bad item {item}: {e:?}"))?;
            }
            out.push(Some(SeriesValue::Histogram(current.clone())));
        }
    }
    Ok(out)
}

/// Splits the value part of a series line into items, keeping a `{{...}}` histogram (which
/// contains spaces) together with its `xN` / `+{{...}}xN` suffix.
pub fn tokenize_items(text: &str) -> Vec<String> {
    let mut items: Vec<String> = Vec::new();
    let mut depth = 0usize;
    let mut current = String::new();
    for word in text.split_whitespace() {
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(word);
        depth += word.matches("{{").count();
        depth = depth.saturating_sub(word.matches("}}").count());
        if depth == 0 {
            items.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        items.push(current);
    }
    items
}

/// Expands series items into values (None = omitted slot). A native histogram item is an
/// omitted slot when `histograms_as_gaps` (loading: the float store keeps the series' float
/// samples) and an error otherwise (an expected histogram cannot be compared).
pub fn expand_items(items: &[&str], histograms_as_gaps: bool) -> Result<Vec<Option<f64>>, String> {
    let mut out = Vec::new();
    for item in items {
        if item.contains("{{") {
            if !histograms_as_gaps {
                return Err("expects native-histogram values".into());
            }
            let copies = item
                .rsplit_once("}}")
                .and_then(|(_, tail)| tail.strip_prefix('x'))
                .and_then(|n| n.parse::<usize>().ok())
                .map_or(1, |n| n + 1);
            out.extend(std::iter::repeat_n(None, copies));
            continue;
        }
        if *item == "_" {
            out.push(None);
            continue;
        }
        if let Some(n) = item.strip_prefix("_x") {
            let n: usize = n.parse().map_err(|_| format!("bad item {item}"))?;
            out.extend(std::iter::repeat_n(None, n));
            continue;
        }
        if let Some(v) = parse_item_value(item) {
            out.push(Some(v));
            continue;
        }
        let (head, times) = item.rsplit_once('x').ok_or_else(|| format!("bad item {item}"))?;
        let n: usize = times.parse().map_err(|_| format!("bad item {item}"))?;
        if let Some(v) = parse_item_value(head) {
            out.extend(std::iter::repeat_n(Some(v), n + 1));
            continue;
        }
        let bytes = head.as_bytes();
        let split = (1..bytes.len())
            .find(|&i| (bytes[i] == b'+' || bytes[i] == b'-') && !matches!(bytes[i - 1], b'e' | b'E'))
            .ok_or_else(|| format!("bad item {item}"))?;
        let start = parse_item_value(&head[..split]).ok_or_else(|| format!("bad item {item}"))?;
        let mut inc = parse_item_value(&head[split + 1..]).ok_or_else(|| format!("bad item {item}"))?;
        if bytes[split] == b'-' {
            inc = -inc;
        }
        for i in 0..=n {
            out.push(Some(start + inc * i as f64));
        }
    }
    Ok(out)
}

/// Splits `name{a="b c"} 1 2` into the series text and the value items.
pub fn split_series_line(line: &str) -> (String, Vec<String>) {
    let mut depth = 0;
    let mut in_quote = false;
    let mut end = line.len();
    let mut prev = ' ';
    for (i, c) in line.char_indices() {
        match c {
            '"' if prev != '\\' => in_quote = !in_quote,
            '{' if !in_quote => depth += 1,
            '}' if !in_quote => depth -= 1,
            c if c.is_whitespace() && !in_quote && depth == 0 => {
                end = i;
                break;
            }
            _ => {}
        }
        prev = c;
    }
    (line[..end].to_string(), tokenize_items(&line[end..]))
}

/// Upstream's float comparison: equal, both NaN, both stale, or within 1e-6 relative.
pub fn almost_equal(a: f64, b: f64) -> bool {
    if crate::is_stale_nan(a) || crate::is_stale_nan(b) {
        return crate::is_stale_nan(a) && crate::is_stale_nan(b);
    }
    if a.is_nan() && b.is_nan() {
        return true;
    }
    if a == b {
        return true;
    }
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 {
        return diff < 1e-6 * f64::MIN_POSITIVE;
    }
    diff / (a.abs() + b.abs()).min(f64::MAX) < 1e-6
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_series_items() {
        let items = tokenize_items("1+1x2 _ 5x1 stale _x2");
        let items: Vec<&str> = items.iter().map(String::as_str).collect();
        let v = expand_items(&items, true).unwrap();
        assert_eq!(&v[..6], &[Some(1.0), Some(2.0), Some(3.0), None, Some(5.0), Some(5.0)]);
        assert!(crate::is_stale_nan(v[6].unwrap()));
        assert_eq!(&v[7..], &[None, None]);
        assert_eq!(expand_items(&["10-2x2"], true).unwrap(), vec![Some(10.0), Some(8.0), Some(6.0)]);
        assert!(expand_items(&["1+x"], true).is_err());
        assert_eq!(parse_duration("1h30m"), Some(5_400_000));
        assert_eq!(parse_duration("2m59s999ms"), Some(179_999));
        let (series, items) = split_series_line("up{a=\"b c\"} 1 2");
        let items2 = tokenize_items("{{count:2 buckets:[2]}}+{{count:1 buckets:[1]}}x2 {{schema:1}}x1 3");
        let refs: Vec<&str> = items2.iter().map(String::as_str).collect();
        let v = expand_values(&refs).unwrap();
        assert_eq!(v.len(), 6);
        let Some(SeriesValue::Histogram(h)) = &v[2] else { panic!("{v:?}") };
        assert_eq!((h.count, h.positive_buckets.clone()), (4.0, vec![4.0]));
        assert_eq!(v[5], Some(SeriesValue::Float(3.0)));
        assert_eq!((series.as_str(), items.len()), ("up{a=\"b c\"}", 2));
    }
}
