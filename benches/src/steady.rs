//! Scenarios `outage` and `soak` (issue #10 points 2 and 9): the deployed shape, a `tarsier agent`
//! tailing a log file and scraping node_exporters and shipping both to a `tarsier server`, under a
//! steady load for minutes, as real processes.
//!
//! - `outage`: after a warm-up the server is stopped (SIGTERM) for `--outage-seconds` while the
//!   writer keeps writing and the agent keeps scraping, then started again. Figures: the agent's
//!   disk buffer at its fullest against its bound, how long the server took to catch up (every line
//!   written before the restart queryable), the latency of dashboard-style queries while it caught
//!   up against the warm-up's, and at the end every line counted once (`count_over_time`) and the
//!   longest gap in the scraped `up` series.
//! - `soak`: the same load without an outage for `--soak-minutes`; the RSS of both processes is
//!   sampled every 10 s. Figures: RSS at the end of the warm-up, at the end and its slope after the
//!   warm-up (MiB per hour, least squares) and over the run's second half (after the first block
//!   cuts: whether it is flat), CPU-seconds, and the same delivery check.
//!
//! Both need the release `tarsier` binary beside `tarsier-bench` and Debian's node_exporter.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::procs::{Proc, free_port, need, start_node_exporters, wait_ready};
use crate::report::{self, round};

pub struct Options {
    /// Lines per second the writer appends.
    pub rate: u64,
    pub exporters: usize,
    pub warmup_seconds: u64,
    pub outage_seconds: u64,
    pub soak_minutes: u64,
    /// `collector.shipping.disk_buffer.max_bytes` of the agent, in MiB.
    pub buffer_mib: u64,
}

const SCRAPE_INTERVAL_SECONDS: u64 = 5;
/// The soak's `tsdb` section: blocks of 10 minutes.
const SOAK_TSDB: &str = "tsdb:\n  block_duration: 10m\n  out_of_order_window: 1m\n";
/// The writer renames the file away (as the kubelet does) after this many lines.
const ROTATE_EVERY: u64 = 200_000;

/// The sum of every series of metric `name` in a text exposition.
pub(crate) fn metric_sum(exposition: &str, name: &str) -> f64 {
    exposition
        .lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn unix_secs() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs_f64()
}

/// The two Tarsier processes and what is needed to restart the server.
struct Deployment {
    root: PathBuf,
    tarsier: PathBuf,
    server: Proc,
    server_base: String,
    agent: Proc,
    agent_base: String,
    client: reqwest::Client,
}

impl Deployment {
    async fn start(root: &Path, options: &Options, targets: &[String], soak: bool) -> anyhow::Result<Deployment> {
        let tarsier = std::env::current_exe()?.with_file_name("tarsier");
        anyhow::ensure!(
            tarsier.exists(),
            "{} is missing: cargo build --release -p tarsier -p tarsier-benches",
            tarsier.display()
        );
        let (server_port, agent_port) = (free_port()?, free_port()?);
        let server_yaml = format!(
            "data_dir: {data}\nlog:\n  level: warn\nserver:\n  listen: 127.0.0.1:{server_port}\n  max_log_query_limit: 10000\n\
             indexer:\n  commit_interval: 1s\n{tsdb}",
            data = root.join("server-data").display(),
            // The soak cuts head blocks every 10 minutes (default 2 h) so the head reaches its
            // steady size within the run: what is left to grow after that is a leak.
            tsdb = if soak { SOAK_TSDB } else { "" },
        );
        std::fs::write(root.join("server.yaml"), server_yaml)?;
        let target_list = targets.iter().map(|t| format!("'{t}'")).collect::<Vec<_>>().join(", ");
        let agent_yaml = format!(
            "data_dir: {data}\nlog:\n  level: warn\nserver:\n  listen: 127.0.0.1:{agent_port}\ncollector:\n  tail:\n    \
             include: ['{logs}/*.log*']\n    labels:\n      job: soak\n  global:\n    scrape_interval: {SCRAPE_INTERVAL_SECONDS}s\n    \
             scrape_timeout: {SCRAPE_INTERVAL_SECONDS}s\n  shipping:\n    disk_buffer:\n      max_bytes: {buffer}MiB\n  \
             scrape_configs:\n  - job_name: node\n    static_configs:\n    - targets: [{target_list}]\n\
             agent:\n  server_url: http://127.0.0.1:{server_port}\n",
            data = root.join("agent-data").display(),
            logs = root.join("logs").display(),
            buffer = options.buffer_mib,
        );
        std::fs::write(root.join("agent.yaml"), agent_yaml)?;
        let client = reqwest::Client::builder().timeout(Duration::from_secs(60)).build()?;
        let server = Self::start_server(&tarsier, root)?;
        let server_base = format!("http://127.0.0.1:{server_port}");
        wait_ready(&client, "tarsier server", &format!("{server_base}/-/ready")).await?;
        let agent = Proc::start(
            "tarsier agent",
            &tarsier,
            &["agent".into(), "--config".into(), root.join("agent.yaml").display().to_string()],
            &root.join("agent.log"),
        )?;
        let agent_base = format!("http://127.0.0.1:{agent_port}");
        wait_ready(&client, "tarsier agent", &format!("{agent_base}/-/ready")).await?;
        Ok(Deployment { root: root.to_path_buf(), tarsier, server, server_base, agent, agent_base, client })
    }

