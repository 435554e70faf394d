//! The auth path, side by side in one run: the bare service, the floor of key
//! authentication, what people use today, and `ApiKeyV2Layer`'s accept and reject paths.
//!
//! `cargo bench --bench auth`, then `scripts/bench-table` prints the table with each
//! row's overhead over the passthrough and its ratio to the floor's overhead.

mod common;

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{Body, Floor, Keys, Naive, Ok200, drive, expect_status, request, slowest_thread};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use http::{HeaderValue, Request, Response};
use std::convert::Infallible;
use tower::{Layer, Service};
use tower_apikey::{ApiKeyV2Layer, FailureThrottle, Scopes, TracingSink, UsageTracker};

/// Times one call per iteration; building the request is setup, not measured.
fn bench_row<S>(
    c: &mut Criterion,
    group: &str,
    name: &str,
    mut service: S,
    auth: Option<&HeaderValue>,
) where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>,
{
    c.benchmark_group(group).bench_function(name, |b| {
        b.iter_batched(
            || request(auth),
            |req| black_box(drive(&mut service, req)),
            BatchSize::SmallInput,
        )
    });
}

fn comparison(c: &mut Criterion) {
    let keys = Keys::new(10_000);
    let valid = Some(&keys.valid);

    let mut passthrough = Ok200;
    expect_status(&mut passthrough, valid, 200);
    bench_row(c, "auth", "passthrough", passthrough, valid);

    let mut floor = Floor {
        inner: Ok200,
        digests: keys.floor.clone(),
    };
    expect_status(&mut floor, valid, 200);
    bench_row(c, "auth", "floor", floor, valid);

    let bearer_value = HeaderValue::from_str(&format!("Bearer {}", keys.valid_text)).unwrap();
    #[allow(deprecated)]
    let mut bearer =
        tower_http::validate_request::ValidateRequestHeaderLayer::bearer(&keys.valid_text)
            .layer(Ok200);
    expect_status(&mut bearer, Some(&bearer_value), 200);
    bench_row(c, "auth", "tower_http_bearer", bearer, Some(&bearer_value));

    let mut naive = Naive {
        inner: Ok200,
        keys: keys.naive.clone(),
    };
    expect_status(&mut naive, valid, 200);
    bench_row(c, "auth", "naive_hashmap", naive, valid);

    for tracking in [false, true] {
        let mut service = keys.layer(tracking).layer(Ok200);
        expect_status(&mut service, valid, 200);
        let name = if tracking {
            "apikey_v2_tracking_on"
        } else {
            "apikey_v2_tracking_off"
        };
        bench_row(c, "auth", name, service, valid);
    }

    // The same store behind `CachedKeyStore`, the key already cached: what every
    // request but the first costs with a database behind the cache.
    let cached = tower_apikey::CachedKeyStore::new(keys.store.clone());
    let mut service = ApiKeyV2Layer::new(cached)
        .usage_tracker(UsageTracker::new(TracingSink))
        .layer(Ok200);
    expect_status(&mut service, valid, 200);
    bench_row(c, "auth", "apikey_v2_cached_hit", service, valid);
}

