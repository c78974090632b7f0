//! Scraping a real HTTP endpoint (a local axum server) through the collector's public API.

mod common;

use std::sync::Arc;
use std::time::Duration;

use collector::{Collector, CollectorConfig, ScrapeConfig, StaticConfig, TargetHealth};
use common::{RecordingSink, wait_for};

const PAGE: &str = "# HELP http_requests_total Requests.\n# TYPE http_requests_total counter\n\
http_requests_total{code=\"200\",job=\"inner\"} 1027 1395066363000\nprocess_up 1\n";

async fn serve_metrics() -> String {
    let app = axum::Router::new().route("/metrics", axum::routing::get(|| async { PAGE }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    address
}

async fn unused_address() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrapes_label_and_ship_samples_with_synthetic_series() {
    let up_target = serve_metrics().await;
    let down_target = unused_address().await;
    let mut config = CollectorConfig::default();
    config.shipping.batch_max_wait = Duration::from_millis(20);
    config.scrape_configs.push(ScrapeConfig {
        job_name: "app".into(),
        scrape_interval: Some(Duration::from_millis(200)),
        static_configs: vec![StaticConfig {
            targets: vec![up_target.clone(), down_target.clone()],
            labels: [("env".to_string(), "test".to_string())].into(),
        }],
        ..Default::default()
    });
    let state = tempfile::tempdir().unwrap();
    let sink = Arc::new(RecordingSink::default());
    let collector = Collector::start(config, state.path(), sink.clone(), sink.clone()).await.unwrap();

    let find = |name: &str, instance: &str| {
        sink.series
            .lock()
            .unwrap()
            .iter()
            .find(|s| s.labels.metric_name() == Some(name) && s.labels.get("instance") == Some(instance))
            .cloned()
    };
    wait_for("both targets scraped", || find("up", &up_target).is_some() && find("up", &down_target).is_some()).await;
    assert_eq!(find("up", &up_target).unwrap().samples[0].value, 1.0);
    assert_eq!(find("up", &down_target).unwrap().samples[0].value, 0.0);
    assert_eq!(find("scrape_samples_scraped", &up_target).unwrap().samples[0].value, 2.0);
    assert_eq!(find("scrape_series_added", &up_target).unwrap().samples[0].value, 2.0);
    assert!(find("scrape_duration_seconds", &down_target).is_some());

    let requests = find("http_requests_total", &up_target).unwrap();
    assert_eq!(requests.samples[0].value, 1027.0);
    assert_eq!(requests.samples[0].timestamp_ms, 1395066363000);
    assert_eq!(requests.labels.get("job"), Some("app"));
    assert_eq!(requests.labels.get("exported_job"), Some("inner"));
    assert_eq!(requests.labels.get("env"), Some("test"));
    assert_eq!(requests.labels.get("code"), Some("200"));

    let targets = collector.targets();
    assert_eq!(targets.len(), 2);
    let up = targets.iter().find(|t| t.labels.get("instance") == Some(up_target.as_str())).unwrap();
    assert_eq!(up.health, TargetHealth::Up);
    assert_eq!(up.scrape_url, format!("http://{up_target}/metrics"));
    assert!(up.last_scrape.is_some() && up.last_duration.is_some() && up.last_error.is_none());
    let down = targets.iter().find(|t| t.labels.get("instance") == Some(down_target.as_str())).unwrap();
    assert_eq!(down.health, TargetHealth::Down);
    assert!(down.last_error.is_some());
    collector.shutdown().await.unwrap();
}

/// Serves the page gzip-encoded to a scraper that accepts it, as node_exporter does.
async fn serve_gzip_metrics() -> String {
    use axum::http::{HeaderMap, header};
    let handler = |headers: HeaderMap| async move {
        let accepts = headers.get(header::ACCEPT_ENCODING).and_then(|v| v.to_str().ok()).unwrap_or("");
        assert!(accepts.contains("gzip"), "the scraper asks for gzip: {accepts:?}");
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut encoder, PAGE.as_bytes()).unwrap();
        (
            [(header::CONTENT_ENCODING, "gzip"), (header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            encoder.finish().unwrap(),
        )
    };
    let app = axum::Router::new().route("/metrics", axum::routing::get(handler));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    address
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gzip_page_is_decoded() {
    let target = serve_gzip_metrics().await;
    let mut config = CollectorConfig::default();
    config.shipping.batch_max_wait = Duration::from_millis(20);
    config.scrape_configs.push(ScrapeConfig {
        job_name: "app".into(),
        scrape_interval: Some(Duration::from_millis(200)),
        static_configs: vec![StaticConfig { targets: vec![target.clone()], labels: Default::default() }],
        ..Default::default()
    });
    let state = tempfile::tempdir().unwrap();
    let sink = Arc::new(RecordingSink::default());
    let collector = Collector::start(config, state.path(), sink.clone(), sink.clone()).await.unwrap();
    let value = |name: &str| {
        sink.series.lock().unwrap().iter().find(|s| s.labels.metric_name() == Some(name)).map(|s| s.samples[0].value)
    };
    wait_for("the gzip page scraped", || value("up").is_some()).await;
    assert_eq!(value("up"), Some(1.0), "{:?}", collector.targets()[0].last_error);
    assert_eq!(value("http_requests_total"), Some(1027.0));
    assert_eq!(value("process_up"), Some(1.0));
    collector.shutdown().await.unwrap();
}

/// Serves OpenMetrics only to a scraper that asks for it, as exporters negotiate.
async fn serve_openmetrics() -> String {
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(|headers: axum::http::HeaderMap| async move {
            let accept = headers.get("accept").and_then(|v| v.to_str().ok()).unwrap_or("");
            if accept.starts_with("application/openmetrics-text;version=1.0.0") {
                (
                    [("content-type", "application/openmetrics-text; version=1.0.0; charset=utf-8")],
                    "# TYPE jobs counter\njobs_total 3 1700000000.25\njobs_created 1700000000 1700000000.25\n# EOF\n",
                )
            } else {
                ([("content-type", "text/plain; version=0.0.4")], "negotiation_failed 1\n")
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    address
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn negotiates_and_parses_openmetrics() {
    let target = serve_openmetrics().await;
    let mut config = CollectorConfig::default();
    config.shipping.batch_max_wait = Duration::from_millis(20);
    config.scrape_configs.push(ScrapeConfig {
        job_name: "om".into(),
        scrape_interval: Some(Duration::from_millis(200)),
        static_configs: vec![StaticConfig { targets: vec![target], labels: Default::default() }],
        ..Default::default()
    });
    let state = tempfile::tempdir().unwrap();
    let sink = Arc::new(RecordingSink::default());
    let collector = Collector::start(config, state.path(), sink.clone(), sink.clone()).await.unwrap();
    let find = |name: &str| sink.series.lock().unwrap().iter().find(|s| s.labels.metric_name() == Some(name)).cloned();
    wait_for("the OpenMetrics page scraped", || find("up").is_some()).await;
    assert_eq!(find("up").unwrap().samples[0].value, 1.0, "{:?}", collector.targets());
    assert!(find("negotiation_failed").is_none());
    let jobs = find("jobs_total").unwrap();
    assert_eq!((jobs.samples[0].value, jobs.samples[0].timestamp_ms), (3.0, 1_700_000_000_250));
    assert_eq!(find("scrape_samples_scraped").unwrap().samples[0].value, 2.0);
    collector.shutdown().await.unwrap();
}

/// A store in the collector's process (as `tarsier run`'s tsdb): takes each scrape from its loop,
/// failing the first `fail_first` appends.
#[derive(Default)]
struct InProcessStore {
    scrapes: std::sync::Mutex<Vec<Vec<model::TimeSeries>>>,
    fail_first: std::sync::atomic::AtomicUsize,
    /// The references each stored scrape came with.
    refs: std::sync::Mutex<Vec<Vec<u64>>>,
}

impl collector::MetricSink for InProcessStore {
    fn push_samples(
        &self,
        _tenant: model::TenantId,
        series: Vec<model::TimeSeries>,
    ) -> futures::future::BoxFuture<'static, Result<(), collector::SinkError>> {
        use std::sync::atomic::Ordering;
        let fail = self.fail_first.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
        if !fail {
            self.scrapes.lock().unwrap().push(series);
        }
        Box::pin(async move { if fail { Err(collector::SinkError::retryable("disk full")) } else { Ok(()) } })
    }

    fn takes_scrapes_directly(&self) -> bool {
        true
    }

    /// Answers each series with a reference derived from its labels, and hands the series back.
    fn push_scrape(
        &self,
        tenant: model::TenantId,
        series: Vec<model::TimeSeries>,
        refs: Vec<u64>,
    ) -> futures::future::BoxFuture<'static, collector::ScrapePushed> {
        let answer: Vec<u64> = series.iter().map(|s| s.labels.stable_hash() | 1).collect();
        let result = futures::executor::block_on(self.push_samples(tenant, series.clone()));
        if result.is_ok() {
            self.refs.lock().unwrap().push(refs.clone());
        }
        let refs = if result.is_ok() { answer } else { refs };
        Box::pin(async move { collector::ScrapePushed { refs, series: Some(series), result } })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_in_process_store_takes_each_scrape_whole_from_its_loop_and_a_failed_one_is_counted() {
    let target = serve_metrics().await;
    let mut config = CollectorConfig::default();
    // Batching would merge scrapes if they went through the shipper.
    config.shipping.batch_max_wait = Duration::from_secs(5);
    config.scrape_configs.push(ScrapeConfig {
        job_name: "app".into(),
        scrape_interval: Some(Duration::from_millis(100)),
        static_configs: vec![StaticConfig { targets: vec![target.clone()], labels: Default::default() }],
        ..Default::default()
    });
    let state = tempfile::tempdir().unwrap();
    let store = Arc::new(InProcessStore { fail_first: 2.into(), ..Default::default() });
    let logs = Arc::new(RecordingSink::default());
    let collector = Collector::start(config, state.path(), logs, store.clone()).await.unwrap();
    let mut registry = prometheus_client::registry::Registry::default();
    collector.register_metrics(&mut registry);

    wait_for("three scrapes stored", || store.scrapes.lock().unwrap().len() >= 3).await;
    for scrape in store.scrapes.lock().unwrap().iter() {
        // One scrape per append: the page's two series and the five synthetic ones, nothing else.
        assert_eq!(scrape.len(), 7, "{scrape:?}");
        assert!(scrape.iter().all(|s| s.labels.get("instance") == Some(target.as_str())));
        assert_eq!(scrape.iter().filter(|s| s.labels.metric_name() == Some("up")).count(), 1);
        // Refilled from the series handed back: still one sample each, with this page's values.
        assert!(scrape.iter().all(|s| s.samples.len() == 1), "{scrape:?}");
        let value = |name: &str| scrape.iter().find(|s| s.labels.metric_name() == Some(name)).unwrap().samples[0];
        assert_eq!(
            (value("http_requests_total").value, value("http_requests_total").timestamp_ms),
            (1027.0, 1395066363000)
        );
        assert_eq!((value("process_up").value, value("up").value), (1.0, 1.0));
    }
    // The loop hands back what the store answered for the same series on the scrape before.
    let (scrapes, refs) = (store.scrapes.lock().unwrap().clone(), store.refs.lock().unwrap().clone());
    assert!(refs[0].iter().all(|r| *r == 0), "nothing answered before the first stored scrape: {:?}", refs[0]);
    for (scrape, refs) in scrapes.iter().zip(refs.iter()).skip(1) {
        let expected: Vec<u64> = scrape.iter().map(|s| s.labels.stable_hash() | 1).collect();
        assert_eq!(refs, &expected);
    }
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    let dropped = text
        .lines()
        .find(|l| l.starts_with("tarsier_collector_dropped_total{") && l.contains("reason=\"store_failed\""))
        .unwrap_or_else(|| panic!("no store_failed drops in:\n{text}"));
    assert!(dropped.ends_with(" 14"), "two failed scrapes of 7 samples: {dropped}");
    collector.shutdown().await.unwrap();
}
