//! The web UI's HTTP side through the router: the built bundle is served with the right cache
//! headers and CSP, `GET /` still answers Elasticsearch probes, dashboards round-trip through
//! their CRUD API with validation errors naming the field, and the config endpoint serves
//! what the binary passed in, and the tenant list names every tenant a store knows.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::{Value, json};
use tower::ServiceExt;

fn state(dir: &std::path::Path) -> query_ui::AppState {
    let tsdb = Arc::new(tsdb::Tsdb::open(&dir.join("tsdb"), tsdb::TsdbConfig::default()).unwrap());
    let services = query_ui::Services {
        tsdb: Some(tsdb),
        dashboards_dir: Some(dir.join("dashboards")),
        config_yaml: Some(std::sync::Arc::new(parking_lot::RwLock::new("server:\n  password: <secret>\n".into()))),
        ..Default::default()
    };
    let state = query_ui::AppState::new(services, query_ui::HttpConfig::default(), Default::default());
    state.set_ready(true);
    state
}

async fn send(state: &query_ui::AppState, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let response = query_ui::router(state.clone()).oneshot(req).await.unwrap();
    let (status, headers) = (response.status(), response.headers().clone());
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 22).await.unwrap();
    (status, headers, bytes.to_vec())
}

async fn json_req(state: &query_ui::AppState, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
        .unwrap();
    let (status, _, bytes) = send(state, req).await;
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

#[tokio::test]
async fn index_is_not_cached_and_hashed_assets_are_immutable() {
    let dir = tempfile::tempdir().unwrap();
    let state = state(dir.path());
    let req = Request::get("/").header(header::ACCEPT, "text/html").body(Body::empty()).unwrap();
    let (status, headers, body) = send(&state, req).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CACHE_CONTROL], "no-cache");
    assert!(headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap().contains("script-src 'self'"));
    let html = String::from_utf8(body).unwrap();
    let js = html.split("src=\"").nth(1).and_then(|s| s.split('"').next()).expect("a script tag");
    assert!(js.starts_with("/ui/assets/") && js.ends_with(".js"), "{js}");
    let (status, headers, body) = send(&state, Request::get(js).body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CACHE_CONTROL], "public, max-age=31536000, immutable");
    assert!(headers[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/javascript"));
    assert!(body.len() > 10_000, "the bundle is {} bytes", body.len());
    let (status, _, _) = send(&state, Request::get("/ui/assets/nope.js").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn dashboards_round_trip_and_built_ins_are_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let state = state(dir.path());
    let (status, list) = json_req(&state, "GET", "/api/v1/dashboards", None).await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<&str> = list["data"].as_array().unwrap().iter().map(|d| d["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["builtin-kubernetes", "builtin-tarsier"]);
    let (status, k8s) = json_req(&state, "GET", "/api/v1/dashboards/builtin-kubernetes", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(k8s["data"]["panels"].as_array().unwrap().len() >= 5);

    let dash = json!({"title": "Shop", "panels": [{"title": "Up", "type": "timeseries", "datasource": "metrics", "query": "up"}]});
    let (status, _) = json_req(&state, "PUT", "/api/v1/dashboards/shop", Some(dash.clone())).await;
    assert_eq!(status, StatusCode::OK);
    assert!(dir.path().join("dashboards/shop.json").exists());
    let (_, got) = json_req(&state, "GET", "/api/v1/dashboards/shop", None).await;
    assert_eq!(got["data"]["title"], "Shop");
    assert_eq!(got["data"]["id"], "shop");
    let (_, list) = json_req(&state, "GET", "/api/v1/dashboards", None).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 3);

    let bad = json!({"title": "Shop", "panels": [{"type": "pie", "datasource": "metrics", "query": "up"}]});
    let (status, err) = json_req(&state, "PUT", "/api/v1/dashboards/shop", Some(bad)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(err["error"].as_str().unwrap().contains("panels[0].type"), "{err}");
    let (status, _) = json_req(&state, "PUT", "/api/v1/dashboards/builtin-tarsier", Some(dash.clone())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = json_req(&state, "PUT", "/api/v1/dashboards/Bad%20Id", Some(dash)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let huge = json!({"title": "x".repeat(300_000), "panels": []});
    let (status, err) = json_req(&state, "PUT", "/api/v1/dashboards/huge", Some(huge)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{err}");

    let (status, _) = json_req(&state, "DELETE", "/api/v1/dashboards/shop", None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = json_req(&state, "GET", "/api/v1/dashboards/shop", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = json_req(&state, "DELETE", "/api/v1/dashboards/shop", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn status_config_serves_the_redacted_yaml() {
    let dir = tempfile::tempdir().unwrap();
    let state = state(dir.path());
    let (status, headers, body) =
        send(&state, Request::get("/api/v1/status/config").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/yaml"));
    assert_eq!(String::from_utf8(body).unwrap(), "server:\n  password: <secret>\n");
}

#[tokio::test]
async fn tenants_lists_every_tenant_the_stores_know() {
    let dir = tempfile::tempdir().unwrap();
    let state = state(dir.path());
    let (status, body) = json_req(&state, "GET", "/api/v1/status/tenants", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["data"],
        json!([{"id": "default", "logs": false, "metrics": false}]),
        "the default tenant is always there"
    );
    let series = model::TimeSeries {
        labels: model::Labels::from_pairs([("__name__", "up"), ("job", "a")]),
        samples: vec![model::Sample { timestamp_ms: model::time::now_ns() / 1_000_000, value: 1.0 }],
    };
    let tsdb = state.services().tsdb.clone().unwrap();
    tsdb.append(&model::TenantId::new("team-b").unwrap(), std::slice::from_ref(&series)).unwrap();
    let (_, body) = json_req(&state, "GET", "/api/v1/status/tenants", None).await;
    assert_eq!(
        body["data"],
        json!([{"id": "default", "logs": false, "metrics": false}, {"id": "team-b", "logs": false, "metrics": true}])
    );
}

/// Every response carries the security headers; the UI's HTML its script policy without
/// 'unsafe-inline', everything else a policy that allows nothing.
#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let dir = tempfile::tempdir().unwrap();
    let state = state(dir.path());
    let html = Request::get("/").header(header::ACCEPT, "text/html").body(Body::empty()).unwrap();
    let cases = [
        (html, "script-src 'self'"),
        (Request::get("/api/v1/query?query=up").body(Body::empty()).unwrap(), "default-src 'none'"),
        (Request::get("/api/v1/query").body(Body::empty()).unwrap(), "default-src 'none'"),
        (Request::get("/metrics").body(Body::empty()).unwrap(), "default-src 'none'"),
        (Request::get("/no/such/route").body(Body::empty()).unwrap(), "default-src 'none'"),
    ];
    for (req, csp) in cases {
        let uri = req.uri().to_string();
        let (status, headers, _) = send(&state, req).await;
        let got = |name: header::HeaderName| headers.get(&name).map(|v| v.to_str().unwrap().to_string());
        assert_eq!(got(header::X_CONTENT_TYPE_OPTIONS).as_deref(), Some("nosniff"), "{uri} ({status})");
        assert_eq!(got(header::REFERRER_POLICY).as_deref(), Some("no-referrer"), "{uri} ({status})");
        assert_eq!(got(header::X_FRAME_OPTIONS).as_deref(), Some("DENY"), "{uri} ({status})");
        let policy = got(header::CONTENT_SECURITY_POLICY).unwrap_or_else(|| panic!("{uri}: no CSP"));
        assert!(policy.contains(csp) && policy.contains("frame-ancestors 'none'"), "{uri}: {policy}");
        assert!(!policy.contains("unsafe-inline") && !policy.contains("unsafe-eval"), "{uri}: {policy}");
    }
}
