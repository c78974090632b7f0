//! Scrape loop tests: target labels and URLs, labelling and relabeling of samples, the label
//! cache, staleness, timestamp alignment and gzip bodies.

use super::*;

fn target(honor_labels: bool) -> Target {
    let mut config = CollectorConfig::default();
    config.global.external_labels.insert("cluster".into(), "c1".into());
    config.scrape_configs.push(ScrapeConfig {
        job_name: "node".into(),
        honor_labels,
        params: [("module".to_string(), vec!["a b".to_string()])].into(),
        static_configs: vec![crate::config::StaticConfig {
            targets: vec!["h:9100".into()],
            labels: [("env".to_string(), "dev".to_string())].into(),
        }],
        ..Default::default()
    });
    build_targets(&config).unwrap().0.remove(0)
}

fn sample(labels: &[(&str, &str)]) -> ScrapedSample {
    ScrapedSample {
        name: "m".into(),
        labels: labels.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect(),
        value: 1.0,
        timestamp_ms: None,
    }
}

#[test]
fn target_url_carries_path_and_params() {
    assert_eq!(target(false).url.as_str(), "http://h:9100/metrics?module=a+b");
}

#[test]
fn conflicting_labels_are_exported_unless_honored() {
    let s = sample(&[("job", "inner"), ("cluster", "mine")]);
    let labels = label_sample(&target(false), &s.name, &s.labels);
    assert_eq!(labels.get("job"), Some("node"));
    assert_eq!(labels.get("exported_job"), Some("inner"));
    assert_eq!(labels.get("instance"), Some("h:9100"));
    assert_eq!(labels.get("env"), Some("dev"));
    assert_eq!(labels.get("cluster"), Some("mine"), "external labels never override");
    assert_eq!(labels.metric_name(), Some("m"));
    let honored = label_sample(&target(true), &s.name, &s.labels);
    assert_eq!(honored.get("job"), Some("inner"));
    assert_eq!(honored.get("exported_job"), None);
    assert_eq!(honored.get("instance"), Some("h:9100"));
}

#[test]
fn label_limits_use_prometheus_messages() {
    let labels = Labels::from_pairs([("__name__", "m"), ("a", "xyz"), ("long_name", "v")]);
    let limits =
        |label, name, value| Limits { label, label_name_length: name, label_value_length: value, ..Default::default() };
    assert!(limits(3, 9, 3).check_labels(&labels).is_ok());
    assert_eq!(
        limits(2, 0, 0).check_labels(&labels).unwrap_err(),
        "label_limit exceeded (metric: m, number of labels: 3, limit: 2)"
    );
    assert_eq!(
        limits(0, 8, 0).check_labels(&labels).unwrap_err(),
        "label_name_length_limit exceeded (metric: m, label name: long_name, length: 9, limit: 8)"
    );
    assert_eq!(
        limits(0, 0, 2).check_labels(&labels).unwrap_err(),
        "label_value_length_limit exceeded (metric: m, label name: a, value: \"xyz\", length: 3, limit: 2)"
    );
}

#[test]
fn metric_relabeling_runs_before_external_labels_and_limits() {
    let mut t = target(false);
    t.metric_relabel = Arc::new(
        relabel::compile_all(
            &serde_json::from_str::<Vec<crate::relabel::RelabelConfig>>(
                r#"[{"source_labels":["kind"],"regex":"skip","action":"drop"},{"regex":"kind","action":"labeldrop"}]"#,
            )
            .unwrap(),
        )
        .unwrap(),
    );
    let samples = vec![sample(&[("kind", "skip")]), sample(&[("kind", "keep")]), sample(&[])];
    let appended = append(&t, samples.clone(), 5).unwrap();
    assert_eq!(appended.post_relabel, 2);
    assert_eq!(appended.current.len(), 1, "kind=keep and no labels collapse into one series once kind is dropped");
    assert!(appended.series.iter().all(|s| s.labels.get("kind").is_none() && s.labels.get("cluster") == Some("c1")));
    t.limits.sample = 1;
    assert_eq!(append(&t, samples, 5).err(), Some(("sample limit exceeded".to_string(), 2)));
}

