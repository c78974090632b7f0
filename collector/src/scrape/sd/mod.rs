//! Service discovery: where a job's targets come from. Each mechanism (`static_configs`,
//! `file_sd_configs`, `dns_sd_configs`, `kubernetes_sd_configs`) is a provider that sends the full list of its target groups
//! whenever it changes; the scrape manager (`scrape/manager.rs`) turns groups into targets with
//! relabeling and starts or stops their scrape loops. Labels follow Prometheus's names
//! (`__address__`, `__meta_filepath`, `__meta_dns_*`, `__meta_kubernetes_*`), so `relabel_configs` written for Prometheus
//! work unchanged.

pub(crate) mod dns;
pub(crate) mod file;
pub(crate) mod kubernetes;
pub(crate) mod kubernetes_roles;

use std::time::Duration;

use model::Labels;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use dns::{DnsRecordType, DnsSdConfig};
pub use file::FileSdConfig;
pub use kubernetes::{AttachMetadata, KubernetesRole, KubernetesSdConfig, NamespaceDiscovery, RoleSelector};

use crate::config::ScrapeConfig;

/// A set of targets sharing labels, as Prometheus's `targetgroup.Group`.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct TargetGroup {
    /// Identifies the group within its provider (a file and index, a DNS name).
    pub source: String,
    /// One label set per target; each has `__address__`.
    pub targets: Vec<Labels>,
    /// Labels of every target in the group (a target's own labels win).
    pub labels: Labels,
}

/// A provider's complete, current list of groups.
#[derive(Debug)]
pub(crate) struct Update {
    /// Index of the job in `scrape_configs`.
    pub job: usize,
    /// Index of the provider within the job (see [`spawn_providers`]).
    pub provider: usize,
    pub groups: Vec<TargetGroup>,
}

/// How many updates may wait for the manager; a provider waits when it is full.
pub(crate) const UPDATE_QUEUE: usize = 16;

/// The groups of a job's `static_configs` (provider 0).
pub(crate) fn static_groups(job: &ScrapeConfig) -> Vec<TargetGroup> {
    job.static_configs
        .iter()
        .enumerate()
        .map(|(i, s)| TargetGroup {
            source: i.to_string(),
            targets: s.targets.iter().map(|a| Labels::from_pairs([(super::populate::ADDRESS, a.as_str())])).collect(),
            labels: Labels::from_pairs(s.labels.iter().map(|(n, v)| (n.as_str(), v.as_str()))),
        })
        .collect()
}

/// Starts the job's dynamic providers: file_sd configs are providers `1..`, then dns_sd configs,
/// then kubernetes_sd configs.
/// They stop when `cancel` fires.
pub(crate) fn spawn_providers(
    job_index: usize,
    job: &ScrapeConfig,
    tx: &mpsc::Sender<Update>,
    cancel: &CancellationToken,
) {
    let mut provider = 1;
    for config in &job.file_sd_configs {
        tokio::spawn(file::run(config.clone(), Sink { job: job_index, provider, tx: tx.clone() }, cancel.clone()));
        provider += 1;
    }
    for config in &job.dns_sd_configs {
        tokio::spawn(dns::run(config.clone(), Sink { job: job_index, provider, tx: tx.clone() }, cancel.clone()));
        provider += 1;
    }
    for config in &job.kubernetes_sd_configs {
        let sink = Sink { job: job_index, provider, tx: tx.clone() };
        tokio::spawn(kubernetes::run(config.clone(), sink, cancel.clone()));
        provider += 1;
    }
}

/// Where a provider sends its groups.
pub(crate) struct Sink {
    pub job: usize,
    pub provider: usize,
    pub tx: mpsc::Sender<Update>,
}

impl Sink {
    /// False when the manager is gone.
    pub(crate) async fn send(&self, groups: Vec<TargetGroup>) -> bool {
        self.tx.send(Update { job: self.job, provider: self.provider, groups }).await.is_ok()
    }
}

pub(crate) fn default_file_refresh() -> Duration {
    Duration::from_secs(300)
}

pub(crate) fn default_dns_refresh() -> Duration {
    Duration::from_secs(30)
}
