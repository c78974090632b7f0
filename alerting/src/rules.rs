//! Prometheus rule files (`groups:` of alerting and recording rules), loaded with the same
//! validation rules as Prometheus's `rulefmt`, so a user can paste the files they already have.
//! Errors name the group, the rule (by index and name) and the field.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use serde::Deserialize;

use crate::error::Error;
use crate::rules_position::{Step, position};

/// A whole rule file.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    pub groups: Vec<RuleGroup>,
}

/// A group of rules evaluated together at one interval.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RuleGroup {
    pub name: String,
    /// Evaluation interval (`1m`); the global default when absent.
    #[serde(default)]
    pub interval: Option<String>,
    /// Most alerts or series a rule in this group may produce (0 = no limit).
    #[serde(default)]
    pub limit: Option<u64>,
    /// Delay evaluation by this much (Prometheus 2.53+).
    #[serde(default)]
    pub query_offset: Option<String>,
    /// Labels added to every rule of the group (Prometheus 3).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub rules: Vec<Rule>,
}

/// An alerting rule (`alert`) or a recording rule (`record`).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    #[serde(default)]
    pub record: Option<String>,
    #[serde(default)]
    pub alert: Option<String>,
    /// Absent is reported by validation, in rulefmt's words, with the rule's position.
    #[serde(default)]
    pub expr: ExprText,
    #[serde(default, rename = "for")]
    pub for_: Option<String>,
    #[serde(default)]
    pub keep_firing_for: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// A rule expression; YAML may give it as a string or a number (`expr: 1`).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum ExprText {
    Text(String),
    Number(f64),
}

impl Default for ExprText {
    fn default() -> Self {
        ExprText::Text(String::new())
    }
}

impl ExprText {
    pub fn as_string(&self) -> String {
        match self {
            ExprText::Text(s) => s.clone(),
            ExprText::Number(n) => n.to_string(),
        }
    }
}

impl Rule {
    /// The rule's name: the alert or the recorded series.
    pub fn name(&self) -> &str {
        self.alert.as_deref().or(self.record.as_deref()).unwrap_or("")
    }
}

/// Reads and validates a rule file.
pub fn load_rule_file(path: &Path) -> Result<RuleFile, Error> {
    let text =
        std::fs::read_to_string(path).map_err(|source| Error::Io { path: path.display().to_string(), source })?;
    parse_rule_file(&text, &path.display().to_string())
}

/// How label and annotation names are validated, as Prometheus's `name_validation_scheme`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum NameValidation {
    /// Prometheus 3's default: any non-empty UTF-8 name.
    #[default]
    Utf8,
    /// The classic `[a-zA-Z_][a-zA-Z0-9_]*`.
    Legacy,
}

/// Parses and validates rule-file text with UTF-8 name validation; `origin` names it in errors.
pub fn parse_rule_file(text: &str, origin: &str) -> Result<RuleFile, Error> {
    parse_rule_file_with(text, origin, NameValidation::Utf8)
}

/// Parses and validates rule-file text. Only the first YAML document is read, as Prometheus does.
pub fn parse_rule_file_with(text: &str, origin: &str, names: NameValidation) -> Result<RuleFile, Error> {
    parse_with(text, origin, names, ExprLang::PromQL)
}

/// Parses and validates a rule file whose expressions are LogQL metric queries (Loki's ruler
/// format: the same groups and rules).
pub fn parse_log_rule_file(text: &str, origin: &str) -> Result<RuleFile, Error> {
    parse_with(text, origin, NameValidation::Utf8, ExprLang::LogQL)
}

#[derive(Clone, Copy)]
enum ExprLang {
    PromQL,
    LogQL,
}

fn parse_with(text: &str, origin: &str, names: NameValidation, lang: ExprLang) -> Result<RuleFile, Error> {
    let invalid = |message: String| Error::InvalidRuleFile { path: origin.to_string(), message };
    let first = serde_yaml_ng::Deserializer::from_str(text).next().ok_or_else(|| invalid("empty rule file".into()))?;
    // YAML merge keys (`<<: *defaults`) are common in real rule files; resolve them first.
    let mut value = serde_yaml_ng::Value::deserialize(first).map_err(|e| invalid(e.to_string()))?;
    value.apply_merge().map_err(|e| invalid(e.to_string()))?;
    let file: RuleFile = RuleFile::deserialize(value).map_err(|e| invalid(shape_error(text, e)))?;
    validate(&file, names, lang).map_err(|e| invalid(e.located_in(text)))?;
    Ok(file)
}

