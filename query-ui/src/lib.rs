//! Tarsier's HTTP surface. One axum [`Router`] serves every API a user or a tool talks to: the
//! Prometheus query API (Grafana, KEDA), the Loki query API (Grafana's Loki data source), the
//! ingest endpoints (Loki push, Elasticsearch `_bulk`, Prometheus remote_write), the operations endpoints (`/metrics`,
//! `/-/healthy`, `/-/ready`), the API's OpenAPI description and the web UI. Handlers only translate HTTP to the stores' blocking
//! APIs (run on the blocking pool) and back; the stores own all logic.

pub mod alertmanager_api;
pub mod auth;
pub mod config;
mod dashboards;
pub mod error;
mod es_api;
pub mod external_metrics;
pub mod external_metrics_auth;
mod headers;
mod ingest;
mod limits;
mod loki_api;
mod loki_tail;
mod metrics;
mod ops;
mod params;
mod prom_api;
mod rules_api;
pub mod runtime;
pub mod snapshot;
mod state;
mod targets;
mod tenants;
pub mod tls;
mod ui;

use axum::Router;
use axum::routing::{get, post};

pub use config::HttpConfig;
pub use error::ApiError;
pub use state::{AppState, Services, SharedText};

/// Builds the router for the services present in `state`: a role without a store (the agent)
/// serves only the operations endpoints.
pub fn router(state: AppState) -> Router {
    let mut router = Router::new()
        .route("/-/healthy", get(ops::healthy).head(ops::healthy))
        .route("/-/ready", get(ops::ready).head(ops::ready))
        .route("/metrics", get(ops::metrics))
        .route("/api/v1/openapi.yaml", get(ops::openapi))
        .route("/-/reload", post(runtime::reload).put(runtime::reload))
        .route("/api/v1/status/runtimeinfo", get(runtime::runtimeinfo));
    if state.services().indexer.is_some() {
        router = router
            .route("/loki/api/v1/push", post(ingest::loki_push))
            .route("/loki/api/v1/query_range", get(loki_api::query_range).post(loki_api::query_range))
            .route("/loki/api/v1/query", get(loki_api::query).post(loki_api::query))
            .route("/loki/api/v1/labels", get(loki_api::labels).post(loki_api::labels))
            .route("/loki/api/v1/label", get(loki_api::labels))
            .route("/loki/api/v1/label/{name}/values", get(loki_api::label_values))
            .route("/loki/api/v1/series", get(loki_api::series).post(loki_api::series))
            .route("/loki/api/v1/tail", get(loki_tail::tail))
            .route("/loki/api/v1/index/volume", get(loki_api::volume).post(loki_api::volume))
            .route("/loki/api/v1/index/volume_range", get(loki_api::volume_range).post(loki_api::volume_range))
            .route("/api/v1/logs/context", get(loki_api::context))
            .route("/_bulk", post(es_api::bulk).put(es_api::bulk))
            .route("/{index}/_bulk", post(es_api::bulk_index).put(es_api::bulk_index))
            .route("/_license", get(es_api::license))
            .route("/_template/{name}", get(es_api::not_found).put(es_api::acknowledge))
            .route("/_index_template/{name}", get(es_api::not_found).put(es_api::acknowledge))
            .route("/_ilm/policy/{name}", get(es_api::not_found).put(es_api::acknowledge));
    }
    if state.services().tsdb.is_some() {
        router = router
            .route("/api/v1/write", post(ingest::remote_write))
            .route("/api/v1/query", get(prom_api::query).post(prom_api::query))
            .route("/api/v1/query_range", get(prom_api::query_range).post(prom_api::query_range))
            .route("/api/v1/labels", get(prom_api::labels).post(prom_api::labels))
            .route("/api/v1/label/{name}/values", get(prom_api::label_values))
            .route("/api/v1/series", get(prom_api::series).post(prom_api::series))
            .route("/api/v1/metadata", get(prom_api::metadata))
            .route("/api/v1/status/tsdb", get(prom_api::status_tsdb));
    }
    router = router
        .route("/api/v1/status/buildinfo", get(prom_api::buildinfo))
        .route("/api/v1/status/config", get(dashboards::status_config))
        .route("/api/v1/status/tenants", get(tenants::tenants))
        .route("/api/v1/dashboards", get(dashboards::list))
        .route("/api/v1/dashboards/{id}", get(dashboards::get).put(dashboards::put).delete(dashboards::delete))
        .route("/api/v1/targets", get(targets::targets))
        .route("/api/v1/rules", get(rules_api::rules))
        .route("/api/v1/alerts", get(rules_api::alerts));
    if state.services().data_dir.is_some() {
        router = router
            .route("/api/v1/admin/snapshot", post(snapshot::create))
            .route("/api/v1/admin/snapshots/{name}", axum::routing::delete(snapshot::delete))
            .route("/api/v1/admin/snapshots/{name}/files/{*path}", get(snapshot::file_chunk));
    }
    if let Some(notifier) = state.services().notifier.clone() {
        router = router.merge(alertmanager_api::routes(notifier));
    }
    if state.services().indexer.is_some() || state.services().tsdb.is_some() {
        router = ui::routes(router);
    }
    router
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth::enforce))
        .layer(axum::middleware::from_fn_with_state(state.clone(), metrics::track))
        .layer(axum::middleware::from_fn(headers::security_headers))
        .with_state(state)
}
