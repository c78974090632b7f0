//! Retention by size and bounded merges: a tenant over its byte limit loses its oldest whole
//! partitions (files gone, queries no longer see them, the newest kept), and the merge policy's
//! bounds decide which segments merge.

use std::time::Duration;

use indexer::{Direction, Indexer, IndexerConfig, LogQueryRequest};
use model::{Labels, LogRecord, TenantId};

const HOUR: i64 = 3_600_000_000_000;

fn config() -> IndexerConfig {
    IndexerConfig {
        commit_interval: Duration::from_secs(3600),
        partition_duration: Duration::from_secs(3600),
        writer_memory_bytes: 15_000_000,
        ..IndexerConfig::default()
    }
}

fn tenant() -> TenantId {
    TenantId::new("acme").unwrap()
}

fn batch(ts: i64, n: usize, tag: &str) -> Vec<LogRecord> {
    (0..n)
        .map(|i| LogRecord {
            timestamp_ns: ts + i as i64,
            labels: Labels::from_pairs([("job", "a")]),
            line: format!("{tag} line {i} {:x}", (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)),
        })
        .collect()
}

fn count(ix: &Indexer, t: &TenantId) -> usize {
    let req = LogQueryRequest {
        query: r#"{job="a"}"#.into(),
        start_ns: 0,
        end_ns: i64::MAX / 2,
        limit: 5000,
        direction: Direction::Forward,
    };
    ix.query(t, &req).unwrap().streams.iter().map(|s| s.entries.len()).sum()
}

#[test]
fn a_tenant_over_its_byte_limit_loses_its_oldest_partitions_and_their_files() {
    let dir = tempfile::tempdir().unwrap();
    let now = model::time::now_ns();
    let other = TenantId::new("other").unwrap();
    let sizes = {
        let ix = Indexer::open(dir.path(), config()).unwrap();
        for h in (0..4).rev() {
            ix.append(&tenant(), batch(now - h * HOUR, 500, &format!("h{h}"))).unwrap();
        }
        ix.append(&other, batch(now - 3 * HOUR, 500, "other")).unwrap();
        ix.commit().unwrap();
        let stats = ix.partition_stats();
        ix.shutdown().unwrap();
        stats
    };
    let mine: Vec<u64> = sizes.iter().filter(|s| s.tenant == tenant()).map(|s| s.disk_bytes).collect();
    assert_eq!(mine.len(), 4);
    assert!(mine.iter().all(|&b| b > 0));
    // Room for the two newest partitions only.
    let limit = mine[2] + mine[3] + 1;
    let ix = Indexer::open(dir.path(), IndexerConfig { retention_bytes_per_tenant: limit, ..config() }).unwrap();
    assert_eq!(count(&ix, &tenant()), 2000);
    assert_eq!(ix.run_retention().unwrap(), 2, "the two oldest of acme; the other tenant is under the limit");
    assert_eq!(count(&ix, &tenant()), 1000);
    assert_eq!(count(&ix, &other), 500);
    let on_disk = std::fs::read_dir(dir.path().join("tenants/acme")).unwrap().count();
    assert_eq!(on_disk, 2, "deleted partitions free their directories");
    let kept: Vec<i64> = ix.partition_stats().iter().filter(|s| s.tenant == tenant()).map(|s| s.start_ns).collect();
    assert!(kept.iter().all(|&start| start + HOUR > now - 2 * HOUR), "the newest are kept: {kept:?}");
    assert_eq!(ix.run_retention().unwrap(), 0);
    drop(ix);
    // A limit below the newest partition alone never deletes it.
    let ix = Indexer::open(dir.path(), IndexerConfig { retention_bytes_per_tenant: 1, ..config() }).unwrap();
    assert_eq!(ix.run_retention().unwrap(), 1, "acme's older one; the other tenant's only partition is its newest");
    assert_eq!(count(&ix, &tenant()), 500);
    assert_eq!(count(&ix, &other), 500);
}

fn segments_after_commits(cfg: IndexerConfig, commits: usize) -> usize {
    let dir = tempfile::tempdir().unwrap();
    let now = model::time::now_ns();
    let ix = Indexer::open(dir.path(), cfg.clone()).unwrap();
    for c in 0..commits {
        ix.append(&tenant(), batch(now + c as i64 * 100, 20, "c")).unwrap();
        ix.commit().unwrap();
    }
    // Shutdown waits for running merges.
    ix.shutdown().unwrap();
    drop(ix);
    let ix = Indexer::open(dir.path(), cfg).unwrap();
    assert_eq!(count(&ix, &tenant()), commits * 20);
    let stats = ix.partition_stats();
    assert_eq!(stats.len(), 1);
    stats[0].segments
}

#[test]
fn merges_follow_the_configured_bounds() {
    let merging = IndexerConfig { merge_min_segments: 2, ..config() };
    let merged = segments_after_commits(merging, 12);
    assert!(merged < 12, "12 one-commit segments must merge with merge_min_segments 2, got {merged}");
    let capped = IndexerConfig { merge_min_segments: 2, merge_max_segment_docs: 10, ..config() };
    assert_eq!(segments_after_commits(capped, 12), 12, "segments above merge_max_segment_docs never merge");
}
