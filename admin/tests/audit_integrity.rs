//! No change without its event (DESIGN §10, red-team finding M3), and no heir outliving
//! the key it was minted from (§10 "Heirs", M4): the admin router behind a real server
//! on loopback, over the in-memory store and over a real PostgreSQL (feature
//! `postgres`; needs `APIKEY_TEST_DATABASE_URL`, see postgres/tests/postgres.rs).
//!
//! - M3: an HTTP/2 client that gives up on each request after a short delay (the
//!   stream is reset and the server drops the handler) leaves every change it did make
//!   with its event: creations, renames, rotations and revocations. A store that cannot
//!   keep the events refuses the change (503), and nothing is changed.
//! - M4: revoking a leaked key revokes what a thief minted from it by rotating it, and
//!   what that minted in turn, and says so; revoking an integration's old key after it
//!   has ended spares the new one.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::Answer;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use tower_apikey::event::{EventLog, EventQuery, EventStore, EventType, KeyEvent};
use tower_apikey::testing::ManualClock;
use tower_apikey::usage::TracingUsageSink;
use tower_apikey::{KeyId, KeyManager, KeyRecord, NewKey};
use tower_apikey_admin::AdminRouter;

/// Requests each cancelled client sends.
const TRIES: u64 = 60;

/// The admin router over `store`, with an event log in the same store, on the manual
/// clock, behind a real server on loopback.
struct Server<S> {
    addr: SocketAddr,
    manager: KeyManager<S>,
    events: EventLog,
    clock: ManualClock,
    admin: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl<S: tower_apikey::store::KeyStoreUpdate + EventStore + Clone> Server<S> {
    async fn start(store: S) -> Self {
        let clock = ManualClock::starting_now();
        let events = EventLog::new(store.clone());
        // As before 0.2, no usage reaches the store (these stores need not keep it).
        let manager = KeyManager::builder(store)
            .usage_sink(TracingUsageSink)
            .clock(clock.clone())
            .events(events.clone())
            .build();
        let admin = manager
            .create(NewKey::new(
                "root",
                ["admin:keys", "reports:read", "keys:rotate-self"],
            ))
            .await
            .unwrap();
        let router = AdminRouter::new(manager.clone()).into_router();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        Self {
            addr,
            manager,
            events,
            clock,
            admin: admin.key.expose_secret().to_owned(),
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    fn request(
        &self,
        method: Method,
        path: &str,
        key: &str,
        body: Option<Value>,
    ) -> Request<Full<Bytes>> {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr))
            .header(AUTHORIZATION, format!("ApiKey-v2 {key}"));
        if body.is_some() {
            request = request.header(CONTENT_TYPE, "application/json");
        }
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        request.body(Full::new(Bytes::from(body))).unwrap()
    }

    /// One request over HTTP/1.1, read to the end.
    async fn send(&self, method: Method, path: &str, key: &str, body: Option<Value>) -> Answer {
        let request = self.request(method, path, key, body);
        Answer::read(self.client.request(request).await.unwrap()).await
    }

    async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> (Answer, Value) {
        let answer = self.send(method, path, &self.admin, body).await;
        let json = serde_json::from_str(&answer.body).unwrap_or(Value::Null);
        (answer, json)
    }

    /// Sends each request over HTTP/2 and gives up on it after a delay between none and
    /// twice the time such a request takes here (different for each, without
    /// randomness, so that a run can be repeated): the stream is reset, and the server
    /// drops the handler wherever it was, as the red team's
    /// `curl --http2-prior-knowledge -m` did. The first few requests are sent to the
    /// end, to learn that time on whatever machine runs this (not an assertion on time).
    ///
    /// A connection of its own for each request, as each `curl` had: a server may close
    /// a connection whose client resets many streams (hyper's guard against rapid
    /// resets), and the requests after that would never arrive. And before each, one
    /// request sent to the end: a database connection dropped in the middle of a query
    /// is closed, and without this the next request would wait for a new one and be
    /// given up on before it reached the store.
    async fn send_and_give_up(&self, requests: Vec<Request<Full<Bytes>>>) {
        const LEARN: usize = 5;
        let mut took = Vec::new();
        for (i, request) in requests.into_iter().enumerate() {
            let (warm, _) = self.admin(Method::GET, "/keys?limit=1", None).await;
            assert_eq!(warm.status, StatusCode::OK, "{}", warm.body);
            let mut sender = self.http2().await;
            sender.ready().await.unwrap();
            if i < LEARN {
                let start = std::time::Instant::now();
                let answer = sender.send_request(request).await.unwrap();
                assert!(answer.status().is_success(), "{}", answer.status());
                took.push(start.elapsed());
                continue;
            }
            took.sort();
            let typical = took[LEARN / 2];
            let delay = typical * 2 * ((i as u32 * 397) % 1_000) / 1_000;
            let _ = tokio::time::timeout(delay, sender.send_request(request)).await;
        }
    }

    async fn http2(&self) -> hyper::client::conn::http2::SendRequest<Full<Bytes>> {
        let stream = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        // Each request goes out at once, not after a delayed acknowledgement.
        stream.set_nodelay(true).unwrap();
        let (sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await
                .unwrap();
        tokio::spawn(connection);
        sender
    }

    /// Every stored event of `id`, newest first.
    async fn events_of(&self, id: &KeyId) -> Vec<KeyEvent> {
        let mut out = Vec::new();
        let mut query = EventQuery::new().key(*id);
        loop {
            let page = self.events.events(&query).await.unwrap();
            out.extend(page.items);
            match page.next {
                Some(next) => query = query.after(&next).unwrap(),
                None => return out,
            }
        }
    }

    fn has(events: &[KeyEvent], kind: EventType) -> bool {
        events.iter().any(|e| e.kind() == kind)
    }

    /// Reads `id`'s record, then its events, then the record again: a change seen in
    /// the first read must have its event (stored with it, so visible to the later
    /// read), and an event must have its change (visible to the read after it).
    /// Returns whether the change was made.
    async fn check(&self, id: &KeyId, kind: EventType, made: impl Fn(&KeyRecord) -> bool) -> bool {
        let before = made(&self.manager.get(id).await.unwrap());
        let events = self.events_of(id).await;
        let after = made(&self.manager.get(id).await.unwrap());
        assert!(
            !before || Self::has(&events, kind),
            "key {id} shows the change, but has no {kind} event: {events:?}"
        );
        assert!(
            !Self::has(&events, kind) || after,
            "key {id} has a {kind} event, but not the change"
        );
        after
    }

    /// M3 (a): renames, revocations, creations and rotations, each given up on by its
    /// client at some point: afterwards, every change that was made has its event.
    async fn cancelled_changes_keep_their_events(&self) {
        let mut renamed = Vec::new();
        let mut revoked = Vec::new();
        let mut rotated = Vec::new();
        for i in 0..TRIES {
            for list in [&mut renamed, &mut revoked, &mut rotated] {
                let made = self
                    .manager
                    .create(NewKey::new(format!("victim-{i}"), ["reports:read"]))
                    .await
                    .unwrap();
                list.push(*made.record.id());
            }
        }
        let admin = self.admin.clone();
        let requests = |method: Method, ids: &[KeyId], path: &str, body: Option<Value>| {
            ids.iter()
                .map(|id| {
                    self.request(
                        method.clone(),
                        &path.replace("{id}", id.as_str()),
                        &admin,
                        body.clone(),
                    )
                })
                .collect::<Vec<_>>()
        };
        self.send_and_give_up(requests(
            Method::PATCH,
            &renamed,
            "/keys/{id}",
            Some(json!({"name": "renamed"})),
        ))
        .await;
        self.send_and_give_up(requests(Method::DELETE, &revoked, "/keys/{id}", None))
            .await;
        self.send_and_give_up(requests(
            Method::POST,
            &rotated,
            "/keys/{id}/rotate",
            Some(json!({"overlap_secs": 0})),
        ))
        .await;
        let created: Vec<_> = (0..TRIES)
            .map(|i| {
                self.request(
                    Method::POST,
                    "/keys",
                    &admin,
                    Some(json!({"name": format!("created-{i}"), "scopes": []})),
                )
            })
            .collect();
        self.send_and_give_up(created).await;

        let mut made = [0; 4];
        for id in &renamed {
            let was_renamed = |r: &KeyRecord| r.name().as_str() == "renamed";
            made[0] += usize::from(self.check(id, EventType::Changed, was_renamed).await);
        }
        for id in &revoked {
            let was_revoked = |r: &KeyRecord| r.revoked_at().is_some();
            made[1] += usize::from(self.check(id, EventType::Revoked, was_revoked).await);
        }
        // A rotation with no overlap revokes the old key in the same step as it
        // creates the successor: the old key's `rotated` and `revoked` events, and the
        // successor's `created`, go with it.
        for id in &rotated {
            let was_rotated = |r: &KeyRecord| r.revoked_at().is_some();
            if self.check(id, EventType::Rotated, was_rotated).await {
                made[2] += 1;
                let events = self.events_of(id).await;
                assert!(Self::has(&events, EventType::Revoked), "{id}: {events:?}");
                let successor = events
                    .iter()
                    .find(|e| e.kind() == EventType::Rotated)
                    .and_then(|e| e.detail().related_key_id)
                    .unwrap();
                let events = self.events_of(&successor).await;
                assert!(
                    Self::has(&events, EventType::Created),
                    "{successor}: {events:?}"
                );
            }
        }
        for record in self.manager.list().await.unwrap() {
            if record.name().as_str().starts_with("created-") {
                made[3] += 1;
                let events = self.events_of(record.id()).await;
                assert!(
                    Self::has(&events, EventType::Created),
                    "key {} was created without its event",
                    record.id()
                );
            }
        }
        // How far the clients got before giving up: shown, not asserted, as it
        // depends on the machine's speed.
        eprintln!(
            "of {TRIES} each, given up on at 0-2x their usual time: {} renames, {} revocations, {} \
             rotations, {} creations made, each with its event",
            made[0], made[1], made[2], made[3]
        );
    }

    /// M4: a thief with a copy of a self-rotating key rotates it first; the owner
    /// revokes the leaked key; the thief's key, and the key that key minted, go with it.
    async fn a_thiefs_heirs_die_with_the_leaked_key(&self) {
        let (answer, a) = self
            .admin(
                Method::POST,
                "/keys",
                Some(
                    json!({"name": "billing-sync", "scopes": ["reports:read", "keys:rotate-self"]}),
                ),
            )
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
        let (a_id, a_key) = (a["id"].as_str().unwrap(), a["key"].as_str().unwrap());
        // The thief, with a copy: keeps the leaked key working so as not to be noticed.
        let stolen = self
            .send(
                Method::POST,
                "/self/rotate",
                a_key,
                Some(json!({"overlap_secs": null})),
            )
            .await;
        assert_eq!(stolen.status, StatusCode::CREATED, "{}", stolen.body);
        let b: Value = serde_json::from_str(&stolen.body).unwrap();
        let (b_id, b_key) = (b["id"].as_str().unwrap(), b["key"].as_str().unwrap());

        // The owner sees what revoking takes with it, then revokes.
        let (answer, heirs) = self
            .admin(Method::GET, &format!("/keys/{a_id}/heirs"), None)
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        assert_eq!(ids(&heirs), [b_id]);
        let (answer, revoked) = self
            .admin(Method::DELETE, &format!("/keys/{a_id}"), None)
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        assert_eq!(answer.headers[CONTENT_TYPE], "application/json");
        assert_eq!(revoked["record"]["id"], a_id);
        assert_eq!(ids(&revoked["heirs"]), [b_id], "the answer names the heir");
        assert!(revoked["heirs"][0]["revoked_at"].is_string());
        for key in [a_key, b_key] {
            // The key is refused (401), not merely unable to rotate (409).
            let answer = self
                .send(
                    Method::POST,
                    "/self/rotate",
                    key,
                    Some(json!({"overlap_secs": 0})),
                )
                .await;
            assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.body);
        }
        let b_id: KeyId = b_id.parse().unwrap();
        let a_id: KeyId = a_id.parse().unwrap();
        let event = self
            .events_of(&b_id)
            .await
            .into_iter()
            .find(|e| e.kind() == EventType::Revoked)
            .expect("the heir's revoked event");
        assert_eq!(
            event.detail().related_key_id,
            Some(a_id),
            "it names the key whose revocation revoked it"
        );
        assert_eq!(
            event.actor().map(|a| a.as_str()),
            Some(self.admin.split('_').nth(1).unwrap()),
            "and who revoked it"
        );

        // Deeper: a leaked admin key mints an heir by rotating itself, and that heir
        // mints its own; both go with the leaked key.
        let (_, leaked) = self
            .admin(
                Method::POST,
                "/keys",
                Some(json!({"name": "ops", "scopes": ["admin:keys", "reports:read"]})),
            )
            .await;
        let (l_id, l_key) = (
            leaked["id"].as_str().unwrap(),
            leaked["key"].as_str().unwrap(),
        );
        let rotate = |id: &str, key: &str| {
            let path = format!("/keys/{id}/rotate");
            let key = key.to_owned();
            async move {
                let answer = self.send(Method::POST, &path, &key, None).await;
                assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
                serde_json::from_str::<Value>(&answer.body).unwrap()
            }
        };
        let m = rotate(l_id, l_key).await;
        self.clock.advance(Duration::from_secs(1));
        let n = rotate(m["id"].as_str().unwrap(), m["key"].as_str().unwrap()).await;
        let expected = [m["id"].as_str().unwrap(), n["id"].as_str().unwrap()];
        let (_, heirs) = self
            .admin(Method::GET, &format!("/keys/{l_id}/heirs"), None)
            .await;
        assert_eq!(ids(&heirs), expected, "oldest first");
        let (answer, revoked) = self
            .admin(Method::DELETE, &format!("/keys/{l_id}"), None)
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        assert_eq!(ids(&revoked["heirs"]), expected);
        for key in [
            l_key,
            m["key"].as_str().unwrap(),
            n["key"].as_str().unwrap(),
        ] {
            let answer = self.send(Method::GET, "/scopes", key, None).await;
            assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.body);
        }
        // A repeat revokes nothing more.
        let (answer, again) = self
            .admin(Method::DELETE, &format!("/keys/{l_id}"), None)
            .await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(again["heirs"], json!([]));
    }

