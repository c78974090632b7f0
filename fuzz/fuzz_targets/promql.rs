//! PromQL as the query API receives it: `tsdb::promql::parse` (which locates promql-parser's
//! errors) and evaluation, instant and over a short range, on a tiny in-memory store.
#![no_main]
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use model::{Labels, Sample};
use promql_parser::label::Matcher;
use tsdb::promql::{EngineOptions, Queryable};

struct Tiny(Vec<(Labels, Vec<Sample>)>);

impl Queryable for Tiny {
    fn select(&self, matchers: &[Matcher], _mint: i64, _maxt: i64) -> tsdb::Result<Vec<(Labels, Vec<Sample>)>> {
        Ok(self
            .0
            .iter()
            .filter(|(labels, _)| matchers.iter().all(|m| m.is_match(labels.get(&m.name).unwrap_or(""))))
            .cloned()
            .collect())
    }
}

fn store() -> Tiny {
    let series = |pairs: &[(&str, &str)], step: f64| {
        let labels = Labels::from_pairs(pairs.iter().copied());
        let samples = (0..20).map(|i| Sample { timestamp_ms: i * 15_000, value: step * i as f64 }).collect();
        (labels, samples)
    };
    Tiny(vec![
        series(&[("__name__", "up"), ("job", "api"), ("instance", "a")], 0.0),
        series(&[("__name__", "http_requests_total"), ("job", "api"), ("code", "200")], 3.0),
        series(&[("__name__", "http_requests_total"), ("job", "api"), ("code", "500")], 1.0),
        series(&[("__name__", "latency_bucket"), ("job", "api"), ("le", "0.5")], 2.0),
        series(&[("__name__", "latency_bucket"), ("job", "api"), ("le", "+Inf")], 4.0),
    ])
}

fuzz_target!(|query: &str| {
    let _ = tsdb::promql::parse(query);
    let _ = tsdb::promql::parse_series_selector(query);
    let store = store();
    let opts = EngineOptions { timeout: Duration::from_secs(2), max_samples: 100_000, ..EngineOptions::default() };
    let _ = tsdb::promql::instant_query(&store, &opts, query, 300_000);
    let _ = tsdb::promql::range_query(&store, &opts, query, 0, 300_000, 60_000);
});
