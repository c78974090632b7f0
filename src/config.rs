//! The one YAML configuration file: a section per role, each owned by its crate, plus the few
//! settings that belong to the process. `tarsier check-config` reports errors with the key path
//! and, from the YAML parser, the line and column.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The format version of the configuration file; a newer file is refused with a clear message.
pub const CONFIG_VERSION: u32 = 1;

/// The whole configuration file.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Format version of this file (currently 1).
    pub version: u32,
    /// Where every store keeps its data (`indexer/`, `tsdb/`, `collector/` below it).
    pub data_dir: PathBuf,
    /// Process logs.
    pub log: LogConfig,
    /// HTTP listener and request limits.
    pub server: query_ui::HttpConfig,
    /// Log tailing, scraping and shipping (the `agent` role, and part of `run`).
    pub collector: collector::CollectorConfig,
    /// The log store (the `server` role, and part of `run`).
    pub indexer: indexer::IndexerConfig,
    /// The metric store (the `server` role, and part of `run`).
    pub tsdb: tsdb::TsdbConfig,
    /// Where the `agent` role ships what it collects.
    pub agent: AgentConfig,
    /// Rule files evaluated by the server (PromQL and LogQL alerting and recording rules).
    pub alerting: alerting::manager::RulesConfig,
    /// The async runtime's threads.
    pub runtime: RuntimeConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            version: CONFIG_VERSION,
            data_dir: PathBuf::from("./data"),
            log: LogConfig::default(),
            server: query_ui::HttpConfig::default(),
            collector: collector::CollectorConfig::default(),
            indexer: indexer::IndexerConfig::default(),
            tsdb: tsdb::TsdbConfig::default(),
            agent: AgentConfig::default(),
            alerting: alerting::manager::RulesConfig::default(),
            runtime: RuntimeConfig::default(),
        }
    }
}

/// `runtime`: the threads of the async runtime. Its workers only multiplex sockets, timers and
/// light per-request work; disk writes, index commits, queries and request decoding run on the
/// blocking pool beside them. So fewer workers than cores is enough, and each worker fewer saves
/// the cross-thread wake-ups of an idle one: one worker instead of two cut `tarsier run`'s CPU
/// scraping 10 node_exporters by ~9% (benches/README.md).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeConfig {
    /// Worker threads; 0 (the default) is half the cores, at least one. `TOKIO_WORKER_THREADS`,
    /// when set, wins.
    pub worker_threads: usize,
}

/// Most worker threads `runtime.worker_threads` may ask for.
pub const MAX_WORKER_THREADS: usize = 1024;

impl RuntimeConfig {
    /// The number of workers to start: the configured one, or half of `cores` (at least one).
    pub fn effective_worker_threads(&self, cores: usize) -> usize {
        if self.worker_threads > 0 { self.worker_threads } else { (cores / 2).max(1) }
    }
}

/// Process log settings.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A `tracing` filter: `info`, `debug`, or per crate (`info,indexer=debug`). `RUST_LOG` wins.
    pub level: String,
    /// `text` for people, `json` for log pipelines.
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { level: "info".into(), format: LogFormat::Text }
    }
}

/// Output format of the process logs.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// The agent's upstream.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    /// Base URL of the Tarsier server (its `/loki/api/v1/push` and `/api/v1/write` are used).
    pub server_url: String,
    /// Timeout of one shipping request.
    #[serde(with = "humantime_serde")]
    pub request_timeout: std::time::Duration,
    /// TLS for an `https://` server_url, as Prometheus's `tls_config` (its CA, a client
    /// certificate re-read when it changes, `server_name`, `insecure_skip_verify`).
    pub tls_config: collector::TlsConfig,
    /// File holding the server's API token (`server.auth` on the server), sent as
    /// `Authorization: Bearer`; read for every request, so a rotated Secret applies at once.
    pub bearer_token_file: Option<std::path::PathBuf>,
    /// Several receivers at once (Tarsier, Loki, Elasticsearch), each acknowledging; empty: the
    /// one Tarsier server above. Set, it replaces `server_url`, `tls_config` and
    /// `bearer_token_file`, which must then stay unset.
    pub sinks: Vec<collector::SinkConfig>,
}

