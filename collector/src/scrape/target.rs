//! One scrape target's loop: fetch, parse, label, ship. Targets start at an offset within their
//! interval derived from a hash of their URL, so a job's targets spread out instead of all being
//! fetched at the same instant.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use model::{Labels, LabelsBuilder, Sample, TimeSeries};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::{CollectorConfig, ScrapeConfig};
use crate::metrics::CollectorMetrics;
use crate::relabel::{self, Relabeler};
use crate::scrape::exposition;
use crate::scrape::exposition::FastBuild;
#[cfg(test)]
use crate::scrape::exposition::ScrapedSample;
use crate::scrape::http::{AuthSource, error_chain};
use crate::scrape::populate::{self, JobDefaults, Outcome};
use crate::scrape::sd::TargetGroup;
use crate::scrape::{DroppedTarget, TargetHealth, TargetStatus};
use crate::ship::{Chunk, SharedTenant, current};
use crate::sink::MetricSink;
use crate::tail::file::fnv1a;

/// The formats asked for, in Prometheus's order of preference: OpenMetrics 1.0, then text 0.0.4.
pub(crate) const ACCEPT: &str =
    "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.4,*/*;q=0.1";

/// Per-scrape limits of a job (0 = no limit); exceeding one fails the scrape.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Limits {
    pub sample: usize,
    pub label: usize,
    pub label_name_length: usize,
    pub label_value_length: usize,
    pub body_size: u64,
}

impl Limits {
    fn of(job: &ScrapeConfig) -> Self {
        Limits {
            sample: job.sample_limit,
            label: job.label_limit,
            label_name_length: job.label_name_length_limit,
            label_value_length: job.label_value_length_limit,
            body_size: job.body_size_limit,
        }
    }

    /// Prometheus's `verifyLabelLimits`, with its error texts.
    fn check_labels(&self, labels: &Labels) -> Result<(), String> {
        let metric: String = labels.metric_name().unwrap_or("").chars().take(50).collect();
        if self.label > 0 && labels.len() > self.label {
            return Err(format!(
                "label_limit exceeded (metric: {metric}, number of labels: {}, limit: {})",
                labels.len(),
                self.label
            ));
        }
        if self.label_name_length == 0 && self.label_value_length == 0 {
            return Ok(());
        }
        for label in labels.iter() {
            let name: String = label.name.chars().take(50).collect();
            if self.label_name_length > 0 && label.name.len() > self.label_name_length {
                return Err(format!(
                    "label_name_length_limit exceeded (metric: {metric}, label name: {name}, length: {}, limit: {})",
                    label.name.len(),
                    self.label_name_length
                ));
            }
            if self.label_value_length > 0 && label.value.len() > self.label_value_length {
                let value: String = label.value.chars().take(50).collect();
                return Err(format!(
                    "label_value_length_limit exceeded (metric: {metric}, label name: {name}, value: {value:?}, \
                     length: {}, limit: {})",
                    label.value.len(),
                    self.label_value_length
                ));
            }
        }
        Ok(())
    }
}

/// A configured target, ready to be scraped.
pub(crate) struct Target {
    pub job: String,
    pub url: reqwest::Url,
    pub target_labels: Labels,
    pub honor_labels: bool,
    pub interval: Duration,
    pub timeout: Duration,
    pub external_labels: Vec<(String, String)>,
    pub metric_relabel: Arc<Vec<Relabeler>>,
    pub limits: Limits,
    pub honor_timestamps: bool,
    /// The job's client (its TLS settings) and where its `Authorization` header comes from.
    pub client: reqwest::Client,
    pub auth: Option<AuthSource>,
    pub status: Arc<Mutex<TargetStatus>>,
}

/// A job's settings compiled once (relabel rules, HTTP client), from which targets are made
/// whenever its discovered groups change.
pub(crate) struct JobPlan {
    pub name: String,
    scheme: &'static str,
    metrics_path: String,
    params: BTreeMap<String, Vec<String>>,
    interval: Duration,
    timeout: Duration,
    target_relabel: Vec<Relabeler>,
    metric_relabel: Arc<Vec<Relabeler>>,
    honor_labels: bool,
    honor_timestamps: bool,
    limits: Limits,
    external_labels: Vec<(String, String)>,
    client: reqwest::Client,
    auth: Option<AuthSource>,
}

