//! `GET /api/v1/status/tenants`: the tenants this process stores data for, for the web UI's
//! tenant picker (every other endpoint takes the tenant from `X-Scope-OrgID`, so a user needs
//! the list to pick from). Each entry says which store knows the tenant; the default tenant is
//! always listed, since it answers even before anything was stored. With `server.auth` on, the
//! list is the token's tenants, and only those.

use std::collections::BTreeMap;

use std::sync::Arc;

use axum::extract::State;
use axum::{Extension, Json};
use serde_json::{Value, json};

use crate::auth::Principal;
use crate::state::AppState;

/// `{"status":"success","data":[{"id":"default","logs":true,"metrics":false}, ...]}`, sorted by id.
pub(crate) async fn tenants(
    State(state): State<AppState>,
    principal: Option<Extension<Arc<Principal>>>,
) -> Json<Value> {
    let mut known: BTreeMap<String, (bool, bool)> = BTreeMap::new();
    match &principal {
        Some(Extension(p)) => known.extend(p.tenants.iter().map(|t| (t.to_string(), (false, false)))),
        None => {
            known.insert(model::TenantId::default_tenant().to_string(), (false, false));
        }
    }
    let allowed = |t: &model::TenantId| principal.as_ref().is_none_or(|Extension(p)| p.tenants.contains(t));
    if let Some(indexer) = &state.services().indexer {
        for t in indexer.tenants().into_iter().filter(allowed) {
            known.entry(t.to_string()).or_default().0 = true;
        }
    }
    if let Some(tsdb) = &state.services().tsdb {
        for t in tsdb.tenants().into_iter().filter(allowed) {
            known.entry(t.to_string()).or_default().1 = true;
        }
    }
    let data: Vec<Value> =
        known.into_iter().map(|(id, (logs, metrics))| json!({"id": id, "logs": logs, "metrics": metrics})).collect();
    Json(json!({"status": "success", "data": data}))
}
