//! Native-histogram series of a tenant, held in memory beside the float head (histograms have
//! their own, simpler head: few series, and no Gorilla chunks for them). The store writes every
//! append to the WAL first (`wal::Record::Histograms`), replays it at open and keeps the live
//! samples in WAL checkpoints, so they survive a restart.

use std::collections::BTreeMap;

use model::Labels;
use model::histogram::{CounterResetHint, HistogramSample};
use promql_parser::label::Matcher;

/// A tenant's histogram series, by label set, each in timestamp order.
#[derive(Default)]
pub struct HistogramHead {
    series: BTreeMap<Labels, Vec<HistogramSample>>,
}

impl HistogramHead {
    /// Adds samples to a series, keeping timestamp order (a sample at an existing timestamp
    /// replaces it). Each sample's counter-reset hint is set the way Prometheus's chunks report
    /// it on read: unknown for a series' first sample, `Reset` where the counts went down,
    /// `NotReset` otherwise; gauge histograms stay gauges.
    pub fn append(&mut self, labels: &Labels, samples: &[HistogramSample]) -> usize {
        let stored = self.series.entry(labels.clone()).or_default();
        // Hints are re-derived from the first changed sample on (appends at the end, as scrapes
        // and WAL replay make them, touch one sample each).
        let mut first_changed = stored.len();
        for s in samples {
            let i = match stored.binary_search_by_key(&s.timestamp_ms, |x| x.timestamp_ms) {
                Ok(i) => {
                    stored[i] = s.clone();
                    i
                }
                Err(i) => {
                    stored.insert(i, s.clone());
                    i
                }
            };
            first_changed = first_changed.min(i);
        }
        let mut prev: Option<model::FloatHistogram> = first_changed.checked_sub(1).map(|i| {
            let mut p = stored[i].h.clone();
            p.counter_reset_hint = CounterResetHint::Unknown;
            p
        });
        for s in stored[first_changed..].iter_mut() {
            let given = s.h.counter_reset_hint;
            let mut raw = s.h.clone();
            raw.counter_reset_hint = CounterResetHint::Unknown;
            s.h.counter_reset_hint = match (&prev, given) {
                (_, CounterResetHint::Gauge) => CounterResetHint::Gauge,
                (None, CounterResetHint::Reset) => CounterResetHint::Reset,
                (None, _) => CounterResetHint::Unknown,
                (Some(p), _) if raw.detect_reset(p) => CounterResetHint::Reset,
                (Some(_), _) => CounterResetHint::NotReset,
            };
            prev = Some(raw);
        }
        samples.len()
    }

    /// Series matching every matcher with their samples in `[mint, maxt]`.
    pub fn select(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Vec<(Labels, Vec<HistogramSample>)> {
        self.series
            .iter()
            .filter(|(labels, _)| matchers.iter().all(|m| m.is_match(labels.get(&m.name).unwrap_or(""))))
            .filter_map(|(labels, samples)| {
                let from = samples.partition_point(|s| s.timestamp_ms < mint);
                let to = samples.partition_point(|s| s.timestamp_ms <= maxt);
                (from < to).then(|| (labels.clone(), samples[from..to].to_vec()))
            })
            .collect()
    }

    /// Label sets of the series with samples in `[mint, maxt]` (for `/api/v1/series`-style
    /// listings).
    pub fn labels(&self, mint: i64, maxt: i64) -> impl Iterator<Item = &Labels> {
        self.series
            .iter()
            .filter(move |(_, s)| {
                s.get(s.partition_point(|x| x.timestamp_ms < mint)).is_some_and(|x| x.timestamp_ms <= maxt)
            })
            .map(|(l, _)| l)
    }

    /// Every series with its samples (for WAL checkpoints).
    pub fn all(&self) -> impl Iterator<Item = (&Labels, &[HistogramSample])> {
        self.series.iter().map(|(l, s)| (l, s.as_slice()))
    }

    /// The oldest timestamp of any series.
    pub fn min_t(&self) -> Option<i64> {
        self.series.values().filter_map(|s| s.first()).map(|s| s.timestamp_ms).min()
    }

    /// The newest timestamp of any series.
    pub fn max_t(&self) -> Option<i64> {
        self.series.values().filter_map(|s| s.last()).map(|s| s.timestamp_ms).max()
    }

    /// Drops samples older than `t`, and series left empty; returns how many samples went.
    pub fn drop_before(&mut self, t: i64) -> usize {
        let mut dropped = 0;
        self.series.retain(|_, s| {
            let n = s.partition_point(|x| x.timestamp_ms < t);
            dropped += n;
            s.drain(..n);
            !s.is_empty()
        });
        dropped
    }

    /// How many series and samples it holds.
    pub fn counts(&self) -> (usize, usize) {
        (self.series.len(), self.series.values().map(Vec::len).sum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t: i64, text: &str) -> HistogramSample {
        HistogramSample { timestamp_ms: t, h: model::notation::parse_histogram(text).unwrap() }
    }

    #[test]
    fn hints_follow_resets_and_selection_filters() {
        let mut head = HistogramHead::default();
        let labels = Labels::from_pairs([("__name__", "h"), ("job", "a")]);
        head.append(
            &labels,
            &[
                sample(0, "{{count:2 buckets:[2]}}"),
                sample(2000, "{{count:1 buckets:[1]}}"),
                sample(1000, "{{count:3 buckets:[3]}}"),
            ],
        );
        let all = head.select(&[Matcher::new(promql_parser::label::MatchOp::Equal, "job", "a")], 0, 10_000);
        let hints: Vec<CounterResetHint> = all[0].1.iter().map(|s| s.h.counter_reset_hint).collect();
        assert_eq!(hints, vec![CounterResetHint::Unknown, CounterResetHint::NotReset, CounterResetHint::Reset]);
        assert_eq!(head.select(&[], 500, 1500)[0].1.len(), 1);
        assert!(head.select(&[Matcher::new(promql_parser::label::MatchOp::Equal, "job", "b")], 0, 10_000).is_empty());
    }
}
