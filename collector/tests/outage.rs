//! Sink outages: batches spill to the bounded disk buffer, reading pauses when it is full, and
//! everything is delivered once, in order, after the sink comes back. And a kill: lines sent but
//! never acknowledged are read again after the restart and counted as duplicates.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use collector::{Collector, LogSink, MetricSink, SinkError};
use common::{RecordingSink, append, metrics_text, numbered, tail_config, wait_for};
use futures::future::BoxFuture;
use model::{LogRecord, TenantId, TimeSeries};

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

/// Bytes of the disk buffer's segment files in `dir` (the samples buffer, a subdirectory, has a
/// bound of its own).
fn dir_bytes(dir: &std::path::Path) -> u64 {
    let files = std::fs::read_dir(dir).map(|d| d.flatten().collect::<Vec<_>>()).unwrap_or_default();
    files
        .iter()
        .filter(|e| e.path().extension().is_some_and(|x| x == "seg"))
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_fills_the_bounded_buffer_then_everything_arrives_once_in_order() {
    let logs = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let path = logs.path().join("app.log");
    let mut config = tail_config(logs.path());
    config.shipping.batch_max_lines = 50;
    config.shipping.disk_buffer.max_bytes = 16 * 1024;
    config.shipping.disk_buffer.segment_bytes = 4 * 1024;
    let sink = Arc::new(RecordingSink::failing(usize::MAX));
    let collector = Collector::start(config, state.path(), sink.clone(), sink.clone()).await.unwrap();

    // Written in steps so batches stay small (one read pass of everything would be one batch,
    // and an empty buffer takes one batch of any size).
    for step in 0..120 {
        append(&path, numbered(step * 100..(step + 1) * 100));
        wait_for("the step to be read, or the buffer to fill", || {
            let text = metrics_text(&collector);
            metric(&text, "tarsier_collector_lines_read_total") >= ((step + 1) * 100) as f64
                || metric(&text, "tarsier_collector_buffer_full") == 1.0
        })
        .await;
    }
    wait_for("the buffer to fill up", || metric(&metrics_text(&collector), "tarsier_collector_buffer_full") == 1.0)
        .await;
    let text = metrics_text(&collector);
    let buffered = metric(&text, "tarsier_collector_buffer_bytes");
    assert!(buffered > 0.0 && buffered <= 16.0 * 1024.0, "{text}");
    let on_disk = dir_bytes(&state.path().join("buffer"));
    assert!(on_disk <= 16 * 1024, "the buffer stays within max_bytes: {on_disk}");
    assert!(sink.lines().is_empty(), "nothing was acknowledged");
    // At least one batch went to disk. (Usually several; under a loaded CI machine the batches
    // waiting for their sent-offset save can leave a single large one in the buffer when it fills.)
    assert!(metric(&text, "tarsier_collector_buffered_batches_total") >= 1.0, "{text}");
    // Behind the full buffer, the shipping slots and then the reader's channel fill up.
    wait_for("reading to pause", || metric(&metrics_text(&collector), "tarsier_collector_read_paused") == 1.0).await;
    let read = metric(&metrics_text(&collector), "tarsier_collector_lines_read_total");
    assert!(read < 12_000.0, "reading paused behind the full buffer: {read} lines read");

    sink.fail_first.store(0, Ordering::SeqCst);
    wait_for("every line after the outage", || sink.lines().len() >= 12_000).await;
    assert_eq!(sink.lines(), numbered(0..12_000), "once each, in order");
    wait_for("the buffer to drain", || {
        let text = metrics_text(&collector);
        metric(&text, "tarsier_collector_buffer_bytes") == 0.0 && metric(&text, "tarsier_collector_buffer_full") == 0.0
    })
    .await;
    collector.shutdown().await.unwrap();
    let saved = std::fs::read_to_string(state.path().join("checkpoints.json")).unwrap();
    let size = std::fs::metadata(&path).unwrap().len();
    assert!(saved.contains(&format!("\"offset\":{size}")), "checkpoint at the end after delivery: {saved}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_disk_buffer_an_outage_is_retried_in_memory() {
    let logs = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let mut config = tail_config(logs.path());
    config.shipping.disk_buffer.enabled = false;
    let sink = Arc::new(RecordingSink::failing(5));
    let collector = Collector::start(config, state.path(), sink.clone(), sink.clone()).await.unwrap();
    append(&logs.path().join("app.log"), numbered(0..100));
    wait_for("every line", || sink.lines().len() >= 100).await;
    assert_eq!(sink.lines(), numbered(0..100));
    assert!(!state.path().join("buffer").exists());
    collector.shutdown().await.unwrap();
}

/// Takes batches but never acknowledges them while `hang` is set (a server that stored the data
/// and died before answering).
#[derive(Default)]
struct HangingSink {
    hang: AtomicBool,
    lines: Mutex<Vec<String>>,
}

impl LogSink for HangingSink {
    fn push_logs(&self, _tenant: TenantId, records: Vec<LogRecord>) -> BoxFuture<'static, Result<(), SinkError>> {
        self.lines.lock().unwrap().extend(records.into_iter().map(|r| r.line));
        if self.hang.load(Ordering::SeqCst) { Box::pin(std::future::pending()) } else { Box::pin(async { Ok(()) }) }
    }
}

impl MetricSink for HangingSink {
    fn push_samples(&self, _tenant: TenantId, _series: Vec<TimeSeries>) -> BoxFuture<'static, Result<(), SinkError>> {
        Box::pin(async { Ok(()) })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_in_flight_at_a_kill_are_read_again_and_counted_as_duplicates() {
    let logs = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let path = logs.path().join("app.log");
    append(&path, numbered(0..40));
    let first = Arc::new(HangingSink::default());
    first.hang.store(true, Ordering::SeqCst);
    let collector =
        Collector::start(tail_config(logs.path()), state.path(), first.clone(), first.clone()).await.unwrap();
    wait_for("the batch to reach the sink and the sent offset to be saved", || {
        first.lines.lock().unwrap().len() == 40
            && std::fs::read_to_string(state.path().join("checkpoints.json")).is_ok_and(|t| t.contains("sent_offset"))
    })
    .await;
    // kill -9: no shutdown, no final checkpoint save.
    drop(collector);

    let second = Arc::new(RecordingSink::default());
    let collector =
        Collector::start(tail_config(logs.path()), state.path(), second.clone(), second.clone()).await.unwrap();
    wait_for("the lines again", || second.lines().len() >= 40).await;
    assert_eq!(second.lines(), numbered(0..40));
    let text = metrics_text(&collector);
    assert_eq!(metric(&text, "tarsier_collector_duplicates_after_restart_total"), 40.0, "{text}");
    collector.shutdown().await.unwrap();
}

/// Regression (crash loop: the metric said 0 while 442 lines were sent again): lines acknowledged
/// after the last checkpoint save are read again after a kill too; the sent offsets saved before
/// each batch left make the count equal to the lines actually delivered twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_acknowledged_after_the_last_save_are_counted_when_read_again() {
    // The periodic save (every second) may land between the acknowledgement and the kill; then
    // nothing is read again and the case is not exercised: try again.
    for attempt in 0..5 {
        let logs = tempfile::tempdir().unwrap();
        let state = tempfile::tempdir().unwrap();
        let path = logs.path().join("app.log");
        append(&path, numbered(0..40));
        let first = Arc::new(HangingSink::default());
        let collector =
            Collector::start(tail_config(logs.path()), state.path(), first.clone(), first.clone()).await.unwrap();
        wait_for("the batch to be acknowledged", || first.lines.lock().unwrap().len() == 40).await;
        drop(collector); // kill -9: the acknowledged offset is not saved
        let saved = std::fs::read_to_string(state.path().join("checkpoints.json")).unwrap();
        let size = std::fs::metadata(&path).unwrap().len();
        if saved.contains(&format!("\"offset\":{size}")) {
            eprintln!("attempt {attempt}: the acknowledgement was saved before the kill, trying again");
            continue;
        }

        let second = Arc::new(RecordingSink::default());
        let collector =
            Collector::start(tail_config(logs.path()), state.path(), second.clone(), second.clone()).await.unwrap();
        wait_for("the lines again", || second.lines().len() >= 40).await;
        let before: std::collections::HashSet<String> = first.lines.lock().unwrap().iter().cloned().collect();
        let again = second.lines().iter().filter(|l| before.contains(*l)).count();
        assert_eq!(again, 40, "every acknowledged line is delivered again");
        let text = metrics_text(&collector);
        assert_eq!(metric(&text, "tarsier_collector_duplicates_after_restart_total"), again as f64, "{text}");
        collector.shutdown().await.unwrap();
        return;
    }
    panic!("the acknowledgement was saved before the kill in every attempt");
}

/// Takes logs; refuses samples (retryably) while `down` is set; records what it took.
#[derive(Default)]
struct SampleOutageSink {
    down: AtomicBool,
    series: Mutex<Vec<TimeSeries>>,
}

impl LogSink for SampleOutageSink {
    fn push_logs(&self, _tenant: TenantId, _records: Vec<LogRecord>) -> BoxFuture<'static, Result<(), SinkError>> {
        Box::pin(async { Ok(()) })
    }
}

