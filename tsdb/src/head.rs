//! The in-memory head: per tenant, the series index plus each series' samples in Gorilla chunks.
//! Late samples inside the out-of-order window go to a small per-series sorted buffer merged at
//! read time, so the compressed chunks stay append-only.

use std::collections::{BTreeMap, HashMap};

use model::{Labels, Sample};

use crate::chunk::{Chunk, SAMPLES_PER_CHUNK};
use crate::index::{Index, SeriesId};

/// Why a sample was not stored.
#[derive(Debug, Clone, PartialEq)]
pub enum Rejection {
    /// Older than the series' newest sample minus the out-of-order window.
    OutOfOrder { t: i64, newest: i64 },
    /// Same timestamp as a stored sample but a different value.
    Duplicate { t: i64 },
    /// Older than the head's start: that time range is already in an immutable block.
    TooOld { t: i64, min_valid: i64 },
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rejection::OutOfOrder { t, newest } => {
                write!(
                    f,
                    "out of order sample: timestamp {t} is older than the series' newest {newest} minus out_of_order_window"
                )
            }
            Rejection::Duplicate { t } => write!(f, "duplicate sample for timestamp {t} with a different value"),
            Rejection::TooOld { t, min_valid } => {
                write!(f, "out of bounds: timestamp {t} is older than {min_valid}, which is already in a block")
            }
        }
    }
}

/// What `MemSeries::append` did with an accepted sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// Stored; must be logged to the WAL.
    Stored,
    /// Identical to a stored sample; nothing to do.
    AlreadyPresent,
}

/// One series' samples.
#[derive(Default)]
pub struct MemSeries {
    closed: Vec<Chunk>,
    open: Chunk,
    out_of_order: BTreeMap<i64, f64>,
    newest: Option<(i64, u64)>,
}

impl MemSeries {
    /// Stores a sample; `window_ms` is how far behind the newest sample a late one may land.
    pub fn append(&mut self, t: i64, v: f64, window_ms: i64) -> Result<Appended, Rejection> {
        let Some((newest_t, newest_bits)) = self.newest else {
            self.push_in_order(t, v);
            return Ok(Appended::Stored);
        };
        if t > newest_t {
            self.push_in_order(t, v);
            return Ok(Appended::Stored);
        }
        if t == newest_t {
            return if newest_bits == v.to_bits() {
                Ok(Appended::AlreadyPresent)
            } else {
                Err(Rejection::Duplicate { t })
            };
        }
        if newest_t.saturating_sub(t) > window_ms {
            return Err(Rejection::OutOfOrder { t, newest: newest_t });
        }
        if let Some(existing) = self.stored_value_at(t) {
            return if existing.to_bits() == v.to_bits() {
                Ok(Appended::AlreadyPresent)
            } else {
                Err(Rejection::Duplicate { t })
            };
        }
        self.out_of_order.insert(t, v);
        Ok(Appended::Stored)
    }

    fn push_in_order(&mut self, t: i64, v: f64) {
        if self.open.len() >= SAMPLES_PER_CHUNK {
            let mut full = std::mem::take(&mut self.open);
            // The open chunk's buffer grew by doubling; a closed one never grows again, so it
            // gives back the slack (up to half its capacity, per series, until the head is cut).
            full.shrink_to_fit();
            self.closed.push(full);
        }
        self.open.append(t, v);
        self.newest = Some((t, v.to_bits()));
    }

    fn stored_value_at(&self, t: i64) -> Option<f64> {
        if let Some(v) = self.out_of_order.get(&t) {
            return Some(*v);
        }
        self.chunks()
            .filter(|c| c.min_t() <= t && t <= c.max_t())
            .filter_map(Chunk::decode)
            .flat_map(|samples| samples.into_iter())
            .find(|(st, _)| *st == t)
            .map(|(_, v)| v)
    }

    fn chunks(&self) -> impl Iterator<Item = &Chunk> {
        self.closed.iter().chain(std::iter::once(&self.open).filter(|c| !c.is_empty()))
    }

