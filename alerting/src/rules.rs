//! Prometheus rule files (`groups:` of alerting and recording rules), loaded with the same
//! validation rules as Prometheus's `rulefmt`, so a user can paste the files they already have.
//! Errors name the group, the rule (by index and name) and the field.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use serde::Deserialize;

use crate::error::Error;

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
    let file: RuleFile = RuleFile::deserialize(value).map_err(|e| invalid(e.to_string()))?;
    validate(&file, names, lang).map_err(invalid)?;
    Ok(file)
}

fn validate(file: &RuleFile, names: NameValidation, lang: ExprLang) -> Result<(), String> {
    let mut group_names = HashSet::new();
    for group in &file.groups {
        if group.name.is_empty() {
            return Err("groupname must not be empty".into());
        }
        if !group_names.insert(group.name.as_str()) {
            return Err(format!("{}: repeated in the same file", group.name));
        }
        for (field, value) in [("interval", &group.interval), ("query_offset", &group.query_offset)] {
            if let Some(v) = value {
                model::time::parse_duration(v).map_err(|e| format!("group {:?}: {field}: {e}", group.name))?;
            }
        }
        for (i, rule) in group.rules.iter().enumerate() {
            let at = format!("group {:?}, rule {}, {:?}", group.name, i + 1, rule.name());
            validate_rule(rule, names, lang).map_err(|e| format!("{at}: {e}"))?;
        }
    }
    Ok(())
}

fn validate_rule(rule: &Rule, names: NameValidation, lang: ExprLang) -> Result<(), String> {
    match (&rule.record, &rule.alert) {
        (Some(_), Some(_)) => return Err("only one of 'record' and 'alert' must be set".into()),
        (None, None) => return Err("one of 'record' or 'alert' must be set".into()),
        (Some(record), None) => {
            if record.is_empty() {
                return Err("field 'record' must be set in rule".into());
            }
            if !model::labels::is_valid_metric_name(record) {
                return Err(format!("invalid recording rule name: {record}"));
            }
            if !rule.annotations.is_empty() {
                return Err("invalid field 'annotations' in recording rule".into());
            }
            if rule.for_.is_some() {
                return Err("invalid field 'for' in recording rule".into());
            }
            if rule.keep_firing_for.is_some() {
                return Err("invalid field 'keep_firing_for' in recording rule".into());
            }
        }
        (None, Some(alert)) => {
            if alert.is_empty() {
                return Err("field 'alert' must be set in rule".into());
            }
        }
    }
    let expr = rule.expr.as_string();
    if expr.trim().is_empty() {
        return Err("field 'expr' must be set in rule".into());
    }
    match lang {
        ExprLang::PromQL => {
            promql_parser::parser::parse(&expr).map_err(|e| format!("could not parse expression: {e}"))?;
        }
        ExprLang::LogQL => {
            indexer::logql::parse_expr(&expr).map_err(|e| format!("could not parse LogQL expression: {e}"))?;
        }
    }
    let valid_name = |name: &str| match names {
        NameValidation::Utf8 => !name.is_empty(),
        NameValidation::Legacy => model::labels::is_valid_label_name(name),
    };
    for name in rule.labels.keys() {
        if !valid_name(name) || name == "__name__" {
            return Err(format!("invalid label name: {name}"));
        }
    }
    for name in rule.annotations.keys() {
        if !valid_name(name) {
            return Err(format!("invalid annotation name: {name}"));
        }
    }
    for (kind, map) in [("label", &rule.labels), ("annotation", &rule.annotations)] {
        for (name, text) in map {
            if text.contains("{{") {
                crate::template::Template::parse(text).map_err(|e| format!("{kind} {name:?}: template: {e}"))?;
            }
        }
    }
    for (field, value) in [("for", &rule.for_), ("keep_firing_for", &rule.keep_firing_for)] {
        if let Some(v) = value {
            model::time::parse_duration(v).map_err(|e| format!("{field}: {e}"))?;
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
}
