//! Tree-walking evaluation of one expression at one instant, plus the selector reads (lookback,
//! staleness, `offset`, `@`) and subqueries every other part builds on.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime};

use model::{HistogramSample, Labels, METRIC_NAME, Sample, is_stale_nan};
use promql_parser::label::{MatchOp, Matcher};
use promql_parser::parser::token;
use promql_parser::parser::{AtModifier, Expr, Offset, SubqueryExpr, VectorSelector};

use super::annotations::Collector;
use super::result::PointValue;
use super::value::{RSeries, VSample, Value, without_name};
use super::{EngineOptions, QueryResult, Queryable};
use crate::error::{Error, Result};

/// A selected series: its float samples and its native-histogram samples.
pub(super) struct SeriesData {
    labels: Labels,
    floats: Vec<Sample>,
    histograms: Vec<HistogramSample>,
}

type Selected = Rc<Vec<SeriesData>>;

/// Evaluation state of one query.
pub struct Evaluator<'a> {
    store: &'a dyn Queryable,
    pub(super) opts: &'a EngineOptions,
    /// Query start and end, the targets of `@ start()` and `@ end()`.
    start: i64,
    end: i64,
    step: i64,
    deadline: Instant,
    /// Selected series per selector text: a query reads each selector's series once.
    cache: RefCell<HashMap<String, Selected>>,
    /// The same by selector node (its address), so a range query's later steps find their
    /// series without writing the selector out as text again.
    by_node: RefCell<HashMap<usize, Selected>>,
    /// Compiled `label_replace` patterns: compiled once per query, not once per step (building
    /// a regex cost more than the rest of many range queries).
    regexes: RefCell<HashMap<String, regex::Regex>>,
    /// The time range every selector of the query lies in (a read hint for the store).
    read_range: (i64, i64),
    /// Samples loaded by selectors during the current step.
    step_samples: Cell<usize>,
    /// Points already in a range query's result. With `step_samples`, the samples held at once,
    /// whose peak Prometheus limits with `--query.max-samples`.
    result_points: Cell<usize>,
    /// Warn and info annotations raised so far.
    pub(super) notes: Collector<'a>,
}

pub(super) fn duration_ms(d: &Duration) -> i64 {
    d.as_millis().min(i64::MAX as u128) as i64
}

fn system_time_ms(t: &SystemTime) -> i64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => duration_ms(&d),
        Err(e) => -duration_ms(&e.duration()),
    }
}

fn offset_ms(offset: &Option<Offset>) -> i64 {
    match offset {
        None => 0,
        Some(Offset::Pos(d)) => duration_ms(d),
        Some(Offset::Neg(d)) => -duration_ms(d),
    }
}

/// The matcher sets of a selector (several when `or` is used inside braces), with the metric
/// name written before the braces turned into a `__name__` matcher.
pub fn selector_matchers(vs: &VectorSelector) -> Vec<Vec<Matcher>> {
    let mut groups: Vec<Vec<Matcher>> = if vs.matchers.or_matchers.is_empty() {
        vec![vs.matchers.matchers.clone()]
    } else {
        vs.matchers.or_matchers.clone()
    };
    if let Some(name) = &vs.name {
        for g in &mut groups {
            if !g.iter().any(|m| m.name == METRIC_NAME && m.op == MatchOp::Equal && &m.value == name) {
                g.push(Matcher::new(MatchOp::Equal, METRIC_NAME, name));
            }
        }
    }
    groups
}

