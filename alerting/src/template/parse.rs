//! Parser for the subset of Go's `text/template` that Prometheus rule annotations and labels use:
//! text with `{{ }}` actions (trim markers `{{-`/`-}}`, comments), pipelines with `|`, variables
//! (`$x := ...`, `$x = ...`), field chains (`.Labels.job`, `$labels.job`), string/number/bool
//! literals, parenthesised sub-pipelines, and `if`/`else if`/`else`, `range`, `with`, `end`; and,
//! for notification templates only (Alertmanager's `templates:` files), `define`, `template` and
//! `block`.
//! Undefined variables are rejected at parse time, as Go's parser does, so `promtool check rules`
//! style validation catches `$label` typos before a rule ever fires.

use std::collections::{BTreeMap, HashSet};

/// A parsed template: a list of nodes.
#[derive(Clone, Debug, PartialEq)]
pub enum Node {
    Text(String),
    Action(Pipeline),
    If {
        branches: Vec<(Pipeline, Vec<Node>)>,
        otherwise: Vec<Node>,
    },
    Range {
        pipe: Pipeline,
        body: Vec<Node>,
        otherwise: Vec<Node>,
    },
    With {
        pipe: Pipeline,
        body: Vec<Node>,
        otherwise: Vec<Node>,
    },
    /// `{{ template "name" pipeline }}` (also where a `block` stood).
    Template {
        name: String,
        pipe: Option<Pipeline>,
    },
}

/// Named templates from `{{ define }}` and `{{ block }}`.
pub type Defines = BTreeMap<String, Vec<Node>>;

/// `$a, $b := cmd | cmd ...`
#[derive(Clone, Debug, PartialEq)]
pub struct Pipeline {
    pub vars: Vec<String>,
    /// `=` (assign to an existing variable) instead of `:=` (declare).
    pub assign: bool,
    pub commands: Vec<Vec<Arg>>,
}

/// One operand of a command.
#[derive(Clone, Debug, PartialEq)]
pub enum Arg {
    /// `.` followed by zero or more fields: `.`, `.Labels.job`.
    Dot(Vec<String>),
    /// `$name` followed by fields.
    Var(String, Vec<String>),
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Nil,
    /// A function name.
    Func(String),
    /// `( pipeline )` followed by fields.
    Sub(Box<Pipeline>, Vec<String>),
}

/// Parses `text`; `predefined` are the variables the caller defines before the text runs.
pub fn parse(text: &str, predefined: &[&str]) -> Result<Vec<Node>, String> {
    parse_inner(text, predefined, None)
}

/// Parses a notification template: `define`/`block` bodies go into `defines` (a `block` only when
/// the name is not defined yet, so template files override a field's default), `template` is
/// allowed.
pub fn parse_with_defines(text: &str, defines: &mut Defines) -> Result<Vec<Node>, String> {
    parse_inner(text, &[], Some(defines))
}

fn parse_inner(text: &str, predefined: &[&str], defines: Option<&mut Defines>) -> Result<Vec<Node>, String> {
    let tokens = split_actions(text)?;
    let scopes = vec![predefined.iter().map(|s| s.to_string()).chain(["$".to_string()]).collect()];
    let mut parser = Parser { tokens, pos: 0, scopes, defines, depth: 0 };
    let (nodes, end) = parser.nodes()?;
    match end {
        None => Ok(nodes),
        Some(word) => Err(format!("unexpected {{{{{word}}}}}")),
    }
}

/// The quoted name opening `define`/`template`/`block` and what follows it.
fn template_name(rest: &str) -> Result<(String, &str), String> {
    let rest = rest.trim_start();
    let quote = rest.chars().next().filter(|c| *c == '"' || *c == '`').ok_or("expected a quoted template name")?;
    let end = rest[1..].find(quote).ok_or("unterminated template name")? + 1;
    Ok((rest[1..end].to_string(), &rest[end + 1..]))
}

enum Piece {
    Text(String),
    Action(String),
}

