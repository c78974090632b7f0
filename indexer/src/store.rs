//! The [`Indexer`]: ties the WAL, the partitions and query execution together.
//!
//! Ingest is a pipeline so that no append waits behind another's fsync or behind a commit:
//! 1. appenders validate and encode their batch in parallel, reserve room in the bounded ingest
//!    queue, then under the short WAL lock write the record (no fsync) and queue the entry;
//! 2. they wait for a group fsync that covers their record ([`SharedWal::sync_to`]): one fsync
//!    acknowledges every append written before it;
//! 3. the one ingest thread hands queued entries to the tantivy writers in WAL order, commits
//!    every `commit_interval` (recording the WAL position it covers, after syncing the WAL up to
//!    it) and runs retention. A commit delays appends only once the queue is full.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use model::{Labels, LogRecord, TenantId};
use parking_lot::{Mutex, RwLock};
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};

use crate::cancel::Cancel;
use crate::config::IndexerConfig;
use crate::error::Error;
use crate::ingest::{Job, Queue};
use crate::logql::{CompiledQuery, CompiledSelector, Expr, parse_expr, parse_selector};
use crate::metric::{MetricQueryRequest, MetricQueryResponse, execute_metric};
use crate::metrics::Metrics;
use crate::partition::{self, Partition};
use crate::query::{LogQueryRequest, LogQueryResponse, Plan, execute};
use crate::term_lists::WordListCache;
use crate::wal::{SharedWal, Wal, WalEntry, encode_record, sync_dir};

const COMMITTED_FILE: &str = "committed.json";
const COMMITTED_FORMAT_VERSION: u32 = 1;
/// Age checks are free and size checks walk partition directories: once a minute keeps a tenant
/// near its byte limit without measurable cost.
const RETENTION_EVERY: Duration = Duration::from_secs(60);
/// Writers unused this long are committed and closed to free their memory budget and threads.
const WRITER_IDLE: Duration = Duration::from_secs(300);

/// What happened to a batch.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct AppendReceipt {
    /// Entries made durable.
    pub accepted: usize,
    /// Entries refused, by index in the batch.
    pub rejected: Vec<RejectedEntry>,
}

/// One refused entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RejectedEntry {
    /// Index of the entry in the appended batch.
    pub index: usize,
    /// Why it was refused.
    pub reason: String,
}

#[derive(Serialize, Deserialize)]
struct Committed {
    version: u32,
    wal_position: u64,
}

struct Inner {
    dir: PathBuf,
    config: IndexerConfig,
    metrics: Metrics,
    /// Decompressed word lists of all partitions, within `config.word_list_cache_bytes`.
    word_lists: Arc<WordListCache>,
    wal: SharedWal,
    queue: Queue,
    /// Set under the WAL lock by shutdown: no entry is queued after the shutdown job.
    closed: AtomicBool,
    /// Set by the ingest thread when indexing fails; appends are refused from then on.
    failed: Mutex<Option<String>>,
    /// The WAL position of the last complete commit (`committed.json`).
    committed: AtomicU64,
    /// Set when a full disk failed indexing or a commit: the writers were dropped, and every
    /// entry from this WAL position on is indexed again from the WAL once there is room.
    reindex_from: Mutex<Option<u64>>,
    partitions: RwLock<BTreeMap<TenantId, Vec<Arc<Partition>>>>,
}

/// The log store. `Send + Sync`; share it as `Arc<Indexer>`. Dropping it without
/// [`Indexer::shutdown`] stops background work but does not commit (like a crash: the WAL
/// replays on the next open).
pub struct Indexer {
    inner: Arc<Inner>,
    ingest_thread: Mutex<Option<JoinHandle<()>>>,
}

