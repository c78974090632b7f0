//! Joins the records of one stream that belong together (a stack trace is many lines, one event)
//! with Fluent Bit's regex state machine: a line matching a start rule opens a record, lines
//! matching a rule of the current state continue it, anything else closes it. The built-in modes
//! are Fluent Bit's `java`, `python`, `go` and `ruby` rule sets; `regex` takes the user's rules.
//! It runs after CRI/docker partial joining, keeps stdout and stderr apart, emits a pending record
//! after `flush_timeout` without a continuation, and before it would grow past `max_line_bytes`.

use std::time::Duration;

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::parse::{ParsedLine, Stream};

/// Name of the state every record starts in (as in Fluent Bit).
pub const START_STATE: &str = "start_state";

/// Which multiline rule set joins lines.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MultilineMode {
    /// Every line is its own record.
    #[default]
    None,
    /// Java (and C#) exceptions with `at ...`, `Caused by:`, `... N more`.
    Java,
    /// Python tracebacks.
    Python,
    /// Go panics with goroutine dumps.
    Go,
    /// Ruby backtraces (`from ...:N:in ...`).
    Ruby,
    /// The rules given in `rules`.
    Regex,
}

/// One transition of the state machine (Fluent Bit's `rule "state" "/regex/" "next"`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MultilineRule {
    /// State(s) the rule applies in, comma-separated; `start_state` marks a rule that opens a record.
    pub state: String,
    /// Regular expression a line must match (Rust `regex` syntax; `/.../` slashes are optional).
    pub regex: String,
    /// State after a matching line.
    pub next_state: String,
}

/// `collector.tail.multiline`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MultilineConfig {
    /// Rule set: `none` (default), `java`, `python`, `go`, `ruby` or `regex`.
    pub mode: MultilineMode,
    /// Rules of the `regex` mode (must be empty otherwise); at least one in state `start_state`.
    pub rules: Vec<MultilineRule>,
    /// A pending record is emitted when no continuation arrived for this long.
    #[serde(with = "humantime_serde")]
    pub flush_timeout: Duration,
}

impl Default for MultilineConfig {
    fn default() -> Self {
        Self { mode: MultilineMode::None, rules: Vec::new(), flush_timeout: Duration::from_secs(1) }
    }
}

impl MultilineConfig {
    /// Checks the rules compile; the message names the offending key.
    pub fn validate(&self, key: &str) -> Result<(), String> {
        if self.flush_timeout.is_zero() {
            return Err(format!("{key}.flush_timeout must be > 0"));
        }
        match self.mode {
            MultilineMode::Regex if self.rules.is_empty() => {
                return Err(format!("{key}.rules must not be empty in mode regex"));
            }
            MultilineMode::Regex => {}
            _ if !self.rules.is_empty() => return Err(format!("{key}.rules is only read in mode regex")),
            _ => {}
        }
        compile(&self.rules_for_mode(), key).map(|_| ())
    }

    fn rules_for_mode(&self) -> Vec<MultilineRule> {
        let builtin: &[(&str, &str, &str)] = match self.mode {
            MultilineMode::None => &[],
            MultilineMode::Regex => return self.rules.clone(),
            MultilineMode::Java => JAVA,
            MultilineMode::Python => PYTHON,
            MultilineMode::Go => GO,
            MultilineMode::Ruby => RUBY,
        };
        builtin
            .iter()
            .map(|(s, r, n)| MultilineRule { state: s.to_string(), regex: r.to_string(), next_state: n.to_string() })
            .collect()
    }

    /// The joiner of this configuration, `None` in mode `none`.
    pub(crate) fn joiner(&self, max_bytes: usize) -> Result<Option<Joiner>, String> {
        if self.mode == MultilineMode::None {
            return Ok(None);
        }
        let rules = compile(&self.rules_for_mode(), "collector.tail.multiline")?;
        Ok(Some(Joiner {
            rules,
            flush_timeout_ns: i64::try_from(self.flush_timeout.as_nanos()).unwrap_or(i64::MAX),
            max_bytes,
            pending: [None, None, None],
        }))
    }
}

