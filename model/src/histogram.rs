//! Native histograms as PromQL sees them: Prometheus's `FloatHistogram` (exponential buckets of a
//! schema, or custom bounds with schema -53), with the arithmetic the engine needs (scalar
//! multiply/divide, add/subtract with schema and zero-bucket reconciliation), span compaction,
//! counter-reset detection and bucket iteration with bounds. Counts are floats: a histogram
//! that went through `rate` or `avg` is no longer integral.

/// The schema of histograms with custom bucket bounds (`custom_values`), as in Prometheus.
pub const CUSTOM_BUCKETS_SCHEMA: i32 = -53;

/// A run of consecutive buckets: `offset` buckets after the previous span's end (for the first
/// span: the index of its first bucket), `length` buckets long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub offset: i32,
    pub length: u32,
}

/// What the producer says about a counter reset before this sample (Prometheus's
/// `CounterResetHint`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum CounterResetHint {
    #[default]
    Unknown,
    Reset,
    NotReset,
    /// A gauge histogram: its counts may go down without a reset.
    Gauge,
}

/// Why two histograms could not be combined.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Incompatible {
    /// One uses exponential buckets, the other custom bounds.
    MixedSchemas,
    /// Both use custom bounds, different ones.
    CustomBounds,
}

/// One bucket with its bounds: `(lower, upper]` for positive and custom buckets, `[lower, upper)`
/// for negative ones, `[lower, upper]` for the zero bucket.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bucket {
    pub lower: f64,
    pub upper: f64,
    pub count: f64,
    pub lower_inclusive: bool,
    pub upper_inclusive: bool,
}

/// A native histogram sample with float counts.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct FloatHistogram {
    pub counter_reset_hint: CounterResetHint,
    pub schema: i32,
    pub zero_threshold: f64,
    pub zero_count: f64,
    pub count: f64,
    pub sum: f64,
    pub positive_spans: Vec<Span>,
    pub negative_spans: Vec<Span>,
    /// Absolute counts, one per bucket the spans describe.
    pub positive_buckets: Vec<f64>,
    pub negative_buckets: Vec<f64>,
    /// Upper bounds of the custom buckets (schema -53), ascending; the last bucket reaches +Inf.
    pub custom_values: Vec<f64>,
}

/// One histogram sample at a millisecond Unix timestamp.
#[derive(Clone, Debug, PartialEq)]
pub struct HistogramSample {
    pub timestamp_ms: i64,
    pub h: FloatHistogram,
}

/// `(bucket index, count)` pairs of spans and buckets, ascending by index.
pub fn expand_spans(spans: &[Span], buckets: &[f64]) -> Vec<(i32, f64)> {
    let mut out = Vec::with_capacity(buckets.len());
    let mut idx = 0i32;
    let mut counts = buckets.iter();
    for (i, span) in spans.iter().enumerate() {
        idx = if i == 0 { span.offset } else { idx + span.offset };
        for _ in 0..span.length {
            let Some(&c) = counts.next() else { return out };
            out.push((idx, c));
            idx += 1;
        }
    }
    out
}

/// Spans and buckets for ascending `(index, count)` pairs; runs of up to `max_empty` missing
/// indices between two pairs are filled with zero buckets instead of starting a new span.
fn collapse(pairs: &[(i32, f64)], max_empty: usize) -> (Vec<Span>, Vec<f64>) {
    let mut spans: Vec<Span> = Vec::new();
    let mut buckets = Vec::with_capacity(pairs.len());
    let mut next_idx = 0i32;
    for &(idx, count) in pairs {
        match spans.last_mut() {
            Some(last) if (idx - next_idx) as i64 <= max_empty as i64 => {
                buckets.extend(std::iter::repeat_n(0.0, (idx - next_idx) as usize));
                last.length += (idx - next_idx) as u32 + 1;
            }
            Some(_) => spans.push(Span { offset: idx - next_idx, length: 1 }),
            None => spans.push(Span { offset: idx, length: 1 }),
        }
        buckets.push(count);
        next_idx = idx + 1;
    }
    (spans, buckets)
}

