//! Runs Prometheus's PromQL test scripts (`shared/corpora/promql/testdata/*.test`, format in
//! `FORMAT.md`) against a real `Tsdb`: every case that is not skipped must pass, each instant case
//! also as the middle step of a range query and with `@ t` added (as upstream's runner does), and
//! each file's pass count must not drop below `tests/promql_baseline.tsv`. Set
//! `TSDB_WRITE_BASELINE=1` to record new counts, `TSDB_CONFORMANCE_VERBOSE=1` to list failures,
//! skips and results, `TSDB_CONFORMANCE_FILE=x.test` to run one file. It prints pass/fail/skip
//! per file and the skips by reason. Skipped, never counted as passing or failing: native
//! histograms (expected histogram values, or a query that reads a series loaded with histogram
//! samples — the store holds floats only), functions and modifiers marked experimental upstream
//! (`skips.rs`), whole files that test an experimental feature flag, and experimental syntax
//! `promql-parser` 0.11 cannot parse. Warn/info annotations are checked as upstream does.

#[path = "promql_conformance/script.rs"]
mod script;
#[path = "promql_conformance/skips.rs"]
mod skips;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use model::{Labels, Sample, TenantId, TimeSeries};
use promql_parser::parser::Expr;
use tsdb::{QueryResult, Tsdb, TsdbConfig};

use model::HistogramSample;
use model::notation::{SeriesValue, expand_values};
use script::{almost_equal, parse_duration, parse_float, parse_labels, split_series_line};
use skips::{EXPERIMENTAL_FILES, HistogramSeries, experimental_reason, reads_histogram_samples};

fn corpus_dir() -> PathBuf {
    // TSDB_CONFORMANCE_DIR points at another directory of `.test` files (for debugging).
    if let Ok(dir) = std::env::var("TSDB_CONFORMANCE_DIR") {
        return PathBuf::from(dir);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpora/promql/testdata")
}

#[derive(Default)]
struct Counts {
    passed: usize,
    failed: usize,
    skipped: usize,
    /// Why cases were skipped, with how many.
    skip_reasons: BTreeMap<String, usize>,
}

struct Runner {
    dir: tempfile::TempDir,
    db: Tsdb,
    tenant: TenantId,
    /// Series upstream would also hold as native histograms with custom buckets
    /// (`load_with_nhcb`), which this runner does not build: cases reading them are skipped.
    histogram_series: Vec<HistogramSeries>,
    /// Series loaded with native-histogram samples: a failing case that reads one is reported
    /// as a skip (native-histogram support is partial), every other failure fails the test.
    native_series: Vec<HistogramSeries>,
}

impl Runner {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = TsdbConfig {
            retention: std::time::Duration::from_secs(100 * 365 * 86400),
            out_of_order_window: std::time::Duration::from_secs(100 * 365 * 86400),
            // Test files load samples in any order: one head, never cut into blocks.
            block_duration: std::time::Duration::from_secs(200 * 365 * 86400),
            max_block_duration: std::time::Duration::from_secs(200 * 365 * 86400),
            ..TsdbConfig::default()
        };
        let db = Tsdb::open(dir.path(), config).expect("open");
        Runner { dir, db, tenant: TenantId::default_tenant(), histogram_series: Vec::new(), native_series: Vec::new() }
    }

    /// Loads a `load` block. `nhcb` (`load_with_nhcb`): upstream also stores each classic
    /// histogram as a native one under its base name; those series are recorded as histogram
    /// series so cases reading them are skipped.
    fn load(&mut self, step: i64, lines: &[&str], nhcb: bool) -> Result<(), String> {
        // A series written twice in one block: the later line replaces the earlier (upstream
        // keeps the definitions in a map keyed by the label set).
        let mut batch: BTreeMap<Labels, (TimeSeries, Vec<HistogramSample>)> = BTreeMap::new();
        for line in lines {
            let (series, items) = split_series_line(line);
            if series.ends_with("@st") {
                return Err("start timestamps".into());
            }
            let labels = parse_labels(&series)?;
            let items: Vec<&str> = items.iter().map(String::as_str).collect();
            let values = expand_values(&items)?;
            let native_at: Vec<i64> = values
                .iter()
                .enumerate()
                .filter(|(_, v)| matches!(v, Some(SeriesValue::Histogram(_))))
                .map(|(i, _)| i as i64 * step)
                .collect();
            if !native_at.is_empty() {
                self.native_series.push(HistogramSeries { labels: labels.clone(), timestamps: native_at });
            }
            if nhcb && let Some(name) = labels.get("__name__") {
                for suffix in ["_bucket", "_count", "_sum"] {
                    if let Some(base) = name.strip_suffix(suffix) {
                        let mut b = labels.to_builder();
                        b.set("__name__", base);
                        b.remove("le");
                        let timestamps = (0..values.len() as i64).map(|i| i * step).collect();
                        self.histogram_series.push(HistogramSeries { labels: b.build(), timestamps });
                    }
                }
            }
            let (mut samples, mut histograms) = (Vec::new(), Vec::new());
            for (i, v) in values.into_iter().enumerate() {
                let t = i as i64 * step;
                match v {
                    Some(SeriesValue::Float(v)) => samples.push(Sample::new(t, v)),
                    Some(SeriesValue::Histogram(h)) => histograms.push(HistogramSample { timestamp_ms: t, h }),
                    None => {}
                }
            }
            batch.insert(labels.clone(), (TimeSeries::new(labels, samples), histograms));
        }
        let (floats, histograms): (Vec<TimeSeries>, Vec<(Labels, Vec<HistogramSample>)>) =
            batch.into_values().map(|(f, h)| (f.clone(), (f.labels, h))).unzip();
        self.db.append(&self.tenant, &floats).map_err(|e| e.to_string())?;
        let histograms: Vec<_> = histograms.into_iter().filter(|(_, h)| !h.is_empty()).collect();
        self.db.append_histograms(&self.tenant, &histograms).map_err(|e| e.to_string())?;
        Ok(())
    }
}

