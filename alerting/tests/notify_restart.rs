//! Restarts: the alerts and the notification log survive in the data dir, so a restart during
//! `group_wait` still notifies once, a restart after a firing notification does not repeat it,
//! and a resolved alert received just before a restart is still delivered.

mod notify_common;

use std::sync::atomic::Ordering;

use alerting::notify::Alert;
use chrono::Utc;
use notify_common::{Capture, notifier, tenant, wait_until};

#[tokio::test]
async fn restarts_neither_duplicate_nor_lose_notifications() {
    let cap = Capture::start().await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "route: {{receiver: w, group_by: [alertname], group_wait: 1s, group_interval: 300ms, repeat_interval: 1h}}\n\
         receivers: [{{name: w, webhook_configs: [{{url: '{}/webhook'}}]}}]",
        cap.base
    );
    let alert = Alert::firing([("alertname", "BackendDown"), ("service", "checkout")]);

    // 1. Restart during group_wait: the first process stops before it notifies.
    let a = notifier(&yaml, dir.path()).await;
    a.send(&tenant(), vec![alert.clone()]).await.unwrap();
    a.shutdown().await.unwrap();
    assert_eq!(a.metrics().flushes.load(Ordering::Relaxed), 0, "stopped inside group_wait");
    assert!(cap.requests("webhook").is_empty());

    let b = notifier(&yaml, dir.path()).await;
    let got = cap.wait_for("webhook", 1).await;
    assert_eq!(got[0].body["status"], "firing");
    b.shutdown().await.unwrap();

    // 2. Restart after the firing notification; the engine re-sends the still-firing alert.
    let c = notifier(&yaml, dir.path()).await;
    c.send(&tenant(), vec![alert.clone()]).await.unwrap();
    wait_until("two flushes", || c.metrics().flushes.load(Ordering::Relaxed) >= 2).await;
    assert_eq!(cap.requests("webhook").len(), 1, "no duplicate firing notification after the restart");

    // 3. The resolved alert arrives once, and the process stops right away.
    let mut resolved = alert.clone();
    resolved.ends_at = Some(Utc::now());
    c.send(&tenant(), vec![resolved]).await.unwrap();
    c.shutdown().await.unwrap();

    let d = notifier(&yaml, dir.path()).await;
    let got = cap.wait_for("webhook", 2).await;
    assert_eq!(got[1].body["status"], "resolved");
    wait_until("a later flush", || d.metrics().flushes.load(Ordering::Relaxed) >= 1).await;
    d.shutdown().await.unwrap();
    // Whichever process delivered it, the resolved notification went out exactly once.
    // and nothing is left to notify about: the delivered resolved alert is forgotten.
    let e = notifier(&yaml, dir.path()).await;
    assert!(e.api().alert_groups("team-a").is_empty());
    assert!(e.api().alerts("team-a", &Default::default()).is_empty());
    e.shutdown().await.unwrap();
    assert_eq!(cap.requests("webhook").len(), 2);
}
