//! The collector's sink inside one process (`tarsier run`): records go straight into the indexer
//! and the tsdb, on the blocking pool. Log batches follow the acknowledgement rule of HTTP: the
//! call returns only once the indexer made the batch durable. Scraped samples are this process's
//! own and are fsynced once per `tsdb.scrape_sync_interval` instead, as Prometheus stores scrapes.

use std::sync::Arc;

use collector::{LogSink, MetricSink, ScrapePushed, SinkError};
use futures::future::BoxFuture;
use model::{LogRecord, TenantId, TimeSeries};

/// Delivers to the local stores.
pub struct LocalSink {
    pub indexer: Arc<indexer::Indexer>,
    pub tsdb: Arc<tsdb::Tsdb>,
}

fn join_error(e: tokio::task::JoinError) -> SinkError {
    SinkError { retryable: true, message: format!("store task failed: {e}") }
}

impl LogSink for LocalSink {
    fn push_logs(&self, tenant: TenantId, records: Vec<LogRecord>) -> BoxFuture<'static, Result<(), SinkError>> {
        let indexer = self.indexer.clone();
        Box::pin(async move {
            let receipt = tokio::task::spawn_blocking(move || indexer.append(&tenant, records))
                .await
                .map_err(join_error)?
                .map_err(|e| SinkError { retryable: e.http_status() >= 500, message: e.to_string() })?;
            // Rejected entries (too old, unparsable) would be rejected again on retry: they are
            // counted by the indexer and the good part of the batch is stored.
            if let Some(first) = receipt.rejected.first() {
                tracing::warn!(rejected = receipt.rejected.len(), first = %first.reason, "indexer rejected log entries");
            }
            Ok(())
        })
    }
}

impl MetricSink for LocalSink {
    fn push_samples(&self, tenant: TenantId, series: Vec<TimeSeries>) -> BoxFuture<'static, Result<(), SinkError>> {
        self.push_series(tenant, Arc::new(series))
    }

    /// Scrape loops append straight into the tsdb: no shipper queue, no batching hop.
    fn takes_scrapes_directly(&self) -> bool {
        true
    }

    /// One scrape with the tsdb's series references (see `Tsdb::append_scraped_with_refs`); the
    /// series go back to the loop once stored.
    fn push_scrape(
        &self,
        tenant: TenantId,
        series: Vec<TimeSeries>,
        refs: Vec<u64>,
    ) -> BoxFuture<'static, ScrapePushed> {
        let tsdb = self.tsdb.clone();
        Box::pin(async move {
            let appended = tokio::task::spawn_blocking(move || {
                let mut refs = refs;
                let appended = tsdb.append_scraped_with_refs(&tenant, &series, &mut refs);
                (refs, series, appended)
            })
            .await;
            let (refs, series, appended) = match appended {
                Ok(done) => done,
                Err(e) => return ScrapePushed { refs: Vec::new(), series: None, result: Err(join_error(e)) },
            };
            let result = appended
                .map(|stats| {
                    if let Some(first) = stats.first_error {
                        tracing::debug!(rejected = stats.samples_rejected, first = %first, "tsdb rejected samples");
                    }
                })
                .map_err(|e| SinkError { retryable: e.http_status() >= 500, message: e.to_string() });
            ScrapePushed { refs, series: Some(series), result }
        })
    }

    /// The tsdb only reads the batch: the shipper's shared copy goes in as it is. These are this
    /// process's own scrapes, which nobody outside waits on: they are fsynced once per
    /// `tsdb.scrape_sync_interval`, not per batch (see `Tsdb::append_scraped`).
    fn push_series(&self, tenant: TenantId, series: Arc<Vec<TimeSeries>>) -> BoxFuture<'static, Result<(), SinkError>> {
        let tsdb = self.tsdb.clone();
        Box::pin(async move {
            let stats = tokio::task::spawn_blocking(move || tsdb.append_scraped(&tenant, &series))
                .await
                .map_err(join_error)?
                .map_err(|e| SinkError { retryable: e.http_status() >= 500, message: e.to_string() })?;
            if let Some(first) = stats.first_error {
                tracing::debug!(rejected = stats.samples_rejected, first = %first, "tsdb rejected samples");
            }
            Ok(())
        })
    }
}
