//! `Tsdb`: the public face of the store, tying tenants' heads, the WAL and the PromQL engine
//! together.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use model::{HistogramSample, Labels, Sample, TenantId, TimeSeries};
use parking_lot::{Mutex, RwLock};
use promql_parser::label::Matcher;

use crate::block::Block;
use crate::blocks::{self, TenantBlocks};
use crate::config::TsdbConfig;
use crate::error::{Error, Result};
use crate::head::{Appended, Rejection, TenantHead};
use crate::histogram_head::HistogramHead;
use crate::metrics::TsdbMetrics;
use crate::promql::{self, EngineOptions, QueryResult, Queryable};
use crate::status::{self, MetadataStore, MetricMetadata, TsdbStatus};
use crate::wal::{GroupSync, Record, Wal};

/// When an append returns relative to its fsync.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Durability {
    /// After the WAL fsync covering it: the caller acknowledges to someone outside.
    Synced,
    /// Before it, unless `tsdb.scrape_sync_interval` passed since the last fsync.
    Deferred,
}

/// What one `append` call did. Rejected samples never cause accepted ones to be lost.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AppendStats {
    /// Samples now stored (including exact duplicates of stored samples, which are idempotent).
    pub samples_appended: u64,
    /// Samples refused (out of order, conflicting duplicate, series limit, bad labels).
    pub samples_rejected: u64,
    /// Series seen for the first time.
    pub series_created: u64,
    /// The first rejection's reason, for the client.
    pub first_error: Option<String>,
}

/// A tenant's head statistics (for `/api/v1/status/tsdb`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TsdbStats {
    pub head_series: u64,
    pub head_samples: u64,
    pub head_chunk_bytes: u64,
    pub min_time_ms: Option<i64>,
    pub max_time_ms: Option<i64>,
    /// Bytes in all WAL segments (shared by every tenant).
    pub wal_bytes: u64,
    /// The tenant's blocks on disk.
    pub blocks: u64,
    pub block_bytes: u64,
    pub block_samples: u64,
}

pub(crate) type SharedHead = Arc<RwLock<TenantHead>>;

/// Series a metadata lookup handles between two clock reads of its deadline.
const LOOKUP_CHECK_EVERY: usize = 256;

/// The metric store. Share it as `Arc<Tsdb>`; every method blocks (wrap in `spawn_blocking`).
pub struct Tsdb {
    pub(crate) config: TsdbConfig,
    pub(crate) dir: PathBuf,
    pub(crate) tenants: RwLock<HashMap<TenantId, SharedHead>>,
    /// Per tenant, the blocks on disk. Lock order: a tenant's head before this map.
    pub(crate) blocks: RwLock<HashMap<TenantId, TenantBlocks>>,
    pub(crate) wal: Mutex<Wal>,
    wal_sync: GroupSync,
    next_series_id: AtomicU64,
    pub(crate) metrics: TsdbMetrics,
    /// Serialises maintenance runs (cutting, compaction, retention).
    pub(crate) maintenance: Mutex<()>,
    /// TYPE/HELP/UNIT per tenant, from remote_write metadata (in memory: senders resend it).
    metadata: RwLock<HashMap<TenantId, MetadataStore>>,
    /// Native-histogram series per tenant (`histogram_head.rs`), logged to the WAL like floats.
    pub(crate) histograms: RwLock<HashMap<TenantId, HistogramHead>>,
}

