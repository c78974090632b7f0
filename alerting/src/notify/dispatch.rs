//! The dispatcher: keeps the alerts, sorts them into aggregation groups (route × group labels),
//! flushes each group on Alertmanager's timers (`group_wait` after the group appears, then every
//! `group_interval`), and for each flush drops silenced/inhibited alerts, honours time intervals,
//! asks the notification log whether the receiver needs to hear about it (new firing alerts, newly
//! resolved ones, or `repeat_interval` passed) and delivers with retries.
//!
//! All decisions happen under one short lock on [`State`]; deliveries run in their own tasks.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::config::{GroupBy, Plan};
use super::data::GroupData;
use super::matchers::matches_all;
use super::persist;
use super::receivers::Integration;
use super::silence::Silences;
use super::{Alert, Batch, NotifierOptions, NotifyMetrics, fingerprint};
use crate::Error;

/// One stored alert of a tenant.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Stored {
    pub tenant: String,
    pub alert: Alert,
    pub updated_at: DateTime<Utc>,
}

/// An aggregation group.
#[derive(Debug)]
pub(crate) struct Group {
    pub tenant: String,
    pub route: usize,
    pub labels: BTreeMap<String, String>,
    /// Alertmanager's group key, as receivers see it.
    pub key: String,
    pub alerts: BTreeMap<u64, Alert>,
    next_flush: Instant,
    flushing: bool,
    has_flushed: bool,
}

/// What was last sent to one integration about one group.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct NflogEntry {
    pub firing: BTreeSet<u64>,
    pub resolved: BTreeSet<u64>,
    pub at: DateTime<Utc>,
}

/// One delivery, for the API's list of recent notifications.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NotificationRecord {
    /// Tenant.
    pub tenant: String,
    /// When the delivery finished.
    pub at: DateTime<Utc>,
    /// Alertmanager group key.
    pub group_key: String,
    /// Receiver name.
    pub receiver: String,
    /// Integration kind (`webhook`, `dingtalk`, ...).
    pub integration: String,
    /// `firing` or `resolved`.
    pub status: String,
    /// Firing alerts sent.
    pub firing: usize,
    /// Resolved alerts sent.
    pub resolved: usize,
    /// Attempts made.
    pub attempts: u32,
    /// `None` when delivered, else the last error.
    pub error: Option<String>,
}

#[derive(Debug, Default)]
pub(crate) struct State {
    pub alerts: HashMap<(String, u64), Stored>,
    pub groups: BTreeMap<(String, String), Group>,
    pub nflog: HashMap<String, NflogEntry>,
    pub recent: VecDeque<NotificationRecord>,
}

/// Shared by the notifier handle, the loop and the delivery tasks.
pub(crate) struct Inner {
    /// Routes, receivers, inhibit rules and time intervals; swapped whole by [`Inner::reload`].
    plan: parking_lot::RwLock<Arc<Plan>>,
    pub opts: NotifierOptions,
    pub http: reqwest::Client,
    pub state: parking_lot::Mutex<State>,
    pub silences: Silences,
    pub metrics: NotifyMetrics,
    pub started_at: DateTime<Utc>,
    wake: tokio::sync::Notify,
    pub stop: tokio::sync::watch::Sender<bool>,
    pub stopped: AtomicBool,
    save_lock: tokio::sync::Mutex<()>,
    dirty: tokio::sync::Notify,
}

const STATE_FILE: &str = "notify-state.json";

#[derive(Serialize, Deserialize)]
struct Snapshot {
    version: u32,
    alerts: Vec<Stored>,
    nflog: BTreeMap<String, NflogEntry>,
}

