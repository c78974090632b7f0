//! `/api/v1/targets` in Prometheus's shape: the scrape targets of this process's collector with
//! their health, last error, last scrape and duration, and the targets relabeling dropped. A
//! server without a collector answers with empty lists (its agents' targets live on the agents).
//! The targets belong to the collector's tenant; another tenant sees empty lists.

use axum::Json;
use axum::extract::State;
use model::Labels;
use serde_json::{Map, Value, json};

use crate::error::PromError;
use crate::params::{Params, Prom, Tenant};
use crate::state::AppState;

fn label_map(labels: &Labels) -> Map<String, Value> {
    labels.iter().map(|l| (l.name.clone(), Value::String(l.value.clone()))).collect()
}

fn rfc3339_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// `GET /api/v1/targets?state=active|dropped|any`.
pub(crate) async fn targets(
    State(state): State<AppState>,
    Prom(Tenant(tenant)): Prom<Tenant>,
    Prom(params): Prom<Params>,
) -> Result<Json<Value>, PromError> {
    let wanted = params.get("state").unwrap_or("any").to_ascii_lowercase();
    let own = state.services().targets_tenant.as_ref().is_none_or(|t| *t == tenant);
    let view = state.services().targets.clone().filter(|_| own);
    let active: Vec<Value> = match (&view, wanted.as_str()) {
        (Some(view), "any" | "active" | "") => view
            .active()
            .iter()
            .map(|t| {
                let health = serde_json::to_value(t.health).unwrap_or(Value::Null);
                json!({
                    "discoveredLabels": label_map(&t.discovered_labels),
                    "labels": label_map(&t.labels),
                    "scrapePool": t.job,
                    "scrapeUrl": t.scrape_url,
                    "globalUrl": t.scrape_url,
                    "lastError": t.last_error.clone().unwrap_or_default(),
                    "lastScrape": t.last_scrape.map(rfc3339_ms).unwrap_or_else(|| "0001-01-01T00:00:00Z".into()),
                    "lastScrapeDuration": t.last_duration.map(|d| d.as_secs_f64()).unwrap_or(0.0),
                    "health": health,
                })
            })
            .collect(),
        _ => Vec::new(),
    };
    let dropped: Vec<Value> = match (&view, wanted.as_str()) {
        (Some(view), "any" | "dropped" | "") => view
            .dropped()
            .iter()
            .map(|t| json!({"discoveredLabels": label_map(&t.discovered_labels), "scrapePool": t.job}))
            .collect(),
        _ => Vec::new(),
    };
    Ok(Json(json!({"status": "success", "data": {"activeTargets": active, "droppedTargets": dropped}})))
}
