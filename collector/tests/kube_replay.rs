//! The Kubernetes client layer against a local API server that replays recorded list and watch
//! responses (`tests/fixtures/kube/`): a watch delivers an event and a bookmark and ends, the next
//! watch (from the bookmark's resourceVersion) gets `410 Gone`, the relist shows changed pods (one
//! deleted while the watch was down, one new), a later watch drops its connection mid-event and
//! the client resumes. Pod metadata, pod and endpoints `kubernetes_sd_configs` (with Prometheus's
//! usual relabeling) and the agent's pod log labels must end at the final state, nothing stale.
//! Every address in the fixtures is on loopback and scrape intervals are long: no traffic leaves
//! this machine.

mod common;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::response::Response;
use collector::kubernetes::PodMetadata;
use collector::{
    AttachMetadata, Collector, CollectorConfig, KubernetesConfig, KubernetesRole, KubernetesSdConfig, RelabelConfig,
    ScrapeConfig, TlsConfig,
};
use common::{RecordingSink, wait_for};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/kube/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// How a replayed watch response ends after its events.
#[derive(Default)]
enum End {
    /// The server ends the response (as at `timeoutSeconds`): the client watches again.
    Close,
    /// Half an event, then the connection breaks.
    Drop,
    /// Stays open, as a quiet watch does.
    #[default]
    Hang,
}

#[derive(Default)]
struct Script {
    lists: VecDeque<String>,
    last_list: Option<String>,
    watches: VecDeque<(String, End)>,
}

#[derive(Default)]
struct ApiServer {
    scripts: Mutex<HashMap<String, Script>>,
    /// `<verb> <resource> <query>` of every request, in order.
    requests: Mutex<Vec<String>>,
    /// The `Authorization` header every request must carry (else 401), when set.
    authorization: Option<String>,
    /// Requests refused for a missing or wrong `Authorization`.
    unauthorized: Mutex<usize>,
    /// Watches of these resources send their events only once the gate is opened.
    gates: Mutex<HashMap<String, Arc<tokio::sync::Notify>>>,
}

impl ApiServer {
    fn script(&self, resource: &str, lists: &[&str], watches: Vec<(&str, End)>) {
        let script = Script {
            lists: lists.iter().map(|f| fixture(f)).collect(),
            last_list: None,
            watches: watches.into_iter().map(|(f, end)| (fixture(f), end)).collect(),
        };
        self.scripts.lock().unwrap().insert(resource.to_string(), script);
    }

    fn requests(&self, verb: &str, resource: &str) -> Vec<String> {
        let prefix = format!("{verb} {resource} ");
        self.requests.lock().unwrap().iter().filter_map(|r| r.strip_prefix(&prefix).map(String::from)).collect()
    }
}

