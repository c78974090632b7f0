//! Every HTTP receiver against a local server standing in for its service: the exact JSON each
//! service documents, and signatures checked with the algorithms as Feishu and DingTalk document
//! them (re-implemented here from the docs, not by calling Tarsier's signer).

mod notify_common;

use alerting::notify::Alert;
use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use notify_common::{Capture, notifier, sample, scrape, tenant, wait_until};
use serde_json::json;
use sha2::Sha256;

fn config(base: &str) -> String {
    format!(
        r##"
route:
  receiver: everyone
  group_by: [alertname]
  group_wait: 50ms
  group_interval: 200ms
  repeat_interval: 1h
receivers:
  - name: everyone
    webhook_configs: [{{url: "{base}/webhook"}}]
    slack_configs: [{{api_url: "{base}/slack", channel: "#ops", send_resolved: true}}]
    msteamsv2_configs: [{{webhook_url: "{base}/teams"}}]
    feishu_configs: [{{webhook_url: "{base}/feishu", secret: feishu-secret}}]
    dingtalk_configs: [{{webhook_url: "{base}/dingtalk?access_token=abc", secret: SECdingtalk}}]
    wecom_configs: [{{webhook_url: "{base}/wecom?key=k"}}]
"##
    )
}

fn alert(starts: DateTime<Utc>) -> Alert {
    let mut a = Alert::firing([("alertname", "HighErrorRate"), ("job", "api"), ("severity", "critical")]);
    a.starts_at = starts;
    a.annotations.insert("summary".into(), "5xx above 5%".into());
    a.annotations.insert("value".into(), "7.2".into());
    a.generator_url = "http://tarsier.example:3100/graph?g0.expr=rate".into();
    a
}