    /// M4: an integration rotates its own key with an overlap; once the old key has
    /// ended, its owner tidies it up, and the new key keeps working.
    async fn an_integrations_heir_survives_the_old_key(&self) {
        let (_, a) = self
            .admin(
                Method::POST,
                "/keys",
                Some(
                    json!({"name": "reports-sync", "scopes": ["reports:read", "keys:rotate-self"]}),
                ),
            )
            .await;
        let (a_id, a_key) = (a["id"].as_str().unwrap(), a["key"].as_str().unwrap());
        let answer = self
            .send(
                Method::POST,
                "/self/rotate",
                a_key,
                Some(json!({"overlap_secs": 60})),
            )
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
        let b: Value = serde_json::from_str(&answer.body).unwrap();
        self.clock.advance(Duration::from_secs(61));
        let (_, heirs) = self
            .admin(Method::GET, &format!("/keys/{a_id}/heirs"), None)
            .await;
        assert_eq!(heirs, json!([]), "an ended key takes nothing with it");
        let (answer, revoked) = self
            .admin(Method::DELETE, &format!("/keys/{a_id}"), None)
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        assert_eq!(revoked["heirs"], json!([]));
        let record = self
            .manager
            .get(&b["id"].as_str().unwrap().parse().unwrap())
            .await
            .unwrap();
        assert_eq!(
            record.revoked_at(),
            None,
            "the integration's new key survives"
        );
        // And it still works: it may rotate itself now that the old key is gone.
        let answer = self
            .send(
                Method::POST,
                "/self/rotate",
                b["key"].as_str().unwrap(),
                Some(json!({"overlap_secs": 60})),
            )
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    }
}

