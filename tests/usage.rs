//! Last-used tracking end to end: a real axum server, a real HTTP client, the layer's
//! `UsageTracker` and `InMemoryKeyStore` as the sink.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use axum::Router;
use axum::routing::get;
use http::{Request, StatusCode};
use http_body_util::Empty;
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tower_apikey::testing::ManualClock;
use tower_apikey::usage::{KeyUsage, UsageSinkError, UsageTracker};
use tower_apikey::{
    ApiKeyV2Layer, Clock, InMemoryKeyStore, KeyManager, NewKey, PlaintextKey, Scopes, UsageSink,
};

/// The in-memory store behind a switch that makes it fail or hang, standing in for a
/// database that goes away and comes back.
#[derive(Debug, Clone)]
struct Flaky {
    store: InMemoryKeyStore,
    failing: Arc<AtomicBool>,
    hanging: Arc<AtomicBool>,
    calls: Arc<AtomicUsize>,
}

#[async_trait]
impl UsageSink for Flaky {
    async fn record_usage(&self, batch: &[KeyUsage]) -> Result<(), UsageSinkError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.hanging.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        if self.failing.load(Ordering::SeqCst) {
            return Err(UsageSinkError::sink("connection refused"));
        }
        self.store.record_usage(batch).await
    }
}

struct Server {
    addr: SocketAddr,
    client: Client<HttpConnector, Empty<Bytes>>,
    manager: KeyManager<InMemoryKeyStore>,
    tracker: UsageTracker,
    sink: Flaky,
    /// Drives both the manager and the layer, at a whole millisecond so that last-used
    /// times (kept in milliseconds) compare exactly.
    clock: ManualClock,
}

impl Server {
    async fn start(required: &[&str]) -> Self {
        let store = InMemoryKeyStore::new();
        let sink = Flaky {
            store: store.clone(),
            failing: Arc::default(),
            hanging: Arc::default(),
            calls: Arc::default(),
        };
        let clock =
            ManualClock::new(SystemTime::UNIX_EPOCH + Duration::from_millis(1_800_000_000_123));
        let tracker = UsageTracker::builder(sink.clone())
            .flush_timeout(Some(Duration::from_millis(200)))
            .build();
        let app = Router::new()
            .route("/ping", get(|| async { "pong" }))
            .layer(
                ApiKeyV2Layer::new(store.clone())
                    .clock(clock.clone())
                    .require_scopes(Scopes::new(required).unwrap())
                    .usage_tracker(tracker.clone()),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            addr,
            client: Client::builder(TokioExecutor::new()).build_http(),
            manager: KeyManager::builder(store).clock(clock.clone()).build(),
            tracker,
            sink,
            clock,
        }
    }

    async fn key(&self, scopes: &[&str]) -> PlaintextKey {
        let new = NewKey::new("usage test", scopes.iter().copied());
        self.manager.create(new).await.unwrap().key
    }

    async fn ping(&self, authorization: &str) -> StatusCode {
        let req = Request::get(format!("http://{}/ping", self.addr))
            .header("authorization", authorization)
            .body(Empty::new())
            .unwrap();
        self.client.request(req).await.unwrap().status()
    }

    async fn last_used(&self, key: &PlaintextKey) -> Option<SystemTime> {
        self.manager.get(key.id()).await.unwrap().last_used_at()
    }
}

fn auth(key: &PlaintextKey) -> String {
    format!("ApiKey-v2 {}", key.expose_secret())
}

#[tokio::test]
async fn a_key_used_over_http_shows_its_last_used_time_after_the_flush() {
    let server = Server::start(&[]).await;
    let key = server.key(&[]).await;
    let idle = server.key(&[]).await;
    server.clock.advance(Duration::from_secs(10));
    let used_at = server.clock.now();
    assert_eq!(server.ping(&auth(&key)).await, 200);
    assert_eq!(
        server.last_used(&key).await,
        None,
        "written on flush, not per request"
    );
    server.tracker.flush().await.unwrap();
    assert_eq!(server.last_used(&key).await, Some(used_at));
    // The used key is not dormant since before its use; the idle one is.
    let dormant: Vec<_> = server
        .manager
        .unused_since(used_at - Duration::from_secs(5))
        .await
        .unwrap()
        .into_iter()
        .map(|r| *r.id())
        .collect();
    assert_eq!(dormant, [*idle.id()]);
}

