//! Metric queries over logs (`count_over_time`, `rate`, `bytes_over_time`, `bytes_rate` and the
//! `sum`/`avg`/`min`/`max`/`count`/`topk`/`bottomk` aggregations), evaluated at one instant or at
//! every step of a range, answered in Loki's `vector` / `matrix` shapes. Selector-only counting
//! reads timestamps from tantivy's fast fields without loading a single line.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use model::Labels;
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};

use crate::cancel::Cancel;
use crate::error::Error;
use crate::logql::values::{parse_bytes, parse_go_duration};
use crate::logql::{AggOp, CompiledQuery, Grouping, MetricExpr, Pipeline, RangeFunc, Stage, Unwrap, UnwrapConv};
use crate::metric_binary;
use crate::partition::Partition;
use crate::query::{QueryStats, load_line, partition_candidates};

/// Loki's limit on points per series of a range query.
pub const MAX_POINTS_PER_SERIES: i64 = 11_000;

/// A metric query: evaluated at `start_ns`, `start_ns + step_ns`, ... up to `end_ns` inclusive
/// (an instant query has `start_ns == end_ns`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetricQueryRequest {
    /// LogQL metric expression.
    pub query: String,
    /// First evaluation time, unix nanoseconds.
    pub start_ns: i64,
    /// Last evaluation time (inclusive), unix nanoseconds.
    pub end_ns: i64,
    /// Step between evaluations in nanoseconds (ignored for instant queries).
    pub step_ns: i64,
    /// Answer a `vector` at `end_ns` rather than a `matrix`.
    pub instant: bool,
}

/// One series of a matrix.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricSeries {
    /// The series labels.
    pub labels: Labels,
    /// `(unix ns, value)`, ascending.
    pub points: Vec<(i64, f64)>,
}

/// The result of a metric query.
#[derive(Clone, Debug, PartialEq)]
pub enum MetricData {
    /// Instant query: one sample per series at the evaluation time.
    Vector(Vec<(Labels, i64, f64)>),
    /// Range query: a series of points per label set.
    Matrix(Vec<MetricSeries>),
}

/// The answer to a metric query; serializes as the `data` object of Loki's query responses.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricQueryResponse {
    /// Samples.
    pub data: MetricData,
    /// Statistics.
    pub stats: QueryStats,
}

/// Unix seconds as Loki prints them: an integer when whole, else milliseconds as a fraction.
fn timestamp_json(ts_ns: i64) -> serde_json::Value {
    let ms = ts_ns.div_euclid(1_000_000);
    if ms % 1000 == 0 { serde_json::Value::from(ms / 1000) } else { serde_json::Value::from(ms as f64 / 1000.0) }
}

/// A sample value as Go's `strconv.FormatFloat(v, 'f', -1, 64)` prints it.
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf".into() } else { "-Inf".into() }
    } else {
        v.to_string()
    }
}

struct LabelsAsMap<'a>(&'a Labels);
impl Serialize for LabelsAsMap<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for label in self.0 {
            map.serialize_entry(&label.name, &label.value)?;
        }
        map.end()
    }
}

struct Points<'a>(&'a [(i64, f64)]);
impl Serialize for Points<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for (ts, v) in self.0 {
            seq.serialize_element(&(timestamp_json(*ts), format_value(*v)))?;
        }
        seq.end()
    }
}

struct VectorSample<'a>(&'a Labels, i64, f64);
impl Serialize for VectorSample<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(2))?;
        map.serialize_entry("metric", &LabelsAsMap(self.0))?;
        map.serialize_entry("value", &(timestamp_json(self.1), format_value(self.2)))?;
        map.end()
    }
}

impl Serialize for MetricSeries {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(2))?;
        map.serialize_entry("metric", &LabelsAsMap(&self.labels))?;
        map.serialize_entry("values", &Points(&self.points))?;
        map.end()
    }
}

