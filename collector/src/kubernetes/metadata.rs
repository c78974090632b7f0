//! Pod metadata for log streams. The kubelet's log path names a pod's namespace, name, uid and
//! container, nothing more; this watches the pods of the agent's node (and, when namespace labels
//! are wanted, the namespaces) and keeps, per pod uid, what a stream should also carry: allowed pod
//! and namespace labels and the owning workload (ReplicaSet → Deployment, StatefulSet, DaemonSet,
//! Job → CronJob), which the autoscaling signals use instead of guessing from the pod name.
//! The tailer thread reads it without waiting on the watch task (one short read lock per lookup).
//! A generation counter moves whenever what a stream would get changes (a pod's labels or owner,
//! a namespace's labels, a relist), so the tailer refreshes the labels of files it already has
//! open with one atomic load per file and read pass.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::runtime::watcher::{self, Event};
use kube::{Api, ResourceExt};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{KubernetesConfig, allowed, sanitize_label_name};

/// The stream label naming the pod's workload.
pub const WORKLOAD_LABEL: &str = "workload";

/// What the API says about one pod, reduced to what streams use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodInfo {
    pub namespace: String,
    pub name: String,
    pub node: Option<String>,
    /// Kind and name of the controller the pod belongs to (`("Pod", name)` for a bare pod).
    pub workload: (String, String),
    /// The allowed pod labels, names sanitised.
    pub labels: Vec<(String, String)>,
}

/// Pods by uid and namespace labels, kept current by a watch task.
#[derive(Debug, Default)]
pub struct PodMetadata {
    pods: RwLock<HashMap<String, Arc<PodInfo>>>,
    namespaces: RwLock<HashMap<String, Vec<(String, String)>>>,
    synced: AtomicBool,
    /// Moves on every change of what `stream_labels` answers.
    generation: AtomicU64,
    wait: Duration,
}

impl PodMetadata {
    /// Connects and starts watching; the task ends when `cancel` fires.
    pub async fn start(
        config: &KubernetesConfig,
        cancel: CancellationToken,
    ) -> Result<(Arc<PodMetadata>, JoinHandle<()>), String> {
        let client = super::client(config.api_url.as_deref(), config.kubeconfig.as_deref(), None).await?;
        let node = config.node_name.clone().or_else(|| std::env::var("NODE_NAME").ok().filter(|n| !n.is_empty()));
        let metadata = Arc::new(PodMetadata { wait: config.metadata_wait, ..Default::default() });
        let task = tokio::spawn(run(client, node, config.clone(), metadata.clone(), cancel));
        Ok((metadata, task))
    }

    /// How long lines of an unknown pod may wait for it.
    pub(crate) fn wait(&self) -> Duration {
        self.wait
    }

    /// The pod with this uid, if the watch has seen it.
    pub fn pod(&self, uid: &str) -> Option<Arc<PodInfo>> {
        self.pods.read().unwrap_or_else(|e| e.into_inner()).get(uid).cloned()
    }

