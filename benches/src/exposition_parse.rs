//! Scenario `exposition-parse`: throughput of Tarsier's Prometheus text-format parser on a real
//! node_exporter scrape (the corpus's 237-family dump, plus a live page when Debian's
//! `prometheus-node-exporter` is installed), single-threaded, with the `prometheus-parse` crate
//! parsing the same input in the same run. Two Tarsier figures: `parse_each` (zero-copy, what the
//! scraper uses) and `parse` (every sample copied out, for comparison).

use std::hint::black_box;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::report::{self, round};

/// Each parser runs for at least this long per input.
const MIN_TIME: Duration = Duration::from_secs(2);

fn corpus_page() -> anyhow::Result<(String, String)> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/corpora/exposition/prometheus-textparse/alltypes.237mfs.prom.txt");
    let text = std::fs::read_to_string(&path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(("alltypes.237mfs.prom.txt".into(), text))
}

/// One page from a node_exporter started for the purpose, if the Debian package is installed.
fn live_node_exporter_page() -> Option<(String, String)> {
    let binary = "/usr/bin/prometheus-node-exporter";
    if !std::path::Path::new(binary).exists() {
        eprintln!("prometheus-node-exporter not installed (apt-get install -y prometheus-node-exporter): corpus only");
        return None;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0").ok()?.local_addr().ok()?.port();
    let mut child = Command::new(binary)
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let deadline = Instant::now() + Duration::from_secs(10);
    let page = loop {
        if let Some(page) = http_get(port) {
            break Some(page);
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = child.kill();
    let _ = child.wait();
    page.map(|p| ("node_exporter live page".into(), p))
}

/// A minimal HTTP/1.0 GET of /metrics (text format, no compression).
fn http_get(port: u16) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\nAccept: text/plain\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let ok = head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200");
    ok.then(|| body.to_string())
}

/// MB/s of `parse` over `text`, run repeatedly for at least `MIN_TIME`.
fn throughput(text: &str, mut parse: impl FnMut(&str) -> usize) -> f64 {
    black_box(parse(text)); // warm up
    let start = Instant::now();
    let mut bytes = 0usize;
    while start.elapsed() < MIN_TIME {
        black_box(parse(black_box(text)));
        bytes += text.len();
    }
    bytes as f64 / start.elapsed().as_secs_f64() / 1e6
}

pub fn run() -> anyhow::Result<()> {
    let mut pages = vec![corpus_page()?];
    pages.extend(live_node_exporter_page());
    for (input, text) in pages {
        let samples = collector::scrape::exposition::parse_each(&text, |_| {})
            .map_err(|e| anyhow::anyhow!("{input}: Tarsier rejects the page: {e}"))?;
        let zero_copy = throughput(&text, |t| {
            let mut labels = 0;
            collector::scrape::exposition::parse_each(t, |s| labels += s.labels.len()).unwrap_or(0) + labels
        });
        let owned = throughput(&text, |t| collector::scrape::exposition::parse(t).map(|s| s.len()).unwrap_or(0));
        let peer_samples = prometheus_parse_samples(&text);
        let peer = throughput(&text, prometheus_parse_samples);
        report::emit(
            "exposition_parse",
            &[
                ("input", Value::from(input)),
                ("bytes", Value::from(text.len())),
                ("samples", Value::from(samples)),
                ("mb_per_second", Value::from(round(zero_copy))),
                ("owned_mb_per_second", Value::from(round(owned))),
                ("peer_samples", Value::from(peer_samples)),
            ],
            Some(("prometheus-parse 0.2.5", round(peer), round(zero_copy / peer))),
        );
    }
    Ok(())
}

/// `prometheus-parse` through its only entry point (an iterator of owned lines).
fn prometheus_parse_samples(text: &str) -> usize {
    let lines = text.lines().map(|l| Ok(l.to_string()));
    prometheus_parse::Scrape::parse(lines).map(|s| s.samples.len()).unwrap_or(0)
}
