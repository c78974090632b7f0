//! Self-metrics of the log store, so operators can see ingest volume, rejections, commit latency
//! and query load on Tarsier's own `/metrics`. Handles are cheap clones (Arc inside).

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// All indexer metrics.
#[derive(Clone, Debug)]
pub(crate) struct Metrics {
    pub lines_ingested: Counter,
    pub bytes_ingested: Counter,
    pub lines_rejected: Counter,
    pub lines_truncated: Counter,
    pub wal_bytes_written: Counter,
    pub wal_fsyncs: Counter,
    pub wal_lines_replayed: Counter,
    pub commits: Counter,
    pub commit_duration: Histogram,
    pub queries: Counter,
    pub query_errors: Counter,
    pub query_duration: Histogram,
    pub partitions_deleted: Counter,
    pub open_writers: Gauge,
    /// 1 while indexing waits for disk space (acknowledged lines wait in the WAL).
    pub indexing_paused: Gauge,
    pub partitions: Gauge,
    pub word_list_cache_bytes: Gauge,
    pub word_list_cache_evictions: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            lines_ingested: Counter::default(),
            bytes_ingested: Counter::default(),
            lines_rejected: Counter::default(),
            lines_truncated: Counter::default(),
            wal_bytes_written: Counter::default(),
            wal_fsyncs: Counter::default(),
            wal_lines_replayed: Counter::default(),
            commits: Counter::default(),
            // 1 ms .. ~16 s: a commit flushes up to writer_memory_bytes of segments.
            commit_duration: Histogram::new(exponential_buckets(0.001, 2.0, 15)),
            queries: Counter::default(),
            query_errors: Counter::default(),
            query_duration: Histogram::new(exponential_buckets(0.001, 2.0, 15)),
            partitions_deleted: Counter::default(),
            open_writers: Gauge::default(),
            indexing_paused: Gauge::default(),
            partitions: Gauge::default(),
            word_list_cache_bytes: Gauge::default(),
            word_list_cache_evictions: Counter::default(),
        }
    }
}

impl Metrics {
    pub fn register(&self, registry: &mut Registry) {
        let r = registry;
        r.register("tarsier_indexer_lines_ingested", "Log lines acknowledged", self.lines_ingested.clone());
        r.register("tarsier_indexer_bytes_ingested", "Bytes of log lines acknowledged", self.bytes_ingested.clone());
        r.register("tarsier_indexer_lines_rejected", "Log lines rejected at ingest", self.lines_rejected.clone());
        r.register(
            "tarsier_indexer_lines_truncated",
            "Log lines truncated to max_line_bytes",
            self.lines_truncated.clone(),
        );
        r.register(
            "tarsier_indexer_wal_bytes_written",
            "Bytes written to the write-ahead log",
            self.wal_bytes_written.clone(),
        );
        r.register(
            "tarsier_indexer_wal_fsyncs",
            "WAL fsyncs; each acknowledges every append written before it (group commit)",
            self.wal_fsyncs.clone(),
        );
        r.register(
            "tarsier_indexer_wal_lines_replayed",
            "Log lines replayed from the WAL at startup",
            self.wal_lines_replayed.clone(),
        );
        r.register("tarsier_indexer_commits", "tantivy commit rounds", self.commits.clone());
        r.register(
            "tarsier_indexer_commit_duration_seconds",
            "Duration of commit rounds",
            self.commit_duration.clone(),
        );
        r.register("tarsier_indexer_queries", "Log queries executed", self.queries.clone());
        r.register("tarsier_indexer_query_errors", "Log queries that failed", self.query_errors.clone());
        r.register("tarsier_indexer_query_duration_seconds", "Duration of log queries", self.query_duration.clone());
        r.register(
            "tarsier_indexer_partitions_deleted",
            "Partitions deleted by retention",
            self.partitions_deleted.clone(),
        );
        r.register("tarsier_indexer_open_writers", "Partition writers currently open", self.open_writers.clone());
        r.register(
            "tarsier_indexer_paused_disk_full",
            "1 while indexing waits for disk space; acknowledged lines wait in the WAL",
            self.indexing_paused.clone(),
        );
        r.register("tarsier_indexer_partitions", "Partitions currently on disk", self.partitions.clone());
        r.register(
            "tarsier_indexer_word_list_cache_bytes",
            "Bytes of decompressed word lists held for line filters (bounded by indexer.word_list_cache_bytes)",
            self.word_list_cache_bytes.clone(),
        );
        r.register(
            "tarsier_indexer_word_list_cache_evictions",
            "Word lists dropped from memory: over indexer.word_list_cache_bytes or unused for indexer.word_list_cache_idle",
            self.word_list_cache_evictions.clone(),
        );
    }
}
