//! The HTTP layer's self-metrics: requests by route and status code, and their latency.

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::error::{ApiError, LimitHit};
use crate::state::AppState;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RouteLabels {
    handler: String,
    code: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct HandlerLabels {
    handler: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct LimitLabels {
    limit: String,
}

fn latency_histogram() -> Histogram {
    // 1 ms to ~33 s: covers a cached label lookup through a long range query.
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// The store an ingest request wrote to, for [`HttpMetrics::note_write`].
#[derive(Clone, Copy, Debug)]
pub(crate) enum Store {
    Logs = 0,
    Metrics = 1,
}

/// At most one "storage full" line per this long.
const STORAGE_LOG_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

#[derive(Default)]
struct StorageState {
    /// Whether the last write to each [`Store`] failed for a full disk.
    full: [bool; 2],
    logged_at: Option<std::time::Instant>,
    /// A "storage full" line was logged and no "room again" yet.
    announced: bool,
}

/// Counters and histograms for every request.
#[derive(Clone)]
pub(crate) struct HttpMetrics {
    requests: Family<RouteLabels, Counter>,
    duration: Family<HandlerLabels, Histogram, fn() -> Histogram>,
    /// Open `/loki/api/v1/tail` websockets.
    pub(crate) live_tails: Gauge,
    /// 1 while writes fail because the data directory's filesystem is full.
    storage_full: Gauge,
    /// Ingest requests refused because the filesystem was full.
    storage_write_errors: Counter,
    storage: std::sync::Arc<parking_lot::Mutex<StorageState>>,
    /// Requests refused (or truncated) by a configured limit, by its config key.
    limit_hits: Family<LimitLabels, Counter>,
}

impl Default for HttpMetrics {
    fn default() -> Self {
        Self {
            requests: Family::default(),
            duration: Family::new_with_constructor(latency_histogram),
            live_tails: Gauge::default(),
            storage_full: Gauge::default(),
            storage_write_errors: Counter::default(),
            storage: Default::default(),
            limit_hits: Family::default(),
        }
    }
}

impl HttpMetrics {
    pub(crate) fn register(&self, registry: &mut Registry) {
        registry.register("tarsier_http_requests", "HTTP requests by route and status code", self.requests.clone());
        registry.register(
            "tarsier_http_request_duration_seconds",
            "HTTP request latency by route",
            self.duration.clone(),
        );
        registry.register(
            "tarsier_http_live_tails",
            "Open live tail websockets (server.max_tail_connections bounds them)",
            self.live_tails.clone(),
        );
        registry.register(
            "tarsier_limit_hits",
            "Requests refused by a configured limit, by the limit's config key",
            self.limit_hits.clone(),
        );
        registry.register(
            "tarsier_storage_full",
            "1 while ingest requests fail (503) because the data directory's filesystem is full",
            self.storage_full.clone(),
        );
        registry.register(
            "tarsier_storage_write_errors",
            "Ingest requests refused (503) because the data directory's filesystem was full",
            self.storage_write_errors.clone(),
        );
    }

    /// Notes the outcome of a write to `store`: a full disk sets `tarsier_storage_full` and logs
    /// one line when it starts (not one per refused request, and at most one a minute while a
    /// store flaps at the edge of full), the stores all writable again one line saying so.
    pub(crate) fn note_write<T>(&self, store: Store, result: &Result<T, ApiError>) {
        let full = match result {
            Err(e) if e.is_storage_full() => true,
            Ok(_) => false,
            Err(_) => return,
        };
        let mut state = self.storage.lock();
        let was_full = state.full.iter().any(|f| *f);
        state.full[store as usize] = full;
        let now_full = state.full.iter().any(|f| *f);
        self.storage_full.set(i64::from(now_full));
        if full {
            self.storage_write_errors.inc();
        }
        if now_full && !was_full && state.logged_at.is_none_or(|t| t.elapsed() >= STORAGE_LOG_EVERY) {
            state.logged_at = Some(std::time::Instant::now());
            state.announced = true;
            if let Err(e) = result {
                tracing::error!(
                    error = %e,
                    "storage full: writes are refused with 503 until the data directory has room; \
                     acknowledged data is safe"
                );
            }
        } else if !now_full && std::mem::take(&mut state.announced) {
            tracing::info!("storage has room again: writes are accepted");
        }
    }
}

/// Middleware recording each request under its route template (never the raw path, which would
/// explode cardinality).
pub(crate) async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let handler =
        req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string()).unwrap_or_else(|| "other".into());
    let started = std::time::Instant::now();
    let response = next.run(req).await;
    let metrics = state.http_metrics();
    if let Some(LimitHit(key)) = response.extensions().get::<LimitHit>() {
        metrics.limit_hits.get_or_create(&LimitLabels { limit: (*key).to_string() }).inc();
    }
    metrics.requests.get_or_create(&RouteLabels { handler: handler.clone(), code: response.status().as_u16() }).inc();
    metrics.duration.get_or_create(&HandlerLabels { handler }).observe(started.elapsed().as_secs_f64());
    response
}