/// The upper bound of exponential bucket `idx` at `schema`: 2^(idx * 2^-schema).
pub fn exponential_bound(idx: i32, schema: i32) -> f64 {
    if schema < 0 {
        let exp = i64::from(idx) << (-schema);
        if exp >= 1024 {
            return f64::MAX;
        }
        return 2f64.powi(exp as i32);
    }
    let frac_idx = idx & ((1 << schema) - 1);
    let exp = (idx >> schema) + 1;
    let frac = (f64::from(frac_idx) / f64::from(1 << schema)).exp2() / 2.0;
    if frac == 0.5 && exp == 1025 {
        return f64::MAX;
    }
    frac * 2f64.powi(exp)
}

/// The index bucket `idx` of schema `from` falls into at the coarser schema `to`.
fn reduce_index(idx: i32, from: i32, to: i32) -> i32 {
    ((idx - 1) >> (from - to)) + 1
}

impl FloatHistogram {
    pub fn uses_custom_buckets(&self) -> bool {
        self.schema == CUSTOM_BUCKETS_SCHEMA
    }

    pub fn positive(&self) -> Vec<(i32, f64)> {
        expand_spans(&self.positive_spans, &self.positive_buckets)
    }

    pub fn negative(&self) -> Vec<(i32, f64)> {
        expand_spans(&self.negative_spans, &self.negative_buckets)
    }

    fn set_positive(&mut self, pairs: &[(i32, f64)]) {
        (self.positive_spans, self.positive_buckets) = collapse(pairs, 0);
    }

    fn set_negative(&mut self, pairs: &[(i32, f64)]) {
        (self.negative_spans, self.negative_buckets) = collapse(pairs, 0);
    }

    /// Multiplies every count and the sum by `factor`.
    pub fn mul(&mut self, factor: f64) -> &mut Self {
        self.count *= factor;
        self.sum *= factor;
        self.zero_count *= factor;
        self.positive_buckets.iter_mut().for_each(|b| *b *= factor);
        self.negative_buckets.iter_mut().for_each(|b| *b *= factor);
        self
    }

    /// Divides every count and the sum by `divisor` (0 gives infinities and NaNs and drops the
    /// buckets, as upstream).
    pub fn div(&mut self, divisor: f64) -> &mut Self {
        self.count /= divisor;
        self.sum /= divisor;
        self.zero_count /= divisor;
        if divisor == 0.0 {
            // As upstream: division by zero leaves no buckets.
            self.positive_spans.clear();
            self.negative_spans.clear();
            self.positive_buckets.clear();
            self.negative_buckets.clear();
            return self;
        }
        self.positive_buckets.iter_mut().for_each(|b| *b /= divisor);
        self.negative_buckets.iter_mut().for_each(|b| *b /= divisor);
        self
    }

    /// `self += other`: the result has the coarser schema and the wider zero bucket.
    pub fn add(&mut self, other: &FloatHistogram) -> Result<&mut Self, Incompatible> {
        self.combine(other, 1.0)
    }

    /// `self -= other`, as [`Self::add`].
    pub fn sub(&mut self, other: &FloatHistogram) -> Result<&mut Self, Incompatible> {
        self.combine(other, -1.0)
    }

    fn combine(&mut self, other: &FloatHistogram, sign: f64) -> Result<&mut Self, Incompatible> {
        match (self.uses_custom_buckets(), other.uses_custom_buckets()) {
            (true, true) if self.custom_values != other.custom_values => return Err(Incompatible::CustomBounds),
            (true, false) | (false, true) => return Err(Incompatible::MixedSchemas),
            _ => {}
        }
        let mut other = other.clone();
        if !self.uses_custom_buckets() {
            let schema = self.schema.min(other.schema);
            self.reduce_to_schema(schema);
            other.reduce_to_schema(schema);
            let threshold = reconciled_threshold(self, &other);
            self.widen_zero_bucket(threshold);
            other.widen_zero_bucket(threshold);
        }
        self.count += sign * other.count;
        self.sum += sign * other.sum;
        self.zero_count += sign * other.zero_count;
        let pos = merge(&self.positive(), &other.positive(), sign);
        let neg = merge(&self.negative(), &other.negative(), sign);
        self.set_positive(&pos);
        self.set_negative(&neg);
        Ok(self)
    }

