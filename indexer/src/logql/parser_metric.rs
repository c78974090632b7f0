//! The metric half of the LogQL parser: range aggregations (`count_over_time({..} |= "x" [5m])`)
//! and vector aggregations (`sum by (job) (...)`, `topk(3, ...)`), on the same token stream and
//! with the same positioned errors as log queries.

use super::ast::{AggOp, Grouping, LabelFilter, MetricExpr, RangeFunc, Stage, Unwrap, UnwrapConv};
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
        self.expect(&Tok::LParen, "'(' and label names after by/without")?;
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
        let inner = match self.peek() {
            Some(Spanned { tok: Tok::Ident(name), .. })
                if RangeFunc::from_name(name).is_some() || AggOp::from_name(name).is_some() =>
            {
                self.metric()?
            }
            Some(Spanned { tok: Tok::Ident(name), at }) if super::parser::METRIC_FUNCTIONS.contains(&name.as_str()) => {
                return Err(error_at(self.input, *at, &format!("metric function `{name}` is not supported yet")));
            }
            _ => return Err(self.err_here("a metric expression like count_over_time({...}[5m])")),
        };
        self.expect(&Tok::RParen, &format!("')' closing {}", op.as_str()))?;
        let after = self.grouping()?;
        let grouping = match (before, after) {
            (Some(_), Some(_)) => return Err(self.expect_end_or("a single by/without clause")),
            (g, None) | (None, g) => g,
        };
        Ok(MetricExpr::Aggregate { op, param, grouping, inner: Box::new(inner) })
    }
}