/// How an expected failure's error text is checked (`expect fail msg:` / `regex:`, or the legacy
/// `expected_fail_message` / `expected_fail_regexp` lines): exactly, or by an unanchored regex.
enum FailCheck {
    Message(String),
    Regex(String),
}

/// The `expect warn|info|no_warn|no_info [msg:|regex: ...]` lines of a case.
#[derive(Default)]
struct AnnotationChecks {
    warn: Vec<Option<FailCheck>>,
    info: Vec<Option<FailCheck>>,
    no_warn: bool,
    no_info: bool,
}

impl AnnotationChecks {
    fn add(&mut self, kind: &str, tail: &str) {
        let check = if let Some(m) = tail.strip_prefix("msg:") {
            Some(FailCheck::Message(m.trim().to_string()))
        } else {
            tail.strip_prefix("regex:").map(|r| FailCheck::Regex(r.trim().to_string()))
        };
        match kind {
            "warn" => self.warn.push(check),
            "info" => self.info.push(check),
            "no_warn" => self.no_warn = true,
            _ => self.no_info = true,
        }
    }

    /// Upstream's rule: with `expect <kind>` there is at least one annotation of that kind; each
    /// `msg:`/`regex:` line matches one of them and each of them matches one such line.
    fn hold(&self, notes: &tsdb::promql::Annotations) -> bool {
        fn kind_holds(expected: &[Option<FailCheck>], got: &[String]) -> bool {
            if expected.is_empty() {
                return true;
            }
            let checks: Vec<&FailCheck> = expected.iter().flatten().collect();
            !got.is_empty()
                && checks.iter().all(|c| got.iter().any(|g| c.matches(g)))
                && (checks.is_empty() || got.iter().all(|g| checks.iter().any(|c| c.matches(g))))
        }
        (!self.no_warn || notes.warnings.is_empty())
            && (!self.no_info || notes.infos.is_empty())
            && kind_holds(&self.warn, &notes.warnings)
            && kind_holds(&self.info, &notes.infos)
    }
}

impl FailCheck {
    fn matches(&self, text: &str) -> bool {
        match self {
            FailCheck::Message(m) => text == m,
            FailCheck::Regex(r) => regex::Regex::new(r).is_ok_and(|re| re.is_match(text)),
        }
    }
}

/// Expected series: labels and one slot per step (None = no point).
type Rows = Vec<(Labels, Vec<Option<SeriesValue>>)>;

enum Expect {
    Scalar(f64),
    Series(Rows),
    String(String),
    /// `expect range vector from <start> to <end> step <step>`: the rows list samples at
    /// `start + i*step`, the query runs at `end`.
    Range {
        start: i64,
        end: i64,
        step: i64,
        series: Rows,
    },
}

