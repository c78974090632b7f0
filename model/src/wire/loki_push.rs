//! Loki's push API (`/loki/api/v1/push`): the protobuf `logproto.PushRequest` (snappy block
//! compressed, what Promtail, Alloy and Tarsier's own collector send) and the JSON form
//! (`{"streams":[{"stream":{..},"values":[["<ns>","line"]]}]}`, what Fluent Bit and curl send).

use prost::Message;
use prost::encoding::{encode_varint, encoded_len_varint};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::labels::Labels;
use crate::log::{LogEntry, LogStream};
use crate::wire::selector_text::{format_label_set, parse_label_set};

/// `logproto.PushRequest`.
#[derive(Clone, PartialEq, Message)]
pub struct PushRequest {
    #[prost(message, repeated, tag = "1")]
    pub streams: Vec<StreamAdapter>,
}

/// `logproto.StreamAdapter`: labels in text form, entries, and an optional hash.
#[derive(Clone, PartialEq, Message)]
pub struct StreamAdapter {
    #[prost(string, tag = "1")]
    pub labels: String,
    #[prost(message, repeated, tag = "2")]
    pub entries: Vec<EntryAdapter>,
    #[prost(uint64, tag = "3")]
    pub hash: u64,
}

/// `logproto.EntryAdapter`.
#[derive(Clone, PartialEq, Message)]
pub struct EntryAdapter {
    #[prost(message, optional, tag = "1")]
    pub timestamp: Option<ProtoTimestamp>,
    #[prost(string, tag = "2")]
    pub line: String,
    #[prost(message, repeated, tag = "3")]
    pub structured_metadata: Vec<LabelPairAdapter>,
}

