//! One error type for every handler, with the two response shapes clients expect: the Prometheus
//! API's JSON (`status`, `errorType`, `error`) and the Loki API's plain text. The client is told
//! what it did wrong; internal details go to the log, not the response.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// The start of Prometheus's message for `tsdb.max_samples_per_query`.
const TOO_MANY_SAMPLES: &str = "query processing would load too many samples";

/// Set on a response that reports a limit; `metrics::track` counts it under its key.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LimitHit(pub(crate) &'static str);

/// Everything a handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A parameter or body the client sent is wrong; the message says which and how.
    #[error("{0}")]
    BadRequest(String),
    /// The body is over a configured size limit; the message names the limit.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// A body whose content type or encoding is not understood.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// Some entries of a batch were rejected; the rest were stored.
    #[error("{0}")]
    PartiallyRejected(String),
    #[error(transparent)]
    Tsdb(#[from] tsdb::Error),
    #[error(transparent)]
    Indexer(#[from] indexer::Error),
    #[error(transparent)]
    Model(#[from] model::Error),
    /// A configured concurrency limit is reached; the message names it.
    #[error("{0}")]
    TooManyRequests(String),
    /// A configured limit was hit: `key` is its config key (also the `limit` label of
    /// `tarsier_limit_hits_total`), `message` tells the client what to change.
    #[error("{message}")]
    Limit { key: &'static str, status: u16, retry_after: Option<u64>, message: String },
    /// The named thing does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The server is not ready or is shutting down.
    #[error("{0}")]
    Unavailable(String),
    /// A bug or an environment failure; details are logged.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        let code = match self {
            ApiError::BadRequest(_) | ApiError::PartiallyRejected(_) | ApiError::Model(_) => 400,
            ApiError::PayloadTooLarge(_) => 413,
            ApiError::NotFound(_) => 404,
            ApiError::UnsupportedMediaType(_) => 415,
            ApiError::Tsdb(e) => e.http_status(),
            ApiError::Indexer(e) => e.http_status(),
            ApiError::TooManyRequests(_) => 429,
            ApiError::Limit { status, .. } => *status,
            ApiError::Unavailable(_) => 503,
            ApiError::Internal(_) => 500,
        };
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// Prometheus's `errorType` for this error.
    pub fn error_type(&self) -> &'static str {
        match self {
            ApiError::Tsdb(e) => e.error_type(),
            ApiError::Indexer(e) => e.error_type(),
            ApiError::Unavailable(_) | ApiError::TooManyRequests(_) => "unavailable",
            ApiError::Limit { status: 429 | 503, .. } => "unavailable",
            ApiError::NotFound(_) => "not_found",
            ApiError::Internal(_) => "internal",
            _ => "bad_data",
        }
    }

    /// The config key of the limit this error reports, if it is one.
    pub fn limit_key(&self) -> Option<&'static str> {
        match self {
            ApiError::Limit { key, .. } => Some(*key),
            ApiError::Tsdb(tsdb::Error::Timeout(_)) => Some("tsdb.query_timeout"),
            ApiError::Tsdb(tsdb::Error::Execution(m)) if m.starts_with(TOO_MANY_SAMPLES) => {
                Some("tsdb.max_samples_per_query")
            }
            ApiError::Tsdb(tsdb::Error::SeriesLimit { .. }) => Some("tsdb.max_series_per_tenant"),
            _ => None,
        }
    }

    /// Marks a limit's response for `tarsier_limit_hits_total` and tells the client when to retry.
    fn decorate(&self, response: &mut Response) {
        if let Some(key) = self.limit_key() {
            response.extensions_mut().insert(LimitHit(key));
        }
        if let ApiError::Limit { retry_after: Some(seconds), .. } = self {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, (*seconds).into());
        }
    }

    /// A store's write failed on a full disk (503; logged once by the ingest endpoints, not
    /// per request).
    pub fn is_storage_full(&self) -> bool {
        match self {
            ApiError::Tsdb(e) => e.is_storage_full(),
            ApiError::Indexer(e) => e.is_storage_full(),
            _ => false,
        }
    }

    /// Whether answering with this error should log it: server errors except the expected ones
    /// (not ready, a full disk, which are logged where they start).
    pub(crate) fn worth_logging(&self) -> bool {
        self.status().is_server_error() && !matches!(self, ApiError::Unavailable(_)) && !self.is_storage_full()
    }

    /// The message shown to the client: internal errors are logged and summarised.
    fn client_message(&self) -> String {
        if self.is_storage_full() {
            return format!("storage full, retry once the data directory has room: {self}");
        }
        if self.worth_logging() {
            tracing::error!(error = %self, "request failed");
        }
        let message = self.to_string();
        match self.limit_key() {
            // The stores' own messages (Prometheus's words) do not know the key: add it.
            Some(key) if !message.contains(key) => format!("{message} ({key})"),
            _ => message,
        }
    }

    pub(crate) fn from_join(e: tokio::task::JoinError) -> Self {
        ApiError::Internal(format!("query task failed: {e}"))
    }
}

/// The Prometheus API's error shape.
pub struct PromError(pub ApiError);

impl<E: Into<ApiError>> From<E> for PromError {
    fn from(e: E) -> Self {
        PromError(e.into())
    }
}

impl IntoResponse for PromError {
    fn into_response(self) -> Response {
        let status = self.0.status();
        let body = json!({"status": "error", "errorType": self.0.error_type(), "error": self.0.client_message()});
        let mut response = (status, axum::Json(body)).into_response();
        self.0.decorate(&mut response);
        response
    }
}

/// The Loki API's and ingest endpoints' error shape: a plain-text message.
pub struct TextError(pub ApiError);

impl<E: Into<ApiError>> From<E> for TextError {
    fn from(e: E) -> Self {
        TextError(e.into())
    }
}

impl IntoResponse for TextError {
    fn into_response(self) -> Response {
        let status = self.0.status();
        let mut response = (status, format!("{}\n", self.0.client_message())).into_response();
        self.0.decorate(&mut response);
        response
    }
}
