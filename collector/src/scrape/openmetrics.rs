//! A parser for OpenMetrics 1.0 text, strict in the way the reference parser
//! (`prometheus_client/openmetrics/parser.py`, which the OpenMetrics test suite is written against)
//! is: `# EOF` required and last, no blank lines, only `HELP`/`TYPE`/`UNIT` metadata and only before
//! a family's samples, the sample names each type allows, canonical `le`/`quantile`, counter-like
//! values never negative or NaN, histogram bucket order and `_count`/`_sum` rules, group and
//! timestamp ordering, exemplars only where allowed. Timestamps are seconds (float), converted to
//! milliseconds. Exemplars are validated and then dropped (nothing downstream stores them).
//! Errors name the 1-based line.

use std::collections::HashSet;

use super::exposition::{ExpositionError, ScrapedSample};

/// Longest exemplar label set, in characters of names plus values.
const MAX_EXEMPLAR_LABEL_CHARS: usize = 128;

type LabelPairs = Vec<(String, String)>;

struct OmSample {
    name: String,
    labels: LabelPairs,
    value: f64,
    /// Seconds.
    timestamp: Option<f64>,
    exemplar: bool,
}

/// Suffixes a type's samples may carry (`None`: only the bare family name).
fn type_suffixes(kind: &str) -> Option<&'static [&'static str]> {
    match kind {
        "counter" => Some(&["_total", "_created"]),
        "summary" => Some(&["_count", "_sum", "_created", ""]),
        "histogram" => Some(&["_count", "_sum", "_bucket", "_created"]),
        "gaugehistogram" => Some(&["_gcount", "_gsum", "_bucket"]),
        "info" => Some(&["_info"]),
        _ => None,
    }
}

const TYPES: [&str; 8] = ["counter", "gauge", "summary", "histogram", "gaugehistogram", "unknown", "info", "stateset"];

fn is_metric_name(name: &str) -> bool {
    model::labels::is_valid_metric_name(name)
}

/// One metric family being read.
#[derive(Default)]
struct Family {
    name: Option<String>,
    kind: Option<String>,
    unit: Option<String>,
    help: bool,
    allowed: Vec<String>,
    samples: Vec<OmSample>,
    first_line: usize,
    group: Option<LabelPairs>,
    seen_groups: HashSet<LabelPairs>,
    group_timestamp: Option<f64>,
    group_series: HashSet<(String, LabelPairs)>,
}

impl Family {
    fn new(name: String, kind: Option<String>, line: usize) -> Self {
        let allowed = vec![name.clone()];
        Family { name: Some(name), kind, allowed, first_line: line, ..Default::default() }
    }
}

struct Parser {
    family: Family,
    seen_names: HashSet<String>,
    out: Vec<ScrapedSample>,
}

/// Parses a whole OpenMetrics page.
pub fn parse(text: &str) -> Result<Vec<ScrapedSample>, ExpositionError> {
    let mut parser = Parser { family: Family::default(), seen_names: HashSet::new(), out: Vec::new() };
    let body = text.strip_suffix('\n').unwrap_or(text);
    let mut eof = false;
    let mut last = 0;
    if !text.is_empty() {
        for (index, line) in body.split('\n').enumerate() {
            let number = index + 1;
            last = number;
            let fail = |message: String| ExpositionError { line: number, message, openmetrics: true };
            if eof {
                return Err(fail("received line after # EOF".into()));
            }
            if line.is_empty() {
                return Err(fail("received blank line".into()));
            }
            if line == "# EOF" {
                eof = true;
                continue;
            }
            let result =
                if line.starts_with('#') { parser.metadata(line, number) } else { parser.sample(line, number) };
            result.map_err(fail)?;
        }
    }
    let family = std::mem::take(&mut parser.family);
    parser.finish(family).map_err(|(line, message)| ExpositionError { line, message, openmetrics: true })?;
    if !eof {
        return Err(ExpositionError { line: last.max(1), message: "missing # EOF at end".into(), openmetrics: true });
    }
    Ok(parser.out)
}

