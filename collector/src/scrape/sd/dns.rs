//! `dns_sd_configs`: targets from DNS records, re-resolved every `refresh_interval`. SRV records
//! give host and port (a Kubernetes headless Service's `_port._proto.svc` name); A/AAAA records
//! give addresses to which the configured `port` is added. Labels as Prometheus:
//! `__meta_dns_name`, `__meta_dns_srv_record_target`, `__meta_dns_srv_record_port`,
//! `__meta_dns_mx_record_target`. A lookup error keeps the last targets; a name without records
//! (NXDOMAIN) has none.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfigGroup, ResolverConfig};
use hickory_resolver::name_server::TokioConnectionProvider;
use model::Labels;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::{Sink, TargetGroup};
use crate::scrape::populate::ADDRESS;

pub(crate) const NAME_LABEL: &str = "__meta_dns_name";
pub(crate) const SRV_TARGET_LABEL: &str = "__meta_dns_srv_record_target";
pub(crate) const SRV_PORT_LABEL: &str = "__meta_dns_srv_record_port";
pub(crate) const MX_TARGET_LABEL: &str = "__meta_dns_mx_record_target";

/// The record type a `dns_sd_configs` entry asks for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum DnsRecordType {
    #[default]
    #[serde(rename = "SRV")]
    Srv,
    A,
    #[serde(rename = "AAAA")]
    Aaaa,
    #[serde(rename = "MX")]
    Mx,
}

/// One `dns_sd_configs` entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DnsSdConfig {
    /// Names to resolve.
    pub names: Vec<String>,
    /// `SRV` (default), `A`, `AAAA` or `MX`.
    #[serde(rename = "type")]
    pub record_type: DnsRecordType,
    /// Port added to A, AAAA and MX addresses (required for them).
    pub port: u16,
    /// How often the names are resolved again.
    #[serde(with = "humantime_serde")]
    pub refresh_interval: Duration,
    /// Tarsier extension: ask this DNS server (`ip:port`) instead of the ones in
    /// `/etc/resolv.conf`.
    pub nameserver: Option<SocketAddr>,
}

impl Default for DnsSdConfig {
    fn default() -> Self {
        DnsSdConfig {
            names: Vec::new(),
            record_type: DnsRecordType::Srv,
            port: 0,
            refresh_interval: super::default_dns_refresh(),
            nameserver: None,
        }
    }
}

impl DnsSdConfig {
    /// Checks what serde cannot; errors start with `key`.
    pub(crate) fn validate(&self, key: &str) -> Result<(), String> {
        if self.names.is_empty() {
            return Err(format!("{key}.names must not be empty"));
        }
        if self.record_type != DnsRecordType::Srv && self.port == 0 {
            return Err(format!("{key}.port is required for {:?} records", self.record_type));
        }
        if self.refresh_interval.is_zero() {
            return Err(format!("{key}.refresh_interval must be > 0"));
        }
        Ok(())
    }

    fn resolver(&self) -> Result<TokioResolver, String> {
        match self.nameserver {
            Some(server) => {
                let group = NameServerConfigGroup::from_ips_clear(&[server.ip()], server.port(), true);
                let config = ResolverConfig::from_parts(None, vec![], group);
                Ok(TokioResolver::builder_with_config(config, TokioConnectionProvider::default()).build())
            }
            None => TokioResolver::builder_tokio().map(|b| b.build()).map_err(|e| e.to_string()),
        }
    }
}

/// `host:port` as Go's `net.JoinHostPort`, without the trailing dot of a DNS name.
fn host_port(host: &str, port: u16) -> String {
    let host = host.trim_end_matches('.');
    if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") }
}

/// The group of one name, or `None` when resolving it failed (not when it has no records).
async fn lookup(resolver: &TokioResolver, config: &DnsSdConfig, name: &str) -> Option<TargetGroup> {
    let port = config.port;
    let target = |address: String, srv_target: &str, srv_port: &str, mx_target: &str| {
        Labels::from_pairs([
            (ADDRESS, address.as_str()),
            (NAME_LABEL, name),
            (SRV_TARGET_LABEL, srv_target),
            (SRV_PORT_LABEL, srv_port),
            (MX_TARGET_LABEL, mx_target),
        ])
    };
    let targets: Result<Vec<Labels>, _> = match config.record_type {
        DnsRecordType::Srv => resolver.srv_lookup(name).await.map(|l| {
            l.iter()
                .map(|srv| {
                    let host = srv.target().to_string();
                    target(host_port(&host, srv.port()), &host, &srv.port().to_string(), "")
                })
                .collect()
        }),
        DnsRecordType::A => resolver
            .ipv4_lookup(name)
            .await
            .map(|l| l.iter().map(|a| target(host_port(&a.0.to_string(), port), "", "", "")).collect()),
        DnsRecordType::Aaaa => resolver
            .ipv6_lookup(name)
            .await
            .map(|l| l.iter().map(|a| target(host_port(&a.0.to_string(), port), "", "", "")).collect()),
        DnsRecordType::Mx => resolver.mx_lookup(name).await.map(|l| {
            l.iter()
                .map(|mx| {
                    let host = mx.exchange().to_string();
                    target(host_port(&host, port), "", "", &host)
                })
                .collect()
        }),
    };
    let targets = match targets {
        Ok(t) => t,
        Err(e) if e.is_nx_domain() || e.is_no_records_found() => Vec::new(),
        Err(error) => {
            tracing::warn!(%name, %error, "dns_sd lookup failed; keeping the last targets");
            return None;
        }
    };
    Some(TargetGroup { source: name.to_string(), targets, labels: Labels::empty() })
}

/// Resolves every name now and every `refresh_interval`, sending the groups when they change.
pub(crate) async fn run(config: DnsSdConfig, sink: Sink, cancel: CancellationToken) {
    let resolver = match config.resolver() {
        Ok(r) => r,
        Err(error) => {
            tracing::error!(%error, "dns_sd cannot build a resolver");
            return;
        }
    };
    let mut ticker = tokio::time::interval(config.refresh_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last: Vec<TargetGroup> =
        config.names.iter().map(|n| TargetGroup { source: n.clone(), ..Default::default() }).collect();
    let mut sent = false;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = ticker.tick() => {}
        }
        // The records' TTLs must not hide changes for longer than the refresh interval.
        resolver.clear_cache();
        let mut groups = Vec::with_capacity(config.names.len());
        for (name, previous) in config.names.iter().zip(&last) {
            groups.push(lookup(&resolver, &config, name).await.unwrap_or_else(|| previous.clone()));
        }
        if !sent || groups != last {
            if !sink.send(groups.clone()).await {
                return;
            }
            sent = true;
            last = groups;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_joins_like_go() {
        assert_eq!(host_port("node1.example.", 9100), "node1.example:9100");
        assert_eq!(host_port("10.0.0.1", 80), "10.0.0.1:80");
        assert_eq!(host_port("::1", 80), "[::1]:80");
    }

    #[test]
    fn port_is_required_except_for_srv() {
        let a = DnsSdConfig { names: vec!["x".into()], record_type: DnsRecordType::A, ..Default::default() };
        assert!(a.validate("k").unwrap_err().starts_with("k.port"));
        let srv = DnsSdConfig { names: vec!["x".into()], ..Default::default() };
        assert!(srv.validate("k").is_ok());
        let parsed: DnsSdConfig = serde_yaml_ng::from_str("names: [a]\ntype: AAAA\nport: 9\n").unwrap();
        assert_eq!(parsed.record_type, DnsRecordType::Aaaa);
    }
}
