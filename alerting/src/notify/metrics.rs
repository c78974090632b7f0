//! The pipeline's self-monitoring under Alertmanager's metric names
//! (`alertmanager_notifications_total{integration}`, `..._failed_total{integration,reason}`,
//! `alertmanager_notification_latency_seconds`, `alertmanager_alerts{state}`,
//! `alertmanager_silences{state}`), so dashboards and alerts written for Alertmanager —
//! kube-prometheus's `AlertmanagerFailedToSendAlerts` among them — work on Tarsier's `/metrics`
//! unchanged. The counters are bumped by the dispatcher; the alert and silence gauges are counted
//! from the live state at scrape time, so they are never stale.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use chrono::Utc;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::dispatch::Inner;
use super::receivers::DeliveryError;
use super::silence::SilenceState;

type Labels = Vec<(String, String)>;
type Histograms = Family<Labels, Histogram, fn() -> Histogram>;

/// Alertmanager's latency buckets (1 to 20 s) with finer ones below, since local receivers answer
/// in milliseconds.
fn latency_histogram() -> Histogram {
    Histogram::new([0.005, 0.025, 0.1, 0.5, 1.0, 5.0, 10.0, 15.0, 20.0])
}

fn integration(kind: &str) -> Labels {
    vec![("integration".to_string(), kind.to_string())]
}

/// Counters of the pipeline; exported through [`super::Notifier::register_metrics`].
#[derive(Debug)]
pub struct NotifyMetrics {
    /// Alerts accepted by `send`/`try_send`.
    pub alerts_received: AtomicU64,
    /// Alerts dropped because the queue was full.
    pub alerts_dropped: AtomicU64,
    /// Notifications delivered.
    pub notifications_sent: AtomicU64,
    /// Notifications that failed after their retries.
    pub notifications_failed: AtomicU64,
    /// Delivery attempts that were retried.
    pub notification_retries: AtomicU64,
    /// Group flushes (each decides whether to notify).
    pub flushes: AtomicU64,
    notifications: Family<Labels, Counter>,
    failed: Family<Labels, Counter>,
    requests: Family<Labels, Counter>,
    requests_failed: Family<Labels, Counter>,
    latency: Histograms,
}

impl Default for NotifyMetrics {
    fn default() -> Self {
        Self {
            alerts_received: AtomicU64::new(0),
            alerts_dropped: AtomicU64::new(0),
            notifications_sent: AtomicU64::new(0),
            notifications_failed: AtomicU64::new(0),
            notification_retries: AtomicU64::new(0),
            flushes: AtomicU64::new(0),
            notifications: Family::default(),
            failed: Family::default(),
            requests: Family::default(),
            requests_failed: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
        }
    }
}

/// Alertmanager's `reason` label: a permanent refusal is the client's fault, a 5xx the server's.
fn reason(e: &DeliveryError) -> &'static str {
    if !e.retryable {
        "clientError"
    } else if e.message.starts_with("status 5") {
        "serverError"
    } else {
        "other"
    }
}

impl NotifyMetrics {
    /// Creates the zero series of a configured integration, so `rate()` works from the start (as
    /// Alertmanager does).
    pub(crate) fn init_integration(&self, kind: &str) {
        let l = integration(kind);
        let _ = self.notifications.get_or_create(&l);
        let _ = self.requests.get_or_create(&l);
        let _ = self.requests_failed.get_or_create(&l);
        let _ = self.latency.get_or_create(&l);
    }

    /// One delivery attempt took `took` and ended in `outcome`.
    pub(crate) fn attempt(&self, kind: &str, took: Duration, outcome: Result<(), &DeliveryError>) {
        let l = integration(kind);
        self.requests.get_or_create(&l).inc();
        self.latency.get_or_create(&l).observe(took.as_secs_f64());
        if outcome.is_err() {
            self.requests_failed.get_or_create(&l).inc();
        }
    }

