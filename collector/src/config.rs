//! The collector's configuration: what to tail, what to scrape and how to ship. Parsed from the
//! `collector:` section of Tarsier's YAML file; `scrape_configs` follow Prometheus's format (the
//! subset supported so far, unknown keys are errors that name the key rather than being ignored).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use crate::kubernetes::KubernetesConfig;
pub use crate::parse::body::{BodyFormat, ParseConfig, ParseRule};
pub use crate::parse::multiline::{MultilineConfig, MultilineMode, MultilineRule};
pub use crate::relabel::RelabelConfig;
use crate::scrape::http::HttpSettings;
pub use crate::scrape::http::{Authorization, BasicAuth, TlsConfig};
pub use crate::scrape::sd::{DnsRecordType, DnsSdConfig, FileSdConfig, KubernetesSdConfig};

/// Top-level collector configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CollectorConfig {
    /// Tenant all collected logs and samples are shipped as (`X-Scope-OrgID`).
    pub tenant: String,
    /// Log file tailing.
    pub tail: TailConfig,
    /// Defaults for every scrape job.
    pub global: GlobalScrapeConfig,
    /// Prometheus-style scrape jobs.
    pub scrape_configs: Vec<ScrapeConfig>,
    /// Batching and retry of both logs and samples.
    pub shipping: ShippingConfig,
    /// Per-workload autoscaling signals derived from the tailed pod logs.
    pub signals: crate::signals::SignalsConfig,
    /// Pod metadata from the Kubernetes API on pod log streams.
    pub kubernetes: crate::kubernetes::KubernetesConfig,
    /// How often Tarsier scrapes its own `/metrics` (the `tarsier` job every collector adds unless
    /// the config has one). Unset: `global.scrape_interval`, but at least 15 s, so a global 1 s
    /// meant for applications does not also scrape and store ~300 self-metrics every second.
    #[serde(with = "humantime_serde")]
    pub self_scrape_interval: Option<Duration>,
}

impl Default for CollectorConfig {
    fn default() -> Self {
        Self {
            tenant: default_tenant(),
            tail: TailConfig::default(),
            global: GlobalScrapeConfig::default(),
            scrape_configs: Vec::new(),
            shipping: ShippingConfig::default(),
            signals: crate::signals::SignalsConfig::default(),
            kubernetes: crate::kubernetes::KubernetesConfig::default(),
            self_scrape_interval: None,
        }
    }
}

/// The floor of the default [`CollectorConfig::self_scrape_interval`].
pub const SELF_SCRAPE_MIN_DEFAULT: Duration = Duration::from_secs(15);

impl CollectorConfig {
    /// The interval of the self-scrape job: [`CollectorConfig::self_scrape_interval`] if set,
    /// else `global.scrape_interval` but at least [`SELF_SCRAPE_MIN_DEFAULT`].
    pub fn effective_self_scrape_interval(&self) -> Duration {
        self.self_scrape_interval.unwrap_or_else(|| self.global.scrape_interval.max(SELF_SCRAPE_MIN_DEFAULT))
    }
}

fn default_tenant() -> String {
    model::tenant::DEFAULT_TENANT.to_string()
}

/// Where a file without a checkpoint starts being read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartAt {
    /// From its first byte (nothing already written is missed).
    #[default]
    Beginning,
    /// From its current end; applies only to files present at startup, files that appear later
    /// (including the new file after a rotation) are always read from their first byte.
    End,
}

/// How the lines of a file are decoded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Decide per file from its first line (CRI, docker json-file, else plain).
    #[default]
    Auto,
    /// CRI (containerd, CRI-O): `<RFC3339 time> <stream> <P|F> <message>`.
    Cri,
    /// Docker json-file: `{"log":"...","stream":"stdout","time":"..."}`.
    Docker,
    /// Plain text, one record per line, timestamped when read.
    Plain,
}

