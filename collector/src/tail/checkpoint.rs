//! Read positions that survive restarts. A file's checkpoint holds the offset up to which its lines
//! were acknowledged by the sink (never merely read), keyed by the file's identity so a renamed file
//! is still recognised and a reused inode is not.
//!
//! On disk: `checkpoints.json`, `{"version":1,"files":[...]}`, replaced atomically (temp file,
//! fsync, rename, fsync of the directory) so a crash leaves the old or the new version.
//!
//! A batch's sent offsets are saved *before* the batch goes to the sink (write-ahead, one save
//! shared by every batch waiting for it), so after a kill the saved `sent_offset` covers every
//! line handed over, acknowledged since the last save or not: the lines read again up to it are
//! exactly what `tarsier_collector_duplicates_after_restart` counts.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::ship::{AckTarget, FileAck};
use crate::tail::file::{Fingerprint, Identity};

/// Version of the checkpoint file layout; bump on incompatible changes.
pub(crate) const CHECKPOINT_VERSION: u32 = 1;
/// Name of the checkpoint file inside the state directory.
pub(crate) const CHECKPOINT_FILE: &str = "checkpoints.json";

/// One file's acknowledged position.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct CheckpointEntry {
    pub dev: u64,
    pub ino: u64,
    /// How many leading bytes the fingerprint covers (up to 1 KiB).
    pub fingerprint_len: u64,
    pub fingerprint: u64,
    pub offset: u64,
    /// Highest offset whose lines were handed to a sink, acknowledged or not: after a crash the
    /// lines between `offset` and this are read again and may be duplicates (counted).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub sent_offset: u64,
    /// Path when last seen; informational (identity is dev, inode and fingerprint).
    pub path: String,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

impl CheckpointEntry {
    pub(crate) fn identity(&self) -> Identity {
        Identity { dev: self.dev, ino: self.ino }
    }
}

#[derive(Serialize, Deserialize)]
struct CheckpointFile {
    version: u32,
    files: Vec<CheckpointEntry>,
}

/// Reads `state_dir/checkpoints.json`; a missing file means no checkpoints.
pub(crate) fn load(state_dir: &Path) -> Result<Vec<CheckpointEntry>, Error> {
    let path = state_dir.join(CHECKPOINT_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("reading checkpoints", path, e)),
    };
    let file: CheckpointFile =
        serde_json::from_slice(&bytes).map_err(|e| Error::Checkpoint { path: path.clone(), reason: e.to_string() })?;
    if file.version != CHECKPOINT_VERSION {
        return Err(Error::Checkpoint {
            path,
            reason: format!("version {} is not supported (expected {CHECKPOINT_VERSION})", file.version),
        });
    }
    Ok(file.files)
}

/// Atomically replaces `state_dir/checkpoints.json` with `entries`.
pub(crate) fn save(state_dir: &Path, entries: &[CheckpointEntry]) -> Result<(), Error> {
    let path = state_dir.join(CHECKPOINT_FILE);
    let tmp = state_dir.join(format!("{CHECKPOINT_FILE}.tmp"));
    let body = serde_json::to_vec(&CheckpointFile { version: CHECKPOINT_VERSION, files: entries.to_vec() })
        .map_err(|e| Error::Checkpoint { path: path.clone(), reason: e.to_string() })?;
    let write = || -> std::io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(&body)?;
        f.sync_all()
    };
    write().map_err(|e| Error::io("writing checkpoints", &tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| Error::io("replacing checkpoints", &path, e))?;
    File::open(state_dir).and_then(|d| d.sync_all()).map_err(|e| Error::io("syncing directory", state_dir, e))
}

struct Tracked {
    entry: CheckpointEntry,
    /// Released by the reader; forgotten once everything it read was acknowledged.
    final_offset: Option<u64>,
    /// Released while its file still exists (no longer matched by the globs): once acknowledged
    /// the entry goes back to `unclaimed` instead of being forgotten.
    keep: bool,
}

