//! A rule group evaluated at one instant, as Prometheus's `rules/group.go`: rules run in order,
//! each one's output is appended before the next runs (so later rules see earlier recordings),
//! series that disappear get a stale marker, and alerts that need notifying are handed back.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use model::{Labels, Sample, TenantId, TimeSeries};

use super::alert_rule::{AlertState, AlertingRule, TemplateContext};
use super::{Lang, OutgoingAlert, RuleStore};
use crate::rules::RuleGroup;
use crate::template::QuerySample;

/// How long after a restart `ALERTS_FOR_STATE` is still trusted (Prometheus's outage tolerance).
pub const OUTAGE_TOLERANCE_MS: i64 = 3_600_000;
/// Least time a restored alert stays pending before it fires (Prometheus's `for` grace period).
pub const FOR_GRACE_PERIOD_MS: i64 = 600_000;
/// Firing alerts are re-sent this often (Prometheus's resend delay).
pub const RESEND_DELAY_MS: i64 = 60_000;

/// A recording rule.
#[derive(Debug)]
pub struct RecordingRule {
    pub name: String,
    pub expr: String,
    pub labels: BTreeMap<String, String>,
}

/// What a rule is.
#[derive(Debug)]
pub enum RuleKind {
    Alerting(AlertingRule),
    Recording(RecordingRule),
}

/// A rule with its evaluation bookkeeping.
#[derive(Debug)]
pub struct RuleEntry {
    pub kind: RuleKind,
    pub last_error: Option<String>,
    pub last_eval_ms: Option<i64>,
    pub eval_seconds: f64,
    /// Series written at the previous evaluation, to mark the vanished ones stale.
    previous_series: HashMap<u64, Labels>,
}

impl RuleEntry {
    pub fn name(&self) -> &str {
        match &self.kind {
            RuleKind::Alerting(r) => &r.name,
            RuleKind::Recording(r) => &r.name,
        }
    }

    pub fn expr(&self) -> &str {
        match &self.kind {
            RuleKind::Alerting(r) => &r.expr,
            RuleKind::Recording(r) => &r.expr,
        }
    }

    /// "ok", "err" or "unknown" (never evaluated), as Prometheus's rules API.
    pub fn health(&self) -> &'static str {
        match (&self.last_error, self.last_eval_ms) {
            (Some(_), _) => "err",
            (None, Some(_)) => "ok",
            (None, None) => "unknown",
        }
    }

    /// Identity used to carry state over a reload: kind, name, expression and labels.
    fn identity(&self) -> String {
        match &self.kind {
            RuleKind::Alerting(r) => format!("alert\u{0}{}\u{0}{}\u{0}{:?}", r.name, r.expr, r.labels),
            RuleKind::Recording(r) => format!("record\u{0}{}\u{0}{}\u{0}{:?}", r.name, r.expr, r.labels),
        }
    }
}

/// A rule group ready to evaluate.
#[derive(Debug)]
pub struct Group {
    pub name: String,
    pub file: String,
    pub tenant: TenantId,
    pub lang: Lang,
    pub interval_ms: i64,
    pub limit: usize,
    pub query_offset_ms: i64,
    pub rules: Vec<RuleEntry>,
    pub last_eval_ms: Option<i64>,
    pub eval_seconds: f64,
}

impl Group {
    /// Builds a group from a loaded rule file group; `default_interval_ms` when it names none.
    pub fn new(file: &str, tenant: TenantId, lang: Lang, group: &RuleGroup, default_interval_ms: i64) -> Group {
        let duration_ms = |s: &Option<String>| {
            s.as_deref().and_then(|s| model::time::parse_duration(s).ok()).map_or(0, |d| d.as_millis() as i64)
        };
        let rules = group
            .rules
            .iter()
            .map(|rule| {
                let mut labels = group.labels.clone();
                labels.extend(rule.labels.clone());
                let expr = rule.expr.as_string();
                let kind = match (&rule.alert, &rule.record) {
                    (Some(alert), _) => RuleKind::Alerting(AlertingRule::new(
                        alert,
                        &expr,
                        duration_ms(&rule.for_),
                        duration_ms(&rule.keep_firing_for),
                        labels,
                        rule.annotations.clone(),
                    )),
                    (None, record) => {
                        RuleKind::Recording(RecordingRule { name: record.clone().unwrap_or_default(), expr, labels })
                    }
                };
                RuleEntry {
                    kind,
                    last_error: None,
                    last_eval_ms: None,
                    eval_seconds: 0.0,
                    previous_series: HashMap::new(),
                }
            })
            .collect();
        let interval_ms = match duration_ms(&group.interval) {
            0 => default_interval_ms,
            ms => ms,
        };
        Group {
            name: group.name.clone(),
            file: file.to_string(),
            tenant,
            lang,
            interval_ms,
            limit: group.limit.unwrap_or(0) as usize,
            query_offset_ms: duration_ms(&group.query_offset),
            rules,
            last_eval_ms: None,
            eval_seconds: 0.0,
        }
    }