    /// Samples with `mint <= t <= maxt`, in timestamp order.
    pub fn samples(&self, mint: i64, maxt: i64) -> Vec<Sample> {
        let mut out: Vec<Sample> = Vec::new();
        for chunk in self.chunks().filter(|c| c.max_t() >= mint && c.min_t() <= maxt) {
            // A chunk that fails to decode is a bug; skipping it keeps queries answering.
            if let Some(samples) = chunk.decode() {
                out.extend(
                    samples.into_iter().filter(|(t, _)| *t >= mint && *t <= maxt).map(|(t, v)| Sample::new(t, v)),
                );
            }
        }
        if !self.out_of_order.is_empty() {
            out.extend(self.out_of_order.range(mint..=maxt).map(|(t, v)| Sample::new(*t, *v)));
            out.sort_by_key(|s| s.timestamp_ms);
        }
        out
    }

    pub fn newest_t(&self) -> Option<i64> {
        self.newest.map(|(t, _)| t)
    }

    pub fn oldest_t(&self) -> Option<i64> {
        let chunk_min = self.chunks().next().map(Chunk::min_t);
        let ooo_min = self.out_of_order.keys().next().copied();
        match (chunk_min, ooo_min) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn sample_count(&self) -> usize {
        self.chunks().map(Chunk::len).sum::<usize>() + self.out_of_order.len()
    }

    /// Chunks held (closed plus the open one if it has samples).
    pub fn chunk_count(&self) -> usize {
        self.chunks().count()
    }

    pub fn chunk_bytes(&self) -> usize {
        self.chunks().map(Chunk::byte_len).sum()
    }

    /// Drops samples older than `t` (they went into a block), re-encoding what stays.
    pub fn truncate_before(&mut self, t: i64) {
        if self.oldest_t().is_none_or(|o| o >= t) {
            return;
        }
        let keep = self.samples(t, i64::MAX);
        *self = MemSeries::default();
        for s in keep {
            self.push_in_order(s.timestamp_ms, s.value);
        }
    }
}

/// Everything one tenant has in memory.
pub struct TenantHead {
    pub index: Index,
    /// Boxed: the table then holds 16 bytes per series instead of a ~170-byte `MemSeries`, so it
    /// stays in the CPU cache for tens of thousands of series, and the series themselves sit in
    /// the order they were created, the order a scrape appends them (the inline table's cache
    /// misses were the largest cost of appending a scrape).
    pub series: HashMap<SeriesId, Box<MemSeries>, crate::index::FastState>,
    /// Newest timestamp of any sample; retention is measured back from it.
    pub max_t: Option<i64>,
    pub samples: u64,
    /// Samples older than this are refused: their time range is already cut into a block.
    pub min_valid_t: i64,
}

impl Default for TenantHead {
    fn default() -> Self {
        Self { index: Index::default(), series: HashMap::default(), max_t: None, samples: 0, min_valid_t: i64::MIN }
    }
}

impl TenantHead {
    pub fn add_series(&mut self, id: SeriesId, labels: Labels) {
        self.index.insert(id, labels);
        self.series.entry(id).or_default();
    }