impl Serialize for MetricQueryResponse {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(3))?;
        match &self.data {
            MetricData::Vector(samples) => {
                map.serialize_entry("resultType", "vector")?;
                let samples: Vec<VectorSample<'_>> = samples.iter().map(|(l, t, v)| VectorSample(l, *t, *v)).collect();
                map.serialize_entry("result", &samples)?;
            }
            MetricData::Matrix(series) => {
                map.serialize_entry("resultType", "matrix")?;
                map.serialize_entry("result", series)?;
            }
        }
        map.serialize_entry("stats", &self.stats)?;
        map.end()
    }
}

/// The evaluation times of a request.
pub(crate) fn steps(req: &MetricQueryRequest) -> Result<Vec<i64>, Error> {
    if req.end_ns < req.start_ns {
        return Err(Error::InvalidRequest("end must not be before start".into()));
    }
    if req.instant {
        return Ok(vec![req.end_ns]);
    }
    if req.step_ns <= 0 {
        return Err(Error::InvalidRequest(
            "zero or negative query resolution step widths are not accepted. Try a positive integer".into(),
        ));
    }
    let count = (req.end_ns - req.start_ns) / req.step_ns + 1;
    if count > MAX_POINTS_PER_SERIES {
        return Err(Error::InvalidRequest(format!(
            "exceeded maximum resolution of {MAX_POINTS_PER_SERIES} points per timeseries. Try decreasing the query resolution (?step=XX)"
        )));
    }
    Ok((0..count).map(|i| req.start_ns + i * req.step_ns).collect())
}

/// The one range aggregation at the bottom of a metric expression.
struct Leaf<'a> {
    func: RangeFunc,
    param: Option<f64>,
    query: &'a crate::logql::LogQuery,
    unwrap: Option<&'a Unwrap>,
    range_ns: i64,
    offset_ns: i64,
}

/// Where an evaluation reads from and what stops it.
struct Source<'a> {
    partitions_for: &'a dyn Fn(i64, i64) -> Vec<Arc<Partition>>,
    cancel: &'a Cancel,
}

/// Every range aggregation reads its own lines: leaves of one expression may select different
/// streams, ranges and offsets.
fn eval_leaf(
    source: &Source<'_>,
    leaf: &Leaf<'_>,
    times: &[i64],
    stats: &mut QueryStats,
) -> Result<StepVectors, Error> {
    let query = CompiledQuery::compile(leaf.query)?;
    let first = times.first().copied().unwrap_or(0).saturating_sub(leaf.offset_ns);
    let last = times.last().copied().unwrap_or(0).saturating_sub(leaf.offset_ns);
    let lo = first.saturating_sub(leaf.range_ns).saturating_add(1);
    let hi = last.saturating_add(1);
    let extract = match leaf.unwrap {
        Some(unwrap) => {
            let post: Vec<Stage> = unwrap.filters.iter().cloned().map(Stage::LabelFilter).collect();
            Extract::Unwrap(unwrap, Pipeline::compile(&post)?)
        }
        None if matches!(leaf.func, RangeFunc::BytesOverTime | RangeFunc::BytesRate) => Extract::Bytes,
        None => Extract::Count,
    };
    let samples = collect_samples(&(source.partitions_for)(lo, hi), &query, &extract, (lo, hi), stats, source.cancel)?;
    range_vectors(leaf, samples, times, source.cancel)
}

/// A subexpression's value at every step.
enum Value {
    Number(f64),
    Vectors(StepVectors),
}

