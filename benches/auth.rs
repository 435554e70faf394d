//! The auth path, side by side in one run: the bare service, the floor of key
//! authentication, what people use today, and `ApiKeyV2Layer`'s accept and reject paths;
//! the cost of the `metrics` facade calls with no recorder, and with Prometheus's.
//!
//! Rows are interleaved round by round (see `common/rounds.rs` for why this is not
//! criterion): every row is measured once in round 1, then once in round 2, and so on,
//! so that a ratio between two rows can be taken within each round.
//!
//! ```text
//! cargo bench --bench auth                      # 100 rounds, ~3 ms per row per round
//! cargo bench --bench auth -- --rounds 100 reject/
//! scripts/bench-table                           # the table and the issue's goal ratios
//! ```

mod common;

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Instant;

use common::rounds::{Rounds, Sample, Settings, serial};
use common::{Body, Floor, Keys, Naive, Ok200, drive, expect_status, request, slowest_thread};
use http::{HeaderValue, Request};
use tower::Layer;
use tower_apikey::limits::{InMemoryLimitBackend, SharedLimits};
use tower_apikey::middleware::FailureThrottle;
use tower_apikey::record::{AllowedIps, Quota, QuotaPeriod, RateLimit, TenantId};
use tower_apikey::store::cached::CachedKeyStore;
use tower_apikey::usage::{TracingUsageSink, UsageTracker};
use tower_apikey::{ApiKeyV2Layer, KeyRecord, Scopes};

/// A row's requests: `GET /` with `auth` (or no `Authorization`).
fn with(auth: Option<&HeaderValue>) -> impl Fn() -> Request<Body> + 'static {
    let auth = auth.cloned();
    move || request(auth.as_ref())
}

fn comparison(rounds: &mut Rounds, keys: &Keys) {
    let valid = Some(&keys.valid);

    let mut passthrough = Ok200;
    expect_status(&mut passthrough, valid, 200);
    rounds.row("auth/passthrough", serial(passthrough, with(valid)));

    let mut floor = Floor {
        inner: Ok200,
        digests: keys.floor.clone(),
    };
    expect_status(&mut floor, valid, 200);
    rounds.row("auth/floor", serial(floor, with(valid)));

    let bearer_value = HeaderValue::from_str(&format!("Bearer {}", keys.valid_text)).unwrap();
    #[allow(deprecated)]
    let mut bearer =
        tower_http::validate_request::ValidateRequestHeaderLayer::bearer(&keys.valid_text)
            .layer(Ok200);
    expect_status(&mut bearer, Some(&bearer_value), 200);
    rounds.row(
        "auth/tower_http_bearer",
        serial(bearer, with(Some(&bearer_value))),
    );

    let mut naive = Naive {
        inner: Ok200,
        keys: keys.naive.clone(),
    };
    expect_status(&mut naive, valid, 200);
    rounds.row("auth/naive_hashmap", serial(naive, with(valid)));

    for tracking in [false, true] {
        let mut service = keys.layer(tracking).layer(Ok200);
        expect_status(&mut service, valid, 200);
        let name = if tracking {
            "auth/apikey_v2_tracking_on"
        } else {
            "auth/apikey_v2_tracking_off"
        };
        rounds.row(name, serial(service, with(valid)));
    }

    // A key of a tenant (DESIGN §14), tracking on: the tenant rides in the record the
    // lookup shares, so it should cost what a key of no tenant costs.
    let tenant_key = keys.add_limited(|r| r.with_tenant(Some(TenantId::new("acme").unwrap())));
    let mut service = keys.layer(true).layer(Ok200);
    expect_status(&mut service, Some(&tenant_key), 200);
    rounds.row(
        "auth/apikey_v2_tenant_key",
        serial(service, with(Some(&tenant_key))),
    );

    // The same store behind `CachedKeyStore`, the key already cached: what every
    // request but the first costs with a database behind the cache.
    let cached = CachedKeyStore::new(keys.store.clone());
    let mut service = ApiKeyV2Layer::new(cached.clone())
        .usage_tracker(UsageTracker::new(TracingUsageSink))
        .layer(Ok200);
    expect_status(&mut service, valid, 200);
    assert!(cached.contains(&keys.valid_id), "the key is cached");
    rounds.row("auth/apikey_v2_cached_hit", serial(service, with(valid)));
}