fn ids(records: &Value) -> Vec<&str> {
    records
        .as_array()
        .unwrap_or_else(|| panic!("an array of records: {records}"))
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect()
}

mod memory {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::SystemTime;

    use async_trait::async_trait;
    use tower_apikey::event::{EventQuery, EventStore, KeyEvent, NewEvent};
    use tower_apikey::record::ActorName;
    use tower_apikey::store::{
        KeyStoreUpdate, KeyUpdate, OldKeyEnd, Page, Revocation, RotateOutcome,
    };
    use tower_apikey::{InMemoryKeyStore, KeyId, KeyRecord, KeyStore, KeyStoreAdmin, StoreError};

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn m3_cancelled_changes_keep_their_events_in_memory() {
        Server::start(InMemoryKeyStore::new())
            .await
            .cancelled_changes_keep_their_events()
            .await;
    }

    #[tokio::test]
    async fn m4_a_thiefs_heirs_die_with_the_leaked_key_in_memory() {
        Server::start(InMemoryKeyStore::new())
            .await
            .a_thiefs_heirs_die_with_the_leaked_key()
            .await;
    }

    #[tokio::test]
    async fn m4_an_integrations_heir_survives_the_old_key_in_memory() {
        Server::start(InMemoryKeyStore::new())
            .await
            .an_integrations_heir_survives_the_old_key()
            .await;
    }

