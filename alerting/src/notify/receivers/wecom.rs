//! WeCom (企业微信) group robot: a `markdown` message whose content WeCom caps at 4,096 bytes, so
//! the text is cut on a UTF-8 boundary (Chinese text is 3 bytes a character) with a marker.

use chrono::{DateTime, Utc};
use serde_json::json;

use super::Chat;
use crate::notify::data::GroupData;

/// WeCom's documented limit for markdown content, in bytes.
pub const WECOM_MAX_BYTES: usize = 4096;

/// Cuts `s` to at most `max` bytes on a character boundary, ending with `…` when cut.
pub fn truncate_utf8(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let marker = "…";
    let mut end = max.saturating_sub(marker.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{marker}", &s[..end])
}

/// A checked WeCom integration.
#[derive(Debug)]
pub struct WeCom(pub(super) Chat);

impl WeCom {
    /// The JSON body.
    pub fn payload(&self, d: &GroupData, now: DateTime<Utc>) -> serde_json::Value {
        let content = format!("### {}\n{}", self.0.texts.title(d, now), self.0.texts.text(d, now));
        json!({"msgtype": "markdown", "markdown": {"content": truncate_utf8(&content, WECOM_MAX_BYTES)}})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_keeps_utf8_whole() {
        let s = "告警".repeat(2000);
        let t = truncate_utf8(&s, WECOM_MAX_BYTES);
        assert!(t.len() <= WECOM_MAX_BYTES && t.ends_with('…'));
        assert_eq!(truncate_utf8("short", 10), "short");
        for max in 0..20 {
            assert!(truncate_utf8("é告a警", max).len() <= max.max(3));
        }
    }
}
