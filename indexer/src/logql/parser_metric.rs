//! The metric half of the LogQL parser: range aggregations (`count_over_time({..} |= "x" [5m])`)
//! and vector aggregations (`sum by (job) (...)`, `topk(3, ...)`), on the same token stream and
//! with the same positioned errors as log queries.

use super::ast::{AggOp, Grouping, MetricExpr, RangeFunc};
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
        self.expect(&Tok::LParen, &format!("'(' after {}", func.as_str()))?;
        let query = self.log_query()?;
        self.expect(&Tok::LBracket, "'[' and a range like [5m] after the log query")?;
        let (range_text, at) = match self.next() {
            Some(Spanned { tok: Tok::Other(text) | Tok::Ident(text), at }) => (text, at),
            _ => return Err(self.expect_end_or("a range duration like 5m")),
        };
        let range = model::time::parse_duration(&range_text)
            .map_err(|e| error_at(self.input, at, &format!("invalid range {range_text:?}: {e}")))?;
        let range_ns = i64::try_from(range.as_nanos()).unwrap_or(i64::MAX);
        if range_ns <= 0 {
            return Err(error_at(self.input, at, "the range must be positive"));
        }
        self.expect(&Tok::RBracket, "']' closing the range")?;
        if let Some(Spanned { tok: Tok::Ident(word), at }) = self.peek().cloned()
            && word == "offset"
        {
            return Err(error_at(self.input, at, "`offset` is not supported yet"));
        }
        self.expect(&Tok::RParen, "')' closing the range aggregation")?;
        Ok(MetricExpr::Range { func, query, range_ns, range_text })
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