/// Log file tailing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TailConfig {
    /// Glob patterns of files to tail (e.g. `/var/log/pods/*/*/*.log`).
    pub include: Vec<String>,
    /// Glob patterns (matched against the full path) of files never tailed.
    pub exclude: Vec<String>,
    /// How often the include globs are expanded again (the safety net behind file watches).
    #[serde(with = "humantime_serde")]
    pub rescan_interval: Duration,
    /// Longest line kept; longer lines are truncated to this many bytes and counted.
    pub max_line_bytes: usize,
    /// Where a file without a checkpoint found at startup starts being read.
    pub start_at: StartAt,
    /// Static labels added to host (non-Kubernetes) files.
    pub labels: BTreeMap<String, String>,
    /// Line format of the tailed files.
    pub format: LogFormat,
    /// Most files held open at once; files beyond are picked up once others are released.
    pub max_open_files: usize,
    /// Joining of multiline records (stack traces) per stream; mode `none` by default.
    pub multiline: MultilineConfig,
    /// Body parsing (JSON, logfmt) and level detection.
    pub parse: ParseConfig,
}

impl Default for TailConfig {
    fn default() -> Self {
        Self {
            include: Vec::new(),
            exclude: default_exclude(),
            rescan_interval: default_rescan_interval(),
            max_line_bytes: default_max_line_bytes(),
            start_at: StartAt::default(),
            labels: default_tail_labels(),
            format: LogFormat::default(),
            max_open_files: default_max_open_files(),
            multiline: MultilineConfig::default(),
            parse: ParseConfig::default(),
        }
    }
}

fn default_exclude() -> Vec<String> {
    vec!["*.gz".to_string(), "*.tmp".to_string()]
}
fn default_rescan_interval() -> Duration {
    Duration::from_secs(2)
}
fn default_max_line_bytes() -> usize {
    256 * 1024
}
fn default_tail_labels() -> BTreeMap<String, String> {
    BTreeMap::from([("job".to_string(), "varlogs".to_string())])
}
fn default_max_open_files() -> usize {
    1024
}

/// Defaults shared by every scrape job (Prometheus's `global:` section).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GlobalScrapeConfig {
    /// How often each target is scraped unless its job says otherwise.
    #[serde(with = "humantime_serde")]
    pub scrape_interval: Duration,
    /// How long a scrape may take unless its job says otherwise.
    #[serde(with = "humantime_serde")]
    pub scrape_timeout: Duration,
    /// Labels added to every scraped series that does not already carry them.
    pub external_labels: BTreeMap<String, String>,
}

impl Default for GlobalScrapeConfig {
    fn default() -> Self {
        Self {
            scrape_interval: default_scrape_interval(),
            scrape_timeout: default_scrape_timeout(),
            external_labels: BTreeMap::new(),
        }
    }
}

fn default_scrape_interval() -> Duration {
    Duration::from_secs(15)
}
fn default_scrape_timeout() -> Duration {
    Duration::from_secs(10)
}

/// URL scheme of a scrape job's targets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scheme {
    /// Plain HTTP.
    #[default]
    Http,
    /// HTTPS (needs the TLS support of the HTTP client, see `validate`).
    Https,
}

