//! Tarsier's node agent. It tails log files (host files and Kubernetes container logs under
//! `/var/log/pods`), scrapes Prometheus endpoints, and ships both through a [`LogSink`] and a
//! [`MetricSink`] with at-least-once delivery: a file's checkpoint only moves past lines the sink
//! acknowledged, so a crash can repeat lines but never lose them.
//!
//! Threads and tasks started by [`Collector::start`]: one std thread `tarsier-tailer` (blocking
//! file reads), a notify watcher thread, one tokio task per shipper (logs, samples), a scrape manager with
//! one task per discovery provider and per scrape target, one checkpoint saver (disk work in `spawn_blocking`),
//! and, in a cluster, a Kubernetes watch task keeping pod metadata (`kubernetes/`).

mod buffer;
pub mod config;
pub mod elasticsearch;
pub mod error;
pub mod fanout;
#[doc(hidden)]
pub mod fuzzing;
pub mod kube_access;
pub mod kubernetes;
mod metrics;
mod parse;
pub use parse::multiline::join_lines;
pub mod relabel;
pub mod scrape;
mod ship;
mod signals;
pub use signals::{SignalsConfig, workload_of};
pub mod sink;
mod tail;
pub mod tls;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use model::{LogStream, TenantId, TimeSeries};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use config::{
    BodyFormat, CollectorConfig, DiskBufferConfig, GlobalScrapeConfig, KubernetesConfig, LogFormat, MultilineConfig,
    MultilineMode, MultilineRule, ParseConfig, ParseRule, RelabelConfig, Scheme, ScrapeConfig, ShippingConfig, StartAt,
    StaticConfig, TailConfig,
};
pub use elasticsearch::{EsSink, IndexPattern};
pub use error::{Error, ErrorKind};
pub use fanout::{Fanout, Member, Receiver, SinkConfig, SinkKind, SinkMetrics};
pub use scrape::http::{Authorization, BasicAuth, TlsConfig};
pub use scrape::sd::{
    AttachMetadata, DnsRecordType, DnsSdConfig, FileSdConfig, KubernetesRole, KubernetesSdConfig, NamespaceDiscovery,
    RoleSelector,
};
pub use scrape::{DroppedTarget, TargetHealth, TargetStatus};
pub use sink::{HttpSink, LogSink, MetricSink, ScrapePushed, SinkError, SwitchableSink};

use crate::metrics::CollectorMetrics;
use crate::ship::{AckTarget, Chunk, LogDelivery, MetricDelivery, Shipper};
use crate::tail::checkpoint::{self, CheckpointStore};

/// Chunks (one file's lines of one read pass, or one scrape) queued between readers and a shipper.
const CHANNEL_CHUNKS: usize = 64;
/// How often changed checkpoints are written.
const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);
/// How long shutdown waits for in-flight batches before giving up on them (they are re-read on
/// the next start, since their lines were never checkpointed).
const SHUTDOWN_DRAIN: Duration = Duration::from_secs(10);

/// Whether a file watch event can mean a watched file's content changed. Reading a file raises
/// access events (open, close without writing): a watcher that re-read its files on those would
/// wake itself forever (the config reloader read its file ten times a second that way).
pub fn is_change_event(event: &notify::Event) -> bool {
    use notify::event::{AccessKind, AccessMode};
    match event.kind {
        notify::EventKind::Access(kind) => kind == AccessKind::Close(AccessMode::Write),
        _ => true,
    }
}

/// A running collector. Call [`Collector::shutdown`] to stop it cleanly.
pub struct Collector {
    metrics: CollectorMetrics,
    targets: TargetsView,
    reloader: Reloader,
    stop: Arc<AtomicBool>,
    wake: std::sync::mpsc::SyncSender<()>,
    tailer: Option<std::thread::JoinHandle<()>>,
    log_shipper: Option<JoinHandle<()>>,
    metric_shipper: Option<JoinHandle<()>>,
    scrape_manager: Option<JoinHandle<()>>,
    scrape_cancel: CancellationToken,
    saver: Option<JoinHandle<()>>,
    saver_cancel: CancellationToken,
    signals_task: Option<JoinHandle<()>>,
    signals_cancel: CancellationToken,
    store: Arc<CheckpointStore>,
    state_dir: PathBuf,
}

