//! API tokens, tenants and roles (`server.auth`). Without it every endpoint believes the
//! `X-Scope-OrgID` header, which is fine behind a gateway that sets it and nowhere else. With it
//! on, a request names a token (`Authorization: Bearer <token>`, or HTTP basic auth with the token
//! as password, as Grafana, Promtail, Fluent Bit and Prometheus's remote_write can all send); the
//! token says which tenants and roles it has, and [`enforce`] — a middleware ahead of every
//! handler — checks the route's role (see [`requirement`]), picks the tenant and writes it into
//! `X-Scope-OrgID`, so every handler keeps reading the header and sees only the authenticated
//! tenant.
//!
//! Tokens live in a YAML file (typically a mounted Kubernetes Secret) that is re-read every
//! `reload_interval`: a changed file replaces the token set whole, a bad one is logged and the
//! old set kept. Tokens are only ever held as SHA-256 digests and compared in constant time.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::Duration;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use model::TenantId;
use parking_lot::RwLock;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::state::AppState;

/// `server.auth`: off by default.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Require a token on every endpoint except `/-/healthy`, `/-/ready` and the UI's files.
    pub enabled: bool,
    /// YAML list of tokens (`name`, `token` or `token_sha256`, `tenants`, `roles`); required when
    /// enabled. Re-read every `reload_interval`, so a rotated Kubernetes Secret applies live.
    pub tokens_file: Option<PathBuf>,
    /// How often the tokens file is checked for changes.
    #[serde(with = "humantime_serde")]
    pub reload_interval: Duration,
    /// Serve `/metrics` without a token (for a Prometheus that scrapes without one).
    pub public_metrics: bool,
    /// The realm named in `WWW-Authenticate` challenges.
    pub realm: String,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            tokens_file: None,
            reload_interval: Duration::from_secs(5),
            public_metrics: false,
            realm: "tarsier".into(),
        }
    }
}

impl AuthConfig {
    /// Checks the section; errors name the key under `server.auth.`.
    pub fn validate(&self) -> Result<(), String> {
        if self.enabled && self.tokens_file.is_none() {
            return Err("server.auth.tokens_file: required when server.auth.enabled is true".into());
        }
        if self.reload_interval < Duration::from_millis(100) {
            return Err("server.auth.reload_interval must be at least 100ms".into());
        }
        if self.realm.is_empty() || self.realm.contains(['"', '\\']) || self.realm.chars().any(char::is_control) {
            return Err("server.auth.realm must be non-empty text without quotes or backslashes".into());
        }
        Ok(())
    }
}

/// What a token may do. `admin` includes `read` and `write`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Queries, labels, rules, alerts, targets, dashboards: every read API and the UI's data.
    Read,
    /// Ingest: Loki push, Elasticsearch `_bulk`, remote_write, posting alerts.
    Write,
    /// Reload, snapshots, silences, dashboard changes, the effective config, and the views of the
    /// whole process: `/api/v2/receivers`, the notifications config in `/api/v2/status`.
    Admin,
    /// `/metrics` only: the process's own metrics, whatever the tenant, for the Prometheus that
    /// scrapes Tarsier (admin has it too).
    Metrics,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Write => "write",
            Role::Admin => "admin",
            Role::Metrics => "metrics",
        }
    }
}

/// One entry of the tokens file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenEntry {
    name: String,
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    token_sha256: Option<String>,
    tenants: Vec<String>,
    roles: Vec<Role>,
}

/// Who a request is, once its token is known: handlers read it from the request's extensions.
#[derive(Debug)]
pub struct Principal {
    /// The token's `name` (for logs and error messages; never the token).
    pub name: String,
    /// The tenants it may use; the first is used when a request names none.
    pub tenants: Vec<TenantId>,
    roles: Vec<Role>,
}

impl Principal {
    /// Whether the token has `role` (admin has every role).
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role) || self.roles.contains(&Role::Admin)
    }
}

