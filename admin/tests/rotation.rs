//! Rotation that cannot grow power or life or cause an outage, and keys that rotate
//! themselves (DESIGN §11), over HTTP: the admin router and an API route behind a real
//! server on loopback, a real client, a manual clock and flushes driven by the test.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::net::SocketAddr;
use std::time::{Duration, UNIX_EPOCH};

use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
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
use tower_apikey::event::EventLog;
use tower_apikey::manager::Tenancy;
use tower_apikey::testing::ManualClock;
use tower_apikey::usage::{TracingUsageSink, UsageTracker};
use tower_apikey::{Actor, Clock, InMemoryKeyStore, KeyManager, NewKey, Scopes};
use tower_apikey_admin::AdminRouter;

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
    /// The tracker behind `GET /api/ping` (and the admin guard), if the server tracks
    /// usage; flushed by the tests, never by a loop.
    tracker: Option<UsageTracker>,
}

/// A key the application made: its plaintext and id.
struct Made {
    key: String,
    id: String,
}

impl Server {
    /// With usage tracking, as applications run (`KeyManager::layer`).
    async fn start() -> Self {
        Self::start_with(true, |admin| admin.into_router()).await
    }

    /// Without usage reaching the store (a usage sink other than the store).
    async fn start_untracked() -> Self {
        Self::start_with(false, |admin| admin.into_router()).await
    }

    async fn start_with(
        tracked: bool,
        router: impl FnOnce(AdminRouter<InMemoryKeyStore>) -> axum::Router,
    ) -> Self {
        let store = InMemoryKeyStore::new();
        let clock = ManualClock::new(UNIX_EPOCH + Duration::from_secs(START_SECS));
        let builder = KeyManager::builder(store.clone())
            .clock(clock.clone())
            .events(EventLog::new(store.clone()));
        let (app, tracker) = if tracked {
            let app = builder.build();
            let tracker = app.tracker().clone();
            (app, Some(tracker))
        } else {
            (builder.usage_sink(TracingUsageSink).build(), None)
        };
        let layer = app.layer();
        let api = axum::Router::new()
            .route("/api/ping", get(|| async { "pong" }))
            .route_layer(layer);
        let router = api.merge(router(AdminRouter::new(app.clone())));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        Self {
            addr,
            client: Client::builder(TokioExecutor::new()).build_http(),
            clock,
            app,
            store,
            tracker,
        }
    }

    /// Writes the uses recorded so far, as the tracker's loop would at the end of a
    /// flush period.
    async fn flush(&self) {
        self.tracker
            .as_ref()
            .expect("a tracked server")
            .flush()
            .await
            .unwrap();
    }

    async fn ping(&self, key: &str) -> StatusCode {
        self.send(Method::GET, "/api/ping", Some(key), "")
            .await
            .status
    }

    async fn record(&self, admin: &Made, id: &str) -> Value {
        let answer = self
            .send(Method::GET, &format!("/keys/{id}"), Some(&admin.key), "")
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        json_of(&answer)
    }

    /// Now on the server's clock, as RFC 3339 reads it.
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::from(self.clock.now())
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
    assert_eq!(revoked.status, StatusCode::OK);
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
    // By default the old key ends 300 s after the new key's first use.
    assert_eq!(record["predecessor_grace_secs"], 300, "{record}");
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
    // The successor may not rotate itself while the key it replaced still works: a
    // leaked copy could otherwise chain heirs, each outliving the revocation of the last.
    let chained = server.rotate_self(heir["key"].as_str().unwrap()).await;
    assert_eq!(chained.status, StatusCode::CONFLICT, "{}", chained.body);
    assert!(
        json_of(&chained)["detail"]
            .as_str()
            .unwrap()
            .contains(sync.id.as_str())
    );
    assert_eq!(server.store.len(), 2);
    // Once the application revokes the first successor, the old key may rotate again.
    server
        .app
        .revoke(&heir["id"].as_str().unwrap().parse().unwrap())
        .await
        .unwrap();
    let again = server
        .send(
            Method::POST,
            "/self/rotate",
            Some(&sync.key),
            r#"{"overlap_secs": 60}"#,
        )
        .await;
    assert_eq!(again.status, StatusCode::CREATED, "{}", again.body);
    // And once the old key has ended, its successor may rotate itself in turn. (Revoking
    // the old key while it still worked would have revoked the successor with it: it
    // is the old key's heir, DESIGN §10. Revoking it once it has ended spares it.)
    server.clock.advance(Duration::from_secs(61));
    let tidied = server.app.revoke(&sync.id.parse().unwrap()).await.unwrap();
    assert!(
        tidied.heirs.is_empty(),
        "an ended key takes no heir with it"
    );
    let heir = json_of(&again);
    let next = server.rotate_self(heir["key"].as_str().unwrap()).await;
    assert_eq!(next.status, StatusCode::CREATED, "{}", next.body);
    assert_eq!(json_of(&next)["rotated_from"], heir["id"]);
}

