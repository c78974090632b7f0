//! The notification pipeline, Tarsier's Alertmanager: the rule engine hands alerts to
//! [`Notifier::send`]; the dispatcher routes them through the tree in [`config`], groups them,
//! applies silences, inhibition and time intervals, de-duplicates against a persisted notification
//! log and delivers through the [`receivers`] with retries and rate limits.
//!
//! The engine calls `send` with its firing alerts every resend interval and with each resolved
//! alert once (a past `ends_at`). Alerts without `ends_at` stay firing for `global.resolve_timeout`
//! after they were last received, as in Alertmanager.

pub mod api;
pub mod config;
pub mod data;
mod dispatch;
pub mod http;
pub mod matchers;
pub mod message;
mod metrics;
mod persist;
pub mod receivers;
pub mod silence;
pub mod timeinterval;
pub mod tls;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

pub use config::{NotifyConfig, Plan, Secret};
pub use data::{AlertData, GroupData};
pub use dispatch::NotificationRecord;
pub use metrics::NotifyMetrics;
pub use silence::Silence;

use crate::Error;

/// An alert as the rule engine (or `POST /api/v2/alerts`) hands it over: Alertmanager API v2's
/// postable alert.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    /// Identifying labels (`alertname`, ...).
    pub labels: BTreeMap<String, String>,
    /// Annotations (`summary`, `description`, `value`, ...).
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// When the alert started firing (default: when received).
    #[serde(default = "Utc::now")]
    pub starts_at: DateTime<Utc>,
    /// When it stopped; a time in the past means resolved; `None` means firing until
    /// `resolve_timeout` after it was last received.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<DateTime<Utc>>,
    /// Link to the rule's expression in the UI.
    #[serde(default, rename = "generatorURL")]
    pub generator_url: String,
}

impl Alert {
    /// A firing alert with these labels, starting now.
    pub fn firing<'a>(labels: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self {
            labels: labels.into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            annotations: BTreeMap::new(),
            starts_at: Utc::now(),
            ends_at: None,
            generator_url: String::new(),
        }
    }

    /// Whether the alert is resolved at `now`.
    pub fn resolved_at(&self, now: DateTime<Utc>) -> bool {
        self.ends_at.is_some_and(|e| e <= now)
    }

    /// Alertmanager's fingerprint of the labels.
    pub fn fingerprint(&self) -> u64 {
        fingerprint(&self.labels)
    }
}

/// Alertmanager's (Prometheus's) label-set fingerprint: FNV-1a 64 over sorted names and values,
/// each followed by the 0xff separator, so fingerprints match Alertmanager's.
pub fn fingerprint(labels: &BTreeMap<String, String>) -> u64 {
    const OFFSET: u64 = 0xcbf29ce484222325;
    const PRIME: u64 = 0x100000001b3;
    if labels.is_empty() {
        return OFFSET;
    }
    let mut h = OFFSET;
    let mut add = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(PRIME);
        }
    };
    for (k, v) in labels {
        add(k.as_bytes());
        add(&[0xff]);
        add(v.as_bytes());
        add(&[0xff]);
    }
    h
}

/// The fingerprint as Alertmanager prints it: 16 hex digits.
pub fn fingerprint_hex(labels: &BTreeMap<String, String>) -> String {
    format!("{:016x}", fingerprint(labels))
}

/// Settings of the pipeline that are Tarsier's, not Alertmanager's config.
#[derive(Clone, Debug)]
pub struct NotifierOptions {
    /// Where silences and the notification log live (`silences.json`, `notify-state.json`).
    pub data_dir: PathBuf,
    /// Link back to Tarsier in messages (`externalURL`).
    pub external_url: String,
    /// Batches waiting for the dispatcher before `send` waits and `try_send` drops.
    pub queue_capacity: usize,
    /// First retry delay; doubles per attempt.
    pub retry_initial: Duration,
    /// Largest retry delay.
    pub retry_max: Duration,
    /// Timeout of one HTTP delivery.
    pub http_timeout: Duration,
    /// Notifications kept for the API's "recent notifications".
    pub recent_capacity: usize,
}

impl NotifierOptions {
    /// Defaults: queue of 1,024 batches, retries from 1 s to 1 min, 10 s HTTP timeout.
    pub fn new(data_dir: impl Into<PathBuf>, external_url: impl Into<String>) -> Self {
        Self {
            data_dir: data_dir.into(),
            external_url: external_url.into(),
            queue_capacity: 1024,
            retry_initial: Duration::from_secs(1),
            retry_max: Duration::from_secs(60),
            http_timeout: Duration::from_secs(10),
            recent_capacity: 200,
        }
    }
}

type Batch = (String, Vec<Alert>);

