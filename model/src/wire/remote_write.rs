//! Prometheus remote_write 1.0: a snappy-compressed (block format) protobuf `WriteRequest`.
//! The messages are the subset of `prompb/types.proto` and `prompb/remote.proto` that carries
//! float samples, native histograms (`remote_write_histogram`) and metadata; exemplars are
//! skipped on decode (protobuf ignores fields it does not know).

use prost::Message;

use crate::error::{Error, Result};
use crate::histogram::HistogramSample;
use crate::labels::{Labels, LabelsBuilder};
use crate::sample::{Sample, TimeSeries};
use crate::wire::remote_write_histogram::{self, ProtoHistogram};

/// `prometheus.WriteRequest`.
#[derive(Clone, PartialEq, Message)]
pub struct WriteRequest {
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<ProtoTimeSeries>,
    #[prost(message, repeated, tag = "3")]
    pub metadata: Vec<MetricMetadata>,
}

/// `prometheus.TimeSeries`.
#[derive(Clone, PartialEq, Message)]
pub struct ProtoTimeSeries {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<ProtoLabel>,
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<ProtoSample>,
    #[prost(message, repeated, tag = "4")]
    pub histograms: Vec<ProtoHistogram>,
}

/// `prometheus.Label`.
#[derive(Clone, PartialEq, Message)]
pub struct ProtoLabel {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `prometheus.Sample`.
#[derive(Clone, PartialEq, Message)]
pub struct ProtoSample {
    #[prost(double, tag = "1")]
    pub value: f64,
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

/// `prometheus.MetricMetadata`.
#[derive(Clone, PartialEq, Message)]
pub struct MetricMetadata {
    #[prost(int32, tag = "1")]
    pub r#type: i32,
    #[prost(string, tag = "2")]
    pub metric_family_name: String,
    #[prost(string, tag = "4")]
    pub help: String,
    #[prost(string, tag = "5")]
    pub unit: String,
}

/// The content type remote_write 1.0 senders use.
pub const CONTENT_TYPE: &str = "application/x-protobuf";

/// Encodes series as a snappy-compressed `WriteRequest` body.
pub fn encode(series: &[TimeSeries]) -> Vec<u8> {
    encode_request(series, &[])
}

/// Encodes series and metric families' metadata as a snappy-compressed `WriteRequest` body.
pub fn encode_request(series: &[TimeSeries], metadata: &[Metadata]) -> Vec<u8> {
    let request = WriteRequest {
        timeseries: series
            .iter()
            .map(|s| ProtoTimeSeries {
                labels: s.labels.iter().map(|l| ProtoLabel { name: l.name.clone(), value: l.value.clone() }).collect(),
                samples: s.samples.iter().map(|p| ProtoSample { value: p.value, timestamp: p.timestamp_ms }).collect(),
                histograms: Vec::new(),
            })
            .collect(),
        metadata: metadata
            .iter()
            .map(|m| MetricMetadata {
                r#type: (0..8).find(|&c| metric_type_name(c) == m.kind).unwrap_or(0),
                metric_family_name: m.metric_family_name.clone(),
                help: m.help.clone(),
                unit: m.unit.clone(),
            })
            .collect(),
    };
    to_body(&request)
}

/// Encodes native-histogram series as a snappy-compressed `WriteRequest` body (float histograms
/// with absolute counts).
pub fn encode_histograms(series: &[(Labels, Vec<HistogramSample>)]) -> Vec<u8> {
    let request = WriteRequest {
        timeseries: series
            .iter()
            .map(|(labels, samples)| ProtoTimeSeries {
                labels: labels.iter().map(|l| ProtoLabel { name: l.name.clone(), value: l.value.clone() }).collect(),
                samples: Vec::new(),
                histograms: samples.iter().map(remote_write_histogram::to_proto).collect(),
            })
            .collect(),
        metadata: Vec::new(),
    };
    to_body(&request)
}

/// A `WriteRequest` as a remote_write body: protobuf, snappy-compressed (block format).
pub fn to_body(request: &WriteRequest) -> Vec<u8> {
    let raw = request.encode_to_vec();
    snap::raw::Encoder::new().compress_vec(&raw).expect("snappy compression of an in-memory buffer cannot fail")
}

/// Decodes a snappy-compressed `WriteRequest` body, refusing to decompress past `max_decoded`
/// bytes (the declared length is checked before any allocation).
pub fn decode(body: &[u8], max_decoded: usize) -> Result<Vec<TimeSeries>> {
    decode_request(body, max_decoded).map(|d| d.series)
}

/// A decoded `WriteRequest`: the series and the metric families' metadata senders attach
/// (Prometheus sends TYPE/HELP/UNIT every minute, in requests of their own).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Decoded {
    pub series: Vec<TimeSeries>,
    /// Native-histogram samples by series (a series may have floats and histograms both).
    pub histograms: Vec<(Labels, Vec<HistogramSample>)>,
    pub metadata: Vec<Metadata>,
}

/// One metric family's metadata, with the type as Prometheus's API spells it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Metadata {
    pub metric_family_name: String,
    /// `counter`, `gauge`, `histogram`, `gaugehistogram`, `summary`, `info`, `stateset` or `unknown`.
    pub kind: &'static str,
    pub help: String,
    pub unit: String,
}

/// `prometheus.MetricMetadata.MetricType` as the lowercase name `/api/v1/metadata` answers.
pub fn metric_type_name(code: i32) -> &'static str {
    match code {
        1 => "counter",
        2 => "gauge",
        3 => "histogram",
        4 => "gaugehistogram",
        5 => "summary",
        6 => "info",
        7 => "stateset",
        _ => "unknown",
    }
}

