//! Who may call the external metrics API, decided as Kubernetes' aggregated API servers
//! (metrics-server, prometheus-adapter, KEDA) decide it with delegated authentication and
//! authorization:
//!
//! - **front proxy**: the API server forwards requests with its front-proxy client certificate
//!   (signed by `requestheader-client-ca-file`, a common name in `requestheader-allowed-names`) and
//!   names the real user in `X-Remote-User` / `X-Remote-Group` / `X-Remote-Extra-*`. Those headers
//!   count only on such a connection; anywhere else they are dropped.
//! - **bearer tokens**: checked with a `TokenReview` against the API server.
//! - **authorization**: a `SubjectAccessReview` for the request's attributes (group
//!   `external.metrics.k8s.io`, version `v1beta1`, resource = the metric, the namespace, verb
//!   `list`; discovery paths as non-resource URLs with verb `get`).
//!
//! Both reviews are cached for `cache_ttl` (kube's delegating defaults: 10 s), errors never.
//! Refusals answer as kube does: 401 for no or bad credentials (also when the TokenReview could
//! not be made), 403 with the reason for a denial, 503 when the SubjectAccessReview could not be
//! made; each logged with the user and the reason.

use std::collections::HashMap;
use std::hash::Hash;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use collector::kubernetes::review::{Attributes, Decision, Reviewer, TokenVerdict, UserInfo};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::external_metrics::{GROUP, VERSION, status};
use crate::tls::TlsPeer;

/// Most answers each cache holds; when full, expired ones go, and if none has expired, all.
const MAX_CACHED: usize = 4096;

/// `server.external_metrics.authentication`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthenticationConfig {
    /// The API server's front proxy (its aggregator), as `kube-system/extension-apiserver-authentication`
    /// describes it. Unset: no front-proxy authentication.
    pub requestheader: Option<RequestHeaderConfig>,
    /// Bearer tokens checked with a TokenReview.
    pub token_review: TokenReviewConfig,
}

/// `server.external_metrics.authentication.requestheader`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RequestHeaderConfig {
    /// PEM bundle of `requestheader-client-ca-file`; re-read when it changes. A client certificate
    /// not signed by it fails the TLS handshake; clients without one may still use a token.
    pub client_ca_file: Option<PathBuf>,
    /// `requestheader-allowed-names` (usually `front-proxy-client`): common names whose requests'
    /// headers are believed. Empty: any certificate the CA signed.
    pub allowed_names: Vec<String>,
    /// `requestheader-username-headers`: the first one present names the user.
    pub username_headers: Vec<String>,
    /// `requestheader-group-headers`: every value of each is a group.
    pub group_headers: Vec<String>,
    /// `requestheader-extra-headers-prefix`: `<prefix><key>: <value>` becomes extra `key` (lower
    /// case, percent-decoded).
    pub extra_headers_prefix: Vec<String>,
}

impl Default for RequestHeaderConfig {
    fn default() -> Self {
        Self {
            client_ca_file: None,
            allowed_names: Vec::new(),
            username_headers: vec!["X-Remote-User".into()],
            group_headers: vec!["X-Remote-Group".into()],
            extra_headers_prefix: vec!["X-Remote-Extra-".into()],
        }
    }
}

/// `server.external_metrics.authentication.token_review`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokenReviewConfig {
    /// Accept `Authorization: Bearer <token>`, checked with a TokenReview.
    pub enabled: bool,
    /// How long an answer (valid or not) is reused for the same token.
    #[serde(with = "humantime_serde")]
    pub cache_ttl: Duration,
    /// Audiences the token must be for; empty: the API server's own.
    pub audiences: Vec<String>,
}

impl Default for TokenReviewConfig {
    fn default() -> Self {
        Self { enabled: false, cache_ttl: Duration::from_secs(10), audiences: Vec::new() }
    }
}

/// `server.external_metrics.authorization`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthorizationConfig {
    /// `always_allow`: every authenticated request; `subject_access_review`: ask the API server.
    pub mode: AuthorizationMode,
    /// How long a decision (allowed or denied) is reused for the same user and request.
    #[serde(with = "humantime_serde")]
    pub cache_ttl: Duration,
}

