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
//! CA bundles reload the same way: a client's `ca_file` ([`TlsConfig::client_config`]) and a
//! listener's client CA ([`ClientCaFiles`]) are re-read when they change, new handshakes verify
//! against the new roots, and a bundle that does not load keeps the old roots.

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
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use serde::{Deserialize, Serialize};

/// How often certificate files are checked for a change. A Secret update reaches a pod's mount
/// after the kubelet's sync period (about a minute), so a few seconds more is not noticed; two
/// `stat`s per pair every few seconds cost nothing.
pub const RELOAD_CHECK_INTERVAL: Duration = Duration::from_secs(2);

/// Prometheus's `tls_config:` of a client (scrape job, Kubernetes API, the agent's shipping).
/// `ca_file` and the client certificate are re-read when they change.
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
        let webpki = match (&self.ca_file, self.insecure_skip_verify) {
            (_, true) => None,
            (Some(path), false) => Some(Roots::Files(Watched::load(vec![path.clone()], "ca", server_verifier)?)),
            (None, false) => {
                let mut roots = rustls::RootCertStore::empty();
                roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
                let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .map_err(|e| format!("building the certificate verifier: {e}"))?;
                Some(Roots::Fixed(verifier))
            }
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

/// The roots of a PEM CA bundle (at least one certificate, each a valid CA).
fn roots_of(path: &Path) -> Result<Arc<rustls::RootCertStore>, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in read_ca_file(path)? {
        roots.add(cert).map_err(|e| format!("ca_file {}: {e}", path.display()))?;
    }
    Ok(Arc::new(roots))
}

/// A client's server-certificate verifier from `files[0]`, a `ca_file`.
fn server_verifier(files: &[PathBuf]) -> Result<Arc<WebPkiServerVerifier>, String> {
    WebPkiServerVerifier::builder_with_provider(roots_of(&files[0])?, provider())
        .build()
        .map_err(|e| format!("ca_file {}: {e}", files[0].display()))
}

/// A listener's client-certificate verifier from `files[0]`, a client CA bundle: a client
/// certificate is required.
fn client_verifier(files: &[PathBuf]) -> Result<Arc<dyn ClientCertVerifier>, String> {
    WebPkiClientVerifier::builder_with_provider(roots_of(&files[0])?, provider())
        .build()
        .map_err(|e| format!("ca_file {}: {e}", files[0].display()))
}

/// [`client_verifier`] that also lets clients without a certificate through.
fn optional_client_verifier(files: &[PathBuf]) -> Result<Arc<dyn ClientCertVerifier>, String> {
    WebPkiClientVerifier::builder_with_provider(roots_of(&files[0])?, provider())
        .allow_unauthenticated()
        .build()
        .map_err(|e| format!("ca_file {}: {e}", files[0].display()))
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
        "Certificate and CA bundle reloads after the files changed, by cert_file (the CA file for a bundle) and result (failure: the old one stays)",
        RELOADS.clone(),
    );
}

/// A value read from files and read again when their stamps change (see the module doc).
struct Watched<T> {
    files: Vec<PathBuf>,
    /// `certificate` or `ca`, for log lines.
    what: &'static str,
    load: fn(&[PathBuf]) -> Result<T, String>,
    current: RwLock<T>,
    /// The files' stamps when they were last read, successfully or not (a broken file is reported
    /// once, then again only when the files change again).
    seen: Mutex<Vec<Stamp>>,
}

impl<T> std::fmt::Debug for Watched<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watched").field("files", &self.files).finish()
    }
}