    /// A copy at a coarser (or the same) schema: buckets merge by index.
    pub fn reduce_to_schema(&mut self, schema: i32) {
        if self.uses_custom_buckets() || schema == CUSTOM_BUCKETS_SCHEMA || schema >= self.schema {
            return;
        }
        let from = self.schema;
        let reduce = |pairs: Vec<(i32, f64)>| {
            let mut out: Vec<(i32, f64)> = Vec::with_capacity(pairs.len());
            for (idx, c) in pairs {
                let target = reduce_index(idx, from, schema);
                match out.last_mut() {
                    Some(last) if last.0 == target => last.1 += c,
                    _ => out.push((target, c)),
                }
            }
            out
        };
        let pos = reduce(self.positive());
        let neg = reduce(self.negative());
        self.schema = schema;
        self.set_positive(&pos);
        self.set_negative(&neg);
    }

    /// Moves every bucket that lies within `threshold` of zero into the zero bucket.
    fn widen_zero_bucket(&mut self, threshold: f64) {
        if threshold <= self.zero_threshold || self.uses_custom_buckets() {
            return;
        }
        let schema = self.schema;
        let mut moved = 0.0;
        let mut keep = |pairs: Vec<(i32, f64)>| -> Vec<(i32, f64)> {
            pairs
                .into_iter()
                .filter(|&(idx, c)| {
                    let inside = exponential_bound(idx, schema) <= threshold;
                    if inside {
                        moved += c;
                    }
                    !inside
                })
                .collect()
        };
        let pos = keep(self.positive());
        let neg = keep(self.negative());
        self.zero_count += moved;
        self.zero_threshold = threshold;
        self.set_positive(&pos);
        self.set_negative(&neg);
    }

    /// Removes empty buckets and merges spans closer than `max_empty` buckets (which are then
    /// filled with zero buckets), as Prometheus's `Compact`.
    pub fn compact(&mut self, max_empty: usize) -> &mut Self {
        let pos: Vec<(i32, f64)> = self.positive().into_iter().filter(|p| p.1 != 0.0).collect();
        let neg: Vec<(i32, f64)> = self.negative().into_iter().filter(|p| p.1 != 0.0).collect();
        (self.positive_spans, self.positive_buckets) = collapse(&pos, max_empty);
        (self.negative_spans, self.negative_buckets) = collapse(&neg, max_empty);
        self
    }

    /// Whether `self` (the later sample) shows a counter reset after `previous`: the hint says
    /// so, or a count went down, or the bucket layout changed in a way a counter cannot.
    pub fn detect_reset(&self, previous: &FloatHistogram) -> bool {
        match self.counter_reset_hint {
            CounterResetHint::Reset => return true,
            CounterResetHint::NotReset => return false,
            _ => {}
        }
        if self.count < previous.count {
            return true;
        }
        if self.uses_custom_buckets() != previous.uses_custom_buckets() {
            return true;
        }
        if self.uses_custom_buckets() && self.custom_values != previous.custom_values {
            return true;
        }
        if self.schema > previous.schema || self.zero_threshold < previous.zero_threshold {
            return true;
        }
        let mut prev = previous.clone();
        prev.reduce_to_schema(self.schema);
        prev.widen_zero_bucket(self.zero_threshold);
        if prev.zero_threshold != self.zero_threshold && !self.uses_custom_buckets() {
            return true;
        }
        if self.zero_count < prev.zero_count {
            return true;
        }
        let dropped = |now: Vec<(i32, f64)>, before: Vec<(i32, f64)>| {
            before.iter().filter(|b| b.1 > 0.0).any(|&(idx, c)| now.iter().find(|n| n.0 == idx).is_none_or(|n| n.1 < c))
        };
        dropped(self.positive(), prev.positive()) || dropped(self.negative(), prev.negative())
    }

