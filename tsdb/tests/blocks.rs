//! Blocks on disk: the head is cut into Parquet blocks that standard tools read, the WAL is
//! truncated behind them, compaction merges blocks crash-safely, retention deletes whole blocks,
//! a snapshot taken during maintenance is complete, native histograms go through cuts,
//! compaction and retention like floats, and a random mix of append/maintain/reopen matches a
//! simple model.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use model::{HistogramSample, Labels, Sample, TenantId, TimeSeries};
use proptest::prelude::*;
use tsdb::{QueryResult, Tsdb, TsdbConfig};

const HOUR: i64 = 3_600_000;

fn series(n: usize, from: i64, to: i64, step: i64) -> Vec<TimeSeries> {
    (0..n)
        .map(|i| {
            let labels = Labels::from_pairs([
                ("__name__", if i % 2 == 0 { "http_requests_total" } else { "node_load1" }),
                ("instance", &format!("host-{i:02}")),
            ]);
            let samples =
                (from / step..to / step).map(|k| Sample::new(k * step, (k * (i as i64 + 1)) as f64)).collect();
            TimeSeries::new(labels, samples)
        })
        .collect()
}

/// `n` native-histogram counter series `rpc_seconds{instance="host-NN"}` over `[from, to)`.
fn histogram_series(n: usize, from: i64, to: i64, step: i64) -> Vec<(Labels, Vec<HistogramSample>)> {
    (0..n)
        .map(|i| {
            let labels = Labels::from_pairs([("__name__", "rpc_seconds"), ("instance", &format!("host-{i:02}"))]);
            let samples = (from / step..to / step)
                .map(|k| {
                    let (a, b, c) = (k, 2 * k, k * (i as i64 + 1));
                    let text = format!("{{{{schema:0 sum:{} count:{} buckets:[{a} {b} {c}]}}}}", k * 3, a + b + c);
                    HistogramSample { timestamp_ms: k * step, h: model::notation::parse_histogram(&text).unwrap() }
                })
                .collect();
            (labels, samples)
        })
        .collect()
}

/// Every sample the store shows, keyed by series and timestamp.
fn dump(db: &Tsdb, tenant: &TenantId) -> BTreeMap<(String, i64), u64> {
    let mut out = BTreeMap::new();
    if let QueryResult::Matrix(m) = db.instant_query(tenant, "{__name__=~\".+\"}[100d]", 50 * 24 * HOUR).unwrap() {
        for (labels, samples) in m {
            for s in samples {
                out.insert((labels.to_string(), s.timestamp_ms), s.value.to_bits());
            }
        }
    }
    out
}

fn block_dirs(dir: &Path, tenant: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir.join("blocks").join(tenant))
        .map(|rd| rd.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    out.sort();
    out
}

fn dir_bytes(dir: &Path) -> u64 {
    walk(dir).iter().filter_map(|p| std::fs::metadata(p).ok()).map(|m| m.len()).sum()
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() { out.extend(walk(&p)) } else { out.push(p) }
    }
    out
}

fn min_time(block: &Path) -> i64 {
    let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(block.join("meta.json")).unwrap()).unwrap();
    meta["min_time_ms"].as_i64().unwrap()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

