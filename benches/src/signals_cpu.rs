//! Scenario `signals-cpu`: what deriving the autoscaling signals (issue #9 point 4: lines, error
//! lines and bytes per namespace/workload/pod, `collector.signals`) costs the collector. Kubelet
//! pod log files of many pods get CRI lines at a fixed rate (about one in ten an `ERROR`, so the
//! error check runs both ways) while a collector tails them into a sink that acknowledges at once;
//! the same run is made with the signals off and on, and each reports the process's CPU per line.
//! The difference is the signals' cost per line (the tail path, the writer and the shipper are in
//! both runs alike).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use collector::{LogSink, MetricSink, SinkError};
use futures::future::BoxFuture;
use model::{LogRecord, LogStream, TenantId, TimeSeries};
use serde_json::Value;

use crate::report;

/// Namespaces × Deployments per namespace × pods per Deployment: 500 pods, 50 workloads.
const NAMESPACES: usize = 10;
const WORKLOADS: usize = 5;
const PODS: usize = 10;
/// The writer's tick: each writes `rate / 100` lines, spread over a slice of the files.
const TICK: Duration = Duration::from_millis(10);
/// Files written per tick (rotating), so a tick is a few syscalls, not one per pod.
const FILES_PER_TICK: usize = 50;

/// Acknowledges every batch at once, counting log lines and signal samples.
#[derive(Default)]
struct CountingSink {
    lines: AtomicU64,
    samples: AtomicU64,
}

impl LogSink for CountingSink {
    fn push_logs(&self, _tenant: TenantId, records: Vec<LogRecord>) -> BoxFuture<'static, Result<(), SinkError>> {
        self.lines.fetch_add(records.len() as u64, Ordering::Relaxed);
        Box::pin(async { Ok(()) })
    }

    fn push_streams(
        &self,
        _tenant: TenantId,
        streams: Arc<Vec<LogStream>>,
    ) -> BoxFuture<'static, Result<(), SinkError>> {
        let lines: usize = streams.iter().map(|s| s.entries.len()).sum();
        self.lines.fetch_add(lines as u64, Ordering::Relaxed);
        Box::pin(async { Ok(()) })
    }
}

impl MetricSink for CountingSink {
    fn push_samples(&self, _tenant: TenantId, series: Vec<TimeSeries>) -> BoxFuture<'static, Result<(), SinkError>> {
        self.samples.fetch_add(series.iter().map(|s| s.samples.len() as u64).sum(), Ordering::Relaxed);
        Box::pin(async { Ok(()) })
    }
}

/// One log file per pod, kubelet's layout: `pods/<ns>_<pod>_<uid>/app/0.log`.
fn pod_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for ns in 0..NAMESPACES {
        for w in 0..WORKLOADS {
            for p in 0..PODS {
                // A Deployment's pod name: ReplicaSet hash and a suffix from kube's alphabet.
                let letter = |i: usize| char::from(b"bcdfghjklm"[i % 10]);
                let pod = format!("svc{w}-7d9f8b6c5d-xz{}{}{}", letter(p / 100), letter(p / 10), letter(p));
                let container = dir.join(format!("pods/team{ns}_{pod}_uid-{ns}-{w}-{p}/app"));
                std::fs::create_dir_all(&container)?;
                files.push(container.join("0.log"));
            }
        }
    }
    Ok(files)
}

/// Appends `rate` lines per second for `seconds` over `files`; returns the lines written.
fn write_at_rate(files: &[PathBuf], rate: u64, seconds: u64) -> anyhow::Result<u64> {
    let mut handles: Vec<std::fs::File> = files
        .iter()
        .map(|f| std::fs::OpenOptions::new().create(true).append(true).open(f))
        .collect::<Result<_, _>>()?;
    let per_tick = (rate * TICK.as_millis() as u64 / 1000).max(1);
    let ticks = seconds * 1000 / TICK.as_millis() as u64;
    let (started, mut written, mut next_file) = (Instant::now(), 0u64, 0usize);
    let mut buf = String::new();
    for tick in 0..ticks {
        let per_file = per_tick.div_ceil(FILES_PER_TICK as u64);
        let mut left = per_tick;
        for _ in 0..FILES_PER_TICK {
            buf.clear();
            for _ in 0..per_file.min(left) {
                let level = if written.is_multiple_of(10) { "ERROR" } else { "INFO" };
                buf.push_str(&format!(
                    "2026-12-07T06:00:00.000000000Z stdout F {level} request handled path=/api/v1/items/{written} \
                     status=200 duration_ms=12\n"
                ));
                written += 1;
                left -= 1;
            }
            handles[next_file].write_all(buf.as_bytes())?;
            next_file = (next_file + 1) % handles.len();
        }
        let due = started + TICK * (tick as u32 + 1);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
    }
    Ok(written)
}

/// One run: the collector over fresh files at `rate` lines/s for `seconds`; CPU-ns per line.
async fn measure(rate: u64, seconds: u64, signals: bool) -> anyhow::Result<(f64, u64, u64)> {
    let dir = tempfile::tempdir()?;
    let files = pod_files(dir.path())?;
    let sink = Arc::new(CountingSink::default());
    let mut config = collector::CollectorConfig::default();
    config.tail.include = vec![format!("{}/pods/*/*/*.log", dir.path().display())];
    config.tail.format = collector::LogFormat::Cri;
    config.tail.max_open_files = files.len();
    config.signals.enabled = signals;
    config.signals.interval = Duration::from_secs(1);
    let cpu_before = report::cpu_seconds();
    let collector = collector::Collector::start(config, &dir.path().join("state"), sink.clone(), sink.clone()).await?;
    let writer = std::thread::spawn(move || write_at_rate(&files, rate, seconds));
    let written =
        tokio::task::spawn_blocking(move || writer.join()).await?.map_err(|_| anyhow::anyhow!("writer"))??;
    let deadline = Instant::now() + Duration::from_secs(120);
    while sink.lines.load(Ordering::Relaxed) < written {
        anyhow::ensure!(Instant::now() < deadline, "the collector did not deliver every line");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let cpu = report::cpu_seconds() - cpu_before;
    collector.shutdown().await?;
    let samples = sink.samples.load(Ordering::Relaxed);
    anyhow::ensure!(!signals || samples > 0, "signals on but no signal sample shipped");
    Ok((cpu * 1e9 / written as f64, written, samples))
}

pub async fn run(rates: &[u64], seconds: u64) -> anyhow::Result<()> {
    for &rate in rates {
        eprintln!(
            "signals-cpu: {rate} lines/s over {} pods for {seconds}s, signals off then on",
            NAMESPACES * WORKLOADS * PODS
        );
        let (off, lines, _) = measure(rate, seconds, false).await?;
        let (on, _, samples) = measure(rate, seconds, true).await?;
        report::emit(
            "collector_signals_cpu",
            &[
                ("lines_per_second", Value::from(rate)),
                ("lines", Value::from(lines)),
                ("pods", Value::from(NAMESPACES * WORKLOADS * PODS)),
                ("workloads", Value::from(NAMESPACES * WORKLOADS)),
                ("cpu_ns_per_line_signals_off", Value::from(report::round(off))),
                ("cpu_ns_per_line_signals_on", Value::from(report::round(on))),
                ("signals_ns_per_line", Value::from(report::round(on - off))),
                ("signal_samples_shipped", Value::from(samples)),
            ],
            None,
        );
    }
    Ok(())
}
