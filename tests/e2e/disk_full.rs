//! The disk-full cases of `tests/e2e.rs` (issue #10 point 3): the server's data disk and the
//! agent's own buffer disk are small tmpfs mounts filled on purpose. A module of the e2e test
//! binary (not a binary of its own), split out along this seam to keep each file readable.

use super::*;

/// A size-limited tmpfs (the disk that fills), unmounted when dropped.
struct SmallFs {
    dir: tempfile::TempDir,
}

impl SmallFs {
    fn mount(size: &str) -> SmallFs {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "the disk-full test mounts a {size} tmpfs and needs root or CAP_SYS_ADMIN (run the tests as root, \
             as CI's container does): mount said: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        SmallFs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Bytes still free on the filesystem.
    fn available(&self) -> u64 {
        let out = Command::new("df").args(["-B1", "--output=avail"]).arg(self.path()).output().expect("run df");
        let text = String::from_utf8_lossy(&out.stdout);
        text.lines().nth(1).and_then(|l| l.trim().parse().ok()).unwrap_or_else(|| panic!("df said {text:?}"))
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let status = Command::new("umount").arg(self.dir.path()).status();
        if !status.is_ok_and(|s| s.success()) {
            let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
        }
    }
}

/// A server config for a small filesystem: data in `data_dir`, commits every 200 ms and 1 MiB WAL
/// segments, so a full disk shows within a few batches.
fn write_server_config(path: &Path, listen: &str, data_dir: &Path) {
    let yaml = format!(
        "data_dir: {}\nserver:\n  listen: {listen}\nindexer:\n  commit_interval: 200ms\n  wal_segment_bytes: 1048576\n\
         tsdb:\n  wal_segment_bytes: 1048576\n",
        data_dir.display()
    );
    std::fs::write(path, yaml).unwrap();
}

/// Lines of log batch `batch`: 10 unique lines of 4 KB of pseudo-random hex each (so the
/// index's compression cannot make them small).
fn disk_full_lines(batch: usize) -> Vec<String> {
    (0..10)
        .map(|j| {
            let mut x = ((batch * 1000 + j) as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            let noise: String = (0..256)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    format!("{x:016x}")
                })
                .collect();
            format!("batch {batch} line {j} {noise}")
        })
        .collect()
}

async fn push_batch(client: &reqwest::Client, base: &str, batch: usize, started_ns: i64) -> (u16, u16, String) {
    let entries = disk_full_lines(batch)
        .into_iter()
        .enumerate()
        .map(|(j, line)| model::LogEntry { timestamp_ns: started_ns + (batch * 100 + j) as i64 * 1000, line })
        .collect();
    let streams = [model::LogStream { labels: model::Labels::from_pairs([("job", "diskfull")]), entries }];
    let logs = client
        .post(format!("{base}/loki/api/v1/push"))
        .header("Content-Type", "application/json")
        .body(model::wire::loki_push::encode_json(&streams))
        .send()
        .await
        .unwrap();
    let log_status = logs.status().as_u16();
    let log_text = logs.text().await.unwrap();
    let now_ms = started_ns / 1_000_000;
    let series: Vec<model::TimeSeries> = (0..50)
        .map(|n| {
            let labels = model::Labels::from_pairs([
                ("__name__", "disk_full_test"),
                ("batch", batch.to_string().as_str()),
                ("n", n.to_string().as_str()),
            ]);
            model::TimeSeries::new(labels, vec![model::Sample::new(now_ms, batch as f64)])
        })
        .collect();
    let samples = client
        .post(format!("{base}/api/v1/write"))
        .header("Content-Type", "application/x-protobuf")
        .header("Content-Encoding", "snappy")
        .body(model::wire::remote_write::encode(&series))
        .send()
        .await
        .unwrap();
    let sample_status = samples.status().as_u16();
    let sample_text = samples.text().await.unwrap();
    (log_status, sample_status, format!("{log_text}{sample_text}"))
}

fn metric(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics"))
}

