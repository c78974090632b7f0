//! Elasticsearch's `_bulk` API, so Filebeat, Fluent Bit's `es` output, Fluentd's elasticsearch
//! plugin and Vector's elasticsearch sink ship into Tarsier unchanged. The body is NDJSON: an
//! action line (`{"index":{"_index":"x"}}` or `{"create":{..}}`) followed by a source document
//! line. Each document becomes a [`LogRecord`]: its time from `@timestamp` (or `timestamp`/`time`),
//! its line from `message` (or `log`, or the whole document), its labels from the index name and
//! a fixed set of well-known shipper fields ([`PROMOTED_FIELDS`]). Parsing is a pure function of
//! the bytes (fuzz-friendly); the response types serialise to Elasticsearch's exact shape.

use serde::Serialize;
use serde::ser::SerializeMap;
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::labels::LabelsBuilder;
use crate::log::LogRecord;

/// The label holding the index name a document was sent to, kept exactly as sent.
pub const INDEX_LABEL: &str = "index";

/// Document fields promoted to labels: the label, then the field paths tried in order (Fluent
/// Bit's kubernetes filter, Filebeat's `add_kubernetes_metadata`, host fields of Filebeat,
/// Fluentd and Vector). A path matches nested objects and literal dotted keys alike.
pub const PROMOTED_FIELDS: &[(&str, &[&str])] = &[
    ("namespace", &["kubernetes.namespace_name", "kubernetes.namespace"]),
    ("pod", &["kubernetes.pod_name", "kubernetes.pod.name"]),
    ("container", &["kubernetes.container_name", "kubernetes.container.name"]),
    ("host", &["host.name", "hostname", "host"]),
    ("stream", &["stream"]),
];

/// A bulk action.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    Index,
    Create,
    Delete,
    Update,
}

impl Action {
    /// The action's name in the body and in the response item.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Index => "index",
            Action::Create => "create",
            Action::Delete => "delete",
            Action::Update => "update",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "index" => Action::Index,
            "create" => Action::Create,
            "delete" => Action::Delete,
            "update" => Action::Update,
            _ => return None,
        })
    }
}

/// Why one item of a batch was refused; the rest of the batch is unaffected.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ItemError {
    /// The HTTP status of the item (400 for everything the client sent wrong).
    #[serde(skip)]
    pub status: u16,
    /// Elasticsearch's exception type, e.g. `mapper_parsing_exception`.
    #[serde(rename = "type")]
    pub error_type: &'static str,
    /// What was wrong and on which line of the body.
    pub reason: String,
}

impl ItemError {
    fn new(error_type: &'static str, reason: String) -> Self {
        Self { status: 400, error_type, reason }
    }
}

/// One action of a batch with its document mapped to a record, or why it was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BulkItem {
    pub action: Action,
    /// `_index` of the action line, else the index of the URL; `None` when neither is given.
    pub index: Option<String>,
    /// `_id` of the action line, when given.
    pub id: Option<String>,
    /// 1-based line number of the action line in the body.
    pub line_number: usize,
    pub record: std::result::Result<LogRecord, ItemError>,
}

/// Parses a `_bulk` body. `default_index` is the `<index>` of `/<index>/_bulk`; `now_ns` is the
/// time given to documents without a timestamp. A malformed action line fails the whole request
/// (the following lines cannot be told apart any more), naming its line; a bad document or an
/// unsupported action fails only its item.
pub fn parse(body: &[u8], default_index: Option<&str>, now_ns: i64) -> Result<Vec<BulkItem>> {
    let mut items = Vec::new();
    let mut lines = body.split(|&b| b == b'\n').enumerate().map(|(i, l)| (i + 1, l.strip_suffix(b"\r").unwrap_or(l)));
    while let Some((line_number, line)) = lines.next() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let (action, meta) = parse_action(line, line_number)?;
        let index = meta.get("_index").and_then(scalar_text).or_else(|| default_index.map(str::to_string));
        let index = index.filter(|i| !i.is_empty());
        let id = meta.get("_id").and_then(scalar_text);
        let source = if action == Action::Delete { None } else { lines.next() };
        let record = match (action, index.as_deref(), source) {
            (Action::Delete | Action::Update, _, _) => Err(ItemError::new(
                "illegal_argument_exception",
                format!(
                    "line {line_number}: the [{}] action is not supported: Tarsier stores logs append-only, use [index] or [create]",
                    action.as_str()
                ),
            )),
            (_, None, _) => Err(ItemError::new(
                "action_request_validation_exception",
                format!("line {line_number}: Validation Failed: 1: index is missing;"),
            )),
            (_, Some(_), None) => Err(ItemError::new(
                "action_request_validation_exception",
                format!("line {line_number}: the [{}] action has no source document line", action.as_str()),
            )),
            (_, Some(index), Some((source_line, source))) => document_to_record(source, index, now_ns)
                .map_err(|reason| ItemError::new("mapper_parsing_exception", format!("line {source_line}: {reason}"))),
        };
        items.push(BulkItem { action, index, id, line_number, record });
    }
    if items.is_empty() {
        return Err(Error::InvalidPayload("Validation Failed: 1: no requests added;".into()));
    }
    Ok(items)
}

