//! The engine's intermediate values: what each AST node evaluates to at one instant.

use model::{FloatHistogram, HistogramSample, Labels, METRIC_NAME, Sample};

/// One element of an instant vector. `t` is the sample's own timestamp for selector output (the
/// `timestamp()` function reads it) and the evaluation time otherwise.
///
/// `drop_name`: Prometheus 3's delayed `__name__` removal. An operator or function that changes
/// what the value means keeps `__name__` in `labels` (so matching, grouping by `__name__` and
/// `label_replace` still see it) and sets this flag; the name is removed when the query's result
/// is assembled.
#[derive(Clone, Debug)]
pub struct VSample {
    pub labels: Labels,
    pub t: i64,
    pub v: f64,
    pub drop_name: bool,
    /// A native-histogram sample (then `v` means nothing).
    pub h: Option<Box<FloatHistogram>>,
}

impl VSample {
    /// A float sample.
    pub fn float(labels: Labels, t: i64, v: f64, drop_name: bool) -> Self {
        Self { labels, t, v, drop_name, h: None }
    }

    /// A histogram sample.
    pub fn histogram(labels: Labels, t: i64, h: FloatHistogram, drop_name: bool) -> Self {
        Self { labels, t, v: 0.0, drop_name, h: Some(Box::new(h)) }
    }
}

/// One series of a range vector.
#[derive(Clone, Debug)]
pub struct RSeries {
    pub labels: Labels,
    pub samples: Vec<Sample>,
    /// Native-histogram samples, in timestamp order.
    pub histograms: Vec<HistogramSample>,
    /// As [`VSample::drop_name`] (set for subqueries over name-dropping expressions).
    pub drop_name: bool,
}

#[derive(Clone, Debug)]
pub enum Value {
    Scalar(f64),
    String(String),
    Vector(Vec<VSample>),
    Matrix(Vec<RSeries>),
}

impl Value {
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Scalar(_) => "scalar",
            Value::String(_) => "string",
            Value::Vector(_) => "vector",
            Value::Matrix(_) => "matrix",
        }
    }
}

pub fn without_name(labels: &Labels) -> Labels {
    if labels.get(METRIC_NAME).is_none() {
        return labels.clone();
    }
    let mut b = labels.to_builder();
    b.remove(METRIC_NAME);
    b.build()
}