impl JobPlan {
    /// Compiles job `index` of `config`; errors name the offending key.
    pub(crate) fn new(index: usize, config: &CollectorConfig) -> Result<Self, crate::Error> {
        let job = &config.scrape_configs[index];
        let (interval, timeout) = job.timing(&config.global);
        let key = format!("collector.scrape_configs[{index}]");
        let target_relabel = relabel::compile_all(&job.relabel_configs)
            .map_err(|e| crate::Error::Config(format!("{key}.relabel_configs{e}")))?;
        let metric_relabel = Arc::new(
            relabel::compile_all(&job.metric_relabel_configs)
                .map_err(|e| crate::Error::Config(format!("{key}.metric_relabel_configs{e}")))?,
        );
        Ok(JobPlan {
            name: job.job_name.clone(),
            scheme: job.scheme.as_str(),
            metrics_path: job.metrics_path.clone(),
            params: job.params.clone(),
            interval,
            timeout,
            target_relabel,
            metric_relabel,
            honor_labels: job.honor_labels,
            honor_timestamps: job.honor_timestamps,
            limits: Limits::of(job),
            external_labels: config.global.external_labels.clone().into_iter().collect(),
            client: job.http().client(&key).map_err(crate::Error::Config)?,
            auth: job.http().auth(),
        })
    }

    /// The targets of `groups` after `relabel_configs`: the active ones and the dropped ones (with
    /// their labels before relabeling). A target whose relabeled labels are unusable (no address,
    /// bad interval, ...) is logged and skipped, as Prometheus does.
    pub(crate) fn targets<'g>(
        &self,
        groups: impl IntoIterator<Item = &'g TargetGroup>,
    ) -> (Vec<Target>, Vec<DroppedTarget>) {
        let defaults = JobDefaults {
            job_name: &self.name,
            scheme: self.scheme,
            metrics_path: &self.metrics_path,
            interval: self.interval,
            timeout: self.timeout,
            params: &self.params,
        };
        let (mut targets, mut dropped) = (Vec::new(), Vec::new());
        for group in groups {
            for target_labels in &group.targets {
                let mut discovered = target_labels.to_builder();
                for label in group.labels.iter() {
                    if discovered.get(&label.name).is_none() {
                        discovered.set(&label.name, &label.value);
                    }
                }
                let populated = match populate::populate(&discovered.build(), &defaults, &self.target_relabel) {
                    Ok(Outcome::Active(p)) => p,
                    Ok(Outcome::Dropped(labels)) => {
                        dropped.push(DroppedTarget { job: self.name.clone(), discovered_labels: labels });
                        continue;
                    }
                    Err(error) => {
                        let address = target_labels.get(populate::ADDRESS).unwrap_or("");
                        tracing::warn!(job = %self.name, target = %address, %error, "creating target failed");
                        continue;
                    }
                };
                let status = TargetStatus {
                    job: self.name.clone(),
                    scrape_url: populated.url.to_string(),
                    labels: populated.labels.clone(),
                    discovered_labels: populated.discovered.clone(),
                    health: TargetHealth::Unknown,
                    last_error: None,
                    last_scrape: None,
                    last_duration: None,
                };
                targets.push(Target {
                    job: self.name.clone(),
                    url: populated.url,
                    target_labels: populated.labels,
                    honor_labels: self.honor_labels,
                    interval: populated.interval,
                    timeout: populated.timeout,
                    external_labels: self.external_labels.clone(),
                    metric_relabel: self.metric_relabel.clone(),
                    limits: self.limits,
                    honor_timestamps: self.honor_timestamps,
                    client: self.client.clone(),
                    auth: self.auth.clone(),
                    status: Arc::new(Mutex::new(status)),
                });
            }
        }
        (targets, dropped)
    }
}

impl Target {
    /// Identity across discovery updates, as Prometheus's target hash: labels and URL.
    pub(crate) fn key(&self) -> (String, u64) {
        (self.url.to_string(), self.target_labels.stable_hash())
    }
}

/// Every job's static targets after `relabel_configs` (see [`JobPlan::targets`]).
#[cfg(test)]
pub(crate) fn build_targets(config: &CollectorConfig) -> Result<(Vec<Target>, Vec<DroppedTarget>), crate::Error> {
    let (mut targets, mut dropped) = (Vec::new(), Vec::new());
    for (i, job) in config.scrape_configs.iter().enumerate() {
        let (t, d) = JobPlan::new(i, config)?.targets(&crate::scrape::sd::static_groups(job));
        targets.extend(t);
        dropped.extend(d);
    }
    Ok((targets, dropped))
}

