//! The HTTP APIs driven without sockets (`oneshot`) over real stores in a temp dir: ingest through
//! Loki push and remote_write, read back through the Loki and Prometheus query APIs, and check the
//! response shapes clients depend on.

use std::io::Write;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use model::{Labels, LogEntry, LogStream, Sample, TimeSeries};
use serde_json::{Value, json};
use tower::ServiceExt;

struct Fixture {
    _dir: tempfile::TempDir,
    state: query_ui::AppState,
    indexer: Arc<indexer::Indexer>,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let indexer =
        Arc::new(indexer::Indexer::open(&dir.path().join("indexer"), indexer::IndexerConfig::default()).unwrap());
    let tsdb = Arc::new(tsdb::Tsdb::open(&dir.path().join("tsdb"), tsdb::TsdbConfig::default()).unwrap());
    let services = query_ui::Services {
        indexer: Some(indexer.clone()),
        tsdb: Some(tsdb),
        data_dir: Some(dir.path().to_path_buf()),
        ..Default::default()
    };
    let state = query_ui::AppState::new(services, query_ui::HttpConfig::default(), Default::default());
    state.set_ready(true);
    Fixture { _dir: dir, state, indexer }
}

async fn call(state: &query_ui::AppState, request: Request<Body>) -> (StatusCode, String) {
    let response = query_ui::router(state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 64 << 20).await.unwrap();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

async fn get(state: &query_ui::AppState, uri: &str) -> (StatusCode, Value) {
    let (status, body) = call(state, Request::get(uri).body(Body::empty()).unwrap()).await;
    let value = serde_json::from_str(&body).unwrap_or_else(|_| Value::String(body.clone()));
    (status, value)
}

fn now_ns() -> i64 {
    model::time::now_ns()
}

#[tokio::test]
async fn loki_push_json_then_query_range() {
    let f = fixture();
    let ts = now_ns();
    let body = json!({"streams": [{"stream": {"job": "api", "level": "error"}, "values": [
        [ts.to_string(), "GET /orders 500 upstream timeout"],
        [(ts + 1).to_string(), "GET /orders 200 ok"],
    ]}]});
    let request = Request::post("/loki/api/v1/push")
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let (status, text) = call(&f.state, request).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{text}");
    f.indexer.commit().unwrap();

    let (status, body) =
        get(&f.state, "/loki/api/v1/query_range?query=%7Bjob%3D%22api%22%7D%20%7C%3D%20%22timeout%22&start=0").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "success");
    assert_eq!(body["data"]["resultType"], "streams");
    let result = body["data"]["result"].as_array().unwrap();
    assert_eq!(result.len(), 1);
    assert_eq!(result[0]["stream"], json!({"job": "api", "level": "error"}));
    assert_eq!(result[0]["values"], json!([[ts.to_string(), "GET /orders 500 upstream timeout"]]));

    let (_, labels) = get(&f.state, "/loki/api/v1/labels?start=0").await;
    assert_eq!(labels, json!({"status": "success", "data": ["job", "level"]}));
    let (_, values) = get(&f.state, "/loki/api/v1/label/job/values?start=0").await;
    assert_eq!(values["data"], json!(["api"]));
}

#[tokio::test]
async fn loki_push_protobuf_gzip() {
    let f = fixture();
    let streams = vec![LogStream {
        labels: Labels::from_pairs([("job", "proto")]),
        entries: vec![LogEntry { timestamp_ns: now_ns(), line: "via protobuf".into() }],
    }];
    // Promtail sends snappy protobuf; a gzip layer on top is what some proxies add.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&model::wire::loki_push::encode_protobuf(&streams)).unwrap();
    let request = Request::post("/loki/api/v1/push")
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "gzip")
        .body(Body::from(gz.finish().unwrap()))
        .unwrap();
    let (status, text) = call(&f.state, request).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{text}");
    f.indexer.commit().unwrap();
    let (_, body) = get(&f.state, "/loki/api/v1/query_range?query=%7Bjob%3D%22proto%22%7D&start=0").await;
    assert_eq!(body["data"]["result"][0]["values"][0][1], "via protobuf");
}