impl MetricSink for SampleOutageSink {
    fn push_samples(&self, _tenant: TenantId, series: Vec<TimeSeries>) -> BoxFuture<'static, Result<(), SinkError>> {
        let result = if self.down.load(Ordering::SeqCst) {
            Err(SinkError::retryable("injected outage"))
        } else {
            self.series.lock().unwrap().extend(series);
            Ok(())
        };
        Box::pin(async move { result })
    }
}

impl SampleOutageSink {
    /// The values of `outage_scrapes_total` delivered, in order.
    fn counter_values(&self) -> Vec<f64> {
        let series = self.series.lock().unwrap();
        let values = series.iter().filter(|s| s.labels.metric_name() == Some("outage_scrapes_total"));
        values.flat_map(|s| s.samples.iter().map(|p| p.value)).collect()
    }
}

/// Serves `outage_scrapes_total`, one more at every scrape; returns the address and the count.
async fn serve_counting_page() -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    let served = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = served.clone();
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let n = count.fetch_add(1, Ordering::SeqCst) + 1;
            async move { format!("# TYPE outage_scrapes_total counter\noutage_scrapes_total {n}\n") }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (address, served)
}

fn counting_scrape_config(target: &str) -> collector::CollectorConfig {
    let mut config = collector::CollectorConfig::default();
    config.shipping.batch_max_wait = std::time::Duration::from_millis(10);
    config.shipping.batch_max_lines = 10;
    config.shipping.max_in_flight_batches = 1;
    config.shipping.retry_initial_backoff = std::time::Duration::from_millis(10);
    config.shipping.retry_max_backoff = std::time::Duration::from_millis(50);
    config.scrape_configs.push(collector::ScrapeConfig {
        job_name: "outage".into(),
        scrape_interval: Some(std::time::Duration::from_millis(20)),
        scrape_timeout: Some(std::time::Duration::from_millis(20)),
        static_configs: vec![collector::StaticConfig { targets: vec![target.to_string()], labels: Default::default() }],
        ..Default::default()
    });
    config
}

