//! The pipeline stages after the pushed-down line filters, compiled and run per line as Loki
//! does: parsers (`json`, `logfmt`, `regexp`, `pattern`) add labels, label filters keep or drop
//! lines, `line_format` rewrites the line, `drop`/`keep` edit labels. A parser that cannot read a
//! line sets `__error__` (`JSONParserErr`, `LogfmtParserErr`) instead of dropping it.

use std::collections::BTreeMap;

use model::Labels;
use regex::Regex;

use super::ast::{LabelFilter, LabelFmt, Stage, ValueKind};
use super::values::{parse_bytes, parse_go_duration};
use super::{CompiledFilter, CompiledMatcher};
use crate::error::Error;

const ERROR_LABEL: &str = "__error__";
const ERROR_DETAILS_LABEL: &str = "__error_details__";

/// A compiled label filter.
#[derive(Clone, Debug)]
enum CompiledLabelFilter {
    Match(CompiledMatcher),
    Compare { name: String, op: super::ast::CmpOp, kind: ValueKind, value: f64 },
    And(Box<CompiledLabelFilter>, Box<CompiledLabelFilter>),
    Or(Box<CompiledLabelFilter>, Box<CompiledLabelFilter>),
}

/// One piece of a `pattern` expression.
#[derive(Clone, Debug)]
enum PatternPart {
    Literal(String),
    /// A capture; `None` for `<_>`.
    Capture(Option<String>),
}

/// One piece of a `line_format` template.
#[derive(Clone, Debug)]
enum TemplatePart {
    Literal(String),
    Field(String),
    Line,
}

#[derive(Clone, Debug)]
enum CompiledStage {
    LineFilter(CompiledFilter),
    Json,
    Logfmt,
    Regexp(Regex),
    Pattern(Vec<PatternPart>),
    LabelFilter(CompiledLabelFilter),
    LineFormat(Vec<TemplatePart>),
    /// (destination, source label or template).
    LabelFormat(Vec<(String, Result<String, Vec<TemplatePart>>)>),
    Drop(Vec<String>),
    Keep(Vec<String>),
}

/// The stages of one query, ready to run.
#[derive(Clone, Debug, Default)]
pub struct Pipeline {
    stages: Vec<CompiledStage>,
}

/// The working state of one line going through the pipeline.
struct Row<'a> {
    stream: &'a Labels,
    labels: BTreeMap<String, String>,
    line: Option<String>,
}

impl Row<'_> {
    fn has_error(&self) -> bool {
        self.labels.contains_key(ERROR_LABEL)
    }

    fn set_error(&mut self, kind: &str, details: String) {
        if !self.has_error() {
            self.labels.insert(ERROR_LABEL.to_string(), kind.to_string());
            self.labels.insert(ERROR_DETAILS_LABEL.to_string(), details);
        }
    }

    /// Adds an extracted label; a name taken by a stream label gets `_extracted`, as in Loki.
    fn extract(&mut self, key: &str, value: String) {
        let Some(mut name) = sanitize_key(key) else { return };
        if self.stream.get(&name).is_some() {
            name.push_str("_extracted");
        }
        self.labels.insert(name, value);
    }
}

/// Loki's label-name sanitising: invalid characters become `_`, a leading digit gets a `_`.
fn sanitize_key(key: &str) -> Option<String> {
    if key.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(key.len() + 1);
    if key.starts_with(|c: char| c.is_ascii_digit()) {
        out.push('_');
    }
    out.extend(key.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }));
    Some(out)
}

impl Pipeline {
    /// Compiles stages; bad regexes, patterns and templates are query errors naming the stage.
    pub fn compile(stages: &[Stage]) -> Result<Self, Error> {
        let stages = stages.iter().map(compile_stage).collect::<Result<Vec<_>, _>>()?;
        Ok(Self { stages })
    }

    /// Whether there is nothing to run (lines and labels pass unchanged).
    pub fn is_empty(&self) -> bool {
        self.stages.is_empty()
    }