fn parse_action(line: &[u8], line_number: usize) -> Result<(Action, Map<String, Value>)> {
    let malformed =
        |what: String| Error::InvalidPayload(format!("Malformed action/metadata line [{line_number}], {what}"));
    let value: Value = serde_json::from_slice(line)
        .map_err(|e| malformed(format!("expected {{\"index\":{{...}}}} but it is not valid JSON ({e})")))?;
    let Value::Object(object) = value else {
        return Err(malformed("expected START_OBJECT".into()));
    };
    if object.len() != 1 {
        return Err(malformed(format!("expected exactly one action but found {}", object.len())));
    }
    let Some((name, meta)) = object.into_iter().next() else {
        return Err(malformed("expected an action".into()));
    };
    let action = Action::from_name(&name)
        .ok_or_else(|| malformed(format!("expected one of [create, delete, index, update] but found [{name}]")))?;
    match meta {
        Value::Object(meta) => Ok((action, meta)),
        _ => Err(malformed(format!("expected an object after [{name}]"))),
    }
}

/// A string as is, a number or boolean as its text; `None` for anything else or an empty string.
fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Maps one source document to a record; the error is the item's reason.
pub fn document_to_record(source: &[u8], index: &str, now_ns: i64) -> std::result::Result<LogRecord, String> {
    let value: Value = serde_json::from_slice(source).map_err(|e| format!("failed to parse source document: {e}"))?;
    let Value::Object(doc) = value else {
        let kind = match value {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Number(_) => "a number",
            Value::String(_) => "a string",
            Value::Array(_) => "an array",
            Value::Object(_) => "an object",
        };
        return Err(format!("failed to parse: the source document must be a JSON object, found {kind}"));
    };
    let timestamp_ns = document_time(&doc)?.unwrap_or(now_ns);
    let line = match ["message", "log"].iter().find_map(|k| lookup(&doc, k).filter(|v| !v.is_null())) {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => Value::Object(doc.clone()).to_string(),
    };
    let line = line.strip_suffix('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)).unwrap_or(&line).to_string();
    let mut labels = LabelsBuilder::default();
    labels.set(INDEX_LABEL, index);
    for (label, paths) in PROMOTED_FIELDS {
        if let Some(value) = paths.iter().find_map(|p| lookup(&doc, p).and_then(scalar_text)) {
            labels.set(*label, value);
        }
    }
    Ok(LogRecord { timestamp_ns, labels: labels.build(), line })
}

/// `@timestamp` must parse when present (as Elasticsearch's date mapping demands); `timestamp` and
/// `time` are used only when they do, since they may be ordinary fields.
fn document_time(doc: &Map<String, Value>) -> std::result::Result<Option<i64>, String> {
    if let Some(v) = lookup(doc, "@timestamp").filter(|v| !v.is_null()) {
        return parse_date(v).map(Some).map_err(|e| format!("failed to parse field [@timestamp] of type [date]: {e}"));
    }
    Ok(["timestamp", "time"].iter().find_map(|k| lookup(doc, k).and_then(|v| parse_date(v).ok())))
}

/// Elasticsearch's default date format, `strict_date_optional_time||epoch_millis`: RFC 3339 (or
/// without offset, as UTC, or a bare date), or milliseconds since the epoch (number or digits).
/// Returns nanoseconds.
pub fn parse_date(value: &Value) -> std::result::Result<i64, String> {
    let from_millis = |ms: f64| {
        let ns = ms * 1e6;
        if ns.is_finite() && ns.abs() < i64::MAX as f64 {
            Ok(ns.round() as i64)
        } else {
            Err(format!("{ms} is out of range"))
        }
    };
    match value {
        Value::Number(n) => match n.as_i64() {
            Some(ms) => ms.checked_mul(1_000_000).ok_or_else(|| format!("{ms} is out of range")),
            None => from_millis(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => {
            let digits = s.strip_prefix('-').unwrap_or(s);
            if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
                let ms: i64 = s.parse().map_err(|_| format!("{s:?} is out of range"))?;
                return ms.checked_mul(1_000_000).ok_or_else(|| format!("{s:?} is out of range"));
            }
            let utc = if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
                t.to_utc()
            } else if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f") {
                t.and_utc()
            } else if let Some(t) =
                chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").ok().and_then(|d| d.and_hms_opt(0, 0, 0))
            {
                t.and_utc()
            } else {
                return Err(format!("{s:?} is neither RFC 3339 nor epoch milliseconds"));
            };
            utc.timestamp_nanos_opt().ok_or_else(|| format!("{s:?} is out of range"))
        }
        other => Err(format!("{other} is neither RFC 3339 nor epoch milliseconds")),
    }
}

