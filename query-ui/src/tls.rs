//! HTTPS for Tarsier's listeners: the main HTTP listener (`server.tls`) and the external metrics
//! API (`server.external_metrics`). A TCP listener plus a rustls acceptor, plugged into
//! `axum::serve` through its `Listener` trait (no extra server crate).
//!
//! Handshakes run concurrently: an accept task takes each TCP connection and spawns its handshake
//! with a timeout, so a slow or silent client holds only its own task, never the listener; at most
//! [`MAX_HANDSHAKES`] are in progress at once (more connections wait in the kernel's backlog).
//! The certificate comes from `collector::tls::KeyPairFiles`, which re-reads the files when they
//! change (cert-manager renewing a mounted Secret): new handshakes get the new certificate
//! without a restart, a broken new pair is refused and the old one keeps serving.
//!
//! With a client CA the listener demands a client certificate signed by it
//! (`collector::tls::ClientCaFiles` over rustls's `WebPkiClientVerifier`, re-read when the file
//! changes: a connection without one fails the handshake), and [`TlsPeer`] hands
//! the certificate's common name to handlers, which check it against an allow-list as the API
//! server's `--requestheader-allowed-names` does.
//!
//! ALPN offers HTTP/1.1 only: axum is built without its `http2` feature, and offering `h2` would
//! make HTTP/2 clients (the Kubernetes API server among them) fail after negotiating it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::PrivateKeyDer;
use rustls::server::ResolvesServerCert;
use serde::{Deserialize, Serialize};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// How long a client has to complete its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in progress at once: a handshake is a few hundred microseconds of CPU, so this only
/// bounds the tasks and memory a flood of connections can hold.
pub const MAX_HANDSHAKES: usize = 256;
/// Completed handshakes waiting for axum to take them (axum takes them as fast as they come).
const ACCEPTED_QUEUE: usize = 64;

/// `server.tls`: serve the main listener over HTTPS.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain (leaf first); re-read when it changes.
    pub cert_file: PathBuf,
    /// PEM private key of `cert_file` (PKCS#8, PKCS#1 or SEC1); re-read when it changes.
    pub key_file: PathBuf,
    /// PEM CA bundle: when set, clients must present a certificate it signed (mutual TLS).
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
    /// Oldest TLS version accepted: `1.2` (default) or `1.3`.
    #[serde(default)]
    pub min_version: TlsVersion,
}

impl TlsConfig {
    /// Checks the section; errors name the key under `server.tls.`.
    pub fn validate(&self) -> Result<(), String> {
        for (key, path) in [("cert_file", Some(&self.cert_file)), ("key_file", Some(&self.key_file))]
            .into_iter()
            .chain([("client_ca_file", self.client_ca_file.as_ref())])
        {
            if path.is_some_and(|p| p.as_os_str().is_empty()) {
                return Err(format!("server.tls.{key} must not be empty"));
            }
        }
        Ok(())
    }

    /// The rustls configuration: the certificate files (reloaded when they change), the client
    /// CA, the minimum version. Errors name the key.
    pub fn server_config(&self) -> Result<rustls::ServerConfig, String> {
        let cert = collector::tls::KeyPairFiles::load(&self.cert_file, &self.key_file)
            .map_err(|e| format!("server.tls: {e}"))?;
        server_config(Arc::new(cert), self.client_ca_file.as_deref(), self.min_version)
            .map_err(|e| format!("server.tls: {e}"))
    }
}

/// A TLS protocol version, written `1.2` or `1.3` (a YAML number or string).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TlsVersion {
    #[default]
    Tls12,
    Tls13,
}

impl Serialize for TlsVersion {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(match self {
            TlsVersion::Tls12 => "1.2",
            TlsVersion::Tls13 => "1.3",
        })
    }
}

