//! Throttling of failed keys per client address (`FailureThrottle`): through a real axum
//! server on loopback, called by real clients bound to different local addresses; and
//! in-process, with the peer address the server would insert, where time must move or
//! addresses must be ones loopback cannot bind.

mod common;

use std::convert::Infallible;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::routing::get;
use common::Answer;
use http::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tower::{ServiceBuilder, ServiceExt};
use tower_apikey::client_addr::TrustedProxies;
use tower_apikey::key::KeyPrefix;
use tower_apikey::middleware::{FailureThrottle, Rejection, RejectionKind};
use tower_apikey::testing::{FailingStore, with_bad_checksum, with_wrong_secret};
use tower_apikey::{
    ApiKeyV2Layer, InMemoryKeyStore, KeyId, KeyManager, KeyRecord, KeyStore, NewKey, PlaintextKey,
    StoreError,
};

/// The in-memory store, counting every lookup, answering at once or (`waits`) only
/// through the future.
#[derive(Debug, Clone)]
struct CountingStore {
    inner: InMemoryKeyStore,
    lookups: Arc<AtomicUsize>,
    waits: bool,
}

impl CountingStore {
    fn new(inner: InMemoryKeyStore, waits: bool) -> Self {
        Self {
            inner,
            lookups: Arc::default(),
            waits,
        }
    }

    fn lookups(&self) -> usize {
        self.lookups.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl KeyStore for CountingStore {
    async fn lookup(&self, id: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        tokio::task::yield_now().await;
        self.inner.lookup(id).await
    }

    fn lookup_ready(&self, id: &KeyId) -> Option<Result<Option<KeyRecord>, StoreError>> {
        if self.waits {
            return None;
        }
        self.lookups.fetch_add(1, Ordering::SeqCst);
        self.inner.lookup_ready(id)
    }
}

fn auth(key: &str) -> String {
    format!("ApiKey-v2 {key}")
}

/// A well-formed key that no store holds.
fn unknown_key() -> String {
    PlaintextKey::generate(&KeyPrefix::default())
        .expose_secret()
        .to_owned()
}

/// An axum application behind the layer, served with `ConnectInfo<SocketAddr>`.
struct Server {
    addr: SocketAddr,
    store: CountingStore,
    manager: KeyManager<InMemoryKeyStore>,
}

impl Server {
    async fn start(listen: &str, configure: impl FnOnce(ApiKeyV2Layer) -> ApiKeyV2Layer) -> Self {
        let memory = InMemoryKeyStore::new();
        let store = CountingStore::new(memory.clone(), false);
        let app = Router::new()
            .route("/ping", get(|| async { "pong" }))
            .layer(configure(ApiKeyV2Layer::new(store.clone())));
        let listener = tokio::net::TcpListener::bind(listen).await.unwrap();
        let mut addr = listener.local_addr().unwrap();
        if addr.ip().is_unspecified() {
            // Listening on every address (dual-stack): call it over IPv4.
            addr.set_ip([127, 0, 0, 1].into());
        }
        tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
            .unwrap()
        });
        Self {
            addr,
            store,
            manager: KeyManager::new(memory),
        }
    }

    async fn key(&self) -> String {
        let created = self
            .manager
            .create(NewKey::new("throttle test", Vec::<String>::new()))
            .await
            .unwrap();
        created.key.expose_secret().to_owned()
    }

    /// `GET /ping` with `key`, from a client bound to the local address `from`.
    async fn ping(&self, from: &str, key: &str, headers: &[(&str, &str)]) -> Answer {
        let mut connector = HttpConnector::new();
        connector.set_local_address(Some(from.parse::<IpAddr>().unwrap()));
        let client: Client<_, Empty<Bytes>> =
            Client::builder(TokioExecutor::new()).build(connector);
        let mut request =
            Request::get(format!("http://{}/ping", self.addr)).header(AUTHORIZATION, auth(key));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = client
            .request(request.body(Empty::new()).unwrap())
            .await
            .unwrap();
        Answer::read(response).await
    }
}

