//! Context lines: the N lines before and after a timestamp in exactly one stream.

mod common;

use indexer::{ContextRequest, Indexer};
use model::{Labels, LogRecord, TenantId};

const BASE: i64 = 1_700_000_000_000_000_000;

#[test]
fn context_takes_lines_around_a_timestamp_from_the_exact_stream_only() {
    let dir = tempfile::tempdir().unwrap();
    let ix = Indexer::open(dir.path(), common::test_config()).unwrap();
    let tenant = TenantId::new("acme").unwrap();
    let app = Labels::from_pairs([("job", "app")]);
    let app_more = Labels::from_pairs([("job", "app"), ("pod", "p")]);
    let mut records = Vec::new();
    for i in 1..=10 {
        records.push(LogRecord { timestamp_ns: BASE + i, labels: app.clone(), line: format!("app {i}") });
        records.push(LogRecord { timestamp_ns: BASE + i, labels: app_more.clone(), line: format!("more {i}") });
    }
    records.push(LogRecord { timestamp_ns: BASE + 5, labels: app.clone(), line: "app 5 again".into() });
    ix.append(&tenant, records).unwrap();
    ix.commit().unwrap();
    let ask = |ts: i64, before: usize, after: usize| {
        let req = ContextRequest { stream: app.clone(), timestamp_ns: BASE + ts, before, after };
        let resp = ix.context(&tenant, &req).unwrap();
        assert_eq!(resp.stream, app);
        let lines = |v: Vec<model::LogEntry>| v.into_iter().map(|e| e.line).collect::<Vec<_>>();
        (lines(resp.before), lines(resp.at), lines(resp.after))
    };
    let (before, mut at, after) = ask(5, 2, 3);
    at.sort();
    assert_eq!(before, vec!["app 3", "app 4"]);
    assert_eq!(at, vec!["app 5", "app 5 again"]);
    assert_eq!(after, vec!["app 6", "app 7", "app 8"]);
    let (before, _, after) = ask(2, 10, 0);
    assert_eq!(before, vec!["app 1"]);
    assert!(after.is_empty());
    let (_, _, after) = ask(9, 0, 10);
    assert_eq!(after, vec!["app 10"]);
    let empty = ContextRequest { stream: Labels::empty(), timestamp_ns: BASE, before: 1, after: 1 };
    assert_eq!(ix.context(&tenant, &empty).unwrap_err().http_status(), 400);
}