impl Inner {
    pub(crate) async fn open(plan: Plan, opts: NotifierOptions) -> Result<Arc<Self>, Error> {
        let dir = opts.data_dir.clone();
        tokio::task::spawn_blocking(move || std::fs::create_dir_all(&dir))
            .await
            .expect("mkdir task")
            .map_err(|source| Error::Io { path: opts.data_dir.display().to_string(), source })?;
        let silences = Silences::open(opts.data_dir.join("silences.json")).await?;
        let http = reqwest::Client::builder()
            .timeout(opts.http_timeout)
            .user_agent(concat!("tarsier/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Notify(format!("building the http client: {e}")))?;
        let inner = Arc::new(Self {
            plan: parking_lot::RwLock::new(Arc::new(plan)),
            opts,
            http,
            state: parking_lot::Mutex::new(State::default()),
            silences,
            metrics: NotifyMetrics::default(),
            started_at: Utc::now(),
            wake: tokio::sync::Notify::new(),
            stop: tokio::sync::watch::Sender::new(false),
            stopped: AtomicBool::new(false),
            save_lock: tokio::sync::Mutex::new(()),
            dirty: tokio::sync::Notify::new(),
        });
        for integ in inner.plan().receivers.values().flatten() {
            inner.metrics.init_integration(integ.kind);
        }
        let path = inner.opts.data_dir.join(STATE_FILE);
        if let Some(bytes) = persist::read(&path).await? {
            let snap: Snapshot = serde_json::from_slice(&bytes)
                .map_err(|e| Error::Notify(format!("{}: not a notification state file: {e}", path.display())))?;
            let mut st = inner.state.lock();
            st.nflog = snap.nflog.into_iter().collect();
            let now = Utc::now();
            for s in snap.alerts {
                inner.ingest_one(&mut st, &s.tenant, s.alert, now, Instant::now());
            }
            tracing::info!(alerts = st.alerts.len(), groups = st.groups.len(), "notification state restored");
        }
        Ok(inner)
    }

    /// Writes alerts and the notification log atomically.
    pub(crate) async fn save_state(&self) -> Result<(), Error> {
        let _guard = self.save_lock.lock().await;
        let bytes = {
            let st = self.state.lock();
            let snap = Snapshot {
                version: 1,
                alerts: st.alerts.values().cloned().collect(),
                nflog: st.nflog.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            };
            serde_json::to_vec(&snap).expect("state serialises")
        };
        persist::write_atomic(self.opts.data_dir.join(STATE_FILE), bytes).await
    }

    /// The routing configuration now in force.
    pub(crate) fn plan(&self) -> Arc<Plan> {
        self.plan.read().clone()
    }

    /// Swaps in a new routing configuration as Alertmanager's reload does, but keeping state: the
    /// alert store, silences and the notification log stay; an aggregation group stays (with its
    /// timers) when a route with its key and grouping still exists; every stored alert is routed
    /// again, so alerts reach the new routes' groups.
    pub(crate) fn reload(&self, plan: Plan) {
        for integ in plan.receivers.values().flatten() {
            self.metrics.init_integration(integ.kind);
        }
        let plan = Arc::new(plan);
        let now = Utc::now();
        let mono = Instant::now();
        let mut st = self.state.lock();
        let old = std::mem::replace(&mut *self.plan.write(), plan.clone());
        let (before, mut kept) = (st.groups.len(), 0usize);
        // Resolved alerts are routed again only into groups that held them, so a reload sends no
        // resolved notification nobody was told the firing side of.
        let mut held = std::collections::HashSet::new();
        st.groups.retain(|_, g| {
            let was = &old.routes[g.route];
            let now_at =
                plan.routes.iter().position(|r| r.id == was.id && r.key == was.key && r.group_by == was.group_by);
            match now_at {
                Some(route) => {
                    g.route = route;
                    held.extend(g.alerts.keys().map(|fp| (g.tenant.clone(), *fp)));
                    g.alerts.clear();
                    kept += 1;
                    true
                }
                None => false,
            }
        });
        let alerts: Vec<(String, Alert)> = st
            .alerts
            .iter()
            .filter(|(key, s)| !s.alert.resolved_at(now) || held.contains(*key))
            .map(|(_, s)| (s.tenant.clone(), s.alert.clone()))
            .collect();
        for (tenant, alert) in alerts {
            Self::route_one(&plan, &mut st, &tenant, &alert, now, mono);
        }
        st.groups.retain(|_, g| !g.alerts.is_empty());
        tracing::info!(
            routes = plan.routes.len(),
            groups_before = before,
            groups_kept = kept,
            groups = st.groups.len(),
            "notification routing reloaded"
        );
        drop(st);
        self.wake.notify_one();
    }

    fn group_labels(plan: &Plan, route: usize, labels: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        match &plan.routes[route].group_by {
            GroupBy::All => labels.clone(),
            GroupBy::Labels(names) => {
                names.iter().filter_map(|n| labels.get(n).map(|v| (n.clone(), v.clone()))).collect()
            }
        }
    }

    /// Merges one alert into the store and its groups.
    fn ingest_one(&self, st: &mut State, tenant: &str, mut alert: Alert, now: DateTime<Utc>, mono: Instant) {
        let plan = self.plan();
        let fp = fingerprint(&alert.labels);
        let key = (tenant.to_string(), fp);
        if alert.ends_at.is_none() {
            let timeout = chrono::Duration::from_std(plan.resolve_timeout).unwrap_or(chrono::Duration::MAX);
            alert.ends_at = Some(now + timeout);
        }
        if let Some(old) = st.alerts.get(&key) {
            // Same incarnation (it had not ended before this one started): keep the first start.
            let old_end = old.alert.ends_at.unwrap_or(now);
            if !(old.alert.resolved_at(now) && alert.starts_at > old_end) && old.alert.starts_at < alert.starts_at {
                alert.starts_at = old.alert.starts_at;
            }
        }
        st.alerts.insert(key, Stored { tenant: tenant.to_string(), alert: alert.clone(), updated_at: now });
        Self::route_one(&plan, st, tenant, &alert, now, mono);
    }

    /// Puts a stored alert into the group of each route it matches, creating groups as needed.
    fn route_one(plan: &Plan, st: &mut State, tenant: &str, alert: &Alert, now: DateTime<Utc>, mono: Instant) {
        let fp = fingerprint(&alert.labels);
        for route in plan.match_routes(&alert.labels) {
            let labels = Self::group_labels(plan, route, &alert.labels);
            let label_str: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
            let node = &plan.routes[route];
            let gkey = format!("{}:{{{}}}", node.key, label_str.join(", "));
            // Keyed by route too: siblings with the same matchers (`continue`) share a group key.
            let state_key = (tenant.to_string(), format!("{}\u{0}{gkey}", node.id));
            let group = st.groups.entry(state_key).or_insert_with(|| Group {
                tenant: tenant.to_string(),
                route,
                labels,
                key: gkey,
                alerts: BTreeMap::new(),
                next_flush: mono + node.group_wait,
                flushing: false,
                has_flushed: false,
            });
            // Alertmanager: an alert older than group_wait need not wait for a new group.
            if !group.has_flushed && !group.flushing {
                let age = (now - alert.starts_at).to_std().unwrap_or_default();
                if age >= node.group_wait {
                    group.next_flush = group.next_flush.min(mono);
                }
            }
            group.alerts.insert(fp, alert.clone());
        }
    }

    /// Ingests directly (the API's POST) and wakes the timers.
    pub(crate) fn ingest_now(&self, tenant: &str, alerts: Vec<Alert>) {
        self.ingest(tenant, alerts);
        self.wake.notify_one();
        self.dirty.notify_one();
    }

    fn ingest(&self, tenant: &str, alerts: Vec<Alert>) {
        let now = Utc::now();
        let mono = Instant::now();
        let mut st = self.state.lock();
        for a in alerts {
            if a.labels.is_empty() {
                tracing::warn!(tenant, "alert without labels ignored");
                continue;
            }
            self.ingest_one(&mut st, tenant, a, now, mono);
        }
    }

    /// Whether an alert is inhibited, and by which alerts.
    pub(crate) fn inhibited_by(&self, st: &State, tenant: &str, alert: &Alert, now: DateTime<Utc>) -> Vec<String> {
        let mut by = Vec::new();
        for rule in &self.plan().inhibit_rules {
            if !matches_all(&rule.target, &alert.labels) {
                continue;
            }
            let target_is_source = matches_all(&rule.source, &alert.labels);
            let fp = fingerprint(&alert.labels);
            for ((t, sfp), s) in &st.alerts {
                if t != tenant || s.alert.resolved_at(now) || !matches_all(&rule.source, &s.alert.labels) {
                    continue;
                }
                if target_is_source && *sfp == fp {
                    continue;
                }
                if rule.equal.iter().all(|l| s.alert.labels.get(l) == alert.labels.get(l)) {
                    by.push(format!("{sfp:016x}"));
                }
            }
        }
        by
    }

    /// Drops resolved alerts no group holds any more.
    fn gc(&self, st: &mut State, now: DateTime<Utc>) {
        let held: std::collections::HashSet<(String, u64)> =
            st.groups.values().flat_map(|g| g.alerts.keys().map(move |fp| (g.tenant.clone(), *fp))).collect();
        st.alerts.retain(|k, s| !s.alert.resolved_at(now) || held.contains(k));
    }
}

/// Starts the intake and timer loops.
pub(crate) fn spawn(inner: Arc<Inner>, mut rx: mpsc::Receiver<Batch>) -> Vec<tokio::task::JoinHandle<()>> {
    let intake = {
        let inner = inner.clone();
        let mut stop = inner.stop.subscribe();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    batch = rx.recv() => match batch {
                        Some((tenant, alerts)) => inner.ingest_now(&tenant, alerts),
                        None => return,
                    },
                    _ = stop.changed() => {
                        // Stopping: take in what was already queued so the state file keeps it.
                        rx.close();
                        while let Some((tenant, alerts)) = rx.recv().await {
                            inner.ingest(&tenant, alerts);
                        }
                        return;
                    }
                }
            }
        })
    };
    let timers = {
        let inner = inner.clone();
        let mut stop = inner.stop.subscribe();
        tokio::spawn(async move {
            loop {
                let next = due_groups(&inner);
                let sleep =
                    tokio::time::sleep_until(next.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600)));
                tokio::select! {
                    _ = sleep => {}
                    _ = inner.wake.notified() => {}
                    _ = stop.changed() => return,
                }
            }
        })
    };
    let saver = {
        let inner = inner.clone();
        let mut stop = inner.stop.subscribe();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = inner.dirty.notified() => {}
                    // Never abort a write midway: shutdown waits for this task, then writes last.
                    _ = stop.changed() => return,
                }
                if let Err(e) = inner.save_state().await {
                    tracing::error!(error = %e, "writing the notification state failed");
                }
                // Coalesce bursts: at most a few writes a second.
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    vec![intake, timers, saver]
}

