//! Lookups abandoned by their clients leave nothing behind: HTTP/2 streams reset and
//! HTTP/1.1 connections closed mid-request, through a real server on loopback, over a
//! cache whose store never answers.

use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use http::Request;
use http_body_util::Empty;
use hyper::body::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpListener, TcpStream};
use tower_apikey::key::KeyPrefix;
use tower_apikey::store::cached::CachedKeyStore;
use tower_apikey::testing::HangingStore;
use tower_apikey::{ApiKeyV2Layer, PlaintextKey};

const CLIENTS: usize = 200;
/// A bound on every wait, so that a broken behaviour fails instead of hanging.
const DEADLINE: Duration = Duration::from_secs(10);

async fn serve(cache: CachedKeyStore<HangingStore>) -> std::net::SocketAddr {
    let layer = ApiKeyV2Layer::new(cache).lookup_timeout(None);
    let app = Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(layer);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

fn request() -> Request<Empty<Bytes>> {
    let key = PlaintextKey::generate(&KeyPrefix::default());
    Request::get("/")
        .header(
            "authorization",
            format!("ApiKey-v2 {}", key.expose_secret()),
        )
        .body(Empty::new())
        .unwrap()
}

/// An HTTP/2 client connection to `addr`, its driver spawned.
async fn http2(
    addr: std::net::SocketAddr,
) -> hyper::client::conn::http2::SendRequest<Empty<Bytes>> {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    sender
}

/// Waits until `cache` has `n` lookups in flight.
async fn wait_for_loads(cache: &CachedKeyStore<HangingStore>, n: usize) {
    let start = Instant::now();
    while cache.stats().loads_in_flight != n {
        assert!(
            start.elapsed() < DEADLINE,
            "{} lookups in flight, expected {n}",
            cache.stats().loads_in_flight
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_clients_that_reset_their_streams_leave_no_lookup_behind() {
    let cache = CachedKeyStore::builder(HangingStore)
        .max_loads(CLIENTS)
        .build();
    let addr = serve(cache.clone()).await;
    let mut sender = http2(addr).await;
    let mut pending = Vec::with_capacity(CLIENTS);
    for _ in 0..CLIENTS {
        sender.ready().await.unwrap();
        pending.push(tokio::spawn(sender.send_request(request())));
    }
    wait_for_loads(&cache, CLIENTS).await;
    // Dropping a response future resets its stream (RST_STREAM CANCEL).
    for request in &pending {
        request.abort();
    }
    wait_for_loads(&cache, 0).await;
    assert_eq!(cache.stats().entries, 0);
    // The connection still serves: a new stream gets as far as the store again.
    sender.ready().await.unwrap();
    let again = tokio::spawn(sender.send_request(request()));
    wait_for_loads(&cache, 1).await;
    again.abort();
    wait_for_loads(&cache, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_clients_that_hang_up_leave_no_lookup_behind() {
    let cache = CachedKeyStore::builder(HangingStore)
        .max_loads(CLIENTS)
        .build();
    let addr = serve(cache.clone()).await;
    let mut connections = Vec::with_capacity(CLIENTS);
    for _ in 0..CLIENTS {
        let stream = TcpStream::connect(addr).await.unwrap();
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        let driving = tokio::spawn(connection);
        let waiting = tokio::spawn(async move { sender.send_request(request()).await });
        connections.push((driving, waiting));
    }
    wait_for_loads(&cache, CLIENTS).await;
    // Dropping the connection closes the socket; the server drops the request.
    for (driving, waiting) in &connections {
        waiting.abort();
        driving.abort();
    }
    wait_for_loads(&cache, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_cap_a_flood_is_answered_at_once_with_503() {
    let cache = CachedKeyStore::builder(HangingStore).max_loads(4).build();
    let addr = serve(cache.clone()).await;
    let mut sender = http2(addr).await;
    let mut hanging = Vec::new();
    for _ in 0..4 {
        sender.ready().await.unwrap();
        hanging.push(tokio::spawn(sender.send_request(request())));
    }
    wait_for_loads(&cache, 4).await;
    sender.ready().await.unwrap();
    let shed = sender.send_request(request()).await.unwrap();
    assert_eq!(shed.status(), 503);
    assert!(shed.headers().contains_key("retry-after"));
    assert!(!shed.headers().contains_key("www-authenticate"));
    for request in &hanging {
        request.abort();
    }
    wait_for_loads(&cache, 0).await;
}