#[test]
fn head_is_cut_into_parquet_blocks_and_the_wal_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let tenant = TenantId::new("acme").unwrap();
    let db = Tsdb::open(dir.path(), TsdbConfig::default()).unwrap();
    db.append(&tenant, &series(6, 0, 6 * HOUR, 15_000)).unwrap();
    let before = dump(&db, &tenant);
    let rate_q = "sum by (__name__) (rate(http_requests_total[5m]))";
    let rate_before = db.range_query(&tenant, rate_q, HOUR, 5 * HOUR, 60_000).unwrap();
    let wal_before = db.stats(&tenant).wal_bytes;
    let stats = db.maintain().unwrap();
    assert_eq!(stats.blocks_written, 2, "6 h of head with 2 h blocks: [0,2h) and [2h,4h) are cut");
    assert!(stats.wal_truncated);
    let s = db.stats(&tenant);
    assert_eq!(s.blocks, 2);
    assert_eq!(s.block_samples + s.head_samples, 6 * 1440);
    assert_eq!(s.min_time_ms, Some(4 * HOUR));
    assert!(s.wal_bytes < wal_before / 2, "wal {} -> {}", wal_before, s.wal_bytes);
    assert_eq!(dump(&db, &tenant), before);
    assert_eq!(db.range_query(&tenant, rate_q, HOUR, 5 * HOUR, 60_000).unwrap(), rate_before);
    assert_eq!(db.series(&tenant, &["node_load1".into()], 0, HOUR).unwrap().len(), 3);
    assert_eq!(db.label_values(&tenant, "instance", &[], 0, HOUR).unwrap().len(), 6);
    // Samples for a range already in a block are refused, not lost silently.
    let late = db.append(&tenant, &series(1, HOUR, HOUR + 15_000, 15_000)).unwrap();
    assert_eq!(late.samples_rejected, 1);
    assert!(late.first_error.unwrap().contains("out of bounds"));
    drop(db);
    let db = Tsdb::open(dir.path(), TsdbConfig::default()).unwrap();
    assert_eq!(db.stats(&tenant).head_samples, 6 * 480, "restart replays only the head");
    assert_eq!(dump(&db, &tenant), before);
}

/// A scraper keeps each series' `Labels` (shared with the head's index) across scrapes. When a
/// head cut drops a series the scraper still holds, the next append with those same shared labels
/// must create the series again, under those labels, and never land in another series.
#[test]
fn shared_labels_of_a_series_dropped_by_a_head_cut_append_to_the_right_series() {
    let dir = tempfile::tempdir().unwrap();
    let tenant = TenantId::new("acme").unwrap();
    let db = Tsdb::open(dir.path(), TsdbConfig::default()).unwrap();
    let live = Labels::from_pairs([("__name__", "up"), ("instance", "a")]);
    let gone = Labels::from_pairs([("__name__", "up"), ("instance", "b")]);
    let at = |labels: &Labels, t: i64, v: f64| TimeSeries::new(labels.clone(), vec![Sample::new(t, v)]);
    let mut first: Vec<TimeSeries> = (0..5 * 60).map(|m| at(&live, m * 60_000, 1.0)).collect();
    first.push(at(&gone, 0, 7.0));
    assert_eq!(db.append(&tenant, &first).unwrap().series_created, 2);
    db.maintain().unwrap();
    assert_eq!(db.stats(&tenant).head_series, 1, "the cut dropped instance b from the head");
    let again = db.append(&tenant, &[at(&gone, 5 * HOUR, 42.0), at(&live, 5 * HOUR, 2.0)]).unwrap();
    assert_eq!((again.series_created, again.samples_appended, again.samples_rejected), (1, 2, 0));
    let samples = dump(&db, &tenant);
    let b = gone.to_string();
    assert_eq!(samples.get(&(b.clone(), 0)), Some(&7f64.to_bits()), "the block keeps the old sample");
    assert_eq!(samples.get(&(b.clone(), 5 * HOUR)), Some(&42f64.to_bits()));
    assert_eq!(samples.get(&(live.to_string(), 5 * HOUR)), Some(&2f64.to_bits()));
    assert_eq!(samples.keys().filter(|(s, _)| *s == b).count(), 2, "nothing else landed in instance b");
    assert_eq!(db.series(&tenant, &["up".into()], 5 * HOUR, 5 * HOUR).unwrap(), vec![live.clone(), gone.clone()]);
    // The same labels keep finding their series: a third append creates nothing.
    let third = db.append(&tenant, &[at(&gone, 5 * HOUR + 60_000, 43.0)]).unwrap();
    assert_eq!((third.series_created, third.samples_appended), (0, 1));
}

