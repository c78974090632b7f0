//! Native histograms in the engine: `rate`/`increase`/`delta` over histogram samples,
//! `histogram_count`/`_sum`/`_avg`/`_stddev`/`_stdvar`, `histogram_quantile` and
//! `histogram_fraction` with Prometheus's interpolation (logarithmic inside exponential buckets,
//! linear in the zero bucket and custom buckets), the `*_over_time` functions that accept
//! histograms, and the `sum`/`avg` aggregation of histograms.

use model::histogram::{CounterResetHint, FloatHistogram, Incompatible};
use model::{Labels, METRIC_NAME};
use promql_parser::parser::Call;

use super::annotations::Anchor;
use super::eval::Evaluator;
use super::functions::{RangeArg, arg, extrapolation_factor};
use super::value::{RSeries, VSample, Value};
use crate::error::Result;

fn metric_name(labels: &Labels) -> String {
    labels.get(METRIC_NAME).unwrap_or("").to_string()
}

/// Prometheus's `histogramRate` plus the extrapolation of `extrapolatedRate`: the last sample
/// minus the first (at the coarsest schema of the window), plus every sample before a counter
/// reset, scaled like a float rate. A window mixing floats and histograms gives nothing and a
/// warning.
pub(super) fn histogram_rate(
    ev: &Evaluator<'_>,
    call: &Call,
    range: &RangeArg,
    s: &RSeries,
    name: &str,
) -> Result<Option<FloatHistogram>> {
    let name_text = metric_name(&s.labels);
    if !s.samples.is_empty() {
        let message = format!("encountered a mix of histograms and floats for metric name {name_text:?}");
        ev.notes.warn(Anchor::CallArg(call, 0), &message);
        return Ok(None);
    }
    let points = &s.histograms;
    if points.len() < 2 || matches!(name, "irate" | "idelta") {
        return Ok(None);
    }
    let is_counter = name != "delta";
    let first = &points[0].h;
    let last = &points[points.len() - 1].h;
    if is_counter
        && (first.counter_reset_hint == CounterResetHint::Gauge || last.counter_reset_hint == CounterResetHint::Gauge)
    {
        let message = format!("this native histogram metric is not a counter: {name_text:?}");
        ev.notes.warn(Anchor::CallArg(call, 0), &message);
    }
    let mut prev = first.clone();
    // A reset right after the first sample: its layout does not matter, start from zero.
    if is_counter && points[1].h.detect_reset(first) {
        prev = FloatHistogram {
            schema: points[1].h.schema,
            custom_values: points[1].h.custom_values.clone(),
            ..Default::default()
        };
    }
    let min_schema = points.iter().map(|p| p.h.schema).min().unwrap_or(0);
    let mut h = last.clone();
    h.reduce_to_schema(min_schema);
    let incompatible = |e: Incompatible| {
        let message = match e {
            Incompatible::MixedSchemas => {
                format!(
                    "vector contains a mix of histograms with exponential and custom buckets schemas for metric name {name_text:?}"
                )
            }
            Incompatible::CustomBounds => {
                format!("vector contains histograms with incompatible custom buckets for metric name {name_text:?}")
            }
        };
        ev.notes.warn(Anchor::CallArg(call, 0), &message);
    };
    if let Err(e) = h.sub(&prev) {
        incompatible(e);
        return Ok(None);
    }
    if is_counter {
        // Upstream starts from the (possibly emptied) first sample: a reset right after it is
        // then not counted twice.
        let mut before = &prev;
        for p in &points[1..] {
            if p.h.detect_reset(before)
                && let Err(e) = h.add(before)
            {
                incompatible(e);
                return Ok(None);
            }
            before = &p.h;
        }
    } else if first.counter_reset_hint != CounterResetHint::Gauge || last.counter_reset_hint != CounterResetHint::Gauge
    {
        let message = format!("this native histogram metric is not a gauge: {name_text:?}");
        ev.notes.info(Anchor::CallArg(call, 0), &message);
    }
    h.counter_reset_hint = CounterResetHint::Gauge;
    h.compact(0);
    let zero_point = is_counter.then_some((points[0].h.count, h.count));
    let factor = extrapolation_factor(
        range,
        points[0].timestamp_ms,
        points[points.len() - 1].timestamp_ms,
        points.len(),
        zero_point,
        name == "rate",
    );
    h.mul(factor);
    Ok(Some(h))
}

