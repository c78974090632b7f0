//! Slack incoming webhooks: one attachment coloured by status, with a plain `text` fallback for
//! notifications and mrkdwn in the attachment body.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Texts, check_url};
use crate::notify::config::{GlobalConfig, Secret, resolve_secret};
use crate::notify::data::GroupData;
use crate::notify::http::HttpConfig;
use crate::template::NotifyTemplates;

/// `slack_configs` entry (the subset of Alertmanager's keys that incoming webhooks honour).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// Incoming webhook URL (default `global.slack_api_url`).
    #[serde(default)]
    pub api_url: Option<Secret>,
    /// A file holding the URL.
    #[serde(default)]
    pub api_url_file: Option<String>,
    /// Channel override.
    #[serde(default)]
    pub channel: Option<String>,
    /// Bot name override.
    #[serde(default)]
    pub username: Option<String>,
    /// Emoji icon.
    #[serde(default)]
    pub icon_emoji: Option<String>,
    /// Icon URL.
    #[serde(default)]
    pub icon_url: Option<String>,
    /// Title template.
    #[serde(default)]
    pub title: Option<String>,
    /// Title link (default: the external URL).
    #[serde(default)]
    pub title_link: Option<String>,
    /// Text template.
    #[serde(default)]
    pub text: Option<String>,
    /// Notify about resolved alerts (default false, as Alertmanager).
    #[serde(default)]
    pub send_resolved: bool,
    /// Authorization, TLS and proxy for this receiver's requests.
    #[serde(default)]
    pub http_config: Option<HttpConfig>,
}

/// A checked Slack integration.
#[derive(Debug)]
pub struct Slack {
    url: Secret,
    cfg: SlackConfig,
    texts: Texts,
}

impl Slack {
    pub(super) fn new(c: &SlackConfig, g: &GlobalConfig, templates: &NotifyTemplates) -> Result<Self, String> {
        let url = match resolve_secret(&c.api_url, &c.api_url_file, "api_url")? {
            Some(u) => u,
            None => resolve_secret(&g.slack_api_url, &g.slack_api_url_file, "global.slack_api_url")?
                .ok_or("api_url: missing (set api_url, api_url_file or global.slack_api_url)")?,
        };
        check_url(url.expose(), "api_url")?;
        Ok(Self { url, cfg: c.clone(), texts: Texts::new(&c.title, &c.text, templates)? })
    }

    /// The webhook URL.
    pub(super) fn url(&self) -> &str {
        self.url.expose()
    }

    /// The JSON body.
    pub fn payload(&self, d: &GroupData, now: DateTime<Utc>) -> serde_json::Value {
        let title = self.texts.title(d, now);
        let text = self.texts.text(d, now).replace("**", "*");
        let color = if d.status == "firing" { "danger" } else { "good" };
        let mut body = json!({
            "text": title,
            "attachments": [{
                "color": color,
                "title": title,
                "title_link": self.cfg.title_link.clone().unwrap_or_else(|| d.external_url.clone()),
                "text": text,
                "fallback": title,
                "mrkdwn_in": ["text"],
            }],
        });
        for (k, v) in [
            ("channel", &self.cfg.channel),
            ("username", &self.cfg.username),
            ("icon_emoji", &self.cfg.icon_emoji),
            ("icon_url", &self.cfg.icon_url),
        ] {
            if let Some(v) = v {
                body[k] = json!(v);
            }
        }
        body
    }
}
