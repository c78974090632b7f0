//! Configuration reload over HTTP and its status: `POST /-/reload` (Prometheus's endpoint) asks
//! the process's reloader and answers with its verdict; `GET /api/v1/status/runtimeinfo` has
//! Prometheus's shape (`reloadConfigSuccess`, `lastConfigTime`, ...) plus `lastReloadError`,
//! `lastReloadTime` (the last attempt, applied or refused; null before any) and `needsRestart`,
//! for the UI's status page. The reloader itself lives in the binary; this module
//! only holds the shared status and the request channel.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};
use parking_lot::RwLock;
use serde_json::json;
use tokio::sync::{mpsc, oneshot};

use crate::state::AppState;

/// What the last reload did.
#[derive(Clone, Debug)]
pub struct ReloadStatus {
    pub start_time: DateTime<Utc>,
    /// Whether the last reload (or the start) applied its configuration.
    pub success: bool,
    /// When a configuration was last applied successfully.
    pub last_config_time: DateTime<Utc>,
    /// When a reload was last attempted, applied or refused (`None` before the first).
    pub last_reload_time: Option<DateTime<Utc>>,
    /// Why the last reload was refused (the old configuration keeps running).
    pub last_error: Option<String>,
    /// Keys that changed but only take effect after a restart (listen address, data_dir, ...).
    pub needs_restart: Vec<String>,
    /// The metric store's retention, as Prometheus's `storageRetention`.
    pub storage_retention: String,
}

/// A reload request: the reloader answers with `Err(reason)` when it refused the new config.
pub type ReloadRequest = oneshot::Sender<Result<(), String>>;

/// Shared by the reloader (writes) and the handlers (read, request).
#[derive(Clone)]
pub struct Runtime {
    status: Arc<RwLock<ReloadStatus>>,
    requests: Option<mpsc::Sender<ReloadRequest>>,
}

impl Runtime {
    /// `requests` is where `POST /-/reload` sends; `None` when the process cannot reload (no file).
    pub fn new(storage_retention: String, requests: Option<mpsc::Sender<ReloadRequest>>) -> Runtime {
        let now = Utc::now();
        let status = ReloadStatus {
            start_time: now,
            success: true,
            last_config_time: now,
            last_reload_time: None,
            last_error: None,
            needs_restart: Vec::new(),
            storage_retention,
        };
        Runtime { status: Arc::new(RwLock::new(status)), requests }
    }

    pub fn status(&self) -> ReloadStatus {
        self.status.read().clone()
    }

    /// Records an applied configuration.
    pub fn record_success(&self, needs_restart: Vec<String>) {
        let mut s = self.status.write();
        let now = Utc::now();
        s.success = true;
        s.last_config_time = now;
        s.last_reload_time = Some(now);
        s.last_error = None;
        s.needs_restart = needs_restart;
    }

    /// Records a refused configuration; the last good one stays in force.
    pub fn record_failure(&self, error: String) {
        let mut s = self.status.write();
        s.success = false;
        s.last_reload_time = Some(Utc::now());
        s.last_error = Some(error);
    }
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// `GET /api/v1/status/runtimeinfo`.
pub(crate) async fn runtimeinfo(State(state): State<AppState>) -> Response {
    let Some(runtime) = &state.services().runtime else {
        return (StatusCode::NOT_FOUND, "no runtime information in this process\n").into_response();
    };
    let s = runtime.status();
    let cwd = std::env::current_dir().map(|p| p.display().to_string()).unwrap_or_default();
    Json(json!({
        "status": "success",
        "data": {
            "startTime": rfc3339(s.start_time),
            "CWD": cwd,
            "reloadConfigSuccess": s.success,
            "lastConfigTime": rfc3339(s.last_config_time),
            "lastReloadError": s.last_error,
            "lastReloadTime": s.last_reload_time.map(rfc3339),
            "needsRestart": s.needs_restart,
            "storageRetention": s.storage_retention,
            "corruptionCount": 0,
        }
    }))
    .into_response()
}

/// `POST /-/reload` (and PUT, as Prometheus): 200 when the new configuration was applied, 500 with
/// the reason when it was refused.
pub(crate) async fn reload(State(state): State<AppState>) -> Response {
    let Some(tx) = state.services().runtime.as_ref().and_then(|r| r.requests.clone()) else {
        return (StatusCode::SERVICE_UNAVAILABLE, "this process was started without a config file to reload\n")
            .into_response();
    };
    let (answer_tx, answer_rx) = oneshot::channel();
    if tx.send(answer_tx).await.is_err() {
        return (StatusCode::SERVICE_UNAVAILABLE, "the reloader has stopped\n").into_response();
    }
    match answer_rx.await {
        Ok(Ok(())) => (StatusCode::OK, "").into_response(),
        Ok(Err(e)) => (StatusCode::INTERNAL_SERVER_ERROR, format!("failed to reload config: {e}\n")).into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "the reloader has stopped\n").into_response(),
    }
}
