//! A fake Kubernetes API server answering TokenReview and SubjectAccessReview, as the API server
//! does for an aggregated API server's delegated auth (the list/watch fake is
//! `collector/tests/kube_replay.rs`). Tokens and verdicts are tables; every review it receives is
//! kept, so a test can count calls (cache hits make none) and read the attributes it was asked.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

#[derive(Default)]
pub struct FakeKubeApi {
    /// token → (username, groups); any other token is rejected.
    pub tokens: BTreeMap<String, (String, Vec<String>)>,
    /// Users every SubjectAccessReview denies (with a reason); the rest are allowed.
    pub denied_users: Vec<String>,
    /// Every review body received, in order.
    pub received: Mutex<Vec<Value>>,
    /// When set, every review answers 500 (an API server that fails).
    pub broken: AtomicBool,
}

impl FakeKubeApi {
    /// Reviews of `kind` (`TokenReview` or `SubjectAccessReview`) received so far.
    pub fn reviews(&self, kind: &str) -> Vec<Value> {
        self.received.lock().unwrap().iter().filter(|r| r["kind"] == kind).cloned().collect()
    }

    pub fn set_broken(&self, broken: bool) {
        self.broken.store(broken, Ordering::SeqCst);
    }

    fn answer(&self, mut review: Value) -> Value {
        self.received.lock().unwrap().push(review.clone());
        if review["kind"] == "TokenReview" {
            let token = review["spec"]["token"].as_str().unwrap_or_default();
            review["status"] = match self.tokens.get(token) {
                Some((user, groups)) => json!({"authenticated": true, "user": {"username": user, "groups": groups}}),
                None => json!({"authenticated": false, "error": "invalid bearer token"}),
            };
        } else {
            let user = review["spec"]["user"].as_str().unwrap_or_default();
            review["status"] = if self.denied_users.iter().any(|u| u == user) {
                json!({"allowed": false, "reason": "no RBAC policy matched"})
            } else {
                json!({"allowed": true, "reason": "RBAC: allowed by ClusterRoleBinding"})
            };
        }
        review
    }
}

/// Serves `api` on a free local port; returns its URL.
pub async fn serve(api: Arc<FakeKubeApi>) -> String {
    let review = |api: Arc<FakeKubeApi>| {
        axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
            let api = api.clone();
            async move {
                if api.broken.load(Ordering::SeqCst) {
                    api.received.lock().unwrap().push(body);
                    let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                        "message": "etcdserver: request timed out", "reason": "InternalError", "code": 500});
                    return (axum::http::StatusCode::INTERNAL_SERVER_ERROR, axum::Json(status));
                }
                (axum::http::StatusCode::CREATED, axum::Json(api.answer(body)))
            }
        })
    };
    let app = axum::Router::new()
        .route("/apis/authentication.k8s.io/v1/tokenreviews", review(api.clone()))
        .route("/apis/authorization.k8s.io/v1/subjectaccessreviews", review(api));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}
