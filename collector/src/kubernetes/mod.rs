//! The Kubernetes API client layer, on the `kube` crate: how a client is configured (in-cluster
//! service account, a kubeconfig file or a plain API URL for tests), how a resource is listed and
//! watched (`kube::runtime::watcher` with bookmarks, a relist after `410 Gone`, reconnects with
//! backoff) and [`Store`], the object set a watch keeps, which swaps a relist in only once it is
//! complete so readers never see a half-listed or stale set. The users are pod metadata for log
//! streams (`metadata.rs`) and `kubernetes_sd_configs` (`scrape/sd/kubernetes.rs`); every call
//! they make is listed in `kube_access.rs`.

pub mod metadata;
pub mod review;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::{Stream, StreamExt};
use kube::runtime::utils::{Backoff, StreamBackoff};
use kube::runtime::watcher::{self, Event};
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub use metadata::{PodInfo, PodMetadata};

use crate::scrape::http::{HttpSettings, read_ca_file};

/// Where the service account's files are mounted in a pod.
const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// First wait after a failed list or watch; doubles up to [`BACKOFF_MAX`].
const BACKOFF_MIN: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A watch that stayed healthy this long starts its next backoff from [`BACKOFF_MIN`] again.
const BACKOFF_RESET: Duration = Duration::from_secs(120);

/// `collector.kubernetes`: pod metadata on log streams.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KubernetesConfig {
    /// `true`/`false`, or unset (the default): on when the collector tails files and runs in a
    /// cluster (`KUBERNETES_SERVICE_HOST` is set) or `api_url` or `kubeconfig` is given.
    pub enabled: Option<bool>,
    /// The API server's URL without authentication (tests, `kubectl proxy`); else in-cluster config.
    pub api_url: Option<String>,
    /// A kubeconfig file (its current context) instead of the in-cluster service account.
    pub kubeconfig: Option<PathBuf>,
    /// The node whose pods are watched (`spec.nodeName`); unset: `$NODE_NAME`, else every pod.
    pub node_name: Option<String>,
    /// Pod labels copied onto log streams: exact names, or prefixes ending in `*`
    /// (`app.kubernetes.io/*`). Names are sanitised as Prometheus does (`app.kubernetes.io/name`
    /// → `app_kubernetes_io_name`); a label never replaces one the path gave.
    pub pod_labels: Vec<String>,
    /// Namespace labels copied onto the streams of its pods (same rules; pod labels win).
    pub namespace_labels: Vec<String>,
    /// How long lines of a pod not yet in the watched set wait for its metadata before they go out
    /// with the path's labels only (0 = never wait).
    #[serde(with = "humantime_serde")]
    pub metadata_wait: Duration,
}

impl Default for KubernetesConfig {
    fn default() -> Self {
        KubernetesConfig {
            enabled: None,
            api_url: None,
            kubeconfig: None,
            node_name: None,
            pod_labels: vec![
                "app".into(),
                "app.kubernetes.io/name".into(),
                "app.kubernetes.io/instance".into(),
                "app.kubernetes.io/component".into(),
                "app.kubernetes.io/version".into(),
            ],
            namespace_labels: Vec::new(),
            metadata_wait: Duration::from_secs(2),
        }
    }
}

impl KubernetesConfig {
    /// Checks what serde cannot; errors name the key.
    pub fn validate(&self) -> Result<(), String> {
        let key = "collector.kubernetes";
        validate_source(key, "api_url", self.api_url.as_deref(), "kubeconfig", self.kubeconfig.as_deref())?;
        for (field, patterns) in [("pod_labels", &self.pod_labels), ("namespace_labels", &self.namespace_labels)] {
            for (i, p) in patterns.iter().enumerate() {
                if p.is_empty() || p == "*" {
                    return Err(format!("{key}.{field}[{i}] must name a label or a prefix ending in '*'"));
                }
            }
        }
        if self.metadata_wait > Duration::from_secs(60) {
            return Err(format!("{key}.metadata_wait must be at most 60s (lines wait on it)"));
        }
        Ok(())
    }

    /// Whether metadata is collected: configured explicitly, or a collector that tails files
    /// (`tails_files`) running inside a cluster or given an API.
    pub fn active(&self, tails_files: bool) -> bool {
        self.enabled.unwrap_or_else(|| {
            tails_files
                && (self.api_url.is_some()
                    || self.kubeconfig.is_some()
                    || std::env::var_os("KUBERNETES_SERVICE_HOST").is_some())
        })
    }
}

