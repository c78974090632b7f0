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

fn latency_histogram() -> Histogram {
    // 1 ms to ~33 s: covers a cached label lookup through a long range query.
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// Counters and histograms for every request.
#[derive(Clone)]
pub(crate) struct HttpMetrics {
    requests: Family<RouteLabels, Counter>,
    duration: Family<HandlerLabels, Histogram, fn() -> Histogram>,
    /// Open `/loki/api/v1/tail` websockets.
    pub(crate) live_tails: Gauge,
}

impl Default for HttpMetrics {
    fn default() -> Self {
        Self {
            requests: Family::default(),
            duration: Family::new_with_constructor(latency_histogram),
            live_tails: Gauge::default(),
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
    metrics.requests.get_or_create(&RouteLabels { handler: handler.clone(), code: response.status().as_u16() }).inc();
    metrics.duration.get_or_create(&HandlerLabels { handler }).observe(started.elapsed().as_secs_f64());
    response
}
