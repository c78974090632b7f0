//! Scenario `collector-tail`: the CPU cost of the collector's tail path alone. Kubelet-style CRI
//! files (messages replicated from the container logs in `../shared/corpora/logs`, some split
//! into `P`/`F` partials) are tailed from their head, parsed, partials joined, and handed to a
//! sink that acknowledges at once, so neither storage nor the network is measured. The peer is
//! Fluent Bit's tail input with its `cri` parser to its null output, when it is installed.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use collector::{LogSink, MetricSink, SinkError};
use futures::future::BoxFuture;
use model::{LogRecord, LogStream, TenantId, TimeSeries};
use serde_json::Value;

use crate::report::{self, round};

/// Files the lines are spread over (one per container, as on a node).
const FILES: usize = 4;

/// Acknowledges every batch at once and counts what it got.
#[derive(Default)]
struct NullSink {
    lines: AtomicU64,
}

impl LogSink for NullSink {
    fn push_logs(&self, _tenant: TenantId, records: Vec<LogRecord>) -> BoxFuture<'static, Result<(), SinkError>> {
        self.lines.fetch_add(records.len() as u64, Ordering::Relaxed);
        drop(records);
        Box::pin(async { Ok(()) })
    }

    /// Takes the batch as the collector hands it over (streams), as the HTTP sink does.
    fn push_streams(
        &self,
        _tenant: TenantId,
        streams: Arc<Vec<LogStream>>,
    ) -> BoxFuture<'static, Result<(), SinkError>> {
        let lines: usize = streams.iter().map(|s| s.entries.len()).sum();
        self.lines.fetch_add(lines as u64, Ordering::Relaxed);
        drop(streams);
        Box::pin(async { Ok(()) })
    }
}

impl MetricSink for NullSink {
    fn push_samples(&self, _tenant: TenantId, _series: Vec<TimeSeries>) -> BoxFuture<'static, Result<(), SinkError>> {
        Box::pin(async { Ok(()) })
    }
}

/// Application messages found in the corpus' container and access logs.
pub(crate) fn corpus_messages(root: &Path) -> anyhow::Result<Vec<String>> {
    let mut messages = Vec::new();
    let mut stack = vec![root.join("logs/kubernetes"), root.join("logs/nginx")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.to_string_lossy().ends_with(".out") {
                continue;
            }
            for line in std::fs::read_to_string(&path).unwrap_or_default().lines() {
                messages.push(message_of(line));
            }
        }
    }
    messages.retain(|m| !m.is_empty() && !m.contains('\n'));
    anyhow::ensure!(messages.len() > 20, "too few corpus messages under {}", root.display());
    Ok(messages)
}

/// The application's text of a runtime-framed line (docker json `log`, CRI message), else the line.
fn message_of(line: &str) -> String {
    if let Ok(Value::Object(doc)) = serde_json::from_str::<Value>(line)
        && let Some(Value::String(log)) = doc.get("log")
    {
        return log.trim_end_matches('\n').to_string();
    }
    let mut parts = line.splitn(4, ' ');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(t), Some("stdout" | "stderr"), Some(_), Some(msg)) if t.contains('T') => msg.to_string(),
        _ => line.to_string(),
    }
}

/// Writes about `mb` MB of CRI lines over [`FILES`] kubelet pod log files under `dir`, timestamped
/// from midnight of `day` (`YYYY-MM-DD`) on at 10,000 records a second; returns the files, the
/// bytes written and the number of records (a `P...F` run is one record).
pub(crate) fn write_files(
    dir: &Path,
    messages: &[String],
    mb: usize,
    day: &str,
) -> anyhow::Result<(Vec<PathBuf>, u64, u64)> {
    let mut files = Vec::new();
    let mut writers = Vec::new();
    for i in 0..FILES {
        let container = dir.join(format!("pods/bench_app-{i}_0000-{i}/app"));
        std::fs::create_dir_all(&container)?;
        let path = container.join("0.log");
        writers.push(std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&path)?));
        files.push(path);
    }
    let target = (mb as u64) * 1_000_000;
    let (mut bytes, mut records, mut i) = (0u64, 0u64, 0u64);
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    while bytes < target {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let message = &messages[(rng % messages.len() as u64) as usize];
        let stream = if rng.is_multiple_of(10) { "stderr" } else { "stdout" };
        let (secs, nanos) = (i / 10_000, (i % 10_000) * 100_000 + rng % 1000);
        let time = format!("{day}T{:02}:{:02}:{:02}.{nanos:09}Z", (secs / 3600) % 24, (secs / 60) % 60, secs % 60);
        let w = &mut writers[(i % FILES as u64) as usize];
        let before = bytes;
        if rng.is_multiple_of(33) && message.len() > 8 {
            // The runtime split this one: two partials and the final piece.
            let (a, rest) = message.split_at(char_boundary_at_or_before(message, message.len() / 3));
            let (b, c) = rest.split_at(char_boundary_at_or_before(rest, rest.len() / 2));
            for (tag, piece) in [("P", a), ("P", b), ("F", c)] {
                let line = format!("{time} {stream} {tag} {piece}\n");
                bytes += line.len() as u64;
                w.write_all(line.as_bytes())?;
            }
        } else {
            let line = format!("{time} {stream} F {message} seq={i}\n");
            bytes += line.len() as u64;
            w.write_all(line.as_bytes())?;
        }
        debug_assert!(bytes > before);
        records += 1;
        i += 1;
    }
    for mut w in writers {
        w.flush()?;
    }
    Ok((files, bytes, records))
}

