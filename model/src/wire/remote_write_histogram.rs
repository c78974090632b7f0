//! The native histograms of remote_write 1.0 (`prometheus.Histogram` in `TimeSeries.histograms`):
//! the protobuf message, and its conversion to a [`FloatHistogram`] with the checks Prometheus's
//! `Histogram.Validate` / `FloatHistogram.Validate` make, so a bad histogram is refused with a
//! message naming the series instead of being stored.
//!
//! Integer histograms carry bucket counts as deltas (each bucket's count minus the previous one),
//! float histograms as absolute counts; both become absolute float counts here. The `count` and
//! `zero_count` oneofs are two optional fields each, which is the same wire format.

use prost::Message;

use crate::histogram::{CUSTOM_BUCKETS_SCHEMA, CounterResetHint, FloatHistogram, HistogramSample, Span};

/// `prometheus.Histogram`.
#[derive(Clone, PartialEq, Message)]
pub struct ProtoHistogram {
    /// The `count` oneof: set for integer histograms.
    #[prost(uint64, optional, tag = "1")]
    pub count_int: Option<u64>,
    /// The `count` oneof: set for float histograms.
    #[prost(double, optional, tag = "2")]
    pub count_float: Option<f64>,
    #[prost(double, tag = "3")]
    pub sum: f64,
    #[prost(sint32, tag = "4")]
    pub schema: i32,
    #[prost(double, tag = "5")]
    pub zero_threshold: f64,
    #[prost(uint64, optional, tag = "6")]
    pub zero_count_int: Option<u64>,
    #[prost(double, optional, tag = "7")]
    pub zero_count_float: Option<f64>,
    #[prost(message, repeated, tag = "8")]
    pub negative_spans: Vec<ProtoBucketSpan>,
    #[prost(sint64, repeated, tag = "9")]
    pub negative_deltas: Vec<i64>,
    #[prost(double, repeated, tag = "10")]
    pub negative_counts: Vec<f64>,
    #[prost(message, repeated, tag = "11")]
    pub positive_spans: Vec<ProtoBucketSpan>,
    #[prost(sint64, repeated, tag = "12")]
    pub positive_deltas: Vec<i64>,
    #[prost(double, repeated, tag = "13")]
    pub positive_counts: Vec<f64>,
    /// `ResetHint`: 0 unknown, 1 yes, 2 no, 3 gauge.
    #[prost(int32, tag = "14")]
    pub reset_hint: i32,
    #[prost(int64, tag = "15")]
    pub timestamp: i64,
    /// Upper bounds of the custom buckets (schema -53).
    #[prost(double, repeated, tag = "16")]
    pub custom_values: Vec<f64>,
}

/// `prometheus.BucketSpan`.
#[derive(Clone, PartialEq, Message)]
pub struct ProtoBucketSpan {
    #[prost(sint32, tag = "1")]
    pub offset: i32,
    #[prost(uint32, tag = "2")]
    pub length: u32,
}

impl ProtoHistogram {
    /// Whether this is a float histogram (absolute counts) rather than an integer one (deltas).
    pub fn is_float(&self) -> bool {
        self.count_float.is_some()
            || (self.count_int.is_none() && (!self.positive_counts.is_empty() || !self.negative_counts.is_empty()))
    }

    /// The sample, or what is wrong with it.
    pub fn to_sample(&self) -> Result<HistogramSample, String> {
        let float = self.is_float();
        let counts = |deltas: &[i64], counts: &[f64], side: &str| -> Result<Vec<f64>, String> {
            if !float {
                let mut abs = 0i64;
                return deltas
                    .iter()
                    .map(|d| {
                        abs = abs.checked_add(*d).ok_or_else(|| format!("{side} bucket deltas overflow"))?;
                        if abs < 0 {
                            return Err(format!("{side} bucket with a negative count {abs}"));
                        }
                        Ok(abs as f64)
                    })
                    .collect();
            }
            if let Some(c) = counts.iter().find(|c| c.is_nan() || **c < 0.0) {
                return Err(format!("{side} bucket with a negative or NaN count {c}"));
            }
            Ok(counts.to_vec())
        };
        let spans = |spans: &[ProtoBucketSpan]| -> Vec<Span> {
            spans.iter().map(|s| Span { offset: s.offset, length: s.length }).collect()
        };
        let h = FloatHistogram {
            counter_reset_hint: match self.reset_hint {
                1 => CounterResetHint::Reset,
                2 => CounterResetHint::NotReset,
                3 => CounterResetHint::Gauge,
                _ => CounterResetHint::Unknown,
            },
            schema: self.schema,
            zero_threshold: self.zero_threshold,
            zero_count: if float {
                self.zero_count_float.unwrap_or(0.0)
            } else {
                self.zero_count_int.unwrap_or(0) as f64
            },
            count: if float { self.count_float.unwrap_or(0.0) } else { self.count_int.unwrap_or(0) as f64 },
            sum: self.sum,
            positive_spans: spans(&self.positive_spans),
            negative_spans: spans(&self.negative_spans),
            positive_buckets: counts(&self.positive_deltas, &self.positive_counts, "positive")?,
            negative_buckets: counts(&self.negative_deltas, &self.negative_counts, "negative")?,
            custom_values: self.custom_values.clone(),
        };
        validate(&h, !float)?;
        Ok(HistogramSample { timestamp_ms: self.timestamp, h })
    }
}