async fn handle(State(server): State<Arc<ApiServer>>, request: Request) -> Response {
    if let Some(want) = &server.authorization {
        let got = request.headers().get("authorization").and_then(|v| v.to_str().ok());
        if got != Some(want.as_str()) {
            *server.unauthorized.lock().unwrap() += 1;
            let status = r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401}"#;
            return Response::builder()
                .status(401)
                .header("content-type", "application/json")
                .body(Body::from(status))
                .unwrap();
        }
    }
    let resource = request.uri().path().rsplit('/').next().unwrap_or_default().to_string();
    let query = request.uri().query().unwrap_or_default().to_string();
    let watch = query.split('&').any(|p| p == "watch=true");
    let verb = if watch { "watch" } else { "list" };
    server.requests.lock().unwrap().push(format!("{verb} {resource} {query}"));
    let mut scripts = server.scripts.lock().unwrap();
    let Some(script) = scripts.get_mut(&resource) else {
        return Response::builder().status(404).body(Body::from(format!("no script for {resource}"))).unwrap();
    };
    let json = |body: Body| Response::builder().header("content-type", "application/json").body(body).unwrap();
    if !watch {
        if let Some(list) = script.lists.pop_front() {
            script.last_list = Some(list);
        }
        return json(Body::from(script.last_list.clone().expect("a list fixture")));
    }
    let (events, end) = script.watches.pop_front().unwrap_or_default();
    let gate = server.gates.lock().unwrap().get(&resource).cloned();
    let lines = futures::stream::iter(
        events.lines().map(|l| Ok::<_, std::io::Error>(Bytes::from(format!("{l}\n")))).collect::<Vec<_>>(),
    );
    let lines = futures::stream::once(async move {
        if let Some(gate) = gate {
            gate.notified().await;
        }
        lines
    })
    .flatten();
    let body = match end {
        End::Close => lines.boxed(),
        End::Hang => lines.chain(futures::stream::pending()).boxed(),
        // The whole events reach the client before the break (hyper drops unflushed data when
        // a body fails); half an event is on the wire when it breaks.
        End::Drop => lines
            .chain(futures::stream::once(async {
                tokio::time::sleep(Duration::from_millis(100)).await;
                Ok(Bytes::from_static(br#"{"type":"MODIFIED","object":{"kind":"Pod","apiVer"#))
            }))
            .chain(futures::stream::once(async {
                tokio::time::sleep(Duration::from_millis(50)).await;
                Err(std::io::Error::other("connection reset"))
            }))
            .boxed(),
    };
    json(Body::from_stream(body))
}

async fn start(server: Arc<ApiServer>) -> String {
    let app = axum::Router::new().fallback(handle).with_state(server);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

/// A TLS listener for `axum::serve`: each accepted connection is handshaken before it is served
/// (a failed handshake is dropped and the next connection accepted).
struct TlsListener {
    tcp: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, addr)) = self.tcp.accept().await else { continue };
            if let Ok(tls) = self.acceptor.accept(tcp).await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

/// Serves `server` over HTTPS with a certificate for `name` from a fresh CA; returns the URL and
/// the CA's PEM.
async fn start_tls(server: Arc<ApiServer>, name: &str) -> (String, String) {
    use rustls::pki_types::pem::PemObject;
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec![name.to_string()]).unwrap().signed_by(&key, &ca, &ca_key).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], key)
        .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}", tcp.local_addr().unwrap());
    let listener = TlsListener { tcp, acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)) };
    let app = axum::Router::new().fallback(handle).with_state(server);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, ca.pem())
}

/// The pod script: list, watch (event + bookmark, closed), watch → 410, relist (changed), watch
/// (event, then dropped mid-event), watch (bookmark, stays open).
fn pod_script(server: &ApiServer) {
    server.script(
        "pods",
        &["pods-list-1.json", "pods-list-2.json"],
        vec![
            ("pods-watch-1.jsonl", End::Close),
            ("pods-watch-2.jsonl", End::Close),
            ("pods-watch-3.jsonl", End::Drop),
            ("pods-watch-4.jsonl", End::Hang),
        ],
    );
}

fn query_value<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query.split('&').find_map(|p| p.strip_prefix(name)?.strip_prefix('='))
}

/// The pod requests went list, watch, watch (410), list, watch (dropped), watch, resuming from
/// the bookmark and from the last event: a reset costs one relist, a dropped connection none.
fn assert_pod_sequence(server: &ApiServer) {
    let lists = server.requests("list", "pods");
    let watches = server.requests("watch", "pods");
    assert_eq!(lists.len(), 2, "one list, one relist after 410: {lists:?}");
    let versions: Vec<Option<&str>> = watches.iter().map(|q| query_value(q, "resourceVersion")).collect();
    assert_eq!(versions[..4], [Some("1000"), Some("1005"), Some("1500"), Some("1501")], "{watches:?}");
    assert!(watches.iter().all(|q| q.contains("allowWatchBookmarks=true")), "{watches:?}");
}

