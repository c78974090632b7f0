//! Service discovery end to end through the collector's public API: `file_sd_configs` picking up
//! file changes through notify (the refresh interval is an hour, so only events can explain the
//! updates) and `dns_sd_configs` against a real DNS server, Debian's dnsmasq, on a loopback port,
//! with `__meta_dns_*` labels used in relabeling.

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use collector::{
    Collector, CollectorConfig, DnsRecordType, DnsSdConfig, FileSdConfig, RelabelConfig, ScrapeConfig, TargetHealth,
};
use common::{RecordingSink, wait_for};

async fn serve_metrics(page: &'static str) -> String {
    let app = axum::Router::new().route("/metrics", axum::routing::get(move || async move { page }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    address
}

fn relabel(json: &str) -> Vec<RelabelConfig> {
    serde_json::from_str(json).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_sd_follows_file_changes() {
    let (a, b) = (serve_metrics("from_a 1\n").await, serve_metrics("from_b 1\n").await);
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("a.json");
    std::fs::write(&json, format!(r#"[{{"targets":["{a}"],"labels":{{"team":"web"}}}}]"#)).unwrap();
    let mut config = CollectorConfig::default();
    config.shipping.batch_max_wait = Duration::from_millis(20);
    config.scrape_configs.push(ScrapeConfig {
        job_name: "files".into(),
        scrape_interval: Some(Duration::from_millis(100)),
        file_sd_configs: vec![FileSdConfig {
            files: vec![format!("{}/*.json", dir.path().display()), format!("{}/*.yml", dir.path().display())],
            refresh_interval: Duration::from_secs(3600),
        }],
        // The file path is usable in relabeling, then gone like every __meta_ label.
        relabel_configs: relabel(
            r#"[{"source_labels":["__meta_filepath"],"regex":".*/([^/]+)","target_label":"sd_file"}]"#,
        ),
        ..Default::default()
    });
    config.validate().unwrap();
    let state = tempfile::tempdir().unwrap();
    let sink = Arc::new(RecordingSink::default());
    let collector = Collector::start(config, state.path(), sink.clone(), sink.clone()).await.unwrap();
    let instances = || {
        let mut i: Vec<_> = collector.targets().iter().map(|t| t.labels.get("instance").unwrap().to_string()).collect();
        i.sort();
        i
    };
    let up = |instance: &str| {
        collector.targets().iter().any(|t| t.labels.get("instance") == Some(instance) && t.health == TargetHealth::Up)
    };
    wait_for("the JSON file's target is scraped", || up(&a)).await;
    let target = collector.targets().into_iter().find(|t| t.labels.get("instance") == Some(a.as_str())).unwrap();
    assert_eq!(target.labels.get("team"), Some("web"));
    assert_eq!(target.labels.get("sd_file"), Some("a.json"));
    assert_eq!(target.discovered_labels.get("__meta_filepath"), Some(json.to_str().unwrap()));
    assert!(target.labels.iter().all(|l| !l.name.starts_with("__")));

    std::fs::write(dir.path().join("b.yml"), format!("- targets: ['{b}']\n")).unwrap();
    wait_for("the new YAML file's target is scraped", || up(&b)).await;
    assert_eq!(instances(), {
        let mut both = vec![a.clone(), b.clone()];
        both.sort();
        both
    });

    std::fs::remove_file(&json).unwrap();
    wait_for("the deleted file's target is gone", || instances() == vec![b.clone()]).await;
    let stale_from_a =
        || {
            sink.series.lock().unwrap().iter().any(|s| {
                s.labels.metric_name() == Some("from_a") && s.samples.iter().any(|x| model::is_stale_nan(x.value))
            })
        };
    wait_for("the removed target's series are marked stale", stale_from_a).await;
    collector.shutdown().await.unwrap();
}

/// dnsmasq serving records from a config file on a loopback port; killed on drop.
struct Dnsmasq {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Dnsmasq {
    fn start(records: &str) -> Dnsmasq {
        let binary = ["/usr/sbin/dnsmasq", "/usr/bin/dnsmasq"].into_iter().find(|p| std::path::Path::new(p).exists());
        let Some(binary) = binary else {
            panic!("dnsmasq is missing: install it with `apt-get install -y dnsmasq-base` (scripts/test.sh does)");
        };
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("dnsmasq.conf");
        std::fs::write(&conf, records).unwrap();
        let port = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(binary)
            .args(["--keep-in-foreground", "--no-resolv", "--no-hosts", "--bind-interfaces", "--pid-file="])
            .args(["--listen-address=127.0.0.1", "--user=root", "--log-facility=-"])
            .arg(format!("--port={port}"))
            .arg(format!("--conf-file={}", conf.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting dnsmasq");
        Dnsmasq { child, port, _dir: dir }
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_sd_resolves_srv_a_and_aaaa_records_from_a_real_dns_server() {
    let exporter = serve_metrics("dns_found 1\n").await;
    let exporter_port: u16 = exporter.rsplit(':').next().unwrap().parse().unwrap();
    let dns = Dnsmasq::start(&format!(
        "host-record=node1.tarsier.test,127.0.0.1,::1\n\
         host-record=node2.tarsier.test,127.0.0.2\n\
         srv-host=_metrics._tcp.tarsier.test,node1.tarsier.test,{exporter_port}\n\
         srv-host=_metrics._tcp.tarsier.test,node2.tarsier.test,9999\n"
    ));
    let nameserver = Some(format!("127.0.0.1:{}", dns.port).parse().unwrap());
    let sd = |names: &[&str], record_type, port| DnsSdConfig {
        names: names.iter().map(|n| n.to_string()).collect(),
        record_type,
        port,
        refresh_interval: Duration::from_millis(100),
        nameserver,
    };
    let mut config = CollectorConfig::default();
    config.shipping.batch_max_wait = Duration::from_millis(20);
    config.scrape_configs = vec![
        ScrapeConfig {
            job_name: "srv".into(),
            scrape_interval: Some(Duration::from_millis(200)),
            dns_sd_configs: vec![sd(&["_metrics._tcp.tarsier.test"], DnsRecordType::Srv, 0)],
            // The SRV target's host names only exist in dnsmasq: scrape 127.0.0.1 at the SRV port,
            // keep the SRV target as a label, and skip node2.
            relabel_configs: relabel(
                r#"[{"source_labels":["__meta_dns_srv_record_target"],"regex":"node2\\..*","action":"drop"},
                    {"source_labels":["__meta_dns_srv_record_port"],"replacement":"127.0.0.1:$1","target_label":"__address__"},
                    {"source_labels":["__meta_dns_srv_record_target"],"target_label":"srv_target"}]"#,
            ),
            ..Default::default()
        },
        ScrapeConfig {
            job_name: "a".into(),
            scrape_interval: Some(Duration::from_millis(200)),
            dns_sd_configs: vec![sd(&["node1.tarsier.test"], DnsRecordType::A, exporter_port)],
            ..Default::default()
        },
        ScrapeConfig {
            job_name: "aaaa".into(),
            scrape_interval: Some(Duration::from_secs(60)),
            dns_sd_configs: vec![sd(&["node1.tarsier.test", "missing.tarsier.test"], DnsRecordType::Aaaa, 9100)],
            ..Default::default()
        },
    ];
    config.validate().unwrap();
    let state = tempfile::tempdir().unwrap();
    let sink = Arc::new(RecordingSink::default());
    let collector = Collector::start(config, state.path(), sink.clone(), sink.clone()).await.unwrap();
    let ready = || {
        let targets = collector.targets();
        let up = |job: &str| targets.iter().any(|t| t.job == job && t.health == TargetHealth::Up);
        up("srv") && up("a") && targets.iter().any(|t| t.job == "aaaa")
    };
    wait_for("every DNS job has its targets", ready).await;
    let targets = collector.targets();
    let srv: Vec<_> = targets.iter().filter(|t| t.job == "srv").collect();
    assert_eq!(srv.len(), 1, "node2 dropped by relabeling: {srv:?}");
    assert_eq!(srv[0].labels.get("instance"), Some(format!("127.0.0.1:{exporter_port}").as_str()));
    assert_eq!(srv[0].labels.get("srv_target"), Some("node1.tarsier.test."));
    let discovered = &srv[0].discovered_labels;
    assert_eq!(discovered.get("__meta_dns_name"), Some("_metrics._tcp.tarsier.test"));
    assert_eq!(discovered.get("__meta_dns_srv_record_port"), Some(exporter_port.to_string().as_str()));
    assert_eq!(discovered.get("__address__"), Some(format!("node1.tarsier.test:{exporter_port}").as_str()));
    let dropped = collector.dropped_targets();
    assert!(dropped.iter().any(|d| d.discovered_labels.get("__address__") == Some("node2.tarsier.test:9999")));

    let a: Vec<_> = targets.iter().filter(|t| t.job == "a").collect();
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].labels.get("instance"), Some(exporter.as_str()));
    assert_eq!(a[0].discovered_labels.get("__meta_dns_name"), Some("node1.tarsier.test"));
    let aaaa: Vec<_> = targets.iter().filter(|t| t.job == "aaaa").collect();
    assert_eq!(aaaa.len(), 1, "the missing name has no targets: {aaaa:?}");
    assert_eq!(aaaa[0].labels.get("instance"), Some("[::1]:9100"));

    let scraped = || {
        let series = sink.series.lock().unwrap();
        ["srv", "a"].iter().all(|job| {
            series.iter().any(|s| s.labels.metric_name() == Some("dns_found") && s.labels.get("job") == Some(job))
        })
    };
    wait_for("both jobs shipped the page", scraped).await;
    collector.shutdown().await.unwrap();
    drop(dns);
}
