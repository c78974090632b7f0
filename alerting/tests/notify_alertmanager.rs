//! Forwarding to a real Alertmanager (Debian's `prometheus-alertmanager`, 0.25): Tarsier POSTs to
//! its `/api/v2/alerts`, the Alertmanager routes the alert to a webhook served by this test, and
//! the firing and then the resolved notification arrive with Tarsier's labels and annotations.

mod notify_common;

use std::process::{Command, Stdio};

use alerting::notify::Alert;
use chrono::Utc;
use notify_common::{Capture, notifier, tenant, wait_until};

const BIN: &str = "prometheus-alertmanager";

struct Am(std::process::Child);

impl Drop for Am {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn forwarded_alerts_reach_a_real_alertmanager_and_its_webhook() {
    let found =
        Command::new("sh").args(["-c", &format!("command -v {BIN}")]).status().map(|s| s.success()).unwrap_or(false);
    assert!(
        found,
        "{BIN} is missing: install it with `apt-get install -y prometheus-alertmanager` (scripts/test.sh does)"
    );
    let cap = Capture::start().await;
    let dir = tempfile::tempdir().unwrap();
    let am_cfg = dir.path().join("alertmanager.yml");
    std::fs::write(
        &am_cfg,
        format!(
            "route: {{receiver: hook, group_by: [alertname], group_wait: 100ms, group_interval: 1s}}\n\
             receivers: [{{name: hook, webhook_configs: [{{url: '{}/am-webhook'}}]}}]\n",
            cap.base
        ),
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let _am = Am(Command::new(BIN)
        .arg(format!("--config.file={}", am_cfg.display()))
        .arg(format!("--storage.path={}", dir.path().join("am-data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting alertmanager"));
    let am_url = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        if let Ok(r) = http.get(format!("{am_url}/-/ready")).send().await
            && r.status().is_success()
        {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "alertmanager did not become ready");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    let yaml = format!(
        "route: {{receiver: am, group_wait: 0s, group_interval: 300ms}}\nreceivers: [{{name: am, alertmanager_configs: [{{url: '{am_url}'}}]}}]"
    );
    let n = notifier(&yaml, &dir.path().join("tarsier")).await;
    let mut a = Alert::firing([("alertname", "QueueBacklog"), ("queue", "ingest"), ("tenant_team", "data")]);
    a.annotations.insert("summary".into(), "backlog above 10k".into());
    a.generator_url = "http://tarsier.example:3100/graph".into();
    n.send(&tenant(), vec![a.clone()]).await.unwrap();

    let got = cap.wait_for("am-webhook", 1).await;
    let body = &got[0].body;
    assert_eq!(body["status"], "firing");
    assert_eq!(
        body["alerts"][0]["labels"],
        serde_json::json!({"alertname": "QueueBacklog", "queue": "ingest", "tenant_team": "data"})
    );
    assert_eq!(body["alerts"][0]["annotations"]["summary"], "backlog above 10k");
    assert_eq!(body["alerts"][0]["generatorURL"], "http://tarsier.example:3100/graph");
    assert_eq!(
        body["alerts"][0]["fingerprint"],
        format!("{:016x}", a.fingerprint()),
        "fingerprints agree with Alertmanager's"
    );

    let mut resolved = a.clone();
    resolved.ends_at = Some(Utc::now());
    n.send(&tenant(), vec![resolved]).await.unwrap();
    wait_until("the resolved notification", || {
        cap.requests("am-webhook").iter().any(|r| r.body["status"] == "resolved")
    })
    .await;
    n.shutdown().await.unwrap();
}
