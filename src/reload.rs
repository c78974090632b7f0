//! Configuration hot reload. Three triggers ask for one: a change in the config file's directory
//! (or a rule or template file's), SIGHUP, and `POST /-/reload`. A Kubernetes ConfigMap update does
//! not write the file: kubelet writes a new timestamped directory and renames the `..data` symlink
//! onto it, so the reloader watches directories (not files) and compares a SHA-256 over the config,
//! the rule files, the notifications file and its template files to skip events that changed
//! nothing.
//!
//! A new configuration is parsed and validated in full first; a bad one is refused, logged, counted
//! in `tarsier_config_last_reload_successful` and shown by `/api/v1/status/runtimeinfo`, and the old
//! one keeps running. A good one applies everything but the keys in [`RESTART_ONLY`] — `log.level`;
//! the `alerting` section (rule files are reloaded keeping alert state; the notifications file's
//! routes, receivers, templates, inhibit rules and time intervals are swapped keeping alerts,
//! groups, silences and the notification log); the collector's section (`Collector::reload`,
//! `shipping` included); `agent` (new sinks replace the agent's, in-flight batches are
//! retried through it); the `server` request limits (`AppState::set_config`) — and names each
//! changed restart-only key with its reason: the process keeps running with the old values for
//! those.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use notify::Watcher;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use query_ui::runtime::{ReloadRequest, Runtime};
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, watch};

use crate::app::{Role, effective_config};
use crate::cli::RoleArgs;
use crate::config::Config;

/// Pause after a file event before reading, so a burst (kubelet's write + symlink swap) is one
/// reload.
const SETTLE: Duration = Duration::from_millis(100);

/// The reload metrics, Prometheus's names with Tarsier's prefix.
#[derive(Clone, Default)]
pub struct ReloadMetrics {
    successful: Gauge,
    success_timestamp: Gauge<f64, AtomicU64>,
}

impl ReloadMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "tarsier_config_last_reload_successful",
            "Whether the last configuration reload attempt was successful",
            self.successful.clone(),
        );
        registry.register(
            "tarsier_config_last_reload_success_timestamp_seconds",
            "Timestamp of the last successful configuration reload",
            self.success_timestamp.clone(),
        );
    }

    fn success(&self) {
        self.successful.set(1);
        self.success_timestamp.set(chrono::Utc::now().timestamp_millis() as f64 / 1000.0);
    }

    fn failure(&self) {
        self.successful.set(0);
    }
}

/// Every key whose change needs a restart, with the reason the log line gives: the one list
/// (`needsRestart`, the log, README's reload table follow it). Everything else applies live. A
/// key names a whole section when none of it can change while running.
pub const RESTART_ONLY: &[(&str, &str)] = &[
    ("data_dir", "stores and state files are opened there at start"),
    ("log.format", "the log output format is set up once at start"),
    ("indexer", "the log store is opened with these settings at start"),
    ("tsdb", "the metric store is opened with these settings at start"),
    ("server.listen", "the listener is bound at start"),
    ("server.tls", "the listener's TLS is set up at start (renewed certificate files are still re-read)"),
    ("server.external_metrics", "its listener and metric rules are set up at start"),
    ("server.auth", "the token check is set up at start (the tokens file itself is re-read every reload_interval)"),
    ("collector.shipping.disk_buffer.enabled", "the disk buffers are opened (or not) at start"),
    ("collector.shipping.disk_buffer.path", "moving the disk buffer would strand the batches it holds"),
    ("runtime", "the async runtime's threads are started once"),
];

/// `a.b.c` → the JSON pointer `/a/b/c`.
fn pointer(key: &str) -> String {
    format!("/{}", key.replace('.', "/"))
}

fn to_json(config: &Config) -> serde_json::Value {
    serde_json::to_value(config).unwrap_or_default()
}

/// The keys of [`RESTART_ONLY`] whose value differs between `old` and `new`.
pub fn restart_keys(old: &Config, new: &Config) -> Vec<String> {
    let (old, new) = (to_json(old), to_json(new));
    let mut keys: Vec<String> = RESTART_ONLY
        .iter()
        .filter(|(key, _)| old.pointer(&pointer(key)) != new.pointer(&pointer(key)))
        .map(|(key, _)| key.to_string())
        .collect();
    keys.sort();
    keys
}