impl Parser {
    fn metadata(&mut self, line: &str, number: usize) -> Result<(), String> {
        let parts: Vec<&str> = line.splitn(4, ' ').collect();
        if parts.len() < 4 || parts[0] != "#" {
            return Err(format!("invalid line: {line:?}"));
        }
        let (keyword, name, rest) = (parts[1], parts[2], parts[3]);
        if self.family.name.as_deref() == Some(name) && !self.family.samples.is_empty() {
            return Err(format!("received metadata after samples: {line:?}"));
        }
        if self.family.name.as_deref() != Some(name) {
            let previous = std::mem::replace(&mut self.family, Family::new(name.to_string(), None, number));
            self.finish(previous).map_err(|(_, m)| m)?;
        }
        let family = &mut self.family;
        match keyword {
            "HELP" => {
                if std::mem::replace(&mut family.help, true) {
                    return Err(format!("more than one HELP for metric: {line:?}"));
                }
            }
            "UNIT" => {
                if family.unit.replace(rest.to_string()).is_some() {
                    return Err(format!("more than one UNIT for metric: {line:?}"));
                }
            }
            "TYPE" => {
                if family.kind.is_some() {
                    return Err(format!("more than one TYPE for metric: {line:?}"));
                }
                if !TYPES.contains(&rest) {
                    return Err(format!("invalid TYPE for metric: {line:?}"));
                }
                family.allowed = match type_suffixes(rest) {
                    Some(suffixes) => suffixes.iter().map(|s| format!("{name}{s}")).collect(),
                    None => vec![name.to_string()],
                };
                family.kind = Some(rest.to_string());
            }
            _ => return Err(format!("invalid line: {line:?}")),
        }
        Ok(())
    }

    /// Checks a finished family and emits its samples; errors carry the family's first line.
    fn finish(&mut self, family: Family) -> Result<(), (usize, String)> {
        let Some(name) = family.name else { return Ok(()) };
        let fail = |message: String| (family.first_line, message);
        let kind = family.kind.as_deref().unwrap_or("unknown");
        let mut suffixes: Vec<&str> = type_suffixes(kind).unwrap_or(&[]).to_vec();
        suffixes.push("");
        suffixes.dedup();
        for suffix in suffixes {
            let full = format!("{name}{suffix}");
            if !self.seen_names.insert(full.clone()) {
                return Err(fail(format!("clashing name: {full}")));
            }
        }
        if let Some(unit) = family.unit.as_deref().filter(|u| !u.is_empty()) {
            if !name.ends_with(&format!("_{unit}")) {
                return Err(fail(format!("unit does not match metric name: {name}")));
            }
            if kind == "info" || kind == "stateset" {
                return Err(fail(format!("units not allowed for this metric type: {name}")));
            }
        }
        if kind == "histogram" || kind == "gaugehistogram" {
            check_histogram(&family.samples, &name).map_err(fail)?;
        }
        if !is_metric_name(&name) {
            return Err(fail(format!("invalid metric name: {name:?}")));
        }
        self.out.extend(family.samples.into_iter().map(|s| ScrapedSample {
            name: s.name,
            labels: s.labels,
            value: s.value,
            timestamp_ms: s.timestamp.map(|t| (t * 1000.0).round() as i64),
        }));
        Ok(())
    }

