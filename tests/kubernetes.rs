//! The Kubernetes manifests stay deployable: every kustomize overlay renders with `kubectl
//! kustomize`, validates offline against the Kubernetes schemas (`kubernetes-validate --strict`),
//! carries configs that `tarsier check-config` accepts when laid out as the pods mount them, and
//! grants through RBAC exactly the API calls listed in `collector::kube_access::API_ACCESS`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
use serde_yaml_ng::Value;

const OVERLAYS: [&str; 2] = ["small", "production"];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs a tool; a missing one fails the test with the command that installs it.
fn run(program: &str, args: &[&str], install: &str) -> std::process::Output {
    match Command::new(program).args(args).output() {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!("{program} is not installed; install it with: {install} (scripts/test.sh does)")
        }
        Err(e) => panic!("running {program}: {e}"),
    }
}

fn render(overlay: &str) -> String {
    let dir = repo().join("deploy/kubernetes/overlays").join(overlay);
    let out = run("kubectl", &["kustomize", dir.to_str().unwrap()], "apt-get install -y kubectl");
    assert!(out.status.success(), "kubectl kustomize {overlay}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn documents(rendered: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(rendered).map(|d| Value::deserialize(d).unwrap()).collect()
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"].as_str() == Some(kind) && d["metadata"]["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("no {kind}/{name} in the rendered manifests"))
}

