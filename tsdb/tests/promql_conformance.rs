//! Runs Prometheus's PromQL test scripts (`shared/corpora/promql/testdata/*.test`, format in
//! `FORMAT.md`) against a real `Tsdb` and ratchets progress: each file's pass count must not drop
//! below `tests/promql_baseline.tsv`. Set `TSDB_WRITE_BASELINE=1` to record new counts,
//! `TSDB_CONFORMANCE_VERBOSE=1` to list failures, skips and results, `TSDB_CONFORMANCE_FILE=x.test`
//! to run one file. It prints pass/fail/skip per file and the skips by reason. Skipped, never
//! counted as passing or failing: native histograms (expected histogram values, or a query that
//! reads a series loaded with histogram samples — the store holds floats only), functions and
//! modifiers marked experimental upstream (`EXPERIMENTAL_*` below), whole files that test an
//! experimental feature flag, and syntax `promql-parser` 0.11 cannot parse.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use model::{Labels, Sample, TenantId, TimeSeries};
use promql_parser::label::{MatchOp, Matcher};
use promql_parser::parser::{Expr, VectorSelector};
use tsdb::{QueryResult, Tsdb, TsdbConfig};

fn corpus_dir() -> PathBuf {
    // TSDB_CONFORMANCE_DIR points at another directory of `.test` files (for debugging).
    if let Ok(dir) = std::env::var("TSDB_CONFORMANCE_DIR") {
        return PathBuf::from(dir);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpora/promql/testdata")
}

fn parse_duration(s: &str) -> Option<i64> {
    let s = s.trim();
    if s == "0" {
        return Some(0);
    }
    let (mut total, mut num, mut rest) = (0i64, String::new(), s);
    while !rest.is_empty() {
        let c = rest.chars().next()?;
        if c.is_ascii_digit() {
            num.push(c);
            rest = &rest[1..];
            continue;
        }
        let (unit, ms) = if rest.starts_with("ms") {
            ("ms", 1)
        } else {
            match c {
                's' => ("s", 1000),
                'm' => ("m", 60_000),
                'h' => ("h", 3_600_000),
                'd' => ("d", 86_400_000),
                'w' => ("w", 604_800_000),
                'y' => ("y", 31_536_000_000),
                _ => return None,
            }
        };
        total += num.parse::<i64>().ok()? * ms;
        num.clear();
        rest = &rest[unit.len()..];
    }
    num.is_empty().then_some(total)
}

/// A value inside a series line: no hex (`0x59` is `0` repeated 60 times there).
fn parse_item_value(s: &str) -> Option<f64> {
    if s.starts_with("0x") { None } else { parse_float(s) }
}

/// A number as an expected scalar line (Go's `ParseInt(s, 0, 64)` then `ParseFloat`: hex allowed).
fn parse_float(s: &str) -> Option<f64> {
    match s {
        "stale" => Some(model::stale_nan()),
        "Inf" | "+Inf" | "inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        _ => {
            if let Some(hex) = s.strip_prefix("0x") {
                return i64::from_str_radix(hex, 16).ok().map(|v| v as f64);
            }
            s.parse::<f64>().ok()
        }
    }
}