/// The series of a target's last successful scrape, by label hash, with the label-cache slot
/// holding their labels for the ones without a timestamp of their own (those Prometheus tracks
/// for staleness). A slot rather than a copy of the labels: the copy's reference count was
/// incremented and decremented per sample and scrape, a cache miss each. The cache evicts only
/// after the staleness pass, so the slots of the last scrape's series stay valid until it ran.
/// Hashed with foldhash (as the label cache): two lookups per sample and scrape.
pub(crate) type SeenSeries = HashMap<u64, Option<u32>, FastBuild>;

/// Where a scrape loop hands its samples.
#[derive(Clone)]
pub(crate) enum ScrapeOutput {
    /// The shipper's queue (batching, retries, the disk buffer): a remote sink.
    Shipper(mpsc::Sender<Chunk<TimeSeries>>),
    /// A store in this process ([`MetricSink::takes_scrapes_directly`]): each loop appends its
    /// own scrapes, as Prometheus's scrape loops append to its head. No batching, no queue hop.
    Direct { sink: Arc<dyn MetricSink>, tenant: SharedTenant },
}

/// Scrapes `target` every interval until `cancel` (collector shutdown: no stale markers, as in
/// Prometheus) or `removed` (the target went away: stale markers for every series it had).
pub(crate) async fn run(
    target: Target,
    output: ScrapeOutput,
    metrics: CollectorMetrics,
    cancel: CancellationToken,
    removed: CancellationToken,
) {
    let order_key = fnv1a(target.url.as_str().as_bytes());
    let interval_ms = target.interval.as_millis().max(1) as u64;
    let offset = Duration::from_millis(order_key % interval_ms);
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + offset, target.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut state = ScrapeState::new(&target);
    loop {
        let (series, scraped) = tokio::select! {
            biased;
            _ = cancel.cancelled() => return,
            _ = removed.cancelled() => (end_of_run_staleness(&state, model::time::now_ms()), false),
            _ = ticker.tick() => (scrape_once(&target, &metrics, &mut state).await, true),
        };
        let waiting = tokio::time::Instant::now();
        match &output {
            ScrapeOutput::Shipper(tx) => {
                let chunk = Chunk { bytes: 0, items: series, order_key, ack: None };
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    sent = tx.send(chunk) => if sent.is_err() { return },
                }
            }
            ScrapeOutput::Direct { sink, tenant } => {
                let samples = series.len() as u64;
                let refs = if scraped { state.series_refs(series.len()) } else { Vec::new() };
                let pushed = tokio::select! {
                    _ = cancel.cancelled() => return,
                    pushed = sink.push_scrape(current(tenant), series, refs) => pushed,
                };
                if scraped {
                    state.keep_series_refs(pushed.refs);
                    state.returned = pushed.series.unwrap_or_default();
                }
                match pushed.result {
                    Ok(()) => {
                        metrics.samples_sent.inc_by(samples);
                    }
                    // As Prometheus: a scrape the store cannot take (a full disk) is dropped, not
                    // retried; the next scrape brings the current values.
                    Err(e) => {
                        tracing::warn!(job = %target.job, url = %target.url, error = %e.message, samples, "storing a scrape failed, dropping it");
                        metrics.count_drop("samples", if e.retryable { "store_failed" } else { "rejected" }, samples);
                    }
                }
            }
        }
        // Behind a shipper that cannot take samples (a sink outage with the disk buffer full or
        // unwritable) or a slow store, scrapes wait rather than pile up in memory: count the ones
        // that were skipped.
        let skipped = waiting.elapsed().as_millis() as u64 / interval_ms;
        if skipped > 0 {
            let labels = vec![("job".to_string(), target.job.clone()), ("result".to_string(), "skipped".to_string())];
            metrics.scrapes.get_or_create(&labels).inc_by(skipped);
        }
        if removed.is_cancelled() {
            return;
        }
    }
}

/// What a target's loop keeps from one scrape to the next, so that a steady target's scrape
/// reuses its buffers instead of allocating and growing them again: the series of the last
/// scrape (for staleness) and a cleared set the next scrape fills (the two are swapped), the
/// label cache, the body buffer and the synthetic series' labels.
pub(crate) struct ScrapeState {
    previous: SeenSeries,
    spare: SeenSeries,
    cache: LabelCache,
    body: Vec<u8>,
    /// The gzip-encoded page, decoded into `body`.
    compressed: Vec<u8>,
    /// The labels of [`REPORT_SERIES`], in that order.
    report: Vec<Labels>,
    /// Series the last scrape produced: the next one's vector starts that large.
    last_len: usize,
    /// The ideal time of the last tick, for [`aligned_timestamp`].
    aligned_ms: Option<i64>,
    /// The label-cache slots of the last scrape's scraped series (its first ones).
    slots: Vec<u32>,
    /// The store's references for the synthetic series.
    report_refs: [u64; REPORT_SERIES.len()],
    /// Reused vector of references handed to the store.
    refs: Vec<u64>,
    /// The last scrape's series, handed back by the store: the next scrape refills their sample
    /// vectors instead of allocating one per series (and freeing it on another thread).
    returned: Vec<TimeSeries>,
}

