//! The collector's one error type. Callers (the binary, the HTTP layer) only need to know whether
//! a failure is the operator's fault (bad config), ours (internal) or a peer's (unavailable).

use std::path::PathBuf;

/// Errors of the collector's public API.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is invalid; the message names the offending key.
    #[error("invalid collector config: {0}")]
    Config(String),
    /// A file or directory operation failed.
    #[error("{context} {}: {source}", path.display())]
    Io {
        context: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The checkpoint file exists but cannot be understood.
    #[error("checkpoint file {}: {reason}", path.display())]
    Checkpoint { path: PathBuf, reason: String },
    /// An HTTP client could not be built or a request failed.
    #[error("http: {0}")]
    Http(String),
    /// A background task panicked or could not be joined.
    #[error("background task failed: {0}")]
    Task(String),
}

/// How an [`Error`] maps onto an HTTP-ish status class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The caller's input (config) is wrong: 400.
    BadRequest,
    /// Our own fault: 500.
    Internal,
    /// A peer or resource is unavailable; retrying later may help: 503.
    Unavailable,
}

impl Error {
    /// The status class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Config(_) => ErrorKind::BadRequest,
            Error::Io { .. } | Error::Checkpoint { .. } | Error::Task(_) => ErrorKind::Internal,
            Error::Http(_) => ErrorKind::Unavailable,
        }
    }

    pub(crate) fn io(context: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { context, path: path.into(), source }
    }
}