#[derive(Default)]
struct StoreInner {
    open: HashMap<u64, Tracked>,
    /// Loaded entries no open file claimed yet (kept until their file is gone).
    unclaimed: HashMap<Identity, CheckpointEntry>,
    /// Bumped by every `sent` that raised a sent offset; a save covers the value it snapshotted.
    sent_changes: u64,
}

impl StoreInner {
    /// Stops tracking a released, fully acknowledged file.
    fn finish(&mut self, file: u64) {
        if let Some(t) = self.open.remove(&file)
            && t.keep
        {
            let mut entry = t.entry;
            entry.sent_offset = 0;
            self.unclaimed.insert(entry.identity(), entry);
        }
    }
}

/// The live checkpoints, shared by the reader (registers files), the shippers (apply acks) and
/// the saver.
pub(crate) struct CheckpointStore {
    dir: PathBuf,
    inner: Mutex<StoreInner>,
    dirty: AtomicBool,
    /// Serialises saves (they share the temp file) and holds the highest `sent_changes` saved.
    saved: Mutex<u64>,
    /// Copy of `saved` readable without waiting for a save in progress (async callers).
    saved_changes: AtomicU64,
}

impl CheckpointStore {
    pub(crate) fn new(dir: PathBuf, loaded: Vec<CheckpointEntry>) -> Self {
        let unclaimed = loaded.into_iter().map(|e| (e.identity(), e)).collect();
        Self {
            dir,
            inner: Mutex::new(StoreInner { open: HashMap::new(), unclaimed, sent_changes: 0 }),
            dirty: AtomicBool::new(false),
            saved: Mutex::new(0),
            saved_changes: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, StoreInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes the loaded checkpoint of `identity`, if any.
    pub(crate) fn claim(&self, identity: Identity) -> Option<CheckpointEntry> {
        self.lock().unclaimed.remove(&identity)
    }

    /// Drops loaded checkpoints whose file no longer exists under its recorded identity.
    pub(crate) fn prune_unclaimed(&self, exists: impl Fn(&CheckpointEntry) -> bool) {
        let mut inner = self.lock();
        let before = inner.unclaimed.len();
        inner.unclaimed.retain(|_, e| exists(e));
        if inner.unclaimed.len() != before {
            self.dirty.store(true, Ordering::Release);
        }
    }

    /// Starts tracking an opened file at its acknowledged offset.
    pub(crate) fn register(&self, file: u64, entry: CheckpointEntry) {
        self.lock().open.insert(file, Tracked { entry, final_offset: None, keep: false });
        self.dirty.store(true, Ordering::Release);
    }

    /// Records a (longer) fingerprint of an open file.
    pub(crate) fn set_fingerprint(&self, file: u64, fingerprint: Fingerprint) {
        if let Some(t) = self.lock().open.get_mut(&file) {
            t.entry.fingerprint_len = fingerprint.len;
            t.entry.fingerprint = fingerprint.hash;
            self.dirty.store(true, Ordering::Release);
        }
    }

    /// The reader let go of `file` after reading up to `final_offset`; `keep` keeps its entry
    /// (as unclaimed, until the file is gone) once acknowledged.
    pub(crate) fn release(&self, file: u64, final_offset: u64, keep: bool) {
        let mut inner = self.lock();
        if let Some(t) = inner.open.get_mut(&file) {
            t.keep = keep;
            if t.entry.offset >= final_offset {
                inner.finish(file);
            } else {
                t.final_offset = Some(final_offset);
            }
        }
        self.dirty.store(true, Ordering::Release);
    }

    /// The acknowledged offset of an open file.
    #[cfg(test)]
    pub(crate) fn offset(&self, file: u64) -> Option<u64> {
        self.lock().open.get(&file).map(|t| t.entry.offset)
    }

    /// Current checkpoints, for saving.
    pub(crate) fn snapshot(&self) -> Vec<CheckpointEntry> {
        self.snapshot_with_changes().0
    }

    /// Current checkpoints and the `sent_changes` they include, read under one lock.
    fn snapshot_with_changes(&self) -> (Vec<CheckpointEntry>, u64) {
        let inner = self.lock();
        let mut entries: Vec<CheckpointEntry> =
            inner.open.values().map(|t| t.entry.clone()).chain(inner.unclaimed.values().cloned()).collect();
        entries.sort_by_key(|e| (e.dev, e.ino));
        (entries, inner.sent_changes)
    }

    /// Whether a change waits for a save: the periodic saver skips its blocking-pool hand-off
    /// (a thread wake-up every second) when nothing changed, as in a scrape-only collector.
    pub(crate) fn is_dirty(&self) -> bool {
        self.dirty.load(Ordering::Acquire)
    }

    /// Saves if anything changed since the last save (blocking: disk and fsync).
    pub(crate) fn save_if_dirty(&self) -> Result<(), Error> {
        let mut saved = self.saved.lock().unwrap_or_else(|e| e.into_inner());
        if self.dirty.swap(false, Ordering::AcqRel) { self.save_locked(&mut saved) } else { Ok(()) }
    }

    /// Saves unless a save since sent change `changes` already covers it (blocking). Callers
    /// waiting at once share one save: the first one's snapshot includes the others' changes.
    pub(crate) fn save_covering(&self, changes: u64) -> Result<(), Error> {
        let mut saved = self.saved.lock().unwrap_or_else(|e| e.into_inner());
        if *saved >= changes {
            return Ok(());
        }
        self.dirty.store(false, Ordering::Release);
        self.save_locked(&mut saved)
    }

    fn save_locked(&self, saved: &mut u64) -> Result<(), Error> {
        let (entries, changes) = self.snapshot_with_changes();
        if let Err(e) = save(&self.dir, &entries) {
            self.dirty.store(true, Ordering::Release);
            return Err(e);
        }
        *saved = (*saved).max(changes);
        self.saved_changes.store(*saved, Ordering::Release);
        Ok(())
    }
}

impl AckTarget for CheckpointStore {
    fn sent(self: Arc<Self>, acks: &[FileAck]) -> Option<BoxFuture<'static, ()>> {
        let changes = {
            let mut inner = self.lock();
            let mut raised = false;
            for ack in acks {
                if let Some(t) = inner.open.get_mut(&ack.file)
                    && ack.offset > t.entry.sent_offset
                {
                    t.entry.sent_offset = ack.offset;
                    raised = true;
                }
            }
            if raised {
                inner.sent_changes += 1;
                self.dirty.store(true, Ordering::Release);
            }
            inner.sent_changes
        };
        if self.saved_changes.load(Ordering::Acquire) >= changes {
            return None;
        }
        Some(Box::pin(async move {
            // A failed save only loosens the duplicate count (it may under-count): deliver anyway.
            match tokio::task::spawn_blocking(move || self.save_covering(changes)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "saving sent offsets before sending failed"),
                Err(e) => tracing::warn!(error = %e, "checkpoint save task failed"),
            }
        }))
    }