impl ScrapeState {
    pub(crate) fn new(target: &Target) -> Self {
        ScrapeState {
            previous: SeenSeries::default(),
            spare: SeenSeries::default(),
            cache: LabelCache::default(),
            body: Vec::new(),
            compressed: Vec::new(),
            report: REPORT_SERIES.iter().map(|name| report_labels(target, name)).collect(),
            last_len: 0,
            aligned_ms: None,
            slots: Vec::new(),
            report_refs: [0; REPORT_SERIES.len()],
            refs: Vec::new(),
            returned: Vec::new(),
        }
    }

    /// The store's references for the `len` series of the last [`scrape_once`], in its order:
    /// the scraped series, stale markers (no reference), the synthetic series.
    pub(crate) fn series_refs(&mut self, len: usize) -> Vec<u64> {
        let mut refs = std::mem::take(&mut self.refs);
        refs.clear();
        self.cache.series_refs(&self.slots, &mut refs);
        refs.resize(len.saturating_sub(REPORT_SERIES.len()).max(refs.len()), 0);
        refs.extend_from_slice(&self.report_refs);
        refs
    }

    /// Keeps the references the store answered for [`ScrapeState::series_refs`]'s series.
    pub(crate) fn keep_series_refs(&mut self, refs: Vec<u64>) {
        let scraped = self.slots.len();
        if refs.len() >= scraped + REPORT_SERIES.len() {
            self.cache.keep_series_refs(&self.slots, &refs[..scraped]);
            self.report_refs.copy_from_slice(&refs[refs.len() - REPORT_SERIES.len()..]);
        }
        self.refs = refs;
    }
}

/// How late a scrape may start and still get its tick's ideal timestamp (Prometheus's
/// `--scrape.timestamp-tolerance`, default 2 ms).
const TIMESTAMP_TOLERANCE_MS: i64 = 2;

/// The timestamp of a scrape that starts at `now_ms`, as Prometheus aligns it: timer wake-ups
/// jitter by a millisecond or two, which turns every series' regular timestamps into irregular
/// ones that cost disk (prometheus#7846; in Tarsier the blocks' `timestamp_ms` column, see
/// tsdb/BLOCKS.md). A scrape within the tolerance after its tick gets the tick's time, counted in
/// whole intervals from the first scrape. Intervals up to 100 x the tolerance are not aligned.
fn aligned_timestamp(aligned_ms: &mut Option<i64>, now_ms: i64, interval_ms: i64) -> i64 {
    if interval_ms <= 100 * TIMESTAMP_TOLERANCE_MS {
        return now_ms;
    }
    match aligned_ms {
        Some(tick) if now_ms >= *tick - interval_ms => {
            if now_ms - *tick >= interval_ms {
                *tick += (now_ms - *tick) / interval_ms * interval_ms;
            }
            if (0..=TIMESTAMP_TOLERANCE_MS).contains(&(now_ms - *tick)) { *tick } else { now_ms }
        }
        // The first scrape, or the wall clock went back by more than an interval: start again.
        _ => {
            *aligned_ms = Some(now_ms);
            now_ms
        }
    }
}

/// Stale markers for everything a vanished target had: its scraped series and its synthetic ones.
pub(crate) fn end_of_run_staleness(state: &ScrapeState, ts_ms: i64) -> Vec<TimeSeries> {
    let stale = || vec![Sample::new(ts_ms, model::stale_nan())];
    let mut series: Vec<TimeSeries> = state
        .previous
        .values()
        .flatten()
        .filter_map(|slot| state.cache.labels(*slot))
        .map(|l| TimeSeries::new(l.clone(), stale()))
        .collect();
    series.extend(state.report.iter().map(|l| TimeSeries::new(l.clone(), stale())));
    series
}

const REPORT_SERIES: [&str; 5] = [
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
];

fn report_labels(target: &Target, name: &str) -> Labels {
    let mut labels = target.target_labels.to_builder();
    labels.set(model::METRIC_NAME, name);
    add_external(&mut labels, &target.external_labels);
    labels.build()
}

