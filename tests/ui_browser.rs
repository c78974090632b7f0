//! The web UI in a real browser: starts `tarsier run` (temp data dir, `--tail` on a generated log
//! file, `--scrape` of a local target, an always-firing alert with a notifications file so alerts
//! group and silences work, one live tail slot so a second tail is refused), waits until the data is queryable, then runs
//! `query-ui/web/tests/browser.mjs` (playwright-core driving headless Chromium) against it.
//! A second `tarsier server` with `server.auth` on serves the sign-in case. Screenshots land in
//! `target/ui-screenshots/`.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(30);
const NEEDLE: &str = "checkout-7f3a";
const NEEDLE_LINES: usize = 40;

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Node, the web dir's node_modules (playwright-core) and Chromium must be there: say how if not.
fn check_tools(web: &Path) -> PathBuf {
    let node = Command::new("node").arg("--version").output();
    assert!(
        node.is_ok_and(|o| o.status.success()),
        "node is missing: apt-get install -y nodejs npm (scripts/test.sh does this)"
    );
    assert!(
        web.join("node_modules/playwright-core").is_dir(),
        "playwright-core is not installed: (cd query-ui/web && npm ci) (scripts/test.sh does this)"
    );
    let chromium = std::env::var_os("CHROMIUM").map(PathBuf::from).unwrap_or_else(|| "/usr/bin/chromium".into());
    assert!(chromium.exists(), "{} is missing: apt-get install -y chromium", chromium.display());
    chromium
}

/// A Prometheus-format target with three series of one counter.
async fn serve_metrics() -> String {
    let addr = support::serve_metrics_page(
        "# TYPE shop_orders_total counter\nshop_orders_total{status=\"paid\"} 120\n\
         shop_orders_total{status=\"failed\"} 7\nshop_orders_total{status=\"refunded\"} 3\n",
    )
    .await;
    format!("http://{addr}/metrics")
}

/// A webhook receiver that accepts every notification.
async fn serve_webhook() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route("/hook", axum::routing::post(|| async { "ok" }));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/hook")
}

fn write_logs(path: &Path) {
    let mut text = String::new();
    let levels = ["info", "info", "warn", "error", "debug"];
    for i in 0..400 {
        let level = levels[i % levels.len()];
        if i % 10 == 0 && i / 10 < NEEDLE_LINES {
            text.push_str(&format!("level={level} msg=\"order placed\" order={NEEDLE}-{i} user=u{}\n", i % 7));
        } else {
            text.push_str(&format!("level={level} msg=\"request served\" path=/api/items/{i} took={}ms\n", i % 90));
        }
    }
    std::fs::write(path, text).unwrap();
}

