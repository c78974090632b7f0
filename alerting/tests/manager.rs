//! The rule manager over a real tsdb: recording rules write back, alerts go pending → firing →
//! resolved with `ALERTS`/`ALERTS_FOR_STATE` in the store, a reload keeps the alert's timer, and a
//! restart restores it from `ALERTS_FOR_STATE` so a `for` does not start over.

use std::sync::Arc;

use alerting::eval::{LocalStores, OutgoingAlert};
use alerting::manager::{AlertSink, RuleManager, RulesConfig};
use model::{Labels, Sample, TenantId, TimeSeries};
use parking_lot::Mutex;

#[derive(Default)]
struct Captured(Mutex<Vec<OutgoingAlert>>);

impl AlertSink for Captured {
    fn send(&self, _tenant: &TenantId, alerts: Vec<OutgoingAlert>) {
        self.0.lock().extend(alerts);
    }
}

const RULES: &str = r#"
groups:
- name: demo
  interval: 10s
  rules:
  - record: job:errors:sum
    expr: sum by (job) (errors)
  - alert: ErrorsHigh
    expr: job:errors:sum > 5
    for: 20m
    labels:
      severity: page
    annotations:
      summary: "{{ $labels.job }} has {{ $value }} errors"
"#;

fn open_tsdb(dir: &std::path::Path) -> Arc<tsdb::Tsdb> {
    Arc::new(tsdb::Tsdb::open(dir, tsdb::TsdbConfig::default()).unwrap())
}

fn write_errors(db: &tsdb::Tsdb, t_ms: i64, v: f64) {
    let labels = Labels::from_pairs([("__name__", "errors"), ("job", "api"), ("instance", "a")]);
    db.append(&TenantId::default_tenant(), &[TimeSeries::new(labels, vec![Sample::new(t_ms, v)])]).unwrap();
}

fn query(db: &tsdb::Tsdb, expr: &str, t_ms: i64) -> Vec<(Labels, f64)> {
    alerting::eval::promql_vector(db.instant_query(&TenantId::default_tenant(), expr, t_ms).unwrap()).unwrap()
}

fn manager(db: Arc<tsdb::Tsdb>, sink: Arc<Captured>, rules_path: &std::path::Path) -> RuleManager {
    let m = RuleManager::new(Arc::new(LocalStores { tsdb: db, indexer: None }), sink);
    let config = RulesConfig { rule_files: vec![rules_path.display().to_string()], ..RulesConfig::default() };
    assert_eq!(m.load(&config).unwrap(), 2);
    m
}

#[test]
fn alert_lifecycle_reload_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let rules_path = dir.path().join("rules.yml");
    std::fs::write(&rules_path, RULES).unwrap();
    let db_dir = dir.path().join("tsdb");
    let db = open_tsdb(&db_dir);
    let sink = Arc::new(Captured::default());
    let m = manager(db.clone(), sink.clone(), &rules_path);

    // 1_000_000 s from the epoch: aligned slots every 10 s, offset by the group's hash.
    let t0 = 1_000_000_000;
    let mut t = t0;
    let mut evals = 0;
    while t < t0 + 20_000 {
        write_errors(&db, t, 10.0);
        evals += m.eval_due(t);
        t += 1000;
    }
    // The first call runs the latest slot at once; then one run per 10 s slot (the slots are
    // offset by a hash of the file path, which is random here).
    assert!((2..=3).contains(&evals), "a 10s group ran {evals} times in 20s");
    let recorded = query(&db, "job:errors:sum", t);
    assert_eq!(recorded, vec![(Labels::from_pairs([("__name__", "job:errors:sum"), ("job", "api")]), 10.0)]);
    let pending = query(&db, "ALERTS", t);
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].0.get("alertstate"), Some("pending"));
    assert!(sink.0.lock().is_empty(), "pending alerts are not notified");

    // A reload with an unchanged rule keeps the pending timer.
    let config = RulesConfig { rule_files: vec![rules_path.display().to_string()], ..RulesConfig::default() };
    m.load(&config).unwrap();
    let rules = m.rules_api(None);
    let alert_rule = &rules["groups"][0]["rules"][1];
    assert_eq!(alert_rule["state"], "pending");
    assert_eq!(alert_rule["health"], "ok");
    let active_at = m.alerts_api(None)["alerts"][0]["activeAt"].clone();

    // Five minutes pass, then a restart: a new manager on the same store restores the activation
    // time (shifted by the downtime only), so the 20-minute `for` does not start over.
    while t < t0 + 300_000 {
        write_errors(&db, t, 10.0);
        m.eval_due(t);
        t += 1000;
    }
    let first_active_at = m.alerts_api(None)["alerts"][0]["activeAt"].as_str().unwrap().to_string();
    assert_eq!(first_active_at, active_at.as_str().unwrap());
    drop(m);
    db.flush().unwrap();
    drop(db);
    let db = open_tsdb(&db_dir);
    let m = manager(db.clone(), sink.clone(), &rules_path);
    t += 20_000; // down for 20 s
    while sink.0.lock().is_empty() && t < t0 + 1_800_000 {
        write_errors(&db, t, 10.0);
        m.eval_due(t);
        t += 1000;
    }
    let fired_at = t - 1000;
    assert!(
        fired_at - t0 <= 20 * 60_000 + 45_000,
        "fired {} s after the first evaluation: the `for` started over",
        (fired_at - t0) / 1000
    );
    let sent = sink.0.lock().clone();
    assert_eq!(sent.len(), 1);
    assert!(!sent[0].resolved);
    assert_eq!(sent[0].labels["severity"], "page");
    assert_eq!(sent[0].annotations["summary"], "api has 10 errors");
    assert!(sent[0].generator_url.contains("/graph?g0.expr="));

    // Errors stop: the alert resolves and the resolution is sent once.
    sink.0.lock().clear();
    let stop = t;
    while t < stop + 30_000 {
        write_errors(&db, t, 1.0);
        m.eval_due(t);
        t += 1000;
    }
    let sent = sink.0.lock().clone();
    assert_eq!(sent.iter().filter(|a| a.resolved).count(), 1, "{sent:?}");
    assert!(query(&db, "ALERTS", t).is_empty(), "ALERTS is stale once resolved");
}

#[test]
fn a_bad_rule_file_leaves_the_running_rules_alone() {
    let dir = tempfile::tempdir().unwrap();
    let rules_path = dir.path().join("rules.yml");
    std::fs::write(&rules_path, RULES).unwrap();
    let db = open_tsdb(&dir.path().join("tsdb"));
    let m = manager(db, Arc::new(Captured::default()), &rules_path);
    std::fs::write(&rules_path, "groups:\n- name: demo\n  rules:\n  - alert: X\n    expr: 'sum(('\n").unwrap();
    let config = RulesConfig { rule_files: vec![rules_path.display().to_string()], ..RulesConfig::default() };
    let err = m.load(&config).unwrap_err().to_string();
    assert!(err.contains("rule 1") && err.contains("parse"), "{err}");
    assert_eq!(m.rules_api(None)["groups"][0]["rules"].as_array().unwrap().len(), 2);
}
