//! How a scrape job talks HTTP: Prometheus's `basic_auth`, `authorization`, `bearer_token_file`
//! and `tls_config` keys, one reqwest client per job (TLS settings live in the client), and the
//! credentials read from their files at every scrape so a rotated secret is picked up without a
//! restart, as Prometheus does. TLS is rustls (ring provider), never OpenSSL.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use serde::{Deserialize, Serialize};

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

/// `tls_config:` of a scrape job; every path is read when the collector starts.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM CA certificates that verify the targets; when set they replace the built-in roots.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate (chain) for mutual TLS; needs `key_file`.
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file`.
    pub key_file: Option<PathBuf>,
    /// Name the target's certificate must be valid for, instead of the host of its address.
    pub server_name: Option<String>,
    /// Accept any certificate (signatures are still checked). For tests only.
    pub insecure_skip_verify: bool,
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
        let tls = self.tls;
        if tls.cert_file.is_some() != tls.key_file.is_some() {
            return Err(format!("{key}.tls_config: cert_file and key_file must be configured together"));
        }
        if let Some(name) = &tls.server_name
            && ServerName::try_from(name.as_str()).is_err()
        {
            return Err(format!("{key}.tls_config.server_name {name:?} is not a valid DNS name or IP address"));
        }
        Ok(())
    }

    /// The job's client: rustls with the job's roots, client certificate and name checks.
    pub(crate) fn client(&self, key: &str) -> Result<reqwest::Client, String> {
        let tls = tls_client_config(self.tls).map_err(|e| format!("{key}.tls_config: {e}"))?;
        reqwest::Client::builder()
            .user_agent(concat!("tarsier-collector/", env!("CARGO_PKG_VERSION")))
            .use_preconfigured_tls(tls)
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

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_pem_file(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))
}

/// The certificates of a PEM `ca_file` (at least one).
pub(crate) fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = read_pem_file(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("ca_file {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("ca_file {}: no PEM certificate found", path.display()));
    }
    Ok(certs)
}

fn tls_client_config(tls: &TlsConfig) -> Result<rustls::ClientConfig, String> {
    let provider = provider();
    let mut roots = rustls::RootCertStore::empty();
    match &tls.ca_file {
        Some(path) => {
            for cert in read_ca_file(path)? {
                roots.add(cert).map_err(|e| format!("ca_file {}: {e}", path.display()))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let webpki = if tls.insecure_skip_verify {
        None
    } else {
        let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|e| format!("building the certificate verifier: {e}"))?;
        Some(verifier)
    };
    let server_name = match &tls.server_name {
        Some(name) => Some(ServerName::try_from(name.clone()).map_err(|e| format!("server_name {name:?}: {e}"))?),
        None => None,
    };
    let verifier = Arc::new(JobVerifier { webpki, server_name, provider: provider.clone() });
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match (&tls.cert_file, &tls.key_file) {
        (Some(cert_file), Some(key_file)) => {
            let pem = read_pem_file(cert_file)?;
            let certs = CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("cert_file {}: {e}", cert_file.display()))?;
            let key = PrivateKeyDer::from_pem_slice(&read_pem_file(key_file)?)
                .map_err(|e| format!("key_file {}: {e}", key_file.display()))?;
            builder.with_client_auth_cert(certs, key).map_err(|e| format!("cert_file/key_file: {e}"))?
        }
        _ => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The job's certificate check: webpki against the job's roots, for `server_name` when set
/// instead of the host being connected to; with `insecure_skip_verify` (`webpki` is `None`) any
/// certificate is accepted. Handshake signatures are always checked, so the session is at least
/// bound to the presented key.
#[derive(Debug)]
struct JobVerifier {
    webpki: Option<Arc<WebPkiServerVerifier>>,
    server_name: Option<ServerName<'static>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for JobVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match &self.webpki {
            Some(webpki) => {
                let name = self.server_name.as_ref().unwrap_or(server_name);
                webpki.verify_server_cert(end_entity, intermediates, name, ocsp_response, now)
            }
            None => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
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
        assert!(err.starts_with("collector.scrape_configs[0].tls_config: reading /nonexistent/ca.pem"), "{err}");
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