/// The tokens of one version of the file, as digests.
#[derive(Default)]
struct TokenSet {
    entries: Vec<([u8; 32], Arc<Principal>)>,
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Equal digests, in time independent of where they differ.
fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

fn parse_hex_digest(text: &str) -> Option<[u8; 32]> {
    let text = text.trim();
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

impl TokenSet {
    /// Parses and checks a tokens file; errors name the entry and key (`tokens[2].tenants`).
    fn parse(text: &str) -> Result<TokenSet, String> {
        let entries: Vec<TokenEntry> = serde_yaml_ng::from_str(text).map_err(|e| e.to_string())?;
        let mut set = TokenSet::default();
        let mut names = std::collections::HashSet::new();
        for (i, e) in entries.into_iter().enumerate() {
            let at = format!("tokens[{i}]");
            if e.name.trim().is_empty() {
                return Err(format!("{at}.name: must not be empty"));
            }
            if !names.insert(e.name.clone()) {
                return Err(format!("{at}.name: {:?} is used twice", e.name));
            }
            let digest = match (&e.token, &e.token_sha256) {
                (Some(t), None) if t.len() >= 16 => sha256(t.as_bytes()),
                (Some(_), None) => return Err(format!("{at}.token: shorter than 16 characters")),
                (None, Some(h)) => {
                    parse_hex_digest(h).ok_or_else(|| format!("{at}.token_sha256: not 64 hexadecimal digits"))?
                }
                _ => return Err(format!("{at}: give exactly one of token and token_sha256")),
            };
            if set.entries.iter().any(|(d, _)| constant_time_eq(d, &digest)) {
                return Err(format!("{at}: the same token as an earlier entry"));
            }
            if e.tenants.is_empty() {
                return Err(format!("{at}.tenants: must name at least one tenant"));
            }
            let mut tenants = Vec::new();
            for t in &e.tenants {
                let id = TenantId::new(t).map_err(|err| format!("{at}.tenants: {t:?}: {err}"))?;
                if !tenants.contains(&id) {
                    tenants.push(id);
                }
            }
            if e.roles.is_empty() {
                return Err(format!("{at}.roles: must name at least one of read, write, admin, metrics"));
            }
            set.entries.push((digest, Arc::new(Principal { name: e.name, tenants, roles: e.roles })));
        }
        Ok(set)
    }

    /// The principal of `token`. Every entry is compared (no early exit), each in constant time.
    fn find(&self, token: &[u8]) -> Option<Arc<Principal>> {
        let digest = sha256(token);
        let mut found = None;
        for (d, p) in &self.entries {
            if constant_time_eq(d, &digest) {
                found = Some(Arc::clone(p));
            }
        }
        found
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

/// Why a request was refused (the `reason` label of `tarsier_http_auth_refusals_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Refusal {
    MissingToken,
    UnknownToken,
    MissingRole,
    ForeignTenant,
    BadTenant,
}

impl Refusal {
    fn reason(self) -> &'static str {
        match self {
            Refusal::MissingToken => "missing_token",
            Refusal::UnknownToken => "unknown_token",
            Refusal::MissingRole => "missing_role",
            Refusal::ForeignTenant => "foreign_tenant",
            Refusal::BadTenant => "bad_tenant",
        }
    }
}

#[derive(Clone, Default)]
struct AuthMetrics {
    refusals: Family<ReasonLabels, Counter>,
    tokens: Gauge,
    reload_ok: Gauge,
}

/// The running token set and its file; shared by the middleware and the reloader.
pub struct Auth {
    config: AuthConfig,
    tokens: RwLock<Arc<TokenSet>>,
    /// SHA-256 of the file content the set was built from (a reload skips an unchanged file).
    file_digest: parking_lot::Mutex<[u8; 32]>,
    metrics: AuthMetrics,
}

fn read_tokens(path: &Path) -> Result<(TokenSet, [u8; 32]), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let set = TokenSet::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok((set, sha256(text.as_bytes())))
}

impl Auth {
    /// Reads the tokens file when auth is enabled (`None` when it is off). Errors name
    /// `server.auth.tokens_file` and the bad entry.
    pub fn from_config(config: &AuthConfig) -> Result<Option<Arc<Auth>>, String> {
        if !config.enabled {
            return Ok(None);
        }
        config.validate()?;
        let path = config.tokens_file.as_deref().ok_or("server.auth.tokens_file: required")?;
        let (set, digest) = read_tokens(path).map_err(|e| format!("server.auth.tokens_file: {e}"))?;
        let metrics = AuthMetrics::default();
        metrics.tokens.set(set.entries.len() as i64);
        metrics.reload_ok.set(1);
        Ok(Some(Arc::new(Auth {
            config: config.clone(),
            tokens: RwLock::new(Arc::new(set)),
            file_digest: parking_lot::Mutex::new(digest),
            metrics,
        })))
    }

