//! `GET /api/v1/status/tenants`: the tenants this process stores data for, for the web UI's
//! tenant picker (every other endpoint takes the tenant from `X-Scope-OrgID`, so a user needs
//! the list to pick from). Each entry says which store knows the tenant; the default tenant is
//! always listed, since it answers even before anything was stored.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use crate::state::AppState;

/// `{"status":"success","data":[{"id":"default","logs":true,"metrics":false}, ...]}`, sorted by id.
pub(crate) async fn tenants(State(state): State<AppState>) -> Json<Value> {
    let mut known: BTreeMap<String, (bool, bool)> = BTreeMap::new();
    known.insert(model::TenantId::default_tenant().to_string(), (false, false));
    if let Some(indexer) = &state.services().indexer {
        for t in indexer.tenants() {
            known.entry(t.to_string()).or_default().0 = true;
        }
    }
    if let Some(tsdb) = &state.services().tsdb {
        for t in tsdb.tenants() {
            known.entry(t.to_string()).or_default().1 = true;
        }
    }
    let data: Vec<Value> =
        known.into_iter().map(|(id, (logs, metrics))| json!({"id": id, "logs": logs, "metrics": metrics})).collect();
    Json(json!({"status": "success", "data": data}))
}