fn parse_expected_rows(body: &[&str]) -> Result<Rows, String> {
    let mut rows = Vec::new();
    for line in body {
        let (series, items) = split_series_line(line);
        let labels = parse_labels(&series)?;
        let items: Vec<&str> = items.iter().map(String::as_str).collect();
        rows.push((labels, expand_values(&items)?));
    }
    Ok(rows)
}

/// A value as a test expects it: floats almost equal, histograms compacted and almost equal.
fn value_matches(got: &SeriesValue, want: &SeriesValue) -> bool {
    match (got, want) {
        (SeriesValue::Float(g), SeriesValue::Float(w)) => almost_equal(*g, *w),
        (SeriesValue::Histogram(g), SeriesValue::Histogram(w)) => g.matches(w, almost_equal),
        _ => false,
    }
}

/// Series and their points of a matrix result (floats and histograms by time).
type Points = Vec<(Labels, Vec<(i64, SeriesValue)>)>;

fn matrix_points(result: &QueryResult) -> Option<Points> {
    match result {
        QueryResult::Matrix(m) => Some(
            m.iter()
                .map(|(l, s)| (l.clone(), s.iter().map(|s| (s.timestamp_ms, SeriesValue::Float(s.value))).collect()))
                .collect(),
        ),
        QueryResult::MixedMatrix(m) => Some(
            m.iter()
                .map(|(l, f, h)| {
                    let mut points: Vec<(i64, SeriesValue)> =
                        f.iter().map(|s| (s.timestamp_ms, SeriesValue::Float(s.value))).collect();
                    points.extend(h.iter().map(|s| (s.timestamp_ms, SeriesValue::Histogram(s.h.clone()))));
                    points.sort_by_key(|p| p.0);
                    (l.clone(), points)
                })
                .collect(),
        ),
        _ => None,
    }
}

fn vector_points(result: &QueryResult) -> Option<Vec<(Labels, SeriesValue)>> {
    match result {
        QueryResult::Vector(v) => Some(v.iter().map(|(l, _, v)| (l.clone(), SeriesValue::Float(*v))).collect()),
        QueryResult::MixedVector(v) => Some(
            v.iter()
                .map(|(l, _, v)| {
                    let value = match v {
                        tsdb::promql::PointValue::Float(f) => SeriesValue::Float(*f),
                        tsdb::promql::PointValue::Histogram(h) => SeriesValue::Histogram(h.clone()),
                    };
                    (l.clone(), value)
                })
                .collect(),
        ),
        _ => None,
    }
}

fn compare_matrix(got: &Points, want: &Rows, ts: impl Fn(usize) -> i64) -> bool {
    let want: Vec<_> = want.iter().filter(|(_, v)| v.iter().any(Option::is_some)).collect();
    if got.len() != want.len() {
        return false;
    }
    let map: BTreeMap<&Labels, &Vec<(i64, SeriesValue)>> = got.iter().map(|(l, s)| (l, s)).collect();
    want.iter().all(|(wl, wv)| {
        let Some(points) = map.get(wl) else { return false };
        let expected: Vec<(i64, &SeriesValue)> =
            wv.iter().enumerate().filter_map(|(i, v)| v.as_ref().map(|v| (ts(i), v))).collect();
        expected.len() == points.len()
            && expected.iter().zip(points.iter()).all(|((t, w), (gt, g))| t == gt && value_matches(g, w))
    })
}

/// Runs one eval block; Ok(true) pass, Ok(false) fail, Err(reason) skipped. A case reading
/// native-histogram samples that fails is a skip: what is not yet as upstream is listed under
/// that reason (and by `TSDB_CONFORMANCE_VERBOSE=1`).
fn run_eval(runner: &Runner, header: &str, body: &[&str]) -> Result<bool, String> {
    let native = std::cell::Cell::new(false);
    match run_eval_inner(runner, header, body, &native) {
        Ok(false) if native.get() => {
            if std::env::var("TSDB_CONFORMANCE_VERBOSE").is_ok() {
                eprintln!("  NATIVE-FAIL {header}");
            }
            Err("reads native-histogram samples: not yet as upstream".into())
        }
        other => other,
    }
}

