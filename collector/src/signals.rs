//! Autoscaling signals derived from what the collector tails, shipped as series through the same
//! path as scraped samples, so HPA (through `external.metrics.k8s.io`) and KEDA (through
//! `/api/v1/query`) can scale on them:
//!
//! - `tarsier_workload_log_lines_total{namespace,workload,pod}`
//! - `tarsier_workload_log_error_lines_total{namespace,workload,pod}`
//! - `tarsier_workload_log_bytes_total{namespace,workload,pod}`
//! - `tarsier_collector_backlog_bytes{node}`: bytes in tailed files not yet read plus bytes in the
//!   disk buffer (the collector's own lag: a growing value means it does not keep up).
//! - `tarsier_collector_signals_dropped_total{node}`: lines not counted because `max_workloads`
//!   distinct pods were already tracked.
//!
//! The workload is the pod's owner from the Kubernetes API (the stream's `workload` label, see
//! `kubernetes/metadata.rs`) when known, else guessed from the pod name ([`workload_of`]).
//! Rates are PromQL's job (`rate(...[2m])`); counters survive missed intervals. Only Kubernetes pod
//! files (with `namespace` and `pod` labels) count. A line is an error when its stream has a
//! `level` label of `error`/`critical` (`tail.parse.detect_level` on); otherwise the parse stage's
//! cheap level-from-text check runs on the line (klog `E1127`, an upper-case `ERROR`/`CRITICAL`/
//! `FATAL` token or a `level=error` pair near its start; a lower-case "error" inside a message
//! does not count). A pod idle for `idle_expiry` is forgotten (its series go stale).
//!
//! Every setting applies live ([`Signals::reconfigure`] on a reload): turning `enabled` off stops
//! counting and shipping and forgets the counters (they restart at zero, a counter reset PromQL's
//! `rate` handles); a new `interval` restarts the shipping timer at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use model::{Labels, LogStream, Sample, TimeSeries};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::metrics::CollectorMetrics;
use crate::parse::body::{Level, level_from_text};
use crate::ship::Chunk;

/// `collector.signals`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SignalsConfig {
    /// Derive and ship the per-workload series.
    pub enabled: bool,
    /// How often the counters are shipped as samples.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Most distinct pods tracked at once; lines of further pods are counted in
    /// `tarsier_collector_signals_dropped_total` instead.
    pub max_workloads: usize,
    /// A pod without lines for this long is forgotten.
    #[serde(with = "humantime_serde")]
    pub idle_expiry: Duration,
}

impl Default for SignalsConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            interval: Duration::from_secs(15),
            max_workloads: 10_000,
            idle_expiry: Duration::from_secs(600),
        }
    }
}

impl SignalsConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.interval.is_zero() {
            return Err("collector.signals.interval must be > 0".into());
        }
        if self.max_workloads == 0 {
            return Err("collector.signals.max_workloads must be > 0".into());
        }
        Ok(())
    }
}

/// The workload a pod belongs to, from its name alone: a StatefulSet ordinal (`db-0` → `db`), a
/// Deployment's ReplicaSet hash and pod suffix (`api-7d9f8b6c5d-x2x9z` → `api`), a DaemonSet's or
/// Job's pod suffix (`agent-x2x9z` → `agent`; a CronJob's `backup-29012345-abcde` → `backup`).
/// Limits: names alone cannot tell a bare pod named like `web-abcde` from a DaemonSet pod, nor
/// a ReplicaSet created directly from a Deployment's; owner references from the API would.
pub fn workload_of(pod: &str) -> &str {
    // kube's generated suffixes use this alphabet (no vowels, no 0/1/3 look-alikes).
    fn generated(s: &str, min: usize, max: usize) -> bool {
        (min..=max).contains(&s.len()) && s.bytes().all(|b| b"bcdfghjklmnpqrstvwxz2456789".contains(&b))
    }
    let Some((rest, last)) = pod.rsplit_once('-') else { return pod };
    if rest.is_empty() {
        return pod;
    }
    if last.bytes().all(|b| b.is_ascii_digit()) && !last.is_empty() {
        return rest; // StatefulSet ordinal
    }
    if generated(last, 5, 5) {
        if let Some((base, hash)) = rest.rsplit_once('-')
            && !base.is_empty()
            && (generated(hash, 6, 10) || hash.len() >= 8 && hash.bytes().all(|b| b.is_ascii_digit()))
        {
            return base; // Deployment (ReplicaSet hash) or CronJob (scheduled-time suffix)
        }
        return rest; // DaemonSet or Job
    }
    pod
}