/// Why a key from [`restart_keys`] cannot change while running (for the log line).
fn restart_reason(key: &str) -> &'static str {
    RESTART_ONLY.iter().find(|(k, _)| *k == key).map_or("read once at start", |(_, reason)| reason)
}

/// What of `new` runs after a reload of `current`: `new` with every [`RESTART_ONLY`] key as
/// `current` has it.
fn applied(current: &Config, new: &Config) -> Result<Config, String> {
    let (running, mut next) = (to_json(current), to_json(new));
    for (key, _) in RESTART_ONLY {
        let (parent, field) = key.rsplit_once('.').map_or(("", *key), |(p, f)| (p, f));
        let parent = if parent.is_empty() { String::new() } else { pointer(parent) };
        let kept = running.pointer(&pointer(key)).cloned();
        if let Some(serde_json::Value::Object(section)) = next.pointer_mut(&parent) {
            match kept {
                Some(value) => section.insert(field.to_string(), value),
                None => section.remove(field),
            };
        }
    }
    serde_json::from_value(next).map_err(|e| format!("keeping the restart-only keys: {e}"))
}

/// The glob patterns of the files a reload depends on besides the config file: rule files and the
/// notifications file's `templates:` (`templates`, resolved against that file's directory).
fn globs<'a>(config: &'a Config, templates: &'a [String]) -> impl Iterator<Item = &'a String> {
    config.alerting.rule_files.iter().chain(&config.alerting.log_rule_files).chain(templates)
}

/// Hash of the config file, every rule file it names, the notifications file and its template
/// files: equal → nothing to reload.
fn fingerprint(config_path: &Path, config: &Config, templates: &[String]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(std::fs::read(config_path).unwrap_or_default());
    if let Some(path) = &config.alerting.notifications_file {
        h.update(path.as_os_str().as_encoded_bytes());
        h.update(std::fs::read(path).unwrap_or_default());
    }
    for pattern in globs(config, templates) {
        let mut paths: Vec<PathBuf> = glob::glob(pattern).map(|g| g.flatten().collect()).unwrap_or_default();
        paths.sort();
        for p in paths {
            h.update(p.as_os_str().as_encoded_bytes());
            h.update(std::fs::read(&p).unwrap_or_default());
        }
    }
    h.finalize().into()
}

/// Directories to watch: the config file's, the notifications file's and the fixed prefix of each
/// rule and template glob.
fn watch_dirs(config_path: &Path, config: &Config, templates: &[String]) -> Vec<PathBuf> {
    let mut dirs = vec![config_path.parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf)];
    if let Some(dir) = config.alerting.notifications_file.as_deref().and_then(Path::parent)
        && !dir.as_os_str().is_empty()
        && !dirs.iter().any(|d| d == dir)
    {
        dirs.push(dir.to_path_buf());
    }
    for pattern in globs(config, templates) {
        let fixed: PathBuf = Path::new(pattern)
            .components()
            .take_while(|c| !c.as_os_str().to_string_lossy().contains(['*', '?', '[']))
            .collect();
        let dir = if fixed.is_dir() { fixed } else { fixed.parent().map(Path::to_path_buf).unwrap_or_default() };
        if !dir.as_os_str().is_empty() && !dirs.contains(&dir) {
            dirs.push(dir);
        }
    }
    dirs
}

/// The running reloader's inputs and the parts it reconfigures.
pub struct Reloader {
    pub role: Role,
    pub args: RoleArgs,
    pub config_path: PathBuf,
    pub current: Config,
    pub rules: Option<Arc<alerting::manager::RuleManager>>,
    /// The notifier, in the roles that run the stores (with an empty configuration when
    /// `alerting.notifications_file` is not set).
    pub notifier: Option<Arc<alerting::notify::Notifier>>,
    /// The running notification config's template globs (their files are watched too).
    pub templates: Vec<String>,
    /// The collector, in the roles that run one.
    pub collector: Option<collector::Reloader>,
    /// The agent's sink to the server (`agent` role), replaced when `agent` changes.
    pub agent_sink: Option<collector::SwitchableSink>,
    /// The HTTP layer's state, whose `server` limits a reload replaces.
    pub http: Option<query_ui::AppState>,
    pub runtime: Runtime,
    pub metrics: ReloadMetrics,
    /// The redacted configuration `/api/v1/status/config` shows, refreshed on each reload.
    pub config_yaml: query_ui::SharedText,
}