impl Tsdb {
    /// Opens the store in `dir` (created if missing): loads its blocks and replays its WAL.
    pub fn open(dir: &Path, config: TsdbConfig) -> Result<Tsdb> {
        config.validate()?;
        let started = Instant::now();
        let blocks = blocks::open_all(&dir.join("blocks"))?;
        let mut tenants: HashMap<TenantId, SharedHead> = HashMap::new();
        // What is in a block must not come back from the WAL into the head.
        for (tenant, list) in &blocks {
            let min_valid_t = list.iter().map(|b| b.meta.max_time_ms).max().unwrap_or(i64::MIN);
            let head = TenantHead { min_valid_t, ..TenantHead::default() };
            tenants.insert(tenant.clone(), Arc::new(RwLock::new(head)));
        }
        let mut owner: HashMap<u64, TenantId> = HashMap::new();
        let mut max_id = 0u64;
        let mut samples = 0u64;
        let mut orphan_samples = 0u64;
        let mut histograms: HashMap<TenantId, HistogramHead> = HashMap::new();
        let mut histogram_samples = 0u64;
        let (wal, stats) = Wal::open(&dir.join("wal"), config.wal_segment_bytes, |record| match record {
            Record::Series { tenant, series } => {
                let Ok(tenant) = TenantId::new(&tenant) else { return };
                let head = tenants.entry(tenant.clone()).or_default();
                let mut head = head.write();
                for (id, labels) in series {
                    max_id = max_id.max(id);
                    owner.insert(id, tenant.clone());
                    head.add_series(id, labels);
                }
            }
            Record::Samples(batch) => {
                for (id, t, v) in batch {
                    let Some(head) = owner.get(&id).and_then(|t| tenants.get(t)) else {
                        orphan_samples += 1;
                        continue;
                    };
                    // Everything in the WAL was accepted once, so no window applies on replay.
                    if head.write().append(id, t, v, i64::MAX) == Ok(Appended::Stored) {
                        samples += 1;
                    }
                }
            }
            Record::Histograms { tenant, series } => {
                let Ok(tenant) = TenantId::new(&tenant) else { return };
                // What is in a block already stays there (as for float samples).
                let floor = tenants.get(&tenant).map_or(i64::MIN, |h| h.read().min_valid_t);
                let head = histograms.entry(tenant).or_default();
                for (labels, batch) in series {
                    let batch: Vec<HistogramSample> = batch.into_iter().filter(|s| s.timestamp_ms >= floor).collect();
                    if !batch.is_empty() {
                        histogram_samples += head.append(&labels, &batch) as u64;
                    }
                }
            }
        })?;
        let metrics = TsdbMetrics::default();
        let series: usize = tenants.values().map(|h| h.read().index.len()).sum();
        metrics.head_series.set(series as i64);
        metrics.wal_corruptions.inc_by(stats.truncated_tails);
        let seconds = started.elapsed().as_secs_f64();
        tracing::info!(
            dir = %dir.display(),
            blocks = blocks.values().map(Vec::len).sum::<usize>(),
            records = stats.records,
            series,
            samples,
            orphan_samples,
            histogram_samples,
            seconds,
            samples_per_second = samples as f64 / seconds.max(1e-9),
            "wal replayed"
        );
        Ok(Tsdb {
            config,
            dir: dir.to_path_buf(),
            tenants: RwLock::new(tenants),
            blocks: RwLock::new(blocks),
            wal: Mutex::new(wal),
            wal_sync: GroupSync::default(),
            next_series_id: AtomicU64::new(max_id + 1),
            metrics,
            maintenance: Mutex::new(()),
            metadata: RwLock::new(HashMap::new()),
            histograms: RwLock::new(histograms),
        })
    }

    pub(crate) fn head(&self, tenant: &TenantId) -> Option<SharedHead> {
        self.tenants.read().get(tenant).cloned()
    }

    pub(crate) fn head_or_create(&self, tenant: &TenantId) -> SharedHead {
        if let Some(head) = self.head(tenant) {
            return head;
        }
        self.tenants.write().entry(tenant.clone()).or_default().clone()
    }

    /// Stores samples; on `Ok` the accepted ones are fsync'ed to the WAL. Bad samples are counted
    /// and described in `first_error` without failing the call. On `Err` (I/O) the samples may be
    /// visible to queries but are not durable; the client should retry (retries are idempotent).
    pub fn append(&self, tenant: &TenantId, series: &[TimeSeries]) -> Result<AppendStats> {
        self.append_with(tenant, series, None, Durability::Synced)
    }

    /// Stores samples nobody outside this process waits on (the in-process scraper of `tarsier
    /// run`), as Prometheus stores its scrapes: written to the WAL at once, fsynced with the first
    /// append at least `tsdb.scrape_sync_interval` after the last fsync (and by any synced append
    /// or [`Tsdb::flush`] before that). A crash of the process loses nothing written; a crash of
    /// the machine loses at most that interval of scraped samples (plus what the kernel had not
    /// written back, if no append came after them).
    pub fn append_scraped(&self, tenant: &TenantId, series: &[TimeSeries]) -> Result<AppendStats> {
        self.append_with(tenant, series, None, Durability::Deferred)
    }