/// The failure throttle's cost: the accept path with it off and on (the request carries
/// its peer address either way, as a server inserts it), a failure counted, a refusal
/// at a throttled address, and a valid key accepted from it.
fn throttle(rounds: &mut Rounds, keys: &Keys) {
    let peer = SocketAddr::from(([192, 0, 2, 1], 40_000));
    let mut row = |name: &str, layer: ApiKeyV2Layer, auth: &HeaderValue, status: u16| {
        let mut service = layer.layer(Ok200);
        let auth = auth.clone();
        let from_peer = move || {
            let mut req = request(Some(&auth));
            req.extensions_mut().insert(peer);
            req
        };
        assert_eq!(drive(&mut service, from_peer()).status(), status, "{name}");
        rounds.row(format!("throttle/{name}"), serial(service, from_peer));
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
    // A throttled address: its wrong keys are refused before proof, its right key,
    // proven from memory, is let through (DESIGN §6).
    row("throttled", strict.clone(), &keys.unknown_id, 429);
    row("accept_from_a_throttled_address", strict, &keys.valid, 200);
}

/// The accept path over stores of 1 to 1,000,000 keys. Each store is built only if a
/// row of it is wanted (the million takes a few seconds).
fn store_sizes(rounds: &mut Rounds, keys: &Keys) {
    for n in [1, 10_000, 1_000_000] {
        let name = format!("store_size/{n}_keys");
        if !rounds.settings().wants(&name) {
            continue;
        }
        // The store needs its five named keys, so "1 key" is the smallest store: the
        // valid key's own. 10,000 is the shared store of the other rows.
        let sized;
        let keys = if n == 10_000 {
            keys
        } else {
            sized = Keys::new(n.max(4));
            &sized
        };
        let mut service = keys.layer(true).layer(Ok200);
        expect_status(&mut service, Some(&keys.valid), 200);
        rounds.row(name, serial(service, with(Some(&keys.valid))));
    }
}

fn rejections(rounds: &mut Rounds, keys: &Keys) {
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
        rounds.row(format!("reject/{name}"), serial(service, with(auth)));
    }
    let mut scoped = keys
        .layer(true)
        .require_scopes(Scopes::new(["reports:write"]).unwrap())
        .layer(Ok200);
    expect_status(&mut scoped, Some(&keys.valid), 403);
    rounds.row(
        "reject/missing_scope",
        serial(scoped, with(Some(&keys.valid))),
    );
}

/// Requests on one thread and on two at once, each thread with its own service clone
/// and its own key, all over one store and one tracker. A sample's time is the slowest
/// thread's, for as many requests on each thread as the one-thread row makes.
fn threads(rounds: &mut Rounds, keys: &Keys) {
    let layer = keys.layer(true);
    let sample = |auths: Vec<HeaderValue>| -> Sample {
        let layer = layer.clone();
        Box::new(move |iters| {
            slowest_thread(auths.clone(), |auth, ready| {
                let mut service = layer.layer(Ok200);
                let requests: Vec<_> = (0..iters).map(|_| request(Some(&auth))).collect();
                ready();
                let start = Instant::now();
                for req in requests {
                    drop(black_box(drive(&mut service, req)));
                }
                start.elapsed()
            })
        })
    };
    rounds.row(
        "threads/accept_one_thread",
        sample(vec![keys.valid.clone()]),
    );
    rounds.row(
        "threads/accept_two_threads",
        sample(vec![keys.valid.clone(), keys.valid2.clone()]),
    );
}

/// A rate limit and a quota no bench reaches (a new request every nanosecond, four
/// billion a month), so that every request is accepted and consumes both.
fn unreachable_limits(record: KeyRecord) -> KeyRecord {
    record
        .with_rate_limit(Some(RateLimit::new(u32::MAX, 1).unwrap()))
        .with_quota(Some(Quota::new(u32::MAX, QuotaPeriod::Month).unwrap()))
}

/// 64 networks, the client's in the last: a whole scan.
fn allowlist_64(record: KeyRecord) -> KeyRecord {
    let mut nets: Vec<String> = (0..63).map(|i| format!("10.{i}.0.0/16")).collect();
    nets.push("192.0.2.0/24".into());
    record.with_allowed_ips(Some(AllowedIps::new(&nets).unwrap()))
}

