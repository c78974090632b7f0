//! End-to-end multiline joining through the tailer: CRI stdout and stderr traces interleaved in
//! one file stay apart, the flush timeout emits a trace nothing follows, and a restart reads a
//! record that was pending at shutdown again (its first line was never checkpointed).

mod common;

use std::sync::Arc;
use std::time::Duration;

use collector::{Collector, MultilineMode};
use common::{RecordingSink, append, tail_config, wait_for};

fn checkpoint_offsets(state: &std::path::Path) -> Vec<u64> {
    let Ok(text) = std::fs::read_to_string(state.join("checkpoints.json")) else { return Vec::new() };
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    value["files"].as_array().unwrap().iter().map(|f| f["offset"].as_u64().unwrap()).collect()
}

fn cri(stream: &str, tag: &str, msg: &str) -> String {
    format!("2026-11-27T05:00:00.000000001Z {stream} {tag} {msg}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interleaved_cri_traces_join_per_stream_and_the_timeout_flushes_the_last() {
    let logs = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let mut config = tail_config(logs.path());
    config.tail.multiline.mode = MultilineMode::Java;
    config.tail.multiline.flush_timeout = Duration::from_millis(200);
    let sink = Arc::new(RecordingSink::default());
    let collector = Collector::start(config, state.path(), sink.clone(), sink.clone()).await.unwrap();
    let path = logs.path().join("pod.log");
    append(
        &path,
        [
            cri("stdout", "F", "java.lang.IllegalStateException: out"),
            cri("stderr", "P", "java.lang.RuntimeException"),
            cri("stderr", "F", ": err"),
            cri("stdout", "F", "\tat a.Out(Out.java:1)"),
            cri("stderr", "F", "\tat b.Err(Err.java:2)"),
            cri("stdout", "F", "plain stdout line"),
            cri("stderr", "F", "Caused by: x.Y: z"),
            cri("stderr", "P", "\t... 4 "),
            cri("stderr", "F", "more"),
        ],
    );
    wait_for("both traces", || sink.lines().len() == 3).await;
    let records = sink.logs.lock().unwrap().clone();
    // A host path carries no stream label: stdout's trace closes first (by its next line),
    // stderr's only by the flush timeout.
    let lines: Vec<String> = records.iter().map(|r| r.line.clone()).collect();
    assert_eq!(
        lines,
        [
            "java.lang.IllegalStateException: out\n\tat a.Out(Out.java:1)",
            "plain stdout line",
            "java.lang.RuntimeException: err\n\tat b.Err(Err.java:2)\nCaused by: x.Y: z\n\t... 4 more",
        ]
    );
    collector.shutdown().await.unwrap();
    let size = std::fs::metadata(&path).unwrap().len();
    assert_eq!(checkpoint_offsets(state.path()), [size], "everything emitted, so checkpointed to the end");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_pending_at_shutdown_is_read_again_after_restart() {
    let logs = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let mut config = tail_config(logs.path());
    config.tail.multiline.mode = MultilineMode::Python;
    config.tail.multiline.flush_timeout = Duration::from_secs(600);
    let path = logs.path().join("app.log");
    append(&path, ["before".to_string(), "Traceback (most recent call last):".to_string()]);

    let sink = Arc::new(RecordingSink::default());
    let collector = Collector::start(config.clone(), state.path(), sink.clone(), sink.clone()).await.unwrap();
    wait_for("the line before the trace", || sink.lines() == ["before"]).await;
    collector.shutdown().await.unwrap();
    assert_eq!(checkpoint_offsets(state.path()), ["before\n".len() as u64], "the pending trace holds it back");
    assert_eq!(sink.lines(), ["before"]);

    append(
        &path,
        ["  File \"a.py\", line 1, in <module>".to_string(), "ValueError: x".to_string(), "after".to_string()],
    );
    let sink = Arc::new(RecordingSink::default());
    let collector = Collector::start(config, state.path(), sink.clone(), sink.clone()).await.unwrap();
    wait_for("the trace after restart", || sink.lines().len() == 2).await;
    assert_eq!(
        sink.lines(),
        ["Traceback (most recent call last):\n  File \"a.py\", line 1, in <module>\nValueError: x", "after"]
    );
    collector.shutdown().await.unwrap();
}