    fn start_server(tarsier: &Path, root: &Path) -> anyhow::Result<Proc> {
        // One log file per start, so the log of the server before the outage is kept.
        let log = root.join(format!("server-{}.log", unix_secs() as u64));
        Proc::start(
            "tarsier server",
            tarsier,
            &["server".into(), "--config".into(), root.join("server.yaml").display().to_string()],
            &log,
        )
    }

    async fn restart_server(&mut self) -> anyhow::Result<()> {
        self.server = Self::start_server(&self.tarsier, &self.root)?;
        wait_ready(&self.client, "tarsier server", &format!("{}/-/ready", self.server_base)).await
    }

    /// A sum of the agent's `/metrics` lines starting with `name`.
    async fn agent_metric(&self, name: &str) -> f64 {
        self.agent_metrics(&[name]).await[0]
    }

    /// Several of the agent's metrics from one scrape of its `/metrics` (0 when it does not answer).
    async fn agent_metrics<const N: usize>(&self, names: &[&str; N]) -> [f64; N] {
        let text = match self.client.get(format!("{}/metrics", self.agent_base)).send().await {
            Ok(response) => response.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        names.map(|name| metric_sum(&text, name))
    }

    /// Lines stored for `{job="soak"}` (copies included), or `None` when the server does not answer.
    async fn stored_lines(&self, since_unix: f64) -> Option<u64> {
        let range = (unix_secs() - since_unix + 120.0).ceil() as u64;
        let query = format!("sum(count_over_time({{job=\"soak\"}}[{range}s]))");
        let body = self.get(&format!("{}/loki/api/v1/query", self.server_base), &[("query", &query)]).await?;
        let value = body["data"]["result"].get(0).map(|r| r["value"][1].as_str().unwrap_or("0").to_string());
        Some(value.map(|v| v.parse::<f64>().unwrap_or(0.0) as u64).unwrap_or(0))
    }

    async fn get(&self, url: &str, params: &[(&str, &str)]) -> Option<Value> {
        let response = self.client.get(url).query(params).send().await.ok()?;
        if !response.status().is_success() {
            return None;
        }
        response.json().await.ok()
    }

    /// One dashboard refresh: a LogQL metric query and a PromQL query; the slower latency.
    async fn dashboard_query(&self) -> Option<Duration> {
        let started = Instant::now();
        let logs = format!("{}/loki/api/v1/query", self.server_base);
        self.get(&logs, &[("query", "sum(count_over_time({job=\"soak\"} |= \"ERROR\" [1m]))")]).await?;
        let metrics = format!("{}/api/v1/query", self.server_base);
        self.get(&metrics, &[("query", "sum by (instance) (rate(node_cpu_seconds_total[1m]))")]).await?;
        Some(started.elapsed())
    }

    /// The longest gap between stored `up` samples of any target over the last `seconds`.
    async fn longest_up_gap(&self, seconds: u64) -> anyhow::Result<f64> {
        let query = format!("up{{job=\"node\"}}[{seconds}s]");
        let url = format!("{}/api/v1/query", self.server_base);
        let body = self.get(&url, &[("query", &query)]).await.ok_or_else(|| anyhow::anyhow!("query {query} failed"))?;
        let mut longest: f64 = 0.0;
        for series in body["data"]["result"].as_array().into_iter().flatten() {
            let times: Vec<f64> =
                series["values"].as_array().into_iter().flatten().filter_map(|v| v[0].as_f64()).collect();
            for pair in times.windows(2) {
                longest = longest.max(pair[1] - pair[0]);
            }
        }
        Ok(longest)
    }
}

/// Appends numbered lines at `rate` per second until `stop`, renaming the file away every
/// [`ROTATE_EVERY`] lines as a container runtime does when the kubelet rotates.
fn write_lines(dir: PathBuf, rate: u64, written: Arc<AtomicU64>, stop: Arc<AtomicBool>) -> anyhow::Result<()> {
    let path = dir.join("app.log");
    let open = || std::fs::OpenOptions::new().create(true).append(true).open(&path);
    let mut file = std::io::BufWriter::new(open()?);
    let started = Instant::now();
    let mut n = 0u64;
    let levels = ["INFO", "INFO", "INFO", "WARN", "ERROR"];
    while !stop.load(Ordering::SeqCst) {
        let due = (started.elapsed().as_secs_f64() * rate as f64) as u64;
        while n < due {
            let level = levels[(n % 5) as usize];
            writeln!(
                file,
                "{level} seq={n:010} route=/api/v1/orders/{} status={} duration_ms={} user=u{} msg=\"steady load line\"",
                n % 977,
                if level == "ERROR" { 500 } else { 200 },
                n % 250,
                n % 131
            )?;
            n += 1;
            if n.is_multiple_of(ROTATE_EVERY) {
                file.flush()?;
                std::fs::rename(&path, dir.join(format!("app.log.{}", n / ROTATE_EVERY)))?;
                file = std::io::BufWriter::new(open()?);
            }
        }
        // Whole lines only: the buffer is flushed at a line boundary.
        file.flush()?;
        written.store(n, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(10));
    }
    file.flush()?;
    written.store(n, Ordering::SeqCst);
    Ok(())
}

fn latency_figures(prefix: &str, latencies: Vec<Duration>) -> Vec<(String, Value)> {
    let mut ms: Vec<f64> = latencies.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    ms.sort_by(f64::total_cmp);
    // No query at all reads as 0 ms, not null.
    let at = |p: f64| if ms.is_empty() { 0.0 } else { round(report::percentile(&ms, p)) };
    vec![
        (format!("{prefix}_queries"), Value::from(ms.len())),
        (format!("{prefix}_p50_ms"), Value::from(at(0.5))),
        (format!("{prefix}_p99_ms"), Value::from(at(0.99))),
        (format!("{prefix}_max_ms"), Value::from(at(1.0))),
    ]
}

/// Least-squares slope of (seconds, MiB) points, in MiB per hour.
fn slope_mib_per_hour(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if n < 2.0 {
        return 0.0;
    }
    let (mean_t, mean_v) = (points.iter().map(|p| p.0).sum::<f64>() / n, points.iter().map(|p| p.1).sum::<f64>() / n);
    let cov: f64 = points.iter().map(|p| (p.0 - mean_t) * (p.1 - mean_v)).sum();
    let var: f64 = points.iter().map(|p| (p.0 - mean_t).powi(2)).sum();
    if var == 0.0 { 0.0 } else { cov / var * 3600.0 }
}

/// The points of the run's second half: the head has been cut into blocks at least once by then
/// (10-minute blocks, a run of 20 minutes or more), so what grows there is what keeps growing.
fn second_half(points: &[(f64, f64)]) -> &[(f64, f64)] {
    let Some(last) = points.last() else { return points };
    let from = points.partition_point(|p| p.0 < last.0 / 2.0);
    &points[from..]
}

/// Waits until the server stores at least `lines` lines; the seconds it took.
async fn await_stored(d: &Deployment, since: f64, lines: u64, limit: Duration) -> anyhow::Result<f64> {
    let started = Instant::now();
    let mut last_report = Instant::now();
    loop {
        let stored = d.stored_lines(since).await.unwrap_or(0);
        if stored >= lines {
            return Ok(started.elapsed().as_secs_f64());
        }
        anyhow::ensure!(started.elapsed() < limit, "only {stored} of {lines} lines stored after {limit:?}");
        if last_report.elapsed() > Duration::from_secs(10) {
            eprintln!("  {stored} of {lines} lines stored");
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

pub async fn run(options: &Options, outage: bool) -> anyhow::Result<()> {
    let scenario = if outage { "outage" } else { "soak" };
    let exporter_bin = need("prometheus-node-exporter", "prometheus-node-exporter")?;
    let root = tempfile::tempdir()?;
    let root = root.path();
    std::fs::create_dir_all(root.join("logs"))?;
    let client = reqwest::Client::new();
    let (_exporters, targets) = start_node_exporters(&exporter_bin, options.exporters, root, &client).await?;
    let mut d = Deployment::start(root, options, &targets, !outage).await?;
    let since = unix_secs();
    let (written, stop) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicBool::new(false)));
    let writer = {
        let (dir, written, stop, rate) = (root.join("logs"), written.clone(), stop.clone(), options.rate);
        std::thread::spawn(move || write_lines(dir, rate, written, stop))
    };
    eprintln!(
        "{scenario}: {} lines/s, {} node_exporters every {SCRAPE_INTERVAL_SECONDS} s",
        options.rate, options.exporters
    );

    // Warm-up: the baseline latency of a dashboard refresh every second.
    let mut baseline = Vec::new();
    let warmup = Instant::now();
    while warmup.elapsed() < Duration::from_secs(options.warmup_seconds) {
        if let Some(latency) = d.dashboard_query().await {
            baseline.push(latency);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let mut figures: Vec<(String, Value)> = vec![
        ("lines_per_second".into(), Value::from(options.rate)),
        ("node_exporters".into(), Value::from(options.exporters)),
        ("warmup_seconds".into(), Value::from(options.warmup_seconds)),
    ];
    figures.extend(latency_figures("warmup_query", baseline));
    let mut cpu_start = (report::proc_cpu_seconds(&d.server.pid()), report::proc_cpu_seconds(&d.agent.pid()));

    if outage {
        eprintln!("outage: stopping the server for {} s", options.outage_seconds);
        let server_cpu_before_outage = report::proc_cpu_seconds(&d.server.pid()) - cpu_start.0;
        let written_at_stop = written.load(Ordering::SeqCst);
        d.server.terminate()?;
        let stopped = Instant::now();
        // Logs and samples wait in disk buffers of their own, each bounded by `--buffer-mib`.
        let (mut buffer_max, mut full_seconds, mut paused_seconds) = (0f64, 0u64, 0u64);
        let (mut samples_buffer_max, mut samples_full_seconds) = (0f64, 0u64);
        while stopped.elapsed() < Duration::from_secs(options.outage_seconds) {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let [bytes, full, paused, samples_bytes, samples_full] = d
                .agent_metrics(&[
                    "tarsier_collector_buffer_bytes",
                    "tarsier_collector_buffer_full",
                    "tarsier_collector_read_paused",
                    "tarsier_collector_samples_buffer_bytes",
                    "tarsier_collector_samples_buffer_full",
                ])
                .await;
            buffer_max = buffer_max.max(bytes);
            full_seconds += (full > 0.0) as u64;
            paused_seconds += (paused > 0.0) as u64;
            samples_buffer_max = samples_buffer_max.max(samples_bytes);
            samples_full_seconds += (samples_full > 0.0) as u64;
            if stopped.elapsed().as_secs().is_multiple_of(30) {
                eprintln!(
                    "outage: {:.0} s, log buffer {:.1} MiB, samples buffer {:.1} MiB",
                    stopped.elapsed().as_secs_f64(),
                    buffer_max / 1048576.0,
                    samples_buffer_max / 1048576.0
                );
            }
        }
        let written_at_restart = written.load(Ordering::SeqCst);
        let restarted = Instant::now();
        d.restart_server().await?;
        // The new process counts its CPU from zero: carry the old one's over.
        cpu_start.0 = -server_cpu_before_outage;
        let restart_seconds = restarted.elapsed().as_secs_f64();
        // Catch-up, with a dashboard refresh every second meanwhile.
        let caught_up = Arc::new(AtomicBool::new(false));
        let mut during = Vec::new();
        let catch_up = {
            let done = caught_up.clone();
            let wait = await_stored(&d, since, written_at_restart, Duration::from_secs(3600));
            async move {
                let seconds = wait.await;
                done.store(true, Ordering::SeqCst);
                seconds
            }
        };
        let probe = async {
            while !caught_up.load(Ordering::SeqCst) {
                match d.dashboard_query().await {
                    Some(latency) => during.push(latency),
                    None => during.push(Duration::from_secs(60)),
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        };
        let (catch_up_seconds, ()) = tokio::join!(catch_up, probe);
        let catch_up_seconds = catch_up_seconds?;
        eprintln!("outage: caught up {catch_up_seconds:.1} s after the restart");
        figures.extend([
            ("outage_seconds".into(), Value::from(options.outage_seconds)),
            ("lines_written_during_outage".into(), Value::from(written_at_restart - written_at_stop)),
            ("buffer_bound_mib".into(), Value::from(options.buffer_mib)),
            ("buffer_max_mib".into(), Value::from(round(buffer_max / 1048576.0))),
            ("buffer_full_seconds".into(), Value::from(full_seconds)),
            ("samples_buffer_max_mib".into(), Value::from(round(samples_buffer_max / 1048576.0))),
            ("samples_buffer_full_seconds".into(), Value::from(samples_full_seconds)),
            ("read_paused_seconds".into(), Value::from(paused_seconds)),
            ("server_restart_seconds".into(), Value::from(round(restart_seconds))),
            ("catch_up_seconds".into(), Value::from(round(catch_up_seconds))),
        ]);
        figures.extend(latency_figures("catch_up_query", during));
    } else {
        let soak = Instant::now();
        let (mut server_rss, mut agent_rss) = (Vec::new(), Vec::new());
        let (mut server_anon, mut agent_anon) = (Vec::new(), Vec::new());
        let mut next_sample = Instant::now();
        while soak.elapsed() < Duration::from_secs(options.soak_minutes * 60) {
            if Instant::now() >= next_sample {
                let t = soak.elapsed().as_secs_f64();
                server_rss.push((t, report::status_mib(&d.server.pid(), "VmRSS:")));
                agent_rss.push((t, report::status_mib(&d.agent.pid(), "VmRSS:")));
                server_anon.push((t, report::status_mib(&d.server.pid(), "RssAnon:")));
                agent_anon.push((t, report::status_mib(&d.agent.pid(), "RssAnon:")));
                next_sample += Duration::from_secs(10);
                if server_rss.len().is_multiple_of(30) {
                    eprintln!(
                        "soak: {:.0} min, RSS server {:.1} MiB, agent {:.1} MiB",
                        t / 60.0,
                        server_rss.last().unwrap().1,
                        agent_rss.last().unwrap().1
                    );
                }
            }
            d.dashboard_query().await;
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
        figures.push(("soak_minutes".into(), Value::from(options.soak_minutes)));
        figures.push(("tsdb_block_duration".into(), Value::from("10m")));
        let series = [
            ("server", &server_rss),
            ("agent", &agent_rss),
            ("server_anon", &server_anon),
            ("agent_anon", &agent_anon),
        ];
        for (name, points) in series {
            let first = points.first().map(|p| p.1).unwrap_or(0.0);
            let last = points.last().map(|p| p.1).unwrap_or(0.0);
            let max = points.iter().map(|p| p.1).fold(0.0, f64::max);
            figures.extend([
                (format!("{name}_rss_start_mib"), Value::from(round(first))),
                (format!("{name}_rss_end_mib"), Value::from(round(last))),
                (format!("{name}_rss_max_mib"), Value::from(round(max))),
                (format!("{name}_rss_slope_mib_per_hour"), Value::from(round(slope_mib_per_hour(points)))),
                (
                    format!("{name}_rss_second_half_slope_mib_per_hour"),
                    Value::from(round(slope_mib_per_hour(second_half(points)))),
                ),
            ]);
        }
    }
    let cpu = (
        report::proc_cpu_seconds(&d.server.pid()) - cpu_start.0,
        report::proc_cpu_seconds(&d.agent.pid()) - cpu_start.1,
    );

    // Delivery: every line once, no hole in the scraped series.
    stop.store(true, Ordering::SeqCst);
    writer.join().map_err(|_| anyhow::anyhow!("the writer thread panicked"))??;
    let total = written.load(Ordering::SeqCst);
    await_stored(&d, since, total, Duration::from_secs(600)).await?;
    // Anything more than `total` arriving late would be a duplicate: give it a few seconds.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let stored = d.stored_lines(since).await.unwrap_or(0);
    let run_seconds = (unix_secs() - since).ceil() as u64;
    let longest_gap = d.longest_up_gap(run_seconds).await?;
    figures.extend([
        ("lines_written".into(), Value::from(total)),
        ("lines_stored".into(), Value::from(stored)),
        ("duplicates".into(), Value::from(stored.saturating_sub(total))),
        (
            "agent_duplicates_after_restart".into(),
            Value::from(d.agent_metric("tarsier_collector_duplicates_after_restart").await as u64),
        ),
        ("scrape_interval_seconds".into(), Value::from(SCRAPE_INTERVAL_SECONDS)),
        ("longest_up_gap_seconds".into(), Value::from(round(longest_gap))),
        ("server_cpu_seconds".into(), Value::from(round(cpu.0))),
        ("agent_cpu_seconds".into(), Value::from(round(cpu.1))),
        ("server_peak_rss_mib".into(), Value::from(round(report::proc_peak_rss_mib(&d.server.pid())))),
        ("agent_peak_rss_mib".into(), Value::from(round(report::proc_peak_rss_mib(&d.agent.pid())))),
    ]);
    d.agent.terminate()?;
    d.server.terminate()?;
    let figures: Vec<(&str, Value)> = figures.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    report::emit(scenario, &figures, None);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_half_slope_sees_a_plateau_after_a_warm_up_climb() {
        // Climbs 60 MiB in the first 15 minutes, then flat: the whole run slopes up, its second
        // half does not.
        let points: Vec<(f64, f64)> =
            (0..=180).map(|i| (i as f64 * 10.0, if i < 90 { 40.0 + i as f64 * 60.0 / 90.0 } else { 100.0 })).collect();
        assert!(slope_mib_per_hour(&points) > 50.0);
        assert_eq!(second_half(&points).first().map(|p| p.0), Some(900.0));
        assert!(slope_mib_per_hour(second_half(&points)).abs() < 1e-9);
        assert!(second_half(&[]).is_empty());
    }

    #[test]
    fn metric_sum_adds_every_series_of_exactly_that_name() {
        let text = "# TYPE tarsier_collector_buffer_bytes gauge\n\
                    tarsier_collector_buffer_bytes 1024\n\
                    tarsier_collector_buffer_bytes_total 7\n\
                    tarsier_collector_samples_buffer_bytes{kind=\"a\"} 10\n\
                    tarsier_collector_samples_buffer_bytes{kind=\"b\"} 5\n";
        assert_eq!(metric_sum(text, "tarsier_collector_buffer_bytes"), 1024.0);
        assert_eq!(metric_sum(text, "tarsier_collector_samples_buffer_bytes"), 15.0);
        assert_eq!(metric_sum(text, "tarsier_collector_samples_buffer_full"), 0.0);
    }
}