    /// Runs `line` of a stream through the stages: `None` when a stage drops it, else the new
    /// line (`None` inside when unchanged) and the result labels.
    pub fn process(&self, stream: &Labels, line: &str) -> Option<(Option<String>, Labels)> {
        let mut row =
            Row { stream, labels: stream.iter().map(|l| (l.name.clone(), l.value.clone())).collect(), line: None };
        for stage in &self.stages {
            let current = row.line.as_deref().unwrap_or(line);
            match stage {
                CompiledStage::LineFilter(f) => {
                    if !f.matches(current) {
                        return None;
                    }
                }
                CompiledStage::Json => match serde_json::from_str::<serde_json::Value>(current) {
                    Ok(serde_json::Value::Object(map)) => {
                        let mut out = Vec::new();
                        flatten_json("", &map, &mut out);
                        for (k, v) in out {
                            row.extract(&k, v);
                        }
                    }
                    Ok(_) => row.set_error("JSONParserErr", "the line is not a JSON object".into()),
                    Err(e) => row.set_error("JSONParserErr", e.to_string()),
                },
                CompiledStage::Logfmt => match parse_logfmt(current) {
                    Ok(pairs) => {
                        for (k, v) in pairs {
                            row.extract(&k, v);
                        }
                    }
                    Err(e) => row.set_error("LogfmtParserErr", e),
                },
                CompiledStage::Regexp(re) => {
                    if let Some(caps) = re.captures(current) {
                        let found: Vec<(String, String)> = re
                            .capture_names()
                            .flatten()
                            .filter_map(|n| caps.name(n).map(|m| (n.to_string(), m.as_str().to_string())))
                            .collect();
                        for (k, v) in found {
                            row.extract(&k, v);
                        }
                    }
                }
                CompiledStage::Pattern(parts) => {
                    if let Some(found) = match_pattern(parts, current) {
                        for (k, v) in found {
                            row.extract(&k, v);
                        }
                    }
                }
                CompiledStage::LabelFilter(f) => {
                    if !eval_label_filter(f, &mut row) {
                        return None;
                    }
                }
                CompiledStage::LineFormat(parts) => row.line = Some(render(parts, &row.labels, current)),
                CompiledStage::Drop(names) => {
                    for n in names {
                        row.labels.remove(n);
                    }
                }
                CompiledStage::Keep(names) => row.labels.retain(|k, _| names.contains(k)),
                CompiledStage::LabelFormat(items) => {
                    // Every template sees the labels as they were before this stage.
                    let values: Vec<Option<String>> = items
                        .iter()
                        .map(|(_, how)| match how {
                            Ok(src) => row.labels.get(src).cloned(),
                            Err(parts) => Some(render(parts, &row.labels, current)),
                        })
                        .collect();
                    for ((dst, how), value) in items.iter().zip(values) {
                        if let Ok(src) = how {
                            row.labels.remove(src);
                        }
                        match value {
                            Some(v) => {
                                row.labels.insert(dst.clone(), v);
                            }
                            None => {
                                row.labels.remove(dst);
                            }
                        }
                    }
                }
            }
        }
        let labels = Labels::from_pairs(row.labels);
        Some((row.line, labels))
    }
}

fn eval_label_filter(f: &CompiledLabelFilter, row: &mut Row<'_>) -> bool {
    match f {
        CompiledLabelFilter::Match(m) => m.matches_value(row.labels.get(&m.name).map_or("", String::as_str)),
        CompiledLabelFilter::And(a, b) => eval_label_filter(a, row) && eval_label_filter(b, row),
        CompiledLabelFilter::Or(a, b) => eval_label_filter(a, row) || eval_label_filter(b, row),
        CompiledLabelFilter::Compare { name, op, kind, value } => {
            if row.has_error() {
                // As in Loki: only string matchers can filter out a line that has an error.
                return true;
            }
            let Some(text) = row.labels.get(name) else { return false };
            let parsed = match kind {
                ValueKind::Number => text.trim().parse::<f64>().ok(),
                ValueKind::Duration => parse_go_duration(text.trim()),
                ValueKind::Bytes => parse_bytes(text.trim()),
            };
            match parsed {
                Some(v) => op.holds(v, *value),
                None => {
                    let details = format!("cannot read {name}={text:?} as a {kind:?}").to_lowercase();
                    row.set_error("LabelFilterErr", details);
                    true
                }
            }
        }
    }
}

