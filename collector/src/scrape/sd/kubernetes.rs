//! `kubernetes_sd_configs`: targets from the Kubernetes API in Prometheus's format (roles `pod`,
//! `endpoints`, `service`, `node`; `namespaces.names`/`own_namespace`; label and field
//! `selectors` per role). Each config watches what its role needs (endpoints also watch services
//! and pods, per namespace) with `kubernetes::watch`, keeps each watch's objects in a
//! [`Store`], and sends the full list of groups (`kubernetes_roles.rs`) once every watch has
//! listed and then whenever it changes. Because a relist after `410 Gone` or a reconnect swaps in
//! whole, a watch reset never sends a partial or stale list.

use std::path::PathBuf;

use futures::stream::{BoxStream, SelectAll};
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::{Endpoints, Node, Pod, Service};
use kube::Api;
use kube::runtime::watcher::{self, Event};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::kubernetes_roles::{endpoints_group, node_group, pod_group, service_group};
use super::{Sink, TargetGroup};
use crate::kubernetes::{Store, validate_source, watch};

/// Events handled before the groups are computed again (a relist of a big cluster arrives as
/// many events; one recomputation covers them all).
const EVENTS_PER_UPDATE: usize = 1024;

/// A `kubernetes_sd_configs` role.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KubernetesRole {
    #[default]
    Pod,
    Endpoints,
    /// Accepted by the parser, refused by `validate()`: not implemented yet.
    Endpointslice,
    Service,
    Node,
    /// Accepted by the parser, refused by `validate()`: not implemented yet.
    Ingress,
}

/// `namespaces:` of a `kubernetes_sd_configs` entry.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NamespaceDiscovery {
    /// Add the namespace this pod runs in (its service account's `namespace` file).
    pub own_namespace: bool,
    /// Namespaces to watch; empty (and no `own_namespace`): all.
    pub names: Vec<String>,
}

/// One `selectors:` entry: label and field selectors for the watches of one role.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoleSelector {
    pub role: KubernetesRole,
    pub label: Option<String>,
    pub field: Option<String>,
}

/// One `kubernetes_sd_configs` entry.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesSdConfig {
    /// What becomes a target: `pod`, `endpoints`, `service` or `node`.
    pub role: KubernetesRole,
    /// The API server's URL, without authentication; unset: in-cluster config.
    #[serde(default)]
    pub api_server: Option<String>,
    /// A kubeconfig file (its current context) instead of the in-cluster service account.
    #[serde(default)]
    pub kubeconfig_file: Option<PathBuf>,
    /// Namespaces to watch (not for role `node`).
    #[serde(default)]
    pub namespaces: NamespaceDiscovery,
    /// Label/field selectors per watched role.
    #[serde(default)]
    pub selectors: Vec<RoleSelector>,
}

impl KubernetesSdConfig {
    /// Checks what serde cannot; errors start with `key`.
    pub(crate) fn validate(&self, key: &str) -> Result<(), String> {
        validate_source(
            key,
            "api_server",
            self.api_server.as_deref(),
            "kubeconfig_file",
            self.kubeconfig_file.as_deref(),
        )?;
        use KubernetesRole as R;
        let allowed: &[KubernetesRole] = match self.role {
            R::Pod => &[R::Pod],
            R::Endpoints => &[R::Pod, R::Service, R::Endpoints],
            R::Service => &[R::Service],
            R::Node => &[R::Node],
            R::Endpointslice | R::Ingress => {
                return Err(format!(
                    "{key}.role {:?} is not supported yet (pod, endpoints, service, node are)",
                    self.role
                ));
            }
        };
        for (i, s) in self.selectors.iter().enumerate() {
            if !allowed.contains(&s.role) {
                return Err(format!("{key}.selectors[{i}].role {:?} is not allowed for role {:?}", s.role, self.role));
            }
            if self.selectors[..i].iter().any(|o| o.role == s.role) {
                return Err(format!("{key}.selectors[{i}]: role {:?} has more than one selector", s.role));
            }
        }
        if self.role == R::Node && (self.namespaces.own_namespace || !self.namespaces.names.is_empty()) {
            return Err(format!("{key}.namespaces does not apply to role node"));
        }
        Ok(())
    }