    /// Appends to an existing series and keeps the tenant's counters.
    pub fn append(&mut self, id: SeriesId, t: i64, v: f64, window_ms: i64) -> Result<Appended, Rejection> {
        if t < self.min_valid_t {
            return Err(Rejection::TooOld { t, min_valid: self.min_valid_t });
        }
        let series = self.series.entry(id).or_default();
        let result = series.append(t, v, window_ms);
        if result == Ok(Appended::Stored) {
            self.samples += 1;
            self.max_t = Some(self.max_t.map_or(t, |m| m.max(t)));
        }
        result
    }
}

impl TenantHead {
    /// Appends samples of one existing series (looked up once), reporting each outcome to `each`.
    pub fn append_all(
        &mut self,
        id: SeriesId,
        samples: &[Sample],
        window_ms: i64,
        mut each: impl FnMut(&Sample, Result<Appended, Rejection>),
    ) {
        let min_valid = self.min_valid_t;
        let series = self.series.entry(id).or_default();
        let (mut stored, mut max_t) = (0u64, self.max_t);
        for s in samples {
            let t = s.timestamp_ms;
            let result = if t < min_valid {
                Err(Rejection::TooOld { t, min_valid })
            } else {
                series.append(t, s.value, window_ms)
            };
            if result == Ok(Appended::Stored) {
                stored += 1;
                max_t = Some(max_t.map_or(t, |m| m.max(t)));
            }
            each(s, result);
        }
        self.samples += stored;
        self.max_t = max_t;
    }

    /// Oldest sample in the head.
    pub fn min_t(&self) -> Option<i64> {
        self.series.values().filter_map(|s| s.oldest_t()).min()
    }

    /// Drops samples older than `t` and series left without samples; returns the dropped series.
    pub fn truncate_before(&mut self, t: i64) -> usize {
        let mut emptied = Vec::new();
        for (id, s) in self.series.iter_mut() {
            let before = s.sample_count();
            s.truncate_before(t);
            self.samples -= (before - s.sample_count()) as u64;
            if s.sample_count() == 0 {
                emptied.push(*id);
            }
        }
        for id in &emptied {
            self.series.remove(id);
            self.index.remove(*id);
        }
        emptied.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn late_samples_inside_the_window_are_merged_in_order() {
        let mut s = MemSeries::default();
        for t in [1000, 2000, 5000] {
            assert_eq!(s.append(t, t as f64, 3000), Ok(Appended::Stored));
        }
        assert_eq!(s.append(3000, 3.0, 3000), Ok(Appended::Stored));
        assert!(matches!(s.append(1000, 9.0, 3000), Err(Rejection::OutOfOrder { .. })));
        assert_eq!(s.append(2000, 2000.0, 3000), Ok(Appended::AlreadyPresent));
        assert_eq!(s.append(2000, 7.0, 3000), Err(Rejection::Duplicate { t: 2000 }));
        let ts: Vec<i64> = s.samples(i64::MIN, i64::MAX).iter().map(|s| s.timestamp_ms).collect();
        assert_eq!(ts, [1000, 2000, 3000, 5000]);
        assert_eq!(s.samples(2000, 3000).len(), 2);
    }

    #[test]
    fn chunks_are_cut_and_read_back_across_boundaries() {
        let mut s = MemSeries::default();
        for t in 0..500 {
            s.append(t * 10, t as f64, 0).unwrap();
        }
        assert_eq!(s.closed.len(), 4);
        let got = s.samples(1195, 1215);
        assert_eq!(got.iter().map(|s| s.timestamp_ms).collect::<Vec<_>>(), [1200, 1210]);
        assert_eq!(s.sample_count(), 500);
    }

    #[test]
    fn truncation_keeps_newer_samples_and_drops_empty_series() {
        let mut head = TenantHead::default();
        head.add_series(1, Labels::from_pairs([("__name__", "a")]));
        head.add_series(2, Labels::from_pairs([("__name__", "b")]));
        for t in 0..300 {
            head.append(1, t * 10, t as f64, 100).unwrap();
        }
        head.append(2, 5, 1.0, 100).unwrap();
        head.append(1, 2985, 9.0, 100).unwrap();
        assert_eq!(head.truncate_before(1000), 1);
        head.min_valid_t = 1000;
        assert_eq!(head.samples, 201);
        assert_eq!(head.min_t(), Some(1000));
        assert_eq!(head.series[&1].samples(0, i64::MAX).len(), 201);
        assert!(head.index.get(&Labels::from_pairs([("__name__", "b")])).is_none());
        assert!(matches!(head.append(1, 999, 1.0, i64::MAX), Err(Rejection::TooOld { .. })));
    }
}
