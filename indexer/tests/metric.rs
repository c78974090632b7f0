//! Pipeline stages and metric queries end to end: golden JSON for Loki's `vector` and `matrix`
//! shapes, and a property test that parser + label-filter queries (and counts over them) equal a
//! plain scan of the generated lines.

use std::time::Duration;

use indexer::{Direction, Indexer, IndexerConfig, LogQueryRequest, MetricQueryRequest};
use model::{Labels, LogRecord, TenantId};
use proptest::prelude::*;
use serde_json::json;

const BASE: i64 = 1_700_000_000_000_000_000;
const SEC: i64 = 1_000_000_000;

fn config() -> IndexerConfig {
    IndexerConfig {
        commit_interval: Duration::from_secs(3600),
        partition_duration: Duration::from_secs(3600),
        writer_memory_bytes: 15_000_000,
        out_of_order_window: Duration::from_secs(100 * 365 * 86400),
        retention: Duration::from_secs(100 * 365 * 86400),
        ..IndexerConfig::default()
    }
}

fn tenant() -> TenantId {
    TenantId::new("acme").unwrap()
}

fn record(ts: i64, job: &str, line: &str) -> LogRecord {
    LogRecord { timestamp_ns: ts, labels: Labels::from_pairs([("job", job)]), line: line.to_string() }
}

/// api: a line every 10 s from BASE (status 500 with dur=1s at odd seconds-tens); web: 3 lines.
fn fixture() -> (tempfile::TempDir, Indexer) {
    let dir = tempfile::tempdir().unwrap();
    let ix = Indexer::open(dir.path(), config()).unwrap();
    let mut records: Vec<LogRecord> = (0..6)
        .map(|i| {
            let line = if i % 2 == 1 { "status=500 dur=1s" } else { "status=200 dur=100ms" };
            record(BASE + i * 10 * SEC, "api", line)
        })
        .collect();
    records.extend((0..3).map(|i| record(BASE + (5 + i * 10) * SEC, "web", "status=200 dur=5ms")));
    ix.append(&tenant(), records).unwrap();
    ix.commit().unwrap();
    (dir, ix)
}

fn metric(ix: &Indexer, query: &str, start_s: i64, end_s: i64, step_s: i64, instant: bool) -> serde_json::Value {
    let req = MetricQueryRequest {
        query: query.into(),
        start_ns: BASE + start_s * SEC,
        end_ns: BASE + end_s * SEC,
        step_ns: step_s * SEC,
        instant,
    };
    let resp = ix.metric_query(&tenant(), &req).unwrap_or_else(|e| panic!("{query}: {e}"));
    let mut json = serde_json::to_value(&resp).unwrap();
    assert!(json["stats"]["summary"]["totalLinesProcessed"].is_u64());
    json.as_object_mut().unwrap().remove("stats");
    json
}

