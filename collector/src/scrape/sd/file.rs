//! `file_sd_configs`: target groups read from JSON or YAML files (globs), re-read when notify
//! reports a change in their directories and every `refresh_interval` in case an event was missed
//! (network filesystems, ConfigMap symlink swaps). A file that fails to parse keeps the groups it
//! last had, as in Prometheus; a file that disappears takes its targets with it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use model::{Labels, LabelsBuilder};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Sink, TargetGroup};
use crate::scrape::populate::ADDRESS;

/// The label naming the file a target came from.
pub(crate) const FILEPATH_LABEL: &str = "__meta_filepath";

/// One `file_sd_configs` entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileSdConfig {
    /// Glob patterns of target files; each must end in `.json`, `.yml` or `.yaml`.
    pub files: Vec<String>,
    /// How often the files are re-read even without a change event.
    #[serde(with = "humantime_serde")]
    pub refresh_interval: Duration,
}

impl Default for FileSdConfig {
    fn default() -> Self {
        FileSdConfig { files: Vec::new(), refresh_interval: super::default_file_refresh() }
    }
}

impl FileSdConfig {
    /// Checks what serde cannot; errors start with `key`.
    pub(crate) fn validate(&self, key: &str) -> Result<(), String> {
        if self.files.is_empty() {
            return Err(format!("{key}.files must not be empty"));
        }
        for (i, pattern) in self.files.iter().enumerate() {
            if !(pattern.ends_with(".json") || pattern.ends_with(".yml") || pattern.ends_with(".yaml")) {
                return Err(format!("{key}.files[{i}] {pattern:?} must end in .json, .yml or .yaml"));
            }
            glob::Pattern::new(pattern).map_err(|e| format!("{key}.files[{i}] {pattern:?}: {e}"))?;
        }
        if self.refresh_interval.is_zero() {
            return Err(format!("{key}.refresh_interval must be > 0"));
        }
        Ok(())
    }
}

/// A group as written in a file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileGroup {
    #[serde(default)]
    targets: Vec<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

/// Parses one file's groups (JSON for `.json`, YAML otherwise).
pub(crate) fn parse_file(path: &Path, text: &str) -> Result<Vec<TargetGroup>, String> {
    let groups: Vec<FileGroup> = if path.extension().is_some_and(|e| e == "json") {
        serde_json::from_str(text).map_err(|e| e.to_string())?
    } else if text.trim().is_empty() {
        Vec::new()
    } else {
        serde_yaml_ng::from_str(text).map_err(|e| e.to_string())?
    };
    let filepath = path.to_string_lossy();
    groups
        .into_iter()
        .enumerate()
        .map(|(i, g)| {
            let mut labels = LabelsBuilder::default();
            for (name, value) in &g.labels {
                if !model::labels::is_valid_label_name(name) {
                    return Err(format!("group {i}: {name:?} is not a valid label name"));
                }
                labels.set(name, value);
            }
            labels.set(FILEPATH_LABEL, filepath.as_ref());
            let targets = g
                .targets
                .iter()
                .map(|t| {
                    if t.is_empty() || t.contains('/') {
                        Err(format!("group {i}: {t:?} is not a valid host:port"))
                    } else {
                        Ok(Labels::from_pairs([(ADDRESS, t.as_str())]))
                    }
                })
                .collect::<Result<_, _>>()?;
            Ok(TargetGroup { source: format!("{filepath}:{i}"), targets, labels: labels.build() })
        })
        .collect()
}

/// Reads every file the patterns match; `last_good` keeps each file's groups for when a later
/// read fails.
fn refresh(patterns: &[String], last_good: &mut HashMap<PathBuf, Vec<TargetGroup>>) -> Vec<TargetGroup> {
    let mut paths = BTreeSet::new();
    for pattern in patterns {
        match glob::glob(pattern) {
            Ok(matches) => paths.extend(matches.flatten()),
            Err(error) => tracing::warn!(%pattern, %error, "bad file_sd pattern"),
        }
    }
    last_good.retain(|path, _| paths.contains(path));
    let mut groups = Vec::new();
    for path in paths {
        match std::fs::read_to_string(&path).map_err(|e| e.to_string()).and_then(|t| parse_file(&path, &t)) {
            Ok(parsed) => {
                last_good.insert(path.clone(), parsed);
            }
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "reading file_sd file failed; keeping its last targets")
            }
        }
        groups.extend(last_good.get(&path).cloned().unwrap_or_default());
    }
    groups
}

/// The directories to watch: each pattern's directory part before its first glob character.
fn watch_dirs(patterns: &[String]) -> BTreeSet<PathBuf> {
    patterns
        .iter()
        .filter_map(|p| {
            let path = Path::new(p);
            let mut dir = path.parent()?.to_path_buf();
            while dir.to_string_lossy().contains(['*', '?', '[']) {
                dir = dir.parent()?.to_path_buf();
            }
            Some(dir)
        })
        .collect()
}

