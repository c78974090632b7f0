//! Relabeling table tests: the cases of Prometheus's `model/relabel/relabel_test.go` (TestRelabel,
//! TestRelabelValidate, TestTargetLabelValidity), one or more per action, plus a property test.

use proptest::prelude::*;

use super::*;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    Labels::from_pairs(pairs.iter().copied())
}

fn steps(json: &str) -> Vec<Relabeler> {
    let configs: Vec<RelabelConfig> = serde_json::from_str(json).unwrap();
    compile_all(&configs).unwrap()
}

/// (name, input, steps as JSON, expected output or None when dropped)
type Case = (
    &'static str,
    &'static [(&'static str, &'static str)],
    &'static str,
    Option<&'static [(&'static str, &'static str)]>,
);

const CASES: &[Case] = &[
    (
        "replace with ${1}",
        &[("a", "foo"), ("b", "bar"), ("c", "baz")],
        r#"[{"source_labels":["a"],"regex":"f(.*)","target_label":"d","replacement":"ch${1}-ch${1}"}]"#,
        Some(&[("a", "foo"), ("b", "bar"), ("c", "baz"), ("d", "choo-choo")]),
    ),
    (
        "replace chained over two sources",
        &[("a", "foo"), ("b", "bar"), ("c", "baz")],
        r#"[{"source_labels":["a","b"],"regex":"f(.*);(.*)r","target_label":"a","replacement":"b${1}${2}m"},
            {"source_labels":["c","a"],"regex":"(b).*b(.*)ba(.*)","target_label":"d","replacement":"$1$2$2$3"}]"#,
        Some(&[("a", "boobam"), ("b", "bar"), ("c", "baz"), ("d", "boooom")]),
    ),
    (
        "drop before replace",
        &[("a", "foo")],
        r#"[{"source_labels":["a"],"regex":".*o.*","action":"drop"},
            {"source_labels":["a"],"regex":"f(.*)","target_label":"d","replacement":"ch$1-ch$1"}]"#,
        None,
    ),
    ("drop", &[("a", "foo"), ("b", "bar")], r#"[{"source_labels":["a"],"regex":".*o.*","action":"drop"}]"#, None),
    (
        "replace with a group in the middle",
        &[("a", "abc")],
        r#"[{"source_labels":["a"],"regex":".*(b).*","target_label":"d","replacement":"$1"}]"#,
        Some(&[("a", "abc"), ("d", "b")]),
    ),
    (
        "drop without match",
        &[("a", "foo")],
        r#"[{"source_labels":["a"],"regex":"no-match","action":"drop"}]"#,
        Some(&[("a", "foo")]),
    ),
    (
        "drop regex is anchored",
        &[("a", "foo")],
        r#"[{"source_labels":["a"],"regex":"f|o","action":"drop"}]"#,
        Some(&[("a", "foo")]),
    ),
    ("keep without match", &[("a", "foo")], r#"[{"source_labels":["a"],"regex":"no-match","action":"keep"}]"#, None),
    (
        "keep with match",
        &[("a", "foo")],
        r#"[{"source_labels":["a"],"regex":"f.*","action":"keep"}]"#,
        Some(&[("a", "foo")]),
    ),
    (
        "no replacement without a match",
        &[("a", "boo")],
        r#"[{"source_labels":["a"],"regex":"f","target_label":"b","replacement":"bar"}]"#,
        Some(&[("a", "boo")]),
    ),
    (
        "hashmod",
        &[("a", "foo"), ("b", "bar"), ("c", "baz")],
        r#"[{"source_labels":["c"],"target_label":"d","action":"hashmod","modulus":1000}]"#,
        Some(&[("a", "foo"), ("b", "bar"), ("c", "baz"), ("d", "976")]),
    ),
    (
        "hashmod of a value with a newline",
        &[("a", "foo\nbar")],
        r#"[{"source_labels":["a"],"target_label":"b","action":"hashmod","modulus":1000}]"#,
        Some(&[("a", "foo\nbar"), ("b", "734")]),
    ),
    (
        "labelmap",
        &[("a", "foo"), ("b1", "bar"), ("b2", "baz")],
        r#"[{"regex":"(b.*)","replacement":"bar_${1}","action":"labelmap"}]"#,
        Some(&[("a", "foo"), ("b1", "bar"), ("b2", "baz"), ("bar_b1", "bar"), ("bar_b2", "baz")]),
    ),
    (
        "labelmap of meta labels",
        &[("a", "foo"), ("__meta_my_bar", "aaa"), ("__meta_my_baz", "bbb"), ("__meta_other", "ccc")],
        r#"[{"regex":"__meta_(my.*)","replacement":"${1}","action":"labelmap"}]"#,
        Some(&[
            ("a", "foo"),
            ("__meta_my_bar", "aaa"),
            ("__meta_my_baz", "bbb"),
            ("__meta_other", "ccc"),
            ("my_bar", "aaa"),
            ("my_baz", "bbb"),
        ]),
    ),
    (
        "target label from a group",
        &[("a", "some-name-value")],
        r#"[{"source_labels":["a"],"regex":"some-([^-]+)-([^,]+)","replacement":"${2}","target_label":"${1}"}]"#,
        Some(&[("a", "some-name-value"), ("name", "value")]),
    ),
    (
        "replacement of a missing group is empty",
        &[("a", "some-name-value")],
        r#"[{"source_labels":["a"],"regex":"some-([^-]+)-([^,]+)","replacement":"${3}","target_label":"${1}"}]"#,
        Some(&[("a", "some-name-value")]),
    ),
    (
        "invalid expanded target labels are skipped",
        &[("a", "some-name-0")],
        r#"[{"source_labels":["a"],"regex":"some-([^-]+)-([^,]+)","replacement":"${1}","target_label":"${3}"},
            {"source_labels":["a"],"regex":"some-([^-]+)-([^,]+)","replacement":"${1}","target_label":"${3}"},
            {"source_labels":["a"],"regex":"some-([^-]+)(-[^,]+)","replacement":"${1}","target_label":"${3}"}]"#,
        Some(&[("a", "some-name-0")]),
    ),
    (
        "real-life tags",
        &[("__meta_sd_tags", "path:/secret,job:some-job,label:foo=bar")],
        r#"[{"source_labels":["__meta_sd_tags"],"regex":"(?:.+,|^)path:(/[^,]+).*","replacement":"${1}","target_label":"__metrics_path__"},
            {"source_labels":["__meta_sd_tags"],"regex":"(?:.+,|^)job:([^,]+).*","replacement":"${1}","target_label":"job"},
            {"source_labels":["__meta_sd_tags"],"regex":"(?:.+,|^)label:([^=]+)=([^,]+).*","replacement":"${2}","target_label":"${1}"}]"#,
        Some(&[
            ("__meta_sd_tags", "path:/secret,job:some-job,label:foo=bar"),
            ("__metrics_path__", "/secret"),
            ("job", "some-job"),
            ("foo", "bar"),
        ]),
    ),
    (
        "prometheus issue 12283",
        &[
            ("__meta_kubernetes_pod_container_port_name", "foo"),
            ("__meta_kubernetes_pod_annotation_XXX_metrics_port", "9091"),
        ],
        r#"[{"regex":"^__meta_kubernetes_pod_container_port_name$","action":"labeldrop"},
            {"source_labels":["__meta_kubernetes_pod_annotation_XXX_metrics_port"],"regex":"(.+)","replacement":"metrics","target_label":"__meta_kubernetes_pod_container_port_name"},
            {"source_labels":["__meta_kubernetes_pod_container_port_name"],"regex":"^metrics$","action":"keep"}]"#,
        Some(&[
            ("__meta_kubernetes_pod_annotation_XXX_metrics_port", "9091"),
            ("__meta_kubernetes_pod_container_port_name", "metrics"),
        ]),
    ),
    (
        "labelkeep",
        &[("a", "foo"), ("b1", "bar"), ("b2", "baz")],
        r#"[{"regex":"(b.*)","action":"labelkeep"}]"#,
        Some(&[("b1", "bar"), ("b2", "baz")]),
    ),
    (
        "labeldrop",
        &[("a", "foo"), ("b1", "bar"), ("b2", "baz")],
        r#"[{"regex":"(b.*)","action":"labeldrop"}]"#,
        Some(&[("a", "foo")]),
    ),
    (
        "uppercase and lowercase",
        &[("foo", "bAr123Foo")],
        r#"[{"source_labels":["foo"],"action":"uppercase","target_label":"foo_uppercase"},
            {"source_labels":["foo"],"action":"lowercase","target_label":"foo_lowercase"}]"#,
        Some(&[("foo", "bAr123Foo"), ("foo_lowercase", "bar123foo"), ("foo_uppercase", "BAR123FOO")]),
    ),
    (
        "keepequal keeps",
        &[("__tmp_port", "1234"), ("__port1", "1234"), ("__port2", "5678")],
        r#"[{"source_labels":["__tmp_port"],"action":"keepequal","target_label":"__port1"}]"#,
        Some(&[("__tmp_port", "1234"), ("__port1", "1234"), ("__port2", "5678")]),
    ),
    (
        "dropequal drops",
        &[("__tmp_port", "1234"), ("__port1", "1234"), ("__port2", "5678")],
        r#"[{"source_labels":["__tmp_port"],"action":"dropequal","target_label":"__port1"}]"#,
        None,
    ),
    (
        "dropequal keeps",
        &[("__tmp_port", "1234"), ("__port1", "1234"), ("__port2", "5678")],
        r#"[{"source_labels":["__tmp_port"],"action":"dropequal","target_label":"__port2"}]"#,
        Some(&[("__tmp_port", "1234"), ("__port1", "1234"), ("__port2", "5678")]),
    ),
    (
        "keepequal drops",
        &[("__tmp_port", "1234"), ("__port1", "1234"), ("__port2", "5678")],
        r#"[{"source_labels":["__tmp_port"],"action":"keepequal","target_label":"__port2"}]"#,
        None,
    ),
    (
        "replace to an empty value deletes",
        &[("a", "foo"), ("b", "bar")],
        r#"[{"source_labels":["missing"],"target_label":"b"}]"#,
        Some(&[("a", "foo")]),
    ),
    (
        "named groups expand",
        &[("a", "host-7")],
        r#"[{"source_labels":["a"],"regex":"(?P<kind>[a-z]+)-(?P<n>\\d+)","target_label":"node","replacement":"${kind}_$n"}]"#,
        Some(&[("a", "host-7"), ("node", "host_7")]),
    ),
];