/// What one scrape's samples became after labelling, metric relabeling and the limits.
struct Appended {
    series: Vec<TimeSeries>,
    /// The label-cache slot of each of `series`.
    slots: Vec<u32>,
    current: SeenSeries,
    post_relabel: usize,
}

/// What an [`Appender`] takes over from the scrape before: the emptied seen-series set, the series
/// the store handed back, and how many series to make room for.
#[derive(Default)]
struct Reused {
    current: SeenSeries,
    spare: Vec<TimeSeries>,
    expected: usize,
}

/// Labels, relabels and checks samples one at a time as the parser hands them out; the first
/// limit exceeded is kept as the scrape's error (with the sample count at that point).
struct Appender<'t> {
    target: &'t Target,
    cache: &'t mut LabelCache,
    start_ms: i64,
    series: Vec<TimeSeries>,
    /// Series of an earlier scrape whose sample vectors are refilled.
    spare: Vec<TimeSeries>,
    slots: Vec<u32>,
    current: SeenSeries,
    error: Option<(String, usize)>,
}

/// The final label set (after target labels, metric relabeling, external labels and the label
/// limits) of every series a target exposed in its recent scrapes, keyed by the series as the
/// page spells it. A steady target's samples then skip labelling and relabeling: the label-set
/// copies those make per sample dominated a profile of scraping node_exporter (Prometheus keeps
/// the same kind of per-target cache). Entries not seen in the last scrape are dropped once they
/// outnumber the live ones, so the cache stays about the size of the target's series.
///
/// Each entry also keeps the store's reference for its series (see
/// [`MetricSink::push_scrape`]). Entries live in `slots`, whose indices stay valid until the
/// entry is evicted, so the references an append answers with can be written back after it.
#[derive(Default)]
pub(crate) struct LabelCache {
    /// Page key -> index in `slots`. foldhash rather than SipHash: every sample of every scrape
    /// hashes its ~100-byte key here.
    entries: HashMap<Box<[u8]>, u32, FastBuild>,
    slots: Vec<CachedLabels>,
    /// Evicted slots, reused before `slots` grows.
    free: Vec<u32>,
    key: Vec<u8>,
    scrape: u64,
    looked_up: usize,
}

struct CachedLabels {
    /// `None`: metric relabeling dropped the series (or the slot is free).
    labels: Option<(Labels, u64)>,
    last_scrape: u64,
    /// The store's reference for the series, 0 while it has none.
    series_ref: u64,
}

impl LabelCache {
    /// The page's identity of a series: the name, then each label name and its value, each
    /// length-prefixed (a value may hold any character), built in a reused buffer.
    fn set_key<N: AsRef<str>, V: AsRef<str>>(&mut self, name: &str, labels: &[(N, V)]) {
        self.key.clear();
        let parts = labels.iter().flat_map(|(n, v)| [n.as_ref(), v.as_ref()]);
        for part in std::iter::once(name).chain(parts) {
            self.key.extend_from_slice(&(part.len() as u32).to_le_bytes());
            self.key.extend_from_slice(part.as_bytes());
        }
    }

    fn start_scrape(&mut self) {
        self.scrape += 1;
        self.looked_up = 0;
    }

    /// Drops the entries the last scrape did not see once they outnumber the live ones. Live
    /// entries keep their slots.
    fn end_scrape(&mut self) {
        if self.entries.len() > 2 * self.looked_up + 64 {
            let scrape = self.scrape;
            let (slots, free) = (&mut self.slots, &mut self.free);
            self.entries.retain(|_, slot| {
                let entry = &mut slots[*slot as usize];
                if entry.last_scrape == scrape {
                    return true;
                }
                *entry = CachedLabels { labels: None, last_scrape: 0, series_ref: 0 };
                free.push(*slot);
                false
            });
        }
    }

