//! Shipping to several receivers at once (`agent.sinks`): the Tarsier server, Loki, Elasticsearch,
//! each acknowledging. A batch counts as delivered (and its lines' checkpoints move) only once
//! EVERY sink took it or rejected it for good.
//!
//! Why per-sink state: when one sink fails, the shipper offers the batch again (retry, or from the
//! disk buffer) under the same batch number. [`Fanout`] remembers, per batch number, which sinks
//! already settled it and sends it only to the others, so a sink never receives a batch twice
//! because another one failed. The remembered batches are those partly delivered: bounded by the
//! shipper's in-flight batches plus the disk buffer, and capped at [`MAX_TRACKED`] (past it the
//! oldest is forgotten and, if offered again, sent to every sink: the only duplicate a failing
//! sink can cause besides a restart, where, as for one sink, lines not acknowledged by all sinks
//! are read again and go to every sink).
//!
//! A failing sink holds every sink back: batches wait (in flight, then in the disk buffer) until
//! it recovers, and reading pauses when those are full. Self-metrics per sink:
//! `tarsier_collector_sink_{sent,failures,retries,dropped,already_stored}{sink,kind}`.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use model::{LogRecord, LogStream, TenantId, TimeSeries};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};

use crate::elasticsearch::{BulkOutcome, EsSink, IndexPattern};
use crate::error::Error;
use crate::metrics::LabelPairs;
use crate::scrape::http::{Authorization, BasicAuth, HttpSettings};
use crate::sink::{HttpSink, LogSink, MetricSink, SinkError};
use crate::tls::TlsConfig;

/// Partly delivered batches remembered per kind of data (logs, samples).
pub const MAX_TRACKED: usize = 65_536;

/// The index an `elasticsearch` sink writes to when `index` is not set.
pub const DEFAULT_INDEX: &str = "logs-%Y.%m.%d";

/// What a sink speaks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SinkKind {
    /// A Tarsier server: logs by Loki push, samples by remote_write.
    #[default]
    Tarsier,
    /// Loki's push API (protobuf + snappy); logs only.
    Loki,
    /// Elasticsearch's `_bulk` API; logs only.
    Elasticsearch,
}

impl SinkKind {
    fn as_str(self) -> &'static str {
        match self {
            SinkKind::Tarsier => "tarsier",
            SinkKind::Loki => "loki",
            SinkKind::Elasticsearch => "elasticsearch",
        }
    }
}

/// One entry of `agent.sinks`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SinkConfig {
    /// The `sink` label of its metrics and log lines; unset: the kind. Unique in the list.
    pub name: Option<String>,
    pub kind: SinkKind,
    /// tarsier and elasticsearch: the receiver's root; loki: its push URL (a bare root gets
    /// `/loki/api/v1/push`).
    pub url: String,
    /// Sent as `X-Scope-OrgID`; unset: `collector.tenant` (tarsier, loki), none (elasticsearch).
    pub tenant: Option<String>,
    /// Timeout of one request; unset: `agent.request_timeout`.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Option<Duration>,
    pub bearer_token_file: Option<PathBuf>,
    pub basic_auth: Option<BasicAuth>,
    pub authorization: Option<Authorization>,
    pub tls_config: TlsConfig,
    /// elasticsearch only: the index, strftime over the record's UTC time or a fixed name.
    pub index: Option<String>,
}

impl SinkConfig {
    /// The sink's name: `name`, or its kind.
    pub fn name(&self) -> String {
        self.name.clone().unwrap_or_else(|| self.kind.as_str().to_string())
    }