impl Scheme {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// One Prometheus scrape job (the supported subset of Prometheus's `scrape_config`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScrapeConfig {
    /// Name of the job; becomes the `job` label.
    pub job_name: String,
    /// Scrape interval of this job (defaults to `global.scrape_interval`).
    #[serde(with = "humantime_serde")]
    pub scrape_interval: Option<Duration>,
    /// Scrape timeout of this job (defaults to `global.scrape_timeout`, capped at the interval).
    #[serde(with = "humantime_serde")]
    pub scrape_timeout: Option<Duration>,
    /// HTTP path of the metrics page.
    pub metrics_path: String,
    /// `http` or `https`.
    pub scheme: Scheme,
    /// Keep the scraped `job`/`instance`/target labels on conflict instead of renaming them to
    /// `exported_<name>`.
    pub honor_labels: bool,
    /// URL query parameters sent with every scrape.
    pub params: BTreeMap<String, Vec<String>>,
    /// Fixed target lists.
    pub static_configs: Vec<StaticConfig>,
    /// Relabeling of each discovered target before it is scraped (Prometheus semantics).
    pub relabel_configs: Vec<RelabelConfig>,
    /// Relabeling of each scraped series before it is shipped (Prometheus semantics).
    pub metric_relabel_configs: Vec<RelabelConfig>,
    /// Most samples a scrape may have after metric relabeling; more fails the scrape (0 = no limit).
    pub sample_limit: usize,
    /// Most labels a series may have after metric relabeling; more fails the scrape (0 = no limit).
    pub label_limit: usize,
    /// Longest label name after metric relabeling; longer fails the scrape (0 = no limit).
    pub label_name_length_limit: usize,
    /// Longest label value after metric relabeling; longer fails the scrape (0 = no limit).
    pub label_value_length_limit: usize,
    /// Largest uncompressed response body in bytes (`1048576` or `"1MB"`); larger fails the scrape
    /// (0 = no limit).
    #[serde(deserialize_with = "deserialize_bytes")]
    pub body_size_limit: u64,
    /// Use the timestamps the target exposes (default); when false every sample gets the scrape
    /// time, as Prometheus's `honor_timestamps: false`.
    pub honor_timestamps: bool,
    /// HTTP basic authentication sent with every scrape.
    pub basic_auth: Option<BasicAuth>,
    /// `Authorization: <type> <credentials>` header sent with every scrape.
    pub authorization: Option<Authorization>,
    /// File holding a bearer token (Prometheus's older spelling of `authorization.credentials_file`).
    pub bearer_token_file: Option<PathBuf>,
    /// TLS settings for `https` targets.
    pub tls_config: TlsConfig,
    /// Targets listed in JSON/YAML files, re-read on change.
    pub file_sd_configs: Vec<FileSdConfig>,
    /// Targets from DNS SRV/A/AAAA/MX records, re-resolved periodically.
    pub dns_sd_configs: Vec<DnsSdConfig>,
    /// Targets from the Kubernetes API (pods, endpoints, services, nodes), watched.
    pub kubernetes_sd_configs: Vec<KubernetesSdConfig>,
}

impl Default for ScrapeConfig {
    fn default() -> Self {
        Self {
            job_name: String::new(),
            scrape_interval: None,
            scrape_timeout: None,
            metrics_path: default_metrics_path(),
            scheme: Scheme::default(),
            honor_labels: false,
            params: BTreeMap::new(),
            static_configs: Vec::new(),
            relabel_configs: Vec::new(),
            metric_relabel_configs: Vec::new(),
            sample_limit: 0,
            label_limit: 0,
            label_name_length_limit: 0,
            label_value_length_limit: 0,
            body_size_limit: 0,
            honor_timestamps: true,
            basic_auth: None,
            authorization: None,
            bearer_token_file: None,
            tls_config: TlsConfig::default(),
            file_sd_configs: Vec::new(),
            dns_sd_configs: Vec::new(),
            kubernetes_sd_configs: Vec::new(),
        }
    }
}

fn default_metrics_path() -> String {
    "/metrics".to_string()
}

/// A byte size as a number or as Prometheus's units string (`512`, `10KB`, `1MB`, `2GiB`; the
/// units are powers of 1024, as in Prometheus's `units.Base2Bytes`).
fn deserialize_bytes<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Number(u64),
        Text(String),
    }
    match Raw::deserialize(deserializer)? {
        Raw::Number(n) => Ok(n),
        Raw::Text(text) => parse_bytes(&text).map_err(serde::de::Error::custom),
    }
}

pub(crate) fn parse_bytes(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let number: u64 = digits.parse().map_err(|_| format!("invalid byte size {text:?}"))?;
    let shift = match unit.trim_end_matches("iB").trim_end_matches('B') {
        "" => 0,
        "K" | "k" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        "P" => 50,
        _ => return Err(format!("invalid byte size {text:?}: unknown unit {unit:?}")),
    };
    number.checked_mul(1u64 << shift).ok_or_else(|| format!("byte size {text:?} is too large"))
}

/// A fixed list of `host:port` targets sharing labels.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StaticConfig {
    /// `host:port` addresses; each becomes the `instance` label.
    pub targets: Vec<String>,
    /// Labels added to every series of these targets.
    pub labels: BTreeMap<String, String>,
}

