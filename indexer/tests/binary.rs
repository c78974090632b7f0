//! Binary operations of metric queries end to end: each result equals the operands' own results
//! combined by hand, in instant and range queries.

use std::collections::BTreeMap;

mod common;

use indexer::{Indexer, MetricQueryRequest};
use model::{Labels, LogRecord, TenantId};

const BASE: i64 = 1_700_000_000_000_000_000;
const SEC: i64 = 1_000_000_000;

fn tenant() -> TenantId {
    TenantId::new("acme").unwrap()
}

/// api: 5 lines in the minute before BASE+60s, web: 3.
fn fixture() -> (tempfile::TempDir, Indexer) {
    let dir = tempfile::tempdir().unwrap();
    let ix = Indexer::open(dir.path(), common::test_config()).unwrap();
    let rec = |s: i64, job: &str| LogRecord {
        timestamp_ns: BASE + s * SEC,
        labels: Labels::from_pairs([("job", job), ("team", "t")]),
        line: format!("{job} {s}"),
    };
    let mut records: Vec<LogRecord> = (1..=5).map(|i| rec(i * 10, "api")).collect();
    records.extend((1..=3).map(|i| rec(i * 15, "web")));
    ix.append(&tenant(), records).unwrap();
    ix.commit().unwrap();
    (dir, ix)
}

fn at_60(ix: &Indexer, query: &str) -> Result<BTreeMap<String, f64>, indexer::Error> {
    let req = MetricQueryRequest {
        query: query.into(),
        start_ns: BASE + 60 * SEC,
        end_ns: BASE + 60 * SEC,
        step_ns: 0,
        instant: true,
    };
    let json = serde_json::to_value(ix.metric_query(&tenant(), &req)?).unwrap();
    Ok(json["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let key = s["metric"].as_object().unwrap().iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap()));
            (key.collect::<Vec<_>>().join(","), s["value"][1].as_str().unwrap().parse().unwrap())
        })
        .collect())
}

#[test]
fn binary_operations_combine_their_operands() {
    let (_dir, ix) = fixture();
    let q = |query: &str| at_60(&ix, query).unwrap_or_else(|e| panic!("{query}: {e}"));
    let counts = q(r#"count_over_time({team="t"}[1m])"#);
    assert_eq!(counts["job=api,team=t"], 5.0);
    assert_eq!(counts["job=web,team=t"], 3.0);
    let doubled = q(r#"count_over_time({team="t"}[1m]) * 2 + 1"#);
    assert_eq!(doubled["job=api,team=t"], 11.0);
    assert_eq!(
        q(r#"2 ^ 3 ^ 0 * count_over_time({job="web"}[1m])"#)["job=web,team=t"],
        6.0,
        "^ binds tighter, right to left"
    );
    let ratio = q(r#"sum(count_over_time({job="api"}[1m])) / sum(count_over_time({team="t"}[1m]))"#);
    assert_eq!(ratio[""], 5.0 / 8.0);
    assert_eq!(q(r#"count_over_time({team="t"}[1m]) > 4"#).keys().collect::<Vec<_>>(), vec!["job=api,team=t"]);
    let as_bool = q(r#"count_over_time({team="t"}[1m]) > bool 4"#);
    assert_eq!((as_bool["job=api,team=t"], as_bool["job=web,team=t"]), (1.0, 0.0));
    // Many-to-one: each job's share of its team.
    let share =
        q(r#"count_over_time({team="t"}[1m]) / on(team) group_left sum by (team) (count_over_time({team="t"}[1m]))"#);
    assert_eq!(share["job=web,team=t"], 3.0 / 8.0);
    let one_to_one =
        at_60(&ix, r#"count_over_time({team="t"}[1m]) / on(team) sum by (team) (count_over_time({team="t"}[1m]))"#);
    assert!(one_to_one.unwrap_err().to_string().contains("group_left/group_right"));
    let unless = q(r#"count_over_time({team="t"}[1m]) unless count_over_time({job="web"}[1m])"#);
    assert_eq!(unless.keys().collect::<Vec<_>>(), vec!["job=api,team=t"]);
    let err = at_60(&ix, "1 + 1").unwrap_err();
    assert!(err.to_string().contains("needs at least one range aggregation"), "{err}");
    // Range queries combine step by step.
    let req = MetricQueryRequest {
        query: r#"sum(count_over_time({team="t"}[1m])) - sum(count_over_time({job="web"}[1m]))"#.into(),
        start_ns: BASE + 30 * SEC,
        end_ns: BASE + 60 * SEC,
        step_ns: 30 * SEC,
        instant: false,
    };
    let json = serde_json::to_value(ix.metric_query(&tenant(), &req).unwrap()).unwrap();
    assert_eq!(json["result"][0]["values"], serde_json::json!([[1_700_000_030, "3"], [1_700_000_060, "5"]]));
}
