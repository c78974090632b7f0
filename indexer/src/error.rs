//! The indexer's one error type. Every failure says whether the caller sent something wrong
//! (400), the store broke (500) or the store cannot take work right now (503, e.g. a full disk), so
//! the HTTP layer can answer Loki-compatible clients without guessing.

use std::io;

/// Everything that can go wrong in the indexer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A LogQL query that does not parse or uses something not supported.
    #[error("{0}")]
    BadQuery(String),
    /// A request whose parameters are wrong (time range, limit, tenant, ...).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// A configuration value that is out of range; the message names the key.
    #[error("invalid config: {0}")]
    InvalidConfig(String),
    /// Disk I/O failed; `context` says what was being done.
    #[error("{context}: {source}")]
    Io {
        /// What the indexer was doing.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// tantivy failed.
    #[error("index error: {context}: {source}")]
    Index {
        /// What the indexer was doing.
        context: String,
        /// The underlying error.
        #[source]
        source: tantivy::TantivyError,
    },
    /// Data on disk is not what this version wrote (bad magic, unknown format version, ...).
    #[error("corrupt or incompatible data: {0}")]
    Corrupt(String),
    /// The indexer is shutting down and takes no more work.
    #[error("indexer is shutting down")]
    ShuttingDown,
    /// The query was stopped by its [`crate::Cancel`]: its deadline passed or its caller gave up.
    #[error("query cancelled: its time limit passed or the client went away")]
    Cancelled,
    /// An earlier WAL fsync or indexing failure stopped the store; what was acknowledged is in
    /// the WAL and replays on the next start.
    #[error("indexer stopped after an earlier failure: {0}")]
    Failed(String),
}

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io { context: context.into(), source }
    }

    pub(crate) fn index(context: impl Into<String>, source: tantivy::TantivyError) -> Self {
        Error::Index { context: context.into(), source }
    }

    /// The HTTP status the query/ingest API should answer with.
    pub fn http_status(&self) -> u16 {
        match self {
            Error::BadQuery(_) | Error::InvalidRequest(_) => 400,
            Error::ShuttingDown | Error::Cancelled => 503,
            Error::Io { .. } | Error::Index { .. } if self.is_storage_full() => 503,
            Error::InvalidConfig(_) | Error::Io { .. } | Error::Index { .. } | Error::Corrupt(_) | Error::Failed(_) => {
                500
            }
        }
    }

    /// A full disk or an exhausted quota, wherever tantivy or the WAL met it: the operator can
    /// fix it and the client retry after (503), and the store resumes by itself once there is
    /// room (see the ingest thread in `store.rs`).
    pub fn is_storage_full(&self) -> bool {
        match self {
            Error::Io { source, .. } => is_resource_exhausted(source),
            Error::Index { source: tantivy::TantivyError::IoError(source), .. } if is_resource_exhausted(source) => {
                true
            }
            Error::Index { source, .. } => {
                let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(source);
                while let Some(e) = cause {
                    if e.downcast_ref::<io::Error>().is_some_and(is_resource_exhausted) {
                        return true;
                    }
                    cause = e.source();
                }
                // tantivy reports some worker-thread I/O failures as text only.
                let text = source.to_string();
                text.contains("No space left on device") || text.contains("Disk quota exceeded")
            }
            _ => false,
        }
    }

    /// The Prometheus/Loki API `errorType` matching [`Error::http_status`].
    pub fn error_type(&self) -> &'static str {
        match self.http_status() {
            400 => "bad_data",
            503 => "unavailable",
            _ => "internal",
        }
    }
}

/// A full disk or quota is a condition the operator can fix and the client can retry after, not
/// a bug: 503 rather than 500.
fn is_resource_exhausted(err: &io::Error) -> bool {
    matches!(err.kind(), io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_map_to_statuses() {
        assert_eq!(Error::BadQuery("x".into()).http_status(), 400);
        assert_eq!(Error::BadQuery("x".into()).error_type(), "bad_data");
        let full = Error::io("wal append", io::Error::from(io::ErrorKind::StorageFull));
        assert_eq!(full.http_status(), 503);
        assert_eq!(full.error_type(), "unavailable");
        let other = Error::io("wal append", io::Error::other("boom"));
        assert_eq!(other.http_status(), 500);
        assert_eq!(other.error_type(), "internal");
        assert_eq!(Error::ShuttingDown.http_status(), 503);
        assert_eq!(Error::Cancelled.http_status(), 503);
        let tantivy_full = Error::index(
            "commit",
            tantivy::TantivyError::IoError(std::sync::Arc::new(io::Error::from(io::ErrorKind::StorageFull))),
        );
        assert!(tantivy_full.is_storage_full());
        assert_eq!(tantivy_full.http_status(), 503);
        let thread_full = Error::index(
            "commit",
            tantivy::TantivyError::ErrorInThread("No space left on device (os error 28)".into()),
        );
        assert_eq!(thread_full.http_status(), 503);
    }
}