/// Cuts the text into literal text and action bodies, applying trim markers and dropping comments.
fn split_actions(text: &str) -> Result<Vec<Piece>, String> {
    let mut out = Vec::new();
    let mut rest = text;
    let mut trim_next = false;
    while let Some(start) = rest.find("{{") {
        let mut literal = &rest[..start];
        if trim_next {
            literal = literal.trim_start();
        }
        let after = &rest[start + 2..];
        let trim_left = after.starts_with("- ") || after.starts_with("-\t") || after.starts_with("-\n");
        if trim_left {
            literal = literal.trim_end();
        }
        if !literal.is_empty() {
            out.push(Piece::Text(literal.to_string()));
        }
        let body_start = if trim_left { 1 } else { 0 };
        let end = find_action_end(&after[body_start..]).ok_or_else(|| "unclosed action: missing }}".to_string())?;
        let mut body = &after[body_start..body_start + end];
        trim_next = false;
        if body.ends_with(" -") || body.ends_with("\t-") || body.ends_with("\n-") {
            body = &body[..body.len() - 1];
            trim_next = true;
        }
        let trimmed = body.trim();
        if trimmed.starts_with("/*") {
            if !trimmed.ends_with("*/") {
                return Err("unclosed comment".into());
            }
        } else {
            out.push(Piece::Action(trimmed.to_string()));
        }
        rest = &after[body_start + end + 2..];
    }
    let literal = if trim_next { rest.trim_start() } else { rest };
    if !literal.is_empty() {
        out.push(Piece::Text(literal.to_string()));
    }
    Ok(out)
}

/// Position of the `}}` closing an action, skipping quoted strings.
fn find_action_end(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    if bytes[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'`' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'`' {
                    i += 1;
                }
            }
            b'}' if bytes.get(i + 1) == Some(&b'}') => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

struct Parser<'d> {
    tokens: Vec<Piece>,
    pos: usize,
    scopes: Vec<HashSet<String>>,
    /// Where `define`s go; `None` in rule templates, which reject them.
    defines: Option<&'d mut Defines>,
    /// Nesting of `if`/`range`/... (`define` is only allowed at the top).
    depth: usize,
}

