//! `/api/v1/rules` and `/api/v1/alerts` in Prometheus's shape, from the rule manager. A role
//! without rules (the agent) answers with empty lists, as Prometheus with no rule files does.
//! Rules run for one tenant (`alerting.tenant`): other tenants see none of them.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use crate::error::PromError;
use crate::params::{Params, Prom, Tenant};
use crate::state::AppState;

/// `GET /api/v1/rules?type=alert|record`.
pub(crate) async fn rules(
    State(state): State<AppState>,
    Prom(Tenant(tenant)): Prom<Tenant>,
    Prom(params): Prom<Params>,
) -> Result<Json<Value>, PromError> {
    let mut data = match &state.services().rules {
        Some(manager) => manager.rules_api(Some(&tenant)),
        None => json!({ "groups": [] }),
    };
    let wanted = match params.get("type").unwrap_or("") {
        "alert" => Some("alerting"),
        "record" => Some("recording"),
        _ => None,
    };
    if let (Some(kind), Some(groups)) = (wanted, data["groups"].as_array_mut()) {
        for g in groups.iter_mut() {
            if let Some(rules) = g["rules"].as_array_mut() {
                rules.retain(|r| r["type"] == kind);
            }
        }
    }
    Ok(Json(json!({ "status": "success", "data": data })))
}

/// `GET /api/v1/alerts`: every pending and firing alert.
pub(crate) async fn alerts(
    State(state): State<AppState>,
    Prom(Tenant(tenant)): Prom<Tenant>,
) -> Result<Json<Value>, PromError> {
    let data = match &state.services().rules {
        Some(manager) => manager.alerts_api(Some(&tenant)),
        None => json!({ "alerts": [] }),
    };
    Ok(Json(json!({ "status": "success", "data": data })))
}
