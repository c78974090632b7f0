//! Alertmanager's webhook receiver: POSTs the version 4 payload unchanged, so every existing
//! webhook consumer (alertmanager-webhook-*, n8n, custom bridges) works against Tarsier.

use serde::{Deserialize, Serialize};

use super::{DeliveryError, check_url, post_json};
use crate::notify::config::{Secret, resolve_secret, yes};
use crate::notify::data::GroupData;
use crate::notify::http::HttpConfig;

/// `webhook_configs` entry, as in Alertmanager.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Endpoint (secret: URLs often carry tokens).
    #[serde(default)]
    pub url: Option<Secret>,
    /// A file holding the endpoint.
    #[serde(default)]
    pub url_file: Option<String>,
    /// Notify about resolved alerts (default true).
    #[serde(default = "yes")]
    pub send_resolved: bool,
    /// At most this many alerts per payload (0: all); the rest count in `truncatedAlerts`.
    #[serde(default)]
    pub max_alerts: u64,
    /// Authorization, TLS and proxy for this receiver's requests.
    #[serde(default)]
    pub http_config: Option<HttpConfig>,
}

/// A checked webhook integration.
#[derive(Debug)]
pub struct Webhook {
    url: Secret,
    max_alerts: u64,
}

impl Webhook {
    pub(super) fn new(c: &WebhookConfig) -> Result<Self, String> {
        let url = resolve_secret(&c.url, &c.url_file, "url")?.ok_or("url: missing (set url or url_file)")?;
        check_url(url.expose(), "url")?;
        Ok(Self { url, max_alerts: c.max_alerts })
    }

    /// The payload: the group data, truncated to `max_alerts`.
    pub fn payload(&self, d: &GroupData) -> serde_json::Value {
        let mut d = d.clone();
        if self.max_alerts > 0 && d.alerts.len() as u64 > self.max_alerts {
            d.truncated_alerts = d.alerts.len() as u64 - self.max_alerts;
            d.alerts.truncate(self.max_alerts as usize);
        }
        serde_json::to_value(&d).expect("group data serialises")
    }

    pub(super) async fn notify(&self, http: &reqwest::Client, d: &GroupData) -> Result<(), DeliveryError> {
        post_json(http, self.url.expose(), &self.payload(d)).await.map(|_| ())
    }
}
