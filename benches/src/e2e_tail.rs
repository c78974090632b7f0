//! Scenario `e2e-tail`: a file of realistic log lines is tailed from its head by the collector,
//! shipped through the in-process sink into the indexer, and timed until the last line is
//! searchable. Measures the first path of every log line: tail → batch → WAL → tantivy → query.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::report::{self, round};

/// Deterministic xorshift so every run writes the same file.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

const LEVELS: [&str; 6] = ["info", "info", "info", "debug", "warn", "error"];
const PATHS: [&str; 6] =
    ["/api/v1/orders", "/api/v1/users", "/healthz", "/api/v1/payments", "/static/app.js", "/login"];
const MESSAGES: [&str; 6] = [
    "request completed",
    "cache miss for key",
    "upstream responded slowly",
    "retrying connection to database",
    "payment authorised",
    "user session refreshed",
];

/// Writes `lines` lines in a logfmt-ish shape like an application's; returns the bytes written.
pub fn write_log(path: &std::path::Path, lines: usize) -> std::io::Result<u64> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let mut bytes = 0u64;
    for i in 0..lines {
        let line = format!(
            "ts=2026-11-27T03:{:02}:{:02}.{:03}Z level={} msg=\"{}\" path={} status={} duration_ms={} request_id={:016x} seq={i}\n",
            (i / 60_000) % 60,
            (i / 1000) % 60,
            i % 1000,
            rng.pick(&LEVELS),
            rng.pick(&MESSAGES),
            rng.pick(&PATHS),
            [200, 200, 200, 201, 404, 500][(rng.next() % 6) as usize],
            rng.next() % 2000,
            rng.next(),
        );
        bytes += line.len() as u64;
        out.write_all(line.as_bytes())?;
    }
    out.flush()?;
    Ok(bytes)
}

pub async fn run(lines: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let log = dir.path().join("bench.log");
    eprintln!("e2e-tail: writing {lines} lines to {}", log.display());
    let bytes = write_log(&log, lines)?;
    let last_token = format!("seq={}", lines - 1);

    let data = dir.path().join("data");
    let indexer = Arc::new(indexer::Indexer::open(&data.join("indexer"), indexer::IndexerConfig::default())?);
    let tsdb = Arc::new(tsdb::Tsdb::open(&data.join("tsdb"), tsdb::TsdbConfig::default())?);
    let sink = Arc::new(tarsier::local_sink::LocalSink { indexer: indexer.clone(), tsdb });
    let mut config = collector::CollectorConfig::default();
    config.tail.include = vec![log.display().to_string()];

    let cpu_before = report::cpu_seconds();
    let started = Instant::now();
    let collector = collector::Collector::start(config, &data.join("collector"), sink.clone(), sink).await?;
    let tenant = model::TenantId::default_tenant();
    let request = indexer::LogQueryRequest {
        query: format!("{{job=\"varlogs\"}} |= \"{last_token}\""),
        start_ns: 0,
        end_ns: i64::MAX,
        limit: 1,
        direction: indexer::Direction::Backward,
    };
    let mut last_progress = Instant::now();
    loop {
        let ix = indexer.clone();
        let (req, t) = (request.clone(), tenant.clone());
        let found = tokio::task::spawn_blocking(move || ix.query(&t, &req)).await??;
        if serde_json::to_value(&found)?["result"].as_array().is_some_and(|r| !r.is_empty()) {
            break;
        }
        if last_progress.elapsed() > Duration::from_secs(5) {
            eprintln!("e2e-tail: {:.0}s, waiting for the last line", started.elapsed().as_secs_f64());
            last_progress = Instant::now();
        }
        anyhow::ensure!(started.elapsed() < Duration::from_secs(900), "the last line never became searchable");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = report::cpu_seconds() - cpu_before;
    collector.shutdown().await?;
    indexer.shutdown()?;
    let gb = bytes as f64 / 1e9;
    report::emit(
        "e2e_tail_to_searchable",
        &[
            ("lines", Value::from(lines)),
            ("bytes", Value::from(bytes)),
            ("seconds", Value::from(round(elapsed))),
            ("lines_per_second", Value::from(round(lines as f64 / elapsed))),
            ("mb_per_second", Value::from(round(bytes as f64 / 1e6 / elapsed))),
            ("cpu_seconds_per_gb", Value::from(round(cpu / gb))),
            ("peak_rss_mib", Value::from(round(report::peak_rss_mib()))),
        ],
        None,
    );
    Ok(())
}
