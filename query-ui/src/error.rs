//! One error type for every handler, with the two response shapes clients expect: the Prometheus
//! API's JSON (`status`, `errorType`, `error`) and the Loki API's plain text. The client is told
//! what it did wrong; internal details go to the log, not the response.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

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
    /// The server is not ready or is shutting down.
    #[error("{0}")]
    Unavailable(String),
    /// The thing named in the URL does not exist (e.g. a snapshot).
    #[error("{0}")]
    NotFound(String),
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
            ApiError::UnsupportedMediaType(_) => 415,
            ApiError::Tsdb(e) => e.http_status(),
            ApiError::Indexer(e) => e.http_status(),
            ApiError::Unavailable(_) => 503,
            ApiError::NotFound(_) => 404,
            ApiError::Internal(_) => 500,
        };
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// Prometheus's `errorType` for this error.
    pub fn error_type(&self) -> &'static str {
        match self {
            ApiError::Tsdb(e) => e.error_type(),
            ApiError::Indexer(e) => e.error_type(),
            ApiError::Unavailable(_) => "unavailable",
            ApiError::NotFound(_) => "not_found",
            ApiError::Internal(_) => "internal",
            _ => "bad_data",
        }
    }

    /// The message shown to the client: internal errors are logged and summarised.
    fn client_message(&self) -> String {
        if self.status().is_server_error() && !matches!(self, ApiError::Unavailable(_)) {
            tracing::error!(error = %self, "request failed");
        }
        self.to_string()
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
        (status, axum::Json(body)).into_response()
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
        (status, format!("{}\n", self.0.client_message())).into_response()
    }
}
