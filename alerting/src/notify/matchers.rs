//! Label matchers in Alertmanager's syntax (`a="b"`, `c=~"d.*"`, `e!="f"`, `g!~"h"`), shared by
//! routes, inhibit rules and silences so the three agree on what "matches" means. A missing label
//! matches as the empty string and regexes are fully anchored, as in Alertmanager.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

pub use model::MatchOp;

/// One label matcher.
#[derive(Clone, Debug)]
pub struct Matcher {
    /// Label name.
    pub name: String,
    /// Comparison.
    pub op: MatchOp,
    /// Value or regex source.
    pub value: String,
    re: Option<regex::Regex>,
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.op == other.op && self.value == other.value
    }
}

impl Matcher {
    /// Builds a matcher, compiling (anchored) regexes.
    pub fn new(name: &str, op: MatchOp, value: &str) -> Result<Self, String> {
        if name.is_empty() {
            return Err("matcher has an empty label name".into());
        }
        let re = match op {
            MatchOp::Regex | MatchOp::NotRegex => Some(
                regex::Regex::new(&format!("^(?:{value})$")).map_err(|e| format!("invalid regex {value:?}: {e}"))?,
            ),
            _ => None,
        };
        Ok(Self { name: name.to_string(), op, value: value.to_string(), re })
    }

    /// Whether `value` (empty when the label is missing) satisfies this matcher.
    pub fn matches_value(&self, value: &str) -> bool {
        match self.op {
            MatchOp::Equal => value == self.value,
            MatchOp::NotEqual => value != self.value,
            MatchOp::Regex => self.re.as_ref().is_some_and(|r| r.is_match(value)),
            MatchOp::NotRegex => !self.re.as_ref().is_some_and(|r| r.is_match(value)),
        }
    }

    /// Whether a label set satisfies this matcher.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.matches_value(labels.get(&self.name).map(String::as_str).unwrap_or(""))
    }

    /// Whether the matcher is a regex one (Alertmanager's `isRegex`).
    pub fn is_regex(&self) -> bool {
        matches!(self.op, MatchOp::Regex | MatchOp::NotRegex)
    }

    /// Whether the matcher is a positive one (Alertmanager's `isEqual`).
    pub fn is_equal(&self) -> bool {
        matches!(self.op, MatchOp::Equal | MatchOp::Regex)
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}{:?}", self.name, self.op.as_str(), self.value)
    }
}

/// Whether every matcher matches `labels` (an empty list matches everything).
pub fn matches_all(matchers: &[Matcher], labels: &BTreeMap<String, String>) -> bool {
    matchers.iter().all(|m| m.matches(labels))
}

/// Parses one line of matchers: `a="b"`, `a="b", c=~"d.*"` or `{a="b",c!="d"}`. Values may be
/// unquoted when they hold no commas, braces or spaces, as Alertmanager accepts.
pub fn parse_matchers(input: &str) -> Result<Vec<Matcher>, String> {
    let mut s = input.trim();
    if let Some(inner) = s.strip_prefix('{') {
        s = inner.strip_suffix('}').ok_or_else(|| format!("matchers {input:?}: missing closing brace"))?;
    }
    let mut out = Vec::new();
    let mut rest = s.trim_start();
    while !rest.is_empty() {
        let (m, tail) = parse_one(rest).map_err(|e| format!("matchers {input:?}: {e}"))?;
        out.push(m);
        rest = tail.trim_start();
        if let Some(t) = rest.strip_prefix(',') {
            rest = t.trim_start();
        } else if !rest.is_empty() {
            return Err(format!("matchers {input:?}: expected ',' before {rest:?}"));
        }
    }
    Ok(out)
}

fn parse_one(s: &str) -> Result<(Matcher, &str), String> {
    let name_end = s.find(['=', '!', '~']).ok_or_else(|| format!("no operator in {s:?}"))?;
    let name = s[..name_end].trim();
    let name = name.strip_prefix('"').and_then(|n| n.strip_suffix('"')).unwrap_or(name);
    let rest = &s[name_end..];
    let (op, rest) = if let Some(r) = rest.strip_prefix("=~") {
        (MatchOp::Regex, r)
    } else if let Some(r) = rest.strip_prefix("!~") {
        (MatchOp::NotRegex, r)
    } else if let Some(r) = rest.strip_prefix("!=") {
        (MatchOp::NotEqual, r)
    } else if let Some(r) = rest.strip_prefix('=') {
        (MatchOp::Equal, r)
    } else {
        return Err(format!("bad operator in {s:?}"));
    };
    let rest = rest.trim_start();
    let (value, rest) = if let Some(q) = rest.strip_prefix('"') {
        let mut value = String::new();
        let mut chars = q.char_indices();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, 't')) => value.push('\t'),
                    Some((_, c)) => value.push(c),
                    None => return Err("unterminated escape".into()),
                },
                '"' => {
                    end = Some(i + 1);
                    break;
                }
                c => value.push(c),
            }
        }
        let end = end.ok_or_else(|| format!("unterminated quoted value in {s:?}"))?;
        (value, &q[end..])
    } else {
        let end = rest.find([',', '}']).unwrap_or(rest.len());
        (rest[..end].trim().to_string(), &rest[end..])
    };
    Ok((Matcher::new(name, op, &value)?, rest))
}

