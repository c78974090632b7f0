//! The target groups of `kubernetes_sd_configs`, one builder per role (pod, service, endpoints,
//! endpointslice, node, ingress), giving exactly the
//! `__meta_kubernetes_*` labels Prometheus's `discovery/kubernetes` gives (2.42), so relabeling
//! written for Prometheus (`keep` on `__meta_kubernetes_pod_annotation_prometheus_io_scrape`,
//! `labelmap` of `__meta_kubernetes_pod_label_(.+)`) works unchanged. Pure functions of the watched
//! objects: `kubernetes.rs` owns the watches.

use std::collections::{BTreeMap, HashSet};

use k8s_openapi::api::core::v1::{Container, ContainerPort, Endpoints, Node, ObjectReference, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::Ingress;
use kube::ResourceExt;
use model::{Labels, LabelsBuilder};

use super::TargetGroup;
use crate::kubernetes::sanitize_label_name;
use crate::scrape::populate::ADDRESS;

const META: &str = "__meta_kubernetes_";
const NAMESPACE: &str = "__meta_kubernetes_namespace";

/// `host:port` as Go's `net.JoinHostPort`.
fn join_host_port(host: &str, port: i32) -> String {
    if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") }
}

/// `<prefix>_label_<name>`, `<prefix>_labelpresent_<name>` and the same for annotations.
fn object_meta(
    b: &mut LabelsBuilder,
    prefix: &str,
    labels: &BTreeMap<String, String>,
    annotations: &BTreeMap<String, String>,
) {
    for (kind, map) in [("label", labels), ("annotation", annotations)] {
        for (name, value) in map {
            let name = sanitize_label_name(name);
            b.set(format!("{META}{prefix}_{kind}_{name}"), value);
            b.set(format!("{META}{prefix}_{kind}present_{name}"), "true");
        }
    }
}

/// Prometheus's `podLabels`: identity, state, controller, labels and annotations of a pod.
fn pod_labels(b: &mut LabelsBuilder, pod: &Pod) {
    let status = pod.status.as_ref();
    let spec = pod.spec.as_ref();
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .map_or_else(|| "unknown".to_string(), |c| c.status.to_lowercase());
    b.set(NAMESPACE, pod.namespace().unwrap_or_default())
        .set("__meta_kubernetes_pod_name", pod.name_any())
        .set("__meta_kubernetes_pod_ip", status.and_then(|s| s.pod_ip.clone()).unwrap_or_default())
        .set("__meta_kubernetes_pod_ready", ready)
        .set("__meta_kubernetes_pod_phase", status.and_then(|s| s.phase.clone()).unwrap_or_default())
        .set("__meta_kubernetes_pod_node_name", spec.and_then(|s| s.node_name.clone()).unwrap_or_default())
        .set("__meta_kubernetes_pod_host_ip", status.and_then(|s| s.host_ip.clone()).unwrap_or_default())
        .set("__meta_kubernetes_pod_uid", pod.uid().unwrap_or_default());
    if let Some(owner) = pod.owner_references().iter().find(|o| o.controller == Some(true)) {
        b.set("__meta_kubernetes_pod_controller_kind", &owner.kind);
        b.set("__meta_kubernetes_pod_controller_name", &owner.name);
    }
    object_meta(b, "pod", pod.labels(), pod.annotations());
}

/// The labels of one container (and port) of a pod target.
fn container_target(
    address: String,
    container: &k8s_openapi::api::core::v1::Container,
    id: &str,
    init: bool,
    port: Option<&k8s_openapi::api::core::v1::ContainerPort>,
) -> Labels {
    let mut b = LabelsBuilder::default();
    b.set(ADDRESS, address)
        .set("__meta_kubernetes_pod_container_name", &container.name)
        .set("__meta_kubernetes_pod_container_id", id)
        .set("__meta_kubernetes_pod_container_image", container.image.clone().unwrap_or_default())
        .set("__meta_kubernetes_pod_container_init", init.to_string());
    if let Some(port) = port {
        b.set("__meta_kubernetes_pod_container_port_name", port.name.clone().unwrap_or_default())
            .set("__meta_kubernetes_pod_container_port_number", port.container_port.to_string())
            .set("__meta_kubernetes_pod_container_port_protocol", port.protocol.as_deref().unwrap_or("TCP"));
    }
    b.build()
}

/// `attach_metadata: {node: true}`: the node's name, labels and annotations (Prometheus's
/// `addNodeLabels`).
fn node_meta(b: &mut LabelsBuilder, node: &Node) {
    b.set("__meta_kubernetes_node_name", node.name_any());
    object_meta(b, "node", node.labels(), node.annotations());
}

/// Role `pod`: a target per container port (a port-less container gives one target at the pod
/// IP); init containers too, marked. A pod without an IP yet has an empty group; a container
/// without a status (not created yet) is skipped, as in Prometheus. `node` is the pod's node when
/// `attach_metadata.node` is on.
pub(crate) fn pod_group(pod: &Pod, node: Option<&Node>) -> TargetGroup {
    let source = format!("pod/{}/{}", pod.namespace().unwrap_or_default(), pod.name_any());
    let mut b = LabelsBuilder::default();
    pod_labels(&mut b, pod);
    if let Some(node) = node {
        node_meta(&mut b, node);
    }
    let mut group = TargetGroup { source, targets: Vec::new(), labels: b.build() };
    let Some(ip) = pod.status.as_ref().and_then(|s| s.pod_ip.as_deref()).filter(|ip| !ip.is_empty()) else {
        return group;
    };
    let Some(spec) = &pod.spec else { return group };
    let status = pod.status.as_ref();
    let containers = spec.containers.iter().map(|c| (c, false));
    let inits = spec.init_containers.iter().flatten().map(|c| (c, true));
    for (container, init) in containers.chain(inits) {
        let statuses =
            status.and_then(|s| if init { s.init_container_statuses.as_ref() } else { s.container_statuses.as_ref() });
        let id = statuses
            .and_then(|all| all.iter().find(|s| s.name == container.name))
            .map(|s| s.container_id.clone().unwrap_or_default());
        let Some(id) = id else { continue };
        let ports = container.ports.as_deref().unwrap_or_default();
        if ports.is_empty() {
            group.targets.push(container_target(ip.to_string(), container, &id, init, None));
        }
        for port in ports {
            group.targets.push(container_target(
                join_host_port(ip, port.container_port),
                container,
                &id,
                init,
                Some(port),
            ));
        }
    }
    group
}

/// Prometheus's `serviceLabels`: name, namespace, labels and annotations of a service.
fn service_labels(b: &mut LabelsBuilder, service: &Service) {
    b.set(NAMESPACE, service.namespace().unwrap_or_default()).set("__meta_kubernetes_service_name", service.name_any());
    object_meta(b, "service", service.labels(), service.annotations());
}

/// Role `service`: a target per service port at `<service>.<namespace>.svc:<port>`.
pub(crate) fn service_group(service: &Service) -> TargetGroup {
    let (ns, name) = (service.namespace().unwrap_or_default(), service.name_any());
    let mut b = LabelsBuilder::default();
    service_labels(&mut b, service);
    let spec = service.spec.as_ref();
    let kind = spec.and_then(|s| s.type_.clone()).unwrap_or_else(|| "ClusterIP".into());
    b.set("__meta_kubernetes_service_type", &kind);
    let mut group = TargetGroup { source: format!("svc/{ns}/{name}"), targets: Vec::new(), labels: b.build() };
    for port in spec.and_then(|s| s.ports.as_ref()).into_iter().flatten() {
        let mut t = LabelsBuilder::default();
        t.set(ADDRESS, join_host_port(&format!("{name}.{ns}.svc"), port.port))
            .set("__meta_kubernetes_service_port_name", port.name.clone().unwrap_or_default())
            .set("__meta_kubernetes_service_port_number", port.port.to_string())
            .set("__meta_kubernetes_service_port_protocol", port.protocol.as_deref().unwrap_or("TCP"));
        if kind == "ExternalName" {
            t.set(
                "__meta_kubernetes_service_external_name",
                spec.and_then(|s| s.external_name.clone()).unwrap_or_default(),
            );
        } else {
            t.set("__meta_kubernetes_service_cluster_ip", spec.and_then(|s| s.cluster_ip.clone()).unwrap_or_default());
        }
        group.targets.push(t.build());
    }
    group
}

/// The node an endpoint address runs on, for `attach_metadata.node`: its `nodeName` or the
/// referenced Node. Prometheus asks endpoints for `nodeName` first (`name_first`) and
/// endpointslices for the reference first.
fn endpoint_node<'a>(
    target: Option<&ObjectReference>,
    node_name: Option<&String>,
    name_first: bool,
    node: &impl Fn(&str) -> Option<&'a Node>,
) -> Option<&'a Node> {
    let referenced = target.filter(|r| r.kind.as_deref() == Some("Node")).and_then(|r| r.name.as_deref());
    let own = node_name.map(String::as_str);
    let name = if name_first { own.or(referenced) } else { referenced.or(own) };
    node(name?)
}

