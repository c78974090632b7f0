//! Runs Prometheus's PromQL test scripts (`shared/corpora/promql/testdata/*.test`, format in
//! `FORMAT.md`) against a real `Tsdb` and ratchets progress: each file's pass count must not drop
//! below `tests/promql_baseline.tsv`. Set `TSDB_WRITE_BASELINE=1` to record new counts.
//! Native-histogram cases, `load_with_nhcb`, start timestamps, `expect string` and
//! `expect range vector` are skipped (counted as skipped, with the reason).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use model::{Labels, Sample, TenantId, TimeSeries};
use tsdb::{QueryResult, Tsdb, TsdbConfig};

fn corpus_dir() -> PathBuf {
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

/// Expands series items into values (None = omitted slot). Err = unsupported (histograms).
fn expand_items(items: &[&str]) -> Result<Vec<Option<f64>>, String> {
    let mut out = Vec::new();
    for item in items {
        if item.contains("{{") {
            return Err("native histogram".into());
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
        if let Some(v) = parse_float(item) {
            out.push(Some(v));
            continue;
        }
        let (head, times) = item.rsplit_once('x').ok_or_else(|| format!("bad item {item}"))?;
        let n: usize = times.parse().map_err(|_| format!("bad item {item}"))?;
        if let Some(v) = parse_float(head) {
            out.extend(std::iter::repeat_n(Some(v), n + 1));
            continue;
        }
        let bytes = head.as_bytes();
        let split = (1..bytes.len())
            .find(|&i| (bytes[i] == b'+' || bytes[i] == b'-') && !matches!(bytes[i - 1], b'e' | b'E'))
            .ok_or_else(|| format!("bad item {item}"))?;
        let start = parse_float(&head[..split]).ok_or_else(|| format!("bad item {item}"))?;
        let mut inc = parse_float(&head[split + 1..]).ok_or_else(|| format!("bad item {item}"))?;
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
fn split_series_line(line: &str) -> (String, Vec<&str>) {
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
    (line[..end].to_string(), line[end..].split_whitespace().collect())
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
}

struct Runner {
    dir: tempfile::TempDir,
    db: Tsdb,
    tenant: TenantId,
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
        Runner { dir, db, tenant: TenantId::default_tenant() }
    }

    fn load(&self, step: i64, lines: &[&str]) -> Result<(), String> {
        let mut batch = Vec::new();
        for line in lines {
            let (series, items) = split_series_line(line);
            if series.ends_with("@st") {
                return Err("start timestamps".into());
            }
            let labels = parse_labels(&series)?;
            // Native-histogram series are skipped; the float series of the block still load.
            let Ok(values) = expand_items(&items) else { continue };
            let samples =
                values.iter().enumerate().filter_map(|(i, v)| v.map(|v| Sample::new(i as i64 * step, v))).collect();
            batch.push(TimeSeries::new(labels, samples));
        }
        self.db.append(&self.tenant, &batch).map_err(|e| e.to_string())?;
        Ok(())
    }
}

enum Expect {
    Scalar(f64),
    Series(Vec<(Labels, Vec<Option<f64>>)>),
}

/// Runs one eval block; Ok(true) pass, Ok(false) fail, Err(reason) skipped.
fn run_eval(runner: &Runner, header: &str, body: &[&str]) -> Result<bool, String> {
    let mut expect_fail = header.starts_with("eval_fail");
    let mut ordered = header.starts_with("eval_ordered");
    let mut expected = Expect::Series(Vec::new());
    for line in body {
        if line.starts_with("expected_fail_") {
            expect_fail = true;
            continue;
        }
        if let Some(rest) = line.strip_prefix("expect ") {
            let rest = rest.trim();
            if rest.starts_with("fail") {
                expect_fail = true;
            } else if rest.starts_with("ordered") {
                ordered = true;
            } else if rest.starts_with("string") || rest.starts_with("range vector") {
                return Err(format!("unsupported `{line}`"));
            }
            continue;
        }
        if line.contains("{{") {
            return Err("native histogram".into());
        }
        if let Some(v) = parse_float(line) {
            expected = Expect::Scalar(v);
            continue;
        }
        let (series, items) = split_series_line(line);
        let labels = parse_labels(&series)?;
        let values = expand_items(&items)?;
        if let Expect::Series(s) = &mut expected {
            s.push((labels, values));
        }
    }
    let words: Vec<&str> = header.split_whitespace().collect();
    let result = if words.get(1) == Some(&"instant") {
        let (t, query) = if words.get(2) == Some(&"at") {
            let t = parse_duration(words.get(3).ok_or("no time")?).ok_or("bad time")?;
            let idx = header.find(words[3]).ok_or("bad header")? + words[3].len();
            (t, header[idx..].trim())
        } else {
            let idx = header.find("instant").ok_or("bad header")? + "instant".len();
            (0, header[idx..].trim())
        };
        if promql_parser::parser::parse(query).is_err() && !expect_fail {
            return Err(format!("parser rejects {query}"));
        }
        runner.db.instant_query(&runner.tenant, query, t)
    } else {
        let re =
            regex::Regex::new(r"^eval(?:_\w+)?\s+range\s+from\s+(.+?)\s+to\s+(.+?)\s+step\s+(.+?)\s+(.+)$").unwrap();
        let caps = re.captures(header).ok_or("bad range header")?;
        let start = parse_duration(&caps[1]).ok_or("bad start")?;
        let end = parse_duration(&caps[2]).ok_or("bad end")?;
        let step = parse_duration(&caps[3]).ok_or("bad step")?;
        if let Expect::Series(series) = &mut expected {
            for (_, values) in series.iter_mut() {
                values.truncate(((end - start) / step + 1) as usize);
            }
        }
        let query = &caps[4];
        runner.db.range_query(&runner.tenant, query, start, end, step).map(|r| match r {
            QueryResult::Matrix(m) => QueryResult::Matrix(
                m.into_iter()
                    .map(|(l, s)| {
                        // Re-express as per-step slots for comparison.
                        let mut slots: Vec<Sample> = s;
                        slots.iter_mut().for_each(|p| p.timestamp_ms = (p.timestamp_ms - start) / step);
                        (l, slots)
                    })
                    .collect(),
            ),
            other => other,
        })
    };
    let result = match result {
        Err(_) => return Ok(expect_fail),
        Ok(r) if expect_fail => {
            let _ = r;
            return Ok(false);
        }
        Ok(r) => r,
    };
    Ok(match (result, expected) {
        (QueryResult::Scalar { v, .. }, Expect::Scalar(want)) => almost_equal(v, want),
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
            let want: Vec<(Labels, Vec<Option<f64>>)> =
                want.into_iter().filter(|(_, v)| v.iter().any(Option::is_some)).collect();
            if got.len() != want.len() {
                return Ok(false);
            }
            let map: BTreeMap<&Labels, &Vec<Sample>> = got.iter().map(|(l, s)| (l, s)).collect();
            want.iter().all(|(wl, wv)| {
                let Some(samples) = map.get(wl) else { return false };
                let expected: Vec<(i64, f64)> =
                    wv.iter().enumerate().filter_map(|(i, v)| v.map(|v| (i as i64, v))).collect();
                expected.len() == samples.len()
                    && expected
                        .iter()
                        .zip(samples.iter())
                        .all(|((i, w), s)| *i == s.timestamp_ms && almost_equal(s.value, *w))
            })
        }
        _ => false,
    })
}

fn run_file(path: &Path) -> Counts {
    let text = std::fs::read_to_string(path).expect("read test file");
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
        if line.is_empty() {
            i += 1;
            continue;
        }
        let mut j = i + 1;
        while j < lines.len() && !lines[j].is_empty() {
            j += 1;
        }
        let body: Vec<&str> = lines[i + 1..j].iter().map(String::as_str).collect();
        let command = line.split_whitespace().next().unwrap_or("").to_lowercase();
        if command == "clear" {
            runner = Runner::new();
        } else if command.starts_with("load") {
            let step = line.split_whitespace().nth(1).and_then(parse_duration);
            if command != "load" {
                counts.skipped += 1;
            } else if let Some(Err(reason)) = step.map(|step| runner.load(step, &body)) {
                eprintln!("  load skipped in {}: {reason}", path.display());
            }
        } else if command.starts_with("eval") {
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_eval(&runner, line, &body))) {
                Ok(Ok(true)) => counts.passed += 1,
                Ok(Ok(false)) => {
                    counts.failed += 1;
                    if std::env::var("TSDB_CONFORMANCE_VERBOSE").is_ok() {
                        eprintln!("  FAIL {}:{}: {line}", path.display(), i + 1);
                    }
                }
                Ok(Err(_reason)) => counts.skipped += 1,
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
    files.sort();
    let (mut total_pass, mut total) = (0, 0);
    let mut regressions = Vec::new();
    let mut new_baseline = String::new();
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        let counts = run_file(file);
        let all = counts.passed + counts.failed + counts.skipped;
        println!(
            "{name:32} passed {:4} failed {:4} skipped {:4} of {all}",
            counts.passed, counts.failed, counts.skipped
        );
        total_pass += counts.passed;
        total += all;
        let floor = baseline.get(&name).copied().unwrap_or(0);
        if counts.passed < floor {
            regressions.push(format!("{name}: {} passed, baseline {floor}", counts.passed));
        }
        new_baseline.push_str(&format!("{name}\t{}\n", counts.passed));
    }
    println!("TOTAL passed {total_pass} of {total}");
    if std::env::var("TSDB_WRITE_BASELINE").is_ok() {
        std::fs::write(&baseline_path, new_baseline).unwrap();
    }
    assert!(regressions.is_empty(), "conformance regressed:\n{}", regressions.join("\n"));
}
