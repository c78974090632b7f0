//! The Loki query API (`/loki/api/v1/*`), with Loki's parameter defaults and response shapes, so
//! Grafana's Loki data source works unchanged. `query_range` answers log queries with `streams`
//! and metric queries with a `matrix`; `query` answers metric queries with a `vector`.

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

/// The largest log query limit this server answers and the key that sets it: the smaller of
/// `server.max_log_query_limit` (the API's ceiling) and `indexer.max_query_lines` (the store's),
/// so an error names the key a user has to raise.
pub(crate) fn log_limit(state: &AppState, indexer: &indexer::Indexer) -> (usize, &'static str) {
    let api = state.config().max_log_query_limit;
    let store = indexer.max_query_lines();
    if store < api { (store, "indexer.max_query_lines") } else { (api, "server.max_log_query_limit") }
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

/// Runs the index's work under a query slot and `server.log_query_timeout`; the work stops when
/// its [`indexer::Cancel`] is set (the timeout passed or the client went away).
async fn blocking<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&indexer::Cancel) -> Result<T, indexer::Error> + Send + 'static,
) -> Result<T, ApiError> {
    let timeout = (state.config().log_query_timeout, "server.log_query_timeout");
    crate::limits::run_query(state, Some(timeout), f).await
}

fn success(data: impl serde::Serialize) -> LokiResult {
    Ok(Json(json!({"status": "success", "data": data})))
}