/// How far before the evaluation time `expr` reads (lookback, ranges, offsets, subqueries), or
/// `None` when it may read anywhere (`@`, negative offsets).
fn reach(expr: &Expr, opts: &EngineOptions) -> Option<i64> {
    let offset = |o: &Option<Offset>| match o {
        Some(Offset::Neg(_)) => None,
        other => Some(offset_ms(other)),
    };
    match expr {
        Expr::VectorSelector(vs) if vs.at.is_none() => Some(opts.lookback_delta_ms + offset(&vs.offset)?),
        Expr::MatrixSelector(ms) if ms.vs.at.is_none() => Some(duration_ms(&ms.range) + offset(&ms.vs.offset)?),
        Expr::Subquery(sq) if sq.at.is_none() => {
            let step = sq.step.as_ref().map_or(opts.default_subquery_step_ms, duration_ms);
            Some(reach(&sq.expr, opts)? + duration_ms(&sq.range) + step + offset(&sq.offset)?)
        }
        Expr::VectorSelector(_) | Expr::MatrixSelector(_) | Expr::Subquery(_) | Expr::Extension(_) => None,
        Expr::Aggregate(a) => {
            let param = a.param.as_ref().map_or(Some(0), |p| reach(p, opts))?;
            Some(reach(&a.expr, opts)?.max(param))
        }
        Expr::Unary(u) => reach(&u.expr, opts),
        Expr::Paren(p) => reach(&p.expr, opts),
        Expr::Binary(b) => Some(reach(&b.lhs, opts)?.max(reach(&b.rhs, opts)?)),
        Expr::Call(c) => c.args.args.iter().try_fold(0, |acc, a| Some(acc.max(reach(a, opts)?))),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) => Some(0),
    }
}

impl<'a> Evaluator<'a> {
    pub fn new(
        store: &'a dyn Queryable,
        opts: &'a EngineOptions,
        query: &'a str,
        expr: &Expr,
        (start, end, step): (i64, i64, i64),
    ) -> Self {
        Self {
            notes: Collector::new(query, expr),
            store,
            opts,
            start,
            end,
            step,
            deadline: Instant::now() + opts.timeout,
            read_range: match reach(expr, opts) {
                Some(back) => (start.saturating_sub(back).saturating_sub(1), end),
                None => (i64::MIN, i64::MAX),
            },
            cache: RefCell::new(HashMap::new()),
            by_node: RefCell::new(HashMap::new()),
            regexes: RefCell::new(HashMap::new()),
            step_samples: Cell::new(0),
            result_points: Cell::new(0),
        }
    }

    pub fn check_deadline(&self) -> Result<()> {
        if Instant::now() > self.deadline {
            return Err(Error::Timeout("expression evaluation".into()));
        }
        Ok(())
    }

    fn count_samples(&self, n: usize) -> Result<()> {
        self.step_samples.set(self.step_samples.get() + n);
        self.check_peak()
    }

    /// Prometheus's `ErrTooManySamples`, with its exact text (clients match on it).
    fn check_peak(&self) -> Result<()> {
        if self.step_samples.get() + self.result_points.get() > self.opts.max_samples {
            return Err(Error::Execution(
                "query processing would load too many samples into memory in query execution".into(),
            ));
        }
        Ok(())
    }

    pub fn instant(&self, expr: &Expr, t: i64) -> Result<QueryResult> {
        let value = self.eval(expr, t)?;
        Ok(match value {
            Value::Scalar(v) => QueryResult::Scalar { t_ms: t, v },
            Value::String(s) => QueryResult::String { t_ms: t, s },
            Value::Vector(v) => {
                check_unique_labels(&v)?;
                let v = finish_names(v);
                check_unique_labels(&v)?;
                if v.iter().any(|s| s.h.is_some()) {
                    QueryResult::MixedVector(
                        v.into_iter()
                            .map(|s| (s.labels, t, s.h.map_or(PointValue::Float(s.v), |h| PointValue::Histogram(*h))))
                            .collect(),
                    )
                } else {
                    QueryResult::Vector(v.into_iter().map(|s| (s.labels, t, s.v)).collect())
                }
            }
            Value::Matrix(m) => {
                let mut out: Vec<(Labels, Vec<Sample>, Vec<HistogramSample>)> = m
                    .into_iter()
                    .map(|s| (if s.drop_name { without_name(&s.labels) } else { s.labels }, s.samples, s.histograms))
                    .collect();
                out.sort_by(|a, b| a.0.cmp(&b.0));
                if out.windows(2).any(|w| w[0].0 == w[1].0) {
                    return Err(Error::Execution("vector cannot contain metrics with the same labelset".into()));
                }
                QueryResult::from_series(out)
            }
        })
    }