/// Splits the value part of a series line into items, keeping a `{{...}}` histogram (which
/// contains spaces) together with its `xN` / `+{{...}}xN` suffix.
fn tokenize_items(text: &str) -> Vec<String> {
    let mut items: Vec<String> = Vec::new();
    let mut depth = 0usize;
    let mut current = String::new();
    for word in text.split_whitespace() {
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(word);
        depth += word.matches("{{").count();
        depth = depth.saturating_sub(word.matches("}}").count());
        if depth == 0 {
            items.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        items.push(current);
    }
    items
}

/// Expands series items into values (None = omitted slot). A native histogram item is an
/// omitted slot when `histograms_as_gaps` (loading: the float store keeps the series' float
/// samples) and an error otherwise (an expected histogram cannot be compared).
fn expand_items(items: &[&str], histograms_as_gaps: bool) -> Result<Vec<Option<f64>>, String> {
    let mut out = Vec::new();
    for item in items {
        if item.contains("{{") {
            if !histograms_as_gaps {
                return Err("native histogram".into());
            }
            let copies = item
                .rsplit_once("}}")
                .and_then(|(_, tail)| tail.strip_prefix('x'))
                .and_then(|n| n.parse::<usize>().ok())
                .map_or(1, |n| n + 1);
            out.extend(std::iter::repeat_n(None, copies));
            continue;
        }
        if *item == "_" {
            out.push(None);
            continue;
        }
        if let Some(n) = item.strip_prefix("_x") {
            let n: usize = n.parse().map_err(|_| format!("bad item {item}"))?;
            out.extend(std::iter::repeat_n(None, n));
            continue;
        }
        if let Some(v) = parse_item_value(item) {
            out.push(Some(v));
            continue;
        }
        let (head, times) = item.rsplit_once('x').ok_or_else(|| format!("bad item {item}"))?;
        let n: usize = times.parse().map_err(|_| format!("bad item {item}"))?;
        if let Some(v) = parse_item_value(head) {
            out.extend(std::iter::repeat_n(Some(v), n + 1));
            continue;
        }
        let bytes = head.as_bytes();
        let split = (1..bytes.len())
            .find(|&i| (bytes[i] == b'+' || bytes[i] == b'-') && !matches!(bytes[i - 1], b'e' | b'E'))
            .ok_or_else(|| format!("bad item {item}"))?;
        let start = parse_item_value(&head[..split]).ok_or_else(|| format!("bad item {item}"))?;
        let mut inc = parse_item_value(&head[split + 1..]).ok_or_else(|| format!("bad item {item}"))?;
        if bytes[split] == b'-' {
            inc = -inc;
        }
        for i in 0..=n {
            out.push(Some(start + inc * i as f64));
        }
    }
    Ok(out)
}

/// Splits `name{a="b c"} 1 2` into the series text and the value items.
fn split_series_line(line: &str) -> (String, Vec<String>) {
    let mut depth = 0;
    let mut in_quote = false;
    let mut end = line.len();
    let mut prev = ' ';
    for (i, c) in line.char_indices() {
        match c {
            '"' if prev != '\\' => in_quote = !in_quote,
            '{' if !in_quote => depth += 1,
            '}' if !in_quote => depth -= 1,
            c if c.is_whitespace() && !in_quote && depth == 0 => {
                end = i;
                break;
            }
            _ => {}
        }
        prev = c;
    }
    (line[..end].to_string(), tokenize_items(&line[end..]))
}

fn parse_labels(series: &str) -> Result<Labels, String> {
    if series == "{}" {
        return Ok(Labels::empty());
    }
    let matchers = tsdb::promql::parse_series_selector(series).map_err(|e| e.to_string())?;
    Ok(Labels::from_pairs(matchers.into_iter().map(|m| (m.name, m.value))))
}

fn almost_equal(a: f64, b: f64) -> bool {
    if model::is_stale_nan(a) || model::is_stale_nan(b) {
        return model::is_stale_nan(a) && model::is_stale_nan(b);
    }
    if a.is_nan() && b.is_nan() {
        return true;
    }
    if a == b {
        return true;
    }
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 {
        return diff < 1e-6 * f64::MIN_POSITIVE;
    }
    diff / (a.abs() + b.abs()).min(f64::MAX) < 1e-6
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
    /// Series loaded with native-histogram samples (stored here with only their float samples).
    histogram_series: Vec<Labels>,
}

impl Runner {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = TsdbConfig {
            retention: std::time::Duration::from_secs(100 * 365 * 86400),
            out_of_order_window: std::time::Duration::from_secs(100 * 365 * 86400),
            ..TsdbConfig::default()
        };
        let db = Tsdb::open(dir.path(), config).expect("open");
        Runner { dir, db, tenant: TenantId::default_tenant(), histogram_series: Vec::new() }
    }

    /// Loads a `load` block. `nhcb` (`load_with_nhcb`): upstream also stores each classic
    /// histogram as a native one under its base name; those series are recorded as histogram
    /// series so cases reading them are skipped.
    fn load(&mut self, step: i64, lines: &[&str], nhcb: bool) -> Result<(), String> {
        // A series written twice in one block: the later line replaces the earlier (upstream
        // keeps the definitions in a map keyed by the label set).
        let mut batch: BTreeMap<Labels, TimeSeries> = BTreeMap::new();
        for line in lines {
            let (series, items) = split_series_line(line);
            if series.ends_with("@st") {
                return Err("start timestamps".into());
            }
            let labels = parse_labels(&series)?;
            if items.iter().any(|i| i.contains("{{")) {
                self.histogram_series.push(labels.clone());
            }
            if nhcb && let Some(name) = labels.get("__name__") {
                for suffix in ["_bucket", "_count", "_sum"] {
                    if let Some(base) = name.strip_suffix(suffix) {
                        let mut b = labels.to_builder();
                        b.set("__name__", base);
                        b.remove("le");
                        self.histogram_series.push(b.build());
                    }
                }
            }
            let items: Vec<&str> = items.iter().map(String::as_str).collect();
            let values = expand_items(&items, true)?;
            let samples =
                values.iter().enumerate().filter_map(|(i, v)| v.map(|v| Sample::new(i as i64 * step, v))).collect();
            batch.insert(labels.clone(), TimeSeries::new(labels, samples));
        }
        let batch: Vec<TimeSeries> = batch.into_values().collect();
        self.db.append(&self.tenant, &batch).map_err(|e| e.to_string())?;
        Ok(())
    }
}

