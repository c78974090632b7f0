//! A parser for the Prometheus text exposition format 0.0.4 (and the content-type switch to the
//! OpenMetrics parser in `openmetrics.rs`), following the reference parser
//! (`prometheus/common/expfmt`): `# HELP`/`# TYPE` comments, metric names with colons, label values
//! with `\\`, `\"` and `\n` escapes, optional millisecond timestamps, `NaN`/`+Inf`/`-Inf`. Errors
//! name the line. Like the reference parser, the last sample line must end with a newline.
//!
//! Zero-copy on the hot path: [`parse_each`] hands out samples that borrow the page (names, label
//! names, unescaped label values), so the scraper copies only what it keeps; [`parse`] is the
//! owned convenience on top. Nearly every line of a real page has the plain shape
//! `name{a="x",b="y"} value`: [`Parser::plain_sample`] reads those in one pass over the bytes
//! (the previous line's name and label names compared instead of scanned again, the value by
//! `float.rs`'s exact fast path) and hands anything else, valid or not, to the careful path, which
//! decides and names errors. The two must agree on every input: a property test and the
//! `exposition_text` fuzz target check it against [`parse_carefully`].

use std::borrow::Cow;
use std::collections::HashMap;
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
pub fn parse_each<'a>(text: &'a str, each: impl FnMut(SampleRef<'a, '_>)) -> Result<usize, ExpositionError> {
    parse_lines(text, true, each).map(|lines| lines.samples)
}

/// [`parse`] with every line on the careful path: the reference the fast path is tested and
/// fuzzed against (it must give the same samples and the same errors).
pub(crate) fn parse_carefully(text: &str) -> Result<Vec<ScrapedSample>, ExpositionError> {
    let mut samples = Vec::new();
    parse_lines(text, false, |s| samples.push(s.to_owned_sample()))?;
    Ok(samples)
}

/// What [`parse_lines`] read.
struct Lines {
    samples: usize,
    /// Of those, read by the fast path.
    #[cfg_attr(not(test), expect(dead_code, reason = "read by the tests"))]
    plain: usize,
}

/// [`parse_each`], with the fast path for plain sample lines ([`Parser::plain_sample`]) when
/// `fast`.
fn parse_lines<'a>(
    text: &'a str,
    fast: bool,
    mut each: impl FnMut(SampleRef<'a, '_>),
) -> Result<Lines, ExpositionError> {
    let mut parser = Parser::for_page(text);
    let mut labels: Vec<(&'a str, Cow<'a, str>)> = Vec::new();
    let mut count = 0;
    let mut plain_count = 0;
    let bytes = text.as_bytes();
    let mut start = 0;
    let mut number = 0;
    while start < bytes.len() {
        number += 1;
        let fail = |message: String| ExpositionError { line: number, message, openmetrics: false };
        if fast && let Some(plain) = parser.plain_sample(&text[start..], &mut labels) {
            parser.checked(plain.name, plain.same, &labels).map_err(fail)?;
            let end = start + plain.len;
            if end == bytes.len() {
                // The line was complete but the stream ended without its newline.
                return Err(fail("unexpected end of input stream".into()));
            }
            start = end + 1;
            each(SampleRef { name: plain.name, labels: &labels, value: plain.value, timestamp_ms: plain.timestamp_ms });
            count += 1;
            plain_count += 1;
            continue;
        }
        let (end, is_last) = match memchr::memchr(b'\n', &bytes[start..]) {
            Some(at) => (start + at, false),
            None => (bytes.len(), true),
        };
        let mut line = &text[start..end];
        start = end + 1;
        if matches!(line.as_bytes().first(), Some(b' ' | b'\t')) {
            line = line.trim_start_matches([' ', '\t']);
        }
        match line.as_bytes().first() {
            None => continue,
            Some(b'#') => {
                parser.comment(&line[1..]).map_err(fail)?;
                continue;
            }
            Some(_) => {}
        }
        labels.clear();
        let (name, value, timestamp_ms) = parser.sample(line, &mut labels, is_last).map_err(fail)?;
        if is_last {
            return Err(fail("unexpected end of input stream".into()));
        }
        each(SampleRef { name, labels: &labels, value, timestamp_ms });
        count += 1;
    }
    Ok(Lines { samples: count, plain: plain_count })
}

/// Per-family bookkeeping is hashed with foldhash: SipHash's per-lookup cost showed up at ~25% of
/// a node_exporter page's parse time in `perf`, and these keys only live for one parse.
pub(crate) type FastBuild = foldhash::fast::RandomState;

