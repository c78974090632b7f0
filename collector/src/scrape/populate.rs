//! From a discovered address to a scrape target, as Prometheus's `PopulateLabels` does it: the
//! discovered labels get the job's defaults (`job`, `__address__`, `__scheme__`,
//! `__metrics_path__`, `__scrape_interval__`, `__scrape_timeout__`, `__param_<name>`), pass through
//! `relabel_configs`, and what is left decides the URL and the target's labels. `__meta_*` labels
//! go away after relabeling, every other `__` label stays internal, and `instance` defaults to the
//! address. A target relabeled away (dropped, or left without labels) is kept for the dropped list.

use std::collections::BTreeMap;
use std::time::Duration;

use model::{Labels, LabelsBuilder};

use crate::relabel::{self, Relabeler};

pub(crate) const ADDRESS: &str = "__address__";
pub(crate) const SCHEME: &str = "__scheme__";
pub(crate) const METRICS_PATH: &str = "__metrics_path__";
pub(crate) const SCRAPE_INTERVAL: &str = "__scrape_interval__";
pub(crate) const SCRAPE_TIMEOUT: &str = "__scrape_timeout__";
pub(crate) const PARAM_PREFIX: &str = "__param_";
pub(crate) const RESERVED_PREFIX: &str = "__";

/// The job's settings that become default labels of each of its targets.
pub(crate) struct JobDefaults<'a> {
    pub job_name: &'a str,
    pub scheme: &'a str,
    pub metrics_path: &'a str,
    pub interval: Duration,
    pub timeout: Duration,
    pub params: &'a BTreeMap<String, Vec<String>>,
}

/// A target that survived relabeling.
#[derive(Debug, PartialEq)]
pub(crate) struct Populated {
    /// What discovery produced plus the job's defaults, before relabeling.
    pub discovered: Labels,
    /// The labels attached to every series (no `__` labels).
    pub labels: Labels,
    pub url: reqwest::Url,
    pub interval: Duration,
    pub timeout: Duration,
}

/// What relabeling made of one discovered target.
#[derive(Debug, PartialEq)]
pub(crate) enum Outcome {
    Active(Box<Populated>),
    /// Relabeled away; carries the discovered labels.
    Dropped(Labels),
}

/// Builds one target from its discovered labels (`__address__` and the group's labels).
pub(crate) fn populate(discovered: &Labels, job: &JobDefaults<'_>, steps: &[Relabeler]) -> Result<Outcome, String> {
    let mut lb = discovered.to_builder();
    let interval = model::time::format_duration(job.interval);
    let timeout = model::time::format_duration(job.timeout);
    for (name, value) in [
        ("job", job.job_name),
        (SCRAPE_INTERVAL, interval.as_str()),
        (SCRAPE_TIMEOUT, timeout.as_str()),
        (METRICS_PATH, job.metrics_path),
        (SCHEME, job.scheme),
    ] {
        if lb.get(name).is_none() {
            lb.set(name, value);
        }
    }
    for (name, values) in job.params {
        let key = format!("{PARAM_PREFIX}{name}");
        if let Some(first) = values.first()
            && lb.get(&key).is_none()
        {
            lb.set(key, first);
        }
    }
    let discovered = lb.build();
    if !relabel::process_builder(&mut lb, steps) {
        return Ok(Outcome::Dropped(discovered));
    }
    let relabeled = lb.build();
    if relabeled.is_empty() {
        return Ok(Outcome::Dropped(discovered));
    }
    let address = relabeled.get(ADDRESS).ok_or_else(|| "no address".to_string())?.to_string();
    if address.contains('/') {
        return Err(format!("{address:?} is not a valid hostname"));
    }
    let interval = parse_duration_label(&relabeled, SCRAPE_INTERVAL, "scrape interval")?;
    let timeout = parse_duration_label(&relabeled, SCRAPE_TIMEOUT, "scrape timeout")?;
    if interval.is_zero() {
        return Err("scrape interval cannot be 0".into());
    }
    if timeout.is_zero() {
        return Err("scrape timeout cannot be 0".into());
    }
    if timeout > interval {
        return Err(format!(
            "scrape timeout cannot be greater than scrape interval ({:?} > {:?})",
            model::time::format_duration(timeout),
            model::time::format_duration(interval)
        ));
    }
    let url = target_url(&relabeled, job.params)?;
    let mut out = LabelsBuilder::default();
    for label in relabeled.iter() {
        if !label.name.starts_with(RESERVED_PREFIX) {
            out.set(&label.name, &label.value);
        }
    }
    if out.get("instance").is_none() {
        out.set("instance", &address);
    }
    Ok(Outcome::Active(Box::new(Populated { discovered, labels: out.build(), url, interval, timeout })))
}

