//! Alertmanager's `http_config` for the HTTP receivers (webhook, Slack, Teams, Feishu, DingTalk,
//! WeCom, forwarding): an `Authorization` header (bearer or another scheme, credentials inline,
//! from `${ENV}` or a file), basic auth, `tls_config` and `proxy_url`. Each configured block gets
//! its own `reqwest` client with the header as a sensitive default header, so every request the
//! receiver makes carries it and no log or error ever shows it; receivers without the block share
//! the notifier's client.

use std::time::Duration;

use base64::Engine;
use serde::{Deserialize, Serialize};

use super::config::{Secret, resolve_secret};
use super::tls::TlsConfig;

/// `authorization:` of an `http_config`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Authorization {
    /// The scheme (default `Bearer`).
    #[serde(default, rename = "type")]
    pub type_: Option<String>,
    /// The credentials.
    #[serde(default)]
    pub credentials: Option<Secret>,
    /// A file holding the credentials.
    #[serde(default)]
    pub credentials_file: Option<String>,
}

/// `basic_auth:` of an `http_config`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    /// The user.
    pub username: String,
    /// The password.
    #[serde(default)]
    pub password: Option<Secret>,
    /// A file holding the password.
    #[serde(default)]
    pub password_file: Option<String>,
}

/// `http_config`, as in Alertmanager (Prometheus common config).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// `Authorization: <type> <credentials>`.
    #[serde(default)]
    pub authorization: Option<Authorization>,
    /// `Authorization: Basic ...`.
    #[serde(default)]
    pub basic_auth: Option<BasicAuth>,
    /// Prometheus's older spelling of `authorization: {credentials: ...}`.
    #[serde(default)]
    pub bearer_token: Option<Secret>,
    /// Prometheus's older spelling of `authorization: {credentials_file: ...}`.
    #[serde(default)]
    pub bearer_token_file: Option<String>,
    /// CA, client certificate, verification.
    #[serde(default)]
    pub tls_config: TlsConfig,
    /// An HTTP(S) proxy for every request of the receiver.
    #[serde(default)]
    pub proxy_url: Option<String>,
    /// Follow 3xx answers (default true).
    #[serde(default = "super::config::yes")]
    pub follow_redirects: bool,
}

/// Requests of an `http_config` client give up after this (the notifier's default).
const TIMEOUT: Duration = Duration::from_secs(10);

impl HttpConfig {
    /// The `Authorization` header value, if any; errors name the key.
    fn authorization(&self) -> Result<Option<Secret>, String> {
        let bearer = resolve_secret(&self.bearer_token, &self.bearer_token_file, "bearer_token")?;
        let set = [self.authorization.is_some(), self.basic_auth.is_some(), bearer.is_some()];
        if set.iter().filter(|s| **s).count() > 1 {
            return Err("at most one of authorization, basic_auth and bearer_token may be set".into());
        }
        if let Some(token) = bearer {
            return Ok(Some(Secret::new(format!("Bearer {}", token.expose()))));
        }
        if let Some(a) = &self.authorization {
            let scheme = a.type_.clone().unwrap_or_else(|| "Bearer".into());
            if scheme.eq_ignore_ascii_case("basic") {
                return Err("authorization.type: use basic_auth for Basic".into());
            }
            let creds = resolve_secret(&a.credentials, &a.credentials_file, "authorization.credentials")?
                .ok_or("authorization.credentials: missing (set credentials or credentials_file)")?;
            return Ok(Some(Secret::new(format!("{scheme} {}", creds.expose()))));
        }
        if let Some(b) = &self.basic_auth {
            let pass = resolve_secret(&b.password, &b.password_file, "basic_auth.password")?.unwrap_or_default();
            let token = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", b.username, pass.expose()));
            return Ok(Some(Secret::new(format!("Basic {token}"))));
        }
        Ok(None)
    }

    /// The receiver's own client; errors name the key below `http_config`.
    pub(crate) fn client(&self) -> Result<reqwest::Client, String> {
        let wrap = |e: String| format!("http_config.{e}");
        let mut b =
            reqwest::Client::builder().timeout(TIMEOUT).user_agent(concat!("tarsier/", env!("CARGO_PKG_VERSION")));
        if let Some(auth) = self.authorization().map_err(wrap)? {
            let mut v = reqwest::header::HeaderValue::from_str(auth.expose())
                .map_err(|_| wrap("authorization: the credentials are not a valid header value".into()))?;
            v.set_sensitive(true);
            b = b.default_headers([(reqwest::header::AUTHORIZATION, v)].into_iter().collect());
        }
        let tls = self.tls_config.load().map_err(|e| wrap(format!("tls_config.{e}")))?;
        if tls.server_name.is_some() {
            return Err(wrap(
                "tls_config.server_name: not supported by HTTP receivers; use that name in the URL".into(),
            ));
        }
        if let Some(ca) = &tls.ca {
            let certs =
                reqwest::Certificate::from_pem_bundle(ca).map_err(|e| wrap(format!("tls_config.ca_file: {e}")))?;
            b = b.tls_built_in_root_certs(false);
            for c in certs {
                b = b.add_root_certificate(c);
            }
        }
        if let Some((cert, key)) = &tls.identity {
            let pem = [cert.as_slice(), b"\n", key.as_slice()].concat();
            let id = reqwest::Identity::from_pem(&pem).map_err(|e| wrap(format!("tls_config.cert_file: {e}")))?;
            b = b.identity(id);
        }
        if tls.insecure_skip_verify {
            b = b.danger_accept_invalid_certs(true);
        }
        if let Some(p) = &self.proxy_url {
            b = b.proxy(reqwest::Proxy::all(p).map_err(|e| wrap(format!("proxy_url: {e}")))?);
        }
        if !self.follow_redirects {
            b = b.redirect(reqwest::redirect::Policy::none());
        }
        b.build().map_err(|e| wrap(format!("building the client: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(yaml: &str) -> HttpConfig {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    #[test]
    fn header_values_and_key_errors() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pw");
        std::fs::write(&f, "hunter2\n").unwrap();
        let basic = cfg(&format!("basic_auth: {{username: am, password_file: '{}'}}", f.display()));
        assert_eq!(basic.authorization().unwrap().unwrap().expose(), "Basic YW06aHVudGVyMg==");
        let bearer = cfg(&format!("authorization: {{credentials_file: '{}'}}", f.display()));
        assert_eq!(bearer.authorization().unwrap().unwrap().expose(), "Bearer hunter2");
        let custom = cfg("authorization: {type: Token, credentials: abc}");
        assert_eq!(custom.authorization().unwrap().unwrap().expose(), "Token abc");
        let both = cfg("authorization: {credentials: a}\nbasic_auth: {username: u}");
        assert!(both.client().unwrap_err().starts_with("http_config.at most one of"));
        let basic_type = cfg("authorization: {type: basic, credentials: a}");
        assert!(basic_type.client().unwrap_err().starts_with("http_config.authorization.type"));
        let name = cfg("tls_config: {server_name: x}");
        assert!(name.client().unwrap_err().starts_with("http_config.tls_config.server_name"));
        let proxy = cfg("proxy_url: 'not a url'");
        assert!(proxy.client().unwrap_err().starts_with("http_config.proxy_url"));
    }
}
