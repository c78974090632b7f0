//! Parsing of the application's own message, after the runtime framing and multiline joining:
//! JSON objects and logfmt pairs into fields, and the line's severity into a normalised level, so
//! error rates can be counted per stream without a query-time parser.
//!
//! Level detection looks, in order, at a `level`/`severity`/`lvl` field (of the parsed body, or a
//! `level=` / `"level":` pair near the start when the body is not parsed), klog's `E1127 ...`
//! prefix, and upper-case tokens such as `ERROR` or `[WARN]` in the first bytes of the line.
//! Lower-case words are not taken from free text ("no error found" is not an error).

use serde::{Deserialize, Serialize};

/// How a message body is parsed into fields.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BodyFormat {
    /// Not parsed (level detection still looks at the text).
    #[default]
    Off,
    /// A JSON object; nested objects are flattened with `_` as Loki's `json` stage does.
    Json,
    /// `key=value` pairs, values optionally double-quoted with `\"` escapes.
    Logfmt,
    /// JSON when the message starts with `{`, else logfmt when it has `key=value` pairs.
    Auto,
}

/// `collector.tail.parse`: body parsing and level detection.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ParseConfig {
    /// Body format of files no `by_path` rule matches.
    pub body: BodyFormat,
    /// Adds a `level` label (trace, debug, info, warn, error, critical) when one is found. Off by
    /// default: each level becomes its own stream, ordered on its own.
    pub detect_level: bool,
    /// Parsed fields promoted to labels of the same name (keep them low-cardinality).
    pub field_labels: Vec<String>,
    /// Per-file body formats: the first rule whose glob matches the file's path wins.
    pub by_path: Vec<ParseRule>,
}

impl Default for ParseConfig {
    fn default() -> Self {
        Self { body: BodyFormat::Off, detect_level: false, field_labels: Vec::new(), by_path: Vec::new() }
    }
}

/// One `by_path` rule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParseRule {
    /// Glob matched against the file's full path.
    pub path: String,
    /// Body format of matching files.
    pub body: BodyFormat,
}

impl ParseConfig {
    /// Checks globs and label names; errors name the key under `prefix`.
    pub fn validate(&self, prefix: &str) -> Result<(), String> {
        for (i, rule) in self.by_path.iter().enumerate() {
            globset::Glob::new(&rule.path).map_err(|e| format!("{prefix}.by_path[{i}].path {:?}: {e}", rule.path))?;
        }
        for (i, name) in self.field_labels.iter().enumerate() {
            if !model::labels::is_valid_label_name(name) {
                return Err(format!("{prefix}.field_labels[{i}]: {name:?} is not a valid label name"));
            }
            if self.detect_level && name == "level" {
                return Err(format!("{prefix}.field_labels[{i}]: \"level\" is set by detect_level already"));
            }
        }
        Ok(())
    }

    /// The parser of the file at `path`.
    pub(crate) fn for_path(&self, path: &std::path::Path) -> BodyParser {
        let body = self
            .by_path
            .iter()
            .find(|r| globset::Glob::new(&r.path).is_ok_and(|g| g.compile_matcher().is_match(path)))
            .map_or(self.body, |r| r.body);
        BodyParser { body, detect_level: self.detect_level, field_labels: self.field_labels.clone() }
    }
}

/// What is derived from one record's message.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct Derived {
    pub level: Option<Level>,
    /// Values of `field_labels`, in their order (`None` when the record has no such field).
    pub labels: Vec<Option<String>>,
}

/// One file's body parsing.
#[derive(Clone, Debug)]
pub(crate) struct BodyParser {
    pub body: BodyFormat,
    pub detect_level: bool,
    pub field_labels: Vec<String>,
}

impl BodyParser {
    /// Whether any work is done per record.
    pub(crate) fn is_active(&self) -> bool {
        self.detect_level || (self.body != BodyFormat::Off && !self.field_labels.is_empty())
    }

