//! Where collected data goes. One trait per kind of data so a deployment can send logs and samples
//! to different stores; [`HttpSink`] speaks Loki push and Prometheus remote_write, so it works
//! against Tarsier's server as well as Loki, Mimir, Prometheus or VictoriaMetrics;
//! [`crate::elasticsearch::EsSink`] speaks `_bulk`. The agent ships to a list of them at once
//! through [`crate::fanout::Fanout`] (`agent.sinks`).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use model::{LogRecord, LogStream, TenantId, TimeSeries};

use crate::error::Error;
use crate::fanout::Fanout;
use crate::scrape::http::{AuthSource, Secret};
use crate::tls::TlsConfig;

/// Receives batches of log records. The future resolving `Ok` is the acknowledgement that moves
/// file checkpoints forward, so it must only resolve once the data is safe at the receiver.
pub trait LogSink: Send + Sync + 'static {
    fn push_logs(&self, tenant: TenantId, records: Vec<LogRecord>) -> BoxFuture<'static, Result<(), SinkError>>;

    /// What the collector calls: one batch as streams (labels once per stream), shared because a
    /// failed batch is offered again. The default flattens into [`LogSink::push_logs`]; sinks that
    /// can take streams as they are (protocol encoders) override it and copy nothing.
    fn push_streams(
        &self,
        tenant: TenantId,
        streams: Arc<Vec<LogStream>>,
    ) -> BoxFuture<'static, Result<(), SinkError>> {
        self.push_logs(tenant, LogStream::into_records(Arc::unwrap_or_clone(streams)))
    }

    /// [`LogSink::push_streams`] with the shipper's batch number: the same `batch` is the same
    /// batch offered again (a retry, or read back from the disk buffer), so a sink fanning out to
    /// several receivers ([`crate::fanout::Fanout`]) sends it only to those that did not take it
    /// yet. `None`: a batch of a previous process. Single receivers ignore it.
    fn push_log_batch(
        &self,
        _batch: Option<u64>,
        tenant: TenantId,
        streams: Arc<Vec<LogStream>>,
    ) -> BoxFuture<'static, Result<(), SinkError>> {
        self.push_streams(tenant, streams)
    }
}

/// Receives batches of samples (scrape results and synthetic series).
pub trait MetricSink: Send + Sync + 'static {
    fn push_samples(&self, tenant: TenantId, series: Vec<TimeSeries>) -> BoxFuture<'static, Result<(), SinkError>>;

    /// What the collector calls: one batch, shared because a failed batch is offered again. The
    /// default copies it into [`MetricSink::push_samples`]; sinks that only read the series (the
    /// tsdb, protocol encoders) override it and copy nothing.
    fn push_series(&self, tenant: TenantId, series: Arc<Vec<TimeSeries>>) -> BoxFuture<'static, Result<(), SinkError>> {
        self.push_samples(tenant, Arc::unwrap_or_clone(series))
    }

    /// True for a store in this process (`tarsier run`'s tsdb): scrape loops then call
    /// [`MetricSink::push_series`] with each scrape themselves instead of queueing it for the
    /// shipper. A failed append is logged and counted as dropped, not retried (as in Prometheus).
    fn takes_scrapes_directly(&self) -> bool {
        false
    }

    /// One scrape from its loop, for a sink that [`MetricSink::takes_scrapes_directly`]. `refs[i]`
    /// is what the store answered for `series[i]` on an earlier scrape (0: nothing yet, and
    /// `refs` may be shorter than `series`); the store answers with this append's references,
    /// which the loop keeps for the next scrape, so a steady target's samples skip the store's
    /// label lookup (as Prometheus's scrape cache keeps head series references). A store that
    /// only reads the series hands them back too, for the loop to refill instead of allocating a
    /// sample vector per series again. The default ignores the references.
    fn push_scrape(
        &self,
        tenant: TenantId,
        series: Vec<TimeSeries>,
        refs: Vec<u64>,
    ) -> BoxFuture<'static, ScrapePushed> {
        let series = Arc::new(series);
        let pushed = self.push_series(tenant, series.clone());
        Box::pin(async move {
            let result = pushed.await;
            ScrapePushed { refs, series: Arc::into_inner(series), result }
        })
    }

    /// [`MetricSink::push_series`] with the shipper's batch number, as [`LogSink::push_log_batch`].
    fn push_sample_batch(
        &self,
        _batch: Option<u64>,
        tenant: TenantId,
        series: Arc<Vec<TimeSeries>>,
    ) -> BoxFuture<'static, Result<(), SinkError>> {
        self.push_series(tenant, series)
    }
}