impl Collector {
    /// Validates `config`, loads checkpoints from `state_dir/checkpoints.json` and starts tailing,
    /// scraping and shipping. Must be called within a tokio runtime.
    pub async fn start(
        config: CollectorConfig,
        state_dir: &Path,
        logs: Arc<dyn LogSink>,
        metrics_sink: Arc<dyn MetricSink>,
    ) -> Result<Collector, Error> {
        config.validate().map_err(Error::Config)?;
        let tenant: ship::SharedTenant = Arc::new(RwLock::new(tenant_of(&config)?));
        let discovery = tail::discovery::Discovery::new(&config.tail)?;

        let dir = state_dir.to_path_buf();
        let loaded = tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&dir).map_err(|e| Error::io("creating state directory", &dir, e))?;
            checkpoint::load(&dir)
        })
        .await
        .map_err(|e| Error::Task(e.to_string()))??;
        let store = Arc::new(CheckpointStore::new(state_dir.to_path_buf(), loaded));
        let metrics = CollectorMetrics::default();
        let (spill, samples_spill) = if config.shipping.disk_buffer.enabled {
            let buffer = &config.shipping.disk_buffer;
            let dir = buffer.path.clone().unwrap_or_else(|| state_dir.join("buffer"));
            let log_metrics = buffer::SpillMetrics {
                kind: "logs",
                bytes: metrics.buffer_bytes.clone(),
                full: metrics.buffer_full.clone(),
                batches: metrics.buffered_batches.clone(),
            };
            let sample_metrics = buffer::SpillMetrics {
                kind: "samples",
                bytes: metrics.samples_buffer_bytes.clone(),
                full: metrics.samples_buffer_full.clone(),
                batches: metrics.samples_buffered_batches.clone(),
            };
            (
                Some(open_spill(dir.clone(), buffer, false, log_metrics).await?),
                Some(open_spill(dir.join("samples"), buffer, true, sample_metrics).await?),
            )
        } else {
            (None, None)
        };

        let spills: Vec<Arc<buffer::Spill>> = spill.iter().chain(&samples_spill).cloned().collect();
        let (shipping, shipping_rx) = tokio::sync::watch::channel(config.shipping.clone());
        let (log_tx, log_rx) = mpsc::channel::<Chunk<LogStream>>(CHANNEL_CHUNKS);
        let (sample_tx, sample_rx) = mpsc::channel::<Chunk<TimeSeries>>(CHANNEL_CHUNKS);
        let log_shipper = tokio::spawn(
            Shipper {
                rx: log_rx,
                delivery: Arc::new(LogDelivery(logs)),
                tenant: tenant.clone(),
                config: shipping_rx.clone(),
                acks: Some(store.clone() as Arc<dyn AckTarget>),
                metrics: metrics.clone(),
                drain_timeout: SHUTDOWN_DRAIN,
                spill,
            }
            .run(),
        );
        let scrape_output = if metrics_sink.takes_scrapes_directly() {
            scrape::target::ScrapeOutput::Direct { sink: metrics_sink.clone(), tenant: tenant.clone() }
        } else {
            scrape::target::ScrapeOutput::Shipper(sample_tx.clone())
        };
        let metric_shipper = tokio::spawn(
            Shipper {
                rx: sample_rx,
                delivery: Arc::new(MetricDelivery(metrics_sink)),
                tenant: tenant.clone(),
                config: shipping_rx,
                acks: None,
                metrics: metrics.clone(),
                drain_timeout: SHUTDOWN_DRAIN,
                spill: samples_spill,
            }
            .run(),
        );

        let stop = Arc::new(AtomicBool::new(false));
        let rescan = Arc::new(AtomicBool::new(false));
        let (wake, wake_rx) = std::sync::mpsc::sync_channel(1);
        let roots = discovery.watch_roots();
        let watcher =
            tail::discovery::watch(&roots, tail::discovery::Wakeup { rescan: rescan.clone(), tx: wake.clone() });
        let pending_reload = Arc::new(std::sync::Mutex::new(None));
        let node_name = std::env::var("NODE_NAME").ok().filter(|n| !n.is_empty());
        let kube = KubeWatch::start(&config).await;
        let metadata = kube.metadata.clone();
        // Always there, counting only while enabled, so a reload can turn the signals on.
        let signals = signals::Signals::new(config.signals.clone(), node_name.clone());
        let signals_cancel = CancellationToken::new();
        let signals_task = Some(tokio::spawn(signals::emit_periodically(
            signals.clone(),
            sample_tx.clone(),
            metrics.clone(),
            signals_cancel.clone(),
        )));
        let tailer = tail::reader::Tailer::new(
            config.tail.clone(),
            discovery,
            store.clone(),
            log_tx,
            metrics.clone(),
            stop.clone(),
            rescan.clone(),
            wake_rx,
            node_name,
            Some(signals.clone()),
            metadata,
            pending_reload.clone(),
        );
        let tailer = std::thread::Builder::new()
            .name("tarsier-tailer".into())
            .spawn(move || tailer.run())
            .map_err(|e| Error::Task(format!("spawning tailer thread: {e}")))?;

        let saver_cancel = CancellationToken::new();
        let saver = tokio::spawn(save_periodically(store.clone(), saver_cancel.clone()));

        let scrape_cancel = CancellationToken::new();
        let scrape::manager::Started { task: scrape_manager, registry, handle: scrape } =
            scrape::manager::start(&config, scrape_output, metrics.clone(), scrape_cancel.clone())?;
        let reloader = Reloader {
            scrape,
            pending_reload,
            rescan: tail::discovery::Wakeup { rescan, tx: wake.clone() },
            watch: Arc::new(tokio::sync::Mutex::new(WatchState { watcher, roots, config: config.clone(), kube })),
            signals,
            tenant,
            shipping: Arc::new(shipping),
            spills,
        };

        Ok(Collector {
            metrics,
            targets: TargetsView { registry },
            reloader,
            stop,
            wake,
            tailer: Some(tailer),
            log_shipper: Some(log_shipper),
            metric_shipper: Some(metric_shipper),
            scrape_manager: Some(scrape_manager),
            scrape_cancel,
            saver: Some(saver),
            saver_cancel,
            signals_task,
            signals_cancel,
            store,
            state_dir: state_dir.to_path_buf(),
        })
    }

    /// Stops reading and scraping, delivers what was already read (waiting at most ~10 s for the
    /// sinks) and saves the checkpoints.
    pub async fn shutdown(mut self) -> Result<(), Error> {
        self.stop.store(true, Ordering::Release);
        let _ = self.wake.try_send(());
        let kube = {
            let mut watch = self.reloader.watch.lock().await;
            watch.watcher.take();
            std::mem::take(&mut watch.kube)
        };
        self.scrape_cancel.cancel();
        if let Some(tailer) = self.tailer.take() {
            tokio::task::spawn_blocking(move || tailer.join())
                .await
                .map_err(|e| Error::Task(e.to_string()))?
                .map_err(|_| Error::Task("tailer thread panicked".into()))?;
        }
        if let Some(manager) = self.scrape_manager.take() {
            manager.await.map_err(|e| Error::Task(e.to_string()))?;
        }
        self.signals_cancel.cancel();
        if let Some(task) = self.signals_task.take() {
            task.await.map_err(|e| Error::Task(e.to_string()))?;
        }
        kube.stop().await?;
        // The readers are gone, so the channels close and the shippers drain and finish.
        let logs = self.log_shipper.take();
        let samples = self.metric_shipper.take();
        for shipper in [logs, samples].into_iter().flatten() {
            shipper.await.map_err(|e| Error::Task(e.to_string()))?;
        }
        self.saver_cancel.cancel();
        if let Some(saver) = self.saver.take() {
            saver.await.map_err(|e| Error::Task(e.to_string()))?;
        }
        let store = self.store.clone();
        let dir = self.state_dir.clone();
        tokio::task::spawn_blocking(move || checkpoint::save(&dir, &store.snapshot()))
            .await
            .map_err(|e| Error::Task(e.to_string()))?
    }

    /// Applies what of `config` can change while running: `scrape_configs` and `global` (jobs
    /// added, removed or changed; unchanged jobs keep their loops); `tail.include` /
    /// `tail.exclude` (new files are picked up, files no longer matched are read to their end and
    /// released, their checkpoints kept); the rest of `tail` (open files keep their positions;
    /// lines read from then on get the new labels, parsing, format and joining; `start_at`
    /// applies to files found at new paths); `signals`; `tenant` (batches formed from then on);
    /// `kubernetes` (the pod metadata watch is re-created); `shipping` (batch limits apply to the
    /// batch being formed, retries and `max_in_flight_batches` from then on, the disk buffers'
    /// `max_bytes`/`segment_bytes` at once). Only `shipping.disk_buffer.enabled` and
    /// `shipping.disk_buffer.path` keep their running values: the buffers are opened (or not) at
    /// start, and moving one would strand the batches it holds. A config that does not validate
    /// changes nothing.
    pub async fn reload(&self, config: &CollectorConfig) -> Result<(), Error> {
        self.reloader.reload(config).await
    }

    /// A cloneable handle doing [`Collector::reload`], for a task that outlives the borrow.
    pub fn reloader(&self) -> Reloader {
        self.reloader.clone()
    }

    /// Registers the collector's self-metrics (`tarsier_collector_*`).
    pub fn register_metrics(&self, registry: &mut prometheus_client::registry::Registry) {
        self.metrics.register(registry);
    }

    /// The targets `relabel_configs` dropped, with their labels before relabeling.
    pub fn dropped_targets(&self) -> Vec<DroppedTarget> {
        self.targets.dropped()
    }

    /// The scrape targets and their health.
    pub fn targets(&self) -> Vec<TargetStatus> {
        self.targets_view().active()
    }

    /// A cheap, cloneable view of the targets for the HTTP layer (`/api/v1/targets`); it stays
    /// valid while the collector runs and keeps the last state after shutdown.
    pub fn targets_view(&self) -> TargetsView {
        self.targets.clone()
    }
}

