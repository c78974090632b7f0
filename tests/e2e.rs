//! End to end through the real binary: a line appended to a tailed file and a sample scraped from
//! a local endpoint both come back through the Loki and Prometheus query APIs, and are still there
//! after SIGTERM and a restart. Then the same path split over `tarsier agent` + `tarsier server`.

mod support;

#[path = "e2e/disk_full.rs"]
mod disk_full;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::Proc as Tarsier;
use support::*;

/// A Prometheus-format endpoint like an application's.
async fn serve_metrics() -> String {
    serve_metrics_page(
        "# HELP e2e_requests_total Requests served.\n# TYPE e2e_requests_total counter\n\
         e2e_requests_total{path=\"/api\",code=\"200\"} 1027\n\
         e2e_requests_total{path=\"/api\",code=\"500\"} 3\n\
         # TYPE e2e_temperature_celsius gauge\ne2e_temperature_celsius 21.5\n",
    )
    .await
}

fn write_config(dir: &Path, listen: &str, log_glob: &str, target: &str, server_url: &str) -> std::path::PathBuf {
    let path = dir.join("tarsier.yaml");
    let yaml = format!(
        "data_dir: {data}\nserver:\n  listen: {listen}\ncollector:\n  tail:\n    include: ['{log_glob}']\n    rescan_interval: 200ms\n  \
         global:\n    scrape_interval: 1s\n    scrape_timeout: 1s\n  self_scrape_interval: 1s\n  shipping:\n    batch_max_wait: 50ms\n  \
         scrape_configs:\n  - job_name: app\n    static_configs:\n    - targets: ['{target}']\nindexer:\n  commit_interval: 200ms\nagent:\n  server_url: {server_url}\n",
        data = dir.join("data").display(),
    );
    std::fs::write(&path, yaml).unwrap();
    path
}

