//! The Elasticsearch sink (`agent.sinks[].kind: elasticsearch`): log records as `_bulk` NDJSON
//! `create` actions, one document per line with `@timestamp`, `message` and the record's labels as
//! top-level fields, into an index named by a strftime pattern over the record's UTC time
//! (`logs-%Y.%m.%d`) or a fixed name.
//!
//! Each document has a deterministic `_id` ([`document_id`]: a hash of the stream's labels, the
//! line's timestamp and text), so a batch sent again (a retry after a timeout whose request was
//! stored after all, lines read again after a restart) creates nothing twice: Elasticsearch answers
//! such an item 409 (`version_conflict_engine_exception`), which counts as delivered.
//!
//! `_bulk` answers 200 even when items failed; each item carries its own status. Items answered
//! 429 or 5xx are sent again (only those, with backoff, inside the same delivery, so accepted
//! documents are never sent twice); other failures (a mapping error, 400) are dropped with an error
//! log naming the index, the error type and reason, and counted in
//! `tarsier_collector_sink_dropped{sink}`. A request failing as a whole before any item was
//! accepted is an ordinary retryable or permanent sink failure, as with Loki push.

use std::sync::Arc;
use std::time::Duration;

use chrono::format::{Item, StrftimeItems};
use futures::future::BoxFuture;
use model::{LogRecord, LogStream, TenantId};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::error::Error;
use crate::scrape::http::AuthSource;
use crate::sink::{LogSink, SinkError, classify, client_for, send};
use crate::tls::TlsConfig;

/// First and longest pause between sends of items an answer marked retryable.
const ITEM_RETRY_INITIAL: Duration = Duration::from_millis(200);
const ITEM_RETRY_MAX: Duration = Duration::from_secs(10);

/// An index name pattern: strftime over the record's UTC time, or a fixed name.
#[derive(Clone, Debug)]
pub struct IndexPattern {
    pattern: String,
    dated: bool,
}

impl IndexPattern {
    /// Checks the strftime directives and Elasticsearch's index name rules (lowercase, none of
    /// `\ / * ? " < > | , #` or spaces, not starting with `-`, `_`, `+`).
    pub fn parse(pattern: &str) -> Result<IndexPattern, String> {
        if pattern.is_empty() {
            return Err("must not be empty".into());
        }
        let mut dated = false;
        for item in StrftimeItems::new(pattern) {
            match item {
                Item::Error => return Err(format!("{pattern:?} has an invalid strftime directive")),
                Item::Numeric(..) | Item::Fixed(..) => dated = true,
                _ => {}
            }
        }
        let sample = IndexPattern { pattern: pattern.to_string(), dated }.render(0);
        if sample.chars().any(|c| c.is_ascii_uppercase() || "\\/*?\"<>|,# ".contains(c))
            || sample.starts_with(['-', '_', '+'])
        {
            return Err(format!(
                "{pattern:?} is not a valid Elasticsearch index name (lowercase, no \\ / * ? \" < > | , # or spaces, not starting with - _ +)"
            ));
        }
        Ok(IndexPattern { pattern: pattern.to_string(), dated })
    }

    /// The index of a record at `timestamp_ns`.
    pub fn render(&self, timestamp_ns: i64) -> String {
        if !self.dated {
            return self.pattern.clone();
        }
        chrono::DateTime::from_timestamp_nanos(timestamp_ns).format(&self.pattern).to_string()
    }
}

/// What one delivery did beyond succeeding: documents dropped, item re-sends, and documents the
/// receiver already had (answered 409 to `create`: an earlier send of them was stored).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BulkOutcome {
    pub dropped: u64,
    pub retries: u64,
    pub already_stored: u64,
}

