//! One scrape target's loop: fetch, parse, label, ship. Targets start at an offset within their
//! interval derived from a hash of their URL, so a job's targets spread out instead of all being
//! fetched at the same instant.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use model::{Labels, LabelsBuilder, Sample, TimeSeries};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::{CollectorConfig, ScrapeConfig};
use crate::metrics::CollectorMetrics;
use crate::relabel::{self, Relabeler};
use crate::scrape::exposition::{self, ScrapedSample};
use crate::scrape::populate::{self, JobDefaults, Outcome};
use crate::scrape::{DroppedTarget, TargetHealth, TargetStatus};
use crate::ship::Chunk;
use crate::tail::file::fnv1a;

/// The formats asked for, in Prometheus's order of preference: OpenMetrics 1.0, then text 0.0.4.
pub(crate) const ACCEPT: &str =
    "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.4,*/*;q=0.1";

/// Per-scrape limits of a job (0 = no limit); exceeding one fails the scrape.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Limits {
    pub sample: usize,
    pub label: usize,
    pub label_name_length: usize,
    pub label_value_length: usize,
    pub body_size: u64,
}

impl Limits {
    fn of(job: &ScrapeConfig) -> Self {
        Limits {
            sample: job.sample_limit,
            label: job.label_limit,
            label_name_length: job.label_name_length_limit,
            label_value_length: job.label_value_length_limit,
            body_size: job.body_size_limit,
        }
    }

    /// Prometheus's `verifyLabelLimits`, with its error texts.
    fn check_labels(&self, labels: &Labels) -> Result<(), String> {
        let metric: String = labels.metric_name().unwrap_or("").chars().take(50).collect();
        if self.label > 0 && labels.len() > self.label {
            return Err(format!(
                "label_limit exceeded (metric: {metric}, number of labels: {}, limit: {})",
                labels.len(),
                self.label
            ));
        }
        if self.label_name_length == 0 && self.label_value_length == 0 {
            return Ok(());
        }
        for label in labels.iter() {
            let name: String = label.name.chars().take(50).collect();
            if self.label_name_length > 0 && label.name.len() > self.label_name_length {
                return Err(format!(
                    "label_name_length_limit exceeded (metric: {metric}, label name: {name}, length: {}, limit: {})",
                    label.name.len(),
                    self.label_name_length
                ));
            }
            if self.label_value_length > 0 && label.value.len() > self.label_value_length {
                let value: String = label.value.chars().take(50).collect();
                return Err(format!(
                    "label_value_length_limit exceeded (metric: {metric}, label name: {name}, value: {value:?}, \
                     length: {}, limit: {})",
                    label.value.len(),
                    self.label_value_length
                ));
            }
        }
        Ok(())
    }
}

/// A configured target, ready to be scraped.
pub(crate) struct Target {
    pub job: String,
    pub url: reqwest::Url,
    pub target_labels: Labels,
    pub honor_labels: bool,
    pub interval: Duration,
    pub timeout: Duration,
    pub external_labels: Vec<(String, String)>,
    pub metric_relabel: Arc<Vec<Relabeler>>,
    pub limits: Limits,
    pub status: Arc<Mutex<TargetStatus>>,
}