    pub fn range(&self, expr: &Expr) -> Result<QueryResult> {
        let mut series: HashMap<Labels, (Vec<Sample>, Vec<HistogramSample>)> = HashMap::new();
        let mut t = self.start;
        while t <= self.end {
            self.step_samples.set(0);
            match self.eval(expr, t)? {
                Value::Scalar(v) => series.entry(Labels::empty()).or_default().0.push(Sample::new(t, v)),
                Value::Vector(v) => {
                    check_unique_labels(&v)?;
                    // Series that end up alike once their names are removed merge, unless they
                    // collide at one step.
                    let v = finish_names(v);
                    check_unique_labels(&v)?;
                    for s in v {
                        let entry = series.entry(s.labels).or_default();
                        match s.h {
                            Some(h) => entry.1.push(HistogramSample { timestamp_ms: t, h: *h }),
                            None => entry.0.push(Sample::new(t, s.v)),
                        }
                    }
                }
                other => {
                    return Err(Error::BadData(format!(
                        "invalid expression type \"{}\" for range query, must be Scalar or instant Vector",
                        if matches!(other, Value::Matrix(_)) { "range vector" } else { other.type_name() }
                    )));
                }
            }
            self.result_points.set(series.values().map(|(f, h)| f.len() + h.len()).sum());
            self.step_samples.set(0);
            self.check_peak()?;
            t += self.step;
        }
        let mut out: Vec<(Labels, Vec<Sample>, Vec<HistogramSample>)> =
            series.into_iter().map(|(l, (f, h))| (l, f, h)).collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(QueryResult::from_series(out))
    }

    /// Whether this is a range query (several steps): some functions warn then.
    pub(super) fn is_range_query(&self) -> bool {
        self.start != self.end
    }

    /// The instant a selector or subquery reads at, after `@` and `offset`.
    pub(super) fn reference_time(&self, at: &Option<AtModifier>, offset: &Option<Offset>, t: i64) -> i64 {
        let base = match at {
            None => t,
            Some(AtModifier::Start) => self.start,
            Some(AtModifier::End) => self.end,
            Some(AtModifier::At(time)) => system_time_ms(time),
        };
        base.saturating_sub(offset_ms(offset))
    }

    /// `^(?s:pattern)$` compiled, from this query's cache after the first step.
    pub(super) fn anchored_regex(&self, pattern: &str) -> std::result::Result<regex::Regex, regex::Error> {
        if let Some(re) = self.regexes.borrow().get(pattern) {
            return Ok(re.clone());
        }
        let re = regex::Regex::new(&format!("^(?s:{pattern})$"))?;
        self.regexes.borrow_mut().insert(pattern.to_string(), re.clone());
        Ok(re)
    }

    fn select(&self, vs: &VectorSelector) -> Result<Selected> {
        self.check_deadline()?;
        let node = vs as *const VectorSelector as usize;
        if let Some(hit) = self.by_node.borrow().get(&node) {
            return Ok(hit.clone());
        }
        let key = format!("{:?}|{:?}", vs.name, vs.matchers.to_string());
        if let Some(hit) = self.cache.borrow().get(&key).cloned() {
            self.by_node.borrow_mut().insert(node, hit.clone());
            return Ok(hit);
        }
        let groups = selector_matchers(vs);
        let mut all: Vec<SeriesData> = Vec::new();
        let mut index: HashMap<Labels, usize> = HashMap::new();
        for group in &groups {
            let (mint, maxt) = self.read_range;
            for (labels, samples) in self.store.select(group, mint, maxt)? {
                if !index.contains_key(&labels) {
                    index.insert(labels.clone(), all.len());
                    all.push(SeriesData { labels, floats: samples, histograms: Vec::new() });
                }
            }
            for (labels, samples) in self.store.select_histograms(group, mint, maxt)? {
                match index.get(&labels) {
                    Some(&i) if all[i].histograms.is_empty() => all[i].histograms = samples,
                    Some(_) => {}
                    None => {
                        index.insert(labels.clone(), all.len());
                        all.push(SeriesData { labels, floats: Vec::new(), histograms: samples });
                    }
                }
            }
        }
        let selected = Rc::new(all);
        self.cache.borrow_mut().insert(key, selected.clone());
        self.by_node.borrow_mut().insert(node, selected.clone());
        Ok(selected)
    }

