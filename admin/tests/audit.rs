//! The audit trail over HTTP: the admin router behind a real server on loopback, with
//! an event log and a usage tracker, called by a real client. `GET /events` and
//! `GET /keys/{id}/events` page newest first through `Link`; each event type appears
//! once, when it should.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::net::SocketAddr;
use std::time::{Duration, UNIX_EPOCH};

use common::Answer;
use http::header::{AUTHORIZATION, CONTENT_TYPE, LINK};
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use tower_apikey::event::EventLog;
use tower_apikey::testing::ManualClock;
use tower_apikey::usage::UsageTracker;
use tower_apikey::{InMemoryKeyStore, KeyManager, NewKey};
use tower_apikey_admin::AdminRouter;

/// 2026-05-01T12:00:00Z.
const START_SECS: u64 = 1_777_636_800;

struct Server {
    addr: SocketAddr,
    client: Client<HttpConnector, Full<Bytes>>,
    clock: ManualClock,
    tracker: UsageTracker,
    admin_key: String,
}

impl Server {
    async fn start() -> Self {
        let store = InMemoryKeyStore::new();
        let clock = ManualClock::new(UNIX_EPOCH + Duration::from_secs(START_SECS));
        let events = EventLog::new(store.clone());
        let manager = KeyManager::builder(store.clone())
            .clock(clock.clone())
            .events(events.clone())
            .build();
        let tracker = manager.tracker().clone();
        let admin = manager
            .create(NewKey::new("root", ["admin:keys", "reports:read"]))
            .await
            .unwrap();
        let router = AdminRouter::new(manager).into_router();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        Self {
            addr,
            client: Client::builder(TokioExecutor::new()).build_http(),
            clock,
            tracker,
            admin_key: admin.key.expose_secret().to_owned(),
        }
    }

    async fn call(&self, method: Method, path: &str, key: &str, body: Option<&str>) -> Answer {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr))
            .header(AUTHORIZATION, format!("ApiKey-v2 {key}"));
        if body.is_some() {
            request = request.header(CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(Full::new(Bytes::from(body.unwrap_or("").to_owned())))
            .unwrap();
        Answer::read(self.client.request(request).await.unwrap()).await
    }

    async fn json(&self, method: Method, path: &str, body: Option<&str>) -> (Answer, Value) {
        let answer = self.call(method, path, &self.admin_key, body).await;
        let json = serde_json::from_str(&answer.body).unwrap_or(Value::Null);
        (answer, json)
    }

    /// Every event a list route answers, following `Link` from `path`.
    async fn all_events(&self, path: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let base = path.split('?').next().unwrap().to_owned();
        let mut next = Some(path.to_owned());
        while let Some(path) = next.take() {
            let (answer, json) = self.json(Method::GET, &path, None).await;
            assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
            out.extend(json.as_array().unwrap().iter().cloned());
            if let Some(link) = answer.headers.get(LINK) {
                let link = link.to_str().unwrap();
                let query = link
                    .strip_prefix('<')
                    .and_then(|l| l.split_once('>'))
                    .unwrap()
                    .0;
                next = Some(format!("{base}{query}"));
            }
        }
        out
    }
}

