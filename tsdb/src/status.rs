//! What `/api/v1/status/tsdb` and `/api/v1/metadata` report, in Prometheus's JSON shapes:
//! cardinality statistics of a tenant's head (which series and labels cost the most) and the
//! TYPE/HELP/UNIT metadata senders attach to remote_write requests.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::head::TenantHead;
use crate::histogram_head::HistogramHead;

/// `headStats` of `/api/v1/status/tsdb`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HeadStats {
    pub num_series: u64,
    pub num_label_pairs: u64,
    pub chunk_count: u64,
    /// Prometheus reports the head's bounds in ms; an empty head reports 0.
    pub min_time: i64,
    pub max_time: i64,
}

/// One `{"name": ..., "value": ...}` entry of the top lists.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Stat {
    pub name: String,
    pub value: u64,
}

/// The data of `/api/v1/status/tsdb`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TsdbStatus {
    pub head_stats: HeadStats,
    pub series_count_by_metric_name: Vec<Stat>,
    pub label_value_count_by_label_name: Vec<Stat>,
    pub memory_in_bytes_by_label_name: Vec<Stat>,
    pub series_count_by_label_value_pair: Vec<Stat>,
}

/// Cardinality statistics of `head` and the tenant's native-histogram series, each list the top
/// `limit` by value (ties by name), as Prometheus computes them from its head postings.
pub fn head_status(head: Option<&TenantHead>, histograms: Option<&HistogramHead>, limit: usize) -> TsdbStatus {
    let mut postings: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    for (name, value, count) in head.into_iter().flat_map(|h| h.index.postings_counts()) {
        *postings.entry((name, value)).or_default() += count as u64;
    }
    for labels in histograms.into_iter().flat_map(|h| h.labels(i64::MIN, i64::MAX)) {
        for l in labels {
            *postings.entry((l.name.as_str(), l.value.as_str())).or_default() += 1;
        }
    }
    let mut by_metric = Vec::new();
    let mut value_counts: BTreeMap<&str, u64> = BTreeMap::new();
    let mut bytes: BTreeMap<&str, u64> = BTreeMap::new();
    let mut pairs = Vec::new();
    for (&(name, value), &count) in &postings {
        if name == model::METRIC_NAME {
            by_metric.push(Stat { name: value.to_string(), value: count });
        }
        *value_counts.entry(name).or_default() += 1;
        *bytes.entry(name).or_default() += value.len() as u64;
        pairs.push(Stat { name: format!("{name}={value}"), value: count });
    }
    let to_stats =
        |m: BTreeMap<&str, u64>| m.into_iter().map(|(name, value)| Stat { name: name.to_string(), value }).collect();
    let histogram_times = histograms.map(|h| (h.min_t(), h.max_t())).unwrap_or_default();
    let min_time = head.and_then(|h| h.min_t()).into_iter().chain(histogram_times.0).min().unwrap_or(0);
    let max_time = head.and_then(|h| h.max_t).into_iter().chain(histogram_times.1).max().unwrap_or(0);
    let histogram_series = histograms.map_or(0, |h| h.counts().0);
    TsdbStatus {
        head_stats: HeadStats {
            num_series: head.map_or(0, |h| h.index.len() as u64) + histogram_series as u64,
            num_label_pairs: postings.len() as u64,
            // Histogram samples are not held in chunks: only float chunks count.
            chunk_count: head.map_or(0, |h| h.series.values().map(|s| s.chunk_count() as u64).sum()),
            min_time,
            max_time,
        },
        series_count_by_metric_name: top(by_metric, limit),
        label_value_count_by_label_name: top(to_stats(value_counts), limit),
        memory_in_bytes_by_label_name: top(to_stats(bytes), limit),
        series_count_by_label_value_pair: top(pairs, limit),
    }
}

fn top(mut stats: Vec<Stat>, limit: usize) -> Vec<Stat> {
    stats.sort_by(|a, b| b.value.cmp(&a.value).then_with(|| a.name.cmp(&b.name)));
    stats.truncate(limit);
    stats
}

/// One metric's metadata entry, as `/api/v1/metadata` returns it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct MetricMetadata {
    #[serde(rename = "type")]
    pub kind: String,
    pub help: String,
    pub unit: String,
}

/// Per metric family name, the distinct metadata seen (newest last), bounded per metric.
#[derive(Default)]
pub struct MetadataStore {
    by_metric: HashMap<String, Vec<MetricMetadata>>,
}

