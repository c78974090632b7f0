//! Prometheus relabeling (`relabel_configs`, `metric_relabel_configs`) with the semantics of
//! `prometheus/model/relabel`: the same defaults, the same validation messages, anchored regexes,
//! `$1`/`${1}`/named-group expansion, md5-based `hashmod`, and "an empty value deletes the label".
//! Users paste their Prometheus configs; any deviation would silently change their series.

use std::sync::LazyLock;

use md5::{Digest, Md5};
use model::{Labels, LabelsBuilder};
use regex::Regex;
use serde::{Deserialize, Serialize};

/// The default regex (matches anything, captures it as `$1`).
pub const DEFAULT_REGEX: &str = "(.*)";
/// The default separator between source label values.
pub const DEFAULT_SEPARATOR: &str = ";";
/// The default replacement (the first capture group).
pub const DEFAULT_REPLACEMENT: &str = "$1";

/// A `target_label` (replace) or `replacement` (labelmap) that may contain `$1`/`${name}`.
static RELABEL_TARGET: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:(?:[a-zA-Z_]|\$(?:\{\w+\}|\w+))+\w*)+$").expect("the relabel target pattern is valid")
});

/// What a relabel step does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Write the expanded `replacement` to the expanded `target_label` when `regex` matches.
    #[default]
    Replace,
    /// Drop the label set unless `regex` matches the source value.
    Keep,
    /// Drop the label set when `regex` matches the source value.
    Drop,
    /// Keep the label set only when the source value equals `target_label`'s value.
    KeepEqual,
    /// Drop the label set when the source value equals `target_label`'s value.
    DropEqual,
    /// Set `target_label` to the md5 of the source value modulo `modulus`.
    HashMod,
    /// Copy every label whose name matches `regex` to the name `replacement` expands to.
    LabelMap,
    /// Remove every label whose name matches `regex`.
    LabelDrop,
    /// Remove every label whose name does not match `regex`.
    LabelKeep,
    /// Set `target_label` to the lowercased source value.
    Lowercase,
    /// Set `target_label` to the uppercased source value.
    Uppercase,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Action::Replace => "replace",
            Action::Keep => "keep",
            Action::Drop => "drop",
            Action::KeepEqual => "keepequal",
            Action::DropEqual => "dropequal",
            Action::HashMod => "hashmod",
            Action::LabelMap => "labelmap",
            Action::LabelDrop => "labeldrop",
            Action::LabelKeep => "labelkeep",
            Action::Lowercase => "lowercase",
            Action::Uppercase => "uppercase",
        }
    }
}

/// One relabel step, in Prometheus's `relabel_config` format.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RelabelConfig {
    /// Labels whose values are joined with `separator` to form the source value.
    pub source_labels: Vec<String>,
    /// Placed between the source label values.
    pub separator: String,
    /// Regex matched against the source value (or label names); anchored at both ends.
    /// Unset means `(.*)`.
    pub regex: Option<String>,
    /// Modulus of the `hashmod` action.
    pub modulus: u64,
    /// Label written by `replace`, `hashmod`, `lowercase`, `uppercase`; compared by
    /// `keepequal`/`dropequal`.
    pub target_label: String,
    /// Value written by `replace` (or the name by `labelmap`); `$1`, `${1}`, `${name}` expand.
    pub replacement: String,
    /// What the step does.
    pub action: Action,
}

impl Default for RelabelConfig {
    fn default() -> Self {
        Self {
            source_labels: Vec::new(),
            separator: DEFAULT_SEPARATOR.to_string(),
            regex: None,
            modulus: 0,
            target_label: String::new(),
            replacement: DEFAULT_REPLACEMENT.to_string(),
            action: Action::Replace,
        }
    }
}

/// A validated relabel step with its compiled, anchored regex.
#[derive(Clone, Debug)]
pub struct Relabeler {
    config: RelabelConfig,
    regex: Regex,
    default_regex: bool,
}