/// What [`MetricSink::push_scrape`] answers.
pub struct ScrapePushed {
    /// A reference per series (see [`MetricSink::push_scrape`]).
    pub refs: Vec<u64>,
    /// The series, handed back for reuse once the store is done reading them.
    pub series: Option<Vec<TimeSeries>>,
    pub result: Result<(), SinkError>,
}

/// A failed delivery. `retryable` failures are retried forever with backoff; the others drop the
/// batch (the only place the collector drops data).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SinkError {
    pub retryable: bool,
    pub message: String,
}

impl SinkError {
    /// A failure that may succeed later (overload, network, 5xx).
    pub fn retryable(message: impl Into<String>) -> Self {
        Self { retryable: true, message: message.into() }
    }

    /// A failure that will not succeed by retrying (the receiver rejects the data).
    pub fn permanent(message: impl Into<String>) -> Self {
        Self { retryable: false, message: message.into() }
    }
}

impl fmt::Display for SinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.retryable { "retryable" } else { "permanent" };
        write!(f, "{kind} sink error: {}", self.message)
    }
}

impl std::error::Error for SinkError {}

/// Longest part of a server's error body kept in a [`SinkError`] message.
const MAX_ERROR_BODY: usize = 512;

/// Ships logs with Loki's push API and samples with Prometheus remote_write 1.0.
#[derive(Clone)]
pub struct HttpSink {
    client: reqwest::Client,
    logs_url: String,
    /// `None` for a Loki receiver, which takes no samples.
    write_url: Option<String>,
    /// The `Authorization` header: `bearer_token_file`, `basic_auth` or `authorization`, its files
    /// read for every request (as Prometheus reads them), so a rotated Secret applies at once.
    auth: Option<AuthSource>,
}

impl HttpSink {
    /// `base_url` is the receiver's root (e.g. `http://tarsier:3100`); `timeout` bounds each request.
    pub fn new(base_url: &str, timeout: Duration) -> Result<HttpSink, Error> {
        Self::with_tls(base_url, timeout, &TlsConfig::default())
    }

    /// [`HttpSink::new`] with a `tls_config` for an `https://` receiver: its CA, a client
    /// certificate (re-read when its files change, see [`crate::tls`]), the name to verify.
    pub fn with_tls(base_url: &str, timeout: Duration, tls: &TlsConfig) -> Result<HttpSink, Error> {
        let (client, base) = client_for(base_url, timeout, tls)?;
        let root = base.as_str().trim_end_matches('/').to_string();
        Ok(HttpSink {
            client,
            logs_url: format!("{root}/loki/api/v1/push"),
            write_url: Some(format!("{root}/api/v1/write")),
            auth: None,
        })
    }

    /// A Loki receiver: `push_url` is its push endpoint as promtail's `clients[].url` names it
    /// (`http://loki:3100/loki/api/v1/push`); a bare root gets `/loki/api/v1/push` appended. It
    /// takes logs only: samples pushed to it are refused (permanently).
    pub fn loki(push_url: &str, timeout: Duration, tls: &TlsConfig) -> Result<HttpSink, Error> {
        let (client, mut url) = client_for(push_url, timeout, tls)?;
        if url.path() == "/" || url.path().is_empty() {
            url.set_path("/loki/api/v1/push");
        }
        Ok(HttpSink { client, logs_url: url.to_string(), write_url: None, auth: None })
    }