impl<T: Clone + Send + Sync + 'static> Watched<T> {
    /// Reads the files (an error names the file and the reason) and, inside a tokio runtime,
    /// starts the task that reloads them; the task ends when the last reference is dropped.
    fn load(
        files: Vec<PathBuf>,
        what: &'static str,
        load: fn(&[PathBuf]) -> Result<T, String>,
    ) -> Result<Arc<Self>, String> {
        let seen = files.iter().map(|f| Stamp::of(f)).collect();
        let value = load(&files)?;
        let watched = Arc::new(Watched { files, what, load, current: RwLock::new(value), seen: Mutex::new(seen) });
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(poll(Arc::downgrade(&watched)));
        }
        Ok(watched)
    }

    fn current(&self) -> T {
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Re-reads the files if they changed since they were last read; returns whether a new value
    /// is now in use. Blocking (file system): the poll task runs it on the blocking pool.
    fn reload_if_changed(&self) -> bool {
        let now: Vec<Stamp> = self.files.iter().map(|f| Stamp::of(f)).collect();
        {
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            if *seen == now {
                return false;
            }
            *seen = now;
        }
        let (file, what) = (self.files[0].display().to_string(), self.what);
        match (self.load)(&self.files) {
            Ok(value) => {
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = value;
                RELOADS.get_or_create(&ReloadLabels { cert_file: file.clone(), result: "success" }).inc();
                tracing::info!(file = %file, what, "tls files reloaded");
                true
            }
            Err(error) => {
                RELOADS.get_or_create(&ReloadLabels { cert_file: file.clone(), result: "failure" }).inc();
                tracing::error!(file = %file, what, %error, "tls files not reloaded; the previous ones stay in use");
                false
            }
        }
    }
}

/// Checks the files every [`RELOAD_CHECK_INTERVAL`] until they are dropped.
async fn poll<T: Clone + Send + Sync + 'static>(watched: Weak<Watched<T>>) {
    loop {
        tokio::time::sleep(RELOAD_CHECK_INTERVAL).await;
        let Some(watched) = watched.upgrade() else { return };
        let _ = tokio::task::spawn_blocking(move || watched.reload_if_changed()).await;
    }
}

/// A certificate and key read from PEM files and re-read when the files change; the current
/// pair is what a TLS server presents ([`rustls::server::ResolvesServerCert`]) or a client
/// authenticates with ([`rustls::client::ResolvesClientCert`]).
#[derive(Clone)]
pub struct KeyPairFiles {
    inner: Arc<Watched<Arc<CertifiedKey>>>,
}

impl std::fmt::Debug for KeyPairFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPairFiles").field("files", &self.inner.files).finish()
    }
}

impl KeyPairFiles {
    /// Reads the pair (an error names the file and the reason) and, inside a tokio runtime,
    /// starts the task that reloads it; the task ends when the last clone is dropped.
    pub fn load(cert_file: &Path, key_file: &Path) -> Result<KeyPairFiles, String> {
        let files = vec![cert_file.to_path_buf(), key_file.to_path_buf()];
        let inner = Watched::load(files, "certificate", |f| load_pair(&f[0], &f[1]).map(Arc::new))?;
        Ok(KeyPairFiles { inner })
    }

    /// The pair new handshakes use.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.inner.current()
    }

    /// Re-reads the files if they changed since they were last read; returns whether a new pair
    /// is now in use. Blocking (file system): the poll task runs it on the blocking pool.
    pub fn reload_if_changed(&self) -> bool {
        self.inner.reload_if_changed()
    }
}

/// A listener's client CA bundle (`server.tls.client_ca_file`), re-read when the file changes:
/// new handshakes verify client certificates against the current roots, and a client certificate
/// is required. No CA names are sent as hints (the roots can change under a running listener);
/// clients with one certificate, as Tarsier's agents, do not need them.
#[derive(Clone, Debug)]
pub struct ClientCaFiles {
    inner: Arc<Watched<Arc<dyn ClientCertVerifier>>>,
}

impl ClientCaFiles {
    /// Reads the bundle (errors start with `ca_file` and the path) and starts its reload task.
    pub fn load(ca_file: &Path) -> Result<ClientCaFiles, String> {
        Ok(ClientCaFiles { inner: Watched::load(vec![ca_file.to_path_buf()], "ca", client_verifier)? })
    }

