//! DingTalk custom robot: a `markdown` message, signed as DingTalk documents
//! (`sign = urlencode(base64(HMAC-SHA256(key = secret, message = "timestamp\nsecret")))`, timestamp
//! in milliseconds, both as query parameters). Errors come back as HTTP 200 with `errcode != 0`.

use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;

use super::Chat;
use crate::notify::data::GroupData;

/// DingTalk's signature for `timestamp_ms`, before URL encoding.
pub fn dingtalk_sign(timestamp_ms: i64, secret: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("hmac takes any key length");
    mac.update(format!("{timestamp_ms}\n{secret}").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// A checked DingTalk integration.
#[derive(Debug)]
pub struct DingTalk(pub(super) Chat);

impl DingTalk {
    /// The JSON body.
    pub fn payload(&self, d: &GroupData, now: DateTime<Utc>) -> serde_json::Value {
        let title = self.0.texts.title(d, now);
        let text = format!("### {title}\n\n{}", self.0.texts.text(d, now));
        json!({"msgtype": "markdown", "markdown": {"title": title, "text": text}})
    }

    /// The URL with `timestamp` and `sign` appended when a secret is set.
    pub fn signed_url(&self, now: DateTime<Utc>) -> String {
        let url = self.0.url.expose();
        match &self.0.secret {
            None => url.to_string(),
            Some(secret) => {
                let ts = now.timestamp_millis();
                let sign: String =
                    form_urlencoded::byte_serialize(dingtalk_sign(ts, secret.expose()).as_bytes()).collect();
                let sep = if url.contains('?') { '&' } else { '?' };
                format!("{url}{sep}timestamp={ts}&sign={sign}")
            }
        }
    }
}
