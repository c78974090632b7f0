//! Feishu/Lark custom bot: an interactive card with a Markdown body, signed as Feishu documents
//! (`sign = base64(HMAC-SHA256(key = "timestamp\nsecret", message = ""))`, timestamp in seconds,
//! sent as the `timestamp` and `sign` body fields). Errors come back as HTTP 200 with `code != 0`.

use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;

use super::Chat;
use crate::notify::data::GroupData;

/// Feishu's signature for `timestamp` (seconds).
pub fn feishu_sign(timestamp: i64, secret: &str) -> String {
    let key = format!("{timestamp}\n{secret}");
    let mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("hmac takes any key length");
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// A checked Feishu integration.
#[derive(Debug)]
pub struct Feishu(pub(super) Chat);

impl Feishu {
    /// The JSON body at `now` (which sets the signature's timestamp).
    pub fn payload(&self, d: &GroupData, now: DateTime<Utc>) -> serde_json::Value {
        let mut body = json!({
            "msg_type": "interactive",
            "card": {
                "config": {"wide_screen_mode": true},
                "header": {
                    "title": {"tag": "plain_text", "content": self.0.texts.title(d, now)},
                    "template": if d.status == "firing" { "red" } else { "green" },
                },
                "elements": [{"tag": "markdown", "content": self.0.texts.text(d, now)}],
            },
        });
        if let Some(secret) = &self.0.secret {
            let ts = now.timestamp();
            body["timestamp"] = json!(ts.to_string());
            body["sign"] = json!(feishu_sign(ts, secret.expose()));
        }
        body
    }
}