const UID_API_1: &str = "1f4c7a52-7d0e-4c1e-9a53-5b2a1c000001";
const UID_DB: &str = "2a9e5b61-3c4d-4f2a-8b7c-6d1e2f000002";
const UID_OLD: &str = "3b8d6c70-2e5f-4a3b-9c8d-7e2f3a000003";
const UID_BACKUP: &str = "4c7e5d8f-1f6a-4b4c-8d9e-8f3a4b000004";
const UID_API_2: &str = "5d6f4e9a-0a7b-4c5d-9e0f-9a4b5c000005";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_metadata_survives_a_watch_reset() {
    let server = Arc::new(ApiServer::default());
    pod_script(&server);
    let url = start(server.clone()).await;
    let config = KubernetesConfig {
        api_url: Some(url),
        node_name: Some("node-1".into()),
        pod_labels: vec!["app".into(), "app.kubernetes.io/*".into()],
        ..Default::default()
    };
    let cancel = CancellationToken::new();
    let (metadata, task) = PodMetadata::start(&config, cancel.clone()).await.unwrap();
    let settled = || {
        metadata.pod(UID_API_2).is_some()
            && metadata.pod(UID_OLD).is_none()
            && server.requests("watch", "pods").len() >= 4
    };
    wait_for("pod metadata at the final state", settled).await;
    // Deleted while the watch was down (gone from the relist): not kept.
    assert!(metadata.pod(UID_OLD).is_none() && metadata.pod(UID_BACKUP).is_none());
    assert_eq!(metadata.len(), 3);
    let api = metadata.pod(UID_API_1).unwrap();
    assert_eq!(api.workload, ("Deployment".to_string(), "api".to_string()));
    assert!(api.labels.contains(&("app_kubernetes_io_version".into(), "2.0.0".into())), "{:?}", api.labels);
    assert!(!api.labels.iter().any(|(n, _)| n == "pod_template_hash"), "not in the allow-list");
    assert_eq!(metadata.pod(UID_DB).unwrap().workload, ("StatefulSet".to_string(), "db".to_string()));
    let labels = metadata.stream_labels(UID_API_2).unwrap();
    assert!(labels.contains(&("workload".into(), "api".into())) && labels.contains(&("app".into(), "api".into())));
    assert_pod_sequence(&server);
    let lists = server.requests("list", "pods");
    assert!(lists.iter().all(|q| query_value(q, "fieldSelector") == Some("spec.nodeName%3Dnode-1")), "{lists:?}");
    cancel.cancel();
    task.await.unwrap();
}

fn relabel(yaml: &str) -> Vec<RelabelConfig> {
    serde_yaml_ng::from_str(yaml).unwrap()
}

async fn sd_collector(
    url: &str,
    role: KubernetesRole,
    relabel_configs: Vec<RelabelConfig>,
) -> (Collector, tempfile::TempDir) {
    sd_collector_with(
        KubernetesSdConfig { role, api_server: Some(url.to_string()), ..Default::default() },
        relabel_configs,
    )
    .await
}

async fn sd_collector_with(
    sd: KubernetesSdConfig,
    relabel_configs: Vec<RelabelConfig>,
) -> (Collector, tempfile::TempDir) {
    let mut config = CollectorConfig::default();
    config.scrape_configs.push(ScrapeConfig {
        job_name: format!("kubernetes-{:?}", sd.role).to_lowercase(),
        // Long enough that no target is scraped during the test.
        scrape_interval: Some(Duration::from_secs(3600)),
        kubernetes_sd_configs: vec![sd],
        relabel_configs,
        ..Default::default()
    });
    config.validate().unwrap();
    let state = tempfile::tempdir().unwrap();
    let sink = Arc::new(RecordingSink::default());
    (Collector::start(config, state.path(), sink.clone(), sink).await.unwrap(), state)
}

