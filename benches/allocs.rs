//! Heap allocations per request, counted by a counting global allocator, for each row
//! of the auth bench. The passthrough's count is the baseline.
//!
//! `cargo bench --bench allocs` prints them and writes them to
//! `target/bench-results/allocs.json`, where `scripts/bench-table` reads them.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use common::{Floor, Keys, Naive, Ok200, drive, request};
use http::HeaderValue;
use tower::{Layer, ServiceBuilder};
use tower_apikey::middleware::FailureThrottle;
use tower_apikey::record::{Quota, QuotaPeriod, RateLimit};
use tower_apikey::store::cached::CachedKeyStore;
use tower_apikey::usage::{TracingUsageSink, UsageTracker};
use tower_apikey::{ApiKeyV2Layer, Scopes};

/// Counts allocations (and reallocations, which allocate) made through it.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const ROUNDS: u64 = 10_000;

/// Allocations per request (request building included; the baseline subtracts it).
fn per_request<S, B>(mut service: S, auth: Option<&HeaderValue>, status: u16) -> f64
where
    S: tower::Service<
            http::Request<common::Body>,
            Response = http::Response<B>,
            Error = std::convert::Infallible,
        >,
{
    // Warm up: first-use allocations (thread-locals, the tracker's slot) are not the
    // steady state.
    for _ in 0..100 {
        assert_eq!(drive(&mut service, request(auth)).status(), status);
    }
    let before = ALLOCATIONS.load(Relaxed);
    for _ in 0..ROUNDS {
        drop(drive(&mut service, request(auth)));
    }
    (ALLOCATIONS.load(Relaxed) - before) as f64 / ROUNDS as f64
}

/// `service` behind a layer that records a peer address, as a server does: what the
/// failure throttle reads. The recording's own allocations are the same with the
/// throttle on or off.
fn from_peer<S, B>(
    service: S,
) -> impl tower::Service<
    http::Request<common::Body>,
    Response = http::Response<B>,
    Error = std::convert::Infallible,
>
where
    S: tower::Service<
            http::Request<common::Body>,
            Response = http::Response<B>,
            Error = std::convert::Infallible,
        >,
{
    let peer = std::net::SocketAddr::from(([192, 0, 2, 1], 40_000));
    ServiceBuilder::new()
        .map_request(move |mut req: http::Request<common::Body>| {
            req.extensions_mut().insert(peer);
            req
        })
        .service(service)
}