/// What one parse knows about a name seen in a HELP or TYPE line or as a sample's name.
#[derive(Clone, Copy, Default)]
struct NameState {
    help: bool,
    kind: Option<MetricType>,
    sampled: bool,
}

struct Parser<'a> {
    /// Index into `states` per name: one hash lookup per name serves all three facts.
    names: HashMap<&'a str, u32, FastBuild>,
    states: Vec<NameState>,
    /// The name of the last HELP/TYPE line and its index: a family's HELP line, TYPE line and
    /// the lookup of its type by the samples follow each other, so only the first one hashes.
    comment_name: Option<(&'a str, u32)>,
    /// The name of the previous sample line; a family's samples are contiguous in practice, so
    /// the lookups happen when it changes.
    last_name: &'a str,
    /// The family type of `last_name`.
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
const LABEL_START: u8 = 0b0001;
const LABEL_REST: u8 = 0b0010;
const METRIC_START: u8 = 0b0100;
const METRIC_REST: u8 = 0b1000;

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
    split_name(s, METRIC_START, METRIC_REST)
}

/// Splits a leading label name (`[a-zA-Z_][a-zA-Z0-9_]*`) off `s`.
fn split_label_name(s: &str) -> (&str, &str) {
    split_name(s, LABEL_START, LABEL_REST)
}

impl<'a> Parser<'a> {
    fn for_page(text: &str) -> Self {
        // About one name per 500 bytes on real pages: sized once instead of grown step by step.
        let capacity = text.len() / 512;
        Parser {
            names: HashMap::with_capacity_and_hasher(capacity, FastBuild::default()),
            states: Vec::with_capacity(capacity),
            comment_name: None,
            last_name: "",
            last_type: None,
        }
    }

    /// The index of `name`'s state, added if new.
    fn state(&mut self, name: &'a str) -> usize {
        let next = self.states.len() as u32;
        let index = *self.names.entry(name).or_insert(next);
        if index == next {
            self.states.push(NameState::default());
        }
        index as usize
    }

    /// The state of the name of a HELP/TYPE line, the previous one's without hashing again.
    fn comment_state(&mut self, name: &'a str) -> &mut NameState {
        let index = match self.comment_name {
            Some((last, index)) if last == name => index as usize,
            _ => {
                let index = self.state(name);
                self.comment_name = Some((name, index as u32));
                index
            }
        };
        &mut self.states[index]
    }

    /// The declared type of `name`, without adding it.
    fn declared(&self, name: &str) -> Option<MetricType> {
        let index = match self.comment_name {
            Some((last, index)) if last == name => index,
            _ => *self.names.get(name)?,
        };
        self.states[index as usize].kind
    }

