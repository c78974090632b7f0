//! Splits LogQL text into tokens that remember their byte offset, so every parse error can say
//! `line L, col C` the way Loki does.

use model::wire::selector_text::unquote_at;

/// A token kind.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Tok {
    LBrace,
    RBrace,
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    /// A comparison: `==`, `>`, `>=`, `<`, `<=`.
    Cmp(&'static str),
    /// `=`
    Eq,
    /// `!=`
    Neq,
    /// `=~`
    Re,
    /// `!~`
    Nre,
    /// `|=`
    PipeEq,
    /// `|~`
    PipeRe,
    /// `|>` or `!>` (pattern line filters)
    PatternFilter(&'static str),
    /// `|`
    Pipe,
    Ident(String),
    Str(String),
    /// Anything else (numbers, durations, operators) up to the next space.
    Other(String),
}

impl Tok {
    pub(crate) fn describe(&self) -> String {
        match self {
            Tok::LBrace => "'{'".into(),
            Tok::RBrace => "'}'".into(),
            Tok::LParen => "'('".into(),
            Tok::RParen => "')'".into(),
            Tok::LBracket => "'['".into(),
            Tok::RBracket => "']'".into(),
            Tok::Cmp(s) => format!("'{s}'"),
            Tok::Comma => "','".into(),
            Tok::Eq => "'='".into(),
            Tok::Neq => "'!='".into(),
            Tok::Re => "'=~'".into(),
            Tok::Nre => "'!~'".into(),
            Tok::PipeEq => "'|='".into(),
            Tok::PipeRe => "'|~'".into(),
            Tok::PatternFilter(s) => format!("'{s}'"),
            Tok::Pipe => "'|'".into(),
            Tok::Ident(s) => format!("identifier {s:?}"),
            Tok::Str(s) => format!("string {s:?}"),
            Tok::Other(s) => format!("{s:?}"),
        }
    }
}

/// A token with its byte offset in the query.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Spanned {
    pub tok: Tok,
    pub at: usize,
}

/// `parse error at line L, col C: what` for byte offset `at` (columns count characters, 1-based).
pub(crate) fn error_at(input: &str, at: usize, what: &str) -> String {
    let at = at.min(input.len());
    let before = input.get(..at).unwrap_or(input);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    format!("parse error at line {line}, col {col}: {what}")
}

pub(crate) fn tokenize(input: &str) -> Result<Vec<Spanned>, String> {
    let bytes = input.as_bytes();
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let c = bytes[pos];
        if c.is_ascii_whitespace() {
            pos += 1;
            continue;
        }
        let at = pos;
        let two = bytes.get(pos..pos + 2).unwrap_or(&[]);
        let (tok, len) = match (c, two) {
            (_, b"!=") => (Tok::Neq, 2),
            (_, b"!~") => (Tok::Nre, 2),
            (_, b"=~") => (Tok::Re, 2),
            (_, b"|=") => (Tok::PipeEq, 2),
            (_, b"|~") => (Tok::PipeRe, 2),
            (_, b"|>") => (Tok::PatternFilter("|>"), 2),
            (_, b"!>") => (Tok::PatternFilter("!>"), 2),
            (_, b"==") => (Tok::Cmp("=="), 2),
            (_, b">=") => (Tok::Cmp(">="), 2),
            (_, b"<=") => (Tok::Cmp("<="), 2),
            (b'>', _) => (Tok::Cmp(">"), 1),
            (b'<', _) => (Tok::Cmp("<"), 1),
            (b'{', _) => (Tok::LBrace, 1),
            (b'}', _) => (Tok::RBrace, 1),
            (b'(', _) => (Tok::LParen, 1),
            (b')', _) => (Tok::RParen, 1),
            (b'[', _) => (Tok::LBracket, 1),
            (b']', _) => (Tok::RBracket, 1),
            (b',', _) => (Tok::Comma, 1),
            // Arithmetic operators stand alone so `rate(..)*2` splits; `-` stays in numbers and
            // durations (`-1s`) and needs spaces around it as an operator.
            (b'+' | b'*' | b'/' | b'%' | b'^', _) => (Tok::Other((c as char).to_string()), 1),
            (b'=', _) => (Tok::Eq, 1),
            (b'|', _) => (Tok::Pipe, 1),
            (b'"' | b'`', _) => {
                let (value, next) =
                    unquote_at(input, pos).ok_or_else(|| error_at(input, pos, "invalid or unterminated string"))?;
                (Tok::Str(value), next - pos)
            }
            (c, _) if c.is_ascii_alphabetic() || c == b'_' => {
                let end = bytes[pos..]
                    .iter()
                    .position(|b| !(b.is_ascii_alphanumeric() || *b == b'_'))
                    .map_or(bytes.len(), |n| pos + n);
                (Tok::Ident(input[pos..end].to_string()), end - pos)
            }
            _ => {
                let end = input[pos..]
                    .char_indices()
                    .find(|(_, ch)| ch.is_whitespace() || "{}()[],|\"`=!<>~+*/%^".contains(*ch))
                    .map_or(input.len(), |(n, _)| pos + n)
                    .max(pos + input[pos..].chars().next().map_or(1, char::len_utf8));
                (Tok::Other(input[pos..end].to_string()), end - pos)
            }
        };
        out.push(Spanned { tok, at });
        pos += len;
    }
    Ok(out)
}
