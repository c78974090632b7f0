//! What the conformance runner skips, and why: functions, modifiers and files that are
//! experimental upstream, and queries that read native-histogram series.

use model::Labels;
use promql_parser::label::{MatchOp, Matcher};
use promql_parser::parser::{Expr, VectorSelector};

/// Functions marked `Experimental: true` in Prometheus's `promql/parser/functions.go`, plus the
/// experimental aggregations `limitk`/`limit_ratio` (rejected by its parser unless
/// `promql-experimental-functions` is on). Cases using them are skipped, not counted.
pub const EXPERIMENTAL_FUNCTIONS: &[&str] = &[
    "double_exponential_smoothing",
    "end",
    "first_over_time",
    "histogram_quantiles",
    "info",
    "integral",
    "mad_over_time",
    "range",
    "sort_by_label",
    "sort_by_label_desc",
    "start",
    "step",
    "ts_of_first_over_time",
    "ts_of_last_over_time",
    "ts_of_max_over_time",
    "ts_of_min_over_time",
    "limitk",
    "limit_ratio",
    // Newer than that functions.go snapshot; promql-parser 0.11 marks them experimental too.
    "min_of",
    "max_of",
    "start_timestamp",
];

/// Experimental syntax behind feature flags upstream: extended range selectors
/// (`promql-extended-range-selectors`) and binop fill modifiers.
pub const EXPERIMENTAL_KEYWORDS: &[&str] = &["anchored", "smoothed", "fill", "fill_left", "fill_right"];

/// Files that test an experimental feature flag as a whole.
pub const EXPERIMENTAL_FILES: &[(&str, &str)] = &[
    ("type_and_unit.test", "experimental feature type-and-unit-labels"),
    ("start_timestamps.test", "experimental start timestamps (created timestamps in storage)"),
];

/// The reason a query is experimental upstream, if it is.
pub fn experimental_reason(query: &str) -> Option<String> {
    let bytes = query.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_alphabetic() || bytes[i] == b'_' {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            let word = &query[start..i];
            let prev_quote = start > 0 && matches!(bytes[start - 1], b'"' | b'\'');
            let next = query[i..].trim_start();
            if !prev_quote && EXPERIMENTAL_FUNCTIONS.contains(&word) && next.starts_with('(') {
                return Some(format!("experimental function {word}()"));
            }
            if !prev_quote && EXPERIMENTAL_KEYWORDS.contains(&word) {
                return Some(format!("experimental modifier {word}"));
            }
        } else {
            i += 1;
        }
    }
    None
}

pub fn collect_selectors<'e>(expr: &'e Expr, out: &mut Vec<&'e VectorSelector>) {
    match expr {
        Expr::Aggregate(a) => {
            collect_selectors(&a.expr, out);
            if let Some(p) = &a.param {
                collect_selectors(p, out);
            }
        }
        Expr::Unary(u) => collect_selectors(&u.expr, out),
        Expr::Binary(b) => {
            collect_selectors(&b.lhs, out);
            collect_selectors(&b.rhs, out);
        }
        Expr::Paren(p) => collect_selectors(&p.expr, out),
        Expr::Subquery(s) => collect_selectors(&s.expr, out),
        Expr::VectorSelector(vs) => out.push(vs),
        Expr::MatrixSelector(ms) => out.push(&ms.vs),
        Expr::Call(c) => c.args.args.iter().for_each(|a| collect_selectors(a, out)),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

/// Whether the query reads a series that was loaded with native-histogram samples.
pub fn reads_histogram_series(expr: &Expr, histogram_series: &[Labels]) -> bool {
    if histogram_series.is_empty() {
        return false;
    }
    let mut selectors = Vec::new();
    collect_selectors(expr, &mut selectors);
    selectors.iter().any(|vs| {
        let mut groups: Vec<Vec<Matcher>> = if vs.matchers.or_matchers.is_empty() {
            vec![vs.matchers.matchers.clone()]
        } else {
            vs.matchers.or_matchers.clone()
        };
        if let Some(name) = &vs.name {
            groups.iter_mut().for_each(|g| g.push(Matcher::new(MatchOp::Equal, "__name__", name)));
        }
        histogram_series
            .iter()
            .any(|labels| groups.iter().any(|g| g.iter().all(|m| m.is_match(labels.get(&m.name).unwrap_or("")))))
    })
}
