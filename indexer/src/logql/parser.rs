//! Recursive-descent parser for LogQL log queries: `selector line-filter* stage*`. Constructs of
//! full LogQL the indexer does not execute (some stages, binary expressions) are recognised and
//! rejected by name with their position, so users learn what is missing instead of seeing a
//! generic syntax error. Metric queries are parsed in `parser_metric.rs` on the same [`Parser`].

use super::ast::{
    CmpOp, Expr, LabelFilter, LabelFmt, LabelMatcher, LineFilter, LineFilterOp, LogQuery, MatchOp, Stage, ValueKind,
};
use super::lexer::{Spanned, Tok, error_at, tokenize};
use super::values::{parse_bytes, parse_go_duration};

/// Names that start a metric query in LogQL.
pub(super) const METRIC_FUNCTIONS: &[&str] = &[
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

/// Stages of full LogQL the indexer does not run yet.
const UNSUPPORTED_STAGES: &[&str] = &["unpack", "decolorize", "distinct"];

pub(super) struct Parser<'a> {
    pub(super) input: &'a str,
    pub(super) tokens: Vec<Spanned>,
    pub(super) pos: usize,
}

/// Parses any LogQL expression the indexer executes: a log query or a metric query.
pub(crate) fn parse_expr(input: &str) -> Result<Expr, String> {
    let mut p = Parser::new(input)?;
    let expr = match p.peek().cloned() {
        Some(Spanned { tok: Tok::Ident(name), at }) => {
            if METRIC_FUNCTIONS.contains(&name.as_str()) {
                Expr::Metric(p.binary_expr(0)?)
            } else {
                return Err(error_at(input, at, &format!("unexpected identifier {name:?}, expected '{{'")));
            }
        }
        Some(Spanned { tok: Tok::LParen | Tok::Other(_), .. }) => Expr::Metric(p.binary_expr(0)?),
        _ => Expr::Log(p.log_query()?),
    };
    p.expect_end()?;
    Ok(expr)
}

/// Parses a log query (selector plus pipeline); a metric query is an error naming what to use.
pub(crate) fn parse_log_query(input: &str) -> Result<LogQuery, String> {
    match parse_expr(input)? {
        Expr::Log(q) => Ok(q),
        Expr::Metric(_) => Err(error_at(input, 0, "expected a log query, got a metric query")),
    }
}

/// Parses a bare stream selector such as a `match[]` of the series API.
pub(crate) fn parse_selector(input: &str) -> Result<Vec<LabelMatcher>, String> {
    let query = parse_log_query(input)?;
    if !query.filters.is_empty() || !query.stages.is_empty() {
        return Err(error_at(input, input.len(), "expected a stream selector without line filters"));
    }
    Ok(query.matchers)
}

fn line_filter_op(tok: &Tok) -> Option<LineFilterOp> {
    Some(match tok {
        Tok::PipeEq => LineFilterOp::Contains,
        Tok::Neq => LineFilterOp::NotContains,
        Tok::PipeRe => LineFilterOp::Matches,
        Tok::Nre => LineFilterOp::NotMatches,
        _ => return None,
    })
}

impl<'a> Parser<'a> {
    pub(super) fn new(input: &'a str) -> Result<Self, String> {
        let tokens = tokenize(input)?;
        if tokens.is_empty() {
            return Err(error_at(input, 0, "empty query, expected a stream selector like {job=\"x\"}"));
        }
        Ok(Parser { input, tokens, pos: 0 })
    }

    pub(super) fn peek(&self) -> Option<&Spanned> {
        self.tokens.get(self.pos)
    }

    pub(super) fn peek_tok(&self) -> Option<&Tok> {
        self.tokens.get(self.pos).map(|t| &t.tok)
    }

    pub(super) fn next(&mut self) -> Option<Spanned> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    /// An error at the current token (or the end of the query).
    pub(super) fn err_here(&self, what: &str) -> String {
        match self.tokens.get(self.pos) {
            Some(t) => error_at(self.input, t.at, &format!("unexpected {}, expected {what}", t.tok.describe())),
            None => error_at(self.input, self.input.len(), &format!("unexpected end of query, expected {what}")),
        }
    }

