//! The state every handler shares: the stores this role runs, the HTTP limits, the metrics
//! registry and the readiness flag.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use prometheus_client::registry::Registry;

use crate::config::HttpConfig;
use crate::metrics::HttpMetrics;

/// The stores behind the APIs; a role without one does not serve its endpoints.
#[derive(Clone, Default)]
pub struct Services {
    pub indexer: Option<Arc<indexer::Indexer>>,
    pub tsdb: Option<Arc<tsdb::Tsdb>>,
    /// The scrape targets of this process's collector (`/api/v1/targets`), when it runs one.
    pub targets: Option<collector::TargetsView>,
    /// The rule manager (`/api/v1/rules`, `/api/v1/alerts`), when this role evaluates rules.
    pub rules: Option<Arc<alerting::manager::RuleManager>>,
    /// The notification pipeline (Alertmanager's `/api/v2`), when one is configured.
    pub notifier: Option<Arc<alerting::notify::Notifier>>,
    /// Where the UI's dashboards are stored (`<data_dir>/dashboards`), when this role keeps them.
    pub dashboards_dir: Option<std::path::PathBuf>,
    /// The running configuration as YAML with secrets redacted (`/api/v1/status/config`);
    /// replaced by a hot reload.
    pub config_yaml: Option<SharedText>,
    /// The data directory, when this role owns stores (`POST /api/v1/admin/snapshot` links it).
    pub data_dir: Option<std::path::PathBuf>,
    /// Config reload status and requests (`/-/reload`, `/api/v1/status/runtimeinfo`).
    pub runtime: Option<crate::runtime::Runtime>,
    /// Tokens, tenants and roles (`server.auth`), when enabled.
    pub auth: Option<Arc<crate::auth::Auth>>,
    /// The tenant this process's collector ships as: `/api/v1/targets` shows its targets only to
    /// that tenant.
    pub targets_tenant: Option<model::TenantId>,
}

/// Text one task replaces and handlers read, such as the redacted configuration.
pub type SharedText = Arc<parking_lot::RwLock<Arc<str>>>;

/// Cheap to clone; shared by all handlers.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    services: Services,
    /// `server`, replaced by a reload (handlers read it per request; the slots are resized; the
    /// keys the listener is built from stay as started, see `src/reload.rs`'s `RESTART_ONLY`).
    config: parking_lot::RwLock<Arc<HttpConfig>>,
    registry: Registry,
    http_metrics: HttpMetrics,
    ready: AtomicBool,
    /// One permit per allowed live tail websocket.
    tail_slots: crate::limits::Slots,
    limits: crate::limits::Limits,
}

impl AppState {
    /// Registers the HTTP layer's own metrics into `registry`, then freezes it for `/metrics`.
    /// The state starts not ready: call [`AppState::set_ready`] once storage is open and serving.
    pub fn new(services: Services, config: HttpConfig, mut registry: Registry) -> Self {
        let http_metrics = HttpMetrics::default();
        http_metrics.register(&mut registry);
        if let Some(auth) = &services.auth {
            auth.register_metrics(&mut registry);
        }
        let tail_slots = crate::limits::Slots::new(config.max_tail_connections);
        let limits = crate::limits::Limits::new(&config);
        Self {
            inner: Arc::new(Inner {
                services,
                config: parking_lot::RwLock::new(Arc::new(config)),
                registry,
                http_metrics,
                ready: AtomicBool::new(false),
                tail_slots,
                limits,
            }),
        }
    }

    pub fn services(&self) -> &Services {
        &self.inner.services
    }

    /// The `server` section in force (a reload may replace it between two calls).
    pub fn config(&self) -> Arc<HttpConfig> {
        self.inner.config.read().clone()
    }

    /// Applies a reloaded `server` section to requests from now on.
    pub fn set_config(&self, config: HttpConfig) {
        self.inner.tail_slots.resize(config.max_tail_connections);
        self.inner.limits.resize_queries(config.max_concurrent_queries);
        *self.inner.config.write() = Arc::new(config);
    }

    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    pub(crate) fn http_metrics(&self) -> &HttpMetrics {
        &self.inner.http_metrics
    }

    /// Marks the server ready (`/-/ready` answers 200) or not (503, e.g. while shutting down).
    pub fn set_ready(&self, ready: bool) {
        self.inner.ready.store(ready, Ordering::SeqCst);
    }

    pub(crate) fn limits(&self) -> &crate::limits::Limits {
        &self.inner.limits
    }

    pub(crate) fn tail_slots(&self) -> &crate::limits::Slots {
        &self.inner.tail_slots
    }

    pub fn is_ready(&self) -> bool {
        self.inner.ready.load(Ordering::SeqCst)
    }
}
