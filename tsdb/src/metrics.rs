//! Self-metrics of the store, registered into the binary's registry by `Tsdb::register_metrics`.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Handles to every tsdb metric; clones share the same values.
#[derive(Clone, Default)]
pub struct TsdbMetrics {
    pub samples_appended: Counter,
    pub samples_rejected_out_of_order: Counter,
    pub samples_rejected_other: Counter,
    pub series_created: Counter,
    pub series_rejected_limit: Counter,
    pub head_series: Gauge,
    pub wal_bytes_written: Counter,
    pub wal_fsyncs: Counter,
    pub wal_corruptions: Counter,
    pub queries: Counter,
    pub query_errors: Counter,
}

impl TsdbMetrics {
    pub fn register(&self, registry: &mut Registry) {
        let r = registry;
        r.register("tarsier_tsdb_samples_appended", "Samples stored in the head", self.samples_appended.clone());
        r.register(
            "tarsier_tsdb_samples_out_of_order",
            "Samples rejected because they were older than the out-of-order window",
            self.samples_rejected_out_of_order.clone(),
        );
        r.register(
            "tarsier_tsdb_samples_rejected",
            "Samples rejected for other reasons (duplicates, series limit, bad labels)",
            self.samples_rejected_other.clone(),
        );
        r.register("tarsier_tsdb_series_created", "Series created in the head", self.series_created.clone());
        r.register(
            "tarsier_tsdb_series_limit_rejections",
            "New series rejected by max_series_per_tenant",
            self.series_rejected_limit.clone(),
        );
        r.register("tarsier_tsdb_head_series", "Series currently held in the head", self.head_series.clone());
        r.register("tarsier_tsdb_wal_written_bytes", "Bytes written to the WAL", self.wal_bytes_written.clone());
        r.register("tarsier_tsdb_wal_fsyncs", "WAL fsync calls", self.wal_fsyncs.clone());
        r.register(
            "tarsier_tsdb_wal_corruptions",
            "Torn or corrupt WAL tails truncated at startup",
            self.wal_corruptions.clone(),
        );
        r.register("tarsier_tsdb_queries", "PromQL queries executed", self.queries.clone());
        r.register("tarsier_tsdb_query_errors", "PromQL queries that failed", self.query_errors.clone());
    }
}
