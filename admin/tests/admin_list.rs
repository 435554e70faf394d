//! `GET /keys` at scale (DESIGN §13), through a real server on loopback and a real
//! client: pages follow the relative `Link` header, every filter and sort applies, bad
//! parameters are field-named 422s, and a store that fails is a 503.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use common::Answer;
use http::header::{AUTHORIZATION, LINK};
use http::{Request, StatusCode};
use http_body_util::Empty;
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use tower_apikey::record::ActorName;
use tower_apikey::store::{KeyQuery, KeyStoreUpdate, KeyUpdate, OldKeyEnd, Page, RotateOutcome};
use tower_apikey::testing::ManualClock;
use tower_apikey::testing::conformance::sample_record;
use tower_apikey::{
    InMemoryKeyStore, KeyId, KeyManager, KeyRecord, KeyStore, KeyStoreAdmin, NewKey, StoreError,
};

/// 2027-01-15T08:00:00Z, after the conformance records' times.
const NOW_SECS: u64 = 1_800_000_000 + 30 * 86_400;

/// The in-memory store, except that `list_page` fails once `broken` is set.
#[derive(Debug, Clone, Default)]
struct Store {
    keys: InMemoryKeyStore,
    broken: Arc<AtomicBool>,
}

#[async_trait]
impl KeyStore for Store {
    async fn lookup(&self, id: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
        self.keys.lookup(id).await
    }
}

#[async_trait]
impl KeyStoreAdmin for Store {
    async fn insert(&self, record: &KeyRecord) -> Result<(), StoreError> {
        self.keys.insert(record).await
    }
    async fn list(&self) -> Result<Vec<KeyRecord>, StoreError> {
        self.keys.list().await
    }
    async fn list_page(&self, query: &KeyQuery) -> Result<Page<KeyRecord>, StoreError> {
        if self.broken.load(Ordering::SeqCst) {
            return Err(StoreError::unavailable("the database is down (test)"));
        }
        self.keys.list_page(query).await
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
}

// The admin router changes keys (`PATCH /keys/{id}`), so it needs this capability too.
#[async_trait]
impl KeyStoreUpdate for Store {
    async fn update(
        &self,
        id: &KeyId,
        update: &KeyUpdate,
    ) -> Result<Option<KeyRecord>, StoreError> {
        self.keys.update(id, update).await
    }
}

struct Server {
    addr: SocketAddr,
    client: Client<HttpConnector, Empty<Bytes>>,
    admin_key: String,
    store: Store,
}

impl Server {
    /// A server at `/admin` whose store holds an admin key and `records`.
    async fn start(records: &[KeyRecord]) -> Self {
        let store = Store::default();
        let clock = ManualClock::new(UNIX_EPOCH + Duration::from_secs(NOW_SECS));
        // This store is no `UsageSink`: last-used times go to the keys it wraps.
        let manager = KeyManager::builder(store.clone())
            .usage_sink(store.keys.clone())
            .clock(clock)
            .build();
        let admin = manager
            .create(NewKey::new("admin", ["admin:keys"]))
            .await
            .unwrap();
        for record in records {
            store.insert(record).await.unwrap();
        }
        let app = axum::Router::new().nest("/admin", tower_apikey_admin::router(manager));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            addr,
            client: Client::builder(TokioExecutor::new()).build_http(),
            admin_key: admin.key.expose_secret().to_owned(),
            store,
        }
    }

    async fn get(&self, path_and_query: &str) -> Answer {
        let request = Request::get(format!("http://{}{path_and_query}", self.addr))
            .header(AUTHORIZATION, format!("ApiKey-v2 {}", self.admin_key))
            .body(Empty::new())
            .unwrap();
        Answer::read(self.client.request(request).await.unwrap()).await
    }

    /// Follows `Link: <?…>; rel="next"` from `first` to the last page; returns every
    /// page's records.
    async fn every_page(&self, first: &str) -> Vec<Vec<Value>> {
        let mut pages = Vec::new();
        let mut next = Some(first.to_owned());
        while let Some(path) = next.take() {
            let answer = self.get(&path).await;
            assert_eq!(answer.status, StatusCode::OK, "{path}: {}", answer.body);
            pages.push(array(&answer));
            if let Some(link) = answer.headers.get(LINK) {
                let link = link.to_str().unwrap();
                let target = link
                    .strip_prefix('<')
                    .and_then(|l| l.strip_suffix(">; rel=\"next\""))
                    .unwrap_or_else(|| panic!("a Link to the next page, got {link}"));
                let query = target
                    .strip_prefix('?')
                    .unwrap_or_else(|| panic!("a Link relative to the request, got {target}"));
                // Resolved against `path`, as RFC 3986 resolves a query-only reference.
                let base = path.split('?').next().unwrap();
                next = Some(format!("{base}?{query}"));
            }
            assert!(pages.len() <= 100, "the pages never end");
        }
        pages
    }
}

fn array(answer: &Answer) -> Vec<Value> {
    serde_json::from_str::<Value>(&answer.body)
        .unwrap()
        .as_array()
        .unwrap_or_else(|| panic!("a JSON array, got {}", answer.body))
        .clone()
}

fn names(records: &[Value]) -> Vec<&str> {
    records
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect()
}

fn day(n: u64) -> Duration {
    Duration::from_secs(n * 86_400)
}

