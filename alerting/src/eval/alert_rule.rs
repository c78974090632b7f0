//! One alerting rule's state machine, as Prometheus's `rules/alerting.go`: each evaluation turns
//! the query result into alerts keyed by their label set; an alert is pending until it has been
//! active for `for`, then firing; when it stops matching it is kept firing for `keep_firing_for`,
//! then resolved (kept 15 minutes so the resolution is notified), and forgotten.

use std::collections::{BTreeMap, HashMap};

use model::Labels;

use crate::template::{QueryFn, Template, TemplateData};

/// How long a resolved alert is remembered (and re-sent as resolved), as Prometheus.
pub const RESOLVED_RETENTION_MS: i64 = 15 * 60 * 1000;

/// Where an alert is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    Inactive,
    Pending,
    Firing,
}

impl AlertState {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Inactive => "inactive",
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
        }
    }
}

/// One alert of a rule (one label set).
#[derive(Clone, Debug, PartialEq)]
pub struct Alert {
    pub labels: Labels,
    pub annotations: BTreeMap<String, String>,
    pub state: AlertState,
    pub value: f64,
    pub active_at_ms: i64,
    pub fired_at_ms: Option<i64>,
    pub resolved_at_ms: Option<i64>,
    pub last_sent_ms: Option<i64>,
    pub valid_until_ms: i64,
    pub keep_firing_since_ms: Option<i64>,
}

impl Alert {
    /// Whether the notifier should get this alert now (Prometheus's `needsSending`).
    pub fn needs_sending(&self, now_ms: i64, resend_delay_ms: i64) -> bool {
        if self.state == AlertState::Pending {
            return false;
        }
        if let Some(resolved) = self.resolved_at_ms
            && self.last_sent_ms.is_none_or(|sent| resolved > sent)
        {
            return true;
        }
        self.last_sent_ms.is_none_or(|sent| sent + resend_delay_ms <= now_ms)
    }
}

/// A parsed alerting rule and its alerts.
#[derive(Debug)]
pub struct AlertingRule {
    pub name: String,
    pub expr: String,
    pub hold_ms: i64,
    pub keep_firing_for_ms: i64,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    label_templates: Vec<(String, Option<Template>)>,
    annotation_templates: Vec<(String, Option<Template>)>,
    /// Active alerts by label-set hash.
    pub active: HashMap<u64, Alert>,
    /// Whether `ALERTS_FOR_STATE` has been read back after a restart.
    pub restored: bool,
}

/// What an evaluation produced besides state changes.
pub struct AlertingOutput {
    /// `ALERTS{alertstate=...}` samples (value 1) for pending and firing alerts.
    pub alerts_series: Vec<Labels>,
    /// `ALERTS_FOR_STATE` samples: (labels, active-at in seconds).
    pub for_state_series: Vec<(Labels, f64)>,
}

impl AlertingRule {
    pub fn new(
        name: &str,
        expr: &str,
        hold_ms: i64,
        keep_firing_for_ms: i64,
        labels: BTreeMap<String, String>,
        annotations: BTreeMap<String, String>,
    ) -> AlertingRule {
        let compile = |map: &BTreeMap<String, String>| {
            map.iter()
                .map(|(k, v)| (k.clone(), if v.contains("{{") { Template::parse(v).ok() } else { None }))
                .collect()
        };
        AlertingRule {
            name: name.to_string(),
            expr: expr.to_string(),
            hold_ms,
            keep_firing_for_ms,
            label_templates: compile(&labels),
            annotation_templates: compile(&annotations),
            labels,
            annotations,
            active: HashMap::new(),
            restored: false,
        }
    }

