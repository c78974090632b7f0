//! An HTTPS listener for axum: a TCP listener plus a rustls acceptor, plugged into `axum::serve`
//! through its `Listener` trait (no extra server crate). Handshakes run inside `accept` with a
//! timeout, one at a time: fine for the external metrics API, whose only client is the Kubernetes
//! API server holding a few long-lived connections; not meant for a public endpoint.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Builds a server config from PEM files (certificate chain, private key), or from a self-signed
/// certificate for `names` when no files are given.
pub fn server_config(files: Option<(&Path, &Path)>, names: &[String]) -> Result<rustls::ServerConfig, String> {
    let (certs, key) = match files {
        Some((cert_file, key_file)) => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_file)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("reading certificates from {}: {e}", cert_file.display()))?;
            if certs.is_empty() {
                return Err(format!("{} holds no certificate", cert_file.display()));
            }
            let key = PrivateKeyDer::from_pem_file(key_file)
                .map_err(|e| format!("reading the private key from {}: {e}", key_file.display()))?;
            (certs, key)
        }
        None => {
            let made = rcgen::generate_simple_self_signed(names.to_vec()).map_err(|e| e.to_string())?;
            let key = PrivateKeyDer::try_from(made.key_pair.serialize_der()).map_err(|e| e.to_string())?;
            (vec![made.cert.der().clone()], key)
        }
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("certificate and key do not match: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// A TLS listener for `axum::serve`.
pub struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
}

impl TlsListener {
    pub fn new(tcp: TcpListener, config: rustls::ServerConfig) -> Self {
        Self { tcp, acceptor: TlsAcceptor::from(Arc::new(config)) }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (stream, addr) = match self.tcp.accept().await {
                Ok(s) => s,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "tls accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, self.acceptor.accept(stream)).await {
                Ok(Ok(tls)) => return (tls, addr),
                Ok(Err(e)) => tracing::debug!(peer = %addr, error = %e, "tls handshake failed"),
                Err(_) => tracing::debug!(peer = %addr, "tls handshake timed out"),
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}
