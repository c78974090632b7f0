//! An HTTPS listener for axum: a TCP listener plus a rustls acceptor, plugged into `axum::serve`
//! through its `Listener` trait (no extra server crate). Handshakes run inside `accept` with a
//! timeout, one at a time: fine for the external metrics API, whose only client is the Kubernetes
//! API server holding a few long-lived connections; not meant for a public endpoint.
//!
//! With a client CA the listener demands a client certificate signed by it (rustls's
//! `WebPkiClientVerifier`: a connection without one fails the handshake), and [`TlsPeer`] hands
//! the certificate's common name to handlers, which check it against an allow-list as the API
//! server's `--requestheader-allowed-names` does.

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
/// certificate for `names` when no files are given. With `client_ca` (a PEM bundle) clients must
/// present a certificate it signed.
pub fn server_config(
    files: Option<(&Path, &Path)>,
    names: &[String],
    client_ca: Option<&Path>,
) -> Result<rustls::ServerConfig, String> {
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
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca_file) => {
            let mut roots = rustls::RootCertStore::empty();
            let cas = CertificateDer::pem_file_iter(ca_file)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("reading client CA certificates from {}: {e}", ca_file.display()))?;
            for ca in cas {
                roots.add(ca).map_err(|e| format!("client CA in {}: {e}", ca_file.display()))?;
            }
            if roots.is_empty() {
                return Err(format!("{} holds no certificate", ca_file.display()));
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| format!("client CA in {}: {e}", ca_file.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config =
        builder.with_single_cert(certs, key).map_err(|e| format!("certificate and key do not match: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// Who is on the other end of a TLS connection, for handlers (`ConnectInfo<TlsPeer>`).
#[derive(Clone, Debug)]
pub struct TlsPeer {
    pub addr: std::net::SocketAddr,
    /// The subject common name of the verified client certificate, if one was presented.
    pub common_name: Option<String>,
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, TlsListener>> for TlsPeer {
    fn connect_info(stream: axum::serve::IncomingStream<'_, TlsListener>) -> Self {
        let (_, connection) = stream.io().get_ref();
        let common_name = connection.peer_certificates().and_then(|c| c.first()).and_then(|c| common_name(c));
        TlsPeer { addr: *stream.remote_addr(), common_name }
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

#[cfg(test)]
mod tests {
    use super::*;

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