impl Parser<'_> {
    /// Parses nodes up to a closing keyword (`end`, `else ...`), returned as the second value.
    fn nodes(&mut self) -> Result<(Vec<Node>, Option<String>), String> {
        self.depth += 1;
        let out = self.nodes_here();
        self.depth -= 1;
        out
    }

    fn nodes_here(&mut self) -> Result<(Vec<Node>, Option<String>), String> {
        let mut nodes = Vec::new();
        while self.pos < self.tokens.len() {
            let piece = &self.tokens[self.pos];
            self.pos += 1;
            let action = match piece {
                Piece::Text(t) => {
                    nodes.push(Node::Text(t.clone()));
                    continue;
                }
                Piece::Action(a) => a.clone(),
            };
            let (keyword, rest) = split_keyword(&action);
            match keyword {
                "end" | "else" => return Ok((nodes, Some(action))),
                "if" => nodes.push(self.if_node(rest)?),
                "range" | "with" => {
                    self.scopes.push(HashSet::new());
                    let pipe = self.pipeline(rest)?;
                    let (body, end) = self.nodes()?;
                    self.scopes.pop();
                    let otherwise = self.else_then_end(end, keyword)?;
                    nodes.push(if keyword == "range" {
                        Node::Range { pipe, body, otherwise }
                    } else {
                        Node::With { pipe, body, otherwise }
                    });
                }
                "define" | "template" | "block" if self.defines.is_some() => nodes.extend(self.named(keyword, rest)?),
                "define" | "template" | "block" | "break" | "continue" => {
                    return Err(format!("{{{{{keyword}}}}} is not supported in rule templates"));
                }
                _ => nodes.push(Node::Action(self.pipeline(&action)?)),
            }
        }
        Ok((nodes, None))
    }

    /// `define`, `template` or `block`: the node to put in place (none for `define`).
    fn named(&mut self, keyword: &str, rest: &str) -> Result<Option<Node>, String> {
        let (name, rest) = template_name(rest).map_err(|e| format!("{{{{{keyword}}}}}: {e}"))?;
        let pipe = if rest.trim().is_empty() { None } else { Some(self.pipeline(rest)?) };
        if keyword == "template" {
            return Ok(Some(Node::Template { name, pipe }));
        }
        if keyword == "define" && (self.depth > 1 || pipe.is_some()) {
            return Err(format!("{{{{define \"{name}\"}}}} must stand alone at the top level"));
        }
        // A body sees only `$` (its own dot), as in Go.
        let outer = std::mem::replace(&mut self.scopes, vec![HashSet::from(["$".to_string()])]);
        let body = self.nodes();
        self.scopes = outer;
        let (body, end) = body?;
        if end.as_deref().map(split_keyword).map(|(k, _)| k) != Some("end") {
            return Err(format!("missing {{{{end}}}} after {{{{{keyword} \"{name}\"}}}}"));
        }
        let defines = self.defines.as_deref_mut().expect("checked by the caller");
        if keyword == "define" {
            defines.insert(name, body);
            return Ok(None);
        }
        defines.entry(name.clone()).or_insert(body);
        Ok(Some(Node::Template { name, pipe }))
    }

    fn if_node(&mut self, cond: &str) -> Result<Node, String> {
        let mut branches = Vec::new();
        let mut cond = cond.to_string();
        loop {
            self.scopes.push(HashSet::new());
            let pipe = self.pipeline(&cond)?;
            let (body, end) = self.nodes()?;
            self.scopes.pop();
            branches.push((pipe, body));
            let end = end.ok_or("missing {{end}} after {{if}}")?;
            let (keyword, rest) = split_keyword(&end);
            if keyword == "end" {
                return Ok(Node::If { branches, otherwise: Vec::new() });
            }
            let (next, rest) = split_keyword(rest);
            if next == "if" {
                cond = rest.to_string();
                continue;
            }
            let otherwise = self.else_body(end.as_str())?;
            return Ok(Node::If { branches, otherwise });
        }
    }

    fn else_then_end(&mut self, end: Option<String>, what: &str) -> Result<Vec<Node>, String> {
        let end = end.ok_or_else(|| format!("missing {{{{end}}}} after {{{{{what}}}}}"))?;
        if split_keyword(&end).0 == "end" { Ok(Vec::new()) } else { self.else_body(&end) }
    }

    /// After a plain `{{else}}`: the nodes up to `{{end}}`.
    fn else_body(&mut self, else_action: &str) -> Result<Vec<Node>, String> {
        if else_action.trim() != "else" {
            return Err(format!("unexpected {{{{{else_action}}}}}"));
        }
        self.scopes.push(HashSet::new());
        let (body, end) = self.nodes()?;
        self.scopes.pop();
        match end {
            Some(e) if split_keyword(&e).0 == "end" => Ok(body),
            _ => Err("missing {{end}} after {{else}}".into()),
        }
    }

    fn defined(&self, name: &str) -> bool {
        self.scopes.iter().any(|s| s.contains(name))
    }

    fn pipeline(&mut self, text: &str) -> Result<Pipeline, String> {
        let tokens = lex(text)?;
        let mut pos = 0;
        let pipe = self.pipeline_tokens(&tokens, &mut pos)?;
        if pos != tokens.len() {
            return Err(format!("unexpected {:?} in {{{{{text}}}}}", tokens[pos]));
        }
        Ok(pipe)
    }

    fn pipeline_tokens(&mut self, tokens: &[Tok], pos: &mut usize) -> Result<Pipeline, String> {
        // Declarations: `$x :=` or `$x, $y :=` or `$x =`.
        let mut vars = Vec::new();
        let mut assign = false;
        let mut look = *pos;
        let mut names = Vec::new();
        while let Some(Tok::Var(name, fields)) = tokens.get(look) {
            if !fields.is_empty() {
                break;
            }
            names.push(name.clone());
            look += 1;
            match tokens.get(look) {
                Some(Tok::Comma) => look += 1,
                Some(Tok::Declare) | Some(Tok::Assign) => {
                    assign = tokens[look] == Tok::Assign;
                    vars = std::mem::take(&mut names);
                    *pos = look + 1;
                    break;
                }
                _ => break,
            }
        }
        let mut commands = Vec::new();
        let mut args = Vec::new();
        while let Some(tok) = tokens.get(*pos) {
            match tok {
                Tok::RParen => break,
                Tok::Pipe => {
                    if args.is_empty() {
                        return Err("missing command before |".into());
                    }
                    commands.push(std::mem::take(&mut args));
                    *pos += 1;
                }
                Tok::LParen => {
                    *pos += 1;
                    let sub = self.pipeline_tokens(tokens, pos)?;
                    if tokens.get(*pos) != Some(&Tok::RParen) {
                        return Err("missing )".into());
                    }
                    *pos += 1;
                    let mut fields = Vec::new();
                    if let Some(Tok::Fields(f)) = tokens.get(*pos) {
                        fields = f.clone();
                        *pos += 1;
                    }
                    args.push(Arg::Sub(Box::new(sub), fields));
                }
                Tok::Var(name, fields) => {
                    if !self.defined(name) {
                        return Err(format!("undefined variable \"{name}\""));
                    }
                    args.push(Arg::Var(name.clone(), fields.clone()));
                    *pos += 1;
                }
                other => {
                    args.push(match other {
                        Tok::Dot(f) => Arg::Dot(f.clone()),
                        Tok::Str(s) => Arg::Str(s.clone()),
                        Tok::Int(i) => Arg::Int(*i),
                        Tok::Float(f) => Arg::Float(*f),
                        Tok::Ident(name) => match name.as_str() {
                            "true" => Arg::Bool(true),
                            "false" => Arg::Bool(false),
                            "nil" => Arg::Nil,
                            _ => Arg::Func(name.clone()),
                        },
                        t => return Err(format!("unexpected {t:?}")),
                    });
                    *pos += 1;
                }
            }
        }
        if args.is_empty() {
            return Err(if commands.is_empty() {
                "missing value in action".into()
            } else {
                "missing command after |".into()
            });
        }
        commands.push(args);
        if let Some(scope) = self.scopes.last_mut() {
            for v in &vars {
                if !assign {
                    scope.insert(v.clone());
                }
            }
        }
        if assign && let Some(v) = vars.iter().find(|v| !self.defined(v)) {
            return Err(format!("undefined variable \"{v}\""));
        }
        Ok(Pipeline { vars, assign, commands })
    }
}

