//! Classic histograms (`le` buckets): `histogram_quantile` and `histogram_fraction` with
//! Prometheus's bucket clean-up (equal bounds merged, float noise and non-monotonic counts
//! repaired) and its annotations.

use std::collections::HashMap;

use model::{Labels, METRIC_NAME};
use promql_parser::parser::Call;

use super::annotations::Anchor;
use super::eval::Evaluator;
use super::functions::arg;
use super::value::{VSample, Value};
use crate::error::Result;

pub(super) use model::notation::go_g as go_float;

/// ` for metric name "x"` when the series has a name.
fn for_metric(labels: &Labels) -> String {
    labels.get(METRIC_NAME).map(|n| format!(" for metric name {n:?}")).unwrap_or_default()
}

/// Groups a vector of classic-histogram buckets by their labels without `le` (`__name__` goes
/// at the end, delayed: two histograms alike but for their names then collide, as upstream);
/// a series without a parsable `le` is left out with a warning pointing at argument `arg_index`.
fn classic_histograms(
    ev: &Evaluator<'_>,
    call: &Call,
    arg_index: usize,
    v: Vec<VSample>,
) -> Vec<(Labels, Vec<(f64, f64)>)> {
    let mut groups: HashMap<Labels, Vec<(f64, f64)>> = HashMap::new();
    let mut order = Vec::new();
    for s in v {
        let le = s.labels.get("le").unwrap_or("");
        let Ok(upper) = parse_go_float(le) else {
            let message =
                format!("bucket label \"le\" is missing or has a malformed value of {le:?}{}", for_metric(&s.labels));
            ev.notes.warn(Anchor::CallArg(call, arg_index), &message);
            continue;
        };
        let mut b = s.labels.to_builder();
        b.remove("le");
        let key = b.build();
        groups
            .entry(key.clone())
            .or_insert_with(|| {
                order.push(key);
                Vec::new()
            })
            .push((upper, s.v));
    }
    order.into_iter().map(|key| (key.clone(), groups.remove(&key).unwrap_or_default())).collect()
}

/// Classic-histogram quantile over `le` buckets (Prometheus's `BucketQuantile`).
pub(super) fn histogram_quantile(ev: &Evaluator<'_>, call: &Call, t: i64) -> Result<Value> {
    let q = ev.eval_scalar(arg(call, 0)?, t)?;
    if q.is_nan() || !(0.0..=1.0).contains(&q) {
        let message = format!("quantile value should be between 0 and 1, got {}", go_float(q));
        ev.notes.warn(Anchor::CallArg(call, 0), &message);
    }
    let v = ev.eval_vector(arg(call, 1)?, t)?;
    let (native, v): (Vec<VSample>, Vec<VSample>) = v.into_iter().partition(|s| s.h.is_some());
    let mut out: Vec<VSample> = native
        .into_iter()
        .filter_map(|s| Some(VSample::float(s.labels, t, super::native::quantile(q, s.h.as_deref()?), true)))
        .collect();
    for (key, buckets) in classic_histograms(ev, call, 1, v) {
        let (v, forced) = bucket_quantile(q, buckets);
        if forced {
            let message = format!(
                "input to histogram_quantile needed to be fixed for monotonicity (see https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile){}",
                for_metric(&key)
            );
            ev.notes.info(Anchor::CallArg(call, 1), &message);
        }
        out.push(VSample::float(key, t, v, true));
    }
    Ok(Value::Vector(out))
}

/// `histogram_fraction(lower, upper, buckets)` on classic buckets.
pub(super) fn histogram_fraction(ev: &Evaluator<'_>, call: &Call, t: i64) -> Result<Value> {
    let lower = ev.eval_scalar(arg(call, 0)?, t)?;
    let upper = ev.eval_scalar(arg(call, 1)?, t)?;
    let v = ev.eval_vector(arg(call, 2)?, t)?;
    let (native, v): (Vec<VSample>, Vec<VSample>) = v.into_iter().partition(|s| s.h.is_some());
    let mut out: Vec<VSample> = native
        .into_iter()
        .filter_map(|s| {
            let value = super::native::fraction(lower, upper, s.h.as_deref()?);
            Some(VSample::float(s.labels, t, value, true))
        })
        .collect();
    out.extend(
        classic_histograms(ev, call, 2, v)
            .into_iter()
            .map(|(key, buckets)| VSample::float(key, t, bucket_fraction(lower, upper, buckets), true)),
    );
    Ok(Value::Vector(out))
}

