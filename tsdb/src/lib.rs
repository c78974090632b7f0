//! Tarsier's metric store. Samples from scrapes and remote_write land per tenant in an in-memory
//! head (series index + Gorilla chunks) after being written and fsync'ed to a WAL; queries are
//! answered by a PromQL evaluator over the head.
//!
//! Foundation milestone limits, on purpose: no on-disk blocks yet, so everything lives in memory
//! and the WAL grows until blocks and checkpointing arrive; retention hides samples older than
//! `retention` (measured back from the tenant's newest sample) but does not free them yet.
//!
//! Concurrency: `Tsdb` is `Send + Sync`. Appends to one tenant are serialised by the tenant's
//! lock (held across the WAL fsync, so WAL order equals memory order); the WAL itself is one
//! mutex-guarded file, so appends to different tenants share its fsyncs one after another.
//! Queries lock a tenant only while copying out the series they select.

pub mod chunk;
pub mod config;
pub mod error;
pub mod head;
pub mod index;
pub mod metrics;
pub mod promql;
mod store;
pub mod wal;

pub use config::TsdbConfig;
pub use error::{Error, ErrorKind, Result};
pub use promql::QueryResult;
pub use store::{AppendStats, Tsdb, TsdbStats};