/// Starts flushes of every due group; returns the earliest next deadline.
fn due_groups(inner: &Arc<Inner>) -> Option<Instant> {
    let now = Instant::now();
    let mut next: Option<Instant> = None;
    let mut due = Vec::new();
    {
        let mut st = inner.state.lock();
        for (k, g) in st.groups.iter_mut() {
            if g.flushing {
                continue;
            }
            if g.next_flush <= now {
                g.flushing = true;
                due.push(k.clone());
            } else {
                next = Some(next.map_or(g.next_flush, |n| n.min(g.next_flush)));
            }
        }
    }
    for k in due {
        let inner = inner.clone();
        tokio::spawn(async move { flush(inner, k).await });
    }
    next
}

struct Job {
    integration_idx: usize,
    nflog_key: String,
    data: GroupData,
    firing: BTreeSet<u64>,
    resolved: BTreeSet<u64>,
    send: bool,
}

/// One flush of one group: decide under the lock, deliver outside it, record under it again.
async fn flush(inner: Arc<Inner>, key: (String, String)) {
    let now = Utc::now();
    let started = Instant::now();
    inner.metrics.flushes.fetch_add(1, Ordering::Relaxed);
    let (plan, jobs, route, snapshot) = {
        let st = inner.state.lock();
        let Some(g) = st.groups.get(&key) else { return };
        // One plan for the whole flush, read under the state lock: a reload swaps plan and route
        // indices together under it.
        let plan = inner.plan();
        let node = &plan.routes[g.route];
        let snapshot: Vec<(u64, Alert)> = g.alerts.iter().map(|(k, v)| (*k, v.clone())).collect();
        let muted_by_time = plan.route_muted(g.route, now);
        let visible: Vec<Alert> = snapshot
            .iter()
            .filter(|(_, a)| {
                a.resolved_at(now)
                    || (inner.silences.silenced_by(&g.tenant, &a.labels, now).is_empty()
                        && inner.inhibited_by(&st, &g.tenant, a, now).is_empty())
            })
            .map(|(_, a)| a.clone())
            .collect();
        let firing: BTreeSet<u64> = visible.iter().filter(|a| !a.resolved_at(now)).map(Alert::fingerprint).collect();
        let resolved: BTreeSet<u64> = visible.iter().filter(|a| a.resolved_at(now)).map(Alert::fingerprint).collect();
        let integrations = plan.receivers.get(&node.receiver).map(Vec::as_slice).unwrap_or(&[]);
        let mut jobs = Vec::new();
        if !muted_by_time && !visible.is_empty() {
            for (i, integ) in integrations.iter().enumerate() {
                let nflog_key =
                    format!("{}\u{0}{}\u{0}{}\u{0}{}\u{0}{}", g.tenant, g.key, node.receiver, integ.kind, integ.index);
                let entry = st.nflog.get(&nflog_key);
                let needs = if integ.always_send() {
                    !firing.is_empty() || (integ.send_resolved && !resolved.is_empty())
                } else {
                    needs_update(entry, &firing, &resolved, integ.send_resolved, node.repeat_interval, now)
                };
                if !needs {
                    continue;
                }
                let to_send: Vec<Alert> =
                    visible.iter().filter(|a| integ.send_resolved || !a.resolved_at(now)).cloned().collect();
                let data = GroupData::new(&node.receiver, &g.key, &g.labels, &to_send, &inner.opts.external_url, now);
                jobs.push(Job {
                    integration_idx: i,
                    nflog_key,
                    data,
                    firing: firing.clone(),
                    resolved: resolved.clone(),
                    send: !to_send.is_empty(),
                });
            }
        }
        (plan, jobs, g.route, snapshot)
    };
    let node = &plan.routes[route];
    let deadline = started + node.group_interval;
    let receiver = node.receiver.clone();
    let integrations = plan.receivers.get(&receiver).map(Vec::as_slice).unwrap_or(&[]);
    let mut all_ok = true;
    let mut results = Vec::new();
    let outcomes = futures_join(jobs.iter().map(|job| {
        let integ = &integrations[job.integration_idx];
        let inner = &inner;
        async move {
            if !job.send {
                return (0, None);
            }
            deliver(inner, integ, &job.data, deadline).await
        }
    }))
    .await;
    for (job, (attempts, err)) in jobs.into_iter().zip(outcomes) {
        all_ok &= err.is_none();
        results.push((job, attempts, err));
    }
    {
        let mut st = inner.state.lock();
        for (job, attempts, err) in results {
            let integ = &integrations[job.integration_idx];
            if job.send {
                let rec = NotificationRecord {
                    tenant: key.0.clone(),
                    at: Utc::now(),
                    group_key: job.data.group_key.clone(),
                    receiver: receiver.clone(),
                    integration: integ.kind.to_string(),
                    status: job.data.status.clone(),
                    firing: job.data.firing().count(),
                    resolved: job.data.resolved().count(),
                    attempts,
                    error: err.clone(),
                };
                st.recent.push_back(rec);
                while st.recent.len() > inner.opts.recent_capacity {
                    st.recent.pop_front();
                }
            }
            if err.is_none() {
                st.nflog.insert(job.nflog_key, NflogEntry { firing: job.firing, resolved: job.resolved, at: now });
            }
        }
        let group_interval = node.group_interval;
        if let Some(g) = st.groups.get_mut(&key) {
            g.flushing = false;
            g.has_flushed = true;
            g.next_flush = started + group_interval;
            if all_ok {
                // Resolved alerts were delivered: forget them unless they changed meanwhile.
                for (fp, a) in &snapshot {
                    if a.resolved_at(now) && g.alerts.get(fp) == Some(a) {
                        g.alerts.remove(fp);
                    }
                }
            }
            if g.alerts.is_empty() {
                st.groups.remove(&key);
            }
        }
        inner.gc(&mut st, now);
    }
    inner.dirty.notify_one();
    inner.wake.notify_one();
}