#[test]
fn cached_labels_equal_computed_ones_and_stale_entries_go() {
    let mut t = target(false);
    t.metric_relabel = Arc::new(
        relabel::compile_all(
            &serde_json::from_str::<Vec<crate::relabel::RelabelConfig>>(
                r#"[{"source_labels":["kind"],"regex":"skip","action":"drop"}]"#,
            )
            .unwrap(),
        )
        .unwrap(),
    );
    // Label values that would collide if the key were not length-prefixed.
    let page = vec![
        sample(&[("kind", "skip")]),
        sample(&[("kind", "keep")]),
        sample(&[("a", "1\0b=1:2")]),
        sample(&[("a", "1"), ("b", "2")]),
    ];
    let uncached = append(&t, page.clone(), 5).unwrap();
    let mut cache = LabelCache::default();
    for round in 0..3 {
        let mut appender = Appender::new(&t, &mut cache, 5);
        for s in &page {
            appender.add(&s.name, &s.labels, s.value, s.timestamp_ms);
        }
        let cached = appender.finish().unwrap();
        assert_eq!(cached.series, uncached.series, "round {round}");
        assert_eq!(cached.current, uncached.current, "round {round}");
    }
    assert_eq!(cache.entries.len(), 4, "the dropped series is cached as dropped");
    // A page without those series: their entries go once they outnumber the live ones.
    for round in 0..3 {
        let mut appender = Appender::new(&t, &mut cache, 5);
        for i in 0..100 {
            let labels = [("i".to_string(), format!("{round}-{i}"))];
            appender.add("m", &labels, 1.0, None);
        }
        appender.finish().unwrap();
        cache.end_scrape();
    }
    assert!(cache.entries.len() <= 2 * 100 + 64, "{}", cache.entries.len());
    assert!(!cache.entries.keys().any(|k| k.windows(4).any(|w| w == b"keep")));
}

#[test]
fn end_of_run_marks_tracked_and_synthetic_series_stale() {
    let t = target(false);
    let tracked = Labels::from_pairs([("__name__", "m"), ("job", "node")]);
    let mut state = ScrapeState::new(&t);
    let slot = state.cache.insert(Some((tracked.clone(), tracked.stable_hash())));
    state.previous = [(1, Some(slot)), (2, None)].into_iter().collect::<SeenSeries>();
    let series = end_of_run_staleness(&state, 42);
    assert_eq!(series.len(), 1 + REPORT_SERIES.len());
    assert!(series.iter().all(|s| model::is_stale_nan(s.samples[0].value) && s.samples[0].timestamp_ms == 42));
    assert!(series.iter().any(|s| s.labels == tracked));
    assert!(series.iter().any(|s| s.labels.metric_name() == Some("up") && s.labels.get("instance") == Some("h:9100")));
}