    fn sample(&mut self, line: &str, number: usize) -> Result<(), String> {
        let sample = parse_sample(line)?;
        if !self.family.allowed.contains(&sample.name) {
            let previous =
                std::mem::replace(&mut self.family, Family::new(sample.name.clone(), Some("unknown".into()), number));
            self.finish(previous).map_err(|(_, m)| m)?;
        }
        let family = &mut self.family;
        let name = family.name.clone().unwrap_or_default();
        let kind = family.kind.clone().unwrap_or_default();
        let suffix = sample.name.strip_prefix(name.as_str()).unwrap_or("");
        let label = |n: &str| sample.labels.iter().find(|(l, _)| l == n).map(|(_, v)| v.as_str());
        if kind == "stateset" && label(&name).is_none() {
            return Err(format!("stateset missing label: {line:?}"));
        }
        if suffix == "_bucket" {
            let le = label("le").unwrap_or("NaN");
            if le == "NaN" || is_uncanonical_number(le)? {
                return Err(format!("invalid le label: {line:?}"));
            }
            if sample.value.fract() != 0.0 {
                return Err(format!("bucket value must be an integer: {line:?}"));
            }
        }
        if (suffix == "_count" || suffix == "_gcount") && sample.value.fract() != 0.0 {
            return Err(format!("count value must be an integer: {line:?}"));
        }
        if kind == "summary" && suffix.is_empty() {
            let quantile = label("quantile").unwrap_or("-1");
            let q = python_float(quantile).ok_or_else(|| format!("invalid quantile label: {line:?}"))?;
            if !(0.0..=1.0).contains(&q) || is_uncanonical_number(quantile)? {
                return Err(format!("invalid quantile label: {line:?}"));
            }
        }
        let group = group_for_sample(&sample, &name, &kind);
        if family.group.as_ref().is_some_and(|g| *g != group) && family.seen_groups.contains(&group) {
            return Err(format!("invalid metric grouping: {line:?}"));
        }
        if family.group.as_ref() == Some(&group) {
            if sample.timestamp.is_none() != family.group_timestamp.is_none() {
                return Err(format!("mix of timestamp presence within a group: {line:?}"));
            }
            if let (Some(previous), Some(ts)) = (family.group_timestamp, sample.timestamp)
                && previous > ts
                && kind != "info"
            {
                return Err(format!("timestamps went backwards within a group: {line:?}"));
            }
        } else {
            family.group_series.clear();
        }
        let value = sample.value;
        if kind == "stateset" && !(value == 0.0 || value == 1.0) {
            return Err(format!("stateset samples can only have values zero and one: {line:?}"));
        }
        if kind == "info" && value != 1.0 {
            return Err(format!("info samples can only have value 1: {line:?}"));
        }
        if kind == "summary" && suffix.is_empty() && sample.name == name && value < 0.0 {
            return Err(format!("quantile values cannot be negative: {line:?}"));
        }
        let counter_like = ["_total", "_sum", "_count", "_bucket", "_gcount", "_gsum"].contains(&suffix);
        if counter_like && value.is_nan() {
            return Err(format!("counter-like samples cannot be NaN: {line:?}"));
        }
        if counter_like && suffix != "_gsum" && value < 0.0 {
            return Err(format!("counter-like samples cannot be negative: {line:?}"));
        }
        if sample.exemplar
            && !(((kind == "histogram" || kind == "gaugehistogram") && sample.name.ends_with("_bucket"))
                || (kind == "counter" && sample.name.ends_with("_total")))
        {
            return Err(format!("only histogram/gaugehistogram buckets and counters can have exemplars: {line:?}"));
        }
        let mut sorted = sample.labels.clone();
        sorted.sort();
        let series = (sample.name.clone(), sorted);
        let duplicate = sample.timestamp == family.group_timestamp && family.group_series.contains(&series);
        family.group_series.insert(series);
        family.group = Some(group.clone());
        family.group_timestamp = sample.timestamp;
        family.seen_groups.insert(group);
        if !duplicate {
            family.samples.push(sample);
        }
        Ok(())
    }
}

/// The labels that identify a sample's group (a histogram's buckets share one without `le`).
fn group_for_sample(sample: &OmSample, name: &str, kind: &str) -> LabelPairs {
    let without = |label: &str| {
        let mut l: LabelPairs = sample.labels.iter().filter(|(n, _)| n != label).cloned().collect();
        l.sort();
        l
    };
    match kind {
        "info" => Vec::new(),
        "summary" if sample.name == name => without("quantile"),
        "stateset" => without(name),
        "histogram" | "gaugehistogram" if sample.name == format!("{name}_bucket") => without("le"),
        _ => without(""),
    }
}

