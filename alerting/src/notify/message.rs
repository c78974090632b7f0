//! Message text for the chat and email receivers: good defaults (what fires, where, since when,
//! the value, links back) and a small `{{ }}` placeholder language for custom `title`/`text`.
//!
//! Placeholders (Go-template spellings are accepted too, so simple Alertmanager templates paste in):
//! `{{ status }}` (`.Status`), `{{ receiver }}`, `{{ external_url }}` (`.ExternalURL`),
//! `{{ group_key }}`, `{{ firing_count }}`, `{{ resolved_count }}`, `{{ title }}` (the default
//! title), `{{ alerts }}` (the default alert list), `{{ group_labels }}`, `{{ group_labels.NAME }}`
//! (`.GroupLabels.NAME`), `{{ common_labels.NAME }}` (`.CommonLabels.NAME`) and
//! `{{ common_annotations.NAME }}` (`.CommonAnnotations.NAME`). Unknown placeholders are config errors.
//!
//! A field that is more than placeholders is an Alertmanager Go template ([`Field`]): it sees
//! Alertmanager's `template.Data` (`.Status`, `.Alerts` with `.Firing`/`.Resolved`, `.Labels`,
//! `.CommonLabels.SortedPairs`, ...) and may call the `templates:` files' `{{ define }}`s.

use std::collections::BTreeMap;
use std::fmt::Write;

use chrono::{DateTime, Utc};

use super::data::{AlertData, GroupData, ZERO_TIME, rfc3339};
use crate::template::{NotifyTemplate, NotifyTemplates, Value};

/// Alerts listed per section before "... and N more": chat messages have size limits.
const MAX_LISTED: usize = 10;

/// Labels that say where an alert fires, in the order shown.
const WHERE_LABELS: &[&str] =
    &["cluster", "namespace", "service", "job", "instance", "pod", "container", "node", "filename"];

/// The default title: `[FIRING:2] HighErrorRate (job="api")`.
pub fn default_title(d: &GroupData) -> String {
    let firing = d.firing().count();
    let mut t = if d.status == "firing" { format!("[FIRING:{firing}]") } else { "[RESOLVED]".to_string() };
    let name = d.common_labels.get("alertname").or_else(|| d.group_labels.get("alertname"));
    t.push(' ');
    t.push_str(name.map(String::as_str).unwrap_or("alerts"));
    let rest: Vec<String> =
        d.group_labels.iter().filter(|(k, _)| *k != "alertname").map(|(k, v)| format!("{k}={v:?}")).collect();
    if !rest.is_empty() {
        let _ = write!(t, " ({})", rest.join(", "));
    }
    t
}

fn since(t: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
    let Some(t) = t else { return "unknown".into() };
    let secs = (now - t).num_seconds().max(0) as u64;
    let ago = humantime::format_duration(std::time::Duration::from_secs(secs)).to_string();
    format!("{} ({ago} ago)", t.format("%Y-%m-%d %H:%M:%S UTC"))
}

fn where_of(labels: &BTreeMap<String, String>) -> String {
    let parts: Vec<String> = WHERE_LABELS.iter().filter_map(|k| labels.get(*k).map(|v| format!("{k}={v}"))).collect();
    if parts.is_empty() { "-".into() } else { parts.join(", ") }
}

fn summary(a: &AlertData) -> Option<&String> {
    a.annotations.get("summary").or_else(|| a.annotations.get("description")).or_else(|| a.annotations.get("message"))
}

