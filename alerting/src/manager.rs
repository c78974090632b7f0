//! The rule manager: loads rule files (PromQL files and LogQL files), evaluates every group on its
//! interval (spread by a hash of its name so groups do not all run at once), hands alerts to the
//! notifier, keeps state across reloads, and answers the rules/alerts APIs.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use model::TenantId;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::eval::{Group, Lang, OutgoingAlert, RuleKind, RuleStore, TemplateContext};

/// The `alerting` section of Tarsier's config.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RulesConfig {
    /// Globs of Prometheus rule files with PromQL expressions (over the metric store).
    pub rule_files: Vec<String>,
    /// Globs of rule files whose expressions are LogQL metric queries (over the log store), as
    /// Loki's ruler.
    pub log_rule_files: Vec<String>,
    /// Interval of groups that name none.
    #[serde(with = "humantime_serde")]
    pub evaluation_interval: Duration,
    /// Tenant the rules run for.
    pub tenant: String,
    /// Labels added to every alert sent (Prometheus's `external_labels`).
    pub external_labels: BTreeMap<String, String>,
    /// Base URL of this Tarsier for links in notifications.
    pub external_url: String,
    /// Routing and receivers in Alertmanager's format (`route`, `receivers`, `inhibit_rules`,
    /// `time_intervals`); without it alerts are only logged and shown in the API.
    pub notifications_file: Option<PathBuf>,
}

impl Default for RulesConfig {
    fn default() -> Self {
        RulesConfig {
            rule_files: Vec::new(),
            log_rule_files: Vec::new(),
            evaluation_interval: Duration::from_secs(60),
            tenant: "default".into(),
            external_labels: BTreeMap::new(),
            external_url: "http://localhost:9470".into(),
            notifications_file: None,
        }
    }
}

impl RulesConfig {
    /// Checks the values; errors name the key.
    pub fn validate(&self) -> Result<(), String> {
        if self.evaluation_interval < Duration::from_secs(1) {
            return Err("evaluation_interval: must be at least 1s".into());
        }
        TenantId::new(&self.tenant).map_err(|e| format!("tenant: {e}"))?;
        for (key, globs) in [("rule_files", &self.rule_files), ("log_rule_files", &self.log_rule_files)] {
            for g in globs {
                glob::Pattern::new(g).map_err(|e| format!("{key}: {g:?}: {e}"))?;
            }
        }
        if let Some(path) = &self.notifications_file {
            self.notify_config(path).map_err(|e| format!("notifications_file: {}: {e}", path.display()))?;
        }
        Ok(())
    }

    /// The notification config that runs: the notifications file's, or
    /// [`NotifyConfig::empty`](crate::notify::NotifyConfig::empty) without one.
    pub fn notify_config_or_empty(&self) -> Result<crate::notify::NotifyConfig, Error> {
        match &self.notifications_file {
            Some(path) => self.notify_config(path),
            None => Ok(crate::notify::NotifyConfig::empty()),
        }
    }

    /// Reads and checks the Alertmanager-format notification file.
    pub fn notify_config(&self, path: &std::path::Path) -> Result<crate::notify::NotifyConfig, Error> {
        let text =
            std::fs::read_to_string(path).map_err(|source| Error::Io { path: path.display().to_string(), source })?;
        let mut config = crate::notify::NotifyConfig::from_yaml(&text)?;
        // Template globs are relative to the config file, as in Alertmanager.
        let base = path.parent().unwrap_or(std::path::Path::new("."));
        for t in &mut config.templates {
            if std::path::Path::new(t.as_str()).is_relative() {
                *t = base.join(t.as_str()).display().to_string();
            }
        }
        config.validate()?;
        Ok(config)
    }
}

/// Where firing and resolved alerts go.
pub trait AlertSink: Send + Sync {
    fn send(&self, tenant: &TenantId, alerts: Vec<OutgoingAlert>);
}

/// An [`AlertSink`] that only logs (used when no notifier is configured).
pub struct LogSink;

impl AlertSink for LogSink {
    fn send(&self, tenant: &TenantId, alerts: Vec<OutgoingAlert>) {
        for a in alerts {
            let name = a.labels.get("alertname").cloned().unwrap_or_default();
            tracing::info!(tenant = %tenant, alert = %name, resolved = a.resolved, "alert notification");
        }
    }
}

/// Hands the rule engine's alerts to the notification pipeline. Evaluation runs on a blocking
/// thread, so this waits while the pipeline's queue is full: rule evaluation slows down rather than
/// dropping a resolved notification.
pub struct NotifierSink {
    pub notifier: Arc<crate::notify::Notifier>,
    pub runtime: tokio::runtime::Handle,
}