/// Per-key limits (DESIGN §12): the accept path of a key without limits and of the same
/// kind of key with a rate limit and a quota, a refusal at the rate limit, and a key
/// restricted to a 64-entry allowlist; every request carries its peer address, as a
/// server inserts it, so that the rows differ only in the key's record.
fn limits(rounds: &mut Rounds, keys: &Keys) {
    let peer = SocketAddr::from(([192, 0, 2, 1], 40_000));
    let mut row = |name: &str, auth: HeaderValue, status: u16| {
        let mut service = keys.layer(true).layer(Ok200);
        let from_peer = move || {
            let mut req = request(Some(&auth));
            req.extensions_mut().insert(peer);
            req
        };
        // The first request makes the key's entry (and, at the limit, spends the one
        // request there is); the rows measure what comes after.
        drive(&mut service, from_peer());
        assert_eq!(drive(&mut service, from_peer()).status(), status, "{name}");
        rounds.row(format!("limits/{name}"), serial(service, from_peer));
    };
    row("accept_unlimited", keys.add_limited(|r| r), 200);
    row(
        "accept_rate_and_quota",
        keys.add_limited(unreachable_limits),
        200,
    );
    let at_limit = keys.add_limited(|r| {
        r.with_rate_limit(Some(RateLimit::new(1, 86_400).unwrap()))
            .with_quota(Some(Quota::new(u32::MAX, QuotaPeriod::Day).unwrap()))
    });
    row("reject_rate_limited", at_limit, 429);
    row("accept_allowlist_64", keys.add_limited(allowlist_64), 200);

    // The same limited key with its limits shared (issue 20) and a warm lease: the
    // lease task runs on a thread of its own, as it would in a server, on the in-memory
    // ledger, so that the row is the request path's cost alone.
    let limits = SharedLimits::new(InMemoryLimitBackend::new());
    let task = limits.run(std::future::pending());
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
            .block_on(task)
    });
    let auth = keys.add_limited(unreachable_limits);
    let mut service = keys.layer(true).shared_limits(&limits).layer(Ok200);
    let from_peer = move || {
        let mut req = request(Some(&auth));
        req.extensions_mut().insert(peer);
        req
    };
    // The first requests are owed while the first lease is awaited; once it came, the
    // row spends leased tokens.
    while limits.stats().granted == 0 {
        assert_eq!(drive(&mut service, from_peer()).status(), 200);
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    assert_eq!(drive(&mut service, from_peer()).status(), 200);
    rounds.row(
        "limits/shared_warm_lease_accept",
        serial(service, from_peer),
    );

    // Two threads on two limited keys against one, as `threads` does for plain keys.
    let layer = keys.layer(true);
    let limited = [
        keys.add_limited(unreachable_limits),
        keys.add_limited(unreachable_limits),
    ];
    let sample = |auths: Vec<HeaderValue>| -> Sample {
        let layer = layer.clone();
        Box::new(move |iters| {
            slowest_thread(auths.clone(), |auth, ready| {
                let mut service = layer.layer(Ok200);
                let requests: Vec<_> = (0..iters).map(|_| request(Some(&auth))).collect();
                ready();
                let start = Instant::now();
                for req in requests {
                    drop(black_box(drive(&mut service, req)));
                }
                start.elapsed()
            })
        })
    };
    rounds.row(
        "limits/limited_one_thread",
        sample(vec![limited[0].clone()]),
    );
    rounds.row("limits/limited_two_threads", sample(limited.to_vec()));
}

/// The accept path counts one `apikey_requests_total{outcome="accepted"}` (the bench is
/// built with the `metrics` feature, as dev-dependencies enable it). The rows: that path
/// with no recorder installed; the same with the same facade call made a second time
/// in front of it (so `accept_call_again − accept_no_recorder` is what one call costs
/// without a recorder); and with a Prometheus recorder installed for the row's thread.
fn metrics_rows(rounds: &mut Rounds, keys: &Keys) {
    let valid = Some(&keys.valid);
    let mut service = keys.layer(true).layer(Ok200);
    expect_status(&mut service, valid, 200);
    rounds.row("metrics/accept_no_recorder", serial(service, with(valid)));

    let mut again = CountAgain(keys.layer(true).layer(Ok200));
    expect_status(&mut again, valid, 200);
    rounds.row("metrics/accept_call_again", serial(again, with(valid)));

    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let mut service = keys.layer(true).layer(Ok200);
    expect_status(&mut service, valid, 200);
    let mut sample = serial(service, with(valid));
    rounds.row(
        "metrics/accept_prometheus",
        Box::new(move |iters| {
            // The recorder for this thread only, and only while this row's sample runs.
            let _installed = metrics::set_default_local_recorder(&recorder);
            let took = sample(iters);
            // Keeps the histograms drained, as an exporter's upkeep does.
            handle.run_upkeep();
            took
        }),
    );
}

/// `inner` with the accept path's one facade call made again before each request: the
/// same name and static label, so the same prebuilt key and no allocation.
#[derive(Clone)]
struct CountAgain<S>(S);

impl<S, B> tower::Service<Request<B>> for CountAgain<S>
where
    S: tower::Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        metrics::counter!("apikey_requests_total", "outcome" => "accepted").increment(1);
        self.0.call(req)
    }
}

fn main() {
    let mut rounds = Rounds::new(Settings::from_args());
    let keys = Keys::new(10_000);
    comparison(&mut rounds, &keys);
    throttle(&mut rounds, &keys);
    store_sizes(&mut rounds, &keys);
    rejections(&mut rounds, &keys);
    threads(&mut rounds, &keys);
    limits(&mut rounds, &keys);
    metrics_rows(&mut rounds, &keys);
    rounds.run("auth");
}