/// `_check_histogram` of the reference parser, per group and timestamp.
fn check_histogram(samples: &[OmSample], name: &str) -> Result<(), String> {
    #[derive(Default)]
    struct State {
        count: Option<f64>,
        bucket: Option<f64>,
        negative_buckets: bool,
        sum: bool,
        gsum: bool,
        negative_gsum: bool,
        value: f64,
    }
    let check = |s: &State| -> Result<(), String> {
        if s.bucket != Some(f64::INFINITY) {
            return Err(format!("+Inf bucket missing: {name}"));
        }
        if s.count.is_some_and(|c| c != s.value) {
            return Err(format!("count does not match +Inf value: {name}"));
        }
        if s.sum && s.count.is_none() {
            return Err(format!("_count must be present if _sum is present: {name}"));
        }
        if s.gsum && s.count.is_none() {
            return Err(format!("_gcount must be present if _gsum is present: {name}"));
        }
        if !(s.sum || s.gsum) && s.count.is_some() {
            return Err(format!("_sum/_gsum must be present if _count is present: {name}"));
        }
        if s.negative_buckets && s.sum {
            return Err(format!("cannot have _sum with negative buckets: {name}"));
        }
        if !s.negative_buckets && s.negative_gsum {
            return Err(format!("cannot have negative _gsum with non-negative buckets: {name}"));
        }
        Ok(())
    };
    let mut current: Option<(LabelPairs, Option<f64>)> = None;
    let mut state = State::default();
    for s in samples {
        let suffix = s.name.strip_prefix(name).unwrap_or("");
        if suffix.is_empty() {
            continue;
        }
        let key = (group_for_sample(s, name, "histogram"), s.timestamp);
        if current.as_ref() != Some(&key) {
            if current.is_some() {
                check(&state)?;
            }
            state = State::default();
        }
        current = Some(key);
        match suffix {
            "_bucket" => {
                let le =
                    s.labels.iter().find(|(n, _)| n == "le").and_then(|(_, v)| python_float(v)).unwrap_or(f64::NAN);
                if le < 0.0 {
                    state.negative_buckets = true;
                }
                if state.bucket.is_some_and(|b| le <= b) {
                    return Err(format!("buckets out of order: {name}"));
                }
                if s.value < state.value {
                    return Err(format!("bucket values out of order: {name}"));
                }
                state.bucket = Some(le);
                state.value = s.value;
            }
            "_count" | "_gcount" => state.count = Some(s.value),
            "_sum" => state.sum = true,
            "_gsum" => {
                state.gsum = true;
                if s.value < 0.0 {
                    state.negative_gsum = true;
                }
            }
            _ => {}
        }
    }
    if current.is_some() {
        check(&state)?;
    }
    Ok(())
}

/// An infinite number not spelled `+Inf`/`-Inf`; an unparsable one is an error.
fn is_uncanonical_number(s: &str) -> Result<bool, String> {
    let f = python_float(s).ok_or_else(|| format!("invalid number {s:?}"))?;
    Ok(f.is_infinite() && s != "+Inf" && s != "-Inf")
}

/// Python's `float()` on a label value (decimal, exponent, inf/nan in any case).
fn python_float(s: &str) -> Option<f64> {
    let t = s.trim();
    if t.is_empty() {
        return None;
    }
    t.replace('_', "").parse::<f64>().ok()
}

/// A sample value: no surrounding space, no `_`, decimal or `NaN`/`Inf` spellings (no hex).
fn parse_value(s: &str) -> Result<f64, String> {
    if s.is_empty() || s.trim() != s || s.contains('_') {
        return Err(format!("invalid value: {s:?}"));
    }
    s.parse::<f64>().map_err(|_| format!("invalid value: {s:?}"))
}

/// A timestamp in seconds: like a value, but finite.
fn parse_timestamp(s: &str) -> Result<Option<f64>, String> {
    if s.is_empty() {
        return Ok(None);
    }
    match parse_value(s) {
        Ok(t) if t.is_finite() => Ok(Some(t)),
        _ => Err(format!("invalid timestamp: {s:?}")),
    }
}

fn split_name(s: &str) -> (&str, &str) {
    let end = s
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit())))
        .map_or(s.len(), |(i, _)| i);
    s.split_at(end)
}

/// Parses `name="value",...}` (after the `{`); returns the labels and what follows the `}`.
fn parse_labels(mut rest: &str) -> Result<(LabelPairs, &str), String> {
    let mut labels = LabelPairs::new();
    if let Some(after) = rest.strip_prefix('}') {
        return Ok((labels, after));
    }
    loop {
        let end = rest
            .char_indices()
            .find(|&(i, c)| !(c.is_ascii_alphabetic() || c == '_' || (i > 0 && c.is_ascii_digit())))
            .map_or(rest.len(), |(i, _)| i);
        let (name, after) = rest.split_at(end);
        if name.is_empty() {
            return Err("invalid label name".into());
        }
        let after = after.strip_prefix("=\"").ok_or_else(|| format!("expected '=\"' after label name {name:?}"))?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut close = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    close = Some(i);
                    break;
                }
                '\\' => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, other)) => {
                        value.push('\\');
                        value.push(other);
                    }
                    None => return Err("unterminated label value".into()),
                },
                c => value.push(c),
            }
        }
        let close = close.ok_or_else(|| "unterminated label value".to_string())?;
        if labels.iter().any(|(n, _)| n == name) {
            return Err(format!("duplicate label name {name:?}"));
        }
        labels.push((name.to_string(), value));
        rest = &after[close + 1..];
        if let Some(after) = rest.strip_prefix('}') {
            return Ok((labels, after));
        }
        rest = rest.strip_prefix(',').ok_or_else(|| "expected ',' or '}' after label value".to_string())?;
    }
}

