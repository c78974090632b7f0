//! Prometheus-style scraping: every target of every job (static or discovered by `sd/`, managed by
//! `manager.rs`) is fetched on its own schedule (`target.rs`, over `http.rs`'s auth and TLS),
//! relabeled (`relabel_configs` per target, `metric_relabel_configs` per series), parsed, labelled
//! (`job`, `instance`, static labels, honor_labels semantics) and shipped with the synthetic series
//! Prometheus adds (`up`, `scrape_duration_seconds`, ...) and stale markers for vanished series.

pub mod exposition;
mod float;
pub mod http;
pub(crate) mod manager;
pub mod openmetrics;
pub(crate) mod populate;
pub mod sd;
pub(crate) mod target;

use std::time::Duration;

use model::Labels;
use serde::Serialize;

/// Health of a target after its last scrape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetHealth {
    Up,
    Down,
    /// Not scraped yet.
    Unknown,
}

/// What the collector knows about one scrape target (Prometheus's `/api/v1/targets` shape).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TargetStatus {
    pub job: String,
    pub scrape_url: String,
    /// Target labels attached to every scraped series (`job`, `instance`, static labels), after
    /// `relabel_configs`.
    pub labels: Labels,
    /// The labels discovery produced plus the job's defaults (`__address__`, `__scheme__`, ...),
    /// before relabeling.
    pub discovered_labels: Labels,
    pub health: TargetHealth,
    pub last_error: Option<String>,
    /// Start of the last scrape, Unix milliseconds.
    pub last_scrape: Option<i64>,
    #[serde(with = "humantime_serde")]
    pub last_duration: Option<Duration>,
}

/// A discovered target that `relabel_configs` dropped (Prometheus's `droppedTargets`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DroppedTarget {
    pub job: String,
    /// Its labels before relabeling.
    pub discovered_labels: Labels,
}
