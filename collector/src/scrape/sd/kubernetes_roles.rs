//! The target groups of `kubernetes_sd_configs`, one builder per role, giving exactly the
//! `__meta_kubernetes_*` labels Prometheus's `discovery/kubernetes` gives (2.42), so relabeling
//! written for Prometheus (`keep` on `__meta_kubernetes_pod_annotation_prometheus_io_scrape`,
//! `labelmap` of `__meta_kubernetes_pod_label_(.+)`) works unchanged. Pure functions of the watched
//! objects: `kubernetes.rs` owns the watches.

use std::collections::{BTreeMap, HashSet};

use k8s_openapi::api::core::v1::{Endpoints, Node, Pod, Service};
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

/// Role `pod`: a target per container port (a port-less container gives one target at the pod
/// IP); init containers too, marked. A pod without an IP yet has an empty group; a container
/// without a status (not created yet) is skipped, as in Prometheus.
pub(crate) fn pod_group(pod: &Pod) -> TargetGroup {
    let source = format!("pod/{}/{}", pod.namespace().unwrap_or_default(), pod.name_any());
    let mut b = LabelsBuilder::default();
    pod_labels(&mut b, pod);
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

/// Role `endpoints`: a target per address and port of every subset (ready and not ready), with
/// the service's labels when it exists and the pod's (and the matching container's) when the
/// address points at a known pod; then a target per container port of those pods that no
/// endpoint port covered.
pub(crate) fn endpoints_group<'a>(
    endpoints: &Endpoints,
    service: Option<&Service>,
    pod: impl Fn(&str) -> Option<&'a Pod>,
) -> TargetGroup {
    let (ns, name) = (endpoints.namespace().unwrap_or_default(), endpoints.name_any());
    let mut b = LabelsBuilder::default();
    b.set(NAMESPACE, &ns).set("__meta_kubernetes_endpoints_name", &name);
    object_meta(&mut b, "endpoints", endpoints.labels(), endpoints.annotations());
    if let Some(service) = service {
        service_labels(&mut b, service);
    }
    let mut group = TargetGroup { source: format!("endpoints/{ns}/{name}"), targets: Vec::new(), labels: b.build() };
    // Pods seen through addresses, with the (port, protocol) pairs endpoints covered.
    let mut seen: Vec<(&Pod, HashSet<(i32, String)>)> = Vec::new();
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
                let target_pod = address
                    .target_ref
                    .as_ref()
                    .filter(|r| r.kind.as_deref() == Some("Pod"))
                    .and_then(|r| r.name.as_deref())
                    .and_then(&pod);
                if let Some(p) = target_pod {
                    pod_labels(&mut t, p);
                    let container = p.spec.iter().flat_map(|s| &s.containers).find_map(|c| {
                        c.ports
                            .iter()
                            .flatten()
                            .find(|cp| {
                                cp.container_port == port.port && cp.protocol.as_deref().unwrap_or("TCP") == protocol
                            })
                            .map(|cp| (c, cp))
                    });
                    if let Some((c, cp)) = container {
                        t.set("__meta_kubernetes_pod_container_name", &c.name)
                            .set("__meta_kubernetes_pod_container_image", c.image.clone().unwrap_or_default())
                            .set("__meta_kubernetes_pod_container_port_name", cp.name.clone().unwrap_or_default())
                            .set("__meta_kubernetes_pod_container_port_number", cp.container_port.to_string())
                            .set("__meta_kubernetes_pod_container_port_protocol", &protocol);
                    }
                    let at = match seen.iter().position(|(s, _)| std::ptr::eq(*s, p)) {
                        Some(at) => at,
                        None => {
                            seen.push((p, HashSet::new()));
                            seen.len() - 1
                        }
                    };
                    seen[at].1.insert((port.port, protocol.clone()));
                }
                group.targets.push(t.build());
            }
        }
    }
    for (p, covered) in seen {
        let Some(ip) = p.status.as_ref().and_then(|s| s.pod_ip.as_deref()).filter(|ip| !ip.is_empty()) else {
            continue;
        };
        for c in p.spec.iter().flat_map(|s| &s.containers) {
            for cp in c.ports.iter().flatten() {
                let protocol = cp.protocol.clone().unwrap_or_else(|| "TCP".into());
                if covered.contains(&(cp.container_port, protocol.clone())) {
                    continue;
                }
                let mut t = LabelsBuilder::default();
                pod_labels(&mut t, p);
                t.set(ADDRESS, join_host_port(ip, cp.container_port))
                    .set("__meta_kubernetes_pod_container_name", &c.name)
                    .set("__meta_kubernetes_pod_container_image", c.image.clone().unwrap_or_default())
                    .set("__meta_kubernetes_pod_container_port_name", cp.name.clone().unwrap_or_default())
                    .set("__meta_kubernetes_pod_container_port_number", cp.container_port.to_string())
                    .set("__meta_kubernetes_pod_container_port_protocol", &protocol);
                group.targets.push(t.build());
            }
        }
    }
    group
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
        let group = pod_group(&web_pod());
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
        assert!(pod_group(&pending).targets.is_empty());
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
        let group = endpoints_group(&endpoints, Some(&service), |n| (n == "web-1").then_some(&pod));
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
}
