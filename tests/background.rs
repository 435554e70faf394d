//! One background future and one shutdown (DESIGN §4): a manager's layer on a real
//! axum server on loopback, its `background()` spawned, a request with a key, the server
//! stopped, then `shutdown()`: the last uses are written, in order before the events
//! that writing them makes, the background ends, and neither a second shutdown nor a
//! dropped background leaves anything half-done.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::routing::get;
use http::header::AUTHORIZATION;
use http::{Request, StatusCode};
use http_body_util::Empty;
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tower_apikey::event::{EventLog, EventQuery, EventSink, EventSinkError, EventType, KeyEvent};
use tower_apikey::limits::{
    InMemoryLimitBackend, InstanceId, Lease, LeaseRequest, LimitBackend, SharedLimits,
};
use tower_apikey::record::{Quota, QuotaPeriod, RateLimit};
use tower_apikey::{InMemoryKeyStore, KeyId, KeyManager, NewKey};

type HttpClient = Client<HttpConnector, Empty<Bytes>>;

/// The longest a test waits for something that should come at once, so that a bug
/// fails the test instead of hanging it. Not a measure of speed.
const PATIENCE: Duration = Duration::from_secs(30);

/// A sink that keeps what it was handed, in order.
#[derive(Debug, Default)]
struct Delivered(Mutex<Vec<(EventType, KeyId)>>);

#[async_trait]
impl EventSink for Delivered {
    async fn deliver(&self, event: &KeyEvent) -> Result<(), EventSinkError> {
        self.0.lock().unwrap().push((event.kind(), *event.key_id()));
        Ok(())
    }
}

impl Delivered {
    fn first_uses(&self) -> Vec<KeyId> {
        let delivered = self.0.lock().unwrap();
        delivered
            .iter()
            .filter(|(kind, _)| *kind == EventType::FirstUsed)
            .map(|(_, id)| *id)
            .collect()
    }
}

/// The in-memory ledger, counting the tokens given back to it.
#[derive(Debug, Default)]
struct Ledger {
    memory: InMemoryLimitBackend,
    returned: Mutex<u32>,
}

#[async_trait]
impl LimitBackend for Ledger {
    async fn lease(&self, request: &LeaseRequest) -> Result<Lease, tower_apikey::store::BoxError> {
        let lease = self.memory.lease(request).await?;
        *self.returned.lock().unwrap() += request.returned;
        Ok(lease)
    }

    async fn heartbeat(
        &self,
        instance: InstanceId,
        now: std::time::SystemTime,
    ) -> Result<u32, tower_apikey::store::BoxError> {
        self.memory.heartbeat(instance, now).await
    }
}

/// An application: a manager with an audit trail (its sink `delivered`) and, if given,
/// shared limits; its layer served on loopback until `stop` is sent.
struct App {
    manager: KeyManager<InMemoryKeyStore>,
    events: EventLog,
    delivered: Arc<Delivered>,
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    served: JoinHandle<()>,
    client: HttpClient,
}

impl App {
    async fn start(limits: Option<SharedLimits>) -> Self {
        Self::flushing_every(Duration::from_secs(300), limits).await
    }

    async fn flushing_every(period: Duration, limits: Option<SharedLimits>) -> Self {
        let store = InMemoryKeyStore::new();
        let delivered = Arc::new(Delivered::default());
        let events = EventLog::builder(store.clone())
            .sink(Arc::clone(&delivered))
            .build();
        let builder = KeyManager::builder(store)
            .events(events.clone())
            .usage_flush_period(period);
        let manager = match limits {
            Some(limits) => builder.shared_limits(limits),
            None => builder,
        }
        .build();
        let app = Router::new()
            .route("/ping", get(|| async { "pong" }))
            .layer(manager.layer());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let served = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        Self {
            manager,
            events,
            delivered,
            addr,
            stop,
            served,
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    async fn key(&self, new: NewKey) -> (String, KeyId) {
        let created = self.manager.create(new).await.unwrap();
        (created.key.expose_secret().to_owned(), *created.record.id())
    }

    async fn ping(&self, key: &str) -> StatusCode {
        let request = Request::get(format!("http://{}/ping", self.addr))
            .header(AUTHORIZATION, format!("ApiKey-v2 {key}"))
            .body(Empty::new())
            .unwrap();
        self.client.request(request).await.unwrap().status()
    }

    /// Stops the server: its graceful shutdown has finished when this returns.
    async fn stop_serving(self) -> KeyManager<InMemoryKeyStore> {
        let _ = self.stop.send(());
        self.served.await.unwrap();
        self.manager
    }

    async fn first_used_stored(&self, id: KeyId) -> bool {
        let page = self
            .events
            .events(&EventQuery::new().key(id))
            .await
            .unwrap();
        page.items
            .iter()
            .any(|event| event.kind() == EventType::FirstUsed)
    }
}

async fn within<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, future)
        .await
        .expect("this should have ended at once")
}

#[tokio::test]
async fn shutdown_after_the_server_writes_the_last_uses_and_the_background_ends() {
    let app = App::start(None).await;
    let running = tokio::spawn(app.manager.background());
    let (key, id) = app.key(NewKey::new("job", ["a:b"])).await;
    assert_eq!(app.ping(&key).await, StatusCode::OK);
    // A second background while one runs ends at once and changes nothing.
    within(app.manager.background()).await;

    let manager = app.stop_serving().await;
    // The flush period is five minutes: only shutdown can have written this use.
    assert_eq!(manager.get(&id).await.unwrap().last_used_at(), None);
    manager.shutdown().await.unwrap();
    assert!(manager.get(&id).await.unwrap().last_used_at().is_some());
    within(running).await.unwrap();
}

