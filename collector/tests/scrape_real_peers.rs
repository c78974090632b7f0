//! Real peers: Debian's `prometheus-node-exporter` as the target, scraped by Tarsier's collector and
//! by a real Prometheus 2.42 (Debian's `prometheus`) at the same time. Every metric family the
//! exporter writes must parse, and both scrapers must see the same series names and, for a sample
//! of families, the same label sets; constant gauges must have the same values. And Prometheus as
//! a remote_write receiver for what the collector ships.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use collector::scrape::exposition;
use collector::{Collector, CollectorConfig, ScrapeConfig, StaticConfig};
use common::RecordingSink;

/// A child process killed on drop.
struct Peer(Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn binary(name: &str, package: &str) -> String {
    let path = format!("/usr/bin/{name}");
    assert!(
        std::path::Path::new(&path).exists(),
        "{name} is missing: install it with `apt-get install -y {package}` (scripts/test.sh does)"
    );
    path
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn get_ok(client: &reqwest::Client, url: &str) -> Option<String> {
    let response = client.get(url).send().await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    response.text().await.ok()
}

/// Polls `probe` until it returns something, for at most 30 s.
async fn poll<T, F: Future<Output = Option<T>>>(what: &str, mut probe: impl FnMut() -> F) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

type LabelSet = BTreeMap<String, String>;

/// Every series Prometheus saw for `job`, by metric name.
async fn prometheus_series(
    client: &reqwest::Client,
    prometheus: &str,
    job: &str,
) -> BTreeMap<String, BTreeSet<LabelSet>> {
    let url = format!("http://{prometheus}/api/v1/series?match[]={{job=\"{job}\"}}&start=0");
    let body: serde_json::Value = serde_json::from_str(&get_ok(client, &url).await.unwrap()).unwrap();
    let mut out: BTreeMap<String, BTreeSet<LabelSet>> = BTreeMap::new();
    for series in body["data"].as_array().unwrap() {
        let labels: LabelSet = serde_json::from_value(series.clone()).unwrap();
        out.entry(labels["__name__"].clone()).or_default().insert(labels);
    }
    out
}

async fn prometheus_value(client: &reqwest::Client, prometheus: &str, query: &str) -> Option<f64> {
    let url = format!("http://{prometheus}/api/v1/query?query={}", urlencode(query));
    let body: serde_json::Value = serde_json::from_str(&get_ok(client, &url).await?).ok()?;
    body["data"]["result"].get(0)?["value"][1].as_str()?.parse().ok()
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b == b'_' { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_exporter_scraped_by_tarsier_and_prometheus_gives_the_same_series() {
    let exporter_bin = binary("prometheus-node-exporter", "prometheus-node-exporter");
    let prometheus_bin = binary("prometheus", "prometheus");
    let exporter = format!("127.0.0.1:{}", free_port());
    let _exporter = Peer(
        Command::new(exporter_bin)
            .arg(format!("--web.listen-address={exporter}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let client = reqwest::Client::new();
    let metrics_url = format!("http://{exporter}/metrics");
    let page = poll("node_exporter to answer", || get_ok(&client, &metrics_url)).await;

    // Every family the exporter writes parses, and every declared family has samples.
    let samples = exposition::parse(&page).unwrap_or_else(|e| panic!("{e}"));
    let families: BTreeSet<&str> =
        page.lines().filter_map(|l| l.strip_prefix("# TYPE ")).filter_map(|l| l.split(' ').next()).collect();
    assert!(families.len() > 100, "node_exporter wrote only {} families", families.len());
    for family in &families {
        assert!(samples.iter().any(|s| s.name.starts_with(family)), "family {family} has no parsed samples");
    }

    let dir = tempfile::tempdir().unwrap();
    let prometheus = format!("127.0.0.1:{}", free_port());
    let config_file = dir.path().join("prometheus.yml");
    std::fs::write(
        &config_file,
        format!(
            "global: {{scrape_interval: 1s, scrape_timeout: 1s}}\n\
             scrape_configs:\n- job_name: node\n  static_configs: [{{targets: ['{exporter}']}}]\n"
        ),
    )
    .unwrap();
    let _prometheus = Peer(
        Command::new(prometheus_bin)
            .arg(format!("--config.file={}", config_file.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address={prometheus}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );

    let mut config = CollectorConfig::default();
    config.shipping.batch_max_wait = Duration::from_millis(50);
    config.scrape_configs.push(ScrapeConfig {
        job_name: "node".into(),
        scrape_interval: Some(Duration::from_secs(1)),
        static_configs: vec![StaticConfig { targets: vec![exporter.clone()], labels: Default::default() }],
        ..Default::default()
    });
    let state = tempfile::tempdir().unwrap();
    let sink = Arc::new(RecordingSink::default());
    let collector = Collector::start(config, state.path(), sink.clone(), sink.clone()).await.unwrap();

    let up =
        poll("Prometheus to scrape node_exporter", || prometheus_value(&client, &prometheus, "up{job=\"node\"}")).await;
    assert_eq!(up, 1.0);
    // Two scrapes each, so both have seen every series at least twice.
    let scraped_twice = || async {
        let ours = sink.series.lock().unwrap().iter().filter(|s| s.labels.metric_name() == Some("up")).count();
        let theirs = prometheus_value(&client, &prometheus, "count_over_time(up{job=\"node\"}[1m])").await?;
        (ours >= 2 && theirs >= 2.0).then_some(())
    };
    poll("two scrapes by each", scraped_twice).await;
    collector.shutdown().await.unwrap();

    let theirs = prometheus_series(&client, &prometheus, "node").await;
    let mut ours: BTreeMap<String, BTreeSet<LabelSet>> = BTreeMap::new();
    for series in sink.series.lock().unwrap().iter() {
        let labels: LabelSet = series.labels.iter().map(|l| (l.name.clone(), l.value.clone())).collect();
        ours.entry(labels["__name__"].clone()).or_default().insert(labels);
    }
    let (our_names, their_names): (BTreeSet<_>, BTreeSet<_>) = (ours.keys().collect(), theirs.keys().collect());
    assert_eq!(
        our_names.symmetric_difference(&their_names).collect::<Vec<_>>(),
        Vec::<&&String>::new(),
        "series names only one side has"
    );
    assert!(our_names.len() > 200, "{} names", our_names.len());
    for name in [
        "up",
        "scrape_samples_scraped",
        "node_cpu_seconds_total",
        "node_filesystem_size_bytes",
        "node_network_receive_bytes_total",
        "node_scrape_collector_success",
        "go_gc_duration_seconds",
        "go_gc_duration_seconds_count",
        "node_memory_MemTotal_bytes",
        "promhttp_metric_handler_requests_total",
    ] {
        assert_eq!(ours.get(name), theirs.get(name), "label sets of {name}");
    }
    for gauge in ["node_boot_time_seconds", "node_memory_MemTotal_bytes"] {
        let their_value = prometheus_value(&client, &prometheus, gauge).await.unwrap();
        let our_value =
            sink.series.lock().unwrap().iter().rev().find(|s| s.labels.metric_name() == Some(gauge)).unwrap().samples
                [0]
            .value;
        assert_eq!(our_value, their_value, "{gauge}");
    }
}

/// Prometheus 2.42 as a remote_write receiver: what the collector scrapes and ships with its
/// HTTP sink (protobuf + snappy) is queryable there with the same labels and values.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_write_into_a_real_prometheus() {
    let prometheus_bin = binary("prometheus", "prometheus");
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(|| async { "rw_requests_total{path=\"/a\",code=\"200\"} 42\nrw_temperature 21.5\n" }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let prometheus = format!("127.0.0.1:{}", free_port());
    let config_file = dir.path().join("prometheus.yml");
    std::fs::write(&config_file, "scrape_configs: []\n").unwrap();
    let _prometheus = Peer(
        Command::new(prometheus_bin)
            .arg(format!("--config.file={}", config_file.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address={prometheus}"))
            .arg("--web.enable-remote-write-receiver")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let client = reqwest::Client::new();
    let ready = format!("http://{prometheus}/-/ready");
    poll("Prometheus to be ready", || get_ok(&client, &ready)).await;

    let mut config = CollectorConfig::default();
    config.shipping.batch_max_wait = Duration::from_millis(50);
    config.scrape_configs.push(ScrapeConfig {
        job_name: "rw".into(),
        scrape_interval: Some(Duration::from_millis(500)),
        static_configs: vec![StaticConfig { targets: vec![target.clone()], labels: Default::default() }],
        ..Default::default()
    });
    let sink = Arc::new(collector::HttpSink::new(&format!("http://{prometheus}"), Duration::from_secs(5)).unwrap());
    let logs = Arc::new(RecordingSink::default());
    let state = tempfile::tempdir().unwrap();
    let collector = Collector::start(config, state.path(), logs, sink).await.unwrap();

    let query = |q: &'static str| prometheus_value(&client, &prometheus, q);
    let requests = poll("the shipped counter in Prometheus", || query("rw_requests_total{job=\"rw\"}")).await;
    assert_eq!(requests, 42.0);
    assert_eq!(poll("up", || query("up{job=\"rw\"}")).await, 1.0);
    assert_eq!(poll("the gauge", || query("rw_temperature{job=\"rw\"}")).await, 21.5);
    collector.shutdown().await.unwrap();

    let series = prometheus_series(&client, &prometheus, "rw").await;
    let requests = series["rw_requests_total"].iter().next().unwrap().clone();
    let expected: LabelSet = [
        ("__name__", "rw_requests_total"),
        ("code", "200"),
        ("instance", target.as_str()),
        ("job", "rw"),
        ("path", "/a"),
    ]
    .into_iter()
    .map(|(n, v)| (n.to_string(), v.to_string()))
    .collect();
    assert_eq!(requests, expected);
    for synthetic in ["up", "scrape_duration_seconds", "scrape_samples_scraped", "scrape_series_added"] {
        assert!(series.contains_key(synthetic), "{synthetic} missing from {:?}", series.keys());
    }
}