/// `logproto.LabelPairAdapter` (structured metadata).
#[derive(Clone, PartialEq, Message)]
pub struct LabelPairAdapter {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `google.protobuf.Timestamp`.
#[derive(Clone, PartialEq, Message)]
pub struct ProtoTimestamp {
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

/// Encodes streams as a snappy-compressed protobuf push body.
///
/// This is the collector's shipping path for every line, so the protobuf is written straight from
/// the borrowed streams into one buffer of the exact size (the same bytes prost writes for
/// [`PushRequest`]), instead of cloning every line into prost's owned message first.
pub fn encode_protobuf(streams: &[LogStream]) -> Vec<u8> {
    snap::raw::Encoder::new()
        .compress_vec(&encode_push_request(streams))
        .expect("snappy compression of an in-memory buffer cannot fail")
}

/// Protobuf field keys (field number << 3 | wire type): varint = 0, length-delimited = 2.
const KEY_1_LEN: u8 = 1 << 3 | 2;
const KEY_2_LEN: u8 = 2 << 3 | 2;
const KEY_1_VARINT: u8 = 1 << 3;
const KEY_2_VARINT: u8 = 2 << 3;

/// `google.protobuf.Timestamp` of `ns`: seconds and non-negative nanos.
fn split_timestamp(ns: i64) -> (i64, i32) {
    (ns.div_euclid(1_000_000_000), ns.rem_euclid(1_000_000_000) as i32)
}

fn timestamp_len(seconds: i64, nanos: i32) -> usize {
    // proto3 leaves zero fields out; int64 and int32 are varints of their 64-bit two's complement.
    let field = |v: i64| if v == 0 { 0 } else { 1 + encoded_len_varint(v as u64) };
    field(seconds) + field(i64::from(nanos))
}

/// Length of one `EntryAdapter` body (without its key and length prefix).
fn entry_len(entry: &LogEntry) -> usize {
    let (seconds, nanos) = split_timestamp(entry.timestamp_ns);
    let ts = timestamp_len(seconds, nanos);
    let line =
        if entry.line.is_empty() { 0 } else { 1 + encoded_len_varint(entry.line.len() as u64) + entry.line.len() };
    1 + encoded_len_varint(ts as u64) + ts + line
}

/// Length of one `StreamAdapter` body; `labels` is its label set in text form.
fn stream_len(labels: &str, stream: &LogStream) -> usize {
    let labels = if labels.is_empty() { 0 } else { 1 + encoded_len_varint(labels.len() as u64) + labels.len() };
    labels
        + stream
            .entries
            .iter()
            .map(|e| {
                let n = entry_len(e);
                1 + encoded_len_varint(n as u64) + n
            })
            .sum::<usize>()
}

/// The uncompressed `logproto.PushRequest` of `streams`.
fn encode_push_request(streams: &[LogStream]) -> Vec<u8> {
    let labels: Vec<String> = streams.iter().map(|s| format_label_set(&s.labels)).collect();
    let lens: Vec<usize> = streams.iter().zip(&labels).map(|(s, l)| stream_len(l, s)).collect();
    let total = lens.iter().map(|&n| 1 + encoded_len_varint(n as u64) + n).sum();
    let mut buf = Vec::with_capacity(total);
    for ((stream, labels), len) in streams.iter().zip(&labels).zip(lens) {
        buf.push(KEY_1_LEN);
        encode_varint(len as u64, &mut buf);
        if !labels.is_empty() {
            buf.push(KEY_1_LEN);
            encode_varint(labels.len() as u64, &mut buf);
            buf.extend_from_slice(labels.as_bytes());
        }
        for entry in &stream.entries {
            buf.push(KEY_2_LEN);
            encode_varint(entry_len(entry) as u64, &mut buf);
            let (seconds, nanos) = split_timestamp(entry.timestamp_ns);
            buf.push(KEY_1_LEN);
            encode_varint(timestamp_len(seconds, nanos) as u64, &mut buf);
            if seconds != 0 {
                buf.push(KEY_1_VARINT);
                encode_varint(seconds as u64, &mut buf);
            }
            if nanos != 0 {
                buf.push(KEY_2_VARINT);
                encode_varint(i64::from(nanos) as u64, &mut buf);
            }
            if !entry.line.is_empty() {
                buf.push(KEY_2_LEN);
                encode_varint(entry.line.len() as u64, &mut buf);
                buf.extend_from_slice(entry.line.as_bytes());
            }
        }
    }
    debug_assert_eq!(buf.len(), total);
    buf
}

/// Decodes a snappy-compressed protobuf push body, refusing to decompress past `max_decoded`.
pub fn decode_protobuf(body: &[u8], max_decoded: usize) -> Result<Vec<LogStream>> {
    let raw = super::snappy_decompress_bounded(body, max_decoded)?;
    let request = PushRequest::decode(raw.as_slice())?;
    let mut out = Vec::with_capacity(request.streams.len());
    for (i, stream) in request.streams.into_iter().enumerate() {
        let labels =
            parse_label_set(&stream.labels).map_err(|e| Error::InvalidPayload(format!("streams[{i}]: {e}")))?;
        let entries = stream
            .entries
            .into_iter()
            .enumerate()
            .map(|(j, e)| {
                let ts = match e.timestamp {
                    None => 0,
                    Some(t) => t
                        .seconds
                        .checked_mul(1_000_000_000)
                        .and_then(|s| s.checked_add(i64::from(t.nanos)))
                        .ok_or_else(|| {
                            Error::InvalidPayload(format!(
                                "streams[{i}].entries[{j}]: timestamp {}s {}ns is out of range",
                                t.seconds, t.nanos
                            ))
                        })?,
                };
                Ok(LogEntry { timestamp_ns: ts, line: e.line })
            })
            .collect::<Result<Vec<_>>>()?;
        out.push(LogStream { labels, entries });
    }
    Ok(out)
}

#[derive(Serialize, Deserialize)]
struct JsonPush {
    streams: Vec<JsonStream>,
}

#[derive(Serialize, Deserialize)]
struct JsonStream {
    stream: std::collections::BTreeMap<String, String>,
    values: Vec<Vec<serde_json::Value>>,
}

/// Decodes the JSON push form. Timestamps are strings of nanoseconds; a third element of a value
/// (structured metadata) is accepted and ignored for now.
pub fn decode_json(body: &[u8]) -> Result<Vec<LogStream>> {
    let push: JsonPush = serde_json::from_slice(body)?;
    let mut out = Vec::with_capacity(push.streams.len());
    for (i, stream) in push.streams.into_iter().enumerate() {
        let labels = Labels::from_pairs(stream.stream);
        labels.validate().map_err(|e| Error::InvalidPayload(format!("streams[{i}].stream: {e}")))?;
        let mut entries = Vec::with_capacity(stream.values.len());
        for (j, value) in stream.values.into_iter().enumerate() {
            let at = || format!("streams[{i}].values[{j}]");
            let (ts, line) = match value.as_slice() {
                [ts, line] | [ts, line, _] => (ts, line),
                _ => return Err(Error::InvalidPayload(format!("{}: expected [\"<unix ns>\", \"<line>\"]", at()))),
            };
            let ts = match ts {
                serde_json::Value::String(s) => s.parse::<i64>().ok(),
                serde_json::Value::Number(n) => n.as_i64(),
                _ => None,
            }
            .ok_or_else(|| {
                Error::InvalidPayload(format!("{}: timestamp must be a string of Unix nanoseconds", at()))
            })?;
            let line =
                line.as_str().ok_or_else(|| Error::InvalidPayload(format!("{}: line must be a string", at())))?;
            entries.push(LogEntry { timestamp_ns: ts, line: line.to_string() });
        }
        out.push(LogStream { labels, entries });
    }
    Ok(out)
}

/// Encodes streams in the JSON push form.
pub fn encode_json(streams: &[LogStream]) -> Vec<u8> {
    let push = JsonPush {
        streams: streams
            .iter()
            .map(|s| JsonStream {
                stream: s.labels.iter().map(|l| (l.name.clone(), l.value.clone())).collect(),
                values: s
                    .entries
                    .iter()
                    .map(|e| {
                        vec![
                            serde_json::Value::String(e.timestamp_ns.to_string()),
                            serde_json::Value::String(e.line.clone()),
                        ]
                    })
                    .collect(),
            })
            .collect(),
    };
    serde_json::to_vec(&push).expect("serializing owned strings cannot fail")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<LogStream> {
        vec![LogStream {
            labels: Labels::from_pairs([("job", "varlogs"), ("filename", "/var/log/syslog")]),
            entries: vec![
                LogEntry { timestamp_ns: 1_700_000_000_123_456_789, line: "hello \"world\"".into() },
                LogEntry { timestamp_ns: 1_700_000_001_000_000_000, line: "second".into() },
            ],
        }]
    }

    /// The hand-written encoder writes exactly what prost writes for the owned message.
    #[test]
    fn direct_encoding_equals_prost_encoding() {
        let mut streams = sample();
        streams[0].entries.push(LogEntry { timestamp_ns: 0, line: String::new() });
        streams[0].entries.push(LogEntry { timestamp_ns: -1_500_000_000, line: "before 1970".into() });
        streams[0].entries.push(LogEntry { timestamp_ns: 3_000_000_000, line: "x".repeat(300) });
        streams.push(LogStream { labels: Labels::from_pairs([("a", "b")]), entries: Vec::new() });
        let request = PushRequest {
            streams: streams
                .iter()
                .map(|s| StreamAdapter {
                    labels: format_label_set(&s.labels),
                    entries: s
                        .entries
                        .iter()
                        .map(|e| {
                            let (seconds, nanos) = split_timestamp(e.timestamp_ns);
                            EntryAdapter {
                                timestamp: Some(ProtoTimestamp { seconds, nanos }),
                                line: e.line.clone(),
                                structured_metadata: Vec::new(),
                            }
                        })
                        .collect(),
                    hash: 0,
                })
                .collect(),
        };
        assert_eq!(encode_push_request(&streams), request.encode_to_vec());
        assert_eq!(decode_protobuf(&encode_protobuf(&streams), 1 << 20).unwrap(), streams);
    }

    #[test]
    fn protobuf_round_trip() {
        assert_eq!(decode_protobuf(&encode_protobuf(&sample()), 1 << 20).unwrap(), sample());
    }

    #[test]
    fn json_round_trip_and_grafana_shape() {
        assert_eq!(decode_json(&encode_json(&sample())).unwrap(), sample());
        let body = br#"{"streams":[{"stream":{"app":"x"},"values":[["1700000000000000000","a"],["1700000000000000001","b",{"trace_id":"1"}]]}]}"#;
        let streams = decode_json(body).unwrap();
        assert_eq!(streams[0].entries.len(), 2);
    }

    /// Found by the `loki_push` fuzz target: seconds past ~292 years overflowed the conversion
    /// to nanoseconds (a panic in debug builds, a wrapped timestamp in release).
    #[test]
    fn protobuf_rejects_timestamp_overflowing_nanoseconds_instead_of_panicking() {
        let entry = |seconds| EntryAdapter {
            timestamp: Some(ProtoTimestamp { seconds, nanos: 5 }),
            line: "x".into(),
            structured_metadata: Vec::new(),
        };
        let request = PushRequest {
            streams: vec![StreamAdapter {
                labels: r#"{app="api"}"#.into(),
                entries: vec![entry(1_700_000_000), entry(i64::MAX / 100)],
                hash: 0,
            }],
        };
        let body = snap::raw::Encoder::new().compress_vec(&request.encode_to_vec()).unwrap();
        let err = decode_protobuf(&body, 1 << 20).unwrap_err().to_string();
        assert!(err.contains("streams[0].entries[1]") && err.contains("out of range"), "{err}");
    }

    #[test]
    fn json_errors_name_the_entry() {
        let body = br#"{"streams":[{"stream":{"app":"x"},"values":[["1","a"],["soon","b"]]}]}"#;
        let err = decode_json(body).unwrap_err().to_string();
        assert!(err.contains("streams[0].values[1]"), "{err}");
    }
}