    /// The in-memory store whose event keeping can be made to fail, as a store's event
    /// table can: then it stores no change that carries events either (it cannot keep
    /// them together), and its `record_event` fails.
    #[derive(Debug, Clone, Default)]
    struct EventsDown {
        keys: InMemoryKeyStore,
        down: Arc<AtomicBool>,
    }

    impl EventsDown {
        fn check(&self, events: &[NewEvent]) -> Result<(), StoreError> {
            if !events.is_empty() && self.down.load(Ordering::SeqCst) {
                return Err(StoreError::unavailable("the event table is down (test)"));
            }
            Ok(())
        }
    }

    #[async_trait]
    impl KeyStore for EventsDown {
        async fn lookup(&self, id: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
            self.keys.lookup(id).await
        }
    }

    #[async_trait]
    impl KeyStoreAdmin for EventsDown {
        async fn insert(&self, record: &KeyRecord) -> Result<(), StoreError> {
            self.keys.insert(record).await
        }
        async fn list(&self) -> Result<Vec<KeyRecord>, StoreError> {
            self.keys.list().await
        }
        async fn revoke(
            &self,
            id: &KeyId,
            at: SystemTime,
            by: Option<&ActorName>,
        ) -> Result<Option<KeyRecord>, StoreError> {
            self.keys.revoke(id, at, by).await
        }
        async fn rotate(
            &self,
            old: &KeyId,
            new: &KeyRecord,
            end: OldKeyEnd,
        ) -> Result<RotateOutcome, StoreError> {
            self.keys.rotate(old, new, end).await
        }
        async fn insert_with_events(
            &self,
            record: &KeyRecord,
            events: &[NewEvent],
        ) -> Result<Vec<KeyEvent>, StoreError> {
            self.check(events)?;
            self.keys.insert_with_events(record, events).await
        }
        async fn rotate_with_events(
            &self,
            old: &KeyId,
            new: &KeyRecord,
            end: OldKeyEnd,
            events: &[NewEvent],
        ) -> Result<(RotateOutcome, Vec<KeyEvent>), StoreError> {
            self.check(events)?;
            self.keys.rotate_with_events(old, new, end, events).await
        }
        async fn revoke_with_heirs(
            &self,
            id: &KeyId,
            at: SystemTime,
            by: Option<&ActorName>,
            events: &[NewEvent],
        ) -> Result<Option<Revocation>, StoreError> {
            self.check(events)?;
            self.keys.revoke_with_heirs(id, at, by, events).await
        }
    }

