//! Durability: what was appended is there again after the store is dropped and reopened, and a
//! random sequence of appends replays to the same contents as a simple model.

use std::collections::BTreeMap;

use model::{Labels, Sample, TenantId, TimeSeries};
use proptest::prelude::*;
use tsdb::{QueryResult, Tsdb, TsdbConfig};

fn up(job: &str) -> Labels {
    Labels::from_pairs([("__name__", "up"), ("job", job)])
}

#[test]
fn append_drop_reopen_query_returns_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let tenant = TenantId::new("acme").unwrap();
    let series: Vec<TimeSeries> = ["a", "b"]
        .iter()
        .map(|job| TimeSeries::new(up(job), (0..300).map(|i| Sample::new(i * 15_000, i as f64)).collect()))
        .collect();
    let query = r#"sum by (job) (rate(up[5m]))"#;
    let before = {
        let db = Tsdb::open(dir.path(), TsdbConfig::default()).unwrap();
        let stats = db.append(&tenant, &series).unwrap();
        assert_eq!(stats.samples_appended, 600);
        assert_eq!(stats.series_created, 2);
        db.flush().unwrap();
        db.range_query(&tenant, query, 600_000, 4_000_000, 60_000).unwrap()
    };
    let db = Tsdb::open(dir.path(), TsdbConfig::default()).unwrap();
    assert_eq!(db.range_query(&tenant, query, 600_000, 4_000_000, 60_000).unwrap(), before);
    assert!(matches!(before, QueryResult::Matrix(ref m) if m.len() == 2));
    assert_eq!(db.stats(&tenant).head_series, 2);
    assert_eq!(db.series(&tenant, &[r#"up{job="a"}"#.to_string()], 0, i64::MAX).unwrap(), vec![up("a")]);
    assert_eq!(db.label_values(&tenant, "job", &[], 0, i64::MAX).unwrap(), ["a", "b"]);
    // Tenants are isolated.
    assert!(db.series(&TenantId::default_tenant(), &[], 0, i64::MAX).unwrap().is_empty());
    drop(db);
    // Metadata lookups stop at tsdb.query_timeout like queries do.
    let config = TsdbConfig { query_timeout: std::time::Duration::from_nanos(1), ..TsdbConfig::default() };
    let db = Tsdb::open(dir.path(), config).unwrap();
    assert!(matches!(db.series(&tenant, &[], 0, i64::MAX), Err(tsdb::Error::Timeout(_))));
    assert!(matches!(db.label_names(&tenant, &[], 0, i64::MAX), Err(tsdb::Error::Timeout(_))));
}

#[test]
fn partial_rejection_keeps_accepted_samples_and_names_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let tenant = TenantId::default_tenant();
    let config = TsdbConfig {
        max_series_per_tenant: 1,
        out_of_order_window: std::time::Duration::ZERO,
        ..TsdbConfig::default()
    };
    let db = Tsdb::open(dir.path(), config).unwrap();
    let batch = vec![
        TimeSeries::new(up("a"), vec![Sample::new(2000, 1.0), Sample::new(1000, 2.0), Sample::new(3000, 3.0)]),
        TimeSeries::new(up("b"), vec![Sample::new(1000, 1.0)]),
    ];
    let stats = db.append(&tenant, &batch).unwrap();
    assert_eq!(stats.samples_appended, 2);
    assert_eq!(stats.samples_rejected, 2);
    let err = db.append(&tenant, &batch[1..]).unwrap();
    assert!(err.first_error.unwrap().contains("max_series_per_tenant"));
    drop(db);
    let db = Tsdb::open(dir.path(), TsdbConfig::default()).unwrap();
    assert_eq!(db.stats(&tenant).head_samples, 2);
}

fn histogram(t: i64, text: &str) -> model::HistogramSample {
    model::HistogramSample { timestamp_ms: t, h: model::notation::parse_histogram(text).unwrap() }
}

/// Every histogram sample the store shows for `selector`, as (labels, timestamp, histogram).
fn histograms(db: &Tsdb, tenant: &TenantId, selector: &str, at: i64) -> Vec<(String, i64, model::FloatHistogram)> {
    match db.instant_query(tenant, &format!("{selector}[100d]"), at).unwrap() {
        QueryResult::MixedMatrix(m) => m
            .into_iter()
            .flat_map(|(labels, _, hs)| hs.into_iter().map(move |s| (labels.to_string(), s.timestamp_ms, s.h)))
            .collect(),
        QueryResult::Matrix(m) => {
            assert!(m.is_empty(), "float samples where histograms were expected: {m:?}");
            Vec::new()
        }
        other => panic!("unexpected result {other:?}"),
    }
}

/// Native histograms go through the WAL: they come back after a reopen (with the counter-reset
/// hints derived again); maintenance moves those in the cut range into the block and keeps the
/// newer ones in the WAL checkpoint, although the segments they were logged in are deleted.
#[test]
fn histograms_survive_reopen_and_wal_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let tenant = TenantId::new("acme").unwrap();
    let a = Labels::from_pairs([("__name__", "rpc_seconds"), ("job", "a")]);
    let custom = Labels::from_pairs([("__name__", "rpc_seconds"), ("job", "nhcb")]);
    let db = Tsdb::open(dir.path(), TsdbConfig::default()).unwrap();
    let first = vec![
        (a.clone(), vec![histogram(60_000, "{{schema:1 sum:5 count:4 z_bucket:1 buckets:[1 2] n_buckets:[0 0]}}")]),
        (custom.clone(), vec![histogram(60_000, "{{schema:-53 sum:1 count:3 custom_values:[0.1 1] buckets:[1 1 1]}}")]),
    ];
    assert_eq!(db.append_histograms(&tenant, &first).unwrap().samples_appended, 2);
    // A second append, with a counter reset: the replayed hints must be derived the same way.
    let second = vec![(
        a.clone(),
        vec![
            histogram(120_000, "{{schema:1 sum:9 count:6 z_bucket:2 buckets:[2 2]}}"),
            histogram(180_000, "{{schema:1 sum:1 count:1 buckets:[1]}}"),
        ],
    )];
    assert_eq!(db.append_histograms(&tenant, &second).unwrap().samples_appended, 2);
    let before = histograms(&db, &tenant, "rpc_seconds", 200_000);
    assert_eq!(before.len(), 4);
    let rate_q = "histogram_quantile(0.5, rate(rpc_seconds{job=\"a\"}[2m]))";
    let rate_before = db.instant_query(&tenant, rate_q, 120_000).unwrap();
    drop(db);
    let db = Tsdb::open(dir.path(), TsdbConfig::default()).unwrap();
    assert_eq!(histograms(&db, &tenant, "rpc_seconds", 200_000), before, "after a reopen");
    assert_eq!(db.instant_query(&tenant, rate_q, 120_000).unwrap(), rate_before);
    // Floats over 6 h make maintenance cut blocks and replace the WAL segments by a checkpoint.
    let floats: Vec<TimeSeries> =
        vec![TimeSeries::new(up("a"), (0..1440).map(|i| Sample::new(i * 15_000, i as f64)).collect())];
    db.append(&tenant, &floats).unwrap();
    let newer = vec![(a.clone(), vec![histogram(5 * 3_600_000, "{{schema:1 sum:3 count:2 buckets:[2]}}")])];
    assert_eq!(db.append_histograms(&tenant, &newer).unwrap().samples_appended, 1);
    assert_eq!(db.status(&tenant, 10).head_stats.num_series, 3);
    assert!(db.maintain().unwrap().wal_truncated);
    let segments_before: Vec<_> =
        std::fs::read_dir(dir.path().join("wal")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(segments_before.iter().any(|n| n.to_string_lossy().starts_with("checkpoint.")), "{segments_before:?}");
    assert!(!segments_before.iter().any(|n| n == "00000001"), "the first segment went: {segments_before:?}");
    drop(db);
    let db = Tsdb::open(dir.path(), TsdbConfig::default()).unwrap();
    assert_eq!(histograms(&db, &tenant, "rpc_seconds", 200_000), before, "after a cut, a checkpoint and a reopen");
    let kept = histograms(&db, &tenant, "rpc_seconds", 6 * 3_600_000);
    assert_eq!(kept.iter().filter(|(_, t, _)| *t == 5 * 3_600_000).count(), 1, "the checkpoint kept the newer one");
    // Listed like float series, and within the asked time range only.
    assert_eq!(db.series(&tenant, &["rpc_seconds".into()], 0, i64::MAX).unwrap(), vec![a.clone(), custom.clone()]);
    assert_eq!(db.series(&tenant, &["rpc_seconds".into()], 100_000, 200_000).unwrap(), vec![a.clone()]);
    assert_eq!(db.label_values(&tenant, "job", &[], 0, i64::MAX).unwrap(), ["a", "nhcb"]);
    assert_eq!(
        db.status(&tenant, 10).head_stats.num_series,
        2,
        "up and the newer histogram series; the rest is in a block"
    );
}

fn dump(db: &Tsdb, tenant: &TenantId) -> BTreeMap<(String, i64), u64> {
    let mut out = BTreeMap::new();
    if let QueryResult::Matrix(m) = db.instant_query(tenant, "{__name__=~\".+\"}[1000d]", 10_000_000).unwrap() {
        for (labels, samples) in m {
            for s in samples {
                out.insert((labels.to_string(), s.timestamp_ms), s.value.to_bits());
            }
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn wal_replay_matches_a_model(
        ops in proptest::collection::vec((0usize..3, 0i64..2000, prop_oneof![any::<f64>().prop_filter("no stale", |v| !model::is_stale_nan(*v)), Just(1.0)]), 1..60),
        segment_bytes in prop_oneof![Just(4096u64), Just(1u64 << 20)],
    ) {
        let dir = tempfile::tempdir().unwrap();
        let tenant = TenantId::default_tenant();
        let config = TsdbConfig { wal_segment_bytes: segment_bytes, out_of_order_window: std::time::Duration::from_millis(500), ..TsdbConfig::default() };
        let mut model: BTreeMap<(String, i64), u64> = BTreeMap::new();
        let mut newest: BTreeMap<String, i64> = BTreeMap::new();
        {
            let db = Tsdb::open(dir.path(), config.clone()).unwrap();
            for (series, t, v) in &ops {
                let labels = up(&format!("j{series}"));
                let key = labels.to_string();
                let stats = db.append(&tenant, &[TimeSeries::new(labels, vec![Sample::new(*t, *v)])]).unwrap();
                // The model: accept if newer, or within the window and not conflicting. Older than
                // the window is rejected even when it repeats a stored sample, as in Prometheus.
                let last = newest.get(&key).copied();
                let existing = model.get(&(key.clone(), *t)).copied();
                let accept = match (last, existing) {
                    (Some(l), _) if l - *t > 500 => false,
                    (_, Some(bits)) => bits == v.to_bits(),
                    (None, None) => true,
                    (Some(l), None) => *t > l || l - *t <= 500,
                };
                prop_assert_eq!(stats.samples_appended == 1, accept, "{:?}", stats);
                if accept {
                    model.insert((key.clone(), *t), v.to_bits());
                    newest.insert(key.clone(), last.map_or(*t, |l| l.max(*t)));
                }
            }
            prop_assert_eq!(dump(&db, &tenant), model.clone());
        }
        let db = Tsdb::open(dir.path(), config).unwrap();
        prop_assert_eq!(dump(&db, &tenant), model);
    }
}
