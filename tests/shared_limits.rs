//! Limits shared by two layers through the in-memory ledger (`MemoryLimitBackend`),
//! each layer a real axum server on loopback, time a manual clock that does not move:
//! so one GCRA would admit exactly the burst, and the counts are checked against the
//! bounds `SharedLimits` documents. (Two instances on PostgreSQL, and an outage, are in
//! `tests/postgres/shared_limits.rs`.)

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::routing::get;
use http::header::{AUTHORIZATION, RETRY_AFTER};
use http::{Request, StatusCode};
use http_body_util::Empty;
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tower_apikey::{
    ApiKeyV2Layer, InMemoryKeyStore, KeyManager, LimitBackend, ManualClock, MemoryLimitBackend,
    NewKey, Quota, QuotaPeriod, RateLimit, SharedLimits,
};

type HttpClient = Client<HttpConnector, Empty<Bytes>>;

/// 2027-01-15T08:00:00Z.
fn clock() -> ManualClock {
    ManualClock::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000))
}

/// A server whose layer shares its limits through `limits` (its task started or not).
async fn serve(store: &InMemoryKeyStore, clock: &ManualClock, limits: &SharedLimits) -> SocketAddr {
    let layer = ApiKeyV2Layer::new(store.clone())
        .clock(clock.clone())
        .shared_limits(limits);
    let app = Router::new()
        .route("/ping", get(|| async { "pong" }))
        .layer(layer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

async fn call(client: &HttpClient, addr: SocketAddr, key: &str) -> common::Answer {
    let request = Request::get(format!("http://{addr}/ping"))
        .header(AUTHORIZATION, format!("ApiKey-v2 {key}"))
        .body(Empty::new())
        .unwrap();
    common::Answer::read(client.request(request).await.unwrap()).await
}

fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

#[tokio::test]
async fn two_layers_on_one_ledger_admit_one_burst_within_the_documented_bounds() {
    let store = InMemoryKeyStore::new();
    let clock = clock();
    let manager = KeyManager::new(store.clone()).with_clock(clock.clone());
    let backend: Arc<dyn LimitBackend> = Arc::new(MemoryLimitBackend::new());
    let instances = [(), ()]
        .map(|_| SharedLimits::from_shared_backend(Arc::clone(&backend)).clock(clock.clone()));
    let mut addrs = Vec::new();
    for limits in &instances {
        tokio::spawn(limits.run(std::future::pending()));
        addrs.push(serve(&store, &clock, limits).await);
    }
    // 100 a minute: a batch is at most 5.
    let rate = RateLimit::new(100, 60).unwrap();
    let key = manager
        .create(NewKey::new("shared", ["a:b"]).rate_limit(rate))
        .await
        .unwrap()
        .key;
    let client = client();
    let (mut admitted, mut refused) = (0u64, 0u64);
    for i in 0..400 {
        let answer = call(&client, addrs[i % 2], key.expose_secret()).await;
        match answer.status {
            StatusCode::OK => admitted += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                assert!(answer.headers.contains_key(RETRY_AFTER));
                refused += 1;
            }
            other => panic!("a valid key got {other}"),
        }
    }
    assert_eq!(admitted + refused, 400);
    // The clock stands still: one GCRA admits its burst, 100. Beyond: at most 2.5
    // batches per instance; within: at most 1.5 batches per other instance plus what
    // one instance's in-flight lease refuses past its owed batch.
    assert!(admitted <= 100 + 2 * 12, "admitted {admitted}");
    assert!(admitted + 2 * 8 >= 100, "admitted only {admitted}");
}

#[tokio::test]
async fn without_its_task_a_layer_decides_on_the_keys_own_limits() {
    let store = InMemoryKeyStore::new();
    let clock = clock();
    let manager = KeyManager::new(store.clone()).with_clock(clock.clone());
    // `run` never spawned: nothing is leased, and no valid key may be refused for it.
    let limits = SharedLimits::new(MemoryLimitBackend::new()).clock(clock.clone());
    let addr = serve(&store, &clock, &limits).await;
    let key = manager
        .create(
            NewKey::new("untracked", ["a:b"])
                .rate_limit(RateLimit::new(30, 60).unwrap())
                .quota(Quota::new(1000, QuotaPeriod::Day).unwrap()),
        )
        .await
        .unwrap()
        .key;
    let client = client();
    for n in 0..30 {
        let answer = call(&client, addr, key.expose_secret()).await;
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "request {n} of a burst of 30"
        );
    }
    let refused = call(&client, addr, key.expose_secret()).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limits.stats().calls, 0);
}

#[tokio::test]
async fn a_used_up_shared_quota_is_refused_as_quota_exceeded_until_the_day_ends() {
    let store = InMemoryKeyStore::new();
    let clock = clock();
    let manager = KeyManager::new(store.clone()).with_clock(clock.clone());
    let backend: Arc<dyn LimitBackend> = Arc::new(MemoryLimitBackend::new());
    let limits = SharedLimits::from_shared_backend(backend).clock(clock.clone());
    tokio::spawn(limits.run(std::future::pending()));
    let addr = serve(&store, &clock, &limits).await;
    let key = manager
        .create(NewKey::new("metered", ["a:b"]).quota(Quota::new(40, QuotaPeriod::Day).unwrap()))
        .await
        .unwrap()
        .key;
    let client = client();
    let mut admitted = 0;
    let mut last = None;
    for _ in 0..80 {
        let answer = call(&client, addr, key.expose_secret()).await;
        if answer.status == StatusCode::OK {
            admitted += 1;
        } else {
            last = Some(answer);
        }
    }
    // One instance: at most what it owes beyond the ledger's grant (a batch, 2).
    assert!((40..=42).contains(&admitted), "admitted {admitted}");
    let refused = last.expect("the quota ran out");
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    let problem: serde_json::Value = serde_json::from_str(&refused.body).unwrap();
    assert_eq!(problem["error"], "quota_exceeded", "{problem}");
    // 08:00 UTC: 16 hours to the end of the day.
    assert_eq!(refused.headers[RETRY_AFTER], "57600");
}