fn eval(source: &Source<'_>, expr: &MetricExpr, times: &[i64], stats: &mut QueryStats) -> Result<Value, Error> {
    Ok(match expr {
        MetricExpr::Number(v) => Value::Number(*v),
        MetricExpr::Range { func, param, query, unwrap, range_ns, offset_ns, .. } => {
            let leaf = Leaf {
                func: *func,
                param: *param,
                query,
                unwrap: unwrap.as_ref(),
                range_ns: *range_ns,
                offset_ns: *offset_ns,
            };
            Value::Vectors(eval_leaf(source, &leaf, times, stats)?)
        }
        MetricExpr::Aggregate { op, param, grouping, inner } => match eval(source, inner, times, stats)? {
            Value::Vectors(vectors) => {
                Value::Vectors(vectors.into_iter().map(|v| aggregate(*op, *param, grouping.as_ref(), v)).collect())
            }
            Value::Number(_) => {
                return Err(Error::BadQuery(format!("{} expects a vector, not a number", op.as_str())));
            }
        },
        MetricExpr::Binary { op, lhs, rhs, return_bool, matching } => {
            let l = eval(source, lhs, times, stats)?;
            let r = eval(source, rhs, times, stats)?;
            match (l, r) {
                (Value::Number(a), Value::Number(b)) => Value::Number(metric_binary::scalar_scalar(*op, a, b)),
                (Value::Vectors(v), Value::Number(n)) => Value::Vectors(
                    v.into_iter().map(|v| metric_binary::vector_scalar(*op, *return_bool, v, n, false)).collect(),
                ),
                (Value::Number(n), Value::Vectors(v)) => Value::Vectors(
                    v.into_iter().map(|v| metric_binary::vector_scalar(*op, *return_bool, v, n, true)).collect(),
                ),
                (Value::Vectors(l), Value::Vectors(r)) => Value::Vectors(
                    l.into_iter()
                        .zip(r)
                        .map(|(l, r)| metric_binary::vector_vector(*op, *return_bool, matching.as_ref(), l, r))
                        .collect::<Result<_, _>>()?,
                ),
            }
        }
    })
}

/// What a line contributes as a sample value.
enum Extract<'a> {
    /// Nothing but its timestamp (counts).
    Count,
    /// Its length in bytes.
    Bytes,
    /// A label's value; lines failing the post-unwrap label filters are dropped.
    Unwrap(&'a Unwrap, Pipeline),
}

/// Per result series: `(ts, value)` of its lines.
type Samples = HashMap<Labels, Vec<(i64, f64)>>;

/// The unwrapped sample of a line whose pipeline gave `labels`: the value and the series labels
/// (without the unwrapped label), or `None` when a post-unwrap filter drops it. A value that does
/// not convert sets `__error__` as Loki does, which fails the query unless filtered out.
fn unwrap_sample(unwrap: &Unwrap, post: &Pipeline, labels: Labels, line: &str) -> Result<Option<(Labels, f64)>, Error> {
    let text = labels.get(&unwrap.label).unwrap_or("");
    let value = match unwrap.conv {
        UnwrapConv::Number => text.trim().parse::<f64>().ok(),
        UnwrapConv::Duration => parse_go_duration(text.trim()),
        UnwrapConv::Bytes => parse_bytes(text.trim()),
    };
    let mut pairs: Vec<(String, String)> =
        labels.iter().filter(|l| l.name != unwrap.label).map(|l| (l.name.clone(), l.value.clone())).collect();
    if value.is_none() && labels.get("__error__").is_none() {
        pairs.push(("__error__".into(), "SampleExtractionErr".into()));
    }
    let labels = Labels::from_pairs(pairs);
    let labels = if post.is_empty() {
        labels
    } else {
        match post.process(&labels, line) {
            Some((_, labels)) => labels,
            None => return Ok(None),
        }
    };
    if let Some(kind) = labels.get("__error__") {
        return Err(pipeline_error(kind, &labels));
    }
    Ok(value.map(|v| (labels, v)))
}