/// Checks an API URL / kubeconfig pair (at most one, the URL absolute http(s)).
pub fn validate_source(
    key: &str,
    url_key: &str,
    url: Option<&str>,
    file_key: &str,
    file: Option<&Path>,
) -> Result<(), String> {
    if url.is_some() && file.is_some() {
        return Err(format!("{key}: {url_key} and {file_key} are mutually exclusive"));
    }
    if let Some(url) = url {
        let uri = reqwest::Url::parse(url).map_err(|e| format!("{key}.{url_key} {url:?}: {e}"))?;
        if !matches!(uri.scheme(), "http" | "https") || uri.host().is_none() {
            return Err(format!("{key}.{url_key} {url:?} must be an http(s) URL"));
        }
    }
    Ok(())
}

/// Builds a client: a kubeconfig file, else a plain API URL (with `http`: kubernetes_sd's TLS and
/// credential keys), else the in-cluster service account.
pub(crate) async fn client(
    api_url: Option<&str>,
    kubeconfig: Option<&Path>,
    http: Option<HttpSettings<'_>>,
) -> Result<kube::Client, String> {
    // kube's rustls uses the process-wide provider; ring is the one this workspace builds.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = match (kubeconfig, api_url) {
        (Some(path), _) => {
            let file = kube::config::Kubeconfig::read_from(path).map_err(|e| format!("{}: {e}", path.display()))?;
            kube::Config::from_custom_kubeconfig(file, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(|e| format!("{}: {e}", path.display()))?
        }
        (None, Some(url)) => {
            let mut config = kube::Config::new(url.parse().map_err(|e| format!("{url:?}: {e}"))?);
            if let Some(http) = http {
                apply_http(&mut config, &http)?;
            }
            config
        }
        (None, None) => kube::Config::incluster().map_err(|e| format!("in-cluster config: {e}"))?,
    };
    kube::Client::try_from(config).map_err(|e| e.to_string())
}

/// Puts Prometheus's HTTP client keys on a kube config. Credentials become a fixed
/// `Authorization` header, their files read (and trimmed, as Prometheus does) once here: kube's own
/// `token_file` does not trim, so a token file ending in a newline would be an invalid header.
fn apply_http(config: &mut kube::Config, http: &HttpSettings<'_>) -> Result<(), String> {
    let tls = http.tls;
    if let Some(path) = &tls.ca_file {
        config.root_cert = Some(read_ca_file(path)?.into_iter().map(|c| c.to_vec()).collect());
    }
    let path_string = |p: &PathBuf| p.to_string_lossy().into_owned();
    config.auth_info.client_certificate = tls.cert_file.as_ref().map(path_string);
    config.auth_info.client_key = tls.key_file.as_ref().map(path_string);
    config.tls_server_name = tls.server_name.clone();
    config.accept_invalid_certs = tls.insecure_skip_verify;
    let read = |secret: Option<&String>, file: Option<&Path>| -> Result<String, String> {
        match (secret, file) {
            (_, Some(file)) => std::fs::read_to_string(file)
                .map(|s| s.trim().to_string())
                .map_err(|e| format!("reading {}: {e}", file.display())),
            (Some(secret), None) => Ok(secret.clone()),
            (None, None) => Ok(String::new()),
        }
    };
    let header = if let Some(file) = http.bearer_token_file {
        Some(format!("Bearer {}", read(None, Some(file))?))
    } else if let Some(auth) = http.authorization {
        Some(format!("{} {}", auth.kind, read(auth.credentials.as_ref(), auth.credentials_file.as_deref())?))
    } else if let Some(basic) = http.basic_auth {
        use base64::Engine as _;
        let password = read(basic.password.as_ref(), basic.password_file.as_deref())?;
        let pair = base64::engine::general_purpose::STANDARD.encode(format!("{}:{password}", basic.username));
        Some(format!("Basic {pair}"))
    } else {
        None
    };
    if let Some(value) = header {
        let mut value = reqwest::header::HeaderValue::from_str(&value)
            .map_err(|_| "credentials are not a valid header value".to_string())?;
        value.set_sensitive(true);
        config.headers.push((reqwest::header::AUTHORIZATION, value));
    }
    Ok(())
}