impl Indexer {
    /// Opens (or creates) the store in `dir`, replays the WAL and starts the background thread.
    pub fn open(dir: &Path, config: IndexerConfig) -> Result<Indexer, Error> {
        config.validate()?;
        let tenants_dir = dir.join("tenants");
        fs::create_dir_all(&tenants_dir).map_err(|e| Error::io(format!("create {}", tenants_dir.display()), e))?;
        let committed = read_committed(dir)?;
        let metrics = Metrics::default();
        let word_lists = WordListCache::new(
            config.word_list_cache_bytes,
            config.word_list_cache_idle,
            metrics.word_list_cache_bytes.clone(),
            metrics.word_list_cache_evictions.clone(),
        );
        let partitions = open_partitions(&tenants_dir, &word_lists)?;
        let wal = Wal::open(&dir.join("wal"), config.wal_segment_bytes, committed)?;
        metrics.partitions.set(partitions.values().map(Vec::len).sum::<usize>() as i64);
        let inner = Arc::new(Inner {
            dir: dir.to_path_buf(),
            wal: SharedWal::new(wal, metrics.wal_fsyncs.clone()),
            queue: Queue::new(config.ingest_queue_bytes),
            config,
            metrics,
            word_lists,
            closed: AtomicBool::new(false),
            failed: Mutex::new(None),
            committed: AtomicU64::new(committed),
            reindex_from: Mutex::new(None),
            partitions: RwLock::new(partitions),
        });
        let end = inner.wal.with(|wal| -> Result<u64, Error> {
            let mut lines = 0u64;
            wal.replay(committed, &mut |position, entry| {
                lines += entry.records.len() as u64;
                inner.index_entry(&entry.tenant, position, entry.records, true)
            })?;
            inner.metrics.wal_lines_replayed.inc_by(lines);
            tracing::info!(dir = %dir.display(), from = committed, lines, "wal replayed");
            Ok(wal.end_position())
        })?;
        inner.commit(end)?;
        let worker = Arc::clone(&inner);
        let handle = std::thread::Builder::new()
            .name("indexer-ingest".into())
            .spawn(move || worker.ingest_loop(end))
            .map_err(|e| Error::io("spawn indexer ingest thread", e))?;
        Ok(Indexer { inner, ingest_thread: Mutex::new(Some(handle)) })
    }

    /// Durably appends a batch: returns once accepted entries are fsync'ed in the WAL.
    /// Entries that are invalid or outside the accepted time window are rejected individually.
    pub fn append(&self, tenant: &TenantId, records: Vec<LogRecord>) -> Result<AppendReceipt, Error> {
        let inner = &self.inner;
        let config = &inner.config;
        let now = model::time::now_ns();
        let window = i64::try_from(config.out_of_order_window.as_nanos()).unwrap_or(i64::MAX);
        let mut receipt = AppendReceipt::default();
        let mut accepted = Vec::with_capacity(records.len());
        for (index, mut record) in records.into_iter().enumerate() {
            let reason = if record.labels.is_empty() {
                Some("stream has no labels".to_string())
            } else if let Err(e) = record.labels.validate() {
                Some(e.to_string())
            } else if record.timestamp_ns < now.saturating_sub(window) {
                Some(format!(
                    "entry too far behind: timestamp {} is older than now - out_of_order_window",
                    record.timestamp_ns
                ))
            } else if record.timestamp_ns > now.saturating_add(window) {
                Some(format!("entry too far in the future: timestamp {}", record.timestamp_ns))
            } else {
                None
            };
            if let Some(reason) = reason {
                receipt.rejected.push(RejectedEntry { index, reason });
                continue;
            }
            if record.line.len() > config.max_line_bytes {
                let mut cut = config.max_line_bytes;
                while !record.line.is_char_boundary(cut) {
                    cut -= 1;
                }
                record.line.truncate(cut);
                inner.metrics.lines_truncated.inc();
            }
            accepted.push(record);
        }
        inner.metrics.lines_rejected.inc_by(receipt.rejected.len() as u64);
        if accepted.is_empty() {
            return Ok(receipt);
        }
        if inner.closed.load(Ordering::Acquire) {
            return Err(Error::ShuttingDown);
        }
        if let Some(failed) = inner.failure() {
            return Err(Error::Failed(failed));
        }
        let count = accepted.len();
        let line_bytes: usize = accepted.iter().map(|r| r.line.len()).sum();
        let entry = WalEntry { tenant: tenant.clone(), records: accepted };
        let record = encode_record(&entry);
        // Room for the entry until the ingest thread has indexed it; reserved before the WAL
        // lock, so no one waits for room while holding it.
        let reserved = record.len();
        inner.queue.reserve(reserved);
        let written = inner.wal.with(|wal| {
            if inner.closed.load(Ordering::Acquire) {
                return Err(Error::ShuttingDown);
            }
            let position = wal.write(&record)?;
            let end = wal.end_position();
            let records = entry.records;
            inner.queue.push(Job::Entry { tenant: entry.tenant, position, end, records, bytes: reserved });
            Ok(end)
        });
        let end = match written {
            Ok(end) => end,
            Err(e) => {
                inner.queue.release(reserved);
                return Err(e);
            }
        };
        // The acknowledgement: an fsync shared with every append written before it.
        inner.wal.sync_to(end)?;
        receipt.accepted = count;
        inner.metrics.wal_bytes_written.inc_by(record.len() as u64);
        inner.metrics.lines_ingested.inc_by(count as u64);
        inner.metrics.bytes_ingested.inc_by(line_bytes as u64);
        Ok(receipt)
    }

