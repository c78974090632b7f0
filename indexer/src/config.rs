//! Operator-facing settings of the log store, loaded from the `indexer:` section of Tarsier's
//! config file. Defaults follow Loki where Loki has an equivalent, so migrating users get the
//! behaviour they expect.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// tantivy refuses writer budgets below 15 MB per indexing thread.
const MIN_WRITER_MEMORY_BYTES: usize = 15_000_000;

/// What a partition writer is opened with.
#[derive(Clone, Copy, Debug)]
pub(crate) struct WriterSettings {
    pub memory_bytes: usize,
    pub threads: usize,
    pub merge_max_segment_docs: usize,
    pub merge_min_segments: usize,
}

/// Settings of the log store.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IndexerConfig {
    /// How often appended lines are committed to tantivy: the time from acknowledgement to searchable.
    #[serde(with = "humantime_serde")]
    pub commit_interval: Duration,
    /// Time span of one partition (one tantivy index per tenant per partition). Whole seconds.
    #[serde(with = "humantime_serde")]
    pub partition_duration: Duration,
    /// Partitions that end before `now - retention` are deleted by the retention pass (every minute).
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
    /// Upper bound on one tenant's partitions on disk, in bytes; 0 means none. Past it, the
    /// retention pass deletes the tenant's oldest whole partitions (never the newest one).
    pub retention_bytes_per_tenant: u64,
    /// Segments holding more lines than this are never merged again, so merge work per line
    /// stays bounded however large a partition grows (tantivy's `max_docs_before_merge`).
    pub merge_max_segment_docs: usize,
    /// How many similar-sized segments are merged at once; fewer means fewer segments per query,
    /// more means less merge work (tantivy's `min_num_segments`).
    pub merge_min_segments: usize,
    /// tantivy's indexing memory budget per open partition writer (shared by its threads); a
    /// writer flushes a segment when its budget fills.
    pub writer_memory_bytes: usize,
    /// tantivy indexing threads per open partition writer. One keeps a core for the rest of the
    /// pipeline on small machines; more raise one partition's ingest rate where cores are free.
    pub writer_threads: usize,
    /// Bytes of acknowledged batches waiting for the ingest thread (WAL-encoded size). When full,
    /// appends wait: the backpressure that bounds memory while a commit runs.
    pub ingest_queue_bytes: usize,
    /// Lines longer than this are truncated (at a character boundary) and counted.
    pub max_line_bytes: usize,
    /// Entries older than `now - out_of_order_window` or newer than `now + out_of_order_window`
    /// are rejected (reported per entry, the rest of the batch is kept).
    #[serde(with = "humantime_serde")]
    pub out_of_order_window: Duration,
    /// Size at which the write-ahead log starts a new segment file.
    pub wal_segment_bytes: u64,
    /// Upper bound on `limit` of one log query (Loki's `max_entries_limit_per_query`).
    pub max_query_lines: usize,
    /// How many partition writers may be open at once; the least recently used is closed
    /// (after committing) when another is needed. Each holds `writer_memory_bytes`.
    pub max_open_writers: usize,
    /// zstd level of the stored lines (1-22; 0 stores them with lz4, faster but about twice as
    /// large). Applies to partitions created afterwards.
    pub stored_lines_zstd_level: i32,
    /// Bytes of lines compressed together in the store: larger blocks compress better, while
    /// reading one line decompresses its whole block. Applies to partitions created afterwards.
    pub stored_lines_block_bytes: usize,
    /// Memory for decompressed per-segment word lists, which a `|= "word"` filter searches for the
    /// index words holding `word` (a million varied lines list ~20 MB of words). Past it the
    /// least recently searched lists are dropped and decompressed again when needed; 0 keeps none.
    /// Held bytes: `tarsier_indexer_word_list_cache_bytes`.
    pub word_list_cache_bytes: usize,
    /// A decompressed word list not searched for this long leaves memory, so the cache holds what
    /// recent queries use (a dashboard's last-minute panel: the newest segments) rather than every
    /// segment ever searched.
    #[serde(with = "humantime_serde")]
    pub word_list_cache_idle: Duration,
}

/// How a new partition stores its lines.
#[derive(Clone, Copy, Debug)]
pub(crate) struct StoreSettings {
    pub zstd_level: i32,
    pub block_bytes: usize,
}

fn default_commit_interval() -> Duration {
    Duration::from_secs(1)
}
fn default_partition_duration() -> Duration {
    Duration::from_secs(24 * 3600)
}
fn default_retention() -> Duration {
    Duration::from_secs(7 * 24 * 3600)
}
/// tantivy's defaults for its log merge policy.
fn default_merge_max_segment_docs() -> usize {
    10_000_000
}
fn default_merge_min_segments() -> usize {
    8
}
fn default_writer_memory_bytes() -> usize {
    64 << 20
}
fn default_writer_threads() -> usize {
    1
}
fn default_ingest_queue_bytes() -> usize {
    64 << 20
}
fn default_max_line_bytes() -> usize {
    256 << 10
}
/// A week, as Loki's `reject_old_samples_max_age`: a collector starting on a node with a few days
/// of container logs must be able to ship them.
fn default_out_of_order_window() -> Duration {
    Duration::from_secs(7 * 24 * 3600)
}
fn default_wal_segment_bytes() -> u64 {
    64 << 20
}
fn default_max_query_lines() -> usize {
    5000
}
fn default_max_open_writers() -> usize {
    8
}
/// Level 1 on 512 KiB blocks: smaller than level 3 on 128 KiB (the stored lines 0.214 of the raw
/// bytes against 0.224 in `tarsier-bench needle`) and compresses about twice as fast (`zstd -b`
/// on the bench's lines: 130-190 against 75-100 MB/s), which the ingest goal (25 MB per
/// CPU-second for everything) needs; level 9 would shrink them to 0.19 at 17 MB/s. A needle hit
/// decompresses its block (~1-2 ms at 512 KiB); tantivy caches the last blocks read.
fn default_stored_lines_zstd_level() -> i32 {
    1
}
fn default_stored_lines_block_bytes() -> usize {
    512 << 10
}
/// The word lists of ~12 M varied lines (10 M lines of the `needle` bench list ~210 MB), so a
/// full-range needle over a day of a busy node's logs searches decompressed lists; lists idle for
/// `word_list_cache_idle` leave anyway, so a steady load holds only what its queries use.
fn default_word_list_cache_bytes() -> usize {
    256 << 20
}
fn default_word_list_cache_idle() -> Duration {
    Duration::from_secs(300)
}