/// Batching and retry of shipped logs and samples.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShippingConfig {
    /// A batch is sent once it holds this many lines (or samples).
    pub batch_max_lines: usize,
    /// A batch is sent once it holds this many bytes of line text.
    pub batch_max_bytes: usize,
    /// A batch is sent at the latest this long after its first line arrived.
    #[serde(with = "humantime_serde")]
    pub batch_max_wait: Duration,
    /// First retry delay after a retryable failure; doubles per attempt.
    #[serde(with = "humantime_serde")]
    pub retry_initial_backoff: Duration,
    /// Longest retry delay.
    #[serde(with = "humantime_serde")]
    pub retry_max_backoff: Duration,
    /// Batches being sent (or retried) at once; reading pauses when all are busy.
    pub max_in_flight_batches: usize,
    /// Where log and sample batches wait on disk while the sink fails.
    pub disk_buffer: DiskBufferConfig,
}

/// `collector.shipping.disk_buffer`: log and sample batches the sink refused with a retryable
/// error wait here (a buffer each, samples in the `samples` subdirectory, each bounded by
/// `max_bytes`), and later batches queue behind them, until the sink is back.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiskBufferConfig {
    /// Without it, failed batches are retried in memory (reading pauses once all
    /// `max_in_flight_batches` are retrying).
    pub enabled: bool,
    /// Directory of the segment files (default: `buffer` under the collector's state directory).
    pub path: Option<std::path::PathBuf>,
    /// Most bytes on disk per buffer (`268435456` or `"256MiB"`); when full, reading (or scraping)
    /// pauses, nothing is dropped.
    #[serde(deserialize_with = "deserialize_bytes")]
    pub max_bytes: u64,
    /// Size at which a new segment file is started.
    #[serde(deserialize_with = "deserialize_bytes")]
    pub segment_bytes: u64,
}

impl Default for DiskBufferConfig {
    fn default() -> Self {
        Self { enabled: true, path: None, max_bytes: 256 << 20, segment_bytes: 8 << 20 }
    }
}

impl Default for ShippingConfig {
    fn default() -> Self {
        Self {
            batch_max_lines: default_batch_max_lines(),
            batch_max_bytes: default_batch_max_bytes(),
            batch_max_wait: default_batch_max_wait(),
            retry_initial_backoff: default_retry_initial_backoff(),
            retry_max_backoff: default_retry_max_backoff(),
            max_in_flight_batches: default_max_in_flight_batches(),
            disk_buffer: DiskBufferConfig::default(),
        }
    }
}

fn default_batch_max_lines() -> usize {
    10_000
}
fn default_batch_max_bytes() -> usize {
    4 * 1024 * 1024
}
fn default_batch_max_wait() -> Duration {
    Duration::from_millis(200)
}
fn default_retry_initial_backoff() -> Duration {
    Duration::from_millis(200)
}
fn default_retry_max_backoff() -> Duration {
    Duration::from_secs(30)
}
fn default_max_in_flight_batches() -> usize {
    8
}

