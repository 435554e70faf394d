//! The metrics through the layer, against a Prometheus recorder set for the test's
//! thread only (the tests run on current-thread runtimes, so every poll is on it, and
//! tests running at the same time cannot see each other's counts).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use async_trait::async_trait;
use http::header::AUTHORIZATION;
use http::{Request, Response};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use tower::{Service, ServiceBuilder, ServiceExt};

use super::{OUTCOMES, describe};
use crate::clock::ManualClock;
use crate::error::StoreError;
use crate::key::{KeyId, PlaintextKey};
use crate::manager::{KeyManager, NewKey};
use crate::middleware::layer::ApiKeyV2Layer;
use crate::middleware::require_scopes::RequireScopesLayer;
use crate::middleware::throttle::FailureThrottle;
use crate::record::{AllowedIps, KeyRecord, Quota, QuotaPeriod, RateLimit};
use crate::scope::Scopes;
use crate::store::KeyStore;
use crate::store::cached::CachedKeyStore;
use crate::store::memory::InMemoryKeyStore;
use crate::testing::{FailingStore, with_wrong_secret};

fn recorder() -> (PrometheusRecorder, PrometheusHandle) {
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    (recorder, handle)
}

/// The value of every series in the Prometheus text, by its name and labels.
fn scrape(handle: &PrometheusHandle) -> BTreeMap<String, f64> {
    handle
        .render()
        .lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

fn requests(handle: &PrometheusHandle, outcome: &str) -> f64 {
    let series = format!("apikey_requests_total{{outcome=\"{outcome}\"}}");
    scrape(handle).get(&series).copied().unwrap_or(0.0)
}

async fn ok(_: Request<String>) -> Result<Response<String>, Infallible> {
    Ok(Response::new("ok".to_owned()))
}

fn request(auth: Option<String>) -> Request<String> {
    let mut req = Request::builder().uri("/");
    if let Some(auth) = auth {
        req = req.header(AUTHORIZATION, auth);
    }
    let mut req = req.body(String::new()).unwrap();
    req.extensions_mut()
        .insert(SocketAddr::from(([192, 0, 2, 7], 40_000)));
    req
}

fn key(key: &PlaintextKey) -> Option<String> {
    Some(format!("ApiKey-v2 {}", key.expose_secret()))
}

/// Sends `req` through `layer` around a `RequireScopesLayer` for `route` (none if
/// empty); returns the status.
async fn send(layer: &ApiKeyV2Layer, route: &[&str], req: Request<String>) -> u16 {
    let response = if route.is_empty() {
        ServiceBuilder::new()
            .layer(layer.clone())
            .service_fn(ok)
            .oneshot(req)
            .await
            .unwrap()
            .status()
    } else {
        ServiceBuilder::new()
            .layer(layer.clone())
            .layer(RequireScopesLayer::new(
                Scopes::new(route.iter().copied()).unwrap(),
            ))
            .service_fn(ok)
            .oneshot(req)
            .await
            .unwrap()
            .status()
    };
    response.as_u16()
}

/// Sheds every lookup, as a cache past its `max_loads` does.
#[derive(Debug)]
struct SheddingStore;

#[async_trait]
impl KeyStore for SheddingStore {
    async fn lookup(&self, _: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
        Err(StoreError::Overloaded)
    }
}

#[tokio::test]
async fn every_outcome_of_design_13_is_counted_once_per_request() {
    let (recorder, handle) = recorder();
    let _local = ::metrics::set_default_local_recorder(&recorder);
    describe();
    for outcome in OUTCOMES {
        assert_eq!(requests(&handle, outcome), 0.0, "{outcome} starts at 0");
    }

    let store = InMemoryKeyStore::new();
    let clock = ManualClock::starting_now();
    let manager = KeyManager::builder(store.clone())
        .clock(clock.clone())
        .build();
    let create = |new: NewKey| {
        let manager = &manager;
        async move { manager.create(new).await.unwrap().key }
    };
    let plain = create(NewKey::new("plain", ["reports:read"])).await;
    let expiring =
        create(NewKey::new("expiring", ["reports:read"]).lifetime(Duration::from_secs(60))).await;
    let revoked = create(NewKey::new("revoked", ["reports:read"])).await;
    manager.revoke(revoked.id()).await.unwrap();
    let elsewhere = create(
        NewKey::new("elsewhere", ["reports:read"])
            .allowed_ips(AllowedIps::new(["10.0.0.0/8"]).unwrap()),
    )
    .await;
    let rated =
        create(NewKey::new("rated", ["reports:read"]).rate_limit(RateLimit::new(1, 3600).unwrap()))
            .await;
    let quota = create(
        NewKey::new("quota", ["reports:read"]).quota(Quota::new(1, QuotaPeriod::Day).unwrap()),
    )
    .await;
    clock.advance(Duration::from_secs(61));

    let layer = ApiKeyV2Layer::new(store.clone()).clock(clock.clone());
    let wrong = Some(format!(
        "ApiKey-v2 {}",
        with_wrong_secret(plain.expose_secret())
    ));
    let cases: Vec<(&str, Option<String>, &[&str], u16)> = vec![
        ("accepted", key(&plain), &[], 200),
        ("accepted", key(&plain), &["reports:read"], 200),
        ("missing", None, &[], 401),
        ("invalid_request", Some("Bearer abc".to_owned()), &[], 401),
        (
            "invalid_key",
            Some("ApiKey-v2 mkc_nonsense".to_owned()),
            &[],
            401,
        ),
        ("invalid_key", wrong.clone(), &[], 401),
        ("expired", key(&expiring), &[], 401),
        ("revoked", key(&revoked), &[], 401),
        // Refused inside, by the route's layer: counted by the layer outside, once.
        ("insufficient_scope", key(&plain), &["reports:write"], 403),
        ("address_not_allowed", key(&elsewhere), &[], 403),
        ("accepted", key(&rated), &[], 200),
        ("rate_limited", key(&rated), &[], 429),
        ("accepted", key(&quota), &[], 200),
        ("quota_exceeded", key(&quota), &[], 429),
    ];
    let mut expected: BTreeMap<&str, f64> = BTreeMap::new();
    for (outcome, auth, route, status) in cases {
        assert_eq!(
            send(&layer, route, request(auth)).await,
            status,
            "{outcome}"
        );
        *expected.entry(outcome).or_default() += 1.0;
    }
    // The layer's own requirement refuses in the verdict instead.
    let requiring = layer
        .clone()
        .require_scopes(Scopes::new(["reports:write"]).unwrap());
    assert_eq!(send(&requiring, &[], request(key(&plain))).await, 403);
    *expected.entry("insufficient_scope").or_default() += 1.0;

    let throttling = layer
        .clone()
        .throttle_failures(FailureThrottle::per_minute(1));
    assert_eq!(send(&throttling, &[], request(wrong.clone())).await, 401);
    // A key proven from memory is never throttled; a second wrong one is.
    assert_eq!(send(&throttling, &[], request(key(&plain))).await, 200);
    assert_eq!(send(&throttling, &[], request(wrong)).await, 429);
    *expected.entry("accepted").or_default() += 1.0;
    *expected.entry("invalid_key").or_default() += 1.0;
    *expected.entry("throttled").or_default() += 1.0;

    let shedding = ApiKeyV2Layer::new(SheddingStore);
    assert_eq!(send(&shedding, &[], request(key(&plain))).await, 503);
    *expected.entry("overloaded").or_default() += 1.0;
    let failing = ApiKeyV2Layer::new(FailingStore);
    assert_eq!(send(&failing, &[], request(key(&plain))).await, 503);
    *expected.entry("store_unavailable").or_default() += 1.0;

    for outcome in OUTCOMES {
        let want = expected.get(outcome).copied().unwrap_or(0.0);
        assert_eq!(requests(&handle, outcome), want, "{outcome}");
    }
    assert_eq!(expected.len(), OUTCOMES.len(), "every outcome was produced");
}

#[tokio::test]
async fn a_route_layer_with_no_authentication_outside_counts_its_missing_itself() {
    let (recorder, handle) = recorder();
    let _local = ::metrics::set_default_local_recorder(&recorder);
    let status = ServiceBuilder::new()
        .layer(RequireScopesLayer::new(Scopes::new(["a:b"]).unwrap()))
        .service_fn(ok)
        .oneshot(request(None))
        .await
        .unwrap()
        .status();
    assert_eq!(status, 401);
    assert_eq!(requests(&handle, "missing"), 1.0);
}

#[tokio::test]
async fn an_accepted_request_dropped_before_its_answer_is_counted_once() {
    let (recorder, handle) = recorder();
    let _local = ::metrics::set_default_local_recorder(&recorder);
    let store = InMemoryKeyStore::new();
    let manager = KeyManager::new(store.clone());
    let plain = manager.create(NewKey::new("k", ["a:b"])).await.unwrap().key;
    let mut service = ServiceBuilder::new()
        .layer(ApiKeyV2Layer::new(store))
        .service_fn(|_: Request<String>| {
            std::future::pending::<Result<Response<String>, Infallible>>()
        });
    let future = service.ready().await.unwrap().call(request(key(&plain)));
    let polled = tokio::time::timeout(Duration::from_millis(10), future).await;
    assert!(polled.is_err(), "the inner service never answers");
    assert_eq!(requests(&handle, "accepted"), 1.0);
}

/// Answers only through the future, as a database does.
#[derive(Debug, Clone)]
struct Waiting(InMemoryKeyStore);

#[async_trait]
impl KeyStore for Waiting {
    async fn lookup(&self, id: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
        tokio::task::yield_now().await;
        self.0.lookup(id).await
    }
}

#[tokio::test]
async fn the_cache_counts_hits_and_misses_and_only_waiting_lookups_are_timed() {
    let (recorder, handle) = recorder();
    let _local = ::metrics::set_default_local_recorder(&recorder);
    let store = InMemoryKeyStore::new();
    let manager = KeyManager::new(store.clone());
    let plain = manager.create(NewKey::new("k", ["a:b"])).await.unwrap().key;
    let layer = ApiKeyV2Layer::new(CachedKeyStore::new(Waiting(store)));
    for _ in 0..3 {
        assert_eq!(send(&layer, &[], request(key(&plain))).await, 200);
    }
    let scraped = scrape(&handle);
    assert_eq!(scraped["apikey_cache_misses_total"], 1.0, "{scraped:?}");
    assert_eq!(scraped["apikey_cache_hits_total"], 2.0, "{scraped:?}");
    assert_eq!(
        scraped["apikey_lookup_duration_seconds_count"], 1.0,
        "the two hits answered from memory are not timed: {scraped:?}"
    );
    assert_eq!(requests(&handle, "accepted"), 3.0);
}

#[test]
fn no_label_value_is_taken_from_a_request() {
    // Every series `describe` starts, and so every series there is: the label values
    // are the fixed outcome names and id-filter reasons, nothing else.
    let (recorder, handle) = recorder();
    ::metrics::with_local_recorder(&recorder, describe);
    for series in scrape(&handle).keys() {
        if let Some((_, labels)) = series.split_once('{') {
            let value = labels
                .trim_end_matches('}')
                .split_once('=')
                .map(|(_, v)| v.trim_matches('"'))
                .unwrap();
            assert!(
                OUTCOMES.contains(&value) || ["absent", "shed"].contains(&value),
                "{series}"
            );
        }
    }
}

/// A usage sink that fails while `failing` is set.
#[derive(Debug, Default)]
struct FlakySink {
    failing: std::sync::atomic::AtomicBool,
}

#[async_trait]
impl crate::usage::UsageSink for FlakySink {
    async fn record_usage(
        &self,
        _: &[crate::usage::KeyUsage],
    ) -> Result<(), crate::usage::UsageSinkError> {
        if self.failing.load(std::sync::atomic::Ordering::SeqCst) {
            Err(crate::usage::UsageSinkError::sink("down"))
        } else {
            Ok(())
        }
    }
}

/// An event sink that always fails.
#[derive(Debug)]
struct RefusingSink;

#[async_trait]
impl crate::event::EventSink for RefusingSink {
    async fn deliver(
        &self,
        _: &crate::event::KeyEvent,
    ) -> Result<(), crate::event::EventSinkError> {
        Err(crate::event::EventSinkError::sink("down"))
    }
}

#[tokio::test]
async fn usage_flushes_failures_and_drops_and_event_sink_failures_are_counted() {
    let (recorder, handle) = recorder();
    let _local = ::metrics::set_default_local_recorder(&recorder);
    let sink = std::sync::Arc::new(FlakySink::default());
    let tracker = crate::usage::UsageTracker::builder(std::sync::Arc::clone(&sink))
        .max_keys(1)
        .build();
    let store = InMemoryKeyStore::new();
    let manager = KeyManager::new(store.clone());
    let one = manager
        .create(NewKey::new("one", ["a:b"]))
        .await
        .unwrap()
        .record;
    let two = manager
        .create(NewKey::new("two", ["a:b"]))
        .await
        .unwrap()
        .record;
    let now = std::time::SystemTime::now();
    tracker.record(one.id(), now);
    tracker.record(two.id(), now); // past max_keys: dropped
    sink.failing
        .store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(tracker.flush().await.is_err());
    sink.failing
        .store(false, std::sync::atomic::Ordering::SeqCst);
    tracker.flush().await.unwrap();
    tracker.flush().await.unwrap(); // nothing pending: not a flush that wrote
    let scraped = scrape(&handle);
    assert_eq!(scraped["apikey_usage_dropped_total"], 1.0, "{scraped:?}");
    assert_eq!(
        scraped["apikey_usage_flush_failures_total"], 1.0,
        "{scraped:?}"
    );
    assert_eq!(scraped["apikey_usage_flushes_total"], 1.0, "{scraped:?}");

    let events = crate::event::EventLog::builder(store)
        .sink(RefusingSink)
        .build();
    let forwarding = events.run();
    events
        .emit(crate::event::NewEvent::new(
            crate::event::EventType::Created,
            *one.id(),
            now,
        ))
        .await
        .unwrap();
    let stopping = events.shutdown();
    let ((), ()) = tokio::join!(forwarding, stopping);
    assert_eq!(scrape(&handle)["apikey_event_sink_failures_total"], 1.0);
}

#[tokio::test]
async fn id_filter_refusals_are_counted_by_reason_once_per_request() {
    use crate::key::KeyPrefix;
    let (recorder, handle) = recorder();
    let _local = ::metrics::set_default_local_recorder(&recorder);
    let cache = CachedKeyStore::builder(InMemoryKeyStore::new())
        .filter_passes_per_sec(0)
        .build();
    let layer = ApiKeyV2Layer::new(cache.clone());
    let forged = || key(&PlaintextKey::generate(&KeyPrefix::default()));
    // No filter yet: asked for, not a refusal.
    assert_eq!(send(&layer, &[], request(forged())).await, 401);
    // Followed: ruled out at once, then a moment's wait for an announcement in the
    // lookup; the refusal is counted once, where it is final.
    cache.cache_handle().resync(&[]);
    assert_eq!(send(&layer, &[], request(forged())).await, 401);
    // Stale: shed.
    cache.cache_handle().feed_down();
    assert_eq!(send(&layer, &[], request(forged())).await, 503);
    let scraped = scrape(&handle);
    assert_eq!(
        scraped[r#"apikey_id_filter_refusals_total{reason="absent"}"#],
        1.0
    );
    assert_eq!(
        scraped[r#"apikey_id_filter_refusals_total{reason="shed"}"#],
        1.0
    );
}
