//! Query results and their JSON form: exactly Prometheus's `data` object of `/api/v1/query` and
//! `/api/v1/query_range`, so Grafana and promtool read Tarsier's answers unchanged.

use model::{FloatHistogram, HistogramSample, Labels, Sample};
use serde::ser::{SerializeMap, SerializeSeq, SerializeStruct};
use serde::{Serialize, Serializer};

/// The value of an evaluated PromQL expression.
#[derive(Clone, Debug, PartialEq)]
pub enum QueryResult {
    Scalar {
        t_ms: i64,
        v: f64,
    },
    String {
        t_ms: i64,
        s: String,
    },
    /// One sample per series at the evaluation time.
    Vector(Vec<(Labels, i64, f64)>),
    /// Series with their samples, sorted by labels.
    Matrix(Vec<(Labels, Vec<Sample>)>),
    /// An instant vector holding at least one native histogram (float-only vectors are
    /// [`QueryResult::Vector`], so clients that only know floats keep working).
    MixedVector(Vec<(Labels, i64, PointValue)>),
    /// A matrix holding at least one native-histogram sample: per series its float and its
    /// histogram samples, sorted by labels.
    MixedMatrix(Vec<(Labels, Vec<Sample>, Vec<HistogramSample>)>),
}

/// One point's value: a float or a native histogram.
#[derive(Clone, Debug, PartialEq)]
pub enum PointValue {
    Float(f64),
    Histogram(FloatHistogram),
}

impl QueryResult {
    /// A matrix result, mixed only when some series has histogram samples.
    pub fn from_series(series: Vec<(Labels, Vec<Sample>, Vec<HistogramSample>)>) -> QueryResult {
        if series.iter().all(|s| s.2.is_empty()) {
            QueryResult::Matrix(series.into_iter().map(|(l, f, _)| (l, f)).collect())
        } else {
            QueryResult::MixedMatrix(series)
        }
    }
}

/// Formats a float as Go's `strconv.FormatFloat(v, 'f', -1, 64)` does (Prometheus's wire form):
/// shortest round-trip digits, no exponent, `NaN`, `+Inf`, `-Inf`.
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v == f64::INFINITY {
        "+Inf".to_string()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_string()
    } else {
        // Rust's Display for f64 is shortest round-trip and never uses an exponent, like Go's 'f', -1.
        v.to_string()
    }
}

/// A millisecond timestamp as Prometheus writes it: seconds as a JSON number with up to three
/// decimals (`1700000000`, `1700000000.5`).
fn timestamp_number(t_ms: i64) -> serde_json::Number {
    if t_ms % 1000 == 0 {
        serde_json::Number::from(t_ms / 1000)
    } else {
        serde_json::Number::from_f64(t_ms as f64 / 1000.0).unwrap_or_else(|| serde_json::Number::from(t_ms / 1000))
    }
}

struct Point(i64, f64);

impl Serialize for Point {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(2))?;
        seq.serialize_element(&timestamp_number(self.0))?;
        seq.serialize_element(&format_value(self.1))?;
        seq.end()
    }
}

/// Prometheus's JSON for a histogram: count, sum and the non-empty buckets as
/// `[boundary_rule, lower, upper, count]` (rule 0: `(l, u]`, 1: `[l, u)`, 2: `(l, u)`, 3: `[l, u]`).
struct HistogramJson<'a>(&'a FloatHistogram);

impl Serialize for HistogramJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let h = self.0;
        let buckets: Vec<(u8, String, String, String)> = h
            .buckets()
            .into_iter()
            .filter(|b| b.count != 0.0)
            .map(|b| {
                let rule = match (b.lower_inclusive, b.upper_inclusive) {
                    (false, true) => 0,
                    (true, false) => 1,
                    (false, false) => 2,
                    (true, true) => 3,
                };
                (rule, format_value(b.lower), format_value(b.upper), format_value(b.count))
            })
            .collect();
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("count", &format_value(h.count))?;
        map.serialize_entry("sum", &format_value(h.sum))?;
        if !buckets.is_empty() {
            map.serialize_entry("buckets", &buckets)?;
        }
        map.end()
    }
}

struct HistogramPoint<'a>(i64, &'a FloatHistogram);

impl Serialize for HistogramPoint<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(2))?;
        seq.serialize_element(&timestamp_number(self.0))?;
        seq.serialize_element(&HistogramJson(self.1))?;
        seq.end()
    }
}

struct MixedVectorElem<'a>(&'a Labels, i64, &'a PointValue);

impl Serialize for MixedVectorElem<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut st = serializer.serialize_struct("sample", 2)?;
        st.serialize_field("metric", &Metric(self.0))?;
        match self.2 {
            PointValue::Float(v) => st.serialize_field("value", &Point(self.1, *v))?,
            PointValue::Histogram(h) => st.serialize_field("histogram", &HistogramPoint(self.1, h))?,
        }
        st.end()
    }
}

struct MixedMatrixElem<'a>(&'a Labels, &'a [Sample], &'a [HistogramSample]);

impl Serialize for MixedMatrixElem<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut st = serializer.serialize_struct("series", 3)?;
        st.serialize_field("metric", &Metric(self.0))?;
        if !self.1.is_empty() {
            let points: Vec<Point> = self.1.iter().map(|s| Point(s.timestamp_ms, s.value)).collect();
            st.serialize_field("values", &points)?;
        }
        if !self.2.is_empty() {
            let points: Vec<HistogramPoint<'_>> = self.2.iter().map(|s| HistogramPoint(s.timestamp_ms, &s.h)).collect();
            st.serialize_field("histograms", &points)?;
        }
        st.end()
    }
}

struct Metric<'a>(&'a Labels);