    fn insert(&mut self, labels: Option<(Labels, u64)>) -> u32 {
        let entry = CachedLabels { labels, last_scrape: self.scrape, series_ref: 0 };
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot as usize] = entry;
                slot
            }
            None => {
                self.slots.push(entry);
                (self.slots.len() - 1) as u32
            }
        };
        self.entries.insert(self.key.as_slice().into(), slot);
        slot
    }

    /// The labels cached in `slot` (`None` for a series metric relabeling dropped).
    pub(crate) fn labels(&self, slot: u32) -> Option<&Labels> {
        self.slots.get(slot as usize).and_then(|e| e.labels.as_ref()).map(|(labels, _)| labels)
    }

    /// The store's references for the series of `slots`, in that order.
    pub(crate) fn series_refs(&self, slots: &[u32], refs: &mut Vec<u64>) {
        refs.extend(slots.iter().map(|s| self.slots.get(*s as usize).map_or(0, |e| e.series_ref)));
    }

    /// Keeps what the store answered for the series of `slots` (a slot evicted since is skipped).
    pub(crate) fn keep_series_refs(&mut self, slots: &[u32], refs: &[u64]) {
        for (slot, series_ref) in slots.iter().zip(refs) {
            if let Some(entry) = self.slots.get_mut(*slot as usize)
                && entry.labels.is_some()
            {
                entry.series_ref = *series_ref;
            }
        }
    }
}

impl<'t> Appender<'t> {
    #[cfg(test)]
    fn new(target: &'t Target, cache: &'t mut LabelCache, start_ms: i64) -> Self {
        Self::reusing(target, cache, Reused::default(), start_ms)
    }

    /// An appender filling `reused.current` (cleared here, its capacity kept) and a series vector
    /// sized for `reused.expected` samples, refilling the series of `reused.spare`.
    fn reusing(target: &'t Target, cache: &'t mut LabelCache, reused: Reused, start_ms: i64) -> Self {
        cache.start_scrape();
        let Reused { mut current, spare, expected } = reused;
        current.clear();
        Appender {
            target,
            cache,
            start_ms,
            series: Vec::with_capacity(expected),
            spare,
            slots: Vec::with_capacity(expected),
            current,
            error: None,
        }
    }

    /// The final labels of a scraped series, their hash and the cache slot, from the cache or
    /// computed (and then cached); `None` labels when metric relabeling drops it, `Err` when it
    /// breaks a label limit.
    fn final_labels<N: AsRef<str>, V: AsRef<str>>(
        &mut self,
        name: &str,
        labels: &[(N, V)],
    ) -> Result<(Option<(Labels, u64)>, u32), String> {
        let scrape = self.cache.scrape;
        self.cache.looked_up += 1;
        self.cache.set_key(name, labels);
        if let Some(slot) = self.cache.entries.get(self.cache.key.as_slice()) {
            let entry = &mut self.cache.slots[*slot as usize];
            entry.last_scrape = scrape;
            return Ok((entry.labels.clone(), *slot));
        }
        let target = self.target;
        let computed = match relabel::process(&label_sample(target, name, labels), &target.metric_relabel) {
            Some(labels) if !labels.is_empty() => {
                target.limits.check_labels(&labels)?;
                let mut builder = labels.to_builder();
                add_external(&mut builder, &target.external_labels);
                let labels = builder.build();
                let hash = labels.stable_hash();
                Some((labels, hash))
            }
            _ => None,
        };
        let slot = self.cache.insert(computed.clone());
        Ok((computed, slot))
    }

    fn add<N: AsRef<str>, V: AsRef<str>>(&mut self, name: &str, labels: &[(N, V)], value: f64, ts: Option<i64>) {
        if self.error.is_some() {
            return;
        }
        let post = self.series.len() + 1;
        let (labels, hash, slot) = match self.final_labels(name, labels) {
            Ok((Some((labels, hash)), slot)) => (labels, hash, slot),
            Ok((None, _)) => return,
            Err(e) => {
                self.error = Some((e, post));
                return;
            }
        };
        let target = self.target;
        if target.limits.sample > 0 && post > target.limits.sample {
            self.error = Some(("sample limit exceeded".to_string(), post));
            return;
        }
        let own_timestamp = ts.filter(|_| target.honor_timestamps);
        self.current.insert(hash, own_timestamp.is_none().then_some(slot));
        let ts = own_timestamp.unwrap_or(self.start_ms);
        let sample = Sample::new(ts, value);
        match self.spare.pop() {
            Some(mut series) => {
                series.labels = labels;
                series.samples.clear();
                series.samples.push(sample);
                self.series.push(series);
            }
            None => self.series.push(TimeSeries::new(labels, vec![sample])),
        }
        self.slots.push(slot);
    }

    /// The scrape's outcome. The cache is not trimmed here but after the staleness pass
    /// ([`LabelCache::end_scrape`]), which reads the last scrape's slots.
    fn finish(self) -> Result<Appended, (String, usize)> {
        if let Some(error) = self.error {
            return Err(error);
        }
        let post_relabel = self.series.len();
        Ok(Appended { series: self.series, slots: self.slots, current: self.current, post_relabel })
    }
}