/// The `*_over_time` functions over a series with histogram samples: `count_over_time`,
/// `present_over_time`, `last_over_time`, `sum_over_time`, `avg_over_time`, `resets` and
/// `changes` read them; the others ignore histograms (and the series when it has no floats).
pub(super) fn over_time(name: &str, s: &RSeries, t: i64, drop_name: bool) -> Option<VSample> {
    let labels = s.labels.clone();
    match name {
        "count_over_time" => Some(VSample::float(labels, t, (s.samples.len() + s.histograms.len()) as f64, drop_name)),
        "present_over_time" => Some(VSample::float(labels, t, 1.0, drop_name)),
        "last_over_time" => {
            let h = s.histograms.last()?;
            match s.samples.last() {
                Some(f) if f.timestamp_ms > h.timestamp_ms => Some(VSample::float(labels, t, f.value, drop_name)),
                _ => Some(VSample::histogram(labels, t, h.h.clone(), drop_name)),
            }
        }
        "resets" if s.samples.is_empty() => {
            let n = s.histograms.windows(2).filter(|w| w[1].h.detect_reset(&w[0].h)).count();
            Some(VSample::float(labels, t, n as f64, drop_name))
        }
        "changes" if s.samples.is_empty() => {
            let unhinted =
                |h: &FloatHistogram| FloatHistogram { counter_reset_hint: CounterResetHint::Unknown, ..h.clone() };
            let n = s
                .histograms
                .windows(2)
                .filter(|w| !unhinted(&w[1].h).matches(&unhinted(&w[0].h), |a, b| a == b))
                .count();
            Some(VSample::float(labels, t, n as f64, drop_name))
        }
        "sum_over_time" | "avg_over_time" if s.samples.is_empty() => {
            let mut sum = s.histograms[0].h.clone();
            for p in &s.histograms[1..] {
                sum.add(&p.h).ok()?;
            }
            if name == "avg_over_time" {
                sum.div(s.histograms.len() as f64);
            }
            sum.counter_reset_hint = CounterResetHint::Gauge;
            sum.compact(0);
            Some(VSample::histogram(labels, t, sum, drop_name))
        }
        _ => None,
    }
}

/// `histogram_count`, `histogram_sum`, `histogram_avg`, `histogram_stddev`, `histogram_stdvar`
/// of each histogram sample; float samples are left out.
pub(super) fn histogram_property(ev: &Evaluator<'_>, call: &Call, t: i64) -> Result<Value> {
    let v = ev.eval_vector(arg(call, 0)?, t)?;
    let name = call.func.name;
    let out = v
        .into_iter()
        .filter_map(|s| {
            let h = s.h?;
            let value = match name {
                "histogram_count" => h.count,
                "histogram_sum" => h.sum,
                "histogram_avg" => h.sum / h.count,
                "histogram_stddev" => variance(&h).sqrt(),
                _ => variance(&h),
            };
            Some(VSample::float(s.labels, t, value, true))
        })
        .collect();
    Ok(Value::Vector(out))
}

/// The estimated variance of the observations around `sum / count`: each bucket's
/// observations sit at its midpoint (the geometric mean of its bounds for exponential buckets,
/// 0 in the zero bucket, the arithmetic mean for custom buckets), as Prometheus estimates it.
fn variance(h: &FloatHistogram) -> f64 {
    let mean = h.sum / h.count;
    let mut squares = Vec::new();
    for b in h.buckets() {
        let val = if h.uses_custom_buckets() {
            (b.lower + b.upper) / 2.0
        } else if b.lower <= 0.0 && b.upper >= 0.0 {
            0.0
        } else {
            let mid = (b.lower * b.upper).sqrt();
            if b.upper < 0.0 { -mid } else { mid }
        };
        squares.push(b.count * (val - mean) * (val - mean));
    }
    super::aggregations::kahan_sum(&squares) / h.count
}

/// Prometheus's `HistogramQuantile` for one native histogram.
pub(super) fn quantile(q: f64, h: &FloatHistogram) -> f64 {
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    if h.count == 0.0 || q.is_nan() {
        return f64::NAN;
    }
    let forward = h.sum.is_nan() || q < 0.5;
    let mut buckets = h.buckets();
    if !forward {
        buckets.reverse();
    }
    let mut rank = if forward { q * h.count } else { (1.0 - q) * h.count };
    let mut count = 0.0;
    let mut bucket = None;
    for b in buckets.iter().filter(|b| b.count != 0.0) {
        bucket = Some(*b);
        count += b.count;
        if count >= rank {
            break;
        }
    }
    let Some(mut bucket) = bucket else { return f64::NAN };
    if !h.uses_custom_buckets() && bucket.lower < 0.0 && bucket.upper > 0.0 {
        if h.negative_buckets.is_empty() && !h.positive_buckets.is_empty() {
            bucket.lower = 0.0;
        } else if h.positive_buckets.is_empty() && !h.negative_buckets.is_empty() {
            bucket.upper = 0.0;
        }
    } else if h.uses_custom_buckets() {
        if bucket.lower == f64::NEG_INFINITY {
            if bucket.upper <= 0.0 {
                return bucket.upper;
            }
            bucket.lower = 0.0;
        } else if bucket.upper == f64::INFINITY {
            return bucket.lower;
        }
    }
    if count > h.count {
        count = h.count;
    }
    if count < rank {
        return bucket.upper;
    }
    if forward {
        rank -= count - bucket.count;
    } else {
        rank = count - rank;
    }
    let fraction = rank / bucket.count;
    if h.uses_custom_buckets() || (bucket.lower <= 0.0 && bucket.upper >= 0.0) {
        return bucket.lower + (bucket.upper - bucket.lower) * fraction;
    }
    let log_lower = bucket.lower.abs().log2();
    let log_upper = bucket.upper.abs().log2();
    if bucket.lower > 0.0 {
        return (log_lower + (log_upper - log_lower) * fraction).exp2();
    }
    -(log_upper + (log_lower - log_upper) * (1.0 - fraction)).exp2()
}

