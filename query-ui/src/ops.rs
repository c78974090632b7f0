//! Operations endpoints: liveness, readiness and Tarsier's own metrics in Prometheus format.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::state::AppState;

/// Liveness: the process answers HTTP.
pub(crate) async fn healthy() -> &'static str {
    "Tarsier is Healthy.\n"
}

/// Readiness: storage is open and serving, and the server is not shutting down.
pub(crate) async fn ready(State(state): State<AppState>) -> Response {
    if state.is_ready() {
        (StatusCode::OK, "Tarsier is Ready.\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "Tarsier is not ready: storage is opening or the server is shutting down.\n")
            .into_response()
    }
}

/// Self-metrics in the Prometheus text format (0.0.4).
pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    let mut body = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut body, state.registry()) {
        tracing::error!(error = %e, "encoding metrics failed");
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    // prometheus-client writes OpenMetrics; strip the trailer so 0.0.4 parsers accept it too.
    if let Some(stripped) = body.strip_suffix("# EOF\n") {
        body.truncate(stripped.len());
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body).into_response()
}

/// The OpenAPI description of this API, hand-written in `docs/openapi.yaml` and embedded so a
/// client (or schemathesis) reads the exact version it talks to.
pub(crate) async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/yaml; charset=utf-8")], OPENAPI_YAML).into_response()
}

const OPENAPI_YAML: &str = include_str!("../../docs/openapi.yaml");
