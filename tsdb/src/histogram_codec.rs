//! The byte encoding of native-histogram samples, shared by the WAL's histogram record and the
//! `histogram` column of the blocks' `histograms.parquet`: one place decides how a
//! `FloatHistogram` is laid out on disk.
//!
//! A series is `labels (u32 count, then u32-length-prefixed name and value strings) | u32
//! samples | per sample: timestamp (zigzag varint delta from the previous one) | histogram`. A
//! histogram is `hint: u8 (0 unknown, 1 reset, 2 not reset, 3 gauge) | schema: zigzag varint |
//! zero_threshold, zero_count, count, sum: f64 LE | positive spans, negative spans: varint n, then
//! n × (offset zigzag varint, length varint) | positive buckets, negative buckets, custom values:
//! varint n, then n × f64 LE`. Counts are absolute floats (an integer histogram's counts are
//! exact in an f64 up to 2^53).

use model::Labels;
use model::histogram::{CounterResetHint, FloatHistogram, HistogramSample, Span};

use crate::wal::{Cursor, put_str, put_varint, unzigzag, zigzag};

/// Appends one series' labels and samples.
pub fn put_series(out: &mut Vec<u8>, labels: &Labels, samples: &[HistogramSample]) {
    out.extend_from_slice(&(labels.len() as u32).to_le_bytes());
    for l in labels {
        put_str(out, &l.name);
        put_str(out, &l.value);
    }
    out.extend_from_slice(&(samples.len() as u32).to_le_bytes());
    let mut prev_t = 0i64;
    for s in samples {
        put_varint(out, zigzag(s.timestamp_ms.wrapping_sub(prev_t)));
        prev_t = s.timestamp_ms;
        put_histogram(out, &s.h);
    }
}

/// Reads what [`put_series`] wrote; `None` on truncated or malformed bytes.
pub(crate) fn get_series(r: &mut Cursor<'_>) -> Option<(Labels, Vec<HistogramSample>)> {
    let nlabels = r.u32()? as usize;
    let mut pairs = Vec::with_capacity(nlabels.min(r.remaining() / 8));
    for _ in 0..nlabels {
        pairs.push((r.string()?, r.string()?));
    }
    let n = r.u32()? as usize;
    // A sample takes at least 60 bytes: never allocate more than the bytes can hold.
    let mut samples = Vec::with_capacity(n.min(r.remaining() / 60));
    let mut t = 0i64;
    for _ in 0..n {
        t = t.wrapping_add(unzigzag(r.varint()?));
        samples.push(HistogramSample { timestamp_ms: t, h: get_histogram(r)? });
    }
    Some((Labels::from_pairs(pairs), samples))
}

/// Appends one histogram (the blocks' `histogram` column holds one such encoding per row).
pub fn put_histogram(out: &mut Vec<u8>, h: &FloatHistogram) {
    out.push(match h.counter_reset_hint {
        CounterResetHint::Unknown => 0,
        CounterResetHint::Reset => 1,
        CounterResetHint::NotReset => 2,
        CounterResetHint::Gauge => 3,
    });
    put_varint(out, zigzag(i64::from(h.schema)));
    for v in [h.zero_threshold, h.zero_count, h.count, h.sum] {
        out.extend_from_slice(&v.to_bits().to_le_bytes());
    }
    for spans in [&h.positive_spans, &h.negative_spans] {
        put_varint(out, spans.len() as u64);
        for s in spans {
            put_varint(out, zigzag(i64::from(s.offset)));
            put_varint(out, u64::from(s.length));
        }
    }
    for floats in [&h.positive_buckets, &h.negative_buckets, &h.custom_values] {
        put_varint(out, floats.len() as u64);
        for v in floats {
            out.extend_from_slice(&v.to_bits().to_le_bytes());
        }
    }
}

/// Reads what [`put_histogram`] wrote; `None` on truncated or malformed bytes.
pub(crate) fn get_histogram(r: &mut Cursor<'_>) -> Option<FloatHistogram> {
    let counter_reset_hint = match r.u8()? {
        0 => CounterResetHint::Unknown,
        1 => CounterResetHint::Reset,
        2 => CounterResetHint::NotReset,
        3 => CounterResetHint::Gauge,
        _ => return None,
    };
    let schema = i32::try_from(unzigzag(r.varint()?)).ok()?;
    let mut fixed = [0f64; 4];
    for v in &mut fixed {
        *v = f64::from_bits(r.u64()?);
    }
    let [zero_threshold, zero_count, count, sum] = fixed;
    let mut spans = || -> Option<Vec<Span>> {
        let n = usize::try_from(r.varint()?).ok()?;
        let mut out = Vec::with_capacity(n.min(r.remaining() / 2));
        for _ in 0..n {
            let offset = i32::try_from(unzigzag(r.varint()?)).ok()?;
            let length = u32::try_from(r.varint()?).ok()?;
            out.push(Span { offset, length });
        }
        Some(out)
    };
    let (positive_spans, negative_spans) = (spans()?, spans()?);
    let mut floats = || -> Option<Vec<f64>> {
        let n = usize::try_from(r.varint()?).ok()?;
        let mut out = Vec::with_capacity(n.min(r.remaining() / 8));
        for _ in 0..n {
            out.push(f64::from_bits(r.u64()?));
        }
        Some(out)
    };
    let (positive_buckets, negative_buckets, custom_values) = (floats()?, floats()?, floats()?);
    Some(FloatHistogram {
        counter_reset_hint,
        schema,
        zero_threshold,
        zero_count,
        count,
        sum,
        positive_spans,
        negative_spans,
        positive_buckets,
        negative_buckets,
        custom_values,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_roundtrip_including_custom_buckets_and_gauges() {
        let labels = Labels::from_pairs([("__name__", "h"), ("job", "a")]);
        let mut samples: Vec<HistogramSample> = [
            "{{schema:0 sum:5 count:4 z_bucket:1 z_bucket_w:0.001 buckets:[1 2] n_buckets:[1] counter_reset_hint:gauge}}",
            "{{schema:-53 sum:1 count:3 custom_values:[1 5] buckets:[1 1 1]}}",
            "{{count:2 buckets:[2] offset:-3}}",
        ]
        .iter()
        .enumerate()
        .map(|(i, text)| HistogramSample {
            timestamp_ms: -5000 + i as i64 * 7_000,
            h: model::notation::parse_histogram(text).unwrap(),
        })
        .collect();
        samples[2].h.sum = f64::NAN;
        let mut bytes = Vec::new();
        put_series(&mut bytes, &labels, &samples);
        let mut r = Cursor::new(&bytes);
        let (got_labels, got) = get_series(&mut r).unwrap();
        assert_eq!(r.remaining(), 0);
        assert_eq!(got_labels, labels);
        assert!(got[2].h.sum.is_nan());
        samples[2].h.sum = 0.0;
        let mut got = got;
        got[2].h.sum = 0.0;
        assert_eq!(got, samples);
        for cut in 0..bytes.len() {
            assert!(get_series(&mut Cursor::new(&bytes[..cut])).is_none(), "cut at {cut}");
        }
    }
}
