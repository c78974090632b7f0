//! What the integration tests share: a store configuration for fixed historical timestamps with
//! manual commits.

use std::time::Duration;

use indexer::IndexerConfig;

/// Manual commits only (tests decide what is committed), one-hour partitions, tantivy's smallest
/// writer budget, and windows wide enough for fixed timestamps from 2023.
pub fn test_config() -> IndexerConfig {
    IndexerConfig {
        commit_interval: Duration::from_secs(3600),
        partition_duration: Duration::from_secs(3600),
        writer_memory_bytes: 15_000_000,
        out_of_order_window: Duration::from_secs(100 * 365 * 86400),
        retention: Duration::from_secs(100 * 365 * 86400),
        ..IndexerConfig::default()
    }
}