/// Prometheus's validation of a histogram; `integer` adds its count check (float counts are
/// not compared, as Prometheus does not: rounding makes them differ).
fn validate(h: &FloatHistogram, integer: bool) -> Result<(), String> {
    if h.uses_custom_buckets() {
        if !h.negative_spans.is_empty() || !h.negative_buckets.is_empty() {
            return Err("custom-bucket histogram with negative buckets".into());
        }
        if h.zero_count != 0.0 || h.zero_threshold != 0.0 {
            return Err("custom-bucket histogram with a zero bucket".into());
        }
        if h.custom_values.windows(2).any(|w| w[0].partial_cmp(&w[1]) != Some(std::cmp::Ordering::Less))
            || h.custom_values.iter().any(|v| v.is_nan())
        {
            return Err("custom bucket bounds not strictly increasing".into());
        }
        if h.custom_values.last().is_some_and(|v| v.is_infinite()) {
            return Err("custom bucket bounds end with +Inf (the last bucket reaches it implicitly)".into());
        }
    } else {
        if !(-4..=8).contains(&h.schema) {
            return Err(format!("schema {} (valid: -4 to 8, or {CUSTOM_BUCKETS_SCHEMA} for custom buckets)", h.schema));
        }
        if !h.custom_values.is_empty() {
            return Err(format!("custom bucket bounds with schema {}", h.schema));
        }
        if h.zero_count.is_nan() || h.zero_count < 0.0 {
            return Err(format!("negative or NaN zero-bucket count {}", h.zero_count));
        }
    }
    for (side, spans, buckets) in
        [("positive", &h.positive_spans, &h.positive_buckets), ("negative", &h.negative_spans, &h.negative_buckets)]
    {
        if let Some((i, s)) = spans.iter().enumerate().skip(1).find(|(_, s)| s.offset < 0) {
            return Err(format!("{side} span {i} has a negative offset {}", s.offset));
        }
        let described: u64 = spans.iter().map(|s| u64::from(s.length)).sum();
        if described != buckets.len() as u64 {
            return Err(format!("{side} spans describe {described} buckets, {} counts given", buckets.len()));
        }
    }
    if h.uses_custom_buckets() {
        let highest = crate::histogram::expand_spans(&h.positive_spans, &h.positive_buckets).last().map(|(i, _)| *i);
        if h.positive_spans.first().is_some_and(|s| s.offset < 0)
            || highest.is_some_and(|i| i as usize > h.custom_values.len())
        {
            return Err(format!("custom buckets beyond the {} bounds given", h.custom_values.len() + 1));
        }
    }
    if integer {
        let buckets: f64 = h.positive_buckets.iter().chain(&h.negative_buckets).sum::<f64>() + h.zero_count;
        if h.sum.is_nan() && buckets > h.count {
            return Err(format!("count {} below the buckets' total {buckets}", h.count));
        }
        if !h.sum.is_nan() && buckets != h.count {
            return Err(format!("count {} differs from the buckets' total {buckets}", h.count));
        }
    }
    Ok(())
}

/// Encodes a histogram sample as a float `prometheus.Histogram` (absolute counts), as senders
/// that hold float histograms do.
pub fn to_proto(s: &HistogramSample) -> ProtoHistogram {
    let h = &s.h;
    let spans = |spans: &[Span]| spans.iter().map(|s| ProtoBucketSpan { offset: s.offset, length: s.length }).collect();
    ProtoHistogram {
        count_float: Some(h.count),
        sum: h.sum,
        schema: h.schema,
        zero_threshold: h.zero_threshold,
        zero_count_float: Some(h.zero_count),
        negative_spans: spans(&h.negative_spans),
        negative_counts: h.negative_buckets.clone(),
        positive_spans: spans(&h.positive_spans),
        positive_counts: h.positive_buckets.clone(),
        reset_hint: match h.counter_reset_hint {
            CounterResetHint::Unknown => 0,
            CounterResetHint::Reset => 1,
            CounterResetHint::NotReset => 2,
            CounterResetHint::Gauge => 3,
        },
        timestamp: s.timestamp_ms,
        custom_values: h.custom_values.clone(),
        ..ProtoHistogram::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn integer(deltas: Vec<i64>, count: u64, sum: f64) -> ProtoHistogram {
        ProtoHistogram {
            count_int: Some(count),
            zero_count_int: Some(1),
            sum,
            positive_spans: vec![ProtoBucketSpan { offset: -1, length: 2 }, ProtoBucketSpan { offset: 2, length: 1 }],
            positive_deltas: deltas,
            reset_hint: 2,
            timestamp: 7,
            ..ProtoHistogram::default()
        }
    }

    #[test]
    fn integer_deltas_become_absolute_counts_and_are_checked() {
        let s = integer(vec![3, -1, 2], 10, 4.0).to_sample().unwrap();
        assert_eq!(s.h.positive_buckets, [3.0, 2.0, 4.0]);
        assert_eq!((s.h.zero_count, s.h.counter_reset_hint, s.timestamp_ms), (1.0, CounterResetHint::NotReset, 7));
        assert!(integer(vec![3, -4, 2], 3, 4.0).to_sample().unwrap_err().contains("negative count"));
        assert!(
            integer(vec![3, -1, 2], 11, 4.0).to_sample().unwrap_err().contains("differs from the buckets' total 10")
        );
        assert!(integer(vec![3, -1, 2], 11, f64::NAN).to_sample().is_ok(), "a NaN sum allows a larger count");
        let mut wide = integer(vec![3, -1, 2], 10, 4.0);
        wide.schema = 9;
        assert!(wide.to_sample().unwrap_err().contains("schema 9"));
        let mut float = integer(vec![], 0, 1.0);
        (float.count_int, float.count_float, float.positive_counts) = (None, Some(2.0), vec![1.0, -1.0, 0.0]);
        assert!(float.is_float());
        assert!(float.to_sample().unwrap_err().contains("negative or NaN count -1"));
    }
}
