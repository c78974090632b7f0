//! KEDA against a real Tarsier: the requests the prometheus and metrics-api scalers send, taken
//! from `deploy/kubernetes/examples/keda-scaledobject.yaml`, answered by `tarsier run` scraping an
//! application, and read the way each scaler reads them (`data.result[0].value[1]`; the GJSON path
//! `data.result.0.value.1`). An empty result must stay distinguishable from 0.

mod support;

use serde_json::Value;
use support::*;

/// An application exposing a gauge, like one KEDA would scale on.
async fn serve_app() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(|| async { "# TYPE queue_depth gauge\nqueue_depth{queue=\"orders\"} 42\n" }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr.to_string()
}

/// Follows a GJSON-style dotted path (`data.result.0.value.1`) as KEDA's metrics-api scaler does.
fn gjson<'a>(v: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(v, |v, key| match key.parse::<usize>() {
        Ok(i) if v.is_array() => &v[i],
        _ => &v[key],
    })
}

fn example_triggers() -> Vec<serde_yaml_ng::Value> {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes/examples/keda-scaledobject.yaml");
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| <serde_yaml_ng::Value as serde::Deserialize>::deserialize(d).unwrap())
        .map(|doc| doc["spec"]["triggers"][0].clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_and_metrics_api_scalers_read_tarsier() {
    let triggers = example_triggers();
    assert_eq!(triggers[0]["type"].as_str(), Some("prometheus"));
    assert_eq!(triggers[0]["metadata"]["ignoreNullValues"].as_str(), Some("false"));
    assert_eq!(triggers[1]["type"].as_str(), Some("metrics-api"));
    let location = triggers[1]["metadata"]["valueLocation"].as_str().unwrap().to_string();
    let example_url = reqwest::Url::parse(triggers[1]["metadata"]["url"].as_str().unwrap()).unwrap();
    assert_eq!(example_url.path(), "/api/v1/query");

    let app = serve_app().await;
    let listen = format!("127.0.0.1:{}", free_port());
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let client = reqwest::Client::new();
    let mut tarsier = Proc::start(
        &[
            "run",
            "--listen",
            &listen,
            "--data-dir",
            data.to_str().unwrap(),
            "--scrape",
            &format!("app=http://{app}/metrics"),
        ],
        &listen,
    );
    tarsier.wait_ready(&client).await;
    let base = tarsier.base.clone();
    await_series(&client, &base, "queue_depth").await;

    // The prometheus scaler: query + time (RFC 3339, whole seconds as KEDA formats it), one
    // series, value as a string. A second later the truncated time is past the first sample.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let query = "sum(queue_depth{queue=\"orders\"})";
    let url =
        reqwest::Url::parse_with_params(&format!("{base}/api/v1/query"), &[("query", query), ("time", &now)]).unwrap();
    let body = get_json(&client, url.as_str()).await;
    assert_eq!(body["status"], "success");
    let result = body["data"]["result"].as_array().unwrap();
    assert_eq!(result.len(), 1, "the prometheus scaler needs exactly one series");
    assert_eq!(result[0]["value"][1].as_str().unwrap().parse::<f64>().unwrap(), 42.0);

    // The metrics-api scaler: a plain GET, value at the GJSON path.
    let url = reqwest::Url::parse_with_params(&format!("{base}/api/v1/query"), &[("query", query)]).unwrap();
    let body = get_json(&client, url.as_str()).await;
    assert_eq!(gjson(&body, &location).as_str(), Some("42"));

    // No data: an empty result (KEDA with ignoreNullValues=false errors), never a 0.
    let url =
        reqwest::Url::parse_with_params(&format!("{base}/api/v1/query"), &[("query", "sum(no_such_metric)")]).unwrap();
    let body = get_json(&client, url.as_str()).await;
    assert_eq!(body["data"]["result"].as_array().map(Vec::len), Some(0));
    assert!(gjson(&body, &location).is_null());
    tarsier.stop();
}
