//! Alertmanager's notification templates: the files of its `templates:` glob list, whose
//! `{{ define "name" }}` blocks receiver fields call with `{{ template "name" . }}`, over the same
//! text/template engine the rules use. Files are read once, at validation; a field that calls a
//! template no file defines is a config error, not a broken message at 3 a.m.

use std::sync::Arc;

use super::parse::{self, Defines, Node};
use super::{Exec, TemplateData, Value};

/// The named templates of the `templates:` files.
#[derive(Clone, Debug, Default)]
pub struct NotifyTemplates {
    defines: Arc<Defines>,
    /// The files read, for messages.
    pub files: Vec<String>,
}

/// A compiled receiver field.
#[derive(Clone, Debug)]
pub struct NotifyTemplate {
    nodes: Vec<Node>,
    defines: Arc<Defines>,
}

/// The `template` names a node list calls.
fn called(nodes: &[Node], out: &mut Vec<String>) {
    for n in nodes {
        match n {
            Node::Template { name, .. } => out.push(name.clone()),
            Node::If { branches, otherwise } => {
                branches.iter().for_each(|(_, b)| called(b, out));
                called(otherwise, out);
            }
            Node::Range { body, otherwise, .. } | Node::With { body, otherwise, .. } => {
                called(body, out);
                called(otherwise, out);
            }
            Node::Text(_) | Node::Action(_) => {}
        }
    }
}

fn check_calls(defines: &Defines, roots: &[&[Node]]) -> Result<(), String> {
    let mut names = Vec::new();
    roots.iter().for_each(|r| called(r, &mut names));
    defines.values().for_each(|body| called(body, &mut names));
    match names.into_iter().find(|n| !defines.contains_key(n)) {
        Some(n) => Err(format!("template {n:?} is not defined")),
        None => Ok(()),
    }
}

impl NotifyTemplates {
    /// Reads every file matching the globs (in order; a later `define` replaces an earlier one,
    /// as in Alertmanager). Text outside `define`s is ignored.
    pub fn load(globs: &[String]) -> Result<Self, String> {
        let mut defines = Defines::new();
        let mut files = Vec::new();
        for (i, pattern) in globs.iter().enumerate() {
            let paths = glob::glob(pattern).map_err(|e| format!("[{i}]: {pattern:?}: {e}"))?;
            for path in paths {
                let path = path.map_err(|e| format!("[{i}]: {e}"))?;
                let text =
                    std::fs::read_to_string(&path).map_err(|e| format!("[{i}]: reading {}: {e}", path.display()))?;
                parse::parse_with_defines(&text, &mut defines)
                    .map_err(|e| format!("[{i}]: {}: {e}", path.display()))?;
                files.push(path.display().to_string());
            }
        }
        check_calls(&defines, &[])?;
        Ok(Self { defines: Arc::new(defines), files })
    }

    /// Whether `name` is defined.
    pub fn has(&self, name: &str) -> bool {
        self.defines.contains_key(name)
    }

    /// Compiles a receiver field; it may define its own templates and call the files' ones.
    pub fn compile(&self, text: &str) -> Result<NotifyTemplate, String> {
        let mut defines = (*self.defines).clone();
        let nodes = parse::parse_with_defines(text, &mut defines)?;
        check_calls(&defines, &[&nodes])?;
        Ok(NotifyTemplate { nodes, defines: Arc::new(defines) })
    }
}

impl NotifyTemplate {
    /// Expands the field with `data` (Alertmanager's `template.Data`) as `.` and `$`.
    pub fn execute(&self, data: &Value) -> Result<String, String> {
        let rule_data = TemplateData::default();
        let mut exec = Exec {
            vars: vec![("$".to_string(), data.clone())],
            data: &rule_data,
            query: None,
            defines: Some(&self.defines),
            out: String::new(),
            steps: 0,
        };
        exec.nodes(&self.nodes, data)?;
        Ok(exec.out)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn map_value<'a>(pairs: impl IntoIterator<Item = (&'a str, Value)>) -> Value {
        Value::Map(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect::<BTreeMap<_, _>>())
    }

    fn data() -> Value {
        let alert = |status: &str, instance: &str| {
            map_value([
                ("Status", Value::Str(status.into())),
                ("Labels", Value::strings(&BTreeMap::from([("instance".to_string(), instance.to_string())]))),
            ])
        };
        map_value([
            ("Status", Value::Str("firing".into())),
            ("Alerts", Value::List(vec![alert("firing", "a:1"), alert("resolved", "b:2"), alert("firing", "c:3")])),
            (
                "CommonLabels",
                Value::strings(&BTreeMap::from([("alertname".into(), "Down".into()), ("job".into(), "node".into())])),
            ),
        ])
    }

    #[test]
    fn define_template_and_block() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.tmpl"),
            r#"{{ define "title" }}[{{ .Status | toUpper }}{{ if eq .Status "firing" }}:{{ .Alerts.Firing | len }}{{ end }}] {{ .CommonLabels.alertname }}{{ end }}
{{ define "list" }}{{ range .Alerts.Firing }}- {{ .Labels.instance }}
{{ end }}{{ end }}"#,
        )
        .unwrap();
        let files = NotifyTemplates::load(&[format!("{}/*.tmpl", dir.path().display())]).unwrap();
        assert!(files.has("title") && files.has("list"));
        let t = files.compile(r#"{{ template "title" . }}: {{ template "list" . }}"#).unwrap();
        assert_eq!(t.execute(&data()).unwrap(), "[FIRING:2] Down: - a:1\n- c:3\n");
        // A block is the default body; a file's define of the same name wins.
        let b = files
            .compile(r#"{{ block "title" . }}default{{ end }}/{{ block "other" . }}{{ .Status }}{{ end }}"#)
            .unwrap();
        assert_eq!(b.execute(&data()).unwrap(), "[FIRING:2] Down/firing");
        let pairs =
            files.compile(r#"{{ range .CommonLabels.SortedPairs }}{{ .Name }}={{ .Value }} {{ end }}"#).unwrap();
        assert_eq!(pairs.execute(&data()).unwrap(), "alertname=Down job=node ");
        let names = files.compile(r#"{{ .CommonLabels.Names | join "," }}"#).unwrap();
        assert_eq!(names.execute(&data()).unwrap(), "alertname,job");
        assert_eq!(files.compile(r#"{{ template "nope" . }}"#).unwrap_err(), "template \"nope\" is not defined");
        assert!(files.compile(r#"{{ if true }}{{ define "x" }}{{ end }}{{ end }}"#).is_err());
    }
}
