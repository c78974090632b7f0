//! `GET /loki/api/v1/tail`: Loki's live tail over a websocket, as Grafana's "Live" button and
//! `logcli query --tail` use it. The indexer has no push feed, so each connection polls it: every
//! `server.tail_poll_interval` it asks for the lines after the last one sent (up to `now -
//! delay_for`), so a line is sent once it is searchable. Lines sharing the cursor's timestamp are
//! remembered so a line is never sent twice. Connections are bounded by
//! `server.max_tail_connections`.
//!
//! Browsers cannot set headers on a websocket, and see no status when an upgrade is refused, so
//! for the web UI: the tenant may come as the `tenant` parameter when `X-Scope-OrgID` is absent,
//! and a plain GET (no upgrade) answers what the upgrade would (400 for a bad query, 429 when the
//! connections are all taken) instead of tailing, so the UI can say why its socket was refused.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::response::{IntoResponse, Response};
use model::TenantId;
use serde_json::{Value, json};

use crate::error::{ApiError, TextError};
use crate::params::{Params, Tenant};
use crate::state::AppState;

/// Loki caps `delay_for` at 5 seconds.
const MAX_DELAY_FOR_SECS: u64 = 5;
/// Loki's default `limit` for the first batch of a tail.
const DEFAULT_LIMIT: usize = 100;
const HOUR_NS: i64 = 3_600_000_000_000;

/// What one connection tails.
struct TailRequest {
    query: String,
    /// Exclusive lower bound of what is still to send, before `seen` is applied.
    cursor_ns: i64,
    delay_ns: i64,
    limit: usize,
}

/// `GET /loki/api/v1/tail?query=&start=&limit=&delay_for=[&tenant=]`: upgrades to a websocket that
/// receives `{"streams":[...],"dropped_entries":null}` frames.
pub(crate) async fn tail(
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    headers: axum::http::HeaderMap,
    params: Params,
) -> Result<Response, TextError> {
    let tenant = match params.get("tenant").filter(|t| !t.is_empty()) {
        Some(t) if !headers.contains_key("x-scope-orgid") => TenantId::new(t).map_err(ApiError::from)?,
        _ => tenant,
    };
    let indexer =
        state.services().indexer.clone().ok_or_else(|| ApiError::Unavailable("no indexer in this role".into()))?;
    let query = params.require("query")?.to_string();
    match indexer::logql::parse_expr(&query) {
        Ok(indexer::logql::Expr::Log(_)) => {}
        Ok(_) => return Err(ApiError::BadRequest("tail needs a log query, not a metric query".into()).into()),
        Err(e) => return Err(ApiError::BadRequest(format!("parse error: {e}")).into()),
    }
    let delay_for: u64 = match params.get("delay_for").filter(|v| !v.is_empty()) {
        None => 0,
        Some(v) => v.parse().map_err(|_| ApiError::BadRequest(format!("invalid parameter \"delay_for\": {v:?}")))?,
    };
    if delay_for > MAX_DELAY_FOR_SECS {
        return Err(ApiError::BadRequest(format!(
            "delay_for can't be greater than {MAX_DELAY_FOR_SECS} seconds (got {delay_for})"
        ))
        .into());
    }
    let (max, key) = crate::loki_api::log_limit(&state, &indexer);
    let limit = match params.get("limit").filter(|v| !v.is_empty()) {
        None => DEFAULT_LIMIT.min(max),
        Some(v) => {
            v.parse::<usize>().map_err(|_| ApiError::BadRequest(format!("invalid parameter \"limit\": {v:?}")))?
        }
    };
    if limit == 0 || limit > max {
        let message = format!("limit must be between 1 and {max} ({key}), got {limit}");
        return Err(ApiError::Limit { key, status: 400, retry_after: None, message }.into());
    }
    let start_ns = match params.get("start").filter(|v| !v.is_empty()) {
        None => model::time::now_ns() - HOUR_NS,
        Some(v) => model::time::parse_loki_time(v)
            .map_err(|e| ApiError::BadRequest(format!("invalid parameter \"start\": {e}")))?,
    };
    let Some(permit) = state.tail_slots().try_acquire() else {
        return Err(ApiError::Limit {
            key: "server.max_tail_connections",
            status: 429,
            retry_after: Some(1),
            message: format!(
                "too many live tails: {} are open (server.max_tail_connections)",
                state.config().max_tail_connections
            ),
        }
        .into());
    };
    let ws = match ws {
        Ok(ws) => ws,
        // A plain GET: the request is acceptable and a slot is free (released again here).
        Err(rejection) => return Ok(rejection.into_response()),
    };
    let request = TailRequest { query, cursor_ns: start_ns - 1, delay_ns: delay_for as i64 * 1_000_000_000, limit };
    let poll = state.config().tail_poll_interval;
    let live_tails = state.http_metrics().live_tails.clone();
    Ok(ws.on_upgrade(move |socket| async move {
        let _permit = permit;
        live_tails.inc();
        run(socket, indexer, tenant, request, poll, max).await;
        live_tails.dec();
    }))
}

