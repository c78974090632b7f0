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

/// Runs the real `amtool` (Alertmanager 0.25's client) against `url`; its stdout, or a panic
/// with its stderr.
async fn amtool(url: &str, args: &[&str]) -> String {
    let mut command = tokio::process::Command::new("amtool");
    command.arg(format!("--alertmanager.url={url}")).args(args);
    let out = match command.output().await {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!("amtool not found: install it with `apt-get install -y prometheus-alertmanager`")
        }
        Err(e) => panic!("running amtool: {e}"),
    };
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "amtool {args:?} failed: {stderr}{stdout}");
    stdout.into_owned()
}

/// The first column of each table row after the header (amtool's `simple` output).
fn first_column(table: &str) -> Vec<String> {
    table.lines().skip(1).filter_map(|l| l.split_whitespace().next()).map(str::to_string).collect()
}

#[tokio::test]
async fn amtool_adds_queries_and_expires_through_the_v2_api() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = "route: {receiver: team, group_wait: 1h, group_by: [alertname]}\nreceivers: [{name: team}]";
    let cfg = NotifyConfig::from_yaml(yaml).unwrap();
    let n = Arc::new(Notifier::start(&cfg, NotifierOptions::new(dir.path(), "http://tarsier")).await.unwrap());
    let app: axum::Router = query_ui::alertmanager_api::routes(n.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    amtool(&url, &["alert", "add", "alertname=DiskFull", "instance=db-1", "--annotation=summary=disk at 97%"]).await;
    amtool(&url, &["alert", "add", "alertname=CpuHot", "instance=web-1"]).await;
    let table = amtool(&url, &["alert", "query"]).await;
    assert_eq!(
        table.lines().next().unwrap().split_whitespace().collect::<Vec<_>>(),
        ["Alertname", "Starts", "At", "Summary", "State"]
    );
    let mut names = first_column(&table);
    names.sort();
    assert_eq!(names, ["CpuHot", "DiskFull"], "{table}");
    let json: Value =
        serde_json::from_str(&amtool(&url, &["alert", "query", "-o", "json", "alertname=DiskFull"]).await).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 1, "{json}");
    assert_eq!(json[0]["labels"], json!({"alertname": "DiskFull", "instance": "db-1"}));
    assert_eq!(json[0]["annotations"], json!({"summary": "disk at 97%"}));
    assert_eq!(json[0]["status"]["state"], "active");

    let id =
        amtool(&url, &["silence", "add", "instance=~db-.*", "--comment=disk swap", "--author=ops", "--duration=1h"])
            .await
            .trim()
            .to_string();
    assert_eq!(id.len(), 36, "amtool prints the new silence's id: {id:?}");
    assert_eq!(amtool(&url, &["silence", "query", "-q"]).await.trim(), id);
    let silences: Value = serde_json::from_str(&amtool(&url, &["silence", "query", "-o", "json"]).await).unwrap();
    assert_eq!(
        silences[0]["matchers"],
        json!([{"name": "instance", "value": "db-.*", "isRegex": true, "isEqual": true}])
    );
    assert_eq!((silences[0]["createdBy"].as_str(), silences[0]["comment"].as_str()), (Some("ops"), Some("disk swap")));
    let table = amtool(&url, &["silence", "query"]).await;
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["ID", "Matchers", "Ends", "At", "Created", "By", "Comment"], "{table}");
    assert!(table.contains("instance=~\"db-.*\"") || table.contains("instance=~db-.*"), "{table}");

    // A silenced alert leaves the default (active) query; --silenced shows only it, and with
    // --active both.
    assert_eq!(first_column(&amtool(&url, &["alert", "query"]).await), ["CpuHot"]);
    let silenced = amtool(&url, &["alert", "query", "--silenced"]).await;
    assert_eq!(first_column(&silenced), ["DiskFull"], "{silenced}");
    assert!(silenced.lines().nth(1).unwrap().trim_end().ends_with("suppressed"), "{silenced}");
    let mut names = first_column(&amtool(&url, &["alert", "query", "--silenced", "--active"]).await);
    names.sort();
    assert_eq!(names, ["CpuHot", "DiskFull"]);

    amtool(&url, &["silence", "expire", &id]).await;
    assert_eq!(amtool(&url, &["silence", "query", "-q"]).await.trim(), "");
    assert_eq!(amtool(&url, &["silence", "query", "-q", "--expired"]).await.trim(), id);
    assert_eq!(first_column(&amtool(&url, &["alert", "query"]).await).len(), 2, "expired: both alerts active again");

    // `amtool config show` prints the configuration from /api/v2/status; `config routes` its tree.
    let config = amtool(&url, &["config", "show"]).await;
    assert!(config.contains("receiver: team"), "{config}");
    let routes = amtool(&url, &["config", "routes", "show"]).await;
    assert!(routes.contains("team"), "{routes}");
    n.shutdown().await.unwrap();
}