/// Reads the lines in `[start_ns, end_ns)` that pass the query, keyed by their result labels.
fn collect_samples(
    partitions: &[Arc<Partition>],
    query: &CompiledQuery,
    extract: &Extract<'_>,
    (start_ns, end_ns): (i64, i64),
    stats: &mut QueryStats,
    cancel: &Cancel,
) -> Result<Samples, Error> {
    let mut samples: Samples = HashMap::new();
    // Fast path: no line to check and no pipeline, so counting needs only the fast fields.
    let counts_only = query.filters.is_empty() && query.pipeline.is_empty() && matches!(extract, Extract::Count);
    for partition in partitions {
        cancel.check()?;
        // One searcher for candidates and lines: a commit in between would invalidate addresses.
        let searcher = partition.searcher();
        let (candidates, streams) = partition_candidates(&searcher, partition, query, start_ns, end_ns, cancel)?;
        let labels_of: HashMap<u64, Labels> = streams.into_iter().collect();
        if counts_only {
            stats.total_lines_processed += candidates.len() as u64;
            stats.total_post_filter_lines += candidates.len() as u64;
            let mut by_stream: HashMap<u64, Vec<(i64, f64)>> = HashMap::new();
            for c in candidates {
                by_stream.entry(c.stream).or_default().push((c.ts, 0.0));
            }
            for (stream, points) in by_stream {
                if let Some(labels) = labels_of.get(&stream) {
                    samples.entry(labels.clone()).or_default().extend(points);
                }
            }
            continue;
        }
        if query.pipeline.is_empty() && !matches!(extract, Extract::Unwrap(..)) && candidates.len() >= PARALLEL_MIN {
            let bytes = matches!(extract, Extract::Bytes);
            for (stream, ts, value) in verify_parallel(&searcher, partition, query, &candidates, bytes, stats, cancel)?
            {
                if let Some(labels) = labels_of.get(&stream) {
                    stats.total_post_filter_lines += 1;
                    samples.entry(labels.clone()).or_default().push((ts, value));
                }
            }
            continue;
        }
        for (i, c) in candidates.into_iter().enumerate() {
            cancel.check_every(i)?;
            let line = load_line(&searcher, partition, c.address)?;
            stats.total_lines_processed += 1;
            stats.total_bytes_processed += line.len() as u64;
            if !query.line_matches(&line) {
                continue;
            }
            let Some(stream) = labels_of.get(&c.stream) else { continue };
            let (labels, bytes) = if query.pipeline.is_empty() {
                (stream.clone(), line.len())
            } else {
                let Some((new_line, labels)) = query.pipeline.process(stream, &line) else { continue };
                // Errors may still be filtered out after an unwrap.
                if let (Some(kind), false) = (labels.get("__error__"), matches!(extract, Extract::Unwrap(..))) {
                    return Err(pipeline_error(kind, &labels));
                }
                (labels, new_line.as_ref().map_or(line.len(), String::len))
            };
            let (labels, value) = match extract {
                Extract::Count => (labels, 0.0),
                Extract::Bytes => (labels, bytes as f64),
                Extract::Unwrap(unwrap, post) => match unwrap_sample(unwrap, post, labels, &line)? {
                    Some(sample) => sample,
                    None => continue,
                },
            };
            stats.total_post_filter_lines += 1;
            samples.entry(labels).or_default().push((c.ts, value));
        }
    }
    Ok(samples)
}

/// What one thread of [`verify_parallel`] found: `(stream, ts, value)` of the passing lines,
/// lines read, bytes read.
type Checked = (Vec<(u64, i64, f64)>, u64, u64);

/// Candidates from which line checks are spread over threads.
const PARALLEL_MIN: usize = 20_000;
/// Most threads one query checks lines on.
const MAX_VERIFY_THREADS: usize = 4;

/// The `(stream, ts, value)` of the candidates whose line passes the filters (value: 0, or the
/// line's length with `bytes`), checked on up to [`MAX_VERIFY_THREADS`] threads: a common word's
/// count reads most of a partition's stored lines, and decompressing them is the query's cost.
/// Each thread takes a contiguous run of candidates (in segment and document order), so each
/// stored block is decompressed by one thread, once.
fn verify_parallel(
    searcher: &tantivy::Searcher,
    partition: &Partition,
    query: &CompiledQuery,
    candidates: &[crate::query::Candidate],
    bytes: bool,
    stats: &mut QueryStats,
    cancel: &Cancel,
) -> Result<Vec<(u64, i64, f64)>, Error> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, MAX_VERIFY_THREADS);
    let per_thread = candidates.len().div_ceil(threads);
    let results: Vec<Result<Checked, Error>> = std::thread::scope(|scope| {
        let handles: Vec<_> = candidates
            .chunks(per_thread)
            .map(|chunk| {
                scope.spawn(move || {
                    let mut out = Vec::new();
                    let mut read_bytes = 0u64;
                    for (i, c) in chunk.iter().enumerate() {
                        cancel.check_every(i)?;
                        let line = load_line(searcher, partition, c.address)?;
                        read_bytes += line.len() as u64;
                        if query.line_matches(&line) {
                            out.push((c.stream, c.ts, if bytes { line.len() as f64 } else { 0.0 }));
                        }
                    }
                    Ok((out, chunk.len() as u64, read_bytes))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))).collect()
    });
    let mut out = Vec::new();
    for result in results {
        let (matched, lines, read_bytes) = result?;
        stats.total_lines_processed += lines;
        stats.total_bytes_processed += read_bytes;
        out.extend(matched);
    }
    Ok(out)
}