/// The failure throttle's cost: the accept path with it off and on (the request carries
/// its peer address either way, as a server inserts it), a failure counted, and a
/// refusal of a throttled address.
fn throttle(c: &mut Criterion) {
    let keys = Keys::new(10_000);
    let peer = SocketAddr::from(([192, 0, 2, 1], 40_000));
    let mut row = |name: &str, layer: ApiKeyV2Layer, auth: &HeaderValue, status: u16| {
        let mut service = layer.layer(Ok200);
        let from_peer = || {
            let mut req = request(Some(auth));
            req.extensions_mut().insert(peer);
            req
        };
        assert_eq!(drive(&mut service, from_peer()).status(), status, "{name}");
        c.benchmark_group("throttle").bench_function(name, |b| {
            b.iter_batched(
                from_peer,
                |req| black_box(drive(&mut service, req)),
                BatchSize::SmallInput,
            )
        });
    };
    row("accept_throttle_off", keys.layer(true), &keys.valid, 200);
    let on = keys
        .layer(true)
        .throttle_failures(FailureThrottle::per_minute(10));
    row("accept_throttle_on", on, &keys.valid, 200);
    // An allowance no bench exhausts: every failure is looked up and counted.
    let counting = keys
        .layer(true)
        .throttle_failures(FailureThrottle::per_minute(u32::MAX));
    row(
        "unknown_id_throttle_off",
        keys.layer(true),
        &keys.unknown_id,
        401,
    );
    row("unknown_id_throttle_on", counting, &keys.unknown_id, 401);
    let strict = keys
        .layer(true)
        .throttle_failures(FailureThrottle::per_minute(1));
    let mut throttled = strict.clone().layer(Ok200);
    let mut req = request(Some(&keys.unknown_id));
    req.extensions_mut().insert(peer);
    assert_eq!(drive(&mut throttled, req).status(), 401);
    row("throttled", strict, &keys.valid, 429);
}

fn store_sizes(c: &mut Criterion) {
    for n in [1, 10_000, 1_000_000] {
        // The store needs its five named keys, so "1 key" is the smallest store: the
        // valid key's own.
        let keys = Keys::new(n.max(4));
        let mut service = keys.layer(true).layer(Ok200);
        expect_status(&mut service, Some(&keys.valid), 200);
        bench_row(
            c,
            "store_size",
            &format!("{n}_keys"),
            service,
            Some(&keys.valid),
        );
    }
}

fn rejections(c: &mut Criterion) {
    let keys = Keys::new(10_000);
    let cases: [(&str, Option<&HeaderValue>, u16); 7] = [
        ("missing_header", None, 401),
        ("malformed", Some(&keys.malformed), 401),
        ("bad_checksum", Some(&keys.bad_checksum), 401),
        ("unknown_id", Some(&keys.unknown_id), 401),
        ("wrong_secret", Some(&keys.wrong_secret), 401),
        ("expired", Some(&keys.expired), 401),
        ("revoked", Some(&keys.revoked), 401),
    ];
    for (name, auth, status) in cases {
        let mut service = keys.layer(true).layer(Ok200);
        expect_status(&mut service, auth, status);
        bench_row(c, "reject", name, service, auth);
    }
    let mut scoped = keys
        .layer(true)
        .require_scopes(Scopes::new(["reports:write"]).unwrap())
        .layer(Ok200);
    expect_status(&mut scoped, Some(&keys.valid), 403);
    bench_row(c, "reject", "missing_scope", scoped, Some(&keys.valid));
}

/// Requests per second on one thread and on two, each thread with its own service
/// clone and its own key, all over one store and one tracker.
fn threads(c: &mut Criterion) {
    let keys = Keys::new(10_000);
    let layer = keys.layer(true);
    let run = |auths: Vec<HeaderValue>, iters: u64| -> Duration {
        slowest_thread(auths, |auth, ready| {
            let mut service = layer.layer(Ok200);
            let requests: Vec<_> = (0..iters).map(|_| request(Some(&auth))).collect();
            ready();
            let start = Instant::now();
            for req in requests {
                black_box(drive(&mut service, req));
            }
            start.elapsed()
        })
    };
    let mut group = c.benchmark_group("threads");
    group.throughput(Throughput::Elements(1));
    group.bench_function("accept_one_thread", |b| {
        b.iter_custom(|iters| run(vec![keys.valid.clone()], iters))
    });
    group.throughput(Throughput::Elements(2));
    group.bench_function("accept_two_threads", |b| {
        b.iter_custom(|iters| run(vec![keys.valid.clone(), keys.valid2.clone()], iters))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = comparison, throttle, store_sizes, rejections, threads
}
criterion_main!(benches);