#[cfg(test)]
fn append(target: &Target, samples: Vec<ScrapedSample>, start_ms: i64) -> Result<Appended, (String, usize)> {
    let mut cache = LabelCache::default();
    let mut appender = Appender::new(target, &mut cache, start_ms);
    for s in &samples {
        appender.add(&s.name, &s.labels, s.value, s.timestamp_ms);
    }
    appender.finish()
}

/// Parses a page by its content type and appends its samples: the text format without copying
/// the page (`parse_each`), OpenMetrics through its owned parser. Returns the number of samples
/// scraped (0 when the page does not parse: a parse error fails the whole scrape, as in
/// Prometheus) and what they became.
fn parse_and_append(
    target: &Target,
    cache: &mut LabelCache,
    reused: Reused,
    content_type: Option<&str>,
    body: &str,
    start_ms: i64,
) -> (usize, Result<Appended, (String, usize)>) {
    let mut appender = Appender::reusing(target, cache, reused, start_ms);
    let parsed = if exposition::is_openmetrics(content_type) {
        crate::scrape::openmetrics::parse(body).map(|samples| {
            for s in &samples {
                appender.add(&s.name, &s.labels, s.value, s.timestamp_ms);
            }
            samples.len()
        })
    } else {
        exposition::parse_each(body, |s| appender.add(s.name, s.labels, s.value, s.timestamp_ms))
    };
    match parsed {
        Ok(scraped) => (scraped, appender.finish()),
        Err(e) => (0, Err((e.to_string(), 0))),
    }
}

/// One scrape, returning the labelled samples, stale markers for series that disappeared since the
/// last scrape (all of them if this one failed), and the synthetic series.
pub(crate) async fn scrape_once(
    target: &Target,
    metrics: &CollectorMetrics,
    state: &mut ScrapeState,
) -> Vec<TimeSeries> {
    let interval_ms = target.interval.as_millis().min(i64::MAX as u128) as i64;
    let start_ms = aligned_timestamp(&mut state.aligned_ms, model::time::now_ms(), interval_ms);
    let started = Instant::now();
    let fetched = fetch(target, &mut state.body, &mut state.compressed).await;
    let duration = started.elapsed();
    let reused = Reused {
        current: std::mem::take(&mut state.spare),
        spare: std::mem::take(&mut state.returned),
        // Room for the synthetic series and a few stale markers without growing.
        expected: state.last_len + REPORT_SERIES.len() + 8,
    };
    let mut looked_up = false;
    let (scraped, outcome) = match fetched {
        Ok(content_type) => match std::str::from_utf8(&state.body) {
            Ok(body) => {
                looked_up = true;
                parse_and_append(target, &mut state.cache, reused, content_type.as_deref(), body, start_ms)
            }
            Err(e) => (0, Err((format!("response body is not UTF-8: {e}"), 0))),
        },
        Err(e) => (0, Err((e, 0))),
    };
    let previous = &mut state.previous;
    let result_label = if outcome.is_ok() { "success" } else { "failure" };
    metrics
        .scrapes
        .get_or_create(&vec![("job".to_string(), target.job.clone()), ("result".to_string(), result_label.to_string())])
        .inc();
    state.slots.clear();
    let (mut series, current, post_relabel, added, error) = match outcome {
        Ok(a) => {
            let added = a.current.keys().filter(|h| !previous.contains_key(h)).count();
            state.slots = a.slots;
            (a.series, a.current, a.post_relabel, added, None)
        }
        Err((e, post)) => (Vec::new(), SeenSeries::default(), post, 0, Some(e)),
    };
    for (hash, slot) in previous.iter() {
        if let Some(slot) = slot
            && !current.contains_key(hash)
            && let Some(labels) = state.cache.labels(*slot)
        {
            series.push(TimeSeries::new(labels.clone(), vec![Sample::new(start_ms, model::stale_nan())]));
        }
    }
    state.spare = std::mem::replace(previous, current);
    if looked_up {
        // Only now: the staleness pass above read the last scrape's slots.
        state.cache.end_scrape();
    }
    let up = if error.is_none() { 1.0 } else { 0.0 };
    for (labels, value) in
        state.report.iter().zip([up, duration.as_secs_f64(), scraped as f64, post_relabel as f64, added as f64])
    {
        series.push(TimeSeries::new(labels.clone(), vec![Sample::new(start_ms, value)]));
    }
    state.last_len = series.len();
    let mut status = target.status.lock().unwrap_or_else(|e| e.into_inner());
    status.health = if error.is_none() { TargetHealth::Up } else { TargetHealth::Down };
    if let Some(e) = &error {
        tracing::debug!(job = %target.job, url = %target.url, error = %e, "scrape failed");
    }
    status.last_error = error;
    status.last_scrape = Some(start_ms);
    status.last_duration = Some(duration);
    series
}

