//! The PromQL engine: parses with `promql-parser`, then evaluates the AST directly against a
//! [`Queryable`] store. Range queries evaluate the expression once per step (simple and exact;
//! a vectorised evaluator can come later). Split by seam: `eval` walks the tree and reads
//! selectors, `binary` does operators and vector matching, `aggregations` the aggregation
//! operators, `functions` the function library, `result` the API's JSON form.

mod aggregations;
mod annotations;
mod binary;
mod eval;
mod functions;
mod histograms;
mod native;
mod result;
mod value;

use std::time::Duration;

use model::{HistogramSample, Labels, Sample};
use promql_parser::label::Matcher;
use promql_parser::parser::{self, Expr};

pub use annotations::Annotations;
pub use result::{PointValue, QueryResult, format_value};

use crate::error::{Error, Result};

/// Where the engine reads series from.
pub trait Queryable {
    /// Series matching every matcher, with their samples in `[mint, maxt]` (a hint: the store may
    /// return more, never less) that the store is willing to show.
    fn select(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Result<Vec<(Labels, Vec<Sample>)>>;

    /// Series matching every matcher with their native-histogram samples in `[mint, maxt]` (a
    /// series may have both kinds; the engine merges them by label set).
    fn select_histograms(
        &self,
        _matchers: &[Matcher],
        _mint: i64,
        _maxt: i64,
    ) -> Result<Vec<(Labels, Vec<HistogramSample>)>> {
        Ok(Vec::new())
    }
}

/// Engine settings taken from the store's config.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    pub lookback_delta_ms: i64,
    pub timeout: Duration,
    pub max_samples: usize,
    /// Step of subqueries written without one (`x[5m:]`): Prometheus's default evaluation interval.
    pub default_subquery_step_ms: i64,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            lookback_delta_ms: 5 * 60 * 1000,
            timeout: Duration::from_secs(120),
            max_samples: 50_000_000,
            default_subquery_step_ms: 60_000,
        }
    }
}

/// Parses a query; a failure says where: `parse error at char N: ...` with N the 1-based
/// character position (the UI underlines from there).
pub fn parse(query: &str) -> Result<Expr> {
    parser::parse(query).map_err(|msg| Error::Parse(locate_parse_error(query, &msg)))
}

/// `promql-parser` reports grammar errors without a position, so find it: the error sits after
/// the longest prefix that parses on its own (or at the first character if none does).
fn locate_parse_error(query: &str, msg: &str) -> String {
    let boundaries: Vec<usize> = query.char_indices().map(|(i, _)| i).skip(1).collect();
    let mut good_end = 0;
    // Queries are short; bound the work for pathological input.
    if query.len() <= 4096 {
        for &end in boundaries.iter().rev() {
            let prefix = &query[..end];
            if !prefix.ends_with(char::is_whitespace) && parser::parse(prefix).is_ok() {
                good_end = end;
                break;
            }
        }
    }
    let rest = &query[good_end..];
    let skipped = rest.len() - rest.trim_start().len();
    let byte_pos = (good_end + skipped).min(query.len());
    let char_pos = query[..byte_pos].chars().count() + 1;
    format!("parse error at char {char_pos}: {msg}")
}

/// Parses a series selector (`up{job="x"}`, a Prometheus `match[]` parameter) into matchers.
pub fn parse_series_selector(selector: &str) -> Result<Vec<Matcher>> {
    match parse(selector)? {
        Expr::VectorSelector(vs) => Ok(eval::selector_matchers(&vs).into_iter().next().unwrap_or_default()),
        _ => Err(Error::BadData(format!("{selector:?} is not a series selector"))),
    }
}

/// Evaluates `query` at `time_ms`.
pub fn instant_query(store: &dyn Queryable, opts: &EngineOptions, query: &str, time_ms: i64) -> Result<QueryResult> {
    instant_query_annotated(store, opts, query, time_ms).map(|(result, _)| result)
}

/// Evaluates `query` at `time_ms`, with the warn and info annotations Prometheus would give.
pub fn instant_query_annotated(
    store: &dyn Queryable,
    opts: &EngineOptions,
    query: &str,
    time_ms: i64,
) -> Result<(QueryResult, Annotations)> {
    let expr = parse(query)?;
    let ev = eval::Evaluator::new(store, opts, query, &expr, (time_ms, time_ms, 0));
    let result = ev.instant(&expr, time_ms)?;
    Ok((result, ev.notes.take()))
}

/// Evaluates `query` at `start_ms, start_ms + step_ms, ... <= end_ms`.
pub fn range_query(
    store: &dyn Queryable,
    opts: &EngineOptions,
    query: &str,
    start_ms: i64,
    end_ms: i64,
    step_ms: i64,
) -> Result<QueryResult> {
    range_query_annotated(store, opts, query, start_ms, end_ms, step_ms).map(|(result, _)| result)
}

/// Evaluates `query` over a range, with the warn and info annotations Prometheus would give.
pub fn range_query_annotated(
    store: &dyn Queryable,
    opts: &EngineOptions,
    query: &str,
    start_ms: i64,
    end_ms: i64,
    step_ms: i64,
) -> Result<(QueryResult, Annotations)> {
    if step_ms <= 0 {
        return Err(Error::BadData("zero or negative query resolution step widths are not accepted".into()));
    }
    if end_ms < start_ms {
        return Err(Error::BadData("end timestamp must not be before start time".into()));
    }
    if (end_ms - start_ms) / step_ms > 11_000 {
        return Err(Error::BadData(
            "exceeded maximum resolution of 11,000 points per timeseries; try decreasing the query resolution".into(),
        ));
    }
    let expr = parse(query)?;
    let ev = eval::Evaluator::new(store, opts, query, &expr, (start_ms, end_ms, step_ms));
    let result = ev.range(&expr)?;
    Ok((result, ev.notes.take()))
}

#[cfg(test)]
mod tests;
