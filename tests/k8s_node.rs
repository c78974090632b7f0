//! A simulated Kubernetes node: kubelet's `/var/log/pods/<ns>_<pod>_<uid>/<container>/0.log` tree
//! in a temp dir, CRI-formatted lines (with a P/F partial pair), kubelet-style rotation (rename to
//! `0.log.<timestamp>`, a new `0.log`, later gzip of the rotated file and removal), a `tarsier agent`
//! running the DaemonSet's ConfigMap config (`deploy/kubernetes/base/config/agent.yaml`) with only
//! the paths pointed at the temp dir, shipping to a `tarsier server`. Every line must arrive
//! exactly once with its namespace/pod/container labels.

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};

use support::*;

struct Container {
    namespace: &'static str,
    pod: &'static str,
    container: &'static str,
    dir: PathBuf,
}

fn cri_line(stream: &str, tag: &str, msg: &str) -> String {
    let ts = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    format!("{ts} {stream} {tag} {msg}\n")
}

fn write(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

/// kubelet's rotation: rename the live file, start a new one.
fn rotate(dir: &Path, suffix: &str) -> PathBuf {
    let rotated = dir.join(format!("0.log.{suffix}"));
    std::fs::rename(dir.join("0.log"), &rotated).unwrap();
    std::fs::File::create(dir.join("0.log")).unwrap();
    rotated
}

/// kubelet compresses an older rotated file and removes the original.
fn gzip_and_remove(path: &Path) {
    let data = std::fs::read(path).unwrap();
    let gz = std::fs::File::create(format!("{}.gz", path.display())).unwrap();
    let mut enc = flate2::write::GzEncoder::new(gz, flate2::Compression::fast());
    enc.write_all(&data).unwrap();
    enc.finish().unwrap();
    std::fs::remove_file(path).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemonset_config_ships_every_pod_line_with_its_labels() {
    let tmp = tempfile::tempdir().unwrap();
    let pods = tmp.path().join("var/log/pods");
    let containers: Vec<Container> = [
        ("shop", "api-7d9f8b6c5d-x2x9z", "app", "0b7c6a1e-1"),
        ("shop", "api-7d9f8b6c5d-x2x9z", "istio-proxy", "0b7c6a1e-1"),
        ("data", "postgres-0", "postgres", "5f1d2c3b-2"),
    ]
    .into_iter()
    .map(|(namespace, pod, container, uid)| {
        let dir = pods.join(format!("{namespace}_{pod}_{uid}")).join(container);
        std::fs::create_dir_all(&dir).unwrap();
        Container { namespace, pod, container, dir }
    })
    .collect();

    let server_listen = format!("127.0.0.1:{}", free_port());
    let client = reqwest::Client::new();
    let mut server = Proc::start(
        &["server", "--listen", &server_listen, "--data-dir", tmp.path().join("server").to_str().unwrap()],
        &server_listen,
    );
    server.wait_ready(&client).await;

    // The DaemonSet's config, as shipped in the ConfigMap, with the node's paths moved into tmp.
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let agent_yaml = std::fs::read_to_string(repo.join("deploy/kubernetes/base/config/agent.yaml")).unwrap();
    let agent_listen = format!("127.0.0.1:{}", free_port());
    let token_file = tmp.path().join("agent-token");
    std::fs::write(&token_file, "agent-token-for-the-node-test\n").unwrap();
    let agent_yaml = agent_yaml
        .replace("/var/log/pods", pods.to_str().unwrap())
        .replace("/var/lib/tarsier-agent", tmp.path().join("agent").to_str().unwrap())
        .replace("0.0.0.0:9470", &agent_listen)
        .replace("http://tarsier-server.tarsier.svc:9470", &server.base)
        .replace("format: json", "format: text")
        .replace("interval: 15s", "interval: 200ms")
        // The DaemonSet passes NODE_NAME from the downward API; this node's name, spelled out.
        .replace("$NODE_NAME", "node-1")
        // The DaemonSet mounts the agent's token from the Secret (this server has no auth: the
        // token is sent and ignored; tests/e2e.rs covers a server with server.auth on).
        .replace("/etc/tarsier/secrets/agent-token", token_file.to_str().unwrap());
    assert!(agent_yaml.contains(pods.to_str().unwrap()), "the DaemonSet config tails /var/log/pods");
    let config = tmp.path().join("agent.yaml");
    std::fs::write(&config, agent_yaml).unwrap();

    // Lines written before the agent starts (start_at: beginning) ...
    let mut expected: Vec<(usize, String)> = Vec::new();
    for (i, c) in containers.iter().enumerate() {
        let dir = &c.dir;
        for n in 0..50 {
            let msg = format!("{}-{} before {n}", c.pod, c.container);
            write(&dir.join("0.log"), &cri_line(if n % 5 == 0 { "stderr" } else { "stdout" }, "F", &msg));
            expected.push((i, msg));
        }
    }
    let mut agent = Proc::start(&["agent", "--config", config.to_str().unwrap()], &agent_listen);
    agent.wait_ready(&client).await;

    // ... then while it runs: a partial (P + F joined), a rotation, lines in the new file, and
    // the rotated file gzipped and removed after the agent had time to finish it.
    let mut rotated = Vec::new();
    for (i, c) in containers.iter().enumerate() {
        let dir = &c.dir;
        write(&dir.join("0.log"), &cri_line("stdout", "P", "joined "));
        write(&dir.join("0.log"), &cri_line("stdout", "F", &format!("{}-{} partial", c.pod, c.container)));
        expected.push((i, format!("joined {}-{} partial", c.pod, c.container)));
        for n in 0..30 {
            let msg = format!("{}-{} rotated {n}", c.pod, c.container);
            write(&dir.join("0.log"), &cri_line("stdout", "F", &msg));
            expected.push((i, msg));
        }
        rotated.push(rotate(dir, "20261127-101500"));
        for n in 0..40 {
            let msg = format!("{}-{} after {n}", c.pod, c.container);
            write(&dir.join("0.log"), &cri_line("stdout", "F", &msg));
            expected.push((i, msg));
        }
    }
    let total = expected.len();
    for (i, c) in containers.iter().enumerate() {
        let query = format!("{{namespace=\"{}\", pod=\"{}\", container=\"{}\"}}", c.namespace, c.pod, c.container);
        let want: Vec<&str> = expected.iter().filter(|(j, _)| *j == i).map(|(_, m)| m.as_str()).collect();
        let got = await_lines(&client, &server.base, &query, want.len()).await;
        let mut texts: Vec<&str> = got.iter().map(|(_, l)| l.as_str()).collect();
        let mut want_sorted = want.clone();
        texts.sort_unstable();
        want_sorted.sort_unstable();
        assert_eq!(texts, want_sorted, "{query}: every line exactly once");
        for (labels, _) in &got {
            assert_eq!(labels["namespace"], c.namespace);
            assert_eq!(labels["job"], format!("{}/{}", c.namespace, c.container));
            assert!(labels["stream"] == "stdout" || labels["stream"] == "stderr", "{labels}");
        }
    }
    // The autoscaling signals: per workload (both containers of the api pod), from the same lines.
    let api_lines = expected.iter().filter(|(j, _)| *j < 2).count() as f64;
    let query = "sum(tarsier_workload_log_lines_total{namespace=\"shop\", workload=\"api\"})";
    let started = std::time::Instant::now();
    loop {
        let series = await_series(&client, &server.base, query).await;
        let v: f64 = series[0]["value"][1].as_str().unwrap().parse().unwrap();
        if v == api_lines {
            break;
        }
        assert!(v < api_lines, "{query} = {v}, more than the {api_lines} lines written");
        assert!(started.elapsed() < DEADLINE, "{query} = {v}, want {api_lines}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let stderr_errors = "tarsier_workload_log_error_lines_total{workload=\"postgres\"}";
    let series = await_series(&client, &server.base, stderr_errors).await;
    assert_eq!(series[0]["value"][1], "0", "no line has an error level");
    await_series(&client, &server.base, "tarsier_collector_backlog_bytes").await;
    for path in &rotated {
        gzip_and_remove(path);
    }
    // Nothing is read from the .gz files (excluded): the totals stay the same.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let all = log_lines(&client, &server.base, "{job=~\".+/.+\"}").await;
    assert_eq!(all.len(), total, "no line twice, nothing from the gzipped copies");
    agent.stop();
    server.stop();
}