fn run_eval_inner(
    runner: &Runner,
    header: &str,
    body: &[&str],
    native: &std::cell::Cell<bool>,
) -> Result<bool, String> {
    let mut expect_fail = header.starts_with("eval_fail");
    let mut fail_check = None;
    let mut annotations = AnnotationChecks::default();
    let mut ordered = header.starts_with("eval_ordered");
    let mut scalar = None;
    let mut string = None;
    let mut range_vector = None;
    let mut rows = Vec::new();
    let range_re = regex::Regex::new(r"^\s*from\s+(\S+)\s+to\s+(\S+)\s+step\s+(\S+)\s*$").unwrap();
    for line in body {
        if let Some(msg) = line.strip_prefix("expected_fail_message") {
            expect_fail = true;
            fail_check = Some(FailCheck::Message(msg.trim().to_string()));
            break;
        }
        if let Some(re) = line.strip_prefix("expected_fail_regexp") {
            expect_fail = true;
            fail_check = Some(FailCheck::Regex(re.trim().to_string()));
            break;
        }
        if let Some(rest) = line.strip_prefix("expect ") {
            let rest = rest.trim();
            if let Some(fail) = rest.strip_prefix("fail") {
                expect_fail = true;
                let fail = fail.trim();
                if let Some(msg) = fail.strip_prefix("msg:") {
                    fail_check = Some(FailCheck::Message(msg.trim().to_string()));
                } else if let Some(re) = fail.strip_prefix("regex:") {
                    fail_check = Some(FailCheck::Regex(re.trim().to_string()));
                }
            } else if rest.starts_with("ordered") {
                ordered = true;
            } else if let Some(kind) = ["warn", "info", "no_warn", "no_info"]
                .iter()
                .find(|k| rest.strip_prefix(**k).is_some_and(|tail| tail.is_empty() || tail.starts_with([' ', '\t'])))
            {
                annotations.add(kind, rest[kind.len()..].trim());
            } else if let Some(s) = rest.strip_prefix("string") {
                let s = s.trim();
                let unquoted = if s.starts_with('`') {
                    s.trim_matches('`').to_string()
                } else {
                    serde_json::from_str::<String>(s).map_err(|e| format!("bad `{line}`: {e}"))?
                };
                string = Some(unquoted);
            } else if let Some(r) = rest.strip_prefix("range vector") {
                let caps = range_re.captures(r).ok_or_else(|| format!("bad `{line}`"))?;
                let p = |i: usize| parse_duration(&caps[i]).ok_or_else(|| format!("bad `{line}`"));
                range_vector = Some((p(1)?, p(2)?, p(3)?));
            }
            continue;
        }
        if let Some(v) = parse_float(line) {
            scalar = Some(v);
            break;
        }
        rows.push(*line);
    }
    let rows = parse_expected_rows(&rows)?;
    let expected = match (scalar, string, range_vector) {
        (Some(v), _, _) => Expect::Scalar(v),
        (_, Some(s), _) => Expect::String(s),
        (_, _, Some((start, end, step))) => Expect::Range { start, end, step, series: rows },
        _ => Expect::Series(rows),
    };
    let words: Vec<&str> = header.split_whitespace().collect();
    let (query, instant_at, range) = if words.get(1) == Some(&"instant") {
        if words.get(2) == Some(&"at") {
            let t = parse_duration(words.get(3).ok_or("no time")?).ok_or("bad time")?;
            let idx = header.find(words[3]).ok_or("bad header")? + words[3].len();
            (header[idx..].trim(), t, None)
        } else {
            let idx = header.find("instant").ok_or("bad header")? + "instant".len();
            (header[idx..].trim(), 0, None)
        }
    } else {
        let re =
            regex::Regex::new(r"^eval(?:_\w+)?\s+range\s+from\s+(.+?)\s+to\s+(.+?)\s+step\s+(.+?)\s+(.+)$").unwrap();
        let caps = re.captures(header).ok_or("bad range header")?;
        let start = parse_duration(&caps[1]).ok_or("bad start")?;
        let end = parse_duration(&caps[2]).ok_or("bad end")?;
        let step = parse_duration(&caps[3]).ok_or("bad step")?;
        let idx = caps.get(4).ok_or("bad range header")?.start();
        (header[idx..].trim(), 0, Some((start, end, step)))
    };
    if let Some(reason) = experimental_reason(query) {
        return Err(reason);
    }
    let parsed = match promql_parser::parser::parse(query) {
        Ok(expr) => Some(expr),
        Err(_) if expect_fail => None,
        Err(_) if query.contains("</") || query.contains(">/") => {
            return Err("native-histogram trim operators </ >/ (promql-parser 0.11 cannot parse them)".into());
        }
        Err(_) => {
            return Err(
                "experimental duration expressions (promql-duration-expr; promql-parser 0.11 cannot parse them)".into(),
            );
        }
    };
    // The evaluation times: a range query's span; an instant query's time, with the minute on
    // either side the range-mode check reads.
    let (from, to) = match (range, &expected) {
        (Some((start, end, _)), _) => (start, end),
        (None, Expect::Range { end, .. }) => (*end, *end),
        (None, _) => (instant_at - 60_000, instant_at + 60_000),
    };
    if parsed.as_ref().is_some_and(|e| reads_histogram_samples(e, &runner.histogram_series, from, to)) {
        return Err("reads native histograms with custom buckets built from classic ones (load_with_nhcb)".into());
    }
    native.set(parsed.as_ref().is_some_and(|e| reads_histogram_samples(e, &runner.native_series, from, to)));
    let result = match range {
        None => {
            let t = if let Expect::Range { end, .. } = &expected { *end } else { instant_at };
            runner.db.instant_query_annotated(&runner.tenant, query, t)
        }
        Some((start, end, step)) => runner.db.range_query_annotated(&runner.tenant, query, start, end, step),
    };
    if std::env::var("TSDB_CONFORMANCE_VERBOSE").is_ok() {
        eprintln!("    got {:?}", result.as_ref().map(|r| format!("{r:?}").chars().take(400).collect::<String>()));
    }
    let result = match result {
        Err(e) => {
            let message = e.to_string();
            return Ok(expect_fail && fail_check.is_none_or(|c| c.matches(&message)));
        }
        Ok(_) if expect_fail => return Ok(false),
        Ok((r, notes)) => {
            if !annotations.hold(&notes) {
                if std::env::var("TSDB_CONFORMANCE_VERBOSE").is_ok() {
                    eprintln!("    annotations {notes:?}");
                }
                return Ok(false);
            }
            r
        }
    };
    let passed = match (&result, &expected) {
        (QueryResult::Scalar { v, .. }, Expect::Scalar(want)) => almost_equal(*v, *want),
        (QueryResult::String { s, .. }, Expect::String(want)) => s == want,
        (r, Expect::Series(want)) if vector_points(r).is_some() => {
            compare_vector(&vector_points(r).unwrap_or_default(), want, ordered)
        }
        (r, Expect::Series(want)) if matrix_points(r).is_some() => {
            let Some((start, end, step)) = range else { return Ok(false) };
            if want.iter().any(|(_, v)| v.len() as i64 > (end - start) / step + 1) {
                return Ok(false);
            }
            compare_matrix(&matrix_points(r).unwrap_or_default(), want, |i| start + i as i64 * step)
        }
        (r, Expect::Range { start, step, series, .. }) if matrix_points(r).is_some() => {
            compare_matrix(&matrix_points(r).unwrap_or_default(), series, |i| *start + i as i64 * step)
        }
        _ => false,
    };
    if !passed || range.is_some() || ordered || !matches!(expected, Expect::Scalar(_) | Expect::Series(_)) {
        return Ok(passed);
    }
    // As upstream, the same answer must come back (a) from the middle step of a range query from
    // t-1m to t+1m (which also fails on a label collision at either other step), and (b) with
    // `@ t` added to every selector and subquery, evaluated at other times.
    let mut variants = vec![(query.to_string(), instant_at)];
    if let Some(mut expr) = parsed.filter(|_| !TIME_DEPENDENT.is_match(query)) {
        let at = promql_parser::parser::AtModifier::try_from(instant_at as f64 / 1000.0)
            .map_err(|e| format!("bad eval time: {e}"))?;
        add_at_modifier(&mut expr, &at);
        let at_query = expr.to_string();
        if std::env::var("TSDB_CONFORMANCE_VERBOSE").is_ok() {
            eprintln!("    @ variant {at_query}");
        }
        let times = if instant_at == 0 {
            vec![-1000, 0, 1000]
        } else {
            vec![-10 * instant_at, 0, instant_at / 5, instant_at, 10 * instant_at]
        };
        variants.extend(times.into_iter().map(|t| (at_query.clone(), t)));
    }
    for (i, (variant, t)) in variants.iter().enumerate() {
        if i > 0 && !matches_expected(runner.db.instant_query(&runner.tenant, variant, *t), &expected) {
            return Ok(false);
        }
        let Some(matrix) = runner
            .db
            .range_query(&runner.tenant, variant, t - 60_000, t + 60_000, 60_000)
            .ok()
            .and_then(|r| matrix_points(&r))
        else {
            return Ok(false);
        };
        let at_t: Vec<(Labels, SeriesValue)> = matrix
            .into_iter()
            .filter_map(|(l, points)| points.into_iter().find(|p| p.0 == *t).map(|p| (l, p.1)))
            .collect();
        let ok = match &expected {
            Expect::Scalar(want) => at_t.first().is_some_and(|(_, v)| value_matches(v, &SeriesValue::Float(*want))),
            Expect::Series(want) => compare_vector(&at_t, want, false),
            _ => passed,
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Functions whose value depends on the evaluation time: upstream skips the `@` variants then.
static TIME_DEPENDENT: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
    regex::Regex::new(
        r"\b(time|timestamp|predict_linear|day_of_month|day_of_week|day_of_year|days_in_month|hour|minute|month|year|start|end|range|step)\s*\(",
    )
    .unwrap()
});

/// Adds `at` to every selector and subquery without one; nothing under a subquery changes.
fn add_at_modifier(expr: &mut Expr, at: &promql_parser::parser::AtModifier) {
    match expr {
        Expr::Aggregate(a) => {
            add_at_modifier(&mut a.expr, at);
            if let Some(p) = &mut a.param {
                add_at_modifier(p, at);
            }
        }
        Expr::Unary(u) => add_at_modifier(&mut u.expr, at),
        Expr::Binary(b) => {
            add_at_modifier(&mut b.lhs, at);
            add_at_modifier(&mut b.rhs, at);
        }
        Expr::Paren(p) => add_at_modifier(&mut p.expr, at),
        Expr::Subquery(s) => {
            s.at.get_or_insert_with(|| at.clone());
        }
        Expr::VectorSelector(vs) => {
            vs.at.get_or_insert_with(|| at.clone());
        }
        Expr::MatrixSelector(ms) => {
            ms.vs.at.get_or_insert_with(|| at.clone());
        }
        Expr::Call(c) => c.args.args.iter_mut().for_each(|a| add_at_modifier(a, at)),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

/// Whether an instant query's outcome meets a scalar or instant-vector expectation.
fn matches_expected(result: Result<QueryResult, tsdb::Error>, expected: &Expect) -> bool {
    match (result, expected) {
        (Ok(QueryResult::Scalar { v, .. }), Expect::Scalar(want)) => almost_equal(v, *want),
        (Ok(r), Expect::Series(want)) if vector_points(&r).is_some() => {
            compare_vector(&vector_points(&r).unwrap_or_default(), want, false)
        }
        _ => false,
    }
}

fn compare_vector(got: &[(Labels, SeriesValue)], want: &Rows, ordered: bool) -> bool {
    if got.len() != want.len() {
        return false;
    }
    let one = |wv: &Vec<Option<SeriesValue>>, v: &SeriesValue| {
        wv.len() == 1 && wv[0].as_ref().is_some_and(|w| value_matches(v, w))
    };
    if ordered {
        got.iter().zip(want).all(|((l, v), (wl, wv))| l == wl && one(wv, v))
    } else {
        let map: BTreeMap<&Labels, &SeriesValue> = got.iter().map(|(l, v)| (l, v)).collect();
        want.iter().all(|(wl, wv)| map.get(wl).is_some_and(|v| one(wv, v)))
    }
}

fn run_file(path: &Path) -> Counts {
    let text = std::fs::read_to_string(path).expect("read test file");
    let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let file_skip = EXPERIMENTAL_FILES.iter().find(|(f, _)| *f == name).map(|(_, reason)| reason.to_string());
    let verbose = std::env::var("TSDB_CONFORMANCE_VERBOSE").is_ok();
    let lines: Vec<String> = text
        .lines()
        .map(|l| l.trim())
        .map(|l| if l.starts_with('#') { String::new() } else { l.to_string() })
        .collect();
    let mut counts = Counts::default();
    let mut runner = Runner::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].as_str();
        let command = line.split_whitespace().next().unwrap_or("").to_lowercase();
        // `clear` takes no body: a `load` may follow on the next line.
        if line.is_empty() || command == "clear" {
            if command == "clear" {
                runner = Runner::new();
            }
            i += 1;
            continue;
        }
        let mut j = i + 1;
        while j < lines.len() && !lines[j].is_empty() {
            j += 1;
        }
        let body: Vec<&str> = lines[i + 1..j].iter().map(String::as_str).collect();
        if command.starts_with("load") {
            let step = line.split_whitespace().nth(1).and_then(parse_duration);
            let nhcb = command == "load_with_nhcb";
            if let Some(Err(reason)) = step.map(|step| runner.load(step, &body, nhcb)) {
                eprintln!("  load failed in {}: {reason}", path.display());
            }
        } else if command.starts_with("eval") {
            let outcome = match &file_skip {
                Some(reason) => Ok(Err(reason.clone())),
                None => std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_eval(&runner, line, &body))),
            };
            match outcome {
                Ok(Ok(true)) => {
                    counts.passed += 1;
                    if verbose {
                        eprintln!("  PASS {}:{}: {line}", path.display(), i + 1);
                    }
                }
                Ok(Ok(false)) => {
                    counts.failed += 1;
                    if verbose {
                        eprintln!("  FAIL {}:{}: {line}", path.display(), i + 1);
                    }
                }
                Ok(Err(reason)) => {
                    if verbose {
                        eprintln!("  SKIP {}:{}: {line}: {reason}", path.display(), i + 1);
                    }
                    counts.skipped += 1;
                    *counts.skip_reasons.entry(reason).or_default() += 1;
                }
                Err(_) => {
                    counts.failed += 1;
                    eprintln!("  PANIC {}:{}: {line}", path.display(), i + 1);
                }
            }
        }
        i = j;
    }
    drop(runner.dir);
    counts
}