    /// Applies one evaluation result at `ts_ms`. `limit` > 0 caps the number of alerts.
    pub fn eval(
        &mut self,
        ts_ms: i64,
        result: Vec<(Labels, f64)>,
        limit: usize,
        external: &TemplateContext,
        query: Option<&QueryFn<'_>>,
    ) -> Result<(), String> {
        let mut current: HashMap<u64, Alert> = HashMap::new();
        for (sample_labels, value) in result {
            let mut label_map: BTreeMap<String, String> = sample_labels
                .iter()
                .filter(|l| l.name != "__name__")
                .map(|l| (l.name.clone(), l.value.clone()))
                .collect();
            let data = TemplateData {
                labels: label_map.clone(),
                external_labels: external.labels.clone(),
                external_url: external.url.clone(),
                value,
                now: ts_ms as f64 / 1000.0,
            };
            for (name, template) in &self.label_templates {
                let text = expand_compiled(template, &self.labels[name], &data, query);
                if text.is_empty() {
                    label_map.remove(name);
                } else {
                    label_map.insert(name.clone(), text);
                }
            }
            label_map.insert("alertname".into(), self.name.clone());
            let annotations: BTreeMap<String, String> = self
                .annotation_templates
                .iter()
                .map(|(name, t)| (name.clone(), expand_compiled(t, &self.annotations[name], &data, query)))
                .collect();
            let labels = Labels::from_pairs(label_map);
            let key = labels.stable_hash();
            if current.contains_key(&key) {
                return Err("vector contains metrics with the same labelset after applying alert labels".into());
            }
            current.insert(
                key,
                Alert {
                    labels,
                    annotations,
                    state: AlertState::Pending,
                    value,
                    active_at_ms: ts_ms,
                    fired_at_ms: None,
                    resolved_at_ms: None,
                    last_sent_ms: None,
                    valid_until_ms: 0,
                    keep_firing_since_ms: None,
                },
            );
        }

        for (key, fresh) in current.iter() {
            match self.active.get_mut(key) {
                Some(alert) if alert.state != AlertState::Inactive => {
                    alert.value = fresh.value;
                    alert.annotations = fresh.annotations.clone();
                    alert.labels = fresh.labels.clone();
                }
                _ => {
                    self.active.insert(*key, fresh.clone());
                }
            }
        }

        let mut forget = Vec::new();
        for (key, alert) in self.active.iter_mut() {
            if !current.contains_key(key) {
                if self.keep_firing_for_ms > 0 && alert.state == AlertState::Firing {
                    let since = *alert.keep_firing_since_ms.get_or_insert(ts_ms);
                    if ts_ms - since < self.keep_firing_for_ms {
                        continue;
                    }
                }
                if alert.state == AlertState::Pending
                    || alert.resolved_at_ms.is_some_and(|r| ts_ms - r > RESOLVED_RETENTION_MS)
                {
                    forget.push(*key);
                } else if alert.state != AlertState::Inactive {
                    alert.state = AlertState::Inactive;
                    alert.resolved_at_ms = Some(ts_ms);
                }
                continue;
            }
            alert.keep_firing_since_ms = None;
            if alert.state == AlertState::Pending && ts_ms - alert.active_at_ms >= self.hold_ms {
                alert.state = AlertState::Firing;
                alert.fired_at_ms = Some(ts_ms);
            }
        }
        for key in forget {
            self.active.remove(&key);
        }

        let live = self.active.values().filter(|a| a.state != AlertState::Inactive).count();
        if limit > 0 && live > limit {
            self.active.clear();
            return Err(format!("exceeded limit of {limit} with {live} alerts"));
        }

        Ok(())
    }

    /// The `ALERTS` and `ALERTS_FOR_STATE` series of the pending and firing alerts.
    pub fn output(&self) -> AlertingOutput {
        let mut output = AlertingOutput { alerts_series: Vec::new(), for_state_series: Vec::new() };
        for alert in self.active.values().filter(|a| a.state != AlertState::Inactive) {
            let mut b = alert.labels.to_builder();
            b.set("__name__", "ALERTS");
            b.set("alertstate", alert.state.as_str());
            output.alerts_series.push(b.build());
            let mut b = alert.labels.to_builder();
            b.set("__name__", "ALERTS_FOR_STATE");
            output.for_state_series.push((b.build(), (alert.active_at_ms / 1000) as f64));
        }
        output
    }