impl AgentConfig {
    /// The sinks the agent ships to: `sinks`, or the server of `server_url` as one `tarsier` sink.
    pub fn effective_sinks(&self) -> Vec<collector::SinkConfig> {
        if !self.sinks.is_empty() {
            return self.sinks.clone();
        }
        vec![collector::SinkConfig {
            url: self.server_url.clone(),
            tls_config: self.tls_config.clone(),
            bearer_token_file: self.bearer_token_file.clone(),
            ..Default::default()
        }]
    }
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            server_url: format!("http://{}", query_ui::config::DEFAULT_LISTEN),
            request_timeout: std::time::Duration::from_secs(30),
            tls_config: collector::TlsConfig::default(),
            bearer_token_file: None,
            sinks: Vec::new(),
        }
    }
}

/// One problem found in a configuration file.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    /// Dotted key path (`collector.tail.include[0]`), empty when the file as a whole is wrong.
    pub path: String,
    /// Line and column (1-based) where the parser found it, when known.
    pub location: Option<(usize, usize)>,
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.location, self.path.is_empty()) {
            (Some((line, col)), false) => write!(f, "line {line}, column {col}: {}: {}", self.path, self.message),
            (Some((line, col)), true) => write!(f, "line {line}, column {col}: {}", self.message),
            (None, false) => write!(f, "{}: {}", self.path, self.message),
            (None, true) => write!(f, "{}", self.message),
        }
    }
}

impl Config {
    /// Parses YAML text, then validates every section; returns every problem found.
    pub fn from_yaml(text: &str) -> Result<Config, Vec<ConfigError>> {
        let deserializer = serde_yaml_ng::Deserializer::from_str(text);
        let config: Config = match serde_path_to_error::deserialize(deserializer) {
            Ok(c) => c,
            Err(e) => {
                let path = e.path().to_string();
                let inner = e.into_inner();
                let location = inner.location().map(|l| (l.line(), l.column()));
                let mut message = inner.to_string();
                // The YAML error repeats the position and the path; both are reported separately.
                if let Some(cut) = message.find(" at line ") {
                    message.truncate(cut);
                }
                if let Some((prefix, rest)) = message.split_once(": ")
                    && !prefix.contains(' ')
                {
                    message = rest.to_string();
                }
                let path = if path == "." { String::new() } else { path };
                return Err(vec![ConfigError { path, location, message }]);
            }
        };
        let errors = config.validate();
        if errors.is_empty() { Ok(config) } else { Err(errors) }
    }

    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<Config, Vec<ConfigError>> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            vec![ConfigError {
                path: String::new(),
                location: None,
                message: format!("cannot read {}: {e}", path.display()),
            }]
        })?;
        Self::from_yaml(&text)
    }

    /// Checks every section, collecting all errors rather than stopping at the first.
    pub fn validate(&self) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        let mut push = |path: &str, message: String| {
            errors.push(ConfigError { path: path.to_string(), location: None, message });
        };
        if self.version != CONFIG_VERSION {
            push(
                "version",
                format!("this Tarsier reads configuration version {CONFIG_VERSION}, the file says {}", self.version),
            );
        }
        if self.data_dir.as_os_str().is_empty() {
            push("data_dir", "must not be empty".into());
        }
        if let Err(e) = crate::logging::parse_filter(&self.log.level) {
            push("log.level", format!("{:?} is not a valid filter: {e}", self.log.level));
        }
        if self.runtime.worker_threads > MAX_WORKER_THREADS {
            push(
                "runtime.worker_threads",
                format!("{} is more than {MAX_WORKER_THREADS}; use 0 for half the cores", self.runtime.worker_threads),
            );
        }
        // Each section's validate() names its own keys; prefix-free messages get the section name.
        let sections: [(&str, Result<(), String>); 5] = [
            ("alerting", self.alerting.validate()),
            ("server", self.server.validate()),
            ("collector", self.collector.validate().map_err(|e| e.to_string())),
            ("indexer", self.indexer.validate().map_err(|e| e.to_string())),
            ("tsdb", self.tsdb.validate().map_err(|e| e.to_string())),
        ];
        for (section, result) in sections {
            if let Err(message) = result {
                let (path, rest) = split_key_path(section, &message);
                push(&path, rest);
            }
        }
        // The tokens file is read as the notifications file is: `check-config` catches a bad one.
        if self.server.auth.enabled
            && self.server.auth.validate().is_ok()
            && let Err(message) = query_ui::auth::Auth::from_config(&self.server.auth)
        {
            let (path, rest) = split_key_path("server", &message);
            push(&path, rest);
        }
        if !self.agent.server_url.starts_with("http://") && !self.agent.server_url.starts_with("https://") {
            push("agent.server_url", format!("{:?} must start with http:// or https://", self.agent.server_url));
        }
        if let Err(message) = self.agent.tls_config.validate("agent.tls_config") {
            let (path, rest) = split_key_path("agent", &message);
            push(&path, rest);
        }
        if !self.agent.sinks.is_empty() {
            let default = AgentConfig::default();
            let tls_set =
                serde_json::to_value(&self.agent.tls_config).ok() != serde_json::to_value(&default.tls_config).ok();
            for (key, set) in [
                ("agent.server_url", self.agent.server_url != default.server_url),
                ("agent.tls_config", tls_set),
                ("agent.bearer_token_file", self.agent.bearer_token_file.is_some()),
            ] {
                if set {
                    push(key, "set it in agent.sinks, which replaces it when set".into());
                }
            }
            let takes_samples = self.agent.sinks.iter().any(|s| s.kind == collector::SinkKind::Tarsier);
            if !takes_samples && (!self.collector.scrape_configs.is_empty() || self.collector.signals.enabled) {
                push(
                    "agent.sinks",
                    "collector.scrape_configs and collector.signals need a sink of kind tarsier (the only kind that takes samples)".into(),
                );
            }
        }
        for message in collector::fanout::validate_sinks(&self.agent.sinks, "agent.sinks") {
            let (path, rest) = split_key_path("agent", &message);
            push(&path, rest);
        }
        errors
    }
}

