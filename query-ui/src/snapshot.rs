//! Backups of a running server without stopping it (`POST /api/v1/admin/snapshot`, used by
//! `tarsier snapshot` and the CronJob in deploy/). The stores are committed and flushed, then every
//! data file is hard-linked under `<data_dir>/snapshots/<name>/`: instant and free of extra space,
//! because the stores never rewrite a file in place. Files that only grow (WALs) keep growing through
//! the link, so the manifest records each file's size at snapshot time and downloads stop there;
//! files replaced by rename (index metadata, checkpoints) keep their old content in the link.
//! The result is crash-consistent: restoring it is starting the server as after a crash at that
//! moment (WAL replay). A file deleted by maintenance while linking restarts the walk.
//!
//! Downloads go in bounded chunks (`?offset=`), so neither side holds a whole segment in memory.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use axum::Json;
use axum::extract::{Path as UrlPath, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::error::{ApiError, PromError};
use crate::params::{Params, Prom};
use crate::state::AppState;

/// Directory under the data dir that holds snapshots (never itself snapshotted).
pub const SNAPSHOTS_DIR: &str = "snapshots";
/// Largest chunk one download request returns.
pub const CHUNK_BYTES: u64 = 8 << 20;
/// Name of the manifest written into a snapshot.
pub const MANIFEST: &str = "manifest.json";
const ATTEMPTS: usize = 5;

/// What a snapshot holds: every file with its size at snapshot time.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub name: String,
    /// Unix milliseconds when the snapshot was taken.
    pub time_ms: i64,
    pub files: Vec<SnapshotFile>,
}

/// One file of a snapshot, path relative to the data dir with `/` separators.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SnapshotFile {
    pub path: String,
    pub size: u64,
}

/// Skipped: temporary files of writes in progress and lock files, which a restore must not see.
fn skipped(name: &str) -> bool {
    name.starts_with(".tmp") || name.ends_with(".tmp") || name.ends_with(".lock") || name.ends_with(".partial")
}

/// Links (or, across filesystems, copies) every data file of `data_dir` into
/// `<data_dir>/snapshots/<name>` and writes the manifest. Blocking.
pub fn take(data_dir: &Path, name: &str) -> std::io::Result<Manifest> {
    let target = data_dir.join(SNAPSHOTS_DIR).join(name);
    let mut last_err = None;
    for _ in 0..ATTEMPTS {
        if target.exists() {
            std::fs::remove_dir_all(&target)?;
        }
        std::fs::create_dir_all(&target)?;
        let mut files = Vec::new();
        match link_tree(data_dir, data_dir, &target, &mut files) {
            Ok(()) => {
                files.sort_by(|a: &SnapshotFile, b| a.path.cmp(&b.path));
                let manifest =
                    Manifest { name: name.to_string(), time_ms: chrono::Utc::now().timestamp_millis(), files };
                let json = serde_json::to_vec_pretty(&manifest).map_err(std::io::Error::other)?;
                std::fs::write(target.join(MANIFEST), json)?;
                return Ok(manifest);
            }
            // Maintenance removed a file mid-walk (WAL truncation, compaction): start over so the
            // snapshot never mixes the state before and after it.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tracing::debug!(error = %e, "file vanished while snapshotting; retrying");
                last_err = Some(e);
            }
            Err(e) => {
                let _ = std::fs::remove_dir_all(&target);
                return Err(e);
            }
        }
    }
    let _ = std::fs::remove_dir_all(&target);
    Err(last_err.unwrap_or_else(|| std::io::Error::other("snapshot failed")))
}

fn link_tree(root: &Path, dir: &Path, target: &Path, files: &mut Vec<SnapshotFile>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let path = entry.path();
        if dir == root && name == SNAPSHOTS_DIR || skipped(&name) {
            continue;
        }
        let rel = path.strip_prefix(root).map_err(std::io::Error::other)?;
        let file_type = entry.file_type()?;
        if file_type.is_dir() {
            std::fs::create_dir_all(target.join(rel))?;
            link_tree(root, &path, target, files)?;
        } else if file_type.is_file() {
            let dest = target.join(rel);
            if std::fs::hard_link(&path, &dest).is_err() {
                // Another filesystem (or no link support): copy, which also fixes the size.
                std::fs::copy(&path, &dest)?;
            }
            let size = std::fs::metadata(&dest)?.len();
            let rel = rel.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/");
            files.push(SnapshotFile { path: rel, size });
        }
    }
    Ok(())
}

/// A snapshot name is `YYYYMMDDTHHMMSSmmmZ-xxxxxxxx` (sorts by time): letters, digits and `-` only, so it can never
/// walk out of the snapshots directory.
fn check_name(name: &str) -> Result<(), ApiError> {
    if name.is_empty() || name.len() > 64 || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(ApiError::BadRequest(format!("invalid snapshot name {name:?}")));
    }
    Ok(())
}

fn data_dir(state: &AppState) -> Result<PathBuf, ApiError> {
    state
        .services()
        .data_dir
        .clone()
        .ok_or_else(|| ApiError::BadRequest("this role has no data directory to snapshot".into()))
}

