//! `| unwrap` and the range functions over values, end to end: each function equals a plain
//! computation over the generated lines (property test), conversions and `__error__` handling
//! follow Loki, `offset` moves the window, `rate_counter` extrapolates as Prometheus's `rate`.

use std::collections::BTreeMap;

mod common;

use indexer::{Indexer, MetricQueryRequest};
use model::{Labels, LogRecord, TenantId};
use proptest::prelude::*;
use serde_json::json;

const BASE: i64 = 1_700_000_000_000_000_000;
const SEC: i64 = 1_000_000_000;

fn open(records: Vec<LogRecord>) -> (tempfile::TempDir, Indexer) {
    let dir = tempfile::tempdir().unwrap();
    let ix = Indexer::open(dir.path(), common::test_config()).unwrap();
    ix.append(&tenant(), records).unwrap();
    ix.commit().unwrap();
    (dir, ix)
}

fn tenant() -> TenantId {
    TenantId::new("acme").unwrap()
}

fn record(ts_s: i64, job: &str, line: &str) -> LogRecord {
    LogRecord { timestamp_ns: BASE + ts_s * SEC, labels: Labels::from_pairs([("job", job)]), line: line.into() }
}

/// Instant query at BASE + `at_s`: `{job: value}`.
fn instant(ix: &Indexer, query: &str, at_s: i64) -> Result<BTreeMap<String, f64>, indexer::Error> {
    let at = BASE + at_s * SEC;
    let req = MetricQueryRequest { query: query.into(), start_ns: at, end_ns: at, step_ns: 0, instant: true };
    let json = serde_json::to_value(ix.metric_query(&tenant(), &req)?).unwrap();
    Ok(json["data"]["result"]
        .as_array()
        .or(json["result"].as_array())
        .unwrap()
        .iter()
        .map(|s| {
            let job = s["metric"]["job"].as_str().unwrap_or("").to_string();
            (job, s["value"][1].as_str().unwrap().parse::<f64>().unwrap())
        })
        .collect())
}