#[test]
fn overlays_render_and_validate_against_the_kubernetes_schemas() {
    let tmp = tempfile::tempdir().unwrap();
    for overlay in OVERLAYS {
        let rendered = render(overlay);
        let file = tmp.path().join(format!("{overlay}.yaml"));
        std::fs::write(&file, &rendered).unwrap();
        let out = run(
            "kubernetes-validate",
            &["--strict", "--quiet", file.to_str().unwrap()],
            "pip install kubernetes-validate || pip install --break-system-packages kubernetes-validate",
        );
        assert!(
            out.status.success(),
            "overlay {overlay} does not validate:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let docs = documents(&rendered);
        let kinds: BTreeSet<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
        for kind in [
            "Namespace",
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "ConfigMap",
            "Secret",
            "DaemonSet",
            "StatefulSet",
            "PodDisruptionBudget",
            "Service",
            "Ingress",
            "CronJob",
            "NetworkPolicy",
        ] {
            assert!(kinds.contains(kind), "overlay {overlay} has no {kind}");
        }
        for (kind, name) in [("DaemonSet", "tarsier-agent"), ("StatefulSet", "tarsier-server")] {
            let container = &find(&docs, kind, name)["spec"]["template"]["spec"]["containers"][0];
            assert_eq!(container["livenessProbe"]["httpGet"]["path"].as_str(), Some("/-/healthy"), "{kind}");
            assert_eq!(container["readinessProbe"]["httpGet"]["path"].as_str(), Some("/-/ready"), "{kind}");
            assert!(container["resources"]["requests"]["cpu"].as_str().is_some(), "{kind} {overlay}: cpu request");
            assert!(container["resources"]["limits"]["memory"].as_str().is_some(), "{kind} {overlay}: mem limit");
        }
        let agent = &find(&docs, "DaemonSet", "tarsier-agent")["spec"];
        assert_eq!(agent["template"]["spec"]["tolerations"][0]["operator"].as_str(), Some("Exists"));
        let mounts = agent["template"]["spec"]["containers"][0]["volumeMounts"].as_sequence().unwrap();
        for path in ["/var/log/pods", "/var/log/containers"] {
            let m = mounts.iter().find(|m| m["mountPath"].as_str() == Some(path)).unwrap();
            assert_eq!(m["readOnly"].as_bool(), Some(true), "{path} must be mounted read-only");
        }
        let claim = &find(&docs, "StatefulSet", "tarsier-server")["spec"]["volumeClaimTemplates"][0]["spec"];
        if overlay == "production" {
            assert!(claim["storageClassName"].as_str().is_some(), "production names its storage class");
        }
    }
}

/// Lays the rendered ConfigMap and Secret out as kubelet mounts them for the server (items) and
/// the agent (the whole map), points the configs at that directory and runs `tarsier check-config`.
#[test]
fn mounted_configs_pass_check_config() {
    let docs = documents(&render("small"));
    let tmp = tempfile::tempdir().unwrap();
    let etc = tmp.path().join("etc-tarsier");
    let etc_str = etc.to_str().unwrap().to_string();
    let data: BTreeMap<String, String> =
        serde_yaml_ng::from_value(find(&docs, "ConfigMap", "tarsier-config")["data"].clone()).unwrap();
    let server = &find(&docs, "StatefulSet", "tarsier-server")["spec"]["template"]["spec"];
    let items = server["volumes"].as_sequence().unwrap().iter().find(|v| v["name"].as_str() == Some("config")).unwrap()
        ["configMap"]["items"]
        .as_sequence()
        .unwrap()
        .clone();
    let mut layout: Vec<(String, String)> = data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    for item in &items {
        let key = item["key"].as_str().unwrap();
        layout.push((item["path"].as_str().unwrap().to_string(), data[key].clone()));
    }
    for (path, text) in layout {
        let file = etc.join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, text.replace("/etc/tarsier", &etc_str)).unwrap();
    }
    let secrets: BTreeMap<String, String> =
        serde_yaml_ng::from_value(find(&docs, "Secret", "tarsier-secrets")["stringData"].clone()).unwrap();
    std::fs::create_dir_all(etc.join("secrets")).unwrap();
    for (key, value) in &secrets {
        assert!(value.contains("REPLACE-ME"), "secret {key} must be a clearly marked placeholder");
        std::fs::write(etc.join("secrets").join(key), value).unwrap();
    }
    for file in ["agent.yaml", "server.yaml"] {
        // The DaemonSet sets NODE_NAME from the downward API; the agent's scrape job selects by it.
        let out = Command::new(env!("CARGO_BIN_EXE_tarsier"))
            .args(["check-config", etc.join(file).to_str().unwrap()])
            .env("NODE_NAME", "node-1")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{file} from the ConfigMap is not a valid config:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Without NODE_NAME the agent's config is refused, naming the selector.
    let out = Command::new(env!("CARGO_BIN_EXE_tarsier"))
        .args(["check-config", etc.join("agent.yaml").to_str().unwrap()])
        .env_remove("NODE_NAME")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "agent.yaml passed without NODE_NAME");
    assert!(
        stderr.contains("kubernetes_sd_configs[0].selectors[0].field: environment variable NODE_NAME is not set"),
        "{stderr}"
    );
    // The server's rule glob finds the mounted rule file, and its rules parse.
    let rules = etc.join("rules/tarsier.yaml");
    assert!(rules.is_file(), "the StatefulSet's items mount the rules under rules/");
}

/// `(group, resource, verb)` triples the ClusterRole named `tarsier-<role>` grants.
fn granted(docs: &[Value], role: &str) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    let cluster_role = find(docs, "ClusterRole", &format!("tarsier-{role}"));
    for rule in cluster_role["rules"].as_sequence().unwrap() {
        let list = |k: &str| -> Vec<String> {
            rule[k].as_sequence().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect()
        };
        for g in list("apiGroups") {
            for r in list("resources") {
                for v in list("verbs") {
                    assert!(g != "*" && r != "*" && v != "*", "tarsier-{role}: no wildcards in least-privilege RBAC");
                    out.insert((g.clone(), r.clone(), v));
                }
            }
        }
    }
    out
}