    #[async_trait]
    impl EventStore for EventsDown {
        async fn record_event(&self, event: &NewEvent) -> Result<Option<KeyEvent>, StoreError> {
            self.check(std::slice::from_ref(event))?;
            self.keys.record_event(event).await
        }
        async fn events(&self, query: &EventQuery) -> Result<Page<KeyEvent>, StoreError> {
            self.keys.events(query).await
        }
        async fn prune_events(&self, before: SystemTime) -> Result<u64, StoreError> {
            self.keys.prune_events(before).await
        }
    }

    #[async_trait]
    impl KeyStoreUpdate for EventsDown {
        async fn update(
            &self,
            id: &KeyId,
            update: &KeyUpdate,
        ) -> Result<Option<KeyRecord>, StoreError> {
            self.keys.update(id, update).await
        }
        async fn update_with_events(
            &self,
            id: &KeyId,
            update: &KeyUpdate,
            events: &[NewEvent],
        ) -> Result<Option<(KeyRecord, Vec<KeyEvent>)>, StoreError> {
            self.check(events)?;
            self.keys.update_with_events(id, update, events).await
        }
    }

    #[tokio::test]
    async fn m3_when_events_cannot_be_kept_no_change_is_made_in_memory() {
        let store = EventsDown::default();
        let server = Server::start(store.clone()).await;
        store.down.store(true, Ordering::SeqCst);
        super::no_change_without_its_event(&server).await;
    }