#[tokio::test]
async fn a_removed_target_ships_stale_markers_and_a_shutdown_does_not() {
    let app = axum::Router::new().route("/metrics", axum::routing::get(|| async { "m 1\n" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let make_target = || {
        let mut config = CollectorConfig::default();
        config.scrape_configs.push(ScrapeConfig {
            job_name: "j".into(),
            scrape_interval: Some(Duration::from_millis(50)),
            static_configs: vec![crate::config::StaticConfig {
                targets: vec![address.clone()],
                labels: Default::default(),
            }],
            ..Default::default()
        });
        build_targets(&config).unwrap().0.remove(0)
    };
    for removed_not_shutdown in [true, false] {
        let (tx, mut rx) = mpsc::channel(4);
        let (cancel, removed) = (CancellationToken::new(), CancellationToken::new());
        let task = tokio::spawn(run(
            make_target(),
            ScrapeOutput::Shipper(tx),
            CollectorMetrics::default(),
            cancel.clone(),
            removed.clone(),
        ));
        let first = rx.recv().await.unwrap();
        assert!(first.items.iter().any(|s| s.labels.metric_name() == Some("m") && s.samples[0].value == 1.0));
        if removed_not_shutdown {
            removed.cancel()
        } else {
            cancel.cancel()
        }
        task.await.unwrap();
        let mut last = first;
        while let Ok(chunk) = rx.try_recv() {
            last = chunk;
        }
        let all_stale = last.items.iter().all(|s| model::is_stale_nan(s.samples[0].value));
        assert_eq!(all_stale, removed_not_shutdown, "stale markers only when the target went away");
        if removed_not_shutdown {
            let names: Vec<_> = last.items.iter().filter_map(|s| s.labels.metric_name()).collect();
            assert!(names.contains(&"m") && names.contains(&"up"), "{names:?}");
        }
        assert!(rx.recv().await.is_none(), "nothing after the end of the run");
    }
}

#[test]
fn scrape_timestamps_snap_to_their_tick_within_two_milliseconds() {
    let mut tick = None;
    let starts = [10_000, 11_001, 12_002, 13_003, 14_000, 16_001, 17_500, 18_000, 17_999, 4_000, 5_001];
    let got: Vec<i64> = starts.iter().map(|&now| aligned_timestamp(&mut tick, now, 1000)).collect();
    // Late by 1-2 ms: the tick; 3 ms: its own time; a skipped tick is caught up; a clock that
    // went back a little keeps its own time (never a repeated timestamp), by more than an
    // interval starts over.
    assert_eq!(got, [10_000, 11_000, 12_000, 13_003, 14_000, 16_000, 17_500, 18_000, 17_999, 4_000, 5_000]);
    let mut fast = None;
    assert_eq!([aligned_timestamp(&mut fast, 100, 200), aligned_timestamp(&mut fast, 301, 200)], [100, 301]);
}

fn gzip(text: &str) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(text.as_bytes()).unwrap();
    encoder.finish().unwrap()
}

#[test]
fn gzip_bodies_decode_every_member_within_the_body_size_limit() {
    let mut page = gzip("a 1\n");
    page.extend(gzip("b 2\n"));
    let mut body = Vec::new();
    decode_gzip(&page, 0, &mut body).unwrap();
    assert_eq!(body, b"a 1\nb 2\n", "a multi-member body decodes whole, as Go's reader does");

    body.clear();
    decode_gzip(&page, 9, &mut body).unwrap();
    assert_eq!(body.len(), 8);
    // The limit counts decoded bytes: a small compressed page of a large text is refused.
    let large = gzip(&"m 1\n".repeat(10_000));
    assert!(large.len() < 1_000);
    body.clear();
    assert_eq!(decode_gzip(&large, 8, &mut body).unwrap_err(), "body size limit exceeded");
    body.clear();
    let err = decode_gzip(&large[..large.len() / 2], 0, &mut body).unwrap_err();
    assert!(err.starts_with("decoding the gzip body"), "{err}");
}

#[test]
fn series_handed_back_are_refilled_like_new_ones() {
    let t = target(false);
    let page = vec![sample(&[("kind", "a")]), sample(&[("kind", "b")]), sample(&[("kind", "c")])];
    let fresh = append(&t, page.clone(), 7).unwrap();
    let old = Labels::from_pairs([("__name__", "old")]);
    let spare = vec![TimeSeries::new(old, vec![Sample::new(1, 9.0), Sample::new(2, 9.0)]); 2];
    let mut cache = LabelCache::default();
    let reused = Reused { spare, ..Reused::default() };
    let mut appender = Appender::reusing(&t, &mut cache, reused, 7);
    for s in &page {
        appender.add(&s.name, &s.labels, s.value, s.timestamp_ms);
    }
    assert_eq!(appender.finish().unwrap().series, fresh.series, "two refilled, one new, same as fresh");
}