#[test]
fn blocks_are_readable_by_pyarrow() {
    let probe = Command::new("python3").args(["-c", "import pyarrow"]).status();
    assert!(
        probe.is_ok_and(|s| s.success()),
        "pyarrow is missing: install it with `pip install pyarrow` (scripts/test.sh does)"
    );
    let dir = tempfile::tempdir().unwrap();
    let tenant = TenantId::new("acme").unwrap();
    let db = Tsdb::open(dir.path(), TsdbConfig::default()).unwrap();
    let mut input = series(4, 0, 4 * HOUR, 60_000);
    // Eighths need three decimal places; 0.1 + 0.2 (17 significant digits) fits none, so it stays
    // a float beside the mantissas.
    let ratio: Vec<Sample> =
        (0..120).map(|k| Sample::new(k * 60_000, if k == 7 { 0.1 + 0.2 } else { k as f64 / 8.0 })).collect();
    input.push(TimeSeries::new(Labels::from_pairs([("__name__", "ratio"), ("instance", "host-99")]), ratio));
    db.append(&tenant, &input).unwrap();
    db.append_histograms(&tenant, &histogram_series(2, 0, 4 * HOUR, 60_000)).unwrap();
    db.maintain().unwrap();
    let blocks = block_dirs(dir.path(), "acme");
    assert_eq!(blocks.len(), 1);
    let script = r#"
import json, sys
import pyarrow.parquet as pq
d = sys.argv[1]
series = pq.read_table(d + "/series.parquet").to_pylist()
samples = pq.read_table(d + "/samples.parquet")
meta = pq.ParquetFile(d + "/samples.parquet").metadata.row_group(0)
encodings = {meta.column(i).path_in_schema: sorted(meta.column(i).encodings) for i in range(meta.num_columns)}
ids = samples.column("series_id").to_pylist()
ts = samples.column("timestamp_ms").to_pylist()
floats = samples.column("value").to_pylist()
mantissas = samples.column("mantissa").to_pylist()
out = {}
for s in series:
    labels = dict(s["labels"])
    rows = range(s["first_row"], s["first_row"] + s["rows"])
    # The documented decoding (tsdb/BLOCKS.md): a float where present, else mantissa / 10^exponent.
    vs = {r: floats[r] if floats[r] is not None else mantissas[r] / 10 ** s["value_exponent"] for r in rows}
    assert all(ids[r] == s["series_id"] for r in rows)
    out[labels["instance"]] = {"name": labels["__name__"], "n": len(rows), "t0": ts[rows[0]], "v_last": vs[rows[-1]],
                               "sum": sum(vs[r] for r in rows)}
    out[labels["instance"]]["values"] = [vs[r] for r in rows]
    out[labels["instance"]]["exponent"] = s["value_exponent"]
# Native histograms (tsdb/BLOCKS.md): their own series file and one row per sample.
meta = json.load(open(d + "/meta.json"))["histograms"]
hseries = pq.read_table(d + "/" + meta["series_file"]).to_pylist()
hsamples = pq.read_table(d + "/" + meta["samples_file"]).to_pydict()
hist = {}
for s in hseries:
    rows = range(s["first_row"], s["first_row"] + s["rows"])
    assert all(hsamples["series_id"][r] == s["series_id"] for r in rows)
    hist[dict(s["labels"])["instance"]] = {"n": len(rows), "t_last": hsamples["timestamp_ms"][rows[-1]],
        "count_last": hsamples["count"][rows[-1]], "sum_total": sum(hsamples["sum"][r] for r in rows),
        "bytes": min(len(hsamples["histogram"][r]) for r in rows)}
print(json.dumps({"series": out, "encodings": encodings, "histograms": hist, "histograms_meta": meta}))
"#;
    let out = Command::new("python3").args(["-c", script]).arg(&blocks[0]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for i in 0..4i64 {
        let s = &got["series"][format!("host-{i:02}")];
        assert_eq!(s["n"], 120, "{got}");
        assert_eq!(s["t0"], 0);
        assert_eq!(s["v_last"].as_f64().unwrap(), (119 * (i + 1)) as f64);
        assert_eq!(s["sum"].as_f64().unwrap(), ((0..120).sum::<i64>() * (i + 1)) as f64);
        assert_eq!(s["name"], if i % 2 == 0 { "http_requests_total" } else { "node_load1" });
        assert_eq!(s["exponent"], 0, "integers need no decimal places: {got}");
    }
    let ratio = &got["series"]["host-99"];
    assert_eq!(ratio["exponent"], 3, "{ratio}");
    let values: Vec<f64> = ratio["values"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    assert_eq!(values.len(), 120);
    for (k, v) in values.iter().enumerate() {
        let want = if k == 7 { 0.1 + 0.2 } else { k as f64 / 8.0 };
        assert_eq!(v.to_bits(), want.to_bits(), "sample {k}: pyarrow read {v}, stored {want}");
    }
    let hist = &got["histograms"];
    assert_eq!(got["histograms_meta"]["series"], 2, "{got}");
    for i in 0..2i64 {
        let h = &hist[format!("host-{i:02}")];
        assert_eq!(h["n"], 120, "{hist}");
        assert_eq!(h["t_last"], 119 * 60_000);
        assert_eq!(h["count_last"].as_f64().unwrap(), (119 * (3 + i + 1)) as f64, "{hist}");
        assert_eq!(h["sum_total"].as_f64().unwrap(), (3 * (0..120).sum::<i64>()) as f64);
        assert!(h["bytes"].as_u64().unwrap() >= 40, "every row holds an encoded histogram: {hist}");
    }
    let enc = got["encodings"].to_string();
    // The documented encodings (tsdb/BLOCKS.md): delta-packed ids, byte-stream-split timestamps and
    // mantissas, plain floats.
    assert_eq!(got["encodings"]["series_id"][0], "DELTA_BINARY_PACKED", "{enc}");
    assert_eq!(got["encodings"]["timestamp_ms"][0], "BYTE_STREAM_SPLIT", "{enc}");
    assert_eq!(got["encodings"]["mantissa"][0], "BYTE_STREAM_SPLIT", "{enc}");
    assert_eq!(got["encodings"]["value"][0], "PLAIN", "{enc}");
}

fn small_blocks() -> TsdbConfig {
    TsdbConfig {
        block_duration: Duration::from_secs(3600),
        max_block_duration: Duration::from_secs(9 * 3600),
        ..TsdbConfig::default()
    }
}

#[test]
fn compaction_merges_adjacent_blocks_and_survives_crashes_between_steps() {
    let dir = tempfile::tempdir().unwrap();
    let tenant = TenantId::new("acme").unwrap();
    let no_compaction = TsdbConfig { compaction: false, ..small_blocks() };
    let db = Tsdb::open(dir.path(), no_compaction.clone()).unwrap();
    db.append(&tenant, &series(3, 0, 8 * HOUR, 30_000)).unwrap();
    let before = dump(&db, &tenant);
    db.maintain().unwrap();
    assert_eq!(db.stats(&tenant).blocks, 7, "1 h blocks [0,7h); the head keeps [7h,8h)");
    let small: Vec<PathBuf> = block_dirs(dir.path(), "acme");
    let saved = tempfile::tempdir().unwrap();
    for b in &small {
        copy_dir(b, &saved.path().join(b.file_name().unwrap()));
    }
    drop(db);

    // Crash before the merged block was renamed into place: a partial .tmp dir is ignored.
    let partial = dir.path().join("blocks/acme/.tmp-b0_10800000_dead");
    std::fs::create_dir_all(&partial).unwrap();
    std::fs::write(partial.join("samples.parquet"), b"half a file").unwrap();
    let db = Tsdb::open(dir.path(), no_compaction).unwrap();
    assert!(!partial.exists());
    assert_eq!(db.stats(&tenant).blocks, 7);
    assert_eq!(dump(&db, &tenant), before);
    drop(db);

    let db = Tsdb::open(dir.path(), small_blocks()).unwrap();
    let stats = db.maintain().unwrap();
    assert_eq!(stats.blocks_compacted, 6, "[0,3h) and [3h,6h) each merge three blocks");
    let s = db.stats(&tenant);
    assert_eq!(s.blocks, 3, "[0,3h), [3h,6h) and [6h,7h), which waits for its window to fill");
    assert_eq!(dump(&db, &tenant), before);
    drop(db);
    let small: Vec<PathBuf> = small.into_iter().filter(|b| !b.exists()).collect();
    assert_eq!(small.len(), 6, "sources are deleted");

    // Crash after the merged blocks were durable but before the sources were deleted.
    for b in &small {
        copy_dir(&saved.path().join(b.file_name().unwrap()), b);
    }
    assert_eq!(block_dirs(dir.path(), "acme").len(), 9);
    let db = Tsdb::open(dir.path(), small_blocks()).unwrap();
    assert_eq!(db.stats(&tenant).blocks, 3);
    assert_eq!(block_dirs(dir.path(), "acme").len(), 3);
    assert_eq!(dump(&db, &tenant), before);
}

/// `tarsier snapshot` (`Tsdb::snapshot`) while maintenance cuts the head into blocks and compacts
/// them: every snapshot, opened as a store of its own, holds every sample exactly once. A cut
/// moves samples from the head into a new block; a snapshot pairing the block list from before a
/// cut with the head from after it would miss them.
#[test]
fn a_snapshot_taken_during_cuts_and_compaction_holds_every_sample() {
    let dir = tempfile::tempdir().unwrap();
    let tenant = TenantId::new("acme").unwrap();
    let db = std::sync::Arc::new(Tsdb::open(dir.path(), small_blocks()).unwrap());
    db.append(&tenant, &series(6, 0, 14 * HOUR, 15_000)).unwrap();
    let expected = dump(&db, &tenant);
    let out = tempfile::tempdir().unwrap();
    let maintenance = {
        let db = db.clone();
        std::thread::spawn(move || db.maintain().unwrap())
    };
    let mut taken = 0;
    loop {
        let finished = maintenance.is_finished();
        db.snapshot(&tenant, &out.path().join(format!("s{taken}/blocks/acme"))).unwrap();
        taken += 1;
        if finished {
            break;
        }
    }
    let stats = maintenance.join().unwrap();
    assert!(stats.blocks_written >= 10 && stats.blocks_compacted > 0, "{stats:?}");
    for i in 0..taken {
        let copy =
            Tsdb::open(&out.path().join(format!("s{i}")), TsdbConfig { compaction: false, ..small_blocks() }).unwrap();
        let got = dump(&copy, &tenant);
        assert_eq!(got.len(), expected.len(), "snapshot {i} of {taken}: sample count");
        assert!(got == expected, "snapshot {i} of {taken} differs");
    }
}

#[test]
fn retention_deletes_whole_blocks_by_age_and_by_size() {
    let dir = tempfile::tempdir().unwrap();
    let tenant = TenantId::new("acme").unwrap();
    let config = TsdbConfig { retention: Duration::from_secs(4 * 3600), compaction: false, ..small_blocks() };
    let db = Tsdb::open(dir.path(), config).unwrap();
    db.append(&tenant, &series(3, 0, 10 * HOUR, 30_000)).unwrap();
    let stats = db.maintain().unwrap();
    assert_eq!(stats.blocks_written, 9, "[0,9h) in 1 h blocks; the head keeps [9h,10h)");
    // The newest sample is 10h-30s, so 4 h retention starts at 6h-30s: blocks ending by 5 h go.
    assert_eq!(stats.blocks_deleted, 5);
    let blocks = block_dirs(dir.path(), "acme");
    assert_eq!(blocks.len(), 4);
    let d = dump(&db, &tenant);
    assert!(d.keys().all(|(_, t)| *t >= 6 * HOUR - 30_000));
    assert!(d.keys().any(|(_, t)| *t == 6 * HOUR - 30_000));
    drop(db);

    let dir = tempfile::tempdir().unwrap();
    let db = Tsdb::open(dir.path(), TsdbConfig { compaction: false, ..small_blocks() }).unwrap();
    db.append(&tenant, &series(3, 0, 10 * HOUR, 30_000)).unwrap();
    db.maintain().unwrap();
    let mut sizes: Vec<(i64, u64)> =
        block_dirs(dir.path(), "acme").iter().map(|b| (min_time(b), dir_bytes(b))).collect();
    sizes.sort();
    assert_eq!(sizes.len(), 9);
    drop(db);
    let limit = sizes[6..].iter().map(|(_, b)| b).sum::<u64>() + sizes[5].1 / 2;
    let config = TsdbConfig { retention_size_bytes: limit, compaction: false, ..small_blocks() };
    let db = Tsdb::open(dir.path(), config).unwrap();
    assert_eq!(db.maintain().unwrap().blocks_deleted, 6);
    drop(db);
    assert!(dir_bytes(&dir.path().join("blocks")) <= limit);
    let left = block_dirs(dir.path(), "acme");
    assert_eq!(left.len(), 3);
    let mut kept: Vec<i64> = left.iter().map(|b| min_time(b)).collect();
    kept.sort();
    assert_eq!(kept, [6 * HOUR, 7 * HOUR, 8 * HOUR], "the newest stay");
}

#[derive(Debug, Clone)]
enum Op {
    Append { series: usize, step_s: i64, late_s: i64 },
    Maintain,
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0..3usize, 1..400i64, 0..40i64).prop_map(|(series, step_s, late_s)| Op::Append { series, step_s, late_s }),
        2 => Just(Op::Maintain),
        1 => Just(Op::Reopen),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]
    #[test]
    fn append_maintain_reopen_matches_a_model(ops in proptest::collection::vec(op(), 1..60)) {
        let config = TsdbConfig {
            block_duration: Duration::from_secs(600),
            max_block_duration: Duration::from_secs(5400),
            out_of_order_window: Duration::from_secs(60),
            ..TsdbConfig::default()
        };
        let dir = tempfile::tempdir().unwrap();
        let tenant = TenantId::new("p").unwrap();
        let mut db = Tsdb::open(dir.path(), config.clone()).unwrap();
        let mut model: BTreeMap<(String, i64), u64> = BTreeMap::new();
        let mut now = 0i64;
        for (i, op) in ops.iter().enumerate() {
            match op {
                Op::Append { series, step_s, late_s } => {
                    now += step_s * 1000;
                    let t = now - late_s * 1000;
                    let labels = Labels::from_pairs([("__name__", "m"), ("s", &series.to_string())]);
                    let v = (i * 7) as f64;
                    let stats = db.append(&tenant, &[TimeSeries::new(labels.clone(), vec![Sample::new(t, v)])]).unwrap();
                    if stats.samples_appended == 1 {
                        model.entry((labels.to_string(), t)).or_insert(v.to_bits());
                    }
                }
                Op::Maintain => { db.maintain().unwrap(); }
                Op::Reopen => {
                    drop(db);
                    db = Tsdb::open(dir.path(), config.clone()).unwrap();
                }
            }
            prop_assert_eq!(&dump(&db, &tenant), &model, "after op {} {:?}", i, op);
        }
    }
}