/// `collector.tenant` as a tenant id.
fn tenant_of(config: &CollectorConfig) -> Result<TenantId, Error> {
    TenantId::new(&config.tenant).map_err(|e| Error::Config(format!("collector.tenant: {e}")))
}

/// The Kubernetes pod metadata watch, when `collector.kubernetes` is active; re-created on reload.
#[derive(Default)]
struct KubeWatch {
    metadata: Option<Arc<kubernetes::PodMetadata>>,
    task: Option<JoinHandle<()>>,
    cancel: CancellationToken,
}

impl KubeWatch {
    async fn start(config: &CollectorConfig) -> KubeWatch {
        let cancel = CancellationToken::new();
        if !config.kubernetes.active(!config.tail.include.is_empty()) {
            return KubeWatch { cancel, ..KubeWatch::default() };
        }
        // Logs flow without metadata rather than not at all: a failure here is a warning.
        match kubernetes::PodMetadata::start(&config.kubernetes, cancel.clone()).await {
            Ok((metadata, task)) => KubeWatch { metadata: Some(metadata), task: Some(task), cancel },
            Err(error) => {
                tracing::warn!(%error, "kubernetes pod metadata unavailable, pod streams keep their path labels");
                KubeWatch { cancel, ..KubeWatch::default() }
            }
        }
    }

