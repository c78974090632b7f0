//! TLS from PEM files for every Tarsier endpoint: the clients (scrape jobs, the Kubernetes API,
//! the agent's shipping to the server) and, through `query-ui`, the server's listeners. One place
//! reads certificates and keys so every endpoint fails with the same messages and reloads the same
//! way. rustls with the ring provider, never OpenSSL.
//!
//! A certificate and its key are a [`KeyPairFiles`]: read once up front (a broken pair is a
//! configuration error), then a poll task re-reads them whenever either file's identity (inode,
//! size, modification time) changes, which covers cert-manager renewing a Secret and the kubelet
//! swapping the mount's `..data` symlink, and swaps the new pair in for the next handshake. A new
//! pair that does not load (half written, key not matching the certificate) is refused with a log
//! line and `tarsier_tls_certificate_reloads_total{result="failure"}`; the old pair keeps serving.

use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, RwLock, Weak};
use std::time::{Duration, SystemTime};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, SignatureScheme};
use serde::{Deserialize, Serialize};

/// How often certificate files are checked for a change. A Secret update reaches a pod's mount
/// after the kubelet's sync period (about a minute), so a few seconds more is not noticed; two
/// `stat`s per pair every few seconds cost nothing.
pub const RELOAD_CHECK_INTERVAL: Duration = Duration::from_secs(2);