#[test]
fn vector_golden() {
    let (_dir, ix) = fixture();
    assert_eq!(
        metric(&ix, r#"count_over_time({job=~"api|web"}[1m])"#, 60, 60, 0, true),
        json!({"resultType": "vector", "result": [
            {"metric": {"job": "api"}, "value": [1_700_000_060, "5"]},
            {"metric": {"job": "web"}, "value": [1_700_000_060, "3"]}
        ]}),
        "the window (t-1m, t] excludes the line at exactly t-1m"
    );
    assert_eq!(
        metric(&ix, r#"rate({job="web"}[30s])"#, 30, 30, 0, true),
        json!({"resultType": "vector", "result": [{"metric": {"job": "web"}, "value": [1_700_000_030, "0.1"]}]})
    );
    assert_eq!(
        metric(&ix, r#"sum(bytes_over_time({job="web"}[1m]))"#, 60, 60, 0, true),
        json!({"resultType": "vector", "result": [{"metric": {}, "value": [1_700_000_060, "54"]}]})
    );
    assert_eq!(
        metric(&ix, r#"topk(1, count_over_time({job=~"api|web"}[1m]))"#, 60, 60, 0, true),
        json!({"resultType": "vector", "result": [{"metric": {"job": "api"}, "value": [1_700_000_060, "5"]}]})
    );
    assert_eq!(
        metric(&ix, r#"bottomk(1, count_over_time({job=~"api|web"}[1m]))"#, 60, 60, 0, true)["result"][0]["metric"],
        json!({"job": "web"})
    );
    let avg = metric(&ix, r#"avg without (job) (count_over_time({job=~"api|web"}[1m]))"#, 60, 60, 0, true);
    assert_eq!(avg["result"], json!([{"metric": {}, "value": [1_700_000_060, "4"]}]));
    let by_status =
        metric(&ix, r#"max by (status) (count_over_time({job=~"api|web"} | logfmt | drop dur [1m]))"#, 60, 60, 0, true);
    assert_eq!(
        by_status["result"],
        json!([
            {"metric": {"status": "200"}, "value": [1_700_000_060, "3"]},
            {"metric": {"status": "500"}, "value": [1_700_000_060, "3"]}
        ])
    );
    let fraction = metric(&ix, r#"count(count_over_time({job="api"}[1m]))"#, 0, 0, 0, true);
    assert_eq!(fraction["result"], json!([{"metric": {}, "value": [1_700_000_000, "1"]}]));
}

#[test]
fn matrix_golden() {
    let (_dir, ix) = fixture();
    assert_eq!(
        metric(&ix, r#"sum by (job) (count_over_time({job="api"} | logfmt | status >= 500 [20s]))"#, 20, 60, 20, false),
        json!({"resultType": "matrix", "result": [
            {"metric": {"job": "api"}, "values": [[1_700_000_020, "1"], [1_700_000_040, "1"], [1_700_000_060, "1"]]}
        ]})
    );
    assert_eq!(
        metric(&ix, r#"count_over_time({job="web"} |= "5ms" [10s])"#, 0, 30, 10, false),
        json!({"resultType": "matrix", "result": [
            {"metric": {"job": "web"}, "values": [[1_700_000_010, "1"], [1_700_000_020, "1"], [1_700_000_030, "1"]]}
        ]}),
        "steps without lines have no point"
    );
    let req = MetricQueryRequest {
        query: r#"rate({job="api"}[1m])"#.into(),
        start_ns: BASE,
        end_ns: BASE + SEC / 2,
        step_ns: SEC / 4,
        instant: false,
    };
    let json = serde_json::to_value(ix.metric_query(&tenant(), &req).unwrap()).unwrap();
    assert_eq!(json["result"][0]["values"][1], json!([1_700_000_000.25, "0.016666666666666666"]));
}

#[test]
fn counting_without_filters_reads_no_line() {
    let (_dir, ix) = fixture();
    let req = MetricQueryRequest {
        query: r#"count_over_time({job="api"}[1h])"#.into(),
        start_ns: BASE + 3600 * SEC,
        end_ns: BASE + 3600 * SEC,
        step_ns: 0,
        instant: true,
    };
    let resp = serde_json::to_value(ix.metric_query(&tenant(), &req).unwrap()).unwrap();
    assert_eq!(resp["result"][0]["value"][1], "5", "the line at exactly t-1h is outside (t-1h, t]");
    assert_eq!(resp["stats"]["summary"]["totalBytesProcessed"], 0, "fast path counts from the ts fast field");
    assert_eq!(resp["stats"]["summary"]["totalLinesProcessed"], 5);
}

#[test]
fn metric_request_errors() {
    let (_dir, ix) = fixture();
    let run = |query: &str, step_ns: i64, instant: bool| {
        let req =
            MetricQueryRequest { query: query.into(), start_ns: BASE, end_ns: BASE + 3600 * SEC, step_ns, instant };
        ix.metric_query(&tenant(), &req).unwrap_err()
    };
    let log = run(r#"{job="api"}"#, SEC, false);
    assert!(log.to_string().contains("range query type"), "{log}");
    assert_eq!(run(r#"rate({job="api"}[1m])"#, 0, false).http_status(), 400);
    assert!(run(r#"rate({job="api"}[1m])"#, SEC / 10, false).to_string().contains("maximum resolution"));
    let err = run(r#"count_over_time({job="api"} | json [1m])"#, SEC, false);
    assert_eq!(err.http_status(), 400);
    assert!(
        err.to_string().starts_with("pipeline error: 'JSONParserErr' for series: '{__error__=\"JSONParserErr\", "),
        "{err}"
    );
    assert!(err.to_string().contains(r#"(e.g | __error__!="JSONParserErr")"#), "{err}");
    let req = MetricQueryRequest {
        query: r#"count_over_time({job="api"} | json | __error__!="JSONParserErr" [1m])"#.into(),
        start_ns: BASE,
        end_ns: BASE + 60 * SEC,
        step_ns: SEC,
        instant: false,
    };
    assert_eq!(ix.metric_query(&tenant(), &req).unwrap().data, indexer::MetricData::Matrix(Vec::new()));
    let bad = run(r#"rate({job="api"}[1m]"#, SEC, false);
    assert!(bad.to_string().starts_with("parse error at line 1, col 21"), "{bad}");
}

#[test]
fn log_queries_run_the_pipeline_and_return_extracted_labels() {
    let (_dir, ix) = fixture();
    let req = LogQueryRequest {
        query: r#"{job="api"} | logfmt | dur > 250ms | line_format "status {{.status}}""#.into(),
        start_ns: BASE,
        end_ns: BASE + 3600 * SEC,
        limit: 2,
        direction: Direction::Backward,
    };
    let json = serde_json::to_value(ix.query(&tenant(), &req).unwrap()).unwrap();
    assert_eq!(
        json["result"],
        json!([{"stream": {"dur": "1s", "job": "api", "status": "500"}, "values": [
            ["1700000050000000000", "status 500"], ["1700000030000000000", "status 500"]
        ]}])
    );
}

#[derive(Clone, Debug)]
struct Line {
    status: u32,
    level: &'static str,
    size: u32,
}

fn line() -> impl Strategy<Value = Line> {
    (100u32..600, prop::sample::select(vec!["debug", "info", "warn", "error"]), 0u32..5000)
        .prop_map(|(status, level, size)| Line { status, level, size })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 10, ..ProptestConfig::default() })]

    /// Parser + label-filter queries return exactly the lines a plain scan selects, with the
    /// extracted labels, and count_over_time over the same pipeline counts them.
    #[test]
    fn pipeline_queries_equal_a_plain_scan(
        lines in prop::collection::vec(line(), 1..40),
        json_lines in any::<bool>(),
        threshold in 100u32..600,
        cmp in 0usize..4,
        level in prop::sample::select(vec!["debug", "info", "warn", "error"]),
        use_or in any::<bool>(),
        size_kb in 0u32..5,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let ix = Indexer::open(dir.path(), config()).unwrap();
        let text = |l: &Line| if json_lines {
            format!(r#"{{"status":{},"req":{{"level":"{}","size":"{}B"}}}}"#, l.status, l.level, l.size)
        } else {
            format!("status={} req_level={} req_size={}B", l.status, l.level, l.size)
        };
        let records: Vec<LogRecord> =
            lines.iter().enumerate().map(|(i, l)| record(BASE + (i as i64 + 1) * SEC, "a", &text(l))).collect();
        ix.append(&tenant(), records).unwrap();
        ix.commit().unwrap();
        let (op, holds): (&str, fn(u32, u32) -> bool) =
            [(">=", (|a, b| a >= b) as fn(u32, u32) -> bool), ("<", |a, b| a < b), ("==", |a, b| a == b), ("!=", |a, b| a != b)][cmp];
        let parser = if json_lines { "json" } else { "logfmt" };
        let combinator = if use_or { "or" } else { "and" };
        let pipeline = format!(
            r#"{{job="a"}} | {parser} | (status {op} {threshold} {combinator} req_level="{level}"), req_size <= {size_kb}KB"#
        );
        let want: Vec<(i64, String)> = lines.iter().enumerate()
            .filter(|(_, l)| {
                let a = holds(l.status, threshold);
                let b = l.level == level;
                (if use_or { a || b } else { a && b }) && l.size <= size_kb * 1000
            })
            .map(|(i, l)| (BASE + (i as i64 + 1) * SEC, text(l)))
            .collect();
        let req = LogQueryRequest {
            query: pipeline.clone(), start_ns: BASE, end_ns: BASE + 3600 * SEC, limit: 1000, direction: Direction::Forward,
        };
        let resp = ix.query(&tenant(), &req).map_err(|e| TestCaseError::fail(format!("{pipeline}: {e}")))?;
        let mut got: Vec<(i64, String)> = Vec::new();
        for s in &resp.streams {
            prop_assert!(s.labels.get("status").is_some() && s.labels.get("__error__").is_none(), "{}", s.labels);
            got.extend(s.entries.iter().map(|e| (e.timestamp_ns, e.line.clone())));
        }
        got.sort();
        prop_assert_eq!(&got, &want, "query {}", pipeline);
        let count = MetricQueryRequest {
            query: format!("sum(count_over_time({pipeline} [1h]))"),
            start_ns: BASE + 3600 * SEC, end_ns: BASE + 3600 * SEC, step_ns: 0, instant: true,
        };
        let json = serde_json::to_value(ix.metric_query(&tenant(), &count).unwrap()).unwrap();
        let counted = json["result"][0]["value"][1].as_str().map_or(0, |v| v.parse::<usize>().unwrap_or(usize::MAX));
        prop_assert_eq!(counted, want.len(), "{}", count.query);
    }
}

/// Enough candidates for the line checks to run on several threads (and more segments than
/// threads), two streams, a time range inside the partition or covering it: counts, bytes and
/// the newest lines all equal a scan. `ERROR` lines are candidates (the index is case-blind) that
/// the check must reject.
#[test]
fn common_word_counts_and_newest_lines_equal_a_scan() {
    let dir = tempfile::tempdir().unwrap();
    let ix = Indexer::open(dir.path(), config()).unwrap();
    let mut all: Vec<(i64, &str, String)> = Vec::new();
    for batch in 0..3i64 {
        let records: Vec<LogRecord> = (0..15_000i64)
            .map(|i| {
                let n = batch * 15_000 + i;
                let line = match n % 5 {
                    0 => format!("level=error n={n}"),
                    1 => format!("level=ERROR n={n}"),
                    2 => format!("errors={n}"),
                    _ => format!("level=info n={n}"),
                };
                let job = if n % 3 == 0 { "api" } else { "web" };
                all.push((BASE + n * 1_000_000, job, line.clone()));
                record(BASE + n * 1_000_000, job, &line)
            })
            .collect();
        ix.append(&tenant(), records).unwrap();
        ix.commit().unwrap();
    }
    let scan = |job: Option<&str>, lo: i64, hi: i64| -> Vec<&(i64, &str, String)> {
        all.iter()
            .filter(|(ts, j, line)| job.is_none_or(|job| *j == job) && *ts >= lo && *ts < hi && line.contains("error"))
            .collect()
    };
    let end = BASE + 45_000 * 1_000_000;
    for (selector, job) in [(r#"{job=~".+"}"#, None), (r#"{job="web"}"#, Some("web"))] {
        for (func, bytes) in [("count_over_time", false), ("bytes_over_time", true)] {
            let req = MetricQueryRequest {
                query: format!(r#"sum({func}({selector} |= "error" [1h]))"#),
                start_ns: end,
                end_ns: end,
                step_ns: 0,
                instant: true,
            };
            let resp = serde_json::to_value(ix.metric_query(&tenant(), &req).unwrap()).unwrap();
            let expected: usize =
                scan(job, 0, i64::MAX).iter().map(|(_, _, line)| if bytes { line.len() } else { 1 }).sum();
            assert_eq!(resp["result"][0]["value"][1], expected.to_string(), "{}", req.query);
        }
        for (lo, hi) in [(0, i64::MAX), (BASE + 7_000_000_000, BASE + 20_000_000_000)] {
            for direction in [Direction::Backward, Direction::Forward] {
                let req = LogQueryRequest {
                    query: format!(r#"{selector} |= "error""#),
                    start_ns: lo,
                    end_ns: hi,
                    limit: 300,
                    direction,
                };
                let resp = ix.query(&tenant(), &req).unwrap();
                let mut got: Vec<(i64, String)> = resp
                    .streams
                    .iter()
                    .flat_map(|s| s.entries.iter().map(|e| (e.timestamp_ns, e.line.clone())))
                    .collect();
                got.sort();
                let mut expected: Vec<(i64, String)> =
                    scan(job, lo, hi).into_iter().map(|(ts, _, line)| (*ts, line.clone())).collect();
                if direction == Direction::Backward {
                    expected.reverse();
                }
                expected.truncate(300);
                expected.sort();
                assert_eq!(got, expected, "{} {direction:?} [{lo}, {hi})", req.query);
            }
        }
    }
}