async fn run(
    mut socket: WebSocket,
    indexer: Arc<indexer::Indexer>,
    tenant: TenantId,
    request: TailRequest,
    poll: Duration,
    catch_up_limit: usize,
) {
    let mut cursor = request.cursor_ns;
    let mut seen = SentLines::default();
    let mut first = true;
    loop {
        let end = model::time::now_ns() - request.delay_ns;
        let mut full = false;
        if end > cursor {
            // The first batch is the newest `limit` lines since `start` (as Loki); later polls take
            // what is new, oldest first, up to the server's limit, and poll again at once while
            // batches come back full, so a busy stream does not fall behind.
            let (direction, limit) = if first {
                (indexer::Direction::Backward, request.limit)
            } else {
                (indexer::Direction::Forward, catch_up_limit)
            };
            let query = indexer::LogQueryRequest {
                query: request.query.clone(),
                start_ns: cursor + 1,
                end_ns: end + 1,
                limit,
                direction,
            };
            let indexer = Arc::clone(&indexer);
            let tenant = tenant.clone();
            let response = match tokio::task::spawn_blocking(move || indexer.query(&tenant, &query)).await {
                Ok(Ok(response)) => response,
                Ok(Err(e)) => {
                    let _ = socket.send(Message::Close(Some(close_frame(&e.to_string())))).await;
                    return;
                }
                Err(_) => return,
            };
            let returned: usize = response.streams.iter().map(|s| s.entries.len()).sum();
            full = !first && returned >= limit;
            let (frame, new_cursor) = frame(&response, cursor, &mut seen);
            if frame.is_none() && full {
                // A whole batch at timestamps already sent: skip past them rather than loop.
                cursor = seen.newest().unwrap_or(cursor);
                seen.clear();
            } else {
                cursor = new_cursor;
            }
            first = false;
            if let Some(frame) = frame
                && socket.send(Message::Text(Utf8Bytes::from(frame.to_string()))).await.is_err()
            {
                return;
            }
        }
        if full {
            continue;
        }
        // Wait for the next poll, answering pings and noticing a close meanwhile.
        match tokio::time::timeout(poll, socket.recv()).await {
            Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(Message::Close(_)))) => return,
            Ok(Some(Ok(_))) | Err(_) => {}
        }
    }
}

fn close_frame(reason: &str) -> axum::extract::ws::CloseFrame {
    // Close reasons are limited to 123 bytes.
    let mut cut = reason.len().min(120);
    while !reason.is_char_boundary(cut) {
        cut -= 1;
    }
    axum::extract::ws::CloseFrame { code: 1011, reason: Utf8Bytes::from(reason[..cut].to_string()) }
}

/// Lines already sent at timestamps after the cursor: timestamp → stream labels → lines. Probed
/// by reference for every entry of every poll, so nothing is cloned unless it is inserted.
#[derive(Default)]
struct SentLines(HashMap<i64, HashMap<String, HashSet<String>>>);

impl SentLines {
    fn contains(&self, timestamp_ns: i64, stream: &str, line: &str) -> bool {
        self.0.get(&timestamp_ns).and_then(|streams| streams.get(stream)).is_some_and(|lines| lines.contains(line))
    }

    fn insert(&mut self, timestamp_ns: i64, stream: &str, line: &str) {
        let streams = self.0.entry(timestamp_ns).or_default();
        if !streams.contains_key(stream) {
            streams.insert(stream.to_string(), HashSet::new());
        }
        if let Some(lines) = streams.get_mut(stream) {
            lines.insert(line.to_string());
        }
    }

    /// Forgets what was sent at or before `cursor`.
    fn keep_after(&mut self, cursor: i64) {
        self.0.retain(|timestamp_ns, _| *timestamp_ns > cursor);
    }

    fn newest(&self) -> Option<i64> {
        self.0.keys().max().copied()
    }

    fn clear(&mut self) {
        self.0.clear();
    }
}

/// The frame for the lines of `response` not sent yet, and the new cursor: the newest timestamp
/// sent, minus one, so lines arriving later at that same timestamp are still picked up (`seen`
/// holds the ones already sent at it).
fn frame(response: &indexer::LogQueryResponse, cursor: i64, seen: &mut SentLines) -> (Option<Value>, i64) {
    let mut newest = cursor;
    let keys: Vec<String> = response.streams.iter().map(|stream| stream.labels.to_string()).collect();
    // (timestamp, index of the stream in `response`, line)
    let mut fresh: Vec<(i64, usize, &str)> = Vec::new();
    for (index, stream) in response.streams.iter().enumerate() {
        for entry in &stream.entries {
            if seen.contains(entry.timestamp_ns, &keys[index], &entry.line) {
                continue;
            }
            newest = newest.max(entry.timestamp_ns);
            fresh.push((entry.timestamp_ns, index, &entry.line));
        }
    }
    if fresh.is_empty() {
        return (None, cursor);
    }
    let new_cursor = newest - 1;
    seen.keep_after(new_cursor);
    for &(ts, index, line) in &fresh {
        if ts > new_cursor {
            seen.insert(ts, &keys[index], line);
        }
    }
    fresh.sort_by(|a, b| (keys[a.1].as_str(), a.0).cmp(&(keys[b.1].as_str(), b.0)));
    let mut streams: Vec<Value> = Vec::new();
    let mut current: Option<(usize, Value, Vec<Value>)> = None;
    for (ts, index, line) in fresh {
        if current.as_ref().is_none_or(|(k, _, _)| keys[*k] != keys[index]) {
            if let Some((_, stream, values)) = current.take() {
                streams.push(json!({"stream": stream, "values": values}));
            }
            let labels = &response.streams[index].labels;
            let stream: serde_json::Map<String, Value> =
                labels.iter().map(|l| (l.name.clone(), Value::String(l.value.clone()))).collect();
            current = Some((index, Value::Object(stream), Vec::new()));
        }
        if let Some((_, _, values)) = current.as_mut() {
            values.push(json!([ts.to_string(), line]));
        }
    }
    if let Some((_, stream, values)) = current {
        streams.push(json!({"stream": stream, "values": values}));
    }
    (Some(json!({"streams": streams, "dropped_entries": null})), new_cursor)
}
