//! Scenario `alert-rules`: the rule engine at scale. The kube-prometheus corpus (234 real rules)
//! is replicated over namespaces up to `--rules` rules, evaluated every 15 s against a tsdb holding
//! `--series` series whose metric names are the ones the rules query (so selectors match real
//! data, with namespace/pod/job/instance labels), 10 minutes of history at 15 s. Reports the wall
//! time of each evaluation round (all groups due at once: the worst case) and the latency from the
//! engine handing a firing alert to the notifier until a local webhook receives it (group_wait 0).
//! No peer: Prometheus's rule manager would need the same data in its own tsdb and a remote
//! Alertmanager; the figure that matters is the round against the 15 s interval.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use model::{Labels, Sample, TenantId, TimeSeries};
use serde_json::Value;

use crate::report;

const STEP_MS: i64 = 15_000;
/// History written before the first round: enough for the corpus's `[5m]` and `for: 10m`.
const HISTORY_STEPS: i64 = 40;

/// Metric names a rule file's expressions select (identifiers followed by `{` or `[`, or bare
/// names before an operator), in first-seen order.
fn metric_names(exprs: &[String]) -> Vec<String> {
    let keywords =
        ["by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool", "offset"];
    let re = regex::Regex::new(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{|\[)").expect("valid regex");
    let mut seen = Vec::new();
    for e in exprs {
        for c in re.captures_iter(e) {
            let name = c[1].to_string();
            // Function calls are followed by `(`, so they never match; label names in `by (...)`
            // are not followed by `{`.
            if !keywords.contains(&name.as_str()) && !seen.contains(&name) {
                seen.push(name);
            }
        }
    }
    seen
}

/// The corpus's groups, renamed per replica, with a 15 s interval, cut at `rules` rules.
fn replicated_rules(
    corpus: &std::path::Path,
    rules: usize,
    out: &std::path::Path,
) -> anyhow::Result<(usize, Vec<String>)> {
    let dir = corpus.join("alerts/kube-prometheus/plain-rule-files");
    let mut groups: Vec<serde_yaml_ng::Value> = Vec::new();
    let mut paths: Vec<_> = std::fs::read_dir(&dir)?.map(|e| e.map(|e| e.path())).collect::<Result<_, _>>()?;
    paths.sort();
    for p in paths {
        let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&std::fs::read_to_string(&p)?)?;
        groups.extend(doc["groups"].as_sequence().cloned().unwrap_or_default());
    }
    let exprs: Vec<String> = groups
        .iter()
        .flat_map(|g| g["rules"].as_sequence().cloned().unwrap_or_default())
        .filter_map(|r| r["expr"].as_str().map(String::from))
        .collect();
    anyhow::ensure!(!exprs.is_empty(), "no rules in {}", dir.display());
    let mut written = 0;
    let mut out_groups = Vec::new();
    'outer: for replica in 0.. {
        for g in &groups {
            let mut g = g.clone();
            let name = format!("{}-ns{replica}", g["name"].as_str().unwrap_or("group"));
            g["name"] = name.into();
            g["interval"] = "15s".into();
            let mut list = g["rules"].as_sequence().cloned().unwrap_or_default();
            list.truncate(rules - written);
            written += list.len();
            g["rules"] = serde_yaml_ng::Value::Sequence(list);
            out_groups.push(g);
            if written >= rules {
                break 'outer;
            }
        }
    }
    let mut doc = serde_yaml_ng::Mapping::new();
    doc.insert("groups".into(), serde_yaml_ng::Value::Sequence(out_groups));
    std::fs::write(out, serde_yaml_ng::to_string(&doc)?)?;
    Ok((written, metric_names(&exprs)))
}

/// Series `i` of `names`: spread over namespaces, pods and jobs like a cluster's.
fn series_labels(i: usize, names: &[String]) -> Labels {
    let name = &names[i % names.len()];
    let n = i / names.len();
    Labels::from_pairs([
        ("__name__", name.as_str()),
        ("namespace", &format!("ns-{}", n % 50)),
        ("pod", &format!("pod-{}", n % 997)),
        ("container", &format!("c-{}", n % 3)),
        ("job", ["kube-state-metrics", "node-exporter", "kubelet", "apiserver"][n % 4]),
        ("instance", &format!("10.0.{}.{}:9100", n / 250 % 250, n % 250)),
        ("node", &format!("node-{}", n % 40)),
    ])
}

