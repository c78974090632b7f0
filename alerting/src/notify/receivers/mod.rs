//! Receivers: one module per integration, picked by the config key (`webhook_configs`,
//! `dingtalk_configs`, ...) into the [`Sender`] enum. Each turns a [`GroupData`] into its
//! service's request; this module holds what they share: the chat config block, delivery errors
//! with a retryable flag, the JSON POST helper (which never puts a URL in an error, since webhook
//! URLs carry tokens) and the per-receiver rate limiter.

mod alertmanager;
mod dingtalk;
mod email;
mod feishu;
mod slack;
mod teams;
mod webhook;
mod wecom;

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use alertmanager::ForwardConfig;
pub use dingtalk::dingtalk_sign;
pub use email::EmailConfig;
pub use feishu::feishu_sign;
pub use slack::SlackConfig;
pub use webhook::WebhookConfig;
pub use wecom::truncate_utf8;

use super::config::{GlobalConfig, ReceiverConfig, Secret, resolve_secret, yes};
use super::data::GroupData;
use super::http::HttpConfig;
use super::message::{self, Field};
use crate::template::NotifyTemplates;

/// The settings shared by the chat receivers (Teams, Feishu, DingTalk, WeCom).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatConfig {
    /// The bot's webhook URL (secret: it carries the token).
    #[serde(default)]
    pub webhook_url: Option<Secret>,
    /// A file holding the webhook URL.
    #[serde(default)]
    pub webhook_url_file: Option<String>,
    /// Signing secret (Feishu, DingTalk).
    #[serde(default)]
    pub secret: Option<Secret>,
    /// A file holding the signing secret.
    #[serde(default)]
    pub secret_file: Option<String>,
    /// Notify about resolved alerts (default true).
    #[serde(default = "yes")]
    pub send_resolved: bool,
    /// Title template (default: `[FIRING:n] alertname (group labels)`).
    #[serde(default)]
    pub title: Option<String>,
    /// Text template (default: the alert list).
    #[serde(default)]
    pub text: Option<String>,
    /// Messages per minute (DingTalk and WeCom default to their documented limit, 20).
    #[serde(default)]
    pub rate_limit_per_minute: Option<u32>,
    /// Authorization, TLS and proxy for this receiver's requests.
    #[serde(default)]
    pub http_config: Option<HttpConfig>,
}

/// A failed delivery.
#[derive(Clone, Debug)]
pub struct DeliveryError {
    /// What went wrong (never contains a secret URL).
    pub message: String,
    /// Whether trying again may help (network errors, 5xx, 429, rate-limit codes).
    pub retryable: bool,
}

impl DeliveryError {
    pub(crate) fn new(message: impl Into<String>, retryable: bool) -> Self {
        Self { message: message.into(), retryable }
    }
}

impl std::fmt::Display for DeliveryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// The service-specific half of an integration.
#[derive(Debug)]
pub enum Sender {
    /// Alertmanager webhook.
    Webhook(webhook::Webhook),
    /// Slack.
    Slack(Box<slack::Slack>),
    /// Teams Workflows.
    Teams(teams::Teams),
    /// Feishu/Lark.
    Feishu(feishu::Feishu),
    /// DingTalk.
    DingTalk(dingtalk::DingTalk),
    /// WeCom.
    WeCom(wecom::WeCom),
    /// Email.
    Email(Box<email::Email>),
    /// Forwarding to an Alertmanager.
    Alertmanager(alertmanager::Forward),
}

/// One configured integration of a receiver.
#[derive(Debug)]
pub struct Integration {
    /// `webhook`, `slack`, `msteamsv2`, `feishu`, `dingtalk`, `wecom`, `email`, `alertmanager`.
    pub kind: &'static str,
    /// Index among the receiver's integrations of this kind (the notification log key).
    pub index: usize,
    /// Whether resolved alerts are sent.
    pub send_resolved: bool,
    /// Rate limit, if any.
    pub rate_limit: Option<RateLimiter>,
    /// The client of its `http_config`, if it has one (else the notifier's).
    pub http: Option<reqwest::Client>,
    /// The service-specific sender.
    pub sender: Sender,
}

