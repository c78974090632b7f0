//! The HTTP server's configuration section (`server:` in the YAML file).

use serde::{Deserialize, Serialize};

/// Where the server listens and the limits it enforces on requests.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Address to listen on, `host:port`. Local by default: expose it deliberately.
    pub listen: String,
    /// Largest request body accepted, in bytes, before decompression (larger → 413).
    pub max_body_bytes: usize,
    /// Largest request body after decompression (gzip, snappy), in bytes (larger → 413).
    pub max_decoded_bytes: usize,
    /// Largest `limit` a Loki log query may ask for in one response.
    pub max_log_query_limit: usize,
    /// Most points per series a Prometheus range query may return (Prometheus uses 11,000).
    pub max_points_per_series: i64,
    /// Most live tail websockets (`/loki/api/v1/tail`) open at once; more are refused with 429.
    pub max_tail_connections: usize,
    /// How often a live tail asks the index for new lines.
    #[serde(with = "humantime_serde")]
    pub tail_poll_interval: std::time::Duration,
    /// Queries (PromQL and LogQL, data and metadata) evaluated at once; more wait up to 5 s for
    /// a slot, then get 429 with Retry-After.
    pub max_concurrent_queries: usize,
    /// Longest a LogQL request may take before the client gets 503 (PromQL: `tsdb.query_timeout`).
    #[serde(with = "humantime_serde")]
    pub log_query_timeout: std::time::Duration,
    /// Most labels (with `__name__`) of one pushed series or log stream; more → that series or
    /// stream is refused (400), the rest of the request stored.
    pub max_labels_per_series: usize,
    /// Per tenant: log line bytes per second the push endpoints accept (token bucket holding two
    /// seconds' worth); over it → 429 with Retry-After. 0 = no limit.
    pub max_log_bytes_per_second: u64,
    /// Per tenant: samples per second remote_write accepts, as above. 0 = no limit.
    pub max_samples_per_second: u64,
    /// The Kubernetes external metrics API on its own TLS listener (off by default).
    pub external_metrics: crate::external_metrics::ExternalMetricsConfig,
    /// HTTPS on `listen` (unset: plain HTTP); certificate files are re-read when they change.
    pub tls: Option<crate::tls::TlsConfig>,
    /// API tokens bound to tenants and roles (off by default: the tenant is `X-Scope-OrgID`).
    pub auth: crate::auth::AuthConfig,
}

/// The default HTTP port: 9470, not used by Prometheus (9090), Loki (3100), Grafana (3000),
/// Alertmanager (9093) or node_exporter (9100), so Tarsier can run beside all of them.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9470";

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN.to_string(),
            max_body_bytes: 16 << 20,
            max_decoded_bytes: 64 << 20,
            max_log_query_limit: 5000,
            max_points_per_series: 11_000,
            max_tail_connections: 64,
            tail_poll_interval: std::time::Duration::from_secs(1),
            max_concurrent_queries: 20,
            log_query_timeout: std::time::Duration::from_secs(120),
            max_labels_per_series: 30,
            max_log_bytes_per_second: 0,
            max_samples_per_second: 0,
            external_metrics: Default::default(),
            tls: None,
            auth: Default::default(),
        }
    }
}

impl HttpConfig {
    /// Checks the section; errors name the key under `server.`.
    pub fn validate(&self) -> Result<(), String> {
        if self.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(format!(
                "server.listen: {:?} is not host:port with an IP address (e.g. 127.0.0.1:9470)",
                self.listen
            ));
        }
        if self.max_body_bytes == 0 {
            return Err("server.max_body_bytes must be greater than 0".into());
        }
        if self.max_decoded_bytes < self.max_body_bytes {
            return Err("server.max_decoded_bytes must be at least server.max_body_bytes".into());
        }
        if self.max_log_query_limit == 0 {
            return Err("server.max_log_query_limit must be greater than 0".into());
        }
        if self.max_points_per_series <= 0 {
            return Err("server.max_points_per_series must be greater than 0".into());
        }
        if self.max_concurrent_queries == 0 {
            return Err("server.max_concurrent_queries must be greater than 0".into());
        }
        if self.log_query_timeout.is_zero() {
            return Err("server.log_query_timeout must be greater than 0".into());
        }
        if self.max_labels_per_series == 0 {
            return Err("server.max_labels_per_series must be greater than 0".into());
        }
        if self.tail_poll_interval < std::time::Duration::from_millis(50) {
            return Err("server.tail_poll_interval must be at least 50ms".into());
        }
        if let Some(tls) = &self.tls {
            tls.validate()?;
        }
        self.external_metrics.validate()?;
        self.auth.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_errors_name_the_key() {
        assert!(HttpConfig::default().validate().is_ok());
        let bad = HttpConfig { listen: "localhost".into(), ..HttpConfig::default() };
        assert!(bad.validate().unwrap_err().starts_with("server.listen"));
    }

    #[test]
    fn moved_external_metrics_keys_name_their_new_place() {
        let yaml = "external_metrics:\n  enabled: true\n  client_ca_file: /ca.crt\n";
        let config: HttpConfig = serde_yaml_ng::from_str(yaml).unwrap();
        let err = config.validate().unwrap_err();
        assert!(err.contains("server.external_metrics.authentication.requestheader.client_ca_file"), "{err}");
        let yaml = "external_metrics:\n  enabled: true\n  authentication:\n    token_review: {enabled: true, cache_ttl: 2m}\n  \
                    authorization: {mode: subject_access_review}\n  api_url: http://127.0.0.1:8001\n";
        let config: HttpConfig = serde_yaml_ng::from_str(yaml).unwrap();
        config.validate().unwrap();
        let unknown = "external_metrics:\n  authorization: {mode: webhook}\n";
        assert!(serde_yaml_ng::from_str::<HttpConfig>(unknown).is_err());
    }
}
