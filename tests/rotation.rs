//! Rotation that cannot grow power or life, and keys that rotate themselves (DESIGN §11),
//! over HTTP: the admin router behind a real server on loopback, a real client, and a
//! manual clock.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, UNIX_EPOCH};

use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::Response;
use common::Answer;
use http::header::{CONTENT_TYPE, LOCATION};
use http::{Method, StatusCode};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tower_apikey::admin::AdminRouter;
use tower_apikey::{Actor, InMemoryKeyStore, KeyManager, ManualClock, NewKey, Scopes};

/// 2026-05-01T12:00:00Z.
const START_SECS: u64 = 1_777_636_800;
const HOUR: Duration = Duration::from_secs(3_600);

struct Server {
    addr: SocketAddr,
    client: Client<HttpConnector, Full<Bytes>>,
    clock: ManualClock,
    /// The application's own manager, acting unrestricted.
    app: KeyManager<InMemoryKeyStore>,
    store: InMemoryKeyStore,
}

/// A key the application made: its plaintext and id.
struct Made {
    key: String,
    id: String,
}

impl Server {
    async fn start() -> Self {
        Self::start_with(|admin| admin.into_router()).await
    }

    async fn start_with(
        router: impl FnOnce(AdminRouter<InMemoryKeyStore>) -> axum::Router,
    ) -> Self {
        let store = InMemoryKeyStore::new();
        let clock = ManualClock::new(UNIX_EPOCH + Duration::from_secs(START_SECS));
        let app = KeyManager::new(store.clone()).with_clock(clock.clone());
        let router = router(AdminRouter::new(app.clone()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        Self {
            addr,
            client: Client::builder(TokioExecutor::new()).build_http(),
            clock,
            app,
            store,
        }
    }

    async fn make(&self, name: &str, scopes: &[&str], lifetime: Duration) -> Made {
        let created = self
            .app
            .create(NewKey::new(name, scopes.iter().copied()).lifetime(lifetime))
            .await
            .unwrap();
        Made {
            key: created.key.expose_secret().to_owned(),
            id: created.record.id().to_string(),
        }
    }

    async fn send(&self, method: Method, path: &str, key: Option<&str>, body: &str) -> Answer {
        let mut request = http::Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr));
        if let Some(key) = key {
            request = request.header("authorization", format!("ApiKey-v2 {key}"));
        }
        if !body.is_empty() {
            request = request.header(CONTENT_TYPE, "application/json");
        }
        let body = Full::new(Bytes::from(body.to_owned()));
        let response = self
            .client
            .request(request.body(body).unwrap())
            .await
            .unwrap();
        Answer::read(response).await
    }

    async fn rotate_self(&self, key: &str) -> Answer {
        self.send(Method::POST, "/self/rotate", Some(key), "").await
    }
}

fn json_of(answer: &Answer) -> Value {
    serde_json::from_str(&answer.body).unwrap_or_else(|e| panic!("{e}: {}", answer.body))
}

fn at(text: &Value) -> OffsetDateTime {
    OffsetDateTime::parse(text.as_str().unwrap(), &Rfc3339).unwrap()
}

/// How long a record's key was made to live.
fn lifetime(record: &Value) -> time::Duration {
    at(&record["expires_at"]) - at(&record["created_at"])
}

#[tokio::test]
async fn a_rotated_key_lives_as_long_as_the_old_one_was_made_to_and_rotates_once() {
    let server = Server::start().await;
    let admin = server
        .make("root", &["admin:keys", "reports:read"], 365 * 24 * HOUR)
        .await;
    let hourly = server.make("hourly", &["reports:read"], HOUR).await;
    server.clock.advance(HOUR / 4);
    let path = format!("/keys/{}/rotate", hourly.id);
    let heir = server.send(Method::POST, &path, Some(&admin.key), "").await;
    assert_eq!(heir.status, StatusCode::CREATED, "{}", heir.body);
    let heir = json_of(&heir);
    assert_eq!(
        lifetime(&heir),
        time::Duration::HOUR,
        "a one-hour key rotates into a one-hour key: {heir}"
    );

    let before = server.store.len();
    for body in ["", r#"{"overlap_secs": 0}"#, r#"{"overlap_secs": 60}"#] {
        let again = server
            .send(Method::POST, &path, Some(&admin.key), body)
            .await;
        assert_eq!(again.status, StatusCode::CONFLICT, "{body}: {}", again.body);
        assert_eq!(again.headers[CONTENT_TYPE], "application/problem+json");
        let detail = json_of(&again)["detail"].as_str().unwrap().to_owned();
        assert!(
            detail.contains(heir["id"].as_str().unwrap()) && detail.contains("revoke"),
            "names the live successor and what to do: {detail}"
        );
    }
    assert_eq!(
        server.store.len(),
        before,
        "a refused rotation stores nothing"
    );
    let old = server
        .send(
            Method::GET,
            &format!("/keys/{}", hourly.id),
            Some(&admin.key),
            "",
        )
        .await;
    assert_eq!(json_of(&old)["revoked_at"], Value::Null, "and ends nothing");

    // Revoking the successor (its plaintext was lost) frees the old key to rotate again.
    let heir_path = format!("/keys/{}", heir["id"].as_str().unwrap());
    let revoked = server
        .send(Method::DELETE, &heir_path, Some(&admin.key), "")
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);
    let third = server.send(Method::POST, &path, Some(&admin.key), "").await;
    assert_eq!(third.status, StatusCode::CREATED, "{}", third.body);
}

