//! Scenario `scrape-peers`: Tarsier, Prometheus and VictoriaMetrics scrape the same
//! node_exporters every second for `--seconds` (issue #6 "Performance it must reach"). Each runs
//! as its own process, so per system: CPU-seconds (utime + stime from `/proc/<pid>/stat`, counted
//! from the moment all three are ready), peak RSS (`VmHWM`) and on-disk bytes per sample with the
//! index included, measured the same way for each: the whole run as one unit of storage.
//!
//! - Prometheus: `POST /api/v1/admin/tsdb/snapshot` (head included) writes the run as one block;
//!   bytes of that block (index + chunks + meta) / its `numSamples`.
//! - VictoriaMetrics: `/internal/force_flush`, then bytes of `data/` + `indexdb/` / stored rows
//!   (`vm_rows{type=~"storage/.*"}`).
//! - Tarsier: stopped (SIGTERM), its tsdb reopened here (the WAL replay is timed), and
//!   `Tsdb::snapshot` writes the run as one Parquet block; bytes of that block / its samples.
//!
//! Peers come from Debian: the scenario runs `apt-get install -y prometheus
//! prometheus-node-exporter victoria-metrics` for whichever is missing. The `tarsier` binary is taken from beside this one (build both with
//! `cargo build --release -p tarsier -p tarsier-benches`).

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::procs::{Proc, dir_bytes, free_port, need, start_node_exporters, wait_ready};
use crate::report::{self, round};

pub struct Options {
    pub seconds: u64,
    pub exporters: usize,
}

/// Per system: what the run cost.
struct Figures {
    cpu_seconds: f64,
    peak_rss_mib: f64,
    samples: u64,
    bytes: u64,
    data_bytes: u64,
}

impl Figures {
    fn bytes_per_sample(&self) -> f64 {
        self.bytes as f64 / self.samples.max(1) as f64
    }
}

