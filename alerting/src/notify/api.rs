//! The library half of Alertmanager's API v2 for the UI and `amtool`-like use: alerts with their
//! silenced/inhibited status, alert groups as notified, silences CRUD and the recent
//! notifications with their delivery result. The query-ui crate maps these to HTTP.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::data::rfc3339;
use super::dispatch::{Inner, NotificationRecord};
use super::matchers::{Matcher, matches_all};
use super::silence::{Silence, SilenceState};
use super::{Alert, fingerprint_hex};
use crate::Error;

/// A receiver reference.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ReceiverRef {
    /// Receiver name.
    pub name: String,
}

/// An alert's status.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AlertStatus {
    /// `active`, `suppressed` or `unprocessed`.
    pub state: String,
    /// Silences muting it.
    pub silenced_by: Vec<String>,
    /// Alerts inhibiting it.
    pub inhibited_by: Vec<String>,
}

/// Alertmanager API v2's `gettableAlert`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GettableAlert {
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    pub annotations: BTreeMap<String, String>,
    /// Start.
    pub starts_at: String,
    /// End (resolve timeout for firing alerts, as Alertmanager shows it).
    pub ends_at: String,
    /// Last update.
    pub updated_at: String,
    /// Fingerprint.
    pub fingerprint: String,
    /// Receivers of the routes it matches.
    pub receivers: Vec<ReceiverRef>,
    /// Status.
    pub status: AlertStatus,
    /// Generator link.
    #[serde(rename = "generatorURL")]
    pub generator_url: String,
}

/// Alertmanager API v2's `alertGroup`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AlertGroupView {
    /// Group labels.
    pub labels: BTreeMap<String, String>,
    /// The route's receiver.
    pub receiver: ReceiverRef,
    /// The alerts.
    pub alerts: Vec<GettableAlert>,
}

/// Alertmanager API v2's `gettableSilence`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GettableSilence {
    /// The silence.
    #[serde(flatten)]
    pub silence: Silence,
    /// `{ "state": "active" }`.
    pub status: SilenceStatus,
}

/// A silence's status.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SilenceStatus {
    /// `pending`, `active` or `expired`.
    pub state: SilenceState,
}

/// Filters for [`Api::alerts`], as the API's query parameters.
#[derive(Clone, Debug, Default)]
pub struct AlertFilter {
    /// `filter=` matchers.
    pub matchers: Vec<Matcher>,
    /// Include active alerts (default true).
    pub active: Option<bool>,
    /// Include silenced alerts (default true).
    pub silenced: Option<bool>,
    /// Include inhibited alerts (default true).
    pub inhibited: Option<bool>,
    /// Only alerts routed to receivers matching this regex.
    pub receiver: Option<regex::Regex>,
}

/// The API shape of a stored silence: its state added, its tenant (implied by the request) left out.
fn gettable(mut s: Silence, now: DateTime<Utc>) -> GettableSilence {
    s.tenant.clear();
    GettableSilence { status: SilenceStatus { state: s.state(now) }, silence: s }
}

/// API operations over a running notifier.
pub struct Api<'a> {
    inner: &'a Inner,
}

impl<'a> Api<'a> {
    pub(crate) fn new(inner: &'a Inner) -> Self {
        Self { inner }
    }

