//! The store's configuration: limits, retention and PromQL defaults, read from the `tsdb:` section
//! of Tarsier's config file.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Settings of the metric store and its PromQL engine.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TsdbConfig {
    /// How far back from a tenant's newest sample queries see data; blocks entirely older than
    /// that are deleted.
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
    /// Most bytes all blocks (every tenant) may take on disk; the oldest blocks are deleted first.
    /// 0 means no size limit.
    pub retention_size_bytes: u64,
    /// Time range of the blocks the head is cut into. The head keeps up to 1.5x this in memory.
    #[serde(with = "humantime_serde")]
    pub block_duration: Duration,
    /// Compaction merges adjacent blocks up to this range (in steps of 3x block_duration).
    #[serde(with = "humantime_serde")]
    pub max_block_duration: Duration,
    /// Whether adjacent blocks are merged into larger ones.
    pub compaction: bool,
    /// How often the background maintenance (cut blocks, compact, retention) runs.
    #[serde(with = "humantime_serde")]
    pub maintenance_interval: Duration,
    /// How far behind a series' newest sample a late sample may land; older samples are rejected
    /// and counted as out of order.
    #[serde(with = "humantime_serde")]
    pub out_of_order_window: Duration,
    /// The most series one tenant may hold; new series beyond it are rejected.
    pub max_series_per_tenant: usize,
    /// Size at which the WAL starts a new segment file.
    pub wal_segment_bytes: u64,
    /// PromQL staleness lookback: how far back an instant vector selector looks for a sample.
    #[serde(with = "humantime_serde")]
    pub lookback_delta: Duration,
    /// Longest time a query may run before it is aborted.
    #[serde(with = "humantime_serde")]
    pub query_timeout: Duration,
    /// Most samples a query may load at one evaluation step.
    pub max_samples_per_query: usize,
    /// How often samples scraped in the same process (`tarsier run`) are fsynced to the WAL: they
    /// are written at once and fsynced with the first append this long after the last fsync, as
    /// Prometheus treats its scrapes. 0 fsyncs every batch. Samples others wait on (remote_write,
    /// an agent's batches) are always fsynced before the answer.
    #[serde(with = "humantime_serde")]
    pub scrape_sync_interval: Duration,
}

fn default_retention() -> Duration {
    Duration::from_secs(15 * 24 * 3600)
}
fn default_block_duration() -> Duration {
    Duration::from_secs(2 * 3600)
}
fn default_max_block_duration() -> Duration {
    Duration::from_secs(54 * 3600)
}
fn default_maintenance_interval() -> Duration {
    Duration::from_secs(60)
}
fn default_out_of_order_window() -> Duration {
    Duration::from_secs(10 * 60)
}
fn default_max_series_per_tenant() -> usize {
    1_000_000
}
fn default_wal_segment_bytes() -> u64 {
    128 * 1024 * 1024
}
fn default_lookback_delta() -> Duration {
    Duration::from_secs(5 * 60)
}
fn default_query_timeout() -> Duration {
    Duration::from_secs(120)
}
fn default_scrape_sync_interval() -> Duration {
    Duration::from_secs(1)
}
fn default_max_samples_per_query() -> usize {
    50_000_000
}

impl Default for TsdbConfig {
    fn default() -> Self {
        Self {
            retention: default_retention(),
            retention_size_bytes: 0,
            block_duration: default_block_duration(),
            max_block_duration: default_max_block_duration(),
            compaction: true,
            maintenance_interval: default_maintenance_interval(),
            out_of_order_window: default_out_of_order_window(),
            max_series_per_tenant: default_max_series_per_tenant(),
            wal_segment_bytes: default_wal_segment_bytes(),
            lookback_delta: default_lookback_delta(),
            query_timeout: default_query_timeout(),
            max_samples_per_query: default_max_samples_per_query(),
            scrape_sync_interval: default_scrape_sync_interval(),
        }
    }
}

impl TsdbConfig {
    pub(crate) fn block_ms(&self) -> i64 {
        self.block_duration.as_millis().min(i64::MAX as u128) as i64
    }

    pub(crate) fn max_block_ms(&self) -> i64 {
        self.max_block_duration.as_millis().min(i64::MAX as u128) as i64
    }

    pub(crate) fn retention_ms(&self) -> i64 {
        self.retention.as_millis().min(i64::MAX as u128) as i64
    }

    /// Checks every key; the error names the offending one.
    pub fn validate(&self) -> Result<()> {
        let fail = |msg: &str| Err(Error::Config(msg.to_string()));
        if self.retention.is_zero() {
            return fail("tsdb.retention must be > 0");
        }
        if self.block_duration.as_millis() < 1 {
            return fail("tsdb.block_duration must be >= 1ms");
        }
        if self.out_of_order_window.as_millis() * 2 > self.block_duration.as_millis() {
            return fail("tsdb.out_of_order_window must be at most half of tsdb.block_duration");
        }
        if self.max_block_duration < self.block_duration {
            return fail("tsdb.max_block_duration must be >= tsdb.block_duration");
        }
        if self.maintenance_interval.is_zero() {
            return fail("tsdb.maintenance_interval must be > 0");
        }
        if self.max_series_per_tenant == 0 {
            return fail("tsdb.max_series_per_tenant must be > 0");
        }
        if self.wal_segment_bytes < 4096 {
            return fail("tsdb.wal_segment_bytes must be >= 4096");
        }
        if self.lookback_delta.as_millis() < 1 {
            return fail("tsdb.lookback_delta must be >= 1ms");
        }
        if self.query_timeout.is_zero() {
            return fail("tsdb.query_timeout must be > 0");
        }
        if self.max_samples_per_query == 0 {
            return fail("tsdb.max_samples_per_query must be > 0");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_humantime_durations_and_rejects_unknown_keys() {
        let cfg: TsdbConfig = serde_json::from_str(r#"{"retention":"2d","lookback_delta":"1m"}"#).unwrap();
        assert_eq!(cfg.retention, Duration::from_secs(2 * 86400));
        assert_eq!(cfg.lookback_delta, Duration::from_secs(60));
        assert_eq!(cfg.max_series_per_tenant, 1_000_000);
        assert!(serde_json::from_str::<TsdbConfig>(r#"{"retension":"2d"}"#).is_err());
    }

    #[test]
    fn validation_names_the_key() {
        let cfg = TsdbConfig { query_timeout: Duration::ZERO, ..TsdbConfig::default() };
        assert!(cfg.validate().unwrap_err().to_string().contains("tsdb.query_timeout"));
        assert!(TsdbConfig::default().validate().is_ok());
        let cfg = TsdbConfig { block_duration: Duration::from_secs(60), ..TsdbConfig::default() };
        assert!(cfg.validate().unwrap_err().to_string().contains("tsdb.out_of_order_window"));
        let cfg = TsdbConfig { max_block_duration: Duration::from_secs(60), ..TsdbConfig::default() };
        assert!(cfg.validate().unwrap_err().to_string().contains("tsdb.max_block_duration"));
    }
}