fn main() {
    let keys = Keys::new(10_000);
    let valid = Some(&keys.valid);
    let base = per_request(Ok200, valid, 200);
    let rows: Vec<(&str, f64)> = vec![
        (
            "floor",
            per_request(
                Floor {
                    inner: Ok200,
                    digests: keys.floor.clone(),
                },
                valid,
                200,
            ),
        ),
        (
            "naive_hashmap",
            per_request(
                Naive {
                    inner: Ok200,
                    keys: keys.naive.clone(),
                },
                valid,
                200,
            ),
        ),
        (
            "apikey_v2_tracking_off",
            per_request(keys.layer(false).layer(Ok200), valid, 200),
        ),
        (
            "apikey_v2_tracking_on",
            per_request(keys.layer(true).layer(Ok200), valid, 200),
        ),
        ("apikey_v2_cached_hit", {
            let cached = CachedKeyStore::new(keys.store.clone());
            let service = ApiKeyV2Layer::new(cached.clone())
                .usage_tracker(UsageTracker::new(TracingUsageSink))
                .layer(Ok200);
            let counted = per_request(service, valid, 200);
            assert!(cached.contains(&keys.valid_id), "the rows were cache hits");
            counted
        }),
        // A `RequireScopesLayer` inside the layer refusing the key: its answer carries
        // the metrics' mark in the request's own extension map, reused.
        (
            "route_missing_scope",
            per_request(
                keys.layer(true).layer(
                    tower_apikey::RequireScopesLayer::new(
                        tower_apikey::Scopes::new(["reports:write"]).unwrap(),
                    )
                    .layer(Ok200),
                ),
                valid,
                403,
            ),
        ),
        (
            "peer_throttle_off",
            per_request(from_peer(keys.layer(true).layer(Ok200)), valid, 200),
        ),
        (
            "peer_throttle_on",
            per_request(
                from_peer(
                    keys.layer(true)
                        .throttle_failures(FailureThrottle::per_minute(10))
                        .layer(Ok200),
                ),
                valid,
                200,
            ),
        ),
        (
            "peer_unknown_id_throttle_off",
            per_request(
                from_peer(keys.layer(true).layer(Ok200)),
                Some(&keys.unknown_id),
                401,
            ),
        ),
        (
            "peer_unknown_id_throttle_on",
            per_request(
                from_peer(
                    keys.layer(true)
                        .throttle_failures(FailureThrottle::per_minute(u32::MAX))
                        .layer(Ok200),
                ),
                Some(&keys.unknown_id),
                401,
            ),
        ),
        ("peer_reject_throttled", {
            let mut service = from_peer(
                keys.layer(true)
                    .throttle_failures(FailureThrottle::per_minute(1))
                    .layer(Ok200),
            );
            // The one failure allowed; every failing request after it is throttled (a
            // proven key never is: it passes the throttle's check of its secret).
            assert_eq!(
                drive(&mut service, request(Some(&keys.unknown_id))).status(),
                401
            );
            per_request(service, Some(&keys.unknown_id), 429)
        }),
        (
            "reject_missing_header",
            per_request(keys.layer(true).layer(Ok200), None, 401),
        ),
        (
            "reject_malformed",
            per_request(keys.layer(true).layer(Ok200), Some(&keys.malformed), 401),
        ),
        (
            "reject_bad_checksum",
            per_request(keys.layer(true).layer(Ok200), Some(&keys.bad_checksum), 401),
        ),
        (
            "reject_unknown_id",
            per_request(keys.layer(true).layer(Ok200), Some(&keys.unknown_id), 401),
        ),
        (
            "reject_wrong_secret",
            per_request(keys.layer(true).layer(Ok200), Some(&keys.wrong_secret), 401),
        ),
        (
            "reject_missing_scope",
            per_request(
                keys.layer(true)
                    .require_scopes(Scopes::new(["reports:write"]).unwrap())
                    .layer(Ok200),
                valid,
                403,
            ),
        ),
        // Per-key limits: the same kind of key without and with a rate limit and a quota
        // (never reached), from a peer address.
        (
            "limited_unlimited",
            per_request(
                from_peer(keys.layer(true).layer(Ok200)),
                Some(&keys.add_limited(|r| r)),
                200,
            ),
        ),
        (
            "limited_accept",
            per_request(
                from_peer(keys.layer(true).layer(Ok200)),
                Some(&keys.add_limited(|r| {
                    r.with_rate_limit(Some(RateLimit::new(u32::MAX, 1).unwrap()))
                        .with_quota(Some(Quota::new(u32::MAX, QuotaPeriod::Month).unwrap()))
                })),
                200,
            ),
        ),
    ];
    println!("allocations per request (passthrough baseline: {base:.2})");
    println!("{:<26} {:>10} {:>16}", "row", "total", "beyond baseline");
    for (name, count) in &rows {
        println!("{name:<26} {count:>10.2} {:>16.2}", count - base);
    }
    if std::env::args().any(|arg| arg == "--bench") {
        let per_request: serde_json::Map<_, _> = rows
            .iter()
            .map(|(name, count)| (name.to_string(), serde_json::json!(count)))
            .collect();
        common::rounds::write_results(
            "allocs",
            &serde_json::json!({
                "bench": "allocs",
                "requests": ROUNDS,
                "passthrough": base,
                "per_request": per_request,
            }),
        );
    }
}