/// Scraped labels plus target labels. On a conflict the target's value wins and the scraped one
/// is kept as `exported_<name>`, unless `honor_labels` (then the scraped value wins).
fn label_sample<N: AsRef<str>, V: AsRef<str>>(target: &Target, name: &str, labels: &[(N, V)]) -> Labels {
    let mut builder = LabelsBuilder::default();
    for (name, value) in labels {
        builder.set(name.as_ref(), value.as_ref());
    }
    builder.set(model::METRIC_NAME, name);
    for label in target.target_labels.iter() {
        match labels.iter().find(|(n, v)| n.as_ref() == label.name && !v.as_ref().is_empty()) {
            Some(_) if target.honor_labels => {}
            Some((_, scraped)) => {
                builder.set(format!("exported_{}", label.name), scraped.as_ref());
                builder.set(&label.name, &label.value);
            }
            None => {
                builder.set(&label.name, &label.value);
            }
        }
    }
    builder.build()
}

fn add_external(builder: &mut LabelsBuilder, external: &[(String, String)]) {
    for (name, value) in external {
        if builder.get(name).is_none() {
            builder.set(name, value);
        }
    }
}

/// Reads the page of one scrape into `body` (cleared first, its capacity reused); returns the
/// content type.
async fn fetch(target: &Target, body: &mut Vec<u8>, compressed: &mut Vec<u8>) -> Result<Option<String>, String> {
    body.clear();
    compressed.clear();
    let mut request = target
        .client
        .get(target.url.clone())
        .header("Accept", ACCEPT)
        .header("Accept-Encoding", "gzip")
        .header("X-Prometheus-Scrape-Timeout-Seconds", format!("{}", target.timeout.as_secs_f64()))
        .timeout(target.timeout);
    if let Some(auth) = &target.auth {
        request = auth.apply(request).await?;
    }
    let mut response = request.send().await.map_err(|e| error_chain(&e))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("server returned HTTP status {status}"));
    }
    let header = |name| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    let content_type = header(reqwest::header::CONTENT_TYPE);
    let gzip = header(reqwest::header::CONTENT_ENCODING).is_some_and(|e| e.trim().eq_ignore_ascii_case("gzip"));
    let limit = target.limits.body_size;
    let read_into = if gzip { &mut *compressed } else { &mut *body };
    while let Some(chunk) = response.chunk().await.map_err(|e| format!("reading body: {}", error_chain(&e)))? {
        read_into.extend_from_slice(&chunk);
        // As Prometheus: reading `limit` bytes already counts as exceeding it. A compressed page
        // that large decodes to more still.
        if limit > 0 && read_into.len() as u64 >= limit {
            return Err("body size limit exceeded".to_string());
        }
    }
    if gzip {
        decode_gzip(compressed, limit, body)?;
    }
    Ok(content_type)
}

/// Decodes a gzip body (all its members, as Go's reader does) into `body`, refusing it once the
/// decoded page reaches `limit` bytes when `limit` is not 0 (the limit applies to the decoded page,
/// as in Prometheus). zlib's own gzip wrapper, decoding straight into the vector's spare
/// capacity: `Read::read_to_end` zeroed that capacity first on every scrape.
fn decode_gzip(compressed: &[u8], limit: u64, body: &mut Vec<u8>) -> Result<(), String> {
    use flate2::{Decompress, FlushDecompress, Status};
    let corrupt = |e: &dyn std::fmt::Display| format!("decoding the gzip body: {e}");
    let mut input = compressed;
    while !input.is_empty() {
        let mut member = Decompress::new_gzip(15);
        loop {
            if body.len() == body.capacity() {
                body.reserve(body.capacity().max(64 * 1024));
            }
            let (read, written) = (member.total_in(), member.total_out());
            let status = member.decompress_vec(input, body, FlushDecompress::None).map_err(|e| corrupt(&e))?;
            input = &input[(member.total_in() - read) as usize..];
            if limit > 0 && body.len() as u64 >= limit {
                return Err("body size limit exceeded".to_string());
            }
            if status == Status::StreamEnd {
                break;
            }
            if member.total_in() == read && member.total_out() == written {
                return Err(corrupt(&"unexpected end of the compressed data"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "target_tests.rs"]
mod tests;