impl Integration {
    /// Whether this integration ignores the notification log and sends every flush: forwarding
    /// keeps alerts alive in the downstream Alertmanager, so it must refresh them.
    pub fn always_send(&self) -> bool {
        matches!(self.sender, Sender::Alertmanager(_))
    }

    /// Delivers one notification.
    pub async fn notify(
        &self,
        http: &reqwest::Client,
        data: &GroupData,
        now: DateTime<Utc>,
    ) -> Result<(), DeliveryError> {
        if let Some(rl) = &self.rate_limit {
            rl.acquire().await;
        }
        let http = self.http.as_ref().unwrap_or(http);
        // The Chinese bots answer HTTP 200 with an error code; the listed codes mean "too fast"
        // (Feishu 11232, DingTalk 130101, WeCom 45009) and are worth a retry.
        match &self.sender {
            Sender::Webhook(s) => s.notify(http, data).await,
            Sender::Slack(s) => post_json(http, s.url(), &s.payload(data, now)).await.map(|_| ()),
            Sender::Teams(s) => post_json(http, s.0.url.expose(), &s.payload(data, now)).await.map(|_| ()),
            Sender::Feishu(s) => {
                check_code(&post_json(http, s.0.url.expose(), &s.payload(data, now)).await?, "code", &[11232])
            }
            Sender::DingTalk(s) => {
                let answer = post_json(http, &s.signed_url(now), &s.payload(data, now)).await?;
                check_code(&answer, "errcode", &[130101])
            }
            Sender::WeCom(s) => {
                check_code(&post_json(http, s.0.url.expose(), &s.payload(data, now)).await?, "errcode", &[45009])
            }
            Sender::Email(s) => s.notify(data, now).await,
            Sender::Alertmanager(s) => s.notify(http, data).await,
        }
    }
}

/// Compiles an optional message field; errors name `key`.
pub(crate) fn field(text: &Option<String>, key: &str, templates: &NotifyTemplates) -> Result<Option<Field>, String> {
    text.as_deref().map(|t| Field::compile(t, templates).map_err(|e| format!("{key}: {e}"))).transpose()
}

/// Title and text of a chat message: the configured templates or the defaults.
#[derive(Clone, Debug, Default)]
pub(crate) struct Texts {
    title: Option<Field>,
    text: Option<Field>,
}

impl Texts {
    fn new(title: &Option<String>, text: &Option<String>, templates: &NotifyTemplates) -> Result<Self, String> {
        Ok(Self { title: field(title, "title", templates)?, text: field(text, "text", templates)? })
    }

    pub(crate) fn title(&self, d: &GroupData, now: DateTime<Utc>) -> String {
        match &self.title {
            Some(t) => t.render(d, now),
            None => message::default_title(d),
        }
    }

    pub(crate) fn text(&self, d: &GroupData, now: DateTime<Utc>) -> String {
        match &self.text {
            Some(t) => t.render(d, now),
            None => message::default_markdown(d, now),
        }
    }
}

/// A checked chat config: URL, optional secret, texts.
#[derive(Debug)]
pub(crate) struct Chat {
    pub(crate) url: Secret,
    pub(crate) secret: Option<Secret>,
    pub(crate) texts: Texts,
}

fn chat(c: &ChatConfig, signed: bool, templates: &NotifyTemplates) -> Result<Chat, String> {
    let url = resolve_secret(&c.webhook_url, &c.webhook_url_file, "webhook_url")?
        .ok_or("webhook_url: missing (set webhook_url or webhook_url_file)")?;
    check_url(url.expose(), "webhook_url")?;
    let secret = resolve_secret(&c.secret, &c.secret_file, "secret")?;
    if secret.is_some() && !signed {
        return Err("secret: this receiver does not sign its requests".into());
    }
    Ok(Chat { url, secret, texts: Texts::new(&c.title, &c.text, templates)? })
}

pub(crate) fn check_url(url: &str, key: &str) -> Result<(), String> {
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(())
    } else {
        Err(format!("{key}: must be an http:// or https:// URL"))
    }
}

