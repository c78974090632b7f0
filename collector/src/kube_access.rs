//! Every Kubernetes API call Tarsier makes, in one table. The manifests' RBAC
//! (`deploy/kubernetes/base/rbac.yaml`) grants exactly these and nothing else; `tests/kubernetes.rs`
//! checks both directions, so adding a call here without the grant (or widening the grant without a
//! call) fails CI. Kubernetes client code takes its resources and verbs from this table.

/// One resource a role reads through the Kubernetes API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApiAccess {
    /// `agent` (the DaemonSet's ServiceAccount `tarsier-agent`) or `server` (`tarsier-server`).
    pub role: &'static str,
    /// API group; `""` is the core group.
    pub group: &'static str,
    /// Plural resource name as RBAC spells it.
    pub resource: &'static str,
    /// Verbs the client uses.
    pub verbs: &'static [&'static str],
    /// What the call is for.
    pub why: &'static str,
}

const READ: &[&str] = &["get", "list", "watch"];

/// The table. The agent lists and watches the pods of its own node with
/// `fieldSelector=spec.nodeName=<NODE_NAME>` (RBAC cannot scope by field; the client does).
pub const API_ACCESS: &[ApiAccess] = &[
    ApiAccess {
        role: "agent",
        group: "",
        resource: "pods",
        verbs: READ,
        why: "pod labels and owners for log streams; kubernetes_sd role pod of its node",
    },
    ApiAccess { role: "agent", group: "", resource: "namespaces", verbs: READ, why: "namespace labels for streams" },
    ApiAccess { role: "server", group: "", resource: "pods", verbs: READ, why: "kubernetes_sd role pod" },
    ApiAccess { role: "server", group: "", resource: "services", verbs: READ, why: "kubernetes_sd role service" },
    ApiAccess { role: "server", group: "", resource: "endpoints", verbs: READ, why: "kubernetes_sd role endpoints" },
    ApiAccess { role: "server", group: "", resource: "nodes", verbs: READ, why: "kubernetes_sd role node" },
    ApiAccess {
        role: "server",
        group: "",
        resource: "namespaces",
        verbs: READ,
        why: "kubernetes_sd namespace metadata",
    },
    ApiAccess {
        role: "server",
        group: "discovery.k8s.io",
        resource: "endpointslices",
        verbs: READ,
        why: "kubernetes_sd role endpointslice",
    },
    ApiAccess {
        role: "server",
        group: "networking.k8s.io",
        resource: "ingresses",
        verbs: READ,
        why: "kubernetes_sd role ingress",
    },
];

/// Calls granted by a built-in ClusterRole rather than `tarsier-<role>`: the manifests bind the
/// role's ServiceAccount to `granted_by` (the binding is what `tests/kubernetes.rs` checks), and
/// `tarsier-<role>` must not repeat the grant.
pub struct BuiltinGrant {
    pub access: ApiAccess,
    /// The built-in ClusterRole that grants it.
    pub granted_by: &'static str,
}

/// The server's delegated authentication and authorization of the external metrics listener
/// (`server.external_metrics.authentication.token_review`, `authorization.mode:
/// subject_access_review`; `kubernetes/review.rs`).
pub const BUILTIN_GRANTS: &[BuiltinGrant] = &[
    BuiltinGrant {
        access: ApiAccess {
            role: "server",
            group: "authentication.k8s.io",
            resource: "tokenreviews",
            verbs: &["create"],
            why: "external metrics: bearer tokens checked with a TokenReview",
        },
        granted_by: "system:auth-delegator",
    },
    BuiltinGrant {
        access: ApiAccess {
            role: "server",
            group: "authorization.k8s.io",
            resource: "subjectaccessreviews",
            verbs: &["create"],
            why: "external metrics: each request authorized with a SubjectAccessReview",
        },
        granted_by: "system:auth-delegator",
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_has_no_duplicates_and_names_known_roles() {
        let mut seen = std::collections::BTreeSet::new();
        for a in API_ACCESS.iter().chain(BUILTIN_GRANTS.iter().map(|g| &g.access)) {
            assert!(matches!(a.role, "agent" | "server"), "{a:?}");
            assert!(seen.insert((a.role, a.group, a.resource)), "duplicate {a:?}");
            assert!(!a.verbs.is_empty());
        }
    }
}
