//! Shared helpers of the collector's integration tests: recording sinks and condition polling.

#![allow(dead_code)]

pub mod certs;

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use collector::{CollectorConfig, LogSink, MetricSink, SinkError};
use futures::future::BoxFuture;
use model::{LogRecord, LogStream, TenantId, TimeSeries};

/// Records everything pushed; fails the first `fail_first` pushes with a retryable error.
#[derive(Default)]
pub struct RecordingSink {
    pub logs: Mutex<Vec<LogRecord>>,
    pub series: Mutex<Vec<TimeSeries>>,
    pub fail_first: AtomicUsize,
    pub attempts: AtomicUsize,
}

impl RecordingSink {
    pub fn failing(n: usize) -> Self {
        Self { fail_first: AtomicUsize::new(n), ..Default::default() }
    }

    pub fn lines(&self) -> Vec<String> {
        self.logs.lock().unwrap().iter().map(|r| r.line.clone()).collect()
    }

    fn should_fail(&self) -> bool {
        self.attempts.fetch_add(1, Ordering::SeqCst);
        self.fail_first.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok()
    }
}

impl LogSink for RecordingSink {
    fn push_logs(&self, _tenant: TenantId, records: Vec<LogRecord>) -> BoxFuture<'static, Result<(), SinkError>> {
        let result = if self.should_fail() {
            Err(SinkError::retryable("injected failure"))
        } else {
            self.logs.lock().unwrap().extend(records);
            Ok(())
        };
        Box::pin(async move { result })
    }
}

impl MetricSink for RecordingSink {
    fn push_samples(&self, _tenant: TenantId, series: Vec<TimeSeries>) -> BoxFuture<'static, Result<(), SinkError>> {
        self.series.lock().unwrap().extend(series);
        Box::pin(async { Ok(()) })
    }
}

/// Polls `condition` until it holds or 60 s pass. The conditions hold within a second or two on
/// an idle machine; the margin is for CI machines loaded by parallel test binaries (the outage
/// test's drain once took 15.8 s there).
pub async fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A config tailing `dir/*.log` with short intervals so tests run fast.
pub fn tail_config(dir: &Path) -> CollectorConfig {
    let mut config = CollectorConfig::default();
    config.tail.include = vec![format!("{}/*.log", dir.display())];
    config.tail.rescan_interval = Duration::from_millis(100);
    config.shipping.batch_max_wait = Duration::from_millis(20);
    config.shipping.retry_initial_backoff = Duration::from_millis(10);
    config.shipping.retry_max_backoff = Duration::from_millis(50);
    config
}

/// Appends `lines` to `path`.
pub fn append(path: &Path, lines: impl IntoIterator<Item = String>) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
    for line in lines {
        writeln!(f, "{line}").unwrap();
    }
    f.sync_data().unwrap();
}

pub fn numbered(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("line-{i:05}")).collect()
}

/// The collector's self-metrics in Prometheus's text format.
pub fn metrics_text(collector: &collector::Collector) -> String {
    let mut registry = prometheus_client::registry::Registry::default();
    collector.register_metrics(&mut registry);
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &registry).unwrap();
    out
}

/// One request a fake received: its headers and body.
pub type Received = (axum::http::HeaderMap, Vec<u8>);

/// A fake Loki: records every push (path, headers, body) and its decoded lines; answers 503 while
/// `fail` is set.
#[derive(Clone, Default)]
pub struct FakeLoki {
    pub requests: std::sync::Arc<Mutex<Vec<Received>>>,
    pub lines: std::sync::Arc<Mutex<Vec<String>>>,
    pub fail: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl FakeLoki {
    /// Serves `/loki/api/v1/push` on a free port; returns the root URL.
    pub async fn serve(&self) -> String {
        let me = self.clone();
        let push = move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
            let me = me.clone();
            async move {
                me.requests.lock().unwrap().push((headers, body.to_vec()));
                if me.fail.load(Ordering::SeqCst) {
                    return axum::http::StatusCode::SERVICE_UNAVAILABLE;
                }
                let streams = model::wire::loki_push::decode_protobuf(&body, 64 << 20).unwrap();
                me.lines.lock().unwrap().extend(LogStream::into_records(streams).into_iter().map(|r| r.line));
                axum::http::StatusCode::NO_CONTENT
            }
        };
        let app = axum::Router::new().route("/loki/api/v1/push", axum::routing::post(push));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{address}")
    }

    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }
}