    /// Makes everything appended so far searchable.
    pub fn commit(&self) -> Result<(), Error> {
        self.ask(Job::Commit)
    }

    /// Stops taking appends, indexes and commits what was acknowledged, closes the writers and
    /// trims the WAL. Idempotent.
    pub fn shutdown(&self) -> Result<(), Error> {
        let Some(handle) = self.ingest_thread.lock().take() else { return Ok(()) };
        self.inner.wal.with(|_| self.inner.closed.store(true, Ordering::Release));
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.inner.queue.push(Job::Shutdown(tx));
        let result = rx.recv().unwrap_or(Err(Error::ShuttingDown));
        if handle.join().is_err() {
            tracing::error!("indexer ingest thread panicked");
        }
        self.inner.metrics.open_writers.set(0);
        result
    }

    /// Sends a job that answers to the ingest thread and waits for the answer.
    fn ask<T>(&self, job: impl FnOnce(std::sync::mpsc::SyncSender<Result<T, Error>>) -> Job) -> Result<T, Error> {
        if self.ingest_thread.lock().is_none() {
            return Err(Error::ShuttingDown);
        }
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.inner.queue.push(job(tx));
        rx.recv().unwrap_or(Err(Error::ShuttingDown))
    }

    /// Runs a log query.
    pub fn query(&self, tenant: &TenantId, req: &LogQueryRequest) -> Result<LogQueryResponse, Error> {
        self.query_until(tenant, req, &Cancel::new())
    }

    /// Runs a log query until `cancel` is set ([`Error::Cancelled`] then).
    pub fn query_until(
        &self,
        tenant: &TenantId,
        req: &LogQueryRequest,
        cancel: &Cancel,
    ) -> Result<LogQueryResponse, Error> {
        let started = Instant::now();
        self.inner.metrics.queries.inc();
        let result = self.run_query(tenant, req, cancel);
        self.inner.metrics.query_duration.observe(started.elapsed().as_secs_f64());
        if result.is_err() {
            self.inner.metrics.query_errors.inc();
        }
        result
    }

    fn run_query(&self, tenant: &TenantId, req: &LogQueryRequest, cancel: &Cancel) -> Result<LogQueryResponse, Error> {
        if req.limit == 0 {
            return Err(Error::InvalidRequest("limit must be a positive value".into()));
        }
        let max = self.inner.config.max_query_lines;
        if req.limit > max {
            return Err(Error::InvalidRequest(format!(
                "max entries limit per query exceeded, limit > max_entries_limit ({} > {max})",
                req.limit
            )));
        }
        check_range(req.start_ns, req.end_ns)?;
        let query = CompiledQuery::parse(&req.query)?;
        let partitions = self.inner.partitions_in(tenant, req.start_ns, req.end_ns);
        let plan = Plan {
            query: &query,
            start_ns: req.start_ns,
            end_ns: req.end_ns,
            limit: req.limit,
            direction: req.direction,
        };
        execute(&partitions, &plan, cancel)
    }

    /// Runs a metric query (instant or range) and answers Loki's `vector` / `matrix`.
    pub fn metric_query(&self, tenant: &TenantId, req: &MetricQueryRequest) -> Result<MetricQueryResponse, Error> {
        self.metric_query_until(tenant, req, &Cancel::new())
    }

