//! Golden tests of the Alertmanager API v2 routes over a real notifier, without sockets: post
//! alerts, list them with their silenced status, create, list, expire and fetch silences, filter,
//! and the error shapes (a JSON string with 400/404), per tenant.

use std::sync::Arc;

use alerting::notify::{Notifier, NotifierOptions, NotifyConfig};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt;

async fn call(app: &axum::Router, method: &str, uri: &str, tenant: &str, body: Option<Value>) -> (StatusCode, Value) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("X-Scope-OrgID", tenant)
        .header("content-type", "application/json")
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// Drops the fields that carry the wall clock.
fn strip_times(mut v: Value) -> Value {
    match &mut v {
        Value::Array(items) => items.iter_mut().for_each(|i| *i = strip_times(i.take())),
        Value::Object(map) => {
            map.remove("updatedAt");
            map.values_mut().for_each(|i| *i = strip_times(i.take()));
        }
        _ => {}
    }
    v
}

#[tokio::test]
async fn alerts_and_silences_round_trip_in_alertmanagers_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = NotifyConfig::from_yaml("route: {receiver: team, group_wait: 1h}\nreceivers: [{name: team}]").unwrap();
    let n = Arc::new(Notifier::start(&cfg, NotifierOptions::new(dir.path(), "http://tarsier")).await.unwrap());
    let app: axum::Router = query_ui::alertmanager_api::routes(n.clone());

    let alert = json!([{
        "labels": {"alertname": "DiskFull", "instance": "db-1"},
        "annotations": {"summary": "disk at 97%"},
        "startsAt": "2026-11-27T06:00:00Z",
        "endsAt": "2099-01-01T00:00:00Z",
        "generatorURL": "http://tarsier/graph",
    }]);
    assert_eq!(call(&app, "POST", "/api/v2/alerts", "t1", Some(alert)).await.0, StatusCode::OK);
    let labels = [("alertname".to_string(), "DiskFull".to_string()), ("instance".into(), "db-1".into())].into();
    let fp = alerting::notify::fingerprint_hex(&labels);
    let (status, alerts) = call(&app, "GET", "/api/v2/alerts", "t1", None).await;
    assert_eq!(status, StatusCode::OK);
    let expected = json!([{
        "labels": {"alertname": "DiskFull", "instance": "db-1"},
        "annotations": {"summary": "disk at 97%"},
        "startsAt": "2026-11-27T06:00:00Z",
        "endsAt": "2099-01-01T00:00:00Z",
        "fingerprint": fp,
        "receivers": [{"name": "team"}],
        "status": {"state": "active", "silencedBy": [], "inhibitedBy": []},
        "generatorURL": "http://tarsier/graph",
    }]);
    assert_eq!(strip_times(alerts.clone()), expected);
    assert_eq!(call(&app, "GET", "/api/v2/alerts", "t2", None).await.1, json!([]), "tenants are separate");

    let now = chrono::Utc::now();
    let silence = json!({
        "matchers": [{"name": "instance", "value": "db-.*", "isRegex": true}],
        "startsAt": now.to_rfc3339(),
        "endsAt": (now + chrono::Duration::hours(1)).to_rfc3339(),
        "createdBy": "amtool",
        "comment": "disk swap",
    });
    let (status, created) = call(&app, "POST", "/api/v2/silences", "t1", Some(silence)).await;
    assert_eq!(status, StatusCode::OK);
    let id = created["silenceID"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 36, "a UUID");

    let (_, alerts) = call(&app, "GET", "/api/v2/alerts", "t1", None).await;
    assert_eq!(alerts[0]["status"], json!({"state": "suppressed", "silencedBy": [id], "inhibitedBy": []}));
    assert_eq!(call(&app, "GET", "/api/v2/alerts?silenced=false", "t1", None).await.1, json!([]));
    let (_, filtered) = call(
        &app,
        "GET",
        "/api/v2/alerts?filter=alertname%3D%22DiskFull%22&filter=instance%3D~%22db.%2A%22",
        "t1",
        None,
    )
    .await;
    assert_eq!(filtered.as_array().unwrap().len(), 1);
    let (_, groups) = call(&app, "GET", "/api/v2/alerts/groups", "t1", None).await;
    assert_eq!(groups[0]["receiver"], json!({"name": "team"}));
    assert_eq!(groups[0]["labels"], json!({}));

    let (_, silences) = call(&app, "GET", "/api/v2/silences", "t1", None).await;
    let s = &silences[0];
    assert_eq!(s["id"], id);
    assert_eq!(s["status"], json!({"state": "active"}));
    assert_eq!(s["matchers"], json!([{"name": "instance", "value": "db-.*", "isRegex": true, "isEqual": true}]));
    assert_eq!((s["createdBy"].as_str(), s["comment"].as_str()), (Some("amtool"), Some("disk swap")));
    assert!(s.get("tenant").is_none(), "the tenant is not part of Alertmanager's shape");
    let (_, by_filter) = call(&app, "GET", "/api/v2/silences?filter=instance%3D%22db-.*%22", "t1", None).await;
    assert_eq!(by_filter.as_array().unwrap().len(), 1);

    assert_eq!(call(&app, "DELETE", &format!("/api/v2/silence/{id}"), "t1", None).await.0, StatusCode::OK);
    let (_, one) = call(&app, "GET", &format!("/api/v2/silence/{id}"), "t1", None).await;
    assert_eq!(one["status"]["state"], "expired");
    let (_, alerts) = call(&app, "GET", "/api/v2/alerts", "t1", None).await;
    assert_eq!(alerts[0]["status"]["state"], "active");

    let (status, err) = call(&app, "GET", "/api/v2/silence/nope", "t1", None).await;
    assert_eq!((status, err), (StatusCode::NOT_FOUND, json!("silence nope not found")));
    let (status, err) = call(&app, "GET", "/api/v2/alerts?filter=%7Bbroken", "t1", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(err.as_str().unwrap().starts_with("bad matcher format"));
    let (status, _) = call(&app, "POST", "/api/v2/alerts", "t1", Some(json!([{"labels": {}}]))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = call(&app, "DELETE", &format!("/api/v2/silence/{id}"), "t2", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "another tenant cannot expire it");

    assert_eq!(call(&app, "GET", "/api/v2/receivers", "t1", None).await.1, json!([{"name": "team"}]));
    let (_, st) = call(&app, "GET", "/api/v2/status", "t1", None).await;
    assert_eq!(st["cluster"]["status"], "disabled");
    assert_eq!(call(&app, "GET", "/api/v2/notifications", "t1", None).await.1, json!([]));
    n.shutdown().await.unwrap();
}