#[tokio::test]
async fn self_rotation_needs_keys_rotate_self_and_admin_keys_is_not_enough() {
    let server = Server::start().await;
    let admin = server.make("root", &["admin:keys"], 24 * HOUR).await;
    let refused = server.rotate_self(&admin.key).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    let challenge = refused.headers["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.contains(r#"error="insufficient_scope""#)
            && challenge.contains("keys:rotate-self"),
        "{challenge}"
    );
    let none = server.send(Method::POST, "/self/rotate", None, "").await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    assert_eq!(server.store.len(), 1, "nothing rotated");

    let sync = server
        .make(
            "billing-sync",
            &["reports:read", "keys:rotate-self"],
            10 * HOUR,
        )
        .await;
    server.clock.advance(HOUR);
    let rotated = server.rotate_self(&sync.key).await;
    assert_eq!(rotated.status, StatusCode::CREATED, "{}", rotated.body);
    assert_eq!(rotated.headers["cache-control"], "no-store");
    let record = json_of(&rotated);
    assert_eq!(record["rotated_from"], sync.id.as_str());
    assert_eq!(record["name"], "billing-sync");
    assert_eq!(
        record["scopes"],
        json!(["keys:rotate-self", "reports:read"])
    );
    assert_eq!(
        record["created_by"],
        sync.id.as_str(),
        "the key that rotated itself is the actor"
    );
    assert_eq!(lifetime(&record), time::Duration::hours(10));
    assert_eq!(
        rotated.headers[LOCATION],
        format!("../keys/{}", record["id"].as_str().unwrap())
    );
    // The new key works, and so does the old one: a plain rotation keeps it.
    let new_key = record["key"].as_str().unwrap();
    let own = server.send(Method::GET, "/scopes", Some(new_key), "").await;
    assert_eq!(own.status, StatusCode::FORBIDDEN, "not an admin key");
    let old = server.app.get(&sync.id.parse().unwrap()).await.unwrap();
    assert!(old.revoked_at().is_none() && old.ends_at().is_none());
}

#[tokio::test]
async fn a_key_rotates_only_itself() {
    let server = Server::start().await;
    let sync = server
        .make("sync", &["reports:read", "keys:rotate-self"], 24 * HOUR)
        .await;
    let other = server
        .make("other", &["reports:read", "keys:rotate-self"], 24 * HOUR)
        .await;
    // Another key's rotation route needs admin:keys.
    let path = format!("/keys/{}/rotate", other.id);
    let refused = server.send(Method::POST, &path, Some(&sync.key), "").await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    // The self route names no key: an id after it is no route.
    let named = server
        .send(
            Method::POST,
            &format!("/self/rotate/{}", other.id),
            Some(&sync.key),
            "",
        )
        .await;
    assert_eq!(named.status, StatusCode::NOT_FOUND, "{}", named.body);
    assert_eq!(server.store.len(), 2, "nothing rotated");

    let rotated = json_of(&server.rotate_self(&sync.key).await);
    assert_eq!(rotated["rotated_from"], sync.id.as_str());
    let keys = server.app.list().await.unwrap();
    assert_eq!(keys.len(), 3);
    assert!(
        keys.iter()
            .all(|r| r.rotated_from().is_none_or(|from| from.as_str() == sync.id)),
        "only the calling key was rotated"
    );
}

#[tokio::test]
async fn a_second_self_rotation_is_409_while_the_first_successor_lives() {
    let server = Server::start().await;
    let sync = server.make("sync", &["keys:rotate-self"], 24 * HOUR).await;
    let first = server.rotate_self(&sync.key).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    let heir = json_of(&first);
    // A leaked copy of the old key cannot mint a second heir.
    let second = server.rotate_self(&sync.key).await;
    assert_eq!(second.status, StatusCode::CONFLICT, "{}", second.body);
    assert!(
        json_of(&second)["detail"]
            .as_str()
            .unwrap()
            .contains(heir["id"].as_str().unwrap())
    );
    assert_eq!(server.store.len(), 2);
    // The successor may rotate itself in turn.
    let next = server.rotate_self(heir["key"].as_str().unwrap()).await;
    assert_eq!(next.status, StatusCode::CREATED, "{}", next.body);
    assert_eq!(json_of(&next)["rotated_from"], heir["id"]);
    // Once the application revokes the first successor, the old key may rotate again.
    server
        .app
        .revoke(&heir["id"].as_str().unwrap().parse().unwrap())
        .await
        .unwrap();
    let again = server.rotate_self(&sync.key).await;
    assert_eq!(again.status, StatusCode::CREATED, "{}", again.body);
}

/// Stands in for the application's login: everyone is signed in as alice.
async fn signed_in_as_alice(mut request: Request, next: Next) -> Response {
    let alice = Actor::person("alice@example.com", Scopes::new(["admin:keys"]).unwrap()).unwrap();
    request.extensions_mut().insert(alice);
    next.run(request).await
}

#[tokio::test]
async fn behind_a_login_self_rotation_still_authenticates_by_key() {
    let server = Server::start_with(|admin| {
        admin
            .behind_login()
            .into_router()
            .layer(middleware::from_fn(signed_in_as_alice))
    })
    .await;
    let sync = server.make("sync", &["keys:rotate-self"], 24 * HOUR).await;
    let anonymous = server.send(Method::POST, "/self/rotate", None, "").await;
    assert_eq!(
        anonymous.status,
        StatusCode::UNAUTHORIZED,
        "a session is not a key: {}",
        anonymous.body
    );
    let rotated = server.rotate_self(&sync.key).await;
    assert_eq!(rotated.status, StatusCode::CREATED, "{}", rotated.body);
    assert_eq!(
        json_of(&rotated)["created_by"],
        sync.id.as_str(),
        "the key acts, not the signed-in person"
    );
    // The rest of the router still follows the login.
    let listed = server.send(Method::GET, "/keys", None, "").await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
}