    /// Sends the token in `path` (surrounding whitespace trimmed) with every request.
    pub fn with_bearer_token_file(self, path: &std::path::Path) -> HttpSink {
        self.with_auth(Some(AuthSource::Scheme { kind: "Bearer".into(), secret: Secret::File(path.to_path_buf()) }))
    }

    /// Whether it sends samples (a Tarsier server; not Loki).
    pub(crate) fn takes_samples(&self) -> bool {
        self.write_url.is_some()
    }

    pub(crate) fn with_auth(mut self, auth: Option<AuthSource>) -> HttpSink {
        self.auth = auth;
        self
    }

    fn post(
        &self,
        url: &str,
        tenant: TenantId,
        body: Vec<u8>,
        remote_write: bool,
    ) -> BoxFuture<'static, Result<(), SinkError>> {
        let request = self
            .client
            .post(url)
            .header("Content-Type", "application/x-protobuf")
            .header("X-Scope-OrgID", tenant.as_str())
            .body(body);
        let request = if remote_write {
            request.header("Content-Encoding", "snappy").header("X-Prometheus-Remote-Write-Version", "0.1.0")
        } else {
            request
        };
        let (url, auth) = (url.to_string(), self.auth.clone());
        Box::pin(async move {
            let response = send(request, auth.as_ref(), &url).await?;
            let status = response.status();
            if status.is_success() {
                return Ok(());
            }
            Err(classify(&url, status, response.text().await.unwrap_or_default()))
        })
    }
}

