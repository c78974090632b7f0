//! Scenario `agent-ship`: the collector's full path as deployed, tail -> ship to the indexer, as
//! issue #3 measures it (goal: <= 10 CPU-seconds per GB in the collector). The same kubelet-style
//! CRI files as `collector-tail` are tailed from their head by a `tarsier agent` process shipping
//! to a `tarsier server` process (the agent's default Tarsier sink: Loki push protobuf, WAL fsync
//! before the acknowledgement), so the agent's CPU is its own and the server's is counted apart
//! (`e2e-tail` runs both in one process). Done when the agent's `tarsier_collector_lines_sent`
//! (acknowledged records) reaches the records written; then the server's stored count is checked
//! with a LogQL `count_over_time`.
//!
//! Needs the release `tarsier` binary beside `tarsier-bench`.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::collector_tail::{corpus_messages, write_files};
use crate::procs::{Proc, free_port, wait_ready};
use crate::report::{self, round};
use crate::steady::metric_sum;

/// Issue #3's budget for the full path, CPU-seconds of the collector per GB tailed.
const GOAL_CPU_SECONDS_PER_GB: f64 = 10.0;

/// Scrapes `name` (summed over its series) from a `/metrics` page; 0 when it does not answer.
async fn metric(client: &reqwest::Client, base: &str, name: &str) -> f64 {
    match client.get(format!("{base}/metrics")).send().await {
        Ok(response) => metric_sum(&response.text().await.unwrap_or_default(), name),
        Err(_) => 0.0,
    }
}

/// Records stored under `{namespace="bench"}` today, by the server's own count.
async fn stored_records(client: &reqwest::Client, base: &str) -> anyhow::Result<u64> {
    let query = "sum(count_over_time({namespace=\"bench\"}[2d]))";
    let body: Value =
        client.get(format!("{base}/loki/api/v1/query")).query(&[("query", query)]).send().await?.json().await?;
    let value = body["data"]["result"].get(0).and_then(|r| r["value"][1].as_str()).unwrap_or("0");
    Ok(value.parse::<f64>().unwrap_or(0.0) as u64)
}

pub async fn run(mb: usize, corpora: &Path) -> anyhow::Result<()> {
    let tarsier = std::env::current_exe()?.with_file_name("tarsier");
    anyhow::ensure!(
        tarsier.exists(),
        "{} is missing: cargo build --release -p tarsier -p tarsier-benches",
        tarsier.display()
    );
    let root = tempfile::tempdir()?;
    let root = root.path();
    let messages = corpus_messages(corpora)?;
    eprintln!("agent-ship: writing {mb} MB of CRI lines under {}", root.display());
    // Today's date: the server accepts entries within `out_of_order_window` (7 days) of now.
    let day = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let (_files, bytes, records) = write_files(&root.join("logs"), &messages, mb, &day)?;

    let (server_port, agent_port) = (free_port()?, free_port()?);
    let server_yaml = format!(
        "data_dir: {}\nlog:\n  level: warn\nserver:\n  listen: 127.0.0.1:{server_port}\n",
        root.join("server-data").display()
    );
    std::fs::write(root.join("server.yaml"), server_yaml)?;
    let agent_yaml = format!(
        "data_dir: {}\nlog:\n  level: warn\nserver:\n  listen: 127.0.0.1:{agent_port}\ncollector:\n  tail:\n    \
         include: ['{}/pods/*/*/*.log']\n    format: cri\nagent:\n  server_url: http://127.0.0.1:{server_port}\n",
        root.join("agent-data").display(),
        root.join("logs").display(),
    );
    std::fs::write(root.join("agent.yaml"), agent_yaml)?;
    let client = reqwest::Client::builder().timeout(Duration::from_secs(300)).build()?;
    let config_arg =
        |name: &str| vec![name.to_string(), "--config".into(), root.join(format!("{name}.yaml")).display().to_string()];
    let server = Proc::start("tarsier server", &tarsier, &config_arg("server"), &root.join("server.log"))?;
    let server_base = format!("http://127.0.0.1:{server_port}");
    wait_ready(&client, "tarsier server", &format!("{server_base}/-/ready")).await?;
    let server_cpu_before = report::proc_cpu_seconds(&server.pid());

    // The agent starts reading at once: its CPU from its start, start-up included.
    let started = Instant::now();
    let agent = Proc::start("tarsier agent", &tarsier, &config_arg("agent"), &root.join("agent.log"))?;
    let agent_base = format!("http://127.0.0.1:{agent_port}");
    let mut last_report = Instant::now();
    loop {
        let sent = metric(&client, &agent_base, "tarsier_collector_lines_sent_total").await as u64;
        if sent >= records {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(1800),
            "the agent acknowledged {sent} of {records} records in 30 minutes (logs in {})",
            root.display()
        );
        if last_report.elapsed() > Duration::from_secs(10) {
            eprintln!("  {sent} of {records} records acknowledged");
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let agent_cpu = report::proc_cpu_seconds(&agent.pid());
    let agent_rss = report::proc_peak_rss_mib(&agent.pid());
    let dropped = metric(&client, &agent_base, "tarsier_collector_dropped_total").await;

    // The server indexes behind its WAL acknowledgement: its CPU is read once it stops moving.
    let mut server_cpu = report::proc_cpu_seconds(&server.pid());
    let settle = Instant::now();
    while settle.elapsed() < Duration::from_secs(120) {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let now = report::proc_cpu_seconds(&server.pid());
        let busy = now - server_cpu > 0.1;
        server_cpu = now;
        if !busy {
            break;
        }
    }
    let server_cpu = server_cpu - server_cpu_before;
    let server_rss = report::proc_peak_rss_mib(&server.pid());
    let stored = stored_records(&client, &server_base).await?;
    drop(agent);
    drop(server);
    anyhow::ensure!(dropped == 0.0, "the agent dropped {dropped} records (logs in {})", root.display());
    anyhow::ensure!(stored == records, "the server stores {stored} of {records} records");

    let gb = bytes as f64 / 1e9;
    let agent_per_gb = agent_cpu / gb;
    report::emit(
        "agent_ship_cri_to_server",
        &[
            ("bytes", Value::from(bytes)),
            ("records", Value::from(records)),
            ("seconds", Value::from(round(elapsed))),
            ("lines_per_second", Value::from(round(records as f64 / elapsed))),
            ("agent_cpu_seconds", Value::from(round(agent_cpu))),
            ("agent_cpu_seconds_per_gb", Value::from(round(agent_per_gb))),
            ("agent_peak_rss_mib", Value::from(round(agent_rss))),
            ("server_cpu_seconds", Value::from(round(server_cpu))),
            ("server_cpu_seconds_per_gb", Value::from(round(server_cpu / gb))),
            ("server_peak_rss_mib", Value::from(round(server_rss))),
            ("stored_records", Value::from(stored)),
            ("load_average_1m", Value::from(load_average())),
        ],
        // The "peer" is the goal: ratio = goal / agent's figure, >= 1 when met.
        Some((
            "goal: 10 CPU-s/GB in the agent",
            GOAL_CPU_SECONDS_PER_GB,
            round(GOAL_CPU_SECONDS_PER_GB / agent_per_gb),
        )),
    );
    Ok(())
}

/// The 1-minute load average (the machine is shared: figures are read against it).
fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg").ok().and_then(|l| l.split_whitespace().next()?.parse().ok()).unwrap_or(0.0)
}
