//! Prometheus's alert templates: the Go `text/template` language with Prometheus's functions
//! (`humanize*`, `query`, `first`, `label`, `value`, `reReplaceAll`, ...), so the annotations and
//! labels of rule files people already have expand to the same text. Rules get `$labels`,
//! `$value`, `$externalLabels` and `$externalURL` (and `.Labels`, `.Value`, ...) as in Prometheus.

mod format;
mod notify;
mod parse;

use std::collections::BTreeMap;

pub use format::{format_float_v, format_g, humanize, humanize_duration, humanize_percentage, sprintf};
pub use notify::{NotifyTemplate, NotifyTemplates};
use parse::{Arg, Defines, Node, Pipeline};

/// The variables every rule template may use.
const RULE_VARIABLES: [&str; 4] = ["$labels", "$value", "$externalLabels", "$externalURL"];

/// A value inside template execution.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Map(BTreeMap<String, Value>),
    List(Vec<Value>),
    /// One element of a `query` result: `.Labels` and `.Value`.
    Sample(QuerySample),
}

/// A sample returned by the `query` template function.
#[derive(Clone, Debug, PartialEq)]
pub struct QuerySample {
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

impl Value {
    fn truthy(&self) -> bool {
        match self {
            Value::Nil => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Float(f) => *f != 0.0,
            Value::Str(s) => !s.is_empty(),
            Value::Map(m) => !m.is_empty(),
            Value::List(l) => !l.is_empty(),
            Value::Sample(_) => true,
        }
    }

    /// How Go's `fmt.Print` shows the value.
    pub fn to_text(&self) -> String {
        match self {
            Value::Nil => "<no value>".into(),
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => format_float_v(*f),
            Value::Str(s) => s.clone(),
            Value::Map(m) => {
                let items: Vec<String> = m.iter().map(|(k, v)| format!("{k}:{}", v.to_text())).collect();
                format!("map[{}]", items.join(" "))
            }
            Value::List(l) => format!("[{}]", l.iter().map(Value::to_text).collect::<Vec<_>>().join(" ")),
            Value::Sample(s) => {
                let labels: Vec<String> = s.labels.iter().map(|(k, v)| format!("{k}:{v}")).collect();
                format!("{{map[{}] {}}}", labels.join(" "), format_float_v(s.value))
            }
        }
    }

    fn go_type(&self) -> &'static str {
        match self {
            Value::Nil => "<nil>",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float64",
            Value::Str(_) => "string",
            Value::Map(_) => "map",
            Value::List(_) => "slice",
            Value::Sample(_) => "sample",
        }
    }

    fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            Value::Str(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    pub(crate) fn strings(map: &BTreeMap<String, String>) -> Value {
        Value::Map(map.iter().map(|(k, v)| (k.clone(), Value::Str(v.clone()))).collect())
    }
}

/// What a rule's templates see.
#[derive(Clone, Debug, Default)]
pub struct TemplateData {
    pub labels: BTreeMap<String, String>,
    pub external_labels: BTreeMap<String, String>,
    pub external_url: String,
    pub value: f64,
    /// Evaluation time in Unix seconds (for `now`).
    pub now: f64,
}

/// Runs the `query` template function: an instant query at the evaluation time.
pub type QueryFn<'a> = dyn Fn(&str) -> Result<Vec<QuerySample>, String> + 'a;

/// A parsed rule template.
#[derive(Clone, Debug)]
pub struct Template {
    nodes: Vec<Node>,
}

impl Template {
    /// Parses a rule label or annotation template; undefined variables are errors.
    pub fn parse(text: &str) -> Result<Template, String> {
        Ok(Template { nodes: parse::parse(text, &RULE_VARIABLES)? })
    }

