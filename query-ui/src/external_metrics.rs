//! The Kubernetes external metrics API (`external.metrics.k8s.io/v1beta1`), so a
//! HorizontalPodAutoscaler scales on Tarsier's series through an APIService. Served over TLS on its
//! own listener (`server.external_metrics`), because the API server's aggregation layer only
//! speaks HTTPS. Metrics are rules: a name and a PromQL template in which `{{namespace}}` becomes
//! the request's namespace and `{{selector}}` the `labelSelector` as PromQL matchers, each with a
//! leading comma (`app=web,tier!=db,env in (a,b)` → `,app="web",tier!="db",env=~"a|b"`), so a
//! template reads `{namespace="{{namespace}}"{{selector}}}`.
//!
//! An unknown metric, a bad selector, a failing query or an empty result answers a Kubernetes
//! `Status` error, never an empty list or a 0: KEDA once read an empty result as zero and scaled
//! production down (keda#3065).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub const GROUP: &str = "external.metrics.k8s.io";
pub const VERSION: &str = "v1beta1";

/// `server.external_metrics`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExternalMetricsConfig {
    /// Serve the API (needs `cert_file` and `key_file`).
    pub enabled: bool,
    /// HTTPS listen address, host:port (the APIService's Service targets it).
    pub listen: String,
    /// PEM certificate chain and private key of the listener. Without both, a self-signed
    /// certificate is made at start (as metrics-server does; the APIService then needs
    /// `insecureSkipTLSVerify: true`, or a `caBundle` with a real certificate here).
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// Who may call (README "Kubernetes: external metrics"): the API server's front proxy, bearer
    /// tokens checked with a TokenReview. None configured: anyone (`system:anonymous`).
    pub authentication: crate::external_metrics_auth::AuthenticationConfig,
    /// What they may read: `always_allow`, or a SubjectAccessReview per request.
    pub authorization: crate::external_metrics_auth::AuthorizationConfig,
    /// The Kubernetes API the reviews go to, without authentication (tests, `kubectl proxy`);
    /// unset: `kubeconfig`, else the in-cluster service account.
    pub api_url: Option<String>,
    /// A kubeconfig file (its current context) for the reviews.
    pub kubeconfig: Option<PathBuf>,
    /// Moved to `authentication.requestheader.client_ca_file`; set, it is refused with that hint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_ca_file: Option<PathBuf>,
    /// Moved to `authentication.requestheader.allowed_names`; set, it is refused with that hint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_names: Option<Vec<String>>,
    /// Tenant whose metrics are queried.
    pub tenant: String,
    /// The metrics HPAs may ask for.
    pub metrics: Vec<ExternalMetricRule>,
}

impl Default for ExternalMetricsConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            listen: "0.0.0.0:6443".into(),
            cert_file: None,
            key_file: None,
            authentication: Default::default(),
            authorization: Default::default(),
            api_url: None,
            kubeconfig: None,
            client_ca_file: None,
            allowed_names: None,
            tenant: model::tenant::DEFAULT_TENANT.into(),
            metrics: Vec::new(),
        }
    }
}

/// One external metric.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExternalMetricRule {
    /// The metric name in the HPA (`metric.name`): lower case, digits, `-` and `.`.
    pub name: String,
    /// PromQL with `{{namespace}}` and `{{selector}}` placeholders.
    pub query: String,
    /// The window the value covers (reported as `window` in seconds), e.g. the range of a rate().
    #[serde(default, with = "humantime_serde::option")]
    pub window: Option<Duration>,
}

impl ExternalMetricsConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !self.enabled {
            return Ok(());
        }
        if self.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(format!("server.external_metrics.listen: {:?} is not host:port", self.listen));
        }
        if self.cert_file.is_some() != self.key_file.is_some() {
            return Err("server.external_metrics: set both cert_file and key_file, or neither (self-signed)".into());
        }
        for (key, set) in
            [("client_ca_file", self.client_ca_file.is_some()), ("allowed_names", self.allowed_names.is_some())]
        {
            if set {
                return Err(format!(
                    "server.external_metrics.{key} moved to server.external_metrics.authentication.requestheader.{key}"
                ));
            }
        }
        self.authentication.validate("server.external_metrics.authentication")?;
        self.authorization.validate("server.external_metrics.authorization", &self.authentication)?;
        collector::kubernetes::validate_source(
            "server.external_metrics",
            "api_url",
            self.api_url.as_deref(),
            "kubeconfig",
            self.kubeconfig.as_deref(),
        )?;
        model::TenantId::new(&self.tenant).map_err(|e| format!("server.external_metrics.tenant: {e}"))?;
        let mut seen = std::collections::BTreeSet::new();
        for (i, m) in self.metrics.iter().enumerate() {
            let valid = !m.name.is_empty()
                && m.name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
            if !valid {
                return Err(format!("server.external_metrics.metrics[{i}].name {:?}: use a-z, 0-9, - and .", m.name));
            }
            if !seen.insert(&m.name) {
                return Err(format!("server.external_metrics.metrics[{i}].name {:?} is defined twice", m.name));
            }
            let sample = render(&m.query, "default", "");
            promql_parser::parser::parse(&sample)
                .map_err(|e| format!("server.external_metrics.metrics[{i}].query: {e}"))?;
        }
        Ok(())
    }
}

