//! Batching, retry and acknowledgement, shared by logs and samples.
//!
//! Readers hand [`Chunk`]s to a bounded channel; one shipper task per kind of data cuts them into
//! batches by lines, bytes and age, and sends up to `max_in_flight_batches` at once. When all are
//! busy the shipper stops taking chunks, the channel fills and readers pause (backpressure).
//!
//! Delivery is at least once: retryable failures are retried forever with exponential backoff and
//! jitter. A **non-retryable** failure (the receiver rejects the data, e.g. a 400) drops the batch
//! with an error log and a `tarsier_collector_dropped{reason="rejected"}` count: this is the only
//! place the collector drops data, because retrying a rejected batch would block everything behind
//! it forever.
//!
//! The configuration is live: the shipper watches `collector.shipping` and a reload's batch limits
//! apply to the batch being formed (it is cut at once if it already reaches the new limits), the
//! retry backoff to batches launched from then on, and `max_in_flight_batches` resizes the slots
//! (a smaller number takes effect as running batches finish).
//!
//! Acknowledgements are applied in batch order, so a file's checkpoint only ever moves to an offset
//! whose every earlier line was acknowledged. Two batches touching the same stream (`order_key`)
//! are sent one after the other so the receiver sees each file's lines in order.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use model::{LogStream, TenantId, TimeSeries};
use rand::Rng;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::buffer::{Spill, SpillItem};
use crate::config::ShippingConfig;
use crate::metrics::CollectorMetrics;
use crate::sink::{LogSink, MetricSink, SinkError};

/// "The lines of file `file` up to byte `offset` are in this chunk (or earlier ones)".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FileAck {
    pub file: u64,
    pub offset: u64,
}

/// A reader's contribution to a batch: items of one stream, in order.
#[derive(Debug)]
pub(crate) struct Chunk<T> {
    pub items: Vec<T>,
    pub bytes: usize,
    /// Items with the same key are delivered in order (a file path, a scrape target).
    pub order_key: u64,
    pub ack: Option<FileAck>,
}

/// Receives acknowledged offsets (the checkpoint store).
pub(crate) trait AckTarget: Send + Sync + 'static {
    fn apply(&self, acks: &[FileAck]);
    /// The lines up to these offsets are about to be handed to the sink (not yet acknowledged).
    /// The batch waits for the returned future before it is sent: the checkpoint store records
    /// the sent offsets durably first, so lines read again after a kill are counted exactly.
    fn sent(self: Arc<Self>, _acks: &[FileAck]) -> Option<BoxFuture<'static, ()>> {
        None
    }
}

/// Adapts a sink trait to the shipper.
pub(crate) trait Deliver<T>: Send + Sync + 'static {
    /// `logs` or `samples`, for metrics and logs.
    const KIND: &'static str;
    /// Called again with the same batch on retry, hence shared rather than owned; `batch` is its
    /// number, the same on every offer (`None`: a batch of a previous process), so a sink with
    /// several receivers sends it only to those that did not take it yet.
    fn deliver(
        &self,
        batch: Option<u64>,
        tenant: TenantId,
        items: Arc<Vec<T>>,
    ) -> BoxFuture<'static, Result<(), SinkError>>;
    fn count_sent(metrics: &CollectorMetrics, n: u64);
    /// Lines or samples in `items` (what batch limits and metrics count).
    fn count(items: &[T]) -> usize {
        items.len()
    }
}

pub(crate) struct LogDelivery(pub Arc<dyn LogSink>);
pub(crate) struct MetricDelivery(pub Arc<dyn MetricSink>);

impl Deliver<LogStream> for LogDelivery {
    const KIND: &'static str = "logs";
    fn deliver(
        &self,
        batch: Option<u64>,
        tenant: TenantId,
        items: Arc<Vec<LogStream>>,
    ) -> BoxFuture<'static, Result<(), SinkError>> {
        self.0.push_log_batch(batch, tenant, items)
    }
    fn count_sent(metrics: &CollectorMetrics, n: u64) {
        metrics.lines_sent.inc_by(n);
    }
    fn count(items: &[LogStream]) -> usize {
        items.iter().map(|s| s.entries.len()).sum()
    }
}

impl Deliver<TimeSeries> for MetricDelivery {
    const KIND: &'static str = "samples";
    fn deliver(
        &self,
        batch: Option<u64>,
        tenant: TenantId,
        items: Arc<Vec<TimeSeries>>,
    ) -> BoxFuture<'static, Result<(), SinkError>> {
        self.0.push_sample_batch(batch, tenant, items)
    }
    fn count_sent(metrics: &CollectorMetrics, n: u64) {
        metrics.samples_sent.inc_by(n);
    }
}