#[derive(Default)]
struct Counts {
    /// The owner from the API's pod metadata (the stream's `workload` label), when known.
    workload: Option<String>,
    lines: u64,
    errors: u64,
    bytes: u64,
    last_seen: Option<Instant>,
}

#[derive(Default)]
struct State {
    config: SignalsConfig,
    pods: HashMap<(String, String), Counts>,
    lag: HashMap<u64, u64>,
    dropped: u64,
}

/// Shared between the tailer thread (observes), the emitting task and the reloader.
pub(crate) struct Signals {
    /// `config.enabled`, read without the lock on the tailer's path.
    enabled: AtomicBool,
    node: String,
    state: Mutex<State>,
    /// Wakes the emitting task when the configuration changed.
    changed: tokio::sync::Notify,
}

impl Signals {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn new(config: SignalsConfig, node: Option<String>) -> Arc<Signals> {
        Arc::new(Signals {
            enabled: AtomicBool::new(config.enabled),
            node: node.unwrap_or_default(),
            state: Mutex::new(State { config, ..State::default() }),
            changed: tokio::sync::Notify::new(),
        })
    }

    /// Applies a reloaded `collector.signals`: lines counted from now on follow it.
    pub(crate) fn reconfigure(&self, config: SignalsConfig) {
        let mut state = self.lock();
        if state.config == config {
            return;
        }
        if !config.enabled {
            state.pods.clear();
            state.dropped = 0;
        }
        self.enabled.store(config.enabled, Ordering::Release);
        tracing::info!(enabled = config.enabled, interval = ?config.interval, "autoscaling signals reconfigured");
        state.config = config;
        drop(state);
        self.changed.notify_one();
    }

    fn config(&self) -> SignalsConfig {
        self.lock().config.clone()
    }

    /// Counts one chunk's streams (called by the tailer before it hands them over).
    pub(crate) fn observe(&self, streams: &[LogStream]) {
        if !self.enabled.load(Ordering::Acquire) {
            return;
        }
        let now = Instant::now();
        let mut state = self.lock();
        let max_workloads = state.config.max_workloads;
        for stream in streams {
            let (Some(ns), Some(pod)) = (stream.labels.get("namespace"), stream.labels.get("pod")) else { continue };
            let level_error = stream.labels.get("level").map(|l| l == "error" || l == "critical");
            let key = (ns.to_string(), pod.to_string());
            if !state.pods.contains_key(&key) && state.pods.len() >= max_workloads {
                state.dropped += stream.entries.len() as u64;
                continue;
            }
            let c = state.pods.entry(key).or_default();
            c.last_seen = Some(now);
            if let Some(workload) = stream.labels.get(crate::kubernetes::metadata::WORKLOAD_LABEL)
                && c.workload.as_deref() != Some(workload)
            {
                c.workload = Some(workload.to_string());
            }
            for e in &stream.entries {
                c.lines += 1;
                c.bytes += e.line.len() as u64;
                let error = level_error
                    .unwrap_or_else(|| matches!(level_from_text(&e.line), Some(Level::Error | Level::Critical)));
                c.errors += u64::from(error);
            }
        }
    }

    /// Records a file's unread bytes (`None` when the file is released).
    pub(crate) fn set_lag(&self, file: u64, lag: Option<u64>) {
        let mut state = self.lock();
        match lag {
            Some(l) => state.lag.insert(file, l),
            None => state.lag.remove(&file),
        };
    }

