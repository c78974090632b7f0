//! The metric half of the LogQL parser: range aggregations (`count_over_time({..} |= "x" [5m])`)
//! and vector aggregations (`sum by (job) (...)`, `topk(3, ...)`), on the same token stream and
//! with the same positioned errors as log queries.

use super::ast::{
    AggOp, BinOp, GroupSide, Grouping, LabelFilter, MetricExpr, RangeFunc, Stage, Unwrap, UnwrapConv, VectorMatching,
};
use super::lexer::{Spanned, Tok, error_at};
use super::parser::Parser;

impl Parser<'_> {
    /// A metric expression starting at a function or aggregation name.
    pub(super) fn metric(&mut self) -> Result<MetricExpr, String> {
        let Some(Spanned { tok: Tok::Ident(name), at }) = self.next() else {
            return Err(self.expect_end_or("a metric function like count_over_time or sum"));
        };
        if let Some(func) = RangeFunc::from_name(&name) {
            return self.range_aggregation(func);
        }
        if let Some(op) = AggOp::from_name(&name) {
            return self.vector_aggregation(op);
        }
        Err(error_at(self.input, at, &format!("metric function `{name}` is not supported yet")))
    }

    /// A metric expression with binary operators, by precedence climbing: operands are range and
    /// vector aggregations, numbers and parenthesised expressions.
    pub(super) fn binary_expr(&mut self, min_prec: u8) -> Result<MetricExpr, String> {
        let mut lhs = self.operand()?;
        while let Some((op, at)) = self.peek_binop() {
            let prec = op.precedence();
            if prec < min_prec {
                break;
            }
            self.pos += 1;
            let return_bool = matches!(self.peek_tok(), Some(Tok::Ident(w)) if w == "bool");
            if return_bool {
                if !op.is_comparison() {
                    return Err(error_at(self.input, at, "bool modifier can only be used on comparison operators"));
                }
                self.pos += 1;
            }
            let matching = self.vector_matching()?;
            // `^` is right-associative, the others left.
            let rhs = self.binary_expr(if op == BinOp::Pow { prec } else { prec + 1 })?;
            let scalar = |e: &MetricExpr| matches!(e, MetricExpr::Number(_));
            if op.is_set() && (scalar(&lhs) || scalar(&rhs)) {
                return Err(error_at(
                    self.input,
                    at,
                    &format!("set operator `{}` not allowed with a number", op.as_str()),
                ));
            }
            if matching.is_some() && (scalar(&lhs) || scalar(&rhs)) {
                return Err(error_at(self.input, at, "vector matching only allowed between vectors"));
            }
            if op.is_comparison() && !return_bool && scalar(&lhs) && scalar(&rhs) {
                return Err(error_at(self.input, at, "comparisons between numbers must use the bool modifier"));
            }
            if op.is_set() && matching.as_ref().is_some_and(|m| m.group.is_some()) {
                return Err(error_at(self.input, at, "no grouping allowed for set operations"));
            }
            lhs = MetricExpr::Binary { op, lhs: Box::new(lhs), rhs: Box::new(rhs), return_bool, matching };
        }
        Ok(lhs)
    }

    fn peek_binop(&self) -> Option<(BinOp, usize)> {
        let Spanned { tok, at } = self.peek()?;
        let op = match tok {
            Tok::Ident(w) => BinOp::from_str(w).filter(|o| o.is_set()),
            Tok::Cmp(s) => BinOp::from_str(s),
            Tok::Neq => Some(BinOp::Ne),
            Tok::Other(s) => BinOp::from_str(s).filter(|o| !o.is_set()),
            _ => None,
        }?;
        Some((op, *at))
    }

    fn operand(&mut self) -> Result<MetricExpr, String> {
        match self.peek().cloned() {
            Some(Spanned { tok: Tok::LParen, .. }) => {
                self.pos += 1;
                let inner = self.binary_expr(0)?;
                self.expect(&Tok::RParen, "')' closing the parenthesised expression")?;
                Ok(inner)
            }
            Some(Spanned { tok: Tok::Other(text), at }) => match text.parse::<f64>() {
                Ok(v) => {
                    self.pos += 1;
                    Ok(MetricExpr::Number(v))
                }
                Err(_) => Err(error_at(self.input, at, &format!("unexpected {text:?}, expected a number"))),
            },
            Some(Spanned { tok: Tok::Ident(name), at }) => {
                if RangeFunc::from_name(&name).is_some() || AggOp::from_name(&name).is_some() {
                    self.metric()
                } else if super::parser::METRIC_FUNCTIONS.contains(&name.as_str()) {
                    Err(error_at(self.input, at, &format!("metric function `{name}` is not supported yet")))
                } else {
                    Err(self.err_here("a metric expression like count_over_time({...}[5m])"))
                }
            }
            _ => Err(self.err_here("a metric expression like count_over_time({...}[5m])")),
        }
    }

    /// `on(a, b)` / `ignoring(a)`, then `group_left(c)` / `group_right`.
    fn vector_matching(&mut self) -> Result<Option<VectorMatching>, String> {
        let on = match self.peek_tok() {
            Some(Tok::Ident(w)) if w == "on" => true,
            Some(Tok::Ident(w)) if w == "ignoring" => false,
            _ => return Ok(None),
        };
        self.pos += 1;
        let labels = self.label_list()?;
        let side = match self.peek_tok() {
            Some(Tok::Ident(w)) if w == "group_left" => Some(GroupSide::Left),
            Some(Tok::Ident(w)) if w == "group_right" => Some(GroupSide::Right),
            _ => None,
        };
        let group = match side {
            Some(side) => {
                self.pos += 1;
                let include = if self.peek_tok() == Some(&Tok::LParen) { self.label_list()? } else { Vec::new() };
                Some((side, include))
            }
            None => None,
        };
        Ok(Some(VectorMatching { on, labels, group }))
    }

    /// `(a, b)`, possibly empty.
    fn label_list(&mut self) -> Result<Vec<String>, String> {
        self.expect(&Tok::LParen, "'(' and label names")?;
        let mut labels = Vec::new();
        loop {
            match self.next() {
                Some(Spanned { tok: Tok::RParen, .. }) if labels.is_empty() => break,
                Some(Spanned { tok: Tok::Ident(n), .. }) => labels.push(n),
                _ => return Err(self.expect_end_or("a label name")),
            }
            match self.next() {
                Some(Spanned { tok: Tok::Comma, .. }) => {}
                Some(Spanned { tok: Tok::RParen, .. }) => break,
                _ => return Err(self.expect_end_or("',' or ')'")),
            }
        }
        Ok(labels)
    }

    fn expect(&mut self, want: &Tok, what: &str) -> Result<(), String> {
        match self.next() {
            Some(Spanned { tok, .. }) if &tok == want => Ok(()),
            _ => Err(self.expect_end_or(what)),
        }
    }

    fn range_aggregation(&mut self, func: RangeFunc) -> Result<MetricExpr, String> {
        let open_at = self.peek().map_or(self.input.len(), |t| t.at);
        self.expect(&Tok::LParen, &format!("'(' after {}", func.as_str()))?;
        let param = if func == RangeFunc::QuantileOverTime {
            let (text, at) = match self.next() {
                Some(Spanned { tok: Tok::Other(text), at }) => (text, at),
                _ => return Err(self.expect_end_or("the quantile (a number) as first argument of quantile_over_time")),
            };
            let q = text
                .parse::<f64>()
                .map_err(|_| error_at(self.input, at, &format!("invalid quantile {text:?}, expected a number")))?;
            self.expect(&Tok::Comma, "',' after the quantile")?;
            Some(q)
        } else {
            None
        };
        let query = self.log_query()?;
        let unwrap = if self.unwrap_next() {
            let at = self.tokens[self.pos + 1].at;
            self.pos += 2;
            if func.on_lines() {
                return Err(error_at(self.input, at, &format!("invalid aggregation {} with unwrap", func.as_str())));
            }
            Some(self.unwrap_clause()?)
        } else {
            None
        };
        if unwrap.is_none() && func.needs_unwrap() {
            return Err(error_at(
                self.input,
                open_at,
                &format!("invalid aggregation {} without unwrap", func.as_str()),
            ));
        }
        self.expect(&Tok::LBracket, "'[' and a range like [5m] after the log query")?;
        let (range_text, range_ns) = self.duration("range")?;
        if range_ns <= 0 {
            return Err(self.err_here("a positive range"));
        }
        self.expect(&Tok::RBracket, "']' closing the range")?;
        let (offset_text, offset_ns) = match self.peek_tok() {
            Some(Tok::Ident(word)) if word == "offset" => {
                self.pos += 1;
                let (text, ns) = self.duration("offset")?;
                (Some(text), ns)
            }
            _ => (None, 0),
        };
        self.expect(&Tok::RParen, "')' closing the range aggregation")?;
        Ok(MetricExpr::Range { func, param, query, unwrap, range_ns, range_text, offset_ns, offset_text })
    }

    /// A duration token (`5m`, `1h30m`), as written and in nanoseconds.
    fn duration(&mut self, what: &str) -> Result<(String, i64), String> {
        let (text, at) = match self.next() {
            Some(Spanned { tok: Tok::Other(text) | Tok::Ident(text), at }) => (text, at),
            _ => return Err(self.expect_end_or(&format!("a {what} duration like 5m"))),
        };
        let d = model::time::parse_duration(&text)
            .map_err(|e| error_at(self.input, at, &format!("invalid {what} {text:?}: {e}")))?;
        Ok((text, i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)))
    }

    /// After `| unwrap`: `label`, `duration(label)`, `duration_seconds(label)` or `bytes(label)`,
    /// then any `| <label filter>` stages.
    fn unwrap_clause(&mut self) -> Result<Unwrap, String> {
        let Some(Spanned { tok: Tok::Ident(first), .. }) = self.next() else {
            return Err(self.expect_end_or("a label name after `| unwrap`"));
        };
        let (label, conv, conv_text) = if self.peek_tok() == Some(&Tok::LParen) {
            let conv = match first.as_str() {
                "duration" | "duration_seconds" => UnwrapConv::Duration,
                "bytes" => UnwrapConv::Bytes,
                _ => {
                    let at = self.tokens[self.pos - 1].at;
                    return Err(error_at(
                        self.input,
                        at,
                        &format!("unknown conversion `{first}`, expected duration, duration_seconds or bytes"),
                    ));
                }
            };
            self.pos += 1;
            let Some(Spanned { tok: Tok::Ident(label), .. }) = self.next() else {
                return Err(self.expect_end_or("a label name"));
            };
            self.expect(&Tok::RParen, "')' after the label name")?;
            (label, conv, Some(first))
        } else {
            (first, UnwrapConv::Number, None)
        };
        let mut filters: Vec<LabelFilter> = Vec::new();
        while self.peek_tok() == Some(&Tok::Pipe) {
            self.pos += 1;
            let at = self.peek().map_or(self.input.len(), |t| t.at);
            match self.stage()? {
                Stage::LabelFilter(f) => filters.push(f),
                _ => return Err(error_at(self.input, at, "only label filters may follow `| unwrap`")),
            }
        }
        Ok(Unwrap { label, conv, conv_text, filters })
    }

    fn grouping(&mut self) -> Result<Option<Grouping>, String> {
        let without = match self.peek_tok() {
            Some(Tok::Ident(w)) if w == "by" => false,
            Some(Tok::Ident(w)) if w == "without" => true,
            _ => return Ok(None),
        };
        self.pos += 1;
        if self.peek_tok() != Some(&Tok::LParen) {
            return Err(self.err_here("'(' and label names after by/without"));
        }
        let labels = self.label_list()?;
        Ok(Some(Grouping { without, labels }))
    }

    fn vector_aggregation(&mut self, op: AggOp) -> Result<MetricExpr, String> {
        let before = self.grouping()?;
        self.expect(&Tok::LParen, &format!("'(' after {}", op.as_str()))?;
        let param = if matches!(op, AggOp::Topk | AggOp::Bottomk) {
            let (text, at) = match self.next() {
                Some(Spanned { tok: Tok::Other(text), at }) => (text, at),
                _ => {
                    return Err(
                        self.expect_end_or(&format!("the number of series as first argument of {}", op.as_str()))
                    );
                }
            };
            let k = text.parse::<usize>().ok().filter(|k| *k > 0).ok_or_else(|| {
                error_at(self.input, at, &format!("invalid parameter {text:?}, expected a positive integer"))
            })?;
            self.expect(&Tok::Comma, "',' after the parameter")?;
            Some(k)
        } else {
            None
        };
        let inner = self.binary_expr(0)?;
        self.expect(&Tok::RParen, &format!("')' closing {}", op.as_str()))?;
        let after = self.grouping()?;
        let grouping = match (before, after) {
            (Some(_), Some(_)) => return Err(self.expect_end_or("a single by/without clause")),
            (g, None) | (None, g) => g,
        };
        Ok(MetricExpr::Aggregate { op, param, grouping, inner: Box::new(inner) })
    }
}
