//! Prometheus-style scraping: every static target of every job is fetched on its own schedule,
//! parsed, labelled (`job`, `instance`, static labels, honor_labels semantics) and shipped with the
//! synthetic series Prometheus adds (`up`, `scrape_duration_seconds`, ...).

pub mod exposition;
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
    /// Target labels attached to every scraped series (`job`, `instance`, static labels).
    pub labels: Labels,
    pub health: TargetHealth,
    pub last_error: Option<String>,
    /// Start of the last scrape, Unix milliseconds.
    pub last_scrape: Option<i64>,
    #[serde(with = "humantime_serde")]
    pub last_duration: Option<Duration>,
}
