//! The middleware behind a real axum server on loopback, called by a real HTTP client.

mod common;

use std::net::SocketAddr;

use axum::Router;
use axum::routing::get;
use common::Answer;
use http::Request;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, WWW_AUTHENTICATE};
use http_body_util::Empty;
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tower_apikey::key::KeyPrefix;
use tower_apikey::record::{AllowedIps, RateLimit};
use tower_apikey::testing::FailingStore;
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

/// How a test calls: the HTTP version, and the `content-type` sent.
#[derive(Debug, Clone, Copy)]
enum Call {
    Http1,
    Http2,
    Http2With(&'static str),
}

/// `GET addr/path` with `headers`, over a new connection of `call`'s HTTP version.
async fn call(addr: SocketAddr, call: Call, path: &str, headers: &[(&str, &str)]) -> Answer {
    let client = Client::builder(TokioExecutor::new())
        .http2_only(!matches!(call, Call::Http1))
        .build_http::<Empty<Bytes>>();
    let mut request = Request::get(format!("http://{addr}{path}"));
    if let Call::Http2With(content_type) = call {
        request = request.header(CONTENT_TYPE, content_type);
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = client
        .request(request.body(Empty::new()).unwrap())
        .await
        .unwrap();
    Answer::read(response).await
}

#[tokio::test]
async fn l7_only_grpc_content_types_get_a_trailers_only_answer_over_http2() {
    let server = Server::start().await;
    let reader = server.key(&["reports:write"]).await;
    let lacks_scope = auth(&reader);
    // (path, headers, the HTTP status, the gRPC status): the layer's refusal, the
    // per-route scope check's, the extractor's on a route without the layer.
    type Refusal<'a> = (&'a str, &'a [(&'a str, &'a str)], u16, &'a str);
    let refusals: [Refusal; 3] = [
        ("/ping", &[], 401, "16"),
        ("/reports", &[("authorization", &lacks_scope)], 403, "7"),
        ("/misconfigured", &[], 401, "16"),
    ];
    for content_type in [
        "application/grpc",
        "application/grpc+proto",
        "application/grpc+json",
        "application/grpc;charset=utf-8",
    ] {
        for (path, headers, _, grpc_status) in refusals {
            let answer = call(server.addr, Call::Http2With(content_type), path, headers).await;
            assert_eq!(answer.status, 200, "{content_type} {path}");
            assert_eq!(answer.headers["grpc-status"], grpc_status, "{content_type}");
            assert_eq!(answer.headers[CONTENT_TYPE], "application/grpc");
            assert!(answer.body.is_empty());
        }
    }
    // Anything else is not gRPC, however it starts: the plain refusal, never a 200.
    for content_type in [
        "application/grpcXYZ",
        "application/grpc-web",
        "application/grpc-web+proto",
        "application/grpcx+proto",
        "application/grp",
        "Application/gRPC",
    ] {
        for (path, headers, status, _) in refusals {
            let answer = call(server.addr, Call::Http2With(content_type), path, headers).await;
            assert_eq!(answer.status, status, "{content_type} {path}");
            assert!(
                !answer.headers.contains_key("grpc-status"),
                "{content_type}"
            );
            assert_eq!(answer.headers[CONTENT_TYPE], "application/problem+json");
            let problem: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
            assert_eq!(problem["status"], status);
        }
    }
}

#[tokio::test]
async fn l7_every_refusal_carries_cache_control_no_store() {
    let server = Server::start().await;
    let revoked = server.key(&[]).await;
    server.manager.revoke(revoked.id()).await.unwrap();
    let limited = server
        .manager
        .create(
            NewKey::new("limited", ["reports:read"]).rate_limit(RateLimit::new(1, 3600).unwrap()),
        )
        .await
        .unwrap()
        .key;
    // A key restricted to addresses: this server records none, so it is refused
    // (fail closed).
    let pinned = server
        .manager
        .create(
            NewKey::new("pinned", ["reports:read"])
                .allowed_ips(AllowedIps::new(["192.0.2.0/24"]).unwrap()),
        )
        .await
        .unwrap()
        .key;
    let lacks_scope = server.key(&["reports:write"]).await;
    let used = server
        .get("/ping", &[("authorization", &auth(&limited))])
        .await;
    assert_eq!(used.status, 200, "the limited key's one request");

    // A store that is down, behind the same layer.
    let failing = Router::new()
        .route("/ping", get(|| async { "pong" }))
        .layer(ApiKeyV2Layer::new(FailingStore));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let failing_addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, failing).await.unwrap() });
    let any_key = PlaintextKey::generate(&KeyPrefix::default());

    let bad = "ApiKey-v2 mkc_0000000000000000_not-a-key";
    // (server, path, `Authorization`, HTTP status, gRPC status)
    type Case = (SocketAddr, &'static str, String, u16, &'static str);
    let cases: [Case; 8] = [
        (server.addr, "/ping", String::new(), 401, "16"),
        (server.addr, "/ping", bad.to_owned(), 401, "16"),
        (server.addr, "/ping", auth(&revoked), 401, "16"),
        (server.addr, "/reports", auth(&lacks_scope), 403, "7"),
        (server.addr, "/ping", auth(&pinned), 403, "7"),
        (server.addr, "/ping", auth(&limited), 429, "8"),
        (server.addr, "/misconfigured", String::new(), 401, "16"),
        (failing_addr, "/ping", auth(&any_key), 503, "14"),
    ];
    for (addr, path, authorization, status, grpc_status) in cases {
        let headers: &[(&str, &str)] = if authorization.is_empty() {
            &[]
        } else {
            &[("authorization", &authorization)]
        };
        for how in [
            Call::Http1,
            Call::Http2,
            Call::Http2With("application/grpc"),
        ] {
            let answer = call(addr, how, path, headers).await;
            if let Call::Http2With(_) = how {
                assert_eq!(answer.status, 200, "{path} {how:?}");
                assert_eq!(answer.headers["grpc-status"], grpc_status, "{path}");
            } else {
                assert_eq!(answer.status, status, "{path} {how:?}");
            }
            let cache_control: Vec<_> = answer.headers.get_all(CACHE_CONTROL).iter().collect();
            assert_eq!(cache_control, ["no-store"], "{status} at {path} {how:?}");
        }
    }
}