/// The namespace this pod runs in, from its service account mount.
pub(crate) fn own_namespace() -> Option<String> {
    std::fs::read_to_string(Path::new(SERVICE_ACCOUNT_DIR).join("namespace")).ok().map(|s| s.trim().to_string())
}

/// Exponential backoff with jitter between failed lists and watches, as client-go's reflector.
struct WatchBackoff {
    next: Duration,
    last: Option<std::time::Instant>,
}

impl Iterator for WatchBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        if self.last.is_some_and(|t| t.elapsed() > BACKOFF_RESET) {
            self.next = BACKOFF_MIN;
        }
        self.last = Some(std::time::Instant::now());
        let wait = self.next;
        self.next = (self.next * 2).min(BACKOFF_MAX);
        let jitter = rand::random::<f64>() * 0.5;
        Some(wait.mul_f64(1.0 + jitter))
    }
}

impl Backoff for WatchBackoff {
    fn reset(&mut self) {
        self.next = BACKOFF_MIN;
    }
}

/// Lists and watches `api` for good: bookmarks on, a relist after `410 Gone`, other failures
/// retried with backoff (logged; a 410 is routine and only debug-logged). `what` names the
/// resource in logs.
pub(crate) fn watch<K>(api: Api<K>, config: watcher::Config, what: String) -> impl Stream<Item = Event<K>> + Send
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    let backoff = WatchBackoff { next: BACKOFF_MIN, last: None };
    StreamBackoff::new(watcher::watcher(api, config), backoff).filter_map(move |event| {
        let what = what.clone();
        async move {
            match event {
                Ok(event) => Some(event),
                Err(watcher::Error::WatchError(status)) if status.code == 410 => {
                    tracing::debug!(resource = %what, "resource version expired, listing again");
                    None
                }
                Err(error) => {
                    tracing::warn!(resource = %what, %error, "kubernetes watch failed, retrying");
                    None
                }
            }
        }
    })
}

/// `<namespace>/<name>` (or `<name>` for cluster-scoped objects).
pub(crate) fn object_key<K: Resource>(object: &K) -> String {
    match object.namespace() {
        Some(ns) => format!("{ns}/{}", object.name_any()),
        None => object.name_any(),
    }
}

/// The objects one watch currently sees. A relist (`Init` … `InitDone`) is buffered and swapped
/// in whole, so objects deleted while the watch was down vanish at that moment and readers never
/// see a partial list.
#[derive(Debug)]
pub(crate) struct Store<K> {
    objects: BTreeMap<String, K>,
    relist: Option<BTreeMap<String, K>>,
    synced: bool,
}

impl<K> Default for Store<K> {
    fn default() -> Self {
        Store { objects: BTreeMap::new(), relist: None, synced: false }
    }
}

impl<K: Resource> Store<K> {
    /// Applies one watch event; true when the visible set changed (a finished relist counts).
    pub(crate) fn apply(&mut self, event: Event<K>) -> bool {
        match event {
            Event::Init => {
                self.relist = Some(BTreeMap::new());
                false
            }
            Event::InitApply(object) => {
                self.relist.get_or_insert_with(BTreeMap::new).insert(object_key(&object), object);
                false
            }
            Event::InitDone => {
                if let Some(listed) = self.relist.take() {
                    self.objects = listed;
                }
                self.synced = true;
                true
            }
            Event::Apply(object) => {
                self.objects.insert(object_key(&object), object);
                true
            }
            Event::Delete(object) => self.objects.remove(&object_key(&object)).is_some(),
        }
    }

    /// Whether the first complete list has arrived.
    pub(crate) fn synced(&self) -> bool {
        self.synced
    }

    pub(crate) fn get(&self, key: &str) -> Option<&K> {
        self.objects.get(key)
    }

    pub(crate) fn values(&self) -> impl Iterator<Item = &K> {
        self.objects.values()
    }
}

/// Prometheus's `strutil.SanitizeLabelName`: every character outside `[a-zA-Z0-9_]` becomes `_`.
pub(crate) fn sanitize_label_name(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect()
}

