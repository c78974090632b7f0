//! Recursive-descent parser for `selector line-filter*`. Constructs of full LogQL that the
//! indexer does not execute yet (parsers, formatting stages, metric queries) are recognised and
//! rejected by name, so users learn what is missing instead of seeing a generic syntax error.

use super::ast::{LabelMatcher, LineFilter, LineFilterOp, LogQuery, MatchOp};
use super::lexer::{Spanned, Tok, error_at, tokenize};

/// Names that start a metric query in LogQL.
const METRIC_FUNCTIONS: &[&str] = &[
    "rate",
    "count_over_time",
    "bytes_rate",
    "bytes_over_time",
    "absent_over_time",
    "sum_over_time",
    "avg_over_time",
    "max_over_time",
    "min_over_time",
    "first_over_time",
    "last_over_time",
    "stdvar_over_time",
    "stddev_over_time",
    "quantile_over_time",
    "rate_counter",
    "sum",
    "avg",
    "min",
    "max",
    "count",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "sort",
    "sort_desc",
    "label_replace",
    "vector",
];

struct Parser<'a> {
    input: &'a str,
    tokens: Vec<Spanned>,
    pos: usize,
}

/// Parses a log query (selector plus line filters).
pub(crate) fn parse_log_query(input: &str) -> Result<LogQuery, String> {
    let tokens = tokenize(input)?;
    let mut p = Parser { input, tokens, pos: 0 };
    if p.tokens.is_empty() {
        return Err(error_at(input, 0, "empty query, expected a stream selector like {job=\"x\"}"));
    }
    if let Some(Spanned { tok: Tok::Ident(name), at }) = p.peek().cloned() {
        if METRIC_FUNCTIONS.contains(&name.as_str()) {
            return Err(error_at(input, at, &format!("metric queries (`{name}(...)`) are not supported yet")));
        }
        return Err(error_at(input, at, &format!("unexpected identifier {name:?}, expected '{{'")));
    }
    if let Some(Spanned { tok: Tok::LParen, at }) = p.peek().cloned() {
        return Err(error_at(input, at, "parenthesised and binary expressions are not supported yet"));
    }
    let matchers = p.selector()?;
    let mut filters = Vec::new();
    while let Some(Spanned { tok, at }) = p.next() {
        let op = match tok {
            Tok::PipeEq => LineFilterOp::Contains,
            Tok::Neq => LineFilterOp::NotContains,
            Tok::PipeRe => LineFilterOp::Matches,
            Tok::Nre => LineFilterOp::NotMatches,
            Tok::PatternFilter(op) => {
                return Err(error_at(input, at, &format!("pattern line filters (`{op}`) are not supported yet")));
            }
            Tok::Pipe => {
                let what = match p.peek() {
                    Some(Spanned { tok: Tok::Ident(stage), .. }) => format!("pipeline stage `| {stage}`"),
                    _ => "pipeline stages after '|'".to_string(),
                };
                return Err(error_at(input, at, &format!("{what} is not supported yet (only line filters are)")));
            }
            Tok::LBracket => return Err(error_at(input, at, "range vectors (metric queries) are not supported yet")),
            other => {
                return Err(error_at(
                    input,
                    at,
                    &format!("unexpected {}, expected a line filter (|=, !=, |~, !~)", other.describe()),
                ));
            }
        };
        let pattern = match p.next() {
            Some(Spanned { tok: Tok::Str(s), .. }) => s,
            Some(Spanned { tok: Tok::Ident(f), at }) if f == "ip" => {
                return Err(error_at(input, at, "ip() line filters are not supported yet"));
            }
            Some(Spanned { tok, at }) => {
                return Err(error_at(input, at, &format!("unexpected {}, expected a string", tok.describe())));
            }
            None => return Err(error_at(input, input.len(), "unexpected end of query, expected a string")),
        };
        if let Some(Spanned { tok: Tok::Ident(word), at }) = p.peek().cloned()
            && word == "or"
        {
            return Err(error_at(input, at, "`or` in line filters is not supported yet"));
        }
        filters.push(LineFilter { op, pattern });
    }
    Ok(LogQuery { matchers, filters })
}

/// Parses a bare stream selector such as a `match[]` of the series API.
pub(crate) fn parse_selector(input: &str) -> Result<Vec<LabelMatcher>, String> {
    let query = parse_log_query(input)?;
    if !query.filters.is_empty() {
        return Err(error_at(input, input.len(), "expected a stream selector without line filters"));
    }
    Ok(query.matchers)
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Spanned> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Spanned> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn expect_end_or(&self, what: &str) -> String {
        match self.tokens.get(self.pos.saturating_sub(1)) {
            Some(t) => error_at(self.input, t.at, &format!("unexpected {}, expected {what}", t.tok.describe())),
            None => error_at(self.input, self.input.len(), &format!("unexpected end of query, expected {what}")),
        }
    }

    fn selector(&mut self) -> Result<Vec<LabelMatcher>, String> {
        match self.next() {
            Some(Spanned { tok: Tok::LBrace, .. }) => {}
            _ => return Err(self.expect_end_or("'{'")),
        }
        let mut matchers = Vec::new();
        loop {
            let name = match self.next() {
                Some(Spanned { tok: Tok::RBrace, .. }) => break,
                Some(Spanned { tok: Tok::Ident(name), .. }) => name,
                _ => return Err(self.expect_end_or("a label name or '}'")),
            };
            let op = match self.next().map(|t| t.tok) {
                Some(Tok::Eq) => MatchOp::Equal,
                Some(Tok::Neq) => MatchOp::NotEqual,
                Some(Tok::Re) => MatchOp::Regex,
                Some(Tok::Nre) => MatchOp::NotRegex,
                _ => return Err(self.expect_end_or("a match operator (=, !=, =~, !~)")),
            };
            let value = match self.next() {
                Some(Spanned { tok: Tok::Str(v), .. }) => v,
                _ => return Err(self.expect_end_or("a quoted string")),
            };
            matchers.push(LabelMatcher { name, op, value });
            match self.next().map(|t| t.tok) {
                Some(Tok::Comma) => {}
                Some(Tok::RBrace) => break,
                _ => return Err(self.expect_end_or("',' or '}'")),
            }
        }
        Ok(matchers)
    }
}
