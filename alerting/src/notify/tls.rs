//! Alertmanager's `tls_config` block (Prometheus common config): which CA to trust, the name to
//! verify, an optional client certificate. One struct, checked once at validation, shared by the
//! email receiver (lettre's rustls parameters) and the HTTP receivers' `http_config`, so a block
//! copied from `alertmanager.yml` means the same thing for both.

use serde::{Deserialize, Serialize};

/// `tls_config`, as in Alertmanager. `ca_file` replaces the built-in web roots (as Go's `RootCAs`
/// does); without it the Mozilla roots are trusted.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file with the CA certificates to trust.
    #[serde(default)]
    pub ca_file: Option<String>,
    /// PEM client certificate (with `key_file`) for servers that ask for one.
    #[serde(default)]
    pub cert_file: Option<String>,
    /// PEM private key of `cert_file`.
    #[serde(default)]
    pub key_file: Option<String>,
    /// The name the server's certificate must carry (default: the host connected to).
    #[serde(default)]
    pub server_name: Option<String>,
    /// Accept any certificate and name: for tests and self-signed lab servers only.
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// The files of a [`TlsConfig`], read and checked.
#[derive(Clone, Debug, Default)]
pub(crate) struct TlsFiles {
    /// The CA bundle, PEM.
    pub ca: Option<Vec<u8>>,
    /// Client certificate and key, PEM.
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
    /// The name to verify.
    pub server_name: Option<String>,
    /// Skip verification.
    pub insecure_skip_verify: bool,
}

impl TlsConfig {
    /// Reads the files; errors name the key (`ca_file: reading /x: ...`).
    pub(crate) fn load(&self) -> Result<TlsFiles, String> {
        let read = |key: &str, path: &str| std::fs::read(path).map_err(|e| format!("{key}: reading {path}: {e}"));
        let ca = match &self.ca_file {
            Some(p) => {
                let pem = read("ca_file", p)?;
                if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
                    return Err(format!("ca_file: {p} holds no PEM certificate"));
                }
                Some(pem)
            }
            None => None,
        };
        let identity = match (&self.cert_file, &self.key_file) {
            (Some(c), Some(k)) => Some((read("cert_file", c)?, read("key_file", k)?)),
            (None, None) => None,
            (Some(_), None) => return Err("key_file: missing while cert_file is set".into()),
            (None, Some(_)) => return Err("cert_file: missing while key_file is set".into()),
        };
        Ok(TlsFiles {
            ca,
            identity,
            server_name: self.server_name.clone().filter(|s| !s.is_empty()),
            insecure_skip_verify: self.insecure_skip_verify,
        })
    }
}

impl TlsFiles {
    /// lettre's TLS parameters for an SMTP connection to `host`.
    pub(crate) fn smtp(&self, host: &str) -> Result<lettre::transport::smtp::client::TlsParameters, String> {
        use lettre::transport::smtp::client::{Certificate, CertificateStore, Identity, TlsParameters};
        let name = self.server_name.clone().unwrap_or_else(|| host.to_string());
        let mut b = TlsParameters::builder(name);
        if let Some(ca) = &self.ca {
            let cert = Certificate::from_pem(ca).map_err(|e| format!("ca_file: {e}"))?;
            b = b.certificate_store(CertificateStore::None).add_root_certificate(cert);
        }
        if let Some((cert, key)) = &self.identity {
            b = b.identify_with(Identity::from_pem(cert, key).map_err(|e| format!("cert_file: {e}"))?);
        }
        if self.insecure_skip_verify {
            b = b.dangerous_accept_invalid_certs(true).dangerous_accept_invalid_hostnames(true);
        }
        b.build_rustls().map_err(|e| format!("tls_config: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_key() {
        let c = TlsConfig { ca_file: Some("/nonexistent/ca.pem".into()), ..Default::default() };
        assert!(c.load().unwrap_err().starts_with("ca_file: reading /nonexistent/ca.pem"));
        let c = TlsConfig { cert_file: Some("/x".into()), ..Default::default() };
        assert_eq!(c.load().unwrap_err(), "key_file: missing while cert_file is set");
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ca.pem");
        std::fs::write(&p, "not a certificate").unwrap();
        let c = TlsConfig { ca_file: Some(p.display().to_string()), ..Default::default() };
        assert!(c.load().unwrap_err().contains("holds no PEM certificate"));
    }
}