    pub(crate) fn derive(&self, message: &str) -> Derived {
        let fields = if self.field_labels.is_empty() && !self.detect_level {
            Vec::new()
        } else {
            parse_fields(self.body, message)
        };
        let level = if !self.detect_level {
            None
        } else if fields.is_empty() {
            level_from_text(message)
        } else {
            detect_level(&fields, message)
        };
        let labels = self
            .field_labels
            .iter()
            .map(|name| fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).filter(|v| !v.is_empty()))
            .collect();
        Derived { level, labels }
    }
}

/// A normalised severity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
    Critical,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
            Level::Critical => "critical",
        }
    }

    /// The level a field value or token names, case-insensitively (`E`, `warning`, `FATAL`...).
    pub fn from_name(name: &str) -> Option<Level> {
        let name = name.trim();
        if name.len() > 16 {
            return None;
        }
        let mut lower = [0u8; 16];
        for (d, s) in lower.iter_mut().zip(name.bytes()) {
            *d = s.to_ascii_lowercase();
        }
        Some(match &lower[..name.len()] {
            b"trace" | b"trc" | b"t" | b"finest" | b"finer" => Level::Trace,
            b"debug" | b"dbg" | b"d" | b"fine" | b"verbose" => Level::Debug,
            b"info" | b"inf" | b"i" | b"information" | b"informational" | b"notice" => Level::Info,
            b"warn" | b"warning" | b"wrn" | b"w" => Level::Warn,
            b"error" | b"err" | b"e" | b"eror" | b"severe" => Level::Error,
            b"fatal" | b"critical" | b"crit" | b"f" | b"panic" | b"emerg" | b"emergency" | b"alert" | b"dpanic" => {
                Level::Critical
            }
            _ => return None,
        })
    }
}

/// Field names that carry a level.
const LEVEL_KEYS: [&str; 6] = ["level", "severity", "lvl", "loglevel", "log_level", "severity_text"];
/// How far into a line level tokens are looked for.
const LEVEL_SCAN_BYTES: usize = 128;

/// Parses `message` as `format`: logfmt fields in the order they appear, JSON fields in key order.
/// Nothing when it does not parse.
pub fn parse_fields(format: BodyFormat, message: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    match format {
        BodyFormat::Off => {}
        BodyFormat::Json => json_fields(message, &mut out),
        BodyFormat::Logfmt => logfmt_fields(message, &mut out),
        BodyFormat::Auto => {
            if message.trim_start().starts_with('{') {
                json_fields(message, &mut out);
            } else if message.contains('=') {
                logfmt_fields(message, &mut out);
            }
        }
    }
    out
}

/// The level of a line: from its parsed fields first, else from its text.
pub fn detect_level(fields: &[(String, String)], message: &str) -> Option<Level> {
    for (k, v) in fields {
        if LEVEL_KEYS.iter().any(|l| k.eq_ignore_ascii_case(l))
            && let Some(level) = Level::from_name(v)
        {
            return Some(level);
        }
    }
    level_from_text(message)
}

/// Level from the text alone (no parsed fields): a `level=`-style pair, klog's prefix, or an
/// upper-case level token near the start.
pub fn level_from_text(message: &str) -> Option<Level> {
    let b = message.as_bytes();
    // klog: Lmmdd hh:mm:ss.uuuuuu threadid file:line] msg
    if b.len() > 6
        && matches!(b[0], b'I' | b'W' | b'E' | b'F')
        && b[1..5].iter().all(u8::is_ascii_digit)
        && b[5] == b' '
    {
        return Level::from_name(&message[..1]);
    }
    let head = crate::parse::prefix_within(message, LEVEL_SCAN_BYTES);
    let mut words = head.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).filter(|w| !w.is_empty());
    let mut found = None;
    while let Some(word) = words.next() {
        if LEVEL_KEYS.iter().any(|k| word.eq_ignore_ascii_case(k)) {
            if let Some(level) = words.next().and_then(Level::from_name) {
                return Some(level);
            }
            continue;
        }
        if found.is_none() && word.len() >= 3 && word.bytes().all(|c| c.is_ascii_uppercase()) {
            found = Level::from_name(word);
        }
    }
    found
}

fn json_fields(message: &str, out: &mut Vec<(String, String)>) {
    let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(message.trim()) else {
        return;
    };
    flatten("", map, out);
}