    /// Expands the template.
    pub fn execute(&self, data: &TemplateData, query: Option<&QueryFn<'_>>) -> Result<String, String> {
        let dot = Value::Map(BTreeMap::from([
            ("Labels".to_string(), Value::strings(&data.labels)),
            ("ExternalLabels".to_string(), Value::strings(&data.external_labels)),
            ("ExternalURL".to_string(), Value::Str(data.external_url.clone())),
            ("Value".to_string(), Value::Float(data.value)),
        ]));
        let mut exec = Exec {
            vars: vec![
                ("$".to_string(), dot.clone()),
                ("$labels".to_string(), Value::strings(&data.labels)),
                ("$externalLabels".to_string(), Value::strings(&data.external_labels)),
                ("$externalURL".to_string(), Value::Str(data.external_url.clone())),
                ("$value".to_string(), Value::Float(data.value)),
            ],
            data,
            query,
            defines: None,
            out: String::new(),
            steps: 0,
        };
        exec.nodes(&self.nodes, &dot)?;
        Ok(exec.out)
    }
}

/// Expands `text` as Prometheus does for annotations: an error becomes the text
/// `<error expanding template: ...>` rather than failing the rule.
pub fn expand(text: &str, data: &TemplateData, query: Option<&QueryFn<'_>>) -> String {
    if !text.contains("{{") {
        return text.to_string();
    }
    match Template::parse(text).and_then(|t| t.execute(data, query)) {
        Ok(s) => s,
        Err(e) => format!("<error expanding template: {e}>"),
    }
}

/// Most actions a template may run (guards against runaway `range` over huge query results).
const MAX_STEPS: usize = 1_000_000;

struct Exec<'a, 'q> {
    vars: Vec<(String, Value)>,
    data: &'a TemplateData,
    query: Option<&'a QueryFn<'q>>,
    /// Named templates (notification templates only).
    defines: Option<&'a Defines>,
    out: String,
    steps: usize,
}

impl Exec<'_, '_> {
    fn nodes(&mut self, nodes: &[Node], dot: &Value) -> Result<(), String> {
        for node in nodes {
            self.steps += 1;
            if self.steps > MAX_STEPS {
                return Err("template ran too long".into());
            }
            match node {
                Node::Text(t) => self.out.push_str(t),
                Node::Action(pipe) => {
                    let v = self.pipeline(pipe, dot)?;
                    if pipe.vars.is_empty() {
                        self.out.push_str(&v.to_text());
                    }
                }
                Node::If { branches, otherwise } => {
                    let mark = self.vars.len();
                    let mut done = false;
                    for (cond, body) in branches {
                        if self.pipeline(cond, dot)?.truthy() {
                            self.nodes(body, dot)?;
                            done = true;
                            break;
                        }
                    }
                    if !done {
                        self.nodes(otherwise, dot)?;
                    }
                    self.vars.truncate(mark);
                }
                Node::With { pipe, body, otherwise } => {
                    let mark = self.vars.len();
                    let v = self.pipeline(pipe, dot)?;
                    if v.truthy() {
                        self.nodes(body, &v)?
                    } else {
                        self.nodes(otherwise, dot)?
                    }
                    self.vars.truncate(mark);
                }
                Node::Template { name, pipe } => {
                    let body =
                        self.defines.and_then(|d| d.get(name)).ok_or_else(|| format!("no such template {name:?}"))?;
                    let v = match pipe {
                        Some(p) => self.pipeline_value(p, dot)?,
                        None => Value::Nil,
                    };
                    // The named template sees its argument as both `.` and `$`, nothing else.
                    let outer = std::mem::replace(&mut self.vars, vec![("$".to_string(), v.clone())]);
                    let run = self.nodes(body, &v);
                    self.vars = outer;
                    run?;
                }
                Node::Range { pipe, body, otherwise } => {
                    let mark = self.vars.len();
                    let items: Vec<(Value, Value)> = match self.pipeline_value(pipe, dot)? {
                        Value::List(l) => l.into_iter().enumerate().map(|(i, v)| (Value::Int(i as i64), v)).collect(),
                        Value::Map(m) => m.into_iter().map(|(k, v)| (Value::Str(k), v)).collect(),
                        Value::Int(n) => (0..n).map(|i| (Value::Int(i), Value::Int(i))).collect(),
                        Value::Nil => Vec::new(),
                        other => return Err(format!("range can't iterate over {}", other.to_text())),
                    };
                    if items.is_empty() {
                        self.nodes(otherwise, dot)?;
                    }
                    for (key, item) in items {
                        let inner = self.vars.len();
                        match pipe.vars.as_slice() {
                            [] => {}
                            [v] => self.vars.push((v.clone(), item.clone())),
                            [k, v, ..] => {
                                self.vars.push((k.clone(), key));
                                self.vars.push((v.clone(), item.clone()));
                            }
                        }
                        self.nodes(body, &item)?;
                        self.vars.truncate(inner);
                    }
                    self.vars.truncate(mark);
                }
            }
        }
        Ok(())
    }

