//! The email receiver against a real SMTP server (aiosmtpd from PyPI) on loopback: the message
//! arrives after AUTH, with the subject, recipients and both the text and the HTML part.

mod notify_common;

use std::io::BufRead;
use std::process::{Command, Stdio};

use alerting::notify::Alert;
use notify_common::{notifier, tenant, wait_until};

struct Sink(std::process::Child);

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_sink(out: &std::path::Path) -> (Sink, u16) {
    let ok = Command::new("python3").args(["-c", "import aiosmtpd"]).status().map(|s| s.success()).unwrap_or(false);
    assert!(ok, "aiosmtpd is missing: install it with `pip install aiosmtpd` (scripts/test.sh does)");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/smtp_sink.py");
    let mut child = Command::new("python3")
        .args([script, &port.to_string(), out.to_str().unwrap()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("starting python3");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready", "smtp sink did not start");
    (Sink(child), port)
}

#[tokio::test]
async fn email_arrives_with_subject_recipients_and_both_parts() {
    let mail = tempfile::tempdir().unwrap();
    let (_sink, port) = start_sink(mail.path());
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("smtp-password");
    std::fs::write(&pw, "s3cret\n").unwrap();
    let yaml = format!(
        r#"
global:
  smtp_smarthost: "127.0.0.1:{port}"
  smtp_from: "Tarsier <tarsier@example.com>"
  smtp_auth_username: alerts
  smtp_auth_password_file: "{}"
  smtp_require_tls: false
route: {{receiver: mail, group_by: [alertname], group_wait: 0s}}
receivers:
  - name: mail
    email_configs: [{{to: "oncall@example.com, lead@example.com", send_resolved: true}}]
"#,
        pw.display()
    );
    let n = notifier(&yaml, dir.path()).await;
    let mut a = Alert::firing([("alertname", "DiskFull"), ("instance", "db-1:9100"), ("severity", "page")]);
    a.annotations.insert("summary".into(), "disk /var at 97%".into());
    n.send(&tenant(), vec![a]).await.unwrap();

    let first = mail.path().join("0.json");
    wait_until("the email", || first.exists()).await;
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(&first).unwrap()).unwrap();
    assert_eq!(m["subject"], "[FIRING:1] DiskFull");
    assert_eq!(m["rcpt_tos"], serde_json::json!(["oncall@example.com", "lead@example.com"]));
    assert_eq!(m["mail_from"], "tarsier@example.com");
    assert_eq!(m["login"], "alerts");
    assert_eq!(m["content_type"], "multipart/alternative");
    let text = m["text"].as_str().unwrap();
    assert!(text.contains("DiskFull [page]: disk /var at 97%") && text.contains("instance=db-1:9100"), "{text}");
    let html = m["html"].as_str().unwrap();
    assert!(html.contains("<h2>[FIRING:1] DiskFull</h2>") && html.contains("disk /var at 97%"), "{html}");
    assert!(html.contains("href=\"http://tarsier.example:3100\""));
    n.shutdown().await.unwrap();
}

#[tokio::test]
async fn wrong_smtp_password_is_reported_not_retried_forever() {
    let mail = tempfile::tempdir().unwrap();
    let (_sink, port) = start_sink(mail.path());
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        r#"
route: {{receiver: mail, group_wait: 0s, group_interval: 2s}}
receivers:
  - name: mail
    email_configs: [{{to: a@example.com, from: t@example.com, smarthost: "127.0.0.1:{port}", require_tls: false, auth_username: alerts, auth_password: wrong}}]
"#
    );
    let n = notifier(&yaml, dir.path()).await;
    n.send(&tenant(), vec![Alert::firing([("alertname", "X")])]).await.unwrap();
    wait_until("a failed delivery", || !n.api().recent_notifications("team-a").is_empty()).await;
    let rec = &n.api().recent_notifications("team-a")[0];
    assert!(rec.error.as_deref().unwrap_or("").contains("smtp"), "{rec:?}");
    assert_eq!(rec.attempts, 1, "authentication failures are permanent");
    assert!(std::fs::read_dir(mail.path()).unwrap().next().is_none());
    n.shutdown().await.unwrap();
}