fn value(i: usize, k: i64) -> f64 {
    // Counters grow, gauges wobble; a few series per name are 0 or high so some rules fire.
    let h = (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 44;
    if i.is_multiple_of(3) { (k * (h as i64 % 50 + 1)) as f64 } else { (h % 100) as f64 / 100.0 }
}

/// Records when each alert was handed to the notifier.
struct TimedSink {
    inner: alerting::manager::NotifierSink,
    sent: Arc<parking_lot::Mutex<HashMap<String, Instant>>>,
}

impl alerting::manager::AlertSink for TimedSink {
    fn send(&self, tenant: &TenantId, alerts: Vec<alerting::eval::OutgoingAlert>) {
        {
            let now = Instant::now();
            let mut sent = self.sent.lock();
            for a in alerts.iter().filter(|a| !a.resolved) {
                sent.entry(fingerprint(&a.labels)).or_insert(now);
            }
        }
        self.inner.send(tenant, alerts);
    }
}

fn fingerprint(labels: &BTreeMap<String, String>) -> String {
    alerting::notify::fingerprint_hex(labels)
}

/// A webhook receiver recording when each alert (by fingerprint) first arrived.
async fn serve_webhook(arrived: Arc<parking_lot::Mutex<HashMap<String, Instant>>>) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
            let arrived = arrived.clone();
            async move {
                let now = Instant::now();
                let mut seen = arrived.lock();
                for a in body["alerts"].as_array().into_iter().flatten() {
                    if let Some(fp) = a["fingerprint"].as_str() {
                        seen.entry(fp.to_string()).or_insert(now);
                    }
                }
                "ok"
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(format!("http://{addr}/hook"))
}

pub async fn run(corpus: &std::path::Path, rules: usize, series: usize, rounds: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let rule_file = dir.path().join("rules.yml");
    let (rule_count, names) = replicated_rules(corpus, rules, &rule_file)?;
    let tenant = TenantId::new("default")?;

    let db = Arc::new(tsdb::Tsdb::open(&dir.path().join("tsdb"), tsdb::TsdbConfig::default())?);
    let now_ms = chrono::Utc::now().timestamp_millis() / STEP_MS * STEP_MS;
    let start_ms = now_ms - HISTORY_STEPS * STEP_MS;
    let loading = Instant::now();
    for chunk_start in (0..series).step_by(1000) {
        let batch: Vec<TimeSeries> = (chunk_start..(chunk_start + 1000).min(series))
            .map(|i| {
                let samples = (0..HISTORY_STEPS).map(|k| Sample::new(start_ms + k * STEP_MS, value(i, k))).collect();
                TimeSeries::new(series_labels(i, &names), samples)
            })
            .collect();
        db.append(&tenant, &batch)?;
    }
    let load_seconds = loading.elapsed().as_secs_f64();

    let arrived = Arc::new(parking_lot::Mutex::new(HashMap::new()));
    let hook = serve_webhook(arrived.clone()).await?;
    let notify_yaml = format!(
        "route: {{receiver: hook, group_by: [alertname, namespace], group_wait: 0s, group_interval: 1s}}\n\
         receivers: [{{name: hook, webhook_configs: [{{url: '{hook}'}}]}}]\n"
    );
    let notify_config = alerting::notify::NotifyConfig::from_yaml(&notify_yaml)?;
    let notifier = Arc::new(
        alerting::notify::Notifier::start(
            &notify_config,
            alerting::notify::NotifierOptions::new(dir.path().join("alerting"), "http://localhost:9470"),
        )
        .await?,
    );
    let sent = Arc::new(parking_lot::Mutex::new(HashMap::new()));
    let sink = TimedSink {
        inner: alerting::manager::NotifierSink {
            notifier: notifier.clone(),
            runtime: tokio::runtime::Handle::current(),
        },
        sent: sent.clone(),
    };
    let stores = alerting::eval::LocalStores { tsdb: db.clone(), indexer: None };
    let manager = Arc::new(alerting::manager::RuleManager::new(Arc::new(stores), Arc::new(sink)));
    let config =
        alerting::manager::RulesConfig { rule_files: vec![rule_file.display().to_string()], ..Default::default() };
    let loaded = manager.load(&config)?;
    anyhow::ensure!(loaded == rule_count, "loaded {loaded} of {rule_count} rules");

    // Each round: append the next sample of every series (as scrapes would), then evaluate
    // every group at that instant. Evaluation blocks (it runs on a blocking thread in the server).
    let mut round_seconds = Vec::new();
    for round in 0..rounds as i64 {
        let t = now_ms + round * STEP_MS;
        for chunk_start in (0..series).step_by(1000) {
            let batch: Vec<TimeSeries> = (chunk_start..(chunk_start + 1000).min(series))
                .map(|i| {
                    TimeSeries::new(series_labels(i, &names), vec![Sample::new(t, value(i, HISTORY_STEPS + round))])
                })
                .collect();
            db.append(&tenant, &batch)?;
        }
        let m = manager.clone();
        let took = tokio::task::spawn_blocking(move || {
            let began = Instant::now();
            let ran = m.eval_due(t + 1);
            (began.elapsed().as_secs_f64(), ran)
        })
        .await?;
        round_seconds.push(took.0);
    }
    // Notification latency: every firing alert handed over, until it reached the webhook.
    let deadline = Instant::now() + Duration::from_secs(60);
    let expected = sent.lock().len();
    while arrived.lock().len() < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut latencies: Vec<f64> = {
        let (sent, arrived) = (sent.lock(), arrived.lock());
        sent.iter()
            .filter_map(|(fp, t0)| arrived.get(fp).map(|t1| t1.duration_since(*t0).as_secs_f64() * 1000.0))
            .collect()
    };
    latencies.sort_by(f64::total_cmp);
    notifier.shutdown().await?;
    let mut sorted = round_seconds.clone();
    sorted.sort_by(f64::total_cmp);
    report::emit(
        "alert-rules",
        &[
            ("rules", Value::from(rule_count)),
            ("series", Value::from(series)),
            ("metric_names", Value::from(names.len())),
            ("load_seconds", Value::from(load_seconds)),
            ("interval_seconds", Value::from(STEP_MS / 1000)),
            ("rounds", Value::from(rounds)),
            ("round_seconds", Value::from(round_seconds)),
            ("round_seconds_p50", Value::from(report::percentile(&sorted, 0.5))),
            ("round_seconds_max", Value::from(report::percentile(&sorted, 1.0))),
            ("firing_alerts_sent", Value::from(expected)),
            ("firing_alerts_received", Value::from(latencies.len())),
            ("notify_latency_ms_p50", Value::from(report::percentile(&latencies, 0.5))),
            ("notify_latency_ms_p99", Value::from(report::percentile(&latencies, 0.99))),
            ("peak_rss_mib", Value::from(report::peak_rss_mib())),
        ],
        None,
    );
    Ok(())
}
