//! The middleware behind a real axum server on loopback, called by a real HTTP client.

mod common;

use std::net::SocketAddr;

use axum::Router;
use axum::routing::get;
use common::Answer;
use http::Request;
use http::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
use http_body_util::Empty;
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tower_apikey::{
    ApiKeyIdentity, ApiKeyV2Layer, InMemoryKeyStore, KeyManager, NewKey, PlaintextKey,
    RequireScopesLayer, Scopes,
};

struct Server {
    addr: SocketAddr,
    client: Client<HttpConnector, Empty<Bytes>>,
    manager: KeyManager<InMemoryKeyStore>,
}

impl Server {
    async fn start() -> Self {
        let store = InMemoryKeyStore::new();
        let manager = KeyManager::new(store.clone());
        let app = Router::new()
            .route("/ping", get(|| async { "pong" }))
            .route(
                "/whoami",
                get(|caller: ApiKeyIdentity| async move {
                    format!("{} {}", caller.name(), caller.scopes())
                }),
            )
            .route(
                "/reports",
                get(|| async { "reports" })
                    .post(|| async { "created" })
                    .route_layer(RequireScopesLayer::new(
                        Scopes::new(["reports:read"]).unwrap(),
                    )),
            )
            .layer(ApiKeyV2Layer::new(store))
            // Outside the layer: a route that never requires a key.
            .merge(Router::new().route(
                "/open",
                get(|caller: Option<ApiKeyIdentity>| async move {
                    caller.map_or("anonymous".to_owned(), |c| c.name().to_owned())
                }),
            ))
            .merge(Router::new().route(
                "/misconfigured",
                get(|caller: ApiKeyIdentity| async move { caller.name().to_owned() }),
            ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let client = Client::builder(TokioExecutor::new()).build_http();
        Self {
            addr,
            client,
            manager,
        }
    }

    async fn key(&self, scopes: &[&str]) -> PlaintextKey {
        self.manager
            .create(NewKey::new("integration", scopes.iter().copied()))
            .await
            .unwrap()
            .key
    }

    async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Answer {
        self.send("GET", path, headers).await
    }

    async fn send(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> Answer {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr));
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let response = self
            .client
            .request(req.body(Empty::new()).unwrap())
            .await
            .unwrap();
        Answer::read(response).await
    }
}

fn auth(key: &PlaintextKey) -> String {
    format!("ApiKey-v2 {}", key.expose_secret())
}

#[tokio::test]
async fn a_valid_key_reaches_the_handler_over_http() {
    let server = Server::start().await;
    let key = server.key(&["reports:read"]).await;
    let answer = server.get("/ping", &[("authorization", &auth(&key))]).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body, "pong");
    let answer = server
        .get("/whoami", &[("authorization", &auth(&key))])
        .await;
    assert_eq!(answer.body, "integration reports:read");
}

#[tokio::test]
async fn no_key_gets_401_with_a_challenge_and_a_problem_document() {
    let server = Server::start().await;
    let answer = server.get("/ping", &[]).await;
    assert_eq!(answer.status, 401);
    assert_eq!(answer.headers[WWW_AUTHENTICATE], "ApiKey-v2 realm=\"api\"");
    assert_eq!(answer.headers[CONTENT_TYPE], "application/problem+json");
    let problem: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
    assert_eq!(problem["status"], 401);
    assert_eq!(problem["title"], "Unauthorized");
}

#[tokio::test]
async fn a_bad_key_gets_invalid_token_and_never_the_handler() {
    let server = Server::start().await;
    let key = server.key(&[]).await;
    let mut typo = auth(&key);
    typo.pop();
    typo.push('!');
    for value in [
        typo.as_str(),
        "ApiKey-v2 mkc_0000000000000000_00000000000000000000000000000000000000000003HMsUU",
    ] {
        let answer = server.get("/ping", &[("authorization", value)]).await;
        assert_eq!(answer.status, 401, "{value}");
        assert_ne!(answer.body, "pong");
    }
}

#[tokio::test]
async fn per_route_scopes_give_403_and_unknown_routes_stay_404() {
    let server = Server::start().await;
    let reader = server.key(&["reports:read"]).await;
    let other = server.key(&["billing:read"]).await;
    let ok = server
        .get("/reports", &[("authorization", &auth(&reader))])
        .await;
    assert_eq!(ok.status, 200);
    let denied = server
        .get("/reports", &[("authorization", &auth(&other))])
        .await;
    assert_eq!(denied.status, 403);
    let challenge = denied.headers[WWW_AUTHENTICATE].to_str().unwrap();
    assert!(
        challenge.contains("error=\"insufficient_scope\""),
        "{challenge}"
    );
    assert!(challenge.contains("scope=\"reports:read\""), "{challenge}");
    let missing = server
        .get("/nope", &[("authorization", &auth(&other))])
        .await;
    assert_eq!(missing.status, 404);
}

#[tokio::test]
async fn the_optional_extractor_sees_none_outside_the_layer() {
    let server = Server::start().await;
    let answer = server.get("/open", &[]).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body, "anonymous");
}

#[tokio::test]
async fn the_extractor_without_the_layer_answers_401_not_500() {
    let server = Server::start().await;
    let key = server.key(&[]).await;
    let answer = server
        .get("/misconfigured", &[("authorization", &auth(&key))])
        .await;
    assert_eq!(answer.status, 401);
}

#[tokio::test]
async fn a_revoked_key_is_refused_over_http() {
    let server = Server::start().await;
    let key = server.key(&[]).await;
    assert_eq!(
        server
            .get("/ping", &[("authorization", &auth(&key))])
            .await
            .status,
        200
    );
    server.manager.revoke(key.id()).await.unwrap();
    let answer = server.get("/ping", &[("authorization", &auth(&key))]).await;
    assert_eq!(answer.status, 401);
    let problem: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
    assert_eq!(problem["detail"], "the key has been revoked");
}

#[tokio::test]
async fn grpc_requests_get_a_grpc_status_over_http2_and_the_http_answer_over_http1() {
    let server = Server::start().await;
    // gRPC runs over HTTP/2: there, a trailers-only answer.
    let http2 = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let request = http::Request::get(format!("http://{}/ping", server.addr))
        .header(CONTENT_TYPE, "application/grpc")
        .body(http_body_util::Empty::new())
        .unwrap();
    let answer = Answer::read(http2.request(request).await.unwrap()).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.headers["grpc-status"], "16");
    assert!(answer.body.is_empty());
    // Over HTTP/1.1 the same header gets the plain 401: it must not turn refusals
    // into 200s in access logs.
    let answer = server
        .get("/ping", &[(CONTENT_TYPE.as_str(), "application/grpc")])
        .await;
    assert_eq!(answer.status, 401);
    assert!(!answer.headers.contains_key("grpc-status"));
}
