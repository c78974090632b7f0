//! End-to-end tailing: rotation, copytruncate, restarts and failing sinks, with a recording sink.

mod common;

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use collector::Collector;
use common::{RecordingSink, append, metrics_text, numbered, tail_config, wait_for};

fn checkpoint_offsets(state: &std::path::Path) -> Vec<u64> {
    let Ok(text) = std::fs::read_to_string(state.join("checkpoints.json")) else { return Vec::new() };
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(value["version"], 1);
    value["files"].as_array().unwrap().iter().map(|f| f["offset"].as_u64().unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_and_copytruncate_deliver_every_line_once_in_order() {
    let logs = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let sink = Arc::new(RecordingSink::default());
    let collector = Collector::start(tail_config(logs.path()), state.path(), sink.clone(), sink.clone()).await.unwrap();
    let path = logs.path().join("app.log");

    append(&path, numbered(0..100));
    wait_for("first lines", || sink.lines().len() == 100).await;

    // Rename rotation: the app writes a bit more through its old handle, then reopens the path.
    let mut old = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
    append(&path, numbered(100..150));
    std::fs::rename(&path, logs.path().join("app.log.1")).unwrap();
    for line in numbered(150..160) {
        writeln!(old, "{line}").unwrap();
    }
    write!(old, "unterminated-last-line").unwrap();
    drop(old);
    append(&path, numbered(160..200));
    let mut expected = numbered(0..160);
    expected.push("unterminated-last-line".into());
    expected.extend(numbered(160..200));
    wait_for("lines after rotation", || sink.lines().len() >= expected.len()).await;
    assert_eq!(sink.lines(), expected);

    // copytruncate: copy away, truncate in place, keep writing.
    std::fs::copy(&path, logs.path().join("app.log.2")).unwrap();
    std::fs::OpenOptions::new().write(true).truncate(true).open(&path).unwrap();
    append(&path, numbered(200..210));
    expected.extend(numbered(200..210));
    wait_for("lines after truncation", || sink.lines().len() >= expected.len()).await;
    assert_eq!(sink.lines(), expected);

    let text = metrics_text(&collector);
    assert!(text.contains("tarsier_collector_truncations_total 1"), "{text}");
    assert!(text.contains("tarsier_collector_rotations_total 1"), "{text}");
    let records = sink.logs.lock().unwrap().clone();
    assert!(records.iter().all(|r| r.labels.get("filename") == Some(path.to_str().unwrap())));
    assert!(records.iter().all(|r| r.labels.get("job") == Some("varlogs")));
    collector.shutdown().await.unwrap();
    // Every file still open is checkpointed at its end (the rotated one may not be released yet).
    let size = std::fs::metadata(&path).unwrap().len();
    let rotated = std::fs::metadata(logs.path().join("app.log.1")).unwrap().len();
    let offsets = checkpoint_offsets(state.path());
    assert!(offsets.contains(&size) && offsets.iter().all(|o| *o == size || *o == rotated), "{offsets:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_resumes_without_loss_or_duplicates() {
    let logs = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let path = logs.path().join("app.log");
    append(&path, numbered(0..50));

    let first = Arc::new(RecordingSink::default());
    let collector =
        Collector::start(tail_config(logs.path()), state.path(), first.clone(), first.clone()).await.unwrap();
    wait_for("first run", || first.lines().len() == 50).await;
    collector.shutdown().await.unwrap();
    assert_eq!(first.lines(), numbered(0..50));

    append(&path, numbered(50..80));
    let second = Arc::new(RecordingSink::default());
    let collector =
        Collector::start(tail_config(logs.path()), state.path(), second.clone(), second.clone()).await.unwrap();
    wait_for("second run", || second.lines().len() >= 30).await;
    collector.shutdown().await.unwrap();
    assert_eq!(second.lines(), numbered(50..80));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_sink_is_retried_and_checkpoints_wait_for_the_ack() {
    let logs = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let path = logs.path().join("app.log");
    append(&path, numbered(0..30));
    let sink = Arc::new(RecordingSink::failing(usize::MAX));
    let collector = Collector::start(tail_config(logs.path()), state.path(), sink.clone(), sink.clone()).await.unwrap();

    wait_for("failed attempts and a saved checkpoint", || {
        sink.attempts.load(Ordering::SeqCst) >= 3 && !checkpoint_offsets(state.path()).is_empty()
    })
    .await;
    assert_eq!(checkpoint_offsets(state.path()), vec![0], "nothing acknowledged yet");
    assert!(sink.lines().is_empty());

    sink.fail_first.store(2, Ordering::SeqCst);
    let size = std::fs::metadata(&path).unwrap().len();
    wait_for("checkpoint after the ack", || checkpoint_offsets(state.path()) == vec![size]).await;
    assert_eq!(sink.lines(), numbered(0..30));
    let text = metrics_text(&collector);
    assert!(text.contains("tarsier_collector_send_retries_total{kind=\"logs\"}"), "{text}");
    assert!(text.contains("tarsier_collector_lines_sent_total 30"), "{text}");
    collector.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_cri_files_get_pod_labels_and_joined_partials() {
    let root = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let dir = root.path().join("pods/shop_cart-7d9f_0b1c-2d3e/app");
    std::fs::create_dir_all(&dir).unwrap();
    append(
        &dir.join("0.log"),
        [
            "2026-11-27T03:15:00.123456789Z stdout P hello ".to_string(),
            "2026-11-27T03:15:00.123456789Z stderr F oops".to_string(),
            "2026-11-27T03:15:00.123456789Z stdout F world".to_string(),
        ],
    );
    let mut config = tail_config(root.path());
    config.tail.include = vec![format!("{}/pods/*/*/*.log", root.path().display())];
    let sink = Arc::new(RecordingSink::default());
    let collector = Collector::start(config, state.path(), sink.clone(), sink.clone()).await.unwrap();
    wait_for("pod lines", || sink.lines().len() == 2).await;
    collector.shutdown().await.unwrap();
    let records = sink.logs.lock().unwrap().clone();
    let stdout = records.iter().find(|r| r.labels.get("stream") == Some("stdout")).unwrap();
    assert_eq!(stdout.line, "hello world");
    assert_eq!(stdout.timestamp_ns, 1_795_749_300_123_456_789);
    for (name, value) in [("namespace", "shop"), ("pod", "cart-7d9f"), ("container", "app"), ("job", "shop/app")] {
        assert_eq!(stdout.labels.get(name), Some(value), "{name}");
    }
    assert!(records.iter().any(|r| r.labels.get("stream") == Some("stderr") && r.line == "oops"));
}
