//! Relabeling, stale markers and scrape limits end to end: a local server whose page changes
//! from one scrape to the next, scraped through the collector's public API, and how a reloaded job
//! ends or keeps its targets.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::http::StatusCode;
use collector::{Collector, CollectorConfig, RelabelConfig, ScrapeConfig, StaticConfig, TargetHealth};
use common::{RecordingSink, wait_for};
use model::TimeSeries;

/// Serves `pages[i]` on the i-th request, then HTTP 500 forever.
async fn serve_pages(pages: &'static [&'static str]) -> String {
    let hits = Arc::new(AtomicUsize::new(0));
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let n = hits.fetch_add(1, Ordering::SeqCst);
            async move {
                match pages.get(n) {
                    Some(page) => (StatusCode::OK, page.to_string()),
                    None => (StatusCode::INTERNAL_SERVER_ERROR, "gone".to_string()),
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    address
}

fn rules(json: &str) -> Vec<RelabelConfig> {
    serde_json::from_str(json).unwrap()
}

fn find(sink: &RecordingSink, name: &str, pred: impl Fn(&TimeSeries) -> bool) -> Vec<TimeSeries> {
    sink.series.lock().unwrap().iter().filter(|s| s.labels.metric_name() == Some(name) && pred(s)).cloned().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relabels_marks_stale_and_enforces_limits() {
    static PAGES: &[&str] = &["a 1\nb{x=\"1\"} 2\ndropme 3\n", "a 1\ndropme 3\n"];
    static BIG: &[&str] = &["a 1\nb 2\n"; 100];
    let changing = serve_pages(PAGES).await;
    let limited = serve_pages(BIG).await;
    let mut config = CollectorConfig::default();
    config.shipping.batch_max_wait = Duration::from_millis(20);
    config.scrape_configs.push(ScrapeConfig {
        job_name: "app".into(),
        scrape_interval: Some(Duration::from_millis(100)),
        static_configs: vec![StaticConfig {
            targets: vec![changing.clone(), "skip.me:1".into()],
            labels: [("__meta_team".to_string(), "core".to_string())].into(),
        }],
        relabel_configs: rules(
            r#"[{"source_labels":["__address__"],"regex":"skip\\..*","action":"drop"},
                {"source_labels":["__meta_team"],"target_label":"team"}]"#,
        ),
        metric_relabel_configs: rules(r#"[{"source_labels":["__name__"],"regex":"dropme","action":"drop"}]"#),
        ..Default::default()
    });
    config.scrape_configs.push(ScrapeConfig {
        job_name: "limited".into(),
        scrape_interval: Some(Duration::from_millis(100)),
        sample_limit: 1,
        static_configs: vec![StaticConfig { targets: vec![limited.clone()], labels: Default::default() }],
        ..Default::default()
    });
    let too_big = serve_pages(BIG).await;
    config.scrape_configs.push(ScrapeConfig {
        job_name: "too_big".into(),
        scrape_interval: Some(Duration::from_millis(100)),
        body_size_limit: 8, // the page is 8 bytes: reaching the limit fails, as in Prometheus
        static_configs: vec![StaticConfig { targets: vec![too_big], labels: Default::default() }],
        ..Default::default()
    });
    let state = tempfile::tempdir().unwrap();
    let sink = Arc::new(RecordingSink::default());
    let collector = Collector::start(config, state.path(), sink.clone(), sink.clone()).await.unwrap();

    let of = |instance: &str| {
        let instance = instance.to_string();
        move |s: &TimeSeries| s.labels.get("instance") == Some(instance.as_str())
    };
    let (changing_ref, limited_ref) = (changing.as_str(), limited.as_str());
    let is_stale = |s: &TimeSeries| model::is_stale_nan(s.samples[0].value);
    wait_for("the vanished series and then everything marked stale", || {
        find(&sink, "a", |s| of(changing_ref)(s) && is_stale(s)).len() == 1
            && find(&sink, "up", |s| of(limited_ref)(s)).len() >= 2
    })
    .await;

    // Target relabeling: the team label from a meta label; no __ labels on series; one dropped target.
    let a = find(&sink, "a", of(changing_ref));
    assert_eq!(a[0].labels.get("team"), Some("core"));
    assert!(a[0].labels.iter().all(|l| !l.name.starts_with("__") || l.name == "__name__"));
    let dropped = collector.dropped_targets();
    assert_eq!(dropped.len(), 1);
    assert_eq!(dropped[0].discovered_labels.get("__address__"), Some("skip.me:1"));
    assert_eq!(collector.targets().iter().filter(|t| t.job == "app").count(), 1);

    // Metric relabeling dropped `dropme`; the synthetic series count before and after.
    assert!(find(&sink, "dropme", |_| true).is_empty());
    let first = |name: &str| find(&sink, name, of(changing_ref))[0].samples[0].value;
    assert_eq!(first("scrape_samples_scraped"), 3.0);
    assert_eq!(first("scrape_samples_post_metric_relabeling"), 2.0);

    // Staleness: b vanished in scrape 2, a when scrape 3 failed; each marked exactly once, after
    // its last real sample.
    let b = find(&sink, "b", of(changing_ref));
    assert_eq!(b.len(), 2, "{b:?}");
    assert!(!is_stale(&b[0]) && is_stale(&b[1]) && b[1].samples[0].timestamp_ms > b[0].samples[0].timestamp_ms);
    let a_values: Vec<f64> = a.iter().map(|s| s.samples[0].value).collect();
    assert_eq!(a_values.len(), 3, "{a_values:?}");
    assert!(model::is_stale_nan(a_values[2]) && a_values[..2] == [1.0, 1.0]);
    let ups: Vec<f64> = find(&sink, "up", of(changing_ref)).iter().map(|s| s.samples[0].value).collect();
    assert_eq!(ups[..3], [1.0, 1.0, 0.0]);
    assert!(ups.iter().all(|v| !v.is_nan()), "synthetic series are not marked stale while the target exists");

    // sample_limit: the scrape fails with Prometheus's error, up 0, and nothing is shipped.
    assert!(find(&sink, "up", of(limited_ref)).iter().all(|s| s.samples[0].value == 0.0));
    assert!(find(&sink, "b", of(limited_ref)).is_empty() && find(&sink, "a", of(limited_ref)).is_empty());
    let limited_status = collector.targets().into_iter().find(|t| t.job == "limited").unwrap();
    assert_eq!(limited_status.health, TargetHealth::Down);
    assert_eq!(limited_status.last_error.as_deref(), Some("sample limit exceeded"));
    wait_for("the too-big target scraped", || {
        collector.targets().iter().any(|t| t.job == "too_big" && t.last_scrape.is_some())
    })
    .await;
    let too_big_status = collector.targets().into_iter().find(|t| t.job == "too_big").unwrap();
    assert_eq!(too_big_status.health, TargetHealth::Down);
    assert_eq!(too_big_status.last_error.as_deref(), Some("body size limit exceeded"));
    collector.shutdown().await.unwrap();
}

/// `Collector::reload` of a changed job: a target the new job still scrapes restarts without
/// stale markers (as Prometheus's scrape pool reload), one whose labels changed is a new target
/// and the old one's series are marked stale; a bad job refuses the reload and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_job_restarts_quietly_and_relabeled_targets_go_stale() {
    static PAGES: &[&str] = &["m 1\n"; 10_000];
    let address = serve_pages(PAGES).await;
    let job = |interval_ms: u64, labels: &[(&str, &str)]| ScrapeConfig {
        job_name: "app".into(),
        scrape_interval: Some(Duration::from_millis(interval_ms)),
        static_configs: vec![StaticConfig {
            targets: vec![address.clone()],
            labels: labels.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
        }],
        ..Default::default()
    };
    let mut config = CollectorConfig::default();
    config.shipping.batch_max_wait = Duration::from_millis(20);
    config.scrape_configs.push(job(100, &[]));
    let state = tempfile::tempdir().unwrap();
    let sink = Arc::new(RecordingSink::default());
    let collector = Collector::start(config.clone(), state.path(), sink.clone(), sink.clone()).await.unwrap();
    let is_stale = |s: &TimeSeries| model::is_stale_nan(s.samples[0].value);
    let plain = |s: &TimeSeries| s.labels.get("team").is_none();
    wait_for("the first scrapes", || find(&sink, "m", plain).len() >= 2).await;

    // Another interval: same target, so its loop restarts quietly and keeps scraping.
    config.scrape_configs[0] = job(150, &[]);
    collector.reload(&config).await.unwrap();
    let before = find(&sink, "m", plain).len();
    wait_for("scrapes by the restarted loop", || find(&sink, "m", plain).len() >= before + 2).await;
    assert!(find(&sink, "m", |s| plain(s) && is_stale(s)).is_empty(), "a continuing target is not marked stale");

    // A target label: a different target; the old series end with one stale marker.
    config.scrape_configs[0] = job(150, &[("team", "core")]);
    collector.reload(&config).await.unwrap();
    wait_for("the old series marked stale and the new one scraped", || {
        find(&sink, "m", |s| plain(s) && is_stale(s)).len() == 1
            && !find(&sink, "m", |s| s.labels.get("team") == Some("core")).is_empty()
    })
    .await;
    assert_eq!(collector.targets().len(), 1);

    // A job that does not compile is refused whole; the running one is untouched.
    let mut bad = config.clone();
    bad.scrape_configs.push(ScrapeConfig {
        job_name: "bad".into(),
        relabel_configs: rules(r#"[{"source_labels":["a"],"regex":"(","target_label":"b"}]"#),
        ..Default::default()
    });
    let error = collector.reload(&bad).await.unwrap_err().to_string();
    assert!(error.contains("scrape_configs[1]"), "{error}");
    assert_eq!(collector.targets().len(), 1);
    collector.shutdown().await.unwrap();
}

/// A page that loses most of its series at once: the label cache drops their entries in that
/// same scrape, after the staleness pass that needs their labels, so every one is marked stale.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn series_gone_in_bulk_are_all_marked_stale() {
    let many: String = (0..100).map(|i| format!("m{{i=\"{i}\"}} {i}\n")).collect::<String>() + "a 1\n";
    let pages: &'static [&'static str] =
        Box::leak(vec![&*Box::leak(many.into_boxed_str()), "a 1\n"].into_boxed_slice());
    let target = serve_pages(pages).await;
    let mut config = CollectorConfig::default();
    config.shipping.batch_max_wait = Duration::from_millis(20);
    config.scrape_configs.push(ScrapeConfig {
        job_name: "app".into(),
        scrape_interval: Some(Duration::from_millis(100)),
        static_configs: vec![StaticConfig { targets: vec![target], labels: Default::default() }],
        ..Default::default()
    });
    let state = tempfile::tempdir().unwrap();
    let sink = Arc::new(RecordingSink::default());
    let collector = Collector::start(config, state.path(), sink.clone(), sink.clone()).await.unwrap();
    let stale = || find(&sink, "m", |s| model::is_stale_nan(s.samples[0].value)).len();
    wait_for("stale markers for the vanished series", || stale() >= 100).await;
    let mut marked: Vec<String> =
        find(&sink, "m", |s| model::is_stale_nan(s.samples[0].value)).iter().map(|s| s.labels.to_string()).collect();
    marked.sort();
    marked.dedup();
    assert_eq!(marked.len(), 100, "each vanished series once: {marked:?}");
    collector.shutdown().await.unwrap();
}
