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
            Error::ShuttingDown => 503,
            Error::Io { source, .. } if is_resource_exhausted(source) => 503,
            Error::Index { source: tantivy::TantivyError::IoError(source), .. } if is_resource_exhausted(source) => 503,
            Error::InvalidConfig(_) | Error::Io { .. } | Error::Index { .. } | Error::Corrupt(_) | Error::Failed(_) => {
                500
            }
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
    }
}