    /// An error at the token just consumed.
    pub(super) fn expect_end_or(&self, what: &str) -> String {
        match self.tokens.get(self.pos.saturating_sub(1)) {
            Some(t) => error_at(self.input, t.at, &format!("unexpected {}, expected {what}", t.tok.describe())),
            None => error_at(self.input, self.input.len(), &format!("unexpected end of query, expected {what}")),
        }
    }

    /// Whether the next tokens are `| unwrap` (which ends the log query of a range aggregation).
    pub(super) fn unwrap_next(&self) -> bool {
        matches!(self.peek_tok(), Some(Tok::Pipe))
            && matches!(self.tokens.get(self.pos + 1).map(|t| &t.tok), Some(Tok::Ident(w)) if w == "unwrap")
    }

    fn expect_end(&self) -> Result<(), String> {
        if self.unwrap_next() {
            let at = self.tokens[self.pos + 1].at;
            return Err(error_at(
                self.input,
                at,
                "`| unwrap` belongs in a range aggregation over values, like sum_over_time({...} | unwrap x [5m])",
            ));
        }
        match self.peek() {
            None => Ok(()),
            Some(Spanned { tok: Tok::Ident(word), at })
                if ["or", "and", "unless"].contains(&word.as_str()) || word == "on" || word == "ignoring" =>
            {
                Err(error_at(self.input, *at, &format!("binary operator `{word}` is not supported yet")))
            }
            Some(Spanned { tok: Tok::Other(op), at }) if ["+", "-", "*", "/", "%", "^"].contains(&op.as_str()) => {
                Err(error_at(self.input, *at, &format!("binary operator `{op}` is not supported yet")))
            }
            Some(Spanned { tok: Tok::Cmp(op), at }) => {
                Err(error_at(self.input, *at, &format!("binary operator `{op}` is not supported yet")))
            }
            Some(_) => Err(self.err_here("end of query")),
        }
    }

    /// `selector filter* stage*`, stopping before a token that cannot continue a pipeline
    /// (`[` or `)` in a metric query).
    pub(super) fn log_query(&mut self) -> Result<LogQuery, String> {
        let matchers = self.selector()?;
        let mut filters = Vec::new();
        let mut stages = Vec::new();
        while let Some(Spanned { tok, at }) = self.peek().cloned() {
            if let Some(op) = line_filter_op(&tok) {
                self.pos += 1;
                let filter = self.line_filter(op)?;
                if stages.is_empty() {
                    filters.push(filter);
                } else {
                    stages.push(Stage::LineFilter(filter));
                }
                continue;
            }
            match tok {
                Tok::Pipe => {
                    if self.unwrap_next() {
                        break;
                    }
                    self.pos += 1;
                    stages.push(self.stage()?);
                }
                Tok::PatternFilter(op) => {
                    return Err(error_at(
                        self.input,
                        at,
                        &format!("pattern line filters (`{op}`) are not supported yet"),
                    ));
                }
                Tok::LBracket | Tok::RParen => break,
                other => {
                    return Err(error_at(
                        self.input,
                        at,
                        &format!("unexpected {}, expected a line filter (|=, !=, |~, !~) or '|'", other.describe()),
                    ));
                }
            }
        }
        Ok(LogQuery { matchers, filters, stages })
    }

    fn line_filter(&mut self, op: LineFilterOp) -> Result<LineFilter, String> {
        let pattern = match self.next() {
            Some(Spanned { tok: Tok::Str(s), .. }) => s,
            Some(Spanned { tok: Tok::Ident(f), at }) if f == "ip" => {
                return Err(error_at(self.input, at, "ip() line filters are not supported yet"));
            }
            Some(Spanned { tok, at }) => {
                return Err(error_at(self.input, at, &format!("unexpected {}, expected a string", tok.describe())));
            }
            None => return Err(error_at(self.input, self.input.len(), "unexpected end of query, expected a string")),
        };
        if let Some(Spanned { tok: Tok::Ident(word), at }) = self.peek().cloned()
            && word == "or"
        {
            return Err(error_at(self.input, at, "`or` in line filters is not supported yet"));
        }
        Ok(LineFilter { op, pattern })
    }