/// The default alert list in Markdown (DingTalk, WeCom, Feishu, Slack mrkdwn, Teams).
pub fn default_markdown(d: &GroupData, now: DateTime<Utc>) -> String {
    let mut out = String::new();
    for (heading, alerts) in [("Firing", d.firing().collect::<Vec<_>>()), ("Resolved", d.resolved().collect())] {
        if alerts.is_empty() {
            continue;
        }
        let _ = writeln!(out, "**{heading}: {}**", alerts.len());
        for a in alerts.iter().take(MAX_LISTED) {
            let name = a.labels.get("alertname").map(String::as_str).unwrap_or("alert");
            let sev = a.labels.get("severity").map(|s| format!(" [{s}]")).unwrap_or_default();
            let _ = writeln!(out, "- **{name}**{sev}{}", summary(a).map(|s| format!(": {s}")).unwrap_or_default());
            let _ = writeln!(out, "  - where: {}", where_of(&a.labels));
            let _ = writeln!(out, "  - since: {}", since(a.starts_at, now));
            if a.status == "resolved" {
                let _ = writeln!(out, "  - resolved: {}", since(a.ends_at, now));
            }
            if let Some(v) = a.annotations.get("value") {
                let _ = writeln!(out, "  - value: {v}");
            }
            if !a.generator_url.is_empty() {
                let _ = writeln!(out, "  - [source]({})", a.generator_url);
            }
        }
        if alerts.len() > MAX_LISTED {
            let _ = writeln!(out, "- ... and {} more", alerts.len() - MAX_LISTED);
        }
    }
    if !d.external_url.is_empty() {
        let _ = writeln!(out, "\n[Open in Tarsier]({})", d.external_url);
    }
    out
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The default plain-text email body.
pub fn default_text(d: &GroupData, now: DateTime<Utc>) -> String {
    default_markdown(d, now).replace("**", "")
}

/// The default HTML email body.
pub fn default_html(d: &GroupData, now: DateTime<Utc>) -> String {
    let mut out = format!("<html><body><h2>{}</h2>\n", esc(&default_title(d)));
    for (heading, alerts) in [("Firing", d.firing().collect::<Vec<_>>()), ("Resolved", d.resolved().collect())] {
        if alerts.is_empty() {
            continue;
        }
        let _ = writeln!(out, "<h3>{heading}: {}</h3>\n<table border=\"1\" cellpadding=\"4\">", alerts.len());
        let _ = writeln!(out, "<tr><th>Alert</th><th>Summary</th><th>Where</th><th>Since</th><th>Value</th></tr>");
        for a in alerts.iter().take(MAX_LISTED) {
            let name = a.labels.get("alertname").map(String::as_str).unwrap_or("alert");
            let link = if a.generator_url.is_empty() {
                esc(name)
            } else {
                format!("<a href=\"{}\">{}</a>", esc(&a.generator_url), esc(name))
            };
            let _ = writeln!(
                out,
                "<tr><td>{link}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(summary(a).map(String::as_str).unwrap_or("")),
                esc(&where_of(&a.labels)),
                esc(&since(a.starts_at, now)),
                esc(a.annotations.get("value").map(String::as_str).unwrap_or(""))
            );
        }
        out.push_str("</table>\n");
        if alerts.len() > MAX_LISTED {
            let _ = writeln!(out, "<p>... and {} more</p>", alerts.len() - MAX_LISTED);
        }
    }
    if !d.external_url.is_empty() {
        let _ = writeln!(out, "<p><a href=\"{}\">Open in Tarsier</a></p>", esc(&d.external_url));
    }
    out.push_str("</body></html>\n");
    out
}

fn lookup(name: &str, d: &GroupData, now: DateTime<Utc>) -> Option<String> {
    let name = name.trim().trim_start_matches('.');
    let map_get = |m: &BTreeMap<String, String>, k: &str| Some(m.get(k).cloned().unwrap_or_default());
    let join = |m: &BTreeMap<String, String>| m.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ");
    match name {
        "status" | "Status" => Some(d.status.clone()),
        "receiver" | "Receiver" => Some(d.receiver.clone()),
        "external_url" | "ExternalURL" => Some(d.external_url.clone()),
        "group_key" | "GroupKey" => Some(d.group_key.clone()),
        "firing_count" => Some(d.firing().count().to_string()),
        "resolved_count" => Some(d.resolved().count().to_string()),
        "title" => Some(default_title(d)),
        "alerts" => Some(default_markdown(d, now)),
        "group_labels" | "GroupLabels" => Some(join(&d.group_labels)),
        "common_labels" | "CommonLabels" => Some(join(&d.common_labels)),
        "common_annotations" | "CommonAnnotations" => Some(join(&d.common_annotations)),
        _ => {
            let (map, key) = name.split_once('.')?;
            match map {
                "group_labels" | "GroupLabels" => map_get(&d.group_labels, key),
                "common_labels" | "CommonLabels" => map_get(&d.common_labels, key),
                "common_annotations" | "CommonAnnotations" => map_get(&d.common_annotations, key),
                _ => None,
            }
        }
    }
}

/// Alertmanager's `template.Data` for `d`: what a Go notification template sees as `.`.
pub fn template_data(d: &GroupData) -> Value {
    let map = |pairs: Vec<(&str, Value)>| Value::Map(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect());
    let time = |t: &Option<DateTime<Utc>>| Value::Str(t.as_ref().map_or_else(|| ZERO_TIME.to_string(), rfc3339));
    let alerts = d
        .alerts
        .iter()
        .map(|a| {
            map(vec![
                ("Status", Value::Str(a.status.clone())),
                ("Labels", Value::strings(&a.labels)),
                ("Annotations", Value::strings(&a.annotations)),
                ("StartsAt", time(&a.starts_at)),
                ("EndsAt", time(&a.ends_at)),
                ("GeneratorURL", Value::Str(a.generator_url.clone())),
                ("Fingerprint", Value::Str(a.fingerprint.clone())),
            ])
        })
        .collect();
    map(vec![
        ("Receiver", Value::Str(d.receiver.clone())),
        ("Status", Value::Str(d.status.clone())),
        ("Alerts", Value::List(alerts)),
        ("GroupLabels", Value::strings(&d.group_labels)),
        ("CommonLabels", Value::strings(&d.common_labels)),
        ("CommonAnnotations", Value::strings(&d.common_annotations)),
        ("ExternalURL", Value::Str(d.external_url.clone())),
        ("GroupKey", Value::Str(d.group_key.clone())),
    ])
}

/// A configured message field: Tarsier's placeholders, or an Alertmanager Go template.
#[derive(Clone, Debug)]
pub enum Field {
    /// Only `{{ }}` placeholders (or plain text).
    Placeholders(String),
    /// A Go template, with the `templates:` files' definitions.
    Go(NotifyTemplate),
}

impl Field {
    /// Checks and compiles a field: placeholders when they all are known, else a Go template,
    /// tried once on a sample so an unknown function or template is a config error.
    pub fn compile(text: &str, templates: &NotifyTemplates) -> Result<Self, String> {
        let placeholders = match check(text) {
            Ok(()) => return Ok(Field::Placeholders(text.to_string())),
            Err(e) => e,
        };
        let t = templates.compile(text).map_err(|e| format!("{placeholders}, and as a Go template: {e}"))?;
        let mut sample = crate::notify::Alert::firing([("alertname", "Sample")]);
        sample.annotations.insert("summary".into(), "sample".into());
        let probe = GroupData::new("r", "{}:{}", &BTreeMap::new(), &[sample], "http://tarsier", Utc::now());
        match t.execute(&template_data(&probe)) {
            Err(e) if e.contains("not defined") || e.contains("no such template") => Err(e),
            _ => Ok(Field::Go(t)),
        }
    }

    /// The text for `d`; a template that fails at run time says so in the message, as
    /// Prometheus does in annotations, rather than dropping the notification.
    pub fn render(&self, d: &GroupData, now: DateTime<Utc>) -> String {
        match self {
            Field::Placeholders(t) => render(t, d, now),
            Field::Go(t) => t.execute(&template_data(d)).unwrap_or_else(|e| {
                tracing::warn!(receiver = %d.receiver, error = %e, "notification template failed");
                format!("<error expanding template: {e}>")
            }),
        }
    }
}

/// Renders a `{{ }}` template; unknown placeholders render as themselves (validation rejects them).
pub fn render(template: &str, d: &GroupData, now: DateTime<Utc>) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let Some(end) = rest[start..].find("}}") else { break };
        let inner = &rest[start + 2..start + end];
        match lookup(inner, d, now) {
            Some(v) => out.push_str(&v),
            None => out.push_str(&rest[start..start + end + 2]),
        }
        rest = &rest[start + end + 2..];
    }
    out.push_str(rest);
    out
}