    /// As [`ClientCaFiles::load`], but a client may also connect without a certificate (the
    /// listener then authenticates it otherwise, e.g. by a bearer token); one it presents must
    /// still be signed by the bundle.
    pub fn load_optional(ca_file: &Path) -> Result<ClientCaFiles, String> {
        Ok(ClientCaFiles { inner: Watched::load(vec![ca_file.to_path_buf()], "ca", optional_client_verifier)? })
    }

    /// Re-reads the bundle if it changed; returns whether new roots are now in use.
    pub fn reload_if_changed(&self) -> bool {
        self.inner.reload_if_changed()
    }
}

impl ClientCertVerifier for ClientCaFiles {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.current().client_auth_mandatory()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.inner.current().verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.current().verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.current().verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.current().supported_verify_schemes()
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
    webpki: Option<Roots>,
    server_name: Option<ServerName<'static>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

/// The roots a client verifies servers against: the web PKI's, or a `ca_file` re-read when it
/// changes.
#[derive(Debug)]
enum Roots {
    Fixed(Arc<WebPkiServerVerifier>),
    Files(Arc<Watched<Arc<WebPkiServerVerifier>>>),
}

impl Roots {
    fn current(&self) -> Arc<WebPkiServerVerifier> {
        match self {
            Roots::Fixed(v) => Arc::clone(v),
            Roots::Files(w) => w.current(),
        }
    }
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
            Some(roots) => {
                let name = self.server_name.as_ref().unwrap_or(server_name);
                roots.current().verify_server_cert(end_entity, intermediates, name, ocsp_response, now)
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

/// The integration tests' CA and leaf maker, for the unit tests below.
#[cfg(test)]
#[allow(dead_code)]
#[path = "../tests/common/certs.rs"]
mod certs;

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
    fn a_changed_client_ca_is_picked_up_and_a_broken_one_keeps_the_old_roots() {
        let dir = tempfile::tempdir().unwrap();
        let (ca1, ca2) = (certs::ca("first ca"), certs::ca("second ca"));
        let der = |pem: &str| CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
        let (by1, by2) = (der(&certs::leaf(&ca1, &["agent"]).0), der(&certs::leaf(&ca2, &["agent"]).0));
        let ca_file = dir.path().join("ca.pem");
        // As a Secret update or an editor does: written aside, renamed over.
        let replace = |text: &str| {
            std::fs::write(dir.path().join("ca.new"), text).unwrap();
            std::fs::rename(dir.path().join("ca.new"), &ca_file).unwrap();
        };
        replace(&ca1.cert.pem());
        let verifier = ClientCaFiles::load(&ca_file).unwrap();
        let now = UnixTime::now();
        assert!(verifier.verify_client_cert(&by1, &[], now).is_ok());
        assert!(verifier.verify_client_cert(&by2, &[], now).is_err());
        assert!(!verifier.reload_if_changed(), "nothing changed");

        replace(&ca2.cert.pem());
        assert!(verifier.reload_if_changed());
        assert!(verifier.verify_client_cert(&by2, &[], now).is_ok(), "new handshakes use the new roots");
        assert!(verifier.verify_client_cert(&by1, &[], now).is_err());
        assert_eq!(reloads(&ca_file, "success"), 1);

        replace("-----BEGIN CERTIFICATE-----\nbroken\n");
        assert!(!verifier.reload_if_changed(), "a broken bundle is refused");
        assert!(verifier.verify_client_cert(&by2, &[], now).is_ok(), "the previous roots stay");
        assert_eq!(reloads(&ca_file, "failure"), 1);
        assert!(!verifier.reload_if_changed(), "and reported once");
        assert_eq!(reloads(&ca_file, "failure"), 1);
        let err = ClientCaFiles::load(&ca_file).unwrap_err();
        assert!(err.starts_with("ca_file"), "{err}");
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