/// Polls a Loki query until a line containing `needle` comes back; returns how long it took.
async fn await_log_line(client: &reqwest::Client, base: &str, selector: &str, needle: &str) -> Duration {
    let started = Instant::now();
    let query = format!("{selector} |= \"{needle}\"");
    loop {
        let url = reqwest::Url::parse_with_params(
            &format!("{base}/loki/api/v1/query_range"),
            &[("query", query.as_str()), ("limit", "10"), ("start", "0")],
        )
        .unwrap();
        let body = get_json(client, url.as_str()).await;
        let result = &body["data"]["result"];
        let lines: Vec<&str> = result
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| s["values"].as_array().unwrap().iter().map(|v| v[1].as_str().unwrap()))
            .collect();
        if let Some(line) = lines.first() {
            assert!(line.contains(needle), "line filter returned a line without the needle: {line}");
            assert_eq!(lines.len(), 1, "the line was returned {} times: {lines:?}", lines.len());
            return started.elapsed();
        }
        assert!(started.elapsed() < DEADLINE, "no line with {needle:?} for {selector} within {DEADLINE:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_round_trip_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    append_line(&log, "starting the e2e application");
    let target = serve_metrics().await;
    let listen = format!("127.0.0.1:{}", free_port());
    let glob = format!("{}/*.log", dir.path().display());
    let config = write_config(dir.path(), &listen, &glob, &target, "http://127.0.0.1:1");
    let client = reqwest::Client::new();
    let args = ["run", "--config", config.to_str().unwrap()];

    let mut tarsier = Tarsier::start(&args, &listen);
    tarsier.wait_ready(&client).await;
    let base = tarsier.base.clone();
    let needle = format!("needle-{}", std::process::id());
    append_line(&log, &format!("level=error msg=\"payment failed\" id={needle}"));
    let selector = format!("{{filename=\"{}\", job=\"varlogs\"}}", log.display());
    let took = await_log_line(&client, &base, &selector, &needle).await;
    println!("log line searchable {took:?} after it was written");

    let series = await_series(&client, &base, "e2e_requests_total{job=\"app\"}").await;
    assert_eq!(series.len(), 2, "both label sets of the counter: {series:?}");
    assert_eq!(series[0]["metric"]["instance"], target.as_str());
    let up = await_series(&client, &base, "up{job=\"app\"}").await;
    assert_eq!(up[0]["value"][1], "1");
    await_series(&client, &base, "scrape_duration_seconds{job=\"app\"}").await;
    await_series(&client, &base, "up{job=\"tarsier\"}").await;
    let gauge = await_series(&client, &base, "e2e_temperature_celsius").await;
    assert_eq!(gauge[0]["value"][1], "21.5");
    let seen_at = gauge[0]["value"][0].as_f64().unwrap();

    // Range query over what was scraped: Prometheus's matrix shape.
    let url = reqwest::Url::parse_with_params(
        &format!("{base}/api/v1/query_range"),
        &[
            ("query", "e2e_temperature_celsius"),
            ("start", &format!("{}", seen_at - 5.0)),
            ("end", &format!("{seen_at}")),
            ("step", "1"),
        ],
    )
    .unwrap();
    let body = get_json(&client, url.as_str()).await;
    assert_eq!(body["data"]["resultType"], "matrix");
    assert!(!body["data"]["result"][0]["values"].as_array().unwrap().is_empty());

    // Target health in Prometheus's shape, for the UI and Grafana.
    let targets = get_json(&client, &format!("{base}/api/v1/targets")).await;
    let active = targets["data"]["activeTargets"].as_array().unwrap();
    let app = active.iter().find(|t| t["scrapePool"] == "app").expect("the app target is listed");
    assert_eq!(app["health"], "up", "{app}");
    assert_eq!(app["labels"]["instance"], target.as_str());
    assert_eq!(app["scrapeUrl"], format!("http://{target}/metrics"));

    // Operations endpoints.
    let metrics = client.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("tarsier_"), "own metrics exposed: {metrics}");
    assert!(client.get(format!("{base}/-/healthy")).send().await.unwrap().status().is_success());
    tarsier.stop();

    // Restart: what was acknowledged is still there.
    let mut tarsier = Tarsier::start(&args, &listen);
    tarsier.wait_ready(&client).await;
    await_log_line(&client, &base, &selector, &needle).await;
    let url = reqwest::Url::parse_with_params(
        &format!("{base}/api/v1/query"),
        &[("query", "e2e_temperature_celsius"), ("time", &format!("{seen_at}"))],
    )
    .unwrap();
    let body = get_json(&client, url.as_str()).await;
    assert_eq!(body["data"]["result"][0]["value"][1], "21.5", "sample survived the restart: {body}");
    // The tail resumes from its checkpoint: once a line written after the restart is searchable,
    // the needle (read before it) must still be there exactly once.
    let after = format!("after-restart-{}", std::process::id());
    append_line(&log, &after);
    await_log_line(&client, &base, &selector, &after).await;
    await_log_line(&client, &base, &selector, &needle).await;
    tarsier.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_ships_to_server() {
    let dir = tempfile::tempdir().unwrap();
    let server_dir = dir.path().join("server");
    let agent_dir = dir.path().join("agent");
    std::fs::create_dir_all(&server_dir).unwrap();
    std::fs::create_dir_all(&agent_dir).unwrap();
    let log = agent_dir.join("node.log");
    let target = serve_metrics().await;
    let server_listen = format!("127.0.0.1:{}", free_port());
    let agent_listen = format!("127.0.0.1:{}", free_port());
    let glob = format!("{}/*.log", agent_dir.display());
    let server_config = write_config(&server_dir, &server_listen, "/nonexistent/*.log", &target, "http://127.0.0.1:1");
    let agent_config = write_config(&agent_dir, &agent_listen, &glob, &target, &format!("http://{server_listen}"));
    let client = reqwest::Client::new();

    let mut server = Tarsier::start(&["server", "--config", server_config.to_str().unwrap()], &server_listen);
    server.wait_ready(&client).await;
    let mut agent = Tarsier::start(&["agent", "--config", agent_config.to_str().unwrap()], &agent_listen);
    agent.wait_ready(&client).await;

    let needle = format!("agent-needle-{}", std::process::id());
    append_line(&log, &format!("shipped over http {needle}"));
    let selector = format!("{{filename=\"{}\"}}", log.display());
    await_log_line(&client, &server.base, &selector, &needle).await;
    let series = await_series(&client, &server.base, "e2e_requests_total{job=\"app\"}").await;
    assert_eq!(series.len(), 2);
    await_series(&client, &server.base, "up{job=\"tarsier\"}").await;
    agent.stop();
    server.stop();
}

/// Polls the SMTP sink until a mail with this subject arrives; returns it.
async fn await_mail(sink: &support::smtp::SmtpSink, subject: &str) -> Value {
    let started = Instant::now();
    loop {
        if let Some(mail) = sink.mails().into_iter().find(|m| m["subject"] == subject) {
            return mail;
        }
        assert!(started.elapsed() < DEADLINE, "no mail {subject:?} within {DEADLINE:?}: {:?}", sink.mails());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Rules through `tarsier run`: a LogQL recording rule counts ERROR lines of the tailed files, a
/// PromQL alert on that recording fires, shows in Prometheus's rules and alerts APIs, reaches a
/// webhook in Alertmanager's payload and a real SMTP server over STARTTLS, shows in the
/// notification metrics, and resolves (and is notified resolved, by both) when errors stop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_rule_fires_and_resolves_through_a_webhook() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    append_line(&log, "starting");
    let target = serve_metrics().await;
    let (hook_url, received) = serve_webhook().await;
    let (cert, key) = support::smtp::server_certificate(dir.path());
    let smtp = support::smtp::SmtpSink::start(&["starttls", &cert, &key]);
    let listen = format!("127.0.0.1:{}", free_port());
    let glob = format!("{}/*.log", dir.path().display());
    let config = write_config(dir.path(), &listen, &glob, &target, "http://127.0.0.1:1");
    let log_rules = dir.path().join("log-rules.yml");
    std::fs::write(
        &log_rules,
        "groups:\n- name: logs\n  interval: 1s\n  rules:\n  - record: log:errors:count5s\n    \
         expr: sum by (filename) (count_over_time({job=\"varlogs\"} |= \"ERROR\" [5s]))\n",
    )
    .unwrap();
    let metric_rules = dir.path().join("rules.yml");
    std::fs::write(
        &metric_rules,
        "groups:\n- name: metrics\n  interval: 1s\n  rules:\n  - alert: LogErrors\n    expr: log:errors:count5s > 2\n    \
         labels:\n      severity: ticket\n    annotations:\n      summary: '{{ $value }} errors in {{ $labels.filename }}'\n",
    )
    .unwrap();
    let notify = dir.path().join("notify.yml");
    std::fs::write(
        &notify,
        format!(
            "global:\n  smtp_smarthost: 127.0.0.1:{port}\n  smtp_from: tarsier@example.com\n  smtp_auth_username: alerts\n  \
             smtp_auth_password: {SMTP_PASSWORD}\nroute:\n  receiver: hook\n  group_by: [alertname]\n  group_wait: 0s\n  \
             group_interval: 1s\n  repeat_interval: 1h\n  routes:\n  - {{receiver: chat, continue: true, group_by: [alertname, severity]}}\n  - {{receiver: hook}}\n\
             receivers:\n- name: chat\n  slack_configs:\n  - api_url: {SLACK_URL}\n    channel: '#alerts'\n\
             - name: hook\n  webhook_configs:\n  - url: {hook_url}\n    \
             send_resolved: true\n    http_config: {{authorization: {{credentials: {BEARER_TOKEN}}}}}\n  email_configs:\n  - to: oncall@example.com\n    send_resolved: true\n    \
             tls_config: {{ca_file: '{cert}', server_name: smtp.test}}\n",
            port = smtp.port,
        ),
    )
    .unwrap();
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!(
        "alerting:\n  rule_files: ['{}']\n  log_rule_files: ['{}']\n  notifications_file: {}\n",
        metric_rules.display(),
        log_rules.display(),
        notify.display()
    ));
    std::fs::write(&config, text).unwrap();

    let client = reqwest::Client::new();
    let server_log = dir.path().join("tarsier.log");
    let mut tarsier = Tarsier::start_logging_to(&["run", "--config", config.to_str().unwrap()], &listen, &server_log);
    tarsier.wait_ready(&client).await;
    let base = tarsier.base.clone();
    for i in 0..3 {
        append_line(&log, &format!("ERROR payment {i} failed"));
    }
    let started = Instant::now();
    let alert = loop {
        let body = get_json(&client, &format!("{base}/api/v1/alerts")).await;
        let alerts = body["data"]["alerts"].as_array().unwrap().clone();
        if let Some(a) = alerts.into_iter().find(|a| a["labels"]["alertname"] == "LogErrors") {
            break a;
        }
        assert!(started.elapsed() < DEADLINE, "LogErrors did not fire within {DEADLINE:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(alert["state"], "firing", "no `for`: fires at once");
    assert_eq!(alert["labels"]["filename"], log.display().to_string());
    assert_eq!(alert["annotations"]["summary"], format!("3 errors in {}", log.display()));
    let rules = get_json(&client, &format!("{base}/api/v1/rules")).await;
    let groups = rules["data"]["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2, "{rules}");
    for g in groups {
        assert_eq!(g["rules"][0]["health"], "ok", "{g}");
    }
    let alerting_only = get_json(&client, &format!("{base}/api/v1/rules?type=alert")).await;
    let kinds: Vec<usize> = alerting_only["data"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["rules"].as_array().unwrap().len())
        .collect();
    assert_eq!(kinds.iter().sum::<usize>(), 1);

    let firing = await_webhook(&received, "firing").await;
    assert_eq!(firing["version"], "4");
    assert_eq!(firing["receiver"], "hook");
    assert_eq!(firing["alerts"][0]["labels"]["alertname"], "LogErrors");
    assert_eq!(firing["alerts"][0]["labels"]["severity"], "ticket");
    assert_eq!(firing["commonAnnotations"]["summary"], format!("3 errors in {}", log.display()));
    let mail = await_mail(&smtp, "[FIRING:1] LogErrors").await;
    assert_eq!(
        (mail["starttls"].as_bool(), mail["rcpt_tos"].clone()),
        (Some(true), serde_json::json!(["oncall@example.com"]))
    );
    let text = mail["text"].as_str().unwrap();
    assert!(text.contains(&format!("3 errors in {}", log.display())), "{text}");
    // The deliveries show in the process's /metrics under Alertmanager's names (counted once the
    // receiver has answered, so poll).
    let started = Instant::now();
    loop {
        let metrics = client.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
        let count = |integration: &str| {
            let series = format!("alertmanager_notifications_total{{integration=\"{integration}\"}} ");
            metrics.lines().find_map(|l| l.strip_prefix(&series)?.parse::<f64>().ok()).unwrap_or(0.0)
        };
        if count("email") >= 1.0 && count("webhook") >= 1.0 {
            break;
        }
        assert!(started.elapsed() < DEADLINE, "notifications not counted in /metrics: {metrics}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // No more errors: the 5 s window empties, the alert resolves and the resolution is sent.
    let resolved = await_webhook(&received, "resolved").await;
    assert_eq!(resolved["alerts"][0]["status"], "resolved");
    let mail = await_mail(&smtp, "[RESOLVED] LogErrors").await;
    assert!(mail["html"].as_str().unwrap().contains("LogErrors"), "{mail}");
    assert_no_secret_shown(&client, &base, &server_log, &hook_url).await;
    tarsier.stop();
    let log_text = std::fs::read_to_string(&server_log).unwrap();
    for secret in [SLACK_URL, SLACK_TOKEN, SMTP_PASSWORD, BEARER_TOKEN, hook_url.as_str()] {
        assert!(!log_text.contains(secret), "the log shows {secret:?}:\n{log_text}");
    }
}

/// Secrets of the notifications file in the alerting test: a Slack webhook URL (its path is the
/// credential), the SMTP password and a webhook's bearer token.
const SLACK_TOKEN: &str = "T0SECRET/B0SECRET/XSLACKSECRETX";
const SLACK_URL: &str = "http://127.0.0.1:1/services/T0SECRET/B0SECRET/XSLACKSECRETX";
/// (The SMTP sink accepts only this password.)
const SMTP_PASSWORD: &str = "s3cret";
const BEARER_TOKEN: &str = "XBEARERSECRETX";

/// No status API, UI page or metric shows a secret of the notifications file, and the log has
/// the failed Slack delivery (so the URL had its chance to leak) without the URL.
async fn assert_no_secret_shown(client: &reqwest::Client, base: &str, log: &Path, hook_url: &str) {
    let started = Instant::now();
    let slack_failed = |text: String| text.lines().any(|l| l.contains("notification failed") && l.contains("slack"));
    while !slack_failed(std::fs::read_to_string(log).unwrap()) {
        assert!(started.elapsed() < DEADLINE, "no failed slack delivery logged within {DEADLINE:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = get_json(client, &format!("{base}/api/v2/status")).await;
    assert!(status["config"]["original"].as_str().unwrap().contains("<secret>"), "{status}");
    for path in [
        "/api/v1/status/config",
        "/api/v2/status",
        "/api/v2/receivers",
        "/api/v2/alerts",
        "/api/v1/alerts",
        "/api/v1/rules",
        "/api/v1/status/runtimeinfo",
        "/metrics",
        "/",
    ] {
        let response = client.get(format!("{base}{path}")).header("Accept", "text/html").send().await.unwrap();
        assert!(response.status().is_success(), "{path}: {}", response.status());
        let body = response.text().await.unwrap();
        for secret in [SLACK_TOKEN, SMTP_PASSWORD, BEARER_TOKEN, hook_url] {
            assert!(!body.contains(secret), "{path} shows {secret:?}: {body}");
        }
    }
}

/// `tarsier test-rules` gives promtool's exit codes and report on promtool's own test files.
#[test]
fn test_rules_command() {
    let testdata = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpora/alerts/prometheus-promtool-testdata");
    let run = |file: &str| {
        Command::new(env!("CARGO_BIN_EXE_tarsier")).arg("test-rules").arg(testdata.join(file)).output().unwrap()
    };
    let ok = run("no-test-group-interval.yml");
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stdout));
    assert!(String::from_utf8_lossy(&ok.stdout).contains("SUCCESS"));
    let failing = run("failing.yml");
    assert_eq!(failing.status.code(), Some(1));
    let out = String::from_utf8_lossy(&failing.stdout);
    assert!(out.contains("FAILED") && out.contains("alertname: Test"), "{out}");
}

/// schemathesis's CLI, or a failure naming the install command.
fn schemathesis() -> &'static str {
    let found = Command::new("schemathesis").arg("--version").output().is_ok_and(|o| o.status.success());
    assert!(
        found,
        "schemathesis is missing: pip install schemathesis || pip install --break-system-packages schemathesis"
    );
    "schemathesis"
}

/// Issue #10 point 5: schemathesis generates requests for every operation of
/// `docs/openapi.yaml` (read from the live server, so the served copy is the one checked) against
/// `tarsier run` holding logs, samples and an Alertmanager config. No request may answer 5xx or
/// take longer than the per-request timeout; examples per operation are bounded so the run stays
/// near two minutes in CI (`TARSIER_SCHEMATHESIS_EXAMPLES=200` for a longer run by hand).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_schemathesis_finds_no_server_error_or_hang() {
    let schemathesis = schemathesis();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    append_line(&log, "level=info msg=\"openapi fixture\"");
    let target = serve_metrics().await;
    let (hook_url, _received) = serve_webhook().await;
    let listen = format!("127.0.0.1:{}", free_port());
    let glob = format!("{}/*.log", dir.path().display());
    let config = write_config(dir.path(), &listen, &glob, &target, "http://127.0.0.1:1");
    let notify = dir.path().join("notify.yml");
    std::fs::write(
        &notify,
        format!("route:\n  receiver: hook\nreceivers:\n- name: hook\n  webhook_configs:\n  - url: {hook_url}\n"),
    )
    .unwrap();
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!("alerting:\n  notifications_file: {}\n", notify.display()));
    std::fs::write(&config, text).unwrap();

    let client = reqwest::Client::new();
    let mut tarsier = Tarsier::start(&["run", "--config", config.to_str().unwrap()], &listen);
    tarsier.wait_ready(&client).await;
    let base = tarsier.base.clone();
    // The spec's examples select `job="openapi"`: push such a stream so they find data.
    let now_ns = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let push =
        serde_json::json!({"streams": [{"stream": {"job": "openapi"}, "values": [[now_ns.to_string(), "hello"]]}]});
    let response = client.post(format!("{base}/loki/api/v1/push")).json(&push).send().await.unwrap();
    assert!(response.status().is_success(), "push: {}", response.status());
    await_lines(&client, &base, "{job=\"openapi\"}", 1).await;
    await_series(&client, &base, "e2e_requests_total").await;

    let examples: u64 = std::env::var("TARSIER_SCHEMATHESIS_EXAMPLES").ok().and_then(|v| v.parse().ok()).unwrap_or(40);
    let started = Instant::now();
    let mut child = Command::new(schemathesis)
        .args(["run", &format!("{base}/api/v1/openapi.yaml")])
        // Besides no 5xx: statuses, content types and bodies as the description documents them.
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,\
             response_headers_conformance",
        ])
        // One worker: CPython 3.11 can fail compiling schemathesis's generated code in two
        // threads at once ("AST constructor recursion depth mismatch"), a flake of the tool.
        .args(["--max-examples", &examples.to_string()])
        .args(["--request-timeout", "10", "--max-response-time", "10", "--workers", "1"])
        .args(["--generation-deterministic", "--no-color"])
        // schemathesis keeps a `.schemathesis/` cache in its working directory: not in the repository.
        .current_dir(dir.path())
        .env("SCHEMATHESIS_HOOKS", concat!(env!("CARGO_MANIFEST_DIR"), "/tests/schemathesis_hooks.py"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start schemathesis");
    let limit = Duration::from_secs(240 * examples.div_ceil(40));
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("schemathesis did not finish within {limit:?}: a request hangs or the run is too long");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let output = child.wait_with_output().unwrap();
    let report = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    println!("schemathesis took {:?}\n{report}", started.elapsed());
    assert!(status.success(), "schemathesis found failures:\n{report}");
    // The server is still healthy after the run.
    assert!(client.get(format!("{base}/-/ready")).send().await.unwrap().status().is_success());
    tarsier.stop();
}

/// Tokens of the tenant-isolation test (`server.auth.tokens_file`).
const TOKENS: &str = "\
- {name: alpha-read, token: alpha-read-token-0001, tenants: [alpha], roles: [read]}
- {name: alpha-write, token: alpha-write-token-001, tenants: [alpha], roles: [write]}
- {name: bravo-admin, token: bravo-admin-token-001, tenants: [bravo], roles: [admin]}
- {name: both-read, token: both-read-token-00001, tenants: [alpha, bravo], roles: [read]}
- {name: scraper, token: scraper-metrics-token-1, tenants: [alpha], roles: [metrics]}
";

/// One request with an optional bearer token and `X-Scope-OrgID`; the status and body text.
async fn call(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    token: Option<&str>,
    tenant: Option<&str>,
    body: Option<Value>,
) -> (u16, String, reqwest::header::HeaderMap) {
    let mut req = client.request(method, url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(t) = tenant {
        req = req.header("X-Scope-OrgID", t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let response = req.send().await.unwrap_or_else(|e| panic!("{url}: {e}"));
    let (status, headers) = (response.status().as_u16(), response.headers().clone());
    (status, response.text().await.unwrap(), headers)
}

/// Polls `url` with `token` until the body contains `needle`.
async fn await_body(client: &reqwest::Client, url: &str, token: &str, needle: &str) {
    let started = Instant::now();
    loop {
        let (status, body, _) = call(client, reqwest::Method::GET, url, Some(token), None, None).await;
        if status == 200 && body.contains(needle) {
            return;
        }
        assert!(started.elapsed() < DEADLINE, "{url}: no {needle:?} within {DEADLINE:?}: {status} {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `server.auth`: tenant bravo's logs (tailed), metrics (scraped), rules, alerts, silences and
/// dashboards, tenant alpha's logs and samples shipped by the agent's `HttpSink` with a bearer
/// token file; then alpha's read token calls every read API and nothing of bravo comes back, while
/// alpha's own data does. Missing and unknown tokens get 401, a wrong role or another tenant's
/// `X-Scope-OrgID` 403, and a token added to the file works without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_keeps_tenants_apart_on_every_read_api() {
    use reqwest::Method;
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("bravo");
    std::fs::create_dir_all(&logs).unwrap();
    append_line(&logs.join("app.log"), "leakb payment failed");
    let target =
        serve_metrics_page("# TYPE leakb_requests_total counter\nleakb_requests_total{leakb=\"yes\"} 5\n").await;
    let (hook_url, _received) = serve_webhook().await;
    let listen = format!("127.0.0.1:{}", free_port());
    let path = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    let tokens = path("tokens.yaml", TOKENS);
    let rules = path(
        "rules.yml",
        "groups:\n- name: leakb-group\n  interval: 1s\n  rules:\n  - alert: LeakbAlert\n    expr: leakb_requests_total > 0\n  \
         - record: leakb:sum\n    expr: sum(leakb_requests_total)\n",
    );
    let notify = path(
        "notify.yml",
        &format!(
            "route:\n  receiver: hook\n  group_wait: 0s\nreceivers:\n- name: hook\n  webhook_configs:\n  - url: {hook_url}\n"
        ),
    );
    let config = path(
        "tarsier.yaml",
        &format!(
            "data_dir: {data}\nserver:\n  listen: {listen}\n  auth:\n    enabled: true\n    tokens_file: {tokens}\n    \
             reload_interval: 200ms\ncollector:\n  tenant: bravo\n  tail:\n    include: ['{logs}/*.log']\n    \
             rescan_interval: 200ms\n  global:\n    scrape_interval: 1s\n    scrape_timeout: 1s\n  shipping:\n    \
             batch_max_wait: 50ms\n  scrape_configs:\n  - job_name: bravo-app\n    static_configs:\n    - targets: ['{target}']\n\
             indexer:\n  commit_interval: 200ms\nalerting:\n  tenant: bravo\n  evaluation_interval: 1s\n  rule_files: ['{rules}']\n  \
             notifications_file: {notify}\n",
            data = dir.path().join("data").display(),
            logs = logs.display(),
        ),
    );
    let client = reqwest::Client::new();
    let mut tarsier = Tarsier::start(&["run", "--config", &config], &listen);
    tarsier.wait_ready(&client).await;
    let base = tarsier.base.clone();
    let (read_a, write_a, admin_b) = ("alpha-read-token-0001", "alpha-write-token-001", "bravo-admin-token-001");

    // Alpha ships like an agent with `agent.bearer_token_file`; the header it sends is believed
    // only because the token allows alpha.
    let token_file = dir.path().join("alpha-token");
    std::fs::write(&token_file, format!("{write_a}\n")).unwrap();
    let sink = collector::HttpSink::new(&base, Duration::from_secs(5)).unwrap().with_bearer_token_file(&token_file);
    let alpha = model::TenantId::new("alpha").unwrap();
    let now_ms = chrono::Utc::now().timestamp_millis();
    let labels = model::Labels::from_pairs([("job", "leaka-app")]);
    let record = model::LogRecord { timestamp_ns: now_ms * 1_000_000, labels, line: "leaka hello".into() };
    use collector::{LogSink, MetricSink};
    sink.push_logs(alpha.clone(), vec![record]).await.unwrap();
    let series = model::TimeSeries::new(
        model::Labels::from_pairs([("__name__", "leaka_requests_total"), ("job", "leaka")]),
        vec![model::Sample::new(now_ms, 1.0)],
    );
    sink.push_samples(alpha.clone(), vec![series]).await.unwrap();
    let sink_b = collector::HttpSink::new(&base, Duration::from_secs(5)).unwrap().with_bearer_token_file(&token_file);
    let refused = sink_b.push_logs(model::TenantId::new("bravo").unwrap(), Vec::new()).await.unwrap_err();
    assert!(refused.retryable && refused.message.contains("403"), "{refused}");

    let starts = now_ms / 1000 - 3600;
    let alert = |name: &str| serde_json::json!([{"labels": {"alertname": name}}]);
    let posted =
        call(&client, Method::POST, &format!("{base}/api/v2/alerts"), Some(write_a), None, Some(alert("LeakaPosted")))
            .await;
    assert_eq!(posted.0, 200, "{}", posted.1);
    let posted =
        call(&client, Method::POST, &format!("{base}/api/v2/alerts"), Some(admin_b), None, Some(alert("LeakbPosted")))
            .await;
    assert_eq!(posted.0, 200, "{}", posted.1);
    let silence = serde_json::json!({
        "matchers": [{"name": "alertname", "value": "LeakbPosted", "isRegex": false}],
        "startsAt": chrono::Utc::now().to_rfc3339(), "endsAt": (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339(),
        "createdBy": "leakb", "comment": "leakb silence"});
    let silenced =
        call(&client, Method::POST, &format!("{base}/api/v2/silences"), Some(admin_b), None, Some(silence)).await;
    assert_eq!(silenced.0, 200, "{}", silenced.1);
    let board = serde_json::json!({"title": "leakb board", "panels": [{"title": "leakb", "type": "stat", "datasource": "metrics", "query": "leakb:sum"}]});
    let saved =
        call(&client, Method::PUT, &format!("{base}/api/v1/dashboards/leakb"), Some(admin_b), None, Some(board)).await;
    assert_eq!(saved.0, 200, "{}", saved.1);

    // Both tenants' data is there (bravo's as seen by bravo), so an empty answer below is isolation.
    let q = |path: &str, params: &[(&str, &str)]| {
        reqwest::Url::parse_with_params(&format!("{base}{path}"), params).unwrap().to_string()
    };
    let logs_query = q("/loki/api/v1/query_range", &[("query", "{job=~\".+\"}"), ("start", "0"), ("limit", "100")]);
    await_body(&client, &logs_query, admin_b, "leakb payment").await;
    await_body(&client, &q("/api/v1/query", &[("query", "leakb:sum")]), admin_b, "leakb:sum").await;
    await_body(&client, &format!("{base}/api/v1/alerts"), admin_b, "LeakbAlert").await;
    await_body(&client, &format!("{base}/api/v1/targets"), admin_b, "bravo-app").await;
    await_body(&client, &logs_query, read_a, "leaka hello").await;

    let start = starts.to_string();
    let reads = [
        logs_query.clone(),
        q("/loki/api/v1/query", &[("query", "sum by (job, filename) (count_over_time({job=~\".+\"}[1h]))")]),
        q("/loki/api/v1/labels", &[("start", &start)]),
        q("/loki/api/v1/label/job/values", &[("start", &start)]),
        q("/loki/api/v1/label/filename/values", &[("start", &start)]),
        q("/loki/api/v1/series", &[("match[]", "{job=~\".+\"}"), ("start", &start)]),
        q("/loki/api/v1/index/volume", &[("query", "{job=~\".+\"}"), ("start", &start)]),
        q("/loki/api/v1/index/volume_range", &[("query", "{job=~\".+\"}"), ("start", &start)]),
        q("/api/v1/query", &[("query", "{__name__=~\".+\"}")]),
        q(
            "/api/v1/query_range",
            &[
                ("query", "{__name__=~\".+\"}"),
                ("start", &start),
                ("end", &(starts + 7200).to_string()),
                ("step", "60"),
            ],
        ),
        q("/api/v1/labels", &[]),
        q("/api/v1/label/__name__/values", &[]),
        q("/api/v1/label/leakb/values", &[]),
        q("/api/v1/series", &[("match[]", "{__name__=~\".+\"}")]),
        q("/api/v1/metadata", &[]),
        q("/api/v1/status/tsdb", &[]),
        q("/api/v1/rules", &[]),
        q("/api/v1/alerts", &[]),
        q("/api/v1/targets", &[]),
        q("/api/v1/status/tenants", &[]),
        q("/api/v2/alerts", &[]),
        q("/api/v2/alerts/groups", &[]),
        q("/api/v2/silences", &[]),
        q("/api/v2/notifications", &[]),
        q("/api/v1/dashboards", &[]),
    ];
    let mut seen_alpha = 0;
    for url in &reads {
        let (status, body, _) = call(&client, Method::GET, url, Some(read_a), None, None).await;
        assert_eq!(status, 200, "{url}: {body}");
        for marker in ["leakb", "bravo"] {
            assert!(!body.contains(marker), "{url} shows tenant bravo's {marker:?} to alpha: {body}");
        }
        seen_alpha += usize::from(body.contains("leaka") || body.contains("alpha"));
    }
    assert!(seen_alpha >= 8, "alpha's own data shows in only {seen_alpha} answers");
    // Bravo's dashboard and the lines around bravo's line (the answer echoes the asked stream).
    let (status, _, _) =
        call(&client, Method::GET, &q("/api/v1/dashboards/leakb", &[]), Some(read_a), None, None).await;
    assert_eq!(status, 404);
    let stream = format!("{{filename=\"{}/app.log\"}}", logs.display());
    let context = q("/api/v1/logs/context", &[("stream", &stream), ("time", &(now_ms * 1_000_000).to_string())]);
    let body: Value =
        serde_json::from_str(&call(&client, Method::GET, &context, Some(read_a), None, None).await.1).unwrap();
    for key in ["before", "at", "after"] {
        assert_eq!(body["data"][key], serde_json::json!([]), "context leaks bravo's lines to alpha: {body}");
    }
    // The live tail, through a websocket that carries the token as `access_token`.
    let tail = format!(
        "ws://{listen}/loki/api/v1/tail?{}",
        reqwest::Url::parse_with_params(
            "http://x/",
            &[("query", "{job=~\".+\"}"), ("start", &(starts * 1_000_000_000).to_string()), ("access_token", read_a)]
        )
        .unwrap()
        .query()
        .unwrap()
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(tail.as_str()).await.unwrap();
    use futures::StreamExt;
    let frame =
        tokio::time::timeout(DEADLINE, socket.next()).await.unwrap().unwrap().unwrap().into_text().unwrap().to_string();
    assert!(frame.contains("leaka hello") && !frame.contains("leakb"), "{frame}");

    // Refusals: no token, unknown token, wrong role, another tenant's header.
    let url = q("/api/v1/labels", &[]);
    let (status, body, headers) = call(&client, Method::GET, &url, None, None, None).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(headers["www-authenticate"], "Bearer realm=\"tarsier\"");
    let (status, _, headers) = call(&client, Method::GET, &url, Some("not-a-token-at-all"), None, None).await;
    assert_eq!(status, 401);
    assert!(headers["www-authenticate"].to_str().unwrap().contains("invalid_token"));
    let (status, body, _) = call(&client, Method::GET, &url, Some(read_a), Some("bravo"), None).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("alpha") && body.contains("alpha-read"), "the refusal names the allowed tenants: {body}");
    let (status, body, _) = call(&client, Method::GET, &url, Some(write_a), None, None).await;
    assert_eq!(status, 403, "a write token cannot read: {body}");
    let (status, _, _) = call(
        &client,
        Method::POST,
        &format!("{base}/loki/api/v1/push"),
        Some(read_a),
        None,
        Some(serde_json::json!({"streams": []})),
    )
    .await;
    assert_eq!(status, 403, "a read token cannot push");
    let (status, _, _) = call(&client, Method::POST, &format!("{base}/-/reload"), Some(read_a), None, None).await;
    assert_eq!(status, 403, "a read token cannot reload");
    let (status, _, _) =
        call(&client, Method::DELETE, &format!("{base}/api/v1/dashboards/x"), Some(read_a), None, None).await;
    assert_eq!(status, 403, "a read token cannot change dashboards");
    // Process-wide views are not one tenant's: /metrics needs the metrics (or admin) role, the
    // receivers list admin, and /api/v2/status shows the notifications config to admin only.
    for (path, token, want) in [
        ("/metrics", read_a, 403),
        ("/metrics", "scraper-metrics-token-1", 200),
        ("/metrics", admin_b, 200),
        ("/api/v2/receivers", read_a, 403),
        ("/api/v2/receivers", "scraper-metrics-token-1", 403),
        ("/api/v2/receivers", admin_b, 200),
        ("/api/v1/labels", "scraper-metrics-token-1", 403),
    ] {
        let (status, body, _) = call(&client, Method::GET, &format!("{base}{path}"), Some(token), None, None).await;
        assert_eq!(status, want, "{path} with {token}: {body}");
    }
    let status_of = |token: &'static str| {
        let (client, url) = (client.clone(), format!("{base}/api/v2/status"));
        async move {
            let (status, body, _) = call(&client, Method::GET, &url, Some(token), None, None).await;
            assert_eq!(status, 200, "{body}");
            serde_json::from_str::<Value>(&body).unwrap()["config"]["original"].as_str().unwrap().to_string()
        }
    };
    assert_eq!(status_of(read_a).await, "", "a read token sees the process's notifications config");
    assert!(status_of(admin_b).await.contains("hook"), "an admin sees the config");
    assert_eq!(call(&client, Method::GET, &format!("{base}/-/healthy"), None, None, None).await.0, 200);
    assert_eq!(call(&client, Method::GET, &format!("{base}/metrics"), None, None, None).await.0, 401);
    // Basic auth with the token as password (Grafana, Promtail, remote_write's basic_auth).
    let basic = client.get(&url).basic_auth("anyone", Some(read_a)).send().await.unwrap();
    assert_eq!(basic.status(), 200);
    // A token of two tenants picks with the header, defaulting to its first.
    let both = "both-read-token-00001";
    let (_, body, _) = call(&client, Method::GET, &q("/api/v1/status/tenants", &[]), Some(both), None, None).await;
    assert!(body.contains("alpha") && body.contains("bravo"), "{body}");
    let (_, body, _) = call(&client, Method::GET, &logs_query, Some(both), Some("bravo"), None).await;
    assert!(body.contains("leakb") && !body.contains("leaka"), "{body}");
    let (_, body, _) = call(&client, Method::GET, &logs_query, Some(both), None, None).await;
    assert!(body.contains("leaka") && !body.contains("leakb"), "{body}");
    let (_, metrics, _) =
        call(&client, Method::GET, &format!("{base}/metrics"), Some("scraper-metrics-token-1"), None, None).await;
    for reason in ["missing_token", "unknown_token", "missing_role", "foreign_tenant"] {
        assert!(
            metrics.contains(&format!("tarsier_http_auth_refusals_total{{reason=\"{reason}\"}}")),
            "{reason}: {metrics}"
        );
    }

    // A token added to the file (a rotated Secret) works without a restart.
    std::fs::write(
        dir.path().join("tokens.yaml"),
        format!("{TOKENS}- {{name: new, token: new-token-000000001, tenants: [alpha], roles: [read]}}\n"),
    )
    .unwrap();
    await_body(&client, &url, "new-token-000000001", "success").await;
    tarsier.stop();
}