fn split_keyword(action: &str) -> (&str, &str) {
    let action = action.trim_start();
    let end = action.find(|c: char| c.is_whitespace()).unwrap_or(action.len());
    (&action[..end], action[end..].trim_start())
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Dot(Vec<String>),
    Var(String, Vec<String>),
    Fields(Vec<String>),
    Str(String),
    Int(i64),
    Float(f64),
    Ident(String),
    Pipe,
    LParen,
    RParen,
    Comma,
    Declare,
    Assign,
}

fn lex(text: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let ident = |i: &mut usize| {
        let start = *i;
        while *i < chars.len() && (chars[*i].is_alphanumeric() || chars[*i] == '_') {
            *i += 1;
        }
        chars[start..*i].iter().collect::<String>()
    };
    let fields = |i: &mut usize| {
        let mut f = Vec::new();
        while *i < chars.len()
            && chars[*i] == '.'
            && chars.get(*i + 1).is_some_and(|c| c.is_alphanumeric() || *c == '_')
        {
            *i += 1;
            let start = *i;
            while *i < chars.len() && (chars[*i].is_alphanumeric() || chars[*i] == '_') {
                *i += 1;
            }
            f.push(chars[start..*i].iter().collect::<String>());
        }
        f
    };
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '|' => {
                out.push(Tok::Pipe);
                i += 1;
            }
            '(' => {
                out.push(Tok::LParen);
                i += 1;
            }
            ')' => {
                out.push(Tok::RParen);
                i += 1;
                if chars.get(i) == Some(&'.') {
                    out.push(Tok::Fields(fields(&mut i)));
                }
            }
            ',' => {
                out.push(Tok::Comma);
                i += 1;
            }
            ':' if chars.get(i + 1) == Some(&'=') => {
                out.push(Tok::Declare);
                i += 2;
            }
            '=' => {
                out.push(Tok::Assign);
                i += 1;
            }
            '.' => {
                let f = fields(&mut i);
                if f.is_empty() {
                    i += 1;
                }
                out.push(Tok::Dot(f));
            }
            '$' => {
                i += 1;
                let name = format!("${}", ident(&mut i));
                out.push(Tok::Var(name, fields(&mut i)));
            }
            '"' => {
                let mut s = String::new();
                i += 1;
                loop {
                    let c = *chars.get(i).ok_or("unterminated quoted string")?;
                    i += 1;
                    match c {
                        '"' => break,
                        '\\' => {
                            let e = *chars.get(i).ok_or("unterminated quoted string")?;
                            i += 1;
                            s.push(match e {
                                'n' => '\n',
                                't' => '\t',
                                'r' => '\r',
                                '\\' => '\\',
                                '"' => '"',
                                '\'' => '\'',
                                other => return Err(format!("unknown escape sequence \\{other}")),
                            });
                        }
                        c => s.push(c),
                    }
                }
                out.push(Tok::Str(s));
            }
            '`' => {
                let start = i + 1;
                let end = chars[start..].iter().position(|&c| c == '`').ok_or("unterminated raw quoted string")?;
                out.push(Tok::Str(chars[start..start + end].iter().collect()));
                i = start + end + 1;
            }
            c if c.is_ascii_digit()
                || ((c == '-' || c == '+') && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit())) =>
            {
                let start = i;
                i += 1;
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || matches!(chars[i], '.' | '_' | '+' | '-'))
                {
                    if matches!(chars[i], '+' | '-') && !matches!(chars[i - 1], 'e' | 'E') {
                        break;
                    }
                    i += 1;
                }
                let text: String = chars[start..i].iter().collect();
                let clean = text.replace('_', "");
                if let Ok(v) = clean.parse::<i64>() {
                    out.push(Tok::Int(v));
                } else if let Some(hex) = clean.strip_prefix("0x") {
                    out.push(Tok::Int(i64::from_str_radix(hex, 16).map_err(|_| format!("bad number {text}"))?));
                } else {
                    out.push(Tok::Float(clean.parse::<f64>().map_err(|_| format!("bad number {text}"))?));
                }
            }
            c if c.is_alphabetic() || c == '_' => out.push(Tok::Ident(ident(&mut i))),
            other => return Err(format!("unexpected {other:?} in action")),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_actions_with_trim_markers_and_comments() {
        let nodes = parse("a  {{- /* c */ -}}  b {{ $labels.job }}", &["$labels"]).unwrap();
        assert_eq!(nodes[0], Node::Text("a".into()));
        assert_eq!(nodes[1], Node::Text("b ".into()));
        assert_eq!(
            nodes[2],
            Node::Action(Pipeline {
                vars: vec![],
                assign: false,
                commands: vec![vec![Arg::Var("$labels".into(), vec!["job".into()])]]
            })
        );
    }

    #[test]
    fn rejects_undefined_variables_like_go() {
        let err = parse("{{ $label.instance }}", &["$labels"]).unwrap_err();
        assert!(err.contains("undefined variable \"$label\""), "{err}");
        assert!(parse("{{ $x := 1 }}{{ $x }}", &[]).is_ok());
        assert!(parse("{{ range $i, $s := . }}{{ $s }}{{ end }}{{ $s }}", &[]).is_err());
    }

    #[test]
    fn parses_control_structures() {
        let t = "{{ if gt $value 1.5 }}big{{ else if eq $value 1.0 }}one{{ else }}small{{ end }}";
        match &parse(t, &["$value"]).unwrap()[0] {
            Node::If { branches, otherwise } => {
                assert_eq!(branches.len(), 2);
                assert_eq!(otherwise, &vec![Node::Text("small".into())]);
            }
            other => panic!("{other:?}"),
        }
        assert!(parse("{{ if true }}x", &[]).unwrap_err().contains("missing {{end}}"));
        assert!(parse("{{ with query \"up\" }}{{ . | first | value }}{{ end }}", &[]).is_ok());
    }
}