async fn poll_until(client: &reqwest::Client, url: &str, what: &str, ok: impl Fn(&serde_json::Value) -> bool) {
    let started = Instant::now();
    loop {
        if let Ok(r) = client.get(url).send().await
            && let Ok(body) = r.json::<serde_json::Value>().await
            && ok(&body)
        {
            return;
        }
        assert!(started.elapsed() < DEADLINE, "{what} not ready within {DEADLINE:?} ({url})");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_ui_in_headless_chromium() {
    let web = repo().join("query-ui/web");
    let chromium = check_tools(&web);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("shop.log");
    write_logs(&log);
    let target = serve_metrics().await;
    let hook = serve_webhook().await;
    let listen =
        format!("127.0.0.1:{}", std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port());
    let rules = dir.path().join("rules.yml");
    std::fs::write(
        &rules,
        "groups:\n- name: shop\n  interval: 1s\n  rules:\n  - alert: OrdersFailing\n    expr: shop_orders_total{status=\"failed\"} > 0\n    \
         labels:\n      severity: page\n    annotations:\n      summary: orders are failing\n",
    )
    .unwrap();
    let notify = dir.path().join("notify.yml");
    std::fs::write(
        &notify,
        format!(
            "route:\n  receiver: hook\n  group_by: [alertname]\n  group_wait: 0s\n  group_interval: 1s\n  repeat_interval: 1h\n\
             receivers:\n- name: hook\n  webhook_configs:\n  - url: {hook}\n"
        ),
    )
    .unwrap();
    let config = dir.path().join("tarsier.yaml");
    std::fs::write(
        &config,
        format!(
            "server:\n  max_tail_connections: 1\ncollector:\n  global:\n    scrape_interval: 1s\n    scrape_timeout: 1s\n  self_scrape_interval: 1s\n  shipping:\n    batch_max_wait: 50ms\n\
             indexer:\n  commit_interval: 200ms\nalerting:\n  rule_files: ['{}']\n  notifications_file: {}\n",
            rules.display(),
            notify.display()
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let glob = format!("{}/*.log", dir.path().display());
    let _server = Server(
        Command::new(env!("CARGO_BIN_EXE_tarsier"))
            .args(["run", "--config", config.to_str().unwrap(), "--data-dir", data.to_str().unwrap()])
            .args(["--listen", &listen, "--tail", &glob, "--scrape", &format!("shop={target}")])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start tarsier"),
    );
    let base = format!("http://{listen}");
    // The sign-in case's server: tokens required, nothing stored.
    let auth_listen =
        format!("127.0.0.1:{}", std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port());
    let tokens = dir.path().join("tokens.yaml");
    std::fs::write(&tokens, "- {name: ui, token: ui-read-token-000001, tenants: [default], roles: [read]}\n").unwrap();
    let auth_config = dir.path().join("auth.yaml");
    std::fs::write(
        &auth_config,
        format!("server:\n  auth:\n    enabled: true\n    tokens_file: {}\n", tokens.display()),
    )
    .unwrap();
    let _auth_server = Server(
        Command::new(env!("CARGO_BIN_EXE_tarsier"))
            .args(["server", "--config", auth_config.to_str().unwrap()])
            .args(["--data-dir", dir.path().join("auth-data").to_str().unwrap(), "--listen", &auth_listen])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start tarsier"),
    );
    let client = reqwest::Client::new();
    let auth_base = format!("http://{auth_listen}");
    poll_until(&client, &format!("{auth_base}/api/v1/status/buildinfo"), "the server with tokens", |b| {
        b["errorType"] == "unauthorized"
    })
    .await;
    poll_until(&client, &format!("{base}/api/v1/status/buildinfo"), "the server", |b| b["status"] == "success").await;
    let q = reqwest::Url::parse_with_params(
        &format!("{base}/loki/api/v1/query_range"),
        &[("query", format!("{{job=\"varlogs\"}} |= \"{NEEDLE}\"").as_str()), ("limit", "1000"), ("start", "0")],
    )
    .unwrap();
    poll_until(&client, q.as_str(), "the tailed lines", |b| {
        let n: usize = b["data"]["result"]
            .as_array()
            .map_or(0, |r| r.iter().map(|s| s["values"].as_array().map_or(0, Vec::len)).sum());
        n == NEEDLE_LINES
    })
    .await;
    poll_until(&client, &format!("{base}/api/v1/query?query=shop_orders_total"), "the scraped series", |b| {
        b["data"]["result"].as_array().is_some_and(|r| r.len() == 3)
    })
    .await;
    poll_until(&client, &format!("{base}/api/v2/alerts/groups"), "the firing alert", |b| {
        b.as_array().is_some_and(|g| !g.is_empty())
    })
    .await;

    let shots = repo().join("target/ui-screenshots");
    let started = Instant::now();
    let out = Command::new("node")
        .arg(web.join("tests/browser.mjs"))
        .current_dir(&web)
        .env("TARSIER_URL", &base)
        .env("NEEDLE", NEEDLE)
        .env("LOG_FILE", &log)
        .env("CONFIG_FILE", &config)
        .env("NEEDLE_LINES", NEEDLE_LINES.to_string())
        .env("SERIES_METRIC", "shop_orders_total")
        .env("SERIES_COUNT", "3")
        .env("SCREENSHOTS", &shots)
        .env("CHROMIUM", &chromium)
        .env("AUTH_URL", &auth_base)
        .env("AUTH_TOKEN", "ui-read-token-000001")
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    println!("browser cases took {:?}; screenshots in {}", started.elapsed(), shots.display());
    assert!(out.status.success(), "browser tests failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
}