// Fluent Bit's src/multiline/flb_ml_parser_{java,python,go,ruby}.c, rule for rule.
const JAVA: &[(&str, &str, &str)] = &[
    (
        "start_state, java_start_exception",
        r"(.)(?:Exception|Error|Throwable|V8 errors stack trace)[:\r\n]",
        "java_after_exception",
    ),
    ("java_after_exception", r"^[\t ]*nested exception is:[\t ]*", "java_start_exception"),
    ("java_after_exception", r"^[\r\n]*$", "java_after_exception"),
    ("java_after_exception, java", r"^[\t ]+(?:eval )?at ", "java"),
    ("java_after_exception, java", r"^[\t ]+--- End of inner exception stack trace ---$", "java"),
    (
        "java_after_exception, java",
        r"^--- End of stack trace from previous location where exception was thrown ---$",
        "java",
    ),
    ("java_after_exception, java", r"^[\t ]*(?:Caused by|Suppressed):", "java_after_exception"),
    ("java_after_exception, java", r"^[\t ]*... \d+ (?:more|common frames omitted)", "java"),
];
const PYTHON: &[(&str, &str, &str)] = &[
    ("start_state", r"^Traceback \(most recent call last\):$", "python"),
    ("python", r"^[\t ]+File ", "python_code"),
    ("python_code", r"[^\t ]", "python"),
    ("python", r"^(?:[^\s.():]+\.)*[^\s.():]+:", "start_state"),
];
const GO: &[(&str, &str, &str)] = &[
    ("start_state", r"\bpanic: ", "go_after_panic"),
    ("start_state", r"http: panic serving", "go_goroutine"),
    ("go_after_panic", r"^$", "go_goroutine"),
    ("go_after_panic, go_after_signal, go_frame_1", r"^$", "go_goroutine"),
    ("go_after_panic", r"^\[signal ", "go_after_signal"),
    ("go_goroutine", r"^goroutine \d+ \[[^\]]+\]:$", "go_frame_1"),
    ("go_frame_1", r"^(?:[^\s.:]+\.)*[^\s.():]+\(|^created by ", "go_frame_2"),
    ("go_frame_2", r"^\s", "go_frame_1"),
];
const RUBY: &[(&str, &str, &str)] = &[
    ("start_state, ruby_start_exception", r"^.+:\d+:in\s+.*", "ruby_after_exception"),
    ("ruby_after_exception, ruby", r"^\s+from\s+.*:\d+:in\s+.*", "ruby"),
];

#[derive(Debug)]
struct CompiledRule {
    from: Vec<String>,
    start: bool,
    regex: Regex,
    to: String,
}

fn compile(rules: &[MultilineRule], key: &str) -> Result<Vec<CompiledRule>, String> {
    let mut out = Vec::with_capacity(rules.len());
    for (i, rule) in rules.iter().enumerate() {
        let from: Vec<String> = rule.state.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
        if from.is_empty() {
            return Err(format!("{key}.rules[{i}].state must not be empty"));
        }
        if rule.next_state.trim().is_empty() {
            return Err(format!("{key}.rules[{i}].next_state must not be empty"));
        }
        let text = rule.regex.strip_prefix('/').and_then(|r| r.strip_suffix('/')).unwrap_or(&rule.regex);
        let regex = Regex::new(text).map_err(|e| format!("{key}.rules[{i}].regex {:?}: {e}", rule.regex))?;
        out.push(CompiledRule {
            start: from.iter().any(|s| s == START_STATE),
            from,
            regex,
            to: rule.next_state.trim().to_string(),
        });
    }
    if !out.is_empty() && !out.iter().any(|r| r.start) {
        return Err(format!("{key}.rules: no rule in state {START_STATE:?}"));
    }
    Ok(out)
}

/// A record being joined.
#[derive(Debug)]
struct Pending {
    record: ParsedLine,
    /// State after its last line.
    state: String,
    /// File offset at or before its first byte: the checkpoint may not pass it.
    start_offset: u64,
    /// Read time of its last line (the flush timeout counts from it).
    last_ns: i64,
    /// Its last line ended with its own `\n` (as Fluent Bit's test inputs do), so the next one
    /// needs no separator.
    ends_with_newline: bool,
}

/// Per-file multiline state, one pending record per stream.
#[derive(Debug)]
pub(crate) struct Joiner {
    rules: Vec<CompiledRule>,
    flush_timeout_ns: i64,
    max_bytes: usize,
    /// Plain lines (no stream), stdout, stderr.
    pending: [Option<Pending>; 3],
}

fn slot(stream: Option<Stream>) -> usize {
    match stream {
        None => 0,
        Some(Stream::Stdout) => 1,
        Some(Stream::Stderr) => 2,
    }
}