#[tokio::test]
async fn bad_requests_say_what_is_wrong() {
    let f = fixture();
    let request = Request::post("/loki/api/v1/push")
        .header("content-type", "application/json")
        .body(Body::from(r#"{"streams":[{"stream":{"a":"b"},"values":[["x","y"]]}]}"#))
        .unwrap();
    let (status, text) = call(&f.state, request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(text.contains("streams[0].values[0]"), "{text}");

    let (status, body) = get(&f.state, "/api/v1/query_range?query=up&start=10&end=5&step=1").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["status"], "error");
    assert_eq!(body["errorType"], "bad_data");
    assert!(body["error"].as_str().unwrap().contains("end"), "{body}");

    let (status, body) = get(&f.state, "/api/v1/query?query=sum(").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["errorType"], "bad_data");

    // A bad tenant header is answered in the Prometheus API's JSON error shape.
    let request = Request::get("/api/v1/query?query=up").header("X-Scope-OrgID", "a/b").body(Body::empty()).unwrap();
    let (status, text) = call(&f.state, request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let body: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
    assert_eq!(body["errorType"], "bad_data");
    assert!(body["error"].as_str().unwrap().contains("tenant"), "{body}");

    let (status, _) = get(&f.state, "/loki/api/v1/query_range?query=%7Bjob%3D").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let config = query_ui::HttpConfig { max_body_bytes: 16, max_decoded_bytes: 16, ..Default::default() };
    let small = query_ui::AppState::new(f.state.services().clone(), config, Default::default());
    let request = Request::post("/api/v1/write").body(Body::from(vec![0u8; 64])).unwrap();
    let (status, text) = call(&small, request).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(text.contains("server.max_body_bytes"), "{text}");
}

/// A remote_write body as Prometheus sends native histograms: integer histograms with delta
/// counts over two spans at `t0` and `t0` + 15 s, and a float histogram with custom bounds
/// (schema -53) at `t_custom`.
fn histogram_write(t0: i64, t_custom: i64, bad: bool) -> Request<Body> {
    use model::wire::remote_write::{ProtoLabel, ProtoTimeSeries, WriteRequest};
    use model::wire::remote_write_histogram::{ProtoBucketSpan, ProtoHistogram};
    let labels = |pairs: &[(&str, &str)]| -> Vec<ProtoLabel> {
        pairs.iter().map(|(n, v)| ProtoLabel { name: n.to_string(), value: v.to_string() }).collect()
    };
    let spans = vec![ProtoBucketSpan { offset: 0, length: 2 }, ProtoBucketSpan { offset: 1, length: 1 }];
    let integer = |t: i64, zero: u64, deltas: Vec<i64>, count: u64, sum: f64| ProtoHistogram {
        count_int: Some(count),
        zero_count_int: Some(zero),
        zero_threshold: 1e-128,
        sum,
        schema: 0,
        positive_spans: spans.clone(),
        positive_deltas: deltas,
        timestamp: t,
        ..ProtoHistogram::default()
    };
    let custom = ProtoHistogram {
        count_float: Some(6.0),
        sum: 3.0,
        schema: -53,
        positive_spans: vec![ProtoBucketSpan { offset: 0, length: 3 }],
        positive_counts: if bad { vec![1.0, 2.0] } else { vec![1.0, 2.0, 3.0] },
        custom_values: vec![0.1, 1.0],
        timestamp: t_custom,
        ..ProtoHistogram::default()
    };
    let request = WriteRequest {
        timeseries: vec![
            ProtoTimeSeries {
                labels: labels(&[("__name__", "rpc_seconds"), ("job", "api")]),
                samples: Vec::new(),
                histograms: vec![
                    integer(t0, 1, vec![2, -1, 1], 6, 10.5),
                    integer(t0 + 15_000, 2, vec![4, -2, 2], 12, 21.0),
                ],
            },
            ProtoTimeSeries {
                labels: labels(&[("__name__", "rpc_seconds"), ("job", "nhcb")]),
                samples: Vec::new(),
                histograms: vec![custom],
            },
        ],
        metadata: Vec::new(),
    };
    let body = model::wire::remote_write::to_body(&request);
    Request::post("/api/v1/write")
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "snappy")
        .body(Body::from(body))
        .unwrap()
}

#[tokio::test]
async fn remote_write_native_histograms_then_query_and_list_them() {
    let f = fixture();
    let t0 = model::time::now_ms() - 60_000;
    let (status, text) = call(&f.state, histogram_write(t0, t0, true)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    assert!(text.contains(r#"rpc_seconds{job="nhcb"}"#) && text.contains("spans describe 3 buckets"), "{text}");
    let (status, text) = call(&f.state, histogram_write(t0, t0, false)).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{text}");

    let at = (t0 + 20_000) as f64 / 1000.0;
    let (status, body) =
        get(&f.state, &format!("/api/v1/query?query=rpc_seconds%7Bjob%3D%22api%22%7D&time={at}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let h = &body["data"]["result"][0]["histogram"][1];
    assert_eq!((h["count"].as_str(), h["sum"].as_str()), (Some("12"), Some("21")), "{body}");
    // Delta counts 4, -2, 2 are buckets 4, 2 and (one bucket further) 4; the zero bucket holds 2.
    let counts: Vec<&str> = h["buckets"].as_array().unwrap().iter().map(|b| b[3].as_str().unwrap()).collect();
    assert_eq!(counts, ["2", "4", "2", "4"], "{body}");
    let (_, body) =
        get(&f.state, &format!("/api/v1/query?query=histogram_count(rpc_seconds%7Bjob%3D%22nhcb%22%7D)&time={at}"))
            .await;
    assert_eq!(body["data"]["result"][0]["value"][1], "6", "{body}");
    let (_, body) = get(
        &f.state,
        &format!("/api/v1/query?query=histogram_quantile(0.5%2C%20rpc_seconds%7Bjob%3D%22nhcb%22%7D)&time={at}"),
    )
    .await;
    assert_eq!(body["data"]["result"][0]["value"][1], "1", "rank 3 of 6 ends the (0.1, 1] bucket: {body}");

    // Histogram series are listed like float series.
    let (_, body) = get(&f.state, "/api/v1/series?match[]=rpc_seconds").await;
    assert_eq!(body["data"].as_array().map(Vec::len), Some(2), "{body}");
    let (_, body) = get(&f.state, "/api/v1/label/job/values").await;
    assert_eq!(body["data"], json!(["api", "nhcb"]));
}

/// Histogram samples older than the newest block are refused as float ones are: 400 naming the
/// refused series, the rest of the request stored (issue #6; it answered 204).
#[tokio::test]
async fn remote_write_refuses_out_of_bounds_histograms_like_floats() {
    let f = fixture();
    let tsdb = f.state.services().tsdb.clone().unwrap();
    let tenant = model::TenantId::default_tenant();
    let now = model::time::now_ms();
    let six_hours = 6 * 3_600_000;
    let floats = |from: i64, to: i64| {
        let samples = (from / 60_000..to / 60_000).map(|k| Sample::new(k * 60_000, k as f64)).collect();
        vec![TimeSeries::new(Labels::from_pairs([("__name__", "up"), ("job", "api")]), samples)]
    };
    tsdb.append(&tenant, &floats(now - six_hours, now)).unwrap();
    tsdb.maintain().unwrap();
    let old = now - six_hours + 60_000;
    let (status, text) = call(&f.state, histogram_write(old, now - 30_000, false)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    assert!(text.contains("2 samples rejected (1 stored)") && text.contains("out of bounds"), "{text}");
    assert!(text.contains(r#"rpc_seconds{job="api"}"#), "{text}");
    // The float path answers the same for the same case.
    let request = Request::post("/api/v1/write")
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "snappy")
        .body(Body::from(model::wire::remote_write::encode(&floats(old, old + 60_000))))
        .unwrap();
    let (status, text) = call(&f.state, request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    assert!(text.contains("1 samples rejected (0 stored)") && text.contains("out of bounds"), "{text}");
    let at = (now - 20_000) as f64 / 1000.0;
    let (_, body) =
        get(&f.state, &format!("/api/v1/query?query=histogram_count(rpc_seconds%7Bjob%3D%22nhcb%22%7D)&time={at}"))
            .await;
    assert_eq!(body["data"]["result"][0]["value"][1], "6", "the accepted histogram was kept: {body}");
    let (_, body) = get(&f.state, &format!("/api/v1/query?query=rpc_seconds%7Bjob%3D%22api%22%7D&time={at}")).await;
    assert_eq!(body["data"]["result"], json!([]), "{body}");
}

#[tokio::test]
async fn remote_write_then_prometheus_queries() {
    let f = fixture();
    let t0 = model::time::now_ms() - 60_000;
    let series = vec![
        TimeSeries::new(
            Labels::from_pairs([("__name__", "http_requests_total"), ("job", "api"), ("code", "200")]),
            (0..=12).map(|i| Sample::new(t0 + i * 5_000, (i * 10) as f64)).collect(),
        ),
        TimeSeries::new(
            Labels::from_pairs([("__name__", "http_requests_total"), ("job", "api"), ("code", "500")]),
            (0..=12).map(|i| Sample::new(t0 + i * 5_000, i as f64)).collect(),
        ),
    ];
    let request = Request::post("/api/v1/write")
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "snappy")
        .body(Body::from(model::wire::remote_write::encode(&series)))
        .unwrap();
    let (status, text) = call(&f.state, request).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{text}");

    let at = (t0 + 60_000) as f64 / 1000.0;
    let (status, body) =
        get(&f.state, &format!("/api/v1/query?query=http_requests_total%7Bcode%3D%22200%22%7D&time={at}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"status": "success", "data": {"resultType": "vector", "result": [
            {"metric": {"__name__": "http_requests_total", "code": "200", "job": "api"}, "value": [at, "120"]}
        ]}})
    );

    let (_, body) =
        get(&f.state, &format!("/api/v1/query?query=sum%20by%20(job)%20(rate(http_requests_total%5B1m%5D))&time={at}"))
            .await;
    let v: f64 = body["data"]["result"][0]["value"][1].as_str().unwrap().parse().unwrap();
    assert!((v - 2.2).abs() < 1e-9, "rate of 2/s + 0.2/s: {body}");

    let start = (t0 as f64) / 1000.0;
    let (_, body) =
        get(&f.state, &format!("/api/v1/query_range?query=http_requests_total&start={start}&end={at}&step=15")).await;
    assert_eq!(body["data"]["resultType"], "matrix");
    assert_eq!(body["data"]["result"].as_array().unwrap().len(), 2);
    assert_eq!(body["data"]["result"][0]["values"].as_array().unwrap().len(), 5);

    // Prometheus's annotations travel with the result.
    let (_, body) = get(&f.state, &format!("/api/v1/query?query=quantile(2%2C%20http_requests_total)&time={at}")).await;
    assert_eq!(body["status"], "success");
    assert!(body["warnings"][0].as_str().unwrap().contains("quantile value should be between 0 and 1"), "{body}");

    let (_, body) = get(&f.state, "/api/v1/labels").await;
    assert_eq!(body["data"], json!(["__name__", "code", "job"]));
    let (_, body) = get(&f.state, "/api/v1/label/code/values").await;
    assert_eq!(body["data"], json!(["200", "500"]));
    let (_, body) = get(&f.state, "/api/v1/series?match%5B%5D=http_requests_total%7Bcode%3D%22500%22%7D").await;
    assert_eq!(body["data"], json!([{"__name__": "http_requests_total", "code": "500", "job": "api"}]));
}

#[tokio::test]
async fn operations_endpoints() {
    let f = fixture();
    let (status, _) = get(&f.state, "/-/healthy").await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = get(&f.state, "/-/ready").await;
    assert_eq!(status, StatusCode::OK);
    f.state.set_ready(false);
    let (status, _) = get(&f.state, "/-/ready").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let (status, body) = call(&f.state, Request::get("/metrics").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("tarsier_http_requests"), "{body}");
    // A browser (Accept: text/html) gets the UI; a client that does not ask for HTML gets
    // Elasticsearch's version information (see tests/es_bulk.rs).
    let browser = Request::get("/").header("accept", "text/html").body(Body::empty()).unwrap();
    let (status, body) = call(&f.state, browser).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("<title>Tarsier</title>"));
}

/// `/api/v1/openapi.yaml` serves docs/openapi.yaml, and the description has exactly the routes and
/// methods the router registers: a new route without a description, or a description of a route
/// that is gone, fails here (issue #10: the spec had fallen behind the router).
#[tokio::test]
async fn openapi_description_is_served_and_covers_the_routes() {
    let f = fixture();
    let (status, body) = call(&f.state, Request::get("/api/v1/openapi.yaml").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.starts_with("# Tarsier's HTTP API") && body.contains("\nopenapi: 3.0.3\n"), "{body}");

    let spec: serde_yaml_ng::Value = serde_yaml_ng::from_str(&body).unwrap();
    let mut described = std::collections::BTreeSet::new();
    for (path, item) in spec["paths"].as_mapping().expect("paths") {
        for method in item.as_mapping().unwrap().keys().filter_map(|k| k.as_str()) {
            if HTTP_METHODS.contains(&method) {
                described.insert((path.as_str().unwrap().to_string(), method.to_string()));
            }
        }
    }
    let routed = routes_in_source();
    // A sanity floor, so a parser that silently finds nothing cannot pass.
    assert!(routed.len() >= 70, "only {} routes found in query-ui/src: {routed:?}", routed.len());
    let undescribed: Vec<_> = routed.difference(&described).collect();
    assert!(undescribed.is_empty(), "routes missing from docs/openapi.yaml (path, method): {undescribed:?}");
    // axum answers HEAD on every GET route: a described HEAD needs only the GET.
    let stale: Vec<_> = described
        .difference(&routed)
        .filter(|(path, method)| !(method == "head" && routed.contains(&(path.clone(), "get".to_string()))))
        .collect();
    assert!(stale.is_empty(), "docs/openapi.yaml describes routes the router does not have: {stale:?}");
}

const HTTP_METHODS: [&str; 7] = ["get", "put", "post", "delete", "head", "patch", "options"];

/// Every `(path, method)` the router of a full server registers, read from the
/// `.route("<path>", get(..).post(..))` calls in query-ui/src (axum has no way to list a router's
/// routes). Paths in OpenAPI's form (`{*path}` → `{path}`). A route written in a way this cannot
/// read (a path that is not a literal, no method router, `nest`, `route_service`) fails loudly.
/// `external_metrics.rs` is left out: it is Kubernetes' external metrics API on its own HTTPS
/// listener, described by Kubernetes, not part of this API.
fn routes_in_source() -> std::collections::BTreeSet<(String, String)> {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let method = regex::Regex::new(r"(?:^|[^A-Za-z0-9_])(get|put|post|delete|head|patch|options)\($").unwrap();
    let mut routes = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.ends_with(".rs") || name == "external_metrics.rs" {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap();
        for unreadable in [".nest(", ".route_service(", ".nest_service("] {
            assert!(!code.contains(unreadable), "{name} uses {unreadable}: teach routes_in_source to read it");
        }
        for (at, _) in code.match_indices(".route(") {
            let args = &code[at + ".route(".len()..];
            let literal =
                args.strip_prefix('"').unwrap_or_else(|| panic!("{name}: a route path that is not a literal"));
            let route = literal[..literal.find('"').unwrap()].replace("{*", "{");
            // The method routers are the calls at the top level of the second argument.
            let (mut depth, mut found) = (0, 0);
            for (i, c) in args.char_indices() {
                match c {
                    '(' if depth == 0 => {
                        if let Some(m) = method.captures(&args[..=i]) {
                            routes.insert((route.clone(), m[1].to_string()));
                            found += 1;
                        }
                        depth += 1;
                    }
                    '(' => depth += 1,
                    ')' if depth == 0 => break,
                    ')' => depth -= 1,
                    _ => {}
                }
            }
            assert!(found > 0, "{name}: no method router (get/post/..) found for {route}");
        }
    }
    routes
}

/// The response's status, `Content-Type` and body.
async fn call_typed(state: &query_ui::AppState, uri: &str) -> (StatusCode, String, Vec<u8>) {
    let response =
        query_ui::router(state.clone()).oneshot(Request::get(uri).body(Body::empty()).unwrap()).await.unwrap();
    let status = response.status();
    let content_type = response.headers().get("content-type").map(|v| v.to_str().unwrap().to_string());
    let bytes = axum::body::to_bytes(response.into_body(), 64 << 20).await.unwrap();
    (status, content_type.unwrap_or_default(), bytes.to_vec())
}

/// schemathesis found `GET /api/v1/admin/snapshots/<name>/files/<path>?offset=-1` answered in
/// axum's plain text instead of Prometheus's JSON error the description promises. An offset at or
/// past the end is an empty chunk, also one past i64::MAX, where seeking would fail as a 500.
#[tokio::test]
async fn snapshot_file_offset_schemathesis_sent_negative_answers_prometheus_json() {
    let f = fixture();
    let (status, text) = call(&f.state, loki_push(&["a line to back up".to_string()])).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{text}");
    f.indexer.commit().unwrap();
    let request = Request::post("/api/v1/admin/snapshot").body(Body::empty()).unwrap();
    let (status, body) = call(&f.state, request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let created: Value = serde_json::from_str(&body).unwrap();
    let name = created["data"]["name"].as_str().unwrap();
    let files = created["data"]["files"].as_array().unwrap();
    let file = files.iter().find(|f| f["size"].as_u64().unwrap() > 0).expect("a non-empty file in the snapshot");
    let (path, size) = (file["path"].as_str().unwrap(), file["size"].as_u64().unwrap());
    let uri = |offset: &str| format!("/api/v1/admin/snapshots/{name}/files/{path}?offset={offset}");

    let (status, content_type, bytes) = call_typed(&f.state, &uri("1")).await;
    assert_eq!((status, content_type.as_str()), (StatusCode::OK, "application/octet-stream"));
    assert_eq!(bytes.len() as u64, size.min(8 << 20) - 1);
    for bad in ["-1", "x", "1.5"] {
        let (status, content_type, body) = call_typed(&f.state, &uri(bad)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "offset={bad}");
        assert_eq!(content_type, "application/json", "offset={bad}");
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["errorType"], "bad_data", "{body}");
        assert!(body["error"].as_str().unwrap().contains("offset"), "{body}");
    }
    for past in [size.to_string(), u64::MAX.to_string()] {
        let (status, _, bytes) = call_typed(&f.state, &uri(&past)).await;
        assert_eq!((status, bytes.len()), (StatusCode::OK, 0), "offset={past}");
    }
}

#[tokio::test]
async fn context_returns_lines_around_a_line_of_one_stream() {
    let f = fixture();
    let ts = now_ns();
    let tenant = model::TenantId::default_tenant();
    let labels = Labels::from_pairs([("job", "ctx")]);
    let records: Vec<model::LogRecord> = (0..6)
        .map(|i| model::LogRecord { timestamp_ns: ts + i, labels: labels.clone(), line: format!("line {i}") })
        .collect();
    f.indexer.append(&tenant, records).unwrap();
    f.indexer.commit().unwrap();
    let stream = "%7Bjob%3D%22ctx%22%7D";
    let uri = format!("/api/v1/logs/context?stream={stream}&time={}&before=2&after=1", ts + 3);
    let (status, body) = get(&f.state, &uri).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["data"],
        json!({
            "stream": {"job": "ctx"},
            "before": [[(ts + 1).to_string(), "line 1"], [(ts + 2).to_string(), "line 2"]],
            "at": [[(ts + 3).to_string(), "line 3"]],
            "after": [[(ts + 4).to_string(), "line 4"]],
        })
    );
    let (status, _) = get(&f.state, &format!("/api/v1/logs/context?stream={stream}&time=x")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = get(&f.state, &format!("/api/v1/logs/context?time={ts}")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

/// Regression: a limit above `indexer.max_query_lines` but within `server.max_log_query_limit`
/// was refused with a message telling users to raise the server key, which changed nothing.
#[tokio::test]
async fn a_too_large_log_limit_names_the_key_that_limits_it() {
    let f = fixture();
    let query = "/loki/api/v1/query_range?query=%7Bjob%3D%22api%22%7D&start=0&limit=";
    let raised = query_ui::HttpConfig { max_log_query_limit: 100_000, ..Default::default() };
    let state = query_ui::AppState::new(f.state.services().clone(), raised, Default::default());
    let store_max = f.indexer.max_query_lines();
    let (status, body) = get(&state, &format!("{query}{}", store_max + 1)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let text = body.to_string();
    assert!(text.contains("indexer.max_query_lines") && text.contains(&format!("> {store_max}")), "{text}");
    assert!(!text.contains("server.max_log_query_limit"), "{text}");
    let (status, body) = get(&state, &format!("{query}{store_max}")).await;
    assert_eq!(status, StatusCode::OK, "the store's ceiling itself is allowed: {body}");

    let lowered = query_ui::HttpConfig { max_log_query_limit: 10, ..Default::default() };
    let state = query_ui::AppState::new(f.state.services().clone(), lowered, Default::default());
    let (status, body) = get(&state, &format!("{query}11")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.to_string().contains("server.max_log_query_limit"), "{body}");
}

async fn call_with_headers(state: &query_ui::AppState, request: Request<Body>) -> (StatusCode, String, String) {
    let response = query_ui::router(state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let retry_after =
        response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    let bytes = axum::body::to_bytes(response.into_body(), 64 << 20).await.unwrap();
    (status, String::from_utf8_lossy(&bytes).into_owned(), retry_after)
}

fn remote_write(series: &[TimeSeries]) -> Request<Body> {
    Request::post("/api/v1/write")
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "snappy")
        .body(Body::from(model::wire::remote_write::encode(series)))
        .unwrap()
}

fn loki_push(lines: &[String]) -> Request<Body> {
    let ts = now_ns();
    let entries = lines.iter().enumerate().map(|(i, l)| LogEntry { timestamp_ns: ts + i as i64, line: l.clone() });
    let streams = [LogStream { labels: Labels::from_pairs([("job", "limits")]), entries: entries.collect() }];
    Request::post("/loki/api/v1/push")
        .header("content-type", "application/json")
        .body(Body::from(model::wire::loki_push::encode_json(&streams)))
        .unwrap()
}

/// #10.7: each limit answers with an error naming its config key, and counts in
/// `tarsier_limit_hits_total{limit="<key>"}`.
#[tokio::test]
async fn limits_answer_naming_their_key_and_count_their_hits() {
    let dir = tempfile::tempdir().unwrap();
    let indexer =
        Arc::new(indexer::Indexer::open(&dir.path().join("indexer"), indexer::IndexerConfig::default()).unwrap());
    let tsdb_config = tsdb::TsdbConfig { max_samples_per_query: 5, ..Default::default() };
    let tsdb = Arc::new(tsdb::Tsdb::open(&dir.path().join("tsdb"), tsdb_config).unwrap());
    let services = query_ui::Services { indexer: Some(indexer), tsdb: Some(tsdb), ..Default::default() };
    let config = query_ui::HttpConfig {
        max_labels_per_series: 3,
        max_samples_per_second: 10,
        max_log_bytes_per_second: 100,
        max_body_bytes: 4096,
        ..Default::default()
    };
    let state = query_ui::AppState::new(services, config, Default::default());
    state.set_ready(true);
    let t0 = model::time::now_ms() - 10_000;

    // Labels per series: the wide series is refused, the other stored.
    let wide = Labels::from_pairs([("__name__", "wide"), ("a", "1"), ("b", "2"), ("c", "3")]);
    let narrow = Labels::from_pairs([("__name__", "narrow"), ("a", "1")]);
    let series =
        [TimeSeries::new(wide, vec![Sample::new(t0, 1.0)]), TimeSeries::new(narrow, vec![Sample::new(t0, 1.0)])];
    let (status, text, _) = call_with_headers(&state, remote_write(&series)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    assert!(text.contains("server.max_labels_per_series") && text.contains("wide"), "{text}");
    let (status, body) = get(&state, &format!("/api/v1/query?query=narrow&time={}", t0 as f64 / 1000.0)).await;
    assert_eq!((status, body["data"]["result"].as_array().map(Vec::len)), (StatusCode::OK, Some(1)), "{body}");

    // Samples per second: 20 in the bucket (1 taken); 10 more go in, the next request waits.
    let many = [TimeSeries::new(
        Labels::from_pairs([("__name__", "many")]),
        (0..25).map(|i| Sample::new(t0 + i * 100, i as f64)).collect(),
    )];
    let (status, text, _) = call_with_headers(&state, remote_write(&many)).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{text}");
    let (status, text, retry_after) = call_with_headers(&state, remote_write(&many)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{text}");
    assert!(text.contains("server.max_samples_per_second"), "{text}");
    assert_eq!(retry_after, "1", "6 samples of debt at 10/s");

    // Log bytes per second, per tenant.
    let lines: Vec<String> = (0..3).map(|i| format!("{i} {}", "x".repeat(80))).collect();
    let (status, text, _) = call_with_headers(&state, loki_push(&lines)).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{text}");
    let (status, text, retry_after) = call_with_headers(&state, loki_push(&lines)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{text}");
    assert!(text.contains("server.max_log_bytes_per_second") && !retry_after.is_empty(), "{text}");
    let other_tenant = loki_push(&lines);
    let (parts, body) = other_tenant.into_parts();
    let mut other_tenant = Request::from_parts(parts, body);
    other_tenant.headers_mut().insert("x-scope-orgid", "other".parse().unwrap());
    let (status, text, _) = call_with_headers(&state, other_tenant).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "another tenant has its own bucket: {text}");

    // Body size.
    let big: Vec<String> = vec!["y".repeat(5000)];
    let (status, text, _) = call_with_headers(&state, loki_push(&big)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{text}");
    assert!(text.contains("server.max_body_bytes"), "{text}");

    // Samples per query (the store's limit, in Prometheus's words plus the key).
    let at = (t0 + 3_000) as f64 / 1000.0;
    let (status, body) = get(&state, &format!("/api/v1/query?query=many%5B1m%5D&time={at}")).await;
    assert_eq!(status.as_u16(), 422, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(error.starts_with("query processing would load too many samples"), "{error}");
    assert!(error.contains("tsdb.max_samples_per_query"), "{error}");

    let (_, metrics) = call(&state, Request::get("/metrics").body(Body::empty()).unwrap()).await;
    for key in [
        "server.max_labels_per_series",
        "server.max_samples_per_second",
        "server.max_log_bytes_per_second",
        "server.max_body_bytes",
        "tsdb.max_samples_per_query",
    ] {
        let series = format!("tarsier_limit_hits_total{{limit=\"{key}\"}} 1");
        assert!(metrics.lines().any(|l| l == series), "no {series} in:\n{metrics}");
    }
}

/// `server.log_query_timeout` stops the LogQL work, not only the wait for it: with one query slot,
/// a query that timed out must not keep the slot until its scan would have ended (#10).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_log_query_frees_its_slot_when_it_stops() {
    let f = fixture();
    let base = now_ns() - 600_000_000_000;
    for chunk in 0..20 {
        let records = (0..2_000)
            .map(|i| {
                let n = chunk * 2_000 + i;
                model::LogRecord {
                    timestamp_ns: base + n * 1_000_000,
                    labels: Labels::from_pairs([("job", "bulk")]),
                    line: format!("level=info n={n} msg=\"request served\""),
                }
            })
            .collect();
        f.indexer.append(&model::TenantId::default(), records).unwrap();
    }
    f.indexer.commit().unwrap();
    // A regex filter makes the store load and check every one of the 40,000 lines.
    let slow =
        "/loki/api/v1/query_range?query=%7Bjob%3D%22bulk%22%7D%20%7C~%20%22n%3D%5B0-9%5D%2B9%20%22&limit=5000&start=0";
    let started = std::time::Instant::now();
    let (status, body) = get(&f.state, slow).await;
    let full = started.elapsed();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["stats"]["summary"]["totalLinesProcessed"], 40_000);

    let config = query_ui::HttpConfig { max_concurrent_queries: 1, log_query_timeout: full / 20, ..Default::default() };
    let limited = query_ui::AppState::new(f.state.services().clone(), config, Default::default());
    limited.set_ready(true);
    let metric = format!(
        "/loki/api/v1/query?time={}&query=sum(count_over_time(%7Bjob%3D%22bulk%22%7D%20%7C%20logfmt%20%7C%20n%21%3D%22%22%20%5B1h%5D))",
        now_ns()
    );
    for query in [slow, metric.as_str()] {
        let started = std::time::Instant::now();
        let (status, text) = call(&limited, Request::get(query).body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{text}");
        assert!(text.contains("server.log_query_timeout"), "{text}");
        // The next query gets the one slot as soon as the cancelled work has stopped, long before
        // the whole scan would have ended.
        let (status, body) = get(&limited, "/loki/api/v1/labels?start=0").await;
        let took = started.elapsed();
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(took < full / 2, "{query}: the slot was free after {took:?}; a whole scan takes {full:?}");
    }
}