impl Default for AuthorizationConfig {
    fn default() -> Self {
        Self { mode: AuthorizationMode::AlwaysAllow, cache_ttl: Duration::from_secs(10) }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthorizationMode {
    #[default]
    AlwaysAllow,
    SubjectAccessReview,
}

impl AuthenticationConfig {
    /// Whether any authenticator is on; with none, every client is `system:anonymous`.
    pub fn any(&self) -> bool {
        self.requestheader.is_some() || self.token_review.enabled
    }

    pub fn validate(&self, key: &str) -> Result<(), String> {
        if let Some(rh) = &self.requestheader {
            let key = format!("{key}.requestheader");
            if rh.client_ca_file.as_ref().is_none_or(|p| p.as_os_str().is_empty()) {
                return Err(format!("{key}.client_ca_file is required (requestheader-client-ca-file)"));
            }
            if rh.username_headers.is_empty() {
                return Err(format!("{key}.username_headers must name at least one header"));
            }
            for (field, names) in [
                ("username_headers", &rh.username_headers),
                ("group_headers", &rh.group_headers),
                ("extra_headers_prefix", &rh.extra_headers_prefix),
            ] {
                for (i, name) in names.iter().enumerate() {
                    if axum::http::HeaderName::try_from(name.as_str()).is_err() {
                        return Err(format!("{key}.{field}[{i}] {name:?} is not a header name"));
                    }
                }
            }
        }
        if self.token_review.cache_ttl > Duration::from_secs(3600) {
            return Err(format!("{key}.token_review.cache_ttl must be at most 1h"));
        }
        Ok(())
    }
}

impl AuthorizationConfig {
    pub fn validate(&self, key: &str, authentication: &AuthenticationConfig) -> Result<(), String> {
        if self.mode == AuthorizationMode::SubjectAccessReview && !authentication.any() {
            return Err(format!(
                "{key}.mode subject_access_review needs an authenticator (authentication.requestheader or \
                 authentication.token_review.enabled)"
            ));
        }
        if self.cache_ttl > Duration::from_secs(3600) {
            return Err(format!("{key}.cache_ttl must be at most 1h"));
        }
        Ok(())
    }
}

/// Answers kept for a while, bounded by [`MAX_CACHED`].
struct TtlCache<K, V> {
    ttl: Duration,
    entries: parking_lot::Mutex<HashMap<K, (Instant, V)>>,
}

impl<K: Eq + Hash, V: Clone> TtlCache<K, V> {
    fn new(ttl: Duration) -> Self {
        Self { ttl, entries: Default::default() }
    }

    fn get(&self, key: &K) -> Option<V> {
        let entries = self.entries.lock();
        entries.get(key).filter(|(at, _)| at.elapsed() < self.ttl).map(|(_, v)| v.clone())
    }

    fn insert(&self, key: K, value: V) {
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = self.entries.lock();
        if entries.len() >= MAX_CACHED {
            entries.retain(|_, (at, _)| at.elapsed() < self.ttl);
            if entries.len() >= MAX_CACHED {
                entries.clear();
            }
        }
        entries.insert(key, (Instant::now(), value));
    }
}

/// Why a request is refused: the Status error's code, reason and message.
struct Refusal(StatusCode, &'static str, String);

/// The middleware's state: the settings, the API client and the caches.
pub struct Guard {
    authentication: AuthenticationConfig,
    authorization: AuthorizationConfig,
    reviewer: Option<Reviewer>,
    tokens: TtlCache<[u8; 32], TokenVerdict>,
    decisions: TtlCache<(UserInfo, Attributes), Decision>,
}

impl Guard {
    /// `reviewer` is needed when token reviews or subject access reviews are on.
    pub fn new(
        authentication: AuthenticationConfig,
        authorization: AuthorizationConfig,
        reviewer: Option<Reviewer>,
    ) -> Result<Guard, String> {
        let needs_api =
            authentication.token_review.enabled || authorization.mode == AuthorizationMode::SubjectAccessReview;
        if needs_api && reviewer.is_none() {
            return Err("token reviews and subject access reviews need a Kubernetes API client".into());
        }
        Ok(Guard {
            tokens: TtlCache::new(authentication.token_review.cache_ttl),
            decisions: TtlCache::new(authorization.cache_ttl),
            authentication,
            authorization,
            reviewer,
        })
    }

    /// Whether the API server is asked anything (so a client must be built).
    pub fn needs_api(authentication: &AuthenticationConfig, authorization: &AuthorizationConfig) -> bool {
        authentication.token_review.enabled || authorization.mode == AuthorizationMode::SubjectAccessReview
    }

    /// The user of `request`, or the refusal. Front-proxy headers are removed from the request.
    async fn authenticate(&self, request: &mut Request) -> Result<UserInfo, Refusal> {
        let unauthorized = |message: String| Err(Refusal(StatusCode::UNAUTHORIZED, "Unauthorized", message));
        let peer = request.extensions().get::<axum::extract::ConnectInfo<TlsPeer>>().map(|c| c.0.clone());
        let mut front_proxy = None;
        if let Some(rh) = &self.authentication.requestheader {
            let headers = request.headers_mut();
            // A certificate reached here only if the requestheader CA signed it (TLS layer).
            if let Some(peer) = peer.as_ref().filter(|p| p.has_certificate) {
                let name = peer.common_name.clone().unwrap_or_default();
                if !rh.allowed_names.is_empty() && !rh.allowed_names.contains(&name) {
                    tracing::info!(client = %peer.addr, common_name = %name, "external metrics client certificate not in requestheader.allowed_names");
                    return unauthorized(format!(
                        "client certificate common name {name:?} is not in \
                         server.external_metrics.authentication.requestheader.allowed_names"
                    ));
                }
                front_proxy = user_from_headers(rh, headers);
            }
            strip_headers(rh, headers);
        }
        if let Some(user) = front_proxy {
            return Ok(user);
        }
        let token = bearer(request.headers());
        if let (true, Some(token), Some(reviewer)) =
            (self.authentication.token_review.enabled, token, self.reviewer.as_ref())
        {
            let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
            let verdict = match self.tokens.get(&key) {
                Some(v) => v,
                None => match reviewer.review_token(&token, &self.authentication.token_review.audiences).await {
                    Ok(v) => {
                        self.tokens.insert(key, v.clone());
                        v
                    }
                    Err(error) => {
                        tracing::warn!(%error, "external metrics token not checked: the kubernetes api did not answer the tokenreview");
                        return unauthorized("the token could not be checked (TokenReview failed)".into());
                    }
                },
            };
            return match verdict {
                TokenVerdict::Authenticated(user) => Ok(user),
                TokenVerdict::Rejected(reason) => {
                    tracing::info!(%reason, "external metrics token rejected by the tokenreview");
                    unauthorized("invalid bearer token".into())
                }
            };
        }
        if self.authentication.any() {
            return unauthorized("Unauthorized".into());
        }
        Ok(UserInfo {
            username: "system:anonymous".into(),
            groups: vec!["system:unauthenticated".into()],
            ..Default::default()
        })
    }

    /// Whether `user` may make the request to `path`.
    async fn authorize(&self, user: UserInfo, method: &str, path: &str) -> Result<(), Refusal> {
        if self.authorization.mode == AuthorizationMode::AlwaysAllow {
            return Ok(());
        }
        let Some(reviewer) = self.reviewer.as_ref() else { return Ok(()) };
        let attributes = attributes(method, path);
        let key = (user, attributes);
        let decision = match self.decisions.get(&key) {
            Some(d) => d,
            None => match reviewer.review_access(&key.0, &key.1).await {
                Ok(d) => {
                    self.decisions.insert(key.clone(), d.clone());
                    d
                }
                Err(error) => {
                    tracing::warn!(user = %key.0.username, %error, "external metrics request not authorized: the kubernetes api did not answer the subjectaccessreview");
                    return Err(Refusal(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "ServiceUnavailable",
                        "authorization could not be checked (SubjectAccessReview failed)".into(),
                    ));
                }
            },
        };
        match decision {
            Decision::Allowed => Ok(()),
            Decision::Denied(reason) => {
                let message = forbidden_message(&key.0.username, &key.1, &reason);
                tracing::info!(user = %key.0.username, %reason, "external metrics request denied by the subjectaccessreview");
                Err(Refusal(StatusCode::FORBIDDEN, "Forbidden", message))
            }
        }
    }
}

/// The middleware ahead of the external metrics routes.
pub async fn guard(State(guard): State<Arc<Guard>>, mut request: Request, next: Next) -> Response {
    let user = match guard.authenticate(&mut request).await {
        Ok(user) => user,
        Err(Refusal(code, reason, message)) => return status(code, reason, message),
    };
    let (method, path) = (request.method().as_str().to_ascii_lowercase(), request.uri().path().to_string());
    match guard.authorize(user, &method, &path).await {
        Ok(()) => next.run(request).await,
        Err(Refusal(code, reason, message)) => status(code, reason, message),
    }
}

/// The request's attributes as kube's RequestInfo reads them: a GET of
/// `/apis/<group>/<version>/namespaces/<ns>/<metric>` is `list` on resource `<metric>`.
fn attributes(method: &str, path: &str) -> Attributes {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    if let ["apis", group, version, "namespaces", namespace, resource] = parts[..]
        && group == GROUP
        && version == VERSION
    {
        let verb = if method == "get" || method == "head" { "list" } else { method };
        return Attributes::Resource {
            group: GROUP.into(),
            version: VERSION.into(),
            resource: resource.into(),
            namespace: namespace.into(),
            verb: verb.into(),
        };
    }
    Attributes::NonResource { path: path.into(), verb: method.into() }
}

/// kube's wording of a denial.
fn forbidden_message(user: &str, attributes: &Attributes, reason: &str) -> String {
    let mut message = match attributes {
        Attributes::Resource { group, resource, namespace, verb, .. } => format!(
            "{resource}.{group} is forbidden: User {user:?} cannot {verb} resource {resource:?} in API group \
             {group:?} in the namespace {namespace:?}"
        ),
        Attributes::NonResource { path, verb } => format!("forbidden: User {user:?} cannot {verb} path {path:?}"),
    };
    if !reason.is_empty() {
        message.push_str(": ");
        message.push_str(reason);
    }
    message
}

/// The user the front proxy names, if a username header is present.
fn user_from_headers(rh: &RequestHeaderConfig, headers: &HeaderMap) -> Option<UserInfo> {
    let values = |name: &str| -> Vec<String> {
        headers.get_all(name).iter().filter_map(|v| v.to_str().ok()).map(String::from).collect()
    };
    let username = rh.username_headers.iter().flat_map(|h| values(h)).find(|v| !v.is_empty())?;
    let groups = rh.group_headers.iter().flat_map(|h| values(h)).collect();
    let mut extra = std::collections::BTreeMap::<String, Vec<String>>::new();
    for (name, value) in headers {
        for prefix in &rh.extra_headers_prefix {
            let Some(key) = name.as_str().strip_prefix(&prefix.to_ascii_lowercase()) else { continue };
            if let Ok(value) = value.to_str() {
                extra.entry(percent_decode(key)).or_default().push(value.to_string());
            }
        }
    }
    Some(UserInfo { username, uid: String::new(), groups, extra })
}

/// Drops every front-proxy header, so nothing after the guard believes one a client sent.
fn strip_headers(rh: &RequestHeaderConfig, headers: &mut HeaderMap) {
    for name in rh.username_headers.iter().chain(&rh.group_headers) {
        headers.remove(name.as_str());
    }
    let prefixes: Vec<String> = rh.extra_headers_prefix.iter().map(|p| p.to_ascii_lowercase()).collect();
    let extra: Vec<_> =
        headers.keys().filter(|k| prefixes.iter().any(|p| k.as_str().starts_with(p.as_str()))).cloned().collect();
    for name in extra {
        headers.remove(name);
    }
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_string())
}

/// `%XX` escapes decoded (extra keys may carry any character this way).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_requests_are_list_on_the_metric() {
        assert_eq!(
            attributes("get", "/apis/external.metrics.k8s.io/v1beta1/namespaces/shop/queue-depth"),
            Attributes::Resource {
                group: GROUP.into(),
                version: VERSION.into(),
                resource: "queue-depth".into(),
                namespace: "shop".into(),
                verb: "list".into()
            }
        );
        assert_eq!(
            attributes("get", "/apis/external.metrics.k8s.io/v1beta1"),
            Attributes::NonResource { path: "/apis/external.metrics.k8s.io/v1beta1".into(), verb: "get".into() }
        );
    }

