//! Alertmanager's API v2 over Tarsier's notifier, for the UI and for `amtool`-like clients:
//! `/api/v2/alerts` (GET with `filter`/`active`/`silenced`/`inhibited`/`receiver`, POST of postable
//! alerts), `/api/v2/alerts/groups`, `/api/v2/silences` (GET, POST), `/api/v2/silence/{id}` (GET,
//! DELETE), `/api/v2/receivers` and `/api/v2/status` (process-wide: see `auth.rs`), and Tarsier's `/api/v2/notifications` (recent
//! deliveries with their result). The tenant comes from `X-Scope-OrgID`. Errors are a JSON string
//! with status 400 or 404, as Alertmanager answers.
//!
//! [`routes`] returns a router with its own state, to be merged into the main one.

use std::sync::Arc;

use alerting::notify::api::AlertFilter;
use alerting::notify::matchers::parse_matchers;
use alerting::notify::{Alert, Notifier, Silence};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde_json::json;

use crate::auth::{Principal, Role};

/// An error answered as Alertmanager does: a JSON string.
struct AmError(StatusCode, String);

impl IntoResponse for AmError {
    fn into_response(self) -> Response {
        (self.0, Json(self.1)).into_response()
    }
}

impl From<alerting::Error> for AmError {
    fn from(e: alerting::Error) -> Self {
        let status = match e {
            alerting::Error::SilenceNotFound(_) => StatusCode::NOT_FOUND,
            alerting::Error::InvalidSilence(_) | alerting::Error::InvalidAlert(_) => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %e, "alertmanager api failed");
        }
        AmError(status, e.to_string())
    }
}

fn bad(msg: impl Into<String>) -> AmError {
    AmError(StatusCode::BAD_REQUEST, msg.into())
}

fn tenant(headers: &HeaderMap) -> Result<String, AmError> {
    let raw = headers.get("X-Scope-OrgID").and_then(|v| v.to_str().ok());
    model::TenantId::from_header(raw).map(|t| t.as_str().to_string()).map_err(|e| bad(e.to_string()))
}