/// Applies acknowledgements strictly in batch sequence order.
struct AckTracker {
    next: u64,
    done: BTreeMap<u64, Vec<FileAck>>,
    target: Option<Arc<dyn AckTarget>>,
}

impl AckTracker {
    /// Records a batch as about to be sent; await the result before sending it.
    fn sent(&self, acks: &[FileAck]) -> Option<BoxFuture<'static, ()>> {
        self.target.clone().and_then(|target| target.sent(acks))
    }

    fn complete(&mut self, seq: u64, acks: Vec<FileAck>) {
        self.done.insert(seq, acks);
        while let Some(acks) = self.done.remove(&self.next) {
            if let Some(target) = &self.target {
                target.apply(&acks);
            }
            self.next += 1;
        }
    }
}

/// Records a batch as about to be sent and waits until that is durable (the checkpoint save it
/// shares with the other batches waiting).
async fn before_sending(tracker: &Mutex<AckTracker>, acks: &[FileAck]) {
    let durable = tracker.lock().unwrap_or_else(|e| e.into_inner()).sent(acks);
    if let Some(durable) = durable {
        durable.await;
    }
}

/// The tenant batches are sent as; a reload of `collector.tenant` swaps it, and batches formed
/// from then on (and disk-buffered batches delivered from then on) go to the new one.
pub(crate) type SharedTenant = Arc<std::sync::RwLock<TenantId>>;