fn types(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn each_event_appears_once_when_it_should_and_lists_page_through_link() {
    let server = Server::start().await;
    let (created, made) = server
        .json(
            Method::POST,
            "/keys",
            Some(r#"{"name":"billing","scopes":["reports:read"]}"#),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = made["id"].as_str().unwrap().to_owned();
    let key = made["key"].as_str().unwrap().to_owned();

    // Uses of the key: one `first_used` after the flush, however many requests.
    for _ in 0..3 {
        let answer = server.call(Method::GET, "/scopes", &key, None).await;
        assert_eq!(
            answer.status,
            StatusCode::FORBIDDEN,
            "proven, but not admin"
        );
    }
    server.tracker.flush().await.unwrap();
    server.call(Method::GET, "/scopes", &key, None).await;
    server.tracker.flush().await.unwrap();

    server.clock.advance(Duration::from_secs(60));
    let (rotated, heir) = server
        .json(
            Method::POST,
            &format!("/keys/{id}/rotate"),
            Some(r#"{"overlap_secs":0}"#),
        )
        .await;
    assert_eq!(rotated.status, StatusCode::CREATED, "{}", rotated.body);
    let heir_id = heir["id"].as_str().unwrap().to_owned();
    // The revoked key still proves its secret: an `ended_key_used`, once per flush.
    for _ in 0..4 {
        let answer = server.call(Method::GET, "/scopes", &key, None).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    }
    server.tracker.flush().await.unwrap();
    server.tracker.flush().await.unwrap();

    let of_key = server
        .all_events(&format!("/keys/{id}/events?limit=2"))
        .await;
    assert_eq!(
        types(&of_key),
        [
            "ended_key_used",
            "revoked",
            "rotated",
            "first_used",
            "created"
        ],
        "{of_key:#?}"
    );
    assert!(of_key.iter().all(|e| e["key_id"] == id.as_str()));
    let ended = &of_key[0];
    assert_eq!(ended["detail"]["attempts"], 4);
    assert_eq!(ended["actor"], Value::Null);
    assert_eq!(of_key[2]["detail"]["related_key_id"], heir_id.as_str());
    let admin_id = &server.admin_key[4..20];
    assert_eq!(of_key[2]["actor"], admin_id, "the admin key acted");
    let ids: Vec<u64> = of_key
        .iter()
        .map(|e| e["id"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");

    // Organisation-wide: the admin key's created and first_used, and the heir's created.
    let all = server.all_events("/events?limit=3").await;
    assert_eq!(all.len(), of_key.len() + 3, "{all:#?}");
    let filtered = server
        .all_events(&format!("/events?key_id={heir_id}"))
        .await;
    assert_eq!(types(&filtered), ["created"]);
    assert_eq!(filtered[0]["detail"]["related_key_id"], id.as_str());

    // Four proven uses while active; the attempts after revocation are not uses.
    let (answer, usage) = server
        .json(Method::GET, &format!("/keys/{id}/usage?days=3"), None)
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(
        usage,
        serde_json::json!({"days": [
            {"date": "2026-04-29", "requests": 0},
            {"date": "2026-04-30", "requests": 0},
            {"date": "2026-05-01", "requests": 4},
        ]})
    );
    let (_, default) = server
        .json(Method::GET, &format!("/keys/{id}/usage"), None)
        .await;
    assert_eq!(default["days"].as_array().unwrap().len(), 30);
}

#[tokio::test]
async fn bad_event_queries_are_422_and_unknown_keys_404() {
    let server = Server::start().await;
    for path in [
        "/events?limit=0",
        "/events?cursor=abc",
        "/events?key_id=nope",
        "/events?kind=created",
        "/keys/0000000000000000/events?key_id=x",
        "/keys/0000000000000000/usage?days=0",
        "/keys/0000000000000000/usage?days=91",
        "/keys/0000000000000000/usage?days=x",
    ] {
        let (answer, json) = server.json(Method::GET, path, None).await;
        assert_eq!(
            answer.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{path}: {json}"
        );
    }
    let (answer, _) = server
        .json(Method::GET, "/keys/0000000000000000/events", None)
        .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_patch_is_a_changed_event_with_its_actor_and_an_empty_patch_is_none() {
    let server = Server::start().await;
    let (_, made) = server
        .json(
            Method::POST,
            "/keys",
            Some(r#"{"name":"metered","scopes":["reports:read"]}"#),
        )
        .await;
    let id = made["id"].as_str().unwrap().to_owned();
    let (patched, _) = server
        .json(
            Method::PATCH,
            &format!("/keys/{id}"),
            Some(r#"{"rate_limit":{"requests":100,"per_secs":60}}"#),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    // A patch that names nothing changes nothing, and is no event.
    let (empty, _) = server
        .json(Method::PATCH, &format!("/keys/{id}"), Some("{}"))
        .await;
    assert_eq!(empty.status, StatusCode::OK, "{}", empty.body);
    let events = server.all_events(&format!("/keys/{id}/events")).await;
    assert_eq!(types(&events), ["changed", "created"]);
    let (_, admin) = server.json(Method::GET, "/keys?q=root", None).await;
    assert_eq!(events[0]["actor"], admin[0]["id"], "who lifted the limit");
}
