//! `GET /metrics`: the crate's metrics in the Prometheus text format, without a key
//! (DESIGN §13), from `metrics-exporter-prometheus` used as a recorder only: the text is
//! rendered from its handle into an axum route, so the exporter opens no listener of
//! its own and pushes nowhere.
//!
//! The demo serves this route only on its second listener, `--metrics-addr` (DESIGN
//! §7), never on the main one, which answers 404 at `/metrics`. The figures are counts
//! and durations with fixed labels: no key, key id or client address is ever a label
//! (see `tower_apikey::metrics`), so they hold no secret. They still tell an attacker
//! when the service runs on its fallbacks (`apikey_limit_backend_up 0`: limits on local
//! shares; `apikey_feed_connected 0`: a stale id filter), which is why they belong on
//! an internal address (`--metrics-addr 127.0.0.1:9100`), not on the internet.

use std::time::Duration;

use axum::Router;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};
use tower_apikey::metrics::LOOKUP_DURATION_SECONDS;

/// The buckets of the lookup-latency histogram, in seconds: from a fast query on
/// loopback to the lookup timeout (3 s), where a lookup ends as 503.
const LOOKUP_BUCKETS: [f64; 12] = [
    0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 3.0,
];

/// How often the recorder's histograms are drained between scrapes, so that their
/// memory stays bounded (the exporter's own listener would do this).
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Installs the process's recorder and describes the crate's metrics; call it before
/// anything records, once per process. Without a recorder (no `--metrics-addr`), the
/// crate's metric calls do nothing.
pub fn install() -> Result<PrometheusHandle, BuildError> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(LOOKUP_DURATION_SECONDS.to_owned()),
            &LOOKUP_BUCKETS,
        )?
        .install_recorder()?;
    tower_apikey::metrics::describe();
    Ok(handle)
}

/// `GET /metrics` over `handle`: the whole router of the metrics listener, so every
/// other path there is 404.
pub fn router(handle: PrometheusHandle) -> Router {
    Router::new().route(
        "/metrics",
        get(move || {
            let text = handle.render();
            async move {
                (
                    [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
                    text,
                )
                    .into_response()
            }
        }),
    )
}

/// The upkeep loop: spawn it; it runs until aborted.
pub async fn upkeep(handle: PrometheusHandle) {
    let mut every = tokio::time::interval(UPKEEP_EVERY);
    loop {
        every.tick().await;
        handle.run_upkeep();
    }
}