    /// Every bucket in ascending order of its bounds: negative buckets from the most negative,
    /// the zero bucket when it has observations, then positive buckets.
    pub fn buckets(&self) -> Vec<Bucket> {
        let mut out = Vec::new();
        if self.uses_custom_buckets() {
            for (idx, count) in self.positive() {
                let i = idx.max(0) as usize;
                let lower = if i == 0 {
                    f64::NEG_INFINITY
                } else {
                    self.custom_values.get(i - 1).copied().unwrap_or(f64::INFINITY)
                };
                let upper = self.custom_values.get(i).copied().unwrap_or(f64::INFINITY);
                out.push(Bucket { lower, upper, count, lower_inclusive: false, upper_inclusive: true });
            }
            return out;
        }
        for (idx, count) in self.negative().into_iter().rev() {
            let lower = -exponential_bound(idx, self.schema);
            let upper = -exponential_bound(idx - 1, self.schema);
            out.push(Bucket { lower, upper, count, lower_inclusive: true, upper_inclusive: false });
        }
        if self.zero_count != 0.0 {
            out.push(Bucket {
                lower: -self.zero_threshold,
                upper: self.zero_threshold,
                count: self.zero_count,
                lower_inclusive: true,
                upper_inclusive: true,
            });
        }
        for (idx, count) in self.positive() {
            let lower = exponential_bound(idx - 1, self.schema);
            let upper = exponential_bound(idx, self.schema);
            out.push(Bucket { lower, upper, count, lower_inclusive: false, upper_inclusive: true });
        }
        out
    }

    /// Prometheus's test notation (`{{schema:1 count:3 sum:5 buckets:[1 2]}}`), compacted into
    /// one span per side, as `FloatHistogram.TestExpression` writes it: what promtool compares.
    pub fn test_expression(&self) -> String {
        let mut m = self.clone();
        m.compact(usize::MAX / 2);
        let g = crate::notation::go_g;
        let mut parts = Vec::new();
        if m.schema != 0 {
            parts.push(format!("schema:{}", m.schema));
        }
        if m.count != 0.0 {
            parts.push(format!("count:{}", g(m.count)));
        }
        if m.sum != 0.0 {
            parts.push(format!("sum:{}", g(m.sum)));
        }
        if m.zero_count != 0.0 {
            parts.push(format!("z_bucket:{}", g(m.zero_count)));
        }
        if m.zero_threshold != 0.0 {
            parts.push(format!("z_bucket_w:{}", g(m.zero_threshold)));
        }
        if m.uses_custom_buckets() {
            let values: Vec<String> = m.custom_values.iter().map(|v| g(*v)).collect();
            parts.push(format!("custom_values:[{}]", values.join(" ")));
        }
        match m.counter_reset_hint {
            CounterResetHint::Unknown => {}
            CounterResetHint::Reset => parts.push("counter_reset_hint:reset".into()),
            CounterResetHint::NotReset => parts.push("counter_reset_hint:not_reset".into()),
            CounterResetHint::Gauge => parts.push("counter_reset_hint:gauge".into()),
        }
        for (spans, buckets, offset_key, buckets_key) in [
            (&m.positive_spans, &m.positive_buckets, "offset", "buckets"),
            (&m.negative_spans, &m.negative_buckets, "n_offset", "n_buckets"),
        ] {
            if let Some(span) = spans.first()
                && span.offset != 0
            {
                parts.push(format!("{offset_key}:{}", span.offset));
            }
            if !buckets.is_empty() {
                let values: Vec<String> = buckets.iter().map(|v| g(*v)).collect();
                parts.push(format!("{buckets_key}:[{}]", values.join(" ")));
            }
        }
        format!("{{{{{}}}}}", parts.join(" "))
    }