#[tokio::test]
async fn a_use_counts_whatever_the_scope_check_says_but_a_failed_attempt_does_not() {
    let server = Server::start(&["reports:read"]).await;
    let unscoped = server.key(&[]).await;
    let revoked = server.key(&["reports:read"]).await;
    server.manager.revoke(revoked.id()).await.unwrap();
    assert_eq!(server.ping(&auth(&unscoped)).await, 403);
    assert_eq!(server.ping(&auth(&revoked)).await, 401);
    // A wrong secret, well-formed (a replaced character could be the same one, 1 in 62).
    let forged = format!(
        "ApiKey-v2 {}",
        tower_apikey::testing::with_wrong_secret(unscoped.expose_secret())
    );
    assert_eq!(server.ping(&forged).await, 401);
    server.tracker.flush().await.unwrap();
    assert!(server.last_used(&unscoped).await.is_some());
    assert_eq!(server.last_used(&revoked).await, None);
    assert_eq!(server.tracker.stats().uses, 1);
}

#[tokio::test]
async fn requests_succeed_while_the_sink_fails_and_the_latest_time_lands_after_it_recovers() {
    let server = Server::start(&[]).await;
    let key = server.key(&[]).await;
    server.sink.failing.store(true, Ordering::SeqCst);
    for _ in 0..3 {
        assert_eq!(server.ping(&auth(&key)).await, 200);
        assert!(server.tracker.flush().await.is_err());
    }
    server.clock.advance(Duration::from_secs(1));
    let last_request = server.clock.now();
    assert_eq!(server.ping(&auth(&key)).await, 200);
    assert_eq!(server.last_used(&key).await, None);
    server.sink.failing.store(false, Ordering::SeqCst);
    server.tracker.flush().await.unwrap();
    let used = server.last_used(&key).await.unwrap();
    assert!(
        used + std::time::Duration::from_millis(1) >= last_request,
        "the latest use was written"
    );
    assert_eq!(server.tracker.stats().failures, 3);
}

#[tokio::test]
async fn requests_complete_while_the_sink_hangs() {
    let server = Server::start(&[]).await;
    let key = server.key(&[]).await;
    assert_eq!(server.ping(&auth(&key)).await, 200);
    server.sink.hanging.store(true, Ordering::SeqCst);
    let tracker = server.tracker.clone();
    let stuck = tokio::spawn(async move { tracker.flush().await });
    while server.sink.calls.load(Ordering::SeqCst) == 0 {
        tokio::task::yield_now().await;
    }
    // The flush is stuck inside the sink; requests do not wait for it.
    for _ in 0..100 {
        assert_eq!(server.ping(&auth(&key)).await, 200);
    }
    assert!(!stuck.is_finished() || stuck.await.unwrap().is_err());
    server.sink.hanging.store(false, Ordering::SeqCst);
    server.tracker.flush().await.unwrap();
    assert!(server.last_used(&key).await.is_some());
    assert_eq!(server.tracker.stats().uses, 101);
}

#[tokio::test]
async fn without_a_tracker_nothing_is_recorded() {
    let store = InMemoryKeyStore::new();
    let manager = KeyManager::new(store.clone());
    let key = manager.create(NewKey::new("k", ["a:b"])).await.unwrap().key;
    let app = Router::new()
        .route("/ping", get(|| async { "pong" }))
        .layer(ApiKeyV2Layer::new(store));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let client: Client<HttpConnector, Empty<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let req = Request::get(format!("http://{addr}/ping"))
        .header("authorization", auth(&key))
        .body(Empty::new())
        .unwrap();
    assert_eq!(client.request(req).await.unwrap().status(), 200);
    assert_eq!(manager.get(key.id()).await.unwrap().last_used_at(), None);
}
