//! Microsoft Teams through a Workflows webhook ("Post to a channel when a webhook request is
//! received"): a `message` envelope holding one Adaptive Card, as Alertmanager's `msteamsv2`.

use chrono::{DateTime, Utc};
use serde_json::json;

use super::Chat;
use crate::notify::data::GroupData;

/// A checked Teams integration.
#[derive(Debug)]
pub struct Teams(pub(super) Chat);

impl Teams {
    /// The JSON body.
    pub fn payload(&self, d: &GroupData, now: DateTime<Utc>) -> serde_json::Value {
        let title = self.0.texts.title(d, now);
        let text = self.0.texts.text(d, now);
        let mut card = json!({
            "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
            "type": "AdaptiveCard",
            "version": "1.4",
            "msteams": {"width": "Full"},
            "body": [
                {"type": "TextBlock", "text": title, "weight": "Bolder", "size": "Medium", "wrap": true,
                 "style": "heading", "color": if d.status == "firing" { "Attention" } else { "Good" }},
                {"type": "TextBlock", "text": text, "wrap": true},
            ],
        });
        if !d.external_url.is_empty() {
            card["actions"] = json!([{"type": "Action.OpenUrl", "title": "Open in Tarsier", "url": d.external_url}]);
        }
        json!({
            "type": "message",
            "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": null, "content": card}],
        })
    }
}
