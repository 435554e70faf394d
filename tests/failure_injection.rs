//! Failure injection through the layer, behind a real axum server and a real HTTP client
//! on loopback: a key store that errors or hangs, a usage sink that errors, hangs and
//! recovers, and an inner service that panics.
//!
//! The single-request versions live beside the code (`src/middleware/tests.rs`: failing
//! and hanging stores; `tests/usage.rs`: one key through a failing or hanging sink with
//! explicit flushes). These tests add the HTTP path, recovery, concurrency, many keys and
//! the real flush loop.

use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use axum::Router;
use axum::routing::get;
use futures_util::FutureExt;
use http::header::{CONTENT_TYPE, RETRY_AFTER};
use http::{Request, StatusCode};
use http_body_util::Empty;
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tower::{Layer, Service, ServiceExt};
use tower_apikey::testing::ManualClock;
use tower_apikey::testing::with_wrong_secret;
use tower_apikey::usage::{KeyUsage, UsageSinkError, UsageTracker};
use tower_apikey::{
    ApiKeyV2Layer, Clock, InMemoryKeyStore, KeyId, KeyManager, KeyRecord, KeyStore, NewKey,
    PlaintextKey, StoreError, UsageSink,
};
use tower_http::catch_panic::CatchPanicLayer;

/// How an injected backend behaves right now.
const WORKING: u8 = 0;
const FAILING: u8 = 1;
const HANGING: u8 = 2;

/// A switch shared by a test and the backend it breaks.
#[derive(Debug, Clone, Default)]
struct Switch {
    mode: Arc<AtomicU8>,
    calls: Arc<AtomicUsize>,
}

impl Switch {
    fn set(&self, mode: u8) {
        self.mode.store(mode, Ordering::SeqCst);
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// Counts the call, then fails or hangs as switched.
    async fn enter<E>(&self, error: impl FnOnce() -> E) -> Result<(), E> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        match self.mode.load(Ordering::SeqCst) {
            FAILING => Err(error()),
            HANGING => std::future::pending().await,
            _ => Ok(()),
        }
    }
}

/// The in-memory store behind a switch: a database that goes away and comes back.
#[derive(Debug, Clone)]
struct FlakyStore {
    store: InMemoryKeyStore,
    switch: Switch,
}

#[async_trait]
impl KeyStore for FlakyStore {
    async fn lookup(&self, id: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
        self.switch
            .enter(|| StoreError::unavailable("connection refused"))
            .await?;
        self.store.lookup(id).await
    }
}

/// The in-memory store as a usage sink behind a switch.
#[derive(Debug, Clone)]
struct FlakySink {
    store: InMemoryKeyStore,
    switch: Switch,
}

#[async_trait]
impl UsageSink for FlakySink {
    async fn record_usage(&self, batch: &[KeyUsage]) -> Result<(), UsageSinkError> {
        self.switch
            .enter(|| UsageSinkError::sink("connection refused"))
            .await?;
        self.store.record_usage(batch).await
    }
}

async fn panics() -> &'static str {
    panic!("the handler failed")
}

