//! Loki's metric query endpoints over a real indexer: `/query` answers metric queries as a
//! `vector`, `/query_range` dispatches log vs metric queries (`step` as duration, float seconds or
//! Loki's default), and `/index/volume_range` / `/index/volume` answer bytes per group.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use model::{Labels, LogRecord};
use serde_json::{Value, json};
use tower::ServiceExt;

const SEC: i64 = 1_000_000_000;

struct Fixture {
    _dir: tempfile::TempDir,
    state: query_ui::AppState,
    /// Whole minute an hour ago, in seconds; lines are at base+10s ... base+40s.
    base_s: i64,
}

const LINES: [&str; 4] =
    ["level=info status=200", "level=error status=500", "level=info status=200", "level=error status=503"];

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let indexer =
        Arc::new(indexer::Indexer::open(&dir.path().join("indexer"), indexer::IndexerConfig::default()).unwrap());
    let base_s = (model::time::now_ns() / SEC - 3600) / 60 * 60;
    let records: Vec<LogRecord> = LINES
        .iter()
        .enumerate()
        .map(|(i, line)| LogRecord {
            timestamp_ns: (base_s + 10 * (i as i64 + 1)) * SEC,
            labels: Labels::from_pairs([("job", "api")]),
            line: line.to_string(),
        })
        .collect();
    indexer.append(&model::TenantId::default(), records).unwrap();
    indexer.commit().unwrap();
    let services = query_ui::Services { indexer: Some(indexer), ..Default::default() };
    let state = query_ui::AppState::new(services, query_ui::HttpConfig::default(), Default::default());
    state.set_ready(true);
    Fixture { _dir: dir, state, base_s }
}

async fn get(f: &Fixture, path: &str, params: &[(&str, String)]) -> (StatusCode, Value) {
    let query = form_urlencoded::Serializer::new(String::new()).extend_pairs(params).finish();
    let request = Request::get(format!("{path}?{query}")).body(Body::empty()).unwrap();
    let response = query_ui::router(f.state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 64 << 20).await.unwrap();
    let body = String::from_utf8_lossy(&bytes).into_owned();
    (status, serde_json::from_str(&body).unwrap_or(Value::String(body)))
}

#[tokio::test]
async fn instant_metric_query_answers_a_vector() {
    let f = fixture();
    let at = f.base_s + 60;
    let q = "sum by (level) (count_over_time({job=\"api\"} | logfmt [1m]))";
    let (status, body) = get(&f, "/loki/api/v1/query", &[("query", q.into()), ("time", at.to_string())]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "success");
    assert_eq!(
        body["data"]["result"],
        json!([
            {"metric": {"level": "error"}, "value": [at, "2"]},
            {"metric": {"level": "info"}, "value": [at, "2"]}
        ])
    );
    assert_eq!(body["data"]["resultType"], "vector");
    assert!(body["data"]["stats"]["summary"].is_object());

    let (status, body) = get(&f, "/loki/api/v1/query", &[("query", "{job=\"api\"}".into())]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.as_str().unwrap().contains("not supported as an instant query type"), "{body}");
    let (status, body) = get(&f, "/loki/api/v1/query", &[("query", "rate({job=\"api\"}[5m]".into())]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.as_str().unwrap().starts_with("parse error at line 1, col 21"), "{body}");
}

#[tokio::test]
async fn query_range_dispatches_log_and_metric_queries() {
    let f = fixture();
    let range = |step: &str| {
        vec![
            ("query", "count_over_time({job=\"api\"} | logfmt | status >= 500 [20s])".to_string()),
            ("start", (f.base_s + 20).to_string()),
            ("end", (f.base_s + 40).to_string()),
            ("step", step.to_string()),
        ]
    };
    let want = json!([{"metric": {"job": "api", "level": "error", "status": "500"}, "values": [[f.base_s + 20, "1"]]},
        {"metric": {"job": "api", "level": "error", "status": "503"}, "values": [[f.base_s + 40, "1"]]}]);
    for step in ["20s", "20", "20.0"] {
        let (status, body) = get(&f, "/loki/api/v1/query_range", &range(step)).await;
        assert_eq!(status, StatusCode::OK, "{step}: {body}");
        assert_eq!(body["data"]["resultType"], "matrix");
        assert_eq!(body["data"]["result"], want, "step {step}");
    }
    let (status, body) = get(&f, "/loki/api/v1/query_range", &range("0")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, _) = get(&f, "/loki/api/v1/query_range", &range("soon")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Without `step`: (end - start) / 250 rounded up to whole seconds, here 1 s.
    let params = [
        ("query", "count_over_time({job=\"api\"}[20s])".to_string()),
        ("start", f.base_s.to_string()),
        ("end", (f.base_s + 60).to_string()),
    ];
    let (status, body) = get(&f, "/loki/api/v1/query_range", &params).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let values = body["data"]["result"][0]["values"].as_array().unwrap();
    assert_eq!(values.len(), 50, "one point per second from base+10 to base+59");
    assert_eq!(values[0], json!([f.base_s + 10, "1"]));
    assert_eq!(values[1], json!([f.base_s + 11, "1"]));

    let params = [("query", "{job=\"api\"} | logfmt | status >= 500".to_string()), ("start", f.base_s.to_string())];
    let (status, body) = get(&f, "/loki/api/v1/query_range", &params).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["resultType"], "streams");
    assert_eq!(body["data"]["result"].as_array().unwrap().len(), 2, "one stream per extracted label set");
}

#[tokio::test]
async fn volume_endpoints_sum_bytes_by_selector_labels() {
    let f = fixture();
    let params = |extra: Vec<(&'static str, String)>| {
        let mut p = vec![
            ("query", "{job=\"api\"}".to_string()),
            ("start", f.base_s.to_string()),
            ("end", (f.base_s + 60).to_string()),
        ];
        p.extend(extra);
        p
    };
    let bytes = |range: std::ops::Range<usize>| LINES[range].iter().map(|l| l.len()).sum::<usize>().to_string();
    let (status, body) = get(&f, "/loki/api/v1/index/volume_range", &params(vec![("step", "30s".to_string())])).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["data"]["result"],
        json!([{"metric": {"job": "api"}, "values": [[f.base_s + 30, bytes(0..3)], [f.base_s + 60, bytes(3..4)]]}])
    );
    let (status, body) = get(&f, "/loki/api/v1/index/volume", &params(vec![])).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["result"], json!([{"metric": {"job": "api"}, "value": [f.base_s + 60, bytes(0..4)]}]));
    let (status, body) =
        get(&f, "/loki/api/v1/index/volume", &params(vec![("targetLabels", "job,level".to_string())])).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["result"][0]["metric"], json!({"job": "api"}), "level is not a stream label");
    let (status, _) = get(&f, "/loki/api/v1/index/volume", &params(vec![("aggregateBy", "labels".to_string())])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = get(&f, "/loki/api/v1/index/volume", &[("query", "{job=\"api\"} |= \"x\"".to_string())]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
