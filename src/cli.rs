//! The command line: one subcommand per role plus the maintenance commands. Flags override the
//! configuration file, which overrides the built-in defaults.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::LogFormat;

/// Tarsier: log collection, full-text log search, metrics, alerting and a web UI in one binary.
#[derive(Debug, Parser)]
#[command(name = "tarsier", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Everything in one process with local storage: collector, indexer, tsdb, query API and UI.
    Run(RoleArgs),
    /// The server role: ingest APIs, indexer, tsdb, query API and UI (a StatefulSet on Kubernetes).
    Server(RoleArgs),
    /// The collector role: tails logs and scrapes metrics, ships to a server (a DaemonSet).
    Agent(RoleArgs),
    /// Validates a configuration file; prints every error with its key path and position.
    CheckConfig {
        /// The YAML file to check.
        file: PathBuf,
    },
    /// Backs up a running server: asks it for a hard-linked snapshot of its data, downloads it into
    /// OUT/<name>/ and deletes it on the server (the CronJob in deploy/kubernetes runs this).
    Snapshot {
        /// The server to back up, e.g. http://tarsier-server-0.tarsier-server-headless:9470.
        #[arg(long)]
        server_url: String,
        /// Directory the backup goes into (one subdirectory per snapshot).
        #[arg(long)]
        out: PathBuf,
        /// Keep only the newest N backups in OUT (0 = keep all).
        #[arg(long, default_value_t = 0)]
        keep: usize,
        /// Leave the snapshot on the server after downloading it.
        #[arg(long)]
        keep_on_server: bool,
        /// File holding an API token with the admin role, when the server has `server.auth` on.
        #[arg(long)]
        bearer_token_file: Option<PathBuf>,
    },
    /// Runs rule unit tests in promtool's format (`rule_files`, `tests` with `input_series`,
    /// `alert_rule_test`, `promql_expr_test`); exits 1 when any fails.
    TestRules {
        /// Unit-test files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Only run test groups whose `name` matches this regex (repeatable).
        #[arg(long)]
        run: Vec<String>,
        /// Ignore fields Tarsier does not know in the rule files.
        #[arg(long)]
        ignore_unknown_fields: bool,
    },
}

/// Flags shared by the roles.
#[derive(Clone, Debug, Args, Default)]
pub struct RoleArgs {
    /// YAML configuration file (see deploy/tarsier.example.yaml). Flags override it.
    #[arg(long, short = 'c', env = "TARSIER_CONFIG")]
    pub config: Option<PathBuf>,
    /// Data directory for the stores and the collector's checkpoints [default: ./data].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// HTTP listen address, host:port [default: 127.0.0.1:9470].
    #[arg(long)]
    pub listen: Option<String>,
    /// Tail the files matching this glob (repeatable), e.g. --tail '/var/log/*.log'.
    #[arg(long = "tail", value_name = "GLOB")]
    pub tail: Vec<String>,
    /// Scrape a Prometheus-format endpoint (repeatable): URL or JOB=URL, e.g.
    /// --scrape node=http://localhost:9100/metrics. The job defaults to "scrape".
    #[arg(long = "scrape", value_name = "[JOB=]URL")]
    pub scrape: Vec<String>,
    /// The server the agent ships to [default: http://127.0.0.1:9470].
    #[arg(long)]
    pub server_url: Option<String>,
    /// Log filter (`info`, `debug`, `info,indexer=debug`); RUST_LOG wins when set.
    #[arg(long)]
    pub log_level: Option<String>,
    /// Log output format.
    #[arg(long, value_enum)]
    pub log_format: Option<LogFormat>,
}

/// A `--scrape` argument taken apart.
#[derive(Debug, PartialEq, Eq)]
pub struct ScrapeTarget {
    pub job: String,
    pub scheme: String,
    pub address: String,
    pub metrics_path: String,
}

/// Parses `[JOB=]http(s)://host:port/path`.
pub fn parse_scrape_arg(arg: &str) -> Result<ScrapeTarget, String> {
    let (job, url) = match arg.split_once('=') {
        Some((job, url)) if !job.contains('/') && !job.contains(':') => (job.to_string(), url),
        _ => ("scrape".to_string(), arg),
    };
    if job.is_empty() {
        return Err(format!("--scrape {arg:?}: the job name before '=' is empty"));
    }
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("--scrape {arg:?}: expected a URL like http://localhost:9100/metrics"))?;
    if scheme != "http" && scheme != "https" {
        return Err(format!("--scrape {arg:?}: scheme must be http or https"));
    }
    let (address, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/metrics"),
    };
    if address.is_empty() {
        return Err(format!("--scrape {arg:?}: the URL has no host"));
    }
    let address = if address.contains(':') && !address.ends_with(']') {
        address.to_string()
    } else {
        format!("{address}:{}", if scheme == "https" { 443 } else { 80 })
    };
    Ok(ScrapeTarget { job, scheme: scheme.to_string(), address, metrics_path: path.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrape_args() {
        let t = parse_scrape_arg("http://localhost:9100/metrics").unwrap();
        assert_eq!(
            (t.job.as_str(), t.address.as_str(), t.metrics_path.as_str()),
            ("scrape", "localhost:9100", "/metrics")
        );
        let t = parse_scrape_arg("node=http://10.0.0.1:9100").unwrap();
        assert_eq!((t.job.as_str(), t.metrics_path.as_str()), ("node", "/metrics"));
        let t = parse_scrape_arg("https://example.com/federate?x=1").unwrap();
        assert_eq!(t.address, "example.com:443");
        assert!(parse_scrape_arg("localhost:9100").is_err());
        assert!(parse_scrape_arg("=http://a:1").is_err());
    }

    #[test]
    fn cli_parses() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from([
            "tarsier",
            "run",
            "--tail",
            "/a/*.log",
            "--tail",
            "/b.log",
            "--scrape",
            "http://x:1/m",
        ])
        .unwrap();
        match cli.command {
            Command::Run(args) => assert_eq!(args.tail.len(), 2),
            other => panic!("{other:?}"),
        }
    }
}