impl Default for IndexerConfig {
    fn default() -> Self {
        Self {
            commit_interval: default_commit_interval(),
            partition_duration: default_partition_duration(),
            retention: default_retention(),
            retention_bytes_per_tenant: 0,
            merge_max_segment_docs: default_merge_max_segment_docs(),
            merge_min_segments: default_merge_min_segments(),
            writer_memory_bytes: default_writer_memory_bytes(),
            writer_threads: default_writer_threads(),
            ingest_queue_bytes: default_ingest_queue_bytes(),
            max_line_bytes: default_max_line_bytes(),
            out_of_order_window: default_out_of_order_window(),
            wal_segment_bytes: default_wal_segment_bytes(),
            max_query_lines: default_max_query_lines(),
            max_open_writers: default_max_open_writers(),
            stored_lines_zstd_level: default_stored_lines_zstd_level(),
            stored_lines_block_bytes: default_stored_lines_block_bytes(),
            word_list_cache_bytes: default_word_list_cache_bytes(),
            word_list_cache_idle: default_word_list_cache_idle(),
        }
    }
}

impl IndexerConfig {
    /// Checks every value; the error names the offending key.
    pub fn validate(&self) -> Result<(), Error> {
        let fail = |msg: &str| Err(Error::InvalidConfig(format!("indexer.{msg}")));
        if self.commit_interval.is_zero() {
            return fail("commit_interval must be > 0");
        }
        if self.partition_duration < Duration::from_secs(60) || self.partition_duration.subsec_nanos() != 0 {
            return fail("partition_duration must be whole seconds and at least 1m");
        }
        if self.retention.is_zero() {
            return fail("retention must be > 0");
        }
        if self.writer_threads == 0 || self.writer_threads > 64 {
            return fail("writer_threads must be between 1 and 64");
        }
        if self.writer_memory_bytes / self.writer_threads < MIN_WRITER_MEMORY_BYTES {
            return fail("writer_memory_bytes must be at least 15000000 per writer thread (tantivy's minimum)");
        }
        if self.ingest_queue_bytes < 1 << 20 {
            return fail("ingest_queue_bytes must be at least 1048576");
        }
        if self.merge_max_segment_docs == 0 {
            return fail("merge_max_segment_docs must be > 0");
        }
        if self.merge_min_segments < 2 {
            return fail("merge_min_segments must be at least 2");
        }
        if self.max_line_bytes == 0 {
            return fail("max_line_bytes must be > 0");
        }
        if self.wal_segment_bytes < 4096 {
            return fail("wal_segment_bytes must be at least 4096");
        }
        if self.max_query_lines == 0 {
            return fail("max_query_lines must be > 0");
        }
        if self.max_open_writers == 0 {
            return fail("max_open_writers must be > 0");
        }
        if !(0..=22).contains(&self.stored_lines_zstd_level) {
            return fail("stored_lines_zstd_level must be between 0 (lz4) and 22");
        }
        if !(4096..=(16 << 20)).contains(&self.stored_lines_block_bytes) {
            return fail("stored_lines_block_bytes must be between 4096 and 16777216");
        }
        Ok(())
    }

    pub(crate) fn writer_settings(&self) -> WriterSettings {
        WriterSettings {
            memory_bytes: self.writer_memory_bytes,
            threads: self.writer_threads,
            merge_max_segment_docs: self.merge_max_segment_docs,
            merge_min_segments: self.merge_min_segments,
        }
    }

    pub(crate) fn store_settings(&self) -> StoreSettings {
        StoreSettings { zstd_level: self.stored_lines_zstd_level, block_bytes: self.stored_lines_block_bytes }
    }

    pub(crate) fn partition_ns(&self) -> i64 {
        i64::try_from(self.partition_duration.as_nanos()).unwrap_or(i64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_humantime_parses() {
        IndexerConfig::default().validate().unwrap();
        let cfg: IndexerConfig =
            serde_json::from_str(r#"{"commit_interval":"250ms","retention":"15d","max_query_lines":10}"#).unwrap();
        assert_eq!(cfg.commit_interval, Duration::from_millis(250));
        assert_eq!(cfg.retention, Duration::from_secs(15 * 86400));
        assert_eq!(cfg.max_query_lines, 10);
        assert_eq!(cfg.partition_duration, default_partition_duration());
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        assert!(serde_json::from_str::<IndexerConfig>(r#"{"comit_interval":"1s"}"#).is_err());
        let cfg = IndexerConfig { commit_interval: Duration::ZERO, ..Default::default() };
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.contains("indexer.commit_interval"), "{err}");
        let cfg = IndexerConfig { partition_duration: Duration::from_millis(90_500), ..Default::default() };
        assert!(cfg.validate().unwrap_err().to_string().contains("indexer.partition_duration"));
    }
}