/// Found by `tarsier-bench outage`: samples scraped while the server was down were never stored
/// (a 270 s hole in `up` after a 300 s outage): once every shipping slot was retrying, scrapes
/// waited instead of going on. Samples now spill to their own disk buffer like lines, so scraping
/// never stops and every scrape is delivered, once, in order; and what is buffered at a restart is
/// delivered by the next process (a scrape cannot be repeated).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrapes_go_on_during_an_outage_and_every_sample_arrives_once_even_across_a_restart() {
    let (target, served) = serve_counting_page().await;
    let state = tempfile::tempdir().unwrap();
    // The first process's server never comes back: dropping a collector stops its scrapes, not
    // its shipper, which must not deliver what the next process delivers.
    let dead = Arc::new(SampleOutageSink::default());
    dead.down.store(true, Ordering::SeqCst);
    let collector =
        Collector::start(counting_scrape_config(&target), state.path(), dead.clone(), dead.clone()).await.unwrap();
    // Far more scrapes than one shipping slot and the channel could hold without the buffer.
    wait_for("200 scrapes during the outage", || served.load(Ordering::SeqCst) >= 200).await;
    let text = metrics_text(&collector);
    assert!(metric(&text, "tarsier_collector_samples_buffered_batches_total") >= 2.0, "{text}");
    assert!(metric(&text, "tarsier_collector_samples_buffer_bytes") > 0.0, "{text}");
    // kill -9 in the middle of the outage.
    drop(collector);
    let scraped_before_kill = served.load(Ordering::SeqCst);

    let sink = Arc::new(SampleOutageSink::default());
    let collector =
        Collector::start(counting_scrape_config(&target), state.path(), sink.clone(), sink.clone()).await.unwrap();
    wait_for("the next process to scrape 50 more", || served.load(Ordering::SeqCst) >= scraped_before_kill + 50).await;
    collector.shutdown().await.unwrap();
    let values = sink.counter_values();
    assert!(values.windows(2).all(|w| w[0] < w[1]), "once each, in order: {values:?}");
    // A kill loses the scrapes not yet in the buffer (one batch in flight, the channel): a few.
    let buffered: Vec<f64> = values.iter().copied().filter(|&v| v <= scraped_before_kill as f64).collect();
    assert!(
        buffered.len() + 20 >= scraped_before_kill,
        "{} of {scraped_before_kill} scrapes of the outage delivered after the restart: {values:?}",
        buffered.len()
    );
    let after: Vec<f64> = values.iter().copied().filter(|&v| v > scraped_before_kill as f64).collect();
    assert!(after.len() >= 45, "the new process's own scrapes: {after:?}");
}