    /// A store written before changes carried their events, which implements none of
    /// the `…_with_events` methods: with an event log, it refuses every change (501)
    /// rather than keep one without its event.
    #[derive(Debug, Clone, Default)]
    struct Older(InMemoryKeyStore);

    #[async_trait]
    impl KeyStore for Older {
        async fn lookup(&self, id: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
            self.0.lookup(id).await
        }
    }

    #[async_trait]
    impl KeyStoreAdmin for Older {
        async fn insert(&self, record: &KeyRecord) -> Result<(), StoreError> {
            self.0.insert(record).await
        }
        async fn list(&self) -> Result<Vec<KeyRecord>, StoreError> {
            self.0.list().await
        }
        async fn revoke(
            &self,
            id: &KeyId,
            at: SystemTime,
            by: Option<&ActorName>,
        ) -> Result<Option<KeyRecord>, StoreError> {
            self.0.revoke(id, at, by).await
        }
        async fn rotate(
            &self,
            old: &KeyId,
            new: &KeyRecord,
            end: OldKeyEnd,
        ) -> Result<RotateOutcome, StoreError> {
            self.0.rotate(old, new, end).await
        }
    }

    #[tokio::test]
    async fn m3_a_store_that_cannot_keep_events_with_changes_refuses_them() {
        let store = Older::default();
        let manager = KeyManager::builder(store.clone())
            .usage_sink(TracingUsageSink)
            .events(EventLog::new(InMemoryKeyStore::new()))
            .build();
        let refused = manager.create(NewKey::new("k", ["a:b"])).await;
        assert!(
            matches!(refused, Err(tower_apikey::ManagerError::Store(StoreError::Unsupported(m))) if m.contains("insert_with_events")),
            "{refused:?}"
        );
        assert!(store.0.is_empty(), "nothing stored");
        // Without an event log it works as it always did.
        let made = KeyManager::builder(store.clone())
            .usage_sink(TracingUsageSink)
            .build()
            .create(NewKey::new("k", ["a:b"]))
            .await
            .unwrap();
        let revoked = manager.revoke(made.record.id()).await;
        assert!(matches!(
            revoked,
            Err(tower_apikey::ManagerError::Store(StoreError::Unsupported(
                _
            )))
        ));
        assert_eq!(
            store
                .0
                .lookup(made.record.id())
                .await
                .unwrap()
                .unwrap()
                .revoked_at(),
            None
        );
    }
}

/// M3 (b): with the store's events failing, every change is refused with 503 and
/// nothing is changed.
async fn no_change_without_its_event<
    S: tower_apikey::store::KeyStoreUpdate + EventStore + Clone,
>(
    server: &Server<S>,
) {
    let target = KeyManager::builder(server.manager.store().clone())
        .usage_sink(TracingUsageSink)
        .clock(server.clock.clone())
        .build()
        .create(NewKey::new("target", ["reports:read"]))
        .await
        .unwrap();
    let id = target.record.id().as_str();
    let before = server.manager.list().await.unwrap().len();
    for (method, path, body) in [
        (
            Method::PATCH,
            format!("/keys/{id}"),
            Some(json!({"name": "renamed"})),
        ),
        (Method::DELETE, format!("/keys/{id}"), None),
        (
            Method::POST,
            format!("/keys/{id}/rotate"),
            Some(json!({"overlap_secs": 0})),
        ),
        (
            Method::POST,
            "/keys".to_owned(),
            Some(json!({"name": "new", "scopes": []})),
        ),
    ] {
        let (answer, _) = server.admin(method.clone(), &path, body).await;
        assert_eq!(
            answer.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{method} {path}: {}",
            answer.body
        );
    }
    let after = server.manager.get(target.record.id()).await.unwrap();
    assert_eq!(after.name().as_str(), "target", "not renamed");
    assert_eq!(after.revoked_at(), None, "not revoked");
    assert_eq!(
        server.manager.list().await.unwrap().len(),
        before,
        "no key created or rotated"
    );
}

mod postgres {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{SystemTime, UNIX_EPOCH};

