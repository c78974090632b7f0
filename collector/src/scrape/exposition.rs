//! A parser for the Prometheus text exposition format 0.0.4 (and the content-type switch to the
//! OpenMetrics parser in `openmetrics.rs`), following the reference parser
//! (`prometheus/common/expfmt`): `# HELP`/`# TYPE` comments, metric names with colons, label values
//! with `\\`, `\"` and `\n` escapes, optional millisecond timestamps, `NaN`/`+Inf`/`-Inf`. Errors
//! name the line. Like the reference parser, the last sample line must end with a newline.
//!
//! Zero-copy on the hot path: [`parse_each`] hands out samples that borrow the page (names, label
//! names, unescaped label values), so the scraper copies only what it keeps; [`parse`] is the
//! owned convenience on top.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::fmt;

/// One sample of a scraped page.
#[derive(Clone, Debug, PartialEq)]
pub struct ScrapedSample {
    pub name: String,
    /// Label pairs in page order (without `__name__`).
    pub labels: Vec<(String, String)>,
    pub value: f64,
    pub timestamp_ms: Option<i64>,
}

/// A parse error, with the 1-based line it occurred on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpositionError {
    pub line: usize,
    pub message: String,
    /// Whether the page was read as OpenMetrics (else as text 0.0.4).
    pub openmetrics: bool,
}

impl fmt::Display for ExpositionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let format = if self.openmetrics { "openmetrics" } else { "text format" };
        write!(f, "{format} parsing error in line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for ExpositionError {}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MetricType {
    Counter,
    Gauge,
    Histogram,
    Summary,
    Untyped,
}

/// Whether a `Content-Type` says OpenMetrics (`application/openmetrics-text`).
pub fn is_openmetrics(content_type: Option<&str>) -> bool {
    let media_type = content_type.and_then(|c| c.split(';').next()).map(|m| m.trim());
    media_type.is_some_and(|m| m.eq_ignore_ascii_case("application/openmetrics-text"))
}

/// Parses a page by its `Content-Type`, as Prometheus does: OpenMetrics when the media type is
/// `application/openmetrics-text`, the text format 0.0.4 otherwise (also when it is missing).
pub fn parse_for_content_type(content_type: Option<&str>, text: &str) -> Result<Vec<ScrapedSample>, ExpositionError> {
    if is_openmetrics(content_type) { super::openmetrics::parse(text) } else { parse(text) }
}

/// One sample as it sits in the page: the name and label names borrow the page, label values
/// too unless they contained escapes. Passed to the callback of [`parse_each`].
#[derive(Clone, Copy, Debug)]
pub struct SampleRef<'a, 'b> {
    pub name: &'a str,
    /// Label pairs in page order (without `__name__`).
    pub labels: &'b [(&'a str, Cow<'a, str>)],
    pub value: f64,
    pub timestamp_ms: Option<i64>,
}

impl SampleRef<'_, '_> {
    /// An owned copy.
    pub fn to_owned_sample(&self) -> ScrapedSample {
        ScrapedSample {
            name: self.name.to_string(),
            labels: self.labels.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
            value: self.value,
            timestamp_ms: self.timestamp_ms,
        }
    }
}

/// Parses a whole page of the text format 0.0.4.
pub fn parse(text: &str) -> Result<Vec<ScrapedSample>, ExpositionError> {
    let mut samples = Vec::new();
    parse_each(text, |s| samples.push(s.to_owned_sample()))?;
    Ok(samples)
}