    /// Pods currently known.
    pub fn len(&self) -> usize {
        self.pods.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A number that changes whenever some pod's `stream_labels` may have changed: a file opened
    /// at generation `g` needs no new lookup while this still says `g`.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn changed(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Whether the first complete pod list has arrived.
    pub fn synced(&self) -> bool {
        self.synced.load(Ordering::Acquire)
    }

    /// The labels a stream of this pod gets besides its path's: `workload`, the allowed pod labels
    /// and the allowed labels of its namespace (pod labels win).
    pub fn stream_labels(&self, uid: &str) -> Option<Vec<(String, String)>> {
        let pod = self.pod(uid)?;
        let mut labels = vec![(WORKLOAD_LABEL.to_string(), pod.workload.1.clone())];
        labels.extend(pod.labels.iter().cloned());
        if let Some(ns) = self.namespaces.read().unwrap_or_else(|e| e.into_inner()).get(&pod.namespace) {
            for (name, value) in ns {
                if !labels.iter().any(|(n, _)| n == name) {
                    labels.push((name.clone(), value.clone()));
                }
            }
        }
        Some(labels)
    }
}

/// The controller owning `pod`, resolved through naming rules the controllers guarantee: a
/// Deployment names its ReplicaSets `<deployment>-<pod-template-hash>` (the hash is a label on
/// the pod), a CronJob names its Jobs `<cronjob>-<scheduled minute>`. No ReplicaSet or Job is read
/// (no extra API calls or rights); a ReplicaSet whose name does not end in the pod's hash stays a
/// ReplicaSet.
pub fn workload_of_pod(pod: &Pod) -> (String, String) {
    let owner = pod.owner_references().iter().find(|o| o.controller == Some(true));
    let Some(owner) = owner else { return ("Pod".to_string(), pod.name_any()) };
    let name = owner.name.as_str();
    match owner.kind.as_str() {
        "ReplicaSet" => match pod.labels().get("pod-template-hash") {
            Some(hash) if name.len() > hash.len() + 1 && name.ends_with(hash.as_str()) => {
                let base = &name[..name.len() - hash.len()];
                match base.strip_suffix('-') {
                    Some(deployment) => ("Deployment".into(), deployment.into()),
                    None => ("ReplicaSet".into(), name.into()),
                }
            }
            _ => ("ReplicaSet".into(), name.into()),
        },
        "Job" => match name.rsplit_once('-') {
            Some((cronjob, minute))
                if !cronjob.is_empty() && minute.len() >= 8 && minute.bytes().all(|b| b.is_ascii_digit()) =>
            {
                ("CronJob".into(), cronjob.into())
            }
            _ => ("Job".into(), name.into()),
        },
        kind => (kind.into(), name.into()),
    }
}

fn filtered(patterns: &[String], labels: &std::collections::BTreeMap<String, String>) -> Vec<(String, String)> {
    if patterns.is_empty() {
        return Vec::new();
    }
    labels.iter().filter(|(n, _)| allowed(patterns, n)).map(|(n, v)| (sanitize_label_name(n), v.clone())).collect()
}

fn info(pod: &Pod, config: &KubernetesConfig) -> Option<(String, Arc<PodInfo>)> {
    let uid = pod.uid()?;
    let info = PodInfo {
        namespace: pod.namespace().unwrap_or_default(),
        name: pod.name_any(),
        node: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
        workload: workload_of_pod(pod),
        labels: filtered(&config.pod_labels, pod.labels()),
    };
    Some((uid, Arc::new(info)))
}

// Moved once from a watch to the store; boxing would only add an allocation per event.
#[allow(clippy::large_enum_variant)]
enum Update {
    Pod(Event<Pod>),
    Namespace(Event<Namespace>),
}

async fn run(
    client: kube::Client,
    node: Option<String>,
    config: KubernetesConfig,
    metadata: Arc<PodMetadata>,
    cancel: CancellationToken,
) {
    let mut pod_config = watcher::Config::default();
    match &node {
        Some(node) => pod_config = pod_config.fields(&format!("spec.nodeName={node}")),
        None => tracing::warn!("no node name (collector.kubernetes.node_name or NODE_NAME): watching every pod"),
    }
    let pods = super::watch(Api::<Pod>::all(client.clone()), pod_config, "pods".into()).map(Update::Pod);
    let namespaces = if config.namespace_labels.is_empty() {
        futures::stream::pending().boxed()
    } else {
        super::watch(Api::<Namespace>::all(client), watcher::Config::default(), "namespaces".into())
            .map(Update::Namespace)
            .boxed()
    };
    let mut updates = futures::stream::select(pods.boxed(), namespaces);
    let mut relisted_pods: Option<HashMap<String, Arc<PodInfo>>> = None;
    let mut relisted_namespaces: Option<HashMap<String, Vec<(String, String)>>> = None;
    loop {
        let update = tokio::select! {
            _ = cancel.cancelled() => return,
            update = updates.next() => match update {
                Some(u) => u,
                None => return,
            },
        };
        match update {
            Update::Pod(event) => {
                let pods = || metadata.pods.write().unwrap_or_else(|e| e.into_inner());
                match event {
                    Event::Init => relisted_pods = Some(HashMap::new()),
                    Event::InitApply(pod) => {
                        relisted_pods.get_or_insert_with(HashMap::new).extend(info(&pod, &config));
                    }
                    Event::InitDone => {
                        let listed = relisted_pods.take().unwrap_or_default();
                        tracing::debug!(pods = listed.len(), "pod metadata listed");
                        *pods() = listed;
                        metadata.synced.store(true, Ordering::Release);
                        metadata.changed();
                    }
                    Event::Apply(pod) => {
                        if let Some((uid, info)) = info(&pod, &config) {
                            // Status updates (most MODIFIED events) leave the info as it was.
                            let old = pods().insert(uid, info.clone());
                            if old.is_none_or(|old| old != info) {
                                metadata.changed();
                            }
                        }
                    }
                    Event::Delete(pod) => {
                        if let Some(uid) = pod.uid() {
                            pods().remove(&uid);
                        }
                    }
                }
            }
            Update::Namespace(event) => {
                let entry = |ns: &Namespace| (ns.name_any(), filtered(&config.namespace_labels, ns.labels()));
                let namespaces = || metadata.namespaces.write().unwrap_or_else(|e| e.into_inner());
                match event {
                    Event::Init => relisted_namespaces = Some(HashMap::new()),
                    Event::InitApply(ns) => {
                        relisted_namespaces.get_or_insert_with(HashMap::new).extend([entry(&ns)]);
                    }
                    Event::InitDone => {
                        *namespaces() = relisted_namespaces.take().unwrap_or_default();
                        metadata.changed();
                    }
                    Event::Apply(ns) => {
                        let (name, labels) = entry(&ns);
                        if namespaces().insert(name, labels.clone()).is_none_or(|old| old != labels) {
                            metadata.changed();
                        }
                    }
                    Event::Delete(ns) => {
                        namespaces().remove(&ns.name_any());
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
    use kube::api::ObjectMeta;

    fn pod(name: &str, owner: Option<(&str, &str)>, labels: &[(&str, &str)]) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("shop".into()),
                uid: Some(format!("uid-{name}")),
                labels: Some(labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
                owner_references: owner.map(|(kind, name)| {
                    vec![OwnerReference {
                        kind: kind.into(),
                        name: name.into(),
                        controller: Some(true),
                        api_version: "apps/v1".into(),
                        uid: "x".into(),
                        ..Default::default()
                    }]
                }),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn owners_resolve_to_workloads() {
        let cases = [
            (
                pod(
                    "api-7d9f8b6c5d-x2x9z",
                    Some(("ReplicaSet", "api-7d9f8b6c5d")),
                    &[("pod-template-hash", "7d9f8b6c5d")],
                ),
                ("Deployment", "api"),
            ),
            (pod("rs-abcde", Some(("ReplicaSet", "rs")), &[]), ("ReplicaSet", "rs")),
            (pod("db-0", Some(("StatefulSet", "db")), &[]), ("StatefulSet", "db")),
            (pod("agent-q4w5e", Some(("DaemonSet", "tarsier-agent")), &[]), ("DaemonSet", "tarsier-agent")),
            (pod("backup-29012345-qwrtz", Some(("Job", "backup-29012345")), &[]), ("CronJob", "backup")),
            (pod("migrate-x7k2p", Some(("Job", "migrate")), &[]), ("Job", "migrate")),
            (pod("debug", None, &[]), ("Pod", "debug")),
        ];
        for (p, (kind, name)) in cases {
            assert_eq!(workload_of_pod(&p), (kind.to_string(), name.to_string()), "{}", p.name_any());
        }
    }

    #[test]
    fn stream_labels_filter_sanitise_and_let_pod_labels_win() {
        let config = KubernetesConfig {
            pod_labels: vec!["app".into(), "app.kubernetes.io/*".into()],
            namespace_labels: vec!["team".into(), "app".into()],
            ..Default::default()
        };
        let p = pod(
            "db-0",
            Some(("StatefulSet", "db")),
            &[("app", "db"), ("app.kubernetes.io/name", "pg"), ("secret", "x")],
        );
        let metadata = PodMetadata::default();
        metadata.pods.write().unwrap().extend(info(&p, &config));
        metadata.namespaces.write().unwrap().insert(
            "shop".into(),
            filtered(
                &config.namespace_labels,
                &[("team".to_string(), "payments".to_string()), ("app".to_string(), "ns".to_string())].into(),
            ),
        );
        let labels = metadata.stream_labels("uid-db-0").unwrap();
        let get = |n: &str| labels.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        assert_eq!(get("workload"), Some("db"));
        assert_eq!(get("app"), Some("db"));
        assert_eq!(get("app_kubernetes_io_name"), Some("pg"));
        assert_eq!(get("team"), Some("payments"));
        assert_eq!(get("secret"), None);
        assert_eq!(labels.iter().filter(|(k, _)| k == "app").count(), 1);
        assert!(metadata.stream_labels("other").is_none());
    }
}
