//! HttpSink against a local server: the Loki push and remote_write requests it sends, and how it
//! classifies the server's answers.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use collector::{HttpSink, LogSink, MetricSink};
use model::{Labels, LogRecord, Sample, TenantId, TimeSeries};

/// Which endpoint was hit, with the request's headers and body.
type Request = (String, HeaderMap, Vec<u8>);

#[derive(Clone, Default)]
struct Seen {
    requests: Arc<Mutex<Vec<Request>>>,
    status: Arc<Mutex<u16>>,
}

async fn serve(seen: Seen) -> String {
    let handler = |path: &'static str| {
        let seen = seen.clone();
        move |headers: HeaderMap, body: axum::body::Bytes| {
            let seen = seen.clone();
            async move {
                seen.requests.lock().unwrap().push((path.to_string(), headers, body.to_vec()));
                let status = *seen.status.lock().unwrap();
                (StatusCode::from_u16(status).unwrap(), "server says no")
            }
        }
    };
    let app = axum::Router::new()
        .route("/loki/api/v1/push", axum::routing::post(handler("logs")))
        .route("/api/v1/write", axum::routing::post(handler("write")));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{address}/")
}

#[tokio::test]
async fn pushes_decodable_bodies_with_protocol_headers_and_classifies_errors() {
    let seen = Seen::default();
    *seen.status.lock().unwrap() = 204;
    let sink = HttpSink::new(&serve(seen.clone()).await, Duration::from_secs(5)).unwrap();
    let tenant = TenantId::new("team-a").unwrap();
    let labels = Labels::from_pairs([("job", "x")]);
    let record = LogRecord { timestamp_ns: 5, labels: labels.clone(), line: "hello".into() };
    sink.push_logs(tenant.clone(), vec![record.clone()]).await.unwrap();
    let series = TimeSeries::new(Labels::from_pairs([("__name__", "m")]), vec![Sample::new(1, 2.0)]);
    sink.push_samples(tenant.clone(), vec![series.clone()]).await.unwrap();

    {
        let requests = seen.requests.lock().unwrap();
        let (path, headers, body) = &requests[0];
        assert_eq!(path, "logs");
        assert_eq!(headers["x-scope-orgid"], "team-a");
        assert_eq!(headers["content-type"], "application/x-protobuf");
        let streams = model::wire::loki_push::decode_protobuf(body, 1 << 20).unwrap();
        assert_eq!(model::LogStream::into_records(streams), vec![record]);
        let (path, headers, body) = &requests[1];
        assert_eq!(path, "write");
        assert_eq!(headers["content-encoding"], "snappy");
        assert_eq!(headers["x-prometheus-remote-write-version"], "0.1.0");
        assert_eq!(model::wire::remote_write::decode(body, 1 << 20).unwrap(), vec![series]);
    }

    for (status, retryable) in
        [(500, true), (503, true), (429, true), (401, true), (403, true), (400, false), (413, false)]
    {
        *seen.status.lock().unwrap() = status;
        let err = sink.push_logs(tenant.clone(), Vec::new()).await.unwrap_err();
        assert_eq!(err.retryable, retryable, "status {status}");
        assert!(err.message.contains("server says no"), "{err}");
    }
}

/// `agent.bearer_token_file`: read for every request, so a rotated token applies to the next batch;
/// a missing file is a retryable failure (a Secret mid-rotation), not a dropped batch.
#[tokio::test]
async fn sends_the_bearer_token_file_read_per_request() {
    let seen = Seen::default();
    *seen.status.lock().unwrap() = 204;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "first-token\n").unwrap();
    let sink =
        HttpSink::new(&serve(seen.clone()).await, Duration::from_secs(5)).unwrap().with_bearer_token_file(&token);
    sink.push_logs(TenantId::default(), Vec::new()).await.unwrap();
    std::fs::write(&token, "second-token").unwrap();
    sink.push_samples(TenantId::default(), Vec::new()).await.unwrap();
    {
        let requests = seen.requests.lock().unwrap();
        assert_eq!(requests[0].1["authorization"], "Bearer first-token");
        assert_eq!(requests[1].1["authorization"], "Bearer second-token");
    }
    std::fs::remove_file(&token).unwrap();
    let err = sink.push_logs(TenantId::default(), Vec::new()).await.unwrap_err();
    assert!(err.retryable && err.message.contains("bearer_token_file"), "{err}");
    assert_eq!(seen.requests.lock().unwrap().len(), 2, "no request without the token");
}

#[tokio::test]
async fn connection_failures_are_retryable_and_bad_urls_rejected() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let sink = HttpSink::new(&format!("http://{address}"), Duration::from_secs(2)).unwrap();
    let err = sink.push_logs(TenantId::default(), Vec::new()).await.unwrap_err();
    assert!(err.retryable);
    assert!(HttpSink::new("not a url", Duration::from_secs(1)).is_err());
    assert!(HttpSink::new("ftp://x", Duration::from_secs(1)).is_err());
}
