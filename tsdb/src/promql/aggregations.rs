//! Aggregation operators (`sum`, `avg`, `topk`, `quantile`, `count_values`, ...) with `by` and
//! `without` grouping, following Prometheus's numeric behaviour (NaN handling in min/max,
//! population variance, quantile interpolation).

use std::collections::HashMap;

use model::{FloatHistogram, Labels, LabelsBuilder, METRIC_NAME};
use promql_parser::parser::token;
use promql_parser::parser::{AggregateExpr, LabelModifier};

use super::annotations::Anchor;
use super::eval::{Evaluator, is};
use super::result::format_value;
use super::value::{VSample, Value};
use crate::error::{Error, Result};

fn group_labels(labels: &Labels, modifier: Option<&LabelModifier>) -> Labels {
    match modifier {
        Some(LabelModifier::Include(by)) => {
            Labels::from_pairs(by.labels.iter().filter_map(|n| labels.get(n).map(|v| (n.clone(), v.to_string()))))
        }
        Some(LabelModifier::Exclude(without)) => {
            let mut b = labels.to_builder();
            for n in &without.labels {
                b.remove(n);
            }
            b.remove(METRIC_NAME);
            b.build()
        }
        None => Labels::empty(),
    }
}

/// Prometheus's `quantile`: linear interpolation between closest ranks; φ outside [0, 1] gives
/// ±Inf. `values` need not be sorted.
pub(super) fn quantile(q: f64, values: &mut [f64]) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    // NaN sorts as the smallest value, as in Prometheus.
    values.sort_by(|a, b| match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        (false, false) => a.total_cmp(b),
    });
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0) as usize;
    let upper = (lower + 1).min(values.len() - 1);
    let weight = rank - rank.floor();
    values[lower] * (1.0 - weight) + values[upper] * weight
}