fn parse_duration_label(labels: &Labels, name: &str, what: &str) -> Result<Duration, String> {
    let text = labels.get(name).unwrap_or("");
    model::time::parse_duration(text).map_err(|e| format!("error parsing {what}: {e}"))
}

/// `__scheme__://__address____metrics_path__?params`, where `__param_<name>` replaces the first
/// configured value of `name` (or adds it); keys are sorted as Go's `url.Values.Encode` does.
fn target_url(labels: &Labels, job_params: &BTreeMap<String, Vec<String>>) -> Result<reqwest::Url, String> {
    let mut params = job_params.clone();
    for label in labels.iter() {
        if let Some(name) = label.name.strip_prefix(PARAM_PREFIX) {
            let values = params.entry(name.to_string()).or_default();
            match values.first_mut() {
                Some(first) => first.clone_from(&label.value),
                None => values.push(label.value.clone()),
            }
        }
    }
    let scheme = labels.get(SCHEME).unwrap_or("http");
    if scheme != "http" && scheme != "https" {
        return Err(format!("unsupported scheme {scheme:?}"));
    }
    let address = labels.get(ADDRESS).unwrap_or("");
    let path = labels.get(METRICS_PATH).unwrap_or("");
    let slash = if path.starts_with('/') || path.is_empty() { "" } else { "/" };
    let mut url = reqwest::Url::parse(&format!("{scheme}://{address}{slash}{path}"))
        .map_err(|e| format!("target {address:?}: {e}"))?;
    if params.values().any(|v| !v.is_empty()) {
        let mut query = url.query_pairs_mut();
        for (name, values) in &params {
            for value in values {
                query.append_pair(name, value);
            }
        }
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::relabel::RelabelConfig;

    fn job(params: &BTreeMap<String, Vec<String>>) -> JobDefaults<'_> {
        JobDefaults {
            job_name: "node",
            scheme: "http",
            metrics_path: "/metrics",
            interval: Duration::from_secs(15),
            timeout: Duration::from_secs(10),
            params,
        }
    }

    fn steps(json: &str) -> Vec<Relabeler> {
        let configs: Vec<RelabelConfig> = serde_json::from_str(json).unwrap();
        relabel::compile_all(&configs).unwrap()
    }

    fn active(outcome: Outcome) -> Populated {
        match outcome {
            Outcome::Active(p) => *p,
            Outcome::Dropped(l) => panic!("dropped: {l}"),
        }
    }

    #[test]
    fn defaults_without_relabeling() {
        let params = BTreeMap::from([("module".to_string(), vec!["a b".to_string(), "c".to_string()])]);
        let discovered = Labels::from_pairs([(ADDRESS, "h:9100"), ("env", "dev")]);
        let p = active(populate(&discovered, &job(&params), &[]).unwrap());
        assert_eq!(p.url.as_str(), "http://h:9100/metrics?module=a+b&module=c");
        assert_eq!(p.labels, Labels::from_pairs([("env", "dev"), ("instance", "h:9100"), ("job", "node")]));
        assert_eq!(p.discovered.get(SCRAPE_INTERVAL), Some("15s"));
        assert_eq!(p.discovered.get("__param_module"), Some("a b"));
        assert_eq!((p.interval, p.timeout), (Duration::from_secs(15), Duration::from_secs(10)));
    }

    #[test]
    fn relabeling_rewrites_address_scheme_path_params_and_drops_meta() {
        let params = BTreeMap::from([("module".to_string(), vec!["x".to_string(), "y".to_string()])]);
        let discovered = Labels::from_pairs([
            (ADDRESS, "10.0.0.1:8080"),
            ("__meta_pod", "web-1"),
            ("__meta_port", "9090"),
            ("__tmp_keep", "1"),
        ]);
        let rules = steps(
            r#"[{"source_labels":["__address__","__meta_port"],"regex":"([^:]+)(?::\\d+)?;(\\d+)","replacement":"$1:$2","target_label":"__address__"},
                {"target_label":"__metrics_path__","replacement":"/probe"},
                {"target_label":"__param_module","replacement":"z"},
                {"target_label":"__param_target","replacement":"t1"},
                {"target_label":"__scrape_interval__","replacement":"30s"},
                {"source_labels":["__meta_pod"],"target_label":"pod"}]"#,
        );
        let p = active(populate(&discovered, &job(&params), &rules).unwrap());
        assert_eq!(p.url.as_str(), "http://10.0.0.1:9090/probe?module=z&module=y&target=t1");
        assert_eq!(
            p.labels,
            Labels::from_pairs([("instance", "10.0.0.1:9090"), ("job", "node"), ("pod", "web-1")]),
            "no __meta_, __tmp or other __ labels reach the series"
        );
        assert_eq!(p.interval, Duration::from_secs(30));
    }

    #[test]
    fn instance_can_be_set_by_relabeling() {
        let discovered = Labels::from_pairs([(ADDRESS, "h:1")]);
        let rules = steps(r#"[{"target_label":"instance","replacement":"pretty"}]"#);
        let p = active(populate(&discovered, &job(&BTreeMap::new()), &rules).unwrap());
        assert_eq!(p.labels.get("instance"), Some("pretty"));
    }

    #[test]
    fn dropped_and_emptied_targets_keep_their_discovered_labels() {
        let discovered = Labels::from_pairs([(ADDRESS, "h:1")]);
        let drop = steps(r#"[{"source_labels":["__address__"],"regex":"h:.*","action":"drop"}]"#);
        match populate(&discovered, &job(&BTreeMap::new()), &drop).unwrap() {
            Outcome::Dropped(l) => assert_eq!(l.get(ADDRESS), Some("h:1")),
            other => panic!("{other:?}"),
        }
        let empty = steps(r#"[{"regex":".*","action":"labeldrop"}]"#);
        assert!(matches!(populate(&discovered, &job(&BTreeMap::new()), &empty).unwrap(), Outcome::Dropped(_)));
    }

    #[test]
    fn bad_results_are_errors() {
        let discovered = Labels::from_pairs([(ADDRESS, "h:1")]);
        let params = BTreeMap::new();
        let cases = [
            (r#"[{"regex":"__address__","action":"labeldrop"}]"#, "no address"),
            (r#"[{"target_label":"__address__","replacement":"h/x"}]"#, "is not a valid hostname"),
            (r#"[{"target_label":"__scrape_timeout__","replacement":"1m"}]"#, "cannot be greater than scrape interval"),
            (r#"[{"target_label":"__scrape_interval__","replacement":"soon"}]"#, "error parsing scrape interval"),
            (r#"[{"target_label":"__scheme__","replacement":"ftp"}]"#, "unsupported scheme"),
        ];
        for (rules, expected) in cases {
            let err = populate(&discovered, &job(&params), &steps(rules)).unwrap_err();
            assert!(err.contains(expected), "{rules}: {err}");
        }
    }
}