/// Distinct metadata variants kept per metric (senders disagreeing is rare; never unbounded).
const MAX_VARIANTS: usize = 8;

impl MetadataStore {
    pub fn record(&mut self, metric: &str, meta: MetricMetadata) {
        let list = self.by_metric.entry(metric.to_string()).or_default();
        list.retain(|m| *m != meta);
        list.push(meta);
        if list.len() > MAX_VARIANTS {
            list.remove(0);
        }
    }

    /// Prometheus's `/api/v1/metadata` data: `limit` metrics at most (0 = all), `limit_per_metric`
    /// entries each (0 = all), only `metric` if given.
    pub fn query(
        &self,
        metric: Option<&str>,
        limit: usize,
        limit_per_metric: usize,
    ) -> BTreeMap<String, Vec<MetricMetadata>> {
        let mut out = BTreeMap::new();
        let mut names: Vec<&String> = self.by_metric.keys().filter(|n| metric.is_none_or(|m| m == *n)).collect();
        names.sort();
        for name in names {
            if limit > 0 && out.len() >= limit {
                break;
            }
            let mut list = self.by_metric[name].clone();
            if limit_per_metric > 0 {
                list.truncate(limit_per_metric);
            }
            out.insert(name.clone(), list);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use model::Labels;

    use super::*;

    #[test]
    fn status_matches_prometheus_shape_and_counts() {
        let mut head = TenantHead::default();
        let series = [
            [("__name__", "up"), ("job", "api")],
            [("__name__", "up"), ("job", "db")],
            [("__name__", "errors"), ("job", "api")],
        ];
        for (i, pairs) in series.into_iter().enumerate() {
            head.add_series(i as u64, Labels::from_pairs(pairs));
            head.append(i as u64, 1000 + i as i64, 1.0, 0).unwrap();
        }
        let status = head_status(Some(&head), None, 2);
        let json = serde_json::to_value(&status).unwrap();
        let want = serde_json::json!({
            "headStats": {"numSeries": 3, "numLabelPairs": 4, "chunkCount": 3, "minTime": 1000, "maxTime": 1002},
            "seriesCountByMetricName": [{"name": "up", "value": 2}, {"name": "errors", "value": 1}],
            "labelValueCountByLabelName": [{"name": "__name__", "value": 2}, {"name": "job", "value": 2}],
            "memoryInBytesByLabelName": [{"name": "__name__", "value": 8}, {"name": "job", "value": 5}],
            "seriesCountByLabelValuePair": [{"name": "__name__=up", "value": 2}, {"name": "job=api", "value": 2}],
        });
        assert_eq!(json, want);
        // Native-histogram series count like float series.
        let mut histograms = HistogramHead::default();
        let h = model::notation::parse_histogram("{{count:1 buckets:[1]}}").unwrap();
        let sample = model::HistogramSample { timestamp_ms: 5000, h };
        histograms.append(&Labels::from_pairs([("__name__", "rpc"), ("job", "api")]), &[sample]);
        let status = head_status(Some(&head), Some(&histograms), 2);
        assert_eq!((status.head_stats.num_series, status.head_stats.max_time), (4, 5000));
        assert_eq!(status.series_count_by_label_value_pair[0], Stat { name: "job=api".into(), value: 3 });
        assert_eq!(head_status(None, Some(&histograms), 1).series_count_by_metric_name[0].name, "rpc");
    }

    #[test]
    fn metadata_keeps_distinct_entries_and_applies_limits() {
        let mut store = MetadataStore::default();
        let counter = |help: &str| MetricMetadata { kind: "counter".into(), help: help.into(), unit: String::new() };
        store.record("b_total", counter("B"));
        store.record("a_total", counter("A"));
        store.record("a_total", counter("A2"));
        store.record("a_total", counter("A"));
        let all = store.query(None, 0, 0);
        assert_eq!(all.keys().collect::<Vec<_>>(), ["a_total", "b_total"]);
        assert_eq!(all["a_total"], [counter("A2"), counter("A")]);
        assert_eq!(store.query(None, 1, 1)["a_total"], [counter("A2")]);
        assert_eq!(store.query(Some("b_total"), 0, 0).len(), 1);
        assert!(store.query(Some("nope"), 0, 0).is_empty());
    }
}