pub(super) fn eval_aggregate(ev: &Evaluator<'_>, a: &AggregateExpr, t: i64) -> Result<Value> {
    let op = a.op;
    let param = match &a.param {
        Some(p) if is(op, token::T_COUNT_VALUES) => Some(Value::String(ev.eval_string(p, t)?)),
        Some(p) => Some(Value::Scalar(ev.eval_scalar(p, t)?)),
        None => None,
    };
    if let (true, Some(Value::Scalar(q))) = (is(op, token::T_QUANTILE), &param)
        && !(0.0..=1.0).contains(q)
    {
        let message = format!("quantile value should be between 0 and 1, got {}", super::histograms::go_float(*q));
        ev.notes.warn(Anchor::AggParam(a), &message);
    }
    let mut input = ev.eval_vector(&a.expr, t)?;
    let reads_histograms = [token::T_SUM, token::T_AVG, token::T_COUNT, token::T_GROUP].contains(&op.id());
    if !reads_histograms && input.iter().any(|s| s.h.is_some()) {
        input.retain(|s| s.h.is_none());
        let message = format!("ignored histogram in {} aggregation", op.to_string().to_lowercase());
        ev.notes.info(Anchor::Aggregation(a), &message);
    }
    let modifier = a.modifier.as_ref();

    if is(op, token::T_TOPK) || is(op, token::T_BOTTOMK) {
        let Some(Value::Scalar(k)) = param else { return Err(Error::BadData("topk/bottomk need k".into())) };
        return Ok(Value::Vector(top_k(input, k, is(op, token::T_TOPK), modifier)?));
    }
    if is(op, token::T_COUNT_VALUES) {
        let Some(Value::String(label)) = param else { return Err(Error::BadData("count_values needs a label".into())) };
        if !model::labels::is_valid_label_name(&label) {
            return Err(Error::Execution(format!("invalid label name {label:?}")));
        }
        let mut counts: HashMap<Labels, f64> = HashMap::new();
        let mut order = Vec::new();
        for s in input {
            let mut b: LabelsBuilder = group_labels(&s.labels, modifier).to_builder();
            b.set(label.clone(), format_value(s.v));
            let key = b.build();
            let c = counts.entry(key.clone()).or_insert_with(|| {
                order.push(key);
                0.0
            });
            *c += 1.0;
        }
        return Ok(Value::Vector(order.into_iter().map(|l| VSample::float(l.clone(), t, counts[&l], false)).collect()));
    }

    let mut groups: HashMap<Labels, (Vec<f64>, Vec<FloatHistogram>)> = HashMap::new();
    // Groups keyed by a `__name__` some input was to lose keep that pending removal.
    let mut drops: HashMap<Labels, bool> = HashMap::new();
    let mut order: Vec<Labels> = Vec::new();
    for s in input {
        let key = group_labels(&s.labels, modifier);
        if s.drop_name && key.get(METRIC_NAME).is_some() {
            drops.insert(key.clone(), true);
        }
        let group = groups.entry(key.clone()).or_insert_with(|| {
            order.push(key);
            Default::default()
        });
        match s.h {
            Some(h) => group.1.push(*h),
            None => group.0.push(s.v),
        }
    }
    let q = match param {
        Some(Value::Scalar(q)) => q,
        _ => f64::NAN,
    };
    let mut out = Vec::with_capacity(order.len());
    for labels in order {
        let (mut values, histograms) = groups.remove(&labels).unwrap_or_default();
        let drop_name = drops.contains_key(&labels);
        match op.id() {
            token::T_COUNT => {
                out.push(VSample::float(labels, t, (values.len() + histograms.len()) as f64, drop_name));
                continue;
            }
            token::T_GROUP => {
                out.push(VSample::float(labels, t, 1.0, drop_name));
                continue;
            }
            token::T_SUM | token::T_AVG if !histograms.is_empty() => {
                if values.is_empty() {
                    let refs: Vec<&FloatHistogram> = histograms.iter().collect();
                    match super::native::sum_histograms(&refs, is(op, token::T_AVG)) {
                        Ok(h) => out.push(VSample::histogram(labels, t, h, drop_name)),
                        Err(_) => {
                            let message = "vector contains a mix of histograms with exponential and custom buckets schemas for metric name \"\"";
                            ev.notes.warn(Anchor::Aggregation(a), message);
                        }
                    }
                } else {
                    let message = format!(
                        "encountered a mix of histograms and floats for aggregation {}",
                        op.to_string().to_lowercase()
                    );
                    ev.notes.warn(Anchor::Aggregation(a), &message);
                }
                continue;
            }
            // The other aggregations read floats only.
            _ if values.is_empty() => continue,
            _ => {}
        }
        let v = match op.id() {
            token::T_SUM => kahan_sum(&values),
            token::T_AVG => aggregate_average(&values),
            token::T_COUNT => values.len() as f64,
            token::T_GROUP => 1.0,
            token::T_MIN => {
                values.iter().copied().fold(f64::NAN, |acc, v| if acc.is_nan() || v < acc { v } else { acc })
            }
            token::T_MAX => {
                values.iter().copied().fold(f64::NAN, |acc, v| if acc.is_nan() || v > acc { v } else { acc })
            }
            token::T_STDDEV => variance(&values).sqrt(),
            token::T_STDVAR => variance(&values),
            token::T_QUANTILE => quantile(q, &mut values),
            _ => return Err(Error::BadData(format!("aggregation {op} is not supported"))),
        };
        out.push(VSample::float(labels, t, v, drop_name));
    }
    Ok(Value::Vector(out))
}

/// Sum with Kahan-Babuska compensation, as Prometheus does, so long sums stay exact enough.
pub(super) fn kahan_sum(values: &[f64]) -> f64 {
    let (mut sum, mut c) = (0.0f64, 0.0f64);
    for &v in values {
        let t = sum + v;
        if sum.abs() >= v.abs() {
            c += (sum - t) + v;
        } else {
            c += (v - t) + sum;
        }
        sum = t;
    }
    if sum.is_infinite() { sum } else { sum + c }
}