/// Resets the peak RSS counter so the file generation does not count.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

pub async fn run(mb: usize, corpora: &Path) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let messages = corpus_messages(corpora)?;
    eprintln!(
        "collector-tail: writing {mb} MB of CRI lines ({} corpus messages) under {}",
        messages.len(),
        dir.path().display()
    );
    let (files, bytes, records) = write_files(dir.path(), &messages, mb, "2026-11-27")?;
    let peer = fluent_bit(&files, bytes, records);

    let sink = Arc::new(NullSink::default());
    let mut config = collector::CollectorConfig::default();
    config.tail.include = vec![format!("{}/pods/*/*/*.log", dir.path().display())];
    config.tail.format = collector::LogFormat::Cri;
    reset_peak_rss();
    let cpu_before = report::cpu_seconds();
    let started = Instant::now();
    let collector = collector::Collector::start(config, &dir.path().join("state"), sink.clone(), sink.clone()).await?;
    while sink.lines.load(Ordering::Relaxed) < records {
        anyhow::ensure!(started.elapsed() < Duration::from_secs(900), "the collector never delivered every line");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = report::cpu_seconds() - cpu_before;
    let rss = report::peak_rss_mib();
    collector.shutdown().await?;
    anyhow::ensure!(sink.lines.load(Ordering::Relaxed) == records, "more records than written");
    let cpu_per_gb = cpu / (bytes as f64 / 1e9);
    let peer = peer.map(|(name, peer_cpu_per_gb)| (name, round(peer_cpu_per_gb), round(peer_cpu_per_gb / cpu_per_gb)));
    report::emit(
        "collector_tail_cri_to_null",
        &[
            ("bytes", Value::from(bytes)),
            ("records", Value::from(records)),
            ("files", Value::from(FILES)),
            ("seconds", Value::from(round(elapsed))),
            ("lines_per_second", Value::from(round(records as f64 / elapsed))),
            ("cpu_seconds", Value::from(round(cpu))),
            ("cpu_seconds_per_gb", Value::from(round(cpu_per_gb))),
            ("peak_rss_mib", Value::from(round(rss))),
        ],
        peer.as_ref().map(|(n, f, r)| (n.as_str(), *f, *r)),
    );
    if peer.is_none() {
        eprintln!("collector-tail: fluent-bit is not installed (not in Debian's registry), no peer ratio");
    }
    Ok(())
}

/// Runs Fluent Bit (tail, `cri` multiline parser, null output) over the same files when it is on
/// PATH; returns its CPU-seconds per GB. The ratio printed is peer / ours (higher is better).
fn fluent_bit(files: &[PathBuf], bytes: u64, records: u64) -> Option<(String, f64)> {
    let exe = ["fluent-bit", "/opt/fluent-bit/bin/fluent-bit"]
        .into_iter()
        .find(|c| std::process::Command::new(c).arg("--version").output().is_ok_and(|o| o.status.success()))?;
    let glob = files[0].parent()?.parent()?.parent()?.join("*/*/*.log");
    let db = files[0].parent()?.parent()?.parent()?.parent()?.join("fluent-bit.db");
    let mut child = std::process::Command::new(exe)
        .args(["-q", "-i", "tail", "-p"])
        .arg(format!("path={}", glob.display()))
        .args(["-p", "read_from_head=true", "-p", "multiline.parser=cri", "-p"])
        .arg(format!("db={}", db.display()))
        .args(["-o", "null"])
        .spawn()
        .ok()?;
    let started = Instant::now();
    // Done when every file's offset in the database reached its size, or CPU stopped moving.
    let mut last = (0.0, Instant::now());
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let cpu = report::proc_cpu_seconds(&child.id().to_string());
        if cpu > last.0 {
            last = (cpu, Instant::now());
        } else if last.1.elapsed() > Duration::from_secs(2) || started.elapsed() > Duration::from_secs(900) {
            break;
        }
    }
    let cpu = last.0;
    let _ = child.kill();
    let _ = child.wait();
    eprintln!("collector-tail: fluent-bit used {cpu:.2} CPU-s for {records} records");
    Some(("fluent-bit tail cri -> null".to_string(), cpu / (bytes as f64 / 1e9)))
}

/// The largest char boundary of `s` at or before `i` (`str::floor_char_boundary` needs Rust 1.91).
fn char_boundary_at_or_before(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}