/// The running pipeline. Cheap to share behind an `Arc`.
pub struct Notifier {
    inner: Arc<dispatch::Inner>,
    tx: mpsc::Sender<Batch>,
    tasks: parking_lot::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Notifier {
    /// Validates `config`, restores silences and the notification log from `opts.data_dir` and
    /// starts the dispatcher. Must be called inside a Tokio runtime.
    pub async fn start(config: &NotifyConfig, opts: NotifierOptions) -> Result<Self, Error> {
        let plan = config.validate()?;
        let (tx, rx) = mpsc::channel(opts.queue_capacity.max(1));
        let inner = dispatch::Inner::open(plan, opts).await?;
        let tasks = dispatch::spawn(inner.clone(), rx);
        Ok(Self { inner, tx, tasks: parking_lot::Mutex::new(tasks) })
    }

    /// Replaces routes, receivers, inhibit rules and time intervals with `config`'s, keeping the
    /// alerts, the aggregation groups whose route still exists, silences and the notification log.
    /// A `config` that does not validate is refused and the running one stays.
    pub fn reload(&self, config: &NotifyConfig) -> Result<(), Error> {
        let plan = config.validate()?;
        self.inner.reload(plan);
        Ok(())
    }

    /// Hands alerts to the dispatcher, waiting while the queue is full (backpressure).
    pub async fn send(&self, tenant: &model::TenantId, alerts: Vec<Alert>) -> Result<(), Error> {
        let n = alerts.len() as u64;
        self.tx.send((tenant.as_str().to_string(), alerts)).await.map_err(|_| Error::NotifierStopped)?;
        self.inner.metrics.alerts_received.fetch_add(n, Ordering::Relaxed);
        Ok(())
    }

    /// Hands alerts over without waiting; when the queue is full they are dropped and counted in
    /// `alerts_dropped`, and the error says so.
    pub fn try_send(&self, tenant: &model::TenantId, alerts: Vec<Alert>) -> Result<(), Error> {
        let n = alerts.len() as u64;
        match self.tx.try_send((tenant.as_str().to_string(), alerts)) {
            Ok(()) => {
                self.inner.metrics.alerts_received.fetch_add(n, Ordering::Relaxed);
                Ok(())
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.inner.metrics.alerts_dropped.fetch_add(n, Ordering::Relaxed);
                tracing::warn!(dropped = n, "notification queue full, alerts dropped");
                Err(Error::NotifyQueueFull { dropped: n as usize })
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(Error::NotifierStopped),
        }
    }

    /// The pipeline's counters.
    pub fn metrics(&self) -> &NotifyMetrics {
        &self.inner.metrics
    }

    /// Exports the pipeline's metrics (Alertmanager's names) in the process's `/metrics`.
    pub fn register_metrics(&self, registry: &mut prometheus_client::registry::Registry) {
        metrics::register(&self.inner, registry);
    }

    /// The library half of the Alertmanager-style API.
    pub fn api(&self) -> api::Api<'_> {
        api::Api::new(&self.inner)
    }

    /// Stops the dispatcher and writes the notification log and alert state to disk.
    pub async fn shutdown(&self) -> Result<(), Error> {
        self.inner.stopped.store(true, Ordering::SeqCst);
        self.inner.stop.send_replace(true);
        let tasks = std::mem::take(&mut *self.tasks.lock());
        // Every loop ends on the signal; the intake first drains the queue into the state.
        for t in tasks {
            let _ = t.await;
        }
        self.inner.save_state().await
    }
}

impl Drop for Notifier {
    fn drop(&mut self) {
        for t in self.tasks.lock().iter() {
            t.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_match_alertmanager() {
        // Values from Prometheus's model/signature_test.go (LabelsToSignature).
        let l: BTreeMap<String, String> =
            [("name".to_string(), "garland, briggs".to_string()), ("fear".into(), "love is not enough".into())].into();
        assert_eq!(fingerprint(&l), 5799056148416392346);
        assert_eq!(fingerprint(&BTreeMap::new()), 14695981039346656037);
    }

    #[test]
    fn postable_alert_json_round_trips() {
        let a: Alert = serde_json::from_str(
            r#"{"labels":{"alertname":"X"},"startsAt":"2026-01-01T00:00:00Z","endsAt":"2026-01-01T00:05:00Z","generatorURL":"http://g"}"#,
        )
        .unwrap();
        assert!(a.resolved_at(DateTime::parse_from_rfc3339("2026-01-01T00:05:00Z").unwrap().to_utc()));
        let back: Alert = serde_json::from_value(serde_json::to_value(&a).unwrap()).unwrap();
        assert_eq!(back, a);
    }
}
