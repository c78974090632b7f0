//! Config hot reload through a real kubelet-style ConfigMap update: the mounted directory holds a
//! timestamped data directory, a `..data` symlink to it and per-key symlinks through `..data`; an
//! update writes a new data directory and renames a fresh symlink onto `..data`. A valid change
//! applies live (new rule group, alert state kept), an invalid one is refused and the old config
//! keeps running (metric, runtimeinfo, `POST /-/reload` say why), a restart-only change is named,
//! and SIGHUP reloads too. The collector (`run` and `agent`) takes new scrape jobs and tail globs
//! live, and tail labels, body parsing, multiline rules and signals too (no line lost or repeated
//! across the swap); an agent switches to another server and new shipping limits (no line lost);
//! server request limits apply at once; the notifications file re-routes alerts keeping silences,
//! and an edited template file changes the next message.

mod support;

use std::os::unix::fs::symlink;
use std::path::Path;
use std::time::Instant;

use serde_json::Value;
use support::*;

/// Writes `files` into a new `..<version>` directory and swaps `..data` onto it atomically.
fn configmap_update(dir: &Path, version: &str, files: &[(&str, &str)]) {
    let data = dir.join(format!("..{version}"));
    for (name, text) in files {
        let path = data.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let tmp = dir.join("..data_tmp");
    symlink(format!("..{version}"), &tmp).unwrap();
    std::fs::rename(&tmp, dir.join("..data")).unwrap();
}

fn server_yaml(dir: &Path, extra: &str) -> String {
    format!(
        "log:\n  level: info\nalerting:\n  rule_files: ['{}/rules/*.yaml']\n  evaluation_interval: 1s\n{extra}",
        dir.display()
    )
}

const RULES_ONE: &str = "groups:\n- name: g1\n  rules:\n  - alert: Always\n    expr: vector(1)\n    for: 1h\n";
const RULES_TWO: &str = "groups:\n- name: g1\n  rules:\n  - alert: Always\n    expr: vector(1)\n    for: 1h\n\
                         - name: g2\n  rules:\n  - record: two\n    expr: vector(2)\n";

async fn groups(client: &reqwest::Client, base: &str) -> Vec<String> {
    let body = get_json(client, &format!("{base}/api/v1/rules")).await;
    body["data"]["groups"].as_array().unwrap().iter().map(|g| g["name"].as_str().unwrap().to_string()).collect()
}

async fn runtimeinfo(client: &reqwest::Client, base: &str) -> Value {
    get_json(client, &format!("{base}/api/v1/status/runtimeinfo")).await["data"].clone()
}

async fn metric(client: &reqwest::Client, base: &str, name: &str) -> f64 {
    let text = client.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
    let line = text.lines().find(|l| l.starts_with(name) && !l.starts_with('#')).unwrap_or_else(|| panic!("{name}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

/// Polls `check` until it returns true.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < DEADLINE, "{what} within {DEADLINE:?}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Starts `role` with `config` (its data under `tmp/data`) and waits until it is ready.
async fn start(role: &str, config: &Path, tmp: &Path, client: &reqwest::Client) -> Proc {
    let listen = format!("127.0.0.1:{}", free_port());
    let data = tmp.join("data");
    let mut process = Proc::start(
        &[role, "--config", config.to_str().unwrap(), "--listen", &listen, "--data-dir", data.to_str().unwrap()],
        &listen,
    );
    process.wait_ready(client).await;
    process
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configmap_symlink_swap_reloads_live_and_refuses_bad_configs() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("etc");
    std::fs::create_dir(&dir).unwrap();
    configmap_update(
        &dir,
        "2026_11_27_10_00_00.1",
        &[("server.yaml", &server_yaml(&dir, "")), ("rules/a.yaml", RULES_ONE)],
    );
    symlink("..data/server.yaml", dir.join("server.yaml")).unwrap();
    symlink("..data/rules", dir.join("rules")).unwrap();

    let client = reqwest::Client::new();
    let server = start("server", &dir.join("server.yaml"), tmp.path(), &client).await;
    let base = server.base.clone();
    assert_eq!(groups(&client, &base).await, ["g1"]);
    let info = runtimeinfo(&client, &base).await;
    assert_eq!(info["reloadConfigSuccess"], true);
    assert_eq!(info["lastReloadError"], Value::Null);
    assert_eq!(info["lastReloadTime"], Value::Null, "no reload attempted yet");
    // Without a notifications file the Alertmanager API answers too (amtool, Grafana), empty.
    for path in ["alerts", "alerts/groups", "silences", "receivers"] {
        let body = get_json(&client, &format!("{base}/api/v2/{path}")).await;
        assert!(body.is_array(), "/api/v2/{path}: {body}");
    }
    let status = get_json(&client, &format!("{base}/api/v2/status")).await;
    assert!(
        status["config"]["original"].as_str().unwrap().contains("receiver: 'null'")
            || status["config"]["original"].as_str().unwrap().contains("receiver: \"null\""),
        "{status}"
    );
    let alerts_url = format!("{base}/api/v1/alerts");
    eventually("the alert goes pending", || async {
        !get_json(&client, &alerts_url).await["data"]["alerts"][0]["activeAt"].is_null()
    })
    .await;
    let active_at = get_json(&client, &alerts_url).await["data"]["alerts"][0]["activeAt"].clone();

    // A valid update: a second group appears without a restart; the pending alert keeps its start.
    configmap_update(
        &dir,
        "2026_11_27_10_01_00.2",
        &[
            ("server.yaml", &server_yaml(&dir, "  external_labels:\n    cluster: reloaded-7\n")),
            ("rules/a.yaml", RULES_TWO),
        ],
    );
    eventually("the new rule group is loaded", || async { groups(&client, &base).await.len() == 2 }).await;
    // The rules load before the reload finishes: the shown configuration follows a moment later.
    eventually("/api/v1/status/config shows the reloaded configuration", || async {
        let shown = client.get(format!("{base}/api/v1/status/config")).send().await.unwrap().text().await.unwrap();
        shown.contains("reloaded-7")
    })
    .await;
    let body = get_json(&client, &format!("{base}/api/v1/alerts")).await;
    assert_eq!(body["data"]["alerts"][0]["activeAt"], active_at, "alert state survives the reload");
    assert_eq!(metric(&client, &base, "tarsier_config_last_reload_successful").await, 1.0);
    assert!(metric(&client, &base, "tarsier_config_last_reload_success_timestamp_seconds").await > 1.7e9);

    // An invalid update is refused; the old config keeps running.
    let bad = server_yaml(&dir, "server:\n  lisen: nowhere\n");
    configmap_update(&dir, "2026_11_27_10_02_00.3", &[("server.yaml", &bad), ("rules/a.yaml", RULES_ONE)]);
    eventually("the bad config is refused", || async {
        runtimeinfo(&client, &base).await["reloadConfigSuccess"] == false
    })
    .await;
    let info = runtimeinfo(&client, &base).await;
    assert!(info["lastReloadError"].as_str().unwrap().contains("lisen"), "{info}");
    assert!(info["lastReloadTime"].as_str().is_some_and(|t| t > info["lastConfigTime"].as_str().unwrap()), "{info}");
    assert_eq!(metric(&client, &base, "tarsier_config_last_reload_successful").await, 0.0);
    assert_eq!(groups(&client, &base).await.len(), 2, "the old rules keep running");
    let r = client.get(format!("{base}/-/ready")).send().await.unwrap();
    assert!(r.status().is_success());
    let r = client.post(format!("{base}/-/reload")).send().await.unwrap();
    assert_eq!(r.status(), 500);
    assert!(r.text().await.unwrap().contains("lisen"));

    // A fix that also changes a restart-only key: applied, and the key is named; request limits
    // in the same file apply at once, the live tail slots too (a plain GET answers what the
    // upgrade would get: 400 not a websocket while a slot is free, 429 with none).
    let tail = format!("{base}/loki/api/v1/tail?query=%7Bjob%3D%22x%22%7D");
    assert_eq!(client.get(&tail).send().await.unwrap().status(), 400, "a slot is free");
    let fixed = server_yaml(
        &dir,
        "server:\n  max_concurrent_queries: 3\n  max_tail_connections: 0\n  max_body_bytes: 1000\n  \
         external_metrics:\n    tenant: other\n",
    );
    configmap_update(&dir, "2026_11_27_10_03_00.4", &[("server.yaml", &fixed), ("rules/a.yaml", RULES_ONE)]);
    eventually("the fixed config is applied", || async {
        runtimeinfo(&client, &base).await["reloadConfigSuccess"] == true
    })
    .await;
    assert_eq!(groups(&client, &base).await, ["g1"]);
    let info = runtimeinfo(&client, &base).await;
    assert_eq!(info["needsRestart"], serde_json::json!(["server.external_metrics"]));
    let push = client.post(format!("{base}/loki/api/v1/push")).body(vec![b'x'; 2000]).send().await.unwrap();
    assert_eq!(push.status(), 413, "server.max_body_bytes applies live");
    assert_eq!(client.get(&tail).send().await.unwrap().status(), 429, "server.max_tail_connections applies live");

    // SIGHUP and POST /-/reload reload too (lastConfigTime moves).
    let before = info["lastConfigTime"].as_str().unwrap().to_string();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    server.signal("HUP");
    eventually("SIGHUP reloads", || async {
        runtimeinfo(&client, &base).await["lastConfigTime"].as_str().unwrap() != before
    })
    .await;
    let r = client.post(format!("{base}/-/reload")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    server.stop();
}

fn run_yaml(scrape: &[(&str, &str)], include: &[&Path]) -> String {
    let mut text = String::from("collector:\n  global:\n    scrape_interval: 1s\n  scrape_configs:\n");
    for (job, address) in scrape {
        text.push_str(&format!("  - job_name: {job}\n    static_configs:\n    - targets: ['{address}']\n"));
    }
    text.push_str("  tail:\n    rescan_interval: 200ms\n    include:\n");
    for path in include {
        text.push_str(&format!("    - '{}'\n", path.display()));
    }
    text
}

/// Instant query result count.
async fn series_count(client: &reqwest::Client, base: &str, query: &str) -> usize {
    let url = reqwest::Url::parse_with_params(&format!("{base}/api/v1/query"), &[("query", query)]).unwrap();
    get_json(client, url.as_str()).await["data"]["result"].as_array().unwrap().len()
}

async fn lines_of(client: &reqwest::Client, base: &str, path: &Path) -> Vec<String> {
    let query = format!("{{filename=\"{}\"}}", path.display());
    log_lines(client, base, &query).await.into_iter().map(|(_, line)| line).collect()
}

/// `Collector::reload` through `tarsier run`: a scrape job added by a ConfigMap update is scraped,
/// a removed one's series end with staleness markers at once (not after the 5 m lookback), and tail
/// globs change live: a file matched again resumes at its checkpoint (no line twice, none lost).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configmap_reload_changes_scrape_jobs_and_tail_globs_live() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("etc");
    let logs = tmp.path().join("logs");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::create_dir_all(&logs).unwrap();
    let (a, b) = (logs.join("a.log"), logs.join("b.log"));
    append_line(&a, "a1");
    append_line(&a, "a2");
    let one = serve_metrics_page("reload_probe_one 1\n").await;
    let two = serve_metrics_page("reload_probe_two 2\n").await;
    configmap_update(&dir, "v1", &[("tarsier.yaml", &run_yaml(&[("one", &one)], &[&a]))]);
    symlink("..data/tarsier.yaml", dir.join("tarsier.yaml")).unwrap();

    let client = reqwest::Client::new();
    let run = start("run", &dir.join("tarsier.yaml"), tmp.path(), &client).await;
    let base = run.base.clone();
    await_series(&client, &base, "reload_probe_one").await;
    await_lines(&client, &base, &format!("{{filename=\"{}\"}}", a.display()), 2).await;

    // Job `two` added, a.log no longer matched, b.log matched.
    configmap_update(&dir, "v2", &[("tarsier.yaml", &run_yaml(&[("one", &one), ("two", &two)], &[&b]))]);
    append_line(&b, "b1");
    await_series(&client, &base, "reload_probe_two").await;
    await_lines(&client, &base, &format!("{{filename=\"{}\"}}", b.display()), 1).await;
    assert_eq!(series_count(&client, &base, "reload_probe_one").await, 1, "an unchanged job keeps scraping");
    let info = runtimeinfo(&client, &base).await;
    assert_eq!(info["needsRestart"], serde_json::json!([]), "{info}");
    // Written while a.log is not selected: read when it is selected again, from its checkpoint.
    append_line(&a, "a3");

    // Job `one` removed; a.log matched again.
    configmap_update(&dir, "v3", &[("tarsier.yaml", &run_yaml(&[("two", &two)], &[&a, &b]))]);
    eventually("the removed job's series go stale", || async {
        series_count(&client, &base, "reload_probe_one").await == 0
    })
    .await;
    assert_eq!(series_count(&client, &base, "reload_probe_two").await, 1);
    append_line(&a, "a4");
    eventually("a.log resumes", || async { lines_of(&client, &base, &a).await.len() >= 4 }).await;
    append_line(&b, "b2");
    await_lines(&client, &base, &format!("{{filename=\"{}\"}}", b.display()), 2).await;
    assert_eq!(lines_of(&client, &base, &a).await, ["a1", "a2", "a3", "a4"], "no line twice, none lost");
    assert_eq!(lines_of(&client, &base, &b).await, ["b1", "b2"]);
    run.stop();
}

fn notify_yaml(receiver: &str, hook_a: &str, hook_b: &str) -> String {
    format!(
        "route:\n  receiver: {receiver}\n  group_by: [alertname]\n  group_wait: 0s\n  group_interval: 1s\n  \
         repeat_interval: 1h\nreceivers:\n- name: a\n  webhook_configs:\n  - url: {hook_a}\n- name: b\n  \
         webhook_configs:\n  - url: {hook_b}\n"
    )
}

const RULES_FIRST: &str = "groups:\n- name: g\n  rules:\n  - alert: First\n    expr: vector(1)\n";
const RULES_MORE: &str = "groups:\n- name: g\n  rules:\n  - alert: First\n    expr: vector(1)\n  \
                          - alert: Second\n    expr: vector(1)\n  - alert: Muted\n    expr: vector(1)\n";

fn alert_names(received: &std::sync::Mutex<Vec<Value>>) -> Vec<String> {
    let bodies = received.lock().unwrap();
    bodies
        .iter()
        .flat_map(|b| {
            b["alerts"].as_array().unwrap().iter().map(|a| a["labels"]["alertname"].as_str().unwrap().to_string())
        })
        .collect()
}

/// `Notifier::reload`: a changed notifications file routes the next alert to the new receiver, an
/// active silence survives (the silenced alert stays suppressed and unsent), and a broken file is
/// refused with the old routing still in force.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_file_reload_reroutes_and_keeps_silences() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("etc");
    std::fs::create_dir(&dir).unwrap();
    let (hook_a, received_a) = serve_webhook().await;
    let (hook_b, received_b) = serve_webhook().await;
    let notify = dir.join("notify.yaml");
    let server_config = server_yaml(&dir, &format!("  notifications_file: {}\n", notify.display()));
    configmap_update(
        &dir,
        "v1",
        &[
            ("server.yaml", &server_config),
            ("notify.yaml", &notify_yaml("a", &hook_a, &hook_b)),
            ("rules/a.yaml", RULES_FIRST),
        ],
    );
    for name in ["server.yaml", "notify.yaml", "rules"] {
        symlink(format!("..data/{name}"), dir.join(name)).unwrap();
    }
    let client = reqwest::Client::new();
    let server = start("server", &dir.join("server.yaml"), tmp.path(), &client).await;
    let base = server.base.clone();
    await_webhook(&received_a, "firing").await;
    let silence = serde_json::json!({
        "matchers": [{"name": "alertname", "value": "Muted", "isRegex": false, "isEqual": true}],
        "startsAt": chrono::Utc::now().to_rfc3339(),
        "endsAt": (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339(),
        "createdBy": "test",
        "comment": "kept across reloads",
    });
    let r = client.post(format!("{base}/api/v2/silences")).json(&silence).send().await.unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let silence_id = r.json::<Value>().await.unwrap()["silenceID"].as_str().unwrap().to_string();

    // Only the notifications file changes (and two rules are added): receiver b from now on.
    configmap_update(
        &dir,
        "v2",
        &[
            ("server.yaml", &server_config),
            ("notify.yaml", &notify_yaml("b", &hook_a, &hook_b)),
            ("rules/a.yaml", RULES_MORE),
        ],
    );
    eventually("Second reaches the new receiver", || async {
        alert_names(&received_b).contains(&"Second".to_string())
    })
    .await;
    let alerts = get_json(&client, &format!("{base}/api/v2/alerts")).await;
    let muted = alerts.as_array().unwrap().iter().find(|a| a["labels"]["alertname"] == "Muted").expect("Muted stored");
    assert_eq!(muted["status"]["state"], "suppressed", "{muted}");
    assert_eq!(muted["status"]["silencedBy"], serde_json::json!([silence_id]));
    let silences = get_json(&client, &format!("{base}/api/v2/silences")).await;
    assert_eq!(silences[0]["status"]["state"], "active", "{silences}");
    assert!(!alert_names(&received_a).contains(&"Second".to_string()), "the old receiver is not used");
    assert!(!alert_names(&received_b).contains(&"Muted".to_string()), "the silence holds");
    assert_eq!(runtimeinfo(&client, &base).await["needsRestart"], serde_json::json!([]));

    // A broken notifications file is refused; routing stays with receiver b.
    let broken = notify_yaml("nobody", &hook_a, &hook_b);
    configmap_update(
        &dir,
        "v3",
        &[("server.yaml", &server_config), ("notify.yaml", &broken), ("rules/a.yaml", RULES_MORE)],
    );
    eventually("the broken file is refused", || async {
        runtimeinfo(&client, &base).await["reloadConfigSuccess"] == false
    })
    .await;
    let info = runtimeinfo(&client, &base).await;
    assert!(info["lastReloadError"].as_str().unwrap().contains("notifications_file"), "{info}");
    let receivers = get_json(&client, &format!("{base}/api/v2/alerts")).await;
    let second = receivers.as_array().unwrap().iter().find(|a| a["labels"]["alertname"] == "Second").unwrap().clone();
    assert_eq!(second["receivers"][0]["name"], "b", "{second}");
    server.stop();
}

/// The same live collector reload in the `agent` role, shipping to a server: a job and a tail
/// glob added by a ConfigMap update reach the server without restarting the agent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_reload_adds_scrape_jobs_and_tail_globs() {
    let tmp = tempfile::tempdir().unwrap();
    let (server_dir, agent_dir, logs) = (tmp.path().join("server"), tmp.path().join("agent"), tmp.path().join("logs"));
    for d in [&server_dir, &agent_dir, &logs] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(server_dir.join("server.yaml"), "log:\n  level: info\n").unwrap();
    let client = reqwest::Client::new();
    let server = start("server", &server_dir.join("server.yaml"), &server_dir, &client).await;
    let (a, b) = (logs.join("a.log"), logs.join("b.log"));
    append_line(&a, "a1");
    append_line(&b, "b1");
    let one = serve_metrics_page("agent_probe_one 1\n").await;
    let two = serve_metrics_page("agent_probe_two 2\n").await;
    let agent_yaml = |scrape: &[(&str, &str)], include: &[&Path]| {
        format!("agent:\n  server_url: {}\n{}", server.base, run_yaml(scrape, include))
    };
    configmap_update(&agent_dir, "v1", &[("agent.yaml", &agent_yaml(&[("one", &one)], &[&a]))]);
    symlink("..data/agent.yaml", agent_dir.join("agent.yaml")).unwrap();
    let agent = start("agent", &agent_dir.join("agent.yaml"), &agent_dir, &client).await;
    await_series(&client, &server.base, "agent_probe_one").await;
    await_lines(&client, &server.base, &format!("{{filename=\"{}\"}}", a.display()), 1).await;

    configmap_update(&agent_dir, "v2", &[("agent.yaml", &agent_yaml(&[("one", &one), ("two", &two)], &[&a, &b]))]);
    await_series(&client, &server.base, "agent_probe_two").await;
    await_lines(&client, &server.base, &format!("{{filename=\"{}\"}}", b.display()), 1).await;
    assert_eq!(runtimeinfo(&client, &agent.base).await["needsRestart"], serde_json::json!([]));
    agent.stop();
    server.stop();
}

/// Appends `line(n)` for n = `from`, `from + 1`, ... every 5 ms until stopped.
struct Writer {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<usize>,
}

impl Writer {
    fn start(path: &Path, from: usize, line: fn(usize) -> String) -> Writer {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (path, flag) = (path.to_path_buf(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut n = from;
            while !flag.load(std::sync::atomic::Ordering::Acquire) {
                append_line(&path, &line(n));
                n += 1;
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            n
        });
        Writer { stop, thread }
    }

    /// Stops writing; the next `n` (lines `from..n` were written).
    fn stop(self) -> usize {
        self.stop.store(true, std::sync::atomic::Ordering::Release);
        self.thread.join().unwrap()
    }
}

/// A ConfigMap update of `dir`, waiting until the process at `base` has applied it.
async fn update_and_wait(client: &reqwest::Client, base: &str, dir: &Path, version: &str, file: (&str, &str)) {
    let before = runtimeinfo(client, base).await["lastConfigTime"].clone();
    configmap_update(dir, version, &[file]);
    eventually("the reload is applied", || async { runtimeinfo(client, base).await["lastConfigTime"] != before }).await;
}

/// A pod log path the signals count (`namespace`/`pod` labels from the path).
fn pod_log(logs: &Path) -> std::path::PathBuf {
    let dir = logs.join("pods/shop_api-7d9f8b6c5d-x2x9z_0c1d/app");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("0.log")
}

fn tail_yaml(include: &[&Path], tail_extra: &str, signals: bool) -> String {
    let mut text = String::from("collector:\n  tail:\n    rescan_interval: 200ms\n    include:\n");
    for path in include {
        text.push_str(&format!("    - '{}'\n", path.display()));
    }
    text.push_str(tail_extra);
    text.push_str(&format!("  signals:\n    enabled: {signals}\n    interval: 1s\n"));
    text
}

/// Lines of `query` with the value of their stream's label `name` ("" without it).
async fn lines_with_label(client: &reqwest::Client, base: &str, query: &str, name: &str) -> Vec<(String, String)> {
    let lines = log_lines(client, base, query).await;
    lines.into_iter().map(|(stream, line)| (line, stream[name].as_str().unwrap_or("").to_string())).collect()
}

/// `collector.tail.labels`, `collector.tail.parse` and `collector.signals` change through a
/// ConfigMap swap while a writer keeps appending: lines read after the reload carry the new static
/// label and the parsed `level`/`component` labels, every line arrives exactly once across the
/// swap, the open file keeps its position, and the autoscaling signals (off before) are shipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configmap_reload_changes_tail_labels_parsing_and_signals_live() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, logs) = (tmp.path().join("etc"), tmp.path().join("logs"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::create_dir_all(&logs).unwrap();
    let app = logs.join("app.log");
    let pod = pod_log(&logs);
    let line: fn(usize) -> String = |n| format!("level=error component=db msg=line-{n:04}");
    let cri = |n: usize| format!("2026-12-07T02:00:00.000000000Z stdout F ERROR pod line {n}");
    for n in 0..20 {
        append_line(&app, &line(n));
        append_line(&pod, &cri(n));
    }
    configmap_update(&dir, "v1", &[("tarsier.yaml", &tail_yaml(&[&app, &pod], "", false))]);
    symlink("..data/tarsier.yaml", dir.join("tarsier.yaml")).unwrap();
    let client = reqwest::Client::new();
    let run = start("run", &dir.join("tarsier.yaml"), tmp.path(), &client).await;
    let base = run.base.clone();
    let all = format!("{{filename=\"{}\"}}", app.display());
    await_lines(&client, &base, &all, 20).await;
    let signal = "tarsier_workload_log_lines_total{namespace=\"shop\",workload=\"api\"}";
    assert_eq!(series_count(&client, &base, signal).await, 0, "signals are off");

    // A writer appends throughout the swap.
    let writer = Writer::start(&app, 20, line);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let parse = "    labels:\n      job: varlogs\n      team: payments\n    parse:\n      body: logfmt\n      \
                 detect_level: true\n      field_labels: [component]\n";
    update_and_wait(&client, &base, &dir, "v2", ("tarsier.yaml", &tail_yaml(&[&app, &pod], parse, true))).await;
    let info = runtimeinfo(&client, &base).await;
    assert_eq!(info["needsRestart"], serde_json::json!([]), "{info}");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let written = writer.stop();
    // Written after the writer stopped, well after the reload: these must carry the new labels.
    let after: Vec<String> = (written..written + 10).map(line).collect();
    for l in &after {
        append_line(&app, l);
    }
    for n in 20..40 {
        append_line(&pod, &cri(n));
    }
    await_lines(&client, &base, &all, written + 10).await;

    let got = lines_with_label(&client, &base, &all, "team").await;
    let mut lines: Vec<&str> = got.iter().map(|(l, _)| l.as_str()).collect();
    lines.sort();
    let want: Vec<String> = (0..written + 10).map(line).collect();
    assert_eq!(lines, want.iter().map(String::as_str).collect::<Vec<_>>(), "every line once across the swap");
    for (l, team) in &got {
        if after.contains(l) {
            assert_eq!(team, "payments", "{l} was read after the reload");
        } else if l.as_str() < line(20).as_str() {
            assert_eq!(team, "", "{l} was read before the reload");
        }
    }
    let parsed = format!("{{filename=\"{}\", team=\"payments\", level=\"error\", component=\"db\"}}", app.display());
    let parsed_lines = lines_with_label(&client, &base, &parsed, "level").await;
    assert!(after.iter().all(|l| parsed_lines.iter().any(|(p, _)| p == l)), "parsed fields on the later lines");
    await_series(&client, &base, signal).await;
    run.stop();
}

/// A template file named by the notifications file (`templates:`) is watched: editing only it
/// (a ConfigMap swap where nothing else changes) reloads, and the next notification uses it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_template_file_changes_the_next_notification() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("etc");
    std::fs::create_dir(&dir).unwrap();
    let (hook, received) = serve_webhook().await;
    let notify = dir.join("notify.yaml");
    let server_config = server_yaml(&dir, &format!("  notifications_file: {}\n", notify.display()));
    let notify_text = format!(
        "templates: ['templates/*.tmpl']\nroute:\n  receiver: chat\n  group_wait: 0s\n  group_interval: 1s\n  \
         repeat_interval: 1s\nreceivers:\n- name: chat\n  slack_configs:\n  - api_url: {hook}\n    \
         title: '{{{{ template \"chat.title\" . }}}}'\n"
    );
    let template =
        |version: &str| format!("{{{{ define \"chat.title\" }}}}{version}: {{{{ .Status }}}}{{{{ end }}}}\n");
    let files = |version: &str| {
        vec![
            ("server.yaml".to_string(), server_config.clone()),
            ("notify.yaml".to_string(), notify_text.clone()),
            ("rules/a.yaml".to_string(), RULES_FIRST.to_string()),
            ("templates/chat.tmpl".to_string(), template(version)),
        ]
    };
    let update = |version: &str| {
        let files = files(version);
        let refs: Vec<(&str, &str)> = files.iter().map(|(n, t)| (n.as_str(), t.as_str())).collect();
        configmap_update(&dir, version, &refs);
    };
    update("first");
    for name in ["server.yaml", "notify.yaml", "rules", "templates"] {
        symlink(format!("..data/{name}"), dir.join(name)).unwrap();
    }
    let client = reqwest::Client::new();
    let server = start("server", &dir.join("server.yaml"), tmp.path(), &client).await;
    let base = server.base.clone();
    let titles =
        || received.lock().unwrap().iter().filter_map(|b| b["text"].as_str().map(String::from)).collect::<Vec<_>>();
    eventually("the first template's message", || async { titles().contains(&"first: firing".to_string()) }).await;

    update("second");
    eventually("the edited template's message", || async { titles().contains(&"second: firing".to_string()) }).await;
    let info = runtimeinfo(&client, &base).await;
    assert_eq!(info["reloadConfigSuccess"], true, "{info}");
    server.stop();
}

/// An agent's collector config: `app` tailed, the given shipping limits, to `server_url`.
fn agent_shipping_yaml(server_url: &str, app: &Path, batch_max_lines: usize, batch_max_wait: &str) -> String {
    format!(
        "agent:\n  server_url: {server_url}\n{}  shipping:\n    batch_max_lines: {batch_max_lines}\n    \
         batch_max_wait: {batch_max_wait}\n",
        tail_yaml(&[app], "", false)
    )
}

/// `agent` and `collector.shipping` change live (issue #9 point 3). A writer appends across a
/// ConfigMap swap that points the agent at a second server: every line arrives exactly once at
/// one of the two, and lines written after the reload only at the new one. Then batches are held
/// by a one-hour `batch_max_wait`; lowering `batch_max_lines` to 1 cuts the batch being formed at
/// once, so the held lines arrive without the hour or a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_switches_server_and_shipping_limits_live_without_losing_lines() {
    let tmp = tempfile::tempdir().unwrap();
    let (a_dir, b_dir) = (tmp.path().join("server-a"), tmp.path().join("server-b"));
    let (agent_dir, logs) = (tmp.path().join("agent"), tmp.path().join("logs"));
    for d in [&a_dir, &b_dir, &agent_dir, &logs] {
        std::fs::create_dir_all(d).unwrap();
    }
    let client = reqwest::Client::new();
    std::fs::write(a_dir.join("server.yaml"), "log:\n  level: info\n").unwrap();
    std::fs::write(b_dir.join("server.yaml"), "log:\n  level: info\n").unwrap();
    let server_a = start("server", &a_dir.join("server.yaml"), &a_dir, &client).await;
    let server_b = start("server", &b_dir.join("server.yaml"), &b_dir, &client).await;
    let app = logs.join("app.log");
    let line: fn(usize) -> String = |n| format!("agent line {n:05}");
    for n in 0..20 {
        append_line(&app, &line(n));
    }
    configmap_update(&agent_dir, "v1", &[("agent.yaml", &agent_shipping_yaml(&server_a.base, &app, 10_000, "100ms"))]);
    symlink("..data/agent.yaml", agent_dir.join("agent.yaml")).unwrap();
    let agent = start("agent", &agent_dir.join("agent.yaml"), &agent_dir, &client).await;
    let all = format!("{{filename=\"{}\"}}", app.display());
    await_lines(&client, &server_a.base, &all, 20).await;

    let writer = Writer::start(&app, 20, line);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let to_b = agent_shipping_yaml(&server_b.base, &app, 10_000, "100ms");
    update_and_wait(&client, &agent.base, &agent_dir, "v2", ("agent.yaml", &to_b)).await;
    let info = runtimeinfo(&client, &agent.base).await;
    assert_eq!(info["needsRestart"], serde_json::json!([]), "agent is live: {info}");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let written = writer.stop();
    let after: Vec<String> = (written..written + 10).map(line).collect();
    for l in &after {
        append_line(&app, l);
    }
    let at_b = |lines: Vec<(Value, String)>| lines.into_iter().map(|(_, l)| l).collect::<Vec<_>>();
    eventually("the lines written after the switch reach the new server", || async {
        let got = at_b(log_lines(&client, &server_b.base, &all).await);
        after.iter().all(|l| got.contains(l))
    })
    .await;
    let (on_a, on_b) =
        (at_b(log_lines(&client, &server_a.base, &all).await), at_b(log_lines(&client, &server_b.base, &all).await));
    assert!(!on_b.is_empty() && on_a.len() > 20, "both servers got lines: {} and {}", on_a.len(), on_b.len());
    assert!(after.iter().all(|l| !on_a.contains(l)), "nothing written after the switch goes to the old server");
    let mut both: Vec<&String> = on_a.iter().chain(&on_b).collect();
    both.sort();
    let want: Vec<String> = (0..written + 10).map(line).collect();
    assert_eq!(both, want.iter().collect::<Vec<_>>(), "every line exactly once across the switch");

    // Batches wait an hour and take a million lines: read lines stay in the batch being formed.
    let hold = agent_shipping_yaml(&server_b.base, &app, 1_000_000, "1h");
    update_and_wait(&client, &agent.base, &agent_dir, "v3", ("agent.yaml", &hold)).await;
    let read = metric(&client, &agent.base, "tarsier_collector_lines_read_total").await;
    let held: Vec<String> = (0..3).map(|n| format!("held line {n}")).collect();
    for l in &held {
        append_line(&app, l);
    }
    eventually("the agent reads the held lines", || async {
        metric(&client, &agent.base, "tarsier_collector_lines_read_total").await >= read + 3.0
    })
    .await;
    let got = at_b(log_lines(&client, &server_b.base, &all).await);
    assert!(held.iter().all(|l| !got.contains(l)), "held by the one-hour batch");
    let before = runtimeinfo(&client, &agent.base).await["lastConfigTime"].clone();
    configmap_update(&agent_dir, "v4", &[("agent.yaml", &agent_shipping_yaml(&server_b.base, &app, 1, "1h"))]);
    eventually("the held batch is cut by the new batch_max_lines", || async {
        let got = at_b(log_lines(&client, &server_b.base, &all).await);
        held.iter().all(|l| got.contains(l))
    })
    .await;
    assert_ne!(runtimeinfo(&client, &agent.base).await["lastConfigTime"], before);
    assert_eq!(runtimeinfo(&client, &agent.base).await["needsRestart"], serde_json::json!([]));
    agent.stop();
    server_a.stop();
    server_b.stop();
}

/// `collector.tail.multiline` switched live on an open file (issue #9 point 3): lines read under
/// `none` are records of their own; after a swap to a regex rule the next records are grouped;
/// after a swap back, the record the joiner held (its flush timeout is an hour) is shipped as it
/// stood and later lines are single again. No line lost or repeated at either switch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configmap_reload_switches_multiline_on_an_open_file() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, logs) = (tmp.path().join("etc"), tmp.path().join("logs"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::create_dir_all(&logs).unwrap();
    let app = logs.join("app.log");
    let multiline = |on: bool| {
        let rules = "      mode: regex\n      rules:\n      - {state: start_state, regex: '^start', next_state: cont}\n      \
                     - {state: cont, regex: '^\\s+', next_state: cont}\n";
        let mode = if on { rules } else { "      mode: none\n" };
        format!("    format: plain\n    multiline:\n{mode}      flush_timeout: 1h\n")
    };
    configmap_update(&dir, "v1", &[("tarsier.yaml", &tail_yaml(&[&app], &multiline(false), false))]);
    symlink("..data/tarsier.yaml", dir.join("tarsier.yaml")).unwrap();
    let client = reqwest::Client::new();
    let run = start("run", &dir.join("tarsier.yaml"), tmp.path(), &client).await;
    let base = run.base.clone();
    let all = format!("{{filename=\"{}\"}}", app.display());
    let records = || async { lines_of(&client, &base, &app).await };
    append_line(&app, "start 1");
    append_line(&app, "  cont 1a");
    await_lines(&client, &base, &all, 2).await;

    update_and_wait(&client, &base, &dir, "v2", ("tarsier.yaml", &tail_yaml(&[&app], &multiline(true), false))).await;
    for l in ["start 2", "  cont 2a", "  cont 2b", "start 3", "  cont 3a"] {
        append_line(&app, l);
    }
    eventually("the next record is grouped", || async {
        records().await.contains(&"start 2\n  cont 2a\n  cont 2b".to_string())
    })
    .await;

    // `start 3` is held (an hour's flush timeout): switching back ships it as it stood.
    update_and_wait(&client, &base, &dir, "v3", ("tarsier.yaml", &tail_yaml(&[&app], &multiline(false), false))).await;
    append_line(&app, "start 4");
    append_line(&app, "  cont 4a");
    await_lines(&client, &base, &all, 6).await;
    let mut got = records().await;
    got.sort();
    let mut want =
        ["start 1", "  cont 1a", "start 2\n  cont 2a\n  cont 2b", "start 3\n  cont 3a", "start 4", "  cont 4a"];
    want.sort();
    assert_eq!(got, want, "each line once, grouped by the rule in force when it was read");
    run.stop();
}