/// Loki's refusal to turn lines with a parser error into samples, with its advice.
fn pipeline_error(kind: &str, labels: &Labels) -> Error {
    Error::BadQuery(format!(
        "pipeline error: '{kind}' for series: '{labels}'.\n\
         Use a label filter to intentionally skip this error. (e.g | __error__!=\"{kind}\").\n\
         To skip all potential errors you can match empty errors.(e.g __error__=\"\")\n\
         The label filter can also be specified after unwrap. (e.g | unwrap latency | __error__=\"\" )"
    ))
}

/// One vector per evaluation time.
type StepVectors = Vec<Vec<(Labels, f64)>>;

/// The range function at every step, series by series (checking `cancel` between series: a
/// series over 11,000 steps is the unit of work).
fn range_vectors(leaf: &Leaf<'_>, samples: Samples, times: &[i64], cancel: &Cancel) -> Result<StepVectors, Error> {
    let mut out: StepVectors = vec![Vec::new(); times.len()];
    let (func, range_ns) = (leaf.func, leaf.range_ns);
    for (labels, mut points) in samples {
        cancel.check()?;
        points.sort_by_key(|p| p.0);
        for (i, t) in times.iter().enumerate() {
            // Loki's window is (t - offset - range, t - offset].
            let end = t.saturating_sub(leaf.offset_ns);
            let lo = points.partition_point(|(ts, _)| *ts <= end.saturating_sub(range_ns));
            let hi = points.partition_point(|(ts, _)| *ts <= end);
            if hi <= lo {
                continue;
            }
            let window = &points[lo..hi];
            let value = match func {
                RangeFunc::CountOverTime => Some(window.len() as f64),
                RangeFunc::Rate if leaf.unwrap.is_none() => Some(window.len() as f64 / (range_ns as f64 / 1e9)),
                _ => range_value(func, leaf.param, window, end, range_ns),
            };
            if let Some(value) = value {
                out[i].push((labels.clone(), value));
            }
        }
    }
    Ok(out)
}

/// A range function over the `(ts, value)` samples of one window ending at `end`.
fn range_value(func: RangeFunc, param: Option<f64>, window: &[(i64, f64)], end: i64, range_ns: i64) -> Option<f64> {
    let values = || window.iter().map(|(_, v)| *v);
    let n = window.len() as f64;
    let range_secs = range_ns as f64 / 1e9;
    Some(match func {
        RangeFunc::Rate | RangeFunc::BytesRate => values().sum::<f64>() / range_secs,
        RangeFunc::CountOverTime => n,
        RangeFunc::BytesOverTime | RangeFunc::SumOverTime => values().sum(),
        RangeFunc::AvgOverTime => values().sum::<f64>() / n,
        RangeFunc::MinOverTime => values().fold(f64::INFINITY, f64::min),
        RangeFunc::MaxOverTime => values().fold(f64::NEG_INFINITY, f64::max),
        RangeFunc::FirstOverTime => window.first()?.1,
        RangeFunc::LastOverTime => window.last()?.1,
        RangeFunc::StdvarOverTime | RangeFunc::StddevOverTime => {
            let mean = values().sum::<f64>() / n;
            let var = values().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
            if func == RangeFunc::StddevOverTime { var.sqrt() } else { var }
        }
        RangeFunc::QuantileOverTime => quantile(param.unwrap_or(f64::NAN), values().collect()),
        RangeFunc::RateCounter => counter_rate(window, end - range_ns, end)?,
    })
}