/// Sends the groups now, then again after each change event or refresh tick when they differ.
pub(crate) async fn run(config: FileSdConfig, sink: Sink, cancel: CancellationToken) {
    let (event_tx, mut events) = mpsc::channel::<()>(1);
    let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok_and(|e| crate::is_change_event(&e)) {
            let _ = event_tx.try_send(());
        }
    });
    let _watcher = match watcher {
        Ok(mut watcher) => {
            use notify::Watcher;
            for dir in watch_dirs(&config.files) {
                if let Err(error) = watcher.watch(&dir, notify::RecursiveMode::NonRecursive) {
                    tracing::warn!(dir = %dir.display(), %error, "watching file_sd directory failed; relying on refresh_interval");
                }
            }
            Some(watcher)
        }
        Err(error) => {
            tracing::warn!(%error, "file_sd watcher unavailable; relying on refresh_interval");
            None
        }
    };
    let mut ticker = tokio::time::interval(config.refresh_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_good = HashMap::new();
    let mut sent: Option<Vec<TargetGroup>> = None;
    loop {
        let patterns = config.files.clone();
        let read = tokio::task::spawn_blocking(move || {
            let groups = refresh(&patterns, &mut last_good);
            (groups, last_good)
        })
        .await;
        let Ok((groups, kept)) = read else { return };
        last_good = kept;
        if sent.as_ref() != Some(&groups) {
            if !sink.send(groups.clone()).await {
                return;
            }
            sent = Some(groups);
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = ticker.tick() => {}
            _ = events.recv() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reading_a_watched_file_is_not_a_change() {
        use notify::event::{AccessKind, AccessMode, CreateKind, DataChange, EventKind, ModifyKind};
        let event = |kind| notify::Event::new(kind).add_path("/sd/x.json".into());
        assert!(!crate::is_change_event(&event(EventKind::Access(AccessKind::Open(AccessMode::Any)))));
        assert!(!crate::is_change_event(&event(EventKind::Access(AccessKind::Close(AccessMode::Read)))));
        assert!(crate::is_change_event(&event(EventKind::Access(AccessKind::Close(AccessMode::Write)))));
        assert!(crate::is_change_event(&event(EventKind::Modify(ModifyKind::Data(DataChange::Any)))));
        assert!(crate::is_change_event(&event(EventKind::Create(CreateKind::File))));
    }

    #[test]
    fn json_and_yaml_files_give_groups_with_the_file_path() {
        let json = r#"[{"targets":["a:1","b:2"],"labels":{"env":"prod"}},{"targets":["c:3"]}]"#;
        let groups = parse_file(Path::new("/sd/x.json"), json).unwrap();
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].source, "/sd/x.json:0");
        assert_eq!(groups[0].targets[1].get(ADDRESS), Some("b:2"));
        assert_eq!(groups[0].labels.get("env"), Some("prod"));
        assert_eq!(groups[1].labels.get(FILEPATH_LABEL), Some("/sd/x.json"));
        let yaml = "- targets: ['a:1']\n  labels:\n    team: db\n";
        let groups = parse_file(Path::new("/sd/y.yml"), yaml).unwrap();
        assert_eq!(groups[0].labels.get("team"), Some("db"));
        assert!(parse_file(Path::new("/sd/empty.yaml"), "").unwrap().is_empty());
    }

    #[test]
    fn bad_files_are_errors() {
        assert!(parse_file(Path::new("a.json"), r#"[{"targets":["a:1"],"label":{}}]"#).unwrap_err().contains("label"));
        assert!(parse_file(Path::new("a.json"), r#"[{"labels":{"1x":"v"}}]"#).unwrap_err().contains("1x"));
        assert!(parse_file(Path::new("a.yml"), "- targets: ['h/p']").unwrap_err().contains("h/p"));
    }

    #[test]
    fn a_broken_file_keeps_its_last_groups_and_a_deleted_one_loses_them() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.json"), dir.path().join("b.yaml"));
        std::fs::write(&a, r#"[{"targets":["a:1"]}]"#).unwrap();
        std::fs::write(&b, "- targets: ['b:1']").unwrap();
        let patterns = vec![format!("{}/*.json", dir.path().display()), format!("{}/*.yaml", dir.path().display())];
        let mut last_good = HashMap::new();
        assert_eq!(refresh(&patterns, &mut last_good).len(), 2);
        std::fs::write(&a, "[{").unwrap();
        let groups = refresh(&patterns, &mut last_good);
        assert_eq!(groups.len(), 2, "the broken file keeps a:1");
        assert!(groups.iter().any(|g| g.targets[0].get(ADDRESS) == Some("a:1")));
        std::fs::remove_file(&a).unwrap();
        let groups = refresh(&patterns, &mut last_good);
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].targets[0].get(ADDRESS), Some("b:1"));
    }

    #[test]
    fn validation_and_watch_dirs() {
        let config = FileSdConfig { files: vec!["/etc/sd/*.txt".into()], ..Default::default() };
        assert!(config.validate("k").unwrap_err().starts_with("k.files[0]"));
        assert!(FileSdConfig::default().validate("k").unwrap_err().starts_with("k.files"));
        let dirs = watch_dirs(&["/etc/sd/*.json".into(), "/etc/sd-*/x/*.yml".into()]);
        assert_eq!(dirs, BTreeSet::from([PathBuf::from("/etc/sd"), PathBuf::from("/etc")]));
    }
}