/// A client for `url` (http or https) with `tls`, and the parsed URL.
pub(crate) fn client_for(
    url: &str,
    timeout: Duration,
    tls: &TlsConfig,
) -> Result<(reqwest::Client, reqwest::Url), Error> {
    let parsed = reqwest::Url::parse(url).map_err(|e| Error::Config(format!("sink url {url:?}: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(Error::Config(format!("sink url {url:?}: scheme must be http or https")));
    }
    let tls = tls.client_config().map_err(|e| Error::Config(format!("sink tls_config: {e}")))?;
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .use_preconfigured_tls(tls)
        .user_agent(concat!("tarsier-collector/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| Error::Http(format!("building http client: {e}")))?;
    Ok((client, parsed))
}

/// Adds the credentials (read now) and sends; a failure before an answer is retryable.
pub(crate) async fn send(
    request: reqwest::RequestBuilder,
    auth: Option<&AuthSource>,
    url: &str,
) -> Result<reqwest::Response, SinkError> {
    let request = match auth {
        // Retryable: a Secret being rotated is briefly absent; the batch waits, not dropped.
        Some(auth) => auth.apply(request).await.map_err(|e| {
            SinkError::retryable(format!("credential file (bearer_token_file, password_file, credentials_file): {e}"))
        })?,
        None => request,
    };
    request
        .send()
        .await
        .map_err(|e| SinkError::retryable(format!("POST {url}: {}", crate::scrape::http::error_chain(&e))))
}

/// A non-2xx answer as a [`SinkError`]: overload, server errors and refused credentials are
/// retried, everything else is a rejection of the data.
pub(crate) fn classify(url: &str, status: reqwest::StatusCode, mut text: String) -> SinkError {
    if text.len() > MAX_ERROR_BODY {
        let mut cut = MAX_ERROR_BODY;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    let message = format!("POST {url}: {status}: {}", text.trim());
    if matches!(status.as_u16(), 401 | 403) {
        // A token being rotated on one side first: keep the batch (the disk buffer bounds
        // what waits) and say loudly why nothing is delivered.
        tracing::error!(url = %url, status = status.as_u16(), body = %text.trim(), "receiver refused the token: retrying");
        return SinkError::retryable(message);
    }
    if status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408 {
        SinkError::retryable(message)
    } else {
        tracing::error!(url = %url, status = status.as_u16(), body = %text.trim(), "receiver rejected batch");
        SinkError::permanent(message)
    }
}

/// The agent's sinks ([`Fanout`]) a configuration reload replaces (`agent.server_url`,
/// `agent.sinks`, their `tls_config` and credentials, `request_timeout`). Every request, a retry
/// too, goes through the sinks in place when it starts, so a batch in flight at the switch is
/// retried against the new ones: nothing is dropped, and lines the old receivers acknowledged stay
/// acknowledged. Which sinks (by name) already took a batch carries over, so a sink kept across
/// the reload does not get it twice; its metrics carry over too.
#[derive(Clone)]
pub struct SwitchableSink(Arc<std::sync::RwLock<Arc<Fanout>>>);

impl SwitchableSink {
    pub fn new(sink: impl Into<Fanout>) -> SwitchableSink {
        SwitchableSink(Arc::new(std::sync::RwLock::new(Arc::new(sink.into()))))
    }

    /// Sends every request from now on with `sink`.
    pub fn replace(&self, sink: impl Into<Fanout>) {
        let mut sink = sink.into();
        let mut current = self.0.write().unwrap_or_else(|e| e.into_inner());
        sink.adopt(&current);
        *current = Arc::new(sink);
    }

    /// The per-sink self-metrics (`tarsier_collector_sink_*`), kept across replacements.
    pub fn register_metrics(&self, registry: &mut prometheus_client::registry::Registry) {
        self.current().metrics().register(registry);
    }

    fn current(&self) -> Arc<Fanout> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl LogSink for SwitchableSink {
    fn push_logs(&self, tenant: TenantId, records: Vec<LogRecord>) -> BoxFuture<'static, Result<(), SinkError>> {
        self.current().push_logs(tenant, records)
    }

    fn push_streams(
        &self,
        tenant: TenantId,
        streams: Arc<Vec<LogStream>>,
    ) -> BoxFuture<'static, Result<(), SinkError>> {
        self.current().push_streams(tenant, streams)
    }

    fn push_log_batch(
        &self,
        batch: Option<u64>,
        tenant: TenantId,
        streams: Arc<Vec<LogStream>>,
    ) -> BoxFuture<'static, Result<(), SinkError>> {
        self.current().push_log_batch(batch, tenant, streams)
    }
}

impl MetricSink for SwitchableSink {
    fn push_samples(&self, tenant: TenantId, series: Vec<TimeSeries>) -> BoxFuture<'static, Result<(), SinkError>> {
        self.current().push_samples(tenant, series)
    }

    fn push_series(&self, tenant: TenantId, series: Arc<Vec<TimeSeries>>) -> BoxFuture<'static, Result<(), SinkError>> {
        self.current().push_series(tenant, series)
    }

    fn push_sample_batch(
        &self,
        batch: Option<u64>,
        tenant: TenantId,
        series: Arc<Vec<TimeSeries>>,
    ) -> BoxFuture<'static, Result<(), SinkError>> {
        self.current().push_sample_batch(batch, tenant, series)
    }
}

impl LogSink for HttpSink {
    fn push_logs(&self, tenant: TenantId, records: Vec<LogRecord>) -> BoxFuture<'static, Result<(), SinkError>> {
        let body = model::wire::loki_push::encode_protobuf(&LogStream::group(records));
        self.post(&self.logs_url, tenant, body, false)
    }

    fn push_streams(
        &self,
        tenant: TenantId,
        streams: Arc<Vec<LogStream>>,
    ) -> BoxFuture<'static, Result<(), SinkError>> {
        let body = model::wire::loki_push::encode_protobuf(&streams);
        self.post(&self.logs_url, tenant, body, false)
    }
}

impl MetricSink for HttpSink {
    fn push_samples(&self, tenant: TenantId, series: Vec<TimeSeries>) -> BoxFuture<'static, Result<(), SinkError>> {
        self.push_series(tenant, Arc::new(series))
    }

    fn push_series(&self, tenant: TenantId, series: Arc<Vec<TimeSeries>>) -> BoxFuture<'static, Result<(), SinkError>> {
        let Some(url) = &self.write_url else {
            return Box::pin(async { Err(SinkError::permanent("a loki sink takes no samples")) });
        };
        let body = model::wire::remote_write::encode(&series);
        self.post(url, tenant, body, true)
    }
}