    fn string_arg(&mut self, stage: &str) -> Result<String, String> {
        match self.next() {
            Some(Spanned { tok: Tok::Str(s), .. }) => Ok(s),
            _ => Err(self.expect_end_or(&format!("a quoted string after `{stage}`"))),
        }
    }

    /// One stage after `|`.
    pub(super) fn stage(&mut self) -> Result<Stage, String> {
        let Some(Spanned { tok, at }) = self.peek().cloned() else {
            return Err(self.err_here("a pipeline stage after '|'"));
        };
        let name = match tok {
            Tok::Ident(name) => name,
            Tok::LParen => return Ok(Stage::LabelFilter(self.label_filter_or()?)),
            _ => return Err(self.err_here("a pipeline stage after '|'")),
        };
        let stage = match name.as_str() {
            "json" | "logfmt" => {
                self.pos += 1;
                if let Some(Spanned { tok: Tok::Ident(_) | Tok::Other(_), at }) = self.peek() {
                    return Err(error_at(
                        self.input,
                        *at,
                        &format!("`| {name}` with parameters or flags is not supported yet"),
                    ));
                }
                if name == "json" { Stage::Json } else { Stage::Logfmt }
            }
            "regexp" => {
                self.pos += 1;
                Stage::Regexp(self.string_arg("regexp")?)
            }
            "pattern" => {
                self.pos += 1;
                Stage::Pattern(self.string_arg("pattern")?)
            }
            "line_format" => {
                self.pos += 1;
                Stage::LineFormat(self.string_arg("line_format")?)
            }
            "label_format" => {
                self.pos += 1;
                Stage::LabelFormat(self.label_format_items()?)
            }
            "drop" | "keep" => {
                self.pos += 1;
                let names = self.name_list(&name)?;
                if name == "drop" { Stage::Drop(names) } else { Stage::Keep(names) }
            }
            n if UNSUPPORTED_STAGES.contains(&n) => {
                return Err(error_at(self.input, at, &format!("pipeline stage `| {n}` is not supported yet")));
            }
            _ => Stage::LabelFilter(self.label_filter_or()?),
        };
        Ok(stage)
    }

    /// `dst=src` or `dst="template"`, comma separated.
    fn label_format_items(&mut self) -> Result<Vec<LabelFmt>, String> {
        let mut items = Vec::new();
        loop {
            let Some(Spanned { tok: Tok::Ident(dst), .. }) = self.next() else {
                return Err(self.expect_end_or("a label name after `label_format`"));
            };
            if !matches!(self.next(), Some(Spanned { tok: Tok::Eq, .. })) {
                return Err(self.expect_end_or("'=' after the label name"));
            }
            items.push(match self.next() {
                Some(Spanned { tok: Tok::Ident(src), .. }) => LabelFmt::Rename { dst, src },
                Some(Spanned { tok: Tok::Str(template), .. }) => LabelFmt::Template { dst, template },
                _ => return Err(self.expect_end_or("a label name or a quoted template")),
            });
            if self.peek_tok() != Some(&Tok::Comma) {
                return Ok(items);
            }
            self.pos += 1;
        }
    }

    fn name_list(&mut self, stage: &str) -> Result<Vec<String>, String> {
        let mut names = Vec::new();
        loop {
            match self.next() {
                Some(Spanned { tok: Tok::Ident(n), .. }) => names.push(n),
                _ => return Err(self.expect_end_or(&format!("a label name after `{stage}`"))),
            }
            match self.peek_tok() {
                Some(Tok::Comma) => self.pos += 1,
                Some(Tok::Eq | Tok::Neq | Tok::Re | Tok::Nre) => {
                    let at = self.peek().map_or(0, |t| t.at);
                    return Err(error_at(
                        self.input,
                        at,
                        &format!("matchers in `| {stage}` are not supported yet, only label names"),
                    ));
                }
                _ => return Ok(names),
            }
        }
    }

