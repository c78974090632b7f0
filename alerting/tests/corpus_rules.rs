//! Every real rule file in the shared corpus loads, and each rulefmt test file gets the verdict
//! Prometheus gives it.

use std::path::PathBuf;

fn corpus() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpora/alerts");
    assert!(
        dir.is_dir(),
        "conformance corpus missing at {}: it lives in ../shared/corpora beside the repository",
        dir.display()
    );
    dir
}

#[test]
fn every_kube_prometheus_rule_loads() {
    let dir = corpus().join("kube-prometheus/plain-rule-files");
    let mut rules = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let file = alerting::load_rule_file(&path).unwrap_or_else(|e| panic!("{e}"));
        rules += file.groups.iter().map(|g| g.rules.len()).sum::<usize>();
    }
    assert_eq!(rules, 234, "the corpus holds 234 rules");
}

#[test]
fn rulefmt_testdata_verdicts() {
    let dir = corpus().join("prometheus-rulefmt-testdata");
    let expected = std::fs::read_to_string(dir.join("EXPECTED.tsv")).unwrap();
    let mut checked = 0;
    let mut mismatches = Vec::new();
    for line in expected.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let cols: Vec<&str> = line.split('\t').collect();
        if cols.len() < 2 || cols[0] == "file" {
            continue;
        }
        let (file, verdict) = (cols[0], cols[1]);
        let scheme = match cols.get(2) {
            Some(&"legacy") => alerting::NameValidation::Legacy,
            _ => alerting::NameValidation::Utf8,
        };
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        let result = alerting::parse_rule_file_with(&text, file, scheme);
        let valid = verdict.eq_ignore_ascii_case("valid") || verdict.eq_ignore_ascii_case("ok");
        if result.is_ok() != valid {
            mismatches.push(format!("{file}: expected {verdict}, got {result:?}"));
        } else if let Err(e) = &result {
            // Prometheus's expected message, and where: `file: L:C: ...` (a position in the file).
            let message = e.to_string();
            let wanted = cols.get(3).copied().filter(|w| !w.is_empty() && !w.starts_with('('));
            let located =
                message.strip_prefix(&format!("{file}: ")).and_then(|m| m.split_once(": ")).is_some_and(|(at, _)| {
                    at.split_once(':').is_some_and(|(l, c)| l.parse::<u32>().is_ok() && c.parse::<u32>().is_ok())
                });
            if wanted.is_some_and(|w| !message.contains(w)) || !located {
                mismatches.push(format!("{file}: error {message:?} lacks {wanted:?} or a line:column"));
            }
        }
        checked += 1;
    }
    assert!(checked > 0, "EXPECTED.tsv listed no files");
    eprintln!("rulefmt verdicts: {} of {checked} as Prometheus gives them", checked - mismatches.len());
    for m in &mismatches {
        eprintln!("  mismatch: {m}");
    }
    assert!(mismatches.is_empty(), "rulefmt verdicts differ from Prometheus's:\n{}", mismatches.join("\n"));
}

/// `promtool check rules` verdicts for the plain rule files of its test data (the template check
/// included: `rules-bad.yml` uses the undefined `$label`).
#[test]
fn promtool_check_rules_verdicts() {
    let dir = corpus().join("prometheus-promtool-testdata");
    for ok in
        ["rules.yml", "rules_duplicates.yml", "prometheus-rules.lint.yml", "at-modifier.yml", "negative-offset.yml"]
    {
        alerting::load_rule_file(&dir.join(ok)).unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
    let err = alerting::load_rule_file(&dir.join("rules-bad.yml")).unwrap_err().to_string();
    assert!(err.contains("undefined variable \"$label\""), "{err}");
    assert!(alerting::load_rule_file(&dir.join("bad-rules-syntax.yml")).is_err());
}