/// `GET|POST /loki/api/v1/query_range`: log lines matching a LogQL query, newest first by default.
pub(crate) async fn query_range(State(state): State<AppState>, Tenant(tenant): Tenant, params: Params) -> LokiResult {
    let indexer = indexer(&state)?;
    let query = params.require("query")?.to_string();
    let (start_ns, end_ns) = range(&params, HOUR_NS)?;
    let (max, key) = log_limit(&state, &indexer);
    let limit = match params.get("limit") {
        None | Some("") => 100,
        Some(v) => v
            .parse::<usize>()
            .map_err(|_| ApiError::BadRequest(format!("invalid parameter \"limit\": {v:?} is not a number")))?,
    };
    if limit > max {
        let message = format!(
            "max entries limit per query exceeded, limit > max_entries_limit ({limit} > {max}); page with start/end instead ({key})"
        );
        return Err(ApiError::Limit { key, status: 400, retry_after: None, message }.into());
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
    if is_metric_query(&query) {
        let step_ns = step_param(&params, start_ns, end_ns)?;
        let request = indexer::MetricQueryRequest { query, start_ns, end_ns, step_ns, instant: false };
        return success(blocking(&state, move |cancel| indexer.metric_query_until(&tenant, &request, cancel)).await?);
    }
    let request = indexer::LogQueryRequest { query, start_ns, end_ns, limit, direction };
    success(blocking(&state, move |cancel| indexer.query_until(&tenant, &request, cancel)).await?)
}

/// Whether `query` parses as a metric query; one that does not parse goes down the log path,
/// which reports the parse error with its position.
fn is_metric_query(query: &str) -> bool {
    matches!(indexer::logql::parse_expr(query), Ok(indexer::logql::Expr::Metric(_)))
}

/// `step`: a duration (`30s`) or float seconds; by default Loki's `(end - start) / 250`, rounded
/// up to whole seconds and at least 1 s.
fn step_param(params: &Params, start_ns: i64, end_ns: i64) -> Result<i64, ApiError> {
    match params.get("step").filter(|v| !v.is_empty()) {
        Some(v) => {
            let step = model::time::parse_duration_or_seconds(v)
                .map_err(|e| ApiError::BadRequest(format!("invalid parameter \"step\": {e}")))?;
            let step_ns = i64::try_from(step.as_nanos()).unwrap_or(i64::MAX);
            if step_ns <= 0 {
                return Err(ApiError::BadRequest(
                    "zero or negative query resolution step widths are not accepted. Try a positive integer".into(),
                ));
            }
            Ok(step_ns)
        }
        None => Ok(default_step_ns(start_ns, end_ns)),
    }
}

/// Loki's `defaultQueryRangeStep`: `max(ceil((end - start) / 250 / 1s), 1)` seconds.
fn default_step_ns(start_ns: i64, end_ns: i64) -> i64 {
    const SEC: i64 = 1_000_000_000;
    let span = (end_ns - start_ns).max(0);
    let secs = span / 250 / SEC + i64::from(span % (250 * SEC) != 0);
    secs.max(1) * SEC
}

/// `GET|POST /loki/api/v1/query`: a metric query evaluated at `time` (default now), answered as
/// a `vector`; log queries must use `query_range`, and Loki says so.
pub(crate) async fn query(State(state): State<AppState>, Tenant(tenant): Tenant, params: Params) -> LokiResult {
    let indexer = indexer(&state)?;
    let query = params.require("query")?.to_string();
    let time = time_param(&params, "time", model::time::now_ns())?;
    if !is_metric_query(&query) {
        // A query that does not parse gets its parse error; a log query gets Loki's message.
        if let Err(e) = indexer::logql::parse_expr(&query) {
            return Err(ApiError::from(e).into());
        }
        return Err(ApiError::BadRequest(
            "log queries are not supported as an instant query type, please change your query to a range query type"
                .into(),
        )
        .into());
    }
    let request = indexer::MetricQueryRequest { query, start_ns: time, end_ns: time, step_ns: 0, instant: true };
    success(blocking(&state, move |cancel| indexer.metric_query_until(&tenant, &request, cancel)).await?)
}

/// `GET|POST /loki/api/v1/labels` (and the older `/label`).
pub(crate) async fn labels(State(state): State<AppState>, Tenant(tenant): Tenant, params: Params) -> LokiResult {
    let indexer = indexer(&state)?;
    let (start, end) = range(&params, 6 * HOUR_NS)?;
    success(blocking(&state, move |c| indexer.label_names_until(&tenant, start, end, c)).await?)
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
    success(
        blocking(&state, move |c| indexer.label_values_until(&tenant, &name, start, end, query.as_deref(), c)).await?,
    )
}

/// `GET|POST /loki/api/v1/series`: the label sets of streams matching `match[]` selectors.
pub(crate) async fn series(State(state): State<AppState>, Tenant(tenant): Tenant, params: Params) -> LokiResult {
    let indexer = indexer(&state)?;
    let selectors = params.get_all("match[]");
    if selectors.is_empty() {
        return Err(ApiError::BadRequest("no match[] parameter provided".into()).into());
    }
    let (start, end) = range(&params, 6 * HOUR_NS)?;
    let series = blocking(&state, move |c| indexer.series_until(&tenant, &selectors, start, end, c)).await?;
    let data: Vec<serde_json::Map<String, Value>> = series
        .iter()
        .map(|labels| labels.iter().map(|l| (l.name.clone(), Value::String(l.value.clone()))).collect())
        .collect();
    success(data)
}

/// The `sum by (<labels>) (bytes_over_time(<selector> [<range>]))` a volume request stands for:
/// grouped by `targetLabels` or else by the selector's label names, as Loki groups volumes.
fn volume_query(params: &Params, range_ns: i64) -> Result<String, ApiError> {
    let selector = params.require("query")?;
    let matchers = indexer::logql::parse_selector(selector).map_err(ApiError::from)?;
    match params.get("aggregateBy").filter(|v| !v.is_empty()) {
        None | Some("series") => {}
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "invalid parameter \"aggregateBy\": {other:?} (only \"series\" is supported)"
            )));
        }
    }
    let mut labels: Vec<String> = match params.get("targetLabels").filter(|v| !v.is_empty()) {
        Some(list) => list.split(',').map(|l| l.trim().to_string()).filter(|l| !l.is_empty()).collect(),
        None => matchers.iter().map(|m| m.name.clone()).collect(),
    };
    labels.sort();
    labels.dedup();
    if let Some(bad) = labels.iter().find(|l| !model::labels::is_valid_label_name(l)) {
        return Err(ApiError::BadRequest(format!("invalid parameter \"targetLabels\": {bad:?} is not a label name")));
    }
    let range_ms = (range_ns / 1_000_000).max(1);
    Ok(format!("sum by ({}) (bytes_over_time({selector} [{range_ms}ms]))", labels.join(", ")))
}

