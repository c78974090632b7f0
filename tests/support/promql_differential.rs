//! The differential PromQL check against a real Prometheus, shared by `tests/prom_differential.rs`
//! (correctness, in CI) and the `promql-peers` benchmark scenario (speed): one data set built from
//! real exposition pages, remote_written into both systems, then the same expressions (the
//! kube-prometheus rule files plus a generated set) evaluated at the same instants and ranges
//! through `/api/v1/query` and `/api/v1/query_range`, answers compared series by series.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use model::{Labels, Sample, TimeSeries};
use serde_json::Value;

/// Spacing of the generated samples.
pub const STEP_MS: i64 = 30_000;
/// Samples per series: 40 minutes at 30 s.
pub const POINTS: i64 = 80;

/// A page of exposition text and the target labels its series get (`job`, `instance`, ...).
pub struct Page<'a> {
    pub text: &'a str,
    pub target: &'a [(&'a str, &'a str)],
}

fn hash(s: &str) -> u64 {
    // FNV-1a: stable across runs and platforms, so both systems and every run see the same data.
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

fn is_counter(name: &str) -> bool {
    ["_total", "_count", "_sum", "_bucket"].iter().any(|s| name.ends_with(s))
}

/// Series built from `pages`: every sample of a page becomes a series with `POINTS` samples from
/// `start_ms`. Counters grow at a per-series rate (one in 16 resets half way), gauges wander
/// around the page's value; histogram buckets grow with `le` so quantiles are meaningful.
pub fn dataset(pages: &[Page<'_>], start_ms: i64) -> anyhow::Result<Vec<TimeSeries>> {
    let mut out: BTreeMap<Labels, Vec<Sample>> = BTreeMap::new();
    for page in pages {
        let parsed = collector::scrape::exposition::parse(page.text)?;
        for s in parsed {
            let mut pairs: Vec<(String, String)> = vec![("__name__".into(), s.name.clone())];
            pairs.extend(s.labels.iter().cloned());
            for (k, v) in page.target {
                if !pairs.iter().any(|(n, _)| n == k) {
                    pairs.push(((*k).into(), (*v).into()));
                }
            }
            let labels = Labels::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            let h = hash(&labels.to_string());
            let base = if s.value.is_finite() { s.value } else { 0.0 };
            let samples = (0..POINTS)
                .map(|k| {
                    let t = start_ms + k * STEP_MS;
                    let v = if is_counter(&s.name) {
                        // Buckets: a rate growing with `le` keeps the buckets cumulative.
                        let le_factor = s
                            .labels
                            .iter()
                            .find(|(n, _)| n == "le")
                            .map(|(_, v)| {
                                if v == "+Inf" {
                                    1.0
                                } else {
                                    1.0 - 1.0 / (2.0 + v.parse::<f64>().unwrap_or(0.0).abs())
                                }
                            })
                            .unwrap_or(1.0);
                        let rate = ((h >> 8) % 1000) as f64 / 100.0 * le_factor;
                        let reset = h.is_multiple_of(16) && k >= POINTS / 2;
                        let from = if reset { k - POINTS / 2 } else { k };
                        let start = if reset { 0.0 } else { base.max(0.0) };
                        start + rate * from as f64 * (STEP_MS as f64 / 1000.0)
                    } else {
                        let phase = (h % 628) as f64 / 100.0;
                        let wave = (k as f64 / 10.0 + phase).sin();
                        match h % 4 {
                            0 => base,
                            1 => base + wave * (base.abs() * 0.1 + 1.0),
                            2 => base * (1.0 + 0.001 * k as f64),
                            _ => (base + wave * 10.0).round(),
                        }
                    };
                    Sample::new(t, v)
                })
                .collect();
            out.insert(labels, samples);
        }
    }
    Ok(out.into_iter().map(|(l, s)| TimeSeries::new(l, s)).collect())
}

/// Every `expr` of the rule files in `dir`, with `file: name` to say where it came from.
pub fn rule_expressions(dir: &Path) -> anyhow::Result<Vec<(String, String)>> {
    let mut files: Vec<_> = std::fs::read_dir(dir)?.flatten().map(|e| e.path()).collect();
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let doc: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(&file)?)?;
        let stem = file.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        for group in doc["groups"].as_array().into_iter().flatten() {
            for rule in group["rules"].as_array().into_iter().flatten() {
                let name = rule["alert"].as_str().or(rule["record"].as_str()).unwrap_or("?");
                if let Some(expr) = rule["expr"].as_str() {
                    out.push((format!("{stem}: {name}"), expr.trim().to_string()));
                }
            }
        }
    }
    Ok(out)
}