pub(super) fn average(values: &[f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let sum = kahan_sum(values);
    if sum.is_finite() {
        return sum / values.len() as f64;
    }
    // The plain sum overflowed: fall back to an incremental mean, which stays finite.
    let mut mean = 0.0f64;
    for (i, v) in values.iter().enumerate() {
        if mean.is_infinite() {
            if v.is_infinite() && (mean > 0.0) != (*v > 0.0) {
                return f64::NAN;
            }
            continue;
        }
        mean += (v - mean) / (i as f64 + 1.0);
    }
    mean
}

/// One step of Kahan-Neumaier summation: the new sum and compensation.
fn kahan_inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    if t.is_infinite() {
        (t, 0.0)
    } else if sum.abs() >= inc.abs() {
        (t, c + ((sum - t) + inc))
    } else {
        (t, c + ((inc - t) + sum))
    }
}

/// The `avg` aggregation as Prometheus computes it: a compensated sum divided at the end, and
/// once that sum overflows, an incremental mean whose steps are divided before they are
/// subtracted (so `avg(-big, -big, big, big)` is 0, not NaN).
pub(super) fn aggregate_average(values: &[f64]) -> f64 {
    let Some((&first, rest)) = values.split_first() else { return f64::NAN };
    let (mut sum, mut c) = (first, 0.0f64);
    let (mut mean, mut mean_c) = (0.0f64, 0.0f64);
    let mut incremental = false;
    for (i, &v) in rest.iter().enumerate() {
        let count = (i + 2) as f64;
        if !incremental {
            let (new_sum, new_c) = kahan_inc(v, sum, c);
            if !new_sum.is_infinite() {
                (sum, c) = (new_sum, new_c);
                continue;
            }
            incremental = true;
            mean = sum / (count - 1.0);
            mean_c = c / (count - 1.0);
        }
        if mean.is_infinite() {
            if v.is_infinite() && (mean > 0.0) == (v > 0.0) {
                continue;
            }
            if !v.is_infinite() && !v.is_nan() {
                continue;
            }
        }
        let current = mean + mean_c;
        (mean, mean_c) = kahan_inc(v / count - current / count, mean, mean_c);
    }
    let n = values.len() as f64;
    if incremental { mean + mean_c } else { sum / n + c / n }
}

/// Population variance (Welford), as `stdvar`.
pub(super) fn variance(values: &[f64]) -> f64 {
    let (mut mean, mut m2) = (0.0f64, 0.0f64);
    for (i, &v) in values.iter().enumerate() {
        let delta = v - mean;
        mean += delta / (i as f64 + 1.0);
        m2 += delta * (v - mean);
    }
    if values.is_empty() { f64::NAN } else { m2 / values.len() as f64 }
}

fn top_k(input: Vec<VSample>, k: f64, top: bool, modifier: Option<&LabelModifier>) -> Result<Vec<VSample>> {
    if k.is_nan() {
        return Err(Error::Execution("Parameter value is NaN".into()));
    }
    if k < 1.0 {
        return Ok(Vec::new());
    }
    let k = if k >= i64::MAX as f64 { usize::MAX } else { k as usize };
    let mut groups: HashMap<Labels, Vec<VSample>> = HashMap::new();
    let mut order: Vec<Labels> = Vec::new();
    for s in input {
        let key = group_labels(&s.labels, modifier);
        groups
            .entry(key.clone())
            .or_insert_with(|| {
                order.push(key);
                Vec::new()
            })
            .push(s);
    }
    // NaN ranks below every number for topk and above every number for bottomk.
    let rank = |v: f64| if v.is_nan() { if top { f64::NEG_INFINITY } else { f64::INFINITY } } else { v };
    let mut out = Vec::new();
    for key in order {
        let mut members = groups.remove(&key).unwrap_or_default();
        members.sort_by(|a, b| {
            let (x, y) = (rank(a.v), rank(b.v));
            let ord = if top { y.total_cmp(&x) } else { x.total_cmp(&y) };
            ord.then_with(|| a.v.is_nan().cmp(&b.v.is_nan()))
        });
        members.truncate(k);
        out.extend(members);
    }
    Ok(out)
}