/// Prometheus's `quantile`: linear interpolation between closest ranks; ±Inf outside [0, 1].
pub(crate) fn quantile(q: f64, mut values: Vec<f64>) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    values.sort_by(f64::total_cmp);
    let rank = q * (values.len() - 1) as f64;
    let lower = rank.floor() as usize;
    let upper = (lower + 1).min(values.len() - 1);
    let weight = rank - rank.floor();
    values[lower] * (1.0 - weight) + values[upper] * weight
}

/// Prometheus's extrapolated counter rate over `(start, end]`: resets add the value before them,
/// the increase is extrapolated towards the window's edges (never below zero at the start).
pub(crate) fn counter_rate(window: &[(i64, f64)], start: i64, end: i64) -> Option<f64> {
    if window.len() < 2 {
        return None;
    }
    let (first_t, first_v) = window[0];
    let (last_t, last_v) = window[window.len() - 1];
    let mut increase = last_v - first_v;
    for pair in window.windows(2) {
        if pair[1].1 < pair[0].1 {
            increase += pair[0].1;
        }
    }
    let secs = |ns: i64| ns as f64 / 1e9;
    let sampled = secs(last_t - first_t);
    if sampled <= 0.0 {
        return None;
    }
    let mut to_start = secs(first_t - start);
    let to_end = secs(end - last_t);
    let average = sampled / (window.len() - 1) as f64;
    if increase > 0.0 && first_v >= 0.0 {
        to_start = to_start.min(sampled * (first_v / increase));
    }
    let threshold = average * 1.1;
    let mut interval = sampled;
    interval += if to_start < threshold { to_start } else { average / 2.0 };
    interval += if to_end < threshold { to_end } else { average / 2.0 };
    Some(increase * (interval / sampled) / secs(end - start))
}

fn group_key(labels: &Labels, grouping: Option<&Grouping>) -> Labels {
    match grouping {
        None => Labels::default(),
        Some(g) => Labels::from_pairs(
            labels
                .iter()
                .filter(|l| g.labels.contains(&l.name) != g.without)
                .map(|l| (l.name.clone(), l.value.clone())),
        ),
    }
}

fn aggregate(
    op: AggOp,
    param: Option<usize>,
    grouping: Option<&Grouping>,
    input: Vec<(Labels, f64)>,
) -> Vec<(Labels, f64)> {
    if let (AggOp::Topk | AggOp::Bottomk, Some(k)) = (op, param) {
        let mut groups: BTreeMap<Labels, Vec<(Labels, f64)>> = BTreeMap::new();
        for (labels, v) in input {
            groups.entry(group_key(&labels, grouping)).or_default().push((labels, v));
        }
        let mut out = Vec::new();
        for (_, mut members) in groups {
            members.sort_by(|a, b| {
                let by_value = if op == AggOp::Topk { b.1.total_cmp(&a.1) } else { a.1.total_cmp(&b.1) };
                by_value.then_with(|| a.0.cmp(&b.0))
            });
            members.truncate(k);
            out.extend(members);
        }
        return out;
    }
    // (sum, count, min, max)
    let mut groups: BTreeMap<Labels, (f64, f64, f64, f64)> = BTreeMap::new();
    for (labels, v) in input {
        let e = groups.entry(group_key(&labels, grouping)).or_insert((0.0, 0.0, f64::INFINITY, f64::NEG_INFINITY));
        e.0 += v;
        e.1 += 1.0;
        e.2 = e.2.min(v);
        e.3 = e.3.max(v);
    }
    groups
        .into_iter()
        .map(|(labels, (sum, count, min, max))| {
            let v = match op {
                AggOp::Sum => sum,
                AggOp::Avg => sum / count,
                AggOp::Min => min,
                AggOp::Max => max,
                _ => count,
            };
            (labels, v)
        })
        .collect()
}