/// The pod an endpoint address points at, when it is a Pod the pod watch knows.
fn endpoint_pod<'a>(target: Option<&ObjectReference>, pod: &impl Fn(&str) -> Option<&'a Pod>) -> Option<&'a Pod> {
    target.filter(|r| r.kind.as_deref() == Some("Pod")).and_then(|r| r.name.as_deref()).and_then(pod)
}

/// `__meta_kubernetes_pod_container_*` of one container port.
fn container_port_labels(t: &mut LabelsBuilder, c: &Container, cp: &ContainerPort) {
    t.set("__meta_kubernetes_pod_container_name", &c.name)
        .set("__meta_kubernetes_pod_container_image", c.image.clone().unwrap_or_default())
        .set("__meta_kubernetes_pod_container_port_name", cp.name.clone().unwrap_or_default())
        .set("__meta_kubernetes_pod_container_port_number", cp.container_port.to_string())
        .set("__meta_kubernetes_pod_container_port_protocol", cp.protocol.as_deref().unwrap_or("TCP"));
}

/// Pods seen through endpoint addresses, with the (port, protocol) pairs an endpoint covered
/// (protocol `None`: any, as endpointslice compares port numbers only).
type SeenPods<'a> = Vec<(&'a Pod, HashSet<(i32, Option<String>)>)>;

