//! Starting and stopping a role. The order matters and is owned here:
//! open the stores → bind the listener → start the collector → mark ready → serve; on SIGTERM or
//! SIGINT: mark not ready → stop the collector (it delivers what it read and saves checkpoints) →
//! stop serving → commit the indexer and flush the tsdb.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use prometheus_client::registry::Registry;

use crate::cli::{RoleArgs, parse_scrape_arg};
use crate::config::Config;
use crate::local_sink::LocalSink;

/// Which parts a process runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Everything, locally.
    Run,
    /// Stores, query API and UI.
    Server,
    /// Collector only, shipping to a server.
    Agent,
}

impl Role {
    fn runs_stores(self) -> bool {
        matches!(self, Role::Run | Role::Server)
    }

    fn runs_collector(self) -> bool {
        matches!(self, Role::Run | Role::Agent)
    }
}

/// Globs tailed by `tarsier run` when neither a config file nor `--tail` names any: the host's
/// logs and, on a Kubernetes node, every container's.
pub const DEFAULT_TAIL: [&str; 2] = ["/var/log/*.log", "/var/log/pods/*/*/*.log"];

/// `tarsier check-config FILE`.
pub fn check_config(file: &Path) -> ExitCode {
    match Config::load(file) {
        Ok(_) => {
            println!("{}: configuration is valid", file.display());
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for e in &errors {
                eprintln!("{}: {e}", file.display());
            }
            eprintln!("{}: {} error(s)", file.display(), errors.len());
            ExitCode::FAILURE
        }
    }
}