    fn settings(&self) -> HttpSettings<'_> {
        HttpSettings {
            basic_auth: self.basic_auth.as_ref(),
            authorization: self.authorization.as_ref(),
            bearer_token_file: self.bearer_token_file.as_deref(),
            tls: &self.tls_config,
        }
    }

    /// Checks what serde cannot; errors start with the offending key below `key`.
    pub fn validate(&self, key: &str) -> Result<(), String> {
        match reqwest::Url::parse(&self.url) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => {}
            _ => return Err(format!("{key}.url: {:?} must be an http:// or https:// URL", self.url)),
        }
        if let Some(name) = &self.name
            && (name.is_empty() || name.contains(|c: char| c.is_control()))
        {
            return Err(format!("{key}.name: {name:?} must be non-empty printable text"));
        }
        if let Some(tenant) = &self.tenant
            && let Err(e) = TenantId::new(tenant)
        {
            return Err(format!("{key}.tenant: {e}"));
        }
        match (&self.index, self.kind) {
            (Some(index), SinkKind::Elasticsearch) => {
                IndexPattern::parse(index).map_err(|e| format!("{key}.index: {e}"))?;
            }
            (Some(_), kind) => return Err(format!("{key}.index: only for kind elasticsearch, not {}", kind.as_str())),
            (None, _) => {}
        }
        self.settings().validate(key)
    }
}

/// Checks a sink list: every entry, and unique names. One message per problem.
pub fn validate_sinks(sinks: &[SinkConfig], key: &str) -> Vec<String> {
    let mut errors = Vec::new();
    let mut names = HashSet::new();
    for (i, sink) in sinks.iter().enumerate() {
        let at = format!("{key}[{i}]");
        if let Err(e) = sink.validate(&at) {
            errors.push(e);
        }
        if !names.insert(sink.name()) {
            errors.push(format!("{at}.name: {:?} is used twice (names label the metrics; set name)", sink.name()));
        }
    }
    errors
}

/// What a member sends with.
#[derive(Clone)]
pub enum Receiver {
    /// Loki push (and remote_write for a Tarsier server).
    Http(HttpSink),
    Elasticsearch(EsSink),
}

/// One sink of a [`Fanout`].
#[derive(Clone)]
pub struct Member {
    name: String,
    /// Overrides the batch's tenant (`X-Scope-OrgID`).
    tenant: Option<TenantId>,
    receiver: Receiver,
}

impl Member {
    pub fn new(name: &str, receiver: Receiver) -> Member {
        Member { name: name.to_string(), tenant: None, receiver }
    }

    /// A member from its validated configuration; `default_timeout` is `agent.request_timeout`.
    pub fn from_config(config: &SinkConfig, default_timeout: Duration) -> Result<Member, Error> {
        let name = config.name();
        let timeout = config.request_timeout.unwrap_or(default_timeout);
        let auth = config.settings().auth();
        let tenant = match &config.tenant {
            Some(t) => Some(TenantId::new(t).map_err(|e| Error::Config(format!("sink {name:?} tenant: {e}")))?),
            None => None,
        };
        let receiver = match config.kind {
            SinkKind::Tarsier => {
                Receiver::Http(HttpSink::with_tls(&config.url, timeout, &config.tls_config)?.with_auth(auth))
            }
            SinkKind::Loki => Receiver::Http(HttpSink::loki(&config.url, timeout, &config.tls_config)?.with_auth(auth)),
            SinkKind::Elasticsearch => {
                let index = IndexPattern::parse(config.index.as_deref().unwrap_or(DEFAULT_INDEX))
                    .map_err(|e| Error::Config(format!("sink {name:?} index: {e}")))?;
                let sink = EsSink::new(&config.url, index, timeout, &config.tls_config)?;
                Receiver::Elasticsearch(sink.with_auth(auth).with_name(&name).with_tenant(tenant.clone()))
            }
        };
        Ok(Member { name, tenant, receiver })
    }

    fn takes_samples(&self) -> bool {
        matches!(&self.receiver, Receiver::Http(sink) if sink.takes_samples())
    }
}

/// Which sinks settled a batch, and whether any of them took it (rather than rejecting it).
#[derive(Default)]
struct BatchState {
    settled: HashSet<String>,
    taken: bool,
}

/// Partly delivered batches of one kind of data, by batch number.
type Progress = Arc<Mutex<BTreeMap<u64, BatchState>>>;

/// Per-sink self-metrics, labelled `sink` and `kind` (logs, samples).
#[derive(Clone, Default)]
pub struct SinkMetrics {
    sent: Family<LabelPairs, Counter>,
    failures: Family<LabelPairs, Counter>,
    retries: Family<LabelPairs, Counter>,
    dropped: Family<LabelPairs, Counter>,
    already_stored: Family<LabelPairs, Counter>,
}

