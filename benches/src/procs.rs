//! Child processes for the scenarios that run real programs (Tarsier's own binary and its peers):
//! started with their stderr in a log file, killed when dropped so a failed run leaves nothing
//! behind, peers installed from Debian when missing.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A child process killed (SIGKILL) when dropped, so a failed run leaves nothing behind.
pub struct Proc {
    name: &'static str,
    child: Child,
}

impl Proc {
    pub fn start(name: &'static str, program: &Path, args: &[String], log: &Path) -> anyhow::Result<Proc> {
        let log = std::fs::File::create(log)?;
        let child = Command::new(program)
            .args(args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| anyhow::anyhow!("starting {}: {e}", program.display()))?;
        Ok(Proc { name, child })
    }

    pub fn pid(&self) -> String {
        self.child.id().to_string()
    }

    /// SIGTERM, then wait up to 30 s for a clean exit.
    pub fn terminate(&mut self) -> anyhow::Result<()> {
        Command::new("kill").arg("-TERM").arg(self.pid()).status()?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait()?.is_none() {
            anyhow::ensure!(Instant::now() < deadline, "{} did not stop within 30 s of SIGTERM", self.name);
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The peer's binary, installed from Debian (`apt-get install -y <package>`) when missing.
pub fn need(binary: &str, package: &str) -> anyhow::Result<PathBuf> {
    let path = PathBuf::from("/usr/bin").join(binary);
    if !path.exists() {
        eprintln!("installing {package} (apt-get install -y {package})");
        let _ = Command::new("apt-get").args(["install", "-y", package]).stdout(Stdio::null()).status();
    }
    anyhow::ensure!(path.exists(), "{} is missing: apt-get install -y {package}", path.display());
    Ok(path)
}

pub async fn wait_ready(client: &reqwest::Client, name: &str, url: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !client.get(url).send().await.is_ok_and(|r| r.status().is_success()) {
        anyhow::ensure!(Instant::now() < deadline, "{name} did not answer {url} within 60 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// Bytes of every file under `dir`.
pub fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            Ok(_) => e.metadata().map(|m| m.len()).unwrap_or(0),
            Err(_) => 0,
        })
        .sum()
}

/// Starts `n` node_exporters on free ports (logs in `dir`) and waits until each answers; returns
/// them and their `host:port` targets.
pub async fn start_node_exporters(
    binary: &Path,
    n: usize,
    dir: &Path,
    client: &reqwest::Client,
) -> anyhow::Result<(Vec<Proc>, Vec<String>)> {
    let mut exporters = Vec::new();
    let mut targets = Vec::new();
    for i in 0..n {
        let port = free_port()?;
        let args = vec![format!("--web.listen-address=127.0.0.1:{port}")];
        exporters.push(Proc::start("node_exporter", binary, &args, &dir.join(format!("ne{i}.log")))?);
        targets.push(format!("127.0.0.1:{port}"));
    }
    for t in &targets {
        wait_ready(client, "node_exporter", &format!("http://{t}/metrics")).await?;
    }
    Ok((exporters, targets))
}
