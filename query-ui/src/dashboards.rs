//! Dashboards for the web UI, stored server-side as JSON files (`<data_dir>/dashboards/<id>.json`)
//! so a team shares them, plus two built into the binary (a Kubernetes namespace, Tarsier's own
//! health). `GET /api/v1/dashboards` lists, `GET|PUT|DELETE /api/v1/dashboards/<id>` reads,
//! writes (validated, size-limited, atomically replaced) and removes one. Built-ins are read-only.
//! Dashboards belong to a tenant: the default tenant's are in `<data_dir>/dashboards/`, another
//! tenant's in `<data_dir>/dashboards/tenants/<tenant>/`, so one team never sees another's.

use std::path::{Path, PathBuf};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use serde_json::{Value, json};

use crate::error::{ApiError, PromError};
use crate::params::{Prom, Tenant};
use crate::state::AppState;

type Result<T> = std::result::Result<T, PromError>;

/// Largest dashboard accepted: far above a hand-made one, small enough to keep listing cheap.
pub const MAX_DASHBOARD_BYTES: usize = 256 * 1024;
const MAX_PANELS: usize = 100;
const PANEL_TYPES: &[&str] = &["timeseries", "stat", "table", "logs", "histogram"];
const SOURCES: &[&str] = &["logs", "metrics"];
const BUILTIN_PREFIX: &str = "builtin-";

const BUILTIN: &[(&str, &str)] = &[
    ("builtin-kubernetes", include_str!("../dashboards/kubernetes.json")),
    ("builtin-tarsier", include_str!("../dashboards/tarsier.json")),
];

fn dir(state: &AppState, tenant: &model::TenantId) -> std::result::Result<PathBuf, ApiError> {
    let root = state
        .services()
        .dashboards_dir
        .clone()
        .ok_or_else(|| ApiError::Unavailable("dashboards are not stored by this role".into()))?;
    // A tenant id is a safe directory name (no '/', not '.' or '..').
    Ok(if *tenant == model::TenantId::default_tenant() { root } else { root.join("tenants").join(tenant.as_str()) })
}

fn check_id(id: &str) -> std::result::Result<(), ApiError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && !id.starts_with(['-', '_']);
    if !ok {
        return Err(ApiError::BadRequest(format!(
            "invalid dashboard id {id:?}: use 1-64 lowercase letters, digits, '-' or '_'"
        )));
    }
    Ok(())
}

fn str_field<'a>(
    obj: &'a Value,
    path: &str,
    key: &str,
    required: bool,
) -> std::result::Result<Option<&'a str>, String> {
    match obj.get(key) {
        None | Some(Value::Null) if !required => Ok(None),
        None | Some(Value::Null) => Err(format!("{path}{key}: missing")),
        Some(Value::String(s)) if required && s.trim().is_empty() => Err(format!("{path}{key}: must not be empty")),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(format!("{path}{key}: expected a string, got {other}")),
    }
}

fn one_of(value: Option<&str>, path: &str, allowed: &[&str]) -> std::result::Result<(), String> {
    match value {
        Some(v) if !allowed.contains(&v) => Err(format!("{path}: {v:?} is not one of {}", allowed.join(", "))),
        _ => Ok(()),
    }
}

/// Checks a dashboard document; the error names the offending field (`panels[2].type: ...`).
pub fn validate(doc: &Value) -> std::result::Result<(), String> {
    if !doc.is_object() {
        return Err("a dashboard must be a JSON object".into());
    }
    let title = str_field(doc, "", "title", true)?.unwrap_or_default();
    if title.chars().count() > 200 {
        return Err("title: longer than 200 characters".into());
    }
    if let Some(refresh) = str_field(doc, "", "refresh", false)?
        && refresh != "off"
        && !(refresh.len() >= 2
            && refresh.ends_with(['s', 'm'])
            && refresh[..refresh.len() - 1].parse::<u32>().is_ok_and(|n| n > 0))
    {
        return Err(format!("refresh: {refresh:?} is not \"off\" or a duration like \"30s\" or \"5m\""));
    }
    let panels = doc.get("panels").and_then(Value::as_array).ok_or("panels: expected a list of panels")?;
    if panels.len() > MAX_PANELS {
        return Err(format!("panels: {} panels, at most {MAX_PANELS}", panels.len()));
    }
    for (i, p) in panels.iter().enumerate() {
        let path = format!("panels[{i}].");
        if !p.is_object() {
            return Err(format!("panels[{i}]: expected an object"));
        }
        str_field(p, &path, "title", false)?;
        one_of(str_field(p, &path, "type", true)?, &format!("{path}type"), PANEL_TYPES)?;
        one_of(str_field(p, &path, "datasource", true)?, &format!("{path}datasource"), SOURCES)?;
        str_field(p, &path, "query", true)?;
        if p.get("type").and_then(Value::as_str) == Some("logs")
            && p.get("datasource").and_then(Value::as_str) != Some("logs")
        {
            return Err(format!("{path}datasource: a logs panel reads \"logs\""));
        }
        if let Some(w) = p.get("width")
            && !w.as_u64().is_some_and(|w| (1..=12).contains(&w))
        {
            return Err(format!("{path}width: {w} is not a whole number from 1 to 12"));
        }
    }
    if let Some(vars) = doc.get("variables").filter(|v| !v.is_null()) {
        let vars = vars.as_array().ok_or("variables: expected a list")?;
        for (i, v) in vars.iter().enumerate() {
            let path = format!("variables[{i}].");
            let name = str_field(v, &path, "name", true)?.unwrap_or_default();
            if !model::labels::is_valid_label_name(name) {
                return Err(format!("{path}name: {name:?} is not a valid variable name"));
            }
            one_of(str_field(v, &path, "source", true)?, &format!("{path}source"), SOURCES)?;
            str_field(v, &path, "labelName", true)?;
            str_field(v, &path, "query", false)?;
        }
    }
    Ok(())
}

