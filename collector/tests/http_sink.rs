//! HttpSink against a local server: the Loki push and remote_write requests it sends, and how it
//! classifies the server's answers. The `agent.sinks` kinds against fakes: Loki push (snappy,
//! protobuf, tenant and auth headers) and Elasticsearch `_bulk` with per-item answers.

mod common;

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

fn metrics_of(fanout: &collector::Fanout) -> String {
    let mut registry = prometheus_client::registry::Registry::default();
    fanout.metrics().register(&mut registry);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    text
}

/// A `loki` sink: the push URL as promtail names it, a snappy-compressed protobuf body, the
/// configured tenant and basic auth; it takes no samples.
#[tokio::test]
async fn loki_sink_pushes_snappy_protobuf_with_tenant_and_basic_auth() {
    let loki = common::FakeLoki::default();
    let root = loki.serve().await;
    let config = collector::SinkConfig {
        kind: collector::SinkKind::Loki,
        url: format!("{root}/loki/api/v1/push"),
        tenant: Some("team-b".into()),
        basic_auth: Some(collector::BasicAuth {
            username: "promtail".into(),
            password: Some("pw".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    config.validate("agent.sinks[0]").unwrap();
    let fanout = collector::Fanout::from_configs(&[config], Duration::from_secs(5)).unwrap();
    let record = LogRecord {
        timestamp_ns: 1_700_000_000_123_456_789,
        labels: Labels::from_pairs([("job", "x")]),
        line: "hello".into(),
    };
    fanout.push_logs(TenantId::new("team-a").unwrap(), vec![record.clone()]).await.unwrap();
    {
        let requests = loki.requests.lock().unwrap();
        let (headers, body) = &requests[0];
        assert_eq!(headers["content-type"], "application/x-protobuf");
        assert_eq!(headers["x-scope-orgid"], "team-b", "the sink's tenant wins");
        assert_eq!(headers["authorization"], "Basic cHJvbXRhaWw6cHc=");
        // Loki reads a snappy block: the raw protobuf would not decompress.
        let streams = model::wire::loki_push::decode_protobuf(body, 1 << 20).unwrap();
        assert_eq!(model::LogStream::into_records(streams), vec![record]);
    }
    let series = TimeSeries::new(Labels::from_pairs([("__name__", "m")]), vec![Sample::new(1, 2.0)]);
    let err = fanout.push_samples(TenantId::default(), vec![series]).await.unwrap_err();
    assert!(!err.retryable && err.message.contains("no sink takes samples"), "{err}");
    assert!(metrics_of(&fanout).contains(r#"tarsier_collector_sink_sent_total{sink="loki",kind="logs"} 1"#));
}

/// An `elasticsearch` sink against a fake answering 200 with per-item statuses: the item answered
/// 429 is sent again alone (the accepted one is not), the mapping error is dropped and counted.
#[tokio::test]
async fn elasticsearch_sink_retries_429_items_alone_and_drops_and_counts_mapping_errors() {
    let bodies: Arc<Mutex<Vec<(HeaderMap, String)>>> = Arc::default();
    let seen = bodies.clone();
    let bulk = move |headers: HeaderMap, body: String| {
        let seen = seen.clone();
        async move {
            let first = {
                let mut seen = seen.lock().unwrap();
                seen.push((headers, body.clone()));
                seen.len() == 1
            };
            let docs = body.lines().count() / 2;
            let items: Vec<serde_json::Value> = (0..docs)
                .map(|i| match (first, i) {
                    (true, 1) => serde_json::json!({"create": {"status": 429, "error": {"type": "es_rejected_execution_exception", "reason": "queue full"}}}),
                    (true, 2) => serde_json::json!({"create": {"status": 400, "error": {"type": "mapper_parsing_exception", "reason": "failed to parse field [job]"}}}),
                    _ => serde_json::json!({"create": {"status": 201, "result": "created"}}),
                })
                .collect();
            axum::Json(serde_json::json!({"took": 1, "errors": first, "items": items}))
        }
    };
    let config = fake_elasticsearch(bulk).await;
    config.validate("agent.sinks[0]").unwrap();
    let fanout = collector::Fanout::from_configs(&[config], Duration::from_secs(5)).unwrap();
    // 2026-12-07T10:00:00Z and two nanoseconds later
    let at = |ns: i64, line: &str| LogRecord {
        timestamp_ns: 1_796_637_600_000_000_000 + ns,
        labels: Labels::from_pairs([("job", "api")]),
        line: line.into(),
    };
    let records = vec![at(0, "accepted"), at(1, "busy"), at(2, "unmappable")];
    fanout.push_logs(TenantId::default(), records).await.unwrap();

    let bodies = bodies.lock().unwrap();
    assert_eq!(bodies.len(), 2, "one retry, of the 429 item");
    assert_eq!(bodies[0].0["content-type"], "application/x-ndjson");
    let lines: Vec<serde_json::Value> = bodies[0].1.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines[0]["create"]["_index"], "logs-2026.12.07");
    let id = |line: &serde_json::Value| line["create"]["_id"].as_str().unwrap().to_string();
    assert!(id(&lines[0]).len() == 32 && id(&lines[0]).bytes().all(|b| b.is_ascii_hexdigit()), "{}", lines[0]);
    assert_ne!(id(&lines[0]), id(&lines[2]));
    assert_eq!(
        lines[1],
        serde_json::json!({"@timestamp": "2026-12-07T10:00:00Z", "message": "accepted", "job": "api"})
    );
    assert_eq!(lines[3]["@timestamp"], "2026-12-07T10:00:00.000000001Z");
    let again: Vec<serde_json::Value> = bodies[1].1.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(again.len(), 2);
    assert_eq!(again[1]["message"], "busy");
    assert_eq!(id(&again[0]), id(&lines[2]), "the re-sent item keeps its _id");
    let text = metrics_of(&fanout);
    for expected in [
        r#"tarsier_collector_sink_sent_total{sink="es",kind="logs"} 2"#,
        r#"tarsier_collector_sink_dropped_total{sink="es",kind="logs"} 1"#,
        r#"tarsier_collector_sink_retries_total{sink="es",kind="logs"} 1"#,
    ] {
        assert!(text.contains(expected), "{expected} in\n{text}");
    }
}

/// A batch sent again after a restart (its lines read again from their checkpoint) carries the same
/// `_id`s: a fake keeping Elasticsearch's `create` semantics (409 for an `_id` it has) stores each
/// document once, and the 409s count as delivered, not dropped. Two identical lines with the same
/// timestamp (a real repeat) stay two documents.
#[tokio::test]
async fn elasticsearch_resend_after_restart_is_409_per_item_and_counts_as_delivered() {
    let stored: Arc<Mutex<std::collections::HashSet<String>>> = Arc::default();
    let ids = stored.clone();
    let bulk = move |body: String| {
        let ids = ids.clone();
        async move {
            let mut ids = ids.lock().unwrap();
            let items: Vec<serde_json::Value> = body
                .lines()
                .step_by(2)
                .map(|action| {
                    let action: serde_json::Value = serde_json::from_str(action).unwrap();
                    let id = action["create"]["_id"].as_str().expect("every document has an _id").to_string();
                    if ids.insert(id.clone()) {
                        serde_json::json!({"create": {"_id": id, "status": 201, "result": "created"}})
                    } else {
                        serde_json::json!({"create": {"_id": id, "status": 409, "error": {"type": "version_conflict_engine_exception", "reason": "document already exists"}}})
                    }
                })
                .collect();
            let errors = items.iter().any(|i| i["create"]["status"] != 201);
            axum::Json(serde_json::json!({"took": 1, "errors": errors, "items": items}))
        }
    };
    let config = fake_elasticsearch(bulk).await;
    let at = |ns: i64, pod: &str, line: &str| LogRecord {
        timestamp_ns: 1_796_637_600_000_000_000 + ns,
        labels: Labels::from_pairs([("job", "api"), ("pod", pod)]),
        line: line.into(),
    };
    let records = vec![at(0, "a", "started"), at(0, "a", "started"), at(0, "b", "started"), at(1, "a", "ready")];
    let first = collector::Fanout::from_configs(std::slice::from_ref(&config), Duration::from_secs(5)).unwrap();
    first.push_logs(TenantId::default(), records.clone()).await.unwrap();
    assert_eq!(stored.lock().unwrap().len(), 4, "a repeat and another stream's same line are documents of their own");

    // The restarted agent: a new sink, the same lines, part of them in a batch of their own.
    let restarted = collector::Fanout::from_configs(&[config], Duration::from_secs(5)).unwrap();
    restarted.push_logs(TenantId::default(), records[2..].to_vec()).await.unwrap();
    restarted.push_logs(TenantId::default(), records).await.unwrap();
    assert_eq!(stored.lock().unwrap().len(), 4, "nothing stored twice");
    let text = metrics_of(&restarted);
    assert!(text.contains(r#"tarsier_collector_sink_sent_total{sink="es",kind="logs"} 6"#), "{text}");
    assert!(text.contains(r#"tarsier_collector_sink_already_stored_total{sink="es",kind="logs"} 6"#), "{text}");
    let dropped = text.lines().filter(|l| l.starts_with("tarsier_collector_sink_dropped_total"));
    assert!(dropped.clone().all(|l| l.ends_with(" 0")), "409s are not drops: {:?}", dropped.collect::<Vec<_>>());
}

/// A 429 for the whole `_bulk` request (nothing stored) is an ordinary retryable failure, a 400 an
/// ordinary rejection.
#[tokio::test]
async fn elasticsearch_whole_request_failures_classify_as_for_loki() {
    let status = Arc::new(Mutex::new(429u16));
    let answer = status.clone();
    let bulk = move || {
        let answer = answer.clone();
        async move { (StatusCode::from_u16(*answer.lock().unwrap()).unwrap(), "{\"error\":\"no\"}") }
    };
    let app = axum::Router::new().route("/_bulk", axum::routing::post(bulk));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let index = collector::IndexPattern::parse("app").unwrap();
    let sink =
        collector::EsSink::new(&format!("http://{address}/"), index, Duration::from_secs(5), &Default::default())
            .unwrap();
    let record = LogRecord { timestamp_ns: 1, labels: Labels::from_pairs([("job", "x")]), line: "l".into() };
    let err = sink.push_logs(TenantId::default(), vec![record.clone()]).await.unwrap_err();
    assert!(err.retryable, "{err}");
    *status.lock().unwrap() = 400;
    let err = sink.push_logs(TenantId::default(), vec![record]).await.unwrap_err();
    assert!(!err.retryable, "{err}");
}

/// A reload replacing the sink list (`SwitchableSink::replace`) while a batch is partly delivered:
/// the sink kept under its name is not sent it again, the new sink gets it, metrics carry over.
#[tokio::test]
async fn a_reload_keeps_which_sinks_took_a_batch() {
    use collector::{Fanout, SinkConfig, SinkKind, SwitchableSink};
    let (a, old_b, new_b) = (common::FakeLoki::default(), common::FakeLoki::default(), common::FakeLoki::default());
    old_b.fail.store(true, std::sync::atomic::Ordering::SeqCst);
    let loki = |name: &str, url: String| SinkConfig {
        name: Some(name.into()),
        kind: SinkKind::Loki,
        url,
        ..Default::default()
    };
    let a_url = a.serve().await;
    let before = [loki("a", a_url.clone()), loki("b", old_b.serve().await)];
    let switch = SwitchableSink::new(Fanout::from_configs(&before, Duration::from_secs(5)).unwrap());
    let streams = Arc::new(vec![model::LogStream {
        labels: Labels::from_pairs([("job", "x")]),
        entries: vec![model::LogEntry { timestamp_ns: 1, line: "once".into() }],
    }]);
    let err = switch.push_log_batch(Some(7), TenantId::default(), streams.clone()).await.unwrap_err();
    assert!(err.retryable && err.message.contains("sink b"), "{err}");

    let after = [loki("a", a_url), loki("b", new_b.serve().await)];
    switch.replace(Fanout::from_configs(&after, Duration::from_secs(5)).unwrap());
    switch.push_log_batch(Some(7), TenantId::default(), streams).await.unwrap();
    assert_eq!(a.lines(), ["once"], "a took batch 7 before the reload: not sent again");
    assert_eq!(new_b.lines(), ["once"]);

    let mut registry = prometheus_client::registry::Registry::default();
    switch.register_metrics(&mut registry);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    assert!(text.contains(r#"tarsier_collector_sink_failures_total{sink="b",kind="logs"} 1"#), "{text}");
    assert!(text.contains(r#"tarsier_collector_sink_sent_total{sink="b",kind="logs"} 1"#), "{text}");
}

/// Serves `bulk` as a fake Elasticsearch's `/_bulk` on a free port and returns an Elasticsearch
/// sink named `es` pointing at it.
async fn fake_elasticsearch<H, T>(bulk: H) -> collector::SinkConfig
where
    H: axum::handler::Handler<T, ()>,
    T: 'static,
{
    let app = axum::Router::new().route("/_bulk", axum::routing::post(bulk));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    collector::SinkConfig {
        name: Some("es".into()),
        kind: collector::SinkKind::Elasticsearch,
        url: format!("http://{address}"),
        ..Default::default()
    }
}
