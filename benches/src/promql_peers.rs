//! Scenario `promql-peers`: the differential query set of `tests/prom_differential.rs` (the
//! kube-prometheus rule expressions plus a generated set, at two instants and over one range)
//! timed in Tarsier and in a real Prometheus 2.42 holding the same data (issue #6: PromQL in
//! <= 0.5x Prometheus's time). Both run as their own processes; the figure that counts is each
//! server's CPU-seconds (`/proc/<pid>/stat`) over `ROUNDS` passes, since the machine is shared.
//! Needs `apt-get install -y prometheus prometheus-node-exporter` and the release `tarsier`
//! binary beside this one (`cargo build --release -p tarsier -p tarsier-benches`).

use std::path::Path;

use serde_json::Value;

use crate::report::{self, round};

#[path = "../../tests/support/promql_differential.rs"]
mod diff;

/// Passes over the whole query set per system.
const ROUNDS: usize = 3;

pub async fn run(corpora: &Path) -> anyhow::Result<()> {
    let tarsier_bin = std::env::current_exe()?.with_file_name("tarsier");
    anyhow::ensure!(
        tarsier_bin.exists(),
        "{} is missing: cargo build --release -p tarsier -p tarsier-benches",
        tarsier_bin.display()
    );
    let client = reqwest::Client::new();
    let setup = diff::setup(&client, &tarsier_bin, corpora).await?;
    eprintln!(
        "promql-peers: {} series, {} samples, {} cases x {ROUNDS} rounds",
        setup.series,
        setup.samples,
        setup.cases.len()
    );
    let mut figures = Vec::new();
    let mut answers = Vec::new();
    for (base, pid) in [(&setup.prometheus_base, setup.prometheus.pid()), (&setup.tarsier_base, setup.tarsier.pid())] {
        let cpu_before = report::proc_cpu_seconds(&pid);
        let mut wall = 0.0;
        let mut last = Vec::new();
        for _ in 0..ROUNDS {
            let (a, took) = diff::answer_all(&client, base, &setup.cases).await?;
            wall += took.as_secs_f64();
            last = a;
        }
        figures.push((report::proc_cpu_seconds(&pid) - cpu_before, wall));
        answers.push(last);
    }
    let judged = diff::judge(&setup.cases, &answers[0], &answers[1]);
    let ((p_cpu, p_wall), (t_cpu, t_wall)) = (figures[0], figures[1]);
    report::emit(
        "promql_peers",
        &[
            ("series", Value::from(setup.series)),
            ("samples", Value::from(setup.samples)),
            ("queries", Value::from(setup.cases.len() * ROUNDS)),
            ("tarsier_cpu_seconds", Value::from(round(t_cpu))),
            ("tarsier_wall_seconds", Value::from(round(t_wall))),
            ("prometheus_wall_seconds", Value::from(round(p_wall))),
            ("wall_ratio", Value::from(round(t_wall / p_wall.max(1e-9)))),
            ("cases_equal", Value::from(judged.passed + judged.passed_empty + judged.passed_error)),
            ("cases_mismatched", Value::from(judged.mismatches.len())),
        ],
        Some(("prometheus 2.42 (cpu_seconds)", round(p_cpu), round(t_cpu / p_cpu.max(1e-9)))),
    );
    Ok(())
}