fn mark_seen<'a>(seen: &mut SeenPods<'a>, pod: &'a Pod, port: i32, protocol: Option<String>) {
    match seen.iter_mut().find(|(s, _)| std::ptr::eq(*s, pod)) {
        Some((_, covered)) => {
            covered.insert((port, protocol));
        }
        None => seen.push((pod, HashSet::from([(port, protocol)]))),
    }
}

/// A target per container port of the seen pods that no endpoint port covered.
fn uncovered_pod_ports(group: &mut TargetGroup, seen: SeenPods<'_>) {
    for (p, covered) in seen {
        let Some(ip) = p.status.as_ref().and_then(|s| s.pod_ip.as_deref()).filter(|ip| !ip.is_empty()) else {
            continue;
        };
        for c in p.spec.iter().flat_map(|s| &s.containers) {
            for cp in c.ports.iter().flatten() {
                let protocol = cp.protocol.clone().unwrap_or_else(|| "TCP".into());
                if covered.contains(&(cp.container_port, Some(protocol)))
                    || covered.contains(&(cp.container_port, None))
                {
                    continue;
                }
                let mut t = LabelsBuilder::default();
                pod_labels(&mut t, p);
                t.set(ADDRESS, join_host_port(ip, cp.container_port));
                container_port_labels(&mut t, c, cp);
                group.targets.push(t.build());
            }
        }
    }
}

/// Role `endpoints`: a target per address and port of every subset (ready and not ready), with
/// the service's labels when it exists and the pod's (and the matching container's) when the
/// address points at a known pod; then a target per container port of those pods that no
/// endpoint port covered. `node` finds a node by name when `attach_metadata.node` is on.
pub(crate) fn endpoints_group<'a>(
    endpoints: &Endpoints,
    service: Option<&Service>,
    pod: impl Fn(&str) -> Option<&'a Pod>,
    node: impl Fn(&str) -> Option<&'a Node>,
) -> TargetGroup {
    let (ns, name) = (endpoints.namespace().unwrap_or_default(), endpoints.name_any());
    let mut b = LabelsBuilder::default();
    b.set(NAMESPACE, &ns).set("__meta_kubernetes_endpoints_name", &name);
    object_meta(&mut b, "endpoints", endpoints.labels(), endpoints.annotations());
    if let Some(service) = service {
        service_labels(&mut b, service);
    }
    let mut group = TargetGroup { source: format!("endpoints/{ns}/{name}"), targets: Vec::new(), labels: b.build() };
    let mut seen: SeenPods<'a> = Vec::new();
    for subset in endpoints.subsets.iter().flatten() {
        let ready = subset.addresses.iter().flatten().map(|a| (a, "true"));
        let not_ready = subset.not_ready_addresses.iter().flatten().map(|a| (a, "false"));
        let addresses: Vec<_> = ready.chain(not_ready).collect();
        for port in subset.ports.iter().flatten() {
            let protocol = port.protocol.clone().unwrap_or_else(|| "TCP".into());
            for (address, ready) in &addresses {
                let mut t = LabelsBuilder::default();
                t.set(ADDRESS, join_host_port(&address.ip, port.port))
                    .set("__meta_kubernetes_endpoint_port_name", port.name.clone().unwrap_or_default())
                    .set("__meta_kubernetes_endpoint_port_protocol", &protocol)
                    .set("__meta_kubernetes_endpoint_ready", *ready);
                if let Some(target) = &address.target_ref {
                    t.set("__meta_kubernetes_endpoint_address_target_kind", target.kind.clone().unwrap_or_default())
                        .set("__meta_kubernetes_endpoint_address_target_name", target.name.clone().unwrap_or_default());
                }
                if let Some(node) = &address.node_name {
                    t.set("__meta_kubernetes_endpoint_node_name", node);
                }
                if let Some(hostname) = &address.hostname {
                    t.set("__meta_kubernetes_endpoint_hostname", hostname);
                }
                if let Some(n) = endpoint_node(address.target_ref.as_ref(), address.node_name.as_ref(), true, &node) {
                    node_meta(&mut t, n);
                }
                if let Some(p) = endpoint_pod(address.target_ref.as_ref(), &pod) {
                    pod_labels(&mut t, p);
                    let container = p.spec.iter().flat_map(|s| &s.containers).find_map(|c| {
                        let matching = |cp: &&ContainerPort| {
                            cp.container_port == port.port && cp.protocol.as_deref().unwrap_or("TCP") == protocol
                        };
                        c.ports.iter().flatten().find(matching).map(|cp| (c, cp))
                    });
                    if let Some((c, cp)) = container {
                        container_port_labels(&mut t, c, cp);
                    }
                    mark_seen(&mut seen, p, port.port, Some(protocol.clone()));
                }
                group.targets.push(t.build());
            }
        }
    }
    uncovered_pod_ports(&mut group, seen);
    group
}