/// Stands in for the application's login: everyone is signed in as alice.
async fn signed_in_as_alice(mut request: Request, next: Next) -> Response {
    let alice = Actor::person(
        "alice@example.com",
        Scopes::new(["admin:keys"]).unwrap(),
        Tenancy::Operator,
    )
    .unwrap();
    request.extensions_mut().insert(alice);
    next.run(request).await
}

#[tokio::test]
async fn behind_a_login_self_rotation_still_authenticates_by_key() {
    let server = Server::start_with(true, |admin| {
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

/// `GET /keys/{id}/events`, newest first.
async fn events_of(server: &Server, admin: &Made, id: &str) -> Vec<Value> {
    let answer = server
        .send(
            Method::GET,
            &format!("/keys/{id}/events"),
            Some(&admin.key),
            "",
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    json_of(&answer).as_array().unwrap().clone()
}

#[tokio::test]
async fn until_first_use_keeps_the_old_key_until_a_grace_after_the_new_keys_first_use() {
    let server = Server::start().await;
    let admin = server
        .make("root", &["admin:keys", "reports:read"], 365 * 24 * HOUR)
        .await;
    let old = server
        .make("billing-sync", &["reports:read"], 24 * HOUR)
        .await;
    let path = format!("/keys/{}/rotate", old.id);
    let rotated = server
        .send(
            Method::POST,
            &path,
            Some(&admin.key),
            r#"{"until_first_use": true, "grace_secs": 120}"#,
        )
        .await;
    assert_eq!(rotated.status, StatusCode::CREATED, "{}", rotated.body);
    let new = json_of(&rotated);
    assert_eq!(new["predecessor_grace_secs"], 120, "{new}");
    let new_key = new["key"].as_str().unwrap();

    // Before the new key's first use the old key works, however long that takes.
    assert_eq!(server.ping(&old.key).await, StatusCode::OK);
    server.flush().await;
    server.clock.advance(3 * HOUR);
    assert_eq!(server.ping(&old.key).await, StatusCode::OK);
    server.flush().await;
    assert_eq!(server.record(&admin, &old.id).await["ends_at"], Value::Null);

    // The new key's first use is known when the tracker writes it.
    let first_use = server.now();
    assert_eq!(server.ping(new_key).await, StatusCode::OK);
    server.clock.advance(Duration::from_secs(30));
    assert_eq!(
        server.ping(&old.key).await,
        StatusCode::OK,
        "not written yet: the old key still works"
    );
    server.flush().await;
    let ended = server.record(&admin, &old.id).await;
    assert_eq!(
        at(&ended["ends_at"]),
        first_use + time::Duration::seconds(120),
        "the old key ends 120 s after the new key's first use: {ended}"
    );
    assert_eq!(ended["revoked_at"], Value::Null);

    // It works until the grace runs out, and not after.
    server.clock.advance(Duration::from_secs(89));
    assert_eq!(
        server.ping(&old.key).await,
        StatusCode::OK,
        "within the grace"
    );
    server.clock.advance(Duration::from_secs(1));
    let refused = server
        .send(Method::GET, "/api/ping", Some(&old.key), "")
        .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{}", refused.body);
    assert!(
        refused.body.contains("ended") || refused.body.contains("rotat"),
        "says the key was ended by rotation: {}",
        refused.body
    );
    assert_eq!(
        server.ping(new_key).await,
        StatusCode::OK,
        "the new key works"
    );

    // The old key's trail shows the rotation, then the end its successor's use set.
    let events = events_of(&server, &admin, &old.id).await;
    let rotated: Vec<&Value> = events.iter().filter(|e| e["type"] == "rotated").collect();
    assert_eq!(rotated.len(), 2, "{events:?}");
    assert_eq!(
        at(&rotated[0]["detail"]["ends_at"]),
        first_use + time::Duration::seconds(120),
        "the newer `rotated` event carries the end: {events:?}"
    );
    assert_eq!(rotated[0]["detail"]["related_key_id"], new["id"]);
    assert_eq!(rotated[1]["detail"]["ends_at"], Value::Null);
}

#[tokio::test]
async fn a_new_key_never_used_leaves_the_old_key_to_its_own_end() {
    let server = Server::start().await;
    let admin = server
        .make("root", &["admin:keys", "reports:read"], 365 * 24 * HOUR)
        .await;
    let old = server.make("nightly", &["reports:read"], 10 * HOUR).await;
    let rotated = server
        .send(
            Method::POST,
            &format!("/keys/{}/rotate", old.id),
            Some(&admin.key),
            r#"{"until_first_use": true}"#,
        )
        .await;
    assert_eq!(rotated.status, StatusCode::CREATED, "{}", rotated.body);
    assert_eq!(json_of(&rotated)["predecessor_grace_secs"], 300);
    for _ in 0..9 {
        server.clock.advance(HOUR);
        assert_eq!(server.ping(&old.key).await, StatusCode::OK);
        server.flush().await;
    }
    assert_eq!(server.record(&admin, &old.id).await["ends_at"], Value::Null);
    server.clock.advance(HOUR - Duration::from_secs(1));
    assert_eq!(
        server.ping(&old.key).await,
        StatusCode::OK,
        "until its expiry"
    );
    server.clock.advance(Duration::from_secs(1));
    let expired = server
        .send(Method::GET, "/api/ping", Some(&old.key), "")
        .await;
    assert_eq!(expired.status, StatusCode::UNAUTHORIZED);
    assert!(expired.body.contains("expired"), "{}", expired.body);
}

#[tokio::test]
async fn self_rotation_ends_the_old_key_300_s_after_the_new_keys_first_use_by_default() {
    let server = Server::start().await;
    let admin = server.make("root", &["admin:keys"], 365 * 24 * HOUR).await;
    let sync = server
        .make("sync", &["reports:read", "keys:rotate-self"], 24 * HOUR)
        .await;
    let rotated = server.rotate_self(&sync.key).await;
    assert_eq!(rotated.status, StatusCode::CREATED, "{}", rotated.body);
    let new = json_of(&rotated);
    assert_eq!(new["predecessor_grace_secs"], 300, "{new}");
    server.clock.advance(HOUR);
    assert_eq!(server.ping(&sync.key).await, StatusCode::OK);
    let first_use = server.now();
    assert_eq!(
        server.ping(new["key"].as_str().unwrap()).await,
        StatusCode::OK
    );
    server.flush().await;
    assert_eq!(
        at(&server.record(&admin, &sync.id).await["ends_at"]),
        first_use + time::Duration::seconds(300)
    );
    server.clock.advance(Duration::from_secs(299));
    assert_eq!(server.ping(&sync.key).await, StatusCode::OK);
    server.clock.advance(Duration::from_secs(1));
    assert_eq!(server.ping(&sync.key).await, StatusCode::UNAUTHORIZED);

    // Any other end can still be asked for.
    let other = server.make("other", &["keys:rotate-self"], 24 * HOUR).await;
    let plain = server
        .send(
            Method::POST,
            "/self/rotate",
            Some(&other.key),
            r#"{"overlap_secs": null}"#,
        )
        .await;
    assert_eq!(plain.status, StatusCode::CREATED, "{}", plain.body);
    assert!(
        json_of(&plain).get("predecessor_grace_secs").is_none(),
        "a plain rotation: {}",
        plain.body
    );
}

#[tokio::test]
async fn until_first_use_without_a_usage_tracker_is_409() {
    let server = Server::start_untracked().await;
    let admin = server
        .make("root", &["admin:keys", "reports:read"], 365 * 24 * HOUR)
        .await;
    let old = server
        .make("sync", &["reports:read", "keys:rotate-self"], 24 * HOUR)
        .await;
    let refused = server
        .send(
            Method::POST,
            &format!("/keys/{}/rotate", old.id),
            Some(&admin.key),
            r#"{"until_first_use": true}"#,
        )
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.body);
    assert_eq!(refused.headers[CONTENT_TYPE], "application/problem+json");
    let detail = json_of(&refused)["detail"].as_str().unwrap().to_owned();
    assert!(
        detail.contains("UsageTracker") && detail.contains("overlap_secs"),
        "says what to attach, or what to send instead: {detail}"
    );
    // Self-rotation's default needs the tracker too; a plain rotation does not.
    let default = server.rotate_self(&old.key).await;
    assert_eq!(default.status, StatusCode::CONFLICT, "{}", default.body);
    assert_eq!(server.store.len(), 2, "nothing stored");
    let plain = server
        .send(
            Method::POST,
            "/self/rotate",
            Some(&old.key),
            r#"{"overlap_secs": null}"#,
        )
        .await;
    assert_eq!(plain.status, StatusCode::CREATED, "{}", plain.body);
}

#[tokio::test]
async fn until_first_use_bodies_are_checked_field_by_field() {
    let server = Server::start().await;
    let admin = server
        .make("root", &["admin:keys", "reports:read"], 365 * 24 * HOUR)
        .await;
    let old = server.make("sync", &["reports:read"], 24 * HOUR).await;
    let path = format!("/keys/{}/rotate", old.id);
    for (body, field) in [
        (
            r#"{"until_first_use": true, "grace_secs": 604801}"#,
            "grace_secs",
        ),
        (
            r#"{"until_first_use": true, "grace_secs": -1}"#,
            "grace_secs",
        ),
        (
            r#"{"until_first_use": true, "grace_secs": "300"}"#,
            "grace_secs",
        ),
        (r#"{"grace_secs": 300}"#, "grace_secs"),
        (r#"{"until_first_use": "yes"}"#, "until_first_use"),
        (
            r#"{"until_first_use": true, "overlap_secs": 60}"#,
            "until_first_use",
        ),
    ] {
        let answer = server
            .send(Method::POST, &path, Some(&admin.key), body)
            .await;
        assert_eq!(
            answer.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {}",
            answer.body
        );
        assert_eq!(json_of(&answer)["field"], field, "{body}: {}", answer.body);
    }
    assert_eq!(server.store.len(), 2, "nothing stored");
    // Seven days exactly is allowed.
    let longest = server
        .send(
            Method::POST,
            &path,
            Some(&admin.key),
            r#"{"until_first_use": true, "grace_secs": 604800}"#,
        )
        .await;
    assert_eq!(longest.status, StatusCode::CREATED, "{}", longest.body);
}