#[test]
fn prometheus_relabel_cases() {
    for (name, input, json, expected) in CASES {
        let got = process(&labels(input), &steps(json));
        assert_eq!(got, expected.map(labels), "{name}");
    }
}

#[test]
fn validation_matches_prometheus_messages_and_names_the_field() {
    let cases: &[(&str, &str)] = &[
        (
            r#"{"action":"replace"}"#,
            "target_label: relabel configuration for replace action requires 'target_label' value",
        ),
        (r#"{"action":"lowercase"}"#, "requires 'target_label' value"),
        (r#"{"action":"lowercase","target_label":"${3}"}"#, r#"target_label: "${3}" is invalid 'target_label'"#),
        (r#"{"source_labels":["a"],"target_label":"0${3}"}"#, r#""0${3}" is invalid 'target_label'"#),
        (
            r#"{"source_labels":["a"],"target_label":"-${3}"}"#,
            r#""-${3}" is invalid 'target_label' for replace action"#,
        ),
        (
            r#"{"action":"hashmod","target_label":"t"}"#,
            "modulus: relabel configuration for hashmod requires non-zero modulus",
        ),
        (r#"{"action":"hashmod","modulus":2,"target_label":"${1}"}"#, "is invalid 'target_label' for hashmod action"),
        (
            r#"{"action":"labelmap","replacement":"-x"}"#,
            "replacement: \"-x\" is invalid 'replacement' for labelmap action",
        ),
        (
            r#"{"action":"uppercase","target_label":"t","replacement":"x"}"#,
            "'replacement' can not be set for uppercase",
        ),
        (r#"{"action":"keepequal","target_label":"t","regex":"a"}"#, "keepequal action requires only 'source_labels'"),
        (r#"{"action":"labeldrop","regex":"a","source_labels":["x"]}"#, "labeldrop action requires only 'regex'"),
        (r#"{"regex":"(","target_label":"t"}"#, "regex \"(\""),
    ];
    for (json, expected) in cases {
        let config: RelabelConfig = serde_json::from_str(json).unwrap();
        let err = config.compile().unwrap_err();
        assert!(err.contains(expected), "{json}: got {err:?}, want {expected:?}");
    }
    let ok: RelabelConfig = serde_json::from_str(
        r#"{"source_labels":["a"],"regex":"some-([^-]+)-([^,]+)","replacement":"${1}","target_label":"${3}"}"#,
    )
    .unwrap();
    assert!(ok.compile().is_ok());
    let err = compile_all(&[RelabelConfig::default(), RelabelConfig { action: Action::HashMod, ..Default::default() }]);
    assert!(err.unwrap_err().starts_with("[0].target_label"));
}

#[test]
fn target_label_validity() {
    let cases = [
        ("-label", false),
        ("label", true),
        ("label${1}", true),
        ("${1}label", true),
        ("${1}", true),
        ("${", false),
        ("$", false),
        ("${}", false),
        ("foo${", false),
        ("$1", true),
        ("asd$2asd", true),
        ("-foo${1}bar-", false),
        ("_${1}_", true),
        ("foo${bar}foo", true),
    ];
    for (s, valid) in cases {
        assert_eq!(RELABEL_TARGET.is_match(s), valid, "{s}");
    }
}

#[test]
fn unknown_actions_and_fields_are_rejected() {
    assert!(serde_json::from_str::<RelabelConfig>(r#"{"action":"explode"}"#).is_err());
    let err = serde_json::from_str::<RelabelConfig>(r#"{"sourcelabels":["a"]}"#).unwrap_err().to_string();
    assert!(err.contains("sourcelabels"), "{err}");
}

proptest! {
    #[test]
    fn hashmod_is_below_modulus_and_stable(value in ".{0,40}", modulus in 1u64..10_000) {
        let h = hashmod(&value, modulus);
        prop_assert!(h < modulus);
        prop_assert_eq!(h, hashmod(&value, modulus));
    }

    #[test]
    fn labelkeep_then_labeldrop_of_the_same_regex_empties(names in proptest::collection::btree_set("[a-z]{1,6}", 0..6)) {
        let input = Labels::from_pairs(names.iter().map(|n| (n.clone(), "v".to_string())));
        let keep = steps(r#"[{"regex":"[a-m].*","action":"labelkeep"}]"#);
        let drop = steps(r#"[{"regex":"[a-m].*","action":"labeldrop"}]"#);
        let kept = process(&input, &keep).unwrap();
        prop_assert!(kept.iter().all(|l| l.name.as_str() < "n"));
        prop_assert!(process(&kept, &drop).unwrap().is_empty());
    }
}
