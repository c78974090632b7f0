//! Crash loop (issue #10 point 1): `tarsier agent` tails a log file a writer thread appends
//! numbered lines to (rotating it kubelet-style now and then) and scrapes a counter that rises at
//! every scrape, shipping both to `tarsier server`; meanwhile the harness `kill -9`s the agent or the
//! server at random moments (seeded, the seed is printed) and restarts it. At the end, once
//! everything drained: every written line is queryable, duplicates are counted and bounded, and
//! the scraped counter's stored values strictly rise, every value served being stored unless the
//! agent that scraped it was killed before shipping it.
//!
//! CI runs 12 kills; the long form is by hand:
//! `TARSIER_CRASH_LOOP_KILLS=60 cargo test --workspace --test crash_loop -- --nocapture`
//! (`TARSIER_CRASH_LOOP_SEED` replays a run's kill schedule).

mod support;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use support::*;

/// Lines per batch and batches in flight the agent is configured with: what one kill can replay.
const BATCH_MAX_LINES: u64 = 100;
const MAX_IN_FLIGHT_BATCHES: u64 = 8;
/// The collector saves acknowledged read positions this often (`collector::CHECKPOINT_INTERVAL`).
const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);
const SCRAPE_INTERVAL: Duration = Duration::from_millis(500);
/// Lines the writer appends every 10 ms.
const LINES_PER_TICK: u64 = 2;
/// The writer renames the file away (as the kubelet does) after this many lines.
const ROTATE_EVERY: u64 = 4000;

/// splitmix64: a seeded, reproducible kill schedule without another dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn millis(&mut self, low: u64, high: u64) -> Duration {
        Duration::from_millis(low + self.next() % (high - low))
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| v.parse().unwrap_or_else(|_| panic!("{name}={v:?} is not a number")))
}

fn unix_secs(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

fn server_config(dir: &Path, listen: &str) -> PathBuf {
    let path = dir.join("server.yaml");
    let yaml = format!(
        "data_dir: {data}\nserver:\n  listen: {listen}\n  max_log_query_limit: 10000000\nindexer:\n  commit_interval: 200ms\n  max_query_lines: 10000000\n",
        data = dir.join("server-data").display(),
    );
    std::fs::write(&path, yaml).unwrap();
    path
}

fn agent_config(dir: &Path, listen: &str, log_dir: &Path, target: &str, server: &str) -> PathBuf {
    let path = dir.join("agent.yaml");
    // `*.log*` also matches the rotated `app.log.<n>` files, so a restarted agent finds a file it
    // had not finished before the rename (as the kubelet's `0.log.<timestamp>` would need).
    let yaml = format!(
        "data_dir: {data}\nserver:\n  listen: {listen}\ncollector:\n  tail:\n    include: ['{logs}/*.log*']\n    \
         rescan_interval: 200ms\n    labels:\n      job: crash\n  global:\n    scrape_interval: {scrape}ms\n    \
         scrape_timeout: {scrape}ms\n  shipping:\n    batch_max_lines: {BATCH_MAX_LINES}\n    batch_max_wait: 50ms\n    \
         retry_initial_backoff: 50ms\n    retry_max_backoff: 500ms\n    max_in_flight_batches: {MAX_IN_FLIGHT_BATCHES}\n  \
         scrape_configs:\n  - job_name: crash\n    static_configs:\n    - targets: ['{target}']\n\
         agent:\n  server_url: http://{server}\n  request_timeout: 5s\n",
        data = dir.join("agent-data").display(),
        logs = log_dir.display(),
        scrape = SCRAPE_INTERVAL.as_millis(),
    );
    std::fs::write(&path, yaml).unwrap();
    path
}

/// When each value of the counter was served: `served[n - 1]` is the unix time of value `n`.
type ScrapeLog = Arc<std::sync::Mutex<Vec<f64>>>;

/// Serves `crash_scrapes_total`, one more at every scrape; returns `host:port` and the scrape log.
async fn serve_rising_counter() -> (String, ScrapeLog) {
    let served = ScrapeLog::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let log = served.clone();
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let n = {
                let mut served = log.lock().unwrap();
                served.push(unix_secs(SystemTime::now()));
                served.len()
            };
            async move { format!("# TYPE crash_scrapes_total counter\ncrash_scrapes_total {n}\n") }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr.to_string(), served)
}