impl Serialize for Metric<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for l in self.0 {
            map.serialize_entry(&l.name, &l.value)?;
        }
        map.end()
    }
}

struct VectorElem<'a>(&'a Labels, i64, f64);

impl Serialize for VectorElem<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut st = serializer.serialize_struct("sample", 2)?;
        st.serialize_field("metric", &Metric(self.0))?;
        st.serialize_field("value", &Point(self.1, self.2))?;
        st.end()
    }
}

struct MatrixElem<'a>(&'a Labels, &'a [Sample]);

impl Serialize for MatrixElem<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut st = serializer.serialize_struct("series", 2)?;
        st.serialize_field("metric", &Metric(self.0))?;
        let points: Vec<Point> = self.1.iter().map(|s| Point(s.timestamp_ms, s.value)).collect();
        st.serialize_field("values", &points)?;
        st.end()
    }
}

impl Serialize for QueryResult {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut st = serializer.serialize_struct("data", 2)?;
        match self {
            QueryResult::Scalar { t_ms, v } => {
                st.serialize_field("resultType", "scalar")?;
                st.serialize_field("result", &Point(*t_ms, *v))?;
            }
            QueryResult::String { t_ms, s } => {
                st.serialize_field("resultType", "string")?;
                st.serialize_field("result", &(timestamp_number(*t_ms), s))?;
            }
            QueryResult::Vector(samples) => {
                st.serialize_field("resultType", "vector")?;
                let elems: Vec<VectorElem<'_>> = samples.iter().map(|(l, t, v)| VectorElem(l, *t, *v)).collect();
                st.serialize_field("result", &elems)?;
            }
            QueryResult::Matrix(series) => {
                st.serialize_field("resultType", "matrix")?;
                let elems: Vec<MatrixElem<'_>> = series.iter().map(|(l, s)| MatrixElem(l, s)).collect();
                st.serialize_field("result", &elems)?;
            }
            QueryResult::MixedVector(samples) => {
                st.serialize_field("resultType", "vector")?;
                let elems: Vec<MixedVectorElem<'_>> =
                    samples.iter().map(|(l, t, v)| MixedVectorElem(l, *t, v)).collect();
                st.serialize_field("result", &elems)?;
            }
            QueryResult::MixedMatrix(series) => {
                st.serialize_field("resultType", "matrix")?;
                let elems: Vec<MixedMatrixElem<'_>> = series.iter().map(|(l, f, h)| MixedMatrixElem(l, f, h)).collect();
                st.serialize_field("result", &elems)?;
            }
        }
        st.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(r: &QueryResult) -> String {
        serde_json::to_string(r).unwrap()
    }

    #[test]
    fn vector_golden() {
        let r =
            QueryResult::Vector(vec![(Labels::from_pairs([("__name__", "up"), ("job", "x")]), 1_700_000_000_123, 1.0)]);
        assert_eq!(
            json(&r),
            r#"{"resultType":"vector","result":[{"metric":{"__name__":"up","job":"x"},"value":[1700000000.123,"1"]}]}"#
        );
    }

    #[test]
    fn matrix_golden() {
        let r = QueryResult::Matrix(vec![(
            Labels::from_pairs([("a", "b")]),
            vec![Sample::new(1000, 0.5), Sample::new(2500, f64::INFINITY), Sample::new(4000, f64::NAN)],
        )]);
        assert_eq!(
            json(&r),
            r#"{"resultType":"matrix","result":[{"metric":{"a":"b"},"values":[[1,"0.5"],[2.5,"+Inf"],[4,"NaN"]]}]}"#
        );
    }

    #[test]
    fn scalar_and_string_golden() {
        assert_eq!(
            json(&QueryResult::Scalar { t_ms: 1_700_000_000_000, v: f64::NEG_INFINITY }),
            r#"{"resultType":"scalar","result":[1700000000,"-Inf"]}"#
        );
        assert_eq!(
            json(&QueryResult::String { t_ms: 1500, s: "hi".into() }),
            r#"{"resultType":"string","result":[1.5,"hi"]}"#
        );
        assert_eq!(json(&QueryResult::Vector(vec![])), r#"{"resultType":"vector","result":[]}"#);
    }

    #[test]
    fn histogram_golden() {
        let h = model::notation::parse_histogram(
            "{{schema:0 count:5 sum:7.5 z_bucket:1 z_bucket_w:0.001 buckets:[1 0 2] n_buckets:[1]}}",
        )
        .unwrap();
        let labels = Labels::from_pairs([("a", "b")]);
        let r = QueryResult::MixedVector(vec![(labels.clone(), 1000, PointValue::Histogram(h.clone()))]);
        assert_eq!(
            json(&r),
            r#"{"resultType":"vector","result":[{"metric":{"a":"b"},"histogram":[1,{"count":"5","sum":"7.5","buckets":[[1,"-1","-0.5","1"],[3,"-0.001","0.001","1"],[0,"0.5","1","1"],[0,"2","4","2"]]}]}]}"#
        );
        let r = QueryResult::from_series(vec![(
            labels,
            vec![Sample::new(0, 1.0)],
            vec![HistogramSample { timestamp_ms: 2000, h }],
        )]);
        let text = json(&r);
        assert!(text.contains(r#""values":[[0,"1"]],"histograms":[[2,{"count":"5""#), "{text}");
    }

    #[test]
    fn floats_format_like_go() {
        let cases = [
            (1e21, "1000000000000000000000"),
            (0.1, "0.1"),
            (-2.5, "-2.5"),
            (1e-7, "0.0000001"),
            (123456789.0, "123456789"),
            (-0.0, "-0"),
        ];
        for (v, want) in cases {
            assert_eq!(format_value(v), want);
        }
    }
}
