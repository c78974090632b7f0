//! The concurrent ingest path: group-committed appends from many threads, background commits
//! running between them, and a crash at the end must give back every acknowledged line exactly
//! once.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use indexer::{Direction, Indexer, IndexerConfig, LogQueryRequest};
use model::{Labels, LogRecord, TenantId};

const BASE: i64 = 1_700_000_000_000_000_000;
const HOUR: i64 = 3_600_000_000_000;

fn config() -> IndexerConfig {
    IndexerConfig {
        // Commits run all the time, between and during appends.
        commit_interval: Duration::from_millis(5),
        partition_duration: Duration::from_secs(3600),
        writer_memory_bytes: 15_000_000,
        out_of_order_window: Duration::from_secs(100 * 365 * 86400),
        retention: Duration::from_secs(100 * 365 * 86400),
        wal_segment_bytes: 8192,
        // Small, so appenders wait for room while the ingest thread commits.
        ingest_queue_bytes: 1 << 20,
        // Fewer writers than partitions: eviction commits happen mid-stream too.
        max_open_writers: 2,
        ..IndexerConfig::default()
    }
}

fn all_lines(ix: &Indexer, tenant: &TenantId) -> Vec<String> {
    let mut out = Vec::new();
    let mut start = i64::MIN / 2;
    // Page forward past the per-query limit.
    loop {
        let req = LogQueryRequest {
            query: r#"{job=~".+"}"#.into(),
            start_ns: start,
            end_ns: i64::MAX / 2,
            limit: 5000,
            direction: Direction::Forward,
        };
        let resp = ix.query(tenant, &req).unwrap();
        let mut page: Vec<(i64, String)> =
            resp.streams.iter().flat_map(|s| s.entries.iter().map(|e| (e.timestamp_ns, e.line.clone()))).collect();
        page.sort();
        let Some(&(last, _)) = page.last() else { break };
        let full = page.len() == 5000;
        out.extend(page.into_iter().map(|(_, l)| l));
        if !full {
            break;
        }
        start = last + 1;
    }
    out
}

#[test]
fn concurrent_acknowledged_appends_survive_a_crash_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let tenant = TenantId::new("acme").unwrap();
    let threads = 6;
    let batches = 40;
    let per_batch = 25;
    {
        let ix = Arc::new(Indexer::open(dir.path(), config()).unwrap());
        std::thread::scope(|scope| {
            for t in 0..threads {
                let (ix, tenant) = (Arc::clone(&ix), tenant.clone());
                scope.spawn(move || {
                    for b in 0..batches {
                        let records: Vec<LogRecord> = (0..per_batch)
                            .map(|i| {
                                let n = (t * batches + b) * per_batch + i;
                                LogRecord {
                                    // Unique timestamps over three partitions.
                                    timestamp_ns: BASE + (n as i64 % 3) * HOUR + n as i64,
                                    labels: Labels::from_pairs([("job", format!("j{t}"))]),
                                    line: format!("t{t} b{b} i{i} {}", "x".repeat(n % 200)),
                                }
                            })
                            .collect();
                        assert_eq!(ix.append(&tenant, records).unwrap().accepted, per_batch);
                    }
                });
            }
        });
        // Dropped without shutdown or a final commit: a crash right after the last ack.
    }
    let expected = threads * batches * per_batch;
    let ix = Indexer::open(dir.path(), config()).unwrap();
    let got = all_lines(&ix, &tenant);
    assert_eq!(got.len(), expected, "every acknowledged line, no duplicates");
    assert_eq!(got.iter().collect::<BTreeSet<_>>().len(), expected);
    ix.shutdown().unwrap();
    drop(ix);
    let ix = Indexer::open(dir.path(), config()).unwrap();
    assert_eq!(all_lines(&ix, &tenant).len(), expected, "a clean restart replays nothing twice");
}

#[test]
fn commit_makes_every_acknowledged_append_searchable_and_shutdown_refuses_more() {
    let dir = tempfile::tempdir().unwrap();
    let tenant = TenantId::new("acme").unwrap();
    let ix =
        Indexer::open(dir.path(), IndexerConfig { commit_interval: Duration::from_secs(3600), ..config() }).unwrap();
    for i in 0..10 {
        let r = LogRecord { timestamp_ns: BASE + i, labels: Labels::from_pairs([("job", "a")]), line: format!("n{i}") };
        ix.append(&tenant, vec![r]).unwrap();
    }
    ix.commit().unwrap();
    assert_eq!(all_lines(&ix, &tenant).len(), 10);
    ix.shutdown().unwrap();
    ix.shutdown().unwrap();
    let late = LogRecord { timestamp_ns: BASE, labels: Labels::from_pairs([("job", "a")]), line: "late".into() };
    assert!(matches!(ix.append(&tenant, vec![late]), Err(indexer::Error::ShuttingDown)));
    assert!(matches!(ix.commit(), Err(indexer::Error::ShuttingDown)));
}