fn meta_json(block: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(block.join("meta.json")).unwrap()).unwrap()
}

/// Histogram-only tenant: its head is cut into blocks (the histograms in `histograms.parquet`),
/// the WAL is truncated behind them, PromQL over a range spanning blocks and head answers as
/// before the cut and after a reopen, compaction keeps every sample, and retention drops them
/// with their blocks.
#[test]
fn histograms_are_cut_into_blocks_compacted_and_dropped_by_retention() {
    let dir = tempfile::tempdir().unwrap();
    let tenant = TenantId::new("nh").unwrap();
    let no_compaction = TsdbConfig { compaction: false, ..small_blocks() };
    let db = Tsdb::open(dir.path(), no_compaction.clone()).unwrap();
    let input = histogram_series(3, 0, 5 * HOUR, 60_000);
    assert_eq!(db.append_histograms(&tenant, &input).unwrap().samples_appended, 3 * 300);
    let queries = [
        "histogram_count(rpc_seconds)",
        "histogram_quantile(0.5, rpc_seconds)",
        "histogram_count(rate(rpc_seconds[5m]))",
        "histogram_quantile(0.9, sum(rate(rpc_seconds[10m])))",
    ];
    let answers = |db: &Tsdb| -> Vec<QueryResult> {
        queries.iter().map(|q| db.range_query(&tenant, q, 10 * 60_000, 5 * HOUR, 5 * 60_000).unwrap()).collect()
    };
    let before = answers(&db);
    for (q, a) in queries.iter().zip(&before) {
        assert!(matches!(a, QueryResult::Matrix(m) if !m.is_empty()), "{q}: {a:?}");
    }
    let wal_before = db.stats(&tenant).wal_bytes;
    let stats = db.maintain().unwrap();
    assert_eq!(stats.blocks_written, 4, "[0,4h) in 1 h blocks; the head keeps [4h,5h)");
    assert_eq!(stats.samples_moved, 3 * 240);
    assert!(stats.wal_truncated);
    assert!(db.stats(&tenant).wal_bytes < wal_before / 2, "wal {wal_before} -> {}", db.stats(&tenant).wal_bytes);
    let blocks = block_dirs(dir.path(), "nh");
    assert_eq!(blocks.len(), 4);
    for b in &blocks {
        let meta = meta_json(b);
        assert_eq!(meta["histograms"]["series"], 3, "{meta}");
        assert_eq!(meta["histograms"]["samples"], 3 * 60, "{meta}");
        assert_eq!(meta["samples"], 0);
        assert!(b.join("histograms.parquet").exists() && b.join("histogram_series.parquet").exists());
    }
    assert_eq!(answers(&db), before, "blocks + head answer as the head did");
    // A late sample for a range already in a block is refused, not lost in a later cut.
    let late = histogram_series(1, HOUR, HOUR + 60_000, 60_000);
    let refused = db.append_histograms(&tenant, &late).unwrap();
    assert_eq!((refused.samples_appended, refused.samples_rejected), (0, 1));
    let reason = refused.first_error.unwrap();
    assert!(reason.contains("out of bounds") && reason.contains("rpc_seconds"), "{reason}");
    assert_eq!(db.series(&tenant, &["rpc_seconds".into()], 0, HOUR).unwrap().len(), 3, "listed from blocks");
    // A snapshot (blocks + head as one block) holds them all.
    let out = tempfile::tempdir().unwrap();
    db.snapshot(&tenant, &out.path().join("blocks/nh")).unwrap();
    let copy = Tsdb::open(out.path(), TsdbConfig { compaction: false, ..small_blocks() }).unwrap();
    assert_eq!(answers(&copy), before, "from a snapshot");
    drop((copy, db));

    let db = Tsdb::open(dir.path(), no_compaction).unwrap();
    assert_eq!(answers(&db), before, "after a reopen");
    assert_eq!(db.status(&tenant, 10).head_stats.num_series, 3, "the head holds [4h,5h) only");
    drop(db);

    let db = Tsdb::open(dir.path(), small_blocks()).unwrap();
    let stats = db.maintain().unwrap();
    assert_eq!(stats.blocks_compacted, 3, "[0,3h) merges three blocks");
    let blocks = block_dirs(dir.path(), "nh");
    assert_eq!(blocks.len(), 2);
    assert_eq!(meta_json(&blocks[0])["histograms"]["samples"], 3 * 180);
    assert_eq!(answers(&db), before, "after compaction");
    drop(db);

    // 90 min retention from the newest sample (5h-1m): [0,3h) ends before 3.5h-1m and goes.
    let config = TsdbConfig { retention: Duration::from_secs(90 * 60), ..small_blocks() };
    let db = Tsdb::open(dir.path(), config).unwrap();
    assert_eq!(db.maintain().unwrap().blocks_deleted, 1);
    assert_eq!(block_dirs(dir.path(), "nh").len(), 1);
    let QueryResult::Matrix(m) = db.range_query(&tenant, queries[0], 0, 5 * HOUR, 60_000).unwrap() else {
        panic!("not a matrix")
    };
    let first = m.iter().filter_map(|(_, s)| s.first()).map(|s| s.timestamp_ms).min();
    assert_eq!(first, Some(3 * HOUR), "the oldest histogram left is the first of [3h,4h)");
    assert_eq!(db.series(&tenant, &["rpc_seconds".into()], 0, 3 * HOUR - 60_000).unwrap().len(), 0);
}