    /// Restores `active_at` of pending/firing alerts from `ALERTS_FOR_STATE` samples written before
    /// a restart, as Prometheus does: the time spent pending before the outage counts, the outage
    /// itself does not; an alert near its `for` gets at least `grace_ms` before firing, and one
    /// whose `for` is shorter than `grace_ms` starts over.
    /// `samples` are (alert labels without `__name__`, time of the last sample, its value).
    pub fn restore(&mut self, now_ms: i64, samples: &[(Labels, i64, f64)], grace_ms: i64) {
        self.restored = true;
        if self.hold_ms <= 0 {
            return;
        }
        for alert in self.active.values_mut() {
            let Some((_, down_at_ms, value)) = samples.iter().find(|(l, _, _)| *l == alert.labels) else { continue };
            let mut restored_active_at = (*value * 1000.0) as i64;
            let spent_pending = down_at_ms - restored_active_at;
            let remaining = self.hold_ms - spent_pending;
            if remaining <= 0 {
                // It had already fired before the restart: keep the original activation time.
            } else if self.hold_ms < grace_ms {
                // A `for` shorter than the grace period starts over, as in Prometheus.
                restored_active_at = now_ms;
            } else if remaining < grace_ms {
                restored_active_at = now_ms + grace_ms - self.hold_ms;
            } else {
                restored_active_at += now_ms - down_at_ms;
            }
            alert.active_at_ms = restored_active_at;
            if alert.state == AlertState::Pending && now_ms - alert.active_at_ms >= self.hold_ms {
                alert.state = AlertState::Firing;
                alert.fired_at_ms = Some(now_ms);
            }
        }
    }

    /// Alerts currently pending or firing, ordered by labels.
    pub fn live_alerts(&self) -> Vec<&Alert> {
        let mut v: Vec<&Alert> = self.active.values().filter(|a| a.state != AlertState::Inactive).collect();
        v.sort_by(|a, b| a.labels.cmp(&b.labels));
        v
    }

    /// The rule's overall state: the "worst" of its alerts.
    pub fn state(&self) -> AlertState {
        let mut state = AlertState::Inactive;
        for a in self.active.values() {
            match a.state {
                AlertState::Firing => return AlertState::Firing,
                AlertState::Pending => state = AlertState::Pending,
                AlertState::Inactive => {}
            }
        }
        state
    }
}

/// External labels and URL every template sees.
#[derive(Clone, Debug, Default)]
pub struct TemplateContext {
    pub labels: BTreeMap<String, String>,
    pub url: String,
}