fn flatten_json(prefix: &str, map: &serde_json::Map<String, serde_json::Value>, out: &mut Vec<(String, String)>) {
    for (key, value) in map {
        let name = if prefix.is_empty() { key.clone() } else { format!("{prefix}_{key}") };
        match value {
            serde_json::Value::Object(inner) => flatten_json(&name, inner, out),
            serde_json::Value::Array(_) | serde_json::Value::Null => {}
            serde_json::Value::String(s) => out.push((name, s.clone())),
            serde_json::Value::Number(n) => out.push((name, n.to_string())),
            serde_json::Value::Bool(b) => out.push((name, b.to_string())),
        }
    }
}

/// Splits a logfmt line into pairs (a bare key has an empty value).
pub(crate) fn parse_logfmt(line: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut chars = line.char_indices().peekable();
    loop {
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        let Some(&(start, first)) = chars.peek() else { break };
        if first == '=' || first == '"' {
            return Err(format!("logfmt syntax error at pos {}: unexpected {first:?}", start + 1));
        }
        let mut end = line.len();
        while let Some(&(i, c)) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                end = i;
                break;
            }
            chars.next();
        }
        let key = line[start..end].to_string();
        if chars.next_if(|(_, c)| *c == '=').is_none() {
            out.push((key, String::new()));
            continue;
        }
        let mut value = String::new();
        if chars.next_if(|(_, c)| *c == '"').is_some() {
            let mut closed = false;
            while let Some((_, c)) = chars.next() {
                match c {
                    '"' => {
                        closed = true;
                        break;
                    }
                    '\\' => match chars.next().map(|(_, c)| c) {
                        Some('n') => value.push('\n'),
                        Some('t') => value.push('\t'),
                        Some('r') => value.push('\r'),
                        Some(other) => value.push(other),
                        None => break,
                    },
                    c => value.push(c),
                }
            }
            if !closed {
                return Err(format!("logfmt syntax error at pos {}: unterminated quoted value", line.len() + 1));
            }
        } else {
            while let Some((_, c)) = chars.next_if(|(_, c)| !c.is_whitespace()) {
                value.push(c);
            }
        }
        out.push((key, value));
    }
    Ok(out)
}

fn parse_pattern(pattern: &str) -> Result<Vec<PatternPart>, String> {
    let mut parts = Vec::new();
    let mut rest = pattern;
    let capture = Regex::new(r"<(_|[a-zA-Z_][a-zA-Z0-9_]*)>").map_err(|e| e.to_string())?;
    while let Some(m) = capture.find(rest) {
        if m.start() > 0 {
            parts.push(PatternPart::Literal(rest[..m.start()].to_string()));
        } else if matches!(parts.last(), Some(PatternPart::Capture(_))) {
            return Err("consecutive captures are not allowed".into());
        }
        let name = &rest[m.start() + 1..m.end() - 1];
        parts.push(PatternPart::Capture((name != "_").then(|| name.to_string())));
        rest = &rest[m.end()..];
    }
    if !rest.is_empty() {
        parts.push(PatternPart::Literal(rest.to_string()));
    }
    if !parts.iter().any(|p| matches!(p, PatternPart::Capture(Some(_)))) {
        return Err("at least one named capture like <ip> is required".into());
    }
    Ok(parts)
}

/// Matches a pattern against a line: literals in order, each capture up to the next literal.
fn match_pattern(parts: &[PatternPart], line: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut rest = line;
    for (i, part) in parts.iter().enumerate() {
        match part {
            PatternPart::Literal(lit) => rest = rest.strip_prefix(lit.as_str())?,
            PatternPart::Capture(name) => {
                let (value, next) = match parts.get(i + 1) {
                    Some(PatternPart::Literal(lit)) => {
                        let at = rest.find(lit.as_str())?;
                        (&rest[..at], &rest[at..])
                    }
                    _ => (rest, ""),
                };
                if let Some(name) = name {
                    out.push((name.clone(), value.to_string()));
                }
                rest = next;
            }
        }
    }
    Some(out)
}