    pub fn config(&self) -> &AuthConfig {
        &self.config
    }

    /// Registers the refusal counter and the token file gauges.
    pub fn register_metrics(&self, registry: &mut Registry) {
        registry.register(
            "tarsier_http_auth_refusals",
            "Requests refused by server.auth, by reason",
            self.metrics.refusals.clone(),
        );
        registry.register("tarsier_auth_tokens", "Tokens in the running tokens file", self.metrics.tokens.clone());
        registry.register(
            "tarsier_auth_tokens_last_reload_successful",
            "Whether the last read of server.auth.tokens_file succeeded",
            self.metrics.reload_ok.clone(),
        );
    }

    /// Re-reads the tokens file (blocking); `Ok(true)` when a changed file was applied.
    pub fn reload(&self) -> Result<bool, String> {
        let Some(path) = self.config.tokens_file.as_deref() else { return Ok(false) };
        let result = read_tokens(path);
        self.metrics.reload_ok.set(result.is_ok() as i64);
        let (set, digest) = result?;
        let mut current = self.file_digest.lock();
        if *current == digest {
            return Ok(false);
        }
        *current = digest;
        self.metrics.tokens.set(set.entries.len() as i64);
        *self.tokens.write() = Arc::new(set);
        Ok(true)
    }

    /// Polls the tokens file every `reload_interval` until the [`Auth`] is dropped.
    pub fn spawn_reloader(self: &Arc<Self>) {
        let weak: Weak<Auth> = Arc::downgrade(self);
        let interval = self.config.reload_interval;
        tokio::spawn(async move {
            let mut last_error: Option<String> = None;
            loop {
                tokio::time::sleep(interval).await;
                let Some(auth) = weak.upgrade() else { return };
                let result = tokio::task::spawn_blocking(move || auth.reload()).await;
                match result {
                    Ok(Ok(true)) => {
                        last_error = None;
                        tracing::info!("tokens file changed: new tokens apply");
                    }
                    Ok(Ok(false)) => last_error = None,
                    Ok(Err(e)) => {
                        if last_error.as_ref() != Some(&e) {
                            tracing::error!(error = %e, "reading server.auth.tokens_file failed: the previous tokens stay");
                        }
                        last_error = Some(e);
                    }
                    Err(e) => tracing::error!(error = %e, "tokens file reload task failed"),
                }
            }
        });
    }

    fn find(&self, token: &[u8]) -> Option<Arc<Principal>> {
        let set = Arc::clone(&self.tokens.read());
        set.find(token)
    }
}

/// What a route asks of a token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// No token: health checks and the UI's static files (the login form must load).
    Open,
    /// Any valid token, whatever its roles (Elasticsearch clients' capability probes).
    AnyRole,
    Role(Role),
}

/// The role table: what each route needs, by its route template and method. Anything not named
/// (every query, label, rule, alert, target, status and dashboard read) needs `read`, including
/// paths no route matches, so a caller without a token learns nothing about which exist.
pub fn requirement(method: &Method, route: Option<&str>, public_metrics: bool) -> Need {
    let changes = !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    let Some(route) = route else { return Need::Role(Role::Read) };
    match route {
        "/-/healthy" | "/-/ready" | "/" | "/ui/{*path}" => Need::Open,
        "/metrics" if public_metrics => Need::Open,
        // Process-wide: every tenant's counts and the process's health, not one tenant's data.
        "/metrics" => Need::Role(Role::Metrics),
        "/api/v2/receivers" => Need::Role(Role::Admin),
        "/loki/api/v1/push" | "/api/v1/write" | "/_bulk" | "/{index}/_bulk" => Need::Role(Role::Write),
        "/_template/{name}" | "/_index_template/{name}" | "/_ilm/policy/{name}" if changes => Need::Role(Role::Write),
        "/_template/{name}" | "/_index_template/{name}" | "/_ilm/policy/{name}" | "/_license" => Need::AnyRole,
        "/api/v2/alerts" if changes => Need::Role(Role::Write),
        "/-/reload" | "/api/v1/status/config" => Need::Role(Role::Admin),
        "/api/v2/silences" | "/api/v2/silence/{id}" | "/api/v1/dashboards/{id}" if changes => Need::Role(Role::Admin),
        r if r.starts_with("/api/v1/admin/") => Need::Role(Role::Admin),
        _ => Need::Role(Role::Read),
    }
}