/// The value at a dotted `path`, matching nested objects and literal dotted keys alike.
fn lookup<'a>(object: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    if let Some(v) = object.get(path) {
        return Some(v);
    }
    path.match_indices('.').find_map(|(i, _)| match object.get(&path[..i]) {
        Some(Value::Object(inner)) => lookup(inner, &path[i + 1..]),
        _ => None,
    })
}

/// The `_bulk` response: `{"took":..,"errors":..,"items":[..]}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BulkResponse {
    /// Milliseconds the request took.
    pub took: u64,
    /// Whether any item failed.
    pub errors: bool,
    pub items: Vec<ResponseItem>,
}

impl BulkResponse {
    pub fn new(took: u64, items: Vec<ResponseItem>) -> Self {
        let errors = items.iter().any(|i| i.status.error.is_some());
        Self { took, errors, items }
    }
}

/// One item of the response, serialised as `{"<action>":{..}}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponseItem {
    pub action: Action,
    pub status: ItemStatus,
}

impl Serialize for ResponseItem {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry(self.action.as_str(), &self.status)?;
        map.end()
    }
}

/// The body of a response item, in Elasticsearch's field order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ItemStatus {
    #[serde(rename = "_index")]
    pub index: String,
    #[serde(rename = "_id", skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(rename = "_version", skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<&'static str>,
    #[serde(rename = "_shards", skip_serializing_if = "Option::is_none")]
    pub shards: Option<Shards>,
    #[serde(rename = "_seq_no", skip_serializing_if = "Option::is_none")]
    pub seq_no: Option<u64>,
    #[serde(rename = "_primary_term", skip_serializing_if = "Option::is_none")]
    pub primary_term: Option<u64>,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ItemError>,
}

/// `_shards` of a stored item: one copy, written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Shards {
    pub total: u32,
    pub successful: u32,
    pub failed: u32,
}

impl ResponseItem {
    /// A stored document: 201 `created`, version 1.
    pub fn created(action: Action, index: String, id: String, seq_no: u64) -> Self {
        let status = ItemStatus {
            index,
            id: Some(id),
            version: Some(1),
            result: Some("created"),
            shards: Some(Shards { total: 1, successful: 1, failed: 0 }),
            seq_no: Some(seq_no),
            primary_term: Some(1),
            status: 201,
            error: None,
        };
        Self { action, status }
    }

    /// A refused item.
    pub fn failed(action: Action, index: String, id: Option<String>, error: ItemError) -> Self {
        let status = ItemStatus {
            index,
            id,
            version: None,
            result: None,
            shards: None,
            seq_no: None,
            primary_term: None,
            status: error.status,
            error: Some(error),
        };
        Self { action, status }
    }
}

#[cfg(test)]
#[path = "es_bulk_tests.rs"]
mod tests;
