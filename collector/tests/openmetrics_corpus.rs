//! The OpenMetrics test suite (`../shared/corpora/exposition/openmetrics`, 211 cases): every good
//! case must parse and every bad one must be rejected with an error naming a line of the input.
//! Prints the pass count and fails below the recorded number.

use std::path::{Path, PathBuf};

use collector::scrape::{exposition, openmetrics};

/// Cases judged right as of the last commit; raise it when the parser improves.
const RECORDED_PASSES: usize = 211;

fn corpus() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpora/exposition/openmetrics");
    assert!(
        dir.is_dir(),
        "the shared OpenMetrics corpus is missing at {} (expected /work/shared/corpora)",
        dir.display()
    );
    dir
}

fn read(case: &str) -> String {
    let bytes = std::fs::read(corpus().join(case).join("metrics")).unwrap_or_else(|e| panic!("{case}: {e}"));
    String::from_utf8(bytes).unwrap_or_else(|e| panic!("{case}: not UTF-8: {e}"))
}

#[test]
fn openmetrics_suite_is_judged_right() {
    let table = std::fs::read_to_string(corpus().join("EXPECTED.tsv")).expect("EXPECTED.tsv");
    let (mut passed, mut total, mut wrong) = (0, 0, Vec::new());
    for row in table.lines().skip(1) {
        let mut fields = row.split('\t');
        let (case, should_parse) = (fields.next().unwrap(), fields.next() == Some("true"));
        let text = read(case);
        let result = openmetrics::parse(&text);
        let lines = text.split('\n').count().max(1);
        let right = match &result {
            Ok(_) => should_parse,
            Err(e) => {
                !should_parse && e.line >= 1 && e.line <= lines && e.to_string().contains(&format!("line {}", e.line))
            }
        };
        total += 1;
        if right {
            passed += 1;
        } else {
            wrong.push(format!("{case} (should parse: {should_parse}): {:?}", result.map(|s| s.len())));
        }
    }
    println!("openmetrics corpus: {passed}/{total} judged right");
    assert_eq!(total, 211, "the corpus should have 211 cases");
    assert!(passed >= RECORDED_PASSES, "{passed} < {RECORDED_PASSES} judged right; wrong:\n{}", wrong.join("\n"));
}

#[test]
fn good_cases_have_the_expected_samples() {
    let samples = openmetrics::parse(&read("timestamps")).unwrap();
    let ts: Vec<Option<i64>> = samples.iter().map(|s| s.timestamp_ms).collect();
    assert_eq!(ts[..3], [Some(0), Some(0), Some(1100)], "OpenMetrics timestamps are seconds");
    assert_eq!(ts[4], Some(1_500_000));
    assert_eq!(samples.last().unwrap().timestamp_ms, Some(1_234_567_890_000));

    let escaped = openmetrics::parse(&read("escaping")).unwrap();
    let values: Vec<&str> = escaped.iter().map(|s| s.labels[0].1.as_str()).collect();
    assert_eq!(values, ["b\"a\nr", "b\\a\\z", "b\"a\nr # ", "b\\a\\z # "]);

    let exemplars = openmetrics::parse(&read("exemplars_with_hash_in_label_values")).unwrap();
    assert_eq!(exemplars.len(), 3);
    assert_eq!(
        exemplars[2].labels,
        [("le".to_string(), "+Inf".to_string()), ("foo".to_string(), "bar # ".to_string())]
    );
    assert_eq!(exemplars[2].value, 3.0);

    let dupes = openmetrics::parse(&read("duplicate_timestamps_1")).unwrap();
    assert_eq!(
        dupes.iter().map(|s| s.value).collect::<Vec<_>>(),
        [1.0, 4.0],
        "samples repeated at one timestamp are kept once"
    );

    let err = openmetrics::parse(&read("bad_blank_line")).unwrap_err();
    assert_eq!(
        (err.line, err.to_string()),
        (2, "openmetrics parsing error in line 2: received blank line".to_string())
    );
}

#[test]
fn content_type_picks_the_parser() {
    let om = "a_total 1 1.5\n# EOF\n";
    let parsed =
        exposition::parse_for_content_type(Some("application/openmetrics-text; version=1.0.0; charset=utf-8"), om)
            .unwrap();
    assert_eq!(parsed[0].timestamp_ms, Some(1500));
    let text = "a 1 1500\n";
    let parsed = exposition::parse_for_content_type(Some("text/plain; version=0.0.4"), text).unwrap();
    assert_eq!(parsed[0].timestamp_ms, Some(1500), "text 0.0.4 timestamps are milliseconds");
    assert!(exposition::parse_for_content_type(None, text).is_ok());
    assert!(exposition::parse_for_content_type(Some("application/openmetrics-text"), text).is_err(), "no # EOF");
}