impl AlertSink for NotifierSink {
    fn send(&self, tenant: &TenantId, alerts: Vec<OutgoingAlert>) {
        let alerts: Vec<crate::notify::Alert> = alerts.into_iter().map(to_notify_alert).collect();
        if let Err(e) = self.runtime.block_on(self.notifier.send(tenant, alerts)) {
            tracing::error!(tenant = %tenant, error = %e, "handing alerts to the notifier failed");
        }
    }
}

/// The rule engine's alert as Alertmanager's API v2 postable alert.
pub fn to_notify_alert(a: OutgoingAlert) -> crate::notify::Alert {
    let time = |ms: i64| chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default();
    crate::notify::Alert {
        labels: a.labels,
        annotations: a.annotations,
        starts_at: time(a.starts_at_ms),
        ends_at: Some(time(a.ends_at_ms)),
        generator_url: a.generator_url,
    }
}

/// Runs rule groups and keeps their state.
pub struct RuleManager {
    store: Arc<dyn RuleStore>,
    sink: Arc<dyn AlertSink>,
    state: Mutex<ManagerState>,
}

struct ManagerState {
    config: RulesConfig,
    groups: Vec<Arc<Mutex<Group>>>,
}

impl RuleManager {
    pub fn new(store: Arc<dyn RuleStore>, sink: Arc<dyn AlertSink>) -> RuleManager {
        RuleManager {
            store,
            sink,
            state: Mutex::new(ManagerState { config: RulesConfig::default(), groups: Vec::new() }),
        }
    }

    /// Loads (or reloads) the rule files of `config`. Every file is parsed before anything is
    /// replaced, so a bad file leaves the running rules untouched; rules that did not change keep
    /// their alerts and timers.
    pub fn load(&self, config: &RulesConfig) -> Result<usize, Error> {
        let tenant = TenantId::new(&config.tenant).map_err(|e| Error::Query(e.to_string()))?;
        let mut fresh = Vec::new();
        for (globs, lang) in [(&config.rule_files, Lang::PromQL), (&config.log_rule_files, Lang::LogQL)] {
            for path in expand_globs(globs)? {
                let text = std::fs::read_to_string(&path)
                    .map_err(|source| Error::Io { path: path.display().to_string(), source })?;
                let origin = path.display().to_string();
                let file = match lang {
                    Lang::PromQL => crate::rules::parse_rule_file(&text, &origin)?,
                    Lang::LogQL => crate::rules::parse_log_rule_file(&text, &origin)?,
                };
                for g in &file.groups {
                    fresh.push(Group::new(
                        &origin,
                        tenant.clone(),
                        lang,
                        g,
                        config.evaluation_interval.as_millis() as i64,
                    ));
                }
            }
        }
        let mut state = self.state.lock();
        let mut old: HashMap<(String, String), Arc<Mutex<Group>>> = state
            .groups
            .drain(..)
            .map(|g| {
                let key = {
                    let locked = g.lock();
                    (locked.file.clone(), locked.name.clone())
                };
                (key, g)
            })
            .collect();
        let count = fresh.iter().map(|g| g.rules.len()).sum();
        for mut group in fresh {
            if let Some(previous) = old.remove(&(group.file.clone(), group.name.clone())) {
                let previous = std::mem::replace(
                    &mut *previous.lock(),
                    Group::new("", tenant.clone(), Lang::PromQL, &empty_group(), 60_000),
                );
                group.adopt_state(previous);
            }
            state.groups.push(Arc::new(Mutex::new(group)));
        }
        state.config = config.clone();
        tracing::info!(groups = state.groups.len(), rules = count, "rules loaded");
        Ok(count)
    }

    /// Evaluates every group that is due at `now_ms`; returns how many ran. Blocking (queries
    /// run on the caller's thread): call from a blocking context.
    pub fn eval_due(&self, now_ms: i64) -> usize {
        let (groups, ctx) = {
            let state = self.state.lock();
            let ctx = TemplateContext {
                labels: state.config.external_labels.clone(),
                url: state.config.external_url.clone(),
            };
            (state.groups.clone(), ctx)
        };
        let mut ran = 0;
        for group in groups {
            let mut g = group.lock();
            let due = next_eval_ms(&g, now_ms);
            if due > now_ms {
                continue;
            }
            let alerts = g.eval(due, self.store.as_ref(), &ctx);
            ran += 1;
            if !alerts.is_empty() {
                self.sink.send(&g.tenant, alerts);
            }
        }
        ran
    }