fn flatten(prefix: &str, map: serde_json::Map<String, serde_json::Value>, out: &mut Vec<(String, String)>) {
    for (k, v) in map {
        let key = if prefix.is_empty() { k } else { format!("{prefix}_{k}") };
        match v {
            serde_json::Value::Object(inner) => flatten(&key, inner, out),
            serde_json::Value::String(s) => out.push((key, s)),
            serde_json::Value::Null => out.push((key, String::new())),
            other => out.push((key, other.to_string())),
        }
    }
}

/// logfmt as go-logfmt reads it: `key=value`, `key="quoted value"`, a bare `key` has an empty
/// value; garbage between pairs is skipped.
fn logfmt_fields(message: &str, out: &mut Vec<(String, String)>) {
    let b = message.as_bytes();
    let mut i = 0;
    while i < b.len() {
        // Any control byte separates pairs, as in go-logfmt (ANSI colour codes, a CR before the
        // newline); each pass consumes at least one byte.
        while i < b.len() && b[i] <= b' ' {
            i += 1;
        }
        let key_start = i;
        while i < b.len() && b[i] > b' ' && b[i] != b'=' && b[i] != b'"' {
            i += 1;
        }
        let key = &message[key_start..i];
        if i < b.len() && b[i] == b'"' {
            // A quote inside a key: not logfmt here, skip to the next space.
            while i < b.len() && b[i] != b' ' {
                i += 1;
            }
            continue;
        }
        if i >= b.len() || b[i] != b'=' {
            if !key.is_empty() {
                out.push((key.to_string(), String::new()));
            }
            continue;
        }
        i += 1; // '='
        let value = if i < b.len() && b[i] == b'"' {
            i += 1;
            let mut value = String::new();
            let mut start = i;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' && i + 1 < b.len() {
                    value.push_str(&message[start..i]);
                    let escaped = message[i + 1..].chars().next().unwrap_or('\\');
                    value.push(match escaped {
                        'n' => '\n',
                        't' => '\t',
                        'r' => '\r',
                        other => other,
                    });
                    i += 1 + escaped.len_utf8();
                    start = i;
                    continue;
                }
                i += 1;
            }
            value.push_str(&message[start..i.min(b.len())]);
            i += 1; // closing quote
            value
        } else {
            let start = i;
            while i < b.len() && b[i] != b' ' && b[i] != b'\t' {
                i += 1;
            }
            message[start..i].to_string()
        };
        if !key.is_empty() {
            out.push((key.to_string(), value));
        }
    }
}