impl CollectorConfig {
    /// Checks values serde cannot; the message names the offending key.
    pub fn validate(&self) -> Result<(), String> {
        if let Err(e) = model::TenantId::new(&self.tenant) {
            return Err(format!("collector.tenant: {e}"));
        }
        let tail = &self.tail;
        for (i, pattern) in tail.include.iter().enumerate() {
            glob::Pattern::new(pattern).map_err(|e| format!("collector.tail.include[{i}] {pattern:?}: {e}"))?;
        }
        for (i, pattern) in tail.exclude.iter().enumerate() {
            globset::Glob::new(pattern).map_err(|e| format!("collector.tail.exclude[{i}] {pattern:?}: {e}"))?;
        }
        if tail.rescan_interval.is_zero() {
            return Err("collector.tail.rescan_interval must be > 0".into());
        }
        if tail.max_line_bytes == 0 {
            return Err("collector.tail.max_line_bytes must be > 0".into());
        }
        if tail.max_open_files == 0 {
            return Err("collector.tail.max_open_files must be > 0".into());
        }
        tail.multiline.validate("collector.tail.multiline")?;
        self.signals.validate()?;
        self.kubernetes.validate()?;
        tail.parse.validate("collector.tail.parse")?;
        for name in tail.labels.keys() {
            if !model::labels::is_valid_label_name(name) {
                return Err(format!("collector.tail.labels: {name:?} is not a valid label name"));
            }
        }
        if self.global.scrape_interval.is_zero() {
            return Err("collector.global.scrape_interval must be > 0".into());
        }
        if self.global.scrape_timeout.is_zero() {
            return Err("collector.global.scrape_timeout must be > 0".into());
        }
        if self.self_scrape_interval.is_some_and(|d| d.is_zero()) {
            return Err("collector.self_scrape_interval must be > 0 (leave it unset for the default)".into());
        }
        for name in self.global.external_labels.keys() {
            if !model::labels::is_valid_label_name(name) {
                return Err(format!("collector.global.external_labels: {name:?} is not a valid label name"));
            }
        }
        let mut job_names = std::collections::BTreeSet::new();
        for (i, job) in self.scrape_configs.iter().enumerate() {
            let key = format!("collector.scrape_configs[{i}]");
            if job.job_name.is_empty() {
                return Err(format!("{key}.job_name must not be empty"));
            }
            if !job_names.insert(job.job_name.as_str()) {
                return Err(format!("{key}.job_name {:?} is used by another job", job.job_name));
            }
            if job.scrape_interval.is_some_and(|d| d.is_zero()) {
                return Err(format!("{key}.scrape_interval must be > 0"));
            }
            if job.scrape_timeout.is_some_and(|d| d.is_zero()) {
                return Err(format!("{key}.scrape_timeout must be > 0"));
            }
            if !job.metrics_path.starts_with('/') {
                return Err(format!("{key}.metrics_path must start with '/'"));
            }
            job.http().validate(&key)?;
            for (j, sd) in job.file_sd_configs.iter().enumerate() {
                sd.validate(&format!("{key}.file_sd_configs[{j}]"))?;
            }
            for (j, sd) in job.dns_sd_configs.iter().enumerate() {
                sd.validate(&format!("{key}.dns_sd_configs[{j}]"))?;
            }
            for (j, sd) in job.kubernetes_sd_configs.iter().enumerate() {
                sd.validate(&format!("{key}.kubernetes_sd_configs[{j}]"))?;
            }
            crate::relabel::compile_all(&job.relabel_configs).map_err(|e| format!("{key}.relabel_configs{e}"))?;
            crate::relabel::compile_all(&job.metric_relabel_configs)
                .map_err(|e| format!("{key}.metric_relabel_configs{e}"))?;
            for (j, static_config) in job.static_configs.iter().enumerate() {
                for (k, target) in static_config.targets.iter().enumerate() {
                    if target.is_empty() || target.contains('/') || target.contains(char::is_whitespace) {
                        return Err(format!("{key}.static_configs[{j}].targets[{k}] {target:?} must be host:port"));
                    }
                }
                for name in static_config.labels.keys() {
                    if !model::labels::is_valid_label_name(name) {
                        return Err(format!("{key}.static_configs[{j}].labels: {name:?} is not a valid label name"));
                    }
                }
            }
        }
        let ship = &self.shipping;
        if ship.batch_max_lines == 0 {
            return Err("collector.shipping.batch_max_lines must be > 0".into());
        }
        if ship.batch_max_bytes == 0 {
            return Err("collector.shipping.batch_max_bytes must be > 0".into());
        }
        if ship.batch_max_wait.is_zero() {
            return Err("collector.shipping.batch_max_wait must be > 0".into());
        }
        if ship.retry_initial_backoff.is_zero() {
            return Err("collector.shipping.retry_initial_backoff must be > 0".into());
        }
        if ship.retry_max_backoff < ship.retry_initial_backoff {
            return Err("collector.shipping.retry_max_backoff must be >= retry_initial_backoff".into());
        }
        if ship.max_in_flight_batches == 0 {
            return Err("collector.shipping.max_in_flight_batches must be > 0".into());
        }
        if ship.disk_buffer.enabled && ship.disk_buffer.segment_bytes == 0 {
            return Err("collector.shipping.disk_buffer.segment_bytes must be > 0".into());
        }
        if ship.disk_buffer.enabled && ship.disk_buffer.max_bytes < ship.disk_buffer.segment_bytes {
            return Err("collector.shipping.disk_buffer.max_bytes must be >= segment_bytes".into());
        }
        Ok(())
    }
}

impl ScrapeConfig {
    /// Effective interval and timeout (timeout capped at the interval, as Prometheus requires).
    pub(crate) fn timing(&self, global: &GlobalScrapeConfig) -> (Duration, Duration) {
        let interval = self.scrape_interval.unwrap_or(global.scrape_interval);
        let timeout = self.scrape_timeout.unwrap_or(global.scrape_timeout).min(interval);
        (interval, timeout)
    }