/// A compiled template over the current labels and line.
fn render(parts: &[TemplatePart], labels: &BTreeMap<String, String>, line: &str) -> String {
    let mut out = String::new();
    for part in parts {
        match part {
            TemplatePart::Literal(s) => out.push_str(s),
            TemplatePart::Field(name) => out.push_str(labels.get(name).map_or("", String::as_str)),
            TemplatePart::Line => out.push_str(line),
        }
    }
    out
}

fn parse_template(template: &str) -> Result<Vec<TemplatePart>, String> {
    let mut parts = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        if open > 0 {
            parts.push(TemplatePart::Literal(rest[..open].to_string()));
        }
        let after = &rest[open + 2..];
        let close = after.find("}}").ok_or("unclosed action: missing '}}'")?;
        let action = after[..close].trim_start_matches('-').trim_end_matches('-').trim();
        if action == "__line__" {
            parts.push(TemplatePart::Line);
        } else if let Some(field) = action.strip_prefix('.')
            && !field.is_empty()
            && field.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            parts.push(TemplatePart::Field(field.to_string()));
        } else {
            return Err(format!(
                "unsupported template action {{{{{action}}}}}: only {{{{.label}}}} and {{{{__line__}}}} are supported"
            ));
        }
        rest = &after[close + 2..];
    }
    if !rest.is_empty() {
        parts.push(TemplatePart::Literal(rest.to_string()));
    }
    Ok(parts)
}

fn compile_label_filter(f: &LabelFilter) -> Result<CompiledLabelFilter, Error> {
    Ok(match f {
        LabelFilter::Match(m) => CompiledLabelFilter::Match(CompiledMatcher::new(m)?),
        LabelFilter::Compare { name, op, kind, value, .. } => {
            CompiledLabelFilter::Compare { name: name.clone(), op: *op, kind: *kind, value: *value }
        }
        LabelFilter::And(a, b) => {
            CompiledLabelFilter::And(Box::new(compile_label_filter(a)?), Box::new(compile_label_filter(b)?))
        }
        LabelFilter::Or(a, b) => {
            CompiledLabelFilter::Or(Box::new(compile_label_filter(a)?), Box::new(compile_label_filter(b)?))
        }
    })
}

