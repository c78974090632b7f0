//! Scenario `indexer-ingest`: several threads push batches of realistic lines straight into the
//! indexer's library API (WAL + tantivy, no HTTP, no tailing) until all are committed and
//! searchable. Isolates the store's ingest path from the collector: MB/s of raw line bytes,
//! MB/s per CPU-second (the per-core figure the goal is stated in), peak RSS.

use std::sync::Arc;
use std::time::Instant;

use model::{Labels, LogRecord, TenantId};
use serde_json::Value;

use crate::loggen::LogGen;
use crate::report::{self, round};

/// Knobs of the scenario.
pub struct Options {
    pub lines: usize,
    pub pushers: usize,
    pub batch: usize,
    pub writer_memory_bytes: Option<usize>,
    /// The store's settings.
    pub config: indexer::IndexerConfig,
}

pub fn run(opts: &Options) -> anyhow::Result<()> {
    anyhow::ensure!(opts.pushers > 0 && opts.batch > 0, "pushers and batch must be > 0");
    // Pre-generate every batch so the timed part is the indexer alone.
    let mut batches: Vec<Vec<Vec<LogRecord>>> = vec![Vec::new(); opts.pushers];
    let mut generator = LogGen::new(0x5eed)?;
    let now = model::time::now_ns();
    let mut bytes = 0u64;
    let mut made = 0usize;
    let pods: Vec<Labels> = (0..24)
        .map(|i| {
            Labels::from_pairs([
                ("namespace", if i % 3 == 0 { "shop" } else { "platform" }),
                ("pod", &format!("pod-{i}")),
                ("container", "app"),
                ("job", "bench"),
            ])
        })
        .collect();
    let mut b = 0;
    while made < opts.lines {
        let n = opts.batch.min(opts.lines - made);
        let labels = pods[b % pods.len()].clone();
        let batch: Vec<LogRecord> = (0..n)
            .map(|i| {
                let line = generator.line();
                bytes += line.len() as u64;
                // Spread over the last few minutes, in order within a stream.
                let ts = now - 300_000_000_000 + ((made + i) as i64) * 1000;
                LogRecord { timestamp_ns: ts, labels: labels.clone(), line }
            })
            .collect();
        batches[b % opts.pushers].push(batch);
        made += n;
        b += 1;
    }
    let last_line = batches.iter().flatten().flatten().max_by_key(|r| r.timestamp_ns).map(|r| r.line.clone());

    let dir = tempfile::tempdir()?;
    let mut config = opts.config.clone();
    if let Some(m) = opts.writer_memory_bytes {
        config.writer_memory_bytes = m;
    }
    let baseline_rss = report::rss_mib();
    let ix = Arc::new(indexer::Indexer::open(dir.path(), config)?);
    let tenant = TenantId::default_tenant();
    eprintln!("indexer-ingest: {made} lines, {bytes} bytes, {} pushers, batch {}", opts.pushers, opts.batch);

    let cpu_before = report::cpu_seconds();
    let started = Instant::now();
    let mut ack_ms = std::thread::scope(|scope| -> anyhow::Result<Vec<f64>> {
        let handles: Vec<_> = batches
            .into_iter()
            .map(|mine| {
                let (ix, tenant) = (&ix, &tenant);
                scope.spawn(move || -> anyhow::Result<Vec<f64>> {
                    let mut latencies = Vec::with_capacity(mine.len());
                    for batch in mine {
                        let n = batch.len();
                        let sent = Instant::now();
                        let receipt = ix.append(tenant, batch)?;
                        latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
                        anyhow::ensure!(receipt.accepted == n, "rejected: {:?}", receipt.rejected.first());
                    }
                    Ok(latencies)
                })
            })
            .collect();
        let mut all = Vec::new();
        for h in handles {
            all.extend(h.join().map_err(|_| anyhow::anyhow!("pusher panicked"))??);
        }
        Ok(all)
    })?;
    ack_ms.sort_by(f64::total_cmp);
    let pct = |q: f64| report::percentile(&ack_ms, q);
    let acked = started.elapsed().as_secs_f64();
    ix.commit()?;
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = report::cpu_seconds() - cpu_before;

    if let Some(line) = last_line {
        let token = line.rsplit(' ').next().unwrap_or_default().to_string();
        let req = indexer::LogQueryRequest {
            query: format!("{{job=\"bench\"}} |= \"{token}\""),
            start_ns: 0,
            end_ns: i64::MAX,
            limit: 10,
            direction: indexer::Direction::Backward,
        };
        let resp = serde_json::to_value(ix.query(&tenant, &req)?)?;
        anyhow::ensure!(
            resp["result"].as_array().is_some_and(|r| !r.is_empty()),
            "the last line is not searchable after the commit"
        );
    }
    ix.shutdown()?;
    // Index and stored lines; the WAL's last segment is left for the next start to reuse.
    let disk: u64 = ix.partition_stats().iter().map(|p| p.disk_bytes).sum();
    let mb = bytes as f64 / 1e6;
    report::emit(
        "indexer_ingest",
        &[
            ("lines", Value::from(made)),
            ("bytes", Value::from(bytes)),
            ("pushers", Value::from(opts.pushers)),
            ("batch", Value::from(opts.batch)),
            ("seconds_to_ack", Value::from(round(acked))),
            ("seconds_to_searchable", Value::from(round(elapsed))),
            ("mb_per_second", Value::from(round(mb / elapsed))),
            ("cpu_seconds", Value::from(round(cpu))),
            ("mb_per_cpu_second", Value::from(round(mb / cpu))),
            ("ack_ms_p50", Value::from(round(pct(0.5)))),
            ("ack_ms_p99", Value::from(round(pct(0.99)))),
            ("ack_ms_max", Value::from(round(pct(1.0)))),
            ("disk_bytes_ratio", Value::from(round(disk as f64 / bytes as f64))),
            ("peak_rss_mib", Value::from(round(report::peak_rss_mib()))),
            // RSS before the indexer opened: the pre-generated batches the pushers hold.
            ("baseline_rss_mib", Value::from(round(baseline_rss))),
        ],
        None,
    );
    Ok(())
}