/// Evaluates `expr` over the partitions overlapping the data range (`partitions_for(lo, hi)`)
/// until `cancel` is set.
pub(crate) fn execute_metric(
    partitions_for: impl Fn(i64, i64) -> Vec<Arc<Partition>>,
    expr: &MetricExpr,
    req: &MetricQueryRequest,
    cancel: &Cancel,
) -> Result<MetricQueryResponse, Error> {
    let started = Instant::now();
    let times = steps(req)?;
    let mut stats = QueryStats::default();
    let source = Source { partitions_for: &partitions_for, cancel };
    let vectors = match eval(&source, expr, &times, &mut stats)? {
        Value::Vectors(v) => v,
        Value::Number(_) => {
            return Err(Error::BadQuery("a metric query needs at least one range aggregation over a log query".into()));
        }
    };
    let data = if req.instant {
        let mut v: Vec<(Labels, i64, f64)> =
            vectors.into_iter().next().unwrap_or_default().into_iter().map(|(l, v)| (l, req.end_ns, v)).collect();
        if !matches!(expr, MetricExpr::Aggregate { op: AggOp::Topk | AggOp::Bottomk, .. }) {
            v.sort_by(|a, b| a.0.cmp(&b.0));
        }
        MetricData::Vector(v)
    } else {
        let mut series: BTreeMap<Labels, Vec<(i64, f64)>> = BTreeMap::new();
        for (t, vector) in times.iter().zip(vectors) {
            for (labels, v) in vector {
                series.entry(labels).or_default().push((*t, v));
            }
        }
        MetricData::Matrix(series.into_iter().map(|(labels, points)| MetricSeries { labels, points }).collect())
    };
    stats.exec_time = started.elapsed();
    Ok(MetricQueryResponse { data, stats })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_timestamps_print_as_loki() {
        assert_eq!(format_value(3.0), "3");
        assert_eq!(format_value(0.1), "0.1");
        assert_eq!(format_value(f64::INFINITY), "+Inf");
        assert_eq!(format_value(f64::NAN), "NaN");
        assert_eq!(timestamp_json(1_700_000_000_000_000_000), serde_json::json!(1_700_000_000));
        assert_eq!(timestamp_json(1_700_000_000_250_000_000), serde_json::json!(1_700_000_000.25));
    }

    #[test]
    fn steps_are_inclusive_and_bounded() {
        let req = MetricQueryRequest { query: String::new(), start_ns: 0, end_ns: 10, step_ns: 5, instant: false };
        assert_eq!(steps(&req).unwrap(), vec![0, 5, 10]);
        assert_eq!(steps(&MetricQueryRequest { instant: true, ..req.clone() }).unwrap(), vec![10]);
        assert!(steps(&MetricQueryRequest { step_ns: 0, ..req.clone() }).is_err());
        assert!(steps(&MetricQueryRequest { end_ns: -1, ..req }).is_err());
    }

    #[test]
    fn aggregations_group_by_and_without() {
        let l = |job: &str, pod: &str| Labels::from_pairs([("job", job), ("pod", pod)]);
        let input = vec![(l("a", "1"), 1.0), (l("a", "2"), 3.0), (l("b", "1"), 5.0)];
        let by_job = Grouping { without: false, labels: vec!["job".into()] };
        let got = aggregate(AggOp::Sum, None, Some(&by_job), input.clone());
        assert_eq!(got, vec![(Labels::from_pairs([("job", "a")]), 4.0), (Labels::from_pairs([("job", "b")]), 5.0)]);
        let without_job = Grouping { without: true, labels: vec!["job".into()] };
        let got = aggregate(AggOp::Max, None, Some(&without_job), input.clone());
        assert_eq!(got, vec![(Labels::from_pairs([("pod", "1")]), 5.0), (Labels::from_pairs([("pod", "2")]), 3.0)]);
        assert_eq!(aggregate(AggOp::Count, None, None, input.clone()), vec![(Labels::default(), 3.0)]);
        assert_eq!(aggregate(AggOp::Min, None, None, input.clone()), vec![(Labels::default(), 1.0)]);
        assert_eq!(aggregate(AggOp::Avg, None, None, input.clone()), vec![(Labels::default(), 3.0)]);
        let top = aggregate(AggOp::Topk, Some(1), Some(&by_job), input);
        assert_eq!(top, vec![(l("a", "2"), 3.0), (l("b", "1"), 5.0)]);
    }
}