    /// Moves alert state and series bookkeeping over from the same rules of an older version of
    /// the group (a reload), so pending timers and firing alerts survive.
    pub fn adopt_state(&mut self, old: Group) {
        let mut by_identity: HashMap<String, RuleEntry> = old.rules.into_iter().map(|r| (r.identity(), r)).collect();
        for rule in &mut self.rules {
            if let Some(previous) = by_identity.remove(&rule.identity()) {
                rule.previous_series = previous.previous_series;
                rule.last_eval_ms = previous.last_eval_ms;
                rule.last_error = previous.last_error;
                if let (RuleKind::Alerting(new), RuleKind::Alerting(old)) = (&mut rule.kind, previous.kind) {
                    new.active = old.active;
                    new.restored = old.restored;
                }
            }
        }
        self.last_eval_ms = old.last_eval_ms;
    }

    /// Evaluates every rule at `ts_ms`, appends their series, and returns the alerts to notify.
    pub fn eval(&mut self, ts_ms: i64, store: &dyn RuleStore, ctx: &TemplateContext) -> Vec<OutgoingAlert> {
        let started = Instant::now();
        let mut outgoing = Vec::new();
        let query_ts = ts_ms - self.query_offset_ms;
        for rule in &mut self.rules {
            let rule_started = Instant::now();
            let result = eval_rule(rule, &self.tenant, self.lang, ts_ms, query_ts, self.limit, store, ctx);
            let written = match result {
                Ok(series) => {
                    rule.last_error = None;
                    series
                }
                Err(e) => {
                    tracing::warn!(group = %self.name, rule = %rule.name(), error = %e, "rule evaluation failed");
                    rule.last_error = Some(e);
                    Vec::new()
                }
            };
            // Stale markers for series this rule wrote last time and not now.
            let current: HashMap<u64, Labels> =
                written.iter().map(|s| (s.labels.stable_hash(), s.labels.clone())).collect();
            let mut batch = written;
            for (key, labels) in rule.previous_series.drain() {
                if !current.contains_key(&key) {
                    batch.push(TimeSeries::new(labels, vec![Sample::new(ts_ms, model::stale_nan())]));
                }
            }
            rule.previous_series = current;
            if !batch.is_empty()
                && let Err(e) = store.append(&self.tenant, &batch)
            {
                tracing::warn!(group = %self.name, rule = %rule.name(), error = %e, "writing rule results failed");
                rule.last_error.get_or_insert_with(|| format!("writing results: {e}"));
            }
            if let RuleKind::Alerting(alerting) = &mut rule.kind {
                outgoing.extend(alerts_to_send(alerting, ts_ms, self.interval_ms, ctx));
            }
            rule.last_eval_ms = Some(ts_ms);
            rule.eval_seconds = rule_started.elapsed().as_secs_f64();
        }
        self.last_eval_ms = Some(ts_ms);
        self.eval_seconds = started.elapsed().as_secs_f64();
        outgoing
    }
}