/// Queries over the data set's families, covering the language: functions, aggregations,
/// binary operators with matching, histograms, subqueries, offsets and `@`.
pub fn generated_queries() -> Vec<String> {
    let c = "node_cpu_seconds_total";
    let net = "node_network_receive_bytes_total";
    let g = "node_memory_MemAvailable_bytes";
    let fs = "node_filesystem_avail_bytes";
    let h = "prometheus_http_request_duration_seconds_bucket";
    let mut q: Vec<String> = Vec::new();
    for f in ["rate", "irate", "increase", "resets", "changes"] {
        q.push(format!("{f}({c}[5m])"));
        q.push(format!("{f}({net}[10m])"));
    }
    for f in ["delta", "idelta", "deriv"] {
        q.push(format!("{f}({g}[10m])"));
    }
    q.push(format!("predict_linear({fs}[15m], 3600)"));
    for f in [
        "avg_over_time",
        "min_over_time",
        "max_over_time",
        "sum_over_time",
        "count_over_time",
        "last_over_time",
        "present_over_time",
    ] {
        q.push(format!("{f}({g}[10m])"));
        q.push(format!("{f}(go_goroutines[5m])"));
    }
    // Not over the memory gauge: its small variance around 2e10 is ill-conditioned, and
    // Prometheus 2.42 and 3.x (compensated sums) round it differently from the 7th digit on.
    for f in ["stddev_over_time", "stdvar_over_time"] {
        q.push(format!("{f}(node_load1[10m])"));
        q.push(format!("{f}(go_goroutines[5m])"));
    }
    q.push(format!("quantile_over_time(0.9, {g}[10m])"));
    q.push("absent_over_time(no_such_metric[5m])".into());
    for agg in ["sum", "avg", "min", "max", "count", "stddev", "stdvar", "group"] {
        q.push(format!("{agg} by (instance) (rate({c}[5m]))"));
        q.push(format!("{agg} without (cpu) (rate({c}[5m]))"));
    }
    q.push(format!("sum(rate({c}[5m]))"));
    q.push(format!("topk(3, rate({c}[5m]))"));
    q.push(format!("bottomk(2, {g})"));
    q.push(format!("topk by (instance) (2, rate({net}[5m]))"));
    q.push(format!("quantile(0.9, rate({c}[5m]))"));
    q.push(format!("quantile by (mode) (0.5, rate({c}[5m]))"));
    q.push("count_values(\"value\", node_load1 > bool 0)".into());
    q.push(format!("count_values by (instance) (\"mode_rate\", round(rate({c}[5m])))"));
    q.push(format!("{fs} / on(instance, device, mountpoint) node_filesystem_size_bytes"));
    q.push(format!("{fs} / ignoring(fstype) node_filesystem_size_bytes * 100"));
    q.push(format!("rate({c}[5m]) * on(instance) group_left(nodename) node_uname_info"));
    q.push(format!("node_uname_info * on(instance) group_right(nodename) sum by (instance) (rate({c}[5m]))"));
    q.push(format!("{g} > 1000"));
    q.push(format!("{g} > bool 1000"));
    q.push("up == 1".into());
    q.push("1 - up".into());
    q.push("2 ^ 3 * go_goroutines % 7".into());
    q.push("node_load1 and node_load5".into());
    q.push("node_load1 or node_load5".into());
    q.push("node_load1 unless on(instance) node_load5 > 100000".into());
    q.push("node_load1 - on() group_left avg(node_load1)".into());
    q.push(format!("histogram_quantile(0.9, sum by (le) (rate({h}[5m])))"));
    q.push(format!("histogram_quantile(0.5, rate({h}[5m]))"));
    q.push(format!("histogram_quantile(0.99, sum by (handler, le) (rate({h}[10m])))"));
    q.push("label_replace(up, \"host\", \"$1\", \"instance\", \"(.*):.*\")".into());
    q.push("label_join(up, \"both\", \"/\", \"job\", \"instance\")".into());
    for f in ["abs", "ceil", "floor", "exp", "ln", "log2", "log10", "sqrt", "sgn"] {
        q.push(format!("{f}(node_load1 - 1)"));
    }
    q.push("round(node_load1, 0.5)".into());
    q.push("clamp(node_load1, 0.2, 0.8)".into());
    q.push("clamp_min(node_load1, 0.5)".into());
    q.push("clamp_max(node_load1, 0.5)".into());
    q.push("timestamp(node_load1)".into());
    q.push("time()".into());
    q.push("vector(1) + scalar(sum(up))".into());
    q.push("absent(no_such_metric{job=\"x\"})".into());
    q.push("sort(node_load1)".into());
    q.push("sort_desc(go_goroutines)".into());
    q.push("minute(timestamp(node_load1)) + hour() * 0 + day_of_week()".into());
    q.push(format!("max_over_time(rate({c}[1m])[10m:1m])"));
    q.push(format!("avg_over_time(sum by (instance) (rate({net}[2m]))[15m:30s])"));
    q.push(format!("rate({c}[5m] offset 5m)"));
    q.push(format!("{g} offset 10m - {g}"));
    q.push(format!("{g} @ end()"));
    q.push(format!("rate({c}[5m] @ start())"));
    q.push("avg_over_time(node_load1[5m]) - node_load1".into());
    q.push("sum by (job) (count_over_time({__name__=~\"node_.*\"}[5m]))".to_string());
    q.push("count by (__name__) ({job=\"prometheus-k8s\", __name__=~\"prometheus_tsdb_.*\"})".into());
    q
}