/// Everything acknowledged is there: every line of `batches` and one series per sample pushed.
async fn assert_all_stored(client: &reqwest::Client, base: &str, batches: usize, at_ms: i64, log: &Path) {
    let expected: std::collections::BTreeSet<String> = (0..batches).flat_map(disk_full_lines).collect();
    let started = Instant::now();
    loop {
        let got: std::collections::BTreeSet<String> =
            log_lines(client, base, "{job=\"diskfull\"}").await.into_iter().map(|(_, l)| l).collect();
        if got == expected {
            break;
        }
        let missing = expected.difference(&got).count();
        if started.elapsed() > DEADLINE {
            let log = std::fs::read_to_string(log).unwrap();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            panic!(
                "{missing} of {} acknowledged lines missing; the server's log ends:\n{}",
                expected.len(),
                tail.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let url = reqwest::Url::parse_with_params(
        &format!("{base}/api/v1/query"),
        &[("query", "count(disk_full_test)"), ("time", &format!("{}", at_ms as f64 / 1000.0))],
    )
    .unwrap();
    let body = get_json(client, url.as_str()).await;
    assert_eq!(body["data"]["result"][0]["value"][1], format!("{}", batches * 50), "{body}");
}

/// #10.3: on a full disk the server answers 503 saying so, logs it once, shows it in
/// `tarsier_storage_full`, takes writes again as soon as there is room (no restart), and keeps
/// everything it acknowledged, also across a restart whose WAL replay finds nothing torn.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_answers_503_then_resumes_without_losing_acknowledged_data() {
    let fs = SmallFs::mount("48m");
    let listen = format!("127.0.0.1:{}", free_port());
    let config = fs.path().join("tarsier.yaml");
    write_server_config(&config, &listen, &fs.path().join("data"));
    let client = reqwest::Client::new();
    let logs_dir = tempfile::tempdir().unwrap();
    let first_log = logs_dir.path().join("first.log");
    let mut server = Tarsier::start_logging_to(&["server", "--config", config.to_str().unwrap()], &listen, &first_log);
    server.wait_ready(&client).await;
    let base = server.base.clone();

    // Fill the disk but for 2 MiB.
    let filler_path = fs.path().join("filler");
    {
        use std::io::Write;
        let mut filler = std::fs::File::create(&filler_path).unwrap();
        let chunk = vec![0u8; 1 << 20];
        while fs.available() > 2 << 20 {
            filler.write_all(&chunk).unwrap();
        }
        filler.sync_all().unwrap();
    }
    let started_ns = model::time::now_ns();
    let (mut refused_logs, mut refused_samples, mut pushed) = (0, 0, 0);
    let mut refused_batches = Vec::new();
    let mut refusal = String::new();
    while refused_logs < 3 || refused_samples < 3 {
        assert!(pushed < 400, "the disk never filled: {refused_logs} log and {refused_samples} sample pushes refused");
        let (logs, samples, text) = push_batch(&client, &base, pushed, started_ns).await;
        assert!(matches!(logs, 204 | 503) && matches!(samples, 204 | 503), "batch {pushed}: {logs}/{samples}: {text}");
        refused_logs += usize::from(logs == 503);
        refused_samples += usize::from(samples == 503);
        if logs != 204 || samples != 204 {
            refused_batches.push(pushed);
            refusal = text;
        }
        pushed += 1;
    }
    assert!(refusal.contains("storage full") && refusal.contains("No space left"), "{refusal}");
    let metrics = client.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
    assert_eq!(metric(&metrics, "tarsier_storage_full"), 1.0);
    assert!(metric(&metrics, "tarsier_storage_write_errors_total") >= 6.0);

    // Room again: the refused batches go in (the collector retries the same way), no restart.
    std::fs::remove_file(&filler_path).unwrap();
    let last = pushed + 3;
    refused_batches.extend(pushed..last);
    let retrying = Instant::now();
    for batch in refused_batches {
        loop {
            let (logs, samples, text) = push_batch(&client, &base, batch, started_ns).await;
            if logs == 204 && samples == 204 {
                break;
            }
            assert!(
                retrying.elapsed() < DEADLINE,
                "writes still refused after freeing space: {logs}/{samples}: {text}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let at_ms = started_ns / 1_000_000;
    assert_all_stored(&client, &base, last, at_ms, &first_log).await;
    let metrics = client.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
    assert_eq!(metric(&metrics, "tarsier_storage_full"), 0.0);
    server.stop();
    let log = std::fs::read_to_string(&first_log).unwrap();
    let refusals = log.lines().filter(|l| l.contains("storage full: writes are refused")).count();
    assert_eq!(refusals, 1, "one line per episode, not one per refused request:\n{log}");
    let errors = log.lines().filter(|l| l.contains("ERROR")).count();
    assert!(errors <= 4, "{errors} error lines for one full disk:\n{log}");

    // A restart replays a clean WAL and serves the same data.
    let second_log = logs_dir.path().join("second.log");
    let mut server = Tarsier::start_logging_to(&["server", "--config", config.to_str().unwrap()], &listen, &second_log);
    server.wait_ready(&client).await;
    assert_all_stored(&client, &base, last, at_ms, &second_log).await;
    server.stop();
    let log = std::fs::read_to_string(&second_log).unwrap();
    let unclean = ["corrupt", "torn", "mismatch", "undecodable", "ERROR"];
    assert!(!unclean.iter().any(|w| log.contains(w)), "replay after the full disk:\n{log}");
}

/// Fills `fs` to the last byte with a file it returns: any write that needs a new block fails.
fn fill_up(fs: &SmallFs, name: &str) -> std::path::PathBuf {
    use std::io::Write;
    let path = fs.path().join(name);
    let mut filler = std::fs::File::create(&path).unwrap();
    for chunk in [1 << 20, 4096, 1] {
        let bytes = vec![0u8; chunk];
        while filler.write_all(&bytes).is_ok() {}
    }
    let _ = filler.sync_all();
    path
}

/// One agent self-metric (0 when not yet exposed).
async fn agent_metric(client: &reqwest::Client, agent: &Tarsier, name: &str) -> f64 {
    let text = client.get(format!("{}/metrics", agent.base)).send().await.unwrap().text().await.unwrap();
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok()).unwrap_or(0.0)
}

/// Polls `what` until it holds, or fails naming it after [`DEADLINE`].
async fn await_agent(client: &reqwest::Client, agent: &Tarsier, what: &str, name: &str, ok: impl Fn(f64) -> bool) {
    let started = Instant::now();
    loop {
        let value = agent_metric(client, agent, name).await;
        if ok(value) {
            return;
        }
        assert!(started.elapsed() < DEADLINE, "{what}: {name} is {value} after {DEADLINE:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn fullbuf_line(i: usize) -> String {
    format!("fullbuf line {i:05} {}", "x".repeat(80))
}

/// Appends lines `range` in steps of `step` lines, each step read before the next is written
/// (many small reads: one chunk each), until reading pauses if `until_paused`.
async fn append_in_steps(
    client: &reqwest::Client,
    agent: &Tarsier,
    log: &Path,
    range: std::ops::Range<usize>,
    step: usize,
    until_paused: bool,
) -> usize {
    let mut written = range.start;
    while written < range.end {
        let to = (written + step).min(range.end);
        for i in written..to {
            append_line(log, &fullbuf_line(i));
        }
        written = to;
        let started = Instant::now();
        loop {
            if agent_metric(client, agent, "tarsier_collector_lines_read_total").await >= written as f64 {
                break;
            }
            if until_paused && agent_metric(client, agent, "tarsier_collector_read_paused").await == 1.0 {
                return written;
            }
            assert!(started.elapsed() < DEADLINE, "line {written} not read within {DEADLINE:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    written
}

/// #10.3, the collector's side: while the server's disk is full, `tarsier agent` keeps what it
/// read in its disk buffer; when the agent's own buffer filesystem fills too, a segment write
/// fails with ENOSPC and the agent pauses reading (logged once), loses nothing and resumes when
/// space returns. Once the server has room again every line arrives exactly once, and the
/// samples scraped while only the server was full arrive without a gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_keeps_data_while_the_server_disk_and_its_own_buffer_disk_are_full() {
    let server_fs = SmallFs::mount("48m");
    let agent_fs = SmallFs::mount("4m");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("node.log");
    let target = serve_metrics().await;
    let server_listen = format!("127.0.0.1:{}", free_port());
    let agent_listen = format!("127.0.0.1:{}", free_port());
    let server_config = dir.path().join("server.yaml");
    write_server_config(&server_config, &server_listen, &server_fs.path().join("data"));
    // One in-flight batch, and a segment file per batch: a write on the full filesystem always
    // needs a new block, so the episode cannot flicker on the last page's free bytes.
    let agent_config = dir.path().join("agent.yaml");
    std::fs::write(
        &agent_config,
        format!(
            "data_dir: {data}\nserver:\n  listen: {agent_listen}\ncollector:\n  tail:\n    include: ['{log}']\n    \
             rescan_interval: 200ms\n  global:\n    scrape_interval: 1s\n    scrape_timeout: 1s\n  shipping:\n    \
             batch_max_wait: 20ms\n    max_in_flight_batches: 1\n    retry_initial_backoff: 50ms\n    \
             retry_max_backoff: 300ms\n    disk_buffer:\n      path: {buffer}\n      segment_bytes: 1\n  \
             scrape_configs:\n  - job_name: app\n    static_configs:\n    - targets: ['{target}']\n\
             agent:\n  server_url: http://{server_listen}\n",
            data = dir.path().join("agent").display(),
            log = log.display(),
            buffer = agent_fs.path().join("buffer").display(),
        ),
    )
    .unwrap();
    let client = reqwest::Client::new();
    let server_log = dir.path().join("server.log");
    let agent_log = dir.path().join("agent.log");
    let mut server = Tarsier::start_logging_to(
        &["server", "--config", server_config.to_str().unwrap()],
        &server_listen,
        &server_log,
    );
    server.wait_ready(&client).await;
    let mut agent =
        Tarsier::start_logging_to(&["agent", "--config", agent_config.to_str().unwrap()], &agent_listen, &agent_log);
    agent.wait_ready(&client).await;
    let selector = format!("{{filename=\"{}\"}}", log.display());
    let mut written = append_in_steps(&client, &agent, &log, 0..20, 20, false).await;
    await_lines(&client, &server.base, &selector, written).await;
    await_series(&client, &server.base, "e2e_temperature_celsius").await;

    // The server's disk fills: deliveries get 503 and the agent buffers on its disk.
    let server_filler = fill_up(&server_fs, "filler");
    let server_full_ms = model::time::now_ms();
    written = append_in_steps(&client, &agent, &log, written..written + 60, 10, false).await;
    await_agent(&client, &agent, "log batches buffered", "tarsier_collector_buffered_batches_total", |v| v >= 1.0)
        .await;
    await_agent(&client, &agent, "sample batches buffered", "tarsier_collector_samples_buffered_batches_total", |v| {
        v >= 4.0
    })
    .await;
    assert_eq!(
        metric(
            &client.get(format!("{}/metrics", server.base)).send().await.unwrap().text().await.unwrap(),
            "tarsier_storage_full"
        ),
        1.0
    );

    // The agent's buffer disk fills too: segment writes fail, reading pauses, nothing is lost.
    let agent_filler = fill_up(&agent_fs, "filler");
    let agent_full_ms = model::time::now_ms();
    let paused_at = append_in_steps(&client, &agent, &log, written..written + 400, 3, true).await;
    assert!(paused_at < written + 400, "reading never paused on the full buffer disk");
    written = paused_at;
    for i in written..written + 30 {
        append_line(&log, &fullbuf_line(i));
    }
    written += 30;
    await_agent(&client, &agent, "the buffer to count as full", "tarsier_collector_buffer_full", |v| v == 1.0).await;
    // The next scrape's batch cannot be written either: held in memory, counted as full.
    await_agent(&client, &agent, "the samples buffer to count as full", "tarsier_collector_samples_buffer_full", |v| {
        v == 1.0
    })
    .await;
    let read = agent_metric(&client, &agent, "tarsier_collector_lines_read_total").await;
    assert!(read < written as f64, "reading paused: {read} of {written} lines read");

    // Room on the agent's disk: the waiting batches go to the buffer and reading resumes.
    std::fs::remove_file(&agent_filler).unwrap();
    await_agent(&client, &agent, "every line read", "tarsier_collector_lines_read_total", |v| v >= written as f64)
        .await;
    await_agent(&client, &agent, "the buffer to take writes", "tarsier_collector_buffer_full", |v| v == 0.0).await;
    assert_eq!(agent_metric(&client, &agent, "tarsier_collector_read_paused").await, 0.0);

    // Room on the server's disk: everything arrives, each line once.
    std::fs::remove_file(&server_filler).unwrap();
    let expected: Vec<String> = (0..written).map(fullbuf_line).collect();
    let started = Instant::now();
    loop {
        let mut got: Vec<String> =
            log_lines(&client, &server.base, &selector).await.into_iter().map(|(_, l)| l).collect();
        got.sort();
        if got.len() >= written {
            assert_eq!(got, expected, "every line once");
            break;
        }
        assert!(started.elapsed() < DEADLINE, "{} of {written} lines arrived", got.len());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let url = reqwest::Url::parse_with_params(
        &format!("{}/loki/api/v1/query", server.base),
        &[("query", format!("sum(count_over_time({selector}[1h]))").as_str())],
    )
    .unwrap();
    let body = get_json(&client, url.as_str()).await;
    assert_eq!(body["data"]["result"][0]["value"][1], written.to_string(), "{body}");
    await_agent(&client, &agent, "the buffer to drain", "tarsier_collector_samples_buffer_bytes", |v| v == 0.0).await;

    // The samples scraped while only the server was full: buffered, delivered, no gap.
    let window_s = (agent_full_ms - server_full_ms) / 1000;
    let url = reqwest::Url::parse_with_params(
        &format!("{}/api/v1/query", server.base),
        &[
            ("query", format!("e2e_temperature_celsius[{window_s}s]").as_str()),
            ("time", &format!("{}", agent_full_ms as f64 / 1000.0)),
        ],
    )
    .unwrap();
    let body = get_json(&client, url.as_str()).await;
    let stamps: Vec<f64> = body["data"]["result"][0]["values"]
        .as_array()
        .unwrap_or_else(|| panic!("no samples of the server's full-disk time: {body}"))
        .iter()
        .map(|v| v[0].as_f64().unwrap())
        .collect();
    assert!(stamps.len() as i64 >= window_s - 1, "{} samples in {window_s} s: {body}", stamps.len());
    let gap = stamps.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max);
    // Below two intervals: no scrape is missing (a loaded machine may start one late).
    assert!(gap < 1.9, "a gap of {gap} s between samples scraped every second: {stamps:?}");

    let buffered = agent_metric(&client, &agent, "tarsier_collector_buffered_batches_total").await;
    println!(
        "{written} lines, reading paused after {paused_at}, {buffered} log batches buffered, {} samples in {window_s} s",
        stamps.len()
    );
    agent.stop();
    server.stop();
    let agent_log = std::fs::read_to_string(&agent_log).unwrap();
    for line in agent_log.lines().filter(|l| l.contains("collector::buffer")) {
        println!("agent: {line}");
    }
    let failed = |kind: &str| {
        agent_log.lines().filter(|l| l.contains("writing the disk buffer failed") && l.contains(kind)).count()
    };
    assert_eq!(failed("\"logs\"") + failed("=logs"), 1, "one line for the episode:\n{agent_log}");
    assert_eq!(failed("samples"), 1, "one line for the episode:\n{agent_log}");
    assert!(agent_log.contains("disk buffer writable again"), "{agent_log}");
}