impl SinkMetrics {
    pub fn register(&self, registry: &mut Registry) {
        let r = registry;
        r.register("tarsier_collector_sink_sent", "Records or samples a sink acknowledged", self.sent.clone());
        r.register("tarsier_collector_sink_failures", "Failed deliveries to a sink", self.failures.clone());
        r.register(
            "tarsier_collector_sink_retries",
            "Deliveries to a sink (or Elasticsearch items) sent again after a retryable failure",
            self.retries.clone(),
        );
        r.register(
            "tarsier_collector_sink_dropped",
            "Records or samples a sink rejected for good (a 400, an Elasticsearch mapping error)",
            self.dropped.clone(),
        );
        r.register(
            "tarsier_collector_sink_already_stored",
            "Records a sink already held, sent before a restart (an Elasticsearch 409 for the document's _id); counted as sent too",
            self.already_stored.clone(),
        );
    }

    fn counter(family: &Family<LabelPairs, Counter>, sink: &str, kind: &str) -> Counter {
        family
            .get_or_create(&vec![("sink".to_string(), sink.to_string()), ("kind".to_string(), kind.to_string())])
            .clone()
    }
}

/// The agent's sinks: one batch to each, acknowledged when all settled (see the module doc).
pub struct Fanout {
    members: Arc<[Member]>,
    logs: Progress,
    samples: Progress,
    metrics: SinkMetrics,
}

impl Fanout {
    pub fn new(members: Vec<Member>) -> Fanout {
        Fanout {
            members: members.into(),
            logs: Progress::default(),
            samples: Progress::default(),
            metrics: SinkMetrics::default(),
        }
    }

    /// The members of `agent.sinks` (validated).
    pub fn from_configs(configs: &[SinkConfig], default_timeout: Duration) -> Result<Fanout, Error> {
        let members = configs.iter().map(|c| Member::from_config(c, default_timeout)).collect::<Result<_, _>>()?;
        Ok(Fanout::new(members))
    }

    /// Takes over `old`'s delivery state and metrics (a reload), so a sink of the same name does
    /// not get batches it already took.
    pub(crate) fn adopt(&mut self, old: &Fanout) {
        self.logs = old.logs.clone();
        self.samples = old.samples.clone();
        self.metrics = old.metrics.clone();
    }

    pub fn metrics(&self) -> &SinkMetrics {
        &self.metrics
    }

    /// Sends batch `batch` (`n` records or samples) with `send` to every member of `members` that
    /// has not settled it yet.
    fn fan(
        &self,
        kind: &'static str,
        progress: &Progress,
        batch: Option<u64>,
        n: u64,
        members: Vec<Member>,
        send: impl Fn(&Member) -> BoxFuture<'static, Result<BulkOutcome, SinkError>>,
    ) -> BoxFuture<'static, Result<(), SinkError>> {
        if members.is_empty() {
            return Box::pin(async move {
                Err(SinkError::permanent(format!("no sink takes {kind} (add one of kind tarsier to agent.sinks)")))
            });
        }
        let settled: HashSet<String> = batch
            .and_then(|b| progress.lock().unwrap_or_else(|e| e.into_inner()).get(&b).map(|s| s.settled.clone()))
            .unwrap_or_default();
        let sends: Vec<_> = members
            .iter()
            .filter(|m| !settled.contains(&m.name))
            .map(|m| {
                let name = m.name.clone();
                let send = send(m);
                async move { (name, send.await) }
            })
            .collect();
        let (progress, metrics) = (progress.clone(), self.metrics.clone());
        Box::pin(async move {
            let results = futures::future::join_all(sends).await;
            let mut failures = Vec::new();
            let mut state = BatchState::default();
            for (name, result) in results {
                let counter = |family| SinkMetrics::counter(family, &name, kind);
                match result {
                    Ok(outcome) => {
                        counter(&metrics.sent).inc_by(n.saturating_sub(outcome.dropped));
                        counter(&metrics.dropped).inc_by(outcome.dropped);
                        counter(&metrics.retries).inc_by(outcome.retries);
                        counter(&metrics.already_stored).inc_by(outcome.already_stored);
                        state.taken |= outcome.dropped < n || n == 0;
                        state.settled.insert(name);
                    }
                    Err(e) if e.retryable => {
                        counter(&metrics.failures).inc();
                        counter(&metrics.retries).inc();
                        failures.push(format!("sink {name}: {}", e.message));
                    }
                    Err(e) => {
                        counter(&metrics.failures).inc();
                        counter(&metrics.dropped).inc_by(n);
                        tracing::error!(sink = %name, kind, items = n, error = %e.message, "sink rejected batch, dropping it for this sink");
                        state.settled.insert(name);
                    }
                }
            }
            let taken = {
                let mut progress = progress.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(before) = batch.and_then(|b| progress.remove(&b)) {
                    state.settled.extend(before.settled);
                    state.taken |= before.taken;
                }
                if let (Some(b), false) = (batch, failures.is_empty()) {
                    progress.insert(b, BatchState { settled: state.settled, taken: state.taken });
                    while progress.len() > MAX_TRACKED {
                        progress.pop_first();
                    }
                }
                state.taken
            };
            if !failures.is_empty() {
                Err(SinkError::retryable(failures.join("; ")))
            } else if taken {
                Ok(())
            } else {
                Err(SinkError::permanent(format!("every sink rejected the {kind} batch")))
            }
        })
    }
}