/// Every job's static targets after `relabel_configs`: the active ones, and the dropped ones
/// (with their labels before relabeling). A target whose relabeled labels are unusable (no
/// address, bad interval, ...) is logged and skipped, as Prometheus does.
pub(crate) fn build_targets(config: &CollectorConfig) -> Result<(Vec<Target>, Vec<DroppedTarget>), crate::Error> {
    let mut targets = Vec::new();
    let mut dropped = Vec::new();
    for (i, job) in config.scrape_configs.iter().enumerate() {
        let (interval, timeout) = job.timing(&config.global);
        let key = format!("collector.scrape_configs[{i}]");
        let target_relabel = relabel::compile_all(&job.relabel_configs)
            .map_err(|e| crate::Error::Config(format!("{key}.relabel_configs{e}")))?;
        let metric_relabel = Arc::new(
            relabel::compile_all(&job.metric_relabel_configs)
                .map_err(|e| crate::Error::Config(format!("{key}.metric_relabel_configs{e}")))?,
        );
        let defaults = JobDefaults {
            job_name: &job.job_name,
            scheme: job.scheme.as_str(),
            metrics_path: &job.metrics_path,
            interval,
            timeout,
            params: &job.params,
        };
        for static_config in &job.static_configs {
            for address in &static_config.targets {
                let mut discovered = LabelsBuilder::default();
                for (name, value) in &static_config.labels {
                    discovered.set(name, value);
                }
                discovered.set(populate::ADDRESS, address);
                let populated = match populate::populate(&discovered.build(), &defaults, &target_relabel) {
                    Ok(Outcome::Active(p)) => p,
                    Ok(Outcome::Dropped(labels)) => {
                        dropped.push(DroppedTarget { job: job.job_name.clone(), discovered_labels: labels });
                        continue;
                    }
                    Err(error) => {
                        tracing::warn!(job = %job.job_name, target = %address, %error, "creating target failed");
                        continue;
                    }
                };
                let status = TargetStatus {
                    job: job.job_name.clone(),
                    scrape_url: populated.url.to_string(),
                    labels: populated.labels.clone(),
                    discovered_labels: populated.discovered.clone(),
                    health: TargetHealth::Unknown,
                    last_error: None,
                    last_scrape: None,
                    last_duration: None,
                };
                targets.push(Target {
                    job: job.job_name.clone(),
                    url: populated.url,
                    target_labels: populated.labels,
                    honor_labels: job.honor_labels,
                    interval: populated.interval,
                    timeout: populated.timeout,
                    external_labels: config.global.external_labels.clone().into_iter().collect(),
                    metric_relabel: metric_relabel.clone(),
                    limits: Limits::of(job),
                    status: Arc::new(Mutex::new(status)),
                });
            }
        }
    }
    Ok((targets, dropped))
}

/// The series of a target's last successful scrape, by label hash; the labels are kept only for
/// series without a timestamp of their own, the ones Prometheus tracks for staleness.
pub(crate) type SeenSeries = HashMap<u64, Option<Labels>>;

/// Scrapes `target` every interval until `cancel` (collector shutdown: no stale markers, as in
/// Prometheus) or `removed` (the target went away: stale markers for every series it had).
pub(crate) async fn run(
    target: Target,
    client: reqwest::Client,
    tx: mpsc::Sender<Chunk<TimeSeries>>,
    metrics: CollectorMetrics,
    cancel: CancellationToken,
    removed: CancellationToken,
) {
    let order_key = fnv1a(target.url.as_str().as_bytes());
    let interval_ms = target.interval.as_millis().max(1) as u64;
    let offset = Duration::from_millis(order_key % interval_ms);
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + offset, target.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut previous = SeenSeries::new();
    loop {
        let series = tokio::select! {
            biased;
            _ = cancel.cancelled() => return,
            _ = removed.cancelled() => end_of_run_staleness(&target, &previous, model::time::now_ms()),
            _ = ticker.tick() => scrape_once(&target, &client, &metrics, &mut previous).await,
        };
        let chunk = Chunk { bytes: 0, items: series, order_key, ack: None };
        tokio::select! {
            _ = cancel.cancelled() => return,
            sent = tx.send(chunk) => if sent.is_err() { return },
        }
        if removed.is_cancelled() {
            return;
        }
    }
}

/// Stale markers for everything a vanished target had: its scraped series and its synthetic ones.
pub(crate) fn end_of_run_staleness(target: &Target, previous: &SeenSeries, ts_ms: i64) -> Vec<TimeSeries> {
    let mut series: Vec<TimeSeries> = previous
        .values()
        .flatten()
        .map(|l| TimeSeries::new(l.clone(), vec![Sample::new(ts_ms, model::stale_nan())]))
        .collect();
    for name in REPORT_SERIES {
        series.push(TimeSeries::new(report_labels(target, name), vec![Sample::new(ts_ms, model::stale_nan())]));
    }
    series
}

const REPORT_SERIES: [&str; 5] = [
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
];

fn report_labels(target: &Target, name: &str) -> Labels {
    let mut labels = target.target_labels.to_builder();
    labels.set(model::METRIC_NAME, name);
    add_external(&mut labels, &target.external_labels);
    labels.build()
}

