//! The PromQL function library: range-vector functions (with Prometheus's exact rate
//! extrapolation), math, time, label manipulation and classic-histogram quantiles.

use model::{Labels, METRIC_NAME, Sample};
use promql_parser::parser::{Call, Expr};

use super::aggregations::{average, kahan_sum, quantile, variance};
use super::annotations::Anchor;
use super::eval::{Evaluator, duration_ms, selector_matchers};
use super::histograms::go_float;
use super::value::{RSeries, VSample, Value};
use crate::error::{Error, Result};

/// A range-vector argument with the window it was read over.
pub(super) struct RangeArg {
    pub(super) series: Vec<RSeries>,
    pub(super) range_start: i64,
    pub(super) range_end: i64,
    pub(super) range_ms: i64,
}

fn eval_range_arg(ev: &Evaluator<'_>, expr: &Expr, t: i64) -> Result<RangeArg> {
    match expr {
        Expr::MatrixSelector(ms) => {
            let range_ms = duration_ms(&ms.range);
            let end = ev.reference_time(&ms.vs.at, &ms.vs.offset, t);
            Ok(RangeArg {
                series: ev.eval_matrix_selector(&ms.vs, range_ms, t)?,
                range_start: end - range_ms,
                range_end: end,
                range_ms,
            })
        }
        Expr::Subquery(sq) => {
            let range_ms = duration_ms(&sq.range);
            let end = ev.reference_time(&sq.at, &sq.offset, t);
            Ok(RangeArg { series: ev.eval_subquery(sq, t)?, range_start: end - range_ms, range_end: end, range_ms })
        }
        Expr::Paren(p) => eval_range_arg(ev, &p.expr, t),
        _ => Err(Error::BadData("expected a range vector argument".into())),
    }
}

/// Prometheus's `extrapolatedRate` (promql/functions.go): extrapolate to the window edges when
/// the samples reach close to them, never below a counter's zero point.
fn extrapolated_rate(arg: &RangeArg, samples: &[Sample], is_counter: bool, is_rate: bool) -> Option<f64> {
    if samples.len() < 2 {
        return None;
    }
    let first = samples[0];
    let last = samples[samples.len() - 1];
    let mut result = last.value - first.value;
    if is_counter {
        let mut prev = first.value;
        for s in &samples[1..] {
            if s.value < prev {
                result += prev;
            }
            prev = s.value;
        }
    }
    let zero_point = is_counter.then_some((first.value, result));
    Some(result * extrapolation_factor(arg, first.timestamp_ms, last.timestamp_ms, samples.len(), zero_point, is_rate))
}

/// The factor Prometheus scales a window's raw increase by: out to the window's edges when the
/// samples come close to them (half an average interval otherwise), never before a counter's
/// zero point (`counter_zero`: the first value and the raw increase), per second for `rate`.
pub(super) fn extrapolation_factor(
    arg: &RangeArg,
    first_t: i64,
    last_t: i64,
    n: usize,
    counter_zero: Option<(f64, f64)>,
    is_rate: bool,
) -> f64 {
    let mut duration_to_start = (first_t - arg.range_start) as f64 / 1000.0;
    let mut duration_to_end = (arg.range_end - last_t) as f64 / 1000.0;
    let sampled_interval = (last_t - first_t) as f64 / 1000.0;
    let average_between = sampled_interval / (n - 1) as f64;
    let threshold = average_between * 1.1;
    if duration_to_start >= threshold {
        duration_to_start = average_between / 2.0;
    }
    if let Some((first, result)) = counter_zero
        && result > 0.0
        && first >= 0.0
    {
        let duration_to_zero = sampled_interval * (first / result);
        if duration_to_zero < duration_to_start {
            duration_to_start = duration_to_zero;
        }
    }
    if duration_to_end >= threshold {
        duration_to_end = average_between / 2.0;
    }
    let mut factor = (sampled_interval + duration_to_start + duration_to_end) / sampled_interval;
    if is_rate {
        factor /= arg.range_ms as f64 / 1000.0;
    }
    factor
}

fn instant_delta(samples: &[Sample], is_rate: bool) -> Option<f64> {
    if samples.len() < 2 {
        return None;
    }
    let last = samples[samples.len() - 1];
    let prev = samples[samples.len() - 2];
    let mut result = if is_rate && last.value < prev.value { last.value } else { last.value - prev.value };
    if is_rate {
        let dt = last.timestamp_ms - prev.timestamp_ms;
        if dt == 0 {
            return None;
        }
        result /= dt as f64 / 1000.0;
    }
    Some(result)
}

