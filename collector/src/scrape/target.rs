//! One scrape target's loop: fetch, parse, label, ship. Targets start at an offset within their
//! interval derived from a hash of their URL, so a job's targets spread out instead of all being
//! fetched at the same instant.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use model::{Labels, LabelsBuilder, Sample, TimeSeries};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::{CollectorConfig, ScrapeConfig};
use crate::metrics::CollectorMetrics;
use crate::scrape::exposition::{self, ScrapedSample};
use crate::scrape::{TargetHealth, TargetStatus};
use crate::ship::Chunk;
use crate::tail::file::fnv1a;

/// The exposition format asked for (text 0.0.4, which every exporter serves).
const ACCEPT: &str = "text/plain;version=0.0.4;q=1,*/*;q=0.1";

/// A configured target, ready to be scraped.
pub(crate) struct Target {
    pub job: String,
    pub url: reqwest::Url,
    pub target_labels: Labels,
    pub honor_labels: bool,
    pub interval: Duration,
    pub timeout: Duration,
    pub external_labels: Vec<(String, String)>,
    pub status: Arc<Mutex<TargetStatus>>,
}

/// Expands every job's static targets.
pub(crate) fn build_targets(config: &CollectorConfig) -> Result<Vec<Target>, crate::Error> {
    let mut targets = Vec::new();
    for job in &config.scrape_configs {
        let (interval, timeout) = job.timing(&config.global);
        for static_config in &job.static_configs {
            for address in &static_config.targets {
                let url = scrape_url(job, address)?;
                let mut labels = LabelsBuilder::default();
                for (name, value) in &static_config.labels {
                    labels.set(name, value);
                }
                labels.set("job", &job.job_name).set("instance", address);
                let target_labels = labels.build();
                let status = TargetStatus {
                    job: job.job_name.clone(),
                    scrape_url: url.to_string(),
                    labels: target_labels.clone(),
                    health: TargetHealth::Unknown,
                    last_error: None,
                    last_scrape: None,
                    last_duration: None,
                };
                targets.push(Target {
                    job: job.job_name.clone(),
                    url,
                    target_labels,
                    honor_labels: job.honor_labels,
                    interval,
                    timeout,
                    external_labels: config.global.external_labels.clone().into_iter().collect(),
                    status: Arc::new(Mutex::new(status)),
                });
            }
        }
    }
    Ok(targets)
}

fn scrape_url(job: &ScrapeConfig, address: &str) -> Result<reqwest::Url, crate::Error> {
    let text = format!("{}://{address}{}", job.scheme.as_str(), job.metrics_path);
    let mut url = reqwest::Url::parse(&text)
        .map_err(|e| crate::Error::Config(format!("scrape_configs {:?}: target {address:?}: {e}", job.job_name)))?;
    if !job.params.is_empty() {
        let mut query = url.query_pairs_mut();
        for (name, values) in &job.params {
            for value in values {
                query.append_pair(name, value);
            }
        }
    }
    Ok(url)
}

/// Scrapes `target` every interval until cancelled.
pub(crate) async fn run(
    target: Target,
    client: reqwest::Client,
    tx: mpsc::Sender<Chunk<TimeSeries>>,
    metrics: CollectorMetrics,
    cancel: CancellationToken,
) {
    let order_key = fnv1a(target.url.as_str().as_bytes());
    let interval_ms = target.interval.as_millis().max(1) as u64;
    let offset = Duration::from_millis(order_key % interval_ms);
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + offset, target.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut previous: HashSet<u64> = HashSet::new();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let series = scrape_once(&target, &client, &metrics, &mut previous).await;
        let chunk = Chunk { bytes: 0, items: series, order_key, ack: None };
        tokio::select! {
            _ = cancel.cancelled() => return,
            sent = tx.send(chunk) => if sent.is_err() { return },
        }
    }
}

/// One scrape, returning the labelled samples and synthetic series (also when it failed).
pub(crate) async fn scrape_once(
    target: &Target,
    client: &reqwest::Client,
    metrics: &CollectorMetrics,
    previous: &mut HashSet<u64>,
) -> Vec<TimeSeries> {
    let start_ms = model::time::now_ms();
    let started = Instant::now();
    let result = fetch(target, client).await;
    let duration = started.elapsed();
    let result_label = if result.is_ok() { "success" } else { "failure" };
    metrics
        .scrapes
        .get_or_create(&vec![("job".to_string(), target.job.clone()), ("result".to_string(), result_label.to_string())])
        .inc();
    let mut series = Vec::new();
    let mut current = HashSet::new();
    let (scraped, error) = match result {
        Ok(samples) => {
            let n = samples.len();
            for sample in samples {
                let labels = label_sample(target, &sample);
                current.insert(labels.stable_hash());
                let ts = sample.timestamp_ms.unwrap_or(start_ms);
                series.push(TimeSeries::new(labels, vec![Sample::new(ts, sample.value)]));
            }
            (n, None)
        }
        Err(e) => (0, Some(e)),
    };
    let added = if error.is_none() { current.difference(previous).count() } else { 0 };
    if error.is_none() {
        *previous = current;
    }
    let up = if error.is_none() { 1.0 } else { 0.0 };
    for (name, value) in [
        ("up", up),
        ("scrape_duration_seconds", duration.as_secs_f64()),
        ("scrape_samples_scraped", scraped as f64),
        ("scrape_samples_post_metric_relabeling", scraped as f64),
        ("scrape_series_added", added as f64),
    ] {
        let mut labels = target.target_labels.to_builder();
        labels.set(model::METRIC_NAME, name);
        add_external(&mut labels, &target.external_labels);
        series.push(TimeSeries::new(labels.build(), vec![Sample::new(start_ms, value)]));
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
    add_external(&mut builder, &target.external_labels);
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
    let response = client
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
    let body = response.text().await.map_err(|e| format!("reading body: {e}"))?;
    exposition::parse(&body).map_err(|e| e.to_string())
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
        build_targets(&config).unwrap().remove(0)
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
}
