//! What every receiver is given about one notification: the alert group in the exact shape of
//! Alertmanager's webhook payload (version 4), so the webhook receiver serialises it as is and the
//! chat, email and forwarding receivers render from the same facts.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize, Serializer};

use super::Alert;

/// Go's zero time, which Alertmanager writes as `endsAt` of firing alerts.
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// Formats a time as Go's RFC 3339 with nanoseconds trimmed, as Alertmanager does.
pub fn rfc3339(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn ser_time<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&rfc3339(t)),
        None => s.serialize_str(ZERO_TIME),
    }
}

fn de_time<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    let s = String::deserialize(d)?;
    if s == ZERO_TIME {
        return Ok(None);
    }
    DateTime::parse_from_rfc3339(&s).map(|t| Some(t.to_utc())).map_err(serde::de::Error::custom)
}

/// One alert inside a notification.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertData {
    /// `firing` or `resolved`.
    pub status: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    pub annotations: BTreeMap<String, String>,
    /// When it started.
    #[serde(serialize_with = "ser_time", deserialize_with = "de_time")]
    pub starts_at: Option<DateTime<Utc>>,
    /// When it ended; the zero time while firing.
    #[serde(serialize_with = "ser_time", deserialize_with = "de_time")]
    pub ends_at: Option<DateTime<Utc>>,
    /// Link to the rule's expression.
    #[serde(rename = "generatorURL")]
    pub generator_url: String,
    /// Alertmanager's label fingerprint, 16 hex digits.
    pub fingerprint: String,
}

/// One notification: Alertmanager's webhook payload, field for field.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupData {
    /// Receiver name.
    pub receiver: String,
    /// `firing` when any alert fires, else `resolved`.
    pub status: String,
    /// The alerts (possibly truncated by `max_alerts`).
    pub alerts: Vec<AlertData>,
    /// The labels the group is keyed by.
    pub group_labels: BTreeMap<String, String>,
    /// Labels every alert shares.
    pub common_labels: BTreeMap<String, String>,
    /// Annotations every alert shares.
    pub common_annotations: BTreeMap<String, String>,
    /// Link back to Tarsier.
    #[serde(rename = "externalURL")]
    pub external_url: String,
    /// Always `"4"`.
    pub version: String,
    /// Alertmanager's group key (`{}/{route}:{group labels}`).
    pub group_key: String,
    /// Alerts left out by `max_alerts`.
    pub truncated_alerts: u64,
}

impl GroupData {
    /// Builds the data for `alerts` (resolved ones have `ends_at` in the past at `now`).
    pub fn new(
        receiver: &str,
        group_key: &str,
        group_labels: &BTreeMap<String, String>,
        alerts: &[Alert],
        external_url: &str,
        now: DateTime<Utc>,
    ) -> Self {
        let alerts: Vec<AlertData> = alerts
            .iter()
            .map(|a| {
                let resolved = a.resolved_at(now);
                AlertData {
                    status: if resolved { "resolved" } else { "firing" }.into(),
                    labels: a.labels.clone(),
                    annotations: a.annotations.clone(),
                    starts_at: Some(a.starts_at),
                    ends_at: if resolved { a.ends_at } else { None },
                    generator_url: a.generator_url.clone(),
                    fingerprint: super::fingerprint_hex(&a.labels),
                }
            })
            .collect();
        let common = |f: fn(&AlertData) -> &BTreeMap<String, String>| -> BTreeMap<String, String> {
            let mut it = alerts.iter();
            let Some(first) = it.next() else { return BTreeMap::new() };
            let mut c = f(first).clone();
            for a in it {
                c.retain(|k, v| f(a).get(k) == Some(v));
            }
            c
        };
        let status = if alerts.iter().any(|a| a.status == "firing") { "firing" } else { "resolved" };
        Self {
            receiver: receiver.into(),
            status: status.into(),
            group_labels: group_labels.clone(),
            common_labels: common(|a| &a.labels),
            common_annotations: common(|a| &a.annotations),
            alerts,
            external_url: external_url.into(),
            version: "4".into(),
            group_key: group_key.into(),
            truncated_alerts: 0,
        }
    }

    /// Firing alerts.
    pub fn firing(&self) -> impl Iterator<Item = &AlertData> {
        self.alerts.iter().filter(|a| a.status == "firing")
    }

    /// Resolved alerts.
    pub fn resolved(&self) -> impl Iterator<Item = &AlertData> {
        self.alerts.iter().filter(|a| a.status == "resolved")
    }
}
