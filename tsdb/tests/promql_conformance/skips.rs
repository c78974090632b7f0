//! What the conformance runner skips, and why: functions, modifiers and files that are
//! experimental upstream, and queries that read native-histogram series.

use std::time::{Duration, SystemTime};

use model::Labels;
use promql_parser::label::{MatchOp, Matcher};
use promql_parser::parser::{AtModifier, Expr, Offset, VectorSelector};

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
            // `@ start()` and `@ end()` are the stable `@` modifier, not the functions.
            let after_at = query[..start].trim_end().ends_with('@');
            if !prev_quote && !after_at && EXPERIMENTAL_FUNCTIONS.contains(&word) && next.starts_with('(') {
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

/// A series upstream holds as a native histogram which this runner does not build (`load_with_nhcb`).
pub struct HistogramSeries {
    pub labels: Labels,
    /// When it has a histogram sample.
    pub timestamps: Vec<i64>,
}

/// The lookback delta the scripts assume.
const LOOKBACK_MS: i64 = 5 * 60 * 1000;

fn matches_selector(vs: &VectorSelector, labels: &Labels) -> bool {
    let mut groups: Vec<Vec<Matcher>> = if vs.matchers.or_matchers.is_empty() {
        vec![vs.matchers.matchers.clone()]
    } else {
        vs.matchers.or_matchers.clone()
    };
    if let Some(name) = &vs.name {
        groups.iter_mut().for_each(|g| g.push(Matcher::new(MatchOp::Equal, "__name__", name)));
    }
    groups.iter().any(|g| g.iter().all(|m| m.is_match(labels.get(&m.name).unwrap_or(""))))
}

fn ms(d: &Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The instants a selector or subquery reads at, for evaluation times in `[from, to]`.
fn reference(at: &Option<AtModifier>, offset: &Option<Offset>, from: i64, to: i64) -> (i64, i64) {
    let (from, to) = match at {
        Some(AtModifier::At(time)) => {
            let t = match time.duration_since(SystemTime::UNIX_EPOCH) {
                Ok(d) => ms(&d),
                Err(e) => -ms(&e.duration()),
            };
            (t, t)
        }
        // start() and end() lie inside the evaluation interval.
        _ => (from, to),
    };
    let shift = match offset {
        Some(Offset::Pos(d)) => ms(d),
        Some(Offset::Neg(d)) => -ms(d),
        None => 0,
    };
    (from.saturating_sub(shift), to.saturating_sub(shift))
}

/// Every selector with the time window `[lo, hi]` it may read, evaluated at times in `[from, to]`.
fn collect_reads<'e>(expr: &'e Expr, from: i64, to: i64, out: &mut Vec<(&'e VectorSelector, i64, i64)>) {
    match expr {
        Expr::Aggregate(a) => {
            collect_reads(&a.expr, from, to, out);
            if let Some(p) = &a.param {
                collect_reads(p, from, to, out);
            }
        }
        Expr::Unary(u) => collect_reads(&u.expr, from, to, out),
        Expr::Binary(b) => {
            collect_reads(&b.lhs, from, to, out);
            collect_reads(&b.rhs, from, to, out);
        }
        Expr::Paren(p) => collect_reads(&p.expr, from, to, out),
        Expr::Subquery(sq) => {
            let (lo, hi) = reference(&sq.at, &sq.offset, from, to);
            collect_reads(&sq.expr, lo.saturating_sub(ms(&sq.range)), hi, out);
        }
        Expr::VectorSelector(vs) => {
            let (lo, hi) = reference(&vs.at, &vs.offset, from, to);
            out.push((vs, lo.saturating_sub(LOOKBACK_MS), hi));
        }
        Expr::MatrixSelector(m) => {
            let (lo, hi) = reference(&m.vs.at, &m.vs.offset, from, to);
            out.push((&m.vs, lo.saturating_sub(ms(&m.range)), hi));
        }
        Expr::Call(c) => c.args.args.iter().for_each(|a| collect_reads(a, from, to, out)),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

/// Whether evaluating the query at times in `[from, to]` may read a native-histogram sample
/// (conservatively: a vector selector is taken to read its whole lookback window). A series
/// whose histogram samples all lie outside what the query reads is seen exactly as upstream
/// sees it.
pub fn reads_histogram_samples(expr: &Expr, histograms: &[HistogramSeries], from: i64, to: i64) -> bool {
    if histograms.is_empty() {
        return false;
    }
    let mut reads = Vec::new();
    collect_reads(expr, from, to, &mut reads);
    reads.iter().any(|(vs, lo, hi)| {
        histograms
            .iter()
            .any(|h| matches_selector(vs, &h.labels) && h.timestamps.iter().any(|t| (*lo..=*hi).contains(t)))
    })
}
