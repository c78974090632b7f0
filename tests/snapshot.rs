//! Backups of a running server: `tarsier snapshot` against a live `tarsier run` that is tailing and
//! self-scraping, then a fresh `tarsier server` started on the downloaded backup serves the same
//! logs and metrics. The snapshot is deleted on the server afterwards and `--keep` prunes.

mod support;

use std::process::Command;

use support::*;

fn snapshot(base: &str, out: &std::path::Path, keep: &str) -> std::path::PathBuf {
    let output = Command::new(env!("CARGO_BIN_EXE_tarsier"))
        .args(["snapshot", "--server-url", base, "--out", out.to_str().unwrap(), "--keep", keep])
        .output()
        .unwrap();
    assert!(output.status.success(), "tarsier snapshot failed: {}", String::from_utf8_lossy(&output.stderr));
    let printed = String::from_utf8(output.stdout).unwrap();
    std::path::PathBuf::from(printed.trim())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_restores_into_a_new_server() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    for i in 0..100 {
        append_line(&log, &format!("snapshot line {i}"));
    }
    let listen = format!("127.0.0.1:{}", free_port());
    let config = dir.path().join("tarsier.yaml");
    std::fs::write(
        &config,
        format!(
            "data_dir: {}\nserver:\n  listen: {listen}\ncollector:\n  tail:\n    include: ['{}']\n    labels: {{job: snap}}\n  \
             global:\n    scrape_interval: 200ms\n  self_scrape_interval: 200ms\n  shipping:\n    batch_max_wait: 20ms\nindexer:\n  commit_interval: 100ms\n",
            dir.path().join("data").display(),
            log.display()
        ),
    )
    .unwrap();
    let client = reqwest::Client::new();
    let mut run = Proc::start(&["run", "--config", config.to_str().unwrap()], &listen);
    run.wait_ready(&client).await;
    await_lines(&client, &run.base, "{job=\"snap\"}", 100).await;
    await_series(&client, &run.base, "up{job=\"tarsier\"}").await;

    let out = dir.path().join("backups");
    let first = snapshot(&run.base, &out, "2");
    assert!(first.join("manifest.json").is_file());
    assert!(first.join("indexer").is_dir() && first.join("tsdb").is_dir(), "both stores are in the backup");
    assert!(
        !dir.path().join("data/snapshots").join(first.file_name().unwrap()).exists(),
        "the snapshot is deleted on the server after the download"
    );
    // --keep 2: a third backup removes the first.
    let second = snapshot(&run.base, &out, "2");
    let third = snapshot(&run.base, &out, "2");
    assert!(!first.exists() && second.exists() && third.exists(), "keep 2 prunes the oldest");
    run.signal("TERM");
    drop(run);

    // Restore: the backup is the data_dir of a new server.
    let listen2 = format!("127.0.0.1:{}", free_port());
    let mut restored = Proc::start(
        &["server", "--data-dir", third.to_str().unwrap(), "--listen", &listen2, "--log-level", "info"],
        &listen2,
    );
    restored.wait_ready(&client).await;
    let lines = log_lines(&client, &restored.base, "{job=\"snap\"}").await;
    // Lines read in one batch share a timestamp, so compare as sorted lists (duplicates still show).
    let mut texts: Vec<&str> = lines.iter().map(|(_, l)| l.as_str()).collect();
    texts.sort_unstable();
    let mut expected: Vec<String> = (0..100).map(|i| format!("snapshot line {i}")).collect();
    expected.sort_unstable();
    assert_eq!(texts, expected, "every line, exactly once");
    let up = await_series(&client, &restored.base, "count_over_time(up{job=\"tarsier\"}[1h])").await;
    assert!(up[0]["value"][1].as_str().unwrap().parse::<f64>().unwrap() >= 1.0);
}
