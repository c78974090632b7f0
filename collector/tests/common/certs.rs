//! Test certificates made with rcgen: a CA and leaves it signs. Shared by the collector's TLS
//! scrape tests and (through `#[path]`) the root crate's external metrics test.

use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};

pub struct Ca {
    pub cert: rcgen::Certificate,
    pub key: KeyPair,
}

/// A self-signed CA named `name`.
pub fn ca(name: &str) -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(rcgen::DnType::CommonName, name);
    Ca { cert: params.self_signed(&key).unwrap(), key }
}

/// A certificate for `names` signed by `ca`, as (cert PEM, key PEM).
pub fn leaf(ca: &Ca, names: &[&str]) -> (String, String) {
    leaf_with_cn(ca, names, None)
}

/// [`leaf`] with a subject common name, as a client certificate carries its user name.
pub fn leaf_with_cn(ca: &Ca, names: &[&str], common_name: Option<&str>) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    if let Some(cn) = common_name {
        params.distinguished_name.push(rcgen::DnType::CommonName, cn);
    }
    let cert = params.signed_by(&key, &ca.cert, &ca.key).unwrap();
    (cert.pem(), key.serialize_pem())
}