#[tokio::test]
async fn pages_follow_the_link_header_and_hold_every_key_once() {
    let records: Vec<KeyRecord> = (0..250)
        .map(|i| sample_record(&format!("key {i:03}"), &["reports:read"], i))
        .collect();
    let server = Server::start(&records).await;
    let pages = server.every_page("/admin/keys").await;
    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    assert_eq!(
        sizes,
        [100, 100, 51],
        "100 per page by default, admin key included"
    );
    let all: Vec<Value> = pages.into_iter().flatten().collect();
    let ids: HashSet<&str> = all.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 251, "no key twice");
    // Newest first: the admin key (created at the clock's now), then key 249, 248, …
    assert_eq!(names(&all[..3]), ["admin", "key 249", "key 248"]);
    assert!(
        all.iter()
            .all(|r| r.get("digest").is_none() && r.get("key").is_none())
    );

    let small = server.every_page("/admin/keys?limit=7&q=key%2024").await;
    let found: Vec<&str> = small.iter().flat_map(|p| names(p)).collect();
    assert_eq!(
        found,
        [
            "key 249", "key 248", "key 247", "key 246", "key 245", "key 244", "key 243", "key 242",
            "key 241", "key 240"
        ],
        "filters and the limit carry over to the next page"
    );
    assert_eq!(small[0].len(), 7);
}

#[tokio::test]
async fn filters_and_sorts_apply() {
    let now = UNIX_EPOCH + Duration::from_secs(NOW_SECS);
    let make = |name: &str, scopes: &[&str], created_days_ago: u64| {
        let record = sample_record(name, scopes, 0);
        let created = now - day(created_days_ago);
        KeyRecord::new(
            *record.id(),
            record.name().clone(),
            record.scopes().clone(),
            *record.digest(),
            created,
            created + day(365),
        )
    };
    let records = [
        make("Billing Sync", &["reports:read"], 2).with_last_used_at(Some(now - day(1))),
        make("exporter", &["reports:*"], 40).with_last_used_at(Some(now - day(35))),
        make("leaked", &["reports:write"], 3).with_revoked_at(Some(now - day(1))),
        make("old", &[], 350),
        make("idle", &[], 10),
    ];
    let server = Server::start(&records).await;
    let get_names = |path: &'static str| {
        let server = &server;
        async move {
            let answer = server.get(path).await;
            assert_eq!(answer.status, StatusCode::OK, "{path}: {}", answer.body);
            names(&array(&answer))
                .into_iter()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(get_names("/admin/keys?state=revoked").await, ["leaked"]);
    assert_eq!(get_names("/admin/keys?state=expiring").await, ["old"]);
    assert_eq!(
        get_names("/admin/keys?state=dormant").await,
        ["idle", "exporter", "old"]
    );
    assert_eq!(get_names("/admin/keys?q=bILLING").await, ["Billing Sync"]);
    assert_eq!(
        get_names("/admin/keys?scope=reports:read").await,
        ["Billing Sync", "exporter"]
    );
    assert_eq!(
        get_names("/admin/keys?sort=-last_used&state=active&scope=reports:read").await,
        ["Billing Sync", "exporter"]
    );
    assert_eq!(
        get_names("/admin/keys?sort=created&limit=2").await,
        ["old", "exporter"]
    );
    assert_eq!(get_names("/admin/keys?sort=expires&limit=1").await, ["old"]);
}

#[tokio::test]
async fn bad_parameters_are_field_named_422s() {
    let server = Server::start(&[sample_record("a", &[], 0), sample_record("b", &[], 1)]).await;
    let first = server.get("/admin/keys?limit=1").await;
    let link = first.headers[LINK].to_str().unwrap().to_owned();
    let cursor = link
        .split("cursor=")
        .nth(1)
        .unwrap()
        .split('>')
        .next()
        .unwrap();
    let long_q = "q".repeat(129);
    for (query, field) in [
        ("limit=1001".to_owned(), "limit"),
        ("limit=0".to_owned(), "limit"),
        ("state=asleep".to_owned(), "state"),
        ("sort=name".to_owned(), "sort"),
        ("scope=Reports".to_owned(), "scope"),
        (format!("q={long_q}"), "q"),
        ("cursor=%3Cnot%3E".to_owned(), "cursor"),
        (format!("sort=-expires&cursor={cursor}"), "cursor"),
        ("stat=revoked".to_owned(), "stat"),
        ("state=active&state=revoked".to_owned(), "state"),
    ] {
        let answer = server.get(&format!("/admin/keys?{query}")).await;
        assert_eq!(
            answer.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{query}: {}",
            answer.body
        );
        let problem: Value = serde_json::from_str(&answer.body).unwrap();
        assert_eq!(problem["field"], field, "{query}: {}", answer.body);
        assert!(
            problem["errors"][0]["detail"].as_str().unwrap().len() > 20,
            "{query}: the detail says what to do"
        );
    }
    let sorted = server
        .get(&format!("/admin/keys?sort=-created&cursor={cursor}"))
        .await;
    assert_eq!(
        sorted.status,
        StatusCode::OK,
        "the sort the cursor was made for"
    );
}

#[tokio::test]
async fn a_failing_store_is_a_503() {
    let server = Server::start(&[]).await;
    server.store.broken.store(true, Ordering::SeqCst);
    let answer = server.get("/admin/keys?state=active").await;
    assert_eq!(
        answer.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        answer.body
    );
    assert!(answer.headers.contains_key(http::header::RETRY_AFTER));
}
