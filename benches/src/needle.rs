//! Scenario `needle`: one rare token in many realistic lines, found through the indexer
//! (`{job="bench"} |= "<token>"` over the full range) and, in the same run, by ripgrep over the
//! raw file and by SQLite FTS5 (Python's sqlite3) over the same lines. Prints p50 latency and
//! the disk bytes of each beside the indexer's, with ratios.

use std::io::Write;
use std::process::Command;
use std::time::Instant;

use model::{Labels, LogRecord, TenantId};
use serde_json::Value;

use crate::loggen::{LogGen, Rng};
use crate::report::{self, round};

const RUNS: usize = 21;

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
    let mut batch = Vec::with_capacity(5000);
    let hits = [lines / 7, lines / 2, lines - 1];
    eprintln!("needle: {lines} lines, token {token}");
    for i in 0..lines {
        let mut line = generator.line();
        if hits.contains(&i) {
            line.push_str(&format!(" ref={token}"));
        }
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

    let req = indexer::LogQueryRequest {
        query: format!("{{job=\"bench\"}} |= \"{token}\""),
        start_ns: 0,
        end_ns: i64::MAX,
        limit: 100,
        direction: indexer::Direction::Backward,
    };
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
        ],
        Some(("ripgrep", round(rg), round(rg / ours))),
    );

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
c.close()
times.sort()
print(json.dumps({"p50_ms": times[len(times) // 2], "found": n}))
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&raw_path)
        .arg(&db)
        .arg(&token)
        .arg(RUNS.to_string())
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