/// Parses a page of the text format 0.0.4 without copying it: `each` sees every sample in page
/// order, borrowing the page (one label buffer is reused across lines, so a scrape allocates only
/// for escaped label values and the per-family bookkeeping). Returns the number of samples; on an
/// error, the samples before the bad line have already been passed to `each`.
pub fn parse_each<'a>(text: &'a str, mut each: impl FnMut(SampleRef<'a, '_>)) -> Result<usize, ExpositionError> {
    let mut parser = Parser::default();
    let mut labels: Vec<(&'a str, Cow<'a, str>)> = Vec::new();
    let mut count = 0;
    let mut lines = text.split('\n').enumerate().peekable();
    while let Some((index, line)) = lines.next() {
        let is_last = lines.peek().is_none();
        let fail = |message: String| ExpositionError { line: index + 1, message, openmetrics: false };
        let trimmed = line.trim_start_matches([' ', '\t']);
        if trimmed.is_empty() {
            continue;
        }
        if let Some(comment) = trimmed.strip_prefix('#') {
            parser.comment(comment).map_err(fail)?;
            continue;
        }
        labels.clear();
        let (name, value, timestamp_ms) = parser.sample(trimmed, &mut labels, is_last).map_err(fail)?;
        if is_last {
            // The line was complete but the stream ended without its newline.
            return Err(fail("unexpected end of input stream".into()));
        }
        each(SampleRef { name, labels: &labels, value, timestamp_ms });
        count += 1;
    }
    Ok(count)
}

/// Per-family bookkeeping is hashed with foldhash: SipHash's per-lookup cost showed up at ~25% of
/// a node_exporter page's parse time in `perf`, and these keys only live for one parse.
pub(crate) type FastBuild = foldhash::fast::RandomState;

#[derive(Default)]
struct Parser<'a> {
    types: HashMap<&'a str, MetricType, FastBuild>,
    helps: HashSet<&'a str, FastBuild>,
    /// Names that had samples; only consulted when the name differs from the previous line's,
    /// since a family's samples are contiguous in practice.
    sampled: HashSet<&'a str, FastBuild>,
    last_name: &'a str,
    /// The family type of `last_name`, so the hash lookups happen once per family, not per line.
    last_type: Option<MetricType>,
}

fn is_ws(c: char) -> bool {
    c == ' ' || c == '\t'
}

fn skip_ws(s: &str) -> &str {
    s.trim_start_matches(is_ws)
}

/// `s.split_once(is_ws)` without decoding characters (both separators are ASCII).
fn split_ws(s: &str) -> Option<(&str, &str)> {
    let at = s.bytes().position(|b| b == b' ' || b == b'\t')?;
    Some((&s[..at], &s[at + 1..]))
}

/// Byte classes of names: bit 0 may start a label name, bit 1 may continue one, bit 2 may start
/// a metric name, bit 3 may continue one. A table lookup per byte instead of five comparisons.
const NAME_CLASS: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        let alpha = c.is_ascii_alphabetic() || c == b'_';
        let digit = c.is_ascii_digit();
        if alpha {
            table[b] |= 0b0001 | 0b0010 | 0b0100 | 0b1000;
        }
        if digit {
            table[b] |= 0b0010 | 0b1000;
        }
        if c == b':' {
            table[b] |= 0b0100 | 0b1000;
        }
        b += 1;
    }
    table
};

/// Splits a leading name off `s`: bytes of class `first` then of class `rest`.
fn split_name(s: &str, first: u8, rest: u8) -> (&str, &str) {
    let bytes = s.as_bytes();
    if bytes.first().is_none_or(|&b| NAME_CLASS[b as usize] & first == 0) {
        return ("", s);
    }
    let mut end = 1;
    while end < bytes.len() && NAME_CLASS[bytes[end] as usize] & rest != 0 {
        end += 1;
    }
    // Every byte taken is ASCII, so `end` is a character boundary.
    s.split_at(end)
}

/// Splits a leading metric name (`[a-zA-Z_:][a-zA-Z0-9_:]*`) off `s`.
fn split_metric_name(s: &str) -> (&str, &str) {
    split_name(s, 0b0100, 0b1000)
}

/// Splits a leading label name (`[a-zA-Z_][a-zA-Z0-9_]*`) off `s`.
fn split_label_name(s: &str) -> (&str, &str) {
    split_name(s, 0b0001, 0b0010)
}