fn targets(collector: &Collector) -> Vec<(String, String)> {
    let mut t: Vec<(String, String)> = collector
        .targets()
        .iter()
        .map(|t| (t.labels.get("instance").unwrap_or("").to_string(), t.labels.get("pod").unwrap_or("").to_string()))
        .collect();
    t.sort();
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_sd_targets_survive_a_watch_reset() {
    let server = Arc::new(ApiServer::default());
    pod_script(&server);
    let url = start(server.clone()).await;
    // The usual Prometheus job for annotated pods.
    let relabel_configs = relabel(
        r#"
- source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_scrape]
  action: keep
  regex: "true"
- source_labels: [__address__, __meta_kubernetes_pod_annotation_prometheus_io_port]
  action: replace
  regex: ([^:]+)(?::\d+)?;(\d+)
  replacement: $1:$2
  target_label: __address__
- action: labelmap
  regex: __meta_kubernetes_pod_label_(.+)
- source_labels: [__meta_kubernetes_namespace]
  target_label: namespace
- source_labels: [__meta_kubernetes_pod_name]
  target_label: pod
"#,
    );
    let (collector, _state) = sd_collector(&url, KubernetesRole::Pod, relabel_configs).await;
    let want = vec![
        ("127.0.0.11:8080".to_string(), "api-7d9f8b6c5d-x2x9z".to_string()),
        ("127.0.0.12:9187".to_string(), "db-0".to_string()),
        ("127.0.0.15:8080".to_string(), "api-7d9f8b6c5d-q4w5e".to_string()),
    ];
    wait_for("pod targets at the final state", || {
        targets(&collector) == want && server.requests("watch", "pods").len() >= 4
    })
    .await;
    assert_pod_sequence(&server);
    let api = collector.targets().into_iter().find(|t| t.labels.get("instance") == Some("127.0.0.11:8080")).unwrap();
    assert_eq!(
        api.labels.get("app_kubernetes_io_version"),
        Some("2.0.0"),
        "labels from the relist, not the first list"
    );
    assert_eq!(api.labels.get("namespace"), Some("shop"));
    assert_eq!(api.discovered_labels.get("__meta_kubernetes_pod_controller_kind"), Some("ReplicaSet"));
    // db-0's two container ports become one target through the port annotation.
    let db = collector.targets().into_iter().filter(|t| t.labels.get("pod") == Some("db-0")).count();
    assert_eq!(db, 1);
    collector.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_sd_targets_follow_a_relist() {
    let server = Arc::new(ApiServer::default());
    server.script("pods", &["pods-list-2.json"], vec![]);
    server.script("services", &["services-list.json"], vec![]);
    server.script(
        "endpoints",
        &["endpoints-list-1.json", "endpoints-list-2.json"],
        vec![("endpoints-watch-1.jsonl", End::Close)],
    );
    let url = start(server.clone()).await;
    // The usual Prometheus job for annotated services.
    let relabel_configs = relabel(
        r#"
- source_labels: [__meta_kubernetes_service_annotation_prometheus_io_scrape]
  action: keep
  regex: "true"
- source_labels: [__meta_kubernetes_namespace]
  target_label: namespace
- source_labels: [__meta_kubernetes_service_name]
  target_label: service
- source_labels: [__meta_kubernetes_pod_name]
  target_label: pod
"#,
    );
    let (collector, _state) = sd_collector(&url, KubernetesRole::Endpoints, relabel_configs).await;
    let want = vec![
        ("127.0.0.11:8080".to_string(), "api-7d9f8b6c5d-x2x9z".to_string()),
        ("127.0.0.15:8080".to_string(), "api-7d9f8b6c5d-q4w5e".to_string()),
    ];
    wait_for("endpoints targets after the relist", || targets(&collector) == want).await;
    let lists = server.requests("list", "endpoints");
    assert_eq!(lists.len(), 2, "relisted after 410: {lists:?}");
    let watches = server.requests("watch", "endpoints");
    let versions: Vec<Option<&str>> = watches.iter().map(|q| query_value(q, "resourceVersion")).collect();
    assert_eq!(
        versions,
        [Some("2000"), Some("2100")],
        "410 after a bookmark: watch again from the relist: {watches:?}"
    );
    let not_ready =
        collector.targets().into_iter().find(|t| t.labels.get("instance") == Some("127.0.0.15:8080")).unwrap();
    assert_eq!(not_ready.discovered_labels.get("__meta_kubernetes_endpoint_ready"), Some("false"));
    assert_eq!(not_ready.labels.get("service"), Some("api"));
    collector.shutdown().await.unwrap();
}

/// `api_server` over HTTPS with Prometheus's keys: the CA from `ca_file`, the certificate checked
/// for `server_name` (not the URL's IP), and the token from `bearer_token_file` on every request;
/// the server refuses requests without it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sd_reaches_an_https_api_server_with_a_bearer_token() {
    let server = Arc::new(ApiServer { authorization: Some("Bearer s3cret-token".into()), ..Default::default() });
    server.script("pods", &["pods-list-2.json"], vec![]);
    let (url, ca_pem) = start_tls(server.clone(), "kubernetes.default.svc").await;
    let dir = tempfile::tempdir().unwrap();
    let (ca_file, token_file) = (dir.path().join("ca.pem"), dir.path().join("token"));
    std::fs::write(&ca_file, ca_pem).unwrap();
    // A trailing newline, as `echo` leaves it: trimmed, as Prometheus does (kube alone would send it).
    std::fs::write(&token_file, "s3cret-token\n").unwrap();
    let sd = KubernetesSdConfig {
        role: KubernetesRole::Pod,
        api_server: Some(url.clone()),
        bearer_token_file: Some(token_file),
        tls_config: TlsConfig {
            ca_file: Some(ca_file),
            server_name: Some("kubernetes.default.svc".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    let relabel_configs = relabel("- source_labels: [__meta_kubernetes_pod_name]\n  target_label: pod\n");
    let (collector, _state) = sd_collector_with(sd, relabel_configs).await;
    wait_for("pod targets through TLS and the token", || {
        targets(&collector).iter().any(|(_, pod)| pod == "api-7d9f8b6c5d-q4w5e")
    })
    .await;
    assert_eq!(*server.unauthorized.lock().unwrap(), 0, "every request carried the token");
    collector.shutdown().await.unwrap();
    // Without the token: refused, no targets.
    let sd = KubernetesSdConfig {
        role: KubernetesRole::Pod,
        api_server: Some(url),
        tls_config: TlsConfig { insecure_skip_verify: true, ..Default::default() },
        ..Default::default()
    };
    let (collector, _state) = sd_collector_with(sd, Vec::new()).await;
    wait_for("a refused request", || *server.unauthorized.lock().unwrap() > 0).await;
    assert!(collector.targets().is_empty());
    collector.shutdown().await.unwrap();
}

/// Role endpointslice joins the slice's service (by `kubernetes.io/service-name`), its pods and,
/// with `attach_metadata.node`, their node; a MODIFIED slice adds a not-ready endpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpointslice_sd_joins_services_pods_and_nodes() {
    let server = Arc::new(ApiServer::default());
    server.script("pods", &["pods-list-2.json"], vec![]);
    server.script("services", &["services-list.json"], vec![]);
    server.script("nodes", &["nodes-list.json"], vec![]);
    server.script("endpointslices", &["endpointslices-list.json"], vec![("endpointslices-watch-1.jsonl", End::Hang)]);
    let url = start(server.clone()).await;
    let relabel_configs = relabel(
        r#"
- source_labels: [__meta_kubernetes_service_annotation_prometheus_io_scrape]
  action: keep
  regex: "true"
- source_labels: [__meta_kubernetes_pod_name]
  target_label: pod
- source_labels: [__meta_kubernetes_node_label_topology_kubernetes_io_zone]
  target_label: zone
"#,
    );
    let sd = KubernetesSdConfig {
        role: KubernetesRole::Endpointslice,
        api_server: Some(url),
        attach_metadata: AttachMetadata { node: true },
        ..Default::default()
    };
    let (collector, _state) = sd_collector_with(sd, relabel_configs).await;
    let want = vec![
        ("127.0.0.11:8080".to_string(), "api-7d9f8b6c5d-x2x9z".to_string()),
        ("127.0.0.15:8080".to_string(), "api-7d9f8b6c5d-q4w5e".to_string()),
    ];
    wait_for("endpointslice targets after the MODIFIED slice", || targets(&collector) == want).await;
    let all = collector.targets();
    let new = all.iter().find(|t| t.labels.get("instance") == Some("127.0.0.15:8080")).unwrap();
    let d = &new.discovered_labels;
    assert_eq!(d.get("__meta_kubernetes_endpointslice_endpoint_conditions_ready"), Some("false"));
    assert_eq!(d.get("__meta_kubernetes_endpointslice_name"), Some("api-7xk2p"));
    assert_eq!(d.get("__meta_kubernetes_endpointslice_address_type"), Some("IPv4"));
    assert_eq!(d.get("__meta_kubernetes_endpointslice_port_app_protocol"), Some("http"));
    assert_eq!(d.get("__meta_kubernetes_service_name"), Some("api"));
    assert_eq!(d.get("__meta_kubernetes_pod_container_port_name"), Some("http"));
    assert_eq!(d.get("__meta_kubernetes_node_label_node_kubernetes_io_instance_type"), Some("m5.large"));
    assert!(all.iter().all(|t| t.labels.get("zone") == Some("zone-a")), "node labels on every target");
    assert_eq!(server.requests("list", "nodes").len(), 1, "attach_metadata watches nodes");
    collector.shutdown().await.unwrap();
}

/// Role ingress: a target per rule and path, https where TLS covers the host; the usual
/// blackbox relabeling turns them into probe URLs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingress_sd_targets_per_rule_and_path() {
    let server = Arc::new(ApiServer::default());
    server.script("ingresses", &["ingresses-list.json"], vec![]);
    let url = start(server.clone()).await;
    let relabel_configs = relabel(
        r#"
- source_labels: [__meta_kubernetes_ingress_annotation_prometheus_io_probe]
  action: keep
  regex: "true"
- source_labels: [__meta_kubernetes_ingress_scheme, __address__, __meta_kubernetes_ingress_path]
  regex: (.+);(.+);(.+)
  replacement: ${1}://${2}${3}
  target_label: __param_target
- target_label: __address__
  replacement: 127.0.0.1:9
- source_labels: [__param_target]
  target_label: instance
- source_labels: [__meta_kubernetes_ingress_name]
  target_label: ingress
"#,
    );
    let (collector, _state) = sd_collector(&url, KubernetesRole::Ingress, relabel_configs).await;
    let instances = || {
        let mut i: Vec<String> =
            collector.targets().iter().map(|t| t.labels.get("instance").unwrap_or("").to_string()).collect();
        i.sort();
        i
    };
    let want = ["http://admin.example.test/", "https://shop.example.test/", "https://shop.example.test/metrics"];
    wait_for("ingress targets", || instances() == want).await;
    let t = collector.targets().into_iter().next().unwrap();
    assert_eq!(t.labels.get("ingress"), Some("shop"));
    assert_eq!(t.discovered_labels.get("__meta_kubernetes_ingress_class_name"), Some("nginx"));
    let lists = server.requests("list", "ingresses");
    assert!(!lists.is_empty());
    collector.shutdown().await.unwrap();
}

/// The agent labels the lines of a simulated pod with its API metadata, and the lines of a pod
/// the API does not know go out after `metadata_wait` with their path labels.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_lines_carry_pod_metadata() {
    let server = Arc::new(ApiServer::default());
    server.script("pods", &["pods-list-2.json"], vec![]);
    let url = start(server.clone()).await;
    let root = tempfile::tempdir().unwrap();
    let known = root.path().join(format!("pods/shop_api-7d9f8b6c5d-q4w5e_{UID_API_2}/api"));
    let unknown = root.path().join("pods/shop_ghost-0_9f9f9f9f-0000-4000-8000-000000000009/ghost");
    for dir in [&known, &unknown] {
        std::fs::create_dir_all(dir).unwrap();
    }
    let cri = |msg: &str| format!("2026-12-06T18:00:10.000000000Z stdout F {msg}");
    common::append(&known.join("0.log"), [cri("GET /cart 200"), cri("ERROR payment failed")]);
    common::append(&unknown.join("0.log"), [cri("boo")]);
    let mut config = common::tail_config(root.path());
    config.tail.include = vec![format!("{}/pods/*/*/*.log", root.path().display())];
    config.kubernetes = KubernetesConfig {
        api_url: Some(url),
        node_name: Some("node-1".into()),
        metadata_wait: Duration::from_secs(1),
        ..Default::default()
    };
    config.signals.enabled = true;
    config.signals.interval = Duration::from_millis(100);
    let state = tempfile::tempdir().unwrap();
    let sink = Arc::new(RecordingSink::default());
    let collector = Collector::start(config, state.path(), sink.clone(), sink.clone()).await.unwrap();
    wait_for("all three lines", || sink.lines().len() == 3).await;
    let records = sink.logs.lock().unwrap().clone();
    for r in &records {
        let get = |n: &str| r.labels.get(n);
        if r.line == "boo" {
            assert_eq!((get("pod"), get("workload"), get("app")), (Some("ghost-0"), None, None), "path labels only");
        } else {
            assert_eq!(get("pod"), Some("api-7d9f8b6c5d-q4w5e"));
            assert_eq!(
                (get("workload"), get("app"), get("app_kubernetes_io_version")),
                (Some("api"), Some("api"), Some("2.0.0"))
            );
        }
    }
    assert!(common::metrics_text(&collector).contains("tarsier_collector_kubernetes_metadata_missing_total 1"));
    let workload_series = || {
        sink.series.lock().unwrap().iter().any(|s| {
            s.labels.get("__name__") == Some("tarsier_workload_log_error_lines_total")
                && s.labels.get("workload") == Some("api")
                && s.labels.get("pod") == Some("api-7d9f8b6c5d-q4w5e")
                && s.samples.iter().any(|p| p.value == 1.0)
        })
    };
    wait_for("signals under the API's workload", workload_series).await;
    collector.shutdown().await.unwrap();
}

