//! Helpers shared by the root crate's process-level tests: start the real binary, wait for
//! readiness by polling, stop it with SIGTERM, query it; the PromQL differential harness (also
//! used by the benchmarks through `#[path]`); and alerting's SMTP sink.
#![allow(dead_code)]

/// rcgen CA and leaf certificates (the collector's TLS test helper).
#[path = "../../collector/tests/common/certs.rs"]
pub mod certs;
/// Remote-write the same data into Tarsier and a real Prometheus and compare query results.
pub mod promql_differential;
/// aiosmtpd on loopback, the email receiver's peer (alerting's own test helper).
#[path = "../../alerting/tests/notify_common/smtp.rs"]
pub mod smtp;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Generous bound for "eventually" on a loaded 2-core CI machine.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// A `tarsier` process, killed when dropped.
pub struct Proc {
    pub child: Child,
    pub base: String,
}

impl Proc {
    pub fn start(args: &[&str], listen: &str) -> Proc {
        Self::spawn(args, listen, Stdio::inherit())
    }

    /// Like [`Proc::start`], with the process's log (stderr) written to `log` for a test to read.
    pub fn start_logging_to(args: &[&str], listen: &str, log: &std::path::Path) -> Proc {
        Self::spawn(args, listen, std::fs::File::create(log).expect("create log file").into())
    }

    fn spawn(args: &[&str], listen: &str, stderr: Stdio) -> Proc {
        let child = Command::new(env!("CARGO_BIN_EXE_tarsier"))
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::inherit())
            .stderr(stderr)
            .spawn()
            .expect("start tarsier");
        Proc { child, base: format!("http://{listen}") }
    }

    pub async fn wait_ready(&mut self, client: &reqwest::Client) {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("tarsier exited before becoming ready: {status}");
            }
            if let Ok(r) = client.get(format!("{}/-/ready", self.base)).send().await
                && r.status().is_success()
            {
                return;
            }
            assert!(started.elapsed() < DEADLINE, "tarsier at {} not ready within {DEADLINE:?}", self.base);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM, then the exit status must be success.
    pub fn stop(mut self) {
        self.signal("TERM");
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "tarsier exited with {status} after SIGTERM");
                return;
            }
            assert!(started.elapsed() < DEADLINE, "tarsier did not stop within {DEADLINE:?} of SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill").arg(format!("-{signal}")).arg(self.child.id().to_string()).status().unwrap();
        assert!(status.success());
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub async fn get_json(client: &reqwest::Client, url: &str) -> Value {
    let response = client.get(url).send().await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = response.status();
    let text = response.text().await.unwrap();
    assert!(status.is_success(), "GET {url} answered {status}: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("GET {url}: not JSON ({e}): {text}"))
}

/// Every log line a Loki selector returns, from the beginning of time.
pub async fn log_lines(client: &reqwest::Client, base: &str, query: &str) -> Vec<(Value, String)> {
    let url = reqwest::Url::parse_with_params(
        &format!("{base}/loki/api/v1/query_range"),
        &[("query", query), ("limit", "5000"), ("start", "0"), ("direction", "forward")],
    )
    .unwrap();
    let body = get_json(client, url.as_str()).await;
    let mut out = Vec::new();
    for stream in body["data"]["result"].as_array().unwrap() {
        for v in stream["values"].as_array().unwrap() {
            out.push((stream["stream"].clone(), v[1].as_str().unwrap().to_string()));
        }
    }
    out
}

/// Polls until `query` returns at least `n` lines.
pub async fn await_lines(client: &reqwest::Client, base: &str, query: &str, n: usize) -> Vec<(Value, String)> {
    let started = Instant::now();
    loop {
        let lines = log_lines(client, base, query).await;
        if lines.len() >= n {
            return lines;
        }
        assert!(started.elapsed() < DEADLINE, "{query}: {} of {n} lines within {DEADLINE:?}", lines.len());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls until an instant PromQL query returns at least one series.
pub async fn await_series(client: &reqwest::Client, base: &str, query: &str) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let url = reqwest::Url::parse_with_params(&format!("{base}/api/v1/query"), &[("query", query)]).unwrap();
        let body = get_json(client, url.as_str()).await;
        assert_eq!(body["status"], "success");
        let result = body["data"]["result"].as_array().unwrap().clone();
        if !result.is_empty() {
            return result;
        }
        assert!(started.elapsed() < DEADLINE, "no series for {query} within {DEADLINE:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn append_line(path: &std::path::Path, line: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
    writeln!(f, "{line}").unwrap();
}

/// Serves `body` at `/metrics` on a free local port, like an application a test scrapes;
/// returns `host:port`.
pub async fn serve_metrics_page(body: &'static str) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route("/metrics", axum::routing::get(move || async move { body }));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr.to_string()
}

/// A webhook receiver like a chat bot's: collects the JSON bodies it is sent.
pub async fn serve_webhook() -> (String, std::sync::Arc<std::sync::Mutex<Vec<Value>>>) {
    let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let sink = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
            let sink = sink.clone();
            async move {
                sink.lock().unwrap().push(body);
                "ok"
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/hook"), received)
}

/// Polls the webhook's bodies until one has `status`; returns it.
pub async fn await_webhook(received: &std::sync::Mutex<Vec<Value>>, status: &str) -> Value {
    let started = Instant::now();
    loop {
        if let Some(body) = received.lock().unwrap().iter().find(|b| b["status"] == status) {
            return body.clone();
        }
        assert!(started.elapsed() < DEADLINE, "no {status} notification within {DEADLINE:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