/// Substitutes the placeholders.
fn render(template: &str, namespace: &str, matchers: &str) -> String {
    template.replace("{{namespace}}", &escape(namespace)).replace("{{selector}}", matchers)
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"")
}

/// A Kubernetes label selector (`a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x)`, `a`, `!a`) as
/// PromQL matchers, each with a leading comma.
pub fn selector_to_matchers(selector: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut terms = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in selector.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                terms.push(&selector[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    terms.push(&selector[start..]);
    let name_ok = |n: &str| model::labels::is_valid_label_name(n);
    for term in terms.iter().map(|t| t.trim()).filter(|t| !t.is_empty()) {
        let set = |rest: &str| -> Result<String, String> {
            let inner = rest.trim().strip_prefix('(').and_then(|r| r.strip_suffix(')')).ok_or("expected (values)")?;
            let values: Vec<String> =
                inner.split(',').map(|v| regex::escape(v.trim())).filter(|v| !v.is_empty()).collect();
            Ok(values.join("|"))
        };
        let (name, op, value) = if let Some((n, v)) = term.split_once("!=") {
            (n.trim(), "!=", escape(v.trim()))
        } else if let Some((n, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
            (n.trim(), "=", escape(v.trim()))
        } else if let Some((n, rest)) = term.split_once(" notin ") {
            (n.trim(), "!~", escape(&set(rest)?))
        } else if let Some((n, rest)) = term.split_once(" in ") {
            (n.trim(), "=~", escape(&set(rest)?))
        } else if let Some(n) = term.strip_prefix('!') {
            (n.trim(), "=", String::new())
        } else {
            (term, "!=", String::new())
        };
        if !name_ok(name) {
            return Err(format!("label selector term {term:?}: {name:?} is not a label name Tarsier can match"));
        }
        out.push_str(&format!(",{name}{op}\"{value}\""));
    }
    Ok(out)
}

/// A Kubernetes Quantity string: the value in the largest unit (none, `m`, `u`, `n`) that holds it
/// exactly at nano precision (1.5 → "1500m", 42 → "42", 0.25 → "250m").
pub fn quantity(v: f64) -> Option<String> {
    if !v.is_finite() {
        return None;
    }
    let nanos = (v * 1e9).round();
    if nanos.abs() > 9.2e18 {
        return Some(format!("{}", v.round() as i64));
    }
    let n = nanos as i64;
    for (suffix, factor) in [("", 1_000_000_000i64), ("m", 1_000_000), ("u", 1_000), ("n", 1)] {
        if n % factor == 0 {
            return Some(format!("{}{suffix}", n / factor));
        }
    }
    None
}

/// A Kubernetes `Status` error.
pub(crate) fn status(code: StatusCode, reason: &str, message: String) -> Response {
    let body = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code.as_u16(),
    });
    (code, Json(body)).into_response()
}

/// What the handlers need.
#[derive(Clone)]
pub struct ExternalMetricsState {
    pub tsdb: Arc<tsdb::Tsdb>,
    pub config: Arc<ExternalMetricsConfig>,
    /// Authentication and authorization of every request but the health checks.
    pub guard: Arc<crate::external_metrics_auth::Guard>,
}

/// The router served on the TLS listener; serve it with
/// `into_make_service_with_connect_info::<TlsPeer>()` so the guard sees client certificates.
pub fn router(state: ExternalMetricsState) -> Router {
    Router::new()
        .route("/apis", get(api_groups))
        .route(&format!("/apis/{GROUP}"), get(api_group))
        .route(&format!("/apis/{GROUP}/{VERSION}"), get(resources))
        .route(&format!("/apis/{GROUP}/{VERSION}/namespaces/{{namespace}}/{{metric}}"), get(value))
        .fallback(|| async {
            status(StatusCode::NOT_FOUND, "NotFound", "the server could not find the requested resource".into())
        })
        .layer(axum::middleware::from_fn_with_state(state.guard.clone(), crate::external_metrics_auth::guard))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(|| async { "ok" }))
        .route("/livez", get(|| async { "ok" }))
        .with_state(state)
}

