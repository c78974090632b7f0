//! The email receiver against a real SMTP server (aiosmtpd from PyPI) on loopback: the message
//! arrives after AUTH, with the subject, recipients and both the text and the HTML part; over
//! STARTTLS and implicit TLS with a certificate made in the test; and a server without TLS gets
//! nothing when TLS is required.

mod notify_common;

use alerting::notify::Alert;
use notify_common::smtp::{SmtpSink, server_certificate};
use notify_common::{notifier, sample, scrape, tenant, wait_until};

#[tokio::test]
async fn email_arrives_with_subject_recipients_and_both_parts() {
    let sink = SmtpSink::start(&[]);
    let port = sink.port;
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

    wait_until("the email", || !sink.mails().is_empty()).await;
    let m = &sink.mails()[0];
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
    let sink = SmtpSink::start(&[]);
    let port = sink.port;
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
    let m = scrape(&n);
    let failed = r#"alertmanager_notifications_failed_total{integration="email",reason="clientError"}"#;
    assert_eq!(sample(&m, failed), Some(1.0), "{m}");
    assert_eq!(sample(&m, r#"alertmanager_notification_requests_failed_total{integration="email"}"#), Some(1.0));
    assert!(sink.mails().is_empty());
    n.shutdown().await.unwrap();
}

#[tokio::test]
async fn email_over_starttls_and_implicit_tls_verifies_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = server_certificate(dir.path());
    let starttls = SmtpSink::start(&["starttls", &cert, &key]);
    let implicit = SmtpSink::start(&["tls", &cert, &key]);
    let lab = SmtpSink::start(&["tls", &cert, &key]);
    let (starttls_port, implicit_port, lab_port) = (starttls.port, implicit.port, lab.port);
    // STARTTLS is the default (smtp_require_tls: true); the CA is the test's own certificate.
    let yaml = format!(
        r#"
global:
  smtp_from: tarsier@example.com
  smtp_auth_username: alerts
  smtp_auth_password: s3cret
route: {{receiver: mail, group_wait: 0s}}
receivers:
  - name: mail
    email_configs:
      - {{to: a@example.com, smarthost: "127.0.0.1:{starttls_port}", tls_config: {{ca_file: "{cert}", server_name: smtp.test}}}}
      - {{to: b@example.com, smarthost: "127.0.0.1:{implicit_port}", force_implicit_tls: true, tls_config: {{ca_file: "{cert}", server_name: smtp.test}}}}
      - {{to: c@example.com, smarthost: "127.0.0.1:{lab_port}", force_implicit_tls: true, tls_config: {{insecure_skip_verify: true}}}}
"#
    );
    let n = notifier(&yaml, dir.path()).await;
    n.send(&tenant(), vec![Alert::firing([("alertname", "CertExpiry")])]).await.unwrap();
    for sink in [&starttls, &implicit, &lab] {
        wait_until("the email over tls", || !sink.mails().is_empty()).await;
    }
    let m = &starttls.mails()[0];
    assert_eq!((m["tls"].as_bool(), m["starttls"].as_bool()), (Some(true), Some(true)), "{m}");
    assert_eq!((m["subject"].as_str(), m["login"].as_str()), (Some("[FIRING:1] CertExpiry"), Some("alerts")));
    let m = &implicit.mails()[0];
    assert_eq!((m["tls"].as_bool(), m["starttls"].as_bool()), (Some(true), Some(false)), "{m}");
    assert_eq!(m["rcpt_tos"], serde_json::json!(["b@example.com"]));
    assert_eq!(lab.mails()[0]["tls"], true);
    n.shutdown().await.unwrap();
}

#[tokio::test]
async fn tls_required_refuses_a_plaintext_or_untrusted_server() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = server_certificate(dir.path());
    let plain = SmtpSink::start(&[]);
    let untrusted = SmtpSink::start(&["starttls", &cert, &key]);
    let (plain_port, untrusted_port) = (plain.port, untrusted.port);
    // group_interval bounds the retries of the (retryable) certificate failure.
    let yaml = format!(
        r#"
global: {{smtp_from: tarsier@example.com, smtp_auth_username: alerts, smtp_auth_password: s3cret}}
route: {{receiver: mail, group_wait: 0s, group_interval: 1s}}
receivers:
  - name: mail
    email_configs:
      - {{to: a@example.com, smarthost: "127.0.0.1:{plain_port}"}}
      - {{to: b@example.com, smarthost: "127.0.0.1:{untrusted_port}"}}
"#
    );
    let n = notifier(&yaml, dir.path()).await;
    n.send(&tenant(), vec![Alert::firing([("alertname", "X")])]).await.unwrap();
    wait_until("two failed deliveries", || n.api().recent_notifications("team-a").len() >= 2).await;
    let recs = n.api().recent_notifications("team-a");
    let errors: Vec<&str> = recs.iter().map(|r| r.error.as_deref().unwrap_or("")).collect();
    let refused = errors.iter().find(|e| e.contains("STARTTLS")).unwrap_or_else(|| panic!("{recs:?}"));
    assert!(
        refused.contains("require_tls is true") && refused.contains(&format!("127.0.0.1:{plain_port}")),
        "{refused}"
    );
    let bad_cert = errors.iter().find(|e| !e.contains("STARTTLS")).unwrap_or_else(|| panic!("{recs:?}"));
    assert!(bad_cert.to_lowercase().contains("certificate"), "{bad_cert}");
    assert_eq!(recs.iter().find(|r| r.error.as_deref() == Some(*refused)).unwrap().attempts, 1, "not retried");
    assert!(plain.mails().is_empty() && untrusted.mails().is_empty(), "nothing was sent");
    n.shutdown().await.unwrap();
}
