//! Tarsier's shared vocabulary: the types every other crate passes around (label sets, samples,
//! log records, tenants, time) and the wire codecs of the protocols Tarsier speaks (Prometheus
//! remote_write, Loki push). Kept free of I/O and async so that every crate can depend on it.

pub mod error;
pub mod histogram;
pub mod labels;
pub mod log;
pub mod notation;
pub mod sample;
pub mod tenant;
pub mod time;
pub mod wire;

pub use error::{Error, Result};
pub use histogram::{CounterResetHint, FloatHistogram, HistogramSample};
pub use labels::{Label, Labels, LabelsBuilder, METRIC_NAME, MatchOp};
pub use log::{LogEntry, LogRecord, LogStream};
pub use sample::{STALE_NAN_BITS, Sample, TimeSeries, is_stale_nan, stale_nan};
pub use tenant::TenantId;