    /// The current counters as series at `timestamp_ms`; forgets idle pods.
    pub(crate) fn series(&self, timestamp_ms: i64, buffer_bytes: i64) -> Vec<TimeSeries> {
        let mut state = self.lock();
        let expiry = state.config.idle_expiry;
        state.pods.retain(|_, c| c.last_seen.is_some_and(|t| t.elapsed() < expiry));
        let mut out = Vec::with_capacity(state.pods.len() * 3 + 2);
        let point = |v: u64| vec![Sample { timestamp_ms, value: v as f64 }];
        for ((ns, pod), c) in &state.pods {
            let labels = |name: &str| {
                Labels::from_pairs([
                    ("__name__", name),
                    ("namespace", ns.as_str()),
                    ("workload", c.workload.as_deref().unwrap_or_else(|| workload_of(pod))),
                    ("pod", pod.as_str()),
                    ("node", self.node.as_str()),
                    ("job", "tarsier-signals"),
                ])
            };
            out.push(TimeSeries::new(labels("tarsier_workload_log_lines_total"), point(c.lines)));
            out.push(TimeSeries::new(labels("tarsier_workload_log_error_lines_total"), point(c.errors)));
            out.push(TimeSeries::new(labels("tarsier_workload_log_bytes_total"), point(c.bytes)));
        }
        let own = |name: &str| {
            Labels::from_pairs([("__name__", name), ("node", self.node.as_str()), ("job", "tarsier-signals")])
        };
        let backlog = state.lag.values().sum::<u64>() + buffer_bytes.max(0) as u64;
        out.push(TimeSeries::new(own("tarsier_collector_backlog_bytes"), point(backlog)));
        out.push(TimeSeries::new(own("tarsier_collector_signals_dropped_total"), point(state.dropped)));
        out
    }
}