    fn view(
        &self,
        st: &super::dispatch::State,
        tenant: &str,
        a: &Alert,
        updated: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> GettableAlert {
        let silenced_by = self.inner.silences.silenced_by(tenant, &a.labels, now);
        let inhibited_by = self.inner.inhibited_by(st, tenant, a, now);
        let state = if silenced_by.is_empty() && inhibited_by.is_empty() { "active" } else { "suppressed" };
        let plan = self.inner.plan();
        let mut receivers: Vec<ReceiverRef> = plan
            .match_routes(&a.labels)
            .into_iter()
            .map(|r| ReceiverRef { name: plan.routes[r].receiver.clone() })
            .collect();
        receivers.dedup();
        GettableAlert {
            labels: a.labels.clone(),
            annotations: a.annotations.clone(),
            starts_at: rfc3339(&a.starts_at),
            ends_at: a.ends_at.as_ref().map(rfc3339).unwrap_or_default(),
            updated_at: rfc3339(&updated),
            fingerprint: fingerprint_hex(&a.labels),
            receivers,
            status: AlertStatus { state: state.into(), silenced_by, inhibited_by },
            generator_url: a.generator_url.clone(),
        }
    }

    /// The tenant's current (not resolved) alerts, filtered, sorted by fingerprint.
    pub fn alerts(&self, tenant: &str, f: &AlertFilter) -> Vec<GettableAlert> {
        let now = Utc::now();
        let st = self.inner.state.lock();
        let mut out: Vec<GettableAlert> = st
            .alerts
            .iter()
            .filter(|((t, _), s)| t == tenant && !s.alert.resolved_at(now) && matches_all(&f.matchers, &s.alert.labels))
            .map(|(_, s)| self.view(&st, tenant, &s.alert, s.updated_at, now))
            .filter(|v| {
                let silenced = !v.status.silenced_by.is_empty();
                let inhibited = !v.status.inhibited_by.is_empty();
                (f.active.unwrap_or(true) || silenced || inhibited)
                    && (f.silenced.unwrap_or(true) || !silenced)
                    && (f.inhibited.unwrap_or(true) || !inhibited)
                    && f.receiver.as_ref().is_none_or(|re| v.receivers.iter().any(|r| re.is_match(&r.name)))
            })
            .collect();
        out.sort_by(|a, b| a.fingerprint.cmp(&b.fingerprint));
        out
    }

    /// The tenant's aggregation groups as the dispatcher holds them.
    pub fn alert_groups(&self, tenant: &str) -> Vec<AlertGroupView> {
        let now = Utc::now();
        let plan = self.inner.plan();
        let st = self.inner.state.lock();
        st.groups
            .values()
            .filter(|g| g.tenant == tenant)
            .map(|g| AlertGroupView {
                labels: g.labels.clone(),
                receiver: ReceiverRef { name: plan.routes[g.route].receiver.clone() },
                alerts: g
                    .alerts
                    .values()
                    .filter(|a| !a.resolved_at(now))
                    .map(|a| {
                        let updated =
                            st.alerts.get(&(tenant.to_string(), a.fingerprint())).map_or(now, |s| s.updated_at);
                        self.view(&st, tenant, a, updated, now)
                    })
                    .collect(),
            })
            .collect()
    }

    /// Accepts alerts as `POST /api/v2/alerts` does (through the same queue as the engine).
    /// Go's zero time (`0001-01-01T00:00:00Z`, what `amtool alert add` sends for a time it was not
    /// given) means "not set", as in Alertmanager: no start is now (or the end, if one is given),
    /// no end means resolve by timeout.
    pub fn post_alerts(&self, tenant: &str, mut alerts: Vec<Alert>) -> Result<(), Error> {
        let unset = |t: &chrono::DateTime<Utc>| chrono::Datelike::year(t) <= 1;
        for a in &mut alerts {
            if a.ends_at.as_ref().is_some_and(unset) {
                a.ends_at = None;
            }
            if unset(&a.starts_at) {
                a.starts_at = a.ends_at.unwrap_or_else(Utc::now);
            }
            if a.labels.is_empty() {
                return Err(Error::InvalidAlert("an alert needs at least one label".into()));
            }
            if a.ends_at.is_some_and(|e| e < a.starts_at) {
                return Err(Error::InvalidAlert("endsAt is before startsAt".into()));
            }
        }
        self.inner.ingest_now(tenant, alerts);
        Ok(())
    }

    /// The tenant's silences.
    pub fn silences(&self, tenant: &str) -> Vec<GettableSilence> {
        let now = Utc::now();
        self.inner.silences.list(tenant).into_iter().map(|s| gettable(s, now)).collect()
    }

    /// One silence.
    pub fn silence(&self, tenant: &str, id: &str) -> Result<GettableSilence, Error> {
        let s = self.inner.silences.get(tenant, id).ok_or_else(|| Error::SilenceNotFound(id.to_string()))?;
        Ok(gettable(s, Utc::now()))
    }

    /// Creates or updates a silence; returns its id.
    pub async fn put_silence(&self, tenant: &str, s: Silence) -> Result<String, Error> {
        self.inner.silences.upsert(tenant, s).await
    }

    /// Expires a silence.
    pub async fn expire_silence(&self, tenant: &str, id: &str) -> Result<(), Error> {
        self.inner.silences.expire(tenant, id).await
    }

    /// Recent deliveries of the tenant, newest first.
    pub fn recent_notifications(&self, tenant: &str) -> Vec<NotificationRecord> {
        let st = self.inner.state.lock();
        st.recent.iter().rev().filter(|r| r.tenant == tenant).cloned().collect()
    }

    /// When the notifier started (RFC 3339), for `/api/v2/status`'s `uptime`.
    pub fn started_at(&self) -> String {
        rfc3339(&self.inner.started_at)
    }

    /// The configuration with secrets redacted, for `/api/v2/status`'s `config.original`.
    pub fn config_yaml(&self) -> String {
        self.inner.plan().redacted_yaml.clone()
    }

    /// Receiver names, for `/api/v2/receivers`.
    pub fn receivers(&self) -> Vec<String> {
        let mut names: Vec<String> = self.inner.plan().receivers.keys().cloned().collect();
        names.sort();
        names
    }
}
