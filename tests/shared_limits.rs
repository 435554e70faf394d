//! Limits shared by two layers through the in-memory ledger (`InMemoryLimitBackend`),
//! each layer a real axum server on loopback, time a manual clock that does not move:
//! so one GCRA would admit exactly the burst, and the counts are checked against the
//! bounds `SharedLimits` documents. An outage is the in-memory ledger taken down
//! ([`Outage`]). (Instances on PostgreSQL, and its outages, are in
//! `postgres/tests/postgres/shared_limits.rs`.)

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::routing::get;
use http::header::{AUTHORIZATION, RETRY_AFTER};
use http::{Request, StatusCode};
use http_body_util::Empty;
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tower_apikey::limits::{
    InMemoryLimitBackend, InstanceId, Lease, LeaseRequest, LimitBackend, SharedLimits,
};
use tower_apikey::record::{Quota, QuotaPeriod, RateLimit};
use tower_apikey::testing::ManualClock;
use tower_apikey::{ApiKeyV2Layer, InMemoryKeyStore, KeyManager, NewKey};

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
    let manager = KeyManager::builder(store.clone())
        .clock(clock.clone())
        .build();
    let backend: Arc<dyn LimitBackend> = Arc::new(InMemoryLimitBackend::new());
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
async fn without_its_task_a_layer_decides_on_its_local_share_and_never_waits_for_a_lease() {
    let store = InMemoryKeyStore::new();
    let clock = clock();
    let manager = KeyManager::builder(store.clone())
        .clock(clock.clone())
        .build();
    // `run` never spawned: nothing is leased, and no valid key may be refused for want
    // of a lease. With no count ever heard, the local share divides by the expected
    // number of instances: here one, so the key's own limits decide.
    let limits = SharedLimits::new(InMemoryLimitBackend::new())
        .expected_instances(1)
        .clock(clock.clone());
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
    let manager = KeyManager::builder(store.clone())
        .clock(clock.clone())
        .build();
    let backend: Arc<dyn LimitBackend> = Arc::new(InMemoryLimitBackend::new());
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

/// The in-memory ledger, which can be taken down: while it is, every call fails at once,
/// as a database that refuses connections does.
#[derive(Debug, Default)]
struct Outage {
    ledger: InMemoryLimitBackend,
    down: AtomicBool,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl Outage {
    fn check(&self) -> Result<(), BoxError> {
        if self.down.load(Ordering::SeqCst) {
            return Err("the limit backend is down".into());
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl LimitBackend for Outage {
    async fn lease(&self, request: &LeaseRequest) -> Result<Lease, BoxError> {
        self.check()?;
        self.ledger.lease(request).await
    }

    async fn heartbeat(&self, instance: InstanceId, now: SystemTime) -> Result<u32, BoxError> {
        self.check()?;
        self.ledger.heartbeat(instance, now).await
    }
}

/// Sends `n` requests with `key` to `addr`: how many were admitted. Every answer is a
/// 200 or a 429: an outage never makes a valid key 503 or 401.
async fn admitted(client: &HttpClient, addr: SocketAddr, key: &str, n: usize) -> usize {
    let mut admitted = 0;
    for _ in 0..n {
        match call(client, addr, key).await.status {
            StatusCode::OK => admitted += 1,
            StatusCode::TOO_MANY_REQUESTS => {}
            other => panic!("a valid key got {other} during an outage of the limit backend"),
        }
    }
    admitted
}

/// L2 (red team, 2026-12-07): an instance that had never leased believed it was alone
/// (its count of instances started at 1), so during an outage it admitted a key's whole
/// quota by itself: 26 admitted of a quota of 20 on three instances. Now every instance
/// heartbeats, so the idle one knows there are three, and the others count it.
#[tokio::test]
async fn l2_three_instances_one_idle_admit_at_most_the_quota_during_an_outage() {
    let store = InMemoryKeyStore::new();
    let clock = clock();
    let manager = KeyManager::builder(store.clone())
        .clock(clock.clone())
        .build();
    let backend = Arc::new(Outage::default());
    let instances = [(), (), ()].map(|_| {
        SharedLimits::from_shared_backend(Arc::clone(&backend) as Arc<dyn LimitBackend>)
            .clock(clock.clone())
    });
    let mut addrs = Vec::new();
    for limits in &instances {
        tokio::spawn(limits.run(std::future::pending()));
        addrs.push(serve(&store, &clock, limits).await);
    }
    // Their first heartbeats, at once. Waited for with a bound and not asserted: what
    // is asserted is the total below.
    let deadline = Instant::now() + Duration::from_secs(10);
    while instances.iter().any(|i| i.stats().instances != 3) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let key = manager
        .create(NewKey::new("metered", ["a:b"]).quota(Quota::new(20, QuotaPeriod::Day).unwrap()))
        .await
        .unwrap()
        .key;
    let key = key.expose_secret();
    let client = client();
    // A and B serve the key; C stays idle.
    let mut total = 0;
    for addr in &addrs[..2] {
        total += admitted(&client, *addr, key, 3).await;
    }
    assert!(total >= 2, "the key was served before the outage: {total}");
    backend.down.store(true, Ordering::SeqCst);
    let mut during = Vec::new();
    for addr in &addrs {
        during.push(admitted(&client, *addr, key, 30).await);
    }
    total += during.iter().sum::<usize>();
    println!(
        "quota 20, 3 instances: admitted before and during the outage {total}, during: {during:?}"
    );
    assert!(
        total <= 20,
        "admitted {total} of a quota of 20 (during the outage: {during:?})"
    );
    assert!(
        during.iter().all(|&n| n > 0),
        "every instance kept serving the key: {during:?}"
    );
    assert!(instances.iter().all(|i| !i.stats().healthy));
}

/// L2: an instance that never heard a count (the backend was down since it started)
/// divides by `expected_instances`.
#[tokio::test]
async fn l2_an_instance_that_never_reached_the_backend_divides_by_expected_instances() {
    let store = InMemoryKeyStore::new();
    let clock = clock();
    let manager = KeyManager::builder(store.clone())
        .clock(clock.clone())
        .build();
    let backend = Arc::new(Outage::default());
    backend.down.store(true, Ordering::SeqCst);
    let key = manager
        .create(NewKey::new("metered", ["a:b"]).quota(Quota::new(20, QuotaPeriod::Day).unwrap()))
        .await
        .unwrap()
        .key;
    let client = client();
    for (expected, share) in [
        (None, 20 / tower_apikey::limits::DEFAULT_EXPECTED_INSTANCES),
        (Some(4), 5),
    ] {
        let limits =
            SharedLimits::from_shared_backend(Arc::clone(&backend) as Arc<dyn LimitBackend>)
                .clock(clock.clone());
        let limits = match expected {
            Some(n) => limits.expected_instances(n),
            None => limits,
        };
        tokio::spawn(limits.run(std::future::pending()));
        let addr = serve(&store, &clock, &limits).await;
        let admitted = admitted(&client, addr, key.expose_secret(), 30).await;
        assert_eq!(admitted as u32, share, "expected_instances {expected:?}");
        assert_eq!(limits.stats().instances, 0, "no count was ever heard");
    }
}