fn summary(id: &str, doc: &Value, builtin: bool) -> Value {
    json!({
        "id": id,
        "title": doc.get("title").cloned().unwrap_or(Value::Null),
        "description": doc.get("description").cloned().unwrap_or(Value::Null),
        "builtin": builtin,
    })
}

fn builtin(id: &str) -> Option<Value> {
    BUILTIN
        .iter()
        .find(|(b, _)| *b == id)
        .map(|(_, text)| serde_json::from_str(text).expect("built-in dashboards are valid JSON"))
}

fn read_stored(dir: &Path) -> std::result::Result<Vec<(String, Value)>, ApiError> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(ApiError::Internal(format!("reading {}: {e}", dir.display()))),
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(id) = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".json")) else {
            continue;
        };
        if check_id(id).is_err() {
            continue;
        }
        match std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
        {
            Ok(doc) => out.push((id.to_string(), doc)),
            Err(e) => tracing::warn!(path = %path.display(), error = %e, "skipping unreadable dashboard"),
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::result::Result<T, ApiError> + Send + 'static,
) -> std::result::Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(ApiError::from_join)?
}

/// `GET /api/v1/dashboards`: built-ins first, then stored ones by id.
pub(crate) async fn list(State(state): State<AppState>, Prom(Tenant(tenant)): Prom<Tenant>) -> Result<Json<Value>> {
    let mut data: Vec<Value> =
        BUILTIN.iter().map(|(id, _)| summary(id, &builtin(id).unwrap_or_default(), true)).collect();
    if let Ok(dir) = dir(&state, &tenant) {
        let stored = blocking(move || read_stored(&dir)).await?;
        data.extend(stored.iter().map(|(id, doc)| summary(id, doc, false)));
    }
    Ok(Json(json!({"status": "success", "data": data})))
}

/// `GET /api/v1/dashboards/<id>`.
pub(crate) async fn get(
    State(state): State<AppState>,
    Prom(Tenant(tenant)): Prom<Tenant>,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<Value>> {
    let mut doc = match builtin(&id) {
        Some(doc) => doc,
        None => {
            check_id(&id)?;
            let path = dir(&state, &tenant)?.join(format!("{id}.json"));
            let shown = id.clone();
            blocking(move || match std::fs::read(&path) {
                Ok(bytes) => serde_json::from_slice::<Value>(&bytes)
                    .map_err(|e| ApiError::Internal(format!("dashboard {shown} is not valid JSON: {e}"))),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    Err(ApiError::NotFound(format!("no dashboard {shown:?}")))
                }
                Err(e) => Err(ApiError::Internal(format!("reading {}: {e}", path.display()))),
            })
            .await?
        }
    };
    doc["id"] = Value::String(id);
    Ok(Json(json!({"status": "success", "data": doc})))
}