/// `tarsier test-rules`: runs promtool-format rule unit tests, prints promtool's report layout,
/// fails when any file fails.
pub fn test_rules(files: &[std::path::PathBuf], options: alerting::promtool::TestOptions) -> ExitCode {
    let mut failed = 0;
    for file in files {
        let verdict = alerting::promtool::run_file(file, &options);
        print!("{}", verdict.report());
        if !verdict.passed() {
            failed += 1;
        }
    }
    if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

/// Builds the effective configuration: file (or defaults), then flags.
pub fn effective_config(role: Role, args: &RoleArgs) -> anyhow::Result<Config> {
    let mut config = match &args.config {
        Some(path) => Config::load(path).map_err(|errors| {
            let lines: Vec<String> = errors.iter().map(|e| format!("  {e}")).collect();
            anyhow::anyhow!("invalid configuration {}:\n{}", path.display(), lines.join("\n"))
        })?,
        None => Config::default(),
    };
    if let Some(dir) = &args.data_dir {
        config.data_dir = dir.clone();
    }
    if let Some(listen) = &args.listen {
        config.server.listen = listen.clone();
    }
    if let Some(url) = &args.server_url {
        config.agent.server_url = url.clone();
    }
    if let Some(level) = &args.log_level {
        config.log.level = level.clone();
    }
    if let Some(format) = args.log_format {
        config.log.format = format;
    }
    config.collector.tail.include.extend(args.tail.iter().cloned());
    if role == Role::Run && args.config.is_none() && args.tail.is_empty() {
        config.collector.tail.include.extend(DEFAULT_TAIL.iter().map(|s| s.to_string()));
    }
    for arg in &args.scrape {
        let target = parse_scrape_arg(arg).map_err(anyhow::Error::msg)?;
        config.collector.scrape_configs.push(scrape_config(
            &target.job,
            &target.scheme,
            &target.address,
            &target.metrics_path,
        )?);
    }
    if role.runs_collector() {
        // Every collector scrapes its own /metrics, so Tarsier's health is in Tarsier.
        let own = self_scrape_address(&config.server.listen);
        if !config.collector.scrape_configs.iter().any(|c| c.job_name == "tarsier") {
            let mut job = scrape_config("tarsier", "http", &own, "/metrics")?;
            job.scrape_interval = Some(config.collector.effective_self_scrape_interval());
            config.collector.scrape_configs.push(job);
        }
    }
    let errors = config.validate();
    if !errors.is_empty() {
        let lines: Vec<String> = errors.iter().map(|e| format!("  {e}")).collect();
        anyhow::bail!("invalid configuration:\n{}", lines.join("\n"));
    }
    Ok(config)
}

fn scrape_config(job: &str, scheme: &str, address: &str, path: &str) -> anyhow::Result<collector::ScrapeConfig> {
    let value = serde_json::json!({
        "job_name": job,
        "scheme": scheme,
        "metrics_path": path,
        "static_configs": [{"targets": [address]}],
    });
    serde_json::from_value(value).with_context(|| format!("building the scrape job {job:?}"))
}

/// The address to scrape this process at: a wildcard listen address is reached over loopback.
fn self_scrape_address(listen: &str) -> String {
    match listen.parse::<std::net::SocketAddr>() {
        Ok(addr) if addr.ip().is_unspecified() => {
            let ip = if addr.is_ipv4() { "127.0.0.1" } else { "[::1]" };
            format!("{ip}:{}", addr.port())
        }
        _ => listen.to_string(),
    }
}

/// Entry point of the roles: configuration, logging, runtime, then [`serve`].
pub fn main(role: Role, args: RoleArgs) -> ExitCode {
    let config = match effective_config(role, &args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tarsier: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    crate::logging::init(&config.log);
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if std::env::var_os("TOKIO_WORKER_THREADS").is_none() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        builder.worker_threads(config.runtime.effective_worker_threads(cores));
    }
    let runtime = match builder.enable_all().thread_name("tarsier").build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tarsier: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let reload = args.config.clone().map(|path| (args, path));
    match runtime.block_on(serve_with(role, config, reload, shutdown_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "tarsier stopped with an error");
            eprintln!("tarsier: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The agent's sinks from the `agent` section (at start and on a reload): `agent.sinks`, or the
/// server of `agent.server_url`.
pub(crate) fn agent_sink(agent: &crate::config::AgentConfig) -> anyhow::Result<collector::Fanout> {
    let key = if agent.sinks.is_empty() { "agent.server_url / agent.tls_config" } else { "agent.sinks" };
    collector::Fanout::from_configs(&agent.effective_sinks(), agent.request_timeout).context(key)
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; only SIGINT stops tarsier");
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => tracing::info!(signal = "SIGINT", "shutting down"),
            _ = term.recv() => tracing::info!(signal = "SIGTERM", "shutting down"),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
        tracing::info!(signal = "SIGINT", "shutting down");
    }
}

/// Serves `external.metrics.k8s.io` on its TLS listener when configured and this role has a tsdb;
/// stops when `stop` turns true.
async fn start_external_metrics(
    config: &Config,
    services: &query_ui::Services,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
    let cfg = &config.server.external_metrics;
    let Some(tsdb) = services.tsdb.clone().filter(|_| cfg.enabled) else { return Ok(None) };
    let files = cfg.cert_file.as_deref().zip(cfg.key_file.as_deref());
    if files.is_none() {
        tracing::warn!("server.external_metrics has no cert_file/key_file: serving a self-signed certificate");
    }
    let names = ["localhost".to_string(), "tarsier-server.tarsier.svc".to_string()];
    // A front-proxy certificate must be signed by the requestheader CA; clients without one may
    // still authenticate with a token.
    let requestheader_ca = cfg.authentication.requestheader.as_ref().and_then(|r| r.client_ca_file.as_deref());
    let tls = query_ui::tls::certificate(files, &names)
        .and_then(|cert| {
            let verifier = requestheader_ca
                .map(collector::tls::ClientCaFiles::load_optional)
                .transpose()
                .map_err(|e| format!("authentication.requestheader.client_{e}"))?;
            query_ui::tls::server_config_with(cert, verifier, Default::default())
        })
        .map_err(anyhow::Error::msg)
        .context("server.external_metrics")?;
    let (authn, authz) = (cfg.authentication.clone(), cfg.authorization.clone());
    let reviewer = if query_ui::external_metrics_auth::Guard::needs_api(&authn, &authz) {
        let reviewer =
            collector::kubernetes::review::Reviewer::connect(cfg.api_url.as_deref(), cfg.kubeconfig.as_deref())
                .await
                .map_err(anyhow::Error::msg)
                .context(
                    "server.external_metrics: the kubernetes api client for tokenreviews and subjectaccessreviews",
                )?;
        Some(reviewer)
    } else {
        None
    };
    if !authn.any() {
        tracing::warn!("server.external_metrics has no authentication: every client may read the metrics");
    }
    let guard = query_ui::external_metrics_auth::Guard::new(authn, authz, reviewer).map_err(anyhow::Error::msg)?;
    let tcp = tokio::net::TcpListener::bind(&cfg.listen)
        .await
        .with_context(|| format!("listening on {} (server.external_metrics.listen)", cfg.listen))?;
    tracing::info!(listen = %tcp.local_addr()?, metrics = cfg.metrics.len(), "serving external.metrics.k8s.io over tls");
    let state = query_ui::external_metrics::ExternalMetricsState {
        tsdb,
        config: Arc::new(cfg.clone()),
        guard: Arc::new(guard),
    };
    let app = query_ui::external_metrics::router(state);
    let listener = query_ui::tls::TlsListener::new(tcp, tls)?;
    Ok(Some(tokio::spawn(async move {
        let shutdown = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        let app = app.into_make_service_with_connect_info::<query_ui::tls::TlsPeer>();
        if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(shutdown).await {
            tracing::error!(error = %e, "external metrics server failed");
        }
    })))
}

/// Runs `role` until `shutdown` resolves, then stops in order.
pub async fn serve(
    role: Role,
    config: Config,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    serve_with(role, config, None, shutdown).await
}

/// [`serve`], reloading the configuration from `reload`'s file (with its flags applied on top) on
/// file changes, SIGHUP and `POST /-/reload` (see [`crate::reload`]).
pub async fn serve_with(
    role: Role,
    config: Config,
    reload: Option<(RoleArgs, std::path::PathBuf)>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let data_dir = config.data_dir.clone();
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating the data directory {}", data_dir.display()))?;
    let mut registry = Registry::default();
    collector::tls::register_metrics(&mut registry);
    let mut services = query_ui::Services::default();
    let mut notifier_handle: Option<Arc<alerting::notify::Notifier>> = None;
    // The notifications file's `templates:` globs (resolved), watched for reloads.
    let mut notify_templates: Vec<String> = Vec::new();

    let mut tsdb_maintenance = None;
    if role.runs_stores() {
        let (dir, cfg) = (data_dir.join("indexer"), config.indexer.clone());
        let indexer = tokio::task::spawn_blocking(move || indexer::Indexer::open(&dir, cfg))
            .await?
            .context("opening the log index")?;
        let (dir, cfg) = (data_dir.join("tsdb"), config.tsdb.clone());
        let tsdb =
            tokio::task::spawn_blocking(move || tsdb::Tsdb::open(&dir, cfg)).await?.context("opening the tsdb")?;
        indexer.register_metrics(&mut registry);
        tsdb.register_metrics(&mut registry);
        services.indexer = Some(Arc::new(indexer));
        let tsdb = Arc::new(tsdb);
        tsdb_maintenance = Some(tsdb::spawn_maintenance(&tsdb).context("starting tsdb maintenance")?);
        services.tsdb = Some(tsdb);
        let stores = alerting::eval::LocalStores {
            tsdb: services.tsdb.clone().expect("opened above"),
            indexer: services.indexer.clone(),
        };
        // The notifier always runs with the stores, so `/api/v2` (amtool, Grafana, the UI) answers
        // without a notifications file too; a file added or removed later is a live reload.
        let notify_config = config.alerting.notify_config_or_empty().context("alerting.notifications_file")?;
        let options =
            alerting::notify::NotifierOptions::new(data_dir.join("alerting"), config.alerting.external_url.clone());
        let notifier = Arc::new(
            alerting::notify::Notifier::start(&notify_config, options).await.context("starting the notifier")?,
        );
        notifier.register_metrics(&mut registry);
        notifier_handle = Some(notifier.clone());
        notify_templates = notify_config.templates.clone();
        services.notifier = Some(notifier.clone());
        let sink: Arc<dyn alerting::manager::AlertSink> =
            Arc::new(alerting::manager::NotifierSink { notifier, runtime: tokio::runtime::Handle::current() });
        let manager = Arc::new(alerting::manager::RuleManager::new(Arc::new(stores), sink));
        let rules = &config.alerting;
        let loaded = {
            let (manager, rules) = (manager.clone(), rules.clone());
            tokio::task::spawn_blocking(move || manager.load(&rules)).await?
        };
        loaded.context("loading alerting.rule_files / alerting.log_rule_files")?;
        services.rules = Some(manager);
        services.data_dir = Some(data_dir.clone());
    }

    let listener = tokio::net::TcpListener::bind(&config.server.listen).await.with_context(|| {
        format!("listening on {} (server.listen / --listen): is another process using it?", config.server.listen)
    })?;
    let local_addr = listener.local_addr()?;
    let tls = match &config.server.tls {
        Some(tls) => Some(tls.server_config().map_err(anyhow::Error::msg)?),
        None => None,
    };

    let mut agent_switch = None;
    let collector = if role.runs_collector() {
        let (logs, metrics): (Arc<dyn collector::LogSink>, Arc<dyn collector::MetricSink>) = match role {
            Role::Run => {
                let sink = Arc::new(LocalSink {
                    indexer: services.indexer.clone().expect("run opens the indexer"),
                    tsdb: services.tsdb.clone().expect("run opens the tsdb"),
                });
                (sink.clone(), sink)
            }
            _ => {
                let sink = collector::SwitchableSink::new(agent_sink(&config.agent)?);
                sink.register_metrics(&mut registry);
                agent_switch = Some(sink.clone());
                let sink = Arc::new(sink);
                (sink.clone(), sink)
            }
        };
        let state_dir = data_dir.join("collector");
        let collector = collector::Collector::start(config.collector.clone(), &state_dir, logs, metrics)
            .await
            .context("starting the collector")?;
        collector.register_metrics(&mut registry);
        services.targets = Some(collector.targets_view());
        services.targets_tenant = Some(model::TenantId::new(&config.collector.tenant).context("collector.tenant")?);
        Some(collector)
    } else {
        None
    };

    let reload_metrics = crate::reload::ReloadMetrics::default();
    reload_metrics.register(&mut registry);
    let retention = serde_json::to_value(&config.tsdb).ok().and_then(|v| v["retention"].as_str().map(String::from));
    let (reload_tx, reload_rx) = tokio::sync::mpsc::channel(4);
    let runtime = query_ui::runtime::Runtime::new(retention.unwrap_or_default(), reload.as_ref().map(|_| reload_tx));
    services.runtime = Some(runtime.clone());

    let config_yaml: query_ui::SharedText =
        Arc::new(parking_lot::RwLock::new(crate::redact::redacted_config_yaml(&config).into()));
    services.config_yaml = Some(Arc::clone(&config_yaml));
    let (stop_rules_tx, stop_rules_rx) = tokio::sync::watch::channel(false);
    let rules_task = services.rules.clone().map(|manager| tokio::spawn(manager.run(stop_rules_rx.clone())));

    if role.runs_stores() {
        services.dashboards_dir = Some(data_dir.join("dashboards"));
    }
    services.auth = query_ui::auth::Auth::from_config(&config.server.auth).map_err(anyhow::Error::msg)?;
    if let Some(auth) = &services.auth {
        auth.spawn_reloader();
        tracing::info!(tokens_file = ?auth.config().tokens_file, "api tokens required (server.auth)");
    }
    let state = query_ui::AppState::new(services.clone(), config.server.clone(), registry);
    let app = query_ui::router(state.clone());
    let reloader = reload.map(|(args, config_path)| {
        let reloader = crate::reload::Reloader {
            role,
            args,
            config_path,
            current: config.clone(),
            rules: services.rules.clone(),
            notifier: notifier_handle.clone(),
            templates: notify_templates.clone(),
            collector: collector.as_ref().map(collector::Collector::reloader),
            agent_sink: agent_switch,
            http: Some(state.clone()),
            runtime,
            metrics: reload_metrics,
            config_yaml,
        };
        tokio::spawn(reloader.run(reload_rx, stop_rules_rx.clone()))
    });
    state.set_ready(true);
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(role = ?role, listen = %local_addr, scheme, data_dir = %data_dir.display(), "tarsier is ready");

    let external = start_external_metrics(&config, &services, stop_rules_rx.clone()).await?;

    let (stop_http_tx, stop_http_rx) = tokio::sync::oneshot::channel::<()>();
    let stopped = async move {
        let _ = stop_http_rx.await;
    };
    let server = match tls {
        None => tokio::spawn(axum::serve(listener, app).with_graceful_shutdown(stopped).into_future()),
        Some(tls) => {
            let listener = query_ui::tls::TlsListener::new(listener, tls)?;
            tokio::spawn(axum::serve(listener, app).with_graceful_shutdown(stopped).into_future())
        }
    };

    shutdown.await;
    state.set_ready(false);
    let _ = stop_rules_tx.send(true);
    if let Some(task) = rules_task {
        let _ = task.await;
    }
    if let Some(task) = reloader {
        let _ = task.await;
    }
    if let Some(task) = external {
        let _ = task.await;
    }
    if let Some(collector) = collector
        && let Err(e) = collector.shutdown().await
    {
        tracing::error!(error = %e, "collector shutdown failed; unacknowledged lines will be read again on start");
    }
    let _ = stop_http_tx.send(());
    match tokio::time::timeout(std::time::Duration::from_secs(10), server).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => tracing::error!(error = %e, "http server failed"),
        Ok(Err(e)) => tracing::error!(error = %e, "http server task failed"),
        Err(_) => tracing::warn!("http connections still open after 10s; closing them"),
    }
    if let Some(notifier) = notifier_handle.take()
        && let Err(e) = notifier.shutdown().await
    {
        tracing::error!(error = %e, "notifier shutdown failed; unsent notifications are re-sent on start");
    }
    if let Some(indexer) = services.indexer.take() {
        tokio::task::spawn_blocking(move || indexer.shutdown()).await?.context("committing the log index")?;
    }
    if let Some(handle) = tsdb_maintenance {
        // Dropping the handle waits for a running maintenance pass to finish.
        tokio::task::spawn_blocking(move || drop(handle)).await?;
    }
    if let Some(tsdb) = services.tsdb.take() {
        tokio::task::spawn_blocking(move || tsdb.flush()).await?.context("flushing the tsdb")?;
    }
    tracing::info!("tarsier stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn self_scrape_interval(yaml: &str) -> std::time::Duration {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tarsier.yaml");
        std::fs::write(&path, yaml).unwrap();
        let args = RoleArgs { config: Some(path), ..RoleArgs::default() };
        let config = effective_config(Role::Run, &args).unwrap();
        let own: Vec<_> = config.collector.scrape_configs.iter().filter(|c| c.job_name == "tarsier").collect();
        assert_eq!(own.len(), 1, "exactly one self-scrape job");
        own[0].scrape_interval.expect("the self-scrape job has its own interval")
    }

    #[test]
    fn self_scrape_follows_the_global_interval_but_not_below_15s_unless_set() {
        use std::time::Duration;
        let global = |interval: &str| format!("collector:\n  global:\n    scrape_interval: {interval}\n");
        assert_eq!(self_scrape_interval(&global("1s")), Duration::from_secs(15));
        assert_eq!(self_scrape_interval(&global("1m")), Duration::from_secs(60));
        let set = format!("{}  self_scrape_interval: 2s\n", global("1s"));
        assert_eq!(self_scrape_interval(&set), Duration::from_secs(2));
        let zero = format!("{}  self_scrape_interval: 0s\n", global("1s"));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tarsier.yaml");
        std::fs::write(&path, zero).unwrap();
        let err = effective_config(Role::Run, &RoleArgs { config: Some(path), ..RoleArgs::default() }).unwrap_err();
        assert!(format!("{err:#}").contains("collector.self_scrape_interval"), "{err:#}");
    }
}