/// The token a request carries: a bearer token, the password of basic auth, or (only for the
/// live tail's websocket, which a browser cannot give headers) the `access_token` parameter.
fn token_of(headers: &HeaderMap, query: Option<&str>, websocket: bool) -> Option<Vec<u8>> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let value = value.as_bytes();
        let (scheme, rest) = match value.iter().position(|b| *b == b' ') {
            Some(i) => (&value[..i], value[i + 1..].trim_ascii()),
            None => (value, &b""[..]),
        };
        if scheme.eq_ignore_ascii_case(b"bearer") {
            return Some(rest.to_vec());
        }
        if scheme.eq_ignore_ascii_case(b"basic") {
            use base64::Engine;
            let decoded = base64::engine::general_purpose::STANDARD.decode(rest).ok()?;
            let colon = decoded.iter().position(|b| *b == b':')?;
            return Some(decoded[colon + 1..].to_vec());
        }
        return None;
    }
    if websocket {
        let query = query?;
        return form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == "access_token")
            .map(|(_, v)| v.into_owned().into_bytes());
    }
    None
}

/// The tenant a request asks for: `X-Scope-OrgID`, or the live tail's `tenant` parameter.
fn asked_tenant(headers: &HeaderMap, query: Option<&str>, websocket: bool) -> Option<String> {
    if let Some(v) = headers.get("x-scope-orgid") {
        return Some(v.to_str().unwrap_or("\u{fffd}").to_string());
    }
    if websocket {
        return form_urlencoded::parse(query?.as_bytes())
            .find(|(k, v)| k == "tenant" && !v.is_empty())
            .map(|(_, v)| v.into_owned());
    }
    None
}

fn names(tenants: &[TenantId]) -> String {
    tenants.iter().map(TenantId::as_str).collect::<Vec<_>>().join(", ")
}