    #[test]
    fn front_proxy_headers_make_the_user_and_are_stripped() {
        let rh = RequestHeaderConfig::default();
        let mut headers = HeaderMap::new();
        headers.insert("x-remote-user", "alice".parse().unwrap());
        headers.append("x-remote-group", "devs".parse().unwrap());
        headers.append("x-remote-group", "system:authenticated".parse().unwrap());
        headers.insert("x-remote-extra-scopes%2Fa", "one".parse().unwrap());
        headers.insert("accept", "application/json".parse().unwrap());
        let user = user_from_headers(&rh, &headers).unwrap();
        assert_eq!(user.username, "alice");
        assert_eq!(user.groups, ["devs", "system:authenticated"]);
        assert_eq!(user.extra.get("scopes/a").map(Vec::as_slice), Some(&["one".to_string()][..]));
        strip_headers(&rh, &mut headers);
        assert_eq!(headers.len(), 1, "{headers:?}");
        assert!(user_from_headers(&rh, &headers).is_none());
    }

    #[test]
    fn the_cache_expires_and_stays_bounded() {
        let cache = TtlCache::new(Duration::from_secs(60));
        for i in 0..MAX_CACHED + 10 {
            cache.insert(i, i);
        }
        assert!(cache.entries.lock().len() <= MAX_CACHED);
        let none = TtlCache::new(Duration::ZERO);
        none.insert(1, 1);
        assert_eq!(none.get(&1), None);
    }

    #[test]
    fn validate_names_the_key() {
        let key = "server.external_metrics.authentication";
        let a = AuthenticationConfig { requestheader: Some(RequestHeaderConfig::default()), ..Default::default() };
        assert!(
            a.validate(key)
                .unwrap_err()
                .starts_with("server.external_metrics.authentication.requestheader.client_ca_file")
        );
        let z = AuthorizationConfig { mode: AuthorizationMode::SubjectAccessReview, ..Default::default() };
        assert!(
            z.validate("server.external_metrics.authorization", &Default::default())
                .unwrap_err()
                .contains("needs an authenticator")
        );
        assert_eq!(
            bearer(&[(axum::http::header::AUTHORIZATION, "Bearer abc".parse().unwrap())].into_iter().collect())
                .as_deref(),
            Some("abc")
        );
    }
}