#[allow(clippy::too_many_arguments)]
fn eval_rule(
    rule: &mut RuleEntry,
    tenant: &TenantId,
    lang: Lang,
    ts_ms: i64,
    query_ts: i64,
    limit: usize,
    store: &dyn RuleStore,
    ctx: &TemplateContext,
) -> Result<Vec<TimeSeries>, String> {
    let result = store.query(tenant, lang, rule.expr(), query_ts).map_err(|e| e.to_string())?;
    match &mut rule.kind {
        RuleKind::Recording(r) => {
            let mut seen = HashMap::new();
            let mut out = Vec::with_capacity(result.len());
            for (labels, value) in result {
                let mut b = labels.to_builder();
                b.set("__name__", r.name.as_str());
                for (k, v) in &r.labels {
                    if v.is_empty() {
                        b.remove(k);
                    } else {
                        b.set(k.as_str(), v.as_str());
                    }
                }
                let labels = b.build();
                if seen.insert(labels.stable_hash(), ()).is_some() {
                    return Err("vector contains metrics with the same labelset after applying rule labels".into());
                }
                out.push(TimeSeries::new(labels, vec![Sample::new(ts_ms, value)]));
            }
            if limit > 0 && out.len() > limit {
                return Err(format!("exceeded limit of {limit} with {} series", out.len()));
            }
            Ok(out)
        }
        RuleKind::Alerting(a) => {
            // Templates may run queries of their own (PromQL over the metric store).
            let query = |expr: &str| -> Result<Vec<QuerySample>, String> {
                let rows = store.query(tenant, Lang::PromQL, expr, query_ts).map_err(|e| e.to_string())?;
                Ok(rows
                    .into_iter()
                    .map(|(labels, value)| QuerySample {
                        labels: labels.iter().map(|l| (l.name.clone(), l.value.clone())).collect(),
                        value,
                    })
                    .collect())
            };
            a.eval(ts_ms, result, limit, ctx, Some(&query))?;
            if !a.restored {
                let selector = format!("ALERTS_FOR_STATE{{alertname={:?}}}", a.name);
                match store.last_samples(tenant, &selector, ts_ms - OUTAGE_TOLERANCE_MS, ts_ms - 1) {
                    Ok(samples) => {
                        let samples: Vec<(Labels, i64, f64)> = samples
                            .into_iter()
                            .map(|(labels, t, v)| {
                                let mut b = labels.to_builder();
                                b.remove("__name__");
                                (b.build(), t, v)
                            })
                            .collect();
                        a.restore(ts_ms, &samples, FOR_GRACE_PERIOD_MS);
                    }
                    Err(e) => tracing::warn!(rule = %a.name, error = %e, "restoring alert state failed"),
                }
            }
            let output = a.output();
            let mut out: Vec<TimeSeries> = output
                .alerts_series
                .into_iter()
                .map(|labels| TimeSeries::new(labels, vec![Sample::new(ts_ms, 1.0)]))
                .collect();
            out.extend(
                output
                    .for_state_series
                    .into_iter()
                    .map(|(labels, v)| TimeSeries::new(labels, vec![Sample::new(ts_ms, v)])),
            );
            Ok(out)
        }
    }
}

/// Alerts of `rule` the notifier should get now; marks them sent.
fn alerts_to_send(rule: &mut AlertingRule, ts_ms: i64, interval_ms: i64, ctx: &TemplateContext) -> Vec<OutgoingAlert> {
    let mut out = Vec::new();
    for alert in rule.active.values_mut() {
        if !alert.needs_sending(ts_ms, RESEND_DELAY_MS) {
            continue;
        }
        alert.last_sent_ms = Some(ts_ms);
        alert.valid_until_ms = ts_ms + 4 * RESEND_DELAY_MS.max(interval_ms);
        let mut labels: BTreeMap<String, String> = ctx.labels.clone();
        labels.extend(alert.labels.iter().map(|l| (l.name.clone(), l.value.clone())));
        out.push(OutgoingAlert {
            labels,
            annotations: alert.annotations.clone(),
            starts_at_ms: alert.active_at_ms,
            ends_at_ms: if alert.state == AlertState::Inactive {
                alert.resolved_at_ms.unwrap_or(ts_ms)
            } else {
                alert.valid_until_ms
            },
            resolved: alert.state == AlertState::Inactive,
            generator_url: format!(
                "{}/graph?g0.expr={}&g0.tab=1",
                ctx.url.trim_end_matches('/'),
                form_urlencoded::byte_serialize(rule.expr.as_bytes()).collect::<String>()
            ),
        });
    }
    out.sort_by(|a, b| a.labels.cmp(&b.labels));
    out
}
