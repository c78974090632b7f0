//! Forwarding to an external Alertmanager: POSTs the group's alerts to its `/api/v2/alerts`, so
//! a team that keeps its Alertmanager (and its receivers) can put Tarsier in front of it.
//! Firing alerts go without `endsAt` (the Alertmanager applies its resolve timeout), resolved ones
//! with theirs; the dispatcher re-sends every flush to keep them alive.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{DeliveryError, check_url, post_json};
use crate::notify::config::yes;
use crate::notify::data::{GroupData, rfc3339};
use crate::notify::http::HttpConfig;

/// `alertmanager_configs` entry.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardConfig {
    /// The Alertmanager's base URL, e.g. `http://alertmanager:9093`.
    pub url: String,
    /// Forward resolved alerts (default true).
    #[serde(default = "yes")]
    pub send_resolved: bool,
    /// Authorization, TLS and proxy for this receiver's requests.
    #[serde(default)]
    pub http_config: Option<HttpConfig>,
}

/// A checked forwarding integration.
#[derive(Debug)]
pub struct Forward {
    endpoint: String,
}

impl Forward {
    pub(super) fn new(c: &ForwardConfig) -> Result<Self, String> {
        check_url(&c.url, "url")?;
        Ok(Self { endpoint: format!("{}/api/v2/alerts", c.url.trim_end_matches('/')) })
    }

    /// The postable alerts.
    pub fn payload(d: &GroupData) -> serde_json::Value {
        let alerts: Vec<serde_json::Value> = d
            .alerts
            .iter()
            .map(|a| {
                let mut v = json!({
                    "labels": a.labels,
                    "annotations": a.annotations,
                    "generatorURL": a.generator_url,
                });
                if let Some(s) = &a.starts_at {
                    v["startsAt"] = json!(rfc3339(s));
                }
                if let Some(e) = &a.ends_at {
                    v["endsAt"] = json!(rfc3339(e));
                }
                v
            })
            .collect();
        serde_json::Value::Array(alerts)
    }

    pub(super) async fn notify(&self, http: &reqwest::Client, d: &GroupData) -> Result<(), DeliveryError> {
        post_json(http, &self.endpoint, &Self::payload(d)).await.map(|_| ())
    }
}