/// The text rules are matched against: the line without a trailing newline.
fn match_text(line: &str) -> &str {
    let line = line.strip_suffix('\n').unwrap_or(line);
    line.strip_suffix('\r').unwrap_or(line)
}

impl Joiner {
    /// Takes one complete record that starts at or after `start_offset`; records that are done
    /// are appended to `out`. `now_ns` is the read time (for the flush timeout).
    pub(crate) fn push(&mut self, rec: ParsedLine, start_offset: u64, now_ns: i64, out: &mut Vec<ParsedLine>) {
        let i = slot(rec.stream);
        let text = match_text(&rec.line);
        if let Some(p) = self.pending[i].as_mut() {
            let next = self.rules.iter().find(|r| r.from.contains(&p.state) && r.regex.is_match(text));
            if let Some(rule) = next {
                let sep = usize::from(!p.ends_with_newline);
                if p.record.line.len() + sep + rec.line.len() <= self.max_bytes {
                    if sep == 1 {
                        p.record.line.push('\n');
                    }
                    p.record.line.push_str(&rec.line);
                    p.ends_with_newline = rec.line.ends_with('\n');
                    p.record.truncated |= rec.truncated;
                    p.state = rule.to.clone();
                    p.last_ns = now_ns;
                    return;
                }
            }
            if let Some(done) = self.pending[i].take() {
                out.push(done.record);
            }
        }
        let text = match_text(&rec.line);
        match self.rules.iter().find(|r| r.start && r.regex.is_match(text)) {
            Some(rule) => {
                let state = rule.to.clone();
                let ends_with_newline = rec.line.ends_with('\n');
                self.pending[i] =
                    Some(Pending { record: rec, state, start_offset, last_ns: now_ns, ends_with_newline });
            }
            None => out.push(rec),
        }
    }

    /// Emits the records that waited `flush_timeout` or longer for a continuation.
    pub(crate) fn flush_expired(&mut self, now_ns: i64, out: &mut Vec<ParsedLine>) {
        for slot in &mut self.pending {
            if slot.as_ref().is_some_and(|p| now_ns.saturating_sub(p.last_ns) >= self.flush_timeout_ns)
                && let Some(p) = slot.take()
            {
                out.push(p.record);
            }
        }
    }

    /// Emits every pending record (nothing will continue them).
    pub(crate) fn flush_all(&mut self, out: &mut Vec<ParsedLine>) {
        let mut done: Vec<Pending> = self.pending.iter_mut().filter_map(Option::take).collect();
        done.sort_by_key(|p| p.start_offset);
        out.extend(done.into_iter().map(|p| p.record));
    }

    /// The earliest offset a pending record starts at: the checkpoint must stay at or before it.
    pub(crate) fn pending_start(&self) -> Option<u64> {
        self.pending.iter().flatten().map(|p| p.start_offset).min()
    }

    /// Forgets pending records (the file was truncated and is read again from 0).
    pub(crate) fn reset(&mut self) {
        self.pending = [None, None, None];
    }
}

/// What the collector makes of `lines` (one file's lines, without their `\n`) in `format` with
/// this multiline configuration: the emitted records' texts in order, pending ones flushed at
/// the end as at the end of a rotated file. For checking rules against sample logs.
pub fn join_lines(
    config: &MultilineConfig,
    format: crate::config::LogFormat,
    max_line_bytes: usize,
    lines: &[&str],
) -> Result<Vec<String>, String> {
    config.validate("multiline")?;
    let mut parser = crate::parse::LineParser::new(format, max_line_bytes);
    let mut joiner = config.joiner(max_line_bytes)?;
    let mut out = Vec::new();
    let mut parsed = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        parser.push(line, 0, &mut parsed);
        for rec in parsed.drain(..) {
            match joiner.as_mut() {
                Some(j) => j.push(rec, i as u64, 0, &mut out),
                None => out.push(rec),
            }
        }
    }
    parser.flush(&mut parsed);
    for rec in parsed.drain(..) {
        match joiner.as_mut() {
            Some(j) => j.push(rec, lines.len() as u64, 0, &mut out),
            None => out.push(rec),
        }
    }
    if let Some(j) = joiner.as_mut() {
        j.flush_all(&mut out);
    }
    Ok(out.into_iter().map(|r| r.line).collect())
}

#[cfg(test)]
#[path = "multiline_tests.rs"]
mod tests;