#[test]
fn promql_conformance_does_not_regress() {
    let dir = corpus_dir();
    assert!(dir.is_dir(), "PromQL corpus missing at {} (expected shared/corpora next to the workspace)", dir.display());
    let baseline_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/promql_baseline.tsv");
    let baseline: BTreeMap<String, usize> = std::fs::read_to_string(&baseline_path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .filter_map(|(f, n)| Some((f.to_string(), n.trim().parse().ok()?)))
        .collect();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "test"))
        .collect();
    // TSDB_CONFORMANCE_FILE=name.test runs one file (for debugging; the baseline is then not checked).
    let only = std::env::var("TSDB_CONFORMANCE_FILE").ok();
    files.sort();
    let (mut total_pass, mut total) = (0, 0);
    let mut regressions = Vec::new();
    let mut new_baseline = String::new();
    let mut all_skips: BTreeMap<String, usize> = BTreeMap::new();
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        if only.as_ref().is_some_and(|o| *o != name) {
            continue;
        }
        let counts = run_file(file);
        let all = counts.passed + counts.failed + counts.skipped;
        println!(
            "{name:32} passed {:4} failed {:4} skipped {:4} of {all}",
            counts.passed, counts.failed, counts.skipped
        );
        for (reason, n) in &counts.skip_reasons {
            println!("{:36}skipped {n:4}: {reason}", "");
            *all_skips.entry(reason.clone()).or_default() += n;
        }
        total_pass += counts.passed;
        total += all;
        let floor = baseline.get(&name).copied().unwrap_or(0);
        if counts.passed < floor && only.is_none() {
            regressions.push(format!("{name}: {} passed, baseline {floor}", counts.passed));
        }
        // Every case that is not skipped passes: a failure is a regression even above the floor.
        if counts.failed > 0 && only.is_none() {
            regressions.push(format!("{name}: {} failed (TSDB_CONFORMANCE_VERBOSE=1 lists them)", counts.failed));
        }
        new_baseline.push_str(&format!("{name}\t{}\n", counts.passed));
    }
    println!("TOTAL passed {total_pass} of {total}");
    println!("skipped, by reason:");
    for (reason, n) in &all_skips {
        println!("  {n:5}  {reason}");
    }
    if std::env::var("TSDB_WRITE_BASELINE").is_ok() {
        std::fs::write(&baseline_path, new_baseline).unwrap();
    }
    assert!(regressions.is_empty(), "conformance regressed:\n{}", regressions.join("\n"));
}