/// Least-squares fit with the intercept at `intercept_t` (Prometheus's `linearRegression`).
fn linear_regression(samples: &[Sample], intercept_t: i64) -> (f64, f64) {
    let n = samples.len() as f64;
    let first = samples[0].value;
    if samples.iter().all(|s| s.value == first) {
        if first.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, first);
    }
    let (mut sx, mut sy, mut sxy, mut sx2) = (0.0, 0.0, 0.0, 0.0);
    for s in samples {
        let x = (s.timestamp_ms - intercept_t) as f64 / 1000.0;
        sx += x;
        sy += s.value;
        sxy += x * s.value;
        sx2 += x * x;
    }
    let cov = sxy - sx * sy / n;
    let var = sx2 - sx * sx / n;
    let slope = cov / var;
    (slope, sy / n - slope * sx / n)
}

fn over_time(name: &str, samples: &[Sample], param: f64) -> Option<f64> {
    let values: Vec<f64> = samples.iter().map(|s| s.value).collect();
    if values.is_empty() {
        return None;
    }
    Some(match name {
        "avg_over_time" => average(&values),
        "min_over_time" => values.iter().copied().fold(f64::NAN, |a, v| if a.is_nan() || v < a { v } else { a }),
        "max_over_time" => values.iter().copied().fold(f64::NAN, |a, v| if a.is_nan() || v > a { v } else { a }),
        "sum_over_time" => kahan_sum(&values),
        "count_over_time" => values.len() as f64,
        "last_over_time" => *values.last()?,
        "first_over_time" => values[0],
        "present_over_time" => 1.0,
        "stddev_over_time" => variance(&values).sqrt(),
        "stdvar_over_time" => variance(&values),
        "quantile_over_time" => quantile(param, &mut values.clone()),
        "resets" => samples.windows(2).filter(|w| w[1].value < w[0].value).count() as f64,
        "changes" => samples
            .windows(2)
            .filter(|w| !(w[1].value == w[0].value || (w[1].value.is_nan() && w[0].value.is_nan())))
            .count() as f64,
        _ => return None,
    })
}

fn math(name: &str, v: f64) -> Option<f64> {
    Some(match name {
        "abs" => v.abs(),
        "ceil" => v.ceil(),
        "floor" => v.floor(),
        "exp" => v.exp(),
        "ln" => v.ln(),
        "log2" => v.log2(),
        "log10" => v.log10(),
        "sqrt" => v.sqrt(),
        "sgn" => {
            if v > 0.0 {
                1.0
            } else if v < 0.0 {
                -1.0
            } else {
                v
            }
        }
        "sin" => v.sin(),
        "cos" => v.cos(),
        "tan" => v.tan(),
        "asin" => v.asin(),
        "acos" => v.acos(),
        "atan" => v.atan(),
        "sinh" => v.sinh(),
        "cosh" => v.cosh(),
        "tanh" => v.tanh(),
        "asinh" => v.asinh(),
        "acosh" => v.acosh(),
        "atanh" => v.atanh(),
        "deg" => v.to_degrees(),
        "rad" => v.to_radians(),
        _ => return None,
    })
}

