//! The alerting crate's one error type.

/// Errors from loading rules and evaluating them.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A rule file could not be read.
    #[error("reading {path}: {source}")]
    Io { path: String, source: std::io::Error },
    /// A rule file is not valid; the message names the group, rule and field.
    #[error("{path}: {message}")]
    InvalidRuleFile { path: String, message: String },
    /// A query made by a rule failed.
    #[error("query failed: {0}")]
    Query(String),
    /// The notification config is invalid; `key` is the path of the offending key.
    #[error("notification config: {key}: {message}")]
    InvalidNotifyConfig { key: String, message: String },
    /// The notifier failed (state files, HTTP client).
    #[error("notifier: {0}")]
    Notify(String),
    /// The notifier has stopped.
    #[error("the notifier has stopped")]
    NotifierStopped,
    /// The notification queue was full and alerts were dropped.
    #[error("notification queue full: {dropped} alerts dropped")]
    NotifyQueueFull { dropped: usize },
    /// An alert posted to the API is invalid.
    #[error("invalid alert: {0}")]
    InvalidAlert(String),
    /// A silence is invalid.
    #[error("invalid silence: {0}")]
    InvalidSilence(String),
    /// No such silence.
    #[error("silence {0} not found")]
    SilenceNotFound(String),
}
