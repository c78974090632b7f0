//! Shared pieces of the notification tests: a local HTTP server standing in for the chat services
//! and webhooks (it records every request and answers as the real service does), polling with a
//! deadline, and a notifier with fast retries.
#![allow(dead_code)]

pub mod smtp;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use alerting::notify::{Notifier, NotifierOptions, NotifyConfig};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::routing::post;
use serde_json::{Value, json};

/// One recorded request.
#[derive(Clone, Debug)]
pub struct Request {
    pub path: String,
    pub query: HashMap<String, String>,
    pub body: Value,
    /// Lower-case header names.
    pub headers: HashMap<String, String>,
}

/// A running capture server.
#[derive(Clone)]
pub struct Capture {
    pub base: String,
    seen: Arc<parking_lot::Mutex<Vec<Request>>>,
}

async fn hook(
    State(seen): State<Arc<parking_lot::Mutex<Vec<Request>>>>,
    Path(kind): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: axum::http::HeaderMap,
    Json(body): Json<Value>,
) -> Json<Value> {
    let headers =
        headers.iter().map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or_default().to_string())).collect();
    seen.lock().push(Request { path: kind.clone(), query, body, headers });
    Json(match kind.as_str() {
        "feishu" => json!({"code": 0, "msg": "success"}),
        "dingtalk" | "wecom" => json!({"errcode": 0, "errmsg": "ok"}),
        _ => json!({}),
    })
}

impl Capture {
    pub async fn start() -> Self {
        let seen = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let app = axum::Router::new().route("/{kind}", post(hook)).with_state(seen.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { base, seen }
    }

    /// Requests to `/{path}` so far.
    pub fn requests(&self, path: &str) -> Vec<Request> {
        self.seen.lock().iter().filter(|r| r.path == path).cloned().collect()
    }

    /// Waits until `/{path}` has had `n` requests, then returns them.
    pub async fn wait_for(&self, path: &str, n: usize) -> Vec<Request> {
        wait_until(&format!("{n} requests to /{path}"), || self.requests(path).len() >= n).await;
        self.requests(path)
    }
}

/// Polls `cond` every 20 ms for up to 20 s.
pub async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Starts a notifier over `yaml` with data in `dir` and fast retries.
pub async fn notifier(yaml: &str, dir: &std::path::Path) -> Notifier {
    let cfg = NotifyConfig::from_yaml(yaml).unwrap();
    let mut opts = NotifierOptions::new(dir, "http://tarsier.example:3100");
    opts.retry_initial = Duration::from_millis(50);
    opts.retry_max = Duration::from_millis(200);
    Notifier::start(&cfg, opts).await.unwrap()
}

pub fn tenant() -> model::TenantId {
    model::TenantId::new("team-a").unwrap()
}

/// The notifier's metrics as `/metrics` shows them (Prometheus text format).
pub fn scrape(n: &Notifier) -> String {
    let mut registry = prometheus_client::registry::Registry::default();
    n.register_metrics(&mut registry);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    text
}

/// The value of the sample `series` (name and labels exactly as printed) in `text`.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}