impl Reloader {
    /// Serves reload triggers until `stop` fires. File events come from notify's thread through a
    /// bounded channel of one: a pending trigger already covers later events.
    pub async fn run(mut self, mut requests: mpsc::Receiver<ReloadRequest>, mut stop: watch::Receiver<bool>) {
        self.metrics.success();
        let (file_tx, mut file_rx) = mpsc::channel::<()>(1);
        let mut watcher = match notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            // Not on access events: reading the files for their fingerprint raises those.
            if event.is_ok_and(|e| collector::is_change_event(&e)) {
                let _ = file_tx.try_send(());
            }
        }) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch the config directory; reload with SIGHUP or POST /-/reload");
                None
            }
        };
        let mut watched = Vec::new();
        self.rewatch(&mut watcher, &mut watched);
        let mut hup = hangup();
        let mut last = self.fingerprint().await.unwrap_or_default();
        loop {
            let answer = tokio::select! {
                _ = stop.changed() => return,
                Some(answer) = requests.recv() => Some(answer),
                Some(()) = file_rx.recv() => {
                    tokio::time::sleep(SETTLE).await;
                    while file_rx.try_recv().is_ok() {}
                    let now = self.fingerprint().await.unwrap_or(last);
                    if now == last {
                        continue;
                    }
                    tracing::info!(file = %self.config_path.display(), "configuration files changed; reloading");
                    None
                }
                _ = recv_hangup(&mut hup) => {
                    tracing::info!(signal = "SIGHUP", "reloading the configuration");
                    None
                }
            };
            let result = self.reload().await;
            last = self.fingerprint().await.unwrap_or(last);
            self.rewatch(&mut watcher, &mut watched);
            if let Some(answer) = answer {
                let _ = answer.send(result);
            }
        }
    }

    /// [`fingerprint`] of what runs now, on the blocking pool.
    async fn fingerprint(&self) -> Option<[u8; 32]> {
        let (path, current, templates) = (self.config_path.clone(), self.current.clone(), self.templates.clone());
        tokio::task::spawn_blocking(move || fingerprint(&path, &current, &templates)).await.ok()
    }

    fn rewatch(&self, watcher: &mut Option<notify::RecommendedWatcher>, watched: &mut Vec<PathBuf>) {
        let Some(w) = watcher else { return };
        for dir in watch_dirs(&self.config_path, &self.current, &self.templates) {
            if !watched.contains(&dir) {
                match w.watch(&dir, notify::RecursiveMode::NonRecursive) {
                    Ok(()) => watched.push(dir),
                    Err(e) => tracing::warn!(dir = %dir.display(), error = %e, "cannot watch directory for reloads"),
                }
            }
        }
    }

    /// Loads, validates and applies the configuration; on error the old one stays.
    pub async fn reload(&mut self) -> Result<(), String> {
        let (role, args) = (self.role, self.args.clone());
        let loaded = tokio::task::spawn_blocking(move || effective_config(role, &args)).await;
        let new = match loaded {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return Err(self.refuse(format!("{e:#}"))),
            Err(e) => return Err(self.refuse(format!("reload task failed: {e}"))),
        };
        // Everything that can be refused is checked before anything is applied.
        let next = match applied(&self.current, &new) {
            Ok(next) => next,
            Err(e) => return Err(self.refuse(e)),
        };
        let agent_sink = match &self.agent_sink {
            Some(_) if to_json(&self.current)["agent"] != to_json(&next)["agent"] => {
                let agent = next.agent.clone();
                match tokio::task::spawn_blocking(move || crate::app::agent_sink(&agent)).await {
                    Ok(Ok(sink)) => Some(sink),
                    Ok(Err(e)) => return Err(self.refuse(format!("{e:#}"))),
                    Err(e) => return Err(self.refuse(format!("reload task failed: {e}"))),
                }
            }
            _ => None,
        };
        let notify = match &self.notifier {
            Some(_) => {
                let alerting = new.alerting.clone();
                match tokio::task::spawn_blocking(move || alerting.notify_config_or_empty()).await {
                    Ok(Ok(c)) => Some(c),
                    Ok(Err(e)) => return Err(self.refuse(format!("alerting.notifications_file: {e}"))),
                    Err(e) => return Err(self.refuse(format!("reload task failed: {e}"))),
                }
            }
            None => None,
        };
        if let Some(collector) = &self.collector
            && let Err(e) = collector.check(&next.collector)
        {
            return Err(self.refuse(format!("{e}")));
        }
        if new.log.level != self.current.log.level
            && let Err(e) = crate::logging::set_level(&new.log.level)
        {
            return Err(self.refuse(e));
        }
        if let Some(manager) = self.rules.clone() {
            let rules = new.alerting.clone();
            match tokio::task::spawn_blocking(move || manager.load(&rules)).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(self.refuse(format!("alerting rules: {e}"))),
                Err(e) => return Err(self.refuse(format!("reload task failed: {e}"))),
            }
        }
        if let Some(collector) = &self.collector
            && let Err(e) = collector.reload(&next.collector).await
        {
            return Err(self.refuse(format!("{e}")));
        }
        if let (Some(switch), Some(sink)) = (&self.agent_sink, agent_sink) {
            switch.replace(sink);
            tracing::info!(server_url = %next.agent.server_url, "agent settings changed, requests from now on use them");
        }
        if let Some(http) = &self.http
            && next.server != self.current.server
        {
            http.set_config(next.server.clone());
            tracing::info!("server limits changed, requests from now on use them");
        }
        if let (Some(notifier), Some(notify)) = (&self.notifier, notify) {
            if let Err(e) = notifier.reload(&notify) {
                return Err(self.refuse(format!("alerting.notifications_file: {e}")));
            }
            self.templates = notify.templates;
        }
        let needs_restart = restart_keys(&self.current, &new);
        for key in &needs_restart {
            tracing::warn!(key = %key, reason = restart_reason(key), "configuration key changed but needs a restart; running with the old value until then");
        }
        // The live parts are applied; the rest keeps its running values, so remember the new file
        // only for the live sections and keep comparing restart keys against what runs.
        self.current = next;
        *self.config_yaml.write() = crate::redact::redacted_config_yaml(&self.current).into();
        self.metrics.success();
        self.runtime.record_success(needs_restart);
        tracing::info!(file = %self.config_path.display(), "configuration reloaded");
        Ok(())
    }

    fn refuse(&self, error: String) -> String {
        tracing::error!(file = %self.config_path.display(), error = %error, "configuration refused; the previous one keeps running");
        self.metrics.failure();
        self.runtime.record_failure(error.clone());
        error
    }
}

