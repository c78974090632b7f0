//! The collector's self-metrics: enough to tell whether it keeps up (lag, paused reads), whether
//! it loses anything (drops by reason, truncations) and whether targets are healthy.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Label pairs of a metric family.
pub(crate) type LabelPairs = Vec<(String, String)>;

/// Handles to every self-metric; clones share the values.
#[derive(Clone, Default)]
pub(crate) struct CollectorMetrics {
    pub lines_read: Counter,
    pub bytes_read: Counter,
    pub lines_sent: Counter,
    pub samples_sent: Counter,
    pub dropped: Family<LabelPairs, Counter>,
    pub lines_truncated: Counter,
    pub open_files: Gauge,
    pub rotations: Counter,
    pub truncations: Counter,
    pub read_paused: Gauge,
    pub file_lag_bytes: Family<LabelPairs, Gauge>,
    pub send_retries: Family<LabelPairs, Counter>,
    pub scrapes: Family<LabelPairs, Counter>,
    pub buffer_bytes: Gauge,
    pub buffer_full: Gauge,
    pub buffered_batches: Counter,
    pub samples_buffer_bytes: Gauge,
    pub samples_buffer_full: Gauge,
    pub samples_buffered_batches: Counter,
    pub duplicates_after_restart: Counter,
    pub metadata_missing: Counter,
}

impl CollectorMetrics {
    pub(crate) fn register(&self, registry: &mut Registry) {
        let r = registry;
        r.register("tarsier_collector_lines_read", "Log lines read from files", self.lines_read.clone());
        r.register("tarsier_collector_bytes_read", "Bytes read from log files", self.bytes_read.clone());
        r.register("tarsier_collector_lines_sent", "Log records acknowledged by the log sink", self.lines_sent.clone());
        r.register(
            "tarsier_collector_samples_sent",
            "Samples acknowledged by the metric sink",
            self.samples_sent.clone(),
        );
        r.register(
            "tarsier_collector_dropped",
            "Records or samples dropped, by kind and reason (permanent sink rejections)",
            self.dropped.clone(),
        );
        r.register(
            "tarsier_collector_lines_truncated",
            "Lines longer than tail.max_line_bytes, truncated",
            self.lines_truncated.clone(),
        );
        r.register("tarsier_collector_open_files", "Log files held open", self.open_files.clone());
        r.register("tarsier_collector_rotations", "Rename rotations and deletions seen", self.rotations.clone());
        r.register(
            "tarsier_collector_truncations",
            "Files found shorter than the read offset (copytruncate), restarted at 0",
            self.truncations.clone(),
        );
        r.register(
            "tarsier_collector_read_paused",
            "1 while reading waits for the shipper (backpressure), else 0",
            self.read_paused.clone(),
        );
        r.register(
            "tarsier_collector_file_lag_bytes",
            "Bytes written to a file but not yet read, by path",
            self.file_lag_bytes.clone(),
        );
        r.register(
            "tarsier_collector_send_retries",
            "Failed deliveries that were retried, by kind",
            self.send_retries.clone(),
        );
        r.register(
            "tarsier_collector_scrapes",
            "Scrapes by job and result (success, failure; skipped: due while the last one waited for the shipper)",
            self.scrapes.clone(),
        );
        r.register("tarsier_collector_buffer_bytes", "Bytes in the log disk buffer", self.buffer_bytes.clone());
        r.register(
            "tarsier_collector_buffer_full",
            "1 while the log disk buffer is full and reading waits for the sink, else 0",
            self.buffer_full.clone(),
        );
        r.register(
            "tarsier_collector_buffered_batches",
            "Log batches written to the disk buffer because the sink failed",
            self.buffered_batches.clone(),
        );
        r.register(
            "tarsier_collector_samples_buffer_bytes",
            "Bytes in the samples disk buffer",
            self.samples_buffer_bytes.clone(),
        );
        r.register(
            "tarsier_collector_samples_buffer_full",
            "1 while the samples disk buffer is full and scrapes wait for the sink, else 0",
            self.samples_buffer_full.clone(),
        );
        r.register(
            "tarsier_collector_samples_buffered_batches",
            "Sample batches written to the disk buffer because the sink failed",
            self.samples_buffered_batches.clone(),
        );
        r.register(
            "tarsier_collector_duplicates_after_restart",
            "Lines read again after a restart that had been sent before it without an acknowledgement",
            self.duplicates_after_restart.clone(),
        );
        r.register(
            "tarsier_collector_kubernetes_metadata_missing",
            "Pod log files shipped with their path's labels only: the pod's API metadata did not arrive in time",
            self.metadata_missing.clone(),
        );
    }

    pub(crate) fn count_drop(&self, kind: &str, reason: &str, n: u64) {
        self.dropped
            .get_or_create(&vec![("kind".to_string(), kind.to_string()), ("reason".to_string(), reason.to_string())])
            .inc_by(n);
    }
}
