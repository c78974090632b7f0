//! Which files to tail: the include globs expanded on start and every `rescan_interval`, minus the
//! exclude globs, plus file-system watches on the globs' fixed parent directories so new files and
//! writes are noticed promptly. Watch events only wake the reader; the periodic rescan stays the
//! safety net for missed events (inotify queue overflow, directories created later).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use globset::{GlobSet, GlobSetBuilder};

use crate::config::TailConfig;
use crate::error::Error;

/// Expands the configured globs.
pub(crate) struct Discovery {
    include: Vec<String>,
    exclude: GlobSet,
}

impl Discovery {
    pub(crate) fn new(config: &TailConfig) -> Result<Self, Error> {
        let mut exclude = GlobSetBuilder::new();
        for pattern in &config.exclude {
            let glob = globset::Glob::new(pattern)
                .map_err(|e| Error::Config(format!("collector.tail.exclude {pattern:?}: {e}")))?;
            exclude.add(glob);
        }
        let exclude = exclude.build().map_err(|e| Error::Config(format!("collector.tail.exclude: {e}")))?;
        Ok(Discovery { include: config.include.clone(), exclude })
    }

    /// Regular files matching an include glob and no exclude glob, sorted, without duplicates.
    pub(crate) fn scan(&self) -> Vec<PathBuf> {
        let mut found = Vec::new();
        for pattern in &self.include {
            let Ok(paths) = glob::glob(pattern) else { continue };
            for path in paths.flatten() {
                if !self.exclude.is_match(&path) && path.is_file() {
                    found.push(path);
                }
            }
        }
        found.sort();
        found.dedup();
        found
    }

    /// The deepest existing directory above each include glob's first wildcard.
    pub(crate) fn watch_roots(&self) -> Vec<PathBuf> {
        let mut roots: Vec<PathBuf> = self.include.iter().filter_map(|p| fixed_prefix_dir(p)).collect();
        roots.sort();
        roots.dedup();
        roots
    }
}

/// The longest leading directory of `pattern` without glob metacharacters that exists.
fn fixed_prefix_dir(pattern: &str) -> Option<PathBuf> {
    let mut dir = PathBuf::new();
    for component in Path::new(pattern).components() {
        let text = component.as_os_str().to_string_lossy();
        if text.contains(['*', '?', '[', '{']) {
            break;
        }
        dir.push(component);
    }
    // The pattern may name a file literally: watch its directory.
    while !dir.is_dir() {
        if !dir.pop() {
            return None;
        }
    }
    (!dir.as_os_str().is_empty()).then_some(dir)
}

/// Wakes the reader on file-system events. Creations, removals and renames also ask for a rescan.
#[derive(Clone)]
pub(crate) struct Wakeup {
    pub rescan: Arc<AtomicBool>,
    pub tx: std::sync::mpsc::SyncSender<()>,
}

impl Wakeup {
    pub(crate) fn wake(&self, rescan: bool) {
        if rescan {
            self.rescan.store(true, Ordering::Release);
        }
        // A full channel already holds a wakeup: nothing to add.
        let _ = self.tx.try_send(());
    }
}

/// Starts recursive watches on the watch roots; failures only cost latency, so they are logged.
pub(crate) fn watch(roots: &[PathBuf], wakeup: Wakeup) -> Option<notify::RecommendedWatcher> {
    use notify::{EventKind, RecursiveMode, Watcher};
    let mut watcher = match notify::recommended_watcher(move |event: notify::Result<notify::Event>| match event {
        Ok(event) => {
            let rescan = matches!(
                event.kind,
                EventKind::Create(_) | EventKind::Remove(_) | EventKind::Modify(notify::event::ModifyKind::Name(_))
            );
            wakeup.wake(rescan);
        }
        // Lost events: rescan to be safe.
        Err(_) => wakeup.wake(true),
    }) {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(error = %e, "file watching unavailable, relying on rescans");
            return None;
        }
    };
    for root in roots {
        if let Err(e) = watcher.watch(root, RecursiveMode::Recursive) {
            tracing::warn!(dir = %root.display(), error = %e, "cannot watch directory, relying on rescans");
        }
    }
    Some(watcher)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_applies_include_and_exclude() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["a.log", "b.log", "c.log.gz", "d.txt", "e.log.tmp"] {
            std::fs::write(dir.path().join(name), b"x\n").unwrap();
        }
        std::fs::create_dir(dir.path().join("sub.log")).unwrap();
        let config = TailConfig {
            include: vec![format!("{}/*.log*", dir.path().display()), format!("{}/a.log", dir.path().display())],
            ..TailConfig::default()
        };
        let discovery = Discovery::new(&config).unwrap();
        let names: Vec<String> =
            discovery.scan().iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
        assert_eq!(names, vec!["a.log", "b.log"]);
        assert_eq!(discovery.watch_roots(), vec![dir.path().to_path_buf()]);
    }

    #[test]
    fn watch_root_stops_at_the_first_wildcard() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("pods/ns_p_u/c")).unwrap();
        let pattern = format!("{}/pods/*/*/*.log", dir.path().display());
        assert_eq!(fixed_prefix_dir(&pattern), Some(dir.path().join("pods")));
        let missing = format!("{}/nothere/*.log", dir.path().display());
        assert_eq!(fixed_prefix_dir(&missing), Some(dir.path().to_path_buf()));
    }
}
