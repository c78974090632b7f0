//! The web UI, built from `web/` by `build.rs` and compiled into the binary so `tarsier run`
//! serves it offline. `index.html` is never cached (it names the current bundle); the hashed
//! files under `/ui/assets/` are immutable and cached for a year. Every response carries a strict
//! CSP: no inline scripts or styles, nothing from other origins (`headers.rs` adds the rest).

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::state::AppState;

include!(concat!(env!("OUT_DIR"), "/ui_assets.rs"));

pub(crate) const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; \
                   font-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "json" => "application/json",
        "woff2" => "font/woff2",
        _ => "application/octet-stream",
    }
}

fn find(path: &str) -> Option<&'static [u8]> {
    ASSETS.iter().find(|(p, _)| *p == path).map(|(_, body)| *body)
}

fn serve(path: &str, cache: &'static str) -> Response {
    match find(path) {
        Some(body) => (
            [
                (header::CONTENT_TYPE, content_type(path)),
                (header::CONTENT_SECURITY_POLICY, CSP),
                (header::CACHE_CONTROL, cache),
            ],
            body,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "not found\n").into_response(),
    }
}

/// `GET /`: the web UI for browsers; for a client that does not accept HTML (an Elasticsearch
/// shipper probing the server) Elasticsearch's version information when this role stores logs.
async fn index(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if state.services().indexer.is_some() && !crate::es_api::wants_html(&headers) {
        return crate::es_api::root_info();
    }
    serve("index.html", "no-cache")
}

/// `GET /ui/<path>`: a built file; hashed names under `assets/` never change content.
async fn file(Path(path): Path<String>) -> Response {
    let cache = if path.starts_with("assets/") { "public, max-age=31536000, immutable" } else { "no-cache" };
    serve(&path, cache)
}

pub(crate) fn routes(router: Router<AppState>) -> Router<AppState> {
    router.route("/", get(index)).route("/ui/{*path}", get(file))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundle_is_embedded_and_index_names_only_hashed_assets_that_exist() {
        let index = std::str::from_utf8(find("index.html").expect("index.html embedded")).unwrap();
        let refs: Vec<&str> = index.split("\"/ui/").skip(1).filter_map(|s| s.split('"').next()).collect();
        assert!(refs.iter().any(|r| r.ends_with(".js")), "index.html loads no script: {index}");
        assert!(refs.iter().any(|r| r.ends_with(".css")), "index.html loads no stylesheet: {index}");
        for r in refs {
            assert!(r.starts_with("assets/"), "{r} is not a hashed asset");
            assert!(find(r).is_some(), "index.html names {r}, which is not embedded");
        }
        assert!(!index.contains("<script>") && !index.contains("<style"), "inline code breaks the CSP: {index}");
    }
}