#[test]
fn rbac_grants_exactly_the_api_calls_the_code_makes() {
    for overlay in OVERLAYS {
        let docs = documents(&render(overlay));
        for role in ["agent", "server"] {
            let wanted: BTreeSet<(String, String, String)> = collector::kube_access::API_ACCESS
                .iter()
                .filter(|a| a.role == role)
                .flat_map(|a| a.verbs.iter().map(|v| (a.group.to_string(), a.resource.to_string(), v.to_string())))
                .collect();
            let have = granted(&docs, role);
            let missing: Vec<_> = wanted.difference(&have).collect();
            let extra: Vec<_> = have.difference(&wanted).collect();
            assert!(missing.is_empty(), "{overlay}: tarsier-{role} lacks {missing:?} (listed in kube_access.rs)");
            assert!(extra.is_empty(), "{overlay}: tarsier-{role} grants {extra:?}, which no code uses");
            let binding = find(&docs, "ClusterRoleBinding", &format!("tarsier-{role}"));
            assert_eq!(binding["subjects"][0]["name"].as_str(), Some(format!("tarsier-{role}").as_str()));
            let workload =
                if role == "agent" { ("DaemonSet", "tarsier-agent") } else { ("StatefulSet", "tarsier-server") };
            let sa = &find(&docs, workload.0, workload.1)["spec"]["template"]["spec"]["serviceAccountName"];
            assert_eq!(sa.as_str(), Some(format!("tarsier-{role}").as_str()));
        }
        // Calls a built-in ClusterRole grants: the ServiceAccount is bound to it, and tarsier-<role>
        // does not grant them again (checked above: it grants only API_ACCESS).
        for grant in collector::kube_access::BUILTIN_GRANTS {
            let bound = docs.iter().any(|d| {
                d["kind"].as_str() == Some("ClusterRoleBinding")
                    && d["roleRef"]["name"].as_str() == Some(grant.granted_by)
                    && d["subjects"].as_sequence().is_some_and(|subjects| {
                        subjects.iter().any(|s| {
                            s["kind"].as_str() == Some("ServiceAccount")
                                && s["name"].as_str() == Some(format!("tarsier-{}", grant.access.role).as_str())
                        })
                    })
            });
            assert!(
                bound,
                "{overlay}: tarsier-{} is not bound to {} ({:?})",
                grant.access.role, grant.granted_by, grant.access
            );
        }
    }
}

/// Examples outside the kustomization that use only built-in kinds validate too (KEDA's CRDs are
/// not in the schemas; tests/keda.rs checks that example against a real server instead).
#[test]
fn builtin_examples_validate() {
    let file = repo().join("deploy/kubernetes/examples/hpa-error-rate.yaml");
    let out = run(
        "kubernetes-validate",
        &["--strict", "--quiet", file.to_str().unwrap()],
        "pip install kubernetes-validate || pip install --break-system-packages kubernetes-validate",
    );
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(&file).unwrap();
    let server = std::fs::read_to_string(repo().join("deploy/kubernetes/base/config/server.yaml")).unwrap();
    assert!(
        text.contains("name: workload-error-lines-per-second")
            && server.contains("name: workload-error-lines-per-second")
    );
}

/// The config lines of `text`'s commented block starting at `#{start}`, uncommented.
fn uncomment_block(text: &str, start: &str) -> String {
    let mut lines = text.lines().skip_while(|l| l.trim() != format!("# {start}"));
    let first = lines.next().unwrap_or_else(|| panic!("no commented `{start}` block"));
    let indent = &first[..first.find('#').unwrap()];
    let mut out = format!("{indent}{start}\n");
    for line in lines.take_while(|l| l.starts_with(&format!("{indent}#   "))) {
        out.push_str(&format!("{indent}{}\n", &line[indent.len() + 2..]));
    }
    out
}