/// `name[{labels}] value [timestamp] [# {labels} value [timestamp]]`.
fn parse_sample(line: &str) -> Result<OmSample, String> {
    let (name, rest) = split_name(line);
    if name.is_empty() {
        return Err(format!("invalid metric name in line {line:?}"));
    }
    let (labels, rest) = match rest.strip_prefix('{') {
        Some(after) => parse_labels(after)?,
        None => (LabelPairs::new(), rest),
    };
    let rest = rest.strip_prefix(' ').ok_or_else(|| format!("expected ' ' before the value: {line:?}"))?;
    let (value_text, rest) = rest.split_once(' ').map_or((rest, None), |(v, r)| (v, Some(r)));
    let value = parse_value(value_text)?;
    let Some(rest) = rest else {
        return Ok(OmSample { name: name.to_string(), labels, value, timestamp: None, exemplar: false });
    };
    let (timestamp_text, exemplar_text) = if let Some(ex) = rest.strip_prefix("# ") {
        ("", Some(ex))
    } else {
        match rest.split_once(' ') {
            Some((ts, ex)) => {
                let ex = ex.strip_prefix("# ").ok_or_else(|| format!("invalid line: {line:?}"))?;
                (ts, Some(ex))
            }
            None => (rest, None),
        }
    };
    if timestamp_text.is_empty() && exemplar_text.is_none() {
        return Err(format!("trailing space after value: {line:?}"));
    }
    let timestamp = parse_timestamp(timestamp_text)?;
    let exemplar = match exemplar_text {
        Some(text) => {
            parse_exemplar(text).map_err(|e| format!("invalid exemplar ({e}): {line:?}"))?;
            true
        }
        None => false,
    };
    Ok(OmSample { name: name.to_string(), labels, value, timestamp, exemplar })
}

/// `{labels} value [timestamp]`.
fn parse_exemplar(text: &str) -> Result<(), String> {
    let after = text.strip_prefix('{').ok_or("expected '{'")?;
    let (labels, rest) = parse_labels(after)?;
    let chars: usize = labels.iter().map(|(n, v)| n.chars().count() + v.chars().count()).sum();
    if chars > MAX_EXEMPLAR_LABEL_CHARS {
        return Err("exemplar labels are too long".into());
    }
    let rest = rest.strip_prefix(' ').ok_or("expected ' ' before the exemplar value")?;
    let (value, timestamp) = rest.split_once(' ').map_or((rest, None), |(v, t)| (v, Some(t)));
    parse_value(value)?;
    if let Some(timestamp) = timestamp {
        if timestamp.is_empty() {
            return Err("trailing space".into());
        }
        parse_timestamp(timestamp)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn escape(v: &str) -> String {
        v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
    }

    proptest! {
        #[test]
        fn formatted_gauges_parse_back(
            series in proptest::collection::btree_map("l[a-z]{1,8}", (-1e9f64..1e9, proptest::option::of(0u32..2_000_000_000)), 1..8),
            value in "[ -~\n]{0,16}",
        ) {
            let mut text = String::from("# TYPE g gauge\n");
            for (label, (v, ts)) in &series {
                text.push_str(&format!("g{{k=\"{}\",{label}=\"x\"}} {v}", escape(&value)));
                if let Some(ts) = ts {
                    text.push_str(&format!(" {ts}.5"));
                }
                text.push('\n');
            }
            text.push_str("# EOF\n");
            let samples = parse(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
            prop_assert_eq!(samples.len(), series.len());
            for (sample, (label, (v, ts))) in samples.iter().zip(&series) {
                prop_assert_eq!(&sample.labels[0].1, &value);
                prop_assert_eq!(&sample.labels[1].0, label);
                prop_assert_eq!(sample.value, *v);
                prop_assert_eq!(sample.timestamp_ms, ts.map(|t| i64::from(t) * 1000 + 500));
            }
        }

        #[test]
        fn arbitrary_input_never_panics(text in "[ -~\n]{0,200}") {
            let _ = parse(&text);
        }
    }
}