    /// The watcher config (selectors) for the watches of `role`.
    fn watch_config(&self, role: KubernetesRole) -> watcher::Config {
        let mut config = watcher::Config::default();
        if let Some(s) = self.selectors.iter().find(|s| s.role == role) {
            if let Some(label) = &s.label {
                config = config.labels(label);
            }
            if let Some(field) = &s.field {
                config = config.fields(field);
            }
        }
        config
    }

    /// The namespaces to watch; `[None]` means all.
    fn namespaces(&self) -> Vec<Option<String>> {
        let mut names: Vec<Option<String>> = self.namespaces.names.iter().cloned().map(Some).collect();
        if self.namespaces.own_namespace {
            match crate::kubernetes::own_namespace() {
                Some(own) => names.push(Some(own)),
                None => tracing::warn!("kubernetes_sd own_namespace: not running in a pod, ignored"),
            }
        }
        if names.is_empty() {
            names.push(None);
        }
        names.sort();
        names.dedup();
        names
    }
}

// Moved once from a watch to the store; boxing would only add an allocation per event.
#[allow(clippy::large_enum_variant)]
enum Update {
    Pod(usize, Event<Pod>),
    Service(usize, Event<Service>),
    Endpoints(usize, Event<Endpoints>),
    Node(Event<Node>),
}

/// What one config's watches see: a store per watch (namespace).
#[derive(Default)]
struct State {
    pods: Vec<Store<Pod>>,
    services: Vec<Store<Service>>,
    endpoints: Vec<Store<Endpoints>>,
    nodes: Vec<Store<Node>>,
}

impl State {
    fn apply(&mut self, update: Update) -> bool {
        match update {
            Update::Pod(i, e) => self.pods[i].apply(e),
            Update::Service(i, e) => self.services[i].apply(e),
            Update::Endpoints(i, e) => self.endpoints[i].apply(e),
            Update::Node(e) => self.nodes[0].apply(e),
        }
    }

    fn synced(&self) -> bool {
        self.pods.iter().all(Store::synced)
            && self.services.iter().all(Store::synced)
            && self.endpoints.iter().all(Store::synced)
            && self.nodes.iter().all(Store::synced)
    }

    fn groups(&self, role: KubernetesRole) -> Vec<TargetGroup> {
        match role {
            KubernetesRole::Pod => self.pods.iter().flat_map(Store::values).map(pod_group).collect(),
            KubernetesRole::Service => self.services.iter().flat_map(Store::values).map(service_group).collect(),
            KubernetesRole::Node => self.nodes.iter().flat_map(Store::values).map(node_group).collect(),
            KubernetesRole::Endpoints => self
                .endpoints
                .iter()
                .flat_map(Store::values)
                .map(|e| {
                    let ns = e.metadata.namespace.as_deref().unwrap_or_default();
                    let key = format!("{ns}/{}", e.metadata.name.as_deref().unwrap_or_default());
                    let service = self.services.iter().find_map(|s| s.get(&key));
                    endpoints_group(e, service, |pod| {
                        let key = format!("{ns}/{pod}");
                        self.pods.iter().find_map(|s| s.get(&key))
                    })
                })
                .collect(),
            KubernetesRole::Endpointslice | KubernetesRole::Ingress => Vec::new(),
        }
    }
}