/// Sorts buckets by bound, merges equal bounds, evens out float noise (relative 1e-12) and
/// forces counts to be monotonic (the bool says whether that was needed); None when the highest
/// bucket is not `+Inf`.
fn normalize_buckets(mut buckets: Vec<(f64, f64)>) -> Option<(Vec<(f64, f64)>, bool)> {
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    if buckets.last().is_none_or(|b| b.0 != f64::INFINITY) {
        return None;
    }
    let mut merged: Vec<(f64, f64)> = Vec::new();
    for (upper, count) in buckets {
        match merged.last_mut() {
            Some(last) if last.0 == upper => last.1 += count,
            _ => merged.push((upper, count)),
        }
    }
    let mut prev = merged[0].1;
    for b in merged.iter_mut().skip(1) {
        let delta = (b.1 - prev).abs();
        if delta == 0.0 {
            continue;
        }
        if delta / b.1 <= 1e-12 {
            b.1 = prev;
        } else {
            prev = b.1;
        }
    }
    let mut forced = false;
    let mut max = merged[0].1;
    for b in merged.iter_mut().skip(1) {
        if b.1 > max {
            max = b.1;
        } else if b.1 < max {
            b.1 = max;
            forced = true;
        }
    }
    Some((merged, forced))
}

/// The share of observations in `(lower, upper]`, the way Prometheus reads classic buckets as a
/// histogram with custom bounds: the first bucket starts at 0 when its bound is positive (else
/// at -Inf); inside a finite bucket the count is interpolated linearly; a bound inside a bucket
/// of infinite width counts at that bucket's finite edge.
fn bucket_fraction(lower: f64, upper: f64, buckets: Vec<(f64, f64)>) -> f64 {
    let Some((buckets, _)) = normalize_buckets(buckets) else { return f64::NAN };
    let total = buckets[buckets.len() - 1].1;
    if total == 0.0 || lower.is_nan() || upper.is_nan() {
        return f64::NAN;
    }
    if lower >= upper {
        return 0.0;
    }
    // Rank (cumulative count) at value `x`.
    let rank_at = |x: f64| -> f64 {
        let mut below = 0.0;
        for (i, &(bucket_upper, cumulative)) in buckets.iter().enumerate() {
            let bucket_lower = match i {
                0 if bucket_upper > 0.0 => 0.0,
                0 => f64::NEG_INFINITY,
                _ => buckets[i - 1].0,
            };
            let count = cumulative - below;
            if x <= bucket_lower {
                return below;
            }
            if x < bucket_upper {
                return if bucket_lower == f64::NEG_INFINITY {
                    cumulative
                } else if bucket_upper == f64::INFINITY {
                    below
                } else {
                    below + count * (x - bucket_lower) / (bucket_upper - bucket_lower)
                };
            }
            below = cumulative;
        }
        total
    };
    (rank_at(upper).min(total) - rank_at(lower).min(total)) / total
}

fn parse_go_float(s: &str) -> std::result::Result<f64, ()> {
    match s.trim() {
        "+Inf" | "Inf" | "+inf" | "inf" => Ok(f64::INFINITY),
        "-Inf" | "-inf" => Ok(f64::NEG_INFINITY),
        other => other.parse::<f64>().map_err(|_| ()),
    }
}