/// Splits a section's validation message into the key path it names (`indexer.commit_interval`)
/// and the rest; messages that name no key are attributed to the section.
fn split_key_path(section: &str, message: &str) -> (String, String) {
    let needle = format!("{section}.");
    if let Some(start) = message.find(&needle) {
        let tail = &message[start..];
        let end = tail.find([':', ' ']).unwrap_or(tail.len());
        let rest = tail[end..].trim_start_matches(':').trim();
        return (tail[..end].to_string(), rest.to_string());
    }
    (section.to_string(), message.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_the_default_config() {
        let c = Config::from_yaml("{}").unwrap();
        assert_eq!(c.server.listen, query_ui::config::DEFAULT_LISTEN);
    }

    #[test]
    fn unknown_keys_are_reported_with_path_and_position() {
        let errs = Config::from_yaml("server:\n  listen: 127.0.0.1:1\n  lisen: x\n").unwrap_err();
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].path, "server.lisen");
        assert!(errs[0].message.contains("unknown field `lisen`"), "{}", errs[0]);
        assert_eq!(errs[0].location.map(|l| l.0), Some(3));
    }

    #[test]
    fn runtime_workers_default_to_half_the_cores_and_are_bounded() {
        let auto = Config::from_yaml("{}").unwrap().runtime;
        assert_eq!([1, 2, 8, 64].map(|cores| auto.effective_worker_threads(cores)), [1, 1, 4, 32]);
        let three = Config::from_yaml("runtime:\n  worker_threads: 3\n").unwrap().runtime;
        assert_eq!(three.effective_worker_threads(64), 3);
        let errs = Config::from_yaml("runtime:\n  worker_threads: 5000\n").unwrap_err();
        assert_eq!(errs[0].path, "runtime.worker_threads", "{errs:?}");
    }

    #[test]
    fn wrong_types_name_the_nested_key() {
        let errs = Config::from_yaml("server:\n  max_body_bytes: lots\n").unwrap_err();
        assert_eq!(errs[0].path, "server.max_body_bytes");
    }

    #[test]
    fn validation_collects_every_error() {
        let errs = Config::from_yaml("version: 2\nserver:\n  listen: nowhere\n").unwrap_err();
        let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
        assert!(paths.contains(&"version") && paths.contains(&"server.listen"), "{errs:?}");
    }

    #[test]
    fn section_errors_are_attributed_to_their_key() {
        let errs = Config::from_yaml("indexer:\n  commit_interval: 0s\nserver:\n  listen: nope\n").unwrap_err();
        let rendered: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert!(rendered.contains(&"indexer.commit_interval: must be > 0".to_string()), "{rendered:?}");
        assert!(rendered.iter().any(|e| e.starts_with("server.listen: \"nope\"")), "{rendered:?}");
        let errs = Config::from_yaml("collector:\n  tail:\n    rescan_interval: soon\n").unwrap_err();
        assert_eq!(errs[0].path, "collector.tail.rescan_interval");
        assert!(errs[0].message.starts_with("invalid value"), "{}", errs[0].message);
    }

    #[test]
    fn tls_keys_are_checked_with_their_path() {
        let c =
            Config::from_yaml("server:\n  tls:\n    cert_file: /c\n    key_file: /k\n    min_version: 1.3\n").unwrap();
        assert_eq!(c.server.tls.unwrap().min_version, query_ui::tls::TlsVersion::Tls13);
        let errs = Config::from_yaml("server:\n  tls:\n    cert_file: /c\n    key_file: /k\n    min_version: 1.1\n")
            .unwrap_err();
        assert_eq!(errs[0].path, "server.tls.min_version", "{errs:?}");
        let errs = Config::from_yaml("server:\n  tls:\n    cert_file: /c\n").unwrap_err();
        assert!(errs[0].path == "server.tls" && errs[0].message.contains("key_file"), "{errs:?}");
        let errs = Config::from_yaml("server:\n  tls:\n    cert_file: ''\n    key_file: /k\n").unwrap_err();
        assert_eq!(errs[0].to_string(), "server.tls.cert_file: must not be empty");
        let errs = Config::from_yaml("agent:\n  tls_config:\n    cert_file: /c\n").unwrap_err();
        assert_eq!(errs[0].to_string(), "agent.tls_config: cert_file and key_file must be configured together");
    }

    #[test]
    fn agent_sinks_parse_and_their_errors_name_the_key() {
        let yaml = "agent:\n  sinks:\n    - kind: loki\n      url: http://loki:3100/loki/api/v1/push\n      tenant: a\n    - name: es\n      kind: elasticsearch\n      url: https://es:9200\n      index: logs-%Y.%m\n      basic_auth: {username: elastic, password_file: /p}\n    - url: http://tarsier:9470\n";
        let config = Config::from_yaml(yaml).unwrap();
        let names: Vec<String> = config.agent.effective_sinks().iter().map(|s| s.name()).collect();
        assert_eq!(names, ["loki", "es", "tarsier"]);
        // Without sinks, the one server of old.
        let sinks = Config::default().agent.effective_sinks();
        assert_eq!(
            (sinks.len(), sinks[0].kind, sinks[0].url.as_str()),
            (1, collector::SinkKind::Tarsier, "http://127.0.0.1:9470")
        );

        let yaml = "agent:\n  server_url: http://x:1\n  sinks:\n    - kind: elasticsearch\n      url: http://es:9200\n      index: Logs\n    - kind: loki\n      url: ftp://x\n    - kind: loki\n      url: http://y\n";
        let errs: Vec<String> = Config::from_yaml(yaml).unwrap_err().iter().map(|e| e.path.clone()).collect();
        assert_eq!(errs, ["agent.server_url", "agent.sinks[0].index", "agent.sinks[1].url", "agent.sinks[2].name"]);
        let yaml = "collector:\n  signals: {enabled: true}\nagent:\n  sinks:\n    - kind: loki\n      url: http://y\n";
        let errs = Config::from_yaml(yaml).unwrap_err();
        assert!(errs[0].path == "agent.sinks" && errs[0].message.contains("kind tarsier"), "{errs:?}");
        assert!(Config::from_yaml("agent:\n  sinks:\n    - kind: kafka\n").is_err(), "unknown kinds are refused");
    }

    #[test]
    fn example_config_in_deploy_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/tarsier.example.yaml");
        if let Err(errs) = Config::load(&path) {
            panic!(
                "{} has errors:\n{}",
                path.display(),
                errs.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n")
            );
        }
    }
}