/// Serves `/ping` (answers `pong`) and `/panic` (panics) behind `layer` on loopback.
async fn serve(layer: ApiKeyV2Layer, catch_panics: bool) -> SocketAddr {
    let app = Router::new()
        .route("/ping", get(|| async { "pong" }))
        .route("/panic", get(panics))
        .layer(layer);
    let app = if catch_panics {
        app.layer(CatchPanicLayer::new())
    } else {
        app
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

struct Loopback {
    addr: SocketAddr,
    http: Client<HttpConnector, Empty<Bytes>>,
}

struct Answer {
    status: StatusCode,
    headers: http::HeaderMap,
}

impl Loopback {
    fn new(addr: SocketAddr) -> Self {
        // No pooled connections: a connection dropped by a panic is never reused.
        let http = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(0)
            .build_http();
        Self { addr, http }
    }

    async fn try_get(
        &self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<Answer, hyper_util::client::legacy::Error> {
        let mut req = Request::get(format!("http://{}{path}", self.addr));
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let response = self.http.request(req.body(Empty::new()).unwrap()).await?;
        let (parts, _) = response.into_parts();
        Ok(Answer {
            status: parts.status,
            headers: parts.headers,
        })
    }

    async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Answer {
        self.try_get(path, headers).await.unwrap()
    }

    async fn ping(&self, key: &str) -> StatusCode {
        self.get("/ping", &[("authorization", key)]).await.status
    }
}

fn auth(key: &PlaintextKey) -> String {
    format!("ApiKey-v2 {}", key.expose_secret())
}

/// The same key with one secret character changed and its checksum fixed: it reaches
/// the store.
fn wrong_secret(key: &PlaintextKey) -> String {
    format!("ApiKey-v2 {}", with_wrong_secret(key.expose_secret()))
}

/// Waits for `done`, checking every few milliseconds. The bound only stops a broken
/// build from hanging the suite; it is not what the test asserts.
async fn eventually<F: Future<Output = bool>>(what: &str, mut done: impl FnMut() -> F) {
    let give_up = tokio::time::Instant::now() + Duration::from_secs(30);
    while !done().await {
        assert!(tokio::time::Instant::now() < give_up, "never: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_store_that_errors_gives_503_to_every_request_that_needs_it_then_recovers() {
    let store = InMemoryKeyStore::new();
    let manager = KeyManager::new(store.clone());
    let key = manager.create(NewKey::new("k", ["a:b"])).await.unwrap().key;
    let revoked = manager.create(NewKey::new("r", ["a:b"])).await.unwrap().key;
    manager.revoke(revoked.id()).await.unwrap();
    let switch = Switch::default();
    let layer = ApiKeyV2Layer::new(FlakyStore {
        store,
        switch: switch.clone(),
    });
    let client = Loopback::new(serve(layer, false).await);
    assert_eq!(client.ping(&auth(&key)).await, 200);

    switch.set(FAILING);
    let unknown = auth(&PlaintextKey::generate(&Default::default()));
    // Every well-formed key needs the store: valid, unknown, forged, revoked.
    for value in [auth(&key), unknown, wrong_secret(&key), auth(&revoked)] {
        let answer = client.get("/ping", &[("authorization", &value)]).await;
        assert_eq!(
            answer.status, 503,
            "neither 401 nor 200 while the store is down"
        );
        assert_eq!(answer.headers[RETRY_AFTER], "5");
        assert!(!answer.headers.contains_key("www-authenticate"));
    }
    // A gRPC call (HTTP/2) gets UNAVAILABLE.
    let http2 = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http::<Empty<Bytes>>();
    let grpc = http2
        .request(
            Request::get(format!("http://{}/ping", client.addr))
                .header("authorization", auth(&key))
                .header(CONTENT_TYPE, "application/grpc")
                .body(Empty::new())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(grpc.headers()["grpc-status"], "14");
    // Requests refused before the lookup do not depend on the store.
    assert_eq!(client.get("/ping", &[]).await.status, 401);
    assert_eq!(client.ping("ApiKey-v2 mkc_short").await, 401);

    switch.set(WORKING);
    assert_eq!(client.ping(&auth(&key)).await, 200);
    assert_eq!(client.ping(&wrong_secret(&key)).await, 401);
    assert_eq!(client.ping(&auth(&revoked)).await, 401);
}

#[tokio::test]
async fn a_store_that_hangs_gives_503_after_the_lookup_timeout_to_concurrent_requests() {
    let store = InMemoryKeyStore::new();
    let manager = KeyManager::new(store.clone());
    let key = manager.create(NewKey::new("k", ["a:b"])).await.unwrap().key;
    let switch = Switch::default();
    let layer = ApiKeyV2Layer::new(FlakyStore {
        store,
        switch: switch.clone(),
    })
    .lookup_timeout(Some(Duration::from_millis(50)));
    let client = Arc::new(Loopback::new(serve(layer, false).await));

    switch.set(HANGING);
    let mut requests = Vec::new();
    for i in 0..16 {
        let client = client.clone();
        let value = if i % 2 == 0 {
            auth(&key)
        } else {
            wrong_secret(&key)
        };
        requests.push(tokio::spawn(async move {
            client.get("/ping", &[("authorization", &value)]).await
        }));
    }
    for request in requests {
        let answer = request.await.unwrap();
        assert_eq!(
            answer.status, 503,
            "neither 401 nor 200 while the store hangs"
        );
        assert_eq!(answer.headers[RETRY_AFTER], "5");
    }
    assert_eq!(switch.calls(), 16, "every request waited for the store");

    switch.set(WORKING);
    assert_eq!(client.ping(&auth(&key)).await, 200);
    assert_eq!(client.ping(&wrong_secret(&key)).await, 401);
}

#[tokio::test]
async fn a_sink_that_errors_then_hangs_then_recovers_loses_no_keys_last_use() {
    let store = InMemoryKeyStore::new();
    // Whole milliseconds, so that last-used times (kept in milliseconds) compare exactly.
    let clock = ManualClock::new(SystemTime::UNIX_EPOCH + Duration::from_millis(1_800_000_000_000));
    let manager = KeyManager::builder(store.clone())
        .clock(clock.clone())
        .build();
    let mut keys = Vec::new();
    for i in 0..40 {
        let new = NewKey::new(format!("key {i}"), ["a:b"]);
        keys.push(manager.create(new).await.unwrap().key);
    }
    let switch = Switch::default();
    let tracker = UsageTracker::builder(FlakySink {
        store: store.clone(),
        switch: switch.clone(),
    })
    .period(Duration::from_millis(40))
    .retry_backoff(Duration::from_millis(10))
    .flush_timeout(Some(Duration::from_millis(40)))
    .build();
    let flushing = tokio::spawn(tracker.run());
    let layer = ApiKeyV2Layer::new(store.clone())
        .clock(clock.clone())
        .usage_tracker(tracker.clone());
    let client = Loopback::new(serve(layer, false).await);

    // Down: every request still succeeds, and flushes keep failing.
    switch.set(FAILING);
    for key in &keys {
        assert_eq!(client.ping(&auth(key)).await, 200);
    }
    let calls = switch.calls();
    eventually("two more failed flushes", || async {
        switch.calls() >= calls + 2
    })
    .await;

    // Hanging: requests still succeed; flushes time out. Half the keys are used again,
    // later.
    switch.set(HANGING);
    clock.advance(Duration::from_secs(60));
    for key in keys.iter().step_by(2) {
        assert_eq!(client.ping(&auth(key)).await, 200);
    }
    let calls = switch.calls();
    eventually("two more hung flushes", || async {
        switch.calls() >= calls + 2
    })
    .await;
    let last_use = clock.now();
    for key in &keys {
        assert_eq!(manager.get(key.id()).await.unwrap().last_used_at(), None);
    }

    // Back: the flush loop's retries land every key's latest use, without a request or
    // an explicit flush.
    switch.set(WORKING);
    eventually("every key's last use written", || async {
        let mut all = true;
        for key in &keys {
            all &= manager
                .get(key.id())
                .await
                .unwrap()
                .last_used_at()
                .is_some();
        }
        all
    })
    .await;
    for (i, key) in keys.iter().enumerate() {
        let used = manager.get(key.id()).await.unwrap().last_used_at().unwrap();
        let expected = if i % 2 == 0 {
            last_use
        } else {
            last_use - Duration::from_secs(60)
        };
        assert_eq!(used, expected, "key {i}");
    }
    let stats = tracker.stats();
    assert!(stats.failures >= 4, "{stats:?}");
    assert_eq!(stats.uses, 60);
    assert_eq!(stats.dropped, 0);
    tracker.shutdown().await.unwrap();
    flushing.await.unwrap();
}

#[tokio::test]
async fn an_inner_service_that_panics_leaves_the_layer_store_and_tracker_usable() {
    for catch_panics in [false, true] {
        let store = InMemoryKeyStore::new();
        let manager = KeyManager::new(store.clone());
        let key = manager.create(NewKey::new("k", ["a:b"])).await.unwrap().key;
        let other = manager.create(NewKey::new("o", ["a:b"])).await.unwrap().key;
        let tracker = UsageTracker::new(store.clone());
        let layer = ApiKeyV2Layer::new(store.clone()).usage_tracker(tracker.clone());
        let client = Loopback::new(serve(layer, catch_panics).await);

        for _ in 0..3 {
            let answer = client
                .try_get("/panic", &[("authorization", &auth(&key))])
                .await;
            match answer {
                // tower-http turns the panic into a 500.
                Ok(answer) => {
                    assert!(catch_panics);
                    assert_eq!(answer.status, 500);
                }
                // Without it, the connection's task dies and the connection closes.
                Err(error) => assert!(!catch_panics, "{error}"),
            }
        }
        // The layer still authenticates, the store still manages keys, and the tracker
        // still records and writes.
        assert_eq!(client.ping(&auth(&key)).await, 200, "{catch_panics}");
        assert_eq!(client.ping(&wrong_secret(&key)).await, 401);
        manager.revoke(key.id()).await.unwrap();
        assert_eq!(client.ping(&auth(&key)).await, 401);
        assert_eq!(client.ping(&auth(&other)).await, 200);
        tracker.shutdown().await.unwrap();
        assert_eq!(tracker.stats().uses, 5);
        for k in [&key, &other] {
            assert!(manager.get(k.id()).await.unwrap().last_used_at().is_some());
        }
    }
}

#[tokio::test]
async fn a_service_whose_inner_call_panicked_keeps_working_in_process() {
    // The panic unwinds through the layer's own `call` and `poll`, not just a task.
    #[derive(Clone)]
    struct Panicky;
    impl Service<Request<String>> for Panicky {
        type Response = http::Response<String>;
        type Error = std::convert::Infallible;
        type Future = std::future::Ready<Result<http::Response<String>, Self::Error>>;
        fn poll_ready(
            &mut self,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), Self::Error>> {
            std::task::Poll::Ready(Ok(()))
        }
        fn call(&mut self, req: Request<String>) -> Self::Future {
            if req.uri().path() == "/panic" {
                panic!("the inner service failed");
            }
            std::future::ready(Ok(http::Response::new("ok".into())))
        }
    }
    let store = InMemoryKeyStore::new();
    let manager = KeyManager::new(store.clone());
    let key = manager.create(NewKey::new("k", ["a:b"])).await.unwrap().key;
    let tracker = UsageTracker::new(store.clone());
    let mut service = ApiKeyV2Layer::new(store)
        .usage_tracker(tracker.clone())
        .layer(Panicky);
    let request = |path: &str| {
        Request::get(path)
            .header("authorization", auth(&key))
            .body(String::new())
            .unwrap()
    };
    let panicked = std::panic::catch_unwind(AssertUnwindSafe(|| {
        service.call(request("/panic")).now_or_never()
    }));
    assert!(panicked.is_err());
    // The very service value that unwound, and a clone of it, still answer.
    let response = service.ready().await.unwrap().call(request("/")).await;
    assert_eq!(response.unwrap().status(), 200);
    let response = service.clone().oneshot(request("/")).await.unwrap();
    assert_eq!(response.status(), 200);
    tracker.flush().await.unwrap();
    assert_eq!(tracker.stats().uses, 3);
    assert!(
        manager
            .get(key.id())
            .await
            .unwrap()
            .last_used_at()
            .is_some()
    );
}