/// Checks that every placeholder in `template` is known.
pub fn check(template: &str) -> Result<(), String> {
    let probe = GroupData::new("r", "k", &BTreeMap::new(), &[], "", Utc::now());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let end = rest[start..].find("}}").ok_or_else(|| format!("unclosed '{{{{' in {template:?}"))?;
        let inner = &rest[start + 2..start + end];
        if lookup(inner, &probe, Utc::now()).is_none() {
            return Err(format!("unknown placeholder {{{{{inner}}}}}"));
        }
        rest = &rest[start + end + 2..];
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::Alert;

    fn data() -> (GroupData, DateTime<Utc>) {
        let now = DateTime::parse_from_rfc3339("2026-11-27T08:00:00Z").unwrap().to_utc();
        let mut a = Alert::firing([("alertname", "HighErrors"), ("job", "api"), ("severity", "critical")]);
        a.starts_at = now - chrono::Duration::minutes(15);
        a.annotations.insert("summary".into(), "errors <high>".into());
        a.annotations.insert("value".into(), "12.5".into());
        a.generator_url = "http://tarsier/graph?g0.expr=x".into();
        let mut b = a.clone();
        b.labels.insert("job".into(), "web".into());
        b.ends_at = Some(now - chrono::Duration::minutes(1));
        let gl = [("alertname".to_string(), "HighErrors".to_string())].into();
        (GroupData::new("team", "{}:{alertname=\"HighErrors\"}", &gl, &[a, b], "http://tarsier", now), now)
    }

    #[test]
    fn defaults_say_what_where_since_value_and_link() {
        let (d, now) = data();
        assert_eq!(default_title(&d), "[FIRING:1] HighErrors");
        let md = default_markdown(&d, now);
        for want in [
            "**Firing: 1**",
            "**Resolved: 1**",
            "job=api",
            "since: 2026-11-27 07:45:00 UTC (15m ago)",
            "value: 12.5",
            "[source](http://tarsier/graph?g0.expr=x)",
            "[Open in Tarsier](http://tarsier)",
        ] {
            assert!(md.contains(want), "{want} missing in {md}");
        }
        let html = default_html(&d, now);
        assert!(html.contains("errors &lt;high&gt;") && !html.contains("<high>"));
    }

    #[test]
    fn placeholders_render_and_unknown_ones_are_rejected() {
        let (d, now) = data();
        assert_eq!(
            render("{{ .Status }}: {{ common_labels.alertname }} x{{firing_count}} {{ .CommonLabels.none }}|", &d, now),
            "firing: HighErrors x1 |"
        );
        assert!(check("{{ .Status }} {{ group_labels.job }}").is_ok());
        assert!(check("{{ range .Alerts }}").is_err());
        assert!(check("{{ status").is_err());
    }
}