    /// Runs a metric query until `cancel` is set ([`Error::Cancelled`] then).
    pub fn metric_query_until(
        &self,
        tenant: &TenantId,
        req: &MetricQueryRequest,
        cancel: &Cancel,
    ) -> Result<MetricQueryResponse, Error> {
        let started = Instant::now();
        self.inner.metrics.queries.inc();
        let result = match parse_expr(&req.query) {
            Ok(Expr::Metric(expr)) => {
                execute_metric(|lo, hi| self.inner.partitions_in(tenant, lo, hi), &expr, req, cancel)
            }
            Ok(Expr::Log(_)) => Err(Error::BadQuery(
                "log queries are not supported as an instant query type, please change your query to a range query type"
                    .into(),
            )),
            Err(e) => Err(e),
        };
        self.inner.metrics.query_duration.observe(started.elapsed().as_secs_f64());
        if result.is_err() {
            self.inner.metrics.query_errors.inc();
        }
        result
    }

    /// Label names of streams in partitions overlapping `[start_ns, end_ns)`, sorted.
    pub fn label_names(&self, tenant: &TenantId, start_ns: i64, end_ns: i64) -> Result<Vec<String>, Error> {
        self.label_names_until(tenant, start_ns, end_ns, &Cancel::new())
    }

    /// [`Indexer::label_names`] until `cancel` is set ([`Error::Cancelled`] then).
    pub fn label_names_until(
        &self,
        tenant: &TenantId,
        start_ns: i64,
        end_ns: i64,
        cancel: &Cancel,
    ) -> Result<Vec<String>, Error> {
        check_range(start_ns, end_ns)?;
        let streams = self.inner.streams_in(tenant, start_ns, end_ns, None, cancel)?;
        let mut names: Vec<String> = streams.iter().flat_map(|l| l.iter().map(|l| l.name.clone())).collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// Values of label `name`, optionally only in streams matching the selector `query`, sorted.
    pub fn label_values(
        &self,
        tenant: &TenantId,
        name: &str,
        start_ns: i64,
        end_ns: i64,
        query: Option<&str>,
    ) -> Result<Vec<String>, Error> {
        self.label_values_until(tenant, name, start_ns, end_ns, query, &Cancel::new())
    }

    /// [`Indexer::label_values`] until `cancel` is set ([`Error::Cancelled`] then).
    pub fn label_values_until(
        &self,
        tenant: &TenantId,
        name: &str,
        start_ns: i64,
        end_ns: i64,
        query: Option<&str>,
        cancel: &Cancel,
    ) -> Result<Vec<String>, Error> {
        check_range(start_ns, end_ns)?;
        let selector = match query {
            Some(q) => Some(CompiledSelector::new(&parse_selector(q)?)?),
            None => None,
        };
        let selectors: Vec<CompiledSelector> = selector.into_iter().collect();
        let filter = (!selectors.is_empty()).then_some(selectors.as_slice());
        let streams = self.inner.streams_in(tenant, start_ns, end_ns, filter, cancel)?;
        let mut values: Vec<String> = streams.iter().filter_map(|l| l.get(name).map(str::to_string)).collect();
        values.sort();
        values.dedup();
        Ok(values)
    }

    /// Label sets of streams matching any of `selectors`, sorted.
    pub fn series(
        &self,
        tenant: &TenantId,
        selectors: &[String],
        start_ns: i64,
        end_ns: i64,
    ) -> Result<Vec<Labels>, Error> {
        self.series_until(tenant, selectors, start_ns, end_ns, &Cancel::new())
    }

    /// [`Indexer::series`] until `cancel` is set ([`Error::Cancelled`] then).
    pub fn series_until(
        &self,
        tenant: &TenantId,
        selectors: &[String],
        start_ns: i64,
        end_ns: i64,
        cancel: &Cancel,
    ) -> Result<Vec<Labels>, Error> {
        check_range(start_ns, end_ns)?;
        if selectors.is_empty() {
            return Err(Error::InvalidRequest("at least one match[] selector is required".into()));
        }
        let compiled =
            selectors.iter().map(|s| CompiledSelector::new(&parse_selector(s)?)).collect::<Result<Vec<_>, Error>>()?;
        self.inner.streams_in(tenant, start_ns, end_ns, Some(&compiled), cancel)
    }

    /// Deletes partitions that ended before `now - retention`, then each tenant's oldest
    /// partitions while it holds more than `retention_bytes_per_tenant`; returns how many. Also
    /// run every minute by the ingest thread.
    pub fn run_retention(&self) -> Result<usize, Error> {
        self.ask(Job::Retention)
    }

    /// Upper bound on `limit` of one log query.
    pub fn max_query_lines(&self) -> usize {
        self.inner.config.max_query_lines
    }

    /// The tenants with at least one partition, sorted (the UI's tenant picker).
    pub fn tenants(&self) -> Vec<TenantId> {
        self.inner.partitions.read().keys().cloned().collect()
    }

    /// Every partition's size and shape, oldest first per tenant.
    pub fn partition_stats(&self) -> Vec<crate::PartitionStats> {
        self.inner.all_partitions().iter().map(|p| p.stats()).collect()
    }

    /// Registers the indexer's self-metrics.
    pub fn register_metrics(&self, registry: &mut Registry) {
        self.inner.metrics.register(registry);
    }
}

impl Drop for Indexer {
    fn drop(&mut self) {
        // Without shutdown this behaves like a crash: uncommitted documents are dropped with the
        // writers and come back from the WAL on the next open.
        if let Some(handle) = self.ingest_thread.lock().take() {
            self.inner.queue.push(Job::Abort);
            if handle.join().is_err() {
                tracing::error!("indexer ingest thread panicked");
            }
        }
    }
}

fn check_range(start_ns: i64, end_ns: i64) -> Result<(), Error> {
    if end_ns < start_ns {
        return Err(Error::InvalidRequest(format!("end ({end_ns}) must not be before start ({start_ns})")));
    }
    Ok(())
}

/// Whether indexing should pause and resume from the WAL rather than stop: a full disk, or a
/// tantivy writer killed by one (its worker thread's I/O error reaches us only as this text).
fn pauses_indexing(error: &Error) -> bool {
    error.is_storage_full()
        || matches!(error, Error::Index { source, .. } if source.to_string().contains("index writer was killed"))
}

fn read_committed(dir: &Path) -> Result<u64, Error> {
    let path = dir.join(COMMITTED_FILE);
    match fs::read(&path) {
        Ok(raw) => {
            let c: Committed =
                serde_json::from_slice(&raw).map_err(|e| Error::Corrupt(format!("{}: {e}", path.display())))?;
            if c.version != COMMITTED_FORMAT_VERSION {
                return Err(Error::Corrupt(format!("{} has unknown format version {}", path.display(), c.version)));
            }
            Ok(c.wal_position)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(Error::io(format!("read {}", path.display()), e)),
    }
}

fn write_committed(dir: &Path, wal_position: u64) -> Result<(), Error> {
    let tmp = dir.join("committed.json.tmp");
    let json = serde_json::to_vec(&Committed { version: COMMITTED_FORMAT_VERSION, wal_position })
        .map_err(|e| Error::Corrupt(e.to_string()))?;
    fs::write(&tmp, json)
        .and_then(|_| fs::File::open(&tmp)?.sync_all())
        .and_then(|_| fs::rename(&tmp, dir.join(COMMITTED_FILE)))
        .map_err(|e| Error::io("write committed.json", e))?;
    sync_dir(dir)
}

fn open_partitions(
    tenants_dir: &Path,
    word_lists: &Arc<WordListCache>,
) -> Result<BTreeMap<TenantId, Vec<Arc<Partition>>>, Error> {
    let mut out: BTreeMap<TenantId, Vec<Arc<Partition>>> = BTreeMap::new();
    let list = |dir: &Path| -> Result<Vec<fs::DirEntry>, Error> {
        fs::read_dir(dir)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| Error::io(format!("list {}", dir.display()), e))
    };
    for tenant_entry in list(tenants_dir)? {
        let Some(tenant) = tenant_entry.file_name().to_str().and_then(|n| TenantId::new(n).ok()) else {
            tracing::warn!(dir = ?tenant_entry.path(), "ignoring directory that is not a tenant id");
            continue;
        };
        for part_entry in list(&tenant_entry.path())? {
            let path = part_entry.path();
            if !path.is_dir() {
                continue;
            }
            match Partition::open_existing(&path, &tenant, word_lists)? {
                Some(p) => out.entry(tenant.clone()).or_default().push(Arc::new(p)),
                None => {
                    tracing::warn!(dir = %path.display(), "removing partition whose creation was interrupted");
                    fs::remove_dir_all(&path).map_err(|e| Error::io(format!("remove {}", path.display()), e))?;
                }
            }
        }
    }
    for parts in out.values_mut() {
        parts.sort_by_key(|p| p.start_ns);
    }
    Ok(out)
}

impl Inner {
    fn all_partitions(&self) -> Vec<Arc<Partition>> {
        self.partitions.read().values().flatten().cloned().collect()
    }