/// Alertmanager API v2's JSON shape of a matcher (silences, alert filters).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ApiMatcher {
    /// Label name.
    pub name: String,
    /// Value or regex.
    pub value: String,
    /// Regex match.
    pub is_regex: bool,
    /// Positive match (defaults to true, as Alertmanager).
    #[serde(default = "yes")]
    pub is_equal: bool,
}

fn yes() -> bool {
    true
}

impl From<&Matcher> for ApiMatcher {
    fn from(m: &Matcher) -> Self {
        Self { name: m.name.clone(), value: m.value.clone(), is_regex: m.is_regex(), is_equal: m.is_equal() }
    }
}

impl TryFrom<&ApiMatcher> for Matcher {
    type Error = String;
    fn try_from(m: &ApiMatcher) -> Result<Self, String> {
        let op = match (m.is_regex, m.is_equal) {
            (false, true) => MatchOp::Equal,
            (false, false) => MatchOp::NotEqual,
            (true, true) => MatchOp::Regex,
            (true, false) => MatchOp::NotRegex,
        };
        Matcher::new(&m.name, op, &m.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn parses_the_forms_alertmanager_accepts() {
        let ms = parse_matchers(r#"{severity="critical", job=~"api|web" ,env!=prod, x!~"a\"b"}"#).unwrap();
        let shown: Vec<String> = ms.iter().map(|m| m.to_string()).collect();
        assert_eq!(shown, vec![r#"severity="critical""#, r#"job=~"api|web""#, r#"env!="prod""#, r#"x!~"a\"b""#]);
        assert!(parse_matchers("a").is_err());
        assert!(parse_matchers(r#"a="b"#).is_err());
        assert!(parse_matchers(r#"a=~"(""#).is_err());
        assert!(parse_matchers("").unwrap().is_empty());
    }

    #[test]
    fn regexes_are_anchored_and_missing_labels_are_empty() {
        let m = &parse_matchers(r#"job=~"api""#).unwrap()[0];
        assert!(m.matches(&labels(&[("job", "api")])));
        assert!(!m.matches(&labels(&[("job", "api-2")])));
        let absent = &parse_matchers(r#"team="""#).unwrap()[0];
        assert!(absent.matches(&labels(&[])));
        let ne = &parse_matchers(r#"team!~"a.*""#).unwrap()[0];
        assert!(ne.matches(&labels(&[])));
        assert!(!ne.matches(&labels(&[("team", "ab")])));
    }

    proptest::proptest! {
        #[test]
        fn display_then_parse_round_trips(
            name in "[a-zA-Z_][a-zA-Z0-9_]{0,8}",
            value in "[ -~é告\n\t]{0,12}",
            op in 0..4usize,
        ) {
            let op = [MatchOp::Equal, MatchOp::NotEqual, MatchOp::Regex, MatchOp::NotRegex][op];
            // Regex values must compile; escape them so any text is a valid regex.
            let value = if matches!(op, MatchOp::Regex | MatchOp::NotRegex) { regex::escape(&value) } else { value };
            let m = Matcher::new(&name, op, &value).unwrap();
            let two = format!("{m}, {m}");
            let parsed = parse_matchers(&two).unwrap();
            proptest::prop_assert_eq!(parsed, vec![m.clone(), m]);
        }

        #[test]
        fn parsing_never_panics(s in "\\PC{0,40}") {
            let _ = parse_matchers(&s);
        }
    }

    #[test]
    fn api_shape_round_trips() {
        for src in [r#"a="b""#, r#"a!="b""#, r#"a=~"b.*""#, r#"a!~"b""#] {
            let m = parse_matchers(src).unwrap().remove(0);
            let api = ApiMatcher::from(&m);
            assert_eq!(Matcher::try_from(&api).unwrap(), m);
        }
    }
}
