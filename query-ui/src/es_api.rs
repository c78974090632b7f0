//! The slice of Elasticsearch's API that log shippers need to ship into Tarsier unchanged
//! (Filebeat, Fluent Bit's `es` output, Fluentd's elasticsearch plugin, Vector's elasticsearch
//! sink): `_bulk` ingest into the indexer with Elasticsearch's per-item response, and the probes
//! they make at start (`GET /` version info, `_license`, templates and ILM policies, acknowledged
//! and ignored). Errors use Elasticsearch's error shape, which the shippers log.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use model::wire::es_bulk::{self, BulkResponse, ItemError, ResponseItem};
use serde_json::json;

use crate::error::ApiError;
use crate::params::Tenant;
use crate::state::AppState;

/// The Elasticsearch version Tarsier answers as: recent enough for Filebeat 8 and every shipper.
const ES_VERSION: &str = "8.11.0";

/// Sequence numbers of stored items (`_seq_no`) and the source of generated `_id`s.
static SEQ_NO: AtomicU64 = AtomicU64::new(0);

/// A JSON response with the `X-Elastic-Product` header Elastic's own clients check.
fn es_json(status: StatusCode, body: &impl serde::Serialize) -> Response {
    let mut response = (status, axum::Json(body)).into_response();
    response.headers_mut().insert("x-elastic-product", HeaderValue::from_static("Elasticsearch"));
    response
}

/// Elasticsearch's error shape: `{"error":{"root_cause":[..],"type":..,"reason":..},"status":..}`.
pub(crate) struct EsError {
    status: StatusCode,
    error_type: &'static str,
    reason: String,
    limit: Option<&'static str>,
}

impl From<ApiError> for EsError {
    fn from(e: ApiError) -> Self {
        let status = e.status();
        let error_type = match status.as_u16() {
            413 => "content_too_long_exception",
            503 => "unavailable_shards_exception",
            s if s >= 500 => "exception",
            _ => "illegal_argument_exception",
        };
        if e.worth_logging() {
            tracing::error!(error = %e, "elasticsearch bulk request failed");
        }
        Self { status, error_type, reason: e.to_string(), limit: e.limit_key() }
    }
}

impl IntoResponse for EsError {
    fn into_response(self) -> Response {
        let cause = json!({"type": self.error_type, "reason": self.reason});
        let body = json!({
            "error": {"root_cause": [cause], "type": self.error_type, "reason": self.reason},
            "status": self.status.as_u16(),
        });
        let mut response = es_json(self.status, &body);
        if let Some(key) = self.limit {
            response.extensions_mut().insert(crate::error::LimitHit(key));
        }
        response
    }
}

/// `GET /` for a client that does not ask for HTML: Elasticsearch's version information.
pub(crate) fn root_info() -> Response {
    let body = json!({
        "name": "tarsier",
        "cluster_name": "tarsier",
        "cluster_uuid": "tarsier",
        "version": {
            "number": ES_VERSION,
            "build_flavor": "default",
            "lucene_version": "9.8.0",
            "minimum_wire_compatibility_version": "7.17.0",
            "minimum_index_compatibility_version": "7.0.0",
        },
        "tagline": "You Know, for Search",
    });
    es_json(StatusCode::OK, &body)
}

/// Whether `GET /` should serve the web UI: the client accepts HTML (a browser). Shippers send no
/// `Accept` or `application/json`.
pub(crate) fn wants_html(headers: &HeaderMap) -> bool {
    headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("text/html"))
}

/// `GET /_license`: a basic license, which is what Beats check before using ILM.
pub(crate) async fn license() -> Response {
    let body = json!({"license": {"status": "active", "uid": "tarsier", "type": "basic", "issue_date_in_millis": 0,
        "max_nodes": 1000, "issued_to": "tarsier", "issuer": "tarsier", "start_date_in_millis": -1}});
    es_json(StatusCode::OK, &body)
}

/// `PUT` of a template or ILM policy: acknowledged and ignored (Tarsier has no mappings).
pub(crate) async fn acknowledge(Path(_name): Path<String>) -> Response {
    es_json(StatusCode::OK, &json!({"acknowledged": true}))
}

/// `GET`/`HEAD` of a template or ILM policy: none exists, so shippers go on to `PUT` theirs.
pub(crate) async fn not_found(Path(_name): Path<String>) -> Response {
    es_json(StatusCode::NOT_FOUND, &json!({}))
}

/// `POST /_bulk`.
pub(crate) async fn bulk(
    state: State<AppState>,
    tenant: Result<Tenant, ApiError>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    bulk_into(state, tenant, None, headers, body).await.unwrap_or_else(IntoResponse::into_response)
}