/// `GET|POST /loki/api/v1/index/volume_range`: bytes per `step` bucket of the streams matching a
/// selector, grouped by `targetLabels` (default: the selector's label names), as a `matrix`.
/// Each point covers `(t - step, t]`, so the buckets tile the range.
pub(crate) async fn volume_range(State(state): State<AppState>, Tenant(tenant): Tenant, params: Params) -> LokiResult {
    let indexer = indexer(&state)?;
    let (start_ns, end_ns) = range(&params, HOUR_NS)?;
    let step_ns = step_param(&params, start_ns, end_ns)?;
    let query = volume_query(&params, step_ns)?;
    let request = indexer::MetricQueryRequest { query, start_ns, end_ns, step_ns, instant: false };
    success(blocking(&state, move |cancel| indexer.metric_query_until(&tenant, &request, cancel)).await?)
}

/// `GET|POST /loki/api/v1/index/volume`: bytes over `[start, end]` of the streams matching a
/// selector, grouped as in [`volume_range`], as a `vector` at `end`.
pub(crate) async fn volume(State(state): State<AppState>, Tenant(tenant): Tenant, params: Params) -> LokiResult {
    let indexer = indexer(&state)?;
    let (start_ns, end_ns) = range(&params, HOUR_NS)?;
    let query = volume_query(&params, (end_ns - start_ns).max(1))?;
    let request = indexer::MetricQueryRequest { query, start_ns: end_ns, end_ns, step_ns: 0, instant: true };
    success(blocking(&state, move |cancel| indexer.metric_query_until(&tenant, &request, cancel)).await?)
}

/// `GET /api/v1/logs/context?stream={job="app"}&time=<ts>&before=N&after=N`: Tarsier's own
/// endpoint (Loki has none) for the lines around one line of a stream. `stream` is the exact label
/// set, `time` the line's timestamp in any Loki time format; `before`/`after` default to 10.
/// Answers `{"stream": {...}, "before": [[ns, line]...], "at": [...], "after": [...]}`, oldest
/// first in each list.
pub(crate) async fn context(State(state): State<AppState>, Tenant(tenant): Tenant, params: Params) -> LokiResult {
    let indexer = indexer(&state)?;
    let stream_text = params.require("stream")?;
    let stream = model::wire::selector_text::parse_label_set(stream_text)
        .map_err(|e| ApiError::BadRequest(format!("invalid parameter \"stream\": {e}")))?;
    let timestamp_ns = model::time::parse_loki_time(params.require("time")?)
        .map_err(|e| ApiError::BadRequest(format!("invalid parameter \"time\": {e}")))?;
    let (max, limit_key) = log_limit(&state, &indexer);
    let count = |key: &str| -> Result<usize, ApiError> {
        let n = match params.get(key).filter(|v| !v.is_empty()) {
            None => 10,
            Some(v) => v
                .parse::<usize>()
                .map_err(|_| ApiError::BadRequest(format!("invalid parameter {key:?}: {v:?} is not a number")))?,
        };
        if n > max {
            return Err(ApiError::BadRequest(format!("{key} {n} is above the limit of {max} lines ({limit_key})")));
        }
        Ok(n)
    };
    let req = indexer::ContextRequest { stream, timestamp_ns, before: count("before")?, after: count("after")? };
    let resp = blocking(&state, move |_| indexer.context(&tenant, &req)).await?;
    let entries = |v: &[model::LogEntry]| -> Vec<Value> {
        v.iter().map(|e| json!([e.timestamp_ns.to_string(), e.line])).collect()
    };
    let stream: serde_json::Map<String, Value> =
        resp.stream.iter().map(|l| (l.name.clone(), Value::from(l.value.clone()))).collect();
    success(json!({
        "stream": stream,
        "before": entries(&resp.before),
        "at": entries(&resp.at),
        "after": entries(&resp.after),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_step_is_a_250th_of_the_range_rounded_up_to_seconds() {
        const SEC: i64 = 1_000_000_000;
        assert_eq!(default_step_ns(0, 3600 * SEC), 15 * SEC);
        assert_eq!(default_step_ns(0, 3601 * SEC), 15 * SEC);
        assert_eq!(default_step_ns(0, 3751 * SEC), 16 * SEC);
        assert_eq!(default_step_ns(0, 10 * SEC), SEC);
        assert_eq!(default_step_ns(5, 5), SEC);
    }
}