impl From<HttpSink> for Fanout {
    /// The agent's one sink of old (`agent.server_url`), named `tarsier`.
    fn from(sink: HttpSink) -> Fanout {
        Fanout::new(vec![Member::new("tarsier", Receiver::Http(sink))])
    }
}

impl LogSink for Fanout {
    fn push_logs(&self, tenant: TenantId, records: Vec<LogRecord>) -> BoxFuture<'static, Result<(), SinkError>> {
        self.push_log_batch(None, tenant, Arc::new(LogStream::group(records)))
    }

    fn push_streams(
        &self,
        tenant: TenantId,
        streams: Arc<Vec<LogStream>>,
    ) -> BoxFuture<'static, Result<(), SinkError>> {
        self.push_log_batch(None, tenant, streams)
    }

    fn push_log_batch(
        &self,
        batch: Option<u64>,
        tenant: TenantId,
        streams: Arc<Vec<LogStream>>,
    ) -> BoxFuture<'static, Result<(), SinkError>> {
        let n = streams.iter().map(|s| s.entries.len() as u64).sum();
        self.fan("logs", &self.logs, batch, n, self.members.to_vec(), |member| match &member.receiver {
            Receiver::Http(sink) => {
                let push = sink.push_streams(member.tenant.clone().unwrap_or_else(|| tenant.clone()), streams.clone());
                Box::pin(async move { push.await.map(|()| BulkOutcome::default()) })
            }
            Receiver::Elasticsearch(sink) => sink.push_bulk(streams.clone()),
        })
    }
}

impl MetricSink for Fanout {
    fn push_samples(&self, tenant: TenantId, series: Vec<TimeSeries>) -> BoxFuture<'static, Result<(), SinkError>> {
        self.push_sample_batch(None, tenant, Arc::new(series))
    }

    fn push_series(&self, tenant: TenantId, series: Arc<Vec<TimeSeries>>) -> BoxFuture<'static, Result<(), SinkError>> {
        self.push_sample_batch(None, tenant, series)
    }

    fn push_sample_batch(
        &self,
        batch: Option<u64>,
        tenant: TenantId,
        series: Arc<Vec<TimeSeries>>,
    ) -> BoxFuture<'static, Result<(), SinkError>> {
        let n = series.iter().map(|s| s.samples.len() as u64).sum();
        let members = self.members.iter().filter(|m| m.takes_samples()).cloned().collect();
        self.fan("samples", &self.samples, batch, n, members, |member| {
            let push = match &member.receiver {
                Receiver::Http(sink) => {
                    sink.push_series(member.tenant.clone().unwrap_or_else(|| tenant.clone()), series.clone())
                }
                Receiver::Elasticsearch(_) => {
                    Box::pin(async { Err(SinkError::permanent("elasticsearch takes no samples")) })
                }
            };
            Box::pin(async move { push.await.map(|()| BulkOutcome::default()) })
        })
    }
}
