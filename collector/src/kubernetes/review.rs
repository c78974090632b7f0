//! Delegated authentication and authorization through the Kubernetes API server, as aggregated API
//! servers (metrics-server, prometheus-adapter, KEDA's metrics server) do it: a bearer token is
//! checked with a `TokenReview`, a request's attributes with a `SubjectAccessReview`. The server's
//! ServiceAccount needs `system:auth-delegator` for both (`kube_access.rs`, `DELEGATED`). Used by the
//! external metrics listener (`query-ui/src/external_metrics_auth.rs`), which caches the answers.

use std::collections::BTreeMap;
use std::path::Path;

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{
    NonResourceAttributes, ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::Api;
use kube::api::PostParams;

/// Who a request comes from, as Kubernetes describes a user.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct UserInfo {
    pub username: String,
    pub uid: String,
    pub groups: Vec<String>,
    pub extra: BTreeMap<String, Vec<String>>,
}

/// What a request does, in `SubjectAccessReview` terms.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Attributes {
    /// A resource request (`/apis/<group>/<version>/namespaces/<ns>/<resource>`).
    Resource { group: String, version: String, resource: String, namespace: String, verb: String },
    /// Any other path (discovery documents).
    NonResource { path: String, verb: String },
}

/// A `TokenReview`'s answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenVerdict {
    Authenticated(UserInfo),
    /// Not a valid token; the API server's reason, if it gave one.
    Rejected(String),
}

/// A `SubjectAccessReview`'s answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    /// Denied, or no authorizer had an opinion; the reason the API server gave.
    Denied(String),
}

/// A client for the two reviews.
#[derive(Clone)]
pub struct Reviewer {
    tokens: Api<TokenReview>,
    access: Api<SubjectAccessReview>,
}

impl Reviewer {
    /// A client from a kubeconfig file, else a plain API URL (tests, `kubectl proxy`), else the
    /// in-cluster service account.
    pub async fn connect(api_url: Option<&str>, kubeconfig: Option<&Path>) -> Result<Reviewer, String> {
        let client = super::client(api_url, kubeconfig, None).await?;
        Ok(Reviewer { tokens: Api::all(client.clone()), access: Api::all(client) })
    }

    /// Asks the API server who `token` belongs to (`audiences`: empty for the API server's own).
    /// An error means the API server did not answer, not that the token is bad.
    pub async fn review_token(&self, token: &str, audiences: &[String]) -> Result<TokenVerdict, String> {
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.to_string()),
                audiences: (!audiences.is_empty()).then(|| audiences.to_vec()),
            },
            ..Default::default()
        };
        let answer =
            self.tokens.create(&PostParams::default(), &review).await.map_err(|e| format!("tokenreview: {e}"))?;
        let status = answer.status.unwrap_or_default();
        if status.authenticated != Some(true) {
            return Ok(TokenVerdict::Rejected(status.error.unwrap_or_default()));
        }
        let user = status.user.unwrap_or_default();
        Ok(TokenVerdict::Authenticated(UserInfo {
            username: user.username.unwrap_or_default(),
            uid: user.uid.unwrap_or_default(),
            groups: user.groups.unwrap_or_default(),
            extra: user.extra.unwrap_or_default(),
        }))
    }

    /// Asks the API server whether `user` may do `attributes`. An error means the API server did
    /// not answer, not a denial.
    pub async fn review_access(&self, user: &UserInfo, attributes: &Attributes) -> Result<Decision, String> {
        let (resource_attributes, non_resource_attributes) = match attributes.clone() {
            Attributes::Resource { group, version, resource, namespace, verb } => (
                Some(ResourceAttributes {
                    group: Some(group),
                    version: Some(version),
                    resource: Some(resource),
                    namespace: Some(namespace),
                    verb: Some(verb),
                    ..Default::default()
                }),
                None,
            ),
            Attributes::NonResource { path, verb } => {
                (None, Some(NonResourceAttributes { path: Some(path), verb: Some(verb) }))
            }
        };
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some(user.username.clone()),
                uid: (!user.uid.is_empty()).then(|| user.uid.clone()),
                groups: Some(user.groups.clone()),
                extra: (!user.extra.is_empty()).then(|| user.extra.clone()),
                resource_attributes,
                non_resource_attributes,
            },
            ..Default::default()
        };
        let answer = self
            .access
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| format!("subjectaccessreview: {e}"))?;
        let status = answer.status.unwrap_or_default();
        if status.allowed {
            return Ok(Decision::Allowed);
        }
        // Not allowed is a denial, as kube's webhook authorizer reads it; an evaluation error
        // (RBAC could not resolve some binding) only explains it.
        let reason = status.reason.filter(|r| !r.is_empty()).or(status.evaluation_error).unwrap_or_default();
        Ok(Decision::Denied(reason))
    }
}