/// `agent.sinks` with two receivers, one failing for a while: the batch's checkpoint waits for
/// both, the healthy one is not sent anything twice while the other is retried (from the disk
/// buffer, or in memory without one), and after the failing one recovers each has every line
/// exactly once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sinks_one_failing_for_a_while_each_get_every_line_once_and_the_checkpoint_waits() {
    two_sinks_one_failing(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sinks_one_failing_without_the_disk_buffer_each_get_every_line_once() {
    two_sinks_one_failing(false).await;
}

async fn two_sinks_one_failing(disk_buffer: bool) {
    use collector::{Fanout, SinkConfig, SinkKind, SwitchableSink};
    let logs = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let path = logs.path().join("app.log");
    let (healthy, failing) = (common::FakeLoki::default(), common::FakeLoki::default());
    failing.fail.store(true, Ordering::SeqCst);
    let sink = |name: &str, url: String| SinkConfig {
        name: Some(name.into()),
        kind: SinkKind::Loki,
        url,
        ..Default::default()
    };
    let sinks = [sink("a", healthy.serve().await), sink("b", failing.serve().await)];
    let sink = SwitchableSink::new(Fanout::from_configs(&sinks, std::time::Duration::from_secs(5)).unwrap());
    let mut config = tail_config(logs.path());
    config.shipping.batch_max_lines = 50;
    config.shipping.disk_buffer.enabled = disk_buffer;
    let collector =
        Collector::start(config, state.path(), Arc::new(sink.clone()), Arc::new(sink.clone())).await.unwrap();
    for step in 0..4 {
        append(&path, numbered(step * 100..(step + 1) * 100));
    }
    wait_for("sink b to be retried", || failing.requests.lock().unwrap().len() >= 5).await;
    let size = std::fs::metadata(&path).unwrap().len();
    wait_for("every line to be read", || {
        metric(&metrics_text(&collector), "tarsier_collector_lines_read_total") >= 400.0
    })
    .await;
    // Two checkpoint periods: the offset would have been saved by now had it moved.
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let saved = std::fs::read_to_string(state.path().join("checkpoints.json")).unwrap_or_default();
    assert!(!saved.contains(&format!("\"offset\":{size}")), "checkpoint held while b fails: {saved}");
    let before = healthy.lines();
    assert!(failing.lines().is_empty());
    assert_eq!(before, numbered(0..before.len()), "a got a prefix, once");

    failing.fail.store(false, Ordering::SeqCst);
    wait_for("both sinks to have every line", || healthy.lines().len() >= 400 && failing.lines().len() >= 400).await;
    assert_eq!(healthy.lines(), numbered(0..400), "a: once each, in order");
    assert_eq!(failing.lines(), numbered(0..400), "b: once each, in order");
    wait_for("the checkpoint to reach the end", || {
        std::fs::read_to_string(state.path().join("checkpoints.json"))
            .is_ok_and(|t| t.contains(&format!("\"offset\":{size}")))
    })
    .await;

    let mut registry = prometheus_client::registry::Registry::default();
    sink.register_metrics(&mut registry);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    assert!(text.contains(r#"tarsier_collector_sink_sent_total{sink="a",kind="logs"} 400"#), "{text}");
    assert!(text.contains(r#"tarsier_collector_sink_sent_total{sink="b",kind="logs"} 400"#), "{text}");
    let retries = metric(&text, r#"tarsier_collector_sink_retries_total{sink="b",kind="logs"}"#);
    assert!(retries >= 4.0, "{text}");
    let a_retries = metric(&text, r#"tarsier_collector_sink_retries_total{sink="a",kind="logs"}"#);
    assert_eq!(a_retries, 0.0, "a was never retried: {text}");
    let (a_requests, b_requests) = (healthy.requests.lock().unwrap().len(), failing.requests.lock().unwrap().len());
    assert!(a_requests + 4 <= b_requests, "only b's requests were repeated: a {a_requests}, b {b_requests}");
    collector.shutdown().await.unwrap();
}
