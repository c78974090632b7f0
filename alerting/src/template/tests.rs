//! Rule templates expand as Prometheus expands them.

use super::*;

fn data(value: f64) -> TemplateData {
    TemplateData {
        labels: BTreeMap::from([
            ("instance".to_string(), "localhost:9090".to_string()),
            ("job".to_string(), "prometheus".to_string()),
        ]),
        external_labels: BTreeMap::from([("cluster".to_string(), "eu1".to_string())]),
        external_url: "http://tarsier:9470".into(),
        value,
        now: 0.0,
    }
}

fn run(text: &str, value: f64) -> String {
    Template::parse(text).and_then(|t| t.execute(&data(value), None)).unwrap_or_else(|e| panic!("{text}: {e}"))
}

#[test]
fn expands_the_variables_real_rules_use() {
    assert_eq!(
        run("{{ $labels.instance }} of job {{ $labels.job }} has been down", 0.0),
        "localhost:9090 of job prometheus has been down"
    );
    assert_eq!(run("{{ .Labels.job }}/{{ $externalLabels.cluster }} {{ .Value }}", 0.25), "prometheus/eu1 0.25");
    assert_eq!(run("{{ $labels.missing }}|", 0.0), "|");
    assert_eq!(run("{{ $value | humanizePercentage }}", 0.0512), "5.12%");
    assert_eq!(run("{{ printf \"%.2f\" $value }}%", 93.456), "93.46%");
    assert_eq!(run("{{ $value | humanize }}B", 123456789.0), "123.5MB");
    assert_eq!(run("{{ humanizeDuration $value }}", 3725.0), "1h 2m 5s");
    assert_eq!(run("{{ $labels.job | toUpper }}", 0.0), "PROMETHEUS");
    assert_eq!(run("{{ reReplaceAll \":.*\" \"\" $labels.instance }}", 0.0), "localhost");
    assert_eq!(run("{{ $labels.instance | stripPort }}", 0.0), "localhost");
    assert_eq!(run("{{ $externalURL }}", 0.0), "http://tarsier:9470");
}

#[test]
fn control_flow_and_variables() {
    assert_eq!(run("{{ if gt $value 80.0 }}high{{ else if gt $value 50.0 }}mid{{ else }}low{{ end }}", 60.0), "mid");
    assert_eq!(run("{{ $x := \"a\" }}{{ $x }}{{ $x = \"b\" }}{{ $x }}", 0.0), "ab");
    assert_eq!(
        run("{{ range $k, $v := $labels }}{{ $k }}={{ $v }};{{ end }}", 0.0),
        "instance=localhost:9090;job=prometheus;"
    );
    assert_eq!(run("{{ with $labels.job }}job {{ . }}{{ end }}", 0.0), "job prometheus");
    assert_eq!(run("{{- \" x \" -}}  y", 0.0), " x y");
    assert_eq!(run("{{ if and (eq $labels.job \"prometheus\") (not false) }}yes{{ end }}", 0.0), "yes");
    assert_eq!(run("{{ index $labels \"job\" }}", 0.0), "prometheus");
}

#[test]
fn query_function_with_first_value_and_label() {
    let q = |expr: &str| -> Result<Vec<QuerySample>, String> {
        assert_eq!(expr, "up{job=\"prometheus\"}");
        Ok(vec![QuerySample { labels: BTreeMap::from([("instance".into(), "a:1".into())]), value: 0.5 }])
    };
    let t = Template::parse(
        "{{ with printf \"up{job=%q}\" $labels.job | query }}{{ . | first | value | humanizePercentage }} on {{ . | first | label \"instance\" }}{{ end }}",
    )
    .unwrap();
    assert_eq!(t.execute(&data(0.0), Some(&q)).unwrap(), "50% on a:1");
    let t = Template::parse("{{ range query \"x\" }}{{ .Labels.instance }} {{ .Value }}{{ end }}").unwrap();
    let q2 = |_: &str| -> Result<Vec<QuerySample>, String> {
        Ok(vec![QuerySample { labels: BTreeMap::from([("instance".into(), "b".into())]), value: 2.0 }])
    };
    assert_eq!(t.execute(&data(0.0), Some(&q2)).unwrap(), "b 2");
}

#[test]
fn errors_read_like_prometheus() {
    assert!(Template::parse("{{ $label.instance }}").unwrap_err().contains("undefined variable \"$label\""));
    let out = expand("{{ first (query \"x\") }}", &data(0.0), Some(&|_: &str| Ok(Vec::new())));
    assert!(out.starts_with("<error expanding template:") && out.contains("no elements"), "{out}");
    assert!(expand("{{ nosuch 1 }}", &data(0.0), None).contains("function \"nosuch\" not defined"));
}
