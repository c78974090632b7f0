//! A parser for the Prometheus text exposition format 0.0.4 (and the content-type switch to the
//! OpenMetrics parser in `openmetrics.rs`), following the reference parser
//! (`prometheus/common/expfmt`): `# HELP`/`# TYPE` comments, metric names with colons, label values
//! with `\\`, `\"` and `\n` escapes, optional millisecond timestamps, `NaN`/`+Inf`/`-Inf`. Errors
//! name the line. Like the reference parser, the last sample line must end with a newline.
//!
//! Allocation-light rather than zero-copy: names and label pairs are owned per sample.

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

/// Parses a page by its `Content-Type`, as Prometheus does: OpenMetrics when the media type is
/// `application/openmetrics-text`, the text format 0.0.4 otherwise (also when it is missing).
pub fn parse_for_content_type(content_type: Option<&str>, text: &str) -> Result<Vec<ScrapedSample>, ExpositionError> {
    let media_type = content_type.and_then(|c| c.split(';').next()).map(|m| m.trim().to_ascii_lowercase());
    if media_type.as_deref() == Some("application/openmetrics-text") {
        super::openmetrics::parse(text)
    } else {
        parse(text)
    }
}

/// Parses a whole page of the text format 0.0.4.
pub fn parse(text: &str) -> Result<Vec<ScrapedSample>, ExpositionError> {
    let mut parser = Parser::default();
    let mut samples = Vec::new();
    let mut lines = text.split('\n').enumerate().peekable();
    while let Some((index, line)) = lines.next() {
        let number = index + 1;
        let is_last = lines.peek().is_none();
        let fail = |message: String| ExpositionError { line: number, message, openmetrics: false };
        let trimmed = line.trim_start_matches([' ', '\t']);
        if trimmed.is_empty() {
            continue;
        }
        if let Some(comment) = trimmed.strip_prefix('#') {
            parser.comment(comment).map_err(fail)?;
            continue;
        }
        let sample = parser.sample(trimmed, is_last).map_err(fail)?;
        if is_last {
            // The line was complete but the stream ended without its newline.
            return Err(fail("unexpected end of input stream".into()));
        }
        samples.push(sample);
    }
    Ok(samples)
}

#[derive(Default)]
struct Parser {
    types: HashMap<String, MetricType>,
    helps: HashSet<String>,
    sampled: HashSet<String>,
}

fn is_ws(c: char) -> bool {
    c == ' ' || c == '\t'
}

fn skip_ws(s: &str) -> &str {
    s.trim_start_matches(is_ws)
}

/// Splits a leading metric name (`[a-zA-Z_:][a-zA-Z0-9_:]*`) off `s`.
fn split_metric_name(s: &str) -> (&str, &str) {
    let end = s
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit())))
        .map_or(s.len(), |(i, _)| i);
    s.split_at(end)
}

/// Splits a leading label name (`[a-zA-Z_][a-zA-Z0-9_]*`) off `s`.
fn split_label_name(s: &str) -> (&str, &str) {
    let end = s
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_alphabetic() || c == '_' || (i > 0 && c.is_ascii_digit())))
        .map_or(s.len(), |(i, _)| i);
    s.split_at(end)
}

impl Parser {
    fn comment(&mut self, rest: &str) -> Result<(), String> {
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
            if separated && !self.helps.insert(name.to_string()) {
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
        self.types.insert(name.to_string(), kind);
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

    fn sample(&mut self, line: &str, is_last: bool) -> Result<ScrapedSample, String> {
        let (name, mut rest) = split_metric_name(line);
        if name.is_empty() {
            return Err("invalid metric name".into());
        }
        let mut labels: Vec<(String, String)> = Vec::new();
        rest = skip_ws(rest);
        if let Some(after_brace) = rest.strip_prefix('{') {
            rest = self.labels(after_brace, &mut labels, is_last)?;
        }
        let family = self.family_type(name);
        for (label, value) in &labels {
            let checked = match family {
                Some(MetricType::Summary) if label == "quantile" => Some("quantile"),
                Some(MetricType::Histogram) if label == "le" && name.ends_with("_bucket") => Some("le"),
                _ => None,
            };
            if let Some(which) = checked
                && parse_float(value).is_none()
            {
                return Err(format!("expected float as value for '{which}' label"));
            }
        }
        rest = skip_ws(rest);
        let (value_text, after_value) = rest.split_once(is_ws).unwrap_or((rest, ""));
        let value = parse_float(value_text).ok_or_else(|| "expected float as value".to_string())?;
        let after_value = skip_ws(after_value);
        let timestamp_ms = if after_value.is_empty() {
            None
        } else {
            let (ts_text, tail) = after_value.split_once(is_ws).unwrap_or((after_value, ""));
            let ts: i64 = ts_text.parse().map_err(|_| "expected integer as timestamp".to_string())?;
            if !skip_ws(tail).is_empty() {
                return Err("spurious string after timestamp".into());
            }
            Some(ts)
        };
        if !self.sampled.contains(name) {
            self.sampled.insert(name.to_string());
        }
        Ok(ScrapedSample { name: name.to_string(), labels, value, timestamp_ms })
    }

    /// Parses `name="value",...}` and returns what follows the closing brace.
    fn labels<'a>(
        &self,
        mut rest: &'a str,
        labels: &mut Vec<(String, String)>,
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
            if labels.iter().any(|(n, _)| n == label) {
                return Err(format!("duplicate label name {label:?}"));
            }
            labels.push((label.to_string(), value));
            rest = skip_ws(after_value);
            if let Some(after) = rest.strip_prefix(',') {
                rest = after;
            } else if !rest.starts_with('}') {
                return Err("unexpected end of label value".into());
            }
        }
    }
}

/// Reads a label value up to its closing quote. `Err(Some(partial))` if the line ends first,
/// `Err(None)` on a bad escape.
fn unescape_value(s: &str) -> Result<(String, &str), Option<String>> {
    let mut value = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((value, &s[i + 1..])),
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
    if s.is_empty() || s.contains('_') {
        return None;
    }
    s.parse::<f64>().ok()
}

#[cfg(test)]
#[path = "exposition_tests.rs"]
mod tests;
