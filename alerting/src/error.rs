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
}
