//! The tsdb crate's one error type. Every variant maps to a Prometheus API `errorType` and an HTTP
//! status, so the HTTP layer can answer without knowing the store's internals.

/// Coarse classes of failure, matching Prometheus's API `errorType` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The caller sent something unacceptable (bad query, bad matcher, bad config).
    BadData,
    /// The query was valid but could not be executed (limits, vector matching conflicts).
    Execution,
    /// The query ran out of time.
    Timeout,
    /// A bug or an I/O failure inside the store.
    Internal,
    /// The store cannot take the request right now (limits reached, shutting down).
    Unavailable,
}

/// Errors raised by the store and the PromQL engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration key has an unacceptable value; the message names the key.
    #[error("invalid config: {0}")]
    Config(String),
    /// A PromQL expression or series selector did not parse; the message says where.
    #[error("{0}")]
    Parse(String),
    /// Input data is unacceptable (bad labels, bad parameters).
    #[error("{0}")]
    BadData(String),
    /// The query could not be executed as written.
    #[error("{0}")]
    Execution(String),
    /// The query exceeded `query_timeout`.
    #[error("query timed out in {0}")]
    Timeout(String),
    /// The tenant reached `max_series_per_tenant`.
    #[error("per-tenant series limit of {limit} reached (tsdb.max_series_per_tenant); new series rejected")]
    SeriesLimit { limit: usize },
    /// Disk I/O failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// A block on disk is unreadable or could not be written.
    #[error("block: {0}")]
    Block(String),
    /// The WAL holds data this version cannot read, or is corrupt before its last record.
    #[error("wal corrupt: {0}")]
    WalCorrupt(String),
}

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io { context: context.into(), source }
    }

    /// The class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Config(_) | Error::Parse(_) | Error::BadData(_) => ErrorKind::BadData,
            Error::Execution(_) => ErrorKind::Execution,
            Error::Timeout(_) => ErrorKind::Timeout,
            Error::SeriesLimit { .. } => ErrorKind::Unavailable,
            Error::Io { .. } if self.is_storage_full() => ErrorKind::Unavailable,
            Error::Io { .. } | Error::WalCorrupt(_) | Error::Block(_) => ErrorKind::Internal,
        }
    }

    /// A full disk or an exhausted quota: the operator can fix it and the client retry after,
    /// so it is 503, not 500.
    pub fn is_storage_full(&self) -> bool {
        matches!(self, Error::Io { source, .. }
            if matches!(source.kind(), std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded))
    }

    /// Prometheus's `errorType` string for this error.
    pub fn error_type(&self) -> &'static str {
        match self.kind() {
            ErrorKind::BadData => "bad_data",
            ErrorKind::Execution => "execution",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Internal => "internal",
            ErrorKind::Unavailable => "unavailable",
        }
    }

    /// The HTTP status Prometheus answers with for this error.
    pub fn http_status(&self) -> u16 {
        match self.kind() {
            ErrorKind::BadData => 400,
            ErrorKind::Execution => 422,
            ErrorKind::Timeout | ErrorKind::Unavailable => 503,
            ErrorKind::Internal => 500,
        }
    }
}

/// Shorthand used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_map_to_prometheus_error_types_and_statuses() {
        let cases = [
            (Error::Parse("x".into()), "bad_data", 400),
            (Error::Execution("x".into()), "execution", 422),
            (Error::Timeout("x".into()), "timeout", 503),
            (Error::WalCorrupt("x".into()), "internal", 500),
            (Error::SeriesLimit { limit: 1 }, "unavailable", 503),
            (Error::io("writing wal", std::io::ErrorKind::StorageFull.into()), "unavailable", 503),
            (Error::io("writing wal", std::io::Error::other("boom")), "internal", 500),
        ];
        for (err, kind, status) in cases {
            assert_eq!(err.error_type(), kind, "{err}");
            assert_eq!(err.http_status(), status, "{err}");
        }
    }
}
