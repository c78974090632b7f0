//! Exposition parser tests: the reference parser's cases from the shared corpus, real pages, and
//! a property test that formatted samples parse back.

use std::path::{Path, PathBuf};

use proptest::prelude::*;

use super::*;

fn corpus(rel: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpora");
    assert!(root.is_dir(), "the shared test corpus is missing at {} (expected /work/shared/corpora)", root.display());
    root.join(rel)
}

#[test]
fn expfmt_cases_match_expected_tsv() {
    let dir = corpus("exposition/prometheus-common-expfmt/fuzz-corpus");
    let table = std::fs::read_to_string(dir.join("EXPECTED.tsv")).unwrap();
    let mut checked = 0;
    for row in table.lines().skip(1) {
        let fields: Vec<&str> = row.split('\t').collect();
        let (file, expected, message) = (fields[0], fields[1], fields.get(2).copied().unwrap_or(""));
        let text = String::from_utf8(std::fs::read(dir.join(file)).unwrap()).unwrap();
        let result = parse(&text);
        match expected {
            "valid" => assert!(result.is_ok(), "{file}: {result:?}"),
            _ => {
                let err = result.expect_err(file);
                // The reference message names the line: "... in line N: ...".
                if let Some(line) = message.strip_prefix("text format parsing error in line ") {
                    let (number, reference) = line.split_once(':').unwrap();
                    assert_eq!(err.line.to_string(), number, "{file}: {err}");
                    let reference = reference.trim().replace("\\\"", "\"");
                    let head: String = reference.chars().take_while(|c| *c != '"').collect();
                    assert!(err.message.starts_with(head.trim()), "{file}: got {err}, reference {reference}");
                }
            }
        }
        checked += 1;
    }
    assert_eq!(checked, 26);
}

#[test]
fn expfmt_valid_case_values() {
    let dir = corpus("exposition/prometheus-common-expfmt/fuzz-corpus");
    let samples = parse(&std::fs::read_to_string(dir.join("from_test_parse_2")).unwrap()).unwrap();
    let escaped = samples.iter().find(|s| s.labels.iter().any(|(_, v)| v.contains('\n'))).unwrap();
    assert_eq!(escaped.labels[1], ("basename".to_string(), "base\"v\\al\nue".to_string()));
    assert_eq!((escaped.value, escaped.timestamp_ms), (0.23, Some(1234567890)));
    assert!(samples[0].value.is_nan());
    assert!(samples.iter().any(|s| s.name == "name2" && s.value == f64::INFINITY));
    assert!(samples.iter().any(|s| s.name == "name2" && s.value == f64::NEG_INFINITY));
}

#[test]
fn prometheus_textparse_dump_parses_completely() {
    for file in ["alltypes.237mfs.prom.txt", "alltypes.237mfs.nometa.prom.txt"] {
        let text = std::fs::read_to_string(corpus("exposition/prometheus-textparse").join(file)).unwrap();
        let expected = text.lines().filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#')).count();
        let samples = parse(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(samples.len(), expected, "{file}");
        assert!(samples.iter().any(|s| s.name.contains(':') || s.name.ends_with("_bucket")));
    }
}

#[test]
fn expfmt_text_page_parses_and_needs_its_final_newline() {
    let text = std::fs::read_to_string(corpus("exposition/prometheus-common-expfmt/text")).unwrap();
    let samples = parse(&text).unwrap();
    assert_eq!(samples.len(), text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()).count());
    let cut = text.trim_end_matches('\n');
    let err = parse(cut).unwrap_err();
    assert_eq!((err.line, err.message.as_str()), (cut.lines().count(), "unexpected end of input stream"));
}

#[test]
fn colons_timestamps_and_specials() {
    let page = "job:rate5m{a=\"x\",} 1e3 -5\nm -Inf\nn +Inf\no NaN\n";
    let samples = parse(page).unwrap();
    assert_eq!(samples[0].name, "job:rate5m");
    assert_eq!((samples[0].value, samples[0].timestamp_ms), (1000.0, Some(-5)));
    assert_eq!(samples[1].value, f64::NEG_INFINITY);
    assert!(samples[3].value.is_nan());
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

proptest! {
    #[test]
    fn formatted_samples_parse_back(
        name in "[a-zA-Z_:][a-zA-Z0-9_:]{0,12}",
        labels in proptest::collection::btree_map("[a-zA-Z_][a-zA-Z0-9_]{0,8}", "[ -~\n]{0,12}", 0..4),
        value in proptest::num::f64::NORMAL | proptest::num::f64::ZERO,
        ts in proptest::option::of(any::<i64>()),
    ) {
        let labels: Vec<(String, String)> = labels.into_iter().filter(|(n, _)| n != "__name__").collect();
        let rendered: Vec<String> = labels.iter().map(|(n, v)| format!("{n}=\"{}\"", escape(v))).collect();
        let mut line = format!("{name}{{{}}} {value:?}", rendered.join(","));
        if let Some(ts) = ts {
            line.push_str(&format!(" {ts}"));
        }
        line.push('\n');
        let parsed = parse(&line).unwrap();
        prop_assert_eq!(parsed, vec![ScrapedSample { name, labels, value, timestamp_ms: ts }]);
    }

    #[test]
    fn arbitrary_input_never_panics(text in "[ -~\n\t]{0,200}") {
        let _ = parse(&text);
    }
}

proptest! {
    /// The integer fast path of `parse_float` agrees with the general decimal parser, also for
    /// leading zeros and lengths around its 15-digit limit.
    #[test]
    fn integer_fast_path_matches_the_general_parser(n in 0u64..10_000_000_000_000_000u64, zeros in 0usize..3) {
        let text = format!("{}{n}", "0".repeat(zeros));
        prop_assert_eq!(parse_float(&text), text.parse::<f64>().ok());
    }
}