fn expand_compiled(template: &Option<Template>, raw: &str, data: &TemplateData, query: Option<&QueryFn<'_>>) -> String {
    match template {
        Some(t) => t.execute(data, query).unwrap_or_else(|e| format!("<error expanding template: {e}>")),
        None => crate::template::expand(raw, data, query),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(hold_ms: i64, keep_ms: i64) -> AlertingRule {
        AlertingRule::new(
            "HighLoad",
            "load > 1",
            hold_ms,
            keep_ms,
            BTreeMap::from([("severity".into(), "page".into())]),
            BTreeMap::from([("summary".into(), "{{ $labels.instance }} at {{ $value }}".into())]),
        )
    }

    fn sample(instance: &str, v: f64) -> (Labels, f64) {
        (Labels::from_pairs([("__name__", "load"), ("instance", instance)]), v)
    }

    fn eval(r: &mut AlertingRule, ts: i64, result: Vec<(Labels, f64)>) -> AlertingOutput {
        r.eval(ts, result, 0, &TemplateContext::default(), None).unwrap();
        r.output()
    }

    #[test]
    fn pending_then_firing_then_resolved_then_forgotten() {
        let mut r = rule(60_000, 0);
        let out = eval(&mut r, 0, vec![sample("a", 2.0)]);
        assert_eq!(out.alerts_series[0].get("alertstate"), Some("pending"));
        assert_eq!(out.alerts_series[0].get("severity"), Some("page"));
        assert_eq!(out.for_state_series[0].1, 0.0);
        let alert = r.live_alerts()[0].clone();
        assert_eq!(alert.annotations["summary"], "a at 2");
        assert!(!alert.needs_sending(0, 60_000), "pending alerts are not sent");
        eval(&mut r, 30_000, vec![sample("a", 3.0)]);
        assert_eq!(r.state(), AlertState::Pending);
        let out = eval(&mut r, 60_000, vec![sample("a", 3.0)]);
        assert_eq!(out.alerts_series[0].get("alertstate"), Some("firing"));
        assert_eq!(r.live_alerts()[0].annotations["summary"], "a at 3");
        let out = eval(&mut r, 90_000, vec![]);
        assert!(out.alerts_series.is_empty());
        let resolved = r.active.values().next().unwrap();
        assert_eq!((resolved.state, resolved.resolved_at_ms), (AlertState::Inactive, Some(90_000)));
        assert!(resolved.needs_sending(90_000, 60_000));
        eval(&mut r, 90_000 + RESOLVED_RETENTION_MS + 1, vec![]);
        assert!(r.active.is_empty());
    }

    #[test]
    fn keep_firing_for_holds_a_firing_alert() {
        let mut r = rule(0, 120_000);
        eval(&mut r, 0, vec![sample("a", 2.0)]);
        assert_eq!(r.state(), AlertState::Firing, "no `for`: fires at once");
        eval(&mut r, 60_000, vec![]);
        assert_eq!(r.state(), AlertState::Firing);
        eval(&mut r, 170_000, vec![]);
        assert_eq!(r.state(), AlertState::Firing);
        eval(&mut r, 180_000, vec![]);
        assert_eq!(r.state(), AlertState::Inactive);
    }

    #[test]
    fn a_pending_alert_that_stops_matching_is_dropped_and_limit_applies() {
        let mut r = rule(60_000, 0);
        eval(&mut r, 0, vec![sample("a", 2.0)]);
        eval(&mut r, 10_000, vec![]);
        assert!(r.active.is_empty());
        let err = r.eval(0, vec![sample("a", 2.0), sample("b", 2.0)], 1, &TemplateContext::default(), None);
        assert!(err.err().unwrap().contains("exceeded limit of 1"));
        let dup = vec![sample("a", 1.0), (Labels::from_pairs([("__name__", "other"), ("instance", "a")]), 1.0)];
        let err = r.eval(0, dup, 0, &TemplateContext::default(), None).err().unwrap();
        assert!(err.contains("same labelset"), "{err}");
    }

    #[test]
    fn restore_keeps_time_spent_pending_across_a_restart() {
        let hour = 3_600_000;
        let mut r = rule(hour, 0);
        // Before the restart the alert became active at t=0 and the last state sample is at 40m.
        // Tarsier comes back at 50m: the 40 minutes count, the 10-minute outage does not.
        eval(&mut r, 50 * 60_000, vec![sample("a", 2.0)]);
        let labels = r.live_alerts()[0].labels.clone();
        r.restore(50 * 60_000, &[(labels, 40 * 60_000, 0.0)], 10 * 60_000);
        assert_eq!(r.live_alerts()[0].active_at_ms, 10 * 60_000);
        eval(&mut r, 69 * 60_000, vec![sample("a", 2.0)]);
        assert_eq!(r.state(), AlertState::Pending);
        eval(&mut r, 70 * 60_000, vec![sample("a", 2.0)]);
        assert_eq!(r.state(), AlertState::Firing);
    }
}
