//! `|=` needles pre-filter through the index even when they are parts of words (a needle's first
//! and last words may be the tail and head of longer words in the line) and when lines hold words
//! longer than the index keeps: results must equal a plain substring scan, and the index must
//! actually narrow the lines read.

use std::time::Duration;

use indexer::{Direction, Indexer, IndexerConfig, LogQueryRequest};
use model::{Labels, LogRecord, TenantId};
use proptest::prelude::*;

const BASE: i64 = 1_700_000_000_000_000_000;

fn config() -> IndexerConfig {
    IndexerConfig {
        commit_interval: Duration::from_secs(3600),
        out_of_order_window: Duration::from_secs(100 * 365 * 86400),
        retention: Duration::from_secs(100 * 365 * 86400),
        ..IndexerConfig::default()
    }
}

fn tenant() -> TenantId {
    TenantId::new("acme").unwrap()
}

fn request(query: &str) -> LogQueryRequest {
    LogQueryRequest {
        query: query.to_string(),
        start_ns: i64::MIN / 2,
        end_ns: i64::MAX / 2,
        limit: 5000,
        direction: Direction::Forward,
    }
}

fn store(lines: &[String]) -> (tempfile::TempDir, Indexer) {
    store_in_commits(lines, 1)
}

/// A store holding `lines`, appended and committed in `commits` parts (so as many segments, which
/// tantivy may merge).
fn store_in_commits(lines: &[String], commits: usize) -> (tempfile::TempDir, Indexer) {
    let dir = tempfile::tempdir().unwrap();
    let ix = Indexer::open(dir.path(), config()).unwrap();
    let records: Vec<LogRecord> = lines
        .iter()
        .enumerate()
        .map(|(i, line)| LogRecord {
            timestamp_ns: BASE + i as i64 * 1_000_000,
            labels: Labels::from_pairs([("job", "app")]),
            line: line.clone(),
        })
        .collect();
    for part in records.chunks(records.len().div_ceil(commits).max(1)) {
        ix.append(&tenant(), part.to_vec()).unwrap();
        ix.commit().unwrap();
    }
    (dir, ix)
}

/// (lines returned, lines read) for a `|=` query.
fn search(ix: &Indexer, needle: &str) -> (Vec<String>, u64) {
    let resp = ix.query(&tenant(), &request(&format!("{{job=\"app\"}} |= {needle:?}"))).unwrap();
    let mut got: Vec<(i64, String)> =
        resp.streams.iter().flat_map(|s| s.entries.iter().map(|e| (e.timestamp_ns, e.line.clone()))).collect();
    got.sort();
    (got.into_iter().map(|(_, l)| l).collect(), resp.stats.total_lines_processed)
}

#[test]
fn one_word_needle_reads_only_the_lines_holding_it() {
    let mut lines: Vec<String> = (0..2000).map(|i| format!("GET /api/v1/items/{i} 200 ok user=u{}", i % 50)).collect();
    lines[700] = "payment failed: token=rare0a1b2c3d4e retry".into();
    lines[1500] = "prefix-RARE0A1B2C3D4E-suffix and xrare0a1b2c3d4Ey".into();
    let (_dir, ix) = store(&lines);
    let (got, read) = search(&ix, "rare0a1b2c3d4e");
    assert_eq!(got, vec![lines[700].clone()], "case-sensitive substring semantics");
    assert!(read <= 2, "the index narrowed the scan to the candidate lines, read {read} of 2000");
    let (got, _) = search(&ix, "RARE0A1B2C3D4E-suf");
    assert_eq!(got, vec![lines[1500].clone()]);
    let (got, read) = search(&ix, "are0a1b2c3d4");
    assert_eq!(got.len(), 2, "a needle inside longer words finds both lines: {got:?}");
    assert!(read <= 2, "read {read}");
}

#[test]
fn words_longer_than_the_index_keeps_are_still_found() {
    let long = format!("{}needle{}", "a".repeat(300), "b".repeat(300));
    let lines = vec!["short line".to_string(), format!("blob={long} end"), "another".to_string()];
    let (_dir, ix) = store(&lines);
    assert_eq!(search(&ix, "needle").0, vec![lines[1].clone()]);
    assert_eq!(search(&ix, &long).0, vec![lines[1].clone()]);
    assert_eq!(search(&ix, &format!("={long} ")).0, vec![lines[1].clone()]);
}

fn word() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-zA-Z0-9]{1,8}",
        1 => "[a-zé]{1,4}[ΣσςİÉ][a-z]{0,3}",
        1 => "[ab]{250,262}",
    ]
}

fn line() -> impl Strategy<Value = String> {
    prop::collection::vec((word(), prop::sample::select(vec![" ", "-", "=", "/", ": ", ""])), 1..8)
        .prop_map(|parts| parts.into_iter().map(|(w, sep)| format!("{w}{sep}")).collect())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Needles cut at random places out of random lines (so they start and end inside words,
    /// span separators, hold non-ASCII letters whose lowercase differs, or long words) return
    /// exactly the lines a substring scan returns, over several segments (searched through their
    /// word lists) and again after a restart.
    #[test]
    fn needles_equal_a_substring_scan(
        lines in prop::collection::vec(line(), 1..40),
        picks in prop::collection::vec((any::<prop::sample::Index>(), 0usize..400, 1usize..30), 1..6),
    ) {
        let (dir, ix) = store_in_commits(&lines, 3);
        let needles: Vec<String> = picks
            .into_iter()
            .map(|(which, start, len)| {
                let chars: Vec<char> = which.get(&lines).chars().collect();
                let start = start % chars.len();
                let end = (start + len).min(chars.len());
                chars[start..end].iter().collect()
            })
            .collect();
        // Several segments with their word lists, then the same after a restart (merges done,
        // lists reopened).
        for round in ["commits", "restart"] {
            if round == "restart" {
                ix.shutdown().unwrap();
            }
            let reopened;
            let ix = if round == "restart" {
                reopened = Indexer::open(dir.path(), config()).unwrap();
                &reopened
            } else {
                &ix
            };
            for needle in &needles {
                let want: Vec<String> = lines.iter().filter(|l| l.contains(needle.as_str())).cloned().collect();
                let (got, _) = search(ix, needle);
                prop_assert_eq!(got, want, "needle {:?} after {}", needle, round);
            }
        }
    }
}