/// Decodes a snappy-compressed `WriteRequest` body with its metadata (see [`decode`]).
pub fn decode_request(body: &[u8], max_decoded: usize) -> Result<Decoded> {
    let raw = super::snappy_decompress_bounded(body, max_decoded)?;
    let request = WriteRequest::decode(raw.as_slice())?;
    let metadata = request
        .metadata
        .into_iter()
        .filter(|m| !m.metric_family_name.is_empty())
        .map(|m| Metadata {
            kind: metric_type_name(m.r#type),
            metric_family_name: m.metric_family_name,
            help: m.help,
            unit: m.unit,
        })
        .collect();
    let mut out = Vec::with_capacity(request.timeseries.len());
    let mut histograms = Vec::new();
    for (i, ts) in request.timeseries.into_iter().enumerate() {
        let mut builder = LabelsBuilder::default();
        for label in ts.labels {
            builder.set(label.name, label.value);
        }
        let labels: Labels = builder.build();
        if labels.metric_name().is_none() {
            return Err(Error::InvalidPayload(format!("timeseries[{i}] has no __name__ label: {labels}")));
        }
        labels.validate().map_err(|e| Error::InvalidPayload(format!("timeseries[{i}]: {e}")))?;
        if !ts.histograms.is_empty() {
            let samples = ts
                .histograms
                .iter()
                .enumerate()
                .map(|(j, h)| {
                    h.to_sample().map_err(|e| {
                        Error::InvalidPayload(format!(
                            "timeseries[{i}] {labels}: histograms[{j}] at {}: {e}",
                            h.timestamp
                        ))
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            histograms.push((labels.clone(), samples));
        }
        // A histogram-only series makes no (empty) float series.
        if !ts.samples.is_empty() || ts.histograms.is_empty() {
            let samples = ts.samples.into_iter().map(|s| Sample::new(s.timestamp, s.value)).collect();
            out.push(TimeSeries::new(labels, samples));
        }
    }
    Ok(Decoded { series: out, histograms, metadata })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let series = vec![TimeSeries::new(
            Labels::from_pairs([("__name__", "up"), ("job", "node")]),
            vec![Sample::new(1000, 1.0), Sample::new(2000, 0.0)],
        )];
        let body = encode(&series);
        assert_eq!(decode(&body, 1 << 20).unwrap(), series);
    }

    #[test]
    fn metadata_is_decoded_with_prometheus_type_names() {
        let request = WriteRequest {
            timeseries: Vec::new(),
            metadata: vec![
                MetricMetadata {
                    r#type: 1,
                    metric_family_name: "http_requests_total".into(),
                    help: "Requests.".into(),
                    unit: String::new(),
                },
                MetricMetadata { r#type: 9, metric_family_name: "odd".into(), help: String::new(), unit: "s".into() },
                MetricMetadata { r#type: 2, metric_family_name: String::new(), help: "x".into(), unit: String::new() },
            ],
        };
        let body = snap::raw::Encoder::new().compress_vec(&request.encode_to_vec()).unwrap();
        let decoded = decode_request(&body, 1 << 20).unwrap();
        assert!(decoded.series.is_empty());
        let got: Vec<(&str, &str, &str)> =
            decoded.metadata.iter().map(|m| (m.metric_family_name.as_str(), m.kind, m.unit.as_str())).collect();
        assert_eq!(got, [("http_requests_total", "counter", ""), ("odd", "unknown", "s")]);
        assert_eq!(decoded.metadata[0].help, "Requests.");
    }

    #[test]
    fn histograms_round_trip_and_bad_ones_name_their_series() {
        let labels = Labels::from_pairs([("__name__", "rpc_seconds"), ("job", "a")]);
        let parse = |t, text| HistogramSample { timestamp_ms: t, h: crate::notation::parse_histogram(text).unwrap() };
        let samples = vec![
            parse(
                1000,
                "{{schema:2 sum:5 count:4 z_bucket:1 z_bucket_w:0.001 buckets:[1 2] n_buckets:[0] counter_reset_hint:gauge}}",
            ),
            parse(2000, "{{schema:-53 sum:1 count:3 custom_values:[0.5 2] buckets:[1 1 1]}}"),
        ];
        let decoded = decode_request(&encode_histograms(&[(labels.clone(), samples.clone())]), 1 << 20).unwrap();
        assert_eq!(decoded.histograms, vec![(labels.clone(), samples.clone())]);
        assert!(decoded.series.is_empty(), "a histogram-only series makes no float series");
        let mut bad = samples;
        bad[1].h.custom_values = vec![2.0, 0.5];
        let err = decode(&encode_histograms(&[(labels, bad)]), 1 << 20).unwrap_err().to_string();
        assert!(err.contains(r#"rpc_seconds{job="a"}: histograms[1] at 2000: custom bucket bounds"#), "{err}");
    }

    #[test]
    fn limits_and_errors_are_reported() {
        let series = vec![TimeSeries::new(Labels::from_pairs([("__name__", "up")]), vec![Sample::new(1, 1.0)])];
        let body = encode(&series);
        let err = decode(&body, 2).unwrap_err().to_string();
        assert!(err.contains("exceeds the limit"), "{err}");
        assert!(decode(b"not snappy at all", 1 << 20).is_err());
        let nameless = encode(&[TimeSeries::new(Labels::from_pairs([("job", "x")]), vec![])]);
        assert!(decode(&nameless, 1 << 20).unwrap_err().to_string().contains("timeseries[0]"));
    }
}
