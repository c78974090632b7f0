//! Routing and timers end to end through a webhook stand-in: `continue` sends one alert to two
//! receivers, `group_by` folds alerts into one notification, a group that already notified tells
//! about a new alert after `group_interval` (not `group_wait`), and an unchanged group is repeated
//! after `repeat_interval`.

mod notify_common;

use std::sync::atomic::Ordering;

use alerting::notify::Alert;
use notify_common::{Capture, notifier, tenant, wait_until};

#[tokio::test]
async fn routes_groups_and_timers_behave_like_alertmanager() {
    let cap = Capture::start().await;
    let dir = tempfile::tempdir().unwrap();
    let b = &cap.base;
    let yaml = format!(
        r#"
route:
  receiver: team
  group_by: [alertname]
  group_wait: 300ms
  group_interval: 400ms
  repeat_interval: 1500ms
  routes:
    - {{matchers: ['severity="critical"'], receiver: pager, continue: true}}
    - {{matchers: ['team="db"'], receiver: db}}
receivers:
  - {{name: team, webhook_configs: [{{url: "{b}/team"}}]}}
  - {{name: pager, webhook_configs: [{{url: "{b}/pager"}}]}}
  - {{name: db, webhook_configs: [{{url: "{b}/db"}}]}}
"#
    );
    let n = notifier(&yaml, dir.path()).await;
    let started = tokio::time::Instant::now();
    n.send(
        &tenant(),
        vec![
            Alert::firing([("alertname", "Lag"), ("severity", "critical"), ("team", "db"), ("instance", "1")]),
            Alert::firing([("alertname", "Lag"), ("team", "db"), ("instance", "2")]),
            Alert::firing([("alertname", "Other")]),
        ],
    )
    .await
    .unwrap();

    let db = cap.wait_for("db", 1).await;
    assert!(started.elapsed() >= std::time::Duration::from_millis(300), "group_wait is honoured");
    assert_eq!(db[0].body["alerts"].as_array().unwrap().len(), 2, "grouped by alertname");
    assert_eq!(db[0].body["groupKey"], "{}/{team=\"db\"}:{alertname=\"Lag\"}");
    assert_eq!(db[0].body["commonLabels"], serde_json::json!({"alertname": "Lag", "team": "db"}));
    let pager = cap.wait_for("pager", 1).await;
    assert_eq!(pager[0].body["alerts"][0]["labels"]["instance"], "1", "continue: the critical one also pages");
    let team = cap.wait_for("team", 1).await;
    assert_eq!(team[0].body["groupLabels"], serde_json::json!({"alertname": "Other"}));

    // A new alert in a group that already notified goes out on the next group_interval tick.
    n.send(&tenant(), vec![Alert::firing([("alertname", "Lag"), ("team", "db"), ("instance", "3")])]).await.unwrap();
    let db = cap.wait_for("db", 2).await;
    assert_eq!(db[1].body["alerts"].as_array().unwrap().len(), 3);
    assert_eq!(cap.requests("team").len(), 1, "other groups are not re-sent");

    // Nothing changes: the pager group is repeated once repeat_interval has passed.
    let flushes_before = n.metrics().flushes.load(Ordering::Relaxed);
    let pager = cap.wait_for("pager", 2).await;
    assert_eq!(pager[1].body["alerts"][0]["labels"]["instance"], "1");
    assert!(n.metrics().flushes.load(Ordering::Relaxed) > flushes_before + 1, "unchanged flushes sent nothing");
    wait_until("the group list", || n.api().alert_groups("team-a").len() == 3).await;
    n.shutdown().await.unwrap();
}

/// Found by the secrets test of #10.8: two sibling routes with the same matchers and grouping
/// shared one aggregation group (its key is the same string), so with `continue: true` only the
/// first receiver was ever notified. Alertmanager keeps groups per route.
#[tokio::test]
async fn sibling_routes_with_the_same_matchers_each_notify_their_receiver() {
    let cap = Capture::start().await;
    let dir = tempfile::tempdir().unwrap();
    let b = &cap.base;
    let yaml = format!(
        r#"
route:
  receiver: rest
  group_by: [alertname]
  group_wait: 50ms
  routes:
    - {{matchers: ['team="db"'], receiver: chat, continue: true}}
    - {{matchers: ['team="db"'], receiver: mail}}
receivers:
  - {{name: rest, webhook_configs: [{{url: "{b}/rest"}}]}}
  - {{name: chat, webhook_configs: [{{url: "{b}/chat"}}]}}
  - {{name: mail, webhook_configs: [{{url: "{b}/mail"}}]}}
"#
    );
    let n = notifier(&yaml, dir.path()).await;
    n.send(&tenant(), vec![Alert::firing([("alertname", "Lag"), ("team", "db")])]).await.unwrap();
    let chat = cap.wait_for("chat", 1).await;
    let mail = cap.wait_for("mail", 1).await;
    assert_eq!(chat[0].body["groupKey"], mail[0].body["groupKey"], "Alertmanager's key names the matchers only");
    assert!(cap.requests("rest").is_empty());
    wait_until("two groups", || n.api().alert_groups("team-a").len() == 2).await;
    n.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_full_queue_drops_and_counts_instead_of_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = alerting::notify::NotifyConfig::from_yaml("route: {receiver: r}\nreceivers: [{name: r}]").unwrap();
    let mut opts = alerting::notify::NotifierOptions::new(dir.path(), "");
    opts.queue_capacity = 1;
    // A current-thread runtime: the intake task cannot run between these calls.
    let n = alerting::notify::Notifier::start(&cfg, opts).await.unwrap();
    n.try_send(&tenant(), vec![Alert::firing([("a", "1")])]).unwrap();
    let err = n.try_send(&tenant(), vec![Alert::firing([("a", "2")]), Alert::firing([("a", "3")])]).unwrap_err();
    assert!(err.to_string().contains("2 alerts dropped"), "{err}");
    assert_eq!(n.metrics().alerts_dropped.load(Ordering::Relaxed), 2);
    assert_eq!(n.metrics().alerts_received.load(Ordering::Relaxed), 1);
    n.shutdown().await.unwrap();
    assert_eq!(n.api().alerts("team-a", &Default::default()).len(), 1, "the queued batch was taken in at shutdown");
}