pub async fn run(options: &Options) -> anyhow::Result<()> {
    let exporter_bin = need("prometheus-node-exporter", "prometheus-node-exporter")?;
    let prometheus_bin = need("prometheus", "prometheus")?;
    let vm_bin = need("victoria-metrics", "victoria-metrics")?;
    let tarsier_bin = std::env::current_exe()?.with_file_name("tarsier");
    anyhow::ensure!(
        tarsier_bin.exists(),
        "{} is missing: cargo build --release -p tarsier -p tarsier-benches",
        tarsier_bin.display()
    );
    let root = tempfile::tempdir()?;
    let root = root.path();
    let client = reqwest::Client::new();

    let (mut exporters, targets) = start_node_exporters(&exporter_bin, options.exporters, root, &client).await?;
    let target_list = targets.iter().map(|t| format!("\"{t}\"")).collect::<Vec<_>>().join(", ");
    let scrape_yaml = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: node\n    static_configs:\n      - targets: [{target_list}]\n"
    );
    std::fs::write(root.join("prometheus.yml"), &scrape_yaml)?;

    let (prom_port, vm_port, tarsier_port) = (free_port()?, free_port()?, free_port()?);
    let prom_dir = root.join("prometheus");
    let mut prometheus = Proc::start(
        "prometheus",
        &prometheus_bin,
        &[
            format!("--config.file={}", root.join("prometheus.yml").display()),
            format!("--storage.tsdb.path={}", prom_dir.display()),
            format!("--web.listen-address=127.0.0.1:{prom_port}"),
            "--web.enable-admin-api".into(),
        ],
        &root.join("prometheus.log"),
    )?;
    let vm_dir = root.join("victoria-metrics");
    let mut vm = Proc::start(
        "victoria-metrics",
        &vm_bin,
        &[
            format!("-storageDataPath={}", vm_dir.display()),
            format!("-httpListenAddr=127.0.0.1:{vm_port}"),
            format!("-promscrape.config={}", root.join("prometheus.yml").display()),
        ],
        &root.join("vm.log"),
    )?;
    let tarsier_data = root.join("tarsier");
    let tarsier_yaml = format!(
        "data_dir: {}\nlog:\n  level: warn\nserver:\n  listen: 127.0.0.1:{tarsier_port}\ncollector:\n  global:\n    scrape_interval: 1s\n    scrape_timeout: 1s\n  scrape_configs:\n    - job_name: node\n      static_configs:\n        - targets: [{target_list}]\n",
        tarsier_data.display()
    );
    // In a directory of its own, as a deployed config (a ConfigMap mount) is: the reloader watches
    // the config's directory, and beside the peers' and exporters' log files it woke on every
    // line they logged (7% of Tarsier's CPU in this scenario).
    let config_dir = root.join("tarsier-config");
    std::fs::create_dir_all(&config_dir)?;
    std::fs::write(config_dir.join("tarsier.yaml"), tarsier_yaml)?;
    let mut tarsier = Proc::start(
        "tarsier",
        &tarsier_bin,
        &["run".into(), "--config".into(), config_dir.join("tarsier.yaml").display().to_string()],
        &root.join("tarsier.log"),
    )?;
    wait_ready(&client, "prometheus", &format!("http://127.0.0.1:{prom_port}/-/ready")).await?;
    wait_ready(&client, "victoria-metrics", &format!("http://127.0.0.1:{vm_port}/health")).await?;
    wait_ready(&client, "tarsier", &format!("http://127.0.0.1:{tarsier_port}/-/ready")).await?;

    let systems = [&prometheus, &vm, &tarsier];
    let cpu_start: Vec<f64> = systems.iter().map(|p| report::proc_cpu_seconds(&p.pid())).collect();
    let exporters_cpu_start: f64 = exporters.iter().map(|p| report::proc_cpu_seconds(&p.pid())).sum();
    eprintln!("scrape-peers: {} node_exporters scraped every 1 s for {} s", options.exporters, options.seconds);
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(options.seconds) {
        tokio::time::sleep(Duration::from_secs(10).min(Duration::from_secs(options.seconds))).await;
        eprintln!("scrape-peers: {:.0} s", started.elapsed().as_secs_f64());
    }
    let cpu: Vec<f64> = systems.iter().zip(&cpu_start).map(|(p, s)| report::proc_cpu_seconds(&p.pid()) - s).collect();
    let rss: Vec<f64> = systems.iter().map(|p| report::proc_peak_rss_mib(&p.pid())).collect();
    let exporters_cpu = exporters.iter().map(|p| report::proc_cpu_seconds(&p.pid())).sum::<f64>() - exporters_cpu_start;
    for p in &mut exporters {
        p.terminate()?;
    }

    // Prometheus: the run (head included) as one snapshot block.
    let answer: Value = client
        .post(format!("http://127.0.0.1:{prom_port}/api/v1/admin/tsdb/snapshot?skip_head=false"))
        .send()
        .await?
        .json()
        .await?;
    let name = answer["data"]["name"].as_str().ok_or_else(|| anyhow::anyhow!("snapshot answer {answer}"))?;
    let snapshot = prom_dir.join("snapshots").join(name);
    let (mut prom_samples, mut prom_chunk_bytes) = (0, 0);
    for block in std::fs::read_dir(&snapshot)?.flatten() {
        let meta: Value = serde_json::from_slice(&std::fs::read(block.path().join("meta.json"))?)?;
        prom_samples += meta["stats"]["numSamples"].as_u64().unwrap_or(0);
        prom_chunk_bytes += dir_bytes(&block.path().join("chunks"));
    }
    let prom = Figures {
        cpu_seconds: cpu[0],
        peak_rss_mib: rss[0],
        samples: prom_samples,
        bytes: dir_bytes(&snapshot),
        data_bytes: prom_chunk_bytes,
    };
    prometheus.terminate()?;

    // VictoriaMetrics: in-memory parts flushed, then its data and index directories.
    client.get(format!("http://127.0.0.1:{vm_port}/internal/force_flush")).send().await?;
    let metrics = client.get(format!("http://127.0.0.1:{vm_port}/metrics")).send().await?.text().await?;
    let vm_samples: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("vm_rows{type=\"storage/"))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum();
    vm.terminate()?;
    let vm_figures = Figures {
        cpu_seconds: cpu[1],
        peak_rss_mib: rss[1],
        samples: vm_samples as u64,
        bytes: dir_bytes(&vm_dir.join("data")) + dir_bytes(&vm_dir.join("indexdb")),
        data_bytes: dir_bytes(&vm_dir.join("data")),
    };

    // Tarsier: stopped, reopened here (WAL replay), the run written as one block.
    tarsier.terminate()?;
    let replay_started = Instant::now();
    let db = tsdb::Tsdb::open(&tarsier_data.join("tsdb"), tsdb::TsdbConfig::default())?;
    let replay_seconds = replay_started.elapsed().as_secs_f64();
    let tenant = model::TenantId::default_tenant();
    let block = db.snapshot(&tenant, &root.join("tarsier-snapshot"))?;
    let meta = tsdb::block::read_meta(&block)?.ok_or_else(|| anyhow::anyhow!("snapshot without meta.json"))?;
    let ours = Figures {
        cpu_seconds: cpu[2],
        peak_rss_mib: rss[2],
        samples: meta.samples,
        bytes: dir_bytes(&block),
        data_bytes: std::fs::metadata(block.join("samples.parquet"))?.len(),
    };
    // Where Tarsier's bytes go, column by column (tsdb/BLOCKS.md).
    let column_bytes = tsdb::block::column_bytes(&block)?;
    let columns: Vec<(&str, Value)> = column_bytes
        .iter()
        .map(|(column, bytes)| {
            let per_sample = *bytes as f64 / meta.samples.max(1) as f64;
            (column.as_str(), Value::from((per_sample * 1e4).round() / 1e4))
        })
        .collect();
    report::emit("scrape_peers_tarsier_block_bytes_per_sample", &columns, None);

    for (name, f) in [("prometheus", &prom), ("victoria-metrics", &vm_figures), ("tarsier", &ours)] {
        report::emit(
            "scrape_peers_system",
            &[
                ("system", Value::from(name)),
                ("seconds", Value::from(options.seconds)),
                ("node_exporters", Value::from(options.exporters)),
                ("cpu_seconds", Value::from(round(f.cpu_seconds))),
                ("peak_rss_mib", Value::from(round(f.peak_rss_mib))),
                ("samples", Value::from(f.samples)),
                ("bytes", Value::from(f.bytes)),
                ("bytes_per_sample", Value::from(round(f.bytes_per_sample()))),
                ("data_bytes_per_sample", Value::from(round(f.data_bytes as f64 / f.samples.max(1) as f64))),
            ],
            None,
        );
    }
    report::emit(
        "scrape_peers",
        &[
            ("seconds", Value::from(options.seconds)),
            ("node_exporters", Value::from(options.exporters)),
            ("node_exporters_cpu_seconds", Value::from(round(exporters_cpu))),
            ("tarsier_bytes_per_sample", Value::from(round(ours.bytes_per_sample()))),
            (
                "bytes_per_sample_vs_victoria_metrics",
                Value::from(round(ours.bytes_per_sample() / vm_figures.bytes_per_sample())),
            ),
            ("bytes_per_sample_vs_prometheus", Value::from(round(ours.bytes_per_sample() / prom.bytes_per_sample()))),
            ("cpu_vs_prometheus", Value::from(round(ours.cpu_seconds / prom.cpu_seconds.max(1e-9)))),
            ("cpu_vs_victoria_metrics", Value::from(round(ours.cpu_seconds / vm_figures.cpu_seconds.max(1e-9)))),
            ("peak_rss_vs_victoria_metrics", Value::from(round(ours.peak_rss_mib / vm_figures.peak_rss_mib.max(1e-9)))),
            ("peak_rss_vs_prometheus", Value::from(round(ours.peak_rss_mib / prom.peak_rss_mib.max(1e-9)))),
            ("tarsier_wal_replay_seconds", Value::from(round(replay_seconds))),
        ],
        Some((
            "prometheus 2.42 (cpu_seconds)",
            round(prom.cpu_seconds),
            round(ours.cpu_seconds / prom.cpu_seconds.max(1e-9)),
        )),
    );
    Ok(())
}
