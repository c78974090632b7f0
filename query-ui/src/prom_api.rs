//! The Prometheus HTTP query API (`/api/v1/*`), with Prometheus's parameter rules, response
//! envelope and error shapes, so Grafana's Prometheus data source and KEDA work unchanged.

use axum::Json;
use axum::extract::{Path, State};
use serde_json::{Value, json};

use crate::error::{ApiError, PromError};
use crate::params::{Params, Prom, Tenant};
use crate::state::AppState;

type PromResult = Result<Json<Value>, PromError>;

fn success(data: impl serde::Serialize) -> PromResult {
    Ok(Json(json!({"status": "success", "data": data})))
}

/// A query answer in Prometheus's envelope, serialised straight from the result: building a
/// `serde_json::Value` tree first cost an allocation per label and point.
#[derive(serde::Serialize)]
pub(crate) struct QueryAnswer {
    status: &'static str,
    data: tsdb::QueryResult,
    /// Prometheus's `warnings` and `infos`, present only when non-empty.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    infos: Vec<String>,
}

fn success_annotated(
    data: tsdb::QueryResult,
    notes: tsdb::promql::Annotations,
) -> Result<Json<QueryAnswer>, PromError> {
    Ok(Json(QueryAnswer { status: "success", data, warnings: notes.warnings, infos: notes.infos }))
}

fn tsdb(state: &AppState) -> Result<std::sync::Arc<tsdb::Tsdb>, ApiError> {
    state.services().tsdb.clone().ok_or_else(|| ApiError::Unavailable("no tsdb in this role".into()))
}

/// Parses a time parameter, naming it in the error as Prometheus does.
fn time_param(params: &Params, key: &str, default: i64) -> Result<i64, ApiError> {
    match params.get(key).filter(|v| !v.is_empty()) {
        None => Ok(default),
        Some(v) => model::time::parse_prometheus_time(v)
            .map_err(|e| ApiError::BadRequest(format!("invalid parameter {key:?}: {e}"))),
    }
}

/// A time parameter that must be present (`start`/`end` of a range query).
fn required_time_param(params: &Params, key: &str) -> Result<i64, ApiError> {
    match params.get(key).filter(|v| !v.is_empty()) {
        None => Err(ApiError::BadRequest(format!("invalid parameter {key:?}: missing"))),
        Some(_) => time_param(params, key, 0),
    }
}

/// The `match[]` selectors and `start`/`end` of a metadata query (all time when absent).
fn metadata_range(params: &Params) -> Result<(Vec<String>, i64, i64), ApiError> {
    let start = time_param(params, "start", MIN_TIME_MS)?;
    let end = time_param(params, "end", MAX_TIME_MS)?;
    Ok((params.get_all("match[]"), start, end))
}

/// Prometheus's defaults when `start`/`end` are absent for metadata queries: all time.
const MIN_TIME_MS: i64 = i64::MIN / 2;
const MAX_TIME_MS: i64 = i64::MAX / 2;

/// Runs the store's work under a query slot (PromQL's own `tsdb.query_timeout` bounds it).
async fn blocking<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce() -> Result<T, tsdb::Error> + Send + 'static,
) -> Result<T, ApiError> {
    crate::limits::run_query(state, None, |_| f()).await
}

/// `GET|POST /api/v1/query`.
pub(crate) async fn query(
    State(state): State<AppState>,
    Prom(Tenant(tenant)): Prom<Tenant>,
    Prom(params): Prom<Params>,
) -> Result<Json<QueryAnswer>, PromError> {
    let tsdb = tsdb(&state)?;
    let query = params.require("query")?.to_string();
    let time = time_param(&params, "time", model::time::now_ms())?;
    let (result, notes) = blocking(&state, move || tsdb.instant_query_annotated(&tenant, &query, time)).await?;
    success_annotated(result, notes)
}

/// `GET|POST /api/v1/query_range`.
pub(crate) async fn query_range(
    State(state): State<AppState>,
    Prom(Tenant(tenant)): Prom<Tenant>,
    Prom(params): Prom<Params>,
) -> Result<Json<QueryAnswer>, PromError> {
    let tsdb = tsdb(&state)?;
    let query = params.require("query")?.to_string();
    let start = required_time_param(&params, "start")?;
    let end = required_time_param(&params, "end")?;
    if end < start {
        return Err(ApiError::BadRequest(
            "invalid parameter \"end\": end timestamp must not be before start time".into(),
        )
        .into());
    }
    let step = model::time::parse_duration_or_seconds(params.require("step")?)
        .map_err(|e| ApiError::BadRequest(format!("invalid parameter \"step\": {e}")))?;
    let step_ms = step.as_millis() as i64;
    if step_ms <= 0 {
        return Err(ApiError::BadRequest(
            "invalid parameter \"step\": zero or negative query resolution step widths are not accepted. Try a positive integer".into(),
        )
        .into());
    }
    let max_points = state.config().max_points_per_series;
    if (end - start) / step_ms > max_points {
        return Err(ApiError::Limit {
            key: "server.max_points_per_series",
            status: 400,
            retry_after: None,
            message: format!(
                "exceeded maximum resolution of {max_points} points per timeseries. Try decreasing the query resolution (?step=XX) (server.max_points_per_series)"
            ),
        }
        .into());
    }
    let (result, notes) =
        blocking(&state, move || tsdb.range_query_annotated(&tenant, &query, start, end, step_ms)).await?;
    success_annotated(result, notes)
}

