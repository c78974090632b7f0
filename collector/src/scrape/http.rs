//! How a scrape job talks HTTP: Prometheus's `basic_auth`, `authorization`, `bearer_token_file`
//! and `tls_config` keys, one reqwest client per job (TLS settings live in the client), and the
//! credentials read from their files at every scrape so a rotated secret is picked up without a
//! restart, as Prometheus does. TLS (`tls_config`) is [`crate::tls`]'s: the client certificate is
//! re-read when its files change.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use crate::tls::TlsConfig;
pub(crate) use crate::tls::read_ca_file;

/// `basic_auth:` of a scrape job.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BasicAuth {
    /// User name sent with every scrape.
    pub username: String,
    /// Password inline (prefer `password_file`).
    pub password: Option<String>,
    /// File holding the password (surrounding whitespace trimmed), read at every scrape.
    pub password_file: Option<PathBuf>,
}

/// `authorization:` of a scrape job: an `Authorization: <type> <credentials>` header.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Authorization {
    /// The scheme, `Bearer` unless set.
    #[serde(rename = "type")]
    pub kind: String,
    /// Credentials inline (prefer `credentials_file`).
    pub credentials: Option<String>,
    /// File holding the credentials (surrounding whitespace trimmed), read at every scrape.
    pub credentials_file: Option<PathBuf>,
}

impl Default for Authorization {
    fn default() -> Self {
        Authorization { kind: "Bearer".into(), credentials: None, credentials_file: None }
    }
}

/// The HTTP settings of one job, as they sit in its `scrape_config`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct HttpSettings<'a> {
    pub basic_auth: Option<&'a BasicAuth>,
    pub authorization: Option<&'a Authorization>,
    pub bearer_token_file: Option<&'a Path>,
    pub tls: &'a TlsConfig,
}

impl HttpSettings<'_> {
    /// Checks what serde cannot; errors start with the offending key below `key`.
    pub(crate) fn validate(&self, key: &str) -> Result<(), String> {
        let schemes = [self.basic_auth.is_some(), self.authorization.is_some(), self.bearer_token_file.is_some()];
        if schemes.iter().filter(|s| **s).count() > 1 {
            return Err(format!(
                "{key}: at most one of basic_auth, authorization and bearer_token_file may be configured"
            ));
        }
        if let Some(basic) = self.basic_auth {
            if basic.password.is_some() && basic.password_file.is_some() {
                return Err(format!("{key}.basic_auth: at most one of password and password_file may be configured"));
            }
            if basic.username.is_empty() {
                return Err(format!("{key}.basic_auth.username must not be empty"));
            }
        }
        if let Some(auth) = self.authorization {
            if auth.credentials.is_some() && auth.credentials_file.is_some() {
                return Err(format!(
                    "{key}.authorization: at most one of credentials and credentials_file may be configured"
                ));
            }
            if auth.kind.eq_ignore_ascii_case("basic") {
                return Err(format!("{key}.authorization.type: use basic_auth for Basic authorization"));
            }
            if auth.kind.is_empty() || auth.kind.contains(char::is_whitespace) {
                return Err(format!("{key}.authorization.type {:?} is not a valid scheme", auth.kind));
            }
        }
        self.tls.validate(&format!("{key}.tls_config"))?;
        Ok(())
    }

    /// The job's client: rustls with the job's roots, client certificate and name checks.
    pub(crate) fn client(&self, key: &str) -> Result<reqwest::Client, String> {
        let tls = self.tls.client_config().map_err(|e| format!("{key}.tls_config: {e}"))?;
        reqwest::Client::builder()
            .user_agent(concat!("tarsier-collector/", env!("CARGO_PKG_VERSION")))
            .use_preconfigured_tls(tls)
            // The scrape loop asks for gzip and decodes it itself, in one pass into its reused
            // buffer (reqwest's streaming decoder copied every decoded frame once more).
            .no_gzip()
            .build()
            .map_err(|e| format!("{key}: building the HTTP client: {e}"))
    }

    /// The `Authorization` header value for one scrape, reading credential files now.
    pub(crate) fn auth(&self) -> Option<AuthSource> {
        if let Some(basic) = self.basic_auth {
            let password = match (&basic.password, &basic.password_file) {
                (_, Some(file)) => Secret::File(file.clone()),
                (Some(p), None) => Secret::Inline(p.clone()),
                (None, None) => Secret::Inline(String::new()),
            };
            return Some(AuthSource::Basic { username: basic.username.clone(), password });
        }
        let (kind, secret) = if let Some(auth) = self.authorization {
            let secret = match (&auth.credentials, &auth.credentials_file) {
                (_, Some(file)) => Secret::File(file.clone()),
                (Some(c), None) => Secret::Inline(c.clone()),
                (None, None) => Secret::Inline(String::new()),
            };
            (auth.kind.clone(), secret)
        } else {
            ("Bearer".to_string(), Secret::File(self.bearer_token_file?.to_path_buf()))
        };
        Some(AuthSource::Scheme { kind, secret })
    }
}

