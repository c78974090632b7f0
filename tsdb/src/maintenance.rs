//! Background maintenance: cut the head into blocks, checkpoint and truncate the WAL behind them,
//! compact adjacent blocks, and apply age and size retention. One run at a time; every step is
//! crash-safe on its own (blocks appear by rename, sources of a compaction are deleted after the
//! merged block is durable, the WAL is truncated only after a checkpoint is durable).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use model::{HistogramSample, TenantId};

use crate::block::{BLOCK_FORMAT_VERSION, Block, BlockMeta, SeriesData};
use crate::blocks;
use crate::error::Result;
use crate::histogram_head::HistogramHead;
use crate::store::{SharedHead, Tsdb};
use crate::wal::{self, Record};

/// What one maintenance run did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MaintenanceStats {
    pub blocks_written: u64,
    pub samples_moved: u64,
    pub blocks_compacted: u64,
    pub blocks_deleted: u64,
    pub wal_truncated: bool,
}

/// The meta of a block about to be written (`write_block` fills in the counts).
fn block_meta(tenant: &TenantId, (min_t, max_t): (i64, i64), compacted_from: Vec<String>) -> BlockMeta {
    BlockMeta {
        version: BLOCK_FORMAT_VERSION,
        tenant: tenant.as_str().to_string(),
        min_time_ms: min_t,
        max_time_ms: max_t,
        series: 0,
        samples: 0,
        compacted_from,
        histograms: None,
    }
}

/// Samples per WAL record in a checkpoint.
const CHECKPOINT_BATCH: usize = 64 * 1024;

impl Tsdb {
    /// Runs one maintenance pass. Blocks: call from a dedicated thread (see [`spawn_maintenance`]).
    pub fn maintain(&self) -> Result<MaintenanceStats> {
        let _one_at_a_time = self.maintenance.lock();
        let started = Instant::now();
        let mut stats = MaintenanceStats::default();
        let mut tenants: Vec<(TenantId, SharedHead)> =
            self.tenants.read().iter().map(|(t, h)| (t.clone(), h.clone())).collect();
        // A histogram-only tenant gets an (empty) float head too: its `min_valid_t` is what
        // refuses histogram samples for a range already cut into a block.
        let histogram_only: Vec<TenantId> =
            self.histograms.read().keys().filter(|t| !tenants.iter().any(|(x, _)| x == *t)).cloned().collect();
        for tenant in histogram_only {
            let head = self.head_or_create(&tenant);
            tenants.push((tenant, head));
        }
        for (tenant, head) in &tenants {
            while let Some(boundary) = self.next_cut(tenant, head) {
                stats.samples_moved += self.cut(tenant, head, boundary)?;
                stats.blocks_written += 1;
            }
        }
        if stats.blocks_written > 0 {
            self.checkpoint_wal(&tenants)?;
            stats.wal_truncated = true;
        }
        if self.config.compaction {
            for (tenant, head) in &tenants {
                let floor = head.read().min_valid_t;
                loop {
                    let list = self.blocks_of(tenant);
                    let plan =
                        blocks::plan_compaction(&list, self.config.block_ms(), self.config.max_block_ms(), floor);
                    let Some(group) = plan else { break };
                    self.compact(tenant, &group)?;
                    stats.blocks_compacted += group.len() as u64;
                }
            }
        }
        stats.blocks_deleted = self.apply_retention();
        if stats != MaintenanceStats::default() {
            tracing::info!(
                blocks_written = stats.blocks_written,
                samples_moved = stats.samples_moved,
                blocks_compacted = stats.blocks_compacted,
                blocks_deleted = stats.blocks_deleted,
                seconds = started.elapsed().as_secs_f64(),
                "tsdb maintenance done"
            );
        }
        Ok(stats)
    }

    /// The end of the next block to cut, once the head (floats and histograms) spans 1.5 block
    /// durations (so late samples inside the out-of-order window still land in the head).
    fn next_cut(&self, tenant: &TenantId, head: &SharedHead) -> Option<i64> {
        let head = head.read();
        let histograms = self.histograms.read();
        let histograms = histograms.get(tenant);
        let min = head.min_t().into_iter().chain(histograms.and_then(HistogramHead::min_t)).min()?;
        let max = head.max_t.into_iter().chain(histograms.and_then(HistogramHead::max_t)).max()?;
        let block = self.config.block_ms();
        (max.saturating_sub(min) >= block.saturating_add(block / 2))
            .then(|| min.div_euclid(block).saturating_mul(block).saturating_add(block))
    }

