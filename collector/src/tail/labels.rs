//! Stream labels of a tailed file, derived from its path: Kubernetes pod log paths carry the pod's
//! identity (`/var/log/pods/<namespace>_<pod>_<uid>/<container>/<restart>.log`), other files get
//! their path and the configured static labels.

use std::collections::BTreeMap;
use std::path::Path;

use model::{Labels, LabelsBuilder};

use crate::parse::Stream;

/// What a kubelet pod log path says about its container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PodLogPath {
    pub namespace: String,
    pub pod: String,
    pub uid: String,
    pub container: String,
    pub restart: u32,
}

impl PodLogPath {
    /// Recognises `.../pods/<namespace>_<pod>_<uid>/<container>/<restart>.log[.<rotation suffix>]`.
    pub(crate) fn parse(path: &Path) -> Option<PodLogPath> {
        let mut parts = path.iter().rev().map(|p| p.to_str());
        let file = parts.next()??;
        let container = parts.next()??;
        let pod_dir = parts.next()??;
        if parts.next()?? != "pods" {
            return None;
        }
        let (restart, _suffix) = file.split_once(".log")?;
        let restart = restart.parse().ok()?;
        // Namespaces and pod names cannot contain '_', so the split is unambiguous.
        let mut fields = pod_dir.splitn(3, '_');
        let (namespace, pod, uid) = (fields.next()?, fields.next()?, fields.next()?);
        if namespace.is_empty() || pod.is_empty() || uid.is_empty() || container.is_empty() {
            return None;
        }
        Some(PodLogPath {
            namespace: namespace.into(),
            pod: pod.into(),
            uid: uid.into(),
            container: container.into(),
            restart,
        })
    }
}

/// The label sets of one file's records, per stream, built once when the file is opened.
#[derive(Clone, Debug)]
pub(crate) struct FileLabels {
    no_stream: Labels,
    stdout: Labels,
    stderr: Labels,
    /// The uid finds the pod's API metadata; uid and restart count are not labels (cardinality).
    pub pod: Option<PodLogPath>,
}

impl FileLabels {
    pub(crate) fn new(path: &Path, static_labels: &BTreeMap<String, String>, node_name: Option<&str>) -> Self {
        let mut builder = LabelsBuilder::default();
        let pod = PodLogPath::parse(path);
        match &pod {
            Some(pod) => {
                builder
                    .set("namespace", &pod.namespace)
                    .set("pod", &pod.pod)
                    .set("container", &pod.container)
                    .set("job", format!("{}/{}", pod.namespace, pod.container));
                if let Some(node) = node_name {
                    builder.set("node_name", node);
                }
            }
            None => {
                for (name, value) in static_labels {
                    builder.set(name, value);
                }
            }
        }
        builder.set("filename", path.to_string_lossy());
        let no_stream = builder.build();
        let stdout = builder.clone().set("stream", "stdout").build();
        let stderr = builder.set("stream", "stderr").build();
        FileLabels { no_stream, stdout, stderr, pod }
    }

    /// These labels plus `extra` (pod metadata), never replacing a label the path gave.
    pub(crate) fn with_extra(&self, extra: &[(String, String)]) -> FileLabels {
        let add = |labels: &Labels| {
            let mut builder = labels.to_builder();
            for (name, value) in extra {
                if builder.get(name).is_none() && model::labels::is_valid_label_name(name) {
                    builder.set(name, value);
                }
            }
            builder.build()
        };
        FileLabels {
            no_stream: add(&self.no_stream),
            stdout: add(&self.stdout),
            stderr: add(&self.stderr),
            pod: self.pod.clone(),
        }
    }

    pub(crate) fn for_stream(&self, stream: Option<Stream>) -> &Labels {
        match stream {
            None => &self.no_stream,
            Some(Stream::Stdout) => &self.stdout,
            Some(Stream::Stderr) => &self.stderr,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubelet_paths_give_pod_labels() {
        let path = Path::new("/var/log/pods/kube-system_coredns-5d78c9869d-abcde_0f1e2d3c-aaaa-bbbb/coredns/3.log");
        let labels = FileLabels::new(path, &BTreeMap::new(), Some("node-1"));
        let pod = labels.pod.clone().unwrap();
        assert_eq!((pod.uid.as_str(), pod.restart), ("0f1e2d3c-aaaa-bbbb", 3));
        let l = labels.for_stream(Some(Stream::Stderr));
        assert_eq!(l.get("namespace"), Some("kube-system"));
        assert_eq!(l.get("pod"), Some("coredns-5d78c9869d-abcde"));
        assert_eq!(l.get("container"), Some("coredns"));
        assert_eq!(l.get("job"), Some("kube-system/coredns"));
        assert_eq!(l.get("node_name"), Some("node-1"));
        assert_eq!(l.get("stream"), Some("stderr"));
        assert_eq!(l.get("filename"), Some(path.to_str().unwrap()));
        assert_eq!(l.get("uid"), None);
    }

    #[test]
    fn metadata_adds_labels_but_never_replaces_path_labels() {
        let path = Path::new("/var/log/pods/shop_api-1_uid1/api/0.log");
        let labels = FileLabels::new(path, &BTreeMap::new(), None);
        let extra = [("app".to_string(), "api".to_string()), ("pod".to_string(), "other".to_string())];
        let enriched = labels.with_extra(&extra);
        let l = enriched.for_stream(Some(Stream::Stdout));
        assert_eq!((l.get("app"), l.get("pod"), l.get("stream")), (Some("api"), Some("api-1"), Some("stdout")));
    }

    #[test]
    fn rotated_kubelet_files_keep_their_pod() {
        let path = Path::new("/x/pods/ns_pod_uid/c/0.log.20261127-031500");
        assert_eq!(PodLogPath::parse(path).unwrap().container, "c");
    }

    #[test]
    fn host_files_get_static_labels() {
        let statics = BTreeMap::from([("job".to_string(), "varlogs".to_string())]);
        let labels = FileLabels::new(Path::new("/var/log/syslog"), &statics, Some("node-1"));
        let l = labels.for_stream(None);
        assert_eq!(l.get("job"), Some("varlogs"));
        assert_eq!(l.get("filename"), Some("/var/log/syslog"));
        assert_eq!(l.get("node_name"), None);
        assert!(PodLogPath::parse(Path::new("/var/log/pods/bad/c/0.log")).is_none());
    }
}