    async fn stop(self) -> Result<(), Error> {
        self.cancel.cancel();
        if let Some(task) = self.task {
            task.await.map_err(|e| Error::Task(e.to_string()))?;
        }
        Ok(())
    }
}

/// What a reload compares against and swaps: the tail watcher and its roots, the running
/// configuration and the Kubernetes watch.
struct WatchState {
    watcher: Option<notify::RecommendedWatcher>,
    roots: Vec<PathBuf>,
    config: CollectorConfig,
    kube: KubeWatch,
}

/// Reloads a running collector (see [`Collector::reload`]).
#[derive(Clone)]
pub struct Reloader {
    scrape: scrape::manager::ManagerHandle,
    /// The tailer takes a reload from here on its next pass.
    pending_reload: Arc<std::sync::Mutex<Option<tail::reader::TailReload>>>,
    rescan: tail::discovery::Wakeup,
    watch: Arc<tokio::sync::Mutex<WatchState>>,
    signals: Arc<signals::Signals>,
    tenant: ship::SharedTenant,
    /// `collector.shipping` as both shippers watch it.
    shipping: Arc<tokio::sync::watch::Sender<ShippingConfig>>,
    /// The disk buffers (logs, samples) when enabled, for their new size limits.
    spills: Vec<Arc<buffer::Spill>>,
}