/// `POST /api/v1/admin/snapshot`: commit, flush, link; answers Prometheus's shape
/// (`{"status":"success","data":{"name":...}}`) plus the manifest's `files`.
pub(crate) async fn create(State(state): State<AppState>) -> Result<Json<serde_json::Value>, PromError> {
    let dir = data_dir(&state)?;
    let services = state.services().clone();
    let now = chrono::Utc::now();
    let name = format!("{}-{:08x}", now.format("%Y%m%dT%H%M%S%3fZ"), rand_suffix());
    let manifest = tokio::task::spawn_blocking(move || -> Result<Manifest, ApiError> {
        if let Some(indexer) = &services.indexer {
            indexer.commit()?;
        }
        if let Some(tsdb) = &services.tsdb {
            tsdb.flush()?;
        }
        take(&dir, &name).map_err(|e| ApiError::Internal(format!("taking snapshot {name}: {e}")))
    })
    .await
    .map_err(ApiError::from_join)??;
    tracing::info!(name = %manifest.name, files = manifest.files.len(), "snapshot taken");
    Ok(Json(json!({"status": "success", "data": manifest})))
}

fn rand_suffix() -> u32 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos());
    nanos.unwrap_or(0) ^ std::process::id().rotate_left(16)
}

/// `?offset=`, read here rather than by axum's `Query`, whose rejection is plain text: a bad offset
/// is answered in Prometheus's error shape like every other error of this API (schemathesis sent
/// `offset=-1`).
fn offset_param(params: &Params) -> Result<u64, ApiError> {
    match params.get("offset").filter(|v| !v.is_empty()) {
        None => Ok(0),
        Some(v) => v.parse().map_err(|_| {
            ApiError::BadRequest(format!("invalid parameter \"offset\": {v:?} is not a non-negative integer"))
        }),
    }
}

/// `GET /api/v1/admin/snapshots/{name}/files/{*path}?offset=N`: up to [`CHUNK_BYTES`] of a file,
/// never past its size in the manifest. Only paths the manifest lists are served.
pub(crate) async fn file_chunk(
    State(state): State<AppState>,
    UrlPath((name, path)): UrlPath<(String, String)>,
    Prom(params): Prom<Params>,
) -> Result<Response, PromError> {
    check_name(&name)?;
    let offset = offset_param(&params)?;
    let root = data_dir(&state)?.join(SNAPSHOTS_DIR).join(&name);
    let bytes = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, ApiError> {
        let manifest: Manifest = std::fs::read(root.join(MANIFEST))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| ApiError::NotFound(format!("no snapshot {name}")))?;
        let file = manifest
            .files
            .iter()
            .find(|f| f.path == path)
            .ok_or_else(|| ApiError::NotFound(format!("snapshot {name} has no file {path}")))?;
        if offset >= file.size {
            // Nothing left; and seeking past i64::MAX would fail as if the disk had.
            return Ok(Vec::new());
        }
        let len = (file.size - offset).min(CHUNK_BYTES);
        let mut f = std::fs::File::open(root.join(&file.path))
            .map_err(|e| ApiError::Internal(format!("opening {path} of snapshot {name}: {e}")))?;
        f.seek(SeekFrom::Start(offset)).map_err(|e| ApiError::Internal(e.to_string()))?;
        let mut buf = Vec::with_capacity(len as usize);
        f.take(len).read_to_end(&mut buf).map_err(|e| ApiError::Internal(e.to_string()))?;
        Ok(buf)
    })
    .await
    .map_err(ApiError::from_join)??;
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response())
}

/// `DELETE /api/v1/admin/snapshots/{name}`: frees the links (the space returns once the stores
/// dropped the originals too).
pub(crate) async fn delete(
    State(state): State<AppState>,
    UrlPath(name): UrlPath<String>,
) -> Result<Json<serde_json::Value>, PromError> {
    check_name(&name)?;
    let dir = data_dir(&state)?.join(SNAPSHOTS_DIR).join(&name);
    tokio::task::spawn_blocking(move || match std::fs::remove_dir_all(&dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(ApiError::NotFound(format!("no snapshot {name}"))),
        Err(e) => Err(ApiError::Internal(format!("deleting snapshot {name}: {e}"))),
    })
    .await
    .map_err(ApiError::from_join)??;
    Ok(Json(json!({"status": "success"})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_every_file_but_temporaries_and_records_sizes_at_snapshot_time() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("indexer/wal")).unwrap();
        std::fs::create_dir_all(d.join("tsdb/.tmp-block")).unwrap();
        std::fs::write(d.join("indexer/wal/0.wal"), b"abc").unwrap();
        std::fs::write(d.join("indexer/meta.json"), b"{}").unwrap();
        std::fs::write(d.join("indexer/meta.json.tmp"), b"x").unwrap();
        std::fs::write(d.join("tsdb/.tmp-block/x"), b"x").unwrap();
        let m = take(d, "s1").unwrap();
        let paths: Vec<&str> = m.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["indexer/meta.json", "indexer/wal/0.wal"]);
        assert_eq!(m.files[1].size, 3);
        // A WAL appended after the snapshot grows through the link; the manifest keeps the size.
        use std::io::Write;
        std::fs::OpenOptions::new().append(true).open(d.join("indexer/wal/0.wal")).unwrap().write_all(b"def").unwrap();
        let again: Manifest =
            serde_json::from_slice(&std::fs::read(d.join("snapshots/s1").join(MANIFEST)).unwrap()).unwrap();
        assert_eq!(again, m);
        // A second snapshot never contains the first.
        let m2 = take(d, "s2").unwrap();
        assert!(m2.files.iter().all(|f| !f.path.starts_with("snapshots")));
        assert_eq!(m2.files[1].size, 6);
    }

    #[test]
    fn names_cannot_escape() {
        assert!(check_name("20261127T101500Z-0000abcd").is_ok());
        for bad in ["", "..", "a/b", "a%2f", "x".repeat(65).as_str()] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}