    /// Equality the way Prometheus's test runner compares histograms: both compacted, floats
    /// within `close`, the counter-reset hint only when `expected` names one.
    pub fn matches(&self, expected: &FloatHistogram, close: impl Fn(f64, f64) -> bool) -> bool {
        let (mut a, mut b) = (self.clone(), expected.clone());
        a.compact(0);
        b.compact(0);
        let floats_close = |x: &[f64], y: &[f64]| x.len() == y.len() && x.iter().zip(y).all(|(p, q)| close(*p, *q));
        (b.counter_reset_hint == CounterResetHint::Unknown || a.counter_reset_hint == b.counter_reset_hint)
            && a.schema == b.schema
            && close(a.zero_threshold, b.zero_threshold)
            && close(a.zero_count, b.zero_count)
            && close(a.count, b.count)
            && close(a.sum, b.sum)
            && a.positive_spans == b.positive_spans
            && a.negative_spans == b.negative_spans
            && floats_close(&a.positive_buckets, &b.positive_buckets)
            && floats_close(&a.negative_buckets, &b.negative_buckets)
            && floats_close(&a.custom_values, &b.custom_values)
    }
}

/// The zero threshold two histograms can share: the larger one, widened to a bucket boundary
/// when it falls inside a bucket of either.
fn reconciled_threshold(a: &FloatHistogram, b: &FloatHistogram) -> f64 {
    let mut threshold = a.zero_threshold.max(b.zero_threshold);
    loop {
        let mut widened = threshold;
        for h in [a, b] {
            for (idx, _) in h.positive().into_iter().chain(h.negative()) {
                let (lower, upper) = (exponential_bound(idx - 1, h.schema), exponential_bound(idx, h.schema));
                if lower < widened && widened < upper {
                    widened = upper;
                }
            }
        }
        if widened == threshold {
            return threshold;
        }
        threshold = widened;
    }
}