impl Reloader {
    /// Whether `config` would be accepted by [`Reloader::reload`], changing nothing.
    pub fn check(&self, config: &CollectorConfig) -> Result<(), Error> {
        config.validate().map_err(Error::Config)?;
        tenant_of(config)?;
        tail::discovery::Discovery::new(&config.tail)?;
        scrape::manager::compile(config).map(drop)
    }

    /// See [`Collector::reload`].
    pub async fn reload(&self, config: &CollectorConfig) -> Result<(), Error> {
        config.validate().map_err(Error::Config)?;
        let tenant = tenant_of(config)?;
        let discovery = tail::discovery::Discovery::new(&config.tail)?;
        // Scrape plans compile before anything changes, so a bad job refuses the whole reload.
        self.scrape.reload(config).await?;
        let roots = discovery.watch_roots();
        {
            let mut guard = self.watch.lock().await;
            let watch = &mut *guard;
            let kube_active = |c: &CollectorConfig| c.kubernetes.active(!c.tail.include.is_empty());
            let metadata =
                if watch.config.kubernetes != config.kubernetes || kube_active(&watch.config) != kube_active(config) {
                    tracing::info!("collector.kubernetes changed, re-creating the pod metadata watch");
                    let old = std::mem::replace(&mut watch.kube, KubeWatch::start(config).await);
                    old.stop().await?;
                    Some(watch.kube.metadata.clone())
                } else {
                    None
                };
            *self.pending_reload.lock().unwrap_or_else(|e| e.into_inner()) =
                Some(tail::reader::TailReload { config: config.tail.clone(), discovery, metadata });
            self.signals.reconfigure(config.signals.clone());
            if *self.tenant.read().unwrap_or_else(|e| e.into_inner()) != tenant {
                tracing::info!(tenant = %tenant, "collector.tenant changed, batches from now on go to it");
                *self.tenant.write().unwrap_or_else(|e| e.into_inner()) = tenant;
            }
            self.reload_shipping(&config.shipping).await;
            watch.config = config.clone();
            if let Some(watcher) = watch.watcher.as_mut() {
                use notify::Watcher;
                for root in roots.iter().filter(|r| !watch.roots.contains(r)) {
                    if let Err(e) = watcher.watch(root, notify::RecursiveMode::Recursive) {
                        tracing::warn!(dir = %root.display(), error = %e, "cannot watch directory, relying on rescans");
                    }
                }
                for root in watch.roots.iter().filter(|r| !roots.contains(r)) {
                    let _ = watcher.unwatch(root);
                }
            }
            watch.roots = roots;
        }
        self.rescan.wake(true);
        Ok(())
    }
}