    /// [`Tsdb::append_scraped`] with series references, as Prometheus's scrape cache keeps them:
    /// `refs[i]`, when not 0, is what this call answered for `series[i]` on an earlier append; on
    /// return `refs` holds one reference per series (0 where it was rejected). A reference skips
    /// the lookup of the series by its labels. References are never reused, so one whose series
    /// left the head (or belongs to another tenant) is simply not found and the labels are used.
    /// The caller must pass a reference only with the labels it was answered for.
    pub fn append_scraped_with_refs(
        &self,
        tenant: &TenantId,
        series: &[TimeSeries],
        refs: &mut Vec<u64>,
    ) -> Result<AppendStats> {
        refs.resize(series.len(), 0);
        self.append_with(tenant, series, Some(refs), Durability::Deferred)
    }

    fn append_with(
        &self,
        tenant: &TenantId,
        series: &[TimeSeries],
        mut refs: Option<&mut [u64]>,
        durability: Durability,
    ) -> Result<AppendStats> {
        {
            // Records an earlier write could not store (disk full) go first; while the disk is
            // still full this append fails here, before it changes the head.
            let mut wal = self.wal.lock();
            if wal.has_pending() {
                let (written, _) = wal.write(&[])?;
                self.metrics.wal_bytes_written.inc_by(written);
            }
        }
        let shared_head = self.head_or_create(tenant);
        let mut head = shared_head.write();
        let window_ms = self.config.out_of_order_window.as_millis().min(i64::MAX as u128) as i64;
        let mut stats = AppendStats::default();
        let mut new_series = Vec::new();
        let mut logged = Vec::new();
        let reject = |stats: &mut AppendStats, n: u64, reason: String| {
            stats.samples_rejected += n;
            if stats.first_error.is_none() {
                stats.first_error = Some(reason);
            }
        };
        for (i, ts) in series.iter().enumerate() {
            // A reference this method answered is never reused for other labels (ids only grow),
            // so one found in this tenant's head is the series; otherwise the labels decide.
            let known = match refs.as_deref_mut().and_then(|refs| refs.get_mut(i)) {
                Some(slot) => std::mem::take(slot),
                None => 0,
            };
            let known = Some(known).filter(|id| *id != 0 && head.series.contains_key(id));
            // A set the index holds was checked when it was added, so only new ones are
            // validated. Looking up a set the index already shares (a scraper's cached labels)
            // costs one hash of a `u64` and one pointer comparison.
            let id = match known.or_else(|| head.index.get(&ts.labels)) {
                Some(id) => id,
                None => {
                    if let Err(e) = ts.labels.validate() {
                        self.metrics.samples_rejected_other.inc_by(ts.samples.len() as u64);
                        reject(&mut stats, ts.samples.len() as u64, format!("series {}: {e}", ts.labels));
                        continue;
                    }
                    if ts.labels.is_empty() {
                        reject(&mut stats, ts.samples.len() as u64, "series with no labels".to_string());
                        continue;
                    }
                    if head.index.len() >= self.config.max_series_per_tenant {
                        self.metrics.series_rejected_limit.inc();
                        self.metrics.samples_rejected_other.inc_by(ts.samples.len() as u64);
                        let limit = Error::SeriesLimit { limit: self.config.max_series_per_tenant };
                        reject(&mut stats, ts.samples.len() as u64, format!("series {}: {limit}", ts.labels));
                        continue;
                    }
                    let id = self.next_series_id.fetch_add(1, Ordering::Relaxed);
                    head.add_series(id, ts.labels.clone());
                    new_series.push((id, ts.labels.clone()));
                    stats.series_created += 1;
                    id
                }
            };
            if let Some(slot) = refs.as_deref_mut().and_then(|refs| refs.get_mut(i)) {
                *slot = id;
            }
            head.append_all(id, &ts.samples, window_ms, |s, result| match result {
                Ok(Appended::Stored) => {
                    logged.push((id, s.timestamp_ms, s.value));
                    stats.samples_appended += 1;
                }
                Ok(Appended::AlreadyPresent) => stats.samples_appended += 1,
                Err(rejection) => {
                    if matches!(rejection, Rejection::OutOfOrder { .. } | Rejection::TooOld { .. }) {
                        self.metrics.samples_rejected_out_of_order.inc();
                    } else {
                        self.metrics.samples_rejected_other.inc();
                    }
                    reject(&mut stats, 1, format!("series {}: {rejection}", ts.labels));
                }
            });
        }
        let mut records = Vec::new();
        if !new_series.is_empty() {
            records.push(Record::Series { tenant: tenant.as_str().to_string(), series: new_series });
        }
        if !logged.is_empty() {
            records.push(Record::Samples(logged));
        }
        // Written in head order under the head's lock; made durable after it is released, by a
        // group fsync shared with the other writers. Also with nothing new: samples found already
        // present may have been written by a request whose fsync has not finished (or failed), and
        // are acknowledged only once durable.
        let (written, position) = self.wal.lock().write(&records)?;
        drop(head);
        self.metrics.wal_bytes_written.inc_by(written);
        let sync = match durability {
            Durability::Synced => true,
            Durability::Deferred => self.wal_sync.sync_due(self.config.scrape_sync_interval),
        };
        if sync && self.wal_sync.wait_durable(&self.wal, position)? {
            self.metrics.wal_fsyncs.inc();
        }
        self.metrics.samples_appended.inc_by(stats.samples_appended);
        self.metrics.series_created.inc_by(stats.series_created);
        self.metrics.head_series.inc_by(stats.series_created as i64);
        Ok(stats)
    }

