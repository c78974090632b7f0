//! Process logs through `tracing`: text for people, JSON for log pipelines. The level filter sits
//! behind a reload handle so a config reload changes `log.level` without a restart.
//!
//! The filter is `filter::Targets` (`info`, `info,indexer=debug`, ...), not `EnvFilter`: the
//! env-filter feature pulls in `matchers`, which switches on regex-automata's full-DFA builder for
//! every `Regex` in the process, and building those DFAs took ~22% of the CPU of PromQL queries
//! with regex matchers. Span and field directives (`target[span{f=v}]=level`) are not supported.

use std::sync::OnceLock;

use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Registry, reload};

use crate::config::{LogConfig, LogFormat};

static FILTER: OnceLock<reload::Handle<Targets, Registry>> = OnceLock::new();

/// Installs the global subscriber. `RUST_LOG`, when set, overrides the configured level.
pub fn init(config: &LogConfig) {
    let from_env = std::env::var("RUST_LOG").ok().and_then(|value| match parse_filter(&value) {
        Ok(filter) => Some(filter),
        Err(e) => {
            eprintln!("warning: RUST_LOG ignored: {e}");
            None
        }
    });
    let filter = from_env
        .or_else(|| parse_filter(&config.level).ok())
        .unwrap_or_else(|| Targets::new().with_default(tracing::Level::INFO));
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
    let filter = parse_filter(level).map_err(|e| format!("log.level {level:?}: {e}"))?;
    handle.reload(filter).map_err(|e| format!("log.level: {e}"))
}

/// Parses a filter such as `info`, `warn,collector=debug` or `indexer=trace`.
pub fn parse_filter(text: &str) -> Result<Targets, String> {
    text.parse::<Targets>().map_err(|e| {
        format!("{e} (expected a level such as `info`, or `target=level` pairs such as `info,indexer=debug`)")
    })
}

#[cfg(test)]
mod tests {
    use tracing::Level;
    use tracing::level_filters::LevelFilter;

    use super::*;

    #[test]
    fn filters_parse_levels_and_per_target_levels() {
        let filter = parse_filter("warn,indexer=debug").unwrap();
        assert_eq!(filter.default_level(), Some(LevelFilter::WARN));
        assert!(filter.would_enable("indexer::store", &Level::DEBUG));
        assert!(!filter.would_enable("collector", &Level::INFO));
    }

    #[test]
    fn bad_filters_say_what_is_expected() {
        let err = parse_filter("indexer=loud").unwrap_err();
        assert!(err.contains("target=level"), "{err}");
    }
}