fn group_json() -> Value {
    let gv = json!({"groupVersion": format!("{GROUP}/{VERSION}"), "version": VERSION});
    json!({"name": GROUP, "versions": [gv.clone()], "preferredVersion": gv})
}

async fn api_groups() -> Json<Value> {
    Json(json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": [group_json()]}))
}

async fn api_group() -> Json<Value> {
    let mut g = group_json();
    g["kind"] = json!("APIGroup");
    g["apiVersion"] = json!("v1");
    Json(g)
}

async fn resources(State(state): State<ExternalMetricsState>) -> Json<Value> {
    let resources: Vec<Value> = state
        .config
        .metrics
        .iter()
        .map(|m| {
            json!({"name": m.name, "singularName": "", "namespaced": true, "kind": "ExternalMetricValueList", "verbs": ["get"]})
        })
        .collect();
    Json(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": format!("{GROUP}/{VERSION}"),
        "resources": resources,
    }))
}

#[derive(Deserialize)]
struct ValueParams {
    #[serde(rename = "labelSelector", default)]
    label_selector: String,
}

async fn value(
    State(state): State<ExternalMetricsState>,
    Path((namespace, metric)): Path<(String, String)>,
    Query(params): Query<ValueParams>,
) -> Response {
    let Some(rule) = state.config.metrics.iter().find(|m| m.name == metric) else {
        return status(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("external metric {metric:?} is not defined in server.external_metrics.metrics"),
        );
    };
    let matchers = match selector_to_matchers(&params.label_selector) {
        Ok(m) => m,
        Err(e) => return status(StatusCode::BAD_REQUEST, "BadRequest", e),
    };
    let query = render(&rule.query, &namespace, &matchers);
    let tenant = match model::TenantId::new(&state.config.tenant) {
        Ok(t) => t,
        Err(e) => return status(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", e.to_string()),
    };
    let now = model::time::now_ms();
    let tsdb = state.tsdb.clone();
    let q = query.clone();
    let result = match tokio::task::spawn_blocking(move || tsdb.instant_query_annotated(&tenant, &q, now)).await {
        Ok(Ok((result, _notes))) => result,
        Ok(Err(e)) => {
            tracing::warn!(metric = %metric, query = %query, error = %e, "external metric query failed");
            return status(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", format!("query {query:?} failed: {e}"));
        }
        Err(e) => return status(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", e.to_string()),
    };
    let points: Vec<(model::Labels, i64, f64)> = match result {
        tsdb::QueryResult::Vector(v) => v,
        tsdb::QueryResult::Scalar { t_ms, v } => vec![(model::Labels::empty(), t_ms, v)],
        _ => {
            return status(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                format!("query {query:?} must return an instant vector or a scalar"),
            );
        }
    };
    if points.is_empty() {
        return status(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("query {query:?} returned no series for external metric {metric:?}"),
        );
    }
    let mut items = Vec::with_capacity(points.len());
    for (labels, t_ms, v) in points {
        let Some(value) = quantity(v) else {
            return status(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                format!("query {query:?} returned {v}, which is not a quantity"),
            );
        };
        let metric_labels: serde_json::Map<String, Value> =
            labels.iter().filter(|l| l.name != "__name__").map(|l| (l.name.clone(), json!(l.value))).collect();
        let timestamp = chrono::DateTime::from_timestamp_millis(t_ms)
            .unwrap_or_default()
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let mut item =
            json!({"metricName": metric, "metricLabels": metric_labels, "timestamp": timestamp, "value": value});
        if let Some(w) = rule.window {
            item["window"] = json!(w.as_secs());
        }
        items.push(item);
    }
    Json(json!({
        "kind": "ExternalMetricValueList",
        "apiVersion": format!("{GROUP}/{VERSION}"),
        "metadata": {},
        "items": items,
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_as_kubernetes_writes_them() {
        for (v, q) in [(42.0, "42"), (1.5, "1500m"), (0.25, "250m"), (0.0, "0"), (-2.5, "-2500m"), (1e-6, "1u")] {
            assert_eq!(quantity(v).as_deref(), Some(q), "{v}");
        }
        assert_eq!(quantity(f64::NAN), None);
    }

    #[test]
    fn label_selectors_become_matchers() {
        assert_eq!(selector_to_matchers("").unwrap(), "");
        assert_eq!(
            selector_to_matchers("app=web,tier!=db,env in (a, b.c),x notin (y),has,!gone").unwrap(),
            r#",app="web",tier!="db",env=~"a|b\\.c",x!~"y",has!="",gone="""#
        );
        assert!(selector_to_matchers("a-b=c").is_err());
    }
}