/// Asserts a 429 from the throttle; returns its `Retry-After` in seconds.
fn assert_throttled(answer: &Answer) -> u64 {
    assert_eq!(
        answer.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        answer.body
    );
    assert!(!answer.headers.contains_key(WWW_AUTHENTICATE));
    assert_eq!(answer.headers[CONTENT_TYPE], "application/problem+json");
    let problem: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
    assert_eq!(problem["error"], "throttled");
    assert_eq!(problem["status"], 429);
    answer.headers[RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn after_n_failures_an_address_gets_429_without_a_lookup() {
    let server = Server::start("127.0.0.1:0", |layer| {
        layer.throttle_failures(FailureThrottle::per_minute(3))
    })
    .await;
    let good = server.key().await;
    assert_eq!(server.ping("127.0.0.1", &good, &[]).await.status, 200);
    let wrong = with_wrong_secret(&good);
    for _ in 0..3 {
        assert_eq!(server.ping("127.0.0.1", &wrong, &[]).await.status, 401);
    }
    let looked_up = server.store.lookups();
    assert_eq!(looked_up, 4);

    // Every further key from that address that the store cannot prove at once is
    // refused (this store answers at once, so it is read, but never asked to wait)…
    for key in [unknown_key(), wrong.clone()] {
        let retry_after = assert_throttled(&server.ping("127.0.0.1", &key, &[]).await);
        // Three a minute: one more failure is allowed 20 s after the third.
        assert!((1..=20).contains(&retry_after), "{retry_after}");
    }
    // …while the right key, proven from memory, is never throttled (DESIGN §6).
    assert_eq!(server.ping("127.0.0.1", &good, &[]).await.status, 200);
    assert_eq!(server.store.lookups(), looked_up + 3);

    // Another address is someone else.
    assert_eq!(server.ping("127.0.0.2", &good, &[]).await.status, 200);
    assert_eq!(server.ping("127.0.0.2", &wrong, &[]).await.status, 401);
}

#[tokio::test]
async fn an_untrusted_x_forwarded_for_is_ignored() {
    let server = Server::start("127.0.0.1:0", |layer| {
        layer.throttle_failures(FailureThrottle::per_minute(2))
    })
    .await;
    let good = server.key().await;
    // A guesser that claims a new address on every request, with no proxy trusted.
    for claimed in ["203.0.113.1", "203.0.113.2"] {
        let answer = server
            .ping("127.0.0.1", &unknown_key(), &[("x-forwarded-for", claimed)])
            .await;
        assert_eq!(answer.status, 401);
    }
    for claimed in ["203.0.113.3", "127.0.0.2"] {
        let headers = [("x-forwarded-for", claimed), ("forwarded", "for=192.0.2.1")];
        assert_throttled(&server.ping("127.0.0.1", &unknown_key(), &headers).await);
        assert_eq!(server.ping("127.0.0.1", &good, &headers).await.status, 200);
    }
}

#[tokio::test]
async fn a_trusted_proxys_x_forwarded_for_names_the_client() {
    // The proxy is 127.0.0.1; clients connecting from elsewhere are not trusted.
    let server = Server::start("127.0.0.1:0", |layer| {
        layer
            .throttle_failures(FailureThrottle::per_minute(2))
            .trusted_proxies(TrustedProxies::x_forwarded_for(["127.0.0.1"]).unwrap())
    })
    .await;
    let good = server.key().await;
    // The client forged an entry; the proxy appended the address it saw.
    let guesser = [("x-forwarded-for", "198.51.100.1, 203.0.113.7")];
    for _ in 0..2 {
        let answer = server.ping("127.0.0.1", &unknown_key(), &guesser).await;
        assert_eq!(answer.status, 401);
    }
    assert_throttled(&server.ping("127.0.0.1", &unknown_key(), &guesser).await);
    // Through the same proxy, another client is let in…
    let other = [("x-forwarded-for", "203.0.113.8")];
    assert_eq!(server.ping("127.0.0.1", &good, &other).await.status, 200);
    assert_eq!(
        server
            .ping("127.0.0.1", &unknown_key(), &other)
            .await
            .status,
        401
    );
    // …and the forged entry was never counted.
    let forged = [("x-forwarded-for", "198.51.100.1")];
    assert_eq!(
        server
            .ping("127.0.0.1", &unknown_key(), &forged)
            .await
            .status,
        401
    );
    // A peer that is not the proxy cannot borrow the header.
    let spoofed = [("x-forwarded-for", "203.0.113.8")];
    for _ in 0..2 {
        let answer = server.ping("127.0.0.2", &unknown_key(), &spoofed).await;
        assert_eq!(answer.status, 401);
    }
    assert_throttled(&server.ping("127.0.0.2", &unknown_key(), &spoofed).await);
    assert_eq!(server.ping("127.0.0.1", &good, &other).await.status, 200);
}

#[tokio::test]
async fn ipv4_mapped_peers_are_their_ipv4_addresses() {
    // A dual-stack socket sees IPv4 clients as ::ffff:a.b.c.d. Trusting 127.0.0.1 must
    // trust them: the header then names the client, and each is counted on its own.
    let server = Server::start("[::]:0", |layer| {
        layer
            .throttle_failures(FailureThrottle::per_minute(1))
            .trusted_proxies(TrustedProxies::x_forwarded_for(["127.0.0.1"]).unwrap())
    })
    .await;
    let good = server.key().await;
    let first = [("x-forwarded-for", "203.0.113.1")];
    let answer = server.ping("127.0.0.1", &unknown_key(), &first).await;
    assert_eq!(answer.status, 401);
    assert_throttled(&server.ping("127.0.0.1", &unknown_key(), &first).await);
    let second = [("x-forwarded-for", "203.0.113.2")];
    assert_eq!(
        server
            .ping("127.0.0.1", &unknown_key(), &second)
            .await
            .status,
        401
    );
    assert_eq!(server.ping("127.0.0.1", &good, &first).await.status, 200);
}

#[tokio::test]
async fn an_ipv6_peer_is_throttled() {
    let server = Server::start("[::1]:0", |layer| {
        layer.throttle_failures(FailureThrottle::per_minute(1))
    })
    .await;
    let good = server.key().await;
    assert_eq!(server.ping("::1", &unknown_key(), &[]).await.status, 401);
    assert_throttled(&server.ping("::1", &unknown_key(), &[]).await);
    assert_eq!(server.ping("::1", &good, &[]).await.status, 200);
}

// In-process: the layer over a `service_fn`, the peer inserted as servers do.

async fn echo(_: Request<String>) -> Result<Response<String>, Infallible> {
    Ok(Response::new(String::from("ok")))
}

async fn call(layer: &ApiKeyV2Layer, from: &str, authorization: Option<&str>) -> Response<String> {
    call_with(layer, from, authorization, &[]).await
}

async fn call_with(
    layer: &ApiKeyV2Layer,
    from: &str,
    authorization: Option<&str>,
    headers: &[(&str, &str)],
) -> Response<String> {
    // HTTP/2, where a request that says it is gRPC gets the gRPC answer.
    let mut request = Request::get("/").version(http::Version::HTTP_2);
    if let Some(value) = authorization {
        request = request.header(AUTHORIZATION, value);
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let mut request = request.body(String::new()).unwrap();
    if !from.is_empty() {
        let peer = SocketAddr::new(from.parse().unwrap(), 40_000);
        request.extensions_mut().insert(peer);
    }
    let response = ServiceBuilder::new()
        .layer(layer.clone())
        .service_fn(echo)
        .oneshot(request)
        .await
        .unwrap();
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    Response::from_parts(parts, String::from_utf8(body.to_vec()).unwrap())
}

async fn key_in(store: &InMemoryKeyStore) -> String {
    KeyManager::new(store.clone())
        .create(NewKey::new("throttle test", Vec::<String>::new()))
        .await
        .unwrap()
        .key
        .expose_secret()
        .to_owned()
}

#[tokio::test]
async fn ipv6_addresses_are_counted_per_64() {
    let store = InMemoryKeyStore::new();
    let good = key_in(&store).await;
    let layer = ApiKeyV2Layer::new(store).throttle_failures(FailureThrottle::per_minute(3));
    for from in [
        "2001:db8:1:2::1",
        "2001:db8:1:2::ffff",
        "2001:db8:1:2:aaaa::9",
    ] {
        let answer = call(&layer, from, Some(&auth(&unknown_key()))).await;
        assert_eq!(answer.status(), 401, "{from}");
    }
    let answer = call(
        &layer,
        "2001:db8:1:2:ffff:ffff:ffff:ffff",
        Some(&auth(&unknown_key())),
    )
    .await;
    assert_eq!(answer.status(), 429);
    for neighbour in ["2001:db8:1:3::1", "2001:db8:1:1:ffff:ffff:ffff:ffff"] {
        let answer = call(&layer, neighbour, Some(&auth(&unknown_key()))).await;
        assert_eq!(answer.status(), 401, "{neighbour}");
    }
    // The throttled /64's own valid key, proven from memory, still gets through.
    let answer = call(&layer, "2001:db8:1:2::7", Some(&auth(&good))).await;
    assert_eq!(answer.status(), 200);
}

#[tokio::test]
async fn ipv4_mapped_and_plain_ipv4_are_one_address() {
    let store = InMemoryKeyStore::new();
    let good = key_in(&store).await;
    let layer = ApiKeyV2Layer::new(store).throttle_failures(FailureThrottle::per_minute(2));
    let wrong = auth(&with_wrong_secret(&good));
    assert_eq!(
        call(&layer, "::ffff:192.0.2.9", Some(&wrong))
            .await
            .status(),
        401
    );
    assert_eq!(call(&layer, "192.0.2.9", Some(&wrong)).await.status(), 401);
    assert_eq!(
        call(&layer, "::ffff:192.0.2.9", Some(&wrong))
            .await
            .status(),
        429
    );
    assert_eq!(call(&layer, "192.0.2.9", Some(&wrong)).await.status(), 429);
}

#[tokio::test]
async fn only_unknown_ids_and_wrong_secrets_count() {
    let store = InMemoryKeyStore::new();
    let manager = KeyManager::new(store.clone());
    let good = key_in(&store).await;
    let revoked = key_in(&store).await;
    manager
        .revoke(PlaintextKey::parse(revoked.clone()).unwrap().id())
        .await
        .unwrap();
    let layer = ApiKeyV2Layer::new(store).throttle_failures(FailureThrottle::per_minute(1));
    let outage = ApiKeyV2Layer::new(FailingStore).throttle_failures(FailureThrottle::per_minute(1));
    for _ in 0..5 {
        for value in [
            None,
            Some("Bearer abc".to_owned()),
            Some(auth("mkc_short")),
            Some(auth(&with_bad_checksum(&good))),
            Some(auth(&revoked)),
        ] {
            let answer = call(&layer, "192.0.2.1", value.as_deref()).await;
            assert_eq!(answer.status(), 401, "{value:?}");
        }
        let answer = call(&outage, "192.0.2.1", Some(&auth(&good))).await;
        assert_eq!(answer.status(), 503);
    }
    assert_eq!(
        call(&layer, "192.0.2.1", Some(&auth(&good))).await.status(),
        200
    );
    // One wrong secret is the one failure allowed.
    let wrong = auth(&with_wrong_secret(&good));
    assert_eq!(call(&layer, "192.0.2.1", Some(&wrong)).await.status(), 401);
    assert_eq!(call(&layer, "192.0.2.1", Some(&wrong)).await.status(), 429);
    // A throttled address still hears 401 for what needs no lookup.
    assert_eq!(call(&layer, "192.0.2.1", None).await.status(), 401);
}

#[tokio::test]
async fn a_success_does_not_forgive_earlier_failures() {
    let store = InMemoryKeyStore::new();
    let good = key_in(&store).await;
    let layer = ApiKeyV2Layer::new(store).throttle_failures(FailureThrottle::per_minute(2));
    let unknown = auth(&unknown_key());
    assert_eq!(
        call(&layer, "192.0.2.1", Some(&unknown)).await.status(),
        401
    );
    assert_eq!(
        call(&layer, "192.0.2.1", Some(&auth(&good))).await.status(),
        200
    );
    assert_eq!(
        call(&layer, "192.0.2.1", Some(&unknown)).await.status(),
        401
    );
    assert_eq!(
        call(&layer, "192.0.2.1", Some(&unknown)).await.status(),
        429
    );
}

#[tokio::test]
async fn a_store_that_waits_is_throttled_the_same_way() {
    let memory = InMemoryKeyStore::new();
    let good = key_in(&memory).await;
    let store = CountingStore::new(memory, true);
    let layer = ApiKeyV2Layer::new(store.clone()).throttle_failures(FailureThrottle::per_minute(2));
    for _ in 0..2 {
        let answer = call(&layer, "192.0.2.1", Some(&auth(&unknown_key()))).await;
        assert_eq!(answer.status(), 401);
    }
    assert_eq!(store.lookups(), 2);
    let answer = call(&layer, "192.0.2.1", Some(&auth(&good))).await;
    assert_eq!(answer.status(), 429);
    assert_eq!(store.lookups(), 2, "the store was asked");
    assert_eq!(
        call(&layer, "192.0.2.2", Some(&auth(&good))).await.status(),
        200
    );
}

#[tokio::test(start_paused = true)]
async fn the_allowance_refills_one_failure_per_interval() {
    let store = InMemoryKeyStore::new();
    let good = key_in(&store).await;
    // Four a minute: one failure refills every 15 s.
    let layer = ApiKeyV2Layer::new(store).throttle_failures(FailureThrottle::per_minute(4));
    let unknown = auth(&unknown_key());
    for _ in 0..4 {
        assert_eq!(
            call(&layer, "192.0.2.1", Some(&unknown)).await.status(),
            401
        );
    }
    // Refused requests are not counted, so probing with the unknown key is free.
    let refused = call(&layer, "192.0.2.1", Some(&unknown)).await;
    assert_eq!(refused.status(), 429);
    assert_eq!(refused.headers()[RETRY_AFTER], "15");
    // The right key, proven from memory, is never throttled.
    assert_eq!(
        call(&layer, "192.0.2.1", Some(&auth(&good))).await.status(),
        200
    );

    tokio::time::advance(Duration::from_secs(14)).await;
    let refused = call(&layer, "192.0.2.1", Some(&unknown)).await;
    assert_eq!(refused.headers()[RETRY_AFTER], "1");
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(
        call(&layer, "192.0.2.1", Some(&unknown)).await.status(),
        401
    );
    let refused = call(&layer, "192.0.2.1", Some(&unknown)).await;
    assert_eq!(refused.headers()[RETRY_AFTER], "15");

    // Refused requests do not count: after a minute of being refused, all is refilled.
    for _ in 0..10 {
        tokio::time::advance(Duration::from_secs(6)).await;
        call(&layer, "192.0.2.1", Some(&unknown)).await;
    }
    tokio::time::advance(Duration::from_secs(60)).await;
    for _ in 0..4 {
        assert_eq!(
            call(&layer, "192.0.2.1", Some(&unknown)).await.status(),
            401
        );
    }
    assert_eq!(
        call(&layer, "192.0.2.1", Some(&unknown)).await.status(),
        429
    );
}

#[tokio::test]
async fn grpc_calls_get_resource_exhausted() {
    let store = InMemoryKeyStore::new();
    let good = key_in(&store).await;
    let layer = ApiKeyV2Layer::new(store).throttle_failures(FailureThrottle::per_minute(1));
    let grpc = [(CONTENT_TYPE.as_str(), "application/grpc")];
    let answer = call_with(&layer, "192.0.2.1", Some(&auth(&unknown_key())), &grpc).await;
    assert_eq!(answer.headers()["grpc-status"], "16");
    let answer = call_with(&layer, "192.0.2.1", Some(&auth(&unknown_key())), &grpc).await;
    assert_eq!(answer.status(), 200, "gRPC refusals are trailers-only");
    assert_eq!(answer.headers()["grpc-status"], "8");
    assert!(answer.headers().contains_key(RETRY_AFTER));
    let answer = call_with(&layer, "192.0.2.1", Some(&auth(&good)), &grpc).await;
    assert!(!answer.headers().contains_key("grpc-status"), "let through");
}

#[tokio::test]
async fn a_custom_rejection_handler_sees_the_throttle() {
    let store = InMemoryKeyStore::new();
    let good = key_in(&store).await;
    let layer = ApiKeyV2Layer::new(store)
        .throttle_failures(FailureThrottle::per_minute(1))
        .on_rejection(|rejection: Rejection| {
            let wait = match rejection.kind() {
                RejectionKind::Throttled { retry_after } => Some(retry_after.as_secs()),
                _ => None,
            };
            let mut response = rejection.into_response::<String>();
            if let Some(wait) = wait {
                response.headers_mut().insert("x-wait", wait.into());
            }
            response
        });
    let service = ServiceBuilder::new().layer(layer).service_fn(echo);
    let request = |value: String| {
        let mut request = Request::get("/")
            .header(AUTHORIZATION, value)
            .body(String::new())
            .unwrap();
        request
            .extensions_mut()
            .insert(SocketAddr::from(([192, 0, 2, 1], 1)));
        request
    };
    let answer = service
        .clone()
        .oneshot(request(auth(&unknown_key())))
        .await
        .unwrap();
    assert_eq!(answer.status(), 401);
    assert!(!answer.headers().contains_key("x-wait"));
    let answer = service.clone().oneshot(request(auth(&good))).await.unwrap();
    assert_eq!(
        answer.status(),
        200,
        "a key proven from memory is never throttled"
    );
    let answer = service
        .oneshot(request(auth(&unknown_key())))
        .await
        .unwrap();
    assert_eq!(answer.status(), 429);
    let wait: u64 = answer.headers()["x-wait"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
}

/// A `tracing` writer into a shared buffer.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl io::Write for Logs {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn requests_without_an_address_are_let_through_with_one_warning() {
    let store = InMemoryKeyStore::new();
    let good = key_in(&store).await;
    let layer = ApiKeyV2Layer::new(store).throttle_failures(FailureThrottle::per_minute(1));
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_max_level(tracing::Level::WARN)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    for _ in 0..3 {
        let answer = call(&layer, "", Some(&auth(&unknown_key()))).await;
        assert_eq!(answer.status(), 401);
    }
    assert_eq!(call(&layer, "", Some(&auth(&good))).await.status(), 200);
    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert_eq!(
        logs.matches("carries no client address").count(),
        1,
        "{logs}"
    );
    assert!(
        logs.contains("into_make_service_with_connect_info"),
        "{logs}"
    );
}