/// Expected series: labels and one slot per step (None = no point).
type Rows = Vec<(Labels, Vec<Option<f64>>)>;

enum Expect {
    Scalar(f64),
    Series(Vec<(Labels, Vec<Option<f64>>)>),
    String(String),
    /// `expect range vector from <start> to <end> step <step>`: the rows list samples at
    /// `start + i*step`, the query runs at `end`.
    Range {
        start: i64,
        end: i64,
        step: i64,
        series: Vec<(Labels, Vec<Option<f64>>)>,
    },
}

/// Functions marked `Experimental: true` in Prometheus's `promql/parser/functions.go`, plus the
/// experimental aggregations `limitk`/`limit_ratio` (rejected by its parser unless
/// `promql-experimental-functions` is on). Cases using them are skipped, not counted.
const EXPERIMENTAL_FUNCTIONS: &[&str] = &[
    "double_exponential_smoothing",
    "end",
    "first_over_time",
    "histogram_quantiles",
    "info",
    "integral",
    "mad_over_time",
    "range",
    "sort_by_label",
    "sort_by_label_desc",
    "start",
    "step",
    "ts_of_first_over_time",
    "ts_of_last_over_time",
    "ts_of_max_over_time",
    "ts_of_min_over_time",
    "limitk",
    "limit_ratio",
    // Newer than that functions.go snapshot; promql-parser 0.11 marks them experimental too.
    "min_of",
    "max_of",
    "start_timestamp",
];

/// Experimental syntax behind feature flags upstream: extended range selectors
/// (`promql-extended-range-selectors`) and binop fill modifiers.
const EXPERIMENTAL_KEYWORDS: &[&str] = &["anchored", "smoothed", "fill", "fill_left", "fill_right"];

/// Files that test an experimental feature flag as a whole.
const EXPERIMENTAL_FILES: &[(&str, &str)] = &[
    ("type_and_unit.test", "experimental feature type-and-unit-labels"),
    ("start_timestamps.test", "experimental start timestamps (created timestamps in storage)"),
];

/// The reason a query is experimental upstream, if it is.
fn experimental_reason(query: &str) -> Option<String> {
    let bytes = query.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_alphabetic() || bytes[i] == b'_' {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            let word = &query[start..i];
            let prev_quote = start > 0 && matches!(bytes[start - 1], b'"' | b'\'');
            let next = query[i..].trim_start();
            if !prev_quote && EXPERIMENTAL_FUNCTIONS.contains(&word) && next.starts_with('(') {
                return Some(format!("experimental function {word}()"));
            }
            if !prev_quote && EXPERIMENTAL_KEYWORDS.contains(&word) {
                return Some(format!("experimental modifier {word}"));
            }
        } else {
            i += 1;
        }
    }
    None
}

