//! `tarsier test-rules` gives promtool's verdicts on promtool's own unit-test files
//! (`../shared/corpora/alerts/prometheus-promtool-testdata`, verdicts from its EXPECTED.tsv).

use std::path::PathBuf;

use alerting::promtool::{TestOptions, run_file};

fn testdata() -> PathBuf {
    let dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpora/alerts/prometheus-promtool-testdata");
    assert!(dir.is_dir(), "conformance corpus missing at {}: it lives in ../shared/corpora", dir.display());
    dir
}

fn verdict(file: &str, run: &[&str], ignore_unknown_fields: bool) -> alerting::promtool::FileVerdict {
    let options = TestOptions { run: run.iter().map(|s| s.to_string()).collect(), ignore_unknown_fields };
    run_file(&testdata().join(file), &options)
}

#[test]
fn passing_files_pass() {
    for file in [
        "long-period.yml",
        "at-modifier-test.yml",
        "negative-offset-test.yml",
        "no-test-group-interval.yml",
        "start-time-test.yml",
    ] {
        let v = verdict(file, &[], false);
        assert!(v.passed(), "{}", v.report());
    }
    let v = verdict("rules_run_extrafields.yml", &[], true);
    assert!(v.passed(), "{}", v.report());
}

#[test]
fn failing_files_fail_with_the_reason() {
    for (file, reason) in [
        ("bad-input-series.yml", "input series"),
        ("bad-promql.yml", "many-to-many"),
        ("bad-rules-syntax-test.yml", "parse"),
        ("bad-rules-error-test.yml", "many-to-many"),
        ("failing.yml", "exp"),
        ("rules_run_no_fuzzy.yml", "exp"),
    ] {
        let v = verdict(file, &[], false);
        let report = v.report();
        assert!(!v.passed(), "{file} must fail:\n{report}");
        assert!(report.to_lowercase().contains(reason), "{file}: expected {reason:?} in\n{report}");
    }
    assert!(!verdict("rules_run_extrafields.yml", &[], false).passed(), "unknown fields are errors by default");
}

#[test]
fn run_selects_test_groups() {
    assert!(!verdict("rules_run.yml", &[], false).passed());
    assert!(verdict("rules_run.yml", &["correct"], false).passed());
    assert!(!verdict("rules_run.yml", &["wrong"], false).passed());
    assert!(verdict("rules_run_fuzzy.yml", &["correct"], false).passed());
    assert!(!verdict("rules_run_fuzzy.yml", &["wrong"], false).passed());
}

/// unittest.yml passes in promtool, its native-histogram groups (test_histogram,
/// test_histogram_repeat, test_histogram_increase) included.
#[test]
fn unittest_yml_passes() {
    let v = verdict("unittest.yml", &[], false);
    assert!(v.passed(), "{}", v.report());
}

/// A wrong expected histogram fails with both sides in promtool's notation.
#[test]
fn a_wrong_histogram_expectation_fails() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rules.yml"), "groups: []\n").unwrap();
    let test = r#"
rule_files: [rules.yml]
tests:
  - input_series:
      - series: h
        values: "{{sum:3 count:2 buckets:[2]}}+{{sum:1 count:1 buckets:[1]}}x2"
    promql_expr_test:
      - expr: h
        eval_time: 2m
        exp_samples:
          - labels: h
            histogram: "{{count:4 sum:6 counter_reset_hint:not_reset buckets:[4]}}"
"#;
    let path = dir.path().join("test.yml");
    std::fs::write(&path, test).unwrap();
    let v = run_file(&path, &TestOptions::default());
    let report = v.report();
    assert!(!v.passed());
    assert!(report.contains("exp: [h {{count:4 sum:6 counter_reset_hint:not_reset buckets:[4]}}]"), "{report}");
    assert!(report.contains("got: [h {{count:4 sum:5 counter_reset_hint:not_reset buckets:[4]}}]"), "{report}");
}