    /// Evaluates due groups every second until `shutdown` fires.
    pub async fn run(self: Arc<Self>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => return,
            }
            // Without rules (a scrape-only `tarsier run`) there is nothing to hand to the
            // blocking pool: skipping it saves a thread wake-up every second.
            if self.state.lock().groups.is_empty() {
                continue;
            }
            let me = self.clone();
            if let Err(e) = tokio::task::spawn_blocking(move || me.eval_due(model::time::now_ms())).await {
                tracing::error!(error = %e, "rule evaluation task failed");
            }
        }
    }

    /// The rule groups as Prometheus's `/api/v1/rules` shows them; with `tenant`, only that tenant's.
    pub fn rules_api(&self, tenant: Option<&TenantId>) -> serde_json::Value {
        let groups = self.state.lock().groups.clone();
        let mut out = Vec::new();
        for g in groups {
            let g = g.lock();
            if tenant.is_some_and(|t| *t != g.tenant) {
                continue;
            }
            let rules: Vec<serde_json::Value> = g.rules.iter().map(rule_json).collect();
            out.push(serde_json::json!({
                "name": g.name,
                "file": g.file,
                "interval": g.interval_ms as f64 / 1000.0,
                "limit": g.limit,
                "rules": rules,
                "evaluationTime": g.eval_seconds,
                "lastEvaluation": g.last_eval_ms.map(rfc3339).unwrap_or_else(|| "0001-01-01T00:00:00Z".into()),
            }));
        }
        serde_json::json!({ "groups": out })
    }

    /// Pending and firing alerts as Prometheus's `/api/v1/alerts` shows them; with `tenant`, only
    /// that tenant's.
    pub fn alerts_api(&self, tenant: Option<&TenantId>) -> serde_json::Value {
        let groups = self.state.lock().groups.clone();
        let mut alerts = Vec::new();
        for g in groups {
            let g = g.lock();
            if tenant.is_some_and(|t| *t != g.tenant) {
                continue;
            }
            for r in &g.rules {
                if let RuleKind::Alerting(a) = &r.kind {
                    alerts.extend(a.live_alerts().into_iter().map(alert_json));
                }
            }
        }
        serde_json::json!({ "alerts": alerts })
    }
}

fn empty_group() -> crate::RuleGroup {
    crate::RuleGroup {
        name: String::new(),
        interval: None,
        limit: None,
        query_offset: None,
        labels: BTreeMap::new(),
        rules: Vec::new(),
    }
}

/// The evaluation time a group is due at: aligned to its interval, offset by a hash of its name
/// (so groups spread over the interval), the latest such time not after `now_ms`, or later than
/// `now_ms` when it already ran for that slot.
fn next_eval_ms(g: &Group, now_ms: i64) -> i64 {
    let interval = g.interval_ms.max(1000);
    let offset = (model::Labels::from_pairs([("file", g.file.as_str()), ("group", g.name.as_str())]).stable_hash()
        % interval as u64) as i64;
    let slot = (now_ms - offset).div_euclid(interval) * interval + offset;
    match g.last_eval_ms {
        Some(last) if last >= slot => slot + interval,
        _ => slot,
    }
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

fn labels_json(labels: &model::Labels) -> serde_json::Value {
    serde_json::Value::Object(
        labels.iter().map(|l| (l.name.clone(), serde_json::Value::from(l.value.clone()))).collect(),
    )
}

fn alert_json(a: &crate::eval::Alert) -> serde_json::Value {
    serde_json::json!({
        "labels": labels_json(&a.labels),
        "annotations": a.annotations,
        "state": a.state.as_str(),
        "activeAt": rfc3339(a.active_at_ms),
        "value": crate::template::format_float_v(a.value),
    })
}

fn rule_json(r: &crate::eval::RuleEntry) -> serde_json::Value {
    let common = |mut v: serde_json::Value| {
        v["health"] = r.health().into();
        v["evaluationTime"] = r.eval_seconds.into();
        v["lastEvaluation"] = r.last_eval_ms.map(rfc3339).unwrap_or_else(|| "0001-01-01T00:00:00Z".into()).into();
        if let Some(e) = &r.last_error {
            v["lastError"] = e.clone().into();
        }
        v
    };
    match &r.kind {
        RuleKind::Alerting(a) => common(serde_json::json!({
            "type": "alerting",
            "name": a.name,
            "query": a.expr,
            "duration": a.hold_ms as f64 / 1000.0,
            "keepFiringFor": a.keep_firing_for_ms as f64 / 1000.0,
            "labels": a.labels,
            "annotations": a.annotations,
            "alerts": a.live_alerts().into_iter().map(alert_json).collect::<Vec<_>>(),
            "state": a.state().as_str(),
        })),
        RuleKind::Recording(rec) => common(serde_json::json!({
            "type": "recording",
            "name": rec.name,
            "query": rec.expr,
            "labels": rec.labels,
        })),
    }
}

fn expand_globs(globs: &[String]) -> Result<Vec<PathBuf>, Error> {
    let mut out = Vec::new();
    for g in globs {
        let paths = glob::glob(g).map_err(|e| Error::InvalidRuleFile { path: g.clone(), message: e.to_string() })?;
        let mut matched: Vec<PathBuf> = paths.filter_map(Result::ok).collect();
        matched.sort();
        out.extend(matched);
    }
    Ok(out)
}
