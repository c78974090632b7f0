//! Differential test against a real Prometheus 2.42 (issue #6 point 8): the same samples are
//! remote_written into `tarsier server` and into `prometheus --web.enable-remote-write-receiver`,
//! then every expression of the kube-prometheus rule files plus a generated set covering the
//! language is evaluated in both at the same instants and over the same range. Answers must be
//! equal series by series (label sets, timestamps, values within float tolerance).
//!
//! Data: a live page of Debian's `prometheus-node-exporter` (as two node-exporter targets) and
//! the corpus's Prometheus self-metrics page (as `prometheus-k8s`), 40 minutes at 30 s, with
//! counters growing (some resetting) and gauges moving, so rates, histograms and `*_over_time`
//! have something to compute. Needs `apt-get install -y prometheus prometheus-node-exporter`.
//! The same setup times both systems in `tarsier-bench promql-peers`.

mod support;

use std::path::Path;

use support::promql_differential as diff;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promql_answers_equal_prometheus() {
    let client = reqwest::Client::new();
    let corpora = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpora");
    let setup = diff::setup(&client, Path::new(env!("CARGO_BIN_EXE_tarsier")), &corpora).await.unwrap();
    eprintln!("{} series, {} samples pushed into both", setup.series, setup.samples);
    let (p_answers, p_time) = diff::answer_all(&client, &setup.prometheus_base, &setup.cases).await.unwrap();
    let (t_answers, t_time) = diff::answer_all(&client, &setup.tarsier_base, &setup.cases).await.unwrap();
    let report = diff::judge(&setup.cases, &p_answers, &t_answers);
    eprintln!(
        "{} expressions ({} from the rule files), {} cases: {} pass with data, {} pass empty, {} both refuse, {} skipped, {} mismatches",
        setup.expressions,
        setup.rule_expressions,
        setup.cases.len(),
        report.passed,
        report.passed_empty,
        report.passed_error,
        report.skipped.len(),
        report.mismatches.len()
    );
    eprintln!("query time: Prometheus {p_time:?}, Tarsier {t_time:?} (debug build)");
    for s in &report.skipped {
        eprintln!("skip: {s}");
    }
    for m in &report.mismatches {
        eprintln!("MISMATCH {m}");
    }
    assert!(report.passed > 200, "too few cases with data compared: {}", report.passed);
    assert!(report.mismatches.is_empty(), "{} mismatches (listed above)", report.mismatches.len());
}