    /// Evaluates a pipeline and binds its declared variables.
    fn pipeline(&mut self, pipe: &Pipeline, dot: &Value) -> Result<Value, String> {
        let v = self.pipeline_value(pipe, dot)?;
        for name in &pipe.vars {
            if pipe.assign {
                if let Some(slot) = self.vars.iter_mut().rev().find(|(n, _)| n == name) {
                    slot.1 = v.clone();
                }
            } else {
                self.vars.push((name.clone(), v.clone()));
            }
        }
        Ok(v)
    }

    /// Evaluates a pipeline's commands, each receiving the previous result as its last argument.
    /// (Range variables are bound by the caller, so this does not bind them.)
    fn pipeline_value(&mut self, pipe: &Pipeline, dot: &Value) -> Result<Value, String> {
        let mut previous: Option<Value> = None;
        for command in &pipe.commands {
            previous = Some(self.command(command, dot, previous)?);
        }
        Ok(previous.unwrap_or(Value::Nil))
    }

    fn command(&mut self, args: &[Arg], dot: &Value, piped: Option<Value>) -> Result<Value, String> {
        let (first, rest) = args.split_first().ok_or("empty command")?;
        if let Arg::Func(name) = first {
            let mut values = Vec::with_capacity(rest.len() + 1);
            for a in rest {
                values.push(self.arg(a, dot)?);
            }
            values.extend(piped);
            return self.call(name, values).map_err(|e| format!("error calling {name}: {e}"));
        }
        if !rest.is_empty() || piped.is_some() {
            return Err(format!("can't give arguments to non-function {first:?}"));
        }
        self.arg(first, dot)
    }

    fn arg(&mut self, arg: &Arg, dot: &Value) -> Result<Value, String> {
        match arg {
            Arg::Dot(fields) => fields_of(dot.clone(), fields),
            Arg::Var(name, fields) => {
                let v = self.vars.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v.clone());
                fields_of(v.ok_or_else(|| format!("undefined variable {name}"))?, fields)
            }
            Arg::Str(s) => Ok(Value::Str(s.clone())),
            Arg::Int(i) => Ok(Value::Int(*i)),
            Arg::Float(f) => Ok(Value::Float(*f)),
            Arg::Bool(b) => Ok(Value::Bool(*b)),
            Arg::Nil => Ok(Value::Nil),
            Arg::Func(name) => self.call(name, Vec::new()).map_err(|e| format!("error calling {name}: {e}")),
            Arg::Sub(pipe, fields) => {
                let v = self.pipeline(pipe, dot)?;
                fields_of(v, fields)
            }
        }
    }