/// `POST /<index>/_bulk`: `<index>` is the default for action lines without `_index`.
pub(crate) async fn bulk_index(
    state: State<AppState>,
    tenant: Result<Tenant, ApiError>,
    Path(index): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    bulk_into(state, tenant, Some(index), headers, body).await.unwrap_or_else(IntoResponse::into_response)
}

/// The tenant comes in as a `Result` so a bad `X-Scope-OrgID` is answered in Elasticsearch's error
/// shape like every other client error here (shippers parse it), not as axum's plain-text rejection.
async fn bulk_into(
    State(state): State<AppState>,
    tenant: Result<Tenant, ApiError>,
    default_index: Option<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, EsError> {
    let Tenant(tenant) = tenant?;
    let started = Instant::now();
    let indexer =
        state.services().indexer.clone().ok_or_else(|| ApiError::Unavailable("no indexer in this role".into()))?;
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let media = content_type.split(';').next().unwrap_or("").trim();
    if !media.is_empty() && media != "application/x-ndjson" && media != "application/json" {
        return Ok(es_json(
            StatusCode::NOT_ACCEPTABLE,
            &json!({"error": format!("Content-Type header [{content_type}] is not supported"), "status": 406}),
        ));
    }
    let body = crate::ingest::read_body(&state, &headers, body).await?;
    let per_second = state.config().max_log_bytes_per_second;
    state.limits().take(&tenant, crate::limits::Rate::LogBytes, per_second, body.len() as u64)?;
    let now = model::time::now_ns();
    let items = tokio::task::spawn_blocking(move || store(&indexer, &tenant, &body, default_index.as_deref(), now))
        .await
        .map_err(ApiError::from_join)?;
    state.http_metrics().note_write(crate::metrics::Store::Logs, &items);
    let items = items?;
    let took = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let response = BulkResponse::new(took, items);
    let failed = response.items.iter().filter(|i| i.status.error.is_some()).count();
    tracing::debug!(items = response.items.len(), failed, took_ms = took, "elasticsearch bulk request");
    Ok(es_json(StatusCode::OK, &response))
}

/// Parses the body, appends the good documents in one durable batch and answers every item.
fn store(
    indexer: &indexer::Indexer,
    tenant: &model::TenantId,
    body: &[u8],
    default_index: Option<&str>,
    now: i64,
) -> Result<Vec<ResponseItem>, ApiError> {
    let items = es_bulk::parse(body, default_index, now)?;
    let mut heads = Vec::with_capacity(items.len());
    let mut errors: Vec<Option<ItemError>> = Vec::with_capacity(items.len());
    let mut records = Vec::new();
    let mut record_item = Vec::new();
    for (position, item) in items.into_iter().enumerate() {
        heads.push((item.action, item.index.unwrap_or_default(), item.id, item.line_number));
        match item.record {
            Ok(record) => {
                record_item.push(position);
                records.push(record);
                errors.push(None);
            }
            Err(e) => errors.push(Some(e)),
        }
    }
    if !records.is_empty() {
        for rejected in indexer.append(tenant, records)?.rejected {
            if let Some(&position) = record_item.get(rejected.index) {
                // The document is the line after its action line.
                let line = heads[position].3 + 1;
                errors[position] = Some(ItemError {
                    status: 400,
                    error_type: "illegal_argument_exception",
                    reason: format!("line {line}: {}", rejected.reason),
                });
            }
        }
    }
    Ok(heads
        .into_iter()
        .zip(errors)
        .map(|((action, index, id, _), error)| match error {
            Some(error) => ResponseItem::failed(action, index, id, error),
            None => {
                let seq_no = SEQ_NO.fetch_add(1, Ordering::Relaxed);
                let id = id.unwrap_or_else(|| generated_id(now, seq_no));
                ResponseItem::created(action, index, id, seq_no)
            }
        })
        .collect())
}

/// A unique `_id` for a document sent without one: request time and sequence number.
fn generated_id(now_ns: i64, seq_no: u64) -> String {
    format!("{now_ns:016x}{:06x}", seq_no & 0xff_ffff)
}

impl From<model::Error> for EsError {
    fn from(e: model::Error) -> Self {
        ApiError::from(e).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_shape_is_elasticsearch_s() {
        let response = EsError::from(ApiError::BadRequest("line 3: bad".into())).into_response();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(response.headers()["x-elastic-product"], "Elasticsearch");
    }

    #[test]
    fn generated_ids_differ_by_sequence() {
        assert_ne!(generated_id(1, 1), generated_id(1, 2));
    }
}