/// The block-size experiment (issue #6, bytes per sample): writes one block and prints what each
/// column costs per sample, so an encoding idea is measured in seconds instead of a full
/// `scrape-peers` run, and checks the block reads back bit-exactly. By default the block holds
/// generated node_exporter-shaped series; `TSDB_BLOCK_DUMP` names a Prometheus API matrix dump to
/// use instead, from any Prometheus-compatible server that scraped node_exporters:
///   curl -s http://HOST/api/v1/query --data-urlencode 'query={__name__=~".+"}[130s]' > dump.json
///   TSDB_BLOCK_DUMP=dump.json cargo test --workspace --test blocks -- --nocapture block_bytes
#[test]
fn block_bytes_per_column_of_a_dump() {
    let input = match std::env::var("TSDB_BLOCK_DUMP") {
        Ok(path) => matrix_dump(&path),
        Err(_) => scrape_shaped_series(),
    };
    let expected: BTreeMap<(String, i64), u64> = input
        .iter()
        .flat_map(|s| s.samples.iter().map(move |x| ((s.labels.to_string(), x.timestamp_ms), x.value.to_bits())))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let meta = tsdb::block::BlockMeta {
        version: 0,
        tenant: "t".into(),
        min_time_ms: i64::MIN,
        max_time_ms: i64::MAX,
        series: 0,
        samples: 0,
        compacted_from: Vec::new(),
        histograms: None,
    };
    let started = std::time::Instant::now();
    let block = tsdb::block::write_block(dir.path(), "b", meta, input).unwrap();
    let write = started.elapsed();
    let meta = tsdb::block::read_meta(&block).unwrap().unwrap();
    let n = meta.samples as f64;
    let columns = tsdb::block::column_bytes(&block).unwrap();
    let total = dir_bytes(&block);
    println!("{} series, {} samples, written in {write:?}", meta.series, meta.samples);
    for (column, bytes) in &columns {
        println!("{column:40} {:.4} bytes/sample", *bytes as f64 / n);
    }
    println!("{:40} {:.4} bytes/sample (meta.json included)", "block", total as f64 / n);
    let opened = tsdb::block::Block::open(&block, meta).unwrap();
    // Read speed, the fastest of 5 rounds (the machine is shared).
    let fastest = |f: &dyn Fn()| {
        (0..5)
            .map(|_| {
                let started = std::time::Instant::now();
                f();
                started.elapsed()
            })
            .min()
            .unwrap()
    };
    let all = opened.read_all().unwrap();
    println!("read_all {:?}", fastest(&|| drop(opened.read_all().unwrap())));
    let ids: Vec<u32> = (0..all.len() as u32).step_by(97).collect();
    let one_by_one = fastest(&|| ids.iter().for_each(|&id| drop(opened.read(&[id], i64::MIN, i64::MAX).unwrap())));
    println!("read one series: {:?} each", one_by_one / ids.len() as u32);
    let got: BTreeMap<(String, i64), u64> = all
        .iter()
        .flat_map(|s| s.samples.iter().map(move |x| ((s.labels.to_string(), x.timestamp_ms), x.value.to_bits())))
        .collect();
    assert!(got == expected, "the block does not read back the dump bit-exactly");
}