#[tokio::test]
async fn every_receiver_gets_its_documented_payload() {
    let cap = Capture::start().await;
    let dir = tempfile::tempdir().unwrap();
    let n = notifier(&config(&cap.base), dir.path()).await;
    let starts = DateTime::parse_from_rfc3339("2026-11-27T06:00:00Z").unwrap().to_utc();
    n.send(&tenant(), vec![alert(starts)]).await.unwrap();

    let hooks = cap.wait_for("webhook", 1).await;
    let expected = json!({
        "receiver": "everyone",
        "status": "firing",
        "alerts": [{
            "status": "firing",
            "labels": {"alertname": "HighErrorRate", "job": "api", "severity": "critical"},
            "annotations": {"summary": "5xx above 5%", "value": "7.2"},
            "startsAt": "2026-11-27T06:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://tarsier.example:3100/graph?g0.expr=rate",
            "fingerprint": format!("{:016x}", alert(starts).fingerprint()),
        }],
        "groupLabels": {"alertname": "HighErrorRate"},
        "commonLabels": {"alertname": "HighErrorRate", "job": "api", "severity": "critical"},
        "commonAnnotations": {"summary": "5xx above 5%", "value": "7.2"},
        "externalURL": "http://tarsier.example:3100",
        "version": "4",
        "groupKey": "{}:{alertname=\"HighErrorRate\"}",
        "truncatedAlerts": 0,
    });
    assert_eq!(hooks[0].body, expected);

    let slack = &cap.wait_for("slack", 1).await[0].body;
    assert_eq!(slack["channel"], "#ops");
    assert_eq!(slack["text"], "[FIRING:1] HighErrorRate");
    assert_eq!(slack["attachments"][0]["color"], "danger");
    assert!(slack["attachments"][0]["text"].as_str().unwrap().contains("*HighErrorRate* [critical]: 5xx above 5%"));

    let teams = &cap.wait_for("teams", 1).await[0].body;
    assert_eq!(teams["type"], "message");
    let att = &teams["attachments"][0];
    assert_eq!(att["contentType"], "application/vnd.microsoft.card.adaptive");
    assert_eq!(att["content"]["type"], "AdaptiveCard");
    assert_eq!(att["content"]["body"][0]["text"], "[FIRING:1] HighErrorRate");
    assert_eq!(att["content"]["actions"][0]["url"], "http://tarsier.example:3100");

    // Feishu: sign = base64(HMAC-SHA256(key = "timestamp\nsecret", message = "")), seconds.
    let feishu = &cap.wait_for("feishu", 1).await[0].body;
    let ts: i64 = feishu["timestamp"].as_str().unwrap().parse().unwrap();
    assert!((Utc::now().timestamp() - ts).abs() < 60, "timestamp in seconds");
    let mac = Hmac::<Sha256>::new_from_slice(format!("{ts}\nfeishu-secret").as_bytes()).unwrap();
    let want = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    assert_eq!(feishu["sign"], want);
    assert_eq!(feishu["msg_type"], "interactive");
    assert_eq!(feishu["card"]["header"]["title"]["content"], "[FIRING:1] HighErrorRate");
    assert_eq!(feishu["card"]["header"]["template"], "red");

    // DingTalk: sign = urlencode(base64(HMAC-SHA256(key = secret, msg = "timestamp\nsecret"))), ms,
    // as query parameters (the server sees them decoded).
    let ding = &cap.wait_for("dingtalk", 1).await[0];
    assert_eq!(ding.query["access_token"], "abc");
    let ts: i64 = ding.query["timestamp"].parse().unwrap();
    assert!((Utc::now().timestamp_millis() - ts).abs() < 60_000, "timestamp in milliseconds");
    let mut mac = Hmac::<Sha256>::new_from_slice(b"SECdingtalk").unwrap();
    mac.update(format!("{ts}\nSECdingtalk").as_bytes());
    assert_eq!(ding.query["sign"], base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()));
    assert_eq!(ding.body["msgtype"], "markdown");
    assert_eq!(ding.body["markdown"]["title"], "[FIRING:1] HighErrorRate");
    let text = ding.body["markdown"]["text"].as_str().unwrap();
    for want in [
        "value: 7.2",
        "where: job=api",
        "since: 2026-11-27 06:00:00 UTC",
        "[Open in Tarsier](http://tarsier.example:3100)",
    ] {
        assert!(text.contains(want), "{want} missing from {text}");
    }

    let wecom = &cap.wait_for("wecom", 1).await[0];
    assert_eq!(wecom.query["key"], "k");
    assert_eq!(wecom.body["msgtype"], "markdown");
    assert!(wecom.body["markdown"]["content"].as_str().unwrap().starts_with("### [FIRING:1] HighErrorRate"));

    // Resolving sends once more to every receiver, with the resolved status.
    let mut resolved = alert(starts);
    resolved.ends_at = Some(Utc::now());
    n.send(&tenant(), vec![resolved]).await.unwrap();
    let hooks = cap.wait_for("webhook", 2).await;
    assert_eq!(hooks[1].body["status"], "resolved");
    assert_ne!(hooks[1].body["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");
    assert_eq!(cap.wait_for("dingtalk", 2).await[1].body["markdown"]["title"], "[RESOLVED] HighErrorRate");
    assert_eq!(cap.wait_for("slack", 2).await[1].body["attachments"][0]["color"], "good");
    let recent = n.api().recent_notifications("team-a");
    assert_eq!(recent.iter().filter(|r| r.status == "resolved" && r.error.is_none()).count(), 6);
    n.shutdown().await.unwrap();
    assert_eq!(cap.requests("webhook").len(), 2, "no duplicate after resolution");
}