/// `GET|POST /api/v1/labels`.
pub(crate) async fn labels(
    State(state): State<AppState>,
    Prom(Tenant(tenant)): Prom<Tenant>,
    Prom(params): Prom<Params>,
) -> PromResult {
    let tsdb = tsdb(&state)?;
    let (matchers, start, end) = metadata_range(&params)?;
    success(blocking(&state, move || tsdb.label_names(&tenant, &matchers, start, end)).await?)
}

/// `GET /api/v1/label/<name>/values`.
pub(crate) async fn label_values(
    State(state): State<AppState>,
    Prom(Tenant(tenant)): Prom<Tenant>,
    Path(name): Path<String>,
    Prom(params): Prom<Params>,
) -> PromResult {
    let tsdb = tsdb(&state)?;
    let (matchers, start, end) = metadata_range(&params)?;
    success(blocking(&state, move || tsdb.label_values(&tenant, &name, &matchers, start, end)).await?)
}

/// `GET|POST /api/v1/series`.
pub(crate) async fn series(
    State(state): State<AppState>,
    Prom(Tenant(tenant)): Prom<Tenant>,
    Prom(params): Prom<Params>,
) -> PromResult {
    let tsdb = tsdb(&state)?;
    if params.get("match[]").is_none() {
        return Err(ApiError::BadRequest("no match[] parameter provided".into()).into());
    }
    let (matchers, start, end) = metadata_range(&params)?;
    let series = blocking(&state, move || tsdb.series(&tenant, &matchers, start, end)).await?;
    let data: Vec<serde_json::Map<String, Value>> = series
        .iter()
        .map(|labels| labels.iter().map(|l| (l.name.clone(), Value::String(l.value.clone()))).collect())
        .collect();
    success(data)
}

/// `GET /api/v1/status/buildinfo`: Grafana reads it to learn what kind of server it talks to.
pub(crate) async fn buildinfo() -> PromResult {
    success(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "revision": option_env!("TARSIER_GIT_REVISION").unwrap_or("unknown"),
        "branch": "",
        "buildUser": "",
        "buildDate": "",
        "goVersion": option_env!("TARSIER_RUSTC_VERSION").unwrap_or("n/a (Rust)"),
        "application": "tarsier",
    }))
}

/// An integer parameter; absent or negative means "no limit" (0), as in Prometheus.
fn limit_param(params: &Params, key: &str) -> Result<usize, ApiError> {
    match params.get(key).filter(|v| !v.is_empty()) {
        None => Ok(0),
        Some(v) => v
            .parse::<i64>()
            .map(|n| n.max(0) as usize)
            .map_err(|_| ApiError::BadRequest(format!("invalid parameter {key:?}: {v:?} is not a number"))),
    }
}

/// `GET /api/v1/metadata`: TYPE/HELP/UNIT per metric name (`limit`, `limit_per_metric`, `metric`).
pub(crate) async fn metadata(
    State(state): State<AppState>,
    Prom(Tenant(tenant)): Prom<Tenant>,
    Prom(params): Prom<Params>,
) -> PromResult {
    let tsdb = tsdb(&state)?;
    let limit = limit_param(&params, "limit")?;
    let per_metric = limit_param(&params, "limit_per_metric")?;
    let metric = params.get("metric").filter(|m| !m.is_empty()).map(str::to_string);
    success(tsdb.metadata(&tenant, metric.as_deref(), limit, per_metric))
}

/// `GET /api/v1/status/tsdb`: the head's cardinality statistics (`limit`, default 10).
pub(crate) async fn status_tsdb(
    State(state): State<AppState>,
    Prom(Tenant(tenant)): Prom<Tenant>,
    Prom(params): Prom<Params>,
) -> PromResult {
    let tsdb = tsdb(&state)?;
    let limit = match params.get("limit").filter(|v| !v.is_empty()) {
        None => 10,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if n > 0 => n,
            _ => return Err(ApiError::BadRequest("limit must be a positive number".into()).into()),
        },
    };
    success(blocking(&state, move || Ok(tsdb.status(&tenant, limit))).await?)
}
