//! Ingest endpoints: Loki push (protobuf + snappy, or JSON, optionally gzip) into the indexer and
//! Prometheus remote_write into the tsdb. A request is answered 204 only once the store made it
//! durable; a partly bad batch stores the good part and answers 400 naming what was rejected.

use std::io::Read;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use model::wire::{loki_push, remote_write};

use crate::error::{ApiError, TextError};
use crate::limits::Rate;
use crate::metrics::Store;
use crate::params::Tenant;
use crate::state::AppState;

/// How many rejected entries a response lists before summarising.
const MAX_LISTED_REJECTIONS: usize = 10;

/// Reads the body within `server.max_body_bytes` and undoes `Content-Encoding: gzip` within
/// `server.max_decoded_bytes`.
pub(crate) async fn read_body(state: &AppState, headers: &HeaderMap, body: Body) -> Result<Bytes, ApiError> {
    let limit = state.config().max_body_bytes;
    let raw = axum::body::to_bytes(body, limit).await.map_err(|_| ApiError::Limit {
        key: "server.max_body_bytes",
        status: 413,
        retry_after: None,
        message: format!("request body larger than server.max_body_bytes ({limit} bytes)"),
    })?;
    let encoding = headers.get(header::CONTENT_ENCODING).and_then(|v| v.to_str().ok()).unwrap_or("");
    match encoding {
        "gzip" | "x-gzip" => {
            let max = state.config().max_decoded_bytes;
            off_the_workers(move || {
                let mut out = Vec::new();
                let read = flate2::read::GzDecoder::new(raw.as_ref())
                    .take(max as u64 + 1)
                    .read_to_end(&mut out)
                    .map_err(|e| ApiError::BadRequest(format!("gzip body could not be decompressed: {e}")))?;
                if read > max {
                    return Err(ApiError::Limit {
                        key: "server.max_decoded_bytes",
                        status: 413,
                        retry_after: None,
                        message: format!("decompressed body larger than server.max_decoded_bytes ({max} bytes)"),
                    });
                }
                Ok(Bytes::from(out))
            })
            .await
        }
        // remote_write declares its snappy block compression in Content-Encoding; decoded later.
        "" | "identity" | "snappy" => Ok(raw),
        other => Err(ApiError::UnsupportedMediaType(format!(
            "Content-Encoding {other:?} is not supported (use gzip or none)"
        ))),
    }
}

/// Runs a request body's decoding (and, for a push, its rate limit and append: one hop, not two)
/// on the blocking pool: snappy, protobuf and JSON of a large push take milliseconds of CPU, and
/// the runtime's few workers (`runtime.worker_threads`) must stay free for the sockets.
async fn off_the_workers<T: Send + 'static>(
    decode: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(decode).await.map_err(ApiError::from_join)?
}

/// Splits off the series (or streams) with more than `server.max_labels_per_series` labels: the
/// rest is stored, and the error to answer with afterwards names the first refused one.
fn limit_labels<T>(max: usize, items: Vec<T>, labels: impl Fn(&T) -> &model::Labels) -> (Vec<T>, Option<ApiError>) {
    if items.iter().all(|i| labels(i).len() <= max) {
        return (items, None);
    }
    let total = items.len();
    let (kept, refused): (Vec<T>, Vec<T>) = items.into_iter().partition(|i| labels(i).len() <= max);
    let first = labels(&refused[0]);
    let message = format!(
        "{} of {total} series refused (the rest stored): {first} has {} labels, more than server.max_labels_per_series ({max})",
        refused.len(),
        first.len()
    );
    (kept, Some(ApiError::Limit { key: "server.max_labels_per_series", status: 400, retry_after: None, message }))
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
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|content_type| content_type.starts_with("application/json"));
    let (max_decoded, max_labels) = (state.config().max_decoded_bytes, state.config().max_labels_per_series);
    let limiter = state.clone();
    // One hop to the blocking pool for decoding, the rate limit and the append.
    let (receipt, total, too_many_labels) = off_the_workers(move || {
        let streams =
            if json { loki_push::decode_json(&body)? } else { loki_push::decode_protobuf(&body, max_decoded)? };
        let (streams, too_many_labels) = limit_labels(max_labels, streams, |s| &s.labels);
        let bytes: usize = streams.iter().flat_map(|s| &s.entries).map(|e| e.line.len()).sum();
        let max_rate = limiter.config().max_log_bytes_per_second;
        limiter.limits().take(&tenant, Rate::LogBytes, max_rate, bytes as u64)?;
        let records = model::LogStream::into_records(streams);
        let total = records.len();
        Ok((indexer.append(&tenant, records), total, too_many_labels))
    })
    .await?;
    let receipt = receipt.map_err(ApiError::from);
    state.http_metrics().note_write(Store::Logs, &receipt);
    let receipt = receipt?;
    if let Some(error) = too_many_labels {
        return Err(error.into());
    }
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
    let (max_decoded, max_labels) = (state.config().max_decoded_bytes, state.config().max_labels_per_series);
    let limiter = state.clone();
    // One hop to the blocking pool for decoding, the rate limit and the append.
    let (stats, too_many_labels) = off_the_workers(move || {
        let remote_write::Decoded { series, histograms, metadata } = remote_write::decode_request(&body, max_decoded)?;
        let (series, too_many_labels) = limit_labels(max_labels, series, |s| &s.labels);
        let (histograms, too_many_histogram_labels) = limit_labels(max_labels, histograms, |(labels, _)| labels);
        let too_many_labels = too_many_labels.or(too_many_histogram_labels);
        let samples: usize = series.iter().map(|s| s.samples.len()).sum::<usize>()
            + histograms.iter().map(|(_, h)| h.len()).sum::<usize>();
        let max_rate = limiter.config().max_samples_per_second;
        limiter.limits().take(&tenant, Rate::Samples, max_rate, samples as u64)?;
        let store = || {
            for m in metadata {
                let meta = tsdb::status::MetricMetadata { kind: m.kind.to_string(), help: m.help, unit: m.unit };
                tsdb.record_metadata(&tenant, &m.metric_family_name, meta);
            }
            let mut stats = tsdb.append(&tenant, &series)?;
            if !histograms.is_empty() {
                // Refused histogram samples are answered like refused float ones (400 naming the
                // first), the accepted part of both kept.
                let h = tsdb.append_histograms(&tenant, &histograms)?;
                stats.samples_appended += h.samples_appended;
                stats.samples_rejected += h.samples_rejected;
                stats.first_error = stats.first_error.or(h.first_error);
            }
            Ok::<_, tsdb::Error>(stats)
        };
        Ok((store().map_err(ApiError::from), too_many_labels))
    })
    .await?;
    state.http_metrics().note_write(Store::Metrics, &stats);
    let stats = stats?;
    if let Some(error) = too_many_labels {
        return Err(error.into());
    }
    match stats.first_error {
        None => Ok(StatusCode::NO_CONTENT),
        Some(first) => Err(ApiError::PartiallyRejected(format!(
            "{} samples rejected ({} stored); first: {first}",
            stats.samples_rejected, stats.samples_appended
        ))
        .into()),
    }
}