/// `a + sign * b` over ascending `(index, count)` pairs.
fn merge(a: &[(i32, f64)], b: &[(i32, f64)], sign: f64) -> Vec<(i32, f64)> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) if x.0 == y.0 => {
                out.push((x.0, x.1 + sign * y.1));
                i += 1;
                j += 1;
            }
            (Some(x), Some(y)) if x.0 < y.0 => {
                out.push(*x);
                i += 1;
            }
            (Some(x), None) => {
                out.push(*x);
                i += 1;
            }
            (_, Some(y)) => {
                out.push((y.0, sign * y.1));
                j += 1;
            }
            (None, None) => break,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(text: &str) -> FloatHistogram {
        crate::notation::parse_histogram(text).unwrap()
    }

    #[test]
    fn bounds_follow_the_schema() {
        assert_eq!(exponential_bound(0, 0), 1.0);
        assert_eq!(exponential_bound(1, 0), 2.0);
        assert_eq!(exponential_bound(-1, 0), 0.5);
        assert!((exponential_bound(1, 1) - std::f64::consts::SQRT_2).abs() < 1e-15);
        assert_eq!(exponential_bound(1, -1), 4.0);
        assert_eq!(reduce_index(1, 1, 0), 1);
        assert_eq!(reduce_index(2, 1, 0), 1);
        assert_eq!(reduce_index(3, 1, 0), 2);
        assert_eq!(reduce_index(0, 1, 0), 0);
    }

    #[test]
    fn add_reduces_schema_and_sub_undoes_it() {
        let mut a = h("{{schema:1 count:3 sum:4 buckets:[1 2]}}");
        let b = h("{{schema:0 count:2 sum:1 buckets:[1 1]}}");
        a.add(&b).unwrap();
        // Schema-1 bucket 0 (1/√2, 1] falls into schema-0 bucket 0 (1/2, 1], bucket 1 (1, √2]
        // into bucket 1 (1, 2].
        assert_eq!(a.schema, 0);
        assert_eq!(a.positive(), vec![(0, 2.0), (1, 3.0)]);
        assert_eq!((a.count, a.sum), (5.0, 5.0));
        a.sub(&b).unwrap().sub(&h("{{buckets:[1]}}")).unwrap();
        assert_eq!(a.positive(), vec![(0, 0.0), (1, 2.0)]);
        a.compact(0);
        assert_eq!(a.positive(), vec![(1, 2.0)]);
        let custom = h("{{schema:-53 custom_values:[1 2] buckets:[1]}}");
        assert_eq!(a.add(&custom).unwrap_err(), Incompatible::MixedSchemas);
    }

    #[test]
    fn zero_buckets_reconcile() {
        let mut a = h("{{count:2 z_bucket:1 z_bucket_w:0.5 buckets:[1] offset:2}}");
        let b = h("{{count:1 buckets:[1]}}");
        a.add(&b).unwrap();
        // b's bucket 0 is (0.5, 1]: within a's zero bucket? No: its upper bound 1 > 0.5, and
        // 0.5 is its lower bound, so the threshold stays.
        assert_eq!(a.zero_threshold, 0.5);
        assert_eq!(a.positive(), vec![(0, 1.0), (2, 1.0)]);
        let mut c = h("{{count:1 z_bucket_w:2 z_bucket:1}}");
        c.add(&b).unwrap();
        assert_eq!((c.zero_count, c.positive().len()), (2.0, 0));
    }

    #[test]
    fn compact_merges_close_spans() {
        let mut a = h("{{buckets:[0 1 0 0 2 0]}}");
        a.compact(0);
        assert_eq!(a.positive_spans, vec![Span { offset: 1, length: 1 }, Span { offset: 2, length: 1 }]);
        a.compact(2);
        assert_eq!(a.positive_spans, vec![Span { offset: 1, length: 4 }]);
        assert_eq!(a.positive_buckets, vec![1.0, 0.0, 0.0, 2.0]);
    }

    #[test]
    fn detects_counter_resets() {
        let before = h("{{count:4 sum:5 buckets:[1 3]}}");
        assert!(!h("{{count:5 sum:6 buckets:[2 3]}}").detect_reset(&before));
        assert!(h("{{count:5 sum:6 buckets:[0 5]}}").detect_reset(&before));
        assert!(h("{{count:3 buckets:[1 2]}}").detect_reset(&before));
        // A finer schema than before cannot come from the same counter.
        assert!(h("{{schema:1 count:8 buckets:[1 3 4]}}").detect_reset(&before));
        // A coarser one can: buckets merge.
        assert!(!h("{{schema:-1 count:8 buckets:[4 4]}}").detect_reset(&before));
        let mut hinted = h("{{count:1}}");
        hinted.counter_reset_hint = CounterResetHint::NotReset;
        assert!(!hinted.detect_reset(&before));
    }

    #[test]
    fn buckets_carry_bounds_in_order() {
        let a = h("{{schema:0 count:5 z_bucket:1 z_bucket_w:0.001 buckets:[1 2] n_buckets:[1]}}");
        let b = a.buckets();
        assert_eq!(b.len(), 4);
        assert_eq!((b[0].lower, b[0].upper), (-1.0, -0.5));
        assert_eq!((b[1].lower, b[1].upper), (-0.001, 0.001));
        assert_eq!((b[2].lower, b[2].upper, b[2].count), (0.5, 1.0, 1.0));
        assert_eq!((b[3].lower, b[3].upper, b[3].count), (1.0, 2.0, 2.0));
    }

    #[test]
    fn test_expression_round_trips() {
        let text = "{{schema:1 count:32.1 sum:-0.3 z_bucket:7.1 z_bucket_w:0.05 offset:-3 buckets:[5.1 10 7] n_offset:-5 n_buckets:[4.1 5]}}";
        assert_eq!(h(text).test_expression(), text);
        assert_eq!(h("{{}}").test_expression(), "{{}}");
    }
}
