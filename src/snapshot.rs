//! `tarsier snapshot`: the client half of backups. Asks a running server for a snapshot
//! (`POST /api/v1/admin/snapshot`, see `query_ui::snapshot`), downloads every file in bounded
//! chunks into `<out>/<name>.partial/`, checks each size against the manifest, renames the
//! directory to `<out>/<name>` (so a finished backup is never half-written), deletes the snapshot on
//! the server and keeps the newest `--keep` backups in `<out>`.
//!
//! Restoring: stop the server, make the backup directory its `data_dir` (without `manifest.json`,
//! which the stores ignore anyway), start it; the WALs replay as after a crash.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use query_ui::snapshot::{MANIFEST, Manifest};
use tokio::io::AsyncWriteExt;

/// Options of `tarsier snapshot`.
#[derive(Debug, Clone)]
pub struct SnapshotOptions {
    pub server_url: String,
    pub out: PathBuf,
    /// Backups kept in `out` after this one (0 = keep all).
    pub keep: usize,
    /// Leave the snapshot on the server (it holds hard links: no space until the stores move on).
    pub keep_on_server: bool,
    /// File holding an API token with the admin role (`server.auth`), sent as Bearer.
    pub bearer_token_file: Option<PathBuf>,
}

/// Entry point from `main`.
pub fn main(options: SnapshotOptions) -> ExitCode {
    crate::logging::init(&crate::config::LogConfig::default());
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tarsier: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&options)) {
        Ok(dir) => {
            println!("{}", dir.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tarsier snapshot: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Takes, downloads and prunes; returns the finished backup directory.
pub async fn run(options: &SnapshotOptions) -> anyhow::Result<PathBuf> {
    let base = options.server_url.trim_end_matches('/');
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(path) = &options.bearer_token_file {
        let token = tokio::fs::read_to_string(path).await.with_context(|| format!("reading {}", path.display()))?;
        let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {}", token.trim()))
            .with_context(|| format!("{}: not a valid token", path.display()))?;
        value.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, value);
    }
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(600))
        .default_headers(headers)
        .build()
        .context("building the HTTP client")?;
    let response = client
        .post(format!("{base}/api/v1/admin/snapshot"))
        .send()
        .await
        .with_context(|| format!("asking {base} for a snapshot"))?;
    let status = response.status();
    let body: serde_json::Value = response.json().await.context("reading the snapshot response")?;
    if !status.is_success() {
        bail!("{base} refused the snapshot ({status}): {}", body["error"].as_str().unwrap_or("no error message"));
    }
    let manifest: Manifest = serde_json::from_value(body["data"].clone()).context("the snapshot manifest")?;
    tracing::info!(name = %manifest.name, files = manifest.files.len(), "snapshot taken; downloading");

    let partial = options.out.join(format!("{}.partial", manifest.name));
    let done = options.out.join(&manifest.name);
    tokio::fs::create_dir_all(&partial).await.with_context(|| format!("creating {}", partial.display()))?;
    let mut total = 0u64;
    for file in &manifest.files {
        if file.path.split('/').any(|c| c.is_empty() || c == "." || c == "..") {
            bail!("the server listed an unsafe path {:?}", file.path);
        }
        let dest = partial.join(&file.path);
        if let Some(parent) = dest.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        let mut out = tokio::fs::File::create(&dest).await.with_context(|| format!("creating {}", dest.display()))?;
        let mut offset = 0u64;
        while offset < file.size {
            let url = format!("{base}/api/v1/admin/snapshots/{}/files/{}?offset={offset}", manifest.name, file.path);
            let response = client.get(&url).send().await.with_context(|| format!("downloading {}", file.path))?;
            if !response.status().is_success() {
                bail!("downloading {}: {}", file.path, response.status());
            }
            let chunk = response.bytes().await.with_context(|| format!("downloading {}", file.path))?;
            if chunk.is_empty() {
                bail!("{} ended at {offset} bytes, the manifest says {}", file.path, file.size);
            }
            out.write_all(&chunk).await?;
            offset += chunk.len() as u64;
        }
        out.sync_all().await?;
        total += file.size;
    }
    let json = serde_json::to_vec_pretty(&manifest)?;
    tokio::fs::write(partial.join(MANIFEST), json).await?;
    if tokio::fs::try_exists(&done).await? {
        tokio::fs::remove_dir_all(&done).await?;
    }
    tokio::fs::rename(&partial, &done).await?;
    tracing::info!(dir = %done.display(), bytes = total, "snapshot downloaded");

    if !options.keep_on_server {
        let url = format!("{base}/api/v1/admin/snapshots/{}", manifest.name);
        match client.delete(&url).send().await {
            Ok(r) if r.status().is_success() => {}
            Ok(r) => tracing::warn!(status = %r.status(), "could not delete the snapshot on the server"),
            Err(e) => tracing::warn!(error = %e, "could not delete the snapshot on the server"),
        }
    }
    if options.keep > 0 {
        prune(&options.out, options.keep).await?;
    }
    Ok(done)
}

/// Deletes all but the newest `keep` finished backups (directories with a manifest; names sort
/// by time) and any leftover `.partial` directory of an interrupted run.
async fn prune(out: &Path, keep: usize) -> anyhow::Result<()> {
    let mut finished = Vec::new();
    let mut entries = tokio::fs::read_dir(out).await?;
    while let Some(entry) = entries.next_entry().await? {
        let name = entry.file_name().to_string_lossy().to_string();
        if !entry.file_type().await?.is_dir() {
            continue;
        }
        if name.ends_with(".partial") {
            tokio::fs::remove_dir_all(entry.path()).await?;
        } else if tokio::fs::try_exists(entry.path().join(MANIFEST)).await? {
            finished.push(name);
        }
    }
    finished.sort();
    let excess = finished.len().saturating_sub(keep);
    for name in &finished[..excess] {
        tracing::info!(backup = %name, "pruning old backup");
        tokio::fs::remove_dir_all(out.join(name)).await?;
    }
    Ok(())
}