/// The answer to a refused request: Prometheus's JSON error shape, which Grafana, logcli and the
/// UI all show.
fn refuse(auth: &Auth, refusal: Refusal, message: String) -> Response {
    auth.metrics.refusals.get_or_create(&ReasonLabels { reason: refusal.reason() }).inc();
    let status = match refusal {
        Refusal::MissingToken | Refusal::UnknownToken => StatusCode::UNAUTHORIZED,
        Refusal::BadTenant => StatusCode::BAD_REQUEST,
        Refusal::MissingRole | Refusal::ForeignTenant => StatusCode::FORBIDDEN,
    };
    let error_type = if status == StatusCode::BAD_REQUEST { "bad_data" } else { "unauthorized" };
    let body = json!({"status": "error", "errorType": error_type, "error": message});
    let mut response = (status, axum::Json(body)).into_response();
    if status == StatusCode::UNAUTHORIZED {
        // Only the Bearer scheme is advertised: a Basic challenge would make browsers open their
        // own login dialog over the UI's form. Basic credentials are accepted all the same.
        let mut challenge = format!("Bearer realm=\"{}\"", auth.config.realm);
        if refusal == Refusal::UnknownToken {
            challenge.push_str(", error=\"invalid_token\"");
        }
        if let Ok(v) = HeaderValue::from_str(&challenge) {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
    }
    response
}

/// The middleware: with `server.auth` on, checks the token and role of the route, resolves the
/// tenant and writes it into `X-Scope-OrgID` (and the [`Principal`] into the extensions).
pub(crate) async fn enforce(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let Some(auth) = state.services().auth.clone() else { return next.run(req).await };
    let route = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string());
    let need = requirement(req.method(), route.as_deref(), auth.config.public_metrics);
    if need == Need::Open {
        return next.run(req).await;
    }
    let websocket = route.as_deref() == Some("/loki/api/v1/tail");
    let query = req.uri().query().map(str::to_string);
    let Some(token) = token_of(req.headers(), query.as_deref(), websocket) else {
        return refuse(&auth, Refusal::MissingToken, "a token is required: send Authorization: Bearer <token>".into());
    };
    let Some(principal) = auth.find(&token) else {
        return refuse(&auth, Refusal::UnknownToken, "the token is not valid".into());
    };
    match need {
        Need::Role(role) if !principal.has(role) => {
            let message = format!(
                "token {:?} lacks the {} role that {} {} needs",
                principal.name,
                role.as_str(),
                req.method(),
                route.as_deref().unwrap_or(req.uri().path())
            );
            return refuse(&auth, Refusal::MissingRole, message);
        }
        _ => {}
    }
    let tenant = match asked_tenant(req.headers(), query.as_deref(), websocket) {
        None => principal.tenants[0].clone(),
        Some(asked) => match TenantId::new(&asked) {
            Err(e) => return refuse(&auth, Refusal::BadTenant, format!("X-Scope-OrgID: {e}")),
            Ok(t) if principal.tenants.contains(&t) => t,
            Ok(t) => {
                let message = format!(
                    "token {:?} may use tenant(s) {}; the request names {:?}",
                    principal.name,
                    names(&principal.tenants),
                    t.as_str()
                );
                return refuse(&auth, Refusal::ForeignTenant, message);
            }
        },
    };
    match HeaderValue::from_str(tenant.as_str()) {
        Ok(v) => {
            req.headers_mut().insert("x-scope-orgid", v);
        }
        Err(_) => return refuse(&auth, Refusal::BadTenant, "tenant is not a valid header value".into()),
    }
    req.extensions_mut().insert(principal);
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
- name: grafana-a
  token: "aaaaaaaaaaaaaaaaaaaa"
  tenants: [team-a]
  roles: [read]
- name: ops
  token_sha256: "5a9f2f9a6e0b9a0a8e4a6b3c5f3b4b3d1a5e8f2f1b0c9d8e7f6a5b4c3d2e1f00"
  tenants: [team-a, team-b]
  roles: [admin]
"#;

    #[test]
    fn tokens_are_found_by_value_and_by_digest() {
        let set = TokenSet::parse(FILE).unwrap();
        let p = set.find(b"aaaaaaaaaaaaaaaaaaaa").unwrap();
        assert_eq!(p.name, "grafana-a");
        assert!(p.has(Role::Read) && !p.has(Role::Write) && !p.has(Role::Admin));
        assert!(set.find(b"aaaaaaaaaaaaaaaaaaab").is_none());
        let hashed = format!("- name: x\n  token_sha256: \"{}\"\n  tenants: [a]\n  roles: [write]\n", {
            sha256(b"bbbbbbbbbbbbbbbbbbbb").iter().map(|b| format!("{b:02x}")).collect::<String>()
        });
        let set = TokenSet::parse(&hashed).unwrap();
        assert_eq!(set.find(b"bbbbbbbbbbbbbbbbbbbb").unwrap().name, "x");
    }

    #[test]
    fn bad_files_name_the_entry_and_key() {
        let cases = [
            ("- {name: a, tenants: [t], roles: [read]}", "tokens[0]: give exactly one"),
            ("- {name: a, token: short, tenants: [t], roles: [read]}", "tokens[0].token: shorter"),
            ("- {name: a, token_sha256: zz, tenants: [t], roles: [read]}", "tokens[0].token_sha256"),
            ("- {name: a, token: aaaaaaaaaaaaaaaaaaaa, tenants: [], roles: [read]}", "tokens[0].tenants"),
            ("- {name: a, token: aaaaaaaaaaaaaaaaaaaa, tenants: [t], roles: []}", "tokens[0].roles"),
            ("- {name: a, token: aaaaaaaaaaaaaaaaaaaa, tenants: [t], roles: [root]}", "unknown variant"),
            ("- {name: a, token: aaaaaaaaaaaaaaaaaaaa, tenants: [t], roles: [read], x: 1}", "unknown field"),
            (
                "- {name: a, token: aaaaaaaaaaaaaaaaaaaa, tenants: [t], roles: [read]}\n- {name: a, token: bbbbbbbbbbbbbbbbbbbb, tenants: [t], roles: [read]}",
                "tokens[1].name",
            ),
            (
                "- {name: a, token: aaaaaaaaaaaaaaaaaaaa, tenants: [t], roles: [read]}\n- {name: b, token: aaaaaaaaaaaaaaaaaaaa, tenants: [t], roles: [read]}",
                "tokens[1]: the same token",
            ),
        ];
        for (text, want) in cases {
            let err = TokenSet::parse(text).err().unwrap_or_else(|| panic!("{text} parsed"));
            assert!(err.contains(want), "{text}: {err}");
        }
    }

    #[test]
    fn a_changed_file_replaces_the_tokens_and_a_bad_one_keeps_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.yaml");
        std::fs::write(&path, FILE).unwrap();
        let config = AuthConfig { enabled: true, tokens_file: Some(path.clone()), ..AuthConfig::default() };
        let auth = Auth::from_config(&config).unwrap().unwrap();
        assert!(auth.find(b"aaaaaaaaaaaaaaaaaaaa").is_some());
        assert!(!auth.reload().unwrap(), "an unchanged file is not applied again");
        std::fs::write(&path, "- {name: b, token: bbbbbbbbbbbbbbbbbbbb, tenants: [t], roles: [write]}\n").unwrap();
        assert!(auth.reload().unwrap());
        assert!(auth.find(b"aaaaaaaaaaaaaaaaaaaa").is_none());
        assert_eq!(auth.find(b"bbbbbbbbbbbbbbbbbbbb").unwrap().name, "b");
        std::fs::write(&path, "- {name: b}\n").unwrap();
        assert!(auth.reload().unwrap_err().contains("tokens.yaml"));
        assert!(auth.find(b"bbbbbbbbbbbbbbbbbbbb").is_some(), "a bad file keeps the running tokens");
        assert_eq!(auth.metrics.reload_ok.get(), 0);
        std::fs::remove_file(&path).unwrap();
        let err = Auth::from_config(&config).err().unwrap();
        assert!(err.starts_with("server.auth.tokens_file"), "{err}");
    }

    #[test]
    fn config_validation_names_the_key() {
        assert!(AuthConfig::default().validate().is_ok());
        let on = AuthConfig { enabled: true, ..AuthConfig::default() };
        assert!(on.validate().unwrap_err().starts_with("server.auth.tokens_file"));
    }

    #[test]
    fn the_role_table() {
        let need = |m: Method, r: &str| requirement(&m, Some(r), false);
        assert_eq!(need(Method::GET, "/-/healthy"), Need::Open);
        assert_eq!(need(Method::GET, "/ui/{*path}"), Need::Open);
        assert_eq!(need(Method::GET, "/metrics"), Need::Role(Role::Metrics));
        assert_eq!(need(Method::GET, "/api/v2/receivers"), Need::Role(Role::Admin));
        assert_eq!(need(Method::GET, "/api/v2/status"), Need::Role(Role::Read));
        assert_eq!(requirement(&Method::GET, Some("/metrics"), true), Need::Open);
        assert_eq!(need(Method::POST, "/loki/api/v1/push"), Need::Role(Role::Write));
        assert_eq!(need(Method::POST, "/loki/api/v1/query_range"), Need::Role(Role::Read));
        assert_eq!(need(Method::POST, "/api/v2/alerts"), Need::Role(Role::Write));
        assert_eq!(need(Method::GET, "/api/v2/alerts"), Need::Role(Role::Read));
        assert_eq!(need(Method::POST, "/api/v2/silences"), Need::Role(Role::Admin));
        assert_eq!(need(Method::DELETE, "/api/v2/silence/{id}"), Need::Role(Role::Admin));
        assert_eq!(need(Method::PUT, "/api/v1/dashboards/{id}"), Need::Role(Role::Admin));
        assert_eq!(need(Method::GET, "/api/v1/dashboards/{id}"), Need::Role(Role::Read));
        assert_eq!(need(Method::POST, "/-/reload"), Need::Role(Role::Admin));
        assert_eq!(need(Method::POST, "/api/v1/admin/snapshot"), Need::Role(Role::Admin));
        assert_eq!(need(Method::GET, "/_license"), Need::AnyRole);
        assert_eq!(requirement(&Method::GET, None, true), Need::Role(Role::Read));
    }

    #[test]
    fn tokens_come_from_bearer_basic_or_the_tail_parameter() {
        use base64::Engine;
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer  tok"));
        assert_eq!(token_of(&h, None, false).unwrap(), b"tok");
        let basic = base64::engine::general_purpose::STANDARD.encode("tenant:se:cret");
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(&format!("basic {basic}")).unwrap());
        assert_eq!(token_of(&h, None, false).unwrap(), b"se:cret");
        assert_eq!(token_of(&HeaderMap::new(), Some("access_token=x%2By"), true).unwrap(), b"x+y");
        assert!(token_of(&HeaderMap::new(), Some("access_token=x"), false).is_none());
    }
}