    /// A notification finished: delivered (`None`) or given up on.
    pub(crate) fn finished(&self, kind: &str, error: Option<&DeliveryError>) {
        let l = integration(kind);
        self.notifications.get_or_create(&l).inc();
        match error {
            None => {
                self.notifications_sent.fetch_add(1, Ordering::Relaxed);
            }
            Some(e) => {
                self.notifications_failed.fetch_add(1, Ordering::Relaxed);
                let mut l = l;
                l.push(("reason".to_string(), reason(e).to_string()));
                self.failed.get_or_create(&l).inc();
            }
        }
    }

    fn register(&self, r: &mut Registry) {
        r.register(
            "alertmanager_notifications",
            "The total number of attempted notifications",
            self.notifications.clone(),
        );
        r.register(
            "alertmanager_notifications_failed",
            "The total number of failed notifications",
            self.failed.clone(),
        );
        r.register(
            "alertmanager_notification_requests",
            "The total number of attempted notification requests",
            self.requests.clone(),
        );
        r.register(
            "alertmanager_notification_requests_failed",
            "The total number of failed notification requests",
            self.requests_failed.clone(),
        );
        r.register(
            "alertmanager_notification_latency_seconds",
            "The latency of notification requests",
            self.latency.clone(),
        );
    }
}

/// Scrape-time gauges and the plain counters, read from the live notifier. Holds it weakly: the
/// registry must not keep a stopped notifier alive.
#[derive(Debug)]
struct StateCollector(Weak<Inner>);

impl Collector for StateCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(inner) = self.0.upgrade() else { return Ok(()) };
        let now = Utc::now();
        let (mut active, mut suppressed) = (0i64, 0i64);
        {
            let st = inner.state.lock();
            for ((tenant, _), s) in st.alerts.iter().filter(|(_, s)| !s.alert.resolved_at(now)) {
                let muted = !inner.silences.silenced_by(tenant, &s.alert.labels, now).is_empty()
                    || !inner.inhibited_by(&st, tenant, &s.alert, now).is_empty();
                *(if muted { &mut suppressed } else { &mut active }) += 1;
            }
        }
        let gauge = |pairs: &[(&str, i64)]| {
            let f: Family<Labels, Gauge> = Family::default();
            for (state, n) in pairs {
                f.get_or_create(&vec![("state".to_string(), state.to_string())]).set(*n);
            }
            f
        };
        let alerts = gauge(&[("active", active), ("suppressed", suppressed)]);
        alerts.encode(encoder.encode_descriptor(
            "alertmanager_alerts",
            "How many alerts by state",
            None,
            alerts.metric_type(),
        )?)?;

        let mut by_state = [0i64; 3];
        for s in inner.silences.all() {
            by_state[match s.state(now) {
                SilenceState::Active => 0,
                SilenceState::Pending => 1,
                SilenceState::Expired => 2,
            }] += 1;
        }
        let silences = gauge(&[("active", by_state[0]), ("pending", by_state[1]), ("expired", by_state[2])]);
        silences.encode(encoder.encode_descriptor(
            "alertmanager_silences",
            "How many silences by state",
            None,
            silences.metric_type(),
        )?)?;

        let m = &inner.metrics;
        for (name, help, v) in [
            ("tarsier_alerting_alerts_received", "Alerts handed to the notifier", &m.alerts_received),
            (
                "tarsier_alerting_alerts_dropped",
                "Alerts dropped because the notification queue was full",
                &m.alerts_dropped,
            ),
            (
                "tarsier_alerting_notification_retries",
                "Notification attempts that were retried",
                &m.notification_retries,
            ),
            ("tarsier_alerting_group_flushes", "Aggregation group flushes", &m.flushes),
        ] {
            let c = ConstCounter::new(v.load(Ordering::Relaxed));
            c.encode(encoder.encode_descriptor(name, help, None, c.metric_type())?)?;
        }
        Ok(())
    }
}

/// Registers the notifier's metrics in `registry`.
pub(crate) fn register(inner: &Arc<Inner>, registry: &mut Registry) {
    inner.metrics.register(registry);
    registry.register_collector(Box::new(StateCollector(Arc::downgrade(inner))));
}
