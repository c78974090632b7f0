//! Where collected data goes. One trait per kind of data so a deployment can send logs and samples
//! to different stores; [`HttpSink`] speaks Loki push and Prometheus remote_write, so it works
//! against Tarsier's server as well as Loki, Mimir, Prometheus or VictoriaMetrics.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use model::{LogRecord, LogStream, TenantId, TimeSeries};

use crate::error::Error;
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
    write_url: String,
    /// A file holding the server's API token, sent as `Authorization: Bearer`; read for every
    /// request (as Prometheus reads `bearer_token_file`), so a rotated Secret applies at once.
    bearer_token_file: Option<Arc<std::path::Path>>,
}

impl HttpSink {
    /// `base_url` is the receiver's root (e.g. `http://tarsier:3100`); `timeout` bounds each request.
    pub fn new(base_url: &str, timeout: Duration) -> Result<HttpSink, Error> {
        Self::with_tls(base_url, timeout, &TlsConfig::default())
    }

    /// [`HttpSink::new`] with a `tls_config` for an `https://` receiver: its CA, a client
    /// certificate (re-read when its files change, see [`crate::tls`]), the name to verify.
    pub fn with_tls(base_url: &str, timeout: Duration, tls: &TlsConfig) -> Result<HttpSink, Error> {
        let base = reqwest::Url::parse(base_url).map_err(|e| Error::Config(format!("sink url {base_url:?}: {e}")))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(Error::Config(format!("sink url {base_url:?}: scheme must be http or https")));
        }
        let tls = tls.client_config().map_err(|e| Error::Config(format!("sink tls_config: {e}")))?;
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .use_preconfigured_tls(tls)
            .user_agent(concat!("tarsier-collector/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Http(format!("building http client: {e}")))?;
        let root = base.as_str().trim_end_matches('/').to_string();
        Ok(HttpSink {
            client,
            logs_url: format!("{root}/loki/api/v1/push"),
            write_url: format!("{root}/api/v1/write"),
            bearer_token_file: None,
        })
    }

    /// Sends the token in `path` (surrounding whitespace trimmed) with every request.
    pub fn with_bearer_token_file(mut self, path: &std::path::Path) -> HttpSink {
        self.bearer_token_file = Some(Arc::from(path));
        self
    }

    fn post(
        &self,
        url: &str,
        tenant: TenantId,
        body: Vec<u8>,
        remote_write: bool,
    ) -> BoxFuture<'static, Result<(), SinkError>> {
        Box::pin(Self::send(
            self.client.clone(),
            url.to_string(),
            self.bearer_token_file.clone(),
            tenant,
            body,
            remote_write,
        ))
    }

    async fn send(
        client: reqwest::Client,
        url: String,
        token_file: Option<Arc<std::path::Path>>,
        tenant: TenantId,
        body: Vec<u8>,
        remote_write: bool,
    ) -> Result<(), SinkError> {
        let mut request = client.post(&url);
        if let Some(path) = token_file {
            // Retryable: a Secret being rotated is briefly absent; the batch waits, not dropped.
            let token = tokio::fs::read_to_string(&path)
                .await
                .map_err(|e| SinkError::retryable(format!("reading bearer_token_file {}: {e}", path.display())))?;
            request = request.bearer_auth(token.trim());
        }
        let mut request = request
            .header("Content-Type", "application/x-protobuf")
            .header("X-Scope-OrgID", tenant.as_str())
            .body(body);
        if remote_write {
            request = request.header("Content-Encoding", "snappy").header("X-Prometheus-Remote-Write-Version", "0.1.0");
        }
        let response = request
            .send()
            .await
            .map_err(|e| SinkError::retryable(format!("POST {url}: {}", crate::scrape::http::error_chain(&e))))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let mut text = response.text().await.unwrap_or_default();
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
            return Err(SinkError::retryable(message));
        }
        if status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408 {
            Err(SinkError::retryable(message))
        } else {
            tracing::error!(url = %url, status = status.as_u16(), body = %text.trim(), "receiver rejected batch");
            Err(SinkError::permanent(message))
        }
    }
}

/// An [`HttpSink`] a configuration reload replaces (`agent.server_url`, `tls_config`,
/// `bearer_token_file`, `request_timeout`). Every request, a retry too, goes through the sink in
/// place when it starts, so a batch in flight at the switch is retried against the new receiver:
/// nothing is dropped, and lines the old receiver acknowledged stay acknowledged.
#[derive(Clone)]
pub struct SwitchableSink(Arc<std::sync::RwLock<Arc<HttpSink>>>);

impl SwitchableSink {
    pub fn new(sink: HttpSink) -> SwitchableSink {
        SwitchableSink(Arc::new(std::sync::RwLock::new(Arc::new(sink))))
    }

    /// Sends every request from now on with `sink`.
    pub fn replace(&self, sink: HttpSink) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(sink);
    }

    fn current(&self) -> Arc<HttpSink> {
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
}

impl MetricSink for SwitchableSink {
    fn push_samples(&self, tenant: TenantId, series: Vec<TimeSeries>) -> BoxFuture<'static, Result<(), SinkError>> {
        self.current().push_samples(tenant, series)
    }

    fn push_series(&self, tenant: TenantId, series: Arc<Vec<TimeSeries>>) -> BoxFuture<'static, Result<(), SinkError>> {
        self.current().push_series(tenant, series)
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
        let body = model::wire::remote_write::encode(&series);
        self.post(&self.write_url, tenant, body, true)
    }

    fn push_series(&self, tenant: TenantId, series: Arc<Vec<TimeSeries>>) -> BoxFuture<'static, Result<(), SinkError>> {
        let body = model::wire::remote_write::encode(&series);
        self.post(&self.write_url, tenant, body, true)
    }
}