/// Builds every integration of a receiver; errors name the key below `receivers[i]`.
pub fn build(
    r: &ReceiverConfig,
    global: &GlobalConfig,
    templates: &NotifyTemplates,
) -> Result<Vec<Integration>, String> {
    let mut out = Vec::new();
    // `key` names the entry in errors; `http` is its `http_config`.
    let mut push = |kind: &'static str,
                    key: String,
                    send_resolved: bool,
                    per_min: Option<u32>,
                    http: &Option<HttpConfig>,
                    sender: Result<Sender, String>| {
        let sender = sender.map_err(|e| format!("{key}.{e}"))?;
        let http = http.as_ref().map(HttpConfig::client).transpose().map_err(|e| format!("{key}.{e}"))?;
        let rate_limit = per_min.filter(|n| *n > 0).map(RateLimiter::per_minute);
        let index = out.iter().filter(|i: &&Integration| i.kind == kind).count();
        out.push(Integration { kind, index, send_resolved, rate_limit, http, sender });
        Ok::<(), String>(())
    };
    for (i, c) in r.webhook_configs.iter().enumerate() {
        let s = webhook::Webhook::new(c).map(Sender::Webhook);
        push("webhook", format!("webhook_configs[{i}]"), c.send_resolved, None, &c.http_config, s)?;
    }
    for (i, c) in r.slack_configs.iter().enumerate() {
        let s = slack::Slack::new(c, global, templates).map(|s| Sender::Slack(Box::new(s)));
        push("slack", format!("slack_configs[{i}]"), c.send_resolved, None, &c.http_config, s)?;
    }
    for (i, c) in r.msteamsv2_configs.iter().enumerate() {
        let s = chat(c, false, templates).map(|s| Sender::Teams(teams::Teams(s)));
        let rl = c.rate_limit_per_minute;
        push("msteamsv2", format!("msteamsv2_configs[{i}]"), c.send_resolved, rl, &c.http_config, s)?;
    }
    for (i, c) in r.feishu_configs.iter().enumerate() {
        let s = chat(c, true, templates).map(|s| Sender::Feishu(feishu::Feishu(s)));
        // Feishu documents 100 requests a minute per bot.
        let rl = c.rate_limit_per_minute.or(Some(100));
        push("feishu", format!("feishu_configs[{i}]"), c.send_resolved, rl, &c.http_config, s)?;
    }
    for (i, c) in r.dingtalk_configs.iter().enumerate() {
        let s = chat(c, true, templates).map(|s| Sender::DingTalk(dingtalk::DingTalk(s)));
        // DingTalk's documented limit: 20 messages a minute per robot, then 10 minutes throttled.
        let rl = c.rate_limit_per_minute.or(Some(20));
        push("dingtalk", format!("dingtalk_configs[{i}]"), c.send_resolved, rl, &c.http_config, s)?;
    }
    for (i, c) in r.wecom_configs.iter().enumerate() {
        let s = chat(c, false, templates).map(|s| Sender::WeCom(wecom::WeCom(s)));
        // WeCom's documented limit: 20 messages a minute per robot.
        let rl = c.rate_limit_per_minute.or(Some(20));
        push("wecom", format!("wecom_configs[{i}]"), c.send_resolved, rl, &c.http_config, s)?;
    }
    for (i, c) in r.email_configs.iter().enumerate() {
        let s = email::Email::new(c, global, templates).map(|s| Sender::Email(Box::new(s)));
        push("email", format!("email_configs[{i}]"), c.send_resolved, None, &None, s)?;
    }
    for (i, c) in r.alertmanager_configs.iter().enumerate() {
        let s = alertmanager::Forward::new(c).map(Sender::Alertmanager);
        push("alertmanager", format!("alertmanager_configs[{i}]"), c.send_resolved, None, &c.http_config, s)?;
    }
    Ok(out)
}