/// Ships the signals every `interval` while enabled, until cancelled, through the samples'
/// shipper. A reconfiguration restarts the timer with the new interval.
pub(crate) async fn emit_periodically(
    signals: Arc<Signals>,
    tx: mpsc::Sender<Chunk<TimeSeries>>,
    metrics: CollectorMetrics,
    cancel: CancellationToken,
) {
    let timer = |interval: Duration| {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick
    };
    let mut config = signals.config();
    let mut tick = timer(config.interval);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = signals.changed.notified() => {
                let now = signals.config();
                if now.interval != config.interval {
                    tick = timer(now.interval);
                }
                config = now;
                continue;
            }
            _ = tick.tick() => {}
        }
        if !config.enabled {
            continue;
        }
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
        let series = signals.series(now, metrics.buffer_bytes.get());
        // A fixed order key: one signal batch after the other, in time order.
        let chunk = Chunk { bytes: 0, items: series, order_key: 0x5167_6e61_6c73, ack: None };
        if tx.send(chunk).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::LogEntry;

    #[test]
    fn workload_names_from_pod_names() {
        for (pod, workload) in [
            ("api-7d9f8b6c5d-x2x9z", "api"),
            ("my-api-v2-5f7b9c8d6-x7k2p", "my-api-v2"),
            ("postgres-0", "postgres"),
            ("kafka-broker-12", "kafka-broker"),
            ("fluent-bit-x7k2p", "fluent-bit"),
            ("backup-29012345-qwrtz", "backup"),
            ("standalone", "standalone"),
            ("web-server", "web-server"),
            ("-0", "-0"),
        ] {
            assert_eq!(workload_of(pod), workload, "{pod}");
        }
    }

    fn stream(labels: &[(&str, &str)], lines: &[&str]) -> LogStream {
        LogStream {
            labels: Labels::from_pairs(labels.iter().copied()),
            entries: lines.iter().map(|l| LogEntry { timestamp_ns: 0, line: l.to_string() }).collect(),
        }
    }

    fn value(series: &[TimeSeries], name: &str, pod: &str) -> Option<f64> {
        series
            .iter()
            .find(|s| s.labels.get("__name__") == Some(name) && s.labels.get("pod").is_none_or(|p| p == pod))
            .map(|s| s.samples[0].value)
    }

    #[test]
    fn counts_lines_errors_bytes_and_caps_pods() {
        let config = SignalsConfig { enabled: true, max_workloads: 2, ..SignalsConfig::default() };
        let s = Signals::new(config, Some("node-1".into()));
        let pod = [("namespace", "shop"), ("pod", "api-7d9f8b6c5d-x2x9z")];
        s.observe(&[stream(
            &pod,
            &["ERROR payment failed", "ok", "E1127 10:00:00.000000 1 x.go:1] boom", "an error here"],
        )]);
        s.observe(&[stream(
            &[("namespace", "shop"), ("pod", "db-0"), ("level", "error"), ("workload", "pg")],
            &["x", "y"],
        )]);
        s.observe(&[stream(&[("filename", "/var/log/syslog")], &["ERROR host file"])]);
        s.observe(&[stream(&[("namespace", "shop"), ("pod", "third-0")], &["a", "b", "c"])]);
        s.set_lag(1, Some(100));
        let series = s.series(1_000, 50);
        let api = "api-7d9f8b6c5d-x2x9z";
        assert_eq!(value(&series, "tarsier_workload_log_lines_total", api), Some(4.0));
        assert_eq!(value(&series, "tarsier_workload_log_error_lines_total", api), Some(2.0), "ERROR and klog E");
        assert_eq!(value(&series, "tarsier_workload_log_bytes_total", api), Some(71.0));
        assert_eq!(value(&series, "tarsier_workload_log_error_lines_total", "db-0"), Some(2.0), "level label wins");
        assert_eq!(value(&series, "tarsier_workload_log_lines_total", "third-0"), None, "over max_workloads");
        assert_eq!(value(&series, "tarsier_collector_signals_dropped_total", ""), Some(3.0));
        assert_eq!(value(&series, "tarsier_collector_backlog_bytes", ""), Some(150.0));
        let api_series = series.iter().find(|s| s.labels.get("pod") == Some(api)).unwrap();
        assert_eq!(api_series.labels.get("workload"), Some("api"));
        assert_eq!(api_series.labels.get("node"), Some("node-1"));
        let db = series.iter().find(|s| s.labels.get("pod") == Some("db-0")).unwrap();
        assert_eq!(db.labels.get("workload"), Some("pg"), "the API's owner beats the name heuristic");
        s.set_lag(1, None);
        assert_eq!(value(&s.series(2_000, 0), "tarsier_collector_backlog_bytes", ""), Some(0.0));
    }

    #[test]
    fn reconfigure_turns_counting_on_and_off_and_caps_live() {
        let s = Signals::new(SignalsConfig::default(), None);
        let pod = |name: &'static str| stream(&[("namespace", "shop"), ("pod", name)], &["x"]);
        s.observe(&[pod("a-0")]);
        assert_eq!(value(&s.series(1, 0), "tarsier_workload_log_lines_total", "a-0"), None, "off by default");
        s.reconfigure(SignalsConfig { enabled: true, max_workloads: 1, ..SignalsConfig::default() });
        s.observe(&[pod("a-0"), pod("b-0")]);
        let series = s.series(2, 0);
        assert_eq!(value(&series, "tarsier_workload_log_lines_total", "a-0"), Some(1.0));
        assert_eq!(value(&series, "tarsier_collector_signals_dropped_total", ""), Some(1.0), "the new cap holds");
        s.reconfigure(SignalsConfig { enabled: true, max_workloads: 5, ..SignalsConfig::default() });
        s.observe(&[pod("b-0")]);
        assert_eq!(value(&s.series(3, 0), "tarsier_workload_log_lines_total", "b-0"), Some(1.0), "cap raised live");
        s.reconfigure(SignalsConfig::default());
        s.observe(&[pod("a-0")]);
        assert_eq!(value(&s.series(4, 0), "tarsier_workload_log_lines_total", "a-0"), None, "off again: forgotten");
    }
}
