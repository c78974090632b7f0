//! A real SMTP server for the tests: aiosmtpd (PyPI) running `smtp_sink.py` on loopback, plain,
//! STARTTLS-only or implicit TLS, which writes every message it accepts as JSON. Shared by
//! alerting's email tests and the root crate's end-to-end test (through `#[path]`), so both
//! check mail the same way; it depends on std, serde_json, rcgen and tempfile only.
#![allow(dead_code)]

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};

const SCRIPT: &str = include_str!("../smtp_sink.py");

/// A running sink; the server is stopped when dropped.
pub struct SmtpSink {
    child: Child,
    /// The loopback port it listens on.
    pub port: u16,
    out: tempfile::TempDir,
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl SmtpSink {
    /// Starts a sink; `mode` is empty (plain), `["starttls", cert, key]` or `["tls", cert, key]`.
    pub fn start(mode: &[&str]) -> Self {
        let ok = Command::new("python3").args(["-c", "import aiosmtpd"]).status().map(|s| s.success()).unwrap_or(false);
        assert!(ok, "aiosmtpd is missing: install it with `pip install aiosmtpd` (scripts/test.sh does)");
        let out = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut child = Command::new("python3")
            .args(["-c", SCRIPT, &port.to_string(), out.path().to_str().unwrap()])
            .args(mode)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting python3");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "ready", "smtp sink did not start");
        Self { child, port, out }
    }

    /// The messages received so far, in order.
    pub fn mails(&self) -> Vec<serde_json::Value> {
        (0..)
            .map(|i| self.out.path().join(format!("{i}.json")))
            .take_while(|p| p.exists())
            .map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
            .collect()
    }
}

/// A self-signed certificate for `smtp.test` (not the address connected to, so `server_name` is
/// needed), written as `cert.pem` and `key.pem` in `dir`; returns their paths.
pub fn server_certificate(dir: &Path) -> (String, String) {
    let ck = rcgen::generate_simple_self_signed(vec!["smtp.test".to_string()]).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.key_pair.serialize_pem()).unwrap();
    (cert.display().to_string(), key.display().to_string())
}