/// Where and how one expression is evaluated.
#[derive(Clone, Copy, Debug)]
pub enum Eval {
    Instant { time_ms: i64 },
    Range { start_ms: i64, end_ms: i64, step_ms: i64 },
}

/// `start`, `end`, `time` in Prometheus's seconds form.
fn seconds(ms: i64) -> String {
    format!("{:.3}", ms as f64 / 1000.0)
}

/// One query against a Prometheus-compatible API: `Ok(data)` or `Err(error text)`.
pub async fn query(
    client: &reqwest::Client,
    base: &str,
    expr: &str,
    eval: Eval,
) -> anyhow::Result<Result<Value, String>> {
    let request = match eval {
        Eval::Instant { time_ms } => {
            client.post(format!("{base}/api/v1/query")).form(&[("query", expr), ("time", &seconds(time_ms))])
        }
        Eval::Range { start_ms, end_ms, step_ms } => client.post(format!("{base}/api/v1/query_range")).form(&[
            ("query", expr),
            ("start", &seconds(start_ms)),
            ("end", &seconds(end_ms)),
            ("step", &seconds(step_ms)),
        ]),
    };
    let body: Value = request.send().await?.json().await?;
    Ok(if body["status"] == "success" {
        Ok(body["data"].clone())
    } else {
        Err(format!("{}: {}", body["errorType"].as_str().unwrap_or("?"), body["error"].as_str().unwrap_or("?")))
    })
}

/// Pushes `series` with remote_write, `batch` series per request, all samples of a series at once.
pub async fn push(client: &reqwest::Client, base: &str, series: &[TimeSeries], batch: usize) -> anyhow::Result<()> {
    for chunk in series.chunks(batch) {
        let response = client
            .post(format!("{base}/api/v1/write"))
            .header("Content-Encoding", "snappy")
            .header("Content-Type", "application/x-protobuf")
            .header("X-Prometheus-Remote-Write-Version", "0.1.0")
            .body(model::wire::remote_write::encode(chunk))
            .send()
            .await?;
        let status = response.status();
        anyhow::ensure!(
            status.is_success(),
            "{base} remote_write: {status} {}",
            response.text().await.unwrap_or_default()
        );
    }
    Ok(())
}

