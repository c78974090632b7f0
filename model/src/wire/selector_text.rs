//! The text form of a label set, `{name="value", ...}`, as Loki's push API carries stream labels
//! and as both Prometheus and Loki print them. Values are quoted with Go's rules so output matches
//! what Grafana and the reference servers produce.

use crate::error::{Error, Result};
use crate::labels::{Labels, LabelsBuilder};

/// Parses `{a="b", c="d"}` (whitespace allowed, trailing comma allowed, `{}` empty).
pub fn parse_label_set(input: &str) -> Result<Labels> {
    let fail = |at: usize, what: &str| {
        Error::InvalidPayload(format!("label set {input:?}: {what} at byte {at} (expected {{name=\"value\", ...}})"))
    };
    let bytes = input.as_bytes();
    let mut pos = skip_ws(bytes, 0);
    if bytes.get(pos) != Some(&b'{') {
        return Err(fail(pos, "missing '{'"));
    }
    pos += 1;
    let mut builder = LabelsBuilder::default();
    loop {
        pos = skip_ws(bytes, pos);
        match bytes.get(pos) {
            Some(b'}') => {
                pos += 1;
                break;
            }
            None => return Err(fail(pos, "unterminated label set")),
            _ => {}
        }
        let start = pos;
        while pos < bytes.len() && (bytes[pos].is_ascii_alphanumeric() || bytes[pos] == b'_') {
            pos += 1;
        }
        if start == pos {
            return Err(fail(pos, "expected a label name"));
        }
        let name = &input[start..pos];
        pos = skip_ws(bytes, pos);
        if bytes.get(pos) != Some(&b'=') {
            return Err(fail(pos, "expected '='"));
        }
        pos = skip_ws(bytes, pos + 1);
        let (value, next) = unquote_at(input, pos).ok_or_else(|| fail(pos, "expected a quoted value"))?;
        builder.set(name, value);
        pos = skip_ws(bytes, next);
        match bytes.get(pos) {
            Some(b',') => pos += 1,
            Some(b'}') => {}
            _ => return Err(fail(pos, "expected ',' or '}'")),
        }
    }
    if skip_ws(bytes, pos) != bytes.len() {
        return Err(fail(pos, "trailing characters"));
    }
    Ok(builder.build())
}

/// Formats labels as `{a="b", c="d"}` with Go quoting (Loki's stream label form).
pub fn format_label_set(labels: &Labels) -> String {
    let mut out = String::from("{");
    for (i, label) in labels.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(&label.name);
        out.push('=');
        out.push_str(&go_quote(&label.value));
    }
    out.push('}');
    out
}

fn skip_ws(bytes: &[u8], mut pos: usize) -> usize {
    while pos < bytes.len() && bytes[pos].is_ascii_whitespace() {
        pos += 1;
    }
    pos
}

/// Quotes `s` like Go's `strconv.Quote`.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Reads a double-quoted, backquoted or single-quoted string starting at byte `pos`, returning the
/// unescaped value and the position after the closing quote.
pub fn unquote_at(input: &str, pos: usize) -> Option<(String, usize)> {
    let rest = input.get(pos..)?;
    let quote = rest.chars().next()?;
    if !matches!(quote, '"' | '\'' | '`') {
        return None;
    }
    let mut out = String::new();
    let mut chars = rest.char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        if c == quote {
            return Some((out, pos + i + 1));
        }
        if c == '\\' && quote != '`' {
            let (_, e) = chars.next()?;
            match e {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'r' => out.push('\r'),
                'a' => out.push('\u{7}'),
                'b' => out.push('\u{8}'),
                'f' => out.push('\u{c}'),
                'v' => out.push('\u{b}'),
                '\\' | '"' | '\'' | '`' => out.push(e),
                'x' | 'u' | 'U' => {
                    let len = match e {
                        'x' => 2,
                        'u' => 4,
                        _ => 8,
                    };
                    let mut code = 0u32;
                    for _ in 0..len {
                        let (_, h) = chars.next()?;
                        code = code * 16 + h.to_digit(16)?;
                    }
                    out.push(char::from_u32(code)?);
                }
                '0'..='7' => {
                    let mut code = e.to_digit(8)?;
                    for _ in 0..2 {
                        let (_, o) = chars.next()?;
                        code = code * 8 + o.to_digit(8)?;
                    }
                    out.push(char::from_u32(code)?);
                }
                _ => return None,
            }
        } else {
            out.push(c);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_loki_stream_labels() {
        let l = parse_label_set(r#"{job="varlogs", filename="/var/log/a \"b\".log",}"#).unwrap();
        assert_eq!(l.get("job"), Some("varlogs"));
        assert_eq!(l.get("filename"), Some("/var/log/a \"b\".log"));
        assert!(parse_label_set("{}").unwrap().is_empty());
    }

    #[test]
    fn errors_say_where() {
        let err = parse_label_set(r#"{job="x" foo="y"}"#).unwrap_err().to_string();
        assert!(err.contains("expected ',' or '}' at byte 9"), "{err}");
        assert!(parse_label_set(r#"{job=x}"#).is_err());
        assert!(parse_label_set(r#"job="x""#).is_err());
    }

    proptest! {
        #[test]
        fn format_parse_round_trip(pairs in proptest::collection::vec(("[a-z_][a-z0-9_]{0,5}", "\\PC{1,8}"), 0..5)) {
            let labels = Labels::from_pairs(pairs);
            prop_assert_eq!(parse_label_set(&format_label_set(&labels)).unwrap(), labels);
        }
    }
}
