//! `tarsier test-rules`: promtool's rule unit-test format (`rule_files`, `evaluation_interval`,
//! `tests` with `input_series`, `alert_rule_test`, `promql_expr_test`), run against a throwaway
//! tsdb with Tarsier's own rule engine, so teams keep the tests they wrote for Prometheus and get
//! the verdicts promtool gives.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use model::notation::{SeriesValue, expand_values, parse_duration, split_series_line};
use model::{HistogramSample, Labels, Sample, TenantId, TimeSeries};
use serde::Deserialize;

use crate::eval::{Group, Lang, LocalStores, RuleKind, TemplateContext};
use crate::rules::{NameValidation, parse_rule_file_with};

/// Options of a test run.
#[derive(Clone, Debug, Default)]
pub struct TestOptions {
    /// Only test groups whose `name` matches one of these regexes (all when empty).
    pub run: Vec<String>,
    /// Ignore unknown fields in rule files (promtool's `--ignore-unknown-fields`).
    pub ignore_unknown_fields: bool,
}

/// The verdict on one unit-test file.
#[derive(Clone, Debug)]
pub struct FileVerdict {
    pub file: PathBuf,
    /// Problems found; empty means the file passed.
    pub errors: Vec<String>,
}

impl FileVerdict {
    pub fn passed(&self) -> bool {
        self.errors.is_empty()
    }