/// Civil date of a Unix timestamp in seconds (UTC): (year, month, day, hour, minute, weekday,
/// day of year). Howard Hinnant's days-to-civil algorithm.
fn civil(seconds: f64) -> (i64, u32, u32, u32, u32, u32, u32) {
    let secs = seconds.floor() as i64;
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy_mar = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy_mar + 2) / 153;
    let day = (doy_mar - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    let weekday = (days + 4).rem_euclid(7) as u32;
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let cumulative = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
    let doy = cumulative[(month - 1) as usize] + day + u32::from(leap && month > 2);
    (year, month, day, (rem / 3600) as u32, ((rem % 3600) / 60) as u32, weekday, doy)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn time_fn(name: &str, v: f64) -> Option<f64> {
    if v.is_nan() || v.is_infinite() {
        return Some(f64::NAN);
    }
    let (year, month, day, hour, minute, weekday, doy) = civil(v);
    Some(match name {
        "day_of_month" => f64::from(day),
        "day_of_week" => f64::from(weekday),
        "day_of_year" => f64::from(doy),
        "days_in_month" => f64::from(days_in_month(year, month)),
        "hour" => f64::from(hour),
        "minute" => f64::from(minute),
        "month" => f64::from(month),
        "year" => year as f64,
        _ => return None,
    })
}

/// Prometheus's info that `rate`/`increase` over a selected series whose name has no counter
/// suffix may not be reading a counter.
fn possible_non_counter(ev: &Evaluator<'_>, call: &Call, labels: &Labels) {
    let Some(Expr::MatrixSelector(_)) = call.args.args.first().map(|a| a.as_ref()) else { return };
    let Some(name) = labels.get(METRIC_NAME) else { return };
    if !["_total", "_sum", "_count", "_bucket"].iter().any(|suffix| name.ends_with(suffix)) {
        let message =
            format!("metric might not be a counter, name does not end in _total/_sum/_count/_bucket: {name:?}");
        ev.notes.info(Anchor::CallArg(call, 0), &message);
    }
}

pub(super) fn arg(call: &Call, i: usize) -> Result<&Expr> {
    call.args
        .args
        .get(i)
        .map(|b| b.as_ref())
        .ok_or_else(|| Error::BadData(format!("{}: missing argument {}", call.func.name, i + 1)))
}

/// Applies a float function; histogram samples are left out, as upstream does.
fn map_vector(v: Vec<VSample>, t: i64, f: impl Fn(f64) -> f64) -> Value {
    Value::Vector(v.into_iter().filter(|s| s.h.is_none()).map(|s| VSample::float(s.labels, t, f(s.v), true)).collect())
}

pub(super) fn eval_call(ev: &Evaluator<'_>, call: &Call, t: i64) -> Result<Value> {
    let name = call.func.name;
    match name {
        "rate" | "increase" | "delta" | "irate" | "idelta" => {
            let range = eval_range_arg(ev, arg(call, 0)?, t)?;
            let mut out = Vec::new();
            for s in &range.series {
                if !s.histograms.is_empty() {
                    if let Some(h) = super::native::histogram_rate(ev, call, &range, s, name)? {
                        out.push(VSample::histogram(s.labels.clone(), t, h, true));
                    }
                    continue;
                }
                let v = match name {
                    "rate" => extrapolated_rate(&range, &s.samples, true, true),
                    "increase" => extrapolated_rate(&range, &s.samples, true, false),
                    "delta" => extrapolated_rate(&range, &s.samples, false, false),
                    "irate" => instant_delta(&s.samples, true),
                    _ => instant_delta(&s.samples, false),
                };
                if let Some(v) = v {
                    if matches!(name, "rate" | "increase") {
                        possible_non_counter(ev, call, &s.labels);
                    }
                    out.push(VSample::float(s.labels.clone(), t, v, true));
                }
            }
            Ok(Value::Vector(out))
        }
        "deriv" | "predict_linear" => {
            let range = eval_range_arg(ev, arg(call, 0)?, t)?;
            let horizon = if name == "predict_linear" { ev.eval_scalar(arg(call, 1)?, t)? } else { 0.0 };
            let mut out = Vec::new();
            for s in range.series.iter().filter(|s| s.samples.len() >= 2) {
                let v = if name == "deriv" {
                    linear_regression(&s.samples, s.samples[0].timestamp_ms).0
                } else {
                    let (slope, intercept) = linear_regression(&s.samples, t);
                    slope * horizon + intercept
                };
                out.push(VSample::float(s.labels.clone(), t, v, true));
            }
            Ok(Value::Vector(out))
        }
        "avg_over_time" | "min_over_time" | "max_over_time" | "sum_over_time" | "count_over_time"
        | "last_over_time" | "first_over_time" | "present_over_time" | "stddev_over_time" | "stdvar_over_time"
        | "quantile_over_time" | "resets" | "changes" => {
            let (param, range_expr) = if name == "quantile_over_time" {
                (ev.eval_scalar(arg(call, 0)?, t)?, arg(call, 1)?)
            } else {
                (0.0, arg(call, 0)?)
            };
            let range = eval_range_arg(ev, range_expr, t)?;
            if name == "quantile_over_time" && !range.series.is_empty() && !(0.0..=1.0).contains(&param) {
                let message = format!("quantile value should be between 0 and 1, got {}", go_float(param));
                ev.notes.warn(Anchor::CallArg(call, 0), &message);
            }
            let keep_name = name == "last_over_time" || name == "first_over_time";
            let mut out = Vec::new();
            for s in &range.series {
                let drop_name = s.drop_name || !keep_name;
                if !s.histograms.is_empty() {
                    if let Some(sample) = super::native::over_time(name, s, t, drop_name) {
                        out.push(sample);
                    }
                    continue;
                }
                if let Some(v) = over_time(name, &s.samples, param) {
                    out.push(VSample::float(s.labels.clone(), t, v, drop_name));
                }
            }
            Ok(Value::Vector(out))
        }
        "absent_over_time" => {
            let range = eval_range_arg(ev, arg(call, 0)?, t)?;
            if !range.series.is_empty() {
                return Ok(Value::Vector(Vec::new()));
            }
            Ok(Value::Vector(vec![VSample::float(absent_labels(arg(call, 0)?), t, 1.0, false)]))
        }
        "absent" => {
            let v = ev.eval_vector(arg(call, 0)?, t)?;
            if !v.is_empty() {
                return Ok(Value::Vector(Vec::new()));
            }
            Ok(Value::Vector(vec![VSample::float(absent_labels(arg(call, 0)?), t, 1.0, false)]))
        }
        "time" => Ok(Value::Scalar(t as f64 / 1000.0)),
        "pi" => Ok(Value::Scalar(std::f64::consts::PI)),
        "vector" => {
            let v = ev.eval_scalar(arg(call, 0)?, t)?;
            Ok(Value::Vector(vec![VSample::float(Labels::empty(), t, v, false)]))
        }
        "scalar" => {
            let v = ev.eval_vector(arg(call, 0)?, t)?;
            Ok(Value::Scalar(if v.len() == 1 { v[0].v } else { f64::NAN }))
        }
        "timestamp" => {
            let v = ev.eval_vector(arg(call, 0)?, t)?;
            Ok(Value::Vector(v.into_iter().map(|s| VSample::float(s.labels, t, s.t as f64 / 1000.0, true)).collect()))
        }
        "sort" | "sort_desc" => {
            if ev.is_range_query() {
                let message = "sort is ineffective for range queries since results are always ordered by labels";
                ev.notes.warn(Anchor::Call(call), message);
            }
            let mut v = ev.eval_vector(arg(call, 0)?, t)?;
            // Histograms have no order: left out, as upstream.
            v.retain(|s| s.h.is_none());
            // NaN sorts last either way, as in Prometheus.
            v.sort_by(|a, b| match (a.v.is_nan(), b.v.is_nan()) {
                (true, true) => std::cmp::Ordering::Equal,
                (true, false) => std::cmp::Ordering::Greater,
                (false, true) => std::cmp::Ordering::Less,
                _ if name == "sort" => a.v.total_cmp(&b.v),
                _ => b.v.total_cmp(&a.v),
            });
            Ok(Value::Vector(v))
        }
        "clamp" | "clamp_min" | "clamp_max" => {
            let v = ev.eval_vector(arg(call, 0)?, t)?;
            let (lo, hi) = match name {
                "clamp" => (ev.eval_scalar(arg(call, 1)?, t)?, ev.eval_scalar(arg(call, 2)?, t)?),
                "clamp_min" => (ev.eval_scalar(arg(call, 1)?, t)?, f64::NAN),
                _ => (f64::NAN, ev.eval_scalar(arg(call, 1)?, t)?),
            };
            if name == "clamp" && hi < lo {
                return Ok(Value::Vector(Vec::new()));
            }
            Ok(map_vector(v, t, |x| {
                let x = if lo.is_nan() && name != "clamp" { x } else { f64::max(lo, x) };
                if hi.is_nan() && name != "clamp" { x } else { f64::min(hi, x) }
            }))
        }
        "round" => {
            let v = ev.eval_vector(arg(call, 0)?, t)?;
            let to_nearest = match call.args.args.get(1) {
                Some(e) => ev.eval_scalar(e, t)?,
                None => 1.0,
            };
            let inverse = 1.0 / to_nearest;
            Ok(map_vector(v, t, |x| (x * inverse + 0.5).floor() / inverse))
        }
        "day_of_month" | "day_of_week" | "day_of_year" | "days_in_month" | "hour" | "minute" | "month" | "year" => {
            let v = match call.args.args.first() {
                Some(e) => ev.eval_vector(e, t)?,
                None => vec![VSample::float(Labels::empty(), t, t as f64 / 1000.0, false)],
            };
            Ok(map_vector(v, t, |x| time_fn(name, x).unwrap_or(f64::NAN)))
        }
        "label_replace" => label_replace(ev, call, t),
        "label_join" => label_join(ev, call, t),
        "histogram_quantile" => super::histograms::histogram_quantile(ev, call, t),
        "histogram_fraction" => super::histograms::histogram_fraction(ev, call, t),
        "histogram_count" | "histogram_sum" | "histogram_avg" | "histogram_stddev" | "histogram_stdvar" => {
            super::native::histogram_property(ev, call, t)
        }
        _ => {
            if math(name, 0.0).is_some() {
                let v = ev.eval_vector(arg(call, 0)?, t)?;
                return Ok(map_vector(v, t, |x| math(name, x).unwrap_or(f64::NAN)));
            }
            Err(Error::BadData(format!("function {name:?} is not supported yet")))
        }
    }
}

/// `absent()` reports the labels its selector pinned with equality matchers; a label named by
/// more than one matcher (of any kind) is left out, as in Prometheus.
fn absent_labels(expr: &Expr) -> Labels {
    let vs = match expr {
        Expr::VectorSelector(vs) => vs,
        Expr::MatrixSelector(ms) => &ms.vs,
        _ => return Labels::empty(),
    };
    let groups = selector_matchers(vs);
    let Some(matchers) = groups.first() else { return Labels::empty() };
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut duplicated = std::collections::HashSet::new();
    let mut seen = std::collections::HashSet::new();
    for m in matchers.iter().filter(|m| m.name != METRIC_NAME) {
        if !seen.insert(m.name.clone()) {
            duplicated.insert(m.name.clone());
        }
        if matches!(m.op, promql_parser::label::MatchOp::Equal) {
            pairs.push((m.name.clone(), m.value.clone()));
        }
    }
    Labels::from_pairs(pairs.into_iter().filter(|(n, _)| !duplicated.contains(n)))
}

fn label_replace(ev: &Evaluator<'_>, call: &Call, t: i64) -> Result<Value> {
    let v = ev.eval_vector(arg(call, 0)?, t)?;
    let dst = ev.eval_string(arg(call, 1)?, t)?;
    let replacement = ev.eval_string(arg(call, 2)?, t)?;
    let src = ev.eval_string(arg(call, 3)?, t)?;
    let pattern = ev.eval_string(arg(call, 4)?, t)?;
    let re = ev
        .anchored_regex(&pattern)
        .map_err(|e| Error::BadData(format!("invalid regular expression in label_replace(): {pattern}: {e}")))?;
    if !model::labels::is_valid_label_name(&dst) {
        return Err(Error::BadData(format!("invalid destination label name in label_replace(): {dst}")));
    }
    let mut out = Vec::with_capacity(v.len());
    for s in v {
        let value = s.labels.get(&src).unwrap_or("");
        let labels = match re.captures(value) {
            Some(caps) => {
                let mut expanded = String::new();
                caps.expand(&replacement, &mut expanded);
                let mut b = s.labels.to_builder();
                b.set(dst.clone(), expanded);
                b.build()
            }
            None => s.labels,
        };
        // Writing `__name__` makes it the result's name: no longer removed.
        let drop_name = s.drop_name && dst != METRIC_NAME;
        out.push(VSample { labels, t: s.t, v: s.v, drop_name, h: s.h });
    }
    Ok(Value::Vector(out))
}

fn label_join(ev: &Evaluator<'_>, call: &Call, t: i64) -> Result<Value> {
    let v = ev.eval_vector(arg(call, 0)?, t)?;
    let dst = ev.eval_string(arg(call, 1)?, t)?;
    let sep = ev.eval_string(arg(call, 2)?, t)?;
    let mut srcs = Vec::new();
    for e in call.args.args.iter().skip(3) {
        srcs.push(ev.eval_string(e, t)?);
    }
    if !model::labels::is_valid_label_name(&dst) {
        return Err(Error::BadData(format!("invalid destination label name in label_join(): {dst}")));
    }
    Ok(Value::Vector(
        v.into_iter()
            .map(|s| {
                let joined: Vec<&str> = srcs.iter().map(|n| s.labels.get(n).unwrap_or("")).collect();
                let mut b = s.labels.to_builder();
                b.set(dst.clone(), joined.join(&sep));
                VSample { labels: b.build(), t: s.t, v: s.v, drop_name: s.drop_name && dst != METRIC_NAME, h: s.h }
            })
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        // 2024-02-29T13:45:00Z is a Thursday, day 60 of a leap year.
        let (y, m, d, h, min, wd, doy) = civil(1_709_214_300.0);
        assert_eq!((y, m, d, h, min, wd, doy), (2024, 2, 29, 13, 45, 4, 60));
        assert_eq!(civil(0.0).0, 1970);
        assert_eq!(days_in_month(2023, 2), 28);
    }
}