/// The series of a Prometheus API matrix dump (`/api/v1/query` of a range selector).
fn matrix_dump(path: &str) -> Vec<tsdb::block::SeriesData> {
    let dump: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let mut input = Vec::new();
    for r in dump["data"]["result"].as_array().expect("a matrix result") {
        let labels = r["metric"].as_object().unwrap();
        let labels = Labels::from_pairs(labels.iter().map(|(k, v)| (k.as_str(), v.as_str().unwrap())));
        let samples = r["values"].as_array().unwrap().iter().map(|p| {
            let t = (p[0].as_f64().unwrap() * 1000.0).round() as i64;
            Sample::new(t, p[1].as_str().unwrap().parse::<f64>().unwrap())
        });
        input.push(tsdb::block::SeriesData { labels, samples: samples.collect() });
    }
    input
}

/// Series shaped like 130 s of node_exporter scraped every second: counters, decimal gauges and
/// nanosecond-noisy durations, with scrape timestamps a few milliseconds late now and then.
fn scrape_shaped_series() -> Vec<tsdb::block::SeriesData> {
    let mut noise = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        noise ^= noise << 13;
        noise ^= noise >> 7;
        noise ^= noise << 17;
        noise
    };
    let mut input = Vec::new();
    for i in 0..300usize {
        let kind = ["node_cpu_seconds_total", "node_memory_bytes", "node_scrape_collector_duration_seconds"][i % 3];
        let labels = Labels::from_pairs([
            ("__name__", kind),
            ("instance", &format!("127.0.0.1:{}", 9100 + i % 10)),
            ("job", "node"),
            ("series", &i.to_string()),
        ]);
        let mut counter = 0.0f64;
        let samples = (0..130i64)
            .map(|k| {
                let late = if next() % 5 == 0 { (next() % 4) as i64 } else { 0 };
                let t = 1_764_000_000_000 + k * 1000 + late;
                let value = match i % 3 {
                    0 => {
                        counter += (next() % 100) as f64 / 100.0;
                        (counter * 100.0).round() / 100.0
                    }
                    1 => (8_000_000_000 + (next() % 4096) * 4096) as f64,
                    _ => (next() % 5_000_000) as f64 / 1e9,
                };
                Sample::new(t, value)
            })
            .collect();
        input.push(tsdb::block::SeriesData { labels, samples });
    }
    input
}