/// A file whose shape is wrong (unknown field, wrong type): the merged tree has no positions, so
/// the text is read again without merging for the error's line and column (when the error is
/// there too), and serde's "unknown field" is said as Prometheus's rulefmt says it.
fn shape_error(text: &str, merged: serde_yaml_ng::Error) -> String {
    let located = serde_yaml_ng::Deserializer::from_str(text).next().and_then(|d| RuleFile::deserialize(d).err());
    let (error, at) = match located {
        Some(e) if e.location().is_some() => {
            let at = e.location().map(|l| format!("{}:{}: ", l.line(), l.column())).unwrap_or_default();
            (e, at)
        }
        _ => (merged, String::new()),
    };
    let mut message = error.to_string();
    if let Some(cut) = message.find(" at line ") {
        message.truncate(cut);
    }
    if let Some((before, rest)) = message.split_once("unknown field `")
        && let Some((name, expected)) = rest.split_once("`, ")
    {
        message = format!("{before}field {name} not found ({expected})");
    }
    format!("{at}{message}")
}

/// A validation failure and the value it is about, as a path into the file (for its position).
struct Invalid {
    path: Vec<Step<'static>>,
    field: Vec<String>,
    message: String,
}

impl Invalid {
    /// `L:C: message`, as Prometheus's rulefmt, with the position of the field the error is
    /// about (or of its rule or group when the field is not written there, e.g. merged in).
    fn located_in(self, text: &str) -> String {
        let mut path: Vec<Step> = self.path.clone();
        let mut at = position(text, &path);
        for key in &self.field {
            path.push(Step::Key(key));
            match position(text, &path) {
                Some(found) => at = Some(found),
                None => break,
            }
        }
        match at {
            Some((line, column)) => format!("{line}:{column}: {}", self.message),
            None => self.message,
        }
    }
}

/// Which field of a rule an error is about (`labels.team` is `["labels", "team"]`).
type RuleError = (Vec<String>, String);

fn field(name: &str) -> Vec<String> {
    vec![name.to_string()]
}

fn validate(file: &RuleFile, names: NameValidation, lang: ExprLang) -> Result<(), Invalid> {
    let mut group_names = HashSet::new();
    for (g, group) in file.groups.iter().enumerate() {
        let at_group = |field: Vec<String>, message: String| Invalid {
            path: vec![Step::Key("groups"), Step::Index(g)],
            field,
            message,
        };
        if group.name.is_empty() {
            return Err(at_group(field("name"), "groupname must not be empty".into()));
        }
        if !group_names.insert(group.name.as_str()) {
            return Err(at_group(field("name"), format!("groupname: {:?} is repeated in the same file", group.name)));
        }
        for (name, value) in [("interval", &group.interval), ("query_offset", &group.query_offset)] {
            if let Some(v) = value {
                model::time::parse_duration(v)
                    .map_err(|e| at_group(field(name), format!("group {:?}: {name}: {e}", group.name)))?;
            }
        }
        for (i, rule) in group.rules.iter().enumerate() {
            validate_rule(rule, names, lang).map_err(|(field, e)| Invalid {
                path: vec![Step::Key("groups"), Step::Index(g), Step::Key("rules"), Step::Index(i)],
                field,
                message: format!("group {:?}, rule {}, {:?}: {e}", group.name, i + 1, rule.name()),
            })?;
        }
    }
    Ok(())
}