/// Api handle for one namespace (or all).
fn api<K>(client: &kube::Client, namespace: &Option<String>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    <K as kube::Resource>::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Starts the watches the role needs and sends the groups when they change until `cancel`.
pub(crate) async fn run(config: KubernetesSdConfig, sink: Sink, cancel: CancellationToken) {
    let client = match crate::kubernetes::client(config.api_server.as_deref(), config.kubeconfig_file.as_deref()).await
    {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(%error, "kubernetes_sd cannot build an API client, no targets");
            return;
        }
    };
    let mut state = State::default();
    let mut streams: SelectAll<BoxStream<'static, Update>> = SelectAll::new();
    let role = config.role;
    if role == KubernetesRole::Node {
        let what = "nodes".to_string();
        streams
            .push(watch(Api::<Node>::all(client.clone()), config.watch_config(role), what).map(Update::Node).boxed());
        state.nodes.push(Store::default());
    }
    for ns in config.namespaces().into_iter().filter(|_| role != KubernetesRole::Node) {
        let what = |kind: &str| format!("{kind} in {}", ns.as_deref().unwrap_or("all namespaces"));
        if matches!(role, KubernetesRole::Pod | KubernetesRole::Endpoints) {
            let (i, wc) = (state.pods.len(), config.watch_config(KubernetesRole::Pod));
            streams.push(watch(api::<Pod>(&client, &ns), wc, what("pods")).map(move |e| Update::Pod(i, e)).boxed());
            state.pods.push(Store::default());
        }
        if matches!(role, KubernetesRole::Service | KubernetesRole::Endpoints) {
            let (i, wc) = (state.services.len(), config.watch_config(KubernetesRole::Service));
            let stream = watch(api::<Service>(&client, &ns), wc, what("services"));
            streams.push(stream.map(move |e| Update::Service(i, e)).boxed());
            state.services.push(Store::default());
        }
        if role == KubernetesRole::Endpoints {
            let (i, wc) = (state.endpoints.len(), config.watch_config(KubernetesRole::Endpoints));
            let stream = watch(api::<Endpoints>(&client, &ns), wc, what("endpoints"));
            streams.push(stream.map(move |e| Update::Endpoints(i, e)).boxed());
            state.endpoints.push(Store::default());
        }
    }
    let mut sent: Option<Vec<TargetGroup>> = None;
    loop {
        let update = tokio::select! {
            _ = cancel.cancelled() => return,
            update = streams.next() => match update {
                Some(update) => update,
                None => return,
            },
        };
        let mut changed = state.apply(update);
        for _ in 0..EVENTS_PER_UPDATE {
            match streams.next().now_or_never() {
                Some(Some(update)) => changed |= state.apply(update),
                _ => break,
            }
        }
        if !changed || !state.synced() {
            continue;
        }
        let groups = state.groups(role);
        if sent.as_ref() != Some(&groups) {
            tracing::debug!(?role, groups = groups.len(), "kubernetes_sd targets changed");
            if !sink.send(groups.clone()).await {
                return;
            }
            sent = Some(groups);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_configs_parse_and_validate() {
        let yaml = "role: endpoints\nnamespaces:\n  names: [shop, web]\nselectors:\n  - role: service\n    label: 'monitor=true'\n";
        let config: KubernetesSdConfig = serde_yaml_ng::from_str(yaml).unwrap();
        assert_eq!(config.role, KubernetesRole::Endpoints);
        assert!(config.validate("k").is_ok());
        assert_eq!(config.namespaces(), [Some("shop".to_string()), Some("web".to_string())]);
        assert_eq!(KubernetesSdConfig::default().namespaces(), [None]);
        let wrong: KubernetesSdConfig = serde_yaml_ng::from_str("role: pod\nselectors: [{role: service}]").unwrap();
        assert!(wrong.validate("k").unwrap_err().starts_with("k.selectors[0].role"));
        let twice: KubernetesSdConfig =
            serde_yaml_ng::from_str("role: endpoints\nselectors: [{role: pod}, {role: pod, field: 'a=b'}]").unwrap();
        assert!(twice.validate("k").unwrap_err().starts_with("k.selectors[1]"));
        let later: KubernetesSdConfig = serde_yaml_ng::from_str("role: endpointslice").unwrap();
        assert!(later.validate("k").unwrap_err().starts_with("k.role"));
        assert!(serde_yaml_ng::from_str::<KubernetesSdConfig>("role: pod\nfollow_redirects: true").is_err());
        assert!(serde_yaml_ng::from_str::<KubernetesSdConfig>("namespaces: {names: [a]}").is_err(), "role is required");
    }
}