    /// Writes the head's samples (floats and histograms) older than `boundary` as a block, then
    /// drops them from the head.
    fn cut(&self, tenant: &TenantId, head: &SharedHead, boundary: i64) -> Result<u64> {
        // From here on the head refuses samples for the block's range, so none can be lost.
        {
            let mut head = head.write();
            head.min_valid_t = head.min_valid_t.max(boundary);
        }
        let series: Vec<SeriesData> = {
            let head = head.read();
            head.series
                .iter()
                .filter(|(_, s)| s.oldest_t().is_some_and(|t| t < boundary))
                .filter_map(|(id, s)| {
                    Some(SeriesData {
                        labels: head.index.labels(*id)?.clone(),
                        samples: s.samples(i64::MIN, boundary - 1),
                    })
                })
                .collect()
        };
        // `append_histograms` checks `min_valid_t` under the head's lock, so no histogram sample
        // older than `boundary` arrives after this copy.
        let histograms: Vec<SeriesData<HistogramSample>> = self
            .histograms
            .read()
            .get(tenant)
            .map(|h| h.select(&[], i64::MIN, boundary - 1))
            .unwrap_or_default()
            .into_iter()
            .map(|(labels, samples)| SeriesData { labels, samples })
            .collect();
        let min_t = boundary - self.config.block_ms();
        let block = self.write_block(tenant, (min_t, boundary), Vec::new(), series, histograms)?;
        let moved = block.meta.samples + block.meta.histograms.as_ref().map_or(0, |h| h.samples);
        let mut head = head.write();
        {
            let mut all = self.blocks.write();
            let list = all.entry(tenant.clone()).or_default();
            list.push(block);
            list.sort_by_key(|b| b.meta.min_time_ms);
        }
        // Queries read the histogram head before listing blocks, so they see these samples in
        // the head or in the block pushed above.
        if let Some(h) = self.histograms.write().get_mut(tenant) {
            h.drop_before(boundary);
        }
        let dropped = head.truncate_before(boundary);
        self.metrics.head_series.dec_by(dropped as i64);
        tracing::info!(tenant = %tenant, min_time_ms = min_t, max_time_ms = boundary, samples = moved, "head cut into a block");
        Ok(moved)
    }

    /// Rotates the WAL, writes what the head still holds as a checkpoint, and deletes the older
    /// segments.
    fn checkpoint_wal(&self, tenants: &[(TenantId, SharedHead)]) -> Result<()> {
        let upto = self.wal.lock().cut_segment()?;
        let dir = self.wal.lock().dir().to_path_buf();
        // Histogram series live in their own head: what a cut left of them stays. Taken after the
        // segment cut, so each sample logged in a covered segment is in memory already (or in a
        // block); one also logged after the cut replays twice, idempotently.
        let histogram_tenants: Vec<TenantId> = self.histograms.read().keys().cloned().collect();
        let mut next = 0;
        let bytes = wal::write_checkpoint(&dir, upto, || {
            next += 1;
            match tenants.get(next - 1) {
                Some((tenant, head)) => Some(snapshot(tenant, head)),
                None => Some(self.histogram_records(histogram_tenants.get(next - 1 - tenants.len())?)),
            }
        })?;
        self.wal.lock().truncate(upto)?;
        tracing::info!(checkpoint_bytes = bytes, upto_segment = upto, "wal truncated behind a checkpoint");
        Ok(())
    }

    /// A tenant's histogram series as WAL records of about `CHECKPOINT_BATCH / 16` samples.
    fn histogram_records(&self, tenant: &TenantId) -> Vec<Record> {
        let all = self.histograms.read();
        let mut records = Vec::new();
        let mut batch = Vec::new();
        let mut samples = 0;
        for (labels, series) in all.get(tenant).into_iter().flat_map(|h| h.all()) {
            samples += series.len();
            batch.push((labels.clone(), series.to_vec()));
            if samples >= CHECKPOINT_BATCH / 16 {
                let series = std::mem::take(&mut batch);
                records.push(Record::Histograms { tenant: tenant.as_str().to_string(), series });
                samples = 0;
            }
        }
        if !batch.is_empty() {
            records.push(Record::Histograms { tenant: tenant.as_str().to_string(), series: batch });
        }
        records
    }