fn validate_rule(rule: &Rule, names: NameValidation, lang: ExprLang) -> Result<(), RuleError> {
    match (&rule.record, &rule.alert) {
        (Some(_), Some(_)) => return Err((Vec::new(), "only one of 'record' and 'alert' must be set".into())),
        (None, None) => return Err((Vec::new(), "one of 'record' or 'alert' must be set".into())),
        (Some(record), None) => {
            if record.is_empty() {
                return Err((field("record"), "field 'record' must be set in rule".into()));
            }
            if record.contains(['{', '}']) {
                let message = format!("braces present in the recording rule name; should it be in expr?: {record}");
                return Err((field("record"), message));
            }
            if !model::labels::is_valid_metric_name(record) {
                return Err((field("record"), format!("invalid recording rule name: {record}")));
            }
            for (name, set) in [("annotations", !rule.annotations.is_empty()), ("for", rule.for_.is_some())]
                .into_iter()
                .chain([("keep_firing_for", rule.keep_firing_for.is_some())])
            {
                if set {
                    return Err((field(name), format!("invalid field '{name}' in recording rule")));
                }
            }
        }
        (None, Some(alert)) => {
            if alert.is_empty() {
                return Err((field("alert"), "field 'alert' must be set in rule".into()));
            }
        }
    }
    let expr = rule.expr.as_string();
    if expr.trim().is_empty() {
        return Err((field("expr"), "field 'expr' must be set in rule".into()));
    }
    match lang {
        ExprLang::PromQL => {
            tsdb::promql::parse(&expr).map_err(|e| (field("expr"), format!("could not parse expression: {e}")))?;
        }
        ExprLang::LogQL => {
            indexer::logql::parse_expr(&expr)
                .map_err(|e| (field("expr"), format!("could not parse LogQL expression: {e}")))?;
        }
    }
    let valid_name = |name: &str| match names {
        NameValidation::Utf8 => !name.is_empty(),
        NameValidation::Legacy => model::labels::is_valid_label_name(name),
    };
    for name in rule.labels.keys() {
        if !valid_name(name) || name == "__name__" {
            return Err((vec!["labels".into(), name.clone()], format!("invalid label name: {name}")));
        }
    }
    for name in rule.annotations.keys() {
        if !valid_name(name) {
            return Err((vec!["annotations".into(), name.clone()], format!("invalid annotation name: {name}")));
        }
    }
    for (kind, key, map) in [("label", "labels", &rule.labels), ("annotation", "annotations", &rule.annotations)] {
        for (name, text) in map {
            if text.contains("{{") {
                crate::template::Template::parse(text)
                    .map_err(|e| (vec![key.into(), name.clone()], format!("{kind} {name:?}: template: {e}")))?;
            }
        }
    }
    for (name, value) in [("for", &rule.for_), ("keep_firing_for", &rule.keep_firing_for)] {
        if let Some(v) = value {
            model::time::parse_duration(v).map_err(|e| (field(name), format!("{name}: {e}")))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_a_minimal_file_and_names_errors() {
        let ok = "groups:\n- name: g\n  rules:\n  - alert: Up\n    expr: up == 0\n    for: 5m\n";
        let f = parse_rule_file(ok, "ok.yml").unwrap();
        assert_eq!(f.groups[0].rules[0].name(), "Up");
        let bad = "groups:\n- name: g\n  rules:\n  - record: a:b\n    expr: up\n    for: 5m\n";
        let err = parse_rule_file(bad, "bad.yml").unwrap_err().to_string();
        assert!(err.contains("rule 1") && err.contains("'for'"), "{err}");
        let unknown = "groups:\n- name: g\n  rulez: []\n";
        assert!(parse_rule_file(unknown, "u.yml").unwrap_err().to_string().contains("rulez"));
    }

    #[test]
    fn errors_say_where_in_the_file() {
        let promql = "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up ==\n  - alert: B\n    expr: sum(rate(x[5m]) by (job)\n";
        let err = parse_rule_file(promql, "p.yml").unwrap_err().to_string();
        assert!(
            err.starts_with("p.yml: 5:11: group \"g\", rule 1, \"A\": could not parse expression: parse error at char"),
            "{err}"
        );

        let logql =
            "groups:\n- name: logs\n  rules:\n  - alert: Errors\n    expr: |\n      sum(rate({job=\"x\"} |= [1m]))\n";
        let err = parse_log_rule_file(logql, "l.yml").unwrap_err().to_string();
        assert!(err.starts_with("l.yml: 5:11: group \"logs\", rule 1, \"Errors\": could not parse LogQL expression: parse error at line 1, col"), "{err}");

        let label =
            "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up\n    labels:\n      ok: x\n      __name__: y\n";
        let err = parse_rule_file(label, "n.yml").unwrap_err().to_string();
        assert!(err.starts_with("n.yml: 8:17: group \"g\", rule 1, \"A\": invalid label name: __name__"), "{err}");

        let unknown = "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up\n    annotation: {}\n";
        let err = parse_rule_file(unknown, "u.yml").unwrap_err().to_string();
        assert!(err.starts_with("u.yml: 6:5: groups[0].rules[0]: field annotation not found"), "{err}");
    }
}