/// Appends `line <n> ...` lines until `stop`; renames the file away every [`ROTATE_EVERY`] lines
/// and reopens it, as a container runtime does when the kubelet rotates. Returns lines written.
fn write_lines(dir: PathBuf, stop: Arc<AtomicBool>) -> u64 {
    let path = dir.join("app.log");
    let open = || std::fs::OpenOptions::new().create(true).append(true).open(&path).unwrap();
    let mut file = open();
    let mut n = 0u64;
    while !stop.load(Ordering::SeqCst) {
        for _ in 0..LINES_PER_TICK {
            // One write per line: a reader never sees half a line.
            file.write_all(format!("line {n:08} crash loop filler to give the line some body\n").as_bytes()).unwrap();
            n += 1;
            if n.is_multiple_of(ROTATE_EVERY) {
                std::fs::rename(&path, dir.join(format!("app.log.{}", n / ROTATE_EVERY))).unwrap();
                file = open();
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    n
}

/// `tarsier_collector_duplicates_after_restart` of a running agent: lines it sent again at its
/// start because they had been sent before (the agent saves its sent offsets before each batch
/// goes out, so this includes lines acknowledged after its last checkpoint save).
async fn agent_resent(client: &reqwest::Client, base: &str) -> u64 {
    let text = client.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
    text.lines()
        .filter(|l| l.starts_with("tarsier_collector_duplicates_after_restart"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Which process a kill hit, and when it was down (kill to ready again), in unix seconds.
struct Outage {
    agent: bool,
    from: f64,
    to: f64,
}

/// Line number -> the timestamps of every copy the server returns.
async fn line_counts(client: &reqwest::Client, base: &str) -> BTreeMap<u64, Vec<String>> {
    let end = (unix_secs(SystemTime::now()) + 60.0) * 1e9;
    let url = reqwest::Url::parse_with_params(
        &format!("{base}/loki/api/v1/query_range"),
        &[
            ("query", "{job=\"crash\"}"),
            ("limit", "10000000"),
            ("start", "0"),
            ("end", &format!("{end:.0}")),
            ("direction", "forward"),
        ],
    )
    .unwrap();
    let body = get_json(client, url.as_str()).await;
    let mut counts = BTreeMap::new();
    for stream in body["data"]["result"].as_array().unwrap() {
        for v in stream["values"].as_array().unwrap() {
            let line = v[1].as_str().unwrap();
            let n = line.split(' ').nth(1).and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("odd line {line:?}"));
            counts.entry(n).or_insert_with(Vec::new).push(v[0].as_str().unwrap().to_string());
        }
    }
    counts
}

/// The raw samples of the counter: (unix seconds, value).
async fn counter_samples(client: &reqwest::Client, base: &str) -> Vec<(f64, f64)> {
    let url = reqwest::Url::parse_with_params(
        &format!("{base}/api/v1/query"),
        &[("query", "crash_scrapes_total{job=\"crash\"}[1h]")],
    )
    .unwrap();
    let body = get_json(client, url.as_str()).await;
    let result = body["data"]["result"].as_array().unwrap();
    assert_eq!(result.len(), 1, "one counter series: {body}");
    result[0]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v[0].as_f64().unwrap(), v[1].as_str().unwrap().parse().unwrap()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_nine_loop_loses_no_line_and_no_acknowledged_sample() {
    let kills = env_u64("TARSIER_CRASH_LOOP_KILLS").unwrap_or(12);
    let seed = env_u64("TARSIER_CRASH_LOOP_SEED")
        .unwrap_or_else(|| SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64);
    println!("crash loop: seed {seed} (TARSIER_CRASH_LOOP_SEED={seed} replays it), {kills} kills");
    let mut rng = Rng(seed);

    let dir = tempfile::tempdir().unwrap();
    let log_dir = dir.path().join("logs");
    std::fs::create_dir(&log_dir).unwrap();
    let (target, served) = serve_rising_counter().await;
    let server_listen = format!("127.0.0.1:{}", free_port());
    let agent_listen = format!("127.0.0.1:{}", free_port());
    let server_config = server_config(dir.path(), &server_listen);
    let agent_config = agent_config(dir.path(), &agent_listen, &log_dir, &target, &server_listen);
    let server_args = ["server", "--config", server_config.to_str().unwrap()];
    let agent_args = ["agent", "--config", agent_config.to_str().unwrap()];
    let client = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();

    let started = Instant::now();
    let mut server = Proc::start(&server_args, &server_listen);
    server.wait_ready(&client).await;
    let mut agent = Proc::start(&agent_args, &agent_listen);
    agent.wait_ready(&client).await;
    let base = server.base.clone();

    let stop = Arc::new(AtomicBool::new(false));
    let writer = std::thread::spawn({
        let (dir, stop) = (log_dir.clone(), stop.clone());
        move || write_lines(dir, stop)
    });

    let mut outages = Vec::new();
    let mut resent = 0;
    let mut kills_during_start = 0u64;
    for _ in 0..kills {
        tokio::time::sleep(rng.millis(200, 4500)).await;
        let hit_agent = rng.next().is_multiple_of(2);
        if hit_agent {
            resent += agent_resent(&client, &agent.base).await;
        }
        let from = unix_secs(SystemTime::now());
        let (proc, args, listen) = if hit_agent {
            (&mut agent, &agent_args, &agent_listen)
        } else {
            (&mut server, &server_args, &server_listen)
        };
        // SIGKILL: no shutdown path runs.
        proc.child.kill().unwrap();
        proc.child.wait().unwrap();
        *proc = Proc::start(args, listen);
        // Now and then kill it again while it starts (WAL replay, checkpoint load, first sends).
        if rng.next().is_multiple_of(4) {
            tokio::time::sleep(rng.millis(1, 400)).await;
            proc.child.kill().unwrap();
            proc.child.wait().unwrap();
            *proc = Proc::start(args, listen);
            kills_during_start += 1;
        }
        proc.wait_ready(&client).await;
        outages.push(Outage { agent: hit_agent, from, to: unix_secs(SystemTime::now()) });
    }
    let total_kills = outages.len() as u64 + kills_during_start;
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::SeqCst);
    resent += agent_resent(&client, &agent.base).await;
    let written = writer.join().unwrap();
    let agent_kills = outages.iter().filter(|o| o.agent).count() as u64;
    let server_kills = outages.len() as u64 - agent_kills;

    // Drain: poll until every written line number is there.
    let drain_started = Instant::now();
    let drain_deadline = Duration::from_secs(60);
    let counts = loop {
        let counts = line_counts(&client, &base).await;
        if (0..written).all(|n| counts.contains_key(&n)) || drain_started.elapsed() > drain_deadline {
            break counts;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let drained_in = drain_started.elapsed();
    let missing: Vec<u64> = (0..written).filter(|n| !counts.contains_key(n)).collect();
    let unknown: Vec<u64> = counts.keys().copied().filter(|n| *n >= written).collect();
    let duplicates: u64 = counts.values().map(|c| c.len() as u64 - 1).sum();
    // A copy with the same timestamp is the same record sent again (a retry whose acknowledgement
    // a server kill lost); another timestamp means the line was read again after an agent kill.
    let resent_same_record: u64 =
        counts.values().map(|c| (c.len() - c.iter().collect::<std::collections::HashSet<_>>().len()) as u64).sum();
    let duplicated: Vec<(u64, usize)> =
        counts.iter().filter(|(_, c)| c.len() > 1).map(|(n, c)| (*n, c.len())).collect();
    if !duplicated.is_empty() {
        // Runs of consecutive duplicated line numbers: one run per re-read or retried batch.
        let mut runs: Vec<(u64, u64)> = Vec::new();
        for (n, _) in &duplicated {
            match runs.last_mut() {
                Some((_, end)) if *end + 1 == *n => *end = *n,
                _ => runs.push((*n, *n)),
            }
        }
        let shown: Vec<String> = runs.iter().take(40).map(|(a, b)| format!("{a}-{b}")).collect();
        println!(
            "crash loop: {} lines returned more than once, in {} runs: {}{}",
            duplicated.len(),
            runs.len(),
            shown.join(" "),
            if runs.len() > shown.len() { " ..." } else { "" }
        );
    }

    // Metrics: the counter rises at every scrape, so the stored values must strictly rise. Every
    // value served up to the last one stored must be stored, unless it was served to an agent
    // that was killed before shipping it: within an agent outage or the second before it (one
    // batch wait, one send). Across a server kill the agent retries, so nothing may be missing.
    let samples = counter_samples(&client, &base).await;
    let backwards: Vec<_> = samples.windows(2).filter(|w| w[1].1 <= w[0].1 || w[1].0 <= w[0].0).collect();
    let stored: std::collections::HashSet<u64> = samples.iter().map(|s| s.1 as u64).collect();
    let last_stored = samples.last().map_or(0, |s| s.1 as u64);
    let served = served.lock().unwrap().clone();
    let unshipped: Vec<u64> = (1..=last_stored).filter(|n| !stored.contains(n)).collect();
    let lost_samples: Vec<(u64, f64)> = unshipped
        .iter()
        .map(|n| (*n, served[*n as usize - 1]))
        .filter(|(_, at)| !outages.iter().any(|o| o.agent && *at >= o.from - 1.0 && *at <= o.to))
        .collect();
    let longest_gap = samples.windows(2).map(|w| w[1].0 - w[0].0).fold(0.0, f64::max);

    println!(
        "crash loop summary: seed={seed} kills={total_kills} (agent {agent_kills}, server {server_kills}, \
         {kills_during_start} more while starting) lines_written={written} \
         lines_found={} missing={} duplicates={duplicates} (same record again {resent_same_record}) agent_reported_resent={resent} samples={} scrapes_not_stored={} longest_sample_gap={longest_gap:.2}s \
         drain={drained_in:.1?} total={:.1?}",
        counts.len(),
        missing.len(),
        samples.len(),
        unshipped.len(),
        started.elapsed(),
    );

    assert!(unknown.is_empty(), "lines never written came back: {unknown:?}");
    assert!(
        missing.is_empty(),
        "{} of {written} written lines are missing after {drain_deadline:?} of draining, first {:?}",
        missing.len(),
        &missing[..missing.len().min(20)]
    );
    // A kill can make the agent send again what the server already stored: after an agent kill the
    // lines acknowledged since the last checkpoint save plus the batches in flight are read again;
    // after a server kill the batches in flight whose acknowledgement was lost are retried. Both
    // are at most (in-flight batches + one checkpoint interval of shipping, which at this load
    // is below one more set of batches) per kill.
    let bound = total_kills * 2 * MAX_IN_FLIGHT_BATCHES * BATCH_MAX_LINES;
    assert!(
        duplicates <= bound,
        "{duplicates} duplicate lines over {total_kills} kills, above the bound of {bound} (2 x {MAX_IN_FLIGHT_BATCHES} batches \
         of {BATCH_MAX_LINES} lines per kill, checkpoints every {CHECKPOINT_INTERVAL:?})"
    );
    assert!(samples.len() as f64 > 0.5 * started.elapsed().as_secs_f64() / SCRAPE_INTERVAL.as_secs_f64());
    assert!(backwards.is_empty(), "the counter went backwards or repeated a timestamp: {backwards:?}");
    assert!(
        lost_samples.is_empty(),
        "scraped values (value, served at) missing although no agent was killed around them: {lost_samples:?}"
    );
    agent.stop();
    server.stop();
}