#[cfg(unix)]
type Hangup = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangup = Option<()>;

#[cfg(unix)]
fn hangup() -> Hangup {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .map_err(|e| tracing::warn!(error = %e, "cannot listen for SIGHUP"))
        .ok()
}

#[cfg(not(unix))]
fn hangup() -> Hangup {
    None
}

async fn recv_hangup(hup: &mut Hangup) {
    #[cfg(unix)]
    if let Some(s) = hup {
        s.recv().await;
        return;
    }
    let _ = hup;
    std::future::pending::<()>().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_keys_name_what_changed() {
        let old = Config::default();
        let mut new = old.clone();
        assert!(restart_keys(&old, &new).is_empty());
        new.server.listen = "0.0.0.0:1".into();
        new.log.level = "debug".into();
        new.alerting.rule_files = vec!["/x/*.yaml".into()];
        new.tsdb.retention = Duration::from_secs(3600);
        assert_eq!(restart_keys(&old, &new), ["server.listen", "tsdb"]);

        let mut new = old.clone();
        new.collector.tail.include = vec!["/var/log/*.log".into()];
        new.collector.tail.exclude = vec![];
        new.collector.scrape_configs = vec![serde_yaml_ng::from_str("job_name: x").unwrap()];
        new.collector.global.scrape_interval = Duration::from_secs(5);
        assert!(restart_keys(&old, &new).is_empty(), "scrape jobs and tail globs are live");
        assert_eq!(applied(&old, &new).unwrap().collector, new.collector);
        new.collector.tail.start_at = collector::StartAt::End;
        new.collector.tail.format = collector::LogFormat::Cri;
        new.collector.tail.labels.insert("team".into(), "x".into());
        new.collector.tail.max_open_files = 3;
        new.collector.signals.enabled = true;
        new.collector.tenant = "other".into();
        new.collector.shipping.batch_max_lines = 7;
        new.collector.shipping.disk_buffer.max_bytes = 1 << 20;
        new.agent.server_url = "http://elsewhere:1".into();
        new.server.max_body_bytes = 1000;
        new.server.log_query_timeout = Duration::from_secs(3);
        assert!(restart_keys(&old, &new).is_empty(), "tail, signals, tenant, shipping, agent, limits are live");
        let next = applied(&old, &new).unwrap();
        assert_eq!(next.collector, new.collector);
        assert_eq!((next.server, next.agent.server_url), (new.server.clone(), new.agent.server_url.clone()));

        new.collector.shipping.disk_buffer.enabled = !old.collector.shipping.disk_buffer.enabled;
        new.collector.shipping.disk_buffer.path = Some("/elsewhere".into());
        new.server.max_concurrent_queries = 1;
        new.server.max_tail_connections = 2;
        new.server.tls = Some(serde_yaml_ng::from_str("{cert_file: /c, key_file: /k}").unwrap());
        assert_eq!(
            restart_keys(&old, &new),
            ["collector.shipping.disk_buffer.enabled", "collector.shipping.disk_buffer.path", "server.tls"]
        );
        let next = applied(&old, &new).unwrap();
        assert_eq!(next.collector.shipping.disk_buffer.enabled, old.collector.shipping.disk_buffer.enabled);
        assert_eq!(next.collector.shipping.disk_buffer.path, None);
        assert_eq!(next.collector.shipping.batch_max_lines, 7, "the live keys of the section still apply");
        assert_eq!(
            (next.server.max_concurrent_queries, next.server.max_tail_connections),
            (1, 2),
            "the query and live tail slots resize live"
        );
        assert_eq!(next.server.tls, None);
        assert!(restart_keys(&old, &next).is_empty(), "what runs differs from the start in live keys only");
        assert!(restart_reason("collector.shipping.disk_buffer.path").contains("strand"));

        let mut new = old.clone();
        new.alerting.notifications_file = Some("/a.yaml".into());
        assert!(restart_keys(&old, &new).is_empty(), "a notifications file can be added live");
        assert_eq!(applied(&old, &new).unwrap().alerting.notifications_file, new.alerting.notifications_file);
        let old = new.clone();
        new.alerting.notifications_file = Some("/b.yaml".into());
        assert!(restart_keys(&old, &new).is_empty(), "another path is live");
        assert_eq!(applied(&old, &new).unwrap().alerting.notifications_file, new.alerting.notifications_file);
    }

    /// `applied` goes through JSON: every key of the example file (which has them all) survives.
    #[test]
    fn applied_round_trips_the_example_config() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/tarsier.example.yaml");
        let example = Config::load(&path).unwrap();
        let next = applied(&Config::default(), &example).unwrap();
        let keep: Vec<&str> = RESTART_ONLY.iter().map(|(k, _)| *k).collect();
        let (mut a, mut b) = (to_json(&next), to_json(&example));
        for key in keep {
            for v in [&mut a, &mut b] {
                if let Some(x) = v.pointer_mut(&pointer(key)) {
                    *x = serde_json::Value::Null;
                }
            }
        }
        assert_eq!(a, b);
        assert_eq!(to_json(&applied(&example, &example).unwrap()), to_json(&example));
    }

    #[test]
    fn watches_the_config_dir_and_rule_dirs() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("rules")).unwrap();
        let mut c = Config::default();
        c.alerting.rule_files = vec![format!("{}/rules/*.yaml", dir.path().display())];
        let templates = [format!("{}/templates/*.tmpl", dir.path().display())];
        std::fs::create_dir(dir.path().join("templates")).unwrap();
        let dirs = watch_dirs(&dir.path().join("tarsier.yaml"), &c, &templates);
        assert_eq!(dirs, [dir.path().to_path_buf(), dir.path().join("rules"), dir.path().join("templates")]);
    }
}
