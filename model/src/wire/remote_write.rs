//! Prometheus remote_write 1.0: a snappy-compressed (block format) protobuf `WriteRequest`.
//! The messages are the subset of `prompb/types.proto` and `prompb/remote.proto` that carries
//! float samples and metadata; native histograms and exemplars are skipped on decode (protobuf
//! ignores fields it does not know), which the tsdb does not store yet.

use prost::Message;

use crate::error::{Error, Result};
use crate::labels::{Labels, LabelsBuilder};
use crate::sample::{Sample, TimeSeries};

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
    let request = WriteRequest {
        timeseries: series
            .iter()
            .map(|s| ProtoTimeSeries {
                labels: s.labels.iter().map(|l| ProtoLabel { name: l.name.clone(), value: l.value.clone() }).collect(),
                samples: s.samples.iter().map(|p| ProtoSample { value: p.value, timestamp: p.timestamp_ms }).collect(),
            })
            .collect(),
        metadata: Vec::new(),
    };
    let raw = request.encode_to_vec();
    snap::raw::Encoder::new().compress_vec(&raw).expect("snappy compression of an in-memory buffer cannot fail")
}

/// Decodes a snappy-compressed `WriteRequest` body, refusing to decompress past `max_decoded`
/// bytes (the declared length is checked before any allocation).
pub fn decode(body: &[u8], max_decoded: usize) -> Result<Vec<TimeSeries>> {
    let raw = super::snappy_decompress_bounded(body, max_decoded)?;
    let request = WriteRequest::decode(raw.as_slice())?;
    let mut out = Vec::with_capacity(request.timeseries.len());
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
        let samples = ts.samples.into_iter().map(|s| Sample::new(s.timestamp, s.value)).collect();
        out.push(TimeSeries::new(labels, samples));
    }
    Ok(out)
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