/// The label naming an EndpointSlice's service.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// The `<namespace>/<service>` an EndpointSlice belongs to (its `kubernetes.io/service-name`).
pub(crate) fn endpointslice_service_key(slice: &EndpointSlice) -> Option<String> {
    let service = slice.labels().get(SERVICE_NAME_LABEL)?;
    Some(format!("{}/{service}", slice.namespace().unwrap_or_default()))
}

/// Role `endpointslice` (discovery.k8s.io/v1): a target per endpoint, port and address, with
/// Prometheus's `__meta_kubernetes_endpointslice_*` labels, the service's labels (found through
/// `kubernetes.io/service-name`) and, as role endpoints, the pod's and its uncovered ports.
pub(crate) fn endpointslice_group<'a>(
    slice: &EndpointSlice,
    service: Option<&Service>,
    pod: impl Fn(&str) -> Option<&'a Pod>,
    node: impl Fn(&str) -> Option<&'a Node>,
) -> TargetGroup {
    const ES: &str = "__meta_kubernetes_endpointslice_";
    let (ns, name) = (slice.namespace().unwrap_or_default(), slice.name_any());
    let mut b = LabelsBuilder::default();
    b.set(NAMESPACE, &ns).set(format!("{ES}address_type"), &slice.address_type).set(format!("{ES}name"), &name);
    object_meta(&mut b, "endpointslice", slice.labels(), slice.annotations());
    if let Some(service) = service {
        service_labels(&mut b, service);
    }
    let mut group =
        TargetGroup { source: format!("endpointslice/{ns}/{name}"), targets: Vec::new(), labels: b.build() };
    let mut seen: SeenPods<'a> = Vec::new();
    let ports = slice.ports.as_deref().unwrap_or_default();
    for endpoint in &slice.endpoints {
        for port in ports {
            for address in &endpoint.addresses {
                let mut t = LabelsBuilder::default();
                t.set(ADDRESS, port.port.map_or_else(|| address.clone(), |p| join_host_port(address, p)));
                if let Some(name) = &port.name {
                    t.set(format!("{ES}port_name"), name);
                }
                t.set(format!("{ES}port_protocol"), port.protocol.as_deref().unwrap_or("TCP"));
                if let Some(number) = port.port {
                    t.set(format!("{ES}port"), number.to_string());
                }
                if let Some(app) = &port.app_protocol {
                    t.set(format!("{ES}port_app_protocol"), app);
                }
                let conditions = endpoint.conditions.as_ref();
                for (label, value) in [
                    ("ready", conditions.and_then(|c| c.ready)),
                    ("serving", conditions.and_then(|c| c.serving)),
                    ("terminating", conditions.and_then(|c| c.terminating)),
                ] {
                    if let Some(value) = value {
                        t.set(format!("{ES}endpoint_conditions_{label}"), value.to_string());
                    }
                }
                if let Some(hostname) = &endpoint.hostname {
                    t.set(format!("{ES}endpoint_hostname"), hostname);
                }
                if let Some(target) = &endpoint.target_ref {
                    t.set(format!("{ES}address_target_kind"), target.kind.clone().unwrap_or_default())
                        .set(format!("{ES}address_target_name"), target.name.clone().unwrap_or_default());
                }
                for (key, value) in endpoint.deprecated_topology.iter().flatten() {
                    let key = sanitize_label_name(key);
                    t.set(format!("{ES}endpoint_topology_{key}"), value)
                        .set(format!("{ES}endpoint_topology_present_{key}"), "true");
                }
                if let Some(n) = endpoint_node(endpoint.target_ref.as_ref(), endpoint.node_name.as_ref(), false, &node)
                {
                    node_meta(&mut t, n);
                }
                if let Some(p) = endpoint_pod(endpoint.target_ref.as_ref(), &pod) {
                    pod_labels(&mut t, p);
                    // As Prometheus: the port number decides, the last matching container wins.
                    for c in p.spec.iter().flat_map(|s| &s.containers) {
                        let matching = c.ports.iter().flatten().find(|cp| Some(cp.container_port) == port.port);
                        if let Some(cp) = matching {
                            container_port_labels(&mut t, c, cp);
                        }
                    }
                    if let Some(number) = port.port {
                        mark_seen(&mut seen, p, number, None);
                    } else if !seen.iter().any(|(s, _)| std::ptr::eq(*s, p)) {
                        seen.push((p, HashSet::new()));
                    }
                }
                group.targets.push(t.build());
            }
        }
    }
    uncovered_pod_ports(&mut group, seen);
    group
}

