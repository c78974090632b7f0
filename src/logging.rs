//! Process logs through `tracing`: text for people, JSON for log pipelines. The level filter sits
//! behind a reload handle so a config reload changes `log.level` without a restart.

use std::sync::OnceLock;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Registry, reload};

use crate::config::{LogConfig, LogFormat};

static FILTER: OnceLock<reload::Handle<EnvFilter, Registry>> = OnceLock::new();

/// Installs the global subscriber. `RUST_LOG`, when set, overrides the configured level.
pub fn init(config: &LogConfig) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let (filter, handle) = reload::Layer::new(filter);
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let installed = match config.format {
        LogFormat::Text => tracing_subscriber::registry().with(filter).with(fmt).try_init(),
        LogFormat::Json => tracing_subscriber::registry().with(filter).with(fmt.json().flatten_event(true)).try_init(),
    };
    if installed.is_ok() {
        let _ = FILTER.set(handle);
    }
}

/// Applies a new `log.level`. Does nothing when `RUST_LOG` is set (it wins, as at start) or when
/// this process did not install the subscriber (tests).
pub fn set_level(level: &str) -> Result<(), String> {
    if std::env::var_os("RUST_LOG").is_some() {
        return Ok(());
    }
    let Some(handle) = FILTER.get() else { return Ok(()) };
    let filter = EnvFilter::try_new(level).map_err(|e| format!("log.level {level:?}: {e}"))?;
    handle.reload(filter).map_err(|e| format!("log.level: {e}"))
}