/// Prometheus's `tls_config:` of a client (scrape job, Kubernetes API, the agent's shipping).
/// `ca_file` is read when the client is built; the client certificate is re-read when it changes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM CA certificates that verify the server; when set they replace the built-in roots.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate (chain) for mutual TLS; needs `key_file`.
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file`.
    pub key_file: Option<PathBuf>,
    /// Name the server's certificate must be valid for, instead of the host of its address.
    pub server_name: Option<String>,
    /// Accept any certificate (signatures are still checked). For tests only.
    pub insecure_skip_verify: bool,
}

impl TlsConfig {
    /// Checks what serde cannot; errors start with `key` (the path of this `tls_config`).
    pub fn validate(&self, key: &str) -> Result<(), String> {
        if self.cert_file.is_some() != self.key_file.is_some() {
            return Err(format!("{key}: cert_file and key_file must be configured together"));
        }
        if let Some(name) = &self.server_name
            && ServerName::try_from(name.as_str()).is_err()
        {
            return Err(format!("{key}.server_name {name:?} is not a valid DNS name or IP address"));
        }
        Ok(())
    }

    /// The rustls client configuration: the configured roots (or the web PKI's), the name check,
    /// and the client certificate from a reloading [`KeyPairFiles`]. ALPN offers HTTP/1.1 only.
    pub fn client_config(&self) -> Result<rustls::ClientConfig, String> {
        let provider = provider();
        let mut roots = rustls::RootCertStore::empty();
        match &self.ca_file {
            Some(path) => {
                for cert in read_ca_file(path)? {
                    roots.add(cert).map_err(|e| format!("ca_file {}: {e}", path.display()))?;
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        let webpki = if self.insecure_skip_verify {
            None
        } else {
            let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(|e| format!("building the certificate verifier: {e}"))?;
            Some(verifier)
        };
        let server_name = match &self.server_name {
            Some(name) => Some(ServerName::try_from(name.clone()).map_err(|e| format!("server_name {name:?}: {e}"))?),
            None => None,
        };
        let verifier = Arc::new(NameVerifier { webpki, server_name, provider: provider.clone() });
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let mut config = match (&self.cert_file, &self.key_file) {
            (Some(cert_file), Some(key_file)) => {
                builder.with_client_cert_resolver(Arc::new(KeyPairFiles::load(cert_file, key_file)?))
            }
            _ => builder.with_no_client_auth(),
        };
        if self.cert_file.is_some() {
            // A resumed session carries the identity of the handshake it resumes: without this a
            // renewed client certificate would not be presented until the old session expired.
            config.resumption = rustls::client::Resumption::disabled();
        }
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }
}

pub(crate) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_file(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))
}

/// The certificates of a PEM `ca_file` (at least one).
pub fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    read_certs(path).map_err(|e| format!("ca_file {e}"))
}

/// The certificates of a PEM file (at least one); errors start with the path.
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = read_file(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no PEM certificate found", path.display()));
    }
    Ok(certs)
}

/// Reads a certificate chain and its key and checks that they belong together.
fn load_pair(cert_file: &Path, key_file: &Path) -> Result<CertifiedKey, String> {
    let certs = read_certs(cert_file).map_err(|e| format!("cert_file {e}"))?;
    let key = PrivateKeyDer::from_pem_slice(&read_file(key_file)?)
        .map_err(|e| format!("key_file {}: {e}", key_file.display()))?;
    CertifiedKey::from_der(certs, key, &provider())
        .map_err(|e| format!("cert_file {} and key_file {}: {e}", cert_file.display(), key_file.display()))
}

/// What identifies a file's content without reading it: a symlink swap changes the inode, an
/// in-place rewrite the size or modification time.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Stamp(Option<(u64, u64, SystemTime)>);

impl Stamp {
    fn of(path: &Path) -> Stamp {
        Stamp(std::fs::metadata(path).ok().map(|m| {
            #[cfg(unix)]
            let inode = std::os::unix::fs::MetadataExt::ino(&m);
            #[cfg(not(unix))]
            let inode = 0;
            (inode, m.len(), m.modified().unwrap_or(SystemTime::UNIX_EPOCH))
        }))
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReloadLabels {
    cert_file: String,
    result: &'static str,
}

/// Reloads of every [`KeyPairFiles`] in the process, by certificate file and result.
static RELOADS: LazyLock<Family<ReloadLabels, Counter>> = LazyLock::new(Family::default);

/// Registers `tarsier_tls_certificate_reloads_total` (once per process).
pub fn register_metrics(registry: &mut prometheus_client::registry::Registry) {
    registry.register(
        "tarsier_tls_certificate_reloads",
        "Certificate reloads after the files changed, by cert_file and result (failure: the old pair stays)",
        RELOADS.clone(),
    );
}

/// A certificate and key read from PEM files and re-read when the files change; the current
/// pair is what a TLS server presents ([`rustls::server::ResolvesServerCert`]) or a client
/// authenticates with ([`rustls::client::ResolvesClientCert`]).
#[derive(Clone)]
pub struct KeyPairFiles {
    inner: Arc<Inner>,
}

struct Inner {
    cert_file: PathBuf,
    key_file: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
    /// The files' stamps when they were last read, successfully or not (a broken pair is reported
    /// once, then again only when the files change again).
    seen: Mutex<(Stamp, Stamp)>,
}

impl std::fmt::Debug for KeyPairFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPairFiles")
            .field("cert_file", &self.inner.cert_file)
            .field("key_file", &self.inner.key_file)
            .finish()
    }
}

impl KeyPairFiles {
    /// Reads the pair (an error names the file and the reason) and, inside a tokio runtime,
    /// starts the task that reloads it; the task ends when the last clone is dropped.
    pub fn load(cert_file: &Path, key_file: &Path) -> Result<KeyPairFiles, String> {
        let seen = (Stamp::of(cert_file), Stamp::of(key_file));
        let key = load_pair(cert_file, key_file)?;
        let files = KeyPairFiles {
            inner: Arc::new(Inner {
                cert_file: cert_file.to_path_buf(),
                key_file: key_file.to_path_buf(),
                current: RwLock::new(Arc::new(key)),
                seen: Mutex::new(seen),
            }),
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(poll(Arc::downgrade(&files.inner)));
        }
        Ok(files)
    }

    /// The pair new handshakes use.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.inner.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Re-reads the files if they changed since they were last read; returns whether a new pair
    /// is now in use. Blocking (file system): the poll task runs it on the blocking pool.
    pub fn reload_if_changed(&self) -> bool {
        self.inner.reload_if_changed()
    }
}

impl Inner {
    fn reload_if_changed(&self) -> bool {
        let now = (Stamp::of(&self.cert_file), Stamp::of(&self.key_file));
        {
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            if *seen == now {
                return false;
            }
            *seen = now;
        }
        let cert_file = self.cert_file.display().to_string();
        match load_pair(&self.cert_file, &self.key_file) {
            Ok(key) => {
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(key);
                RELOADS.get_or_create(&ReloadLabels { cert_file: cert_file.clone(), result: "success" }).inc();
                tracing::info!(cert_file = %cert_file, "tls certificate reloaded");
                true
            }
            Err(error) => {
                RELOADS.get_or_create(&ReloadLabels { cert_file: cert_file.clone(), result: "failure" }).inc();
                tracing::error!(cert_file = %cert_file, %error, "tls certificate not reloaded; the previous one stays in use");
                false
            }
        }
    }
}

/// Checks the files every [`RELOAD_CHECK_INTERVAL`] until the pair is dropped.
async fn poll(inner: Weak<Inner>) {
    loop {
        tokio::time::sleep(RELOAD_CHECK_INTERVAL).await;
        let Some(inner) = inner.upgrade() else { return };
        let _ = tokio::task::spawn_blocking(move || inner.reload_if_changed()).await;
    }
}

impl rustls::server::ResolvesServerCert for KeyPairFiles {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

impl rustls::client::ResolvesClientCert for KeyPairFiles {
    fn resolve(&self, _root_hints: &[&[u8]], _schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// The client's certificate check: webpki against the configured roots, for `server_name` when
/// set instead of the host being connected to; with `insecure_skip_verify` (`webpki` is `None`)
/// any certificate is accepted. Handshake signatures are always checked, so the session is at
/// least bound to the presented key.
#[derive(Debug)]
struct NameVerifier {
    webpki: Option<Arc<WebPkiServerVerifier>>,
    server_name: Option<ServerName<'static>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for NameVerifier {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn write_pair(dir: &Path, name: &str) -> (PathBuf, PathBuf, Vec<u8>) {
        let made = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
        let (cert, key) = (dir.join(format!("{name}.crt")), dir.join(format!("{name}.key")));
        std::fs::write(&cert, made.cert.pem()).unwrap();
        std::fs::write(&key, made.key_pair.serialize_pem()).unwrap();
        (cert, key, made.cert.der().to_vec())
    }

    fn reloads(cert_file: &Path, result: &'static str) -> u64 {
        RELOADS.get_or_create(&ReloadLabels { cert_file: cert_file.display().to_string(), result }).get()
    }

    /// The kubelet's way of updating a mounted Secret: new files in a new directory, then the
    /// `..data` symlink renamed over the old one.
    #[cfg(unix)]
    fn swap_data_link(mount: &Path, target: &str) {
        let tmp = mount.join("..data_tmp");
        std::os::unix::fs::symlink(target, &tmp).unwrap();
        std::fs::rename(&tmp, mount.join("..data")).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn a_symlink_swap_is_picked_up_and_a_broken_pair_keeps_the_old_one() {
        let mount = tempfile::tempdir().unwrap();
        let m = mount.path();
        for version in ["v1", "v2", "v3"] {
            std::fs::create_dir(m.join(version)).unwrap();
        }
        let (_, _, first) = write_pair(&m.join("v1"), "tls");
        let (_, _, second) = write_pair(&m.join("v2"), "tls");
        // v3: a certificate with another certificate's key.
        write_pair(&m.join("v3"), "tls");
        std::fs::copy(m.join("v1/tls.key"), m.join("v3/tls.key")).unwrap();
        swap_data_link(m, "v1");
        std::os::unix::fs::symlink("..data/tls.crt", m.join("tls.crt")).unwrap();
        std::os::unix::fs::symlink("..data/tls.key", m.join("tls.key")).unwrap();
        let (cert_file, key_file) = (m.join("tls.crt"), m.join("tls.key"));

        let pair = KeyPairFiles::load(&cert_file, &key_file).unwrap();
        assert_eq!(pair.current().cert[0].as_ref(), first);
        assert!(!pair.reload_if_changed(), "nothing changed");

        swap_data_link(m, "v2");
        assert!(pair.reload_if_changed());
        assert_eq!(pair.current().cert[0].as_ref(), second);
        assert_eq!(reloads(&cert_file, "success"), 1);

        swap_data_link(m, "v3");
        assert!(!pair.reload_if_changed(), "a key of another certificate is refused");
        assert_eq!(pair.current().cert[0].as_ref(), second, "the previous pair keeps serving");
        assert_eq!(reloads(&cert_file, "failure"), 1);
        assert!(!pair.reload_if_changed(), "a broken pair is reported once");
        assert_eq!(reloads(&cert_file, "failure"), 1);

        let err = KeyPairFiles::load(&cert_file, &key_file).unwrap_err();
        assert!(err.contains("cert_file") && err.contains("key_file"), "{err}");
        let err = KeyPairFiles::load(&m.join("nope.crt"), &key_file).unwrap_err();
        assert!(err.starts_with("cert_file reading"), "{err}");
    }

    #[test]
    fn validation_names_the_key() {
        let half = TlsConfig { cert_file: Some("/c".into()), ..Default::default() };
        assert_eq!(
            half.validate("agent.tls_config").unwrap_err(),
            "agent.tls_config: cert_file and key_file must be configured together"
        );
        let bad = TlsConfig { server_name: Some("not a name".into()), ..Default::default() };
        assert!(bad.validate("agent.tls_config").unwrap_err().starts_with("agent.tls_config.server_name"));
        assert!(TlsConfig::default().validate("x").is_ok());
    }
}
