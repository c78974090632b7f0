//! Security headers on every response, in one place so no handler can forget them: browsers must
//! not sniff a JSON or log body into HTML, must not send the UI's URLs (which carry queries) to
//! other sites, and must not frame the UI (clickjacking). HTML gets the UI's strict
//! Content-Security-Policy (no inline scripts); everything else a policy that allows nothing, so
//! a response opened directly in a browser cannot run anything either.

use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

/// The policy of API and other non-HTML responses: load nothing, be framed by no one.
const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'";

/// Middleware adding the headers; a handler's own Content-Security-Policy (the UI's) is kept.
pub(crate) async fn security_headers(req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        let html =
            headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|t| t.starts_with("text/html"));
        let csp = if html { crate::ui::CSP } else { API_CSP };
        headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(csp));
    }
    response
}