#[test]
fn conversions_errors_and_offset_follow_loki() {
    let (_dir, ix) = open(vec![
        record(10, "api", "took=250ms size=1KiB n=3"),
        record(20, "api", "took=1.5s size=2KB n=4"),
        record(30, "api", "took=oops size=1B n=x"),
    ]);
    let q = |query: &str, at: i64| instant(&ix, query, at).unwrap_or_else(|e| panic!("{query}: {e}"));
    // Each line is its own series (size, n differ): aggregate by job.
    let by_job = |inner: &str| format!("sum by (job) ({inner})");
    assert_eq!(
        q(&by_job(r#"sum_over_time({job="api"} | logfmt | unwrap duration(took) | __error__="" [1m])"#), 40)["api"],
        1.75
    );
    assert_eq!(q(r#"max by (job) (max_over_time({job="api"} | logfmt | unwrap bytes(size) [1m]))"#, 40)["api"], 2000.0);
    // The unwrapped label leaves the series; the others stay.
    let req = MetricQueryRequest {
        query: r#"last_over_time({job="api"} | logfmt | unwrap n | __error__="" [1m])"#.into(),
        start_ns: BASE + 40 * SEC,
        end_ns: BASE + 40 * SEC,
        step_ns: 0,
        instant: true,
    };
    let json = serde_json::to_value(ix.metric_query(&tenant(), &req).unwrap()).unwrap();
    let metrics: Vec<&serde_json::Value> = json["result"].as_array().unwrap().iter().map(|s| &s["metric"]).collect();
    assert_eq!(metrics.len(), 2, "took and size differ per line: {json}");
    assert!(metrics.iter().all(|m| m.get("n").is_none() && m["job"] == json!("api")));
    // A value that does not convert fails the query as Loki's pipeline error...
    let err = instant(&ix, r#"sum_over_time({job="api"} | logfmt | unwrap duration(took) [1m])"#, 40).unwrap_err();
    assert!(err.to_string().contains("SampleExtractionErr"), "{err}");
    // ...and the window moves back by the offset: only the 10 s line is in (−50 s, 10 s].
    assert_eq!(
        q(&by_job(r#"sum_over_time({job="api"} | logfmt | unwrap duration(took) [1m] offset 30s)"#), 40)["api"],
        0.25
    );
    assert_eq!(q(&by_job(r#"rate({job="api"} | logfmt | unwrap n | __error__="" [10s])"#), 20)["api"], 0.4);
}

#[test]
fn rate_counter_handles_resets_and_extrapolates_as_prometheus() {
    let (_dir, ix) =
        open(vec![record(10, "c", "v=1"), record(20, "c", "v=3"), record(30, "c", "v=0"), record(40, "c", "v=2")]);
    // Increase 4 (2 - 1 + 3 lost at the reset) over 30 s sampled, extrapolated 7.5 s towards
    // zero at the start: 4 * 37.5 / 30 / 40.
    let got = instant(&ix, r#"rate_counter({job="c"} | logfmt | unwrap v [40s])"#, 40).unwrap();
    assert!((got["c"] - 0.125).abs() < 1e-12, "{got:?}");
}

/// The value functions computed directly from `(ts, v)` samples in the window.
fn model(func: &str, values: &[f64]) -> f64 {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    match func {
        "sum_over_time" => values.iter().sum(),
        "avg_over_time" => mean,
        "min_over_time" => values.iter().copied().fold(f64::INFINITY, f64::min),
        "max_over_time" => values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        "first_over_time" => values[0],
        "last_over_time" => values[values.len() - 1],
        "stdvar_over_time" => var,
        "stddev_over_time" => var.sqrt(),
        _ => {
            // quantile 0.5 by sorting: the median, interpolated for even counts.
            let mut s = values.to_vec();
            s.sort_by(f64::total_cmp);
            let rank = 0.5 * (s.len() - 1) as f64;
            let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
            s[lo] + (s[hi] - s[lo]) * (rank - rank.floor())
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn value_functions_equal_a_plain_computation(
        lines in proptest::collection::vec((0i64..120, 0usize..2, -1000i32..1000), 1..40),
        at in 30i64..150,
    ) {
        let jobs = ["a", "b"];
        // Unique timestamps: first/last are then well defined.
        let mut seen = std::collections::BTreeSet::new();
        let lines: Vec<_> = lines.into_iter().filter(|(t, _, _)| seen.insert(*t)).collect();
        let records = lines.iter().map(|(t, j, v)| record(*t, jobs[*j], &format!("v={} other", *v as f64 / 8.0))).collect();
        let (_dir, ix) = open(records);
        for func in ["sum_over_time", "avg_over_time", "min_over_time", "max_over_time", "first_over_time",
                     "last_over_time", "stdvar_over_time", "stddev_over_time", "quantile_over_time"] {
            let param = if func == "quantile_over_time" { "0.5, " } else { "" };
            let query = format!(r#"{func}({param}{{job=~"a|b"}} | logfmt | unwrap v [30s])"#);
            let got = instant(&ix, &query, at).unwrap();
            let mut want = BTreeMap::new();
            for (j, job) in jobs.iter().enumerate() {
                let mut window: Vec<(i64, f64)> = lines
                    .iter()
                    .filter(|(t, jj, _)| *jj == j && *t > at - 30 && *t <= at)
                    .map(|(t, _, v)| (*t, *v as f64 / 8.0))
                    .collect();
                window.sort_by_key(|(t, _)| *t);
                if !window.is_empty() {
                    let values: Vec<f64> = window.iter().map(|(_, v)| *v).collect();
                    want.insert(job.to_string(), model(func, &values));
                }
            }
            prop_assert_eq!(got.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>(), "{}", query);
            for (job, w) in &want {
                let g = got[job];
                prop_assert!((g - w).abs() <= 1e-9 * w.abs().max(1.0), "{}: {} got {} want {}", query, job, g, w);
            }
        }
    }
}