fn collect_selectors<'e>(expr: &'e Expr, out: &mut Vec<&'e VectorSelector>) {
    match expr {
        Expr::Aggregate(a) => {
            collect_selectors(&a.expr, out);
            if let Some(p) = &a.param {
                collect_selectors(p, out);
            }
        }
        Expr::Unary(u) => collect_selectors(&u.expr, out),
        Expr::Binary(b) => {
            collect_selectors(&b.lhs, out);
            collect_selectors(&b.rhs, out);
        }
        Expr::Paren(p) => collect_selectors(&p.expr, out),
        Expr::Subquery(s) => collect_selectors(&s.expr, out),
        Expr::VectorSelector(vs) => out.push(vs),
        Expr::MatrixSelector(ms) => out.push(&ms.vs),
        Expr::Call(c) => c.args.args.iter().for_each(|a| collect_selectors(a, out)),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

/// Whether the query reads a series that was loaded with native-histogram samples.
fn reads_histogram_series(expr: &Expr, histogram_series: &[Labels]) -> bool {
    if histogram_series.is_empty() {
        return false;
    }
    let mut selectors = Vec::new();
    collect_selectors(expr, &mut selectors);
    selectors.iter().any(|vs| {
        let mut groups: Vec<Vec<Matcher>> = if vs.matchers.or_matchers.is_empty() {
            vec![vs.matchers.matchers.clone()]
        } else {
            vs.matchers.or_matchers.clone()
        };
        if let Some(name) = &vs.name {
            groups.iter_mut().for_each(|g| g.push(Matcher::new(MatchOp::Equal, "__name__", name)));
        }
        histogram_series
            .iter()
            .any(|labels| groups.iter().any(|g| g.iter().all(|m| m.is_match(labels.get(&m.name).unwrap_or("")))))
    })
}

fn parse_expected_rows(body: &[&str]) -> Result<Rows, String> {
    let mut rows = Vec::new();
    for line in body {
        let (series, items) = split_series_line(line);
        let labels = parse_labels(&series)?;
        let items: Vec<&str> = items.iter().map(String::as_str).collect();
        rows.push((labels, expand_items(&items, false)?));
    }
    Ok(rows)
}

fn compare_matrix(
    got: &[(Labels, Vec<Sample>)],
    want: &[(Labels, Vec<Option<f64>>)],
    ts: impl Fn(usize) -> i64,
) -> bool {
    let want: Vec<&(Labels, Vec<Option<f64>>)> = want.iter().filter(|(_, v)| v.iter().any(Option::is_some)).collect();
    if got.len() != want.len() {
        return false;
    }
    let map: BTreeMap<&Labels, &Vec<Sample>> = got.iter().map(|(l, s)| (l, s)).collect();
    want.iter().all(|(wl, wv)| {
        let Some(samples) = map.get(wl) else { return false };
        let expected: Vec<(i64, f64)> = wv.iter().enumerate().filter_map(|(i, v)| v.map(|v| (ts(i), v))).collect();
        expected.len() == samples.len()
            && expected.iter().zip(samples.iter()).all(|((t, w), s)| *t == s.timestamp_ms && almost_equal(s.value, *w))
    })
}

/// Runs one eval block; Ok(true) pass, Ok(false) fail, Err(reason) skipped.
fn run_eval(runner: &Runner, header: &str, body: &[&str]) -> Result<bool, String> {
    let mut expect_fail = header.starts_with("eval_fail");
    let mut ordered = header.starts_with("eval_ordered");
    let mut scalar = None;
    let mut string = None;
    let mut range_vector = None;
    let mut rows = Vec::new();
    let range_re = regex::Regex::new(r"^\s*from\s+(\S+)\s+to\s+(\S+)\s+step\s+(\S+)\s*$").unwrap();
    for line in body {
        if line.starts_with("expected_fail_") {
            expect_fail = true;
            break;
        }
        if let Some(rest) = line.strip_prefix("expect ") {
            let rest = rest.trim();
            if rest.starts_with("fail") {
                expect_fail = true;
            } else if rest.starts_with("ordered") {
                ordered = true;
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
        Err(_) => return Err("syntax promql-parser 0.11 lacks (duration expressions, trim operators)".into()),
    };
    if parsed.as_ref().is_some_and(|e| reads_histogram_series(e, &runner.histogram_series)) {
        return Err("reads native-histogram samples".into());
    }
    let result = match range {
        None => {
            let t = if let Expect::Range { end, .. } = &expected { *end } else { instant_at };
            runner.db.instant_query(&runner.tenant, query, t)
        }
        Some((start, end, step)) => runner.db.range_query(&runner.tenant, query, start, end, step),
    };
    if std::env::var("TSDB_CONFORMANCE_VERBOSE").is_ok() {
        eprintln!("    got {:?}", result.as_ref().map(|r| format!("{r:?}").chars().take(400).collect::<String>()));
    }
    let result = match result {
        Err(_) => return Ok(expect_fail),
        Ok(_) if expect_fail => return Ok(false),
        Ok(r) => r,
    };
    Ok(match (result, expected) {
        (QueryResult::Scalar { v, .. }, Expect::Scalar(want)) => almost_equal(v, want),
        (QueryResult::String { s, .. }, Expect::String(want)) => s == want,
        (QueryResult::Vector(got), Expect::Series(want)) => {
            if got.len() != want.len() {
                return Ok(false);
            }
            if ordered {
                got.iter()
                    .zip(&want)
                    .all(|((l, _, v), (wl, wv))| l == wl && wv.len() == 1 && wv[0].is_some_and(|w| almost_equal(*v, w)))
            } else {
                let map: BTreeMap<&Labels, f64> = got.iter().map(|(l, _, v)| (l, *v)).collect();
                want.iter().all(|(wl, wv)| {
                    wv.len() == 1 && map.get(wl).is_some_and(|v| wv[0].is_some_and(|w| almost_equal(*v, w)))
                })
            }
        }
        (QueryResult::Matrix(got), Expect::Series(want)) => {
            let Some((start, end, step)) = range else { return Ok(false) };
            if want.iter().any(|(_, v)| v.len() as i64 > (end - start) / step + 1) {
                return Ok(false);
            }
            compare_matrix(&got, &want, |i| start + i as i64 * step)
        }
        (QueryResult::Matrix(got), Expect::Range { start, step, series, .. }) => {
            compare_matrix(&got, &series, |i| start + i as i64 * step)
        }
        _ => false,
    })
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
                Ok(Ok(true)) => counts.passed += 1,
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