    fn label_filter_or(&mut self) -> Result<LabelFilter, String> {
        let mut left = self.label_filter_and()?;
        while matches!(self.peek_tok(), Some(Tok::Ident(w)) if w == "or") {
            self.pos += 1;
            let right = self.label_filter_and()?;
            left = LabelFilter::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn label_filter_and(&mut self) -> Result<LabelFilter, String> {
        let mut left = self.label_filter_primary()?;
        loop {
            match self.peek_tok() {
                Some(Tok::Ident(w)) if w == "and" => self.pos += 1,
                Some(Tok::Comma) => self.pos += 1,
                Some(Tok::Ident(w)) if w != "or" => {}
                Some(Tok::LParen) => {}
                _ => return Ok(left),
            }
            let right = self.label_filter_primary()?;
            left = LabelFilter::And(Box::new(left), Box::new(right));
        }
    }

    fn label_filter_primary(&mut self) -> Result<LabelFilter, String> {
        let name = match self.next() {
            Some(Spanned { tok: Tok::LParen, .. }) => {
                let inner = self.label_filter_or()?;
                return match self.next() {
                    Some(Spanned { tok: Tok::RParen, .. }) => Ok(inner),
                    _ => Err(self.expect_end_or("')' closing the label filter")),
                };
            }
            Some(Spanned { tok: Tok::Ident(name), .. }) => name,
            _ => return Err(self.expect_end_or("a label filter like `level=\"error\"` or `status >= 500`")),
        };
        let op_tok = self.next().map(|t| t.tok);
        let value = self.next();
        match (op_tok, value) {
            (Some(op @ (Tok::Eq | Tok::Neq | Tok::Re | Tok::Nre)), Some(Spanned { tok: Tok::Str(value), .. })) => {
                let op = match op {
                    Tok::Eq => MatchOp::Equal,
                    Tok::Neq => MatchOp::NotEqual,
                    Tok::Re => MatchOp::Regex,
                    _ => MatchOp::NotRegex,
                };
                Ok(LabelFilter::Match(LabelMatcher { name, op, value }))
            }
            (Some(op @ (Tok::Eq | Tok::Neq | Tok::Cmp(_))), Some(Spanned { tok: Tok::Other(text), at })) => {
                let op = match op {
                    Tok::Eq | Tok::Cmp("==") => CmpOp::Eq,
                    Tok::Neq => CmpOp::Ne,
                    Tok::Cmp(">") => CmpOp::Gt,
                    Tok::Cmp(">=") => CmpOp::Ge,
                    Tok::Cmp("<") => CmpOp::Lt,
                    _ => CmpOp::Le,
                };
                let (kind, value) = if let Ok(v) = text.parse::<f64>() {
                    (ValueKind::Number, v)
                } else if let Some(v) = parse_go_duration(&text) {
                    (ValueKind::Duration, v)
                } else if let Some(v) = parse_bytes(&text) {
                    (ValueKind::Bytes, v)
                } else {
                    return Err(error_at(
                        self.input,
                        at,
                        &format!("invalid value {text:?} in label filter, expected a number, duration or byte size"),
                    ));
                };
                Ok(LabelFilter::Compare { name, op, kind, value, text })
            }
            (Some(Tok::Cmp(_)), Some(_)) => {
                Err(self.expect_end_or("a number, duration or byte size after a comparison"))
            }
            (Some(Tok::Eq | Tok::Neq | Tok::Re | Tok::Nre), Some(_)) => {
                Err(self.expect_end_or("a quoted string or a number after the operator"))
            }
            (Some(_), _) => {
                self.pos -= 1;
                Err(self.expect_end_or("a label filter operator (=, !=, =~, !~, ==, >, >=, <, <=)"))
            }
            (None, _) => Err(self.expect_end_or("a label filter operator")),
        }
    }

    pub(super) fn selector(&mut self) -> Result<Vec<LabelMatcher>, String> {
        match self.next() {
            Some(Spanned { tok: Tok::LBrace, .. }) => {}
            Some(Spanned { tok: Tok::LBracket, at }) => {
                return Err(error_at(self.input, at, "range vectors (metric queries) need a range function"));
            }
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