/// Role `ingress` (networking.k8s.io/v1): a target per rule and path at the rule's host, scheme
/// `https` when a TLS entry's host (or `*.` wildcard) matches it.
pub(crate) fn ingress_group(ingress: &Ingress) -> TargetGroup {
    let (ns, name) = (ingress.namespace().unwrap_or_default(), ingress.name_any());
    let spec = ingress.spec.as_ref();
    let mut b = LabelsBuilder::default();
    b.set("__meta_kubernetes_ingress_name", &name).set(NAMESPACE, &ns);
    if let Some(class) = spec.and_then(|s| s.ingress_class_name.as_ref()) {
        b.set("__meta_kubernetes_ingress_class_name", class);
    }
    object_meta(&mut b, "ingress", ingress.labels(), ingress.annotations());
    let mut group = TargetGroup { source: format!("ingress/{ns}/{name}"), targets: Vec::new(), labels: b.build() };
    let tls_hosts: Vec<&str> = spec
        .and_then(|s| s.tls.as_ref())
        .into_iter()
        .flatten()
        .flat_map(|t| t.hosts.iter().flatten())
        .map(String::as_str)
        .collect();
    for rule in spec.and_then(|s| s.rules.as_ref()).into_iter().flatten() {
        let host = rule.host.as_deref().unwrap_or_default();
        let scheme = if tls_hosts.iter().any(|p| matches_hostname_pattern(p, host)) { "https" } else { "http" };
        let paths: Vec<&str> = match &rule.http {
            None => vec!["/"],
            Some(http) => {
                http.paths.iter().map(|p| p.path.as_deref().filter(|p| !p.is_empty()).unwrap_or("/")).collect()
            }
        };
        for path in paths {
            let mut t = LabelsBuilder::default();
            t.set(ADDRESS, host)
                .set("__meta_kubernetes_ingress_scheme", scheme)
                .set("__meta_kubernetes_ingress_host", host)
                .set("__meta_kubernetes_ingress_path", path);
            group.targets.push(t.build());
        }
    }
    group
}

/// Prometheus's `matchesHostnamePattern`: equal, or `*.rest` against a host with the same number
/// of labels and the same rest.
fn matches_hostname_pattern(pattern: &str, host: &str) -> bool {
    if pattern == host {
        return true;
    }
    let (pattern, host): (Vec<&str>, Vec<&str>) = (pattern.split('.').collect(), host.split('.').collect());
    pattern.first() == Some(&"*") && pattern.len() == host.len() && pattern[1..] == host[1..]
}