    fn call(&mut self, name: &str, args: Vec<Value>) -> Result<Value, String> {
        let arity = |n: usize| {
            if args.len() == n { Ok(()) } else { Err(format!("wrong number of args: want {n} got {}", args.len())) }
        };
        let num = |v: &Value| v.as_f64().ok_or_else(|| format!("can't convert {} to float", v.to_text()));
        let text = |v: &Value| match v {
            Value::Str(s) => Ok(s.clone()),
            other => Err(format!("expected string, got {}", other.go_type())),
        };
        Ok(match name {
            "query" => {
                arity(1)?;
                let q = self.query.ok_or("query is not available here")?;
                Value::List(q(&text(&args[0])?)?.into_iter().map(Value::Sample).collect())
            }
            "first" => {
                arity(1)?;
                match &args[0] {
                    Value::List(l) => l.first().cloned().ok_or("first() called on vector with no elements")?,
                    other => return Err(format!("first() called on {}", other.go_type())),
                }
            }
            "label" => {
                arity(2)?;
                match &args[1] {
                    Value::Sample(s) => Value::Str(s.labels.get(&text(&args[0])?).cloned().unwrap_or_default()),
                    _ => Value::Str(String::new()),
                }
            }
            "value" => {
                arity(1)?;
                match &args[0] {
                    Value::Sample(s) => Value::Float(s.value),
                    other => return Err(format!("value() called on {}", other.go_type())),
                }
            }
            "strvalue" => {
                arity(1)?;
                match &args[0] {
                    Value::Sample(s) => Value::Str(s.labels.get("__value__").cloned().unwrap_or_default()),
                    _ => Value::Str(String::new()),
                }
            }
            "sortByLabel" => {
                arity(2)?;
                let label = text(&args[0])?;
                let Value::List(mut l) = args[1].clone() else { return Err("sortByLabel needs a query result".into()) };
                let key = |v: &Value| match v {
                    Value::Sample(s) => s.labels.get(&label).cloned().unwrap_or_default(),
                    _ => String::new(),
                };
                l.sort_by_key(key);
                Value::List(l)
            }
            "args" => Value::Map(args.into_iter().enumerate().map(|(i, v)| (format!("arg{i}"), v)).collect()),
            "reReplaceAll" => {
                arity(3)?;
                let re = regex::Regex::new(&text(&args[0])?).map_err(|e| e.to_string())?;
                Value::Str(re.replace_all(&text(&args[2])?, text(&args[1])?.as_str()).into_owned())
            }
            "match" => {
                arity(2)?;
                let re = regex::Regex::new(&text(&args[0])?).map_err(|e| e.to_string())?;
                Value::Bool(re.is_match(&text(&args[1])?))
            }
            "title" => {
                arity(1)?;
                Value::Str(title_case(&text(&args[0])?))
            }
            "toUpper" => {
                arity(1)?;
                Value::Str(text(&args[0])?.to_uppercase())
            }
            "toLower" => {
                arity(1)?;
                Value::Str(text(&args[0])?.to_lowercase())
            }
            // Alertmanager's additions for notification templates.
            "trimSpace" => {
                arity(1)?;
                Value::Str(text(&args[0])?.trim().to_string())
            }
            "join" => {
                arity(2)?;
                let Value::List(items) = &args[1] else {
                    return Err(format!("join: expected a list, got {}", args[1].go_type()));
                };
                Value::Str(items.iter().map(Value::to_text).collect::<Vec<_>>().join(&text(&args[0])?))
            }
            "stringSlice" => Value::List(args),
            "stripPort" => {
                arity(1)?;
                let s = text(&args[0])?;
                Value::Str(strip_port(&s))
            }
            "stripDomain" => {
                arity(1)?;
                let s = text(&args[0])?;
                let (host, port) = match s.rsplit_once(':') {
                    Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) && !h.contains(':') => (h, Some(p)),
                    _ => (s.as_str(), None),
                };
                let host = if host.parse::<std::net::IpAddr>().is_ok() {
                    host
                } else {
                    host.split('.').next().unwrap_or(host)
                };
                Value::Str(match port {
                    Some(p) => format!("{host}:{p}"),
                    None => host.to_string(),
                })
            }
            "humanize" => {
                arity(1)?;
                Value::Str(humanize(num(&args[0])?))
            }
            "humanize1024" => {
                arity(1)?;
                Value::Str(format::humanize1024(num(&args[0])?))
            }
            "humanizeDuration" => {
                arity(1)?;
                Value::Str(humanize_duration(num(&args[0])?))
            }
            "humanizePercentage" => {
                arity(1)?;
                Value::Str(humanize_percentage(num(&args[0])?))
            }
            "humanizeTimestamp" => {
                arity(1)?;
                Value::Str(format::humanize_timestamp(num(&args[0])?))
            }
            "toTime" => {
                arity(1)?;
                Value::Str(format::humanize_timestamp(num(&args[0])?))
            }
            "parseDuration" => {
                arity(1)?;
                let d = model::time::parse_duration(&text(&args[0])?).map_err(|e| e.to_string())?;
                Value::Float(d.as_secs_f64())
            }
            "safeHtml" => {
                arity(1)?;
                Value::Str(text(&args[0])?)
            }
            "graphLink" | "tableLink" => {
                arity(1)?;
                let expr: String = form_urlencoded::byte_serialize(text(&args[0])?.as_bytes()).collect();
                let tab = if name == "graphLink" { 0 } else { 1 };
                Value::Str(format!("/graph?g0.expr={expr}&g0.tab={tab}"))
            }
            "externalURL" => Value::Str(self.data.external_url.clone()),
            "pathPrefix" => Value::Str(String::new()),
            "now" => Value::Float(self.data.now),
            "and" => args.iter().find(|v| !v.truthy()).or(args.last()).cloned().unwrap_or(Value::Nil),
            "or" => args.iter().find(|v| v.truthy()).or(args.last()).cloned().unwrap_or(Value::Nil),
            "not" => {
                arity(1)?;
                Value::Bool(!args[0].truthy())
            }
            "len" => {
                arity(1)?;
                Value::Int(match &args[0] {
                    Value::Str(s) => s.len(),
                    Value::List(l) => l.len(),
                    Value::Map(m) => m.len(),
                    other => return Err(format!("len of {}", other.go_type())),
                } as i64)
            }
            "index" => {
                let (first, keys) = args.split_first().ok_or("index needs arguments")?;
                let mut v = first.clone();
                for key in keys {
                    v = match (&v, key) {
                        (Value::Map(m), Value::Str(k)) => m.get(k).cloned().unwrap_or(Value::Str(String::new())),
                        (Value::List(l), k) => {
                            let i = k.as_f64().ok_or("index of list needs a number")? as usize;
                            l.get(i).cloned().ok_or_else(|| format!("index out of range: {i}"))?
                        }
                        _ => return Err(format!("can't index item of type {}", v.go_type())),
                    };
                }
                v
            }
            "print" => Value::Str(args.iter().map(Value::to_text).collect::<Vec<_>>().join("")),
            "println" => Value::Str(args.iter().map(Value::to_text).collect::<Vec<_>>().join(" ") + "\n"),
            "printf" => {
                let (f, rest) = args.split_first().ok_or("printf needs a format")?;
                Value::Str(sprintf(&text(f)?, rest))
            }
            "eq" => {
                let (first, rest) = args.split_first().ok_or("missing argument for comparison")?;
                Value::Bool(rest.iter().any(|v| compare(first, v) == Some(std::cmp::Ordering::Equal)))
            }
            "ne" | "lt" | "le" | "gt" | "ge" => {
                arity(2)?;
                let ord = compare(&args[0], &args[1]).ok_or("incompatible types for comparison")?;
                use std::cmp::Ordering::*;
                Value::Bool(match name {
                    "ne" => ord != Equal,
                    "lt" => ord == Less,
                    "le" => ord != Greater,
                    "gt" => ord == Greater,
                    _ => ord != Less,
                })
            }
            "html" => {
                arity(1)?;
                Value::Str(
                    text(&args[0])?
                        .replace('&', "&amp;")
                        .replace('<', "&lt;")
                        .replace('>', "&gt;")
                        .replace('"', "&#34;")
                        .replace('\'', "&#39;"),
                )
            }
            "urlquery" => Value::Str(
                form_urlencoded::byte_serialize(args.iter().map(Value::to_text).collect::<String>().as_bytes())
                    .collect(),
            ),
            other => return Err(format!("function \"{other}\" not defined")),
        })
    }
}