/// What one scrape's samples became after labelling, metric relabeling and the limits.
struct Appended {
    series: Vec<TimeSeries>,
    current: SeenSeries,
    post_relabel: usize,
}

fn append(target: &Target, samples: Vec<ScrapedSample>, start_ms: i64) -> Result<Appended, (String, usize)> {
    let mut series = Vec::with_capacity(samples.len());
    let mut current = SeenSeries::with_capacity(samples.len());
    for sample in samples {
        let Some(labels) = relabel::process(&label_sample(target, &sample), &target.metric_relabel) else {
            continue;
        };
        if labels.is_empty() {
            continue;
        }
        let post = series.len() + 1;
        if target.limits.sample > 0 && post > target.limits.sample {
            return Err(("sample limit exceeded".to_string(), post));
        }
        target.limits.check_labels(&labels).map_err(|e| (e, post))?;
        let mut builder = labels.to_builder();
        add_external(&mut builder, &target.external_labels);
        let labels = builder.build();
        let tracked = sample.timestamp_ms.is_none().then(|| labels.clone());
        current.insert(labels.stable_hash(), tracked);
        let ts = sample.timestamp_ms.unwrap_or(start_ms);
        series.push(TimeSeries::new(labels, vec![Sample::new(ts, sample.value)]));
    }
    let post_relabel = series.len();
    Ok(Appended { series, current, post_relabel })
}

/// One scrape, returning the labelled samples, stale markers for series that disappeared since the
/// last scrape (all of them if this one failed), and the synthetic series.
pub(crate) async fn scrape_once(
    target: &Target,
    client: &reqwest::Client,
    metrics: &CollectorMetrics,
    previous: &mut SeenSeries,
) -> Vec<TimeSeries> {
    let start_ms = model::time::now_ms();
    let started = Instant::now();
    let fetched = fetch(target, client).await;
    let duration = started.elapsed();
    let (scraped, outcome) = match fetched {
        Ok(samples) => (samples.len(), append(target, samples, start_ms)),
        Err(e) => (0, Err((e, 0))),
    };
    let result_label = if outcome.is_ok() { "success" } else { "failure" };
    metrics
        .scrapes
        .get_or_create(&vec![("job".to_string(), target.job.clone()), ("result".to_string(), result_label.to_string())])
        .inc();
    let (mut series, current, post_relabel, added, error) = match outcome {
        Ok(a) => {
            let added = a.current.keys().filter(|h| !previous.contains_key(h)).count();
            (a.series, a.current, a.post_relabel, added, None)
        }
        Err((e, post)) => (Vec::new(), SeenSeries::new(), post, 0, Some(e)),
    };
    for (hash, labels) in previous.iter() {
        if let Some(labels) = labels
            && !current.contains_key(hash)
        {
            series.push(TimeSeries::new(labels.clone(), vec![Sample::new(start_ms, model::stale_nan())]));
        }
    }
    *previous = current;
    let up = if error.is_none() { 1.0 } else { 0.0 };
    for (name, value) in
        REPORT_SERIES.into_iter().zip([up, duration.as_secs_f64(), scraped as f64, post_relabel as f64, added as f64])
    {
        series.push(TimeSeries::new(report_labels(target, name), vec![Sample::new(start_ms, value)]));
    }
    let mut status = target.status.lock().unwrap_or_else(|e| e.into_inner());
    status.health = if error.is_none() { TargetHealth::Up } else { TargetHealth::Down };
    if let Some(e) = &error {
        tracing::debug!(job = %target.job, url = %target.url, error = %e, "scrape failed");
    }
    status.last_error = error;
    status.last_scrape = Some(start_ms);
    status.last_duration = Some(duration);
    series
}

/// Scraped labels plus target labels. On a conflict the target's value wins and the scraped one
/// is kept as `exported_<name>`, unless `honor_labels` (then the scraped value wins).
fn label_sample(target: &Target, sample: &ScrapedSample) -> Labels {
    let mut builder = LabelsBuilder::default();
    for (name, value) in &sample.labels {
        builder.set(name, value);
    }
    builder.set(model::METRIC_NAME, &sample.name);
    for label in target.target_labels.iter() {
        match sample.labels.iter().find(|(n, v)| n == &label.name && !v.is_empty()) {
            Some(_) if target.honor_labels => {}
            Some((_, scraped)) => {
                builder.set(format!("exported_{}", label.name), scraped);
                builder.set(&label.name, &label.value);
            }
            None => {
                builder.set(&label.name, &label.value);
            }
        }
    }
    builder.build()
}