async fn futures_join<F: std::future::Future>(futs: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut out = Vec::new();
    // Integrations of one receiver are few; run them one after another to keep ordering simple.
    for f in futs {
        out.push(f.await);
    }
    out
}

/// Alertmanager's `DedupStage.needsUpdate`.
fn needs_update(
    entry: Option<&NflogEntry>,
    firing: &BTreeSet<u64>,
    resolved: &BTreeSet<u64>,
    send_resolved: bool,
    repeat: Duration,
    now: DateTime<Utc>,
) -> bool {
    let Some(entry) = entry else { return !firing.is_empty() };
    if !firing.is_subset(&entry.firing) {
        return true;
    }
    if firing.is_empty() {
        // Everything resolved: tell the receiver if it knew about firing alerts.
        return !entry.firing.is_empty();
    }
    if send_resolved && !resolved.is_subset(&entry.resolved) {
        return true;
    }
    let repeat = chrono::Duration::from_std(repeat).unwrap_or(chrono::Duration::MAX);
    entry.at + repeat <= now
}

/// Delivers with exponential backoff until `deadline`; returns attempts and the last error.
async fn deliver(inner: &Inner, integ: &Integration, data: &GroupData, deadline: Instant) -> (u32, Option<String>) {
    let mut delay = inner.opts.retry_initial;
    let mut attempts = 0;
    loop {
        attempts += 1;
        let began = Instant::now();
        let outcome = integ.notify(&inner.http, data, Utc::now()).await;
        inner.metrics.attempt(integ.kind, began.elapsed(), outcome.as_ref().map(|_| ()));
        match outcome {
            Ok(()) => {
                inner.metrics.finished(integ.kind, None);
                tracing::debug!(receiver = %data.receiver, integration = integ.kind, group = %data.group_key, "notified");
                return (attempts, None);
            }
            Err(e) => {
                let give_up =
                    !e.retryable || Instant::now() + delay > deadline || inner.stopped.load(Ordering::Relaxed);
                tracing::warn!(receiver = %data.receiver, integration = integ.kind, attempt = attempts, error = %e, give_up, "notification failed");
                if give_up {
                    inner.metrics.finished(integ.kind, Some(&e));
                    return (attempts, Some(e.message));
                }
                inner.metrics.notification_retries.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(inner.opts.retry_max);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(v: &[u64]) -> BTreeSet<u64> {
        v.iter().copied().collect()
    }

    #[test]
    fn dedup_follows_alertmanager() {
        let now = Utc::now();
        let h = Duration::from_secs(3600);
        let e = NflogEntry { firing: set(&[1, 2]), resolved: set(&[]), at: now - chrono::Duration::minutes(5) };
        assert!(needs_update(None, &set(&[1]), &set(&[]), true, h, now), "first notification");
        assert!(!needs_update(None, &set(&[]), &set(&[1]), true, h, now), "never told about it");
        assert!(!needs_update(Some(&e), &set(&[1, 2]), &set(&[]), true, h, now), "nothing changed");
        assert!(!needs_update(Some(&e), &set(&[1]), &set(&[]), false, h, now), "fewer firing, no send_resolved");
        assert!(needs_update(Some(&e), &set(&[1]), &set(&[2]), true, h, now), "one resolved");
        assert!(needs_update(Some(&e), &set(&[1, 2, 3]), &set(&[]), true, h, now), "a new one fires");
        assert!(needs_update(Some(&e), &set(&[]), &set(&[1, 2]), false, h, now), "all resolved clears the log");
        assert!(needs_update(Some(&e), &set(&[1, 2]), &set(&[]), true, Duration::from_secs(60), now), "repeat");
    }
}