impl RelabelConfig {
    /// Validates the step as Prometheus does; the message names the offending field.
    pub fn compile(&self) -> Result<Relabeler, String> {
        let c = self;
        let action = c.action.as_str();
        let source = c.regex.as_deref().unwrap_or(DEFAULT_REGEX);
        let regex = Regex::new(&format!("^(?:{source})$")).map_err(|e| format!("regex {source:?}: {e}"))?;
        let valid = model::labels::is_valid_label_name;
        if c.modulus == 0 && c.action == Action::HashMod {
            return Err("modulus: relabel configuration for hashmod requires non-zero modulus".into());
        }
        let needs_target = matches!(
            c.action,
            Action::Replace
                | Action::HashMod
                | Action::Lowercase
                | Action::Uppercase
                | Action::KeepEqual
                | Action::DropEqual
        );
        if needs_target && c.target_label.is_empty() {
            return Err(format!(
                "target_label: relabel configuration for {action} action requires 'target_label' value"
            ));
        }
        let target_ok = match c.action {
            Action::Replace if c.target_label.contains('$') => RELABEL_TARGET.is_match(&c.target_label),
            Action::Replace
            | Action::HashMod
            | Action::Lowercase
            | Action::Uppercase
            | Action::KeepEqual
            | Action::DropEqual => valid(&c.target_label),
            _ => true,
        };
        if !target_ok {
            return Err(format!("target_label: {:?} is invalid 'target_label' for {action} action", c.target_label));
        }
        if matches!(c.action, Action::Lowercase | Action::Uppercase | Action::KeepEqual | Action::DropEqual)
            && c.replacement != DEFAULT_REPLACEMENT
        {
            return Err(format!("replacement: 'replacement' can not be set for {action} action"));
        }
        if c.action == Action::LabelMap && !RELABEL_TARGET.is_match(&c.replacement) {
            return Err(format!("replacement: {:?} is invalid 'replacement' for {action} action", c.replacement));
        }
        if matches!(c.action, Action::KeepEqual | Action::DropEqual)
            && (c.regex.is_some() || c.modulus != 0 || c.separator != DEFAULT_SEPARATOR)
        {
            return Err(format!(
                "action: {action} action requires only 'source_labels' and `target_label`, and no other fields"
            ));
        }
        if matches!(c.action, Action::LabelDrop | Action::LabelKeep)
            && (!c.source_labels.is_empty()
                || !c.target_label.is_empty()
                || c.modulus != 0
                || c.separator != DEFAULT_SEPARATOR
                || c.replacement != DEFAULT_REPLACEMENT)
        {
            return Err(format!("action: {action} action requires only 'regex', and no other fields"));
        }
        for name in &c.source_labels {
            if !valid(name) {
                return Err(format!("source_labels: {name:?} is not a valid label name"));
            }
        }
        Ok(Relabeler { config: c.clone(), regex, default_regex: source == DEFAULT_REGEX })
    }
}

/// Compiles a list of steps; the error names the step's index and field (`[2].modulus: ...`).
pub fn compile_all(configs: &[RelabelConfig]) -> Result<Vec<Relabeler>, String> {
    configs.iter().enumerate().map(|(i, c)| c.compile().map_err(|e| format!("[{i}].{e}"))).collect()
}

/// Applies `steps` in order; `None` if a step dropped the label set.
pub fn process(labels: &Labels, steps: &[Relabeler]) -> Option<Labels> {
    if steps.is_empty() {
        return Some(labels.clone());
    }
    let mut builder = labels.to_builder();
    process_builder(&mut builder, steps).then(|| builder.build())
}

/// Applies `steps` to a builder in place; `false` if a step dropped the label set.
pub fn process_builder(builder: &mut LabelsBuilder, steps: &[Relabeler]) -> bool {
    steps.iter().all(|step| step.apply(builder))
}

impl Relabeler {
    fn apply(&self, lb: &mut LabelsBuilder) -> bool {
        let c = &self.config;
        let value = c.source_labels.iter().map(|n| lb.get(n).unwrap_or("")).collect::<Vec<_>>().join(&c.separator);
        match c.action {
            Action::Drop => return !self.regex.is_match(&value),
            Action::Keep => return self.regex.is_match(&value),
            Action::DropEqual => return lb.get(&c.target_label).unwrap_or("") != value,
            Action::KeepEqual => return lb.get(&c.target_label).unwrap_or("") == value,
            Action::Replace => {
                if value.is_empty()
                    && self.default_regex
                    && !c.target_label.contains('$')
                    && !c.replacement.contains('$')
                {
                    lb.set(&c.target_label, &c.replacement);
                    return true;
                }
                let Some(caps) = self.regex.captures(&value) else { return true };
                let mut target = String::new();
                caps.expand(&c.target_label, &mut target);
                if !model::labels::is_valid_label_name(&target) {
                    return true;
                }
                let mut result = String::new();
                caps.expand(&c.replacement, &mut result);
                lb.set(target, result); // an empty result deletes the label
            }
            Action::Lowercase => {
                lb.set(&c.target_label, value.to_lowercase());
            }
            Action::Uppercase => {
                lb.set(&c.target_label, value.to_uppercase());
            }
            Action::HashMod => {
                lb.set(&c.target_label, hashmod(&value, c.modulus).to_string());
            }
            Action::LabelMap => {
                for label in lb.build().iter() {
                    if self.regex.is_match(&label.name) {
                        let name = self.regex.replace_all(&label.name, c.replacement.as_str()).into_owned();
                        lb.set(name, &label.value);
                    }
                }
            }
            Action::LabelDrop | Action::LabelKeep => {
                let drop_matching = c.action == Action::LabelDrop;
                for label in lb.build().iter() {
                    if self.regex.is_match(&label.name) == drop_matching {
                        lb.remove(&label.name);
                    }
                }
            }
        }
        true
    }
}

/// Prometheus's hashmod: the last 8 bytes of the md5 digest, big-endian, modulo `modulus`.
/// (`relabel.go`: `binary.BigEndian.Uint64(hash[8:]) % cfg.Modulus`, kept from the older
/// `sum64` whose shifts of the first 8 bytes overflowed to zero.)
pub fn hashmod(value: &str, modulus: u64) -> u64 {
    let digest = Md5::digest(value.as_bytes());
    let mut tail = [0u8; 8];
    tail.copy_from_slice(&digest[8..16]);
    u64::from_be_bytes(tail) % modulus.max(1)
}

#[cfg(test)]
#[path = "relabel_tests.rs"]
mod tests;
