//! Golden tests of `/api/v1/status/tsdb` and `/api/v1/metadata`: the exact JSON Prometheus
//! answers with for the same head, so Grafana's cardinality views and metric browser work.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use model::{Labels, Sample, TenantId, TimeSeries};
use serde_json::{Value, json};
use tower::ServiceExt;

fn state() -> (tempfile::TempDir, query_ui::AppState, Arc<tsdb::Tsdb>) {
    let dir = tempfile::tempdir().unwrap();
    let tsdb = Arc::new(tsdb::Tsdb::open(dir.path(), tsdb::TsdbConfig::default()).unwrap());
    let services = query_ui::Services { tsdb: Some(tsdb.clone()), ..Default::default() };
    let state = query_ui::AppState::new(services, query_ui::HttpConfig::default(), Default::default());
    state.set_ready(true);
    (dir, state, tsdb)
}

async fn get(state: &query_ui::AppState, uri: &str) -> (StatusCode, Value) {
    let response =
        query_ui::router(state.clone()).oneshot(Request::get(uri).body(Body::empty()).unwrap()).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap())
}

fn load(tsdb: &tsdb::Tsdb) {
    let series: Vec<TimeSeries> =
        [("up", "api", "a"), ("up", "api", "b"), ("up", "db", "a"), ("http_requests_total", "api", "a")]
            .iter()
            .map(|(name, job, instance)| {
                let labels = Labels::from_pairs([("__name__", *name), ("job", *job), ("instance", *instance)]);
                TimeSeries::new(labels, vec![Sample::new(1_000, 1.0), Sample::new(16_000, 1.0)])
            })
            .collect();
    tsdb.append(&TenantId::default_tenant(), &series).unwrap();
}

#[tokio::test]
async fn status_tsdb_golden() {
    let (_dir, state, tsdb) = state();
    load(&tsdb);
    let (status, body) = get(&state, "/api/v1/status/tsdb?limit=3").await;
    assert_eq!(status, StatusCode::OK);
    let want = json!({"status": "success", "data": {
        "headStats": {"numSeries": 4, "numLabelPairs": 6, "chunkCount": 4, "minTime": 1000, "maxTime": 16000},
        "seriesCountByMetricName": [{"name": "up", "value": 3}, {"name": "http_requests_total", "value": 1}],
        "labelValueCountByLabelName": [
            {"name": "__name__", "value": 2}, {"name": "instance", "value": 2}, {"name": "job", "value": 2}],
        "memoryInBytesByLabelName": [
            {"name": "__name__", "value": 21}, {"name": "job", "value": 5}, {"name": "instance", "value": 2}],
        "seriesCountByLabelValuePair": [
            {"name": "__name__=up", "value": 3}, {"name": "instance=a", "value": 3}, {"name": "job=api", "value": 3}],
    }});
    assert_eq!(body, want);
    let (_, default_limit) = get(&state, "/api/v1/status/tsdb").await;
    assert_eq!(default_limit["data"]["seriesCountByLabelValuePair"].as_array().unwrap().len(), 6);
    let (status, err) = get(&state, "/api/v1/status/tsdb?limit=0").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(err["errorType"], "bad_data");
}

#[tokio::test]
async fn metadata_golden() {
    let (_dir, state, tsdb) = state();
    let (status, body) = get(&state, "/api/v1/metadata").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"status": "success", "data": {}}));
    let tenant = TenantId::default_tenant();
    let meta = |kind: &str, help: &str, unit: &str| tsdb::status::MetricMetadata {
        kind: kind.into(),
        help: help.into(),
        unit: unit.into(),
    };
    tsdb.record_metadata(&tenant, "http_requests_total", meta("counter", "Requests served.", ""));
    tsdb.record_metadata(&tenant, "node_load1", meta("gauge", "1m load average.", ""));
    tsdb.record_metadata(&tenant, "process_cpu_seconds_total", meta("counter", "CPU time.", "seconds"));
    let (_, body) = get(&state, "/api/v1/metadata?limit=2").await;
    assert_eq!(
        body,
        json!({"status": "success", "data": {
            "http_requests_total": [{"type": "counter", "help": "Requests served.", "unit": ""}],
            "node_load1": [{"type": "gauge", "help": "1m load average.", "unit": ""}],
        }})
    );
    let (_, body) = get(&state, "/api/v1/metadata?metric=process_cpu_seconds_total").await;
    assert_eq!(body["data"]["process_cpu_seconds_total"][0]["unit"], "seconds");
    let (status, body) = get(&state, "/api/v1/metadata?limit=x").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["errorType"], "bad_data");
}

#[tokio::test]
async fn remote_write_metadata_reaches_the_metadata_api() {
    use model::wire::remote_write::{Metadata, encode_request};
    let (_dir, state, _tsdb) = state();
    let metadata = [
        Metadata {
            metric_family_name: "node_cpu_seconds_total".into(),
            kind: "counter",
            help: "Seconds the CPUs spent in each mode.".into(),
            unit: "seconds".into(),
        },
        Metadata {
            metric_family_name: "node_load1".into(),
            kind: "gauge",
            help: "1m load average.".into(),
            unit: "".into(),
        },
    ];
    // Prometheus sends metadata in requests of their own, without series.
    let body = encode_request(&[], &metadata);
    let request = Request::post("/api/v1/write")
        .header("Content-Encoding", "snappy")
        .header("Content-Type", "application/x-protobuf")
        .body(Body::from(body))
        .unwrap();
    let response = query_ui::router(state.clone()).oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let (status, body) = get(&state, "/api/v1/metadata").await;
    assert_eq!(status, StatusCode::OK);
    let want = json!({"status": "success", "data": {
        "node_cpu_seconds_total": [
            {"type": "counter", "help": "Seconds the CPUs spent in each mode.", "unit": "seconds"}],
        "node_load1": [{"type": "gauge", "help": "1m load average.", "unit": ""}],
    }});
    assert_eq!(body, want);
}