impl<'a> Parser<'a> {
    fn comment(&mut self, rest: &'a str) -> Result<(), String> {
        let rest = skip_ws(rest);
        let (keyword, rest) = rest.split_once(is_ws).unwrap_or((rest, ""));
        if keyword != "HELP" && keyword != "TYPE" {
            return Ok(());
        }
        let rest = skip_ws(rest);
        let (name, rest, separated) = match rest.split_once(is_ws) {
            Some((name, rest)) => (name, rest, true),
            None => (rest, "", false),
        };
        if name.is_empty() {
            return Ok(()); // "# HELP" alone is an ordinary comment
        }
        if split_metric_name(name).0.len() != name.len() {
            return Err("invalid metric name in comment".into());
        }
        if keyword == "HELP" {
            // As in the reference parser, a name with nothing after it is not a HELP line.
            if separated && !self.helps.insert(name) {
                return Err(format!("second HELP line for metric name {name:?}"));
            }
            return Ok(());
        }
        let kind = match rest.trim_matches(is_ws) {
            "counter" => MetricType::Counter,
            "gauge" => MetricType::Gauge,
            "histogram" => MetricType::Histogram,
            "summary" => MetricType::Summary,
            "untyped" => MetricType::Untyped,
            other => return Err(format!("unknown metric type {other:?}")),
        };
        if self.types.contains_key(name) || self.sampled.contains(name) {
            return Err(format!("second TYPE line for metric name {name:?}, or TYPE reported after samples"));
        }
        self.types.insert(name, kind);
        Ok(())
    }

    /// The declared type of the family `name` belongs to, if any.
    fn family_type(&self, name: &str) -> Option<MetricType> {
        if let Some(t) = self.types.get(name) {
            return Some(*t);
        }
        for suffix in ["_bucket", "_sum", "_count"] {
            if let Some(base) = name.strip_suffix(suffix) {
                match self.types.get(base) {
                    Some(t @ MetricType::Histogram) => return Some(*t),
                    Some(t @ MetricType::Summary) if suffix != "_bucket" => return Some(*t),
                    _ => {}
                }
            }
        }
        None
    }

    /// Parses one sample line into `labels` and returns its name, value and timestamp.
    fn sample(
        &mut self,
        line: &'a str,
        labels: &mut Vec<(&'a str, Cow<'a, str>)>,
        is_last: bool,
    ) -> Result<(&'a str, f64, Option<i64>), String> {
        let (name, mut rest) = split_metric_name(line);
        if name.is_empty() {
            return Err("invalid metric name".into());
        }
        if name != self.last_name {
            self.last_type = self.family_type(name);
        }
        rest = skip_ws(rest);
        if let Some(after_brace) = rest.strip_prefix('{') {
            rest = labels_of(after_brace, labels, is_last)?;
        }
        // Only `quantile` of summaries and `le` of histogram buckets must be numbers.
        if labels.iter().any(|(n, _)| *n == "le" || *n == "quantile") {
            let family = self.last_type;
            for (label, value) in labels.iter() {
                let checked = match family {
                    Some(MetricType::Summary) if *label == "quantile" => Some("quantile"),
                    Some(MetricType::Histogram) if *label == "le" && name.ends_with("_bucket") => Some("le"),
                    _ => None,
                };
                if let Some(which) = checked
                    && parse_float(value).is_none()
                {
                    return Err(format!("expected float as value for '{which}' label"));
                }
            }
        }
        rest = skip_ws(rest);
        let (value_text, after_value) = split_ws(rest).unwrap_or((rest, ""));
        let value = parse_float(value_text).ok_or_else(|| "expected float as value".to_string())?;
        let after_value = skip_ws(after_value);
        let timestamp_ms = if after_value.is_empty() {
            None
        } else {
            let (ts_text, tail) = split_ws(after_value).unwrap_or((after_value, ""));
            let ts: i64 = ts_text.parse().map_err(|_| "expected integer as timestamp".to_string())?;
            if !skip_ws(tail).is_empty() {
                return Err("spurious string after timestamp".into());
            }
            Some(ts)
        };
        if name != self.last_name {
            self.sampled.insert(name);
            self.last_name = name;
        }
        Ok((name, value, timestamp_ms))
    }
}