/// Whether `name` is allowed by a list of exact names and `prefix*` patterns.
pub(crate) fn allowed(patterns: &[String], name: &str) -> bool {
    patterns.iter().any(|p| match p.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => p == name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::ObjectMeta;

    fn pod(ns: &str, name: &str) -> Pod {
        Pod {
            metadata: ObjectMeta { namespace: Some(ns.into()), name: Some(name.into()), ..Default::default() },
            ..Default::default()
        }
    }

    #[test]
    fn a_relist_replaces_the_set_only_when_complete() {
        let mut store = Store::default();
        store.apply(Event::Init);
        store.apply(Event::InitApply(pod("a", "x")));
        assert!(!store.synced() && store.get("a/x").is_none(), "not visible before InitDone");
        assert!(store.apply(Event::InitDone));
        assert!(store.apply(Event::Apply(pod("a", "y"))));
        store.apply(Event::Init);
        store.apply(Event::InitApply(pod("a", "z")));
        assert_eq!(store.values().count(), 2, "the old set stays visible during a relist");
        store.apply(Event::InitDone);
        let keys: Vec<String> = store.values().map(object_key).collect();
        assert_eq!(keys, ["a/z"], "objects deleted while the watch was down are gone");
        assert!(!store.apply(Event::Delete(pod("a", "x"))));
        assert!(store.apply(Event::Delete(pod("a", "z"))));
    }

    #[test]
    fn config_validation_and_label_patterns() {
        assert!(KubernetesConfig::default().validate().is_ok());
        let both = KubernetesConfig {
            api_url: Some("http://127.0.0.1:1".into()),
            kubeconfig: Some("/k".into()),
            ..Default::default()
        };
        assert!(both.validate().unwrap_err().contains("mutually exclusive"));
        let bad = KubernetesConfig { api_url: Some("ftp://x".into()), ..Default::default() };
        assert!(bad.validate().unwrap_err().starts_with("collector.kubernetes.api_url"));
        let star = KubernetesConfig { pod_labels: vec!["*".into()], ..Default::default() };
        assert!(star.validate().unwrap_err().starts_with("collector.kubernetes.pod_labels[0]"));
        assert!(!KubernetesConfig { enabled: Some(false), ..both.clone() }.active(true));
        assert!(KubernetesConfig { kubeconfig: None, ..both.clone() }.active(true));
        assert!(!KubernetesConfig { kubeconfig: None, ..both }.active(false), "nothing tailed, nothing to label");
        let patterns = vec!["app".to_string(), "app.kubernetes.io/*".to_string()];
        assert!(allowed(&patterns, "app") && allowed(&patterns, "app.kubernetes.io/name"));
        assert!(!allowed(&patterns, "application"));
        assert_eq!(sanitize_label_name("app.kubernetes.io/name"), "app_kubernetes_io_name");
    }

    #[test]
    fn every_watched_resource_is_in_the_access_table() {
        use k8s_openapi::api::core::v1::{Endpoints, Namespace, Node, Service};
        let granted = |role: &str, resource: &str| {
            crate::kube_access::API_ACCESS.iter().any(|a| {
                a.role == role && a.resource == resource && ["list", "watch"].iter().all(|v| a.verbs.contains(v))
            })
        };
        // metadata.rs (the agent) and scrape/sd/kubernetes.rs (kubernetes_sd_configs, meant for the server).
        for resource in [Pod::plural(&()), Namespace::plural(&())] {
            assert!(granted("agent", &resource), "agent {resource}");
        }
        use k8s_openapi::api::discovery::v1::EndpointSlice;
        use k8s_openapi::api::networking::v1::Ingress;
        let server = [
            Pod::plural(&()),
            Service::plural(&()),
            Endpoints::plural(&()),
            Node::plural(&()),
            EndpointSlice::plural(&()),
            Ingress::plural(&()),
        ];
        for resource in server {
            assert!(granted("server", &resource), "server {resource}");
        }
    }

    #[test]
    fn backoff_grows_and_resets() {
        let mut b = WatchBackoff { next: BACKOFF_MIN, last: None };
        let first = b.next().unwrap();
        let second = b.next().unwrap();
        assert!(first >= BACKOFF_MIN && first < BACKOFF_MIN * 2, "{first:?}");
        assert!(second >= BACKOFF_MIN * 2, "{second:?}");
        b.reset();
        assert!(b.next().unwrap() < BACKOFF_MIN * 2);
    }
}
