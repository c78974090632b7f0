//! Engine tests over a tiny in-memory store.

use model::{Labels, Sample};
use promql_parser::label::Matcher;

use super::*;

struct Mem(Vec<(Labels, Vec<Sample>)>);

impl Queryable for Mem {
    fn select(&self, matchers: &[Matcher], _mint: i64, _maxt: i64) -> Result<Vec<(Labels, Vec<Sample>)>> {
        Ok(self
            .0
            .iter()
            .filter(|(l, _)| matchers.iter().all(|m| m.is_match(l.get(&m.name).unwrap_or(""))))
            .cloned()
            .collect())
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
    assert_eq!(err.to_string(), "query processing would load too many samples into memory in query execution");
    // The limit is on the peak held at once: a range query's result points count, so a query
    // that loads few samples per step still fails once its result outgrows the limit.
    let opts = EngineOptions { max_samples: 9, ..EngineOptions::default() };
    assert!(range_query(&store, &opts, "http_requests", 0, 120_000, 60_000).is_ok());
    let err = range_query(&store, &opts, "http_requests", 0, 180_000, 60_000).unwrap_err();
    assert_eq!(err.kind(), crate::ErrorKind::Execution);
    let opts = EngineOptions { timeout: std::time::Duration::ZERO, ..EngineOptions::default() };
    let err = range_query(&store, &opts, "http_requests", 0, 600_000, 60_000).unwrap_err();
    assert_eq!(err.kind(), crate::ErrorKind::Timeout);
}

#[test]
fn name_removal_is_delayed_to_the_result() {
    let store = Mem(vec![
        series(&[("__name__", "a_total"), ("env", "1")], 60_000, &[0.0, 60.0, 120.0]),
        series(&[("__name__", "b_total"), ("env", "1")], 60_000, &[0.0, 60.0, 120.0]),
    ]);
    // Two rates with equal labels but for their names can still be summed by `env`.
    assert_eq!(vector(&store, r#"sum by (env) (rate({env="1"}[2m]))"#, 120_000), vec![(r#"{env="1"}"#.into(), 2.0)]);
    // label_replace still sees the name; writing `__name__` keeps it.
    let got = vector(&store, r#"label_replace(rate({env="1"}[2m]), "__name__", "r_$1", "__name__", "(.+)")"#, 120_000);
    let names: Vec<&str> = got.iter().map(|(l, _)| l.as_str()).collect();
    assert_eq!(names, vec![r#"r_a_total{env="1"}"#, r#"r_b_total{env="1"}"#]);
    // Without that, both lose their names at the end and collide.
    assert!(instant_query(&store, &EngineOptions::default(), r#"rate({env="1"}[2m])"#, 120_000).is_err());
    // A range query merges series that only differ by a removed name at different steps.
    let store =
        Mem(vec![series(&[("__name__", "a")], 600_000, &[1.0]), series(&[("__name__", "b")], 600_000, &[3.0, 4.0])]);
    match range_query(&store, &EngineOptions::default(), "-a or -b", 0, 1_200_000, 600_000).unwrap() {
        QueryResult::Matrix(m) => {
            assert_eq!(m.len(), 1, "{m:?}");
            let values: Vec<f64> = m[0].1.iter().map(|s| s.value).collect();
            assert_eq!(values, vec![-1.0, -4.0]);
        }
        other => panic!("expected matrix, got {other:?}"),
    }
}

#[test]
fn avg_survives_overflow_and_quantile_ranks_nan_lowest() {
    let big = 9.988_465_674_311_58e307;
    assert_eq!(aggregations::aggregate_average(&[-big, -big, big, big]), 0.0);
    assert!(aggregations::aggregate_average(&[f64::INFINITY, f64::INFINITY, f64::NEG_INFINITY]).is_nan());
    assert_eq!(aggregations::aggregate_average(&[big, big]), big);
    assert_eq!(aggregations::aggregate_average(&[1.0, 2.0, 3.0]), 2.0);
    let mut values = [0.0, 1.0, f64::NAN];
    assert!((aggregations::quantile(0.8, &mut values) - 0.6).abs() < 1e-12);
    let mut values = [0.0, 1.0, f64::NAN];
    assert!(aggregations::quantile(0.2, &mut values).is_nan());
}

#[test]
fn annotations_say_what_and_where() {
    let store = http_requests();
    let opts = EngineOptions::default();
    let (_, notes) = instant_query_annotated(&store, &opts, "rate(http_requests[5m])", 600_000).unwrap();
    assert_eq!(
        notes.infos,
        vec![
            r#"PromQL info: metric might not be a counter, name does not end in _total/_sum/_count/_bucket: "http_requests" (1:6)"#
        ]
    );
    assert!(notes.warnings.is_empty());
    let (_, notes) = instant_query_annotated(&store, &opts, "quantile(1.5, limits)", 600_000).unwrap();
    assert_eq!(notes.warnings, vec!["PromQL warning: quantile value should be between 0 and 1, got 1.5 (1:10)"]);
    let (_, notes) = range_query_annotated(&store, &opts, "sort(limits)", 0, 120_000, 60_000).unwrap();
    assert_eq!(
        notes.warnings,
        vec!["PromQL warning: sort is ineffective for range queries since results are always ordered by labels (1:1)"]
    );
    // An instant query sorts for real: no warning.
    let (_, notes) = instant_query_annotated(&store, &opts, "sort(limits)", 0).unwrap();
    assert!(notes.warnings.is_empty());
}