    /// The report in promtool's layout.
    pub fn report(&self) -> String {
        let mut out = format!("Unit Testing:  {}\n", self.file.display());
        if self.passed() {
            out.push_str("  SUCCESS\n");
        } else {
            out.push_str("  FAILED:\n");
            for e in &self.errors {
                for line in e.lines() {
                    out.push_str("    ");
                    out.push_str(line);
                    out.push('\n');
                }
            }
        }
        out
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UnitTestFile {
    #[serde(default)]
    rule_files: Vec<String>,
    #[serde(default)]
    evaluation_interval: Option<String>,
    #[serde(default)]
    group_eval_order: Vec<String>,
    #[serde(default)]
    fuzzy_compare: bool,
    #[serde(default)]
    tests: Vec<TestGroup>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TestGroup {
    #[serde(default)]
    name: String,
    #[serde(default)]
    interval: Option<String>,
    #[serde(default)]
    input_series: Vec<InputSeries>,
    #[serde(default)]
    alert_rule_test: Vec<AlertTestCase>,
    #[serde(default)]
    promql_expr_test: Vec<ExprTestCase>,
    #[serde(default)]
    external_labels: BTreeMap<String, String>,
    #[serde(default)]
    external_url: String,
    #[serde(default)]
    start_timestamp: Option<serde_yaml_ng::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InputSeries {
    series: String,
    #[serde(default)]
    values: Option<serde_yaml_ng::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertTestCase {
    #[serde(default)]
    eval_time: serde_yaml_ng::Value,
    alertname: String,
    #[serde(default)]
    exp_alerts: Vec<ExpectedAlert>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectedAlert {
    #[serde(default)]
    exp_labels: BTreeMap<String, String>,
    #[serde(default)]
    exp_annotations: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExprTestCase {
    expr: String,
    #[serde(default)]
    eval_time: serde_yaml_ng::Value,
    #[serde(default)]
    exp_samples: Vec<ExpectedSample>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectedSample {
    #[serde(default)]
    labels: String,
    #[serde(default)]
    value: Option<serde_yaml_ng::Value>,
    #[serde(default)]
    histogram: Option<String>,
}

/// Runs one unit-test file.
pub fn run_file(path: &Path, options: &TestOptions) -> FileVerdict {
    let errors = match run_file_inner(path, options) {
        Ok(errors) => errors,
        Err(e) => vec![e],
    };
    FileVerdict { file: path.to_path_buf(), errors }
}

fn run_file_inner(path: &Path, options: &TestOptions) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let file: UnitTestFile = serde_yaml_ng::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let eval_interval = duration_field(file.evaluation_interval.as_deref(), "evaluation_interval")?.unwrap_or(60_000);
    if eval_interval <= 0 {
        return Err("evaluation_interval must be positive".into());
    }
    let base = path.parent().unwrap_or(Path::new("."));
    let mut rule_files = Vec::new();
    for pattern in &file.rule_files {
        let full = base.join(pattern);
        let matches: Vec<PathBuf> = glob::glob(&full.to_string_lossy())
            .map_err(|e| format!("rule_files {pattern:?}: {e}"))?
            .filter_map(Result::ok)
            .collect();
        if matches.is_empty() {
            return Err(format!("rule_files {pattern:?}: no file matches {}", full.display()));
        }
        rule_files.extend(matches);
    }
    let mut loaded = Vec::new();
    for rf in &rule_files {
        let text = std::fs::read_to_string(rf).map_err(|e| format!("reading {}: {e}", rf.display()))?;
        let text = if options.ignore_unknown_fields { strip_unknown_rule_fields(&text)? } else { text };
        let parsed =
            parse_rule_file_with(&text, &rf.display().to_string(), NameValidation::Utf8).map_err(|e| e.to_string())?;
        loaded.push((rf.display().to_string(), parsed));
    }
    let filters: Vec<regex::Regex> = options
        .run
        .iter()
        .map(|r| regex::Regex::new(r).map_err(|e| format!("--run {r:?}: {e}")))
        .collect::<Result<_, _>>()?;
    let mut errors = Vec::new();
    for (i, test) in file.tests.iter().enumerate() {
        if !filters.is_empty() && !filters.iter().any(|re| re.is_match(&test.name)) {
            continue;
        }
        let label = if test.name.is_empty() { format!("tests[{i}]") } else { format!("name: {}", test.name) };
        if let Err(errs) = run_group(test, &loaded, &file, eval_interval) {
            errors.extend(errs.into_iter().map(|e| format!("{label},\n{e}")));
        }
    }
    Ok(errors)
}

fn duration_field(text: Option<&str>, field: &str) -> Result<Option<i64>, String> {
    text.map(|t| parse_duration(t).ok_or_else(|| format!("{field}: not a duration: {t:?}"))).transpose()
}

fn eval_time_ms(v: &serde_yaml_ng::Value) -> Result<i64, String> {
    match v {
        serde_yaml_ng::Value::Null => Ok(0),
        serde_yaml_ng::Value::Number(n) => Ok((n.as_f64().unwrap_or(0.0) * 1000.0) as i64),
        serde_yaml_ng::Value::String(s) => parse_duration(s).ok_or_else(|| format!("eval_time: not a duration: {s:?}")),
        other => Err(format!("eval_time: not a duration: {other:?}")),
    }
}

fn start_ms(v: &Option<serde_yaml_ng::Value>) -> Result<i64, String> {
    match v {
        None => Ok(0),
        Some(serde_yaml_ng::Value::Number(n)) => Ok((n.as_f64().unwrap_or(0.0) * 1000.0) as i64),
        Some(serde_yaml_ng::Value::String(s)) => {
            model::time::parse_prometheus_time(s).map_err(|e| format!("start_timestamp {s:?}: {e}"))
        }
        Some(other) => Err(format!("start_timestamp: unsupported value {other:?}")),
    }
}

fn parse_labels(text: &str) -> Result<Labels, String> {
    let text = text.trim();
    if text.is_empty() || text == "{}" {
        return Ok(Labels::empty());
    }
    let matchers = tsdb::promql::parse_series_selector(text).map_err(|e| format!("{text:?}: {e}"))?;
    Ok(Labels::from_pairs(matchers.into_iter().map(|m| (m.name, m.value))))
}

/// Runs one test group; every failed expectation becomes one error.
fn run_group(
    test: &TestGroup,
    rule_files: &[(String, crate::RuleFile)],
    file: &UnitTestFile,
    eval_interval: i64,
) -> Result<(), Vec<String>> {
    let one = |e: String| vec![e];
    let start = start_ms(&test.start_timestamp).map_err(one)?;
    let interval = duration_field(test.interval.as_deref(), "interval").map_err(one)?.unwrap_or(60_000);
    let dir = tempfile::tempdir().map_err(|e| one(format!("temporary tsdb: {e}")))?;
    let config = tsdb::TsdbConfig {
        retention: std::time::Duration::from_secs(1000 * 365 * 86400),
        out_of_order_window: std::time::Duration::from_secs(1000 * 365 * 86400),
        // Tests load whole series at once and run for a few simulated days: one head, no blocks.
        block_duration: std::time::Duration::from_secs(2000 * 365 * 86400),
        max_block_duration: std::time::Duration::from_secs(2000 * 365 * 86400),
        ..tsdb::TsdbConfig::default()
    };
    let db = std::sync::Arc::new(tsdb::Tsdb::open(dir.path(), config).map_err(|e| one(e.to_string()))?);
    let store = LocalStores { tsdb: db.clone(), indexer: None };
    let tenant = TenantId::default_tenant();

    // Input samples, to be written as evaluation time passes them (as promtool does).
    let mut pending: Vec<(i64, Labels, SeriesValue)> = Vec::new();
    for s in &test.input_series {
        let labels = parse_labels(&s.series).map_err(|e| one(format!("input series {e}")))?;
        let values = match &s.values {
            None => String::new(),
            Some(serde_yaml_ng::Value::String(v)) => v.clone(),
            Some(serde_yaml_ng::Value::Number(n)) => n.to_string(),
            Some(other) => return Err(one(format!("input series {}: bad values {other:?}", s.series))),
        };
        let (_, items) = split_series_line(&format!("x {values}"));
        let items: Vec<&str> = items.iter().map(String::as_str).collect();
        let expanded = expand_values(&items).map_err(|e| one(format!("input series {}: {e}", s.series)))?;
        for (i, v) in expanded.into_iter().enumerate() {
            if let Some(v) = v {
                pending.push((start + i as i64 * interval, labels.clone(), v));
            }
        }
    }
    pending.sort_by_key(|(t, _, _)| *t);

    let ctx = TemplateContext { labels: test.external_labels.clone(), url: test.external_url.clone() };
    let mut groups: Vec<Group> = Vec::new();
    for (name, rf) in rule_files {
        for g in &rf.groups {
            groups.push(Group::new(name, tenant.clone(), Lang::PromQL, g, eval_interval));
        }
    }
    if !file.group_eval_order.is_empty() {
        let order = |g: &Group| file.group_eval_order.iter().position(|n| *n == g.name).unwrap_or(usize::MAX);
        groups.sort_by_key(order);
    }

    let mut alert_cases: Vec<(i64, &AlertTestCase)> = Vec::new();
    for case in &test.alert_rule_test {
        alert_cases.push((eval_time_ms(&case.eval_time).map_err(one)?, case));
    }
    alert_cases.sort_by_key(|(t, _)| *t);
    let mut expr_cases: Vec<(i64, &ExprTestCase)> = Vec::new();
    for case in &test.promql_expr_test {
        expr_cases.push((eval_time_ms(&case.eval_time).map_err(one)?, case));
    }
    let max_eval = alert_cases
        .iter()
        .chain(std::iter::empty())
        .map(|(t, _)| *t)
        .chain(expr_cases.iter().map(|(t, _)| *t))
        .max()
        .unwrap_or(0);

    let mut errors = Vec::new();
    let mut next_input = 0;
    let mut next_alert_case = 0;
    let mut ts = start;
    while ts <= start + max_eval {
        let upto = pending[next_input..].iter().take_while(|(t, _, _)| *t <= ts).count();
        if upto > 0 {
            load(&db, &tenant, &pending[next_input..next_input + upto]).map_err(one)?;
            next_input += upto;
        }
        let mut eval_errors = Vec::new();
        for g in &mut groups {
            g.eval(ts, &store, &ctx);
            for r in &g.rules {
                if let Some(e) = &r.last_error {
                    eval_errors.push(format!("    rule: {}, time: {}, err: {e}", r.name(), show_duration(ts - start)));
                }
            }
        }
        if !eval_errors.is_empty() {
            return Err(eval_errors);
        }
        while let Some((t, case)) = alert_cases.get(next_alert_case) {
            if !(ts - start <= *t && *t < ts - start + eval_interval) {
                break;
            }
            if let Some(e) = check_alerts(&groups, case, *t) {
                errors.push(e);
            }
            next_alert_case += 1;
        }
        ts += eval_interval;
    }
    // Input samples past the last evaluation are still visible to the expression tests.
    load(&db, &tenant, &pending[next_input..]).map_err(one)?;
    for (t, case) in &expr_cases {
        if let Some(e) = check_expr(&db, &tenant, case, start + t, *t, file.fuzzy_compare) {
            errors.push(e);
        }
    }
    if errors.is_empty() { Ok(()) } else { Err(errors) }
}

/// Writes input samples, floats and native histograms, into the test's tsdb.
fn load(db: &tsdb::Tsdb, tenant: &TenantId, samples: &[(i64, Labels, SeriesValue)]) -> Result<(), String> {
    let mut floats = Vec::new();
    let mut histograms = Vec::new();
    for (t, labels, value) in samples {
        match value {
            SeriesValue::Float(v) => floats.push(TimeSeries::new(labels.clone(), vec![Sample::new(*t, *v)])),
            SeriesValue::Histogram(h) => {
                histograms.push((labels.clone(), vec![HistogramSample { timestamp_ms: *t, h: h.clone() }]))
            }
        }
    }
    if !floats.is_empty() {
        db.append(tenant, &floats).map_err(|e| format!("loading input series: {e}"))?;
    }
    if !histograms.is_empty() {
        let stats = db.append_histograms(tenant, &histograms).map_err(|e| format!("loading input series: {e}"))?;
        if let Some(reason) = stats.first_error {
            return Err(format!("loading input series: {reason}"));
        }
    }
    Ok(())
}

type LabelsAndAnnotations = (BTreeMap<String, String>, BTreeMap<String, String>);

fn check_alerts(groups: &[Group], case: &AlertTestCase, t: i64) -> Option<String> {
    let mut got: Vec<LabelsAndAnnotations> = Vec::new();
    for g in groups {
        for r in &g.rules {
            if let RuleKind::Alerting(a) = &r.kind
                && a.name == case.alertname
            {
                for alert in a.live_alerts() {
                    if alert.state == crate::eval::AlertState::Firing {
                        let labels = alert.labels.iter().map(|l| (l.name.clone(), l.value.clone())).collect();
                        got.push((labels, alert.annotations.clone()));
                    }
                }
            }
        }
    }
    let mut want: Vec<LabelsAndAnnotations> = case
        .exp_alerts
        .iter()
        .map(|e| {
            let mut labels = e.exp_labels.clone();
            labels.insert("alertname".into(), case.alertname.clone());
            (labels, e.exp_annotations.clone())
        })
        .collect();
    got.sort();
    want.sort();
    if got == want {
        return None;
    }
    Some(format!(
        "    alertname: {}, time: {}, \n        exp:{}, \n        got:{}",
        case.alertname,
        show_duration(t),
        show_alerts(&want),
        show_alerts(&got)
    ))
}

fn show_alerts(alerts: &[LabelsAndAnnotations]) -> String {
    if alerts.is_empty() {
        return "[]".into();
    }
    let show = |m: &BTreeMap<String, String>| {
        format!("{{{}}}", m.iter().map(|(k, v)| format!("{k}={v:?}")).collect::<Vec<_>>().join(", "))
    };
    let items: Vec<String> = alerts
        .iter()
        .enumerate()
        .map(|(i, (l, a))| {
            format!("\n            {i}:\n              Labels:{}\n              Annotations:{}", show(l), show(a))
        })
        .collect();
    format!("[{}\n            ]", items.join(""))
}

fn check_expr(
    db: &tsdb::Tsdb,
    tenant: &TenantId,
    case: &ExprTestCase,
    at_ms: i64,
    rel_ms: i64,
    fuzzy: bool,
) -> Option<String> {
    let header = format!("    expr: {:?}, time: {}", case.expr, show_duration(rel_ms));
    // Histograms compare as promtool compares them: by their test expression (compacted, hint
    // included); a float sample has an empty one.
    let got: Vec<(Labels, f64, String)> = match db.instant_query(tenant, &case.expr, at_ms) {
        Ok(tsdb::QueryResult::MixedVector(v)) => v
            .into_iter()
            .map(|(l, _, v)| match v {
                tsdb::promql::PointValue::Float(f) => (l, f, String::new()),
                tsdb::promql::PointValue::Histogram(h) => (l, 0.0, h.test_expression()),
            })
            .collect(),
        Ok(result) => match crate::eval::promql_vector(result) {
            Ok(v) => v.into_iter().map(|(l, v)| (l, v, String::new())).collect(),
            Err(e) => return Some(format!("{header}, err: {e}")),
        },
        Err(e) => return Some(format!("{header}, err: {e}")),
    };
    let mut want: Vec<(Labels, f64, String)> = Vec::new();
    for s in &case.exp_samples {
        let labels = match parse_labels(&s.labels) {
            Ok(l) => l,
            Err(e) => return Some(format!("{header}, err: expected labels {e}")),
        };
        if let Some(text) = &s.histogram {
            match model::notation::parse_histogram(text) {
                Ok(h) => want.push((labels, 0.0, h.test_expression())),
                Err(e) => return Some(format!("{header}, err: expected histogram {e}")),
            }
            continue;
        }
        let value = match &s.value {
            Some(serde_yaml_ng::Value::Number(n)) => n.as_f64().unwrap_or(f64::NAN),
            Some(serde_yaml_ng::Value::String(v)) => match model::notation::parse_float(v) {
                Some(f) => f,
                None => return Some(format!("{header}, err: expected value {v:?} is not a number")),
            },
            _ => 0.0,
        };
        want.push((labels, value, String::new()));
    }
    let mut got = got;
    got.sort_by(|a, b| a.0.cmp(&b.0));
    want.sort_by(|a, b| a.0.cmp(&b.0));
    let equal = got.len() == want.len()
        && got.iter().zip(&want).all(|((gl, gv, gh), (wl, wv, wh))| {
            gl == wl
                && gh == wh
                && if fuzzy { within_one_ulp(*gv, *wv) } else { gv == wv || (gv.is_nan() && wv.is_nan()) }
        });
    if equal {
        return None;
    }
    let show = |v: &[(Labels, f64, String)]| {
        let items: Vec<String> =
            v.iter()
                .map(|(l, x, h)| {
                    if h.is_empty() {
                        format!("{l} {}", crate::template::format_float_v(*x))
                    } else {
                        format!("{l} {h}")
                    }
                })
                .collect();
        format!("[{}]", items.join(", "))
    };
    Some(format!("{header},\n        exp: {}\n        got: {}", show(&want), show(&got)))
}

/// promtool's `fuzzy_compare`: floats one unit in the last place apart count as equal (so
/// `0.1 + 0.2` matches `0.3`, but a difference of a few ulps still fails).
fn within_one_ulp(a: f64, b: f64) -> bool {
    if a == b || (a.is_nan() && b.is_nan()) {
        return true;
    }
    if a.is_sign_negative() != b.is_sign_negative() || !a.is_finite() || !b.is_finite() {
        return false;
    }
    a.to_bits().abs_diff(b.to_bits()) <= 1
}

/// A duration as Go prints it (`1h0m0s` style is what promtool shows; `5m`-style is clearer, so
/// show the shortest exact unit combination).
fn show_duration(ms: i64) -> String {
    if ms == 0 {
        return "0s".into();
    }
    let mut rest = ms;
    let mut out = String::new();
    for (unit, size) in [("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)] {
        if rest >= size {
            out.push_str(&format!("{}{unit}", rest / size));
            rest %= size;
        }
    }
    out
}

/// Drops fields rule files may carry that Tarsier does not know (promtool's
/// `--ignore-unknown-fields`), so the strict loader accepts the rest.
fn strip_unknown_rule_fields(text: &str) -> Result<String, String> {
    let mut value: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).map_err(|e| e.to_string())?;
    const GROUP: [&str; 6] = ["name", "interval", "limit", "query_offset", "labels", "rules"];
    const RULE: [&str; 7] = ["record", "alert", "expr", "for", "keep_firing_for", "labels", "annotations"];
    let keep = |map: &mut serde_yaml_ng::Mapping, known: &[&str]| {
        map.retain(|k, _| k.as_str().is_some_and(|k| known.contains(&k)));
    };
    if let Some(root) = value.as_mapping_mut() {
        keep(root, &["groups"]);
        if let Some(groups) = root.get_mut("groups").and_then(|g| g.as_sequence_mut()) {
            for g in groups.iter_mut().filter_map(|g| g.as_mapping_mut()) {
                keep(g, &GROUP);
                if let Some(rules) = g.get_mut("rules").and_then(|r| r.as_sequence_mut()) {
                    for r in rules.iter_mut().filter_map(|r| r.as_mapping_mut()) {
                        keep(r, &RULE);
                    }
                }
            }
        }
    }
    serde_yaml_ng::to_string(&value).map_err(|e| e.to_string())
}
