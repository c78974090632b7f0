//! Ingest endpoints: Loki push (protobuf + snappy, or JSON, optionally gzip) into the indexer and
//! Prometheus remote_write into the tsdb. A request is answered 204 only once the store made it
//! durable; a partly bad batch stores the good part and answers 400 naming what was rejected.

use std::io::Read;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use model::wire::{loki_push, remote_write};

use crate::error::{ApiError, TextError};
use crate::params::Tenant;
use crate::state::AppState;

/// How many rejected entries a response lists before summarising.
const MAX_LISTED_REJECTIONS: usize = 10;

/// Reads the body within `server.max_body_bytes` and undoes `Content-Encoding: gzip` within
/// `server.max_decoded_bytes`.
pub(crate) async fn read_body(state: &AppState, headers: &HeaderMap, body: Body) -> Result<Bytes, ApiError> {
    let limit = state.config().max_body_bytes;
    let raw = axum::body::to_bytes(body, limit).await.map_err(|_| {
        ApiError::PayloadTooLarge(format!("request body larger than server.max_body_bytes ({limit} bytes)"))
    })?;
    let encoding = headers.get(header::CONTENT_ENCODING).and_then(|v| v.to_str().ok()).unwrap_or("");
    match encoding {
        "gzip" | "x-gzip" => {
            let max = state.config().max_decoded_bytes;
            let mut out = Vec::new();
            let read = flate2::read::GzDecoder::new(raw.as_ref())
                .take(max as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| ApiError::BadRequest(format!("gzip body could not be decompressed: {e}")))?;
            if read > max {
                return Err(ApiError::PayloadTooLarge(format!(
                    "decompressed body larger than server.max_decoded_bytes ({max} bytes)"
                )));
            }
            Ok(Bytes::from(out))
        }
        // remote_write declares its snappy block compression in Content-Encoding; decoded later.
        "" | "identity" | "snappy" => Ok(raw),
        other => Err(ApiError::UnsupportedMediaType(format!(
            "Content-Encoding {other:?} is not supported (use gzip or none)"
        ))),
    }
}

/// `POST /loki/api/v1/push`.
pub(crate) async fn loki_push(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, TextError> {
    let indexer =
        state.services().indexer.clone().ok_or_else(|| ApiError::Unavailable("no indexer in this role".into()))?;
    let body = read_body(&state, &headers, body).await?;
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let streams = if content_type.starts_with("application/json") {
        loki_push::decode_json(&body)?
    } else {
        loki_push::decode_protobuf(&body, state.config().max_decoded_bytes)?
    };
    let records = model::LogStream::into_records(streams);
    let total = records.len();
    let receipt = tokio::task::spawn_blocking(move || indexer.append(&tenant, records))
        .await
        .map_err(ApiError::from_join)?
        .map_err(ApiError::from)?;
    if receipt.rejected.is_empty() {
        return Ok(StatusCode::NO_CONTENT);
    }
    let mut message = format!("{} of {total} entries rejected ({} stored):", receipt.rejected.len(), receipt.accepted);
    for r in receipt.rejected.iter().take(MAX_LISTED_REJECTIONS) {
        message.push_str(&format!("\n  entry {}: {}", r.index, r.reason));
    }
    if receipt.rejected.len() > MAX_LISTED_REJECTIONS {
        message.push_str(&format!("\n  ... and {} more", receipt.rejected.len() - MAX_LISTED_REJECTIONS));
    }
    Err(ApiError::PartiallyRejected(message).into())
}

/// `POST /api/v1/write` (Prometheus remote_write 1.0).
pub(crate) async fn remote_write(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, TextError> {
    let tsdb = state.services().tsdb.clone().ok_or_else(|| ApiError::Unavailable("no tsdb in this role".into()))?;
    let body = read_body(&state, &headers, body).await?;
    let remote_write::Decoded { series, metadata } =
        remote_write::decode_request(&body, state.config().max_decoded_bytes)?;
    let stats = tokio::task::spawn_blocking(move || {
        for m in metadata {
            let meta = tsdb::status::MetricMetadata { kind: m.kind.to_string(), help: m.help, unit: m.unit };
            tsdb.record_metadata(&tenant, &m.metric_family_name, meta);
        }
        tsdb.append(&tenant, &series)
    })
    .await
    .map_err(ApiError::from_join)?
    .map_err(ApiError::from)?;
    match stats.first_error {
        None => Ok(StatusCode::NO_CONTENT),
        Some(first) => Err(ApiError::PartiallyRejected(format!(
            "{} samples rejected ({} stored); first: {first}",
            stats.samples_rejected, stats.samples_appended
        ))
        .into()),
    }
}