/// The `_id` of a document: the first 128 bits of SHA-256 over the stream's labels, the line's
/// timestamp and text, and `occurrence` (how many identical lines with the same timestamp come
/// right before it in its stream, so true repeats stay distinct documents), as 32 hex digits. The
/// same line read again after a restart gets the same `_id`, whatever batch it lands in. (Two
/// identical lines of one stream with the same nanosecond timestamp split across two batches would
/// share an `_id`; container runtimes stamp lines to the nanosecond, so this is left open.)
pub fn document_id(labels: &model::Labels, timestamp_ns: i64, line: &str, occurrence: u32) -> String {
    let mut hash = Sha256::new();
    for label in labels.iter() {
        // 0xff never occurs in UTF-8, so the fields cannot run into each other.
        hash.update(label.name.as_bytes());
        hash.update([0xff]);
        hash.update(label.value.as_bytes());
        hash.update([0xff]);
    }
    hash.update(timestamp_ns.to_be_bytes());
    hash.update(line.as_bytes());
    if occurrence > 0 {
        hash.update([0xff]);
        hash.update(occurrence.to_be_bytes());
    }
    hash.finalize()[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// Ships log records to Elasticsearch's `_bulk` API (or anything speaking it: OpenSearch,
/// Tarsier's own `/_bulk`).
#[derive(Clone)]
pub struct EsSink {
    client: reqwest::Client,
    bulk_url: String,
    index: IndexPattern,
    auth: Option<AuthSource>,
    /// Sent as `X-Scope-OrgID` when set (Tarsier's `_bulk` reads it; Elasticsearch ignores it).
    tenant: Option<TenantId>,
    /// The sink's name in log lines.
    name: String,
    backoff: (Duration, Duration),
}

impl EsSink {
    /// `url` is the cluster's root (`http://es:9200`); `_bulk` is appended.
    pub fn new(url: &str, index: IndexPattern, timeout: Duration, tls: &TlsConfig) -> Result<EsSink, Error> {
        let (client, base) = client_for(url, timeout, tls)?;
        Ok(EsSink {
            client,
            bulk_url: format!("{}/_bulk", base.as_str().trim_end_matches('/')),
            index,
            auth: None,
            tenant: None,
            name: "elasticsearch".into(),
            backoff: (ITEM_RETRY_INITIAL, ITEM_RETRY_MAX),
        })
    }

    pub(crate) fn with_auth(mut self, auth: Option<AuthSource>) -> EsSink {
        self.auth = auth;
        self
    }

    /// Names the sink in log lines.
    pub fn with_name(mut self, name: &str) -> EsSink {
        self.name = name.to_string();
        self
    }

    /// Sends `tenant` as `X-Scope-OrgID`.
    pub fn with_tenant(mut self, tenant: Option<TenantId>) -> EsSink {
        self.tenant = tenant;
        self
    }

    /// The pauses between re-sends of retryable items (first, longest).
    pub fn with_item_backoff(mut self, initial: Duration, max: Duration) -> EsSink {
        self.backoff = (initial, max);
        self
    }

    /// Delivers `streams`: `Ok` once every document was accepted or dropped (counted in the
    /// outcome); `Err` when the request failed before any document was accepted.
    pub fn push_bulk(&self, streams: Arc<Vec<LogStream>>) -> BoxFuture<'static, Result<BulkOutcome, SinkError>> {
        let sink = self.clone();
        Box::pin(async move {
            let items = sink.encode(&streams);
            sink.deliver(items).await
        })
    }

    /// One action line and one document line per entry.
    fn encode(&self, streams: &[LogStream]) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::with_capacity(streams.iter().map(|s| s.entries.len()).sum());
        for stream in streams {
            let mut fields = Map::new();
            for label in stream.labels.iter() {
                fields.insert(label.name.clone(), Value::String(label.value.clone()));
            }
            for (i, entry) in stream.entries.iter().enumerate() {
                // A stream's entries are in time order: identical repeats are neighbours.
                let occurrence = stream.entries[..i]
                    .iter()
                    .rev()
                    .take_while(|e| e.timestamp_ns == entry.timestamp_ns)
                    .filter(|e| e.line == entry.line)
                    .count() as u32;
                let id = document_id(&stream.labels, entry.timestamp_ns, &entry.line, occurrence);
                let index = self.index.render(entry.timestamp_ns);
                let mut doc = fields.clone();
                let time = chrono::DateTime::from_timestamp_nanos(entry.timestamp_ns)
                    .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
                doc.insert("@timestamp".into(), Value::String(time));
                doc.insert("message".into(), Value::String(entry.line.clone()));
                let mut bytes = serde_json::to_vec(&serde_json::json!({"create": {"_index": index, "_id": id}}))
                    .expect("a JSON value serialises");
                bytes.push(b'\n');
                serde_json::to_writer(&mut bytes, &doc).expect("a JSON map serialises");
                bytes.push(b'\n');
                out.push((index, bytes));
            }
        }
        out
    }

    async fn deliver(&self, items: Vec<(String, Vec<u8>)>) -> Result<BulkOutcome, SinkError> {
        let mut outcome = BulkOutcome::default();
        let mut pending: Vec<usize> = (0..items.len()).collect();
        let mut accepted_or_dropped = false;
        let mut backoff = self.backoff.0;
        while !pending.is_empty() {
            let body: Vec<u8> = pending.iter().flat_map(|&i| items[i].1.iter().copied()).collect();
            let answer = self.post(body).await.and_then(|answer| {
                statuses(&answer, pending.len())
                    .map_err(|e| SinkError::retryable(format!("POST {}: {e}", self.bulk_url)))
            });
            let statuses = match answer {
                Ok(statuses) => statuses,
                Err(e) if !accepted_or_dropped => return Err(e),
                Err(e) if !e.retryable => {
                    tracing::error!(sink = %self.name, items = pending.len(), error = %e.message, "elasticsearch rejected the rest of a partly accepted batch, dropping it");
                    outcome.dropped += pending.len() as u64;
                    return Ok(outcome);
                }
                // Part of the batch is stored: sending it again whole would duplicate that part,
                // so the rest is retried here.
                Err(e) => {
                    tracing::warn!(sink = %self.name, items = pending.len(), error = %e.message, "elasticsearch request failed, retrying the items not yet accepted");
                    outcome.retries += 1;
                    tokio::time::sleep(crate::ship::jittered(backoff)).await;
                    backoff = (backoff * 2).min(self.backoff.1);
                    continue;
                }
            };
            let mut retry = Vec::new();
            let mut first_drop: Option<(usize, ItemStatus)> = None;
            let mut dropped = 0u64;
            let already_stored = outcome.already_stored;
            for (&i, status) in pending.iter().zip(statuses) {
                match status.status {
                    200..=299 => accepted_or_dropped = true,
                    // `create` of an `_id` that exists: an earlier send of this line was stored.
                    409 => {
                        accepted_or_dropped = true;
                        outcome.already_stored += 1;
                    }
                    429 | 500..=599 => retry.push((i, status)),
                    _ => {
                        dropped += 1;
                        first_drop.get_or_insert((i, status));
                    }
                }
            }
            if outcome.already_stored > already_stored {
                tracing::info!(
                    sink = %self.name, documents = outcome.already_stored - already_stored,
                    "elasticsearch already had documents of this batch (sent before), counted as delivered"
                );
            }
            if let Some((i, status)) = first_drop {
                accepted_or_dropped = true;
                outcome.dropped += dropped;
                tracing::error!(
                    sink = %self.name, dropped, index = %items[i].0, status = status.status,
                    error_type = %status.error_type, reason = %status.reason,
                    "elasticsearch rejected documents, dropping them (first one's error shown)"
                );
            }
            if !accepted_or_dropped {
                let (_, first) = &retry[0];
                return Err(SinkError::retryable(format!(
                    "POST {}: every item answered {} ({}: {})",
                    self.bulk_url, first.status, first.error_type, first.reason
                )));
            }
            if let Some((_, first)) = retry.first() {
                tracing::warn!(sink = %self.name, items = retry.len(), status = first.status, reason = %first.reason, "elasticsearch asked to send items again, retrying them");
                outcome.retries += 1;
                tokio::time::sleep(crate::ship::jittered(backoff)).await;
                backoff = (backoff * 2).min(self.backoff.1);
            }
            pending = retry.into_iter().map(|(i, _)| i).collect();
        }
        Ok(outcome)
    }

    /// Posts one `_bulk` body; the answer's JSON on 2xx.
    async fn post(&self, body: Vec<u8>) -> Result<Value, SinkError> {
        let mut request = self.client.post(&self.bulk_url).header("Content-Type", "application/x-ndjson").body(body);
        if let Some(tenant) = &self.tenant {
            request = request.header("X-Scope-OrgID", tenant.as_str());
        }
        let response = send(request, self.auth.as_ref(), &self.bulk_url).await?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if !status.is_success() {
            return Err(classify(&self.bulk_url, status, text));
        }
        serde_json::from_str(&text)
            .map_err(|e| SinkError::retryable(format!("POST {}: answer is not JSON: {e}", self.bulk_url)))
    }
}

