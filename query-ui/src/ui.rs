//! The web UI's assets, compiled into the binary so `tarsier run` serves them offline with no
//! build step. This first page queries logs (LogQL) and metrics (PromQL) through the same public
//! APIs Grafana uses; the full explorer comes with the web UI work.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::state::AppState;

const INDEX_HTML: &str = include_str!("../assets/index.html");
const APP_JS: &str = include_str!("../assets/app.js");
const STYLE_CSS: &str = include_str!("../assets/style.css");

/// No inline scripts or styles and nothing from other origins: the page only talks to this server.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'";

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
}

/// `GET /`: the web UI for browsers; for a client that does not accept HTML (an Elasticsearch
/// shipper probing the server) Elasticsearch's version information when this role stores logs.
async fn index(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if state.services().indexer.is_some() && !crate::es_api::wants_html(&headers) {
        return crate::es_api::root_info();
    }
    asset("text/html; charset=utf-8", INDEX_HTML).into_response()
}

pub(crate) fn routes(router: Router<AppState>) -> Router<AppState> {
    router
        .route("/", get(index))
        .route("/ui/app.js", get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }))
        .route("/ui/style.css", get(|| async { asset("text/css; charset=utf-8", STYLE_CSS) }))
}