#[tokio::test]
async fn the_first_use_the_last_flush_records_reaches_the_event_store_and_the_sink() {
    let app = App::start(None).await;
    let running = tokio::spawn(app.manager.background());
    let (key, id) = app.key(NewKey::new("job", ["a:b"])).await;
    assert_eq!(app.ping(&key).await, StatusCode::OK);
    assert!(!app.first_used_stored(id).await, "not before the flush");

    let events = app.events.clone();
    let delivered = Arc::clone(&app.delivered);
    let manager = app.stop_serving().await;
    manager.shutdown().await.unwrap();
    // The tracker's last write stored `first_used` with the use; the events were
    // stopped only after it, so the sink got it too.
    let stored = events.events(&EventQuery::new().key(id)).await.unwrap();
    assert!(
        stored
            .items
            .iter()
            .any(|event| event.kind() == EventType::FirstUsed),
        "{:?}",
        stored.items
    );
    assert_eq!(delivered.first_uses(), [id]);
    within(running).await.unwrap();
}

#[tokio::test]
async fn a_second_shutdown_is_fine_and_writes_what_came_since() {
    let app = App::start(None).await;
    let running = tokio::spawn(app.manager.background());
    let (first, first_id) = app.key(NewKey::new("first", ["a:b"])).await;
    let (late, late_id) = app.key(NewKey::new("late", ["a:b"])).await;
    assert_eq!(app.ping(&first).await, StatusCode::OK);
    app.manager.shutdown().await.unwrap();
    within(running).await.unwrap();
    assert!(
        app.manager
            .get(&first_id)
            .await
            .unwrap()
            .last_used_at()
            .is_some()
    );

    // A request the server still took after the first call: the layer records it, and
    // the second call writes it.
    assert_eq!(app.ping(&late).await, StatusCode::OK);
    let delivered = Arc::clone(&app.delivered);
    let manager = app.stop_serving().await;
    manager.shutdown().await.unwrap();
    assert!(
        manager
            .get(&late_id)
            .await
            .unwrap()
            .last_used_at()
            .is_some()
    );
    assert_eq!(delivered.first_uses(), [first_id, late_id]);
    // And a third, with nothing left to do.
    manager.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_dropped_background_leaves_its_work_for_shutdown() {
    let ledger = Arc::new(Ledger::default());
    let limits = SharedLimits::from_shared_backend(Arc::clone(&ledger) as Arc<dyn LimitBackend>);
    let app = App::start(Some(limits.clone())).await;
    let running = tokio::spawn(app.manager.background());
    let quota = Quota::new(1_000, QuotaPeriod::Day).unwrap();
    let (key, id) = app.key(NewKey::new("job", ["a:b"]).quota(quota)).await;
    assert_eq!(app.ping(&key).await, StatusCode::OK);
    // The background leases a token for the key.
    within(async {
        while limits.stats().granted == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;

    running.abort();
    assert!(running.await.unwrap_err().is_cancelled());
    // With no task to lease, keys run on their local share: a fresh limited key is
    // admitted, never refused waiting for a lease no one will take.
    let rate = RateLimit::new(100, 60).unwrap();
    let (fresh, _) = app
        .key(NewKey::new("fresh", ["a:b"]).rate_limit(rate))
        .await;
    for _ in 0..10 {
        assert_eq!(app.ping(&fresh).await, StatusCode::OK);
    }
    assert_eq!(limits.stats().refused_awaiting_lease, 0);

    // Shutdown does what the dropped background left: the last use, the queued events,
    // the token leased and never spent.
    let delivered = Arc::clone(&app.delivered);
    let manager = app.stop_serving().await;
    manager.shutdown().await.unwrap();
    assert!(manager.get(&id).await.unwrap().last_used_at().is_some());
    assert_eq!(
        delivered.first_uses().len(),
        2,
        "the queued events were delivered"
    );
    assert!(
        *ledger.returned.lock().unwrap() >= 1,
        "the unspent token leased before the drop was given back"
    );
}

#[tokio::test]
async fn a_background_runs_again_after_one_was_dropped() {
    let app = App::flushing_every(Duration::from_secs(1), None).await;
    let dropped = tokio::spawn(app.manager.background());
    // Let it start, so that it is running when it is dropped.
    tokio::time::sleep(Duration::from_millis(50)).await;
    dropped.abort();
    assert!(dropped.await.unwrap_err().is_cancelled());
    let again = tokio::spawn(app.manager.background());
    let (key, id) = app.key(NewKey::new("job", ["a:b"])).await;
    assert_eq!(app.ping(&key).await, StatusCode::OK);
    // The new background's flush writes the use, before any shutdown.
    within(async {
        while app.manager.get(&id).await.unwrap().last_used_at().is_none() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let manager = app.stop_serving().await;
    manager.shutdown().await.unwrap();
    within(again).await.unwrap();
}

#[tokio::test]
async fn shutdown_without_any_background_writes_and_delivers_it_all() {
    let app = App::start(None).await;
    let (key, id) = app.key(NewKey::new("job", ["a:b"])).await;
    assert_eq!(app.ping(&key).await, StatusCode::OK);
    let delivered = Arc::clone(&app.delivered);
    let manager = app.stop_serving().await;
    manager.shutdown().await.unwrap();
    assert!(manager.get(&id).await.unwrap().last_used_at().is_some());
    assert_eq!(delivered.first_uses(), [id]);
    // A background spawned only now has nothing left to run.
    within(manager.background()).await;
}
