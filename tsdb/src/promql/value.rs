//! The engine's intermediate values: what each AST node evaluates to at one instant.

use model::{Labels, METRIC_NAME, Sample};

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
}

/// One series of a range vector.
#[derive(Clone, Debug)]
pub struct RSeries {
    pub labels: Labels,
    pub samples: Vec<Sample>,
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