/// A credential, inline or in a file.
#[derive(Clone, Debug)]
pub(crate) enum Secret {
    Inline(String),
    File(PathBuf),
}

impl Secret {
    async fn read(&self) -> Result<String, String> {
        match self {
            Secret::Inline(s) => Ok(s.clone()),
            Secret::File(path) => tokio::fs::read_to_string(path)
                .await
                .map(|s| s.trim().to_string())
                .map_err(|e| format!("reading {}: {e}", path.display())),
        }
    }
}

/// Where a target's `Authorization` header comes from.
#[derive(Clone, Debug)]
pub(crate) enum AuthSource {
    Basic { username: String, password: Secret },
    Scheme { kind: String, secret: Secret },
}

impl AuthSource {
    /// Adds the header to `request`; fails when a credential file cannot be read.
    pub(crate) async fn apply(&self, request: reqwest::RequestBuilder) -> Result<reqwest::RequestBuilder, String> {
        Ok(match self {
            AuthSource::Basic { username, password } => request.basic_auth(username, Some(password.read().await?)),
            AuthSource::Scheme { kind, secret } => {
                request.header(reqwest::header::AUTHORIZATION, format!("{kind} {}", secret.read().await?))
            }
        })
    }
}

/// An error with its causes (`error sending request: ...: invalid peer certificate: UnknownIssuer`),
/// since reqwest's own message hides the TLS reason an operator needs.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings<'a>(
        basic: Option<&'a BasicAuth>,
        auth: Option<&'a Authorization>,
        bearer: Option<&'a Path>,
        tls: &'a TlsConfig,
    ) -> HttpSettings<'a> {
        HttpSettings { basic_auth: basic, authorization: auth, bearer_token_file: bearer, tls }
    }

    #[test]
    fn validation_names_conflicting_keys() {
        let tls = TlsConfig::default();
        let basic = BasicAuth { username: "u".into(), password: Some("p".into()), password_file: None };
        let auth = Authorization::default();
        let err = settings(Some(&basic), Some(&auth), None, &tls).validate("job").unwrap_err();
        assert!(err.contains("at most one of basic_auth, authorization"), "{err}");
        let both = BasicAuth { password_file: Some("/p".into()), ..basic.clone() };
        assert!(settings(Some(&both), None, None, &tls).validate("job").unwrap_err().starts_with("job.basic_auth"));
        let basic_scheme = Authorization { kind: "Basic".into(), ..Default::default() };
        let err = settings(None, Some(&basic_scheme), None, &tls).validate("job").unwrap_err();
        assert!(err.starts_with("job.authorization.type"), "{err}");
        let half = TlsConfig { cert_file: Some("/c".into()), ..Default::default() };
        let err = settings(None, None, None, &half).validate("job").unwrap_err();
        assert!(err.starts_with("job.tls_config: cert_file and key_file"), "{err}");
        let bad_name = TlsConfig { server_name: Some("not a name".into()), ..Default::default() };
        assert!(settings(None, None, None, &bad_name).validate("job").unwrap_err().contains("server_name"));
        assert!(settings(Some(&basic), None, None, &tls).validate("job").is_ok());
    }

    #[test]
    fn missing_tls_files_are_named() {
        let tls = TlsConfig { ca_file: Some("/nonexistent/ca.pem".into()), ..Default::default() };
        let err = settings(None, None, None, &tls).client("collector.scrape_configs[0]").unwrap_err();
        assert!(
            err.starts_with("collector.scrape_configs[0].tls_config: ca_file reading /nonexistent/ca.pem"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn credential_files_are_read_per_scrape_and_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "one\n").unwrap();
        let tls = TlsConfig::default();
        let source = settings(None, None, Some(&file), &tls).auth().unwrap();
        let header = |source: AuthSource| async move {
            let request = source.apply(reqwest::Client::new().get("http://x/")).await.unwrap().build().unwrap();
            request.headers()[reqwest::header::AUTHORIZATION].to_str().unwrap().to_string()
        };
        assert_eq!(header(source.clone()).await, "Bearer one");
        std::fs::write(&file, "  two  ").unwrap();
        assert_eq!(header(source.clone()).await, "Bearer two", "a rotated token is used by the next scrape");
        std::fs::remove_file(&file).unwrap();
        let err = source.apply(reqwest::Client::new().get("http://x/")).await.unwrap_err();
        assert!(err.contains("token"), "{err}");
    }
}
