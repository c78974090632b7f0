//! Engine tests over a tiny in-memory store.

use model::{Labels, Sample};
use promql_parser::label::Matcher;

use super::*;

struct Mem(Vec<(Labels, Vec<Sample>)>);

impl Queryable for Mem {
    fn select(&self, matchers: &[Matcher]) -> Vec<(Labels, Vec<Sample>)> {
        self.0
            .iter()
            .filter(|(l, _)| matchers.iter().all(|m| m.is_match(l.get(&m.name).unwrap_or(""))))
            .cloned()
            .collect()
    }
}

fn series(pairs: &[(&str, &str)], step_ms: i64, values: &[f64]) -> (Labels, Vec<Sample>) {
    let labels = Labels::from_pairs(pairs.iter().copied());
    (labels, values.iter().enumerate().map(|(i, v)| Sample::new(i as i64 * step_ms, *v)).collect())
}

fn vector(store: &Mem, q: &str, t: i64) -> Vec<(String, f64)> {
    match instant_query(store, &EngineOptions::default(), q, t).unwrap() {
        QueryResult::Vector(v) => {
            let mut out: Vec<(String, f64)> = v.into_iter().map(|(l, _, v)| (l.to_string(), v)).collect();
            out.sort_by(|a, b| a.0.cmp(&b.0));
            out
        }
        other => panic!("expected vector, got {other:?}"),
    }
}

fn http_requests() -> Mem {
    let counter: Vec<f64> = (0..=10).map(|i| f64::from(i) * 10.0).collect();
    let double: Vec<f64> = (0..=10).map(|i| f64::from(i) * 20.0).collect();
    Mem(vec![
        series(&[("__name__", "http_requests"), ("job", "api"), ("instance", "0")], 60_000, &counter),
        series(&[("__name__", "http_requests"), ("job", "api"), ("instance", "1")], 60_000, &double),
        series(&[("__name__", "http_requests"), ("job", "db"), ("instance", "0")], 60_000, &counter),
        series(&[("__name__", "limits"), ("job", "api")], 60_000, &[100.0; 11]),
    ])
}

#[test]
fn rate_extrapolates_like_prometheus() {
    let store = http_requests();
    // Samples every minute going up by 10: rate over 5m at 10m is exactly 10/60 per second.
    let got = vector(&store, r#"rate(http_requests{job="db"}[5m])"#, 600_000);
    assert_eq!(got.len(), 1);
    assert!((got[0].1 - 10.0 / 60.0).abs() < 1e-9, "{got:?}");
    // The window (30s, 150s] sees samples at 60s and 120s only: extrapolated by half an interval
    // at the end (30s) and to the start (30s), never below the counter's zero point.
    let got = vector(&store, r#"increase(http_requests{job="db"}[2m])"#, 150_000);
    assert!((got[0].1 - 20.0).abs() < 1e-9, "{got:?}");
    // A counter reset adds the value before the reset.
    let reset = Mem(vec![series(&[("__name__", "c")], 60_000, &[5.0, 10.0, 2.0, 4.0])]);
    let got = vector(&reset, "increase(c[4m])", 180_000);
    // Raw increase 4 - 5 + 10 = 9 over 180s; the first sample is 60s from the window start (under
    // the 66s threshold) and the zero point (100s back) is further, so extrapolate to 240s.
    assert!((got[0].1 - 9.0 * 240.0 / 180.0).abs() < 1e-9, "{got:?}");
}

#[test]
fn aggregation_by_and_without() {
    let store = http_requests();
    let by = vector(&store, "sum by (job) (http_requests)", 600_000);
    assert_eq!(by, [(r#"{job="api"}"#.to_string(), 300.0), (r#"{job="db"}"#.to_string(), 100.0)]);
    let without = vector(&store, "max without (instance) (http_requests)", 600_000);
    assert_eq!(without, [(r#"{job="api"}"#.to_string(), 200.0), (r#"{job="db"}"#.to_string(), 100.0)]);
    let count = vector(&store, "count(http_requests)", 600_000);
    assert_eq!(count, [("{}".to_string(), 3.0)]);
    let top = vector(&store, "topk(1, http_requests)", 600_000);
    assert_eq!(top.len(), 1);
    assert_eq!(top[0].1, 200.0);
}

#[test]
fn vector_matching_on_ignoring_and_group_left() {
    let store = http_requests();
    let ratio = vector(&store, "http_requests / on(job) group_left limits", 600_000);
    assert_eq!(ratio.len(), 2);
    assert_eq!(ratio[0], (r#"{instance="0", job="api"}"#.to_string(), 1.0));
    assert_eq!(ratio[1], (r#"{instance="1", job="api"}"#.to_string(), 2.0));
    let err = instant_query(&store, &EngineOptions::default(), "http_requests / on(job) limits", 600_000).unwrap_err();
    assert!(err.to_string().contains("many-to-one"), "{err}");
    let cmp = vector(&store, "http_requests > 150", 600_000);
    assert_eq!(cmp, [(r#"http_requests{instance="1", job="api"}"#.to_string(), 200.0)]);
    let unless = vector(&store, r#"http_requests unless on(job) limits"#, 600_000);
    assert_eq!(unless.len(), 1);
}

#[test]
fn parse_errors_say_where() {
    let err = parse("sum(rate(x[5m])) by (job) +").unwrap_err();
    assert!(err.to_string().starts_with("parse error at char 27"), "{err}");
    let err = parse("foo bar").unwrap_err();
    assert!(err.to_string().starts_with("parse error at char 5"), "{err}");
    assert_eq!(err.kind(), crate::ErrorKind::BadData);
}

#[test]
fn stale_markers_end_a_series_and_lookback_applies() {
    let store = Mem(vec![series(&[("__name__", "x")], 60_000, &[1.0, model::stale_nan()])]);
    assert_eq!(vector(&store, "x", 30_000).len(), 1);
    assert!(vector(&store, "x", 60_000).is_empty());
    let gone = Mem(vec![series(&[("__name__", "y")], 60_000, &[1.0])]);
    assert_eq!(vector(&gone, "y", 299_999).len(), 1);
    assert!(vector(&gone, "y", 300_000).is_empty());
}

#[test]
fn limits_are_enforced() {
    let store = http_requests();
    let opts = EngineOptions { max_samples: 2, ..EngineOptions::default() };
    let err = instant_query(&store, &opts, "http_requests", 600_000).unwrap_err();
    assert_eq!(err.kind(), crate::ErrorKind::Execution);
    let opts = EngineOptions { timeout: std::time::Duration::ZERO, ..EngineOptions::default() };
    let err = range_query(&store, &opts, "http_requests", 0, 600_000, 60_000).unwrap_err();
    assert_eq!(err.kind(), crate::ErrorKind::Timeout);
}
