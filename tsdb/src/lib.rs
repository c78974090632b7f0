//! Tarsier's metric store. Samples from scrapes and remote_write land per tenant in an in-memory
//! head (series index + Gorilla chunks) after being written and fsync'ed to a WAL; queries are
//! answered by a PromQL evaluator over the head.
//!
//! Background maintenance cuts the head into immutable Parquet blocks (`block`, `blocks`), then
//! truncates the WAL behind a checkpoint, merges adjacent blocks (compaction) and deletes whole
//! blocks past the age or size retention. Queries read blocks and head together.
//!
//! Concurrency: `Tsdb` is `Send + Sync`. Appends to one tenant are serialised by the tenant's
//! lock (held across the WAL fsync, so WAL order equals memory order); the WAL itself is one
//! mutex-guarded file, so appends to different tenants share its fsyncs one after another.
//! Queries lock a tenant only while copying out the series they select.

pub mod block;
pub mod block_histograms;
pub mod blocks;
pub mod chunk;
pub mod config;
mod decimal;
pub mod error;
pub mod head;
pub mod histogram_codec;
pub mod histogram_head;
pub mod index;
mod maintenance;
pub mod metrics;
pub mod promql;
pub mod status;
mod store;
pub mod wal;

pub use config::TsdbConfig;
pub use error::{Error, ErrorKind, Result};
pub use maintenance::{MaintenanceHandle, MaintenanceStats, spawn_maintenance};
pub use promql::QueryResult;
pub use store::{AppendStats, Tsdb, TsdbStats};