    fn comment(&mut self, rest: &'a str) -> Result<(), String> {
        let rest = skip_ws(rest);
        let (keyword, rest) = split_ws(rest).unwrap_or((rest, ""));
        if keyword != "HELP" && keyword != "TYPE" {
            return Ok(());
        }
        let rest = skip_ws(rest);
        if rest.is_empty() {
            return Ok(()); // "# HELP" alone is an ordinary comment
        }
        // One scan finds the name's end and checks its bytes: it must end at whitespace or at
        // the end of the line.
        let (name, after) = split_metric_name(rest);
        let (rest, separated) = match after.as_bytes().first() {
            None => ("", false),
            Some(b' ' | b'\t') => (&after[1..], true),
            Some(_) => return Err("invalid metric name in comment".into()),
        };
        if keyword == "HELP" {
            // As in the reference parser, a name with nothing after it is not a HELP line.
            if separated {
                let state = self.comment_state(name);
                if state.help {
                    return Err(format!("second HELP line for metric name {name:?}"));
                }
                state.help = true;
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
        let state = self.comment_state(name);
        if state.kind.is_some() || state.sampled {
            return Err(format!("second TYPE line for metric name {name:?}, or TYPE reported after samples"));
        }
        state.kind = Some(kind);
        Ok(())
    }

    /// Records that `name` had samples (a TYPE line for it is an error from now on) and returns
    /// the declared type of the family it belongs to, if any.
    fn sampled_family_type(&mut self, name: &'a str) -> Option<MetricType> {
        let index = self.state(name);
        let state = &mut self.states[index];
        state.sampled = true;
        if let Some(kind) = state.kind {
            return Some(kind);
        }
        for suffix in ["_bucket", "_sum", "_count"] {
            if let Some(base) = name.strip_suffix(suffix) {
                match self.declared(base) {
                    Some(t @ MetricType::Histogram) => return Some(t),
                    Some(t @ MetricType::Summary) if suffix != "_bucket" => return Some(t),
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
        let same = name == self.last_name;
        self.enter(name, same);
        rest = skip_ws(rest);
        if let Some(after_brace) = rest.strip_prefix('{') {
            rest = labels_of(after_brace, labels, is_last)?;
        }
        self.check_numeric_labels(name, labels)?;
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
        Ok((name, value, timestamp_ms))
    }

    /// The family bookkeeping of a sample [`Self::plain_sample`] read: the same checks, in the
    /// same order, as [`Self::sample`] makes around its parsing.
    fn checked(&mut self, name: &'a str, same: bool, labels: &[(&'a str, Cow<'a, str>)]) -> Result<(), String> {
        self.enter(name, same);
        self.check_numeric_labels(name, labels)
    }

    /// Does the family bookkeeping when a sample's name differs from the previous line's
    /// (`same` says whether it does). Done before the line is fully checked: a bad line ends the
    /// parse, so nothing reads what it recorded.
    fn enter(&mut self, name: &'a str, same: bool) {
        if !same {
            self.last_type = self.sampled_family_type(name);
            self.last_name = name;
        }
    }

    /// Only `quantile` of summaries and `le` of histogram buckets must be numbers.
    fn check_numeric_labels(&self, name: &str, labels: &[(&'a str, Cow<'a, str>)]) -> Result<(), String> {
        let which = match self.last_type {
            Some(MetricType::Summary) => "quantile",
            Some(MetricType::Histogram) if name.ends_with("_bucket") => "le",
            _ => return Ok(()),
        };
        for (label, value) in labels {
            if *label == which && parse_float(value).is_none() {
                return Err(format!("expected float as value for '{which}' label"));
            }
        }
        Ok(())
    }

    /// The fast path for the common line shape `name{a="x",b="y"} value` (labels optional, a
    /// trailing comma allowed, an optional ` timestamp`) at the start of `rest`: no whitespace
    /// but the single separators, no escapes, a plain decimal value. `None` on anything else,
    /// valid or not (also on a reserved or repeated label name, and on comments): the caller
    /// then takes the careful path, which decides and names the error. Parses only;
    /// [`Self::checked`] does the bookkeeping.
    ///
    /// `labels` holds the previous sample line's labels on entry (distinct, valid names) and is
    /// overwritten: consecutive lines mostly repeat the label names, so a comparison replaces
    /// scanning and checking them.
    fn plain_sample(&self, rest: &'a str, labels: &mut Vec<(&'a str, Cow<'a, str>)>) -> Option<PlainSample<'a>> {
        let b = rest.as_bytes();
        if NAME_CLASS[usize::from(*b.first()?)] & METRIC_START == 0 {
            return None;
        }
        // A family's lines usually share the previous line's name, and its first line starts
        // with the name of its HELP/TYPE lines: one comparison then, instead of a class lookup
        // per byte.
        let last = self.last_name.as_bytes();
        let same = !last.is_empty()
            && starts_with(b, last)
            && b.get(last.len()).is_none_or(|&c| NAME_CLASS[usize::from(c)] & METRIC_REST == 0);
        let mut i = if same {
            last.len()
        } else {
            let known = match self.comment_name {
                Some((family, _)) if starts_with(b, family.as_bytes()) => family.len(),
                _ => 1,
            };
            known
                + b[known..]
                    .iter()
                    .position(|&c| NAME_CLASS[usize::from(c)] & METRIC_REST == 0)
                    .unwrap_or(b.len() - known)
        };
        let name = &rest[..i];
        let previous = labels.len();
        let mut count = 0;
        if b.get(i) == Some(&b'{') {
            i += 1;
            // Whether the names so far are the previous line's (then they are distinct).
            let mut as_before = true;
            loop {
                let first = *b.get(i)?;
                if first == b'}' {
                    i += 1;
                    break;
                }
                let label = match labels.get(count) {
                    Some((known, _))
                        if as_before
                            && starts_with(&b[i..], known.as_bytes())
                            && b.get(i + known.len()) == Some(&b'=') =>
                    {
                        *known
                    }
                    _ => {
                        as_before = false;
                        if NAME_CLASS[usize::from(first)] & LABEL_START == 0 {
                            return None;
                        }
                        let end = i
                            + 1
                            + b[i + 1..]
                                .iter()
                                .position(|&c| NAME_CLASS[usize::from(c)] & LABEL_REST == 0)
                                .unwrap_or(b.len() - i - 1);
                        let label = &rest[i..end];
                        if label == "__name__" || labels[..count].iter().any(|(n, _)| *n == label) {
                            return None;
                        }
                        label
                    }
                };
                i += label.len();
                if b.get(i..i + 2) != Some(b"=\"") {
                    return None;
                }
                i += 2;
                let close = i + value_stop(&b[i..])?;
                if b[close] != b'"' {
                    return None;
                }
                let value = Cow::Borrowed(&rest[i..close]);
                match labels.get_mut(count) {
                    Some(slot) => *slot = (label, value),
                    None => labels.push((label, value)),
                }
                count += 1;
                i = close + 1;
                match b.get(i) {
                    Some(b',') => i += 1,
                    Some(b'}') => {
                        i += 1;
                        break;
                    }
                    _ => return None,
                }
            }
        }
        if b.get(i) != Some(&b' ') {
            return None;
        }
        i += 1;
        // Values are short: a plain loop finds the end sooner than a vectorised search.
        let value_end = i + b[i..].iter().position(|&c| c == b' ' || c == b'\n').unwrap_or(b.len() - i);
        let value = super::float::parse_plain_decimal(&b[i..value_end])?;
        let (timestamp_ms, len) = if b.get(value_end) == Some(&b' ') {
            let ts_start = value_end + 1;
            let ts_end = ts_start + b[ts_start..].iter().position(|&c| c == b'\n').unwrap_or(b.len() - ts_start);
            (Some(plain_integer(&b[ts_start..ts_end])?), ts_end)
        } else {
            (None, value_end)
        };
        if count < previous {
            labels.truncate(count);
        }
        Some(PlainSample { name, same, value, timestamp_ms, len })
    }
}

/// A line [`Parser::plain_sample`] read.
struct PlainSample<'a> {
    name: &'a str,
    /// Whether `name` is the previous sample line's.
    same: bool,
    value: f64,
    timestamp_ms: Option<i64>,
    /// The line's length, without its newline.
    len: usize,
}

/// `hay.starts_with(prefix)` inline, eight bytes at a time: the names compared are short, and a
/// call to the C library's `memcmp` per comparison was 18% of a page's parse time in `perf`.
#[inline(always)]
fn starts_with(hay: &[u8], prefix: &[u8]) -> bool {
    let Some(hay) = hay.get(..prefix.len()) else {
        return false;
    };
    let word = |s: &[u8], at: usize| u64::from_ne_bytes(s[at..at + 8].try_into().unwrap_or_default());
    let n = prefix.len();
    if n < 8 {
        return hay.iter().zip(prefix).all(|(a, b)| a == b);
    }
    let mut at = 0;
    while at + 8 < n {
        if word(hay, at) != word(prefix, at) {
            return false;
        }
        at += 8;
    }
    // The last eight bytes, overlapping the previous word if needed.
    word(hay, n - 8) == word(prefix, n - 8)
}

/// The first `"`, `\\` or newline in `s`: label values are short, so eight bytes at a time
/// without the set-up of a vectorised search (which was 13% of a page's parse time).
#[inline(always)]
fn value_stop(s: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    // High bit set in the bytes of `v` that are zero, and possibly in bytes above one that is
    // (borrows), so the lowest set bit is exact.
    let zero_bytes = |v: u64| v.wrapping_sub(ONES) & !v & (ONES << 7);
    let mut at = 0;
    while let Some(chunk) = s.get(at..at + 8) {
        let word = u64::from_le_bytes(chunk.try_into().unwrap_or_default());
        let found = zero_bytes(word ^ (ONES * u64::from(b'"')))
            | zero_bytes(word ^ (ONES * u64::from(b'\\')))
            | zero_bytes(word ^ (ONES * u64::from(b'\n')));
        if found != 0 {
            return Some(at + (found.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    s[at..].iter().position(|&c| matches!(c, b'"' | b'\\' | b'\n')).map(|p| at + p)
}

/// A timestamp as `-?digits` (at most 18, so it cannot overflow); `None` for anything else.
fn plain_integer(s: &[u8]) -> Option<i64> {
    let (negative, digits) = match s.split_first() {
        Some((b'-', digits)) => (true, digits),
        _ => (false, s),
    };
    if digits.is_empty() || digits.len() > 18 {
        return None;
    }
    let mut n = 0i64;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        n = n * 10 + i64::from(d - b'0');
    }
    Some(if negative { -n } else { n })
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
    // Most values are plain decimals with few digits: exact and far cheaper on the fast path.
    if let Some(value) = super::float::parse_plain_decimal(s.as_bytes()) {
        return Some(value);
    }
    if s.is_empty() || s.contains('_') {
        return None;
    }
    s.parse::<f64>().ok()
}

#[cfg(test)]
#[path = "exposition_tests.rs"]
mod tests;
