//! Scenario `needle`: one rare token in many realistic lines, found through the indexer
//! (`{job="bench"} |= "<token>"` over the full range) and, in the same run, by ripgrep over the
//! raw file and by SQLite FTS5 (Python's sqlite3) over the same lines. Prints p50 latency and
//! the disk bytes of each beside the indexer's, with ratios. Issue #4's other two query goals run
//! on the same index: a common word (`|= "error"`, ~11% of the lines) returning the newest 100
//! lines (goal 100 ms) and `count_over_time` of it over the full range (goal 1 s; ripgrep's
//! `-c` of the same word beside it), each checked against the count made while generating.

use std::io::Write;
use std::process::Command;
use std::time::Instant;

use model::{Labels, LogRecord, TenantId};
use serde_json::Value;

use crate::loggen::{LogGen, Rng};
use crate::report::{self, round};

const RUNS: usize = 21;
/// Runs of the common-word queries, which read far more than a needle.
const COMMON_RUNS: usize = 7;
/// The common word: `level=error` lines (1 in 6 of the logfmt lines).
const COMMON: &str = "error";
/// Issue #4's goals for the common word.
const NEWEST_GOAL_MS: f64 = 100.0;
const COUNT_GOAL_MS: f64 = 1000.0;

fn p50(mut ms: Vec<f64>) -> f64 {
    ms.sort_by(f64::total_cmp);
    report::percentile(&ms, 0.5)
}