/// Writes fields as logfmt (quoting values that need it); the inverse of the logfmt parser.
#[cfg(test)]
fn format_logfmt(fields: &[(String, String)]) -> String {
    let mut out = String::new();
    for (k, v) in fields {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(k);
        out.push('=');
        if v.is_empty() || v.contains([' ', '"', '=', '\\', '\n', '\t', '\r']) {
            out.push('"');
            for c in v.chars() {
                match c {
                    '"' => out.push_str("\\\""),
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\t' => out.push_str("\\t"),
                    '\r' => out.push_str("\\r"),
                    c => out.push(c),
                }
            }
            out.push('"');
        } else {
            out.push_str(v);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn json_bodies_flatten_like_loki() {
        let got = parse_fields(
            BodyFormat::Json,
            r#"{"level":"warn","msg":"slow","http":{"status":503,"ok":false},"x":null}"#,
        );
        // In key order (serde_json's map), nested keys joined with `_`.
        assert_eq!(
            got,
            pairs(&[("http_ok", "false"), ("http_status", "503"), ("level", "warn"), ("msg", "slow"), ("x", "")])
        );
        assert!(parse_fields(BodyFormat::Json, "not json").is_empty());
        assert!(parse_fields(BodyFormat::Json, "[1,2]").is_empty());
    }

    #[test]
    fn logfmt_bodies_with_quotes_escapes_and_bare_keys() {
        let got = parse_fields(
            BodyFormat::Logfmt,
            r#"ts=2026-11-27T03:00:00Z level=info msg="request \"done\"" dry path=/x"#,
        );
        assert_eq!(
            got,
            pairs(&[
                ("ts", "2026-11-27T03:00:00Z"),
                ("level", "info"),
                ("msg", "request \"done\""),
                ("dry", ""),
                ("path", "/x")
            ])
        );
    }

    /// Found by the `log_body` fuzz target: a control byte where a key starts (an ANSI colour
    /// code, a `\r`) made the pair loop spin forever without consuming it.
    #[test]
    fn logfmt_skips_control_bytes_instead_of_looping_forever() {
        let got = parse_fields(BodyFormat::Logfmt, "\u{1b}[31mlevel=error\u{1b}[0m msg=x \r");
        assert_eq!(got, pairs(&[("[31mlevel", "error\u{1b}[0m"), ("msg", "x")]));
        assert_eq!(parse_fields(BodyFormat::Logfmt, "\u{1}ntime=1"), pairs(&[("ntime", "1")]));
        assert_eq!(parse_fields(BodyFormat::Auto, "a=b\r"), pairs(&[("a", "b\r")]));
    }

    #[test]
    fn auto_picks_json_or_logfmt() {
        assert_eq!(parse_fields(BodyFormat::Auto, r#" {"a":"1"}"#), pairs(&[("a", "1")]));
        assert_eq!(parse_fields(BodyFormat::Auto, "a=1 b=2"), pairs(&[("a", "1"), ("b", "2")]));
        assert!(parse_fields(BodyFormat::Auto, "plain words only").is_empty());
        assert!(parse_fields(BodyFormat::Off, "a=1").is_empty());
    }

    #[test]
    fn levels_from_fields_klog_and_tokens() {
        assert_eq!(detect_level(&pairs(&[("severity", "WARNING")]), "x"), Some(Level::Warn));
        assert_eq!(detect_level(&pairs(&[("lvl", "eror")]), "INFO x"), Some(Level::Error), "the field wins");
        let cases = [
            ("E1127 03:15:00.123456    1 reflector.go:138] failed to list", Some(Level::Error)),
            ("I1127 03:15:00.123456    1 main.go:1] started", Some(Level::Info)),
            ("2026-11-27 03:15:00,123 ERROR [main] boom", Some(Level::Error)),
            ("[WARN] disk almost full", Some(Level::Warn)),
            ("2026/11/27 03:15:00 [error] 12#12: open() failed", None),
            ("ts=1 level=debug msg=x", Some(Level::Debug)),
            (r#"{"ts":1,"level":"fatal","msg":"x"}"#, Some(Level::Critical)),
            ("FATAL: could not start", Some(Level::Critical)),
            ("no error was found", None),
            ("GET /api HTTP/1.1 200", None),
            ("", None),
        ];
        for (line, want) in cases {
            assert_eq!(detect_level(&[], line), want, "{line}");
        }
    }

    #[test]
    fn level_names_normalise() {
        for (name, want) in
            [("Warning", Level::Warn), ("CRIT", Level::Critical), ("notice", Level::Info), ("t", Level::Trace)]
        {
            assert_eq!(Level::from_name(name), Some(want), "{name}");
        }
        assert_eq!(Level::from_name("a-very-long-unknown-level-name"), None);
    }

    fn key() -> impl Strategy<Value = String> {
        "[a-zA-Z_][a-zA-Z0-9_.]{0,12}"
    }

    proptest! {
        #[test]
        fn parsers_never_panic(format in prop::sample::select(vec![BodyFormat::Json, BodyFormat::Logfmt, BodyFormat::Auto]), s in "\\PC{0,200}") {
            let fields = parse_fields(format, &s);
            let _ = detect_level(&fields, &s);
        }

        #[test]
        fn logfmt_round_trips(fields in prop::collection::vec((key(), "\\PC{0,20}"), 0..8)) {
            let text = format_logfmt(&fields);
            prop_assert_eq!(parse_fields(BodyFormat::Logfmt, &text), fields);
        }

        #[test]
        fn json_round_trips(fields in prop::collection::btree_map("[a-z]{1,8}", "\\PC{0,20}", 0..8)) {
            let text = serde_json::to_string(&fields).unwrap();
            let got: std::collections::BTreeMap<String, String> = parse_fields(BodyFormat::Json, &text).into_iter().collect();
            prop_assert_eq!(got, fields);
        }
    }
}