    use sqlx::postgres::PgPoolOptions;
    use tower_apikey_postgres::PgKeyStore;

    use super::*;

    const SCHEMA: &str = "apikey_tests";

    /// A migrated store in a table no other test uses (postgres/tests/postgres.rs drops such
    /// tables once they are an hour old).
    async fn fresh_store() -> PgKeyStore {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let url = std::env::var("APIKEY_TEST_DATABASE_URL").expect(
            "set APIKEY_TEST_DATABASE_URL to a PostgreSQL database these tests may create tables in",
        );
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(5))
            .connect(&url)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to APIKEY_TEST_DATABASE_URL: {e}"));
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let table = format!(
            "t{secs}_{}_i{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let store = PgKeyStore::new(pool)
            .with_schema(SCHEMA)
            .unwrap()
            .with_table(&table)
            .unwrap();
        store.migrate().await.expect("migrate");
        store
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn m3_cancelled_changes_keep_their_events_on_postgresql() {
        Server::start(fresh_store().await)
            .await
            .cancelled_changes_keep_their_events()
            .await;
    }

    /// Makes the event table refuse every row, as a table the serving role may no
    /// longer insert into, or a full disk, would; `false` lets it take them again.
    async fn refuse_events(store: &PgKeyStore, refuse: bool) {
        let events = format!("\"{SCHEMA}\".\"{}_events\"", store.table());
        let function = format!("\"{SCHEMA}\".\"{}_refuse\"", store.table());
        let statements = if refuse {
            vec![
                format!(
                    "CREATE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS \
                     $$ BEGIN RAISE EXCEPTION 'events refused (test)'; END $$"
                ),
                format!(
                    "CREATE TRIGGER refuse BEFORE INSERT ON {events} \
                     FOR EACH ROW EXECUTE FUNCTION {function}()"
                ),
            ]
        } else {
            vec![format!("DROP TRIGGER refuse ON {events}")]
        };
        for statement in statements {
            sqlx::query(sqlx::AssertSqlSafe(statement))
                .execute(store.pool())
                .await
                .unwrap();
        }
    }

    #[tokio::test]
    async fn m3_when_the_event_table_fails_no_change_is_made_on_postgresql() {
        let store = fresh_store().await;
        let server = Server::start(store.clone()).await;
        refuse_events(&store, true).await;
        super::no_change_without_its_event(&server).await;
    }

    /// The usage tracker's write: a key's first use (and the end it sets for the key
    /// it replaced) is stored with its event, or not at all, and retried.
    #[tokio::test]
    async fn m3_a_first_use_is_written_with_its_event_or_not_at_all_on_postgresql() {
        let store = fresh_store().await;
        let log = EventLog::new(store.clone());
        let manager = KeyManager::builder(store.clone())
            .events(log.clone())
            .build();
        let tracker = tower_apikey::usage::UsageTracker::builder(store.clone())
            .events(log.clone())
            .build();
        let key = manager
            .create(NewKey::new("first", ["reports:read"]))
            .await
            .unwrap();
        let id = *key.record.id();
        refuse_events(&store, true).await;
        tracker.record(&id, SystemTime::now());
        assert!(
            tracker.flush().await.is_err(),
            "the write fails, since its event cannot be kept"
        );
        assert_eq!(
            manager.get(&id).await.unwrap().last_used_at(),
            None,
            "and the first use is not written without its event"
        );
        refuse_events(&store, false).await;
        tracker.flush().await.unwrap();
        assert!(manager.get(&id).await.unwrap().last_used_at().is_some());
        let events = log.events(&EventQuery::new().key(id)).await.unwrap().items;
        assert_eq!(
            events
                .iter()
                .filter(|e| e.kind() == EventType::FirstUsed)
                .count(),
            1,
            "the retried write stores the use and its event: {events:?}"
        );
    }

    #[tokio::test]
    async fn m4_a_thiefs_heirs_die_with_the_leaked_key_on_postgresql() {
        Server::start(fresh_store().await)
            .await
            .a_thiefs_heirs_die_with_the_leaked_key()
            .await;
    }

    #[tokio::test]
    async fn m4_an_integrations_heir_survives_the_old_key_on_postgresql() {
        Server::start(fresh_store().await)
            .await
            .an_integrations_heir_survives_the_old_key()
            .await;
    }
}