impl Reloader {
    /// Hands a changed `collector.shipping` to the shippers and the disk buffers (whose `enabled`
    /// and `path` stay as started).
    async fn reload_shipping(&self, new: &ShippingConfig) {
        let changed = self.shipping.send_if_modified(|running| {
            let keep = (running.disk_buffer.enabled, running.disk_buffer.path.clone());
            let mut next = new.clone();
            (next.disk_buffer.enabled, next.disk_buffer.path) = keep;
            let changed = *running != next;
            *running = next;
            changed
        });
        if !changed {
            return;
        }
        tracing::info!(
            batch_max_lines = new.batch_max_lines,
            batch_max_bytes = new.batch_max_bytes,
            max_in_flight_batches = new.max_in_flight_batches,
            "collector.shipping changed, batches from now on use it"
        );
        let (spills, buffer) = (self.spills.clone(), new.disk_buffer.clone());
        let resized = tokio::task::spawn_blocking(move || {
            for spill in &spills {
                spill.set_limits(buffer.max_bytes, buffer.segment_bytes);
            }
        });
        if let Err(e) = resized.await {
            tracing::warn!(error = %e, "resizing the disk buffers failed");
        }
    }
}

/// Shared read access to the collector's scrape targets.
#[derive(Clone, Debug)]
pub struct TargetsView {
    registry: Arc<RwLock<scrape::manager::Registry>>,
}

impl TargetsView {
    /// The scrape targets (as discovery currently sees them) and their health.
    pub fn active(&self) -> Vec<TargetStatus> {
        self.registry.read().unwrap_or_else(|e| e.into_inner()).active()
    }

    /// The targets `relabel_configs` dropped.
    pub fn dropped(&self) -> Vec<DroppedTarget> {
        self.registry.read().unwrap_or_else(|e| e.into_inner()).dropped()
    }
}

impl Drop for Collector {
    /// Dropping without `shutdown` stops the background work without a final delivery; what was
    /// not acknowledged is read again on the next start.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        let _ = self.wake.try_send(());
        self.scrape_cancel.cancel();
        self.saver_cancel.cancel();
        self.signals_cancel.cancel();
        if let Ok(watch) = self.reloader.watch.try_lock() {
            watch.kube.cancel.cancel();
        }
    }
}

/// Opens one kind's disk buffer in `dir`. Logs (`keep` false) drop what a previous process left,
/// since their lines are read again from their files; samples (`keep` true) deliver it first.
async fn open_spill(
    dir: std::path::PathBuf,
    config: &config::DiskBufferConfig,
    keep: bool,
    metrics: buffer::SpillMetrics,
) -> Result<Arc<buffer::Spill>, Error> {
    let (max, segment) = (config.max_bytes, config.segment_bytes);
    let (queue, discarded) = tokio::task::spawn_blocking(move || buffer::DiskQueue::open(&dir, max, segment, keep))
        .await
        .map_err(|e| Error::Task(e.to_string()))??;
    let kind = metrics.kind;
    if discarded > 0 && keep {
        tracing::warn!(kind, bytes = discarded, "cut off the torn end of the disk buffer a previous process left");
    } else if discarded > 0 {
        tracing::info!(
            kind,
            bytes = discarded,
            "discarded the previous disk buffer, its lines are read again from their files"
        );
    }
    if queue.bytes() > 0 {
        tracing::info!(kind, bytes = queue.bytes(), "delivering what was buffered before the restart first");
    }
    Ok(Arc::new(buffer::Spill::new(queue, metrics)))
}

async fn save_periodically(store: Arc<CheckpointStore>, cancel: CancellationToken) {
    let mut ticker = tokio::time::interval(CHECKPOINT_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = ticker.tick() => {}
        }
        if !store.is_dirty() {
            continue;
        }
        let store = store.clone();
        match tokio::task::spawn_blocking(move || store.save_if_dirty()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "saving checkpoints failed"),
            Err(e) => tracing::warn!(error = %e, "checkpoint saver task failed"),
        }
    }
}
