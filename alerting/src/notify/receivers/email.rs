//! Email over SMTP with `lettre` (rustls, no OpenSSL): implicit TLS on port 465 (or with
//! `force_implicit_tls`), STARTTLS when `require_tls` (Alertmanager's default), plain otherwise;
//! `tls_config` picks the CA, the name to verify and a client certificate. A server that does not
//! offer STARTTLS while it is required gets nothing, not even the credentials: the delivery fails
//! and says why. PLAIN/LOGIN auth; a multipart message with a text and an HTML part.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::Tls;
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::{Deserialize, Serialize};

use super::{DeliveryError, field};
use crate::notify::config::{GlobalConfig, Secret, resolve_secret};
use crate::notify::data::GroupData;
use crate::notify::message::{self, Field};
use crate::notify::tls::TlsConfig;
use crate::template::NotifyTemplates;

/// `email_configs` entry, as in Alertmanager.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// Recipients, comma separated.
    pub to: String,
    /// Sender (default `global.smtp_from`).
    #[serde(default)]
    pub from: Option<String>,
    /// EHLO name (default `global.smtp_hello`, else `localhost`).
    #[serde(default)]
    pub hello: Option<String>,
    /// SMTP server `host:port` (default `global.smtp_smarthost`).
    #[serde(default)]
    pub smarthost: Option<String>,
    /// SMTP user.
    #[serde(default)]
    pub auth_username: Option<String>,
    /// SMTP password.
    #[serde(default)]
    pub auth_password: Option<Secret>,
    /// A file holding the SMTP password.
    #[serde(default)]
    pub auth_password_file: Option<String>,
    /// Accepted for compatibility.
    #[serde(default)]
    pub auth_identity: Option<String>,
    /// Require STARTTLS (default `global.smtp_require_tls`, true).
    #[serde(default)]
    pub require_tls: Option<bool>,
    /// Implicit TLS (SMTPS) on a port other than 465 (default: only on 465).
    #[serde(default)]
    pub force_implicit_tls: Option<bool>,
    /// CA, server name and client certificate for STARTTLS and implicit TLS.
    #[serde(default)]
    pub tls_config: TlsConfig,
    /// `Subject`, `To` or `From` overrides (templates allowed).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// HTML body template (default: a table of the alerts).
    #[serde(default)]
    pub html: Option<String>,
    /// Text body template (default: the alert list).
    #[serde(default)]
    pub text: Option<String>,
    /// Notify about resolved alerts (default false, as Alertmanager).
    #[serde(default)]
    pub send_resolved: bool,
}

/// A checked email integration.
pub struct Email {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    smarthost: String,
    require_starttls: bool,
    from: String,
    to: String,
    headers: BTreeMap<String, Field>,
    html: Option<Field>,
    text: Option<Field>,
}

impl std::fmt::Debug for Email {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Email").field("from", &self.from).field("to", &self.to).finish_non_exhaustive()
    }
}

impl Email {
    pub(super) fn new(c: &EmailConfig, g: &GlobalConfig, templates: &NotifyTemplates) -> Result<Self, String> {
        let smarthost = c.smarthost.clone().or_else(|| g.smtp_smarthost.clone()).ok_or("smarthost: missing")?;
        let (host, port) = smarthost.rsplit_once(':').ok_or("smarthost: expected host:port")?;
        let port: u16 = port.parse().map_err(|_| format!("smarthost: bad port in {smarthost:?}"))?;
        let from = c.from.clone().or_else(|| g.smtp_from.clone()).ok_or("from: missing (or global.smtp_from)")?;
        from.parse::<Mailbox>().map_err(|e| format!("from: {e}"))?;
        for (i, to) in c.to.split(',').enumerate() {
            to.trim().parse::<Mailbox>().map_err(|e| format!("to: address {i}: {e}"))?;
        }
        let mut headers = BTreeMap::new();
        for (k, v) in &c.headers {
            if !["Subject", "To", "From"].contains(&k.as_str()) {
                return Err(format!("headers.{k}: only Subject, To and From can be set"));
            }
            headers.insert(k.clone(), Field::compile(v, templates).map_err(|e| format!("headers.{k}: {e}"))?);
        }
        let (html, text) = (field(&c.html, "html", templates)?, field(&c.text, "text", templates)?);
        let require_tls = c.require_tls.unwrap_or(g.smtp_require_tls);
        let implicit_tls = c.force_implicit_tls.unwrap_or(port == 465);
        let tls = c.tls_config.load().map_err(|e| format!("tls_config.{e}"))?;
        let tls = if implicit_tls {
            Tls::Wrapper(tls.smtp(host)?)
        } else if require_tls {
            Tls::Required(tls.smtp(host)?)
        } else {
            Tls::None
        };
        let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .tls(tls)
            .port(port)
            .timeout(Some(Duration::from_secs(30)));
        let hello = c.hello.clone().or_else(|| g.smtp_hello.clone()).unwrap_or_else(|| "localhost".into());
        b = b.hello_name(ClientId::Domain(hello));
        let user = c.auth_username.clone().or_else(|| g.smtp_auth_username.clone());
        let pass = match resolve_secret(&c.auth_password, &c.auth_password_file, "auth_password")? {
            Some(p) => Some(p),
            None => resolve_secret(&g.smtp_auth_password, &g.smtp_auth_password_file, "global.smtp_auth_password")?,
        };
        if let Some(user) = user {
            let pass = pass.ok_or("auth_password: missing while auth_username is set")?;
            b = b.credentials(Credentials::new(user, pass.expose().to_string()));
        }
        Ok(Self {
            transport: b.build(),
            smarthost,
            require_starttls: require_tls && !implicit_tls,
            from,
            to: c.to.clone(),
            headers,
            html,
            text,
        })
    }

    /// The message for `d` (exposed for tests).
    pub fn message(&self, d: &GroupData, now: DateTime<Utc>) -> Result<Message, DeliveryError> {
        let header = |k: &str, default: String| match self.headers.get(k) {
            Some(t) => t.render(d, now),
            None => default,
        };
        let bad = |e: String| DeliveryError::new(e, false);
        let mut b = Message::builder()
            .from(header("From", self.from.clone()).parse::<Mailbox>().map_err(|e| bad(format!("from: {e}")))?)
            .subject(header("Subject", message::default_title(d)));
        for to in header("To", self.to.clone()).split(',') {
            b = b.to(to.trim().parse::<Mailbox>().map_err(|e| bad(format!("to: {e}")))?);
        }
        let text = self.text.as_ref().map_or_else(|| message::default_text(d, now), |t| t.render(d, now));
        let html = self.html.as_ref().map_or_else(|| message::default_html(d, now), |t| t.render(d, now));
        b.multipart(MultiPart::alternative_plain_html(text, html))
            .map_err(|e| bad(format!("building the message: {e}")))
    }

    pub(super) async fn notify(&self, d: &GroupData, now: DateTime<Utc>) -> Result<(), DeliveryError> {
        let msg = self.message(d, now)?;
        self.transport.send(msg).await.map(|_| ()).map_err(|e| {
            // lettre reports a missing STARTTLS as a client error before anything was sent; say
            // which setting refused the plaintext session, and do not retry a server that cannot
            // change its mind.
            if self.require_starttls && e.is_client() && e.to_string().contains("STARTTLS") {
                return DeliveryError::new(
                    format!(
                        "smtp: {} does not offer STARTTLS and require_tls is true: nothing was sent in clear",
                        self.smarthost
                    ),
                    false,
                );
            }
            DeliveryError::new(format!("smtp: {e}"), !e.is_permanent())
        })
    }
}