    /// The job's HTTP settings (auth, TLS).
    pub(crate) fn http(&self) -> HttpSettings<'_> {
        HttpSettings {
            basic_auth: self.basic_auth.as_ref(),
            authorization: self.authorization.as_ref(),
            bearer_token_file: self.bearer_token_file.as_deref(),
            tls: &self.tls_config,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_documented_values() {
        let c: CollectorConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(c.tenant, "default");
        assert_eq!(c.tail.exclude, vec!["*.gz", "*.tmp"]);
        assert_eq!(c.tail.rescan_interval, Duration::from_secs(2));
        assert_eq!(c.tail.labels.get("job").map(String::as_str), Some("varlogs"));
        assert_eq!(c.shipping.batch_max_wait, Duration::from_millis(200));
        assert!(c.validate().is_ok());
    }

    #[test]
    fn prometheus_style_scrape_config_parses() {
        let c: CollectorConfig = serde_json::from_str(
            r#"{"global":{"scrape_interval":"30s"},"scrape_configs":[{"job_name":"node","scrape_interval":"5s",
            "params":{"module":["a"]},"static_configs":[{"targets":["localhost:9100"],"labels":{"env":"dev"}}]}]}"#,
        )
        .unwrap();
        let job = &c.scrape_configs[0];
        assert_eq!(job.metrics_path, "/metrics");
        assert_eq!(job.timing(&c.global), (Duration::from_secs(5), Duration::from_secs(5)));
        assert!(c.validate().is_ok());
    }

    #[test]
    fn unknown_keys_are_named() {
        let err =
            serde_json::from_str::<CollectorConfig>(r#"{"scrape_configs":[{"job_name":"a","relabel_config":[]}]}"#)
                .unwrap_err()
                .to_string();
        assert!(err.contains("relabel_config"), "{err}");
    }

    #[test]
    fn validate_names_the_key() {
        let mut c = CollectorConfig::default();
        c.shipping.max_in_flight_batches = 0;
        assert!(c.validate().unwrap_err().contains("collector.shipping.max_in_flight_batches"));
        let mut c = CollectorConfig::default();
        c.scrape_configs.push(ScrapeConfig { job_name: String::new(), ..Default::default() });
        assert!(c.validate().unwrap_err().contains("scrape_configs[0].job_name"));
        let mut c = CollectorConfig::default();
        c.tail.include.push("/var/log/[".into());
        assert!(c.validate().unwrap_err().contains("collector.tail.include[0]"));
        let c: CollectorConfig = serde_json::from_str(
            r#"{"scrape_configs":[{"job_name":"a","metric_relabel_configs":[{"action":"keep","source_labels":["a"]},
            {"action":"hashmod","target_label":"shard"}]}]}"#,
        )
        .unwrap();
        let err = c.validate().unwrap_err();
        assert!(err.starts_with("collector.scrape_configs[0].metric_relabel_configs[1].modulus"), "{err}");
    }

    #[test]
    fn body_size_limit_takes_numbers_and_units() {
        let c: CollectorConfig = serde_json::from_str(
            r#"{"scrape_configs":[{"job_name":"a","body_size_limit":"10MB"},{"job_name":"b","body_size_limit":512}]}"#,
        )
        .unwrap();
        assert_eq!(c.scrape_configs[0].body_size_limit, 10 << 20);
        assert_eq!(c.scrape_configs[1].body_size_limit, 512);
        assert_eq!(parse_bytes("2GiB"), Ok(2 << 30));
        assert!(parse_bytes("10XB").unwrap_err().contains("unknown unit"));
        assert!(serde_json::from_str::<CollectorConfig>(r#"{"scrape_configs":[{"body_size_limit":"lots"}]}"#).is_err());
    }

    #[test]
    fn collector_section_of_the_example_config_is_valid() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/tarsier.example.yaml");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let file: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
        let section = file.get("collector").cloned().expect("a collector section");
        let config: CollectorConfig = serde_yaml_ng::from_value(section).unwrap();
        config.validate().unwrap();
        assert!(config.scrape_configs[0].relabel_configs.is_empty());
        assert_eq!(config.scrape_configs[0].body_size_limit, 0);
    }
}