fn compile_stage(stage: &Stage) -> Result<CompiledStage, Error> {
    Ok(match stage {
        Stage::LineFilter(f) => CompiledStage::LineFilter(CompiledFilter::new(f)?),
        Stage::Json => CompiledStage::Json,
        Stage::Logfmt => CompiledStage::Logfmt,
        Stage::Regexp(re) => {
            let regex =
                Regex::new(re).map_err(|e| Error::BadQuery(format!("invalid regex in `| regexp {re:?}`: {e}")))?;
            if regex.capture_names().flatten().next().is_none() {
                return Err(Error::BadQuery(format!(
                    "`| regexp {re:?}` needs at least one named capture like (?P<name>...)"
                )));
            }
            CompiledStage::Regexp(regex)
        }
        Stage::Pattern(p) => CompiledStage::Pattern(
            parse_pattern(p).map_err(|e| Error::BadQuery(format!("invalid `| pattern {p:?}`: {e}")))?,
        ),
        Stage::LabelFilter(f) => CompiledStage::LabelFilter(compile_label_filter(f)?),
        Stage::LineFormat(t) => CompiledStage::LineFormat(
            parse_template(t).map_err(|e| Error::BadQuery(format!("invalid `| line_format {t:?}`: {e}")))?,
        ),
        Stage::Drop(names) => CompiledStage::Drop(names.clone()),
        Stage::Keep(names) => CompiledStage::Keep(names.clone()),
        Stage::LabelFormat(items) => CompiledStage::LabelFormat(
            items
                .iter()
                .map(|item| match item {
                    LabelFmt::Rename { dst, src } => Ok((dst.clone(), Ok(src.clone()))),
                    LabelFmt::Template { dst, template } => parse_template(template)
                        .map(|parts| (dst.clone(), Err(parts)))
                        .map_err(|e| Error::BadQuery(format!("invalid `| label_format {dst}={template:?}`: {e}"))),
                })
                .collect::<Result<Vec<_>, Error>>()?,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logql::parse;

    fn run(query: &str, line: &str) -> Option<(Option<String>, Labels)> {
        let q = parse(query).unwrap_or_else(|e| panic!("{query}: {e}"));
        let pipeline = Pipeline::compile(&q.stages).unwrap_or_else(|e| panic!("{query}: {e}"));
        pipeline.process(&Labels::from_pairs([("job", "api"), ("level", "info")]), line)
    }

    fn label(out: &Option<(Option<String>, Labels)>, name: &str) -> Option<String> {
        out.as_ref().and_then(|(_, l)| l.get(name).map(str::to_string))
    }

    #[test]
    fn label_format_renames_and_templates_from_the_labels_before_it() {
        let q = r#"{job="api"} | logfmt | label_format svc=job, desc="{{.level}}:{{.code}}", level="{{.job}}" | label_format code2="{{__line__}}""#;
        let out = run(q, "code=404");
        assert_eq!(label(&out, "svc").as_deref(), Some("api"));
        assert_eq!(label(&out, "job"), None, "a rename moves the label");
        assert_eq!(label(&out, "desc").as_deref(), Some("info:404"));
        assert_eq!(label(&out, "level").as_deref(), Some("api"), "templates read the labels before the stage");
        assert_eq!(label(&out, "code2").as_deref(), Some("code=404"));
        let parsed = parse(q).unwrap();
        assert_eq!(parse(&parsed.to_string()).unwrap(), parsed, "{parsed}");
        let err = parse(r#"{job="api"} | label_format a"#).unwrap_err().to_string();
        assert!(err.contains("'=' after the label name"), "{err}");
        let bad = Pipeline::compile(&parse(r#"{job="api"} | label_format a="{{.x""#).unwrap().stages).unwrap_err();
        assert!(bad.to_string().contains("label_format a="), "{bad}");
    }

    #[test]
    fn json_flattens_and_marks_errors() {
        let out = run(
            r#"{job="api"} | json"#,
            r#"{"status":503,"req":{"path":"/x","ms":1.5},"tags":[1],"level":"error","a.b":true}"#,
        );
        assert_eq!(label(&out, "status").as_deref(), Some("503"));
        assert_eq!(label(&out, "req_path").as_deref(), Some("/x"));
        assert_eq!(label(&out, "req_ms").as_deref(), Some("1.5"));
        assert_eq!(label(&out, "a_b").as_deref(), Some("true"));
        assert_eq!(label(&out, "level_extracted").as_deref(), Some("error"), "stream label names get _extracted");
        assert_eq!(label(&out, "level").as_deref(), Some("info"));
        assert_eq!(label(&out, "tags"), None);
        let bad = run(r#"{job="api"} | json"#, "not json");
        assert_eq!(label(&bad, "__error__").as_deref(), Some("JSONParserErr"));
        assert!(run(r#"{job="api"} | json | __error__="""#, "not json").is_none());
        assert!(run(r#"{job="api"} | json | __error__="""#, "{}").is_some());
    }

    #[test]
    fn logfmt_regexp_and_pattern_extract() {
        let out = run(r#"{job="api"} | logfmt"#, r#"ts=1 msg="hello \"x\" world" bare dur=250ms"#);
        assert_eq!(label(&out, "msg").as_deref(), Some(r#"hello "x" world"#));
        assert_eq!(label(&out, "bare"), None, "empty values are no labels");
        assert_eq!(label(&out, "dur").as_deref(), Some("250ms"));
        assert_eq!(
            label(&run(r#"{job="api"} | logfmt"#, r#"a="open"#), "__error__").as_deref(),
            Some("LogfmtParserErr")
        );
        let out = run(r#"{job="api"} | regexp "(?P<method>[A-Z]+) (?P<path>\\S+)""#, "GET /api/v1 200");
        assert_eq!(label(&out, "method").as_deref(), Some("GET"));
        assert_eq!(label(&out, "path").as_deref(), Some("/api/v1"));
        let out = run(
            r#"{job="api"} | pattern "<ip> - <_> [<ts>] \"<method> <path> <_>\" <status>""#,
            r#"10.0.0.1 - frank [10/Oct/2000:13:55:36] "GET /a.gif HTTP/1.0" 200"#,
        );
        assert_eq!(label(&out, "ip").as_deref(), Some("10.0.0.1"));
        assert_eq!(label(&out, "method").as_deref(), Some("GET"));
        assert_eq!(label(&out, "status").as_deref(), Some("200"));
        assert_eq!(label(&run(r#"{job="api"} | pattern "<ip> x""#, "nothing here"), "ip"), None);
    }

    #[test]
    fn label_filters_compare_numbers_durations_bytes() {
        let q = r#"{job="api"} | logfmt | status >= 500 and dur > 250ms, size > 1KB"#;
        assert!(run(q, "status=503 dur=1s size=2KB").is_some());
        assert!(run(q, "status=404 dur=1s size=2KB").is_none());
        assert!(run(q, "status=503 dur=100ms size=2KB").is_none());
        assert!(run(q, "status=503 dur=1s size=999").is_none());
        assert!(run(q, "dur=1s size=2KB").is_none(), "a missing label fails a comparison");
        let or = r#"{job="api"} | logfmt | level="error" or status == 500"#;
        assert!(run(or, "status=500").is_some());
        assert!(run(or, "level=error").is_none(), "stream label level=info wins over extracted");
        assert!(
            run(r#"{job="api"} | logfmt | level_extracted=~"err.*" or (status > 1 and status < 3)"#, "level=error")
                .is_some()
        );
        assert!(run(r#"{job="api"} | logfmt | status > 1 and status < 3"#, "status=2").is_some());
        let unreadable = run(r#"{job="api"} | logfmt | status > 1"#, "status=abc");
        assert_eq!(label(&unreadable, "__error__").as_deref(), Some("LabelFilterErr"));
    }

    #[test]
    fn line_format_drop_keep_and_later_line_filters() {
        let out = run(r#"{job="api"} | logfmt | line_format "{{.status}} {{ .msg }}!" |= "200""#, "status=200 msg=ok");
        assert_eq!(out.as_ref().and_then(|(l, _)| l.clone()).as_deref(), Some("200 ok!"));
        assert!(run(r#"{job="api"} | logfmt | line_format "{{.status}}" |= "msg""#, "status=200 msg=ok").is_none());
        let out = run(r#"{job="api"} | logfmt | drop msg, level"#, "status=200 msg=ok");
        assert_eq!(out.as_ref().map(|(_, l)| l.to_string()).as_deref(), Some(r#"{job="api", status="200"}"#));
        let out = run(r#"{job="api"} | logfmt | keep status"#, "status=200 msg=ok");
        assert_eq!(out.as_ref().map(|(_, l)| l.to_string()).as_deref(), Some(r#"{status="200"}"#));
    }

    #[test]
    fn bad_stage_arguments_are_query_errors() {
        for (q, want) in [
            (r#"{job="a"} | regexp "(""#, "invalid regex"),
            (r#"{job="a"} | regexp "[a-z]+""#, "named capture"),
            (r#"{job="a"} | pattern "<_> x""#, "named capture"),
            (r#"{job="a"} | pattern "<a><b>""#, "consecutive"),
            (r#"{job="a"} | line_format "{{ if .a }}""#, "unsupported template action"),
            (r#"{job="a"} | line_format "{{.a""#, "unclosed"),
        ] {
            let parsed = parse(q).unwrap_or_else(|e| panic!("{q}: {e}"));
            let err = Pipeline::compile(&parsed.stages).unwrap_err().to_string();
            assert!(err.contains(want), "{q}: {err}");
        }
    }
}