impl<'de> Deserialize<'de> for TlsVersion {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = TlsVersion;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("1.2 or 1.3")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<TlsVersion, E> {
                match v.trim().trim_start_matches("TLS").trim() {
                    "1.2" => Ok(TlsVersion::Tls12),
                    "1.3" => Ok(TlsVersion::Tls13),
                    _ => Err(E::invalid_value(serde::de::Unexpected::Str(v), &self)),
                }
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<TlsVersion, E> {
                self.visit_str(&v.to_string())
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// A server configuration presenting `cert`; with `client_ca` (a PEM bundle, re-read when it
/// changes) clients must present a certificate it signed.
pub fn server_config(
    cert: Arc<dyn ResolvesServerCert>,
    client_ca: Option<&Path>,
    min_version: TlsVersion,
) -> Result<rustls::ServerConfig, String> {
    let verifier = client_ca.map(collector::tls::ClientCaFiles::load).transpose().map_err(|e| format!("client_{e}"))?;
    server_config_with(cert, verifier, min_version)
}

/// [`server_config`] with the client certificate verifier given (e.g. one that lets clients
/// without a certificate through: [`collector::tls::ClientCaFiles::load_optional`]).
pub fn server_config_with(
    cert: Arc<dyn ResolvesServerCert>,
    client_ca: Option<collector::tls::ClientCaFiles>,
    min_version: TlsVersion,
) -> Result<rustls::ServerConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: &[&'static rustls::SupportedProtocolVersion] = match min_version {
        TlsVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsVersion::Tls13 => &[&rustls::version::TLS13],
    };
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| e.to_string())?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(verifier) => builder.with_client_cert_verifier(Arc::new(verifier)),
    };
    let mut config = builder.with_cert_resolver(cert);
    // No session resumption: a resumed session skips certificates, so a renewed server
    // certificate (or a client's) would only be seen once old sessions expired. Clients keep
    // their connections open, so full handshakes are rare and cheap (ECDSA: well under 1 ms).
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The certificate of a listener: from files (reloaded when they change), or a self-signed one
/// for `names` made now.
pub fn certificate(files: Option<(&Path, &Path)>, names: &[String]) -> Result<Arc<dyn ResolvesServerCert>, String> {
    if let Some((cert_file, key_file)) = files {
        return Ok(Arc::new(collector::tls::KeyPairFiles::load(cert_file, key_file)?));
    }
    let made = rcgen::generate_simple_self_signed(names.to_vec()).map_err(|e| e.to_string())?;
    let key = PrivateKeyDer::try_from(made.key_pair.serialize_der()).map_err(|e| e.to_string())?;
    let provider = rustls::crypto::ring::default_provider();
    let key = rustls::sign::CertifiedKey::from_der(vec![made.cert.der().clone()], key, &provider)
        .map_err(|e| e.to_string())?;
    Ok(Arc::new(rustls::sign::SingleCertAndKey::from(key)))
}

/// Who is on the other end of a TLS connection, for handlers (`ConnectInfo<TlsPeer>`).
#[derive(Clone, Debug)]
pub struct TlsPeer {
    pub addr: std::net::SocketAddr,
    /// The subject common name of the verified client certificate, if one was presented.
    pub common_name: Option<String>,
    /// Whether the client presented a certificate (the TLS layer verified it).
    pub has_certificate: bool,
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, TlsListener>> for TlsPeer {
    fn connect_info(stream: axum::serve::IncomingStream<'_, TlsListener>) -> Self {
        let (_, connection) = stream.io().get_ref();
        let certificate = connection.peer_certificates().and_then(|c| c.first());
        let common_name = certificate.and_then(|c| common_name(c));
        TlsPeer { addr: *stream.remote_addr(), common_name, has_certificate: certificate.is_some() }
    }
}

/// The subject CN (OID 2.5.4.3) of a DER certificate. Only for certificates rustls has already
/// verified, so a malformed one just yields `None`.
pub fn common_name(cert: &[u8]) -> Option<String> {
    /// Splits one DER element off `input`: (tag, contents, rest).
    fn element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
        let (&tag, rest) = input.split_first()?;
        let (&first, mut rest) = rest.split_first()?;
        let len = if first < 0x80 {
            first as usize
        } else {
            let n = (first & 0x7f) as usize;
            if n == 0 || n > 4 || rest.len() < n {
                return None;
            }
            let len = rest[..n].iter().fold(0usize, |acc, b| acc << 8 | *b as usize);
            rest = &rest[n..];
            len
        };
        (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
    }
    const SEQUENCE: u8 = 0x30;
    const CN: &[u8] = &[0x55, 0x04, 0x03];
    let (SEQUENCE, certificate, _) = element(cert)? else { return None };
    let (SEQUENCE, mut tbs, _) = element(certificate)? else { return None };
    // [0] version is optional; then serial, signature algorithm, issuer, validity, subject.
    if tbs.first() == Some(&0xa0) {
        tbs = element(tbs)?.2;
    }
    for _ in 0..4 {
        tbs = element(tbs)?.2;
    }
    let (SEQUENCE, mut subject, _) = element(tbs)? else { return None };
    while !subject.is_empty() {
        let (_set, rdn, rest) = element(subject)?;
        subject = rest;
        let (_seq, attribute, _) = element(rdn)?;
        let (_oid, oid, value) = element(attribute)?;
        if oid == CN {
            let (_string, text, _) = element(value)?;
            return String::from_utf8(text.to_vec()).ok();
        }
    }
    None
}

/// A TLS listener for `axum::serve`: handshakes run in their own tasks (see the module docs).
pub struct TlsListener {
    accepted: mpsc::Receiver<(TlsStream<TcpStream>, std::net::SocketAddr)>,
    local_addr: std::net::SocketAddr,
}

impl TlsListener {
    /// Starts accepting on `tcp`; the accept task ends when the listener is dropped.
    pub fn new(tcp: TcpListener, config: rustls::ServerConfig) -> std::io::Result<Self> {
        let local_addr = tcp.local_addr()?;
        let (tx, accepted) = mpsc::channel(ACCEPTED_QUEUE);
        tokio::spawn(accept_loop(tcp, TlsAcceptor::from(Arc::new(config)), tx));
        Ok(Self { accepted, local_addr })
    }
}

async fn accept_loop(
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    tx: mpsc::Sender<(TlsStream<TcpStream>, std::net::SocketAddr)>,
) {
    let handshakes = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    loop {
        let permit = tokio::select! {
            _ = tx.closed() => return,
            permit = handshakes.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
        };
        let (stream, addr) = tokio::select! {
            _ = tx.closed() => return,
            accepted = tcp.accept() => match accepted {
                Ok(s) => s,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "tls accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let (acceptor, tx) = (acceptor.clone(), tx.clone());
        tokio::spawn(async move {
            let _permit = permit;
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => {
                    let _ = tx.send((tls, addr)).await;
                }
                Ok(Err(e)) => tracing::debug!(peer = %addr, error = %e, "tls handshake failed"),
                Err(_) => tracing::debug!(peer = %addr, "tls handshake timed out"),
            }
        });
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.accepted.recv().await {
            Some(accepted) => accepted,
            // The accept task only ends once this receiver is gone; if it panicked, accept nothing.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local_addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A TLS listener serving `ok` at `/` with a self-signed certificate for localhost written to
    /// `dir`; returns its address and the certificate (DER) a client must trust.
    async fn serve(dir: &Path, min_version: TlsVersion) -> (std::net::SocketAddr, Vec<u8>) {
        let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let (cert_file, key_file) = (dir.join("tls.crt"), dir.join("tls.key"));
        std::fs::write(&cert_file, made.cert.pem()).unwrap();
        std::fs::write(&key_file, made.key_pair.serialize_pem()).unwrap();
        let config = TlsConfig { cert_file, key_file, client_ca_file: None, min_version }.server_config().unwrap();
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let listener = TlsListener::new(tcp, config).unwrap();
        let addr = axum::serve::Listener::local_addr(&listener).unwrap();
        let app = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
        tokio::spawn(async move { axum::serve(listener, app).await });
        (addr, made.cert.der().to_vec())
    }

    /// Connects with TLS limited to `versions` and fetches `/`.
    async fn get(
        addr: std::net::SocketAddr,
        ca: &[u8],
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> std::io::Result<String> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.to_vec().into()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let tcp = TcpStream::connect(addr).await?;
        let mut tls = connector.connect("localhost".try_into().unwrap(), tcp).await?;
        tls.write_all(b"GET / HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n").await?;
        let mut response = String::new();
        tls.read_to_string(&mut response).await?;
        Ok(response)
    }

    #[tokio::test]
    async fn a_silent_client_does_not_hold_up_the_next_one() {
        let dir = tempfile::tempdir().unwrap();
        let (addr, ca) = serve(dir.path(), TlsVersion::Tls12).await;
        // Connected but never says hello: before, the listener waited on it for the whole
        // handshake timeout (10 s) before accepting anyone else.
        let _silent = TcpStream::connect(addr).await.unwrap();
        let response = tokio::time::timeout(Duration::from_secs(5), get(addr, &ca, rustls::ALL_VERSIONS))
            .await
            .expect("answered while another handshake is pending")
            .unwrap();
        assert!(response.starts_with("HTTP/1.1 200") && response.ends_with("ok"), "{response}");
    }

    #[tokio::test]
    async fn min_version_1_3_refuses_a_tls_1_2_client() {
        let dir = tempfile::tempdir().unwrap();
        let (addr, ca) = serve(dir.path(), TlsVersion::Tls13).await;
        assert!(get(addr, &ca, &[&rustls::version::TLS12]).await.is_err());
        assert!(get(addr, &ca, &[&rustls::version::TLS13]).await.unwrap().ends_with("ok"));
    }

    #[test]
    fn tls_versions_read_as_numbers_or_strings() {
        let parse = |v: serde_json::Value| serde_json::from_value::<TlsVersion>(v);
        assert_eq!(parse(serde_json::json!(1.3)).unwrap(), TlsVersion::Tls13);
        assert_eq!(parse(serde_json::json!("1.2")).unwrap(), TlsVersion::Tls12);
        assert_eq!(parse(serde_json::json!("TLS1.3")).unwrap(), TlsVersion::Tls13);
        assert!(parse(serde_json::json!(1.1)).unwrap_err().to_string().contains("1.2 or 1.3"));
        assert_eq!(serde_json::to_value(TlsVersion::Tls13).unwrap(), "1.3");
    }

    #[test]
    fn common_name_is_read_from_the_subject() {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params.distinguished_name.push(rcgen::DnType::OrganizationName, "system:masters");
        params.distinguished_name.push(rcgen::DnType::CommonName, "front-proxy-client");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(common_name(cert.der()).as_deref(), Some("front-proxy-client"));
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        let none = params.self_signed(&key).unwrap();
        assert_eq!(common_name(none.der()), None);
        assert_eq!(common_name(b"\x30\x82garbage"), None);
    }
}