#[tokio::test]
async fn failures_are_retried_with_backoff_and_recorded() {
    // Nothing listens on this port at first: the connection is refused, which is retryable.
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = probe.local_addr().unwrap();
    drop(probe);
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "route: {{receiver: w, group_wait: 0s, group_interval: 5s}}\nreceivers: [{{name: w, webhook_configs: [{{url: 'http://{addr}/webhook'}}]}}]"
    );
    let n = notifier(&yaml, dir.path()).await;
    n.send(&tenant(), vec![Alert::firing([("alertname", "Down")])]).await.unwrap();
    wait_until("a retry", || n.metrics().notification_retries.load(std::sync::atomic::Ordering::Relaxed) >= 2).await;
    // Bring the endpoint up on the same port; the next retry gets through.
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let s2 = seen.clone();
    let app = axum::Router::new().route(
        "/webhook",
        axum::routing::post(move || {
            s2.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async { "ok" }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    wait_until("delivery after retries", || seen.load(std::sync::atomic::Ordering::SeqCst) == 1).await;
    wait_until("the record", || !n.api().recent_notifications("team-a").is_empty()).await;
    let rec = &n.api().recent_notifications("team-a")[0];
    assert!(rec.attempts >= 3 && rec.error.is_none(), "{rec:?}");
    n.shutdown().await.unwrap();
}

#[tokio::test]
async fn silences_and_inhibition_suppress_notifications() {
    let cap = Capture::start().await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        r#"
route: {{receiver: w, group_by: ['...'], group_wait: 0s, group_interval: 100ms}}
receivers: [{{name: w, webhook_configs: [{{url: "{}/webhook"}}]}}]
inhibit_rules:
  - source_matchers: ['severity="critical"']
    target_matchers: ['severity="warning"']
    equal: [cluster]
"#,
        cap.base
    );
    let n = notifier(&yaml, dir.path()).await;
    let now = Utc::now();
    let silence: alerting::notify::Silence = serde_json::from_value(json!({
        "matchers": [{"name": "alertname", "value": "Noisy.*", "isRegex": true}],
        "startsAt": alerting::notify::data::rfc3339(&now),
        "endsAt": alerting::notify::data::rfc3339(&(now + chrono::Duration::hours(1))),
        "createdBy": "test", "comment": "known",
    }))
    .unwrap();
    let sid = n.api().put_silence("team-a", silence).await.unwrap();
    n.send(
        &tenant(),
        vec![
            Alert::firing([("alertname", "NoisyDisk"), ("cluster", "c1")]),
            Alert::firing([("alertname", "NodeDown"), ("severity", "critical"), ("cluster", "c1")]),
            Alert::firing([("alertname", "PodSlow"), ("severity", "warning"), ("cluster", "c1")]),
            Alert::firing([("alertname", "PodSlow"), ("severity", "warning"), ("cluster", "c2")]),
        ],
    )
    .await
    .unwrap();
    let flushes = || n.metrics().flushes.load(std::sync::atomic::Ordering::Relaxed);
    wait_until("four groups flushed", || flushes() >= 4).await;
    cap.wait_for("webhook", 2).await;
    let mut names: Vec<String> = cap
        .requests("webhook")
        .iter()
        .map(|r| format!("{}/{}", r.body["commonLabels"]["alertname"], r.body["commonLabels"]["cluster"]))
        .collect();
    names.sort();
    assert_eq!(names, vec![r#""NodeDown"/"c1""#, r#""PodSlow"/"c2""#]);
    let alerts = n.api().alerts("team-a", &Default::default());
    let suppressed: Vec<_> = alerts.iter().filter(|a| a.status.state == "suppressed").collect();
    assert_eq!(suppressed.len(), 2);
    assert!(suppressed.iter().any(|a| a.status.silenced_by == vec![sid.clone()]));
    assert_eq!(n.api().silences("team-a")[0].silence.id, sid);
    // The same, as Alertmanager's metrics (counted once the webhook's answers are in).
    let sent = r#"alertmanager_notifications_total{integration="webhook"}"#;
    wait_until("two notifications counted", || sample(&scrape(&n), sent) == Some(2.0)).await;
    let m = scrape(&n);
    assert_eq!(sample(&m, r#"alertmanager_alerts{state="active"}"#), Some(2.0), "{m}");
    assert_eq!(sample(&m, r#"alertmanager_alerts{state="suppressed"}"#), Some(2.0), "{m}");
    assert_eq!(sample(&m, r#"alertmanager_silences{state="active"}"#), Some(1.0), "{m}");
    assert_eq!(sample(&m, r#"alertmanager_notification_latency_seconds_count{integration="webhook"}"#), Some(2.0));
    assert!(n.api().silences("other").is_empty());

    // Expire the silence: the next flush notifies about the silenced alert.
    n.api().expire_silence("team-a", &sid).await.unwrap();
    cap.wait_for("webhook", 3).await;
    assert_eq!(sample(&scrape(&n), r#"alertmanager_silences{state="expired"}"#), Some(1.0));
    assert_eq!(cap.requests("webhook")[2].body["commonLabels"]["alertname"], "NoisyDisk");
    n.shutdown().await.unwrap();
}

#[test]
fn the_example_config_parses_and_its_secrets_resolve() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/notify.example.yaml");
    let text = std::fs::read_to_string(path).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Point the secret files and variables at temporary values; everything else is checked as is.
    let text = text.replace("/etc/tarsier/", &format!("{}/", dir.path().display()));
    // Template globs are relative to the file (resolved by the loader); here, by hand.
    let text = text.replace("templates/*.tmpl", concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/templates/*.tmpl"));
    for f in ["smtp-password", "teams-url", "wecom-url", "feishu-url", "feishu-secret", "bridge-token"] {
        let v = if f.ends_with("url") { "https://bots.example.com/x" } else { "secret" };
        std::fs::write(dir.path().join(f), v).unwrap();
    }
    let ca = rcgen::generate_simple_self_signed(vec!["smtp.example.com".to_string()]).unwrap();
    std::fs::write(dir.path().join("smtp-ca.pem"), ca.cert.pem()).unwrap();
    std::fs::write(dir.path().join("bridge-ca.pem"), ca.cert.pem()).unwrap();
    // SAFETY: this test sets variables no other test reads.
    unsafe {
        std::env::set_var("SLACK_WEBHOOK_URL", "https://hooks.slack.com/services/T/B/X");
        std::env::set_var("DINGTALK_URL", "https://oapi.dingtalk.com/robot/send?access_token=t");
        std::env::set_var("DINGTALK_SECRET", "SECx");
    }
    let plan = alerting::notify::NotifyConfig::from_yaml(&text).unwrap().validate().unwrap();
    assert_eq!(plan.receivers.len(), 4);
    assert_eq!(plan.routes.len(), 5);
}

/// A one-purpose HTTPS endpoint: answers every request `{}` over TLS with `cert`/`key` (PEM) and
/// counts them.
async fn https_endpoint(cert: &str, key: &str) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use rustls::pki_types::pem::PemObject;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let certs = vec![rustls::pki_types::CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()];
    let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let served = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = served.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, count) = (acceptor.clone(), count.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                // Headers, then as many body bytes as Content-Length says.
                loop {
                    let Ok(n) = tls.read(&mut chunk).await else { return };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_lowercase();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let len = text
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0)))
                            .unwrap_or(0usize);
                        if buf.len() >= end + 4 + len {
                            break;
                        }
                    }
                }
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let answer = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}";
                let _ = tls.write_all(answer.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (format!("https://localhost:{}", addr.port()), served)
}

#[tokio::test]
async fn http_config_adds_auth_goes_through_a_proxy_and_verifies_tls() {
    let cap = Capture::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (token, pw) = (dir.path().join("token"), dir.path().join("pw"));
    std::fs::write(&token, "t0ken\n").unwrap();
    std::fs::write(&pw, "hunter2").unwrap();
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (cert, key) = (made.cert.pem(), made.key_pair.serialize_pem());
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &cert).unwrap();
    let (trusted, trusted_hits) = https_endpoint(&cert, &key).await;
    let (lab, lab_hits) = https_endpoint(&cert, &key).await;
    let (untrusted, untrusted_hits) = https_endpoint(&cert, &key).await;
    let b = &cap.base;
    // The proxied webhook names a host that does not resolve: only the proxy (the capture server,
    // which sees the absolute-form request) can deliver it.
    let yaml = format!(
        r#"
route: {{receiver: r, group_wait: 0s, group_interval: 1s}}
receivers:
  - name: r
    webhook_configs:
      - {{url: "{b}/bearer", http_config: {{authorization: {{credentials_file: "{token}"}}}}}}
      - {{url: "http://tarsier-test.invalid/proxied", http_config: {{proxy_url: "{b}"}}}}
      - {{url: "{trusted}/tls", http_config: {{tls_config: {{ca_file: "{ca}"}}}}}}
      - {{url: "{lab}/tls", http_config: {{tls_config: {{insecure_skip_verify: true}}}}}}
      - {{url: "{untrusted}/tls"}}
    wecom_configs:
      - {{webhook_url: "{b}/wecom", http_config: {{basic_auth: {{username: am, password_file: "{pw}"}}}}}}
"#,
        token = token.display(),
        pw = pw.display(),
        ca = ca.display(),
    );
    let n = notifier(&yaml, dir.path()).await;
    n.send(&tenant(), vec![Alert::firing([("alertname", "Auth")])]).await.unwrap();
    let bearer = cap.wait_for("bearer", 1).await;
    assert_eq!(bearer[0].headers.get("authorization").map(String::as_str), Some("Bearer t0ken"));
    let wecom = cap.wait_for("wecom", 1).await;
    assert_eq!(wecom[0].headers.get("authorization").map(String::as_str), Some("Basic YW06aHVudGVyMg=="));
    let proxied = cap.wait_for("proxied", 1).await;
    assert_eq!(proxied[0].headers.get("host").map(String::as_str), Some("tarsier-test.invalid"));
    assert_eq!(proxied[0].body["status"], "firing");
    let hits = |h: &std::sync::Arc<std::sync::atomic::AtomicUsize>| h.load(std::sync::atomic::Ordering::SeqCst);
    wait_until("both trusted tls deliveries", || hits(&trusted_hits) == 1 && hits(&lab_hits) == 1).await;
    wait_until("the untrusted delivery to fail", || {
        n.api()
            .recent_notifications("team-a")
            .iter()
            .any(|r| r.error.as_deref().is_some_and(|e| e.contains("request failed")))
    })
    .await;
    assert_eq!(hits(&untrusted_hits), 0, "no request reached a server with an unknown certificate");
    assert!(cap.requests("bearer").iter().all(|r| !r.headers.contains_key("proxy-authorization")));
    n.shutdown().await.unwrap();
}

#[tokio::test]
async fn template_files_render_receiver_fields() {
    let cap = Capture::start().await;
    let dir = tempfile::tempdir().unwrap();
    let files = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/templates/*.tmpl");
    let yaml = format!(
        r#"
templates: ["{files}"]
route: {{receiver: r, group_by: [alertname], group_wait: 0s}}
receivers:
  - name: r
    slack_configs:
      - {{api_url: "{b}/slack", title: '{{{{ template "chat.title" . }}}}', text: '{{{{ template "chat.text" . }}}}'}}
    wecom_configs:
      - {{webhook_url: "{b}/wecom", text: '{{{{ block "wecom.text" . }}}}{{{{ .Alerts.Firing | len }}}} firing{{{{ end }}}}'}}
"#,
        b = cap.base
    );
    let n = notifier(&yaml, dir.path()).await;
    let mut a = Alert::firing([("alertname", "HighLatency"), ("severity", "critical"), ("instance", "web-1")]);
    a.annotations.insert("summary".into(), "p99 above 2s".into());
    n.send(&tenant(), vec![a]).await.unwrap();
    let slack = &cap.wait_for("slack", 1).await[0].body;
    assert_eq!(slack["text"], "[FIRING:1] :fire: HighLatency", "{slack}");
    let text = slack["attachments"][0]["text"].as_str().unwrap();
    assert!(text.starts_with("*Alert:* p99 above 2s - `critical`\n*Details:*\n"), "{text}");
    assert!(
        text.contains(" - *alertname:* `HighLatency`\n - *instance:* `web-1`\n - *severity:* `critical`"),
        "{text}"
    );
    let wecom = cap.wait_for("wecom", 1).await[0].body["markdown"]["content"].as_str().unwrap().to_string();
    assert!(wecom.ends_with("\n1 firing"), "a block's default body: {wecom}");
    n.shutdown().await.unwrap();

    // A field calling a template no file defines is a config error naming the field.
    let bad = yaml.replace("chat.title", "chat.titel");
    let err = alerting::notify::NotifyConfig::from_yaml(&bad).unwrap().validate().unwrap_err().to_string();
    assert!(err.contains("slack_configs[0].title") && err.contains("\"chat.titel\" is not defined"), "{err}");
}