/// The quantile and whether the buckets had to be forced monotonic.
fn bucket_quantile(q: f64, buckets: Vec<(f64, f64)>) -> (f64, bool) {
    if q.is_nan() {
        return (f64::NAN, false);
    }
    if q < 0.0 {
        return (f64::NEG_INFINITY, false);
    }
    if q > 1.0 {
        return (f64::INFINITY, false);
    }
    let Some((merged, forced)) = normalize_buckets(buckets) else { return (f64::NAN, false) };
    if merged.len() < 2 {
        return (f64::NAN, false);
    }
    let observations = merged[merged.len() - 1].1;
    if observations == 0.0 {
        return (f64::NAN, false);
    }
    let mut rank = q * observations;
    let b = merged[..merged.len() - 1].partition_point(|b| b.1 < rank);
    if b == merged.len() - 1 {
        return (merged[merged.len() - 2].0, forced);
    }
    if b == 0 && merged[0].0 <= 0.0 {
        return (merged[0].0, forced);
    }
    let (mut start, end, mut count) = (0.0, merged[b].0, merged[b].1);
    if b > 0 {
        start = merged[b - 1].0;
        count -= merged[b - 1].1;
        rank -= merged[b - 1].1;
    }
    (start + (end - start) * (rank / count), forced)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_float_matches_go_percent_g() {
        let cases = [
            (f64::NAN, "NaN"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (0.0, "0"),
            (2.0, "2"),
            (-0.1, "-0.1"),
            (1.01, "1.01"),
            (123_456.0, "123456"),
            (1e6, "1e+06"),
            (1_234_567.0, "1.234567e+06"),
            (0.0001, "0.0001"),
            (0.000_015, "1.5e-05"),
            (-2.5e-300, "-2.5e-300"),
        ];
        for (v, want) in cases {
            assert_eq!(go_float(v), want, "{v}");
        }
    }

    #[test]
    fn bucket_quantile_interpolates() {
        let buckets = vec![(0.1, 10.0), (0.5, 20.0), (f64::INFINITY, 20.0)];
        assert!((bucket_quantile(0.75, buckets.clone()).0 - 0.3).abs() < 1e-9);
        assert_eq!(bucket_quantile(1.0, buckets), (0.5, false));
        // A count that drops is raised to the one before, and said so.
        let dropping = vec![(0.1, 10.0), (0.5, 8.0), (f64::INFINITY, 20.0)];
        assert!(bucket_quantile(0.5, dropping).1);
    }

    #[test]
    fn bucket_fraction_interpolates_finite_buckets_only() {
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
        let positive = vec![(1.0, 1.0), (2.0, 3.0), (3.0, 6.0), (f64::INFINITY, 100.0)];
        // [0, 1] whole plus half of (1, 2].
        assert!(close(bucket_fraction(0.0, 1.5, positive.clone()), 0.02));
        // Inside the +Inf bucket a bound sits at its finite edge.
        assert!(close(bucket_fraction(400.0, f64::INFINITY, positive.clone()), 0.94));
        assert!(close(bucket_fraction(4.0, 5.0, positive.clone()), 0.0));
        assert!(close(bucket_fraction(3.0, 2.0, positive.clone()), 0.0));
        assert!(bucket_fraction(f64::NAN, 1.0, positive).is_nan());
        let negative = vec![(-3.0, 10.0), (-2.0, 12.0), (-1.0, 15.0), (f64::INFINITY, 100.0)];
        // The first bucket reaches down to -Inf: nothing of it is counted from inside.
        assert!(close(bucket_fraction(-4.0, -2.0, negative.clone()), 0.02));
        assert!(close(bucket_fraction(f64::NEG_INFINITY, -1.5, negative), 0.135));
        // No +Inf bucket or no observations: NaN.
        assert!(bucket_fraction(0.0, 1.0, vec![(1.0, 1.0)]).is_nan());
        assert!(bucket_fraction(0.0, 1.0, vec![(1.0, 0.0), (f64::INFINITY, 0.0)]).is_nan());
    }

    /// Buckets with increasing bounds from `first`, cumulative counts, and the `+Inf` bucket.
    fn buckets_strategy() -> impl proptest::strategy::Strategy<Value = Vec<(f64, f64)>> {
        use proptest::prelude::*;
        (-5i32..5, proptest::collection::vec((1u8..4, 0u8..10), 0..6), 0u8..10).prop_map(|(first, steps, tail)| {
            let (mut bound, mut count) = (f64::from(first), 0.0);
            let mut out = Vec::new();
            for (width, n) in steps {
                bound += f64::from(width);
                count += f64::from(n);
                out.push((bound, count));
            }
            out.push((f64::INFINITY, count + f64::from(tail)));
            out
        })
    }

    proptest::proptest! {
        #[test]
        fn bucket_fraction_is_a_share_and_adds_up(
            buckets in buckets_strategy(),
            a in -10.0f64..10.0,
            b in -10.0f64..10.0,
            c in -10.0f64..10.0,
        ) {
            let mut xs = [a, b, c];
            xs.sort_by(f64::total_cmp);
            let [lo, mid, hi] = xs;
            let whole = bucket_fraction(lo, hi, buckets.clone());
            if buckets.last().is_some_and(|b| b.1 == 0.0) {
                proptest::prop_assert!(whole.is_nan());
            } else {
                proptest::prop_assert!((0.0..=1.0).contains(&whole), "{whole}");
                let parts = bucket_fraction(lo, mid, buckets.clone()) + bucket_fraction(mid, hi, buckets.clone());
                proptest::prop_assert!((parts - whole).abs() < 1e-9, "{parts} vs {whole}");
                let all = bucket_fraction(f64::NEG_INFINITY, f64::INFINITY, buckets);
                proptest::prop_assert!((all - 1.0).abs() < 1e-12, "{all}");
            }
        }
    }
}