    /// Writes everything `tenant` holds (blocks and head) as one block under `parent`, like
    /// Prometheus's `/api/v1/admin/tsdb/snapshot` with the head: a consistent copy for backups,
    /// and the way benchmarks measure bytes per sample of a whole run. The store is unchanged.
    pub fn snapshot(&self, tenant: &TenantId, parent: &std::path::Path) -> Result<std::path::PathBuf> {
        // The block list is taken under the head's read lock: a cut publishes its block and
        // truncates the head under the write lock, so the pair is from before or after a cut,
        // never a list from before with a head from after (which would miss the moved samples).
        // Compaction and retention swap blocks whose files live on while `list` holds them.
        let (list, head_part, histogram_head) = match self.head(tenant) {
            Some(head) => {
                let head = head.read();
                let list = self.blocks_of(tenant);
                let histograms = self.histogram_head_part(tenant);
                let part: Vec<SeriesData> = head
                    .series
                    .iter()
                    .filter_map(|(id, s)| {
                        Some(SeriesData {
                            labels: head.index.labels(*id)?.clone(),
                            samples: s.samples(i64::MIN, i64::MAX),
                        })
                    })
                    .collect();
                (list, Some(part), histograms)
            }
            None => (self.blocks_of(tenant), None, self.histogram_head_part(tenant)),
        };
        let mut parts: Vec<Vec<SeriesData>> = list.iter().map(|b| b.read_all()).collect::<Result<Vec<_>>>()?;
        parts.extend(head_part);
        let series = blocks::merge(parts);
        let mut histogram_parts = list.iter().map(|b| b.read_all_histograms()).collect::<Result<Vec<_>>>()?;
        histogram_parts.push(histogram_head);
        let histograms = blocks::merge(histogram_parts);
        let firsts = series.iter().filter_map(|s| s.samples.first()).map(|s| s.timestamp_ms);
        let firsts = firsts.chain(histograms.iter().filter_map(|s| s.samples.first()).map(|s| s.timestamp_ms));
        let lasts = series.iter().filter_map(|s| s.samples.last()).map(|s| s.timestamp_ms);
        let lasts = lasts.chain(histograms.iter().filter_map(|s| s.samples.last()).map(|s| s.timestamp_ms));
        let (min_t, max_t) = (firsts.min().unwrap_or(0), lasts.max().map_or(0, |t| t + 1));
        let meta = block_meta(tenant, (min_t, max_t), Vec::new());
        std::fs::create_dir_all(parent).map_err(|e| crate::Error::io(format!("creating {}", parent.display()), e))?;
        let name = blocks::new_name(min_t, max_t);
        crate::block::write_block_with_histograms(parent, &name, meta, series, histograms)
    }

    /// Every histogram series of `tenant`'s head with all its samples.
    fn histogram_head_part(&self, tenant: &TenantId) -> Vec<SeriesData<HistogramSample>> {
        let all = self.histograms.read();
        let series = all.get(tenant).map(|h| h.select(&[], i64::MIN, i64::MAX)).unwrap_or_default();
        series.into_iter().map(|(labels, samples)| SeriesData { labels, samples }).collect()
    }

    /// Writes a block of `tenant` covering `[min_t, max_t)` and opens it.
    fn write_block(
        &self,
        tenant: &TenantId,
        (min_t, max_t): (i64, i64),
        compacted_from: Vec<String>,
        series: Vec<SeriesData>,
        histograms: Vec<SeriesData<HistogramSample>>,
    ) -> Result<Arc<Block>> {
        let meta = block_meta(tenant, (min_t, max_t), compacted_from);
        let parent = self.dir.join("blocks").join(tenant.as_str());
        let name = blocks::new_name(min_t, max_t);
        let dir = crate::block::write_block_with_histograms(&parent, &name, meta.clone(), series, histograms)?;
        let meta = crate::block::read_meta(&dir)?.unwrap_or(meta);
        Ok(Arc::new(Block::open(&dir, meta)?))
    }

    /// Merges `group` (adjacent blocks of one tenant) into one block, then retires the sources.
    fn compact(&self, tenant: &TenantId, group: &[Arc<Block>]) -> Result<()> {
        let parts = group.iter().map(|b| b.read_all()).collect::<Result<Vec<_>>>()?;
        let histograms = group.iter().map(|b| b.read_all_histograms()).collect::<Result<Vec<_>>>()?;
        let min_t = group.iter().map(|b| b.meta.min_time_ms).min().unwrap_or_default();
        let max_t = group.iter().map(|b| b.meta.max_time_ms).max().unwrap_or_default();
        let sources = group.iter().map(|b| b.name.clone()).collect();
        let merged =
            self.write_block(tenant, (min_t, max_t), sources, blocks::merge(parts), blocks::merge(histograms))?;
        let mut all = self.blocks.write();
        let list = all.entry(tenant.clone()).or_default();
        list.retain(|b| !group.iter().any(|g| Arc::ptr_eq(b, g)));
        list.push(merged);
        list.sort_by_key(|b| b.meta.min_time_ms);
        for b in group {
            b.delete_when_unused();
        }
        tracing::info!(tenant = %tenant, sources = group.len(), min_time_ms = min_t, max_time_ms = max_t, "blocks compacted");
        Ok(())
    }