/// Prometheus's `HistogramFraction` for one native histogram: the share of observations in
/// `(lower, upper]`.
pub(super) fn fraction(lower: f64, upper: f64, h: &FloatHistogram) -> f64 {
    if h.count == 0.0 || lower.is_nan() || upper.is_nan() {
        return f64::NAN;
    }
    if lower >= upper {
        return 0.0;
    }
    let (mut rank, mut lower_rank, mut upper_rank) = (0.0, 0.0, 0.0);
    let (mut lower_set, mut upper_set) = (false, false);
    for mut b in h.buckets() {
        let zero_bucket = !h.uses_custom_buckets() && b.lower < 0.0 && b.upper > 0.0;
        if zero_bucket {
            if h.negative_buckets.is_empty() && !h.positive_buckets.is_empty() {
                b.lower = 0.0;
            } else if h.positive_buckets.is_empty() && !h.negative_buckets.is_empty() {
                b.upper = 0.0;
            }
        } else if h.uses_custom_buckets() && b.lower == f64::NEG_INFINITY && b.upper > 0.0 {
            b.lower = 0.0;
        }
        let linear = h.uses_custom_buckets() || (b.lower <= 0.0 && b.upper >= 0.0);
        let interpolate = |v: f64| -> f64 {
            if linear {
                if b.lower == f64::NEG_INFINITY {
                    return rank + b.count;
                }
                if b.upper == f64::INFINITY {
                    return rank;
                }
                return rank + b.count * (v - b.lower) / (b.upper - b.lower);
            }
            let (log_lower, log_upper, log_v) = (b.lower.abs().log2(), b.upper.abs().log2(), v.abs().log2());
            let fraction = if v > 0.0 {
                (log_v - log_lower) / (log_upper - log_lower)
            } else {
                1.0 - (log_v - log_upper) / (log_lower - log_upper)
            };
            rank + b.count * fraction
        };
        if !lower_set && b.lower >= lower {
            lower_rank = rank;
            lower_set = true;
        }
        if !upper_set && b.lower >= upper {
            upper_rank = rank;
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        if !lower_set && b.lower < lower && b.upper > lower {
            lower_rank = interpolate(lower);
            lower_set = true;
        }
        if !upper_set && b.lower < upper && b.upper > upper {
            upper_rank = interpolate(upper);
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        rank += b.count;
    }
    if !lower_set || lower_rank > h.count {
        lower_rank = h.count;
    }
    if !upper_set || upper_rank > h.count {
        upper_rank = h.count;
    }
    (upper_rank - lower_rank) / h.count
}

/// `sum` (or `avg` with `average`) of a group's histograms; `None` when their bucket layouts
/// cannot be combined (the caller warns).
pub(super) fn sum_histograms(
    hs: &[&FloatHistogram],
    average: bool,
) -> std::result::Result<FloatHistogram, Incompatible> {
    let mut sum = hs[0].clone();
    for h in &hs[1..] {
        sum.add(h)?;
    }
    if average {
        sum.div(hs.len() as f64);
    }
    sum.counter_reset_hint = CounterResetHint::Gauge;
    sum.compact(0);
    Ok(sum)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(text: &str) -> FloatHistogram {
        model::notation::parse_histogram(text).unwrap()
    }

    #[test]
    fn quantile_interpolates_exponentially() {
        let single = h("{{schema:0 sum:5 count:4 buckets:[1 2 1]}}");
        // The median falls halfway into (1, 2]: √2 on a log scale.
        assert!((quantile(0.5, &single) - std::f64::consts::SQRT_2).abs() < 1e-12);
        assert_eq!(quantile(1.0, &single), 4.0);
        assert_eq!(quantile(0.0, &single), 0.5);
        assert!(quantile(0.5, &h("{{}}")).is_nan());
        assert_eq!(quantile(-1.0, &single), f64::NEG_INFINITY);
    }

    #[test]
    fn fraction_is_the_inverse_of_quantile() {
        let single = h("{{schema:0 sum:5 count:4 buckets:[1 2 1]}}");
        assert!((fraction(1.0, 2.0, &single) - 0.5).abs() < 1e-12);
        assert!((fraction(0.0, 8.0, &single) - 1.0).abs() < 1e-12);
        let q = quantile(0.3, &single);
        assert!((fraction(f64::NEG_INFINITY, q, &single) - 0.3).abs() < 1e-12);
    }
}
