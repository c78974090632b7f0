//! The set of blocks on disk, per tenant (`<data>/blocks/<tenant>/<block>`): loading them at open
//! (and finishing or undoing whatever a crash interrupted), choosing what compaction merges, and
//! merging series from several blocks.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use model::{HistogramSample, Labels, Sample, TenantId};

use crate::block::{self, Block, SeriesData, TMP_PREFIX};
use crate::error::{Error, Result};

/// A tenant's blocks, sorted by start time; never overlapping.
pub type TenantBlocks = Vec<Arc<Block>>;

/// Loads every complete block under `dir`. Removes what a crash left behind: `.tmp-*` directories
/// (blocks being written), directories without `meta.json`, and blocks a compacted block
/// replaces (the crash came between writing the new block and deleting its sources).
pub fn open_all(dir: &Path) -> Result<HashMap<TenantId, TenantBlocks>> {
    fs::create_dir_all(dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    let mut out = HashMap::new();
    for tenant_entry in read_dir(dir)? {
        let Some(name) = tenant_entry.file_name().to_str().map(str::to_string) else { continue };
        let Ok(tenant) = TenantId::new(&name) else {
            tracing::warn!(dir = %tenant_entry.path().display(), "skipping a directory that is not a tenant");
            continue;
        };
        let mut found = Vec::new();
        for entry in read_dir(&tenant_entry.path())? {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().to_string();
            if name.starts_with(TMP_PREFIX) {
                tracing::info!(dir = %path.display(), "removing an unfinished block");
                remove_dir(&path)?;
                continue;
            }
            match block::read_meta(&path)? {
                Some(meta) => found.push((path, meta)),
                None => {
                    tracing::warn!(dir = %path.display(), "removing a block without meta.json");
                    remove_dir(&path)?;
                }
            }
        }
        let replaced: HashSet<String> = found.iter().flat_map(|(_, m)| m.compacted_from.iter().cloned()).collect();
        let mut blocks = Vec::new();
        for (path, meta) in found {
            let name = path.file_name().unwrap_or_default().to_string_lossy().to_string();
            if replaced.contains(&name) {
                tracing::info!(dir = %path.display(), "removing a block replaced by compaction");
                remove_dir(&path)?;
                continue;
            }
            blocks.push(Arc::new(Block::open(&path, meta)?));
        }
        blocks.sort_by_key(|b| b.meta.min_time_ms);
        if !blocks.is_empty() {
            out.insert(tenant, blocks);
        }
    }
    Ok(out)
}

fn read_dir(dir: &Path) -> Result<Vec<fs::DirEntry>> {
    let entries = fs::read_dir(dir).map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            out.push(entry);
        }
    }
    Ok(out)
}

fn remove_dir(path: &Path) -> Result<()> {
    fs::remove_dir_all(path).map_err(|e| Error::io(format!("removing {}", path.display()), e))
}

/// A fresh, unique block directory name that sorts by time range.
pub fn new_name(min_t: i64, max_t: i64) -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("b{min_t}_{max_t}_{nanos:x}{:x}", SEQ.fetch_add(1, Ordering::Relaxed))
}

/// The next group of adjacent blocks to merge: blocks in one aligned window of `3^k *
/// block_ms` (up to `max_block_ms`) that the head has moved past (`window end <= head_floor`).
/// Smaller windows first, so blocks grow 3x per level like Prometheus's.
pub fn plan_compaction(
    blocks: &[Arc<Block>],
    block_ms: i64,
    max_block_ms: i64,
    head_floor: i64,
) -> Option<Vec<Arc<Block>>> {
    let mut range = block_ms.saturating_mul(3);
    while range <= max_block_ms {
        let mut groups: BTreeMap<i64, Vec<Arc<Block>>> = BTreeMap::new();
        for b in blocks {
            let start = b.meta.min_time_ms.div_euclid(range) * range;
            if b.meta.max_time_ms <= start.saturating_add(range) {
                groups.entry(start).or_default().push(b.clone());
            }
        }
        for (start, group) in groups {
            if group.len() >= 2 && start.saturating_add(range) <= head_floor {
                return Some(group);
            }
        }
        range = range.saturating_mul(3);
    }
    None
}

/// A sample with a timestamp: a float [`Sample`] or a [`HistogramSample`].
pub trait Timed {
    fn timestamp_ms(&self) -> i64;
}

impl Timed for Sample {
    fn timestamp_ms(&self) -> i64 {
        self.timestamp_ms
    }
}

impl Timed for HistogramSample {
    fn timestamp_ms(&self) -> i64 {
        self.timestamp_ms
    }
}

/// Merges series from blocks given oldest first; a timestamp present twice keeps the first.
pub fn merge<S: Timed>(parts: Vec<Vec<SeriesData<S>>>) -> Vec<SeriesData<S>> {
    let mut by_labels: BTreeMap<Labels, Vec<S>> = BTreeMap::new();
    for part in parts {
        for s in part {
            append_samples(by_labels.entry(s.labels).or_default(), s.samples);
        }
    }
    by_labels.into_iter().map(|(labels, samples)| SeriesData { labels, samples }).collect()
}

/// Appends `more` (sorted) to `into` (sorted), keeping time order and one sample per timestamp.
pub fn append_samples<S: Timed>(into: &mut Vec<S>, more: Vec<S>) {
    match (into.last(), more.first()) {
        (Some(last), Some(first)) if first.timestamp_ms() <= last.timestamp_ms() => {
            into.extend(more);
            into.sort_by_key(|s| s.timestamp_ms());
            into.dedup_by_key(|s| s.timestamp_ms());
        }
        _ => into.extend(more),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_keeps_time_order_and_one_sample_per_timestamp() {
        let mut v = vec![Sample::new(1, 1.0), Sample::new(3, 3.0)];
        append_samples(&mut v, vec![Sample::new(3, 9.0), Sample::new(4, 4.0)]);
        append_samples(&mut v, vec![Sample::new(2, 2.0)]);
        assert_eq!(v.iter().map(|s| s.timestamp_ms).collect::<Vec<_>>(), [1, 2, 3, 4]);
        assert_eq!(v[2].value, 3.0);
    }
}
