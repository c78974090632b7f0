//! Crash-safe small files for silences and the notification log: write a temporary file, fsync,
//! rename over the old one, fsync the directory; always on the blocking pool.

use std::io::Write;
use std::path::PathBuf;

use crate::Error;

/// Reads a file, `None` when it does not exist.
pub(crate) async fn read(path: &std::path::Path) -> Result<Option<Vec<u8>>, Error> {
    let p = path.to_path_buf();
    tokio::task::spawn_blocking(move || match std::fs::read(&p) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::Io { path: p.display().to_string(), source }),
    })
    .await
    .expect("read task")
}

/// Replaces `path` with `bytes` atomically.
pub(crate) async fn write_atomic(path: PathBuf, bytes: Vec<u8>) -> Result<(), Error> {
    tokio::task::spawn_blocking(move || {
        let io = |source| Error::Io { path: path.display().to_string(), source };
        let tmp = path.with_extension("tmp");
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(&bytes).map_err(io)?;
        f.sync_all().map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(io)?;
        if let Some(dir) = path.parent() {
            std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
        }
        Ok(())
    })
    .await
    .expect("write task")
}