fn query_pairs(q: &Option<String>) -> Vec<(String, String)> {
    form_urlencoded::parse(q.as_deref().unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn flag(pairs: &[(String, String)], key: &str) -> Result<Option<bool>, AmError> {
    match pairs.iter().find(|(k, _)| k == key) {
        None => Ok(None),
        Some((_, v)) => v.parse().map(Some).map_err(|_| bad(format!("{key}: {v:?} is not true or false"))),
    }
}

fn filter_of(pairs: &[(String, String)]) -> Result<AlertFilter, AmError> {
    let mut f = AlertFilter::default();
    for (k, v) in pairs {
        if k == "filter" {
            f.matchers.extend(parse_matchers(v).map_err(|e| bad(format!("bad matcher format: {e}")))?);
        }
    }
    f.active = flag(pairs, "active")?;
    f.silenced = flag(pairs, "silenced")?;
    f.inhibited = flag(pairs, "inhibited")?;
    if let Some((_, re)) = pairs.iter().find(|(k, _)| k == "receiver") {
        f.receiver = Some(regex::Regex::new(&format!("^(?:{re})$")).map_err(|e| bad(format!("receiver: {e}")))?);
    }
    Ok(f)
}

async fn get_alerts(
    State(n): State<Arc<Notifier>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Response, AmError> {
    let t = tenant(&headers)?;
    let f = filter_of(&query_pairs(&q))?;
    Ok(Json(n.api().alerts(&t, &f)).into_response())
}

async fn post_alerts(
    State(n): State<Arc<Notifier>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, AmError> {
    let t = tenant(&headers)?;
    let alerts: Vec<Alert> = serde_json::from_slice(&body).map_err(|e| bad(format!("invalid alerts: {e}")))?;
    n.api().post_alerts(&t, alerts)?;
    Ok(StatusCode::OK.into_response())
}

async fn get_groups(
    State(n): State<Arc<Notifier>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Response, AmError> {
    let t = tenant(&headers)?;
    let f = filter_of(&query_pairs(&q))?;
    let mut groups = n.api().alert_groups(&t);
    for g in &mut groups {
        g.alerts.retain(|a| f.matchers.iter().all(|m| m.matches(&a.labels)));
    }
    groups.retain(|g| !g.alerts.is_empty());
    Ok(Json(groups).into_response())
}

async fn get_silences(
    State(n): State<Arc<Notifier>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Response, AmError> {
    let t = tenant(&headers)?;
    let f = filter_of(&query_pairs(&q))?;
    // Alertmanager's filter on silences: every filter matcher equals one of the silence's matchers.
    let list: Vec<_> = n
        .api()
        .silences(&t)
        .into_iter()
        .filter(|s| {
            f.matchers
                .iter()
                .all(|m| s.silence.matchers.iter().any(|sm| sm.name == m.name && m.matches_value(&sm.value)))
        })
        .collect();
    Ok(Json(list).into_response())
}

async fn post_silence(
    State(n): State<Arc<Notifier>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, AmError> {
    let t = tenant(&headers)?;
    let s: Silence = serde_json::from_slice(&body).map_err(|e| bad(format!("invalid silence: {e}")))?;
    let id = n.api().put_silence(&t, s).await?;
    Ok(Json(json!({"silenceID": id})).into_response())
}

async fn get_silence(
    State(n): State<Arc<Notifier>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, AmError> {
    let t = tenant(&headers)?;
    Ok(Json(n.api().silence(&t, &id)?).into_response())
}

async fn delete_silence(
    State(n): State<Arc<Notifier>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, AmError> {
    let t = tenant(&headers)?;
    n.api().expire_silence(&t, &id).await?;
    Ok(StatusCode::OK.into_response())
}

async fn receivers(State(n): State<Arc<Notifier>>) -> Response {
    let names: Vec<_> = n.api().receivers().into_iter().map(|name| json!({"name": name})).collect();
    Json(names).into_response()
}

async fn notifications(State(n): State<Arc<Notifier>>, headers: HeaderMap) -> Result<Response, AmError> {
    let t = tenant(&headers)?;
    Ok(Json(n.api().recent_notifications(&t)).into_response())
}

/// Alertmanager's status. The notifications config is the whole process's (every tenant's routes
/// and receivers), so with `server.auth` only an admin token sees it; others get `""`, enough for
/// clients (Grafana's data source test) that only check the server answers.
async fn status(State(n): State<Arc<Notifier>>, principal: Option<Extension<Arc<Principal>>>) -> Response {
    let config = match principal {
        Some(Extension(p)) if !p.has(Role::Admin) => String::new(),
        _ => n.api().config_yaml(),
    };
    Json(json!({
        "cluster": {"status": "disabled", "peers": []},
        "config": {"original": config},
        "uptime": n.api().started_at(),
        "versionInfo": {
            "version": env!("CARGO_PKG_VERSION"),
            "revision": "", "branch": "", "buildUser": "", "buildDate": "",
            "goVersion": "none (tarsier)",
        },
    }))
    .into_response()
}

/// The Alertmanager API routes over `notifier`, mergeable into any router.
pub fn routes<S: Clone + Send + Sync + 'static>(notifier: Arc<Notifier>) -> Router<S> {
    Router::new()
        .route("/api/v2/alerts", get(get_alerts).post(post_alerts))
        .route("/api/v2/alerts/groups", get(get_groups))
        .route("/api/v2/silences", get(get_silences).post(post_silence))
        .route("/api/v2/silence/{id}", get(get_silence).delete(delete_silence))
        .route("/api/v2/receivers", get(receivers))
        .route("/api/v2/status", get(status))
        .route("/api/v2/notifications", get(notifications))
        .with_state(notifier)
}