    pub(super) fn eval_vector_selector(&self, vs: &VectorSelector, t: i64) -> Result<Vec<VSample>> {
        let reference = self.reference_time(&vs.at, &vs.offset, t);
        let selected = self.select(vs)?;
        let mut out = Vec::new();
        for series in selected.iter() {
            let idx = series.floats.partition_point(|s| s.timestamp_ms <= reference);
            let float = idx.checked_sub(1).map(|i| series.floats[i]);
            let hidx = series.histograms.partition_point(|s| s.timestamp_ms <= reference);
            let histogram = hidx.checked_sub(1).map(|i| &series.histograms[i]);
            // The later of the two is the series' value; a float stale marker ends both.
            match (float, histogram) {
                (f, Some(h)) if f.is_none_or(|f| f.timestamp_ms < h.timestamp_ms) => {
                    if h.timestamp_ms > reference - self.opts.lookback_delta_ms {
                        out.push(VSample::histogram(series.labels.clone(), h.timestamp_ms, h.h.clone(), false));
                    }
                }
                (Some(s), _) => {
                    if s.timestamp_ms > reference - self.opts.lookback_delta_ms && !is_stale_nan(s.value) {
                        out.push(VSample::float(series.labels.clone(), s.timestamp_ms, s.value, false));
                    }
                }
                (None, _) => {}
            }
        }
        self.count_samples(out.len())?;
        Ok(out)
    }

    /// Samples in `(reference - range, reference]`, stale markers left out.
    pub(super) fn eval_matrix_selector(&self, vs: &VectorSelector, range_ms: i64, t: i64) -> Result<Vec<RSeries>> {
        let reference = self.reference_time(&vs.at, &vs.offset, t);
        let selected = self.select(vs)?;
        let mut out = Vec::new();
        let mut loaded = 0;
        for series in selected.iter() {
            let samples = &series.floats;
            let from = samples.partition_point(|s| s.timestamp_ms <= reference - range_ms);
            let to = samples.partition_point(|s| s.timestamp_ms <= reference);
            let points: Vec<Sample> =
                samples[from..to.max(from)].iter().filter(|s| !is_stale_nan(s.value)).copied().collect();
            let hs = &series.histograms;
            let from = hs.partition_point(|s| s.timestamp_ms <= reference - range_ms);
            let to = hs.partition_point(|s| s.timestamp_ms <= reference);
            let histograms: Vec<HistogramSample> = hs[from..to.max(from)].to_vec();
            if points.is_empty() && histograms.is_empty() {
                continue;
            }
            loaded += points.len() + histograms.len();
            out.push(RSeries { labels: series.labels.clone(), samples: points, histograms, drop_name: false });
        }
        self.count_samples(loaded)?;
        Ok(out)
    }

    /// Evaluates the inner expression at every subquery step in `(reference - range, reference]`.
    pub(super) fn eval_subquery(&self, sq: &SubqueryExpr, t: i64) -> Result<Vec<RSeries>> {
        let reference = self.reference_time(&sq.at, &sq.offset, t);
        let range = duration_ms(&sq.range);
        let step = sq.step.as_ref().map(duration_ms).unwrap_or(self.opts.default_subquery_step_ms).max(1);
        // Same alignment as Prometheus: absolute multiples of the step, first one after the start.
        let mut ts = step * ((reference - range) / step);
        if ts <= reference - range {
            ts += step;
        }
        let mut series: HashMap<Labels, (Vec<Sample>, Vec<HistogramSample>)> = HashMap::new();
        let mut drops: std::collections::HashSet<Labels> = std::collections::HashSet::new();
        let mut order: Vec<Labels> = Vec::new();
        while ts <= reference {
            match self.eval(&sq.expr, ts)? {
                Value::Vector(v) => {
                    for s in v {
                        if s.drop_name {
                            drops.insert(s.labels.clone());
                        }
                        let entry = series.entry(s.labels.clone()).or_insert_with(|| {
                            order.push(s.labels.clone());
                            Default::default()
                        });
                        match s.h {
                            Some(h) => entry.1.push(HistogramSample { timestamp_ms: ts, h: *h }),
                            None => entry.0.push(Sample::new(ts, s.v)),
                        }
                    }
                }
                Value::Scalar(v) => {
                    series
                        .entry(Labels::empty())
                        .or_insert_with(|| {
                            order.push(Labels::empty());
                            Default::default()
                        })
                        .0
                        .push(Sample::new(ts, v));
                }
                other => {
                    return Err(Error::BadData(format!("subquery of {} is not supported", other.type_name())));
                }
            }
            ts += step;
        }
        Ok(order
            .into_iter()
            .filter_map(|l| {
                let drop_name = drops.contains(&l);
                series.remove(&l).map(|(samples, histograms)| RSeries { labels: l, samples, histograms, drop_name })
            })
            .collect())
    }

