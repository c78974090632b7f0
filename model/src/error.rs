//! The model crate's one error type: everything that can be wrong with data arriving from outside
//! (bad labels, bad tenant ids, undecodable payloads, unparsable times).

/// Errors raised while validating or decoding shared data.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A label name or value breaks Prometheus's rules.
    #[error("invalid label {name:?}: {reason}")]
    InvalidLabel { name: String, reason: String },
    /// A tenant id breaks the allowed character set or length.
    #[error("invalid tenant id {id:?}: {reason}")]
    InvalidTenant { id: String, reason: String },
    /// A snappy block could not be decompressed.
    #[error("snappy decompression failed: {0}")]
    Snappy(#[from] snap::Error),
    /// A protobuf message could not be decoded.
    #[error("protobuf decoding failed: {0}")]
    Protobuf(#[from] prost::DecodeError),
    /// A JSON payload was malformed; the message carries line and column.
    #[error("json decoding failed: {0}")]
    Json(#[from] serde_json::Error),
    /// A payload decoded but its content is not acceptable (the message says what and where).
    #[error("invalid payload: {0}")]
    InvalidPayload(String),
    /// A timestamp or duration parameter could not be parsed.
    #[error("invalid time {input:?}: {reason}")]
    InvalidTime { input: String, reason: String },
}

/// Shorthand used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
