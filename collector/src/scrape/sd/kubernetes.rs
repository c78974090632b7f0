//! `kubernetes_sd_configs`: targets from the Kubernetes API in Prometheus's format (roles `pod`,
//! `endpoints`, `endpointslice`, `service`, `node`, `ingress`; `namespaces.names`/`own_namespace`;
//! label and field `selectors` per role; `attach_metadata.node`). Each config watches what its
//! role needs (endpoints and endpointslice also watch services and pods, per namespace; node
//! metadata watches nodes) with `kubernetes::watch`, keeps each watch's objects in a
//! [`Store`], and sends the full list of groups (`kubernetes_roles.rs`) once every watch has
//! listed and then whenever it changes. Because a relist after `410 Gone` or a reconnect swaps in
//! whole, a watch reset never sends a partial or stale list.

use std::path::PathBuf;

use futures::stream::{BoxStream, SelectAll};
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::{Endpoints, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::Ingress;
use kube::Api;
use kube::runtime::watcher::{self, Event};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::kubernetes_roles::{
    endpoints_group, endpointslice_group, endpointslice_service_key, ingress_group, node_group, pod_group,
    service_group,
};
use super::{Sink, TargetGroup};
use crate::kubernetes::{Store, validate_source, watch};
use crate::scrape::http::{Authorization, BasicAuth, HttpSettings, TlsConfig};

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
    /// discovery.k8s.io/v1 EndpointSlices.
    Endpointslice,
    Service,
    Node,
    /// networking.k8s.io/v1 Ingresses.
    Ingress,
}

/// `attach_metadata:` of a `kubernetes_sd_configs` entry.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AttachMetadata {
    /// Add the node's `__meta_kubernetes_node_*` labels to targets of roles pod, endpoints and
    /// endpointslice (watches every node; ignored by the other roles, as in Prometheus).
    pub node: bool,
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
/// A Tarsier extension: `$NAME` and `${NAME}` in `label` and `field` are replaced by the
/// environment variable (`$$` is a `$`), so a DaemonSet's job can select
/// `spec.nodeName=$NODE_NAME`; an unset or empty variable is a config error.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoleSelector {
    pub role: KubernetesRole,
    pub label: Option<String>,
    pub field: Option<String>,
}

/// Replaces `$NAME` / `${NAME}` by `lookup(NAME)` (`$$` → `$`); an unknown or empty variable, an
/// unterminated `${` or a `$` without a name is an error naming it.
pub(crate) fn expand_env(text: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, next) = if let Some(braced) = after.strip_prefix('{') {
            let end = braced.find('}').ok_or_else(|| format!("unterminated ${{ in {text:?}"))?;
            (&braced[..end], &braced[end + 1..])
        } else if let Some(next) = after.strip_prefix('$') {
            out.push('$');
            rest = next;
            continue;
        } else {
            let end = after.find(|c: char| !is_name(c)).unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        if name.is_empty() || !name.chars().all(is_name) || name.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(format!("'$' must start a variable ($NAME or ${{NAME}}; $$ for a '$') in {text:?}"));
        }
        match lookup(name).filter(|v| !v.is_empty()) {
            Some(value) => out.push_str(&value),
            None => return Err(format!("environment variable {name} is not set (used in {text:?})")),
        }
        rest = next;
    }
    out.push_str(rest);
    Ok(out)
}

fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// One `kubernetes_sd_configs` entry.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesSdConfig {
    /// What becomes a target: `pod`, `endpoints`, `endpointslice`, `service`, `node` or `ingress`.
    pub role: KubernetesRole,
    /// The API server's URL; unset: in-cluster config (or `kubeconfig_file`).
    #[serde(default)]
    pub api_server: Option<String>,
    /// Basic authentication against `api_server`.
    #[serde(default)]
    pub basic_auth: Option<BasicAuth>,
    /// `Authorization: <type> <credentials>` against `api_server`.
    #[serde(default)]
    pub authorization: Option<Authorization>,
    /// A Bearer token file for `api_server` (read when discovery starts).
    #[serde(default)]
    pub bearer_token_file: Option<PathBuf>,
    /// TLS towards `api_server`: `ca_file`, `cert_file`/`key_file`, `server_name`,
    /// `insecure_skip_verify`.
    #[serde(default)]
    pub tls_config: TlsConfig,
    /// A kubeconfig file (its current context) instead of the in-cluster service account.
    #[serde(default)]
    pub kubeconfig_file: Option<PathBuf>,
    /// Namespaces to watch (not for role `node`).
    #[serde(default)]
    pub namespaces: NamespaceDiscovery,
    /// Label/field selectors per watched role.
    #[serde(default)]
    pub selectors: Vec<RoleSelector>,
    /// Metadata of related objects to attach (`node`).
    #[serde(default)]
    pub attach_metadata: AttachMetadata,
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
        let http = self.http();
        http.validate(key)?;
        let custom = http.basic_auth.is_some()
            || http.authorization.is_some()
            || http.bearer_token_file.is_some()
            || *http.tls != TlsConfig::default();
        if custom && self.api_server.is_none() {
            return Err(format!(
                "{key}: basic_auth, authorization, bearer_token_file and tls_config need api_server \
                 (in-cluster and kubeconfig_file bring their own)"
            ));
        }
        use KubernetesRole as R;
        let allowed: &[KubernetesRole] = match self.role {
            R::Pod => &[R::Pod],
            R::Endpoints => &[R::Pod, R::Service, R::Endpoints],
            R::Endpointslice => &[R::Pod, R::Service, R::Endpointslice],
            R::Service => &[R::Service],
            R::Node => &[R::Node],
            R::Ingress => &[R::Ingress],
        };
        for (i, s) in self.selectors.iter().enumerate() {
            if !allowed.contains(&s.role) {
                return Err(format!("{key}.selectors[{i}].role {:?} is not allowed for role {:?}", s.role, self.role));
            }
            if self.selectors[..i].iter().any(|o| o.role == s.role) {
                return Err(format!("{key}.selectors[{i}]: role {:?} has more than one selector", s.role));
            }
            for (field, value) in [("label", &s.label), ("field", &s.field)] {
                if let Some(value) = value {
                    expand_env(value, env_var).map_err(|e| format!("{key}.selectors[{i}].{field}: {e}"))?;
                }
            }
        }
        if self.role == R::Node && (self.namespaces.own_namespace || !self.namespaces.names.is_empty()) {
            return Err(format!("{key}.namespaces does not apply to role node"));
        }
        Ok(())
    }

    /// The HTTP keys towards `api_server`, as a scrape job's.
    fn http(&self) -> HttpSettings<'_> {
        HttpSettings {
            basic_auth: self.basic_auth.as_ref(),
            authorization: self.authorization.as_ref(),
            bearer_token_file: self.bearer_token_file.as_deref(),
            tls: &self.tls_config,
        }
    }

    /// The watcher config (selectors) for the watches of `role`.
    fn watch_config(&self, role: KubernetesRole) -> watcher::Config {
        let mut config = watcher::Config::default();
        // Checked by validate(); a variable unset since then leaves the text as written.
        let expand = |text: &String| {
            expand_env(text, env_var).unwrap_or_else(|error| {
                tracing::error!(%error, "kubernetes_sd selector");
                text.clone()
            })
        };
        if let Some(s) = self.selectors.iter().find(|s| s.role == role) {
            if let Some(label) = &s.label {
                config = config.labels(&expand(label));
            }
            if let Some(field) = &s.field {
                config = config.fields(&expand(field));
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
    EndpointSlice(usize, Event<EndpointSlice>),
    Ingress(usize, Event<Ingress>),
    Node(Event<Node>),
}

/// What one config's watches see: a store per watch (namespace).
#[derive(Default)]
struct State {
    pods: Vec<Store<Pod>>,
    services: Vec<Store<Service>>,
    endpoints: Vec<Store<Endpoints>>,
    endpointslices: Vec<Store<EndpointSlice>>,
    ingresses: Vec<Store<Ingress>>,
    /// Role node's watch, or the node watch of `attach_metadata.node`.
    nodes: Vec<Store<Node>>,
    /// Whether targets get their node's labels.
    attach_node: bool,
}

impl State {
    fn apply(&mut self, update: Update) -> bool {
        match update {
            Update::Pod(i, e) => self.pods[i].apply(e),
            Update::Service(i, e) => self.services[i].apply(e),
            Update::Endpoints(i, e) => self.endpoints[i].apply(e),
            Update::EndpointSlice(i, e) => self.endpointslices[i].apply(e),
            Update::Ingress(i, e) => self.ingresses[i].apply(e),
            Update::Node(e) => self.nodes[0].apply(e),
        }
    }

    fn synced(&self) -> bool {
        self.pods.iter().all(Store::synced)
            && self.services.iter().all(Store::synced)
            && self.endpoints.iter().all(Store::synced)
            && self.endpointslices.iter().all(Store::synced)
            && self.ingresses.iter().all(Store::synced)
            && self.nodes.iter().all(Store::synced)
    }

    /// The node named `name`, when targets get node metadata.
    fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.first().filter(|_| self.attach_node)?.get(name)
    }

    fn pod(&self, ns: &str, name: &str) -> Option<&Pod> {
        let key = format!("{ns}/{name}");
        self.pods.iter().find_map(|s| s.get(&key))
    }

    fn service(&self, key: &str) -> Option<&Service> {
        self.services.iter().find_map(|s| s.get(key))
    }

    fn groups(&self, role: KubernetesRole) -> Vec<TargetGroup> {
        match role {
            KubernetesRole::Pod => self
                .pods
                .iter()
                .flat_map(Store::values)
                .map(|p| pod_group(p, p.spec.as_ref().and_then(|s| s.node_name.as_deref()).and_then(|n| self.node(n))))
                .collect(),
            KubernetesRole::Service => self.services.iter().flat_map(Store::values).map(service_group).collect(),
            KubernetesRole::Node => self.nodes.iter().flat_map(Store::values).map(node_group).collect(),
            KubernetesRole::Ingress => self.ingresses.iter().flat_map(Store::values).map(ingress_group).collect(),
            KubernetesRole::Endpoints => self
                .endpoints
                .iter()
                .flat_map(Store::values)
                .map(|e| {
                    let ns = e.metadata.namespace.as_deref().unwrap_or_default();
                    let service = self.service(&crate::kubernetes::object_key(e));
                    endpoints_group(e, service, |pod| self.pod(ns, pod), |n| self.node(n))
                })
                .collect(),
            KubernetesRole::Endpointslice => self
                .endpointslices
                .iter()
                .flat_map(Store::values)
                .map(|e| {
                    let ns = e.metadata.namespace.as_deref().unwrap_or_default();
                    let service = endpointslice_service_key(e).and_then(|key| self.service(&key));
                    endpointslice_group(e, service, |pod| self.pod(ns, pod), |n| self.node(n))
                })
                .collect(),
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
    let (api_server, kubeconfig) = (config.api_server.as_deref(), config.kubeconfig_file.as_deref());
    let client = match crate::kubernetes::client(api_server, kubeconfig, Some(config.http())).await {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(%error, "kubernetes_sd cannot build an API client, no targets");
            return;
        }
    };
    let mut state = State::default();
    let mut streams: SelectAll<BoxStream<'static, Update>> = SelectAll::new();
    let role = config.role;
    use KubernetesRole as R;
    state.attach_node = config.attach_metadata.node && matches!(role, R::Pod | R::Endpoints | R::Endpointslice);
    if role == R::Node || state.attach_node {
        let what = "nodes".to_string();
        let wc = config.watch_config(R::Node);
        streams.push(watch(Api::<Node>::all(client.clone()), wc, what).map(Update::Node).boxed());
        state.nodes.push(Store::default());
    }
    for ns in config.namespaces().into_iter().filter(|_| role != R::Node) {
        let what = |kind: &str| format!("{kind} in {}", ns.as_deref().unwrap_or("all namespaces"));
        if matches!(role, R::Pod | R::Endpoints | R::Endpointslice) {
            let (i, wc) = (state.pods.len(), config.watch_config(R::Pod));
            streams.push(watch(api::<Pod>(&client, &ns), wc, what("pods")).map(move |e| Update::Pod(i, e)).boxed());
            state.pods.push(Store::default());
        }
        if matches!(role, R::Service | R::Endpoints | R::Endpointslice) {
            let (i, wc) = (state.services.len(), config.watch_config(R::Service));
            let stream = watch(api::<Service>(&client, &ns), wc, what("services"));
            streams.push(stream.map(move |e| Update::Service(i, e)).boxed());
            state.services.push(Store::default());
        }
        if role == R::Endpoints {
            let (i, wc) = (state.endpoints.len(), config.watch_config(R::Endpoints));
            let stream = watch(api::<Endpoints>(&client, &ns), wc, what("endpoints"));
            streams.push(stream.map(move |e| Update::Endpoints(i, e)).boxed());
            state.endpoints.push(Store::default());
        }
        if role == R::Endpointslice {
            let (i, wc) = (state.endpointslices.len(), config.watch_config(R::Endpointslice));
            let stream = watch(api::<EndpointSlice>(&client, &ns), wc, what("endpointslices"));
            streams.push(stream.map(move |e| Update::EndpointSlice(i, e)).boxed());
            state.endpointslices.push(Store::default());
        }
        if role == R::Ingress {
            let (i, wc) = (state.ingresses.len(), config.watch_config(R::Ingress));
            let stream = watch(api::<Ingress>(&client, &ns), wc, what("ingresses"));
            streams.push(stream.map(move |e| Update::Ingress(i, e)).boxed());
            state.ingresses.push(Store::default());
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
    fn selectors_expand_environment_variables() {
        let env = |name: &str| match name {
            "NODE_NAME" => Some("node-1".to_string()),
            "EMPTY" => Some(String::new()),
            _ => None,
        };
        assert_eq!(expand_env("spec.nodeName=$NODE_NAME", env).unwrap(), "spec.nodeName=node-1");
        assert_eq!(expand_env("spec.nodeName=${NODE_NAME},a=b", env).unwrap(), "spec.nodeName=node-1,a=b");
        assert_eq!(expand_env("a=$NODE_NAME-x $$", env).unwrap(), "a=node-1-x $");
        assert_eq!(expand_env("app=web", env).unwrap(), "app=web");
        assert!(expand_env("a=$OTHER", env).unwrap_err().contains("OTHER is not set"));
        assert!(expand_env("a=$EMPTY", env).unwrap_err().contains("EMPTY is not set"), "empty counts as unset");
        assert!(expand_env("a=${NODE_NAME", env).unwrap_err().contains("unterminated"));
        assert!(expand_env("a=$", env).unwrap_err().contains("must start a variable"));
        assert!(expand_env("a=${1X}", env).unwrap_err().contains("must start a variable"));
    }

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
        let slices: KubernetesSdConfig = serde_yaml_ng::from_str(
            "role: endpointslice\nselectors: [{role: endpointslice, label: 'a=b'}, {role: pod}]\nattach_metadata: {node: true}",
        )
        .unwrap();
        assert!(slices.validate("k").is_ok() && slices.attach_metadata.node);
        let ingress: KubernetesSdConfig = serde_yaml_ng::from_str("role: ingress\nselectors: [{role: pod}]").unwrap();
        assert!(ingress.validate("k").unwrap_err().starts_with("k.selectors[0].role"));
        let unset: KubernetesSdConfig = serde_yaml_ng::from_str(
            "role: pod\nselectors: [{role: pod, field: 'spec.nodeName=${TARSIER_UNSET_VAR_X}'}]",
        )
        .unwrap();
        let error = unset.validate("k").unwrap_err();
        assert!(error.starts_with("k.selectors[0].field: environment variable TARSIER_UNSET_VAR_X"), "{error}");
        let no_url: KubernetesSdConfig = serde_yaml_ng::from_str("role: pod\nbearer_token_file: /t").unwrap();
        assert!(no_url.validate("k").unwrap_err().contains("need api_server"));
        let both: KubernetesSdConfig = serde_yaml_ng::from_str(
            "role: pod\napi_server: https://k:6443\nbearer_token_file: /t\nbasic_auth: {username: u}",
        )
        .unwrap();
        assert!(both.validate("k").unwrap_err().starts_with("k: at most one of"));
        let tls: KubernetesSdConfig = serde_yaml_ng::from_str(
            "role: pod\napi_server: https://k:6443\ntls_config: {ca_file: /ca.pem, server_name: kubernetes}\nauthorization: {credentials_file: /t}",
        )
        .unwrap();
        assert!(tls.validate("k").is_ok());
        assert!(serde_yaml_ng::from_str::<KubernetesSdConfig>("role: pod\nfollow_redirects: true").is_err());
        assert!(serde_yaml_ng::from_str::<KubernetesSdConfig>("namespaces: {names: [a]}").is_err(), "role is required");
    }
}