fn close(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= 1e-9_f64.max(1e-6 * a.abs().max(b.abs()))
}

fn number(v: &Value) -> f64 {
    v.as_str().and_then(|s| s.parse().ok()).unwrap_or(f64::NAN)
}

/// `(labels, [(t, v)])` per series of a vector, matrix or scalar answer.
fn points(data: &Value) -> BTreeMap<String, Vec<(f64, f64)>> {
    let mut out = BTreeMap::new();
    let result = &data["result"];
    match data["resultType"].as_str() {
        Some("scalar") | Some("string") => {
            out.insert("{}".to_string(), vec![(result[0].as_f64().unwrap_or(0.0), number(&result[1]))]);
        }
        _ => {
            for s in result.as_array().into_iter().flatten() {
                let labels: BTreeMap<String, String> = s["metric"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect();
                let pts: Vec<(f64, f64)> = if s.get("value").is_some() {
                    vec![(s["value"][0].as_f64().unwrap_or(0.0), number(&s["value"][1]))]
                } else {
                    s["values"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|p| (p[0].as_f64().unwrap_or(0.0), number(&p[1])))
                        .collect()
                };
                out.insert(format!("{labels:?}"), pts);
            }
        }
    }
    out
}

/// Whether two answers agree: same result type, same label sets, same timestamps, values within
/// float tolerance. `Err` says where they differ first.
pub fn compare(prometheus: &Value, tarsier: &Value) -> Result<(), String> {
    if prometheus["resultType"] != tarsier["resultType"] {
        return Err(format!("result type {} vs {}", prometheus["resultType"], tarsier["resultType"]));
    }
    let (p, t) = (points(prometheus), points(tarsier));
    let only_p: Vec<&String> = p.keys().filter(|k| !t.contains_key(*k)).collect();
    let only_t: Vec<&String> = t.keys().filter(|k| !p.contains_key(*k)).collect();
    if !only_p.is_empty() || !only_t.is_empty() {
        return Err(format!(
            "series only in Prometheus ({}): {:?}; only in Tarsier ({}): {:?}",
            only_p.len(),
            only_p.iter().take(3).collect::<Vec<_>>(),
            only_t.len(),
            only_t.iter().take(3).collect::<Vec<_>>()
        ));
    }
    for (k, pp) in &p {
        let tp = &t[k];
        if pp.len() != tp.len() {
            return Err(format!("{k}: {} points vs {}", pp.len(), tp.len()));
        }
        for (a, b) in pp.iter().zip(tp) {
            if a.0 != b.0 || !close(a.1, b.1) {
                return Err(format!("{k}: Prometheus {a:?} vs Tarsier {b:?}"));
            }
        }
    }
    Ok(())
}

/// Whether an answer holds any point.
pub fn is_empty(data: &Value) -> bool {
    match data["resultType"].as_str() {
        Some("scalar") | Some("string") => false,
        _ => data["result"].as_array().is_none_or(Vec::is_empty),
    }
}

/// One (expression, evaluation) and what each system answered.
pub struct Case {
    pub source: String,
    pub expr: String,
    pub eval: Eval,
}

/// Outcome of a run over all cases.
#[derive(Default)]
pub struct Report {
    /// Both agree and the answer has data.
    pub passed: usize,
    /// Both agree on an empty answer (the expression's series or threshold do not occur).
    pub passed_empty: usize,
    /// Both refuse the expression (e.g. duplicate series after dropping `__name__`).
    pub passed_error: usize,
    /// Only Prometheus refused the expression (e.g. a function newer than 2.42): not comparable.
    pub skipped: Vec<String>,
    pub mismatches: Vec<String>,
    pub prometheus_seconds: f64,
    pub tarsier_seconds: f64,
}

/// Every expression at every evaluation in `evals`.
pub fn cases(exprs: &[(String, String)], evals: &[Eval]) -> Vec<Case> {
    exprs
        .iter()
        .flat_map(|(source, expr)| {
            evals.iter().map(move |eval| Case { source: source.clone(), expr: expr.clone(), eval: *eval })
        })
        .collect()
}

/// Answers of one system to every case, and the wall time they took.
pub async fn answer_all(
    client: &reqwest::Client,
    base: &str,
    cases: &[Case],
) -> anyhow::Result<(Vec<Result<Value, String>>, Duration)> {
    let started = Instant::now();
    let mut out = Vec::with_capacity(cases.len());
    for c in cases {
        out.push(query(client, base, &c.expr, c.eval).await?);
    }
    Ok((out, started.elapsed()))
}

/// Compares the two systems' answers case by case.
pub fn judge(cases: &[Case], prometheus: &[Result<Value, String>], tarsier: &[Result<Value, String>]) -> Report {
    let mut report = Report::default();
    for ((c, p), t) in cases.iter().zip(prometheus).zip(tarsier) {
        let what = format!("[{}] {:?} {}", c.source, c.eval, c.expr.replace('\n', " "));
        match (p, t) {
            (Err(_), Err(_)) => report.passed_error += 1,
            (Err(pe), Ok(_)) => report.skipped.push(format!("{what}: only Prometheus refuses it: {pe}")),
            (Ok(_), Err(te)) => report.mismatches.push(format!("{what}\n    Tarsier error: {te}")),
            (Ok(pv), Ok(tv)) => match compare(pv, tv) {
                Ok(()) if is_empty(pv) => report.passed_empty += 1,
                Ok(()) => report.passed += 1,
                Err(why) => report.mismatches.push(format!(
                    "{what}\n    {why}\n    Prometheus: {}\n    Tarsier:    {}",
                    truncate(&pv.to_string()),
                    truncate(&tv.to_string())
                )),
            },
        }
    }
    report
}

fn truncate(s: &str) -> String {
    match s.char_indices().nth(600) {
        None => s.to_string(),
        Some((cut, _)) => format!("{}... ({} bytes)", &s[..cut], s.len()),
    }
}

/// A child process killed when dropped.
pub struct Proc(pub Child);

impl Proc {
    pub fn pid(&self) -> String {
        self.0.id().to_string()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn need(binary: &str) -> anyhow::Result<String> {
    let path = format!("/usr/bin/{binary}");
    anyhow::ensure!(
        Path::new(&path).exists(),
        "{path} is missing: apt-get install -y prometheus prometheus-node-exporter (scripts/test.sh does)"
    );
    Ok(path)
}

fn spawn(program: &str, args: &[String]) -> anyhow::Result<Proc> {
    let child = Command::new(program).args(args).stdout(Stdio::null()).stderr(Stdio::null()).spawn();
    Ok(Proc(child.map_err(|e| anyhow::anyhow!("starting {program}: {e}"))?))
}

async fn wait_ok(client: &reqwest::Client, url: &str) -> anyhow::Result<()> {
    let started = Instant::now();
    while !client.get(url).send().await.is_ok_and(|r| r.status().is_success()) {
        anyhow::ensure!(started.elapsed() < Duration::from_secs(30), "{url} did not answer within 30 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// Prometheus and Tarsier running, loaded with the same data, and the cases to evaluate.
pub struct Setup {
    pub prometheus: Proc,
    pub tarsier: Proc,
    pub prometheus_base: String,
    pub tarsier_base: String,
    pub series: usize,
    pub samples: usize,
    pub rule_expressions: usize,
    pub expressions: usize,
    pub cases: Vec<Case>,
    _dir: tempfile::TempDir,
}

/// Starts a node_exporter for one page, then Prometheus (remote-write receiver) and
/// `tarsier server` (the binary at `tarsier_bin`), pushes the data set into both and builds the
/// cases: every expression at two instants (one off the sample grid) and over one range.
pub async fn setup(client: &reqwest::Client, tarsier_bin: &Path, corpora: &Path) -> anyhow::Result<Setup> {
    let ne_port = free_port()?;
    let exporter = spawn(&need("prometheus-node-exporter")?, &[format!("--web.listen-address=127.0.0.1:{ne_port}")])?;
    let ne_url = format!("http://127.0.0.1:{ne_port}/metrics");
    wait_ok(client, &ne_url).await?;
    let node_page = client.get(&ne_url).send().await?.text().await?;
    drop(exporter);
    let prom_page = std::fs::read_to_string(corpora.join("exposition/prometheus-textparse/alltypes.237mfs.prom.txt"))?;

    let end_ms = model::time::now_ms() / STEP_MS * STEP_MS - STEP_MS;
    let start_ms = end_ms - (POINTS - 1) * STEP_MS;
    let node_a: &[(&str, &str)] = &[("job", "node-exporter"), ("instance", "10.0.0.1:9100")];
    let node_b: &[(&str, &str)] = &[("job", "node-exporter"), ("instance", "10.0.0.2:9100")];
    let prom_target: &[(&str, &str)] = &[
        ("job", "prometheus-k8s"),
        ("instance", "10.0.0.3:9090"),
        ("namespace", "monitoring"),
        ("pod", "prometheus-k8s-0"),
    ];
    let pages = [
        Page { text: &node_page, target: node_a },
        Page { text: &node_page, target: node_b },
        Page { text: &prom_page, target: prom_target },
        Page { text: "up 1\n", target: node_a },
        Page { text: "up 1\n", target: node_b },
        Page { text: "up 1\n", target: prom_target },
    ];
    let series = dataset(&pages, start_ms)?;
    let samples = series.iter().map(|s| s.samples.len()).sum();

    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("prometheus.yml"), "global:\n  scrape_interval: 1m\n")?;
    let (prom_port, tarsier_port) = (free_port()?, free_port()?);
    let prometheus = spawn(
        &need("prometheus")?,
        &[
            format!("--config.file={}", dir.path().join("prometheus.yml").display()),
            format!("--storage.tsdb.path={}", dir.path().join("prometheus").display()),
            format!("--web.listen-address=127.0.0.1:{prom_port}"),
            "--web.enable-remote-write-receiver".into(),
        ],
    )?;
    let tarsier_bin: PathBuf = tarsier_bin.to_path_buf();
    let tarsier = spawn(
        &tarsier_bin.display().to_string(),
        &[
            "server".into(),
            "--data-dir".into(),
            dir.path().join("tarsier").display().to_string(),
            "--listen".into(),
            format!("127.0.0.1:{tarsier_port}"),
            "--log-level".into(),
            "warn".into(),
        ],
    )?;
    let prometheus_base = format!("http://127.0.0.1:{prom_port}");
    let tarsier_base = format!("http://127.0.0.1:{tarsier_port}");
    wait_ok(client, &format!("{prometheus_base}/-/ready")).await?;
    wait_ok(client, &format!("{tarsier_base}/-/ready")).await?;
    push(client, &prometheus_base, &series, 500).await?;
    push(client, &tarsier_base, &series, 500).await?;

    let mut exprs = rule_expressions(&corpora.join("alerts/kube-prometheus/plain-rule-files"))?;
    let rule_expressions = exprs.len();
    exprs.extend(generated_queries().into_iter().map(|q| ("generated".to_string(), q)));
    // Every instant is off the 30 s sample grid: Prometheus 2.42 selects ranges closed on the
    // left ([t - r, t]) where Prometheus 3 (and Tarsier, which passes 3.x's test files) selects
    // (t - r, t]; a sample exactly on the left edge would only show that version difference.
    let evals = [
        Eval::Instant { time_ms: end_ms - 13_000 },
        Eval::Instant { time_ms: end_ms - 10 * 60_000 - 7_000 },
        Eval::Range { start_ms: start_ms + 10 * 60_000 + 11_000, end_ms, step_ms: 60_000 },
    ];
    Ok(Setup {
        prometheus,
        tarsier,
        prometheus_base,
        tarsier_base,
        series: series.len(),
        samples,
        rule_expressions,
        expressions: exprs.len(),
        cases: cases(&exprs, &evals),
        _dir: dir,
    })
}
