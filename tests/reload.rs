//! Config hot reload through a real kubelet-style ConfigMap update: the mounted directory holds a
//! timestamped data directory, a `..data` symlink to it and per-key symlinks through `..data`; an
//! update writes a new data directory and renames a fresh symlink onto `..data`. A valid change
//! applies live (new rule group, alert state kept), an invalid one is refused and the old config
//! keeps running (metric, runtimeinfo, `POST /-/reload` say why), a restart-only change is named,
//! and SIGHUP reloads too.

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

    let listen = format!("127.0.0.1:{}", free_port());
    let data = tmp.path().join("data");
    let config = dir.join("server.yaml");
    let client = reqwest::Client::new();
    let mut server = Proc::start(
        &["server", "--config", config.to_str().unwrap(), "--listen", &listen, "--data-dir", data.to_str().unwrap()],
        &listen,
    );
    server.wait_ready(&client).await;
    let base = server.base.clone();
    assert_eq!(groups(&client, &base).await, ["g1"]);
    let info = runtimeinfo(&client, &base).await;
    assert_eq!(info["reloadConfigSuccess"], true);
    assert_eq!(info["lastReloadError"], Value::Null);
    assert_eq!(info["lastReloadTime"], Value::Null, "no reload attempted yet");
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
    let shown = client.get(format!("{base}/api/v1/status/config")).send().await.unwrap().text().await.unwrap();
    assert!(shown.contains("reloaded-7"), "/api/v1/status/config shows the reloaded configuration:\n{shown}");
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

    // A fix that also changes a restart-only key: applied, and the key is named.
    let fixed = server_yaml(&dir, "server:\n  max_body_bytes: 1000000\n");
    configmap_update(&dir, "2026_11_27_10_03_00.4", &[("server.yaml", &fixed), ("rules/a.yaml", RULES_ONE)]);
    eventually("the fixed config is applied", || async {
        runtimeinfo(&client, &base).await["reloadConfigSuccess"] == true
    })
    .await;
    assert_eq!(groups(&client, &base).await, ["g1"]);
    let info = runtimeinfo(&client, &base).await;
    assert_eq!(info["needsRestart"], serde_json::json!(["server.max_body_bytes"]));

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