    pub fn eval(&self, expr: &Expr, t: i64) -> Result<Value> {
        match expr {
            Expr::NumberLiteral(n) => Ok(Value::Scalar(n.val)),
            Expr::StringLiteral(s) => Ok(Value::String(s.val.clone())),
            Expr::Paren(p) => self.eval(&p.expr, t),
            Expr::Unary(u) => match self.eval(&u.expr, t)? {
                Value::Scalar(v) => Ok(Value::Scalar(-v)),
                Value::Vector(v) => Ok(Value::Vector(
                    v.into_iter()
                        .map(|s| match s.h {
                            Some(mut h) => {
                                h.mul(-1.0);
                                VSample { labels: s.labels, t, v: 0.0, drop_name: true, h: Some(h) }
                            }
                            None => VSample::float(s.labels, t, -s.v, true),
                        })
                        .collect(),
                )),
                other => Err(Error::BadData(format!("unary minus on {}", other.type_name()))),
            },
            Expr::VectorSelector(vs) => Ok(Value::Vector(self.eval_vector_selector(vs, t)?)),
            Expr::MatrixSelector(ms) => {
                Ok(Value::Matrix(self.eval_matrix_selector(&ms.vs, duration_ms(&ms.range), t)?))
            }
            Expr::Subquery(sq) => Ok(Value::Matrix(self.eval_subquery(sq, t)?)),
            Expr::Binary(b) => super::binary::eval_binary(self, b, t),
            Expr::Aggregate(a) => super::aggregations::eval_aggregate(self, a, t),
            Expr::Call(c) => {
                let value = super::functions::eval_call(self, c, t)?;
                if let Value::Vector(v) = &value {
                    check_unique_labels(v)?;
                }
                Ok(value)
            }
            Expr::Extension(_) => Err(Error::BadData("extension expressions are not supported".into())),
        }
    }

    /// Evaluates an argument that must be a scalar (function parameters, aggregation params).
    pub(super) fn eval_scalar(&self, expr: &Expr, t: i64) -> Result<f64> {
        match self.eval(expr, t)? {
            Value::Scalar(v) => Ok(v),
            other => Err(Error::BadData(format!("expected scalar, got {}", other.type_name()))),
        }
    }

    pub(super) fn eval_vector(&self, expr: &Expr, t: i64) -> Result<Vec<VSample>> {
        match self.eval(expr, t)? {
            Value::Vector(v) => Ok(v),
            other => Err(Error::BadData(format!("expected instant vector, got {}", other.type_name()))),
        }
    }

    pub(super) fn eval_string(&self, expr: &Expr, t: i64) -> Result<String> {
        match self.eval(expr, t)? {
            Value::String(s) => Ok(s),
            other => Err(Error::BadData(format!("expected string, got {}", other.type_name()))),
        }
    }
}

/// Applies the delayed `__name__` removal to a result vector.
fn finish_names(v: Vec<VSample>) -> Vec<VSample> {
    v.into_iter()
        .map(|s| if s.drop_name { VSample { labels: without_name(&s.labels), drop_name: false, ..s } } else { s })
        .collect()
}

/// Prometheus refuses results where two elements end up with the same labels (typically after
/// a function dropped `__name__`).
pub(super) fn check_unique_labels(v: &[VSample]) -> Result<()> {
    if v.len() < 2 {
        return Ok(());
    }
    let mut seen = std::collections::HashSet::with_capacity(v.len());
    for s in v {
        if !seen.insert(&s.labels) {
            return Err(Error::Execution("vector cannot contain metrics with the same labelset".into()));
        }
    }
    Ok(())
}

/// Whether a binary/aggregation operator token is the given one.
pub(super) fn is(op: token::TokenType, id: token::TokenId) -> bool {
    op.id() == id
}