fn add_external(builder: &mut LabelsBuilder, external: &[(String, String)]) {
    for (name, value) in external {
        if builder.get(name).is_none() {
            builder.set(name, value);
        }
    }
}

async fn fetch(target: &Target, client: &reqwest::Client) -> Result<Vec<ScrapedSample>, String> {
    let mut response = client
        .get(target.url.clone())
        .header("Accept", ACCEPT)
        .header("X-Prometheus-Scrape-Timeout-Seconds", format!("{}", target.timeout.as_secs_f64()))
        .timeout(target.timeout)
        .send()
        .await
        .map_err(|e| format!("{e}"))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("server returned HTTP status {status}"));
    }
    let content_type =
        response.headers().get(reqwest::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_string);
    let limit = target.limits.body_size;
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| format!("reading body: {e}"))? {
        body.extend_from_slice(&chunk);
        // As Prometheus: reading `limit` bytes already counts as exceeding it.
        if limit > 0 && body.len() as u64 >= limit {
            return Err("body size limit exceeded".to_string());
        }
    }
    let body = String::from_utf8(body).map_err(|e| format!("response body is not UTF-8: {e}"))?;
    exposition::parse_for_content_type(content_type.as_deref(), &body).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(honor_labels: bool) -> Target {
        let mut config = CollectorConfig::default();
        config.global.external_labels.insert("cluster".into(), "c1".into());
        config.scrape_configs.push(ScrapeConfig {
            job_name: "node".into(),
            honor_labels,
            params: [("module".to_string(), vec!["a b".to_string()])].into(),
            static_configs: vec![crate::config::StaticConfig {
                targets: vec!["h:9100".into()],
                labels: [("env".to_string(), "dev".to_string())].into(),
            }],
            ..Default::default()
        });
        build_targets(&config).unwrap().0.remove(0)
    }

    fn sample(labels: &[(&str, &str)]) -> ScrapedSample {
        ScrapedSample {
            name: "m".into(),
            labels: labels.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect(),
            value: 1.0,
            timestamp_ms: None,
        }
    }

    #[test]
    fn target_url_carries_path_and_params() {
        assert_eq!(target(false).url.as_str(), "http://h:9100/metrics?module=a+b");
    }

    #[test]
    fn conflicting_labels_are_exported_unless_honored() {
        let s = sample(&[("job", "inner"), ("cluster", "mine")]);
        let labels = label_sample(&target(false), &s);
        assert_eq!(labels.get("job"), Some("node"));
        assert_eq!(labels.get("exported_job"), Some("inner"));
        assert_eq!(labels.get("instance"), Some("h:9100"));
        assert_eq!(labels.get("env"), Some("dev"));
        assert_eq!(labels.get("cluster"), Some("mine"), "external labels never override");
        assert_eq!(labels.metric_name(), Some("m"));
        let honored = label_sample(&target(true), &s);
        assert_eq!(honored.get("job"), Some("inner"));
        assert_eq!(honored.get("exported_job"), None);
        assert_eq!(honored.get("instance"), Some("h:9100"));
    }

    #[test]
    fn label_limits_use_prometheus_messages() {
        let labels = Labels::from_pairs([("__name__", "m"), ("a", "xyz"), ("long_name", "v")]);
        let limits = |label, name, value| Limits {
            label,
            label_name_length: name,
            label_value_length: value,
            ..Default::default()
        };
        assert!(limits(3, 9, 3).check_labels(&labels).is_ok());
        assert_eq!(
            limits(2, 0, 0).check_labels(&labels).unwrap_err(),
            "label_limit exceeded (metric: m, number of labels: 3, limit: 2)"
        );
        assert_eq!(
            limits(0, 8, 0).check_labels(&labels).unwrap_err(),
            "label_name_length_limit exceeded (metric: m, label name: long_name, length: 9, limit: 8)"
        );
        assert_eq!(
            limits(0, 0, 2).check_labels(&labels).unwrap_err(),
            "label_value_length_limit exceeded (metric: m, label name: a, value: \"xyz\", length: 3, limit: 2)"
        );
    }

    #[test]
    fn metric_relabeling_runs_before_external_labels_and_limits() {
        let mut t = target(false);
        t.metric_relabel = Arc::new(
            relabel::compile_all(
                &serde_json::from_str::<Vec<crate::relabel::RelabelConfig>>(
                    r#"[{"source_labels":["kind"],"regex":"skip","action":"drop"},{"regex":"kind","action":"labeldrop"}]"#,
                )
                .unwrap(),
            )
            .unwrap(),
        );
        let samples = vec![sample(&[("kind", "skip")]), sample(&[("kind", "keep")]), sample(&[])];
        let appended = append(&t, samples.clone(), 5).unwrap();
        assert_eq!(appended.post_relabel, 2);
        assert_eq!(appended.current.len(), 1, "kind=keep and no labels collapse into one series once kind is dropped");
        assert!(
            appended.series.iter().all(|s| s.labels.get("kind").is_none() && s.labels.get("cluster") == Some("c1"))
        );
        t.limits.sample = 1;
        assert_eq!(append(&t, samples, 5).err(), Some(("sample limit exceeded".to_string(), 2)));
    }

    #[test]
    fn end_of_run_marks_tracked_and_synthetic_series_stale() {
        let t = target(false);
        let tracked = Labels::from_pairs([("__name__", "m"), ("job", "node")]);
        let previous = SeenSeries::from([(1, Some(tracked.clone())), (2, None)]);
        let series = end_of_run_staleness(&t, &previous, 42);
        assert_eq!(series.len(), 1 + REPORT_SERIES.len());
        assert!(series.iter().all(|s| model::is_stale_nan(s.samples[0].value) && s.samples[0].timestamp_ms == 42));
        assert!(series.iter().any(|s| s.labels == tracked));
        assert!(
            series.iter().any(|s| s.labels.metric_name() == Some("up") && s.labels.get("instance") == Some("h:9100"))
        );
    }

    #[tokio::test]
    async fn a_removed_target_ships_stale_markers_and_a_shutdown_does_not() {
        let app = axum::Router::new().route("/metrics", axum::routing::get(|| async { "m 1\n" }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let make_target = || {
            let mut config = CollectorConfig::default();
            config.scrape_configs.push(ScrapeConfig {
                job_name: "j".into(),
                scrape_interval: Some(Duration::from_millis(50)),
                static_configs: vec![crate::config::StaticConfig {
                    targets: vec![address.clone()],
                    labels: Default::default(),
                }],
                ..Default::default()
            });
            build_targets(&config).unwrap().0.remove(0)
        };
        for removed_not_shutdown in [true, false] {
            let (tx, mut rx) = mpsc::channel(4);
            let (cancel, removed) = (CancellationToken::new(), CancellationToken::new());
            let task = tokio::spawn(run(
                make_target(),
                reqwest::Client::new(),
                tx,
                CollectorMetrics::default(),
                cancel.clone(),
                removed.clone(),
            ));
            let first = rx.recv().await.unwrap();
            assert!(first.items.iter().any(|s| s.labels.metric_name() == Some("m") && s.samples[0].value == 1.0));
            if removed_not_shutdown {
                removed.cancel()
            } else {
                cancel.cancel()
            }
            task.await.unwrap();
            let mut last = first;
            while let Ok(chunk) = rx.try_recv() {
                last = chunk;
            }
            let all_stale = last.items.iter().all(|s| model::is_stale_nan(s.samples[0].value));
            assert_eq!(all_stale, removed_not_shutdown, "stale markers only when the target went away");
            if removed_not_shutdown {
                let names: Vec<_> = last.items.iter().filter_map(|s| s.labels.metric_name()).collect();
                assert!(names.contains(&"m") && names.contains(&"up"), "{names:?}");
            }
            assert!(rx.recv().await.is_none(), "nothing after the end of the run");
        }
    }
}