/// A pod relabelled while its log file is open: lines read after the watch's MODIFIED carry the
/// new label, lines before it the old one, and no line goes back to the old one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_files_get_new_pod_labels_after_a_modified_pod() {
    let server = Arc::new(ApiServer::default());
    server.script("pods", &["pods-list-2.json"], vec![("pods-watch-5.jsonl", End::Hang)]);
    let gate = Arc::new(tokio::sync::Notify::new());
    server.gates.lock().unwrap().insert("pods".into(), gate.clone());
    let url = start(server.clone()).await;
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join(format!("pods/shop_api-7d9f8b6c5d-q4w5e_{UID_API_2}/api"));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("0.log");
    let cri = |msg: &str| format!("2026-12-06T18:00:10.000000000Z stdout F {msg}");
    common::append(&log, [cri("before")]);
    let mut config = common::tail_config(root.path());
    config.tail.include = vec![format!("{}/pods/*/*/*.log", root.path().display())];
    config.kubernetes = KubernetesConfig {
        api_url: Some(url),
        node_name: Some("node-1".into()),
        pod_labels: vec!["app.kubernetes.io/version".into()],
        ..Default::default()
    };
    let state = tempfile::tempdir().unwrap();
    let sink = Arc::new(RecordingSink::default());
    let collector = Collector::start(config, state.path(), sink.clone(), sink.clone()).await.unwrap();
    let versions = || -> Vec<(String, String)> {
        let logs = sink.logs.lock().unwrap();
        logs.iter()
            .map(|r| (r.line.clone(), r.labels.get("app_kubernetes_io_version").unwrap_or("").to_string()))
            .collect()
    };
    wait_for("the first line", || !versions().is_empty()).await;
    assert_eq!(versions(), [("before".to_string(), "2.0.0".to_string())]);
    gate.notify_one();
    // The watch event and the next read race; keep writing until a line shows the new label.
    let mut n = 0;
    wait_for("a line with the new label", || {
        n += 1;
        common::append(&log, [cri(&format!("after-{n}"))]);
        versions().iter().any(|(_, v)| v == "2.1.0")
    })
    .await;
    let seen = versions();
    let first_new = seen.iter().position(|(_, v)| v == "2.1.0").unwrap();
    assert!(seen[..first_new].iter().all(|(_, v)| v == "2.0.0"), "{seen:?}");
    assert!(seen[first_new..].iter().all(|(_, v)| v == "2.1.0"), "never back to the old labels: {seen:?}");
    assert_eq!(seen[0].0, "before");
    collector.shutdown().await.unwrap();
}