/// The optional TLS component renders on top of an overlay, mounts the Secrets cert-manager
/// writes where the commented `server.tls` and `agent.tls_config` keys of the base configs look,
/// and those keys, uncommented, are a valid config.
#[test]
fn tls_component_mounts_what_the_commented_config_keys_read() {
    let tmp = tempfile::tempdir().unwrap();
    let up = "../".repeat(tmp.path().components().count() - 1);
    let base = repo().join("deploy/kubernetes");
    let overlay = format!(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - {up}{b}/overlays/small\n\
         components:\n  - {up}{b}/examples/tls\n",
        b = base.to_str().unwrap().trim_start_matches('/'),
    );
    std::fs::write(tmp.path().join("kustomization.yaml"), overlay).unwrap();
    let out = run("kubectl", &["kustomize", tmp.path().to_str().unwrap()], "apt-get install -y kubectl");
    assert!(out.status.success(), "kubectl kustomize with the tls component: {}", String::from_utf8_lossy(&out.stderr));
    let docs = documents(&String::from_utf8(out.stdout).unwrap());
    let mount_of = |kind: &str, name: &str, secret: &str| -> String {
        let spec = &find(&docs, kind, name)["spec"]["template"]["spec"];
        let volume =
            spec["volumes"].as_sequence().unwrap().iter().find(|v| v["secret"]["secretName"].as_str() == Some(secret));
        let volume = volume.unwrap_or_else(|| panic!("{kind}/{name} mounts no Secret {secret}"))["name"].clone();
        let mounts = spec["containers"][0]["volumeMounts"].as_sequence().unwrap();
        let mount = mounts.iter().find(|m| m["name"] == volume).unwrap();
        assert_eq!(mount["readOnly"].as_bool(), Some(true));
        mount["mountPath"].as_str().unwrap().to_string()
    };
    let server_dir = mount_of("StatefulSet", "tarsier-server", "tarsier-server-tls");
    let agent_dir = mount_of("DaemonSet", "tarsier-agent", "tarsier-agent-tls");
    for secret in ["tarsier-server-tls", "tarsier-agent-tls"] {
        assert!(
            docs.iter()
                .any(|d| d["kind"].as_str() == Some("Certificate") && d["spec"]["secretName"].as_str() == Some(secret)),
            "a cert-manager Certificate writes {secret}"
        );
    }
    let server = &find(&docs, "StatefulSet", "tarsier-server")["spec"]["template"]["spec"]["containers"][0];
    for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
        assert_eq!(server[probe]["httpGet"]["scheme"].as_str(), Some("HTTPS"), "{probe}");
    }

    let config = |file: &str| std::fs::read_to_string(base.join("base/config").join(file)).unwrap();
    let server_tls = uncomment_block(&config("server.yaml"), "tls:");
    let agent_tls = uncomment_block(&config("agent.yaml"), "tls_config:");
    for (block, dir) in [(&server_tls, &server_dir), (&agent_tls, &agent_dir)] {
        for line in block.lines().skip(1) {
            let path = line.split_once(": ").unwrap().1;
            assert!(path.starts_with(&format!("{dir}/")), "{path} is not under the mount {dir}");
        }
    }
    let yaml =
        format!("server:\n{server_tls}agent:\n  server_url: https://tarsier-server.tarsier.svc:9470\n{agent_tls}");
    let file = tmp.path().join("tls.yaml");
    std::fs::write(&file, &yaml).unwrap();
    let out =
        Command::new(env!("CARGO_BIN_EXE_tarsier")).args(["check-config", file.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "{yaml}\n{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn dockerfile_is_multi_stage_and_non_root() {
    let text = std::fs::read_to_string(repo().join("deploy/Dockerfile")).unwrap();
    assert!(text.matches("\nFROM ").count() + usize::from(text.starts_with("FROM ")) >= 2, "multi-stage");
    let user = text.lines().rfind(|l| l.starts_with("USER ")).expect("a USER line");
    assert!(!user.contains(" 0") && !user.contains("root"), "runtime user must not be root: {user}");
    assert!(Path::new(&repo().join(".dockerignore")).is_file());
}