/// Role `node`: one target per node at its preferred address (InternalIP, InternalDNS,
/// ExternalIP, ExternalDNS, LegacyHostIP, Hostname) and kubelet port, `instance` = node name.
pub(crate) fn node_group(node: &Node) -> TargetGroup {
    let name = node.name_any();
    let mut b = LabelsBuilder::default();
    b.set("__meta_kubernetes_node_name", &name).set(
        "__meta_kubernetes_node_provider_id",
        node.spec.as_ref().and_then(|s| s.provider_id.clone()).unwrap_or_default(),
    );
    object_meta(&mut b, "node", node.labels(), node.annotations());
    let mut group = TargetGroup { source: format!("node/{name}"), targets: Vec::new(), labels: b.build() };
    let status = node.status.as_ref();
    let addresses = status.and_then(|s| s.addresses.as_deref()).unwrap_or_default();
    let preferred = ["InternalIP", "InternalDNS", "ExternalIP", "ExternalDNS", "LegacyHostIP", "Hostname"]
        .iter()
        .find_map(|kind| addresses.iter().find(|a| a.type_ == *kind));
    let Some(address) = preferred else {
        tracing::debug!(node = %name, "node has no address, no target");
        return group;
    };
    let port = status
        .and_then(|s| s.daemon_endpoints.as_ref())
        .and_then(|d| d.kubelet_endpoint.as_ref())
        .map_or(0, |e| e.port);
    let mut t = LabelsBuilder::default();
    t.set(ADDRESS, join_host_port(&address.address, port)).set("instance", &name);
    for a in addresses {
        let label = format!("__meta_kubernetes_node_address_{}", a.type_);
        if t.get(&label).is_none() {
            t.set(label, &a.address);
        }
    }
    group.targets.push(t.build());
    group
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_json<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
        serde_json::from_value(v).unwrap()
    }

    fn web_pod() -> Pod {
        from_json(serde_json::json!({
            "metadata": {"name": "web-1", "namespace": "shop", "uid": "u1",
                "labels": {"app.kubernetes.io/name": "web"},
                "annotations": {"prometheus.io/scrape": "true"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "uid": "s", "controller": true}]},
            "spec": {"nodeName": "node-1",
                "containers": [{"name": "app", "image": "web:1", "ports": [{"name": "http", "containerPort": 8080}, {"containerPort": 9090, "protocol": "UDP"}]},
                               {"name": "sidecar", "image": "side:1"}],
                "initContainers": [{"name": "init", "image": "init:1"}]},
            "status": {"phase": "Running", "podIP": "127.0.0.21", "hostIP": "127.0.1.1",
                "conditions": [{"type": "Ready", "status": "True"}],
                "containerStatuses": [{"name": "app", "containerID": "containerd://abc", "image": "web:1", "imageID": "", "ready": true, "restartCount": 0},
                                      {"name": "sidecar", "containerID": "containerd://def", "image": "side:1", "imageID": "", "ready": true, "restartCount": 0}],
                "initContainerStatuses": [{"name": "init", "containerID": "containerd://ghi", "image": "init:1", "imageID": "", "ready": false, "restartCount": 0}]}
        }))
    }

    #[test]
    fn pod_role_targets_and_labels() {
        let group = pod_group(&web_pod(), None);
        assert_eq!(group.source, "pod/shop/web-1");
        let l = &group.labels;
        assert_eq!(l.get("__meta_kubernetes_pod_annotation_prometheus_io_scrape"), Some("true"));
        assert_eq!(l.get("__meta_kubernetes_pod_annotationpresent_prometheus_io_scrape"), Some("true"));
        assert_eq!(l.get("__meta_kubernetes_pod_label_app_kubernetes_io_name"), Some("web"));
        assert_eq!(l.get("__meta_kubernetes_pod_ready"), Some("true"));
        assert_eq!(l.get("__meta_kubernetes_pod_controller_kind"), Some("StatefulSet"));
        assert_eq!(l.get("__meta_kubernetes_namespace"), Some("shop"));
        let addresses: Vec<&str> = group.targets.iter().map(|t| t.get(ADDRESS).unwrap()).collect();
        assert_eq!(addresses, ["127.0.0.21:8080", "127.0.0.21:9090", "127.0.0.21", "127.0.0.21"]);
        assert_eq!(group.targets[1].get("__meta_kubernetes_pod_container_port_protocol"), Some("UDP"));
        assert_eq!(group.targets[0].get("__meta_kubernetes_pod_container_id"), Some("containerd://abc"));
        assert_eq!(group.targets[3].get("__meta_kubernetes_pod_container_init"), Some("true"));
        let mut pending = web_pod();
        pending.status.as_mut().unwrap().pod_ip = None;
        assert!(pod_group(&pending, None).targets.is_empty());
    }

    #[test]
    fn endpoints_role_joins_service_and_pod() {
        let endpoints: Endpoints = from_json(serde_json::json!({
            "metadata": {"name": "web", "namespace": "shop"},
            "subsets": [{"addresses": [{"ip": "127.0.0.21", "nodeName": "node-1", "targetRef": {"kind": "Pod", "name": "web-1", "namespace": "shop"}}],
                         "notReadyAddresses": [{"ip": "127.0.0.22"}],
                         "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}]
        }));
        let service: Service = from_json(serde_json::json!({
            "metadata": {"name": "web", "namespace": "shop", "annotations": {"prometheus.io/scrape": "true"}},
            "spec": {"ports": [{"port": 80, "targetPort": 8080}], "clusterIP": "127.0.2.1"}
        }));
        let pod = web_pod();
        let group = endpoints_group(&endpoints, Some(&service), |n| (n == "web-1").then_some(&pod), |_| None);
        assert_eq!(group.labels.get("__meta_kubernetes_service_annotation_prometheus_io_scrape"), Some("true"));
        let t: Vec<(&str, Option<&str>, Option<&str>)> = group
            .targets
            .iter()
            .map(|t| {
                (
                    t.get(ADDRESS).unwrap(),
                    t.get("__meta_kubernetes_endpoint_ready"),
                    t.get("__meta_kubernetes_pod_container_port_number"),
                )
            })
            .collect();
        assert_eq!(
            t,
            [
                ("127.0.0.21:8080", Some("true"), Some("8080")),
                ("127.0.0.22:8080", Some("false"), None),
                ("127.0.0.21:9090", None, Some("9090")),
            ],
            "the pod's uncovered UDP port is a target of its own"
        );
        assert_eq!(group.targets[0].get("__meta_kubernetes_pod_name"), Some("web-1"));
        assert_eq!(group.targets[0].get("__meta_kubernetes_endpoint_node_name"), Some("node-1"));
        assert_eq!(group.targets[0].get("__meta_kubernetes_node_name"), None, "no attach_metadata, no node labels");
        let node = node_1();
        let attached = endpoints_group(&endpoints, None, |_| None, |n| (n == "node-1").then_some(&node));
        assert_eq!(attached.targets[0].get("__meta_kubernetes_node_label_topology_kubernetes_io_zone"), Some("z1"));
        assert_eq!(attached.targets[1].get("__meta_kubernetes_node_name"), None, "an address without a node");
        let svc = service_group(&service);
        assert_eq!(svc.targets[0].get(ADDRESS), Some("web.shop.svc:80"));
        assert_eq!(svc.targets[0].get("__meta_kubernetes_service_cluster_ip"), Some("127.0.2.1"));
        assert_eq!(svc.labels.get("__meta_kubernetes_service_type"), Some("ClusterIP"));
    }

    #[test]
    fn node_role_prefers_the_internal_ip() {
        let node: Node = from_json(serde_json::json!({
            "metadata": {"name": "node-1", "labels": {"kubernetes.io/os": "linux"}},
            "status": {"addresses": [{"type": "Hostname", "address": "node-1"}, {"type": "InternalIP", "address": "127.0.1.1"}],
                       "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}}}
        }));
        let group = node_group(&node);
        assert_eq!(group.targets[0].get(ADDRESS), Some("127.0.1.1:10250"));
        assert_eq!(group.targets[0].get("instance"), Some("node-1"));
        assert_eq!(group.targets[0].get("__meta_kubernetes_node_address_Hostname"), Some("node-1"));
        assert_eq!(group.labels.get("__meta_kubernetes_node_label_kubernetes_io_os"), Some("linux"));
    }

    fn node_1() -> Node {
        from_json(serde_json::json!({
            "metadata": {"name": "node-1", "labels": {"topology.kubernetes.io/zone": "z1"}, "annotations": {"a": "b"}},
            "status": {"addresses": [{"type": "InternalIP", "address": "127.0.1.1"}]}
        }))
    }

    #[test]
    fn endpointslice_role_labels_as_prometheus() {
        let slice: EndpointSlice = from_json(serde_json::json!({
            "metadata": {"name": "web-abc12", "namespace": "shop",
                "labels": {"kubernetes.io/service-name": "web", "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}},
            "addressType": "IPv4",
            "endpoints": [
                {"addresses": ["127.0.0.21"], "conditions": {"ready": true, "serving": true, "terminating": false},
                 "hostname": "web-1", "nodeName": "node-1", "deprecatedTopology": {"kubernetes.io/hostname": "node-1"},
                 "targetRef": {"kind": "Pod", "name": "web-1", "namespace": "shop"}},
                {"addresses": ["127.0.0.22"], "conditions": {"ready": false}}
            ],
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP", "appProtocol": "http"}]
        }));
        assert_eq!(endpointslice_service_key(&slice).as_deref(), Some("shop/web"));
        let service: Service = from_json(serde_json::json!({"metadata": {"name": "web", "namespace": "shop"}}));
        let (pod, node) = (web_pod(), node_1());
        let group = endpointslice_group(
            &slice,
            Some(&service),
            |n| (n == "web-1").then_some(&pod),
            |n| (n == "node-1").then_some(&node),
        );
        assert_eq!(group.source, "endpointslice/shop/web-abc12");
        let l = &group.labels;
        assert_eq!(l.get("__meta_kubernetes_endpointslice_address_type"), Some("IPv4"));
        assert_eq!(l.get("__meta_kubernetes_endpointslice_name"), Some("web-abc12"));
        assert_eq!(l.get("__meta_kubernetes_endpointslice_label_kubernetes_io_service_name"), Some("web"));
        assert_eq!(l.get("__meta_kubernetes_endpointslice_labelpresent_kubernetes_io_service_name"), Some("true"));
        assert_eq!(l.get("__meta_kubernetes_service_name"), Some("web"));
        let t = &group.targets[0];
        let want = [
            ("__address__", "127.0.0.21:8080"),
            ("__meta_kubernetes_endpointslice_port_name", "http"),
            ("__meta_kubernetes_endpointslice_port_protocol", "TCP"),
            ("__meta_kubernetes_endpointslice_port", "8080"),
            ("__meta_kubernetes_endpointslice_port_app_protocol", "http"),
            ("__meta_kubernetes_endpointslice_endpoint_conditions_ready", "true"),
            ("__meta_kubernetes_endpointslice_endpoint_conditions_serving", "true"),
            ("__meta_kubernetes_endpointslice_endpoint_conditions_terminating", "false"),
            ("__meta_kubernetes_endpointslice_endpoint_hostname", "web-1"),
            ("__meta_kubernetes_endpointslice_address_target_kind", "Pod"),
            ("__meta_kubernetes_endpointslice_address_target_name", "web-1"),
            ("__meta_kubernetes_endpointslice_endpoint_topology_kubernetes_io_hostname", "node-1"),
            ("__meta_kubernetes_endpointslice_endpoint_topology_present_kubernetes_io_hostname", "true"),
            ("__meta_kubernetes_pod_name", "web-1"),
            ("__meta_kubernetes_pod_container_name", "app"),
            ("__meta_kubernetes_pod_container_port_name", "http"),
            ("__meta_kubernetes_node_name", "node-1"),
            ("__meta_kubernetes_node_label_topology_kubernetes_io_zone", "z1"),
            ("__meta_kubernetes_node_labelpresent_topology_kubernetes_io_zone", "true"),
            ("__meta_kubernetes_node_annotation_a", "b"),
        ];
        for (name, value) in want {
            assert_eq!(t.get(name), Some(value), "{name} in {t:?}");
        }
        let second = &group.targets[1];
        assert_eq!(second.get(ADDRESS), Some("127.0.0.22:8080"));
        assert_eq!(second.get("__meta_kubernetes_endpointslice_endpoint_conditions_ready"), Some("false"));
        assert_eq!(
            second.get("__meta_kubernetes_endpointslice_endpoint_conditions_serving"),
            None,
            "unset stays unset"
        );
        assert_eq!(second.get("__meta_kubernetes_node_name"), None, "no node, no node labels");
        // The pod's UDP port 9090 was not an endpoint port: a target of its own.
        let addresses: Vec<&str> = group.targets.iter().map(|t| t.get(ADDRESS).unwrap()).collect();
        assert_eq!(addresses, ["127.0.0.21:8080", "127.0.0.22:8080", "127.0.0.21:9090"]);
        assert_eq!(group.targets[2].get("__meta_kubernetes_pod_container_port_protocol"), Some("UDP"));
    }

    #[test]
    fn ingress_role_targets_per_rule_and_path() {
        let ingress: Ingress = from_json(serde_json::json!({
            "metadata": {"name": "shop", "namespace": "web", "labels": {"app": "shop"}, "annotations": {"x/y": "z"}},
            "spec": {"ingressClassName": "nginx",
                "tls": [{"hosts": ["*.example.com"]}],
                "rules": [
                    {"host": "shop.example.com", "http": {"paths": [
                        {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "shop", "port": {"number": 80}}}},
                        {"path": "/api", "pathType": "Prefix", "backend": {"service": {"name": "api", "port": {"number": 80}}}}]}},
                    {"host": "a.b.example.com"},
                    {"host": "plain.example.org", "http": {"paths": [{"pathType": "Exact", "backend": {"service": {"name": "x", "port": {"number": 80}}}}]}}
                ]}
        }));
        let group = ingress_group(&ingress);
        assert_eq!(group.source, "ingress/web/shop");
        let l = &group.labels;
        assert_eq!(l.get("__meta_kubernetes_ingress_name"), Some("shop"));
        assert_eq!(l.get("__meta_kubernetes_namespace"), Some("web"));
        assert_eq!(l.get("__meta_kubernetes_ingress_class_name"), Some("nginx"));
        assert_eq!(l.get("__meta_kubernetes_ingress_label_app"), Some("shop"));
        assert_eq!(l.get("__meta_kubernetes_ingress_annotationpresent_x_y"), Some("true"));
        let t: Vec<(&str, &str, &str)> = group
            .targets
            .iter()
            .map(|t| {
                assert_eq!(t.get(ADDRESS), t.get("__meta_kubernetes_ingress_host"));
                (
                    t.get(ADDRESS).unwrap(),
                    t.get("__meta_kubernetes_ingress_scheme").unwrap(),
                    t.get("__meta_kubernetes_ingress_path").unwrap(),
                )
            })
            .collect();
        assert_eq!(
            t,
            [
                ("shop.example.com", "https", "/"),
                ("shop.example.com", "https", "/api"),
                ("a.b.example.com", "http", "/"),
                ("plain.example.org", "http", "/"),
            ],
            "a wildcard matches one label only; no http: path /; an empty path is /"
        );
    }

    #[test]
    fn attach_metadata_adds_the_pod_node_labels() {
        let node = node_1();
        let group = pod_group(&web_pod(), Some(&node));
        assert_eq!(group.labels.get("__meta_kubernetes_node_name"), Some("node-1"));
        assert_eq!(group.labels.get("__meta_kubernetes_node_label_topology_kubernetes_io_zone"), Some("z1"));
        assert_eq!(
            pod_group(&web_pod(), None).labels.get("__meta_kubernetes_node_label_topology_kubernetes_io_zone"),
            None
        );
    }
}
