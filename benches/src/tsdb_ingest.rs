//! Scenario `tsdb-ingest`: a remote_write load generator (protobuf + snappy over HTTP, several
//! connections, many series with node_exporter-like values) against a Tarsier server started in
//! this process; then the WAL replay time of what was written, then the on-disk bytes per sample
//! once the same data is cut into Parquet blocks (series table included).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use model::{Labels, Sample, TimeSeries};
use serde_json::Value;

use crate::report::{self, round};

/// Scrape interval of the generated series.
const STEP_MS: i64 = 15_000;
/// Series per remote_write request and samples per series in it (Prometheus batches like this
/// when a shard has a backlog: 2,000 samples per request by default).
const SERIES_PER_REQUEST: usize = 100;
const SAMPLES_PER_SERIES: usize = 20;

fn labels(i: usize) -> Labels {
    const NAMES: [&str; 4] = ["node_cpu_seconds_total", "node_memory_MemFree_bytes", "node_load1", "node_network_up"];
    Labels::from_pairs([
        ("__name__", NAMES[i % 4]),
        ("instance", &format!("node-{:04}:9100", i / 400)),
        ("job", "node"),
        ("series", &format!("{}", i % 400 / 4)),
    ])
}

/// A node_exporter-like value: counters, byte gauges, small floats, constants.
fn value(i: usize, k: i64) -> f64 {
    let h = (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (k as u64).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    let noise = (h >> 40) % 1000;
    match i % 4 {
        0 => (k * 1500 + (i as i64 % 7) * 100) as f64 / 100.0 + (noise % 10) as f64 / 100.0,
        1 => (8_000_000_000u64 - (noise * 4096)) as f64,
        2 => noise as f64 / 100.0,
        _ => 1.0,
    }
}

fn batch(first_series: usize, round: i64, start_ms: i64) -> Vec<TimeSeries> {
    (first_series..first_series + SERIES_PER_REQUEST)
        .map(|i| {
            let samples = (0..SAMPLES_PER_SERIES as i64)
                .map(|j| {
                    let k = round * SAMPLES_PER_SERIES as i64 + j;
                    // A few ms of scrape jitter, as real scrapes have.
                    let jitter = ((i as i64 * 31 + k * 17) % 5) - 2;
                    Sample::new(start_ms + k * STEP_MS + jitter, value(i, k))
                })
                .collect();
            TimeSeries::new(labels(i), samples)
        })
        .collect()
}

pub async fn run(series: usize, samples: usize, connections: usize) -> anyhow::Result<()> {
    anyhow::ensure!(
        series.is_multiple_of(SERIES_PER_REQUEST * connections),
        "--series must be a multiple of 100 x connections"
    );
    let dir = tempfile::tempdir()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let mut config = tarsier::config::Config { data_dir: dir.path().to_path_buf(), ..Default::default() };
    config.server.listen = format!("127.0.0.1:{port}");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    // The server runs on its own runtime and threads, as it would in its own process.
    let server = std::thread::spawn(move || -> anyhow::Result<()> {
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
        runtime.block_on(tarsier::app::serve(tarsier::app::Role::Server, config, async move {
            let _ = stop_rx.await;
        }))
    });
    let client = reqwest::Client::builder().pool_max_idle_per_host(connections).build()?;
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !client.get(format!("{base}/-/ready")).send().await.is_ok_and(|r| r.status().is_success()) {
        anyhow::ensure!(Instant::now() < deadline, "the server did not become ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let rounds = (samples / (series * SAMPLES_PER_SERIES)).max(1) as i64;
    let start_ms = model::time::now_ms() - rounds * SAMPLES_PER_SERIES as i64 * STEP_MS;
    let per_connection = series / connections;
    let sent = Arc::new(AtomicU64::new(0));
    eprintln!(
        "tsdb-ingest: {series} series, {rounds} rounds of {SAMPLES_PER_SERIES} samples, {connections} connections"
    );
    let cpu_before = report::cpu_seconds();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..connections {
        let (client, url, sent) = (client.clone(), format!("{base}/api/v1/write"), sent.clone());
        tasks.push(tokio::spawn(async move {
            for round in 0..rounds {
                for first in (c * per_connection..(c + 1) * per_connection).step_by(SERIES_PER_REQUEST) {
                    let body = model::wire::remote_write::encode(&batch(first, round, start_ms));
                    let response = client
                        .post(&url)
                        .header("Content-Encoding", "snappy")
                        .header("Content-Type", "application/x-protobuf")
                        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
                        .body(body)
                        .send()
                        .await?;
                    anyhow::ensure!(response.status().is_success(), "remote_write answered {}", response.status());
                    sent.fetch_add((SERIES_PER_REQUEST * SAMPLES_PER_SERIES) as u64, Ordering::Relaxed);
                }
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu = report::cpu_seconds() - cpu_before;
    let total = sent.load(Ordering::Relaxed);
    let _ = stop_tx.send(());
    tokio::task::spawn_blocking(move || server.join())
        .await?
        .map_err(|_| anyhow::anyhow!("the server thread panicked"))??;

    // WAL replay of everything just written.
    let tsdb_dir = dir.path().join("tsdb");
    let replay_started = Instant::now();
    let db = tsdb::Tsdb::open(&tsdb_dir, tsdb::TsdbConfig::default())?;
    let replay_seconds = replay_started.elapsed().as_secs_f64();
    let tenant = model::TenantId::default_tenant();
    let stats = db.stats(&tenant);
    anyhow::ensure!(stats.head_samples == total, "replayed {} samples of {total}", stats.head_samples);
    let wal_bytes = stats.wal_bytes;
    drop(db);

    // The same data as blocks: small blocks so that the whole run is cut.
    let block_config = tsdb::TsdbConfig {
        block_duration: Duration::from_secs(600),
        out_of_order_window: Duration::ZERO,
        compaction: false,
        ..tsdb::TsdbConfig::default()
    };
    let db = tsdb::Tsdb::open(&tsdb_dir, block_config)?;
    db.maintain()?;
    let stats = db.stats(&tenant);
    let bytes_per_sample = stats.block_bytes as f64 / stats.block_samples.max(1) as f64;
    report::emit(
        "tsdb_remote_write_ingest",
        &[
            ("series", Value::from(series)),
            ("samples", Value::from(total)),
            ("connections", Value::from(connections)),
            ("samples_per_request", Value::from(SERIES_PER_REQUEST * SAMPLES_PER_SERIES)),
            ("seconds", Value::from(round(seconds))),
            ("samples_per_second", Value::from(round(total as f64 / seconds))),
            ("cpu_seconds", Value::from(round(cpu))),
            ("peak_rss_mib", Value::from(round(report::peak_rss_mib()))),
            ("wal_bytes_per_sample", Value::from(round(wal_bytes as f64 / total as f64))),
            ("wal_replay_seconds", Value::from(round(replay_seconds))),
            ("wal_replay_seconds_per_10m_samples", Value::from(round(replay_seconds * 1e7 / total as f64))),
            ("block_samples", Value::from(stats.block_samples)),
            ("block_bytes", Value::from(stats.block_bytes)),
            ("block_bytes_per_sample", Value::from(round(bytes_per_sample))),
        ],
        None,
    );
    Ok(())
}