pub fn run(lines: usize, config: indexer::IndexerConfig) -> anyhow::Result<()> {
    let rg = Command::new("rg").arg("--version").output();
    anyhow::ensure!(rg.is_ok_and(|o| o.status.success()), "ripgrep is missing: apt-get install -y ripgrep");
    let dir = tempfile::tempdir()?;
    let raw_path = dir.path().join("raw.log");
    let mut raw = std::io::BufWriter::new(std::fs::File::create(&raw_path)?);
    let mut generator = LogGen::new(0xbeef)?;
    let mut rng = Rng(0x1234_5678);
    let token = format!("needle{:012x}", rng.next() & 0xffff_ffff_ffff);
    let now = model::time::now_ns();
    let labels = Labels::from_pairs([("job", "bench")]);
    let ix = indexer::Indexer::open(&dir.path().join("ix"), config)?;
    let tenant = TenantId::default_tenant();
    let mut bytes = 0u64;
    let mut common_lines = 0usize;
    let mut batch = Vec::with_capacity(5000);
    let hits = [lines / 7, lines / 2, lines - 1];
    eprintln!("needle: {lines} lines, token {token}");
    for i in 0..lines {
        let mut line = generator.line();
        if hits.contains(&i) {
            line.push_str(&format!(" ref={token}"));
        }
        common_lines += usize::from(line.contains(COMMON));
        raw.write_all(line.as_bytes())?;
        raw.write_all(b"\n")?;
        bytes += line.len() as u64 + 1;
        batch.push(LogRecord { timestamp_ns: now - 3_600_000_000_000 + i as i64 * 1000, labels: labels.clone(), line });
        if batch.len() == 5000 {
            ix.append(&tenant, std::mem::take(&mut batch))?;
        }
    }
    ix.append(&tenant, batch)?;
    raw.flush()?;
    drop(raw);
    ix.commit()?;
    let index_bytes: u64 = ix.partition_stats().iter().map(|p| p.disk_bytes).sum();

    let req = newest_100(&token);
    let mut ours = Vec::new();
    for _ in 0..RUNS {
        let started = Instant::now();
        let resp = ix.query(&tenant, &req)?;
        ours.push(started.elapsed().as_secs_f64() * 1000.0);
        let found: usize = resp.streams.iter().map(|s| s.entries.len()).sum();
        anyhow::ensure!(found == hits.len(), "indexer found {found} lines, expected {}", hits.len());
    }
    let ours = p50(ours);

    let mut rg_ms = Vec::new();
    for _ in 0..RUNS {
        let started = Instant::now();
        let out = Command::new("rg").args(["-F", "-c", &token]).arg(&raw_path).output()?;
        rg_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        let count = String::from_utf8_lossy(&out.stdout).trim().to_string();
        anyhow::ensure!(count == hits.len().to_string(), "ripgrep counted {count:?}");
    }
    let rg = p50(rg_ms);
    report::emit(
        "needle_query_p50_ms",
        &[
            ("lines", Value::from(lines)),
            ("raw_bytes", Value::from(bytes)),
            ("tarsier_p50_ms", Value::from(round(ours))),
            ("index_bytes", Value::from(index_bytes)),
            ("index_to_raw_bytes", Value::from(round(index_bytes as f64 / bytes as f64))),
            ("goal", Value::from("p50 <= 50 ms and ratio >= 50")),
        ],
        Some(("ripgrep", round(rg), round(rg / ours))),
    );
    common_word(&ix, &tenant, &raw_path, now, common_lines)?;

    // SQLite FTS5 over the same lines, timed inside Python so process start-up is not counted.
    let db = dir.path().join("fts.db");
    let script = r#"
import json, sqlite3, sys, time
raw, db, token, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
c = sqlite3.connect(db)
c.execute("create virtual table logs using fts5(line)")
with open(raw, encoding="utf-8") as f:
    c.executemany("insert into logs(line) values (?)", ((l.rstrip("\n"),) for l in f))
c.commit()
times = []
for _ in range(runs):
    t = time.perf_counter()
    n = len(c.execute("select rowid from logs where logs match ? limit 100", ('"' + token + '"',)).fetchall())
    times.append((time.perf_counter() - t) * 1000)
def p50(query, arg, runs):
    t_all = []
    for _ in range(runs):
        t = time.perf_counter()
        rows = c.execute(query, (arg,)).fetchall()
        t_all.append((time.perf_counter() - t) * 1000)
    t_all.sort()
    return t_all[len(t_all) // 2], rows
common = sys.argv[5]
newest_ms, _ = p50("select rowid, line from logs where logs match ? order by rowid desc limit 100", common, 7)
count_ms, rows = p50("select count(*) from logs where logs match ?", common, 7)
c.close()
times.sort()
print(json.dumps({"p50_ms": times[len(times) // 2], "found": n, "newest_ms": newest_ms, "count_ms": count_ms, "count": rows[0][0]}))
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&raw_path)
        .arg(&db)
        .arg(&token)
        .arg(RUNS.to_string())
        .arg(COMMON)
        .output()?;
    anyhow::ensure!(out.status.success(), "python3 sqlite3 FTS5 failed: {}", String::from_utf8_lossy(&out.stderr));
    let fts: Value = serde_json::from_slice(&out.stdout)?;
    anyhow::ensure!(fts["found"].as_u64() == Some(hits.len() as u64), "FTS5 found {}", fts["found"]);
    let fts_ms = fts["p50_ms"].as_f64().unwrap_or(f64::NAN);
    let fts_bytes = std::fs::metadata(&db)?.len();
    report::emit(
        "needle_query_p50_ms_vs_fts5",
        &[
            ("lines", Value::from(lines)),
            ("tarsier_p50_ms", Value::from(round(ours))),
            ("tarsier_index_bytes", Value::from(index_bytes)),
            ("fts5_db_bytes", Value::from(fts_bytes)),
            ("fts5_to_tarsier_bytes", Value::from(round(fts_bytes as f64 / index_bytes as f64))),
        ],
        Some(("sqlite-fts5", round(fts_ms), round(fts_ms / ours))),
    );
    // FTS5 matches whole tokens, case-insensitively: its count is of lines with the token
    // `error` in any case, not of lines holding the substring, so it is a peer, not a check.
    report::emit(
        "common_word_fts5",
        &[
            ("fts5_newest_100_p50_ms", Value::from(round(fts["newest_ms"].as_f64().unwrap_or(f64::NAN)))),
            ("fts5_count_p50_ms", Value::from(round(fts["count_ms"].as_f64().unwrap_or(f64::NAN)))),
            ("fts5_count", fts["count"].clone()),
        ],
        None,
    );
    ix.shutdown()?;
    // Where the bytes go, once merges have ended and the writers are closed.
    let mut figures = vec![("raw_bytes", Value::from(bytes))];
    let parts = disk_breakdown(&dir.path().join("ix"));
    let total: u64 = parts.iter().filter(|(k, _)| k.as_str() != "wal").map(|(_, v)| v).sum();
    figures.push(("index_bytes_after_merges", Value::from(total)));
    figures.push(("index_to_raw_bytes_after_merges", Value::from(round(total as f64 / bytes as f64))));
    let parts: Vec<(String, Value)> =
        parts.into_iter().map(|(k, v)| (k, Value::from(round(v as f64 / bytes as f64)))).collect();
    figures.extend(parts.iter().map(|(k, v)| (k.as_str(), v.clone())));
    report::emit("needle_index_breakdown_to_raw", &figures, None);
    Ok(())
}

/// Issue #4's common-word goals: the newest 100 lines holding [`COMMON`], and `count_over_time`
/// of them over the full range (ripgrep counting the same lines beside it).
fn common_word(
    ix: &indexer::Indexer,
    tenant: &TenantId,
    raw_path: &std::path::Path,
    now: i64,
    expected: usize,
) -> anyhow::Result<()> {
    let req = newest_100(COMMON);
    let mut newest = Vec::new();
    for _ in 0..COMMON_RUNS {
        let started = Instant::now();
        let resp = ix.query(tenant, &req)?;
        newest.push(started.elapsed().as_secs_f64() * 1000.0);
        let found: usize = resp.streams.iter().map(|s| s.entries.len()).sum();
        anyhow::ensure!(found == expected.min(100), "newest {COMMON}: {found} lines, expected {}", expected.min(100));
    }
    let newest = p50(newest);
    report::emit(
        "common_word_newest_100_p50_ms",
        &[
            ("query", Value::from(req.query.clone())),
            ("matching_lines", Value::from(expected)),
            ("tarsier_p50_ms", Value::from(round(newest))),
        ],
        Some(("goal", NEWEST_GOAL_MS, round(NEWEST_GOAL_MS / newest))),
    );

    let req = indexer::MetricQueryRequest {
        query: format!("count_over_time({{job=\"bench\"}} |= \"{COMMON}\" [2h])"),
        start_ns: now,
        end_ns: now,
        step_ns: 0,
        instant: true,
    };
    let mut counts = Vec::new();
    for _ in 0..COMMON_RUNS {
        let started = Instant::now();
        let resp = ix.metric_query(tenant, &req)?;
        counts.push(started.elapsed().as_secs_f64() * 1000.0);
        let indexer::MetricData::Vector(samples) = resp.data else { anyhow::bail!("count_over_time: not a vector") };
        let total: f64 = samples.iter().map(|(_, _, v)| v).sum();
        anyhow::ensure!(total == expected as f64, "count_over_time {total}, expected {expected}");
    }
    let count = p50(counts);
    let mut rg_ms = Vec::new();
    for _ in 0..COMMON_RUNS {
        let started = Instant::now();
        let out = Command::new("rg").args(["-F", "-c", COMMON]).arg(raw_path).output()?;
        rg_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        let n = String::from_utf8_lossy(&out.stdout).trim().to_string();
        anyhow::ensure!(n == expected.to_string(), "ripgrep counted {n:?} lines with {COMMON}");
    }
    let rg = p50(rg_ms);
    report::emit(
        "common_word_count_over_time_p50_ms",
        &[
            ("query", Value::from(req.query.clone())),
            ("matching_lines", Value::from(expected)),
            ("tarsier_p50_ms", Value::from(round(count))),
            ("goal_ms", Value::from(COUNT_GOAL_MS)),
            ("goal_met", Value::from(count <= COUNT_GOAL_MS)),
        ],
        Some(("ripgrep -c", round(rg), round(rg / count))),
    );
    Ok(())
}

/// Bytes under the indexer's folder by kind: tantivy's segment files by extension (`store` stored
/// lines, `idx` postings, `pos` positions, `term` dictionary, `fast` fast fields, `fieldnorm`),
/// `terms` our word lists, `wal`, and `other` (meta files).
fn disk_breakdown(dir: &std::path::Path) -> std::collections::BTreeMap<String, u64> {
    fn walk(dir: &std::path::Path, wal: bool, out: &mut std::collections::BTreeMap<String, u64>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                walk(&path, wal || entry.file_name() == "wal", out);
                continue;
            }
            let kind = match path.extension().and_then(|e| e.to_str()) {
                _ if wal => "wal",
                Some(ext @ ("store" | "idx" | "pos" | "term" | "fast" | "fieldnorm" | "terms")) => ext,
                _ => "other",
            };
            *out.entry(kind.to_string()).or_default() += meta.len();
        }
    }
    let mut out = std::collections::BTreeMap::new();
    walk(dir, false, &mut out);
    out
}

/// The newest 100 bench lines holding `word`, over the full range.
fn newest_100(word: &str) -> indexer::LogQueryRequest {
    indexer::LogQueryRequest {
        query: format!("{{job=\"bench\"}} |= \"{word}\""),
        start_ns: 0,
        end_ns: i64::MAX,
        limit: 100,
        direction: indexer::Direction::Backward,
    }
}