pub(crate) fn current(tenant: &SharedTenant) -> TenantId {
    tenant.read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Everything a shipper task needs.
pub(crate) struct Shipper<T, D> {
    pub rx: mpsc::Receiver<Chunk<T>>,
    pub delivery: Arc<D>,
    pub tenant: SharedTenant,
    /// `collector.shipping`, replaced by a reload.
    pub config: watch::Receiver<ShippingConfig>,
    pub acks: Option<Arc<dyn AckTarget>>,
    pub metrics: CollectorMetrics,
    /// How long in-flight batches may still take once the channel closed.
    pub drain_timeout: Duration,
    /// Where batches go while the sink fails.
    pub spill: Option<Arc<Spill>>,
}

struct InFlight {
    keys: HashSet<u64>,
    done: CancellationToken,
}

/// The batches being sent: their tasks and what each one's stream keys are.
#[derive(Default)]
struct Running {
    tasks: JoinSet<()>,
    in_flight: Vec<InFlight>,
}

impl<T: Clone + SpillItem, D: Deliver<T>> Shipper<T, D> {
    /// Runs until the channel closes and in-flight batches finished (or `drain_timeout` passed).
    pub(crate) async fn run(mut self) {
        let mut config = self.config.borrow_and_update().clone();
        let mut config_open = true;
        let permits = Arc::new(Semaphore::new(config.max_in_flight_batches));
        let tracker = Arc::new(Mutex::new(AckTracker { next: 0, done: BTreeMap::new(), target: self.acks.clone() }));
        let mut running = Running::default();
        let mut pending: Vec<Chunk<T>> = Vec::new();
        let (mut pending_items, mut pending_bytes) = (0usize, 0usize);
        let mut oldest: Option<Instant> = None;
        let mut seq = 0u64;
        let drainer = self.spill.clone().map(|spill| {
            let (delivery, tenant, config) = (self.delivery.clone(), self.tenant.clone(), self.config.clone());
            let (metrics, tracker) = (self.metrics.clone(), tracker.clone());
            tokio::spawn(async move {
                spill
                    .drain::<T, _, _>(move |seq, acks, items| {
                        let (delivery, tenant) = (delivery.clone(), current(&tenant));
                        let config = config.borrow().clone();
                        let (metrics, tracker) = (metrics.clone(), tracker.clone());
                        async move {
                            before_sending(&tracker, &acks).await;
                            deliver_with_retry(&*delivery, seq, tenant, Arc::new(items), &config, &metrics).await;
                            // A batch of a previous process has no place in this one's order.
                            if let Some(seq) = seq {
                                tracker.lock().unwrap_or_else(|e| e.into_inner()).complete(seq, acks);
                            }
                        }
                    })
                    .await
            })
        });
        loop {
            let deadline = oldest.map(|t| t + config.batch_max_wait);
            let flush = tokio::select! {
                maybe = self.rx.recv() => match maybe {
                    Some(chunk) => {
                        pending_items += D::count(&chunk.items);
                        pending_bytes += chunk.bytes;
                        oldest.get_or_insert_with(Instant::now);
                        pending.push(chunk);
                        pending_items >= config.batch_max_lines || pending_bytes >= config.batch_max_bytes
                    }
                    None => break,
                },
                changed = self.config.changed(), if config_open => {
                    if changed.is_err() {
                        config_open = false;
                        continue;
                    }
                    let new = self.config.borrow_and_update().clone();
                    resize(&permits, config.max_in_flight_batches, new.max_in_flight_batches);
                    config = new;
                    pending_items >= config.batch_max_lines || pending_bytes >= config.batch_max_bytes
                }
                _ = sleep_until_opt(deadline) => true,
                Some(joined) = running.tasks.join_next(), if !running.tasks.is_empty() => {
                    if let Err(e) = joined {
                        tracing::error!(kind = D::KIND, error = %e, "shipping task failed");
                    }
                    false
                }
            };
            if flush && !pending.is_empty() {
                let batch = std::mem::take(&mut pending);
                (pending_items, pending_bytes, oldest) = (0, 0, None);
                self.launch(batch, seq, &config, &permits, &tracker, &mut running).await;
                seq += 1;
            }
        }
        if !pending.is_empty() {
            self.launch(pending, seq, &config, &permits, &tracker, &mut running).await;
        }
        let drained =
            tokio::time::timeout(self.drain_timeout, async { while running.tasks.join_next().await.is_some() {} })
                .await;
        if drained.is_err() {
            tracing::warn!(kind = D::KIND, in_flight = running.tasks.len(), "shutdown: gave up on undelivered batches");
            running.tasks.abort_all();
        }
        if let (Some(spill), Some(drainer)) = (&self.spill, drainer) {
            let emptied = tokio::time::timeout(self.drain_timeout, spill.wait_empty()).await;
            if emptied.is_err() {
                tracing::warn!(
                    kind = D::KIND,
                    batches = spill.len(),
                    "shutdown: disk buffer not delivered, its lines are read again on the next start"
                );
            }
            drainer.abort();
        }
    }

    async fn launch(
        &self,
        chunks: Vec<Chunk<T>>,
        seq: u64,
        config: &ShippingConfig,
        permits: &Arc<Semaphore>,
        tracker: &Arc<Mutex<AckTracker>>,
        running: &mut Running,
    ) {
        let Running { tasks, in_flight } = running;
        // Waiting here (all batches busy) stops the channel from draining: readers pause.
        let Ok(permit) = permits.clone().acquire_owned().await else { return };
        in_flight.retain(|f| !f.done.is_cancelled());
        let keys: HashSet<u64> = chunks.iter().map(|c| c.order_key).collect();
        let predecessors: Vec<CancellationToken> =
            in_flight.iter().filter(|f| !f.keys.is_disjoint(&keys)).map(|f| f.done.clone()).collect();
        let done = CancellationToken::new();
        in_flight.push(InFlight { keys, done: done.clone() });

        let mut items = Vec::with_capacity(chunks.iter().map(|c| c.items.len()).sum());
        let mut acks = Vec::new();
        for chunk in chunks {
            items.extend(chunk.items);
            acks.extend(chunk.ack);
        }
        let delivery = self.delivery.clone();
        let tenant = current(&self.tenant);
        let config = config.clone();
        let metrics = self.metrics.clone();
        let tracker = tracker.clone();
        let spill = self.spill.clone();
        tasks.spawn(async move {
            let _permit = permit;
            let _done = done.drop_guard();
            for predecessor in predecessors {
                predecessor.cancelled().await;
            }
            if !items.is_empty() {
                let items = Arc::new(items);
                if let Some(spill) = spill {
                    // Behind buffered batches (or on a failure) the batch queues on disk, in order;
                    // the drainer delivers it and completes its acknowledgement.
                    if !spill.is_empty() {
                        spill.push(seq, &acks, items).await;
                        return;
                    }
                    before_sending(&tracker, &acks).await;
                    match delivery.deliver(Some(seq), tenant.clone(), items.clone()).await {
                        Ok(()) => D::count_sent(&metrics, D::count(&items) as u64),
                        Err(e) if e.retryable => {
                            tracing::warn!(kind = D::KIND, error = %e.message, "delivery failed, buffering on disk");
                            metrics.send_retries.get_or_create(&vec![("kind".to_string(), D::KIND.to_string())]).inc();
                            spill.push(seq, &acks, items).await;
                            return;
                        }
                        Err(e) => reject::<T, D>(&e, D::count(&items) as u64, &metrics),
                    }
                } else {
                    before_sending(&tracker, &acks).await;
                    deliver_with_retry(&*delivery, Some(seq), tenant, items, &config, &metrics).await;
                }
            }
            tracker.lock().unwrap_or_else(|e| e.into_inner()).complete(seq, acks);
        });
    }
}

/// Changes the number of batch slots from `from` to `to`. Slots in use cannot be taken back: a
/// task takes them as their batches finish, so the new number holds from then on.
fn resize(permits: &Arc<Semaphore>, from: usize, to: usize) {
    if to > from {
        permits.add_permits(to - from);
    } else if to < from {
        let owed = (from - to) - permits.forget_permits(from - to);
        if owed > 0 {
            let permits = permits.clone();
            tokio::spawn(async move {
                if let Ok(taken) = permits.acquire_many_owned(owed as u32).await {
                    taken.forget();
                }
            });
        }
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// Sends one batch until it is acknowledged or permanently rejected.
pub(crate) async fn deliver_with_retry<T: Clone, D: Deliver<T>>(
    delivery: &D,
    batch: Option<u64>,
    tenant: TenantId,
    items: Arc<Vec<T>>,
    config: &ShippingConfig,
    metrics: &CollectorMetrics,
) {
    let n = D::count(&items) as u64;
    let mut backoff = config.retry_initial_backoff;
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        match delivery.deliver(batch, tenant.clone(), items.clone()).await {
            Ok(()) => {
                D::count_sent(metrics, n);
                return;
            }
            Err(e) if e.retryable => {
                let delay = jittered(backoff);
                tracing::warn!(kind = D::KIND, attempt, error = %e.message, retry_in = ?delay, "delivery failed, retrying");
                metrics.send_retries.get_or_create(&vec![("kind".to_string(), D::KIND.to_string())]).inc();
                tokio::time::sleep(delay).await;
                backoff = (backoff * 2).min(config.retry_max_backoff);
            }
            Err(e) => return reject::<T, D>(&e, n, metrics),
        }
    }
}

fn reject<T, D: Deliver<T>>(e: &SinkError, n: u64, metrics: &CollectorMetrics) {
    tracing::error!(kind = D::KIND, items = n, error = %e.message, "receiver rejected batch, dropping it");
    metrics.count_drop(D::KIND, "rejected", n);
}

/// A delay between half and all of `backoff`, so many collectors do not retry in lockstep.
pub(crate) fn jittered(backoff: Duration) -> Duration {
    backoff.mul_f64(rand::rng().random_range(0.5..=1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Recorder(Mutex<Vec<FileAck>>);
    impl AckTarget for Recorder {
        fn apply(&self, acks: &[FileAck]) {
            self.0.lock().unwrap().extend_from_slice(acks);
        }
    }

    #[test]
    fn acks_apply_in_sequence_order_only() {
        let recorder = Arc::new(Recorder(Mutex::new(Vec::new())));
        let mut tracker = AckTracker { next: 0, done: BTreeMap::new(), target: Some(recorder.clone()) };
        let ack = |offset| vec![FileAck { file: 1, offset }];
        tracker.complete(1, ack(20));
        assert!(recorder.0.lock().unwrap().is_empty(), "batch 1 must wait for batch 0");
        tracker.complete(0, ack(10));
        tracker.complete(2, ack(30));
        let offsets: Vec<u64> = recorder.0.lock().unwrap().iter().map(|a| a.offset).collect();
        assert_eq!(offsets, vec![10, 20, 30]);
    }

    #[tokio::test]
    async fn batch_slots_resize_up_and_down_as_running_batches_finish() {
        let permits = Arc::new(Semaphore::new(2));
        let (a, b) = (permits.clone().acquire_owned().await.unwrap(), permits.clone().acquire_owned().await.unwrap());
        resize(&permits, 2, 3);
        assert_eq!(permits.available_permits(), 1);
        // 3 → 1 with two running: the free slot goes at once, one more when a batch finishes.
        resize(&permits, 3, 1);
        assert_eq!(permits.available_permits(), 0);
        drop(a);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while permits.available_permits() != 0 || permits.try_acquire().is_ok() {
            assert!(std::time::Instant::now() < deadline, "the owed slot is taken back");
            tokio::task::yield_now().await;
        }
        drop(b);
        assert_eq!(permits.available_permits(), 1, "one slot from now on");
    }

    #[test]
    fn jitter_stays_within_half_and_full_backoff() {
        for _ in 0..100 {
            let d = jittered(Duration::from_millis(100));
            assert!(d >= Duration::from_millis(50) && d <= Duration::from_millis(100));
        }
    }
}
