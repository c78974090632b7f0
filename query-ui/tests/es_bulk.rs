//! Elasticsearch `_bulk` ingest driven without sockets over a real indexer: Filebeat- and Fluent
//! Bit-shaped batches are stored and read back through Loki's query API with their promoted
//! labels; partial failures, gzip bodies and the probes shippers make. And the agent's own
//! `agent.sinks` (loki and elasticsearch kinds) against this server over a socket.

use std::io::Write;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
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
    let services = query_ui::Services { indexer: Some(indexer.clone()), ..Default::default() };
    let state = query_ui::AppState::new(services, query_ui::HttpConfig::default(), Default::default());
    state.set_ready(true);
    Fixture { _dir: dir, state, indexer }
}

async fn call(state: &query_ui::AppState, request: Request<Body>) -> (StatusCode, Value) {
    let response = query_ui::router(state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 64 << 20).await.unwrap();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

fn bulk(uri: &str, body: impl Into<Body>) -> Request<Body> {
    Request::post(uri).header("content-type", "application/x-ndjson").body(body.into()).unwrap()
}

async fn query(state: &query_ui::AppState, logql: &str) -> Value {
    let q: String = form_urlencoded::byte_serialize(logql.as_bytes()).collect();
    let request = Request::get(format!("/loki/api/v1/query_range?query={q}&start=0")).body(Body::empty()).unwrap();
    let (status, body) = call(state, request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["data"]["result"].clone()
}

fn now_rfc3339(offset_ms: i64) -> (i64, String) {
    let ms = model::time::now_ms() + offset_ms;
    let text =
        chrono::DateTime::from_timestamp_millis(ms).unwrap().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    (ms * 1_000_000, text)
}

#[tokio::test]
async fn filebeat_and_fluent_bit_batches_are_stored_with_promoted_labels() {
    let f = fixture();
    let (ts1, t1) = now_rfc3339(-2000);
    let filebeat = [
        json!({"create": {"_index": "filebeat-8.11.0"}}),
        json!({"@timestamp": t1, "message": "GET /cart 500 upstream timeout", "host": {"name": "node-1"},
               "kubernetes": {"namespace": "shop", "pod": {"name": "cart-7"}, "container": {"name": "cart"}},
               "stream": "stdout", "agent": {"type": "filebeat"}}),
    ];
    let body: String = filebeat.iter().map(|v| format!("{v}\n")).collect();
    let (status, response) = call(&f.state, bulk("/_bulk", body)).await;
    assert_eq!(status, StatusCode::OK, "{response}");
    assert_eq!(response["errors"], false);
    let item = &response["items"][0]["create"];
    assert_eq!(item["_index"], "filebeat-8.11.0");
    assert_eq!(item["status"], 201);
    assert_eq!(item["result"], "created");
    assert!(item["_id"].as_str().is_some_and(|id| !id.is_empty()), "{item}");

    let ms2 = model::time::now_ms() - 1000;
    let fluent_bit = [
        json!({"index": {"_type": "_doc"}}),
        json!({"@timestamp": ms2, "log": "payment failed\n", "stream": "stderr",
               "kubernetes": {"namespace_name": "pay", "pod_name": "pay-1", "container_name": "api"}}),
    ];
    let body: String = fluent_bit.iter().map(|v| format!("{v}\n")).collect();
    let (status, response) = call(&f.state, bulk("/logstash-2026.11.27/_bulk", body)).await;
    assert_eq!(status, StatusCode::OK, "{response}");
    assert_eq!(response["items"][0]["index"]["_index"], "logstash-2026.11.27");
    f.indexer.commit().unwrap();

    let result = query(&f.state, r#"{index="filebeat-8.11.0"} |= "timeout""#).await;
    assert_eq!(
        result,
        json!([{"stream": {"index": "filebeat-8.11.0", "namespace": "shop", "pod": "cart-7", "container": "cart",
                            "host": "node-1", "stream": "stdout"},
                "values": [[ts1.to_string(), "GET /cart 500 upstream timeout"]]}])
    );
    let result = query(&f.state, r#"{namespace="pay", container="api"}"#).await;
    assert_eq!(
        result,
        json!([{"stream": {"index": "logstash-2026.11.27", "namespace": "pay", "pod": "pay-1", "container": "api",
                            "stream": "stderr"},
                "values": [[(ms2 * 1_000_000).to_string(), "payment failed"]]}])
    );
}

#[tokio::test]
async fn partial_failure_stores_the_good_items_and_names_the_bad() {
    let f = fixture();
    let (_, t0) = now_rfc3339(-2000);
    let (_, t) = now_rfc3339(0);
    let body = format!(
        "{{\"index\":{{}}}}\n{{\"@timestamp\":\"{t0}\",\"message\":\"first good\"}}\n\
         {{\"index\":{{\"_id\":\"x1\"}}}}\n{{broken\n\
         {{\"delete\":{{\"_id\":\"x1\"}}}}\n\
         {{\"create\":{{\"_id\":\"x2\"}}}}\n\"just a string\"\n\
         {{\"index\":{{\"_id\":\"x3\"}}}}\n{{\"@timestamp\":\"1999-01-01T00:00:00Z\",\"message\":\"too old\"}}\n\
         {{\"create\":{{\"_id\":\"x4\"}}}}\n{{\"@timestamp\":\"{t}\",\"message\":\"second good\"}}\n"
    );
    let (status, response) = call(&f.state, bulk("/app/_bulk", body)).await;
    assert_eq!(status, StatusCode::OK, "{response}");
    assert_eq!(response["errors"], true);
    let items = response["items"].as_array().unwrap();
    let statuses: Vec<(String, u64)> = items
        .iter()
        .map(|i| {
            let (action, body) = i.as_object().unwrap().iter().next().unwrap();
            (action.clone(), body["status"].as_u64().unwrap())
        })
        .collect();
    let expected = [("index", 201), ("index", 400), ("delete", 400), ("create", 400), ("index", 400), ("create", 201)];
    assert_eq!(statuses, expected.map(|(a, s)| (a.to_string(), s)).to_vec());
    assert_eq!(items[1]["index"]["error"]["type"], "mapper_parsing_exception");
    assert!(items[1]["index"]["error"]["reason"].as_str().unwrap().starts_with("line 4:"), "{}", items[1]);
    assert_eq!(items[2]["delete"]["error"]["type"], "illegal_argument_exception");
    assert!(items[3]["create"]["error"]["reason"].as_str().unwrap().contains("line 7"), "{}", items[3]);
    assert!(items[4]["index"]["error"]["reason"].as_str().unwrap().contains("line 9: entry too far behind"));
    assert_eq!(items[5]["create"]["_id"], "x4");
    f.indexer.commit().unwrap();
    let result = query(&f.state, r#"{index="app"}"#).await;
    let lines: Vec<&str> = result[0]["values"].as_array().unwrap().iter().map(|v| v[1].as_str().unwrap()).collect();
    assert_eq!(lines, vec!["second good", "first good"]);
}

#[tokio::test]
async fn gzip_body_with_tenant_header() {
    let f = fixture();
    let (_, t) = now_rfc3339(0);
    let body = format!("{{\"index\":{{\"_index\":\"gz\"}}}}\n{{\"@timestamp\":\"{t}\",\"message\":\"zipped\"}}\n");
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(body.as_bytes()).unwrap();
    let request = Request::post("/_bulk")
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .header("x-scope-orgid", "team-a")
        .body(Body::from(encoder.finish().unwrap()))
        .unwrap();
    let (status, response) = call(&f.state, request).await;
    assert_eq!((status, &response["errors"]), (StatusCode::OK, &json!(false)), "{response}");
    f.indexer.commit().unwrap();
    assert_eq!(query(&f.state, r#"{index="gz"}"#).await, json!([]), "the default tenant sees nothing");
    let request = Request::get("/loki/api/v1/query_range?query=%7Bindex%3D%22gz%22%7D&start=0")
        .header("x-scope-orgid", "team-a")
        .body(Body::empty())
        .unwrap();
    let (_, body) = call(&f.state, request).await;
    assert_eq!(body["data"]["result"][0]["values"][0][1], "zipped");
}

#[tokio::test]
async fn malformed_action_line_is_a_request_error_in_elasticsearch_shape() {
    let f = fixture();
    let (status, body) = call(&f.state, bulk("/_bulk", "{\"index\":{}}\n{}\n{oops\n")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["status"], 400);
    assert_eq!(body["error"]["type"], "illegal_argument_exception");
    assert!(body["error"]["reason"].as_str().unwrap().contains("line [3]"), "{body}");
    let request = Request::post("/_bulk").header("content-type", "text/plain").body(Body::from("{}")).unwrap();
    assert_eq!(call(&f.state, request).await.0, StatusCode::NOT_ACCEPTABLE);
}

/// Found by schemathesis (tests/e2e.rs): a bad `X-Scope-OrgID` was answered as plain text, which
/// Elasticsearch clients cannot parse; it is a 400 in Elasticsearch's error shape.
#[tokio::test]
async fn invalid_tenant_header_is_an_elasticsearch_error() {
    let f = fixture();
    for uri in ["/_bulk", "/app/_bulk"] {
        let request = Request::post(uri)
            .header("content-type", "application/x-ndjson")
            .header("x-scope-orgid", "{}")
            .body(Body::from("{\"index\":{}}\n{\"message\":\"m\"}\n"))
            .unwrap();
        let (status, body) = call(&f.state, request).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
        assert_eq!(body["error"]["type"], "illegal_argument_exception", "{uri}: {body}");
        assert!(body["error"]["reason"].as_str().unwrap().contains("invalid tenant id"), "{uri}: {body}");
    }
}

#[tokio::test]
async fn probes_shippers_make() {
    let f = fixture();
    let (status, info) = call(&f.state, Request::get("/").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(info["version"]["number"], "8.11.0");
    assert_eq!(info["tagline"], "You Know, for Search");
    let browser = Request::get("/").header("accept", "text/html,application/xhtml+xml").body(Body::empty()).unwrap();
    let (status, page) = call(&f.state, browser).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.as_str().is_some_and(|p| p.contains("<html") || p.contains("<!")), "{page}");
    let head = call(&f.state, Request::head("/").body(Body::empty()).unwrap()).await;
    assert_eq!(head.0, StatusCode::OK);
    let (status, license) = call(&f.state, Request::get("/_license").body(Body::empty()).unwrap()).await;
    assert_eq!((status, &license["license"]["status"]), (StatusCode::OK, &json!("active")));
    for path in ["/_template/filebeat", "/_index_template/filebeat-8.11.0", "/_ilm/policy/filebeat"] {
        let (status, body) = call(&f.state, Request::get(path).body(Body::empty()).unwrap()).await;
        assert_eq!((status, body), (StatusCode::NOT_FOUND, json!({})), "{path}");
        let put = Request::put(path).header("content-type", "application/json").body(Body::from("{}")).unwrap();
        let (status, body) = call(&f.state, put).await;
        assert_eq!((status, body), (StatusCode::OK, json!({"acknowledged": true})), "{path}");
    }
}

/// The agent's `loki` and `elasticsearch` sinks against the server's own `/loki/api/v1/push` and
/// `/_bulk`, at once: each stores the line, with its labels (Loki) or as fields and the index
/// label (`_bulk`).
#[tokio::test]
async fn agent_loki_and_elasticsearch_sinks_deliver_to_this_server() {
    let f = fixture();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let app = query_ui::router(f.state.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let sinks = [
        collector::SinkConfig {
            kind: collector::SinkKind::Loki,
            url: format!("http://{address}/loki/api/v1/push"),
            ..Default::default()
        },
        collector::SinkConfig {
            kind: collector::SinkKind::Elasticsearch,
            url: format!("http://{address}"),
            index: Some("agent-logs".into()),
            ..Default::default()
        },
    ];
    let fanout = collector::Fanout::from_configs(&sinks, std::time::Duration::from_secs(5)).unwrap();
    let (ts, _) = now_rfc3339(-1000);
    let record = model::LogRecord {
        timestamp_ns: ts,
        labels: model::Labels::from_pairs([("job", "agent"), ("namespace", "shop")]),
        line: "shipped twice over".into(),
    };
    collector::LogSink::push_logs(&fanout, model::TenantId::default(), vec![record]).await.unwrap();
    f.indexer.commit().unwrap();

    let result = query(&f.state, r#"{job="agent"}"#).await;
    assert_eq!(
        result,
        json!([{"stream": {"job": "agent", "namespace": "shop"}, "values": [[ts.to_string(), "shipped twice over"]]}])
    );
    let result = query(&f.state, r#"{index="agent-logs"}"#).await;
    assert_eq!(result[0]["values"], json!([[ts.to_string(), "shipped twice over"]]), "{result}");
}
