//! The hyper example's service on a plain hyper-util server, called over real HTTP/1.1
//! and HTTP/2 connections.

// The example's `main` is `cargo run --example hyper`; here its `app` and `serve` run.
#[allow(dead_code)]
#[path = "../examples/hyper.rs"]
mod example;

use std::net::SocketAddr;

use http::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{Request, StatusCode, Version};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::net::TcpListener;
use tower_apikey::{InMemoryKeyStore, KeyManager, NewKey};

async fn start() -> (SocketAddr, KeyManager<InMemoryKeyStore>) {
    let manager = KeyManager::new(InMemoryKeyStore::new());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(example::serve(
        listener,
        example::app(&manager),
        std::future::pending(),
    ));
    (addr, manager)
}

async fn get(
    client: &Client<HttpConnector, Empty<Bytes>>,
    addr: SocketAddr,
    key: Option<&str>,
) -> (StatusCode, Version, http::HeaderMap, String) {
    let mut request = Request::get(format!("http://{addr}/"));
    if let Some(key) = key {
        request = request.header("authorization", format!("ApiKey-v2 {key}"));
    }
    let response = client
        .request(request.body(Empty::new()).unwrap())
        .await
        .unwrap();
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (
        parts.status,
        parts.version,
        parts.headers,
        String::from_utf8(body.to_vec()).unwrap(),
    )
}

#[tokio::test]
async fn the_layer_guards_a_plain_hyper_server_over_http1_and_http2() {
    let (addr, manager) = start().await;
    let good = manager
        .create(NewKey::new("hyper caller", ["greetings:read"]))
        .await
        .unwrap();
    let other = manager
        .create(NewKey::new("other", ["reports:read"]))
        .await
        .unwrap();
    let http1 = Client::builder(TokioExecutor::new()).build_http();
    let http2 = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();

    for (client, version) in [(&http1, Version::HTTP_11), (&http2, Version::HTTP_2)] {
        let (status, got_version, headers, body) = get(client, addr, None).await;
        assert_eq!((status, got_version), (StatusCode::UNAUTHORIZED, version));
        assert_eq!(headers[WWW_AUTHENTICATE], "ApiKey-v2 realm=\"api\"");
        assert_eq!(headers[CONTENT_TYPE], "application/problem+json");
        let problem: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(problem["status"], 401);

        let (status, _, headers, body) = get(client, addr, Some(other.key.expose_secret())).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(
            headers[WWW_AUTHENTICATE]
                .to_str()
                .unwrap()
                .ends_with("scope=\"greetings:read\"")
        );
        let problem: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(problem["scope"], "greetings:read");

        let (status, _, _, body) = get(client, addr, Some(good.key.expose_secret())).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            body,
            format!("hello, hyper caller (key {})", good.record.id())
        );
    }
}

#[tokio::test]
async fn the_peer_address_reaches_the_throttle() {
    let (addr, manager) = start().await;
    let good = manager
        .create(NewKey::new("hyper caller", ["greetings:read"]))
        .await
        .unwrap();
    let wrong = tower_apikey::testing::with_wrong_secret(good.key.expose_secret());
    let client = Client::builder(TokioExecutor::new()).build_http();
    for _ in 0..example::FAILURES_PER_MINUTE {
        let (status, ..) = get(&client, addr, Some(&wrong)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, _, headers, body) = get(&client, addr, Some(&wrong)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(headers.contains_key(http::header::RETRY_AFTER));
    let problem: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(problem["error"], "throttled");
    // The right key, proven from memory, is never throttled (DESIGN §6).
    let (status, ..) = get(&client, addr, Some(good.key.expose_secret())).await;
    assert_eq!(status, StatusCode::OK);
}