fn fields_of(mut v: Value, fields: &[String]) -> Result<Value, String> {
    for f in fields {
        v = match (&v, f.as_str()) {
            (Value::Map(m), key) if m.contains_key(key) => m[key].clone(),
            // Alertmanager's methods on its KV maps and alert lists.
            (Value::Map(m), "SortedPairs") => Value::List(
                m.iter()
                    .map(|(k, v)| {
                        Value::Map(BTreeMap::from([
                            ("Name".to_string(), Value::Str(k.clone())),
                            ("Value".to_string(), v.clone()),
                        ]))
                    })
                    .collect(),
            ),
            (Value::Map(m), "Names") => Value::List(m.keys().cloned().map(Value::Str).collect()),
            (Value::Map(m), "Values") => Value::List(m.values().cloned().collect()),
            (Value::Map(_), _) => Value::Str(String::new()),
            (Value::List(l), status @ ("Firing" | "Resolved")) => {
                let want = Value::Str(status.to_lowercase());
                Value::List(
                    l.iter()
                        .filter(|a| matches!(a, Value::Map(m) if m.get("Status") == Some(&want)))
                        .cloned()
                        .collect(),
                )
            }
            (Value::Sample(s), "Labels") => Value::strings(&s.labels),
            (Value::Sample(s), "Value") => Value::Float(s.value),
            (Value::Nil, _) => Value::Nil,
            (other, key) => return Err(format!("can't evaluate field {key} in type {}", other.go_type())),
        };
    }
    Ok(v)
}

fn compare(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Value::Str(x), Value::Str(y)) => Some(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        (Value::Int(x), Value::Int(y)) => Some(x.cmp(y)),
        (Value::Int(_) | Value::Float(_), Value::Int(_) | Value::Float(_)) => a.as_f64()?.partial_cmp(&b.as_f64()?),
        (Value::Nil, Value::Nil) => Some(std::cmp::Ordering::Equal),
        _ => None,
    }
}

fn title_case(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut at_start = true;
    for c in s.chars() {
        if at_start && c.is_alphabetic() {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        at_start = !(c.is_alphanumeric() || c == '_' || c == '\'');
    }
    out
}

fn strip_port(s: &str) -> String {
    if let Some(rest) = s.strip_prefix('[')
        && let Some((host, _)) = rest.split_once(']')
    {
        return host.to_string();
    }
    match s.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && port.chars().all(|c| c.is_ascii_digit()) => host.to_string(),
        _ => s.to_string(),
    }
}

#[cfg(test)]
mod tests;