/// Parses `name="value",...}` into `labels` and returns what follows the closing brace.
fn labels_of<'a>(
    mut rest: &'a str,
    labels: &mut Vec<(&'a str, Cow<'a, str>)>,
    is_last: bool,
) -> Result<&'a str, String> {
    loop {
        rest = skip_ws(rest);
        if let Some(after) = rest.strip_prefix('}') {
            return Ok(after);
        }
        let (label, after_name) = split_label_name(rest);
        if label.is_empty() {
            return Err("invalid label name for metric".into());
        }
        if label == "__name__" {
            return Err("label name \"__name__\" is reserved".into());
        }
        rest = skip_ws(after_name);
        rest = rest.strip_prefix('=').ok_or_else(|| "expected '=' after label name".to_string())?;
        rest = skip_ws(rest);
        rest = rest.strip_prefix('"').ok_or_else(|| "expected '\"' at start of label value".to_string())?;
        let (value, after_value) = unescape_value(rest).map_err(|partial| match partial {
            Some(v) if !is_last => format!("label value {v:?} contains unescaped new-line"),
            Some(_) => "unexpected end of label value".to_string(),
            None => "invalid escape sequence".to_string(),
        })?;
        if labels.iter().any(|(n, _)| *n == label) {
            return Err(format!("duplicate label name {label:?}"));
        }
        labels.push((label, value));
        rest = skip_ws(after_value);
        if let Some(after) = rest.strip_prefix(',') {
            rest = after;
        } else if !rest.starts_with('}') {
            return Err("unexpected end of label value".into());
        }
    }
}

/// Reads a label value up to its closing quote, borrowing it when it has no escapes.
/// `Err(Some(partial))` if the line ends first, `Err(None)` on a bad escape.
fn unescape_value(s: &str) -> Result<(Cow<'_, str>, &str), Option<String>> {
    let bytes = s.as_bytes();
    let Some(stop) = memchr::memchr2(b'"', b'\\', bytes) else {
        return Err(Some(s.to_string()));
    };
    if bytes[stop] == b'"' {
        return Ok((Cow::Borrowed(&s[..stop]), &s[stop + 1..]));
    }
    let mut value = String::from(&s[..stop]);
    let mut chars = s[stop..].char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((Cow::Owned(value), &s[stop + i + 1..])),
            '\\' => match chars.next() {
                Some((_, '\\')) => value.push('\\'),
                Some((_, '"')) => value.push('"'),
                Some((_, 'n')) => value.push('\n'),
                Some(_) => return Err(None),
                None => return Err(Some(value)),
            },
            c => value.push(c),
        }
    }
    Err(Some(value))
}

/// Go's `strconv.ParseFloat` for the values pages contain (`NaN`, `+Inf`, `-Inf`, decimals).
fn parse_float(s: &str) -> Option<f64> {
    // Most values are small integers (counters, gauges of counts, bucket counts): up to 15
    // digits they convert to f64 exactly, far cheaper than the general decimal parser.
    let bytes = s.as_bytes();
    if !bytes.is_empty() && bytes.len() <= 15 && bytes.iter().all(u8::is_ascii_digit) {
        return Some(bytes.iter().fold(0u64, |n, &d| n * 10 + u64::from(d - b'0')) as f64);
    }
    if s.is_empty() || s.contains('_') {
        return None;
    }
    s.parse::<f64>().ok()
}

#[cfg(test)]
#[path = "exposition_tests.rs"]
mod tests;