    /// Fsyncs the WAL; call at shutdown after the last append.
    pub fn flush(&self) -> Result<()> {
        self.wal.lock().sync()
    }

    pub(crate) fn blocks_of(&self, tenant: &TenantId) -> TenantBlocks {
        self.blocks.read().get(tenant).cloned().unwrap_or_default()
    }

    /// Oldest timestamp queries may see: `retention` back from the tenant's newest sample.
    fn retention_floor(&self, head: Option<&TenantHead>, blocks: &[Arc<Block>]) -> i64 {
        let newest_block = blocks.last().map(|b| b.meta.max_time_ms - 1);
        let newest = head.and_then(|h| h.max_t).max(newest_block);
        newest.map_or(i64::MIN, |max| max.saturating_sub(self.config.retention_ms()))
    }

    /// Series matching any of the `match[]` selectors (all series if empty) with samples in
    /// `[start_ms, end_ms]`, sorted. Bounded by `tsdb.query_timeout` like a query: a lookup over
    /// millions of series stops with [`Error::Timeout`] instead of holding a query slot.
    pub fn series(&self, tenant: &TenantId, matchers: &[String], start_ms: i64, end_ms: i64) -> Result<Vec<Labels>> {
        let mut sets = parse_match_params(matchers)?;
        if sets.is_empty() {
            sets.push(Vec::new());
        }
        let deadline = std::time::Instant::now() + self.config.query_timeout;
        let check = |i: usize| {
            if i.is_multiple_of(LOOKUP_CHECK_EVERY) && std::time::Instant::now() >= deadline {
                return Err(Error::Timeout("series lookup".into()));
            }
            Ok(())
        };
        let head = self.head(tenant);
        let head = head.as_ref().map(|h| h.read());
        let mut out: Vec<Labels> = Vec::new();
        // Blocks are read after the head: a block cut meanwhile is then already listed.
        let blocks = self.blocks_of(tenant);
        let start = start_ms.max(self.retention_floor(head.as_deref(), &blocks));
        if let Some(head) = &head {
            for ms in &sets {
                for (i, id) in head.index.select(ms).into_iter().enumerate() {
                    check(i)?;
                    let Some(s) = head.series.get(&id) else { continue };
                    let visible = s.oldest_t().is_some_and(|o| o <= end_ms) && s.newest_t().is_some_and(|n| n >= start);
                    out.extend(visible.then(|| head.index.labels(id).cloned()).flatten());
                }
            }
        }
        drop(head);
        for block in blocks.iter().filter(|b| b.meta.max_time_ms > start && b.meta.min_time_ms <= end_ms) {
            for ms in &sets {
                for (i, id) in block.select_ids(ms, start, end_ms).into_iter().enumerate() {
                    check(i)?;
                    out.push(block.labels(id).clone());
                }
            }
        }
        let matches =
            |labels: &Labels| sets.iter().any(|ms| ms.iter().all(|m| m.is_match(labels.get(&m.name).unwrap_or(""))));
        if let Some(h) = self.histograms.read().get(tenant) {
            out.extend(h.labels(start, end_ms).filter(|l| matches(l)).cloned());
        }
        for block in blocks.iter().filter(|b| b.meta.max_time_ms > start && b.meta.min_time_ms <= end_ms) {
            if let Some(h) = &block.histograms {
                out.extend(h.labels(start, end_ms).filter(|l| matches(l)).cloned());
            }
        }
        check(0)?;
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// Label names of the matching series, sorted.
    pub fn label_names(
        &self,
        tenant: &TenantId,
        matchers: &[String],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<String>> {
        let series = self.series(tenant, matchers, start_ms, end_ms)?;
        let mut names: Vec<String> = series.iter().flat_map(|ls| ls.iter().map(|l| l.name.clone())).collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// Values of label `name` over the matching series, sorted.
    pub fn label_values(
        &self,
        tenant: &TenantId,
        name: &str,
        matchers: &[String],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<String>> {
        let series = self.series(tenant, matchers, start_ms, end_ms)?;
        let mut values: Vec<String> = series.iter().filter_map(|ls| ls.get(name).map(str::to_string)).collect();
        values.sort();
        values.dedup();
        Ok(values)
    }

    fn engine_options(&self) -> EngineOptions {
        EngineOptions {
            lookback_delta_ms: self.config.lookback_delta.as_millis() as i64,
            timeout: self.config.query_timeout,
            max_samples: self.config.max_samples_per_query,
            default_subquery_step_ms: 60_000,
        }
    }

    fn querier<'a>(&'a self, tenant: &'a TenantId) -> StoreQuerier<'a> {
        StoreQuerier { db: self, tenant }
    }

    /// Evaluates `query` at `time_ms`.
    pub fn instant_query(&self, tenant: &TenantId, query: &str, time_ms: i64) -> Result<QueryResult> {
        self.instant_query_annotated(tenant, query, time_ms).map(|(result, _)| result)
    }

    /// Evaluates `query` at `time_ms`, with Prometheus's warn and info annotations.
    pub fn instant_query_annotated(
        &self,
        tenant: &TenantId,
        query: &str,
        time_ms: i64,
    ) -> Result<(QueryResult, promql::Annotations)> {
        self.metrics.queries.inc();
        let result = promql::instant_query_annotated(&self.querier(tenant), &self.engine_options(), query, time_ms);
        if result.is_err() {
            self.metrics.query_errors.inc();
        }
        result
    }

    /// Evaluates `query` at every step from `start_ms` to `end_ms`.
    pub fn range_query(
        &self,
        tenant: &TenantId,
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> Result<QueryResult> {
        self.range_query_annotated(tenant, query, start_ms, end_ms, step_ms).map(|(result, _)| result)
    }

    /// Evaluates `query` over a range, with Prometheus's warn and info annotations.
    pub fn range_query_annotated(
        &self,
        tenant: &TenantId,
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> Result<(QueryResult, promql::Annotations)> {
        self.metrics.queries.inc();
        let result = promql::range_query_annotated(
            &self.querier(tenant),
            &self.engine_options(),
            query,
            start_ms,
            end_ms,
            step_ms,
        );
        if result.is_err() {
            self.metrics.query_errors.inc();
        }
        result
    }

    /// Registers the store's self-metrics.
    pub fn register_metrics(&self, registry: &mut prometheus_client::registry::Registry) {
        self.metrics.register(registry);
    }

    /// Head and block statistics of one tenant.
    pub fn stats(&self, tenant: &TenantId) -> TsdbStats {
        let wal_bytes = self.wal.lock().total_bytes();
        let blocks = self.blocks_of(tenant);
        let mut stats = TsdbStats {
            wal_bytes,
            blocks: blocks.len() as u64,
            block_bytes: blocks.iter().map(|b| b.bytes).sum(),
            block_samples: blocks.iter().map(|b| b.meta.samples).sum(),
            ..TsdbStats::default()
        };
        if let Some(head) = self.head(tenant) {
            let head = head.read();
            stats.head_series = head.index.len() as u64;
            stats.head_samples = head.samples;
            stats.head_chunk_bytes = head.series.values().map(|s| s.chunk_bytes() as u64).sum();
            stats.min_time_ms = head.min_t();
            stats.max_time_ms = head.max_t;
        }
        stats
    }

    /// Cardinality statistics of the tenant's head (`/api/v1/status/tsdb`), top `limit` each.
    pub fn status(&self, tenant: &TenantId, limit: usize) -> TsdbStatus {
        let head = self.head(tenant);
        let head = head.as_ref().map(|h| h.read());
        let histograms = self.histograms.read();
        status::head_status(head.as_deref(), histograms.get(tenant), limit)
    }

    /// The tenants with series in the head or blocks on disk, sorted (the UI's tenant picker).
    pub fn tenants(&self) -> Vec<TenantId> {
        let mut out: Vec<TenantId> = self.tenants.read().keys().cloned().collect();
        out.extend(self.blocks.read().keys().cloned());
        out.sort();
        out.dedup();
        out
    }

    /// Stores native-histogram samples; on `Ok` they are fsync'ed to the WAL (as for
    /// [`Tsdb::append`]). Refused samples are counted in the returned stats with the first
    /// reason, as float ones are, and the rest is stored: a series with a bad label set, and
    /// samples older than the tenant's newest block (out of bounds, counted as out of order).
    pub fn append_histograms(
        &self,
        tenant: &TenantId,
        series: &[(Labels, Vec<HistogramSample>)],
    ) -> Result<AppendStats> {
        let mut stats = AppendStats::default();
        let refuse = |stats: &mut AppendStats, n: usize, reason: String| {
            stats.samples_rejected += n as u64;
            stats.first_error.get_or_insert(reason);
        };
        let mut valid = Vec::with_capacity(series.len());
        for (labels, samples) in series.iter().filter(|(_, samples)| !samples.is_empty()) {
            match labels.validate() {
                Err(e) => refuse(&mut stats, samples.len(), format!("series {labels}: {e}")),
                Ok(()) if labels.is_empty() => refuse(&mut stats, samples.len(), "series with no labels".to_string()),
                Ok(()) => valid.push((labels, samples)),
            }
        }
        self.metrics.samples_rejected_other.inc_by(stats.samples_rejected);
        if valid.is_empty() {
            return Ok(stats);
        }
        {
            // As in `append`: records a full disk held back go first.
            let mut wal = self.wal.lock();
            if wal.has_pending() {
                let (written, _) = wal.write(&[])?;
                self.metrics.wal_bytes_written.inc_by(written);
            }
        }
        // The float head's lock (read) is held while appending: a cut raises `min_valid_t` under
        // its write lock before it copies the histograms it moves into a block.
        let shared_head = self.head_or_create(tenant);
        let float_head = shared_head.read();
        let min_valid = float_head.min_valid_t;
        let mut too_old = 0u64;
        let series: Vec<(Labels, Vec<HistogramSample>)> = valid
            .into_iter()
            .filter_map(|(labels, samples)| {
                let kept: Vec<HistogramSample> =
                    samples.iter().filter(|s| s.timestamp_ms >= min_valid).cloned().collect();
                if let Some(old) = samples.iter().find(|s| s.timestamp_ms < min_valid) {
                    too_old += (samples.len() - kept.len()) as u64;
                    let rejection = Rejection::TooOld { t: old.timestamp_ms, min_valid };
                    refuse(&mut stats, samples.len() - kept.len(), format!("series {labels}: {rejection}"));
                }
                (!kept.is_empty()).then(|| (labels.clone(), kept))
            })
            .collect();
        if too_old > 0 {
            self.metrics.samples_rejected_out_of_order.inc_by(too_old);
            tracing::debug!(tenant = %tenant, samples = too_old, min_valid_t = min_valid, "histogram samples older than the newest block refused");
        }
        if series.is_empty() {
            return Ok(stats);
        }
        let mut all = self.histograms.write();
        let head = all.entry(tenant.clone()).or_default();
        let stored: u64 = series.iter().map(|(labels, samples)| head.append(labels, samples) as u64).sum();
        // Written under the lock so WAL order equals memory order; fsync'ed after it is released.
        let record = Record::Histograms { tenant: tenant.as_str().to_string(), series };
        let (written, position) = self.wal.lock().write(std::slice::from_ref(&record))?;
        drop(all);
        drop(float_head);
        self.metrics.wal_bytes_written.inc_by(written);
        if self.wal_sync.wait_durable(&self.wal, position)? {
            self.metrics.wal_fsyncs.inc();
        }
        self.metrics.samples_appended.inc_by(stored);
        stats.samples_appended = stored;
        Ok(stats)
    }

    /// Remembers a metric family's TYPE/HELP/UNIT (from remote_write metadata or a scrape).
    pub fn record_metadata(&self, tenant: &TenantId, metric: &str, meta: MetricMetadata) {
        self.metadata.write().entry(tenant.clone()).or_default().record(metric, meta);
    }

    /// `/api/v1/metadata`: per metric name its metadata entries (limits of 0 mean none).
    pub fn metadata(
        &self,
        tenant: &TenantId,
        metric: Option<&str>,
        limit: usize,
        limit_per_metric: usize,
    ) -> std::collections::BTreeMap<String, Vec<MetricMetadata>> {
        self.metadata.read().get(tenant).map(|m| m.query(metric, limit, limit_per_metric)).unwrap_or_default()
    }

    /// The data directory (blocks/ and wal/ below it).
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Parses Prometheus `match[]` parameters into matcher sets.
fn parse_match_params(params: &[String]) -> Result<Vec<Vec<Matcher>>> {
    params.iter().map(|p| promql::parse_series_selector(p)).collect()
}

/// Reads a tenant's blocks and head for the engine.
struct StoreQuerier<'a> {
    db: &'a Tsdb,
    tenant: &'a TenantId,
}

impl Queryable for StoreQuerier<'_> {
    fn select(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Result<Vec<(Labels, Vec<Sample>)>> {
        let head = self.db.head(self.tenant);
        let head = head.as_ref().map(|h| h.read());
        let mut head_part: Vec<(Labels, Vec<Sample>)> = Vec::new();
        let blocks = self.db.blocks_of(self.tenant);
        let floor = self.db.retention_floor(head.as_deref(), &blocks).max(mint);
        if let Some(head) = &head {
            for id in head.index.select(matchers) {
                let (Some(labels), Some(series)) = (head.index.labels(id), head.series.get(&id)) else { continue };
                head_part.push((labels.clone(), series.samples(floor, maxt)));
            }
        }
        drop(head);
        // Blocks are listed after the head was read: a block cut meanwhile is then already here.
        let blocks = self.db.blocks_of(self.tenant);
        let mut out: BTreeMap<Labels, Vec<Sample>> = BTreeMap::new();
        for block in blocks.iter().filter(|b| b.meta.max_time_ms > floor && b.meta.min_time_ms <= maxt) {
            let ids = block.select_ids(matchers, floor, maxt);
            for (id, samples) in ids.iter().zip(block.read(&ids, floor, maxt)?) {
                blocks::append_samples(out.entry(block.labels(*id).clone()).or_default(), samples);
            }
        }
        for (labels, samples) in head_part {
            blocks::append_samples(out.entry(labels).or_default(), samples);
        }
        Ok(out.into_iter().collect())
    }

    fn select_histograms(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<(Labels, Vec<HistogramSample>)>> {
        let head_part =
            self.db.histograms.read().get(self.tenant).map(|h| h.select(matchers, mint, maxt)).unwrap_or_default();
        // Blocks are listed after the head was read: a cut pushes its block before it drops the
        // samples from the histogram head, so they are in one or the other (or both, merged).
        let blocks = self.db.blocks_of(self.tenant);
        let mut out: BTreeMap<Labels, Vec<HistogramSample>> = BTreeMap::new();
        for block in blocks.iter().filter(|b| b.meta.max_time_ms > mint && b.meta.min_time_ms <= maxt) {
            let Some(h) = &block.histograms else { continue };
            for (labels, samples) in h.select(matchers, mint, maxt)? {
                blocks::append_samples(out.entry(labels).or_default(), samples);
            }
        }
        for (labels, samples) in head_part {
            blocks::append_samples(out.entry(labels).or_default(), samples);
        }
        Ok(out.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use model::{Labels, Sample};

    use super::*;

    fn batch(t: i64) -> Vec<TimeSeries> {
        vec![TimeSeries::new(Labels::from_pairs([("__name__", "up"), ("job", "self")]), vec![Sample::new(t, 1.0)])]
    }

    #[test]
    fn scraped_appends_share_one_fsync_per_interval_and_synced_ones_cover_them() {
        let dir = tempfile::tempdir().unwrap();
        let tenant = TenantId::default_tenant();
        let config = TsdbConfig { scrape_sync_interval: Duration::from_secs(3600), ..TsdbConfig::default() };
        let db = Tsdb::open(dir.path(), config).unwrap();
        for t in 1..=5 {
            assert_eq!(db.append_scraped(&tenant, &batch(t * 1000)).unwrap().samples_appended, 1);
        }
        assert_eq!(db.metrics.wal_fsyncs.get(), 0, "within the interval scraped appends do not fsync");
        assert_eq!(db.stats(&tenant).head_samples, 5, "but are visible at once");
        db.append(&tenant, &batch(6000)).unwrap();
        assert_eq!(db.metrics.wal_fsyncs.get(), 1, "a synced append fsyncs, covering the scraped ones before it");
        drop(db);
        let db = Tsdb::open(dir.path(), TsdbConfig::default()).unwrap();
        assert_eq!(db.stats(&tenant).head_samples, 6, "everything written is replayed");

        let every_batch = TsdbConfig { scrape_sync_interval: Duration::ZERO, ..TsdbConfig::default() };
        let dir = tempfile::tempdir().unwrap();
        let db = Tsdb::open(dir.path(), every_batch).unwrap();
        for t in 1..=3 {
            db.append_scraped(&tenant, &batch(t * 1000)).unwrap();
        }
        assert_eq!(db.metrics.wal_fsyncs.get(), 3, "an interval of 0 fsyncs every batch");
    }

    #[test]
    fn series_refs_skip_the_label_lookup_and_unknown_ones_fall_back_to_the_labels() {
        let dir = tempfile::tempdir().unwrap();
        let db = Tsdb::open(dir.path(), TsdbConfig::default()).unwrap();
        let tenant = TenantId::default_tenant();
        let series = |name: &str| Labels::from_pairs([("__name__", name), ("job", "node")]);
        let scrape = |t: i64| -> Vec<TimeSeries> {
            ["a", "b", "0-not-a-metric-name"]
                .iter()
                .map(|name| TimeSeries::new(series(name), vec![Sample::new(t, 1.0)]))
                .collect()
        };
        let mut refs = Vec::new();
        let stats = db.append_scraped_with_refs(&tenant, &scrape(1000), &mut refs).unwrap();
        assert_eq!((stats.series_created, stats.samples_rejected), (2, 1));
        assert!(refs[0] != 0 && refs[1] != 0 && refs[0] != refs[1], "{refs:?}");
        assert_eq!(refs[2], 0, "a rejected series gets no reference");
        let first = refs.clone();

        let stats = db.append_scraped_with_refs(&tenant, &scrape(2000), &mut refs).unwrap();
        assert_eq!((stats.series_created, stats.samples_appended), (0, 2));
        assert_eq!(refs, first);
        // A reference the head does not hold (its series left the head) falls back to the labels.
        let mut gone = vec![u64::MAX - 1, first[1]];
        db.append_scraped_with_refs(&tenant, &scrape(3000), &mut gone).unwrap();
        assert_eq!(gone, first, "missing references are filled in");
        // Another tenant's head does not know them: it gets series of its own.
        let other = TenantId::new("other").unwrap();
        let mut theirs = first.clone();
        let stats = db.append_scraped_with_refs(&other, &scrape(4000), &mut theirs).unwrap();
        assert_eq!(stats.series_created, 2);
        assert!(theirs[0] != first[0] && theirs[1] != first[1]);
        assert_eq!(db.stats(&tenant).head_samples, 6);
        assert_eq!(db.stats(&other).head_samples, 2);
    }
}
