//! Tarsier's log store: durable per-tenant ingest of log records into tantivy partitions, and
//! LogQL log and metric queries answered in Loki's response shapes.
//!
//! An append is fsync'ed to the write-ahead log before it is acknowledged, then handed to the
//! writer of its (tenant, time partition) index; a background thread commits every
//! `commit_interval` and deletes expired partitions hourly. See [`Indexer`].

mod cancel;
pub mod config;
mod context;
pub mod error;
mod ingest;
pub mod logql;
pub mod metric;
mod metric_binary;
mod metrics;
mod needle;
mod partition;
pub mod query;
mod store;
mod term_lists;
mod wal;

pub use cancel::Cancel;
pub use config::IndexerConfig;
pub use context::{ContextRequest, ContextResponse};
pub use error::Error;
pub use metric::{MetricData, MetricQueryRequest, MetricQueryResponse, MetricSeries};
pub use partition::PartitionStats;
pub use query::{Direction, LogQueryRequest, LogQueryResponse, QueryStats, StreamResult};
pub use store::{AppendReceipt, Indexer, RejectedEntry};