    fn apply(&self, acks: &[FileAck]) {
        if acks.is_empty() {
            return;
        }
        let mut inner = self.lock();
        for ack in acks {
            let Some(t) = inner.open.get_mut(&ack.file) else { continue };
            // Set, not max: after a copytruncate the offset legitimately goes back.
            t.entry.offset = ack.offset;
            if t.entry.sent_offset <= ack.offset {
                t.entry.sent_offset = 0;
            }
            if t.final_offset.is_some_and(|f| ack.offset >= f) {
                inner.finish(ack.file);
            }
        }
        self.dirty.store(true, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(ino: u64, offset: u64) -> CheckpointEntry {
        CheckpointEntry {
            dev: 1,
            ino,
            fingerprint_len: 3,
            fingerprint: 9,
            offset,
            sent_offset: 0,
            path: format!("/f{ino}"),
        }
    }

    #[test]
    fn save_then_load_round_trips_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(dir.path()).unwrap().is_empty());
        save(dir.path(), &[entry(1, 10), entry(2, 20)]).unwrap();
        save(dir.path(), &[entry(1, 11)]).unwrap();
        assert_eq!(load(dir.path()).unwrap(), vec![entry(1, 11)]);
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from(CHECKPOINT_FILE)]);
    }

    #[test]
    fn a_crash_before_rename_keeps_the_previous_version() {
        let dir = tempfile::tempdir().unwrap();
        save(dir.path(), &[entry(1, 10)]).unwrap();
        // A crash mid-save leaves a half-written temp file; loading ignores it.
        std::fs::write(dir.path().join(format!("{CHECKPOINT_FILE}.tmp")), b"{\"version\":1,\"fi").unwrap();
        assert_eq!(load(dir.path()).unwrap(), vec![entry(1, 10)]);
        save(dir.path(), &[entry(1, 12)]).unwrap();
        assert_eq!(load(dir.path()).unwrap(), vec![entry(1, 12)]);
    }

    #[test]
    fn unknown_versions_and_garbage_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CHECKPOINT_FILE), br#"{"version":99,"files":[]}"#).unwrap();
        assert!(load(dir.path()).unwrap_err().to_string().contains("version 99"));
        std::fs::write(dir.path().join(CHECKPOINT_FILE), b"garbage").unwrap();
        assert!(load(dir.path()).is_err());
    }

    #[test]
    fn released_files_are_forgotten_once_fully_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::new(dir.path().to_path_buf(), vec![entry(7, 5)]);
        assert_eq!(store.claim(Identity { dev: 1, ino: 7 }).map(|e| e.offset), Some(5));
        store.register(1, entry(7, 5));
        store.apply(&[FileAck { file: 1, offset: 50 }]);
        assert_eq!(store.offset(1), Some(50));
        store.release(1, 80, false);
        assert_eq!(store.snapshot().len(), 1, "not yet fully acknowledged");
        store.apply(&[FileAck { file: 1, offset: 80 }]);
        assert!(store.snapshot().is_empty());
        assert!(store.is_dirty(), "the periodic saver must see the change");
        store.save_if_dirty().unwrap();
        assert!(!store.is_dirty(), "saved: nothing for the periodic saver to do");
        assert!(load(dir.path()).unwrap().is_empty());
    }

    #[test]
    fn a_claimed_sent_offset_is_kept_until_acknowledged_again() {
        // A restart killed before it sent the lines again must leave them counted at the next.
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::new(dir.path().to_path_buf(), Vec::new());
        store.register(1, CheckpointEntry { sent_offset: 40, ..entry(7, 5) });
        store.save_if_dirty().unwrap();
        assert_eq!(load(dir.path()).unwrap()[0].sent_offset, 40);
        store.apply(&[FileAck { file: 1, offset: 20 }]);
        assert_eq!(store.snapshot()[0].sent_offset, 40, "partly acknowledged");
        store.apply(&[FileAck { file: 1, offset: 40 }]);
        assert_eq!(store.snapshot()[0].sent_offset, 0);
    }

    #[test]
    fn files_released_while_still_present_keep_their_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::new(dir.path().to_path_buf(), Vec::new());
        store.register(1, entry(7, 5));
        store.release(1, 80, true);
        store.apply(&[FileAck { file: 1, offset: 80 }]);
        let kept = store.claim(Identity { dev: 1, ino: 7 }).expect("kept as unclaimed");
        assert_eq!(kept.offset, 80, "a later match resumes after the acknowledged lines");
        store.register(2, entry(8, 30));
        store.release(2, 30, true);
        assert_eq!(store.claim(Identity { dev: 1, ino: 8 }).map(|e| e.offset), Some(30), "already acknowledged");
    }
}