/// One item's result in a `_bulk` answer.
#[derive(Clone, Debug, Default)]
struct ItemStatus {
    status: u16,
    error_type: String,
    reason: String,
}

/// The items' statuses, in order; `expected` of them (an answer with another count is an error).
fn statuses(answer: &Value, expected: usize) -> Result<Vec<ItemStatus>, String> {
    if answer.get("errors") == Some(&Value::Bool(false)) {
        return Ok(vec![ItemStatus { status: 201, ..Default::default() }; expected]);
    }
    let items = answer["items"].as_array().ok_or("answer has no items")?;
    if items.len() != expected {
        return Err(format!("answer has {} items for {expected} documents", items.len()));
    }
    Ok(items
        .iter()
        .map(|item| {
            let result = item.as_object().and_then(|o| o.values().next()).unwrap_or(&Value::Null);
            let text = |v: &Value| v.as_str().map(String::from).unwrap_or_else(|| v.to_string());
            ItemStatus {
                status: result["status"].as_u64().map_or(500, |s| s as u16),
                error_type: text(&result["error"]["type"]),
                reason: text(&result["error"]["reason"]),
            }
        })
        .collect())
}

impl LogSink for EsSink {
    fn push_logs(&self, tenant: TenantId, records: Vec<LogRecord>) -> BoxFuture<'static, Result<(), SinkError>> {
        self.push_streams(tenant, Arc::new(LogStream::group(records)))
    }

    fn push_streams(
        &self,
        _tenant: TenantId,
        streams: Arc<Vec<LogStream>>,
    ) -> BoxFuture<'static, Result<(), SinkError>> {
        let push = self.push_bulk(streams);
        Box::pin(async move { push.await.map(|_| ()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_patterns_render_the_record_day_and_refuse_bad_names() {
        let dated = IndexPattern::parse("logs-%Y.%m.%d").unwrap();
        // 2026-12-07T23:59:59Z
        assert_eq!(dated.render(1_796_687_999_000_000_000), "logs-2026.12.07");
        assert_eq!(IndexPattern::parse("app-logs").unwrap().render(0), "app-logs");
        assert!(IndexPattern::parse("Logs").is_err());
        assert!(IndexPattern::parse("_x").is_err());
        assert!(IndexPattern::parse("a b").is_err());
        assert!(IndexPattern::parse("logs-%Q").is_err());
        assert!(IndexPattern::parse("").is_err());
    }

    #[test]
    fn answers_give_per_item_statuses() {
        let answer = serde_json::json!({"errors": true, "items": [
            {"create": {"status": 201}},
            {"create": {"status": 429, "error": {"type": "es_rejected_execution_exception", "reason": "queue full"}}},
            {"create": {"status": 400, "error": {"type": "mapper_parsing_exception", "reason": "bad"}}},
        ]});
        let s = statuses(&answer, 3).unwrap();
        assert_eq!(s.iter().map(|s| s.status).collect::<Vec<_>>(), vec![201, 429, 400]);
        assert_eq!(s[2].error_type, "mapper_parsing_exception");
        assert!(statuses(&answer, 2).is_err());
        assert_eq!(statuses(&serde_json::json!({"errors": false, "items": []}), 2).unwrap().len(), 2);
    }
}
