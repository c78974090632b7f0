//! The Loki query API (`/loki/api/v1/*`), with Loki's parameter defaults and response shapes, so
//! Grafana's Loki data source works unchanged.

use axum::Json;
use axum::extract::{Path, State};
use serde_json::{Value, json};

use crate::error::{ApiError, TextError};
use crate::params::{Params, Tenant};
use crate::state::AppState;

type LokiResult = Result<Json<Value>, TextError>;

const HOUR_NS: i64 = 3_600_000_000_000;

fn indexer(state: &AppState) -> Result<std::sync::Arc<indexer::Indexer>, ApiError> {
    state.services().indexer.clone().ok_or_else(|| ApiError::Unavailable("no indexer in this role".into()))
}

fn time_param(params: &Params, key: &str, default: i64) -> Result<i64, ApiError> {
    match params.get(key).filter(|v| !v.is_empty()) {
        None => Ok(default),
        Some(v) => {
            model::time::parse_loki_time(v).map_err(|e| ApiError::BadRequest(format!("invalid parameter {key:?}: {e}")))
        }
    }
}

/// `start`/`end` with Loki's defaults: `end` now, `start` `default_span` before `end`.
fn range(params: &Params, default_span_ns: i64) -> Result<(i64, i64), ApiError> {
    let end = time_param(params, "end", model::time::now_ns())?;
    let start = time_param(params, "start", end - default_span_ns)?;
    if end < start {
        return Err(ApiError::BadRequest("the query time range is invalid: end is before start".into()));
    }
    Ok((start, end))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, indexer::Error> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(ApiError::from_join)?.map_err(ApiError::from)
}

fn success(data: impl serde::Serialize) -> LokiResult {
    Ok(Json(json!({"status": "success", "data": data})))
}

/// `GET|POST /loki/api/v1/query_range`: log lines matching a LogQL query, newest first by default.
pub(crate) async fn query_range(State(state): State<AppState>, Tenant(tenant): Tenant, params: Params) -> LokiResult {
    let indexer = indexer(&state)?;
    let query = params.require("query")?.to_string();
    let (start_ns, end_ns) = range(&params, HOUR_NS)?;
    let max = state.config().max_log_query_limit;
    let limit = match params.get("limit") {
        None | Some("") => 100,
        Some(v) => v
            .parse::<usize>()
            .map_err(|_| ApiError::BadRequest(format!("invalid parameter \"limit\": {v:?} is not a number")))?,
    };
    if limit > max {
        return Err(ApiError::BadRequest(format!(
            "max entries limit per query exceeded, limit > max_entries_limit ({limit} > {max}); page with start/end instead (server.max_log_query_limit)"
        ))
        .into());
    }
    let direction = match params.get("direction").unwrap_or("backward").to_ascii_lowercase().as_str() {
        "backward" | "" => indexer::Direction::Backward,
        "forward" => indexer::Direction::Forward,
        other => {
            return Err(ApiError::BadRequest(format!(
                "invalid parameter \"direction\": {other:?} (use forward or backward)"
            ))
            .into());
        }
    };
    let request = indexer::LogQueryRequest { query, start_ns, end_ns, limit, direction };
    success(blocking(move || indexer.query(&tenant, &request)).await?)
}

/// `GET|POST /loki/api/v1/query`: instant queries are for metric queries in Loki; log queries
/// must use `query_range`, and Loki says so.
pub(crate) async fn query(State(state): State<AppState>, Tenant(_tenant): Tenant, params: Params) -> LokiResult {
    let _ = indexer(&state)?;
    let _ = params.require("query")?;
    Err(ApiError::BadRequest(
        "log queries are not supported as an instant query type, please change your query to a range query type".into(),
    )
    .into())
}

/// `GET|POST /loki/api/v1/labels` (and the older `/label`).
pub(crate) async fn labels(State(state): State<AppState>, Tenant(tenant): Tenant, params: Params) -> LokiResult {
    let indexer = indexer(&state)?;
    let (start, end) = range(&params, 6 * HOUR_NS)?;
    success(blocking(move || indexer.label_names(&tenant, start, end)).await?)
}

/// `GET /loki/api/v1/label/<name>/values`, optionally narrowed by a `query` selector.
pub(crate) async fn label_values(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(name): Path<String>,
    params: Params,
) -> LokiResult {
    let indexer = indexer(&state)?;
    let (start, end) = range(&params, 6 * HOUR_NS)?;
    let query = params.get("query").filter(|q| !q.is_empty()).map(str::to_string);
    success(blocking(move || indexer.label_values(&tenant, &name, start, end, query.as_deref())).await?)
}

/// `GET|POST /loki/api/v1/series`: the label sets of streams matching `match[]` selectors.
pub(crate) async fn series(State(state): State<AppState>, Tenant(tenant): Tenant, params: Params) -> LokiResult {
    let indexer = indexer(&state)?;
    let selectors = params.get_all("match[]");
    if selectors.is_empty() {
        return Err(ApiError::BadRequest("no match[] parameter provided".into()).into());
    }
    let (start, end) = range(&params, 6 * HOUR_NS)?;
    let series = blocking(move || indexer.series(&tenant, &selectors, start, end)).await?;
    let data: Vec<serde_json::Map<String, Value>> = series
        .iter()
        .map(|labels| labels.iter().map(|l| (l.name.clone(), Value::String(l.value.clone()))).collect())
        .collect();
    success(data)
}
