//! Scraping over HTTPS with Prometheus's auth and TLS keys, against a local rustls server with
//! certificates made for the test: the headers and client certificate arrive, `server_name`
//! replaces the address's host in the certificate check, and a wrong CA fails the scrape with the
//! TLS reason in the target's `lastError`. The shipping client (`HttpSink::with_tls`) uses the
//! same `tls_config` and picks up a rotated client certificate without a restart.

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use collector::{
    Authorization, BasicAuth, Collector, CollectorConfig, HttpSink, LogSink, MetricSink, Scheme, ScrapeConfig,
    StaticConfig, TargetHealth, TlsConfig,
};
use common::certs::{Ca, ca, leaf};
use common::{RecordingSink, wait_for};
use model::{Labels, LogRecord, Sample, TenantId, TimeSeries};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PAGE: &str = "tls_metric{a=\"b\"} 7 1395066363000\n";

/// One request as the server saw it: its head (request line and headers, lowercased) and the
/// certificate the client presented, if any (DER).
#[derive(Clone, Debug)]
struct Seen {
    head: String,
    client_cert: Option<Vec<u8>>,
}

/// An HTTPS server answering every request with `PAGE`; client certificates signed by `ca` are
/// accepted but optional.
async fn serve_tls(ca: &Ca, cert_pem: &str, key_pem: &str) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.cert.der().clone()).unwrap();
    let client_verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .allow_unauthenticated()
            .build()
            .unwrap();
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(cert_pem.as_bytes()).collect::<Result<_, _>>().unwrap();
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(client_verifier)
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let (acceptor, log) = (acceptor.clone(), log.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                let client_cert = tls.get_ref().1.peer_certificates().map(|c| c[0].to_vec());
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head).to_lowercase();
                // Read a POSTed body before answering: closing with unread bytes resets the
                // connection, and the client could see the reset instead of the answer.
                let length = head.lines().find_map(|l| l.strip_prefix("content-length: ")?.trim().parse().ok());
                let body_start = head.find("\r\n\r\n").unwrap() + 4;
                let mut unread = length.unwrap_or(0usize).saturating_sub(head.len() - body_start);
                while unread > 0 {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => unread = unread.saturating_sub(n),
                    }
                }
                log.lock().unwrap().push(Seen { head, client_cert });
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\n\
                     connection: close\r\n\r\n{PAGE}",
                    PAGE.len()
                );
                let _ = tls.write_all(response.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (address, seen)
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn https_job(name: &str, address: &str, tls: TlsConfig) -> ScrapeConfig {
    ScrapeConfig {
        job_name: name.into(),
        scheme: Scheme::Https,
        scrape_interval: Some(Duration::from_millis(200)),
        static_configs: vec![StaticConfig { targets: vec![address.to_string()], labels: Default::default() }],
        tls_config: tls,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_scrapes_send_auth_and_client_certs_and_a_wrong_ca_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let (good_ca, other_ca) = (ca("tarsier test ca"), ca("some other ca"));
    // The certificate is only valid for this name, never for 127.0.0.1: server_name must be used.
    let (server_cert, server_key) = leaf(&good_ca, &["scrape.tarsier.test"]);
    let (client_cert, client_key) = leaf(&good_ca, &["collector.tarsier.test"]);
    let (address, seen) = serve_tls(&good_ca, &server_cert, &server_key).await;
    let ca_file = write(dir.path(), "ca.pem", &good_ca.cert.pem());
    let other_ca_file = write(dir.path(), "other-ca.pem", &other_ca.cert.pem());
    let tls = TlsConfig {
        ca_file: Some(ca_file.clone()),
        server_name: Some("scrape.tarsier.test".into()),
        ..Default::default()
    };

    let mut config = CollectorConfig::default();
    config.shipping.batch_max_wait = Duration::from_millis(20);
    let mut bearer = https_job(
        "bearer",
        &address,
        TlsConfig {
            cert_file: Some(write(dir.path(), "client.pem", &client_cert)),
            key_file: Some(write(dir.path(), "client-key.pem", &client_key)),
            ..tls.clone()
        },
    );
    bearer.bearer_token_file = Some(write(dir.path(), "token", "s3cr3t-token\n"));
    bearer.params = [("module".to_string(), vec!["http_2xx".to_string()])].into();
    bearer.metrics_path = "/probe".into();
    let mut basic = https_job("basic", &address, tls.clone());
    basic.basic_auth = Some(BasicAuth {
        username: "scraper".into(),
        password: None,
        password_file: Some(write(dir.path(), "password", "pa55word")),
    });
    basic.honor_timestamps = false;
    let mut custom = https_job("custom", &address, tls.clone());
    custom.authorization =
        Some(Authorization { kind: "Token".into(), credentials: Some("abc".into()), credentials_file: None });
    let wrong_ca = https_job("wrong_ca", &address, TlsConfig { ca_file: Some(other_ca_file), ..tls.clone() });
    let no_server_name = https_job("no_server_name", &address, TlsConfig { server_name: None, ..tls.clone() });
    let insecure = https_job(
        "insecure",
        &address,
        TlsConfig { insecure_skip_verify: true, ca_file: None, server_name: None, ..Default::default() },
    );
    config.scrape_configs = vec![bearer, basic, custom, wrong_ca, no_server_name, insecure];
    config.validate().unwrap();

    let state = tempfile::tempdir().unwrap();
    let sink = Arc::new(RecordingSink::default());
    let collector = Collector::start(config, state.path(), sink.clone(), sink.clone()).await.unwrap();
    let all_scraped = || collector.targets().iter().all(|t| t.health != TargetHealth::Unknown);
    wait_for("every job scraped once", all_scraped).await;

    let targets = collector.targets();
    let status = |job: &str| targets.iter().find(|t| t.job == job).unwrap().clone();
    for job in ["bearer", "basic", "custom", "insecure"] {
        let t = status(job);
        assert_eq!(t.health, TargetHealth::Up, "{job}: {:?}", t.last_error);
        assert!(t.scrape_url.starts_with("https://127.0.0.1:"), "{}", t.scrape_url);
    }
    let wrong = status("wrong_ca");
    assert_eq!(wrong.health, TargetHealth::Down);
    let error = wrong.last_error.unwrap();
    assert!(error.contains("invalid peer certificate: UnknownIssuer"), "{error}");
    let error = status("no_server_name").last_error.unwrap();
    assert!(error.contains("invalid peer certificate: certificate not valid for name \"127.0.0.1\""), "{error}");

    let seen = seen.lock().unwrap().clone();
    let bearer_request = seen.iter().find(|s| s.head.contains("authorization: bearer s3cr3t-token")).unwrap();
    assert!(bearer_request.head.starts_with("get /probe?module=http_2xx http/1.1"), "{}", bearer_request.head);
    assert!(bearer_request.client_cert.is_some(), "cert_file/key_file present a client certificate");
    assert!(bearer_request.head.contains("x-prometheus-scrape-timeout-seconds: 0.2"), "{}", bearer_request.head);
    // base64("scraper:pa55word"), lowercased as the whole head is.
    let basic_header = "authorization: basic c2NyYXBlcjpwYTU1d29yZA==".to_lowercase();
    let basic_request = seen.iter().find(|s| s.head.contains(&basic_header)).unwrap();
    assert!(basic_request.client_cert.is_none());
    assert!(seen.iter().any(|s| s.head.contains("authorization: token abc")));

    let shipped = |job: &str| {
        sink.series
            .lock()
            .unwrap()
            .iter()
            .any(|s| s.labels.metric_name() == Some("tls_metric") && s.labels.get("job") == Some(job))
    };
    wait_for("the pages are shipped", || shipped("bearer") && shipped("basic")).await;
    let series = sink.series.lock().unwrap().clone();
    let sample_of = |job: &str| {
        series
            .iter()
            .find(|s| s.labels.metric_name() == Some("tls_metric") && s.labels.get("job") == Some(job))
            .unwrap()
            .samples[0]
    };
    assert_eq!(sample_of("bearer").timestamp_ms, 1395066363000, "honor_timestamps defaults to true");
    assert!(sample_of("basic").timestamp_ms > 1395066363000, "honor_timestamps: false uses the scrape time");
    collector.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipping_over_https_presents_the_client_certificate_and_picks_up_a_rotated_one() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca("tarsier test ca");
    let (server_cert, server_key) = leaf(&ca, &["server.tarsier.test"]);
    let (address, seen) = serve_tls(&ca, &server_cert, &server_key).await;
    let (first, first_key) = leaf(&ca, &["agent-1.tarsier.test"]);
    let tls = TlsConfig {
        ca_file: Some(write(dir.path(), "ca.pem", &ca.cert.pem())),
        cert_file: Some(write(dir.path(), "agent.crt", &first)),
        key_file: Some(write(dir.path(), "agent.key", &first_key)),
        server_name: Some("server.tarsier.test".into()),
        insecure_skip_verify: false,
    };
    tls.validate("agent.tls_config").unwrap();
    let sink = HttpSink::with_tls(&format!("https://{address}"), Duration::from_secs(5), &tls).unwrap();
    let tenant = TenantId::new("team-a").unwrap();
    let record = LogRecord { timestamp_ns: 1, labels: Labels::from_pairs([("job", "x")]), line: "hello".into() };
    sink.push_logs(tenant.clone(), vec![record.clone()]).await.unwrap();
    let der = |pem: &str| CertificateDer::from_pem_slice(pem.as_bytes()).unwrap().to_vec();
    let last = || seen.lock().unwrap().last().cloned().unwrap();
    assert!(last().head.starts_with("post /loki/api/v1/push http/1.1"), "{}", last().head);
    assert_eq!(last().client_cert, Some(der(&first)));

    // Rotate as cert-manager does: both files replaced whole (written aside, renamed over).
    let (second, second_key) = leaf(&ca, &["agent-2.tarsier.test"]);
    for (name, text) in [("agent.key", &second_key), ("agent.crt", &second)] {
        write(dir.path(), &format!("{name}.new"), text);
        std::fs::rename(dir.path().join(format!("{name}.new")), dir.path().join(name)).unwrap();
    }
    // The server closes every connection, so each push is a new handshake.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let series = TimeSeries::new(Labels::from_pairs([("__name__", "m")]), vec![Sample::new(1, 2.0)]);
        sink.push_samples(tenant.clone(), vec![series]).await.unwrap();
        if last().client_cert == Some(der(&second)) {
            break;
        }
        assert_eq!(last().client_cert, Some(der(&first)), "the old certificate until the new one is read");
        assert!(std::time::Instant::now() < deadline, "the rotated client certificate was never presented");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(last().head.starts_with("post /api/v1/write http/1.1"), "{}", last().head);
}

/// `tls_config.ca_file` is re-read like the client certificate: a server whose certificate a new
/// CA signed is trusted without a restart, and a broken bundle keeps the roots that work (#10).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipping_picks_up_a_changed_ca_file_and_keeps_the_old_roots_when_it_breaks() {
    let dir = tempfile::tempdir().unwrap();
    let (old_ca, new_ca) = (ca("tarsier old ca"), ca("tarsier new ca"));
    let (server_cert, server_key) = leaf(&new_ca, &["server.tarsier.test"]);
    let (address, _seen) = serve_tls(&new_ca, &server_cert, &server_key).await;
    let ca_file = write(dir.path(), "ca.pem", &old_ca.cert.pem());
    let replace = |text: &str| {
        write(dir.path(), "ca.pem.new", text);
        std::fs::rename(dir.path().join("ca.pem.new"), &ca_file).unwrap();
    };
    let tls = TlsConfig {
        ca_file: Some(ca_file.clone()),
        server_name: Some("server.tarsier.test".into()),
        ..TlsConfig::default()
    };
    let sink = HttpSink::with_tls(&format!("https://{address}"), Duration::from_secs(5), &tls).unwrap();
    let tenant = TenantId::new("team-a").unwrap();
    let record = LogRecord { timestamp_ns: 1, labels: Labels::from_pairs([("job", "x")]), line: "hello".into() };
    let err = sink.push_logs(tenant.clone(), vec![record.clone()]).await.unwrap_err();
    assert!(err.message.to_lowercase().contains("certificate"), "the old CA does not know the server: {err}");

    replace(&new_ca.cert.pem());
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while let Err(e) = sink.push_logs(tenant.clone(), vec![record.clone()]).await {
        assert!(std::time::Instant::now() < deadline, "the new ca_file was never used: {e}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // A half-written bundle: refused once it is read (counted), and the new roots stay in use.
    replace("-----BEGIN CERTIFICATE-----\nhalf\n");
    let mut registry = prometheus_client::registry::Registry::default();
    collector::tls::register_metrics(&mut registry);
    let failure =
        format!("tarsier_tls_certificate_reloads_total{{cert_file=\"{}\",result=\"failure\"}} 1", ca_file.display());
    loop {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        if text.contains(&failure) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the broken ca_file was never read: {text}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    sink.push_logs(tenant, vec![record]).await.unwrap();
}