    fn partitions_in(&self, tenant: &TenantId, start_ns: i64, end_ns: i64) -> Vec<Arc<Partition>> {
        self.partitions
            .read()
            .get(tenant)
            .map(|parts| parts.iter().filter(|p| p.overlaps(start_ns, end_ns)).cloned().collect())
            .unwrap_or_default()
    }

    /// Distinct stream label sets in overlapping partitions, matching any selector if given.
    fn streams_in(
        &self,
        tenant: &TenantId,
        start_ns: i64,
        end_ns: i64,
        selectors: Option<&[CompiledSelector]>,
        cancel: &Cancel,
    ) -> Result<Vec<Labels>, Error> {
        let keep = |labels: &Labels| selectors.is_none_or(|sels| sels.iter().any(|s| s.matches(labels)));
        let mut out: Vec<Labels> = Vec::new();
        for partition in self.partitions_in(tenant, start_ns, end_ns) {
            out.extend(partition.matching_streams(keep, cancel)?);
        }
        cancel.check()?;
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// The partition holding `ts` for `tenant`, created if needed.
    fn partition_for(&self, tenant: &TenantId, ts: i64) -> Result<Arc<Partition>, Error> {
        if let Some(p) = self.partitions.read().get(tenant).and_then(|ps| ps.iter().find(|p| p.contains(ts))) {
            return Ok(Arc::clone(p));
        }
        let width = self.config.partition_ns();
        let start = ts.div_euclid(width) * width;
        let end = start.saturating_add(width);
        let dir = self.dir.join("tenants").join(tenant.as_str()).join(start.div_euclid(1_000_000_000).to_string());
        let partition =
            Arc::new(Partition::create(&dir, tenant, start, end, self.config.store_settings(), &self.word_lists)?);
        let mut map = self.partitions.write();
        let parts = map.entry(tenant.clone()).or_default();
        parts.push(Arc::clone(&partition));
        parts.sort_by_key(|p| p.start_ns);
        self.metrics.partitions.inc();
        tracing::info!(tenant = %tenant, start_ns = start, "partition created");
        Ok(partition)
    }

    /// Hands one WAL entry to the partition writers. Only the ingest thread (and replay in
    /// `open`, before it starts) calls this, in WAL order. On replay, partitions whose last
    /// commit already covers `position` are skipped.
    fn index_entry(
        &self,
        tenant: &TenantId,
        position: u64,
        records: Vec<LogRecord>,
        replay: bool,
    ) -> Result<(), Error> {
        // Group by partition first: a partition evicted below must never hold part of this entry.
        let mut groups: Vec<(Arc<Partition>, Vec<LogRecord>)> = Vec::new();
        for record in records {
            let partition = match groups.last() {
                Some((p, _)) if p.contains(record.timestamp_ns) => Arc::clone(p),
                _ => self.partition_for(tenant, record.timestamp_ns)?,
            };
            match groups.iter_mut().find(|(p, _)| Arc::ptr_eq(p, &partition)) {
                Some((_, recs)) => recs.push(record),
                None => groups.push((partition, vec![record])),
            }
        }
        let involved: Vec<Arc<Partition>> = groups.iter().map(|(p, _)| Arc::clone(p)).collect();
        for (partition, recs) in groups {
            if replay && position < partition.committed_wal_position() {
                continue;
            }
            if !partition.has_writer() {
                self.make_room_for_writer(&involved, position)?;
            }
            if partition.add(recs, self.config.writer_settings())? {
                self.metrics.open_writers.inc();
            }
        }
        Ok(())
    }

    /// Closes the least recently used writer not involved in the current entry when the bound
    /// on open writers is reached. Its commit covers `position`, the current entry's: every
    /// earlier entry has been handed over, and it holds nothing of this one.
    fn make_room_for_writer(&self, current: &[Arc<Partition>], position: u64) -> Result<(), Error> {
        let open: Vec<Arc<Partition>> = self.all_partitions().into_iter().filter(|p| p.has_writer()).collect();
        if open.len() < self.config.max_open_writers {
            return Ok(());
        }
        let victim = open
            .into_iter()
            .filter(|p| !current.iter().any(|c| Arc::ptr_eq(c, p)))
            .min_by_key(|p| p.writer_last_used());
        if let Some(victim) = victim {
            self.wal.sync_to(position)?;
            if victim.close_writer(position)? {
                self.metrics.open_writers.dec();
            }
        }
        Ok(())
    }

    fn failure(&self) -> Option<String> {
        self.failed.lock().clone().or_else(|| self.wal.failure())
    }

    /// Commits every partition with pending documents at `position` (all entries below it have
    /// been handed to the writers), then trims the WAL. The WAL is synced up to `position`
    /// first, so a recorded commit position never lies past durable WAL bytes.
    fn commit(&self, position: u64) -> Result<(), Error> {
        if let Some(failed) = self.failure() {
            return Err(Error::Failed(failed));
        }
        let started = Instant::now();
        let mut committed = 0;
        let mut removed = 0;
        // Nothing handed over since the last commit: the partitions hold nothing new and the WAL
        // and committed.json already say `position`, so an idle store skips the fsyncs, the
        // committed.json rewrite and the partition walk (5% of an idle `tarsier run`'s CPU).
        if position != self.committed.load(Ordering::Acquire) {
            self.wal.sync_to(position)?;
            for partition in self.all_partitions() {
                if partition.commit(position)? {
                    committed += 1;
                }
            }
            write_committed(&self.dir, position)?;
            self.committed.store(position, Ordering::Release);
            removed = self.wal.with(|wal| wal.remove_segments_below(position))?;
        }
        for partition in self.all_partitions() {
            if partition.writer_last_used().is_some_and(|t| t.elapsed() >= WRITER_IDLE)
                && partition.close_writer(position)?
            {
                self.metrics.open_writers.dec();
            }
        }
        if committed > 0 {
            self.metrics.commits.inc();
            self.metrics.commit_duration.observe(started.elapsed().as_secs_f64());
            tracing::debug!(partitions = committed, wal_position = position, removed_segments = removed, "committed");
        }
        Ok(())
    }

    fn run_retention(&self) -> Result<usize, Error> {
        let retention = i64::try_from(self.config.retention.as_nanos()).unwrap_or(i64::MAX);
        let cutoff = model::time::now_ns().saturating_sub(retention);
        let mut doomed: Vec<(Arc<Partition>, &str)> = Vec::new();
        let limit = self.config.retention_bytes_per_tenant;
        for parts in self.partitions.read().values() {
            // Oldest first (the map keeps them sorted by start).
            let mut kept = Vec::new();
            for p in parts {
                if p.end_ns <= cutoff {
                    doomed.push((Arc::clone(p), "age"));
                } else {
                    kept.push(p);
                }
            }
            if limit > 0 {
                let sizes: Vec<u64> = kept.iter().map(|p| partition::dir_bytes(&p.dir)).collect();
                let mut total: u64 = sizes.iter().sum();
                // Never the newest: it is where the tenant's lines are arriving.
                for (p, size) in kept.iter().zip(&sizes).take(kept.len().saturating_sub(1)) {
                    if total <= limit {
                        break;
                    }
                    total -= size;
                    doomed.push((Arc::clone(p), "size"));
                }
            }
        }
        if doomed.is_empty() {
            return Ok(0);
        }
        {
            let mut map = self.partitions.write();
            for parts in map.values_mut() {
                parts.retain(|p| !doomed.iter().any(|(d, _)| Arc::ptr_eq(d, p)));
            }
            map.retain(|_, parts| !parts.is_empty());
        }
        for (partition, reason) in &doomed {
            if partition.abandon_writer() {
                self.metrics.open_writers.dec();
            }
            fs::remove_dir_all(&partition.dir)
                .map_err(|e| Error::io(format!("remove expired partition {}", partition.dir.display()), e))?;
            self.metrics.partitions.dec();
            self.metrics.partitions_deleted.inc();
            tracing::info!(tenant = %partition.tenant, start_ns = partition.start_ns, reason, "partition deleted by retention");
        }
        Ok(doomed.len())
    }

    /// The ingest thread: indexes queued entries in WAL order, commits every `commit_interval`,
    /// runs retention hourly, answers commit/retention/shutdown requests. `handed` is the WAL
    /// position below which every entry has been given to the writers.
    fn ingest_loop(&self, mut handed: u64) {
        let interval = self.config.commit_interval;
        let mut next_commit = Instant::now() + interval;
        let mut last_retention: Option<Instant> = None;
        loop {
            match self.queue.pop_until(next_commit) {
                Some(Job::Entry { tenant, position, end, records, bytes }) => {
                    // While paused for a full disk the entry waits in the WAL (re-indexed later).
                    let paused = self.reindex_from.lock().is_some();
                    if self.failure().is_none()
                        && !paused
                        && let Err(e) = self.index_entry(&tenant, position, records, false)
                        && !self.pause_if_disk_full(&e)
                    {
                        // The entry is durable: a restart replays it. Until then, refuse work
                        // rather than commit past it.
                        tracing::error!(error = %e, wal_position = position, "indexing failed, the store stops");
                        *self.failed.lock() = Some(e.to_string());
                    }
                    handed = end;
                    self.queue.release(bytes);
                }
                Some(Job::Commit(reply)) => {
                    let _ = reply.send(self.resume_and_commit(handed));
                    next_commit = Instant::now() + interval;
                }
                Some(Job::Retention(reply)) => {
                    let _ = reply.send(self.run_retention());
                }
                Some(Job::Shutdown(reply)) => {
                    let _ = reply.send(self.close(handed));
                    return;
                }
                Some(Job::Abort) => {
                    for partition in self.all_partitions() {
                        partition.abandon_writer();
                    }
                    return;
                }
                None => {}
            }
            if Instant::now() >= next_commit {
                if let Err(e) = self.resume_and_commit(handed)
                    && !pauses_indexing(&e)
                {
                    // A full disk was logged once when indexing paused.
                    tracing::error!(error = %e, "background commit failed");
                }
                next_commit = Instant::now() + interval;
                if last_retention.is_none_or(|t| t.elapsed() >= RETENTION_EVERY) {
                    last_retention = Some(Instant::now());
                    if let Err(e) = self.run_retention() {
                        tracing::error!(error = %e, "retention pass failed");
                    }
                }
            }
        }
    }

    /// On a full disk: drops every writer (tantivy's uncommitted documents with it) and marks
    /// everything since the last commit for re-indexing from the WAL, where it is durable.
    /// Returns false for any other error.
    fn pause_if_disk_full(&self, error: &Error) -> bool {
        if !pauses_indexing(error) {
            return false;
        }
        for partition in self.all_partitions() {
            if partition.abandon_writer() {
                self.metrics.open_writers.dec();
            }
        }
        let mut reindex = self.reindex_from.lock();
        if reindex.is_none() {
            tracing::error!(
                error = %error,
                "storage full: indexing paused; acknowledged lines wait in the wal and are indexed once there is room"
            );
            self.metrics.indexing_paused.set(1);
        }
        *reindex = Some(self.committed.load(Ordering::Acquire));
        true
    }

    /// Commits at `handed`; after a pause for a full disk first indexes again, from the WAL,
    /// every entry since the last commit (partitions whose commit covers an entry skip it).
    fn resume_and_commit(&self, handed: u64) -> Result<(), Error> {
        let paused = *self.reindex_from.lock();
        if let Some(from) = paused {
            // Durable first: re-indexing under the WAL lock must not need an fsync (that locks it).
            self.wal.sync_to(handed)?;
            let mut lines = 0u64;
            let replayed = self.wal.with(|wal| {
                wal.replay(from, &mut |position, entry| {
                    if position >= handed {
                        return Ok(()); // still queued for the ingest thread
                    }
                    lines += entry.records.len() as u64;
                    self.index_entry(&entry.tenant, position, entry.records, true)
                })
            });
            let result = replayed.and_then(|_| self.commit(handed));
            if let Err(e) = result {
                self.pause_if_disk_full(&e);
                return Err(e);
            }
            *self.reindex_from.lock() = None;
            self.metrics.indexing_paused.set(0);
            tracing::info!(lines, from, "storage has room again: indexing resumed");
            return Ok(());
        }
        let result = self.commit(handed);
        if let Err(e) = &result {
            self.pause_if_disk_full(e);
        }
        result
    }

    /// The final commit and closing of every writer.
    fn close(&self, handed: u64) -> Result<(), Error> {
        self.resume_and_commit(handed)?;
        for partition in self.all_partitions() {
            partition.close_writer(handed)?;
        }
        Ok(())
    }
}