/// POSTs JSON and classifies the answer; the error never names the URL.
pub(crate) async fn post_json(
    http: &reqwest::Client,
    url: &str,
    body: &serde_json::Value,
) -> Result<String, DeliveryError> {
    let resp = http
        .post(url)
        .json(body)
        .send()
        .await
        .map_err(|e| DeliveryError::new(format!("request failed: {}", e.without_url()), true))?;
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    if status.is_success() {
        return Ok(text);
    }
    let retryable = status.is_server_error() || status.as_u16() == 429;
    let snippet: String = text.chars().take(200).collect();
    Err(DeliveryError::new(format!("status {status}: {snippet}"), retryable))
}

/// Checks the `{"errcode":0}`/`{"code":0}` answer of the Chinese bot APIs, which report errors
/// with HTTP 200; `rate_codes` are their "too many requests" codes, worth a retry.
pub(crate) fn check_code(body: &str, field: &str, rate_codes: &[i64]) -> Result<(), DeliveryError> {
    let v: serde_json::Value =
        serde_json::from_str(body).map_err(|_| DeliveryError::new(format!("unexpected answer: {body:.200}"), false))?;
    match v.get(field).and_then(|c| c.as_i64()) {
        Some(0) => Ok(()),
        Some(code) => {
            let msg = v.get("errmsg").or_else(|| v.get("msg")).and_then(|m| m.as_str()).unwrap_or("");
            Err(DeliveryError::new(format!("{field} {code}: {msg}"), rate_codes.contains(&code)))
        }
        None => Err(DeliveryError::new(format!("answer without {field}: {body:.200}"), false)),
    }
}

/// A token bucket: `n` messages a minute, bursts up to `n`. Waiting callers sleep rather than
/// drop, since a late notification beats a lost one.
#[derive(Debug)]
pub struct RateLimiter {
    per_sec: f64,
    capacity: f64,
    state: parking_lot::Mutex<(f64, tokio::time::Instant)>,
}

impl RateLimiter {
    /// `n` per minute.
    pub fn per_minute(n: u32) -> Self {
        Self::new(n, Duration::from_secs(60))
    }

    /// `n` per `window`.
    pub fn new(n: u32, window: Duration) -> Self {
        let capacity = f64::from(n);
        let per_sec = capacity / window.as_secs_f64();
        Self { per_sec, capacity, state: parking_lot::Mutex::new((capacity, tokio::time::Instant::now())) }
    }

    /// Takes one token, sleeping until one is available.
    pub async fn acquire(&self) {
        loop {
            let wait = {
                let mut st = self.state.lock();
                let now = tokio::time::Instant::now();
                st.0 = (st.0 + now.duration_since(st.1).as_secs_f64() * self.per_sec).min(self.capacity);
                st.1 = now;
                if st.0 >= 1.0 {
                    st.0 -= 1.0;
                    return;
                }
                Duration::from_secs_f64((1.0 - st.0) / self.per_sec)
            };
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rate_limiter_allows_a_burst_then_paces() {
        // 20 per 400 ms: the same shape as DingTalk's 20 a minute, 150 times faster.
        let rl = RateLimiter::new(20, Duration::from_millis(400));
        let start = tokio::time::Instant::now();
        for _ in 0..20 {
            rl.acquire().await;
        }
        let burst = start.elapsed();
        rl.acquire().await;
        rl.acquire().await;
        assert!(burst < Duration::from_millis(20), "the burst does not wait ({burst:?})");
        assert!(start.elapsed() >= Duration::from_millis(38), "two more wait 2 × 400/20 ms");
    }

    #[test]
    fn bot_answers_are_checked() {
        assert!(check_code(r#"{"errcode":0,"errmsg":"ok"}"#, "errcode", &[]).is_ok());
        let e = check_code(r#"{"errcode":130101,"errmsg":"send too fast"}"#, "errcode", &[130101]).unwrap_err();
        assert!(e.retryable && e.message.contains("send too fast"));
        assert!(!check_code(r#"{"code":19021,"msg":"sign match fail"}"#, "code", &[]).unwrap_err().retryable);
        assert!(check_code("<html>", "code", &[]).is_err());
    }
}