/// `PUT /api/v1/dashboards/<id>`: creates or replaces a dashboard (the body is its JSON).
pub(crate) async fn put(
    State(state): State<AppState>,
    Prom(Tenant(tenant)): Prom<Tenant>,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> Result<Json<Value>> {
    if id.starts_with(BUILTIN_PREFIX) {
        return Err(
            ApiError::BadRequest(format!("{id:?} is built in and read-only: save a copy under another id")).into()
        );
    }
    check_id(&id)?;
    if body.len() > MAX_DASHBOARD_BYTES {
        return Err(ApiError::PayloadTooLarge(format!(
            "dashboard is {} bytes, the limit is {MAX_DASHBOARD_BYTES}",
            body.len()
        ))
        .into());
    }
    let mut doc: Value =
        serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest(format!("the body is not valid JSON: {e}")))?;
    validate(&doc).map_err(|e| ApiError::BadRequest(format!("invalid dashboard: {e}")))?;
    doc["id"] = Value::String(id.clone());
    let dir = dir(&state, &tenant)?;
    let text = serde_json::to_vec_pretty(&doc).map_err(|e| ApiError::Internal(e.to_string()))?;
    let name = id.clone();
    blocking(move || {
        std::fs::create_dir_all(&dir).map_err(|e| ApiError::Internal(format!("creating {}: {e}", dir.display())))?;
        let tmp = dir.join(format!(".{name}.json.tmp"));
        let path = dir.join(format!("{name}.json"));
        let write = || -> std::io::Result<()> {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&text)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            std::fs::File::open(&dir)?.sync_all()
        };
        write().map_err(|e| ApiError::Internal(format!("writing {}: {e}", path.display())))
    })
    .await?;
    Ok(Json(json!({"status": "success", "data": {"id": id}})))
}

/// `DELETE /api/v1/dashboards/<id>`.
pub(crate) async fn delete(
    State(state): State<AppState>,
    Prom(Tenant(tenant)): Prom<Tenant>,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<Value>> {
    if id.starts_with(BUILTIN_PREFIX) {
        return Err(ApiError::BadRequest(format!("{id:?} is built in and cannot be deleted")).into());
    }
    check_id(&id)?;
    let path = dir(&state, &tenant)?.join(format!("{id}.json"));
    let shown = id.clone();
    blocking(move || match std::fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(ApiError::NotFound(format!("no dashboard {shown:?}")))
        }
        Err(e) => Err(ApiError::Internal(format!("removing {}: {e}", path.display()))),
    })
    .await?;
    Ok(Json(json!({"status": "success", "data": {"id": id}})))
}

/// `GET /api/v1/status/config`: the effective configuration with secrets redacted, as YAML.
pub(crate) async fn status_config(State(state): State<AppState>) -> axum::response::Response {
    use axum::response::IntoResponse;
    let text = match &state.services().config_yaml {
        Some(shared) => shared.read().to_string(),
        None => "# the configuration is not available in this role\n".to_string(),
    };
    ([(axum::http::header::CONTENT_TYPE, "text/yaml; charset=utf-8")], text).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_dashboards_are_valid() {
        for (id, text) in BUILTIN {
            let doc: Value = serde_json::from_str(text).unwrap();
            validate(&doc).unwrap_or_else(|e| panic!("{id}: {e}"));
        }
    }

    #[test]
    fn validation_names_the_offending_field() {
        let cases = [
            (json!([]), "a dashboard must be a JSON object"),
            (json!({"panels": []}), "title: missing"),
            (json!({"title": "t"}), "panels: expected a list"),
            (
                json!({"title": "t", "panels": [{"type": "pie", "datasource": "logs", "query": "x"}]}),
                "panels[0].type: \"pie\"",
            ),
            (
                json!({"title": "t", "panels": [{"type": "stat", "datasource": "sql", "query": "x"}]}),
                "panels[0].datasource",
            ),
            (json!({"title": "t", "panels": [{"type": "stat", "datasource": "metrics"}]}), "panels[0].query: missing"),
            (
                json!({"title": "t", "panels": [{"type": "stat", "datasource": "metrics", "query": "up", "width": 13}]}),
                "panels[0].width",
            ),
            (json!({"title": "t", "refresh": "soon", "panels": []}), "refresh:"),
            (
                json!({"title": "t", "panels": [], "variables": [{"name": "a b", "source": "logs", "labelName": "x"}]}),
                "variables[0].name",
            ),
        ];
        for (doc, want) in cases {
            let err = validate(&doc).expect_err(&doc.to_string());
            assert!(err.contains(want), "{doc}: {err:?} does not contain {want:?}");
        }
        validate(&json!({"title": "t", "refresh": "30s", "panels": [{"type": "logs", "datasource": "logs", "query": "{a=\"b\"}", "width": 12}]}))
            .unwrap();
    }

    #[test]
    fn ids_are_safe_file_names() {
        for bad in ["", "../x", "a/b", "A", ".hidden", "-x", &"x".repeat(65)] {
            assert!(check_id(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["a", "my-dash_2", "0"] {
            check_id(good).unwrap();
        }
    }
}