    /// Deletes whole blocks older than `retention` (per tenant, from its newest sample) and, over
    /// `retention_size_bytes`, the oldest blocks of any tenant. Returns how many went.
    fn apply_retention(&self) -> u64 {
        let mut newest: Vec<(TenantId, Option<i64>)> =
            self.tenants.read().iter().map(|(t, h)| (t.clone(), h.read().max_t)).collect();
        // A histogram-only tenant's newest sample is in its histogram head.
        for (tenant, h) in self.histograms.read().iter() {
            match newest.iter_mut().find(|(t, _)| t == tenant) {
                Some((_, max)) => *max = (*max).max(h.max_t()),
                None => newest.push((tenant.clone(), h.max_t())),
            }
        }
        let mut all = self.blocks.write();
        let mut deleted = 0;
        for (tenant, list) in all.iter_mut() {
            let head_max = newest.iter().find(|(t, _)| t == tenant).and_then(|(_, m)| *m);
            let newest = head_max.max(list.last().map(|b| b.meta.max_time_ms - 1));
            let Some(newest) = newest else { continue };
            let floor = newest.saturating_sub(self.config.retention_ms());
            list.retain(|b| {
                let keep = b.meta.max_time_ms > floor;
                if !keep {
                    b.delete_when_unused();
                    deleted += 1;
                }
                keep
            });
        }
        if self.config.retention_size_bytes > 0 {
            let mut total: u64 = all.values().flatten().map(|b| b.bytes).sum();
            while total > self.config.retention_size_bytes {
                let oldest = all
                    .iter()
                    .filter_map(|(t, list)| list.first().map(|b| (t.clone(), b.meta.max_time_ms)))
                    .min_by_key(|(_, max)| *max);
                let Some((tenant, _)) = oldest else { break };
                let list = all.get_mut(&tenant).expect("found above");
                let b = list.remove(0);
                total -= b.bytes;
                b.delete_when_unused();
                deleted += 1;
            }
        }
        all.retain(|_, list| !list.is_empty());
        drop(all);
        // Histogram samples go by age too, from the tenant's newest float or histogram sample.
        let mut histograms = self.histograms.write();
        for (tenant, h) in histograms.iter_mut() {
            let floats = newest.iter().find(|(t, _)| t == tenant).and_then(|(_, m)| *m);
            let blocks = self.blocks.read().get(tenant).and_then(|l| l.last()).map(|b| b.meta.max_time_ms - 1);
            if let Some(newest) = h.max_t().max(floats).max(blocks) {
                h.drop_before(newest.saturating_sub(self.config.retention_ms()));
            }
        }
        histograms.retain(|_, h| h.counts().0 > 0);
        drop(histograms);
        if deleted > 0 {
            tracing::info!(blocks = deleted, "blocks deleted by retention");
        }
        deleted
    }
}

/// The head of one tenant as WAL records: its series, then its samples.
fn snapshot(tenant: &TenantId, head: &SharedHead) -> Vec<Record> {
    let head = head.read();
    let series = head.series.keys().filter_map(|id| Some((*id, head.index.labels(*id)?.clone()))).collect();
    let mut records = vec![Record::Series { tenant: tenant.as_str().to_string(), series }];
    let mut batch = Vec::new();
    for (id, s) in head.series.iter() {
        for sample in s.samples(i64::MIN, i64::MAX) {
            batch.push((*id, sample.timestamp_ms, sample.value));
            if batch.len() >= CHECKPOINT_BATCH {
                records.push(Record::Samples(std::mem::take(&mut batch)));
            }
        }
    }
    if !batch.is_empty() {
        records.push(Record::Samples(batch));
    }
    records
}

/// Stops the maintenance thread when dropped.
pub struct MaintenanceHandle {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for MaintenanceHandle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

/// Runs [`Tsdb::maintain`] every `config.maintenance_interval` on a dedicated thread until the
/// handle is dropped or the store is gone.
pub fn spawn_maintenance(db: &Arc<Tsdb>) -> std::io::Result<MaintenanceHandle> {
    let weak: Weak<Tsdb> = Arc::downgrade(db);
    let every: Duration = db.config.maintenance_interval;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let thread = std::thread::Builder::new().name("tsdb-maintenance".into()).spawn(move || {
        let mut disk_full = false;
        loop {
            let deadline = Instant::now() + every;
            while !flag.load(Ordering::Acquire) && Instant::now() < deadline {
                std::thread::park_timeout(deadline.saturating_duration_since(Instant::now()));
            }
            if flag.load(Ordering::Acquire) {
                return;
            }
            let Some(db) = weak.upgrade() else { return };
            match db.maintain() {
                // A full disk is logged once, not every interval until there is room.
                Err(e) if e.is_storage_full() => {
                    if !std::mem::replace(&mut disk_full, true) {
                        tracing::error!(error = %e, "storage full: tsdb maintenance waits for room");
                    }
                }
                Err(e) => tracing::error!(error = %e, "tsdb maintenance failed"),
                Ok(_) => {
                    if std::mem::take(&mut disk_full) {
                        tracing::info!("storage has room again: tsdb maintenance resumed");
                    }
                }
            }
        }
    })?;
    Ok(MaintenanceHandle { stop, thread: Some(thread) })
}
