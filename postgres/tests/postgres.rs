//! `PgKeyStore`, `CachedKeyStore` over it and `KeyFeedListener` against a real
//! PostgreSQL. Two pools with a cache each, on one database, stand in for two instances.
//!
//! Needs `APIKEY_TEST_DATABASE_URL` (`scripts/test` provides one) and fails without it.
//! Each test works in its own table (`apikey_tests.t<unix time>_<pid>_<n>`); tables
//! older than an hour are dropped by the next run. The migration tests also make roles
//! (`apikey_t…`, which needs CREATEROLE, as `scripts/test` grants) and schemas
//! (`st…`) of their own, and drop them; those left by a failed run are dropped by a run
//! an hour later. The outage test runs its own
//! throwaway PostgreSQL cluster, from `APIKEY_TEST_PG_BINDIR` or the newest
//! `/usr/lib/postgresql/*/bin`.

use std::convert::Infallible;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http::header::AUTHORIZATION;
use http::{Request, Response, StatusCode};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tower::{Layer, ServiceExt, service_fn};
use tower_apikey::store::cached::CachedKeyStore;
use tower_apikey::testing::ManualClock;
use tower_apikey::testing::conformance::{assert_same_record, sample_record};
use tower_apikey::usage::KeyUsage;
use tower_apikey::{
    ApiKeyV2Layer, Clock, KeyManager, KeyStore, KeyStoreAdmin, NewKey, PlaintextKey, StoreError,
    SystemClock, UsageSink,
};
use tower_apikey_postgres::{MigrateError, PgKeyStore};

const SCHEMA: &str = "apikey_tests";
/// A bound on every wait, so that a broken behaviour fails instead of hanging.
const DEADLINE: Duration = Duration::from_secs(10);

fn database_url() -> String {
    std::env::var("APIKEY_TEST_DATABASE_URL").expect(
        "APIKEY_TEST_DATABASE_URL must name a PostgreSQL database for these tests: \
         run scripts/test, which provides one, or set it yourself",
    )
}

/// One instance's pool.
async fn pool() -> PgPool {
    let url = database_url();
    PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(5))
        .connect(&url)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to APIKEY_TEST_DATABASE_URL: {e}"))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A table name no other test, run or process uses.
fn unique_table() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "t{}_{}_{}",
        unix_now(),
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Drops the tables of runs more than an hour old, once per process.
async fn drop_stale_tables(pool: &PgPool) {
    static DONE: AtomicBool = AtomicBool::new(false);
    if DONE.swap(true, Ordering::SeqCst) {
        return;
    }
    let tables: Vec<String> =
        sqlx::query_scalar("SELECT tablename::text FROM pg_tables WHERE schemaname = $1")
            .bind(SCHEMA)
            .fetch_all(pool)
            .await
            .expect("list test tables");
    let cutoff = unix_now().saturating_sub(3600);
    for table in tables {
        let created: Option<u64> = table
            .strip_prefix('t')
            .and_then(|rest| rest.split('_').next())
            .and_then(|secs| secs.parse().ok());
        if created.is_some_and(|secs| secs < cutoff) {
            let drop = format!("DROP TABLE IF EXISTS \"{SCHEMA}\".\"{table}\"");
            sqlx::query(sqlx::AssertSqlSafe(drop))
                .execute(pool)
                .await
                .expect("drop a stale test table");
        }
    }
}

/// A migrated store in a fresh table.
async fn fresh_store(pool: PgPool) -> PgKeyStore {
    let store = PgKeyStore::new(pool)
        .with_schema(SCHEMA)
        .unwrap()
        .with_table(&unique_table())
        .unwrap();
    store.migrate().await.expect("migrate");
    drop_stale_tables(store.pool()).await;
    store
}

/// The same table as `store`, through another pool: another instance.
fn same_table(store: &PgKeyStore, pool: PgPool) -> PgKeyStore {
    PgKeyStore::new(pool)
        .with_schema(store.schema())
        .unwrap()
        .with_table(store.table())
        .unwrap()
}

mod pg_conformance {
    tower_apikey::testing::store_conformance_tests!(async {
        super::fresh_store(super::pool().await).await
    });
    tower_apikey::testing::rotation_conformance_tests!(async {
        super::fresh_store(super::pool().await).await
    });
    tower_apikey::testing::update_conformance_tests!(async {
        super::fresh_store(super::pool().await).await
    });
}

#[path = "postgres/shared_limits.rs"]
mod shared_limits;

#[path = "postgres/tenants.rs"]
mod tenants;

/// `PgKeyStore` as the shared limits' ledger keeps the `LimitBackend` contract.
mod pg_limit_backend_conformance {
    tower_apikey::testing::limit_backend_conformance_tests!(async {
        super::fresh_store(super::pool().await).await
    });
}

mod cached_pg_conformance {
    tower_apikey::testing::store_conformance_tests!(async {
        tower_apikey::store::cached::CachedKeyStore::new(
            super::fresh_store(super::pool().await).await,
        )
    });
    tower_apikey::testing::rotation_conformance_tests!(async {
        tower_apikey::store::cached::CachedKeyStore::new(
            super::fresh_store(super::pool().await).await,
        )
    });
    tower_apikey::testing::update_conformance_tests!(async {
        tower_apikey::store::cached::CachedKeyStore::new(
            super::fresh_store(super::pool().await).await,
        )
    });
}

/// One API instance: a cache over its own pool, the middleware, a manager and,
/// once started, its revocation listener.
struct Instance {
    store: CachedKeyStore<PgKeyStore>,
    manager: KeyManager<CachedKeyStore<PgKeyStore>>,
    layer: ApiKeyV2Layer,
    listener: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
}

impl Instance {
    /// An instance whose cache holds entries for an hour, so that only the listener
    /// can make it see a revocation made elsewhere.
    fn new(store: PgKeyStore) -> Self {
        Self::with_clock(store, SystemClock)
    }

    /// Like [`new`](Self::new), with `clock` as this instance's wall clock (its
    /// manager's and its layer's).
    fn with_clock(store: PgKeyStore, clock: impl Clock + Clone) -> Self {
        let store = CachedKeyStore::builder(store)
            .hit_ttl(Duration::from_secs(3600))
            .build();
        Self {
            manager: KeyManager::builder(store.clone())
                .clock(clock.clone())
                .build(),
            layer: ApiKeyV2Layer::new(store.clone()).clock(clock),
            store,
            listener: None,
        }
    }

    /// Starts the listener and waits until it listens; returns its backend's pid.
    async fn listen(&mut self) -> i32 {
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(self.store.feed_listener().run(async {
            let _ = stopped.await;
        }));
        self.listener = Some((stop, task));
        let pid = listener_pid(self.store.get_ref(), None).await;
        // Listening, and its first snapshot applied: from here on it follows changes.
        wait_for_filter(&self.store, tower_apikey::store::cached::FilterState::Fresh).await;
        pid
    }

    /// Stops the listener and waits until it has returned.
    async fn stop_listening(&mut self) {
        let (stop, task) = self.listener.take().expect("listening");
        stop.send(()).unwrap();
        tokio::time::timeout(DEADLINE, task)
            .await
            .expect("the listener must stop when its shutdown future completes")
            .unwrap();
    }

    async fn create(&self, name: &str) -> PlaintextKey {
        self.manager
            .create(NewKey::new(name, ["reports:read"]))
            .await
            .expect("create")
            .key
    }

    /// A request with `key` through this instance's middleware.
    async fn call(&self, key: &PlaintextKey) -> StatusCode {
        let service = self.layer.layer(service_fn(|_: Request<String>| async {
            Ok::<_, Infallible>(Response::new(String::from("ok")))
        }));
        let request = Request::builder()
            .uri("/")
            .header(AUTHORIZATION, format!("ApiKey-v2 {}", key.expose_secret()))
            .body(String::new())
            .unwrap();
        service.oneshot(request).await.unwrap().status()
    }

    /// Polls until a request with `key` gets `status`; how long it took.
    async fn wait_for(&self, key: &PlaintextKey, status: StatusCode) -> Duration {
        let start = Instant::now();
        loop {
            if self.call(key).await == status {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < DEADLINE,
                "a request with key {} did not get {status} within {DEADLINE:?}",
                key.id()
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

/// The pid of the backend listening on `store`'s channel (other than `not`), once
/// there is one.
async fn listener_pid(store: &PgKeyStore, not: Option<i32>) -> i32 {
    let listen = format!("LISTEN \"{}\"", store.channel());
    let start = Instant::now();
    loop {
        let pid: Option<i32> = sqlx::query_scalar(
            "SELECT pid FROM pg_stat_activity WHERE strpos(query, $1) > 0 AND pid <> $2 LIMIT 1",
        )
        .bind(&listen)
        .bind(not.unwrap_or(0))
        .fetch_optional(store.pool())
        .await
        .expect("query pg_stat_activity");
        if let Some(pid) = pid {
            return pid;
        }
        assert!(start.elapsed() < DEADLINE, "no backend runs {listen}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Inserts `record` into the table `qualified` as an earlier release wrote rows: its
/// six required columns, and NULL in the `nullable` columns that release had.
async fn insert_as_an_earlier_release_did(
    pool: &PgPool,
    qualified: &str,
    record: &tower_apikey::KeyRecord,
    nullable: usize,
) {
    let nulls = ", NULL".repeat(nullable);
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {qualified} VALUES ($1, $2, $3, $4, $5, $6{nulls})"
    )))
    .bind(record.id().as_str())
    .bind(record.name().as_str())
    .bind(
        record
            .scopes()
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(&record.digest().as_bytes()[..])
    .bind(time::OffsetDateTime::from(record.created_at()))
    .bind(time::OffsetDateTime::from(record.expires_at()))
    .execute(pool)
    .await
    .expect("a row as an earlier release wrote it");
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank]
}

#[tokio::test]
async fn migration_runs_twice_and_concurrently_without_error() {
    let (a, b) = (pool().await, pool().await);
    let store = fresh_store(a.clone()).await;
    store
        .migrate()
        .await
        .expect("a second migration is a no-op");
    store.migrate().await.expect("and a third");

    // Eight instances starting together on a schema and table that do not exist yet.
    let schema = format!("s{}", unique_table());
    let table = unique_table();
    let racers: Vec<PgKeyStore> = (0..8)
        .map(|n| {
            let pool = if n % 2 == 0 { a.clone() } else { b.clone() };
            PgKeyStore::new(pool)
                .with_schema(&schema)
                .unwrap()
                .with_table(&table)
                .unwrap()
        })
        .collect();
    let results = futures_util::future::join_all(racers.iter().map(PgKeyStore::migrate)).await;
    for result in results {
        result.expect("a concurrent migration must succeed");
    }
    let record = sample_record("raced", &["a:b"], 0);
    racers[0].insert(&record).await.unwrap();
    assert_same_record(
        &racers[7].lookup(record.id()).await.unwrap().unwrap(),
        &record,
    );

    let index: Option<String> = sqlx::query_scalar(
        "SELECT indexname::text FROM pg_indexes WHERE schemaname = $1 AND tablename = $2 \
         AND indexname = $2 || '_newest'",
    )
    .bind(&schema)
    .bind(&table)
    .fetch_optional(&a)
    .await
    .unwrap();
    assert!(index.is_some(), "the newest-first index exists");
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA \"{schema}\" CASCADE"
    )))
    .execute(&a)
    .await
    .unwrap();
}

/// A table made before rotations checked for a live successor gains the index on
/// `rotated_from` on `migrate`, idempotently, and a second rotation is then refused.
#[tokio::test]
async fn migrate_adds_the_successors_index_to_a_table_from_an_earlier_version() {
    let pool = pool().await;
    let store = fresh_store(pool.clone()).await;
    let (schema, table) = (store.schema().to_owned(), store.table().to_owned());
    exec(&pool, format!("DROP INDEX \"{schema}\".\"{table}_heirs\"")).await;
    store.migrate().await.expect("migrate adds the index");
    store
        .migrate()
        .await
        .expect("and again, with nothing to add");
    let definition: String = sqlx::query_scalar(
        "SELECT indexdef::text FROM pg_indexes WHERE schemaname = $1 AND tablename = $2 \
         AND indexname = $2 || '_heirs'",
    )
    .bind(&schema)
    .bind(&table)
    .fetch_one(&pool)
    .await
    .expect("the successors index exists");
    assert!(definition.contains("(rotated_from)"), "{definition}");

    let old = sample_record("old", &[], 0);
    store.insert(&old).await.unwrap();
    let heir = sample_record("old", &[], 60).with_rotated_from(Some(*old.id()));
    let second = sample_record("old", &[], 120).with_rotated_from(Some(*old.id()));
    store
        .rotate(old.id(), &heir, tower_apikey::store::OldKeyEnd::Keep)
        .await
        .unwrap();
    assert!(matches!(
        store
            .rotate(old.id(), &second, tower_apikey::store::OldKeyEnd::Keep)
            .await
            .unwrap(),
        tower_apikey::store::RotateOutcome::HasLiveSuccessor(id) if id == *heir.id()
    ));
}

/// A table made by a version without `ends_at` gains the column on `migrate`, keeps
/// its rows, and rotations with an overlap then work on it.
#[tokio::test]
async fn migrate_adds_ends_at_to_a_table_from_an_earlier_version() {
    let pool = pool().await;
    let table = unique_table();
    let qualified = format!("\"{SCHEMA}\".\"{table}\"");
    // Makes sure the test schema exists (another table in it, created as usual).
    fresh_store(pool.clone()).await;
    // The table as version 0.1 created it.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE {qualified} (
            id text PRIMARY KEY, name text NOT NULL, scopes text[] NOT NULL,
            digest bytea NOT NULL CHECK (octet_length(digest) = 32),
            created_at timestamptz NOT NULL, expires_at timestamptz NOT NULL,
            revoked_at timestamptz, last_used_at timestamptz, rotated_from text)"
    )))
    .execute(&pool)
    .await
    .expect("create the old table");
    let old = sample_record("from 0.1", &["a:b"], 0);
    insert_as_an_earlier_release_did(&pool, &qualified, &old, 3).await;

    let store = PgKeyStore::new(pool)
        .with_schema(SCHEMA)
        .unwrap()
        .with_table(&table)
        .unwrap();
    store.migrate().await.expect("migrate an old table");
    store
        .migrate()
        .await
        .expect("and again, with nothing to add");
    assert_same_record(&store.lookup(old.id()).await.unwrap().unwrap(), &old);
    let new = sample_record("from 0.1", &["a:b"], 60).with_rotated_from(Some(*old.id()));
    let end = old.created_at() + Duration::from_secs(3600);
    store
        .rotate(old.id(), &new, tower_apikey::store::OldKeyEnd::EndAt(end))
        .await
        .expect("rotate on the migrated table");
    let ended = store.get(old.id()).await.unwrap().unwrap();
    assert_eq!(ended.ends_at(), Some(end));
    assert_eq!(ended.expires_at(), old.expires_at());
}

/// A table made before records named their actors (with `ends_at`, without
/// `created_by` and `revoked_by`) gains both columns on `migrate`, additively and
/// idempotently: its rows read back with no actor, and revocations then record one.
#[tokio::test]
async fn migrate_adds_the_actor_columns_to_a_table_from_an_earlier_version() {
    let pool = pool().await;
    let table = unique_table();
    let qualified = format!("\"{SCHEMA}\".\"{table}\"");
    fresh_store(pool.clone()).await;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE {qualified} (
            id text PRIMARY KEY, name text NOT NULL, scopes text[] NOT NULL,
            digest bytea NOT NULL CHECK (octet_length(digest) = 32),
            created_at timestamptz NOT NULL, expires_at timestamptz NOT NULL,
            revoked_at timestamptz, last_used_at timestamptz, rotated_from text,
            ends_at timestamptz)"
    )))
    .execute(&pool)
    .await
    .expect("create the table as it was before actors");
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE INDEX \"{table}_newest\" ON {qualified} (created_at DESC, id)"
    )))
    .execute(&pool)
    .await
    .expect("its index");
    let old = sample_record("before actors", &["a:b"], 0);
    insert_as_an_earlier_release_did(&pool, &qualified, &old, 4).await;

    let store = PgKeyStore::new(pool.clone())
        .with_schema(SCHEMA)
        .unwrap()
        .with_table(&table)
        .unwrap();
    store
        .migrate()
        .await
        .expect("migrate adds the actor columns");
    store
        .migrate()
        .await
        .expect("and again, with nothing to add");
    let columns: Vec<(String, bool)> = sqlx::query_as(
        "SELECT column_name::text, is_nullable = 'YES' FROM information_schema.columns
         WHERE table_schema = $1 AND table_name = $2 AND column_name LIKE '%_by'
         ORDER BY ordinal_position",
    )
    .bind(SCHEMA)
    .bind(&table)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        columns,
        [
            ("created_by".to_owned(), true),
            ("revoked_by".to_owned(), true)
        ]
    );
    let found = store.lookup(old.id()).await.unwrap().unwrap();
    assert_same_record(&found, &old);
    assert_eq!((found.created_by(), found.revoked_by()), (None, None));

    let alice = tower_apikey::record::ActorName::new("alice@example.com").unwrap();
    store
        .revoke(old.id(), old.created_at(), Some(&alice))
        .await
        .expect("revoke on the migrated table");
    assert_eq!(
        store.get(old.id()).await.unwrap().unwrap().revoked_by(),
        Some(&alice)
    );
}

#[tokio::test]
async fn every_field_written_by_one_instance_reads_back_on_another() {
    let a = fresh_store(pool().await).await;
    let b = same_table(&a, pool().await);
    let first = sample_record("first", &["x:y"], 0);
    let at = |s: u64, micros: u32| UNIX_EPOCH + Duration::new(1_800_000_000 + s, micros * 1000);
    let record = sample_record("rotated — ü (prod)", &["reports:read", "reports:*"], 5)
        .with_rotated_from(Some(*first.id()))
        .with_revoked_at(Some(at(40, 123_456)))
        .with_last_used_at(Some(at(30, 999_999)));
    a.insert(&first).await.unwrap();
    a.insert(&record).await.unwrap();
    assert_same_record(&b.lookup(record.id()).await.unwrap().unwrap(), &record);
    assert_same_record(&b.get(first.id()).await.unwrap().unwrap(), &first);
    let listed = b.list().await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_same_record(&listed[0], &record);
}

#[tokio::test]
async fn a_usage_batch_only_moves_last_used_forward() {
    let store = fresh_store(pool().await).await;
    let [k1, k2, k3] = [0, 1, 2].map(|n| sample_record("used", &[], n));
    for record in [&k1, &k2, &k3] {
        store.insert(record).await.unwrap();
    }
    let at = |s: u64| UNIX_EPOCH + Duration::from_secs(1_800_000_000 + s);
    let use_of = |record: &tower_apikey::KeyRecord, s| KeyUsage::new(*record.id(), at(s));
    store
        .record_usage(&[use_of(&k1, 100), use_of(&k2, 50)])
        .await
        .unwrap();
    // A retried older batch, a newer time, an unknown key, and a duplicate (newest wins).
    let unknown = sample_record("unknown", &[], 0);
    store
        .record_usage(&[
            use_of(&k1, 30),
            use_of(&k2, 80),
            use_of(&unknown, 10),
            use_of(&k3, 70),
            use_of(&k3, 60),
        ])
        .await
        .unwrap();
    let last_used = |record: &tower_apikey::KeyRecord| {
        let store = store.clone();
        let id = *record.id();
        async move { store.get(&id).await.unwrap().unwrap().last_used_at() }
    };
    assert_eq!(
        last_used(&k1).await,
        Some(at(100)),
        "an older time never wins"
    );
    assert_eq!(last_used(&k2).await, Some(at(80)), "a newer time does");
    assert_eq!(
        last_used(&k3).await,
        Some(at(70)),
        "the newest of duplicates"
    );
    assert!(store.get(unknown.id()).await.unwrap().is_none());

    // A large batch is still one statement and one round trip.
    let many: Vec<_> = (0..2000)
        .map(|n| use_of(&sample_record("x", &[], n), n))
        .chain([use_of(&k1, 500)])
        .collect();
    store.record_usage(&many).await.unwrap();
    assert_eq!(last_used(&k1).await, Some(at(500)));
}

#[tokio::test]
async fn a_usage_batch_puts_newer_addresses_in_front_of_the_stored_ones() {
    use tower_apikey::record::RecentIps;
    use tower_apikey::usage::{UsageBatch, UsageBatchId};
    let store = fresh_store(pool().await).await;
    let ips = |texts: &[&str]| {
        RecentIps::from_newest(texts.iter().map(|t| t.parse::<std::net::IpAddr>().unwrap()))
    };
    let key = sample_record("used", &[], 0).with_recent_ips(ips(&["10.0.0.1", "10.0.0.2"]));
    let quiet = sample_record("quiet", &[], 1).with_recent_ips(ips(&["10.0.0.9"]));
    store.insert(&key).await.unwrap();
    store.insert(&quiet).await.unwrap();
    let at = UNIX_EPOCH + Duration::from_secs(1_800_000_100);
    let usages = [
        KeyUsage::new(*key.id(), at).with_recent_ips(ips(&[
            "2001:db8::1",
            "10.0.0.2",
            "192.0.2.1",
            "192.0.2.2",
        ])),
        // No address: the stored ones stay as they are.
        KeyUsage::new(*quiet.id(), at),
    ];
    let batch = UsageBatch::new(UsageBatchId::random(), &usages);
    let expected = ips(&[
        "2001:db8::1",
        "10.0.0.2",
        "192.0.2.1",
        "192.0.2.2",
        "10.0.0.1",
    ]);
    for _ in 0..2 {
        // The second time is a retry of the same batch: the list stays the same.
        store.record_usage_batch(&batch).await.unwrap();
        let found = store.get(key.id()).await.unwrap().unwrap();
        assert_eq!(found.recent_ips(), &expected);
        let same = store.get(quiet.id()).await.unwrap().unwrap();
        assert_eq!(same.recent_ips(), quiet.recent_ips());
    }
    // `record_usage` (without a batch id) keeps them too.
    store
        .record_usage(&[KeyUsage::new(*quiet.id(), at).with_recent_ips(ips(&["10.0.0.8"]))])
        .await
        .unwrap();
    let found = store.get(quiet.id()).await.unwrap().unwrap();
    assert_eq!(found.recent_ips(), &ips(&["10.0.0.8", "10.0.0.9"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_revoked_on_one_instance_is_refused_by_another_within_a_second() {
    let a = Instance::new(fresh_store(pool().await).await);
    let store_b = same_table(a.store.get_ref(), pool().await);
    let mut b = Instance::new(store_b);
    b.listen().await;

    const KEYS: usize = 100;
    let mut keys = Vec::with_capacity(KEYS);
    for n in 0..KEYS {
        let key = a.create(&format!("k{n}")).await;
        // B refuses a key created elsewhere until the creation's notification reaches
        // its id filter, a matter of milliseconds.
        b.wait_for(&key, StatusCode::OK).await;
        assert!(b.store.contains(key.id()), "instance B caches the key");
        keys.push(key);
    }
    let mut latencies = Vec::with_capacity(KEYS);
    for key in &keys {
        let start = Instant::now();
        a.manager.revoke(key.id()).await.expect("revoke on A");
        b.wait_for(key, StatusCode::UNAUTHORIZED).await;
        latencies.push(start.elapsed());
    }
    latencies.sort();
    println!(
        "revocation propagation A -> B over {KEYS} keys (revoke call to B's 401): \
         p50 {:?}, p99 {:?}, max {:?}",
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        latencies[KEYS - 1],
    );
    b.stop_listening().await;
}

/// DESIGN §11 on two instances, each a cache over its own pool with a tracker and a
/// listener, on one database: the new key is first used on B, B's flush ends the old
/// key, and from the end on both instances refuse it. The end holds everywhere within
/// one flush period (driven here) plus the grace plus the revocation bound (the
/// listener's eviction, awaited within `DEADLINE`); before it both accept the old key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn until_first_use_ends_the_old_key_on_every_instance_after_the_grace() {
    let clock = ManualClock::new(UNIX_EPOCH + Duration::from_secs(1_800_000_000));
    let mut a = Instance::with_clock(fresh_store(pool().await).await, clock.clone());
    let mut b = Instance::with_clock(same_table(a.store.get_ref(), pool().await), clock.clone());
    let tracker_a = tower_apikey::usage::UsageTracker::new(a.store.clone());
    let tracker_b = tower_apikey::usage::UsageTracker::new(b.store.clone());
    a.layer = a.layer.clone().usage_tracker(tracker_a.clone());
    b.layer = b.layer.clone().usage_tracker(tracker_b.clone());
    a.listen().await;
    b.listen().await;

    let old = a.create("billing-sync").await;
    for instance in [&a, &b] {
        instance.wait_for(&old, StatusCode::OK).await;
    }
    const GRACE: Duration = Duration::from_secs(60);
    let new = a
        .manager
        .rotate_until_first_use(old.id(), GRACE)
        .await
        .expect("rotate on A")
        .key;
    // Until the new key is used, and however often the trackers flush, nothing ends.
    clock.advance(Duration::from_secs(3_600));
    assert_eq!(a.call(&old).await, StatusCode::OK);
    tracker_a.flush().await.unwrap();
    tracker_b.flush().await.unwrap();
    assert_eq!(a.manager.get(old.id()).await.unwrap().ends_at(), None);

    let first_use = clock.now();
    b.wait_for(&new, StatusCode::OK).await;
    clock.advance(Duration::from_secs(10));
    assert_eq!(
        b.call(&old).await,
        StatusCode::OK,
        "B has not flushed: the old key still works"
    );
    // Both instances hold the old record without an end (long after the creation's
    // own notification, which evicts a first cached copy), so that only the end's
    // eviction can make them read it again.
    for instance in [&a, &b] {
        assert_eq!(instance.call(&old).await, StatusCode::OK);
        assert!(
            instance.store.contains(old.id()),
            "each instance caches the old key"
        );
    }
    tracker_b.flush().await.unwrap();
    let ends_at = a.manager.get(old.id()).await.unwrap().ends_at();
    assert_eq!(
        ends_at,
        Some(first_use + GRACE),
        "B's flush ended the old key at its first use plus the grace"
    );
    assert!(
        !b.store.contains(old.id()),
        "B's cache dropped the old record in the write itself"
    );
    // A hears of it through the listener, as of a revocation.
    let start = Instant::now();
    while a.store.contains(old.id()) {
        assert!(
            start.elapsed() < DEADLINE,
            "A's listener must evict the ended key within {DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // Within the grace both still accept it; at its end both refuse it.
    clock.set(first_use + GRACE - Duration::from_secs(1));
    assert_eq!(a.call(&old).await, StatusCode::OK, "A, within the grace");
    assert_eq!(b.call(&old).await, StatusCode::OK, "B, within the grace");
    clock.set(first_use + GRACE);
    assert_eq!(
        a.call(&old).await,
        StatusCode::UNAUTHORIZED,
        "A, at the end"
    );
    assert_eq!(
        b.call(&old).await,
        StatusCode::UNAUTHORIZED,
        "B, at the end"
    );
    assert_eq!(a.call(&new).await, StatusCode::OK, "the new key works on A");
    a.stop_listening().await;
    b.stop_listening().await;
}

/// Instance A's clock runs 120 s ahead of B's and C's: the revocation time A writes
/// lies in their future, and must not matter. B had the keys cached (the listener
/// evicts them); C reads them from the database for the first time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_revoked_by_an_instance_whose_clock_runs_ahead_is_refused_by_the_others_at_once() {
    let ahead = ManualClock::new(SystemTime::now() + Duration::from_secs(120));
    let a = Instance::with_clock(fresh_store(pool().await).await, ahead);
    let mut b = Instance::new(same_table(a.store.get_ref(), pool().await));
    let c = Instance::new(same_table(a.store.get_ref(), pool().await));
    b.listen().await;
    let revoked = a.create("revoked").await;
    let leaked = a.create("leaked").await;
    for key in [&revoked, &leaked] {
        // Once the creation's notification reaches B's id filter.
        b.wait_for(key, StatusCode::OK).await;
        assert!(b.store.contains(key.id()), "instance B caches the key");
    }
    a.manager.revoke(revoked.id()).await.expect("revoke on A");
    a.manager
        .rotate(leaked.id(), Some(Duration::ZERO))
        .await
        .expect("rotate with zero overlap on A");
    for key in [&revoked, &leaked] {
        assert_eq!(c.call(key).await, StatusCode::UNAUTHORIZED, "{}", key.id());
        // Within the listener's bound, not the 120 s of skew: DEADLINE is 10 s.
        b.wait_for(key, StatusCode::UNAUTHORIZED).await;
    }
    b.stop_listening().await;
}

#[tokio::test]
async fn a_backwards_clock_step_after_a_revocation_does_not_revive_the_key() {
    let clock = ManualClock::starting_now();
    let a = Instance::with_clock(fresh_store(pool().await).await, clock.clone());
    let revoked = a.create("revoked").await;
    let leaked = a.create("leaked").await;
    a.manager.revoke(revoked.id()).await.unwrap();
    a.manager
        .rotate(leaked.id(), Some(Duration::ZERO))
        .await
        .unwrap();
    clock.set(clock.now() - Duration::from_secs(5));
    for key in [&revoked, &leaked] {
        assert_eq!(a.call(key).await, StatusCode::UNAUTHORIZED, "{}", key.id());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listener_reconnects_after_its_connection_is_terminated_and_clears_the_cache() {
    let a = Instance::new(fresh_store(pool().await).await);
    let mut b = Instance::new(same_table(a.store.get_ref(), pool().await));
    let first_pid = b.listen().await;

    let missed = a.create("missed").await;
    b.wait_for(&missed, StatusCode::OK).await;
    // A revocation whose notification B never gets (as if sent while B was
    // reconnecting): B keeps serving its cached record.
    let revoke_silently = format!(
        "UPDATE \"{}\".\"{}\" SET revoked_at = now() WHERE id = $1",
        a.store.get_ref().schema(),
        a.store.get_ref().table()
    );
    sqlx::query(sqlx::AssertSqlSafe(revoke_silently))
        .bind(missed.id().as_str())
        .execute(a.store.get_ref().pool())
        .await
        .unwrap();
    assert_eq!(b.call(&missed).await, StatusCode::OK, "still cached on B");

    let terminated: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(first_pid)
        .fetch_one(a.store.get_ref().pool())
        .await
        .unwrap();
    assert!(terminated);
    // After reconnecting, B clears its cache, so the silent revocation is seen.
    b.wait_for(&missed, StatusCode::UNAUTHORIZED).await;
    let second_pid = listener_pid(b.store.get_ref(), Some(first_pid)).await;
    assert_ne!(first_pid, second_pid);

    // And B listens again, once its new snapshot is applied.
    wait_for_filter(&b.store, tower_apikey::store::cached::FilterState::Fresh).await;
    let later = a.create("later").await;
    b.wait_for(&later, StatusCode::OK).await;
    assert!(b.store.contains(later.id()));
    a.manager.revoke(later.id()).await.unwrap();
    b.wait_for(&later, StatusCode::UNAUTHORIZED).await;
    b.stop_listening().await;
}

#[tokio::test]
async fn a_stopped_listener_releases_its_connection() {
    let mut b = Instance::new(fresh_store(pool().await).await);
    let pid = b.listen().await;
    b.stop_listening().await;
    // The connection goes back to the pool after UNLISTEN, or is closed.
    let start = Instant::now();
    loop {
        let still: Option<String> =
            sqlx::query_scalar("SELECT query FROM pg_stat_activity WHERE pid = $1")
                .bind(pid)
                .fetch_optional(b.store.get_ref().pool())
                .await
                .unwrap();
        if still.is_none_or(|query| !query.starts_with("LISTEN")) {
            break;
        }
        assert!(start.elapsed() < DEADLINE, "the listener's LISTEN stayed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_row_that_is_not_a_valid_record_is_corrupt_not_missing() {
    let store = fresh_store(pool().await).await;
    let record = sample_record("valid", &[], 0);
    store.insert(&record).await.unwrap();
    let spoil = format!(
        "UPDATE \"{}\".\"{}\" SET scopes = ARRAY['Not A Scope'] WHERE id = $1",
        store.schema(),
        store.table()
    );
    sqlx::query(sqlx::AssertSqlSafe(spoil))
        .bind(record.id().as_str())
        .execute(store.pool())
        .await
        .unwrap();
    match store.lookup(record.id()).await {
        Err(StoreError::Corrupt(why)) => assert!(why.contains(record.id().as_str()), "{why}"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert!(matches!(store.list().await, Err(StoreError::Corrupt(_))));
}

#[tokio::test]
async fn debug_shows_the_table_and_never_a_digest() {
    let store = fresh_store(pool().await).await;
    let shown = format!("{store:?}");
    assert_eq!(
        shown,
        format!("PgKeyStore {{ table: {SCHEMA}.{} }}", store.table())
    );
    let cached = format!("{:?}", CachedKeyStore::new(store));
    assert!(cached.contains("PgKeyStore"), "{cached}");
}

/// A PostgreSQL cluster of this test's own, in a temporary directory, that the test
/// may stop without disturbing other tests.
struct ThrowawayCluster {
    dir: PathBuf,
    bindir: PathBuf,
    port: u16,
    as_postgres: bool,
}

impl ThrowawayCluster {
    fn create() -> Self {
        let bindir = std::env::var_os("APIKEY_TEST_PG_BINDIR")
            .map(PathBuf::from)
            .or_else(newest_installed_bindir)
            .expect(
                "the outage test needs PostgreSQL's server binaries: set APIKEY_TEST_PG_BINDIR \
                 or install Debian's postgresql package (scripts/test does)",
            );
        let uid = Command::new("id").arg("-u").output().expect("run id -u");
        // PostgreSQL refuses to run as root; as root (CI), run it as `postgres`.
        let as_postgres = String::from_utf8_lossy(&uid.stdout).trim() == "0";
        let dir = std::env::temp_dir().join(format!(
            "apikey-outage-{}-{}",
            std::process::id(),
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        if as_postgres {
            run(Command::new("chown").arg("postgres:postgres").arg(&dir));
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let cluster = Self {
            dir,
            bindir,
            port,
            as_postgres,
        };
        let data = cluster.dir.join("data");
        run(cluster
            .command("initdb")
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-D"])
            .arg(&data));
        cluster
    }

    fn command(&self, program: &str) -> Command {
        let program = self.bindir.join(program);
        if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        }
    }

    fn start(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.display()
        );
        run(self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.dir.join("data"))
            .arg("-l")
            .arg(self.dir.join("log"))
            .args(["-w", "-o", &options, "start"]));
    }

    fn stop(&self) {
        run(self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-w", "-m", "fast", "stop"]));
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for ThrowawayCluster {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-w", "-m", "immediate", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn newest_installed_bindir() -> Option<PathBuf> {
    let mut versions: Vec<u32> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    versions.sort_unstable();
    let bindir = PathBuf::from(format!("/usr/lib/postgresql/{}/bin", versions.last()?));
    bindir.join("pg_ctl").exists().then_some(bindir)
}

fn run(command: &mut Command) {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_gives_503_never_401_and_service_resumes_after_restart() {
    let cluster = tokio::task::spawn_blocking(|| {
        let cluster = ThrowawayCluster::create();
        cluster.start();
        cluster
    })
    .await
    .unwrap();
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(1))
        .connect(&cluster.url())
        .await
        .expect("connect to the throwaway cluster");
    let store = PgKeyStore::new(pool);
    store.migrate().await.unwrap();
    let instance = Instance::new(store);
    let cached = instance.create("cached").await;
    let cold = instance.create("cold").await;
    assert_eq!(instance.call(&cached).await, StatusCode::OK);
    assert!(!instance.store.contains(cold.id()));

    let cluster = tokio::task::spawn_blocking(move || {
        cluster.stop();
        cluster
    })
    .await
    .unwrap();

    // A cached key keeps working until its TTL; an uncached one gets 503, quickly.
    assert_eq!(instance.call(&cached).await, StatusCode::OK);
    let start = Instant::now();
    let status = tokio::time::timeout(DEADLINE, instance.call(&cold))
        .await
        .expect("a request during an outage must not hang");
    println!(
        "outage: uncached key answered {status} after {:?} (pool acquire timeout 1 s)",
        start.elapsed()
    );
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    match instance.store.get_ref().lookup(cold.id()).await {
        Err(StoreError::Timeout(_) | StoreError::Unavailable(_)) => {}
        other => panic!("an outage must be an error, never a missing key: {other:?}"),
    }
    assert!(
        !instance.store.contains(cold.id()),
        "errors are never cached"
    );

    let cluster = tokio::task::spawn_blocking(move || {
        cluster.start();
        cluster
    })
    .await
    .unwrap();
    let recovery = instance.wait_for(&cold, StatusCode::OK).await;
    println!("outage: served again {recovery:?} after the restart");
    drop(instance);
    tokio::task::spawn_blocking(move || drop(cluster))
        .await
        .unwrap();
}

#[path = "../../examples/demo/app.rs"]
#[allow(dead_code)]
mod app;

/// One demo process (`examples/demo` with `--database-url`): its app over a cache on its
/// own pool, served on loopback, with its revocation listener.
struct DemoInstance {
    addr: std::net::SocketAddr,
    admin_key: String,
    tracker: tower_apikey::usage::UsageTracker,
    listening: (oneshot::Sender<()>, JoinHandle<()>),
}

impl DemoInstance {
    async fn start(store: PgKeyStore) -> Self {
        let store = CachedKeyStore::new(store);
        let (stop, stopped) = oneshot::channel::<()>();
        let listening = tokio::spawn(store.feed_listener().run(async {
            let _ = stopped.await;
        }));
        listener_pid(store.get_ref(), None).await;
        let demo = app::build(
            store,
            Duration::from_secs(300),
            std::sync::Arc::new(tower_apikey::SystemClock),
            app::FAILURES_PER_MINUTE,
        )
        .await
        .expect("build the demo");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, demo.router).await.unwrap() });
        Self {
            addr,
            admin_key: demo.admin_key.expose_secret().to_owned(),
            tracker: demo.tracker,
            listening: (stop, listening),
        }
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        key: &str,
        json: Option<&str>,
    ) -> (StatusCode, String) {
        use http_body_util::BodyExt;
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<http_body_util::Full<bytes::Bytes>>();
        let mut request = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr))
            .header(AUTHORIZATION, format!("ApiKey-v2 {key}"));
        if json.is_some() {
            request = request.header("content-type", "application/json");
        }
        let body = http_body_util::Full::from(json.unwrap_or_default().to_owned());
        let response = client.request(request.body(body).unwrap()).await.unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }
}

fn json_field(body: &str, field: &str) -> String {
    let value: serde_json::Value = serde_json::from_str(body).expect("a JSON body");
    value[field].as_str().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_demo_instances_on_one_database_act_as_one_system() {
    let a_store = fresh_store(pool().await).await;
    let b_store = same_table(&a_store, pool().await);
    let a = DemoInstance::start(a_store).await;
    let b = DemoInstance::start(b_store).await;

    // A key created on A works on B.
    let (status, created) = a
        .send(
            "POST",
            "/admin/keys",
            &a.admin_key,
            Some(r#"{"name":"shared","scopes":["reports:read"]}"#),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let key = json_field(&created, "key");
    let id = json_field(&created, "id");
    // Once the creation's notification reaches B's id filter, in milliseconds.
    let start = Instant::now();
    while b.send("GET", "/reports", &key, None).await.0 != StatusCode::OK {
        assert!(
            start.elapsed() < DEADLINE,
            "B never accepted the key created on A"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // B's last-used time is visible on A.
    b.tracker.flush().await.expect("flush B's last-used times");
    let (_, record) = a
        .send("GET", &format!("/admin/keys/{id}"), &a.admin_key, None)
        .await;
    assert!(!json_field(&record, "last_used_at").is_empty(), "{record}");
    // A revocation on A is refused on B.
    let (status, _) = a
        .send("DELETE", &format!("/admin/keys/{id}"), &a.admin_key, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let start = Instant::now();
    while b.send("GET", "/reports", &key, None).await.0 != StatusCode::UNAUTHORIZED {
        assert!(
            start.elapsed() < DEADLINE,
            "B never refused the key revoked on A"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for instance in [a, b] {
        let (stop, task) = instance.listening;
        stop.send(()).unwrap();
        task.await.unwrap();
    }
}

/// Polls B with `key` until `path` answers `status`; how long it took.
async fn wait_on(
    instance: &DemoInstance,
    path: &str,
    key: &str,
    status: StatusCode,
    what: &str,
) -> Duration {
    let start = Instant::now();
    loop {
        if instance.send("GET", path, key, None).await.0 == status {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < DEADLINE,
            "{what}: no {status} within {DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// `PATCH /keys/{id}` on A reaches B through the same notification as a revocation: B
/// caches records for its 10-minute hit TTL, so only the notification can make it see
/// the new limits within the test's deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patch_on_one_instance_is_enforced_by_another_within_a_second() {
    let a_store = fresh_store(pool().await).await;
    let b_store = same_table(&a_store, pool().await);
    let a = DemoInstance::start(a_store).await;
    let b = DemoInstance::start(b_store).await;

    // One request an hour: the second one on B is refused.
    let (status, created) = a
        .send(
            "POST",
            "/admin/keys",
            &a.admin_key,
            Some(
                r#"{"name":"limited","scopes":["reports:read"],
                    "rate_limit":{"requests":1,"per_secs":3600}}"#,
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let key = json_field(&created, "key");
    let id = json_field(&created, "id");
    wait_on(
        &b,
        "/reports",
        &key,
        StatusCode::OK,
        "B accepts the new key",
    )
    .await;
    assert_eq!(
        b.send("GET", "/reports", &key, None).await.0,
        StatusCode::TOO_MANY_REQUESTS,
        "B enforces the rate limit it cached"
    );

    let patch = |json: &'static str| {
        let path = format!("/admin/keys/{id}");
        let a = &a;
        async move {
            let (status, body) = a.send("PATCH", &path, &a.admin_key, Some(json)).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            body
        }
    };
    // Lifting the limit on A lets B admit the key again.
    let body = patch(r#"{"rate_limit": null, "name": "unlimited"}"#).await;
    let record: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(record.get("rate_limit").is_none(), "{body}");
    let lifted = wait_on(&b, "/reports", &key, StatusCode::OK, "B lifts the limit").await;
    // Restricting the key to another address makes B refuse it (the test client is
    // 127.0.0.1).
    patch(r#"{"allowed_ips": ["192.0.2.0/24"]}"#).await;
    let restricted = wait_on(
        &b,
        "/reports",
        &key,
        StatusCode::FORBIDDEN,
        "B restricts the key",
    )
    .await;
    // And clearing the allowlist lets it through once more; B's records show the change.
    patch(r#"{"allowed_ips": null}"#).await;
    wait_on(
        &b,
        "/reports",
        &key,
        StatusCode::OK,
        "B clears the allowlist",
    )
    .await;
    let (_, shown) = b
        .send("GET", &format!("/admin/keys/{id}"), &b.admin_key, None)
        .await;
    assert_eq!(json_field(&shown, "name"), "unlimited", "{shown}");
    println!("PATCH propagation A -> B: limit lifted in {lifted:?}, restricted in {restricted:?}");
    for instance in [a, b] {
        let (stop, task) = instance.listening;
        stop.send(()).unwrap();
        task.await.unwrap();
    }
}

/// A store that counts the lookups reaching PostgreSQL, and passes its feed through.
#[derive(Debug, Clone)]
struct Counted {
    store: PgKeyStore,
    lookups: std::sync::Arc<AtomicUsize>,
}

impl Counted {
    fn new(store: PgKeyStore) -> Self {
        Self {
            store,
            lookups: std::sync::Arc::default(),
        }
    }

    fn lookups(&self) -> usize {
        self.lookups.load(Ordering::SeqCst)
    }
}

#[async_trait::async_trait]
impl KeyStore for Counted {
    async fn lookup(
        &self,
        id: &tower_apikey::KeyId,
    ) -> Result<Option<tower_apikey::KeyRecord>, StoreError> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        self.store.lookup(id).await
    }
}

#[async_trait::async_trait]
impl tower_apikey::store::feed::KeyIdFeed for Counted {
    async fn subscribe(&self) -> Result<tower_apikey::store::feed::KeyIdSubscription, StoreError> {
        self.store.subscribe().await
    }

    async fn existing(
        &self,
        ids: &[tower_apikey::KeyId],
    ) -> Result<Vec<tower_apikey::KeyId>, StoreError> {
        self.store.existing(ids).await
    }
}

/// Waits until `cache`'s id filter is in `state`.
async fn wait_for_filter<S: KeyStore>(
    cache: &CachedKeyStore<S>,
    state: tower_apikey::store::cached::FilterState,
) {
    let start = Instant::now();
    while cache.stats().filter != state {
        assert!(
            start.elapsed() < DEADLINE,
            "the id filter never became {state:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A well-formed key with a fresh random id: what a flood of forged keys sends.
fn forged() -> PlaintextKey {
    PlaintextKey::generate(&tower_apikey::key::KeyPrefix::default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_ids_never_reach_the_database_and_keys_created_elsewhere_get_through() {
    let a = Instance::new(fresh_store(pool().await).await);
    let counted = Counted::new(same_table(a.store.get_ref(), pool().await));
    // An hour-long miss TTL: only the created-key notification can let B see a key
    // that B was asked about before it existed.
    let b = CachedKeyStore::builder(counted.clone())
        .miss_ttl(Duration::from_secs(3600))
        .build();
    let existing = a.create("before the listener").await;
    let (stop, stopped) = oneshot::channel::<()>();
    let listening = tokio::spawn(b.feed_listener().run(async {
        let _ = stopped.await;
    }));
    wait_for_filter(&b, tower_apikey::store::cached::FilterState::Fresh).await;
    let layer = ApiKeyV2Layer::new(b.clone());
    let call = |key: &PlaintextKey| {
        let service = layer.layer(service_fn(|_: Request<String>| async {
            Ok::<_, Infallible>(Response::new(String::new()))
        }));
        let request = Request::builder()
            .header(AUTHORIZATION, format!("ApiKey-v2 {}", key.expose_secret()))
            .body(String::new())
            .unwrap();
        async move { service.oneshot(request).await.unwrap().status() }
    };

    const FORGED: usize = 20_000;
    let started = Instant::now();
    // In waves, as a flood arrives: while the feed is up, a ruled-out id waits a few
    // milliseconds for an announcement that never comes (at most 256 at once).
    for _ in 0..FORGED / 250 {
        let wave: Vec<_> = (0..250).map(|_| call(&forged())).collect();
        let mut set = tokio::task::JoinSet::new();
        for answer in wave {
            set.spawn(answer);
        }
        while let Some(status) = set.join_next().await {
            assert_eq!(status.unwrap(), StatusCode::UNAUTHORIZED);
        }
    }
    // At most 0.1 % false positives (twice that leaves room for chance), plus the
    // filter's passes: 20 ids a second it does not hold still reach the store, so
    // that a key created a moment ago elsewhere is never refused (DESIGN §6).
    let seconds = started.elapsed().as_secs() as usize + 1;
    let asked = counted.lookups();
    assert!(
        asked <= FORGED / 500 + 20 * (seconds + 1),
        "{asked} of {FORGED} forged ids reached the database in about {seconds} s"
    );
    let stats = b.stats();
    assert_eq!(stats.entries, asked as u64, "refused ids are not cached");
    assert_eq!(stats.loads_in_flight, 0);
    println!(
        "{FORGED} forged keys: {asked} reached the database; filter holds {} ids in {} bytes",
        stats.filter_ids, stats.filter_bytes
    );

    // The snapshot held the key created before the listener started.
    assert_eq!(call(&existing).await, StatusCode::OK);
    // A key created on A, tried on B before it exists there (a cached miss would
    // last an hour), is accepted once the notification arrives.
    let mut windows = Vec::new();
    for n in 0..20 {
        let key = a.create(&format!("created elsewhere {n}")).await;
        let start = Instant::now();
        while call(&key).await != StatusCode::OK {
            assert!(
                start.elapsed() < DEADLINE,
                "B never accepted a key created on A"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        windows.push(start.elapsed());
    }
    windows.sort();
    println!(
        "created on A to accepted on B over 20 keys: p50 {:?}, max {:?}",
        percentile(&windows, 0.5),
        windows[19]
    );
    stop.send(()).unwrap();
    listening.await.unwrap();
    assert_eq!(
        b.stats().filter,
        tower_apikey::store::cached::FilterState::Off,
        "a stopped listener drops the filter: nothing is locked out"
    );
}

/// Waits until `instance`'s id filter holds at least `n` ids.
async fn wait_for_ids(instance: &Instance, n: usize) {
    let start = Instant::now();
    while instance.store.stats().filter_ids < n {
        assert!(start.elapsed() < DEADLINE, "the created ids never arrived");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Creates `keys` keys on `creator`, each used on `user` straight after its creation
/// answered; what `user` answered, by status.
async fn create_and_use_at_once(
    creator: &Instance,
    user: &Instance,
    keys: usize,
) -> std::collections::BTreeMap<u16, usize> {
    let mut answers = std::collections::BTreeMap::new();
    for n in 0..keys {
        let key = creator.create(&format!("used at once {n}")).await;
        *answers.entry(user.call(&key).await.as_u16()).or_insert(0) += 1;
    }
    answers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn m1_a_key_created_on_one_instance_is_accepted_at_once_by_another() {
    // The red team's feed race: B creates, A is asked before the notification can
    // have arrived. A's filter must never refuse a key that exists (DESIGN §6).
    let mut a = Instance::new(fresh_store(pool().await).await);
    let mut b = Instance::new(same_table(a.store.get_ref(), pool().await));
    a.listen().await;
    // Every instance follows the store, B too: B answers a creation once its own
    // notification came back, when A has had it as well.
    b.listen().await;
    let answers = create_and_use_at_once(&b, &a, 300).await;
    assert_eq!(answers, [(200, 300)].into(), "first round: {answers:?}");

    // Again while A's filter fills up and is rebuilt larger: 4,200 keys created by
    // another task push it past its 4,096 ids meanwhile.
    let before = a.store.stats().filter_capacity;
    let filler = Instance::new(same_table(a.store.get_ref(), pool().await));
    let filling = tokio::spawn(async move {
        for n in 0..4_200 {
            filler.create(&format!("filler {n}")).await;
        }
    });
    let mut answers = std::collections::BTreeMap::new();
    let mut rounds = 0;
    while !filling.is_finished() || rounds == 0 {
        for (status, count) in create_and_use_at_once(&b, &a, 300).await {
            *answers.entry(status).or_insert(0) += count;
        }
        rounds += 1;
    }
    filling.await.unwrap();
    let after = a.store.stats();
    assert!(
        after.filter_capacity > before,
        "the filter was rebuilt larger ({before} -> {})",
        after.filter_capacity
    );
    assert_eq!(
        answers,
        [(200, 300 * rounds)].into(),
        "while the filter re-snapshots: {answers:?}"
    );
    a.stop_listening().await;
    b.stop_listening().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l6_forged_notifications_neither_fill_the_filter_nor_clear_the_caches() {
    // Any role that can connect can NOTIFY. Ids that arrive that way are checked
    // against the table before the filter trusts them.
    let mut a = Instance::new(fresh_store(pool().await).await);
    let b = Instance::new(same_table(a.store.get_ref(), pool().await));
    a.listen().await;
    let initial = a.store.stats().filter_ids;
    let key = b.create("cached").await;
    wait_for_ids(&a, initial + 1).await;
    assert_eq!(a.call(&key).await, StatusCode::OK);
    assert!(a.store.contains(key.id()));
    let before = a.store.stats();
    // 10,000 forged ids, more than the filter was sized for, in one statement.
    let channel = a.store.get_ref().created_channel().to_owned();
    let forged_ids: Vec<String> = (0..10_000).map(|_| forged().id().to_string()).collect();
    sqlx::query("SELECT pg_notify($1, id) FROM unnest($2::text[]) AS id")
        .bind(&channel)
        .bind(&forged_ids)
        .execute(a.store.get_ref().pool())
        .await
        .unwrap();
    // A real key created after them: notifications arrive in commit order, so once
    // its id is in the filter, the forged ones before it have been dealt with.
    let marker = b.create("after the forged ids").await;
    wait_for_ids(&a, before.filter_ids + 1).await;
    let after = a.store.stats();
    assert_eq!(
        after.filter_ids,
        before.filter_ids + 1,
        "only the real key joined the filter"
    );
    assert_eq!(
        after.filter_capacity, before.filter_capacity,
        "no larger filter"
    );
    // A new snapshot (a resubscription) would have cleared the cache.
    assert!(a.store.contains(key.id()), "the cache was not cleared");
    assert_eq!(a.call(&marker).await, StatusCode::OK);
    a.stop_listening().await;
}

/// Instance A, and a cache B over the same table (counting its lookups) whose feed
/// listener's connection was killed: B's filter is stale, and stays so (an hour's
/// backoff).
struct StaleFeed {
    a: Instance,
    counted: Counted,
    b: CachedKeyStore<Counted>,
    stop: oneshot::Sender<()>,
    listening: JoinHandle<()>,
}

impl StaleFeed {
    /// B lets `passes` ids a second that its filter does not hold reach the store.
    async fn start(passes: u32) -> Self {
        let a = Instance::new(fresh_store(pool().await).await);
        let counted = Counted::new(same_table(a.store.get_ref(), pool().await));
        let b = CachedKeyStore::builder(counted.clone())
            .filter_passes_per_sec(passes)
            .build();
        let (stop, stopped) = oneshot::channel::<()>();
        let listening = tokio::spawn(
            b.feed_listener()
                .reconnect_backoff(Duration::from_secs(3600), Duration::from_secs(3600))
                .run(async {
                    let _ = stopped.await;
                }),
        );
        wait_for_filter(&b, tower_apikey::store::cached::FilterState::Fresh).await;
        let pid = listener_pid(&counted.store, None).await;
        let terminated: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
            .bind(pid)
            .fetch_one(a.store.get_ref().pool())
            .await
            .unwrap();
        assert!(terminated);
        wait_for_filter(&b, tower_apikey::store::cached::FilterState::Stale).await;
        Self {
            a,
            counted,
            b,
            stop,
            listening,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_feed_leaves_a_stale_filter_that_still_lets_new_keys_through() {
    let StaleFeed {
        a,
        counted,
        b,
        stop,
        listening,
    } = StaleFeed::start(5).await;

    // A key created while B hears nothing: refused as "busy" (503) or let through,
    // never locked out. It gets through within a few tries, then stays known.
    let key = a.create("created while the feed is down").await;
    let start = Instant::now();
    loop {
        match b.lookup(key.id()).await {
            Ok(Some(_)) => break,
            Err(StoreError::Overloaded) => {}
            other => panic!("a key created while the feed is down got {other:?}"),
        }
        assert!(start.elapsed() < DEADLINE, "the new key never got through");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    b.invalidate(key.id());
    assert!(
        b.lookup(key.id()).await.unwrap().is_some(),
        "now in the filter"
    );
    // Forged ids reach the database at most 5 a second.
    let before = counted.lookups();
    let started = Instant::now();
    for _ in 0..1_000 {
        let _ = b.lookup(forged().id()).await;
    }
    let seconds = started.elapsed().as_secs() + 1;
    let asked = counted.lookups() - before;
    assert!(
        asked as u64 <= 5 * (seconds + 1),
        "{asked} forged ids reached the database in about {seconds} s"
    );
    stop.send(()).unwrap();
    listening.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l10_a_flood_of_forged_ids_during_a_feed_outage_does_not_starve_a_new_key() {
    let StaleFeed {
        a,
        counted: _,
        b,
        stop,
        listening,
    } = StaleFeed::start(0).await;

    // No passes at all: as if a flood took every one of them, so that only the
    // listener's check of the shed ids can let the new key in. And forged ids for as
    // long as the test runs, which that check must not let crowd the key out.
    let flooding = Arc::new(AtomicBool::new(true));
    let flood = {
        let (b, flooding) = (b.clone(), Arc::clone(&flooding));
        tokio::spawn(async move {
            // 1,000 every 50 ms: 20,000 a second.
            let mut tick = tokio::time::interval(Duration::from_millis(50));
            let mut sent = 0u64;
            while flooding.load(Ordering::Relaxed) {
                tick.tick().await;
                for _ in 0..1_000 {
                    let _ = b.lookup(forged().id()).await;
                }
                sent += 1_000;
            }
            sent
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    // A key created during the outage, retried as a client told "Retry-After" would.
    let key = a.create("created during the outage, under a flood").await;
    let start = Instant::now();
    let mut tries = 0;
    let found = loop {
        tries += 1;
        match b.lookup(key.id()).await {
            Ok(Some(_)) => break true,
            Err(StoreError::Overloaded) => {}
            other => panic!("a key created while the feed is down got {other:?}"),
        }
        // The shed ids are checked every 100 ms, from a sample that keeps each with a
        // fair chance: a few tries, never starved for seconds.
        if tries >= 30 {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    flooding.store(false, Ordering::Relaxed);
    let sent = flood.await.unwrap();
    let seconds = start.elapsed().as_secs_f64() + 0.3;
    println!(
        "L10: {sent} forged ids in {seconds:.1} s; the new key got through after {tries} tries"
    );
    assert!(
        found,
        "the new key was starved by {sent} forged ids ({tries} tries)"
    );
    assert!(
        sent as f64 > 1_000.0 * seconds,
        "the flood outran the passes"
    );
    stop.send(()).unwrap();
    listening.await.unwrap();
}

// ---------------------------------------------------------------------------------------
// migrate() trusts nothing it finds (issue 13, part 1). The attacker and the split
// migrate/serve setup need roles of their own: `scripts/test` gives `apikey_test`
// CREATEROLE, and each role is made here, unique to the test, and dropped at its end.

/// Runs one or more statements that take no parameters.
async fn exec(pool: &PgPool, sql: impl Into<String>) {
    let sql = sql.into();
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone()))
        .execute(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// `current_user` on `pool`.
async fn role_of(pool: &PgPool) -> String {
    sqlx::query_scalar("SELECT current_user::text")
        .fetch_one(pool)
        .await
        .unwrap()
}

/// A login role of one test's own (roles are shared by the whole cluster, so its name
/// is unique). The test role is made a member, so that it can drop what the role owns.
struct TestRole {
    name: String,
}

impl TestRole {
    async fn create(admin: &PgPool, what: &str) -> Self {
        drop_stale_roles(admin).await;
        let name = format!("apikey_{}_{what}", unique_table());
        let created = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "CREATE ROLE \"{name}\" LOGIN PASSWORD '{name}'; GRANT \"{name}\" TO CURRENT_USER"
        )))
        .execute(admin)
        .await;
        if let Err(e) = created {
            panic!(
                "cannot create the test role {name} ({e}): the role of \
                 APIKEY_TEST_DATABASE_URL needs CREATEROLE (scripts/test grants it)"
            );
        }
        Self { name }
    }

    /// A pool connected as this role.
    async fn pool(&self) -> PgPool {
        let options: sqlx::postgres::PgConnectOptions = database_url().parse().unwrap();
        PgPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options.username(&self.name).password(&self.name))
            .await
            .unwrap_or_else(|e| panic!("cannot connect as {}: {e}", self.name))
    }

    /// Drops everything the role owns and holds in this database, then the role.
    async fn drop(self, admin: &PgPool) {
        drop_role(admin, &self.name).await;
    }
}

async fn drop_role(admin: &PgPool, name: &str) {
    exec(
        admin,
        format!("DROP OWNED BY \"{name}\" CASCADE; DROP ROLE \"{name}\""),
    )
    .await;
}

/// Drops the roles (and schemas) left by runs more than an hour old, once per process.
async fn drop_stale_roles(admin: &PgPool) {
    static DONE: AtomicBool = AtomicBool::new(false);
    if DONE.swap(true, Ordering::SeqCst) {
        return;
    }
    let cutoff = unix_now().saturating_sub(3600);
    let stale = |name: &String, prefix: &str| {
        name.strip_prefix(prefix)
            .and_then(|rest| rest.split('_').next())
            .and_then(|secs| secs.parse::<u64>().ok())
            .is_some_and(|secs| secs < cutoff)
    };
    let roles: Vec<String> = sqlx::query_scalar(
        "SELECT rolname::text FROM pg_roles WHERE pg_has_role(current_user, oid, 'USAGE') \
         AND rolname ~ '^apikey_t[0-9]+_'",
    )
    .fetch_all(admin)
    .await
    .unwrap();
    for role in roles.iter().filter(|r| stale(r, "apikey_t")) {
        drop_role(admin, role).await;
    }
    let schemas: Vec<String> =
        sqlx::query_scalar("SELECT nspname::text FROM pg_namespace WHERE nspname ~ '^st[0-9]+_'")
            .fetch_all(admin)
            .await
            .unwrap();
    for schema in schemas.iter().filter(|s| stale(s, "st")) {
        exec(admin, format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE")).await;
    }
}

/// A new schema, owned by the test role (which owns the database, so it is trusted).
async fn fresh_schema(admin: &PgPool) -> String {
    let schema = format!("s{}", unique_table());
    exec(admin, format!("CREATE SCHEMA \"{schema}\"")).await;
    schema
}

/// `"schema"."table"` of `store`.
fn qualified(store: &PgKeyStore) -> String {
    format!("\"{}\".\"{}\"", store.schema(), store.table())
}

#[tokio::test]
async fn a_squatted_table_with_a_planted_key_and_a_trigger_is_refused_and_left_as_it_is() {
    let admin = pool().await;
    let schema = fresh_schema(&admin).await;
    // PostgreSQL 14 and older let every role create in `public`; the squatter gets that.
    let squatter = TestRole::create(&admin, "squatter").await;
    exec(
        &admin,
        format!(
            "GRANT USAGE, CREATE ON SCHEMA \"{schema}\" TO \"{}\"",
            squatter.name
        ),
    )
    .await;

    // The squatter creates the table first, exactly as migrate() would, plants an
    // admin key, and adds a trigger that undoes every revocation.
    let squatter_pool = squatter.pool().await;
    let squatted = PgKeyStore::new(squatter_pool.clone())
        .with_schema(&schema)
        .unwrap();
    squatted
        .migrate()
        .await
        .expect("the squatter's own migration");
    let planted = sample_record("planted", &["admin:keys"], 0);
    squatted.insert(&planted).await.unwrap();
    let t = qualified(&squatted);
    exec(
        &squatter_pool,
        format!(
            "DROP INDEX \"{schema}\".api_keys_newest;
             CREATE FUNCTION \"{schema}\".keep_alive() RETURNS trigger LANGUAGE plpgsql
                 AS $$ BEGIN NEW.revoked_at := NULL; RETURN NEW; END $$;
             CREATE TRIGGER keep_alive BEFORE UPDATE ON {t}
                 FOR EACH ROW EXECUTE FUNCTION \"{schema}\".keep_alive()"
        ),
    )
    .await;

    let app = PgKeyStore::new(admin.clone()).with_schema(&schema).unwrap();
    let me = role_of(&admin).await;
    let error = app
        .migrate()
        .await
        .expect_err("a squatted table must be refused");
    let message = error.to_string();
    match error {
        MigrateError::UntrustedOwner {
            object,
            owner,
            current_user,
            configured_owner,
            ..
        } => {
            assert_eq!(object, format!("table {schema}.api_keys"));
            assert_eq!(owner, squatter.name);
            assert_eq!(current_user, me);
            assert_eq!(configured_owner, None);
        }
        other => panic!("expected UntrustedOwner, got {other:?}"),
    }
    for said in [&squatter.name, "drop", "with_owner"] {
        assert!(
            message.contains(said),
            "{message:?} should mention {said:?}"
        );
    }

    // Naming the squatter as the owner does not make its trigger acceptable.
    let error = app
        .clone()
        .with_owner(&squatter.name)
        .migrate()
        .await
        .expect_err("the trigger must be refused");
    assert!(
        matches!(&error, MigrateError::Triggers { triggers, .. } if triggers == &["keep_alive"]),
        "{error:?}"
    );

    // Nothing was changed: no index created, the trigger and the planted key still there.
    let index_exists: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_indexes WHERE schemaname = $1 \
         AND indexname = 'api_keys_newest')",
    )
    .bind(&schema)
    .fetch_one(&admin)
    .await
    .unwrap();
    assert!(!index_exists, "the failed migration created the index");
    let triggers: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_trigger WHERE tgrelid = $1::regclass AND NOT tgisinternal",
    )
    .bind(format!("{schema}.api_keys"))
    .fetch_one(&admin)
    .await
    .unwrap();
    assert_eq!(triggers, 1);
    assert!(squatted.lookup(planted.id()).await.unwrap().is_some());

    squatter_pool.close().await;
    squatter.drop(&admin).await;
    exec(&admin, format!("DROP SCHEMA \"{schema}\" CASCADE")).await;
}

#[tokio::test]
async fn a_schema_owned_by_another_role_is_refused_and_nothing_is_created_in_it() {
    let admin = pool().await;
    let squatter = TestRole::create(&admin, "schema_squatter").await;
    exec(
        &admin,
        format!(
            "GRANT CREATE ON DATABASE \"{}\" TO \"{}\"",
            sqlx::query_scalar::<_, String>("SELECT current_database()::text")
                .fetch_one(&admin)
                .await
                .unwrap(),
            squatter.name
        ),
    )
    .await;
    let schema = format!("s{}", unique_table());
    let squatter_pool = squatter.pool().await;
    exec(&squatter_pool, format!("CREATE SCHEMA \"{schema}\"")).await;

    let store = PgKeyStore::new(admin.clone()).with_schema(&schema).unwrap();
    match store.migrate().await {
        Err(MigrateError::UntrustedOwner { object, owner, .. }) => {
            assert_eq!(object, format!("schema {schema}"));
            assert_eq!(owner, squatter.name);
        }
        other => panic!("expected UntrustedOwner, got {other:?}"),
    }
    let tables: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1")
        .bind(&schema)
        .fetch_one(&admin)
        .await
        .unwrap();
    assert_eq!(tables, 0, "the failed migration created something");

    squatter_pool.close().await;
    squatter.drop(&admin).await; // drops the schema too
}

/// A change made to a migrated table by `sql` (with `{t}` for the quoted table name,
/// `{schema}` and `{table}` for its parts), what
/// `migrate` must then say, and the statement that undoes the change.
struct Tampering {
    sql: &'static str,
    refused: fn(&MigrateError) -> bool,
    undo: &'static str,
}

/// Applies each tampering to a fresh table: migrate() refuses it, and accepts the
/// table again once it is undone.
async fn assert_each_refused(cases: &[Tampering]) {
    for case in cases {
        let store = fresh_store(pool().await).await;
        let t = qualified(&store);
        let table = store.table().to_owned();
        let with_names = |sql: &str| {
            sql.replace("{t}", &t)
                .replace("{schema}", store.schema())
                .replace("{table}", &table)
        };
        exec(store.pool(), with_names(case.sql)).await;
        let error = store
            .migrate()
            .await
            .expect_err(&format!("{} must be refused", case.sql));
        assert!((case.refused)(&error), "{}: {error:?}", case.sql);
        assert!(
            error
                .to_string()
                .contains(&format!("{}.{table}", store.schema())),
            "the error names the table: {error}"
        );
        exec(store.pool(), with_names(case.undo)).await;
        store
            .migrate()
            .await
            .unwrap_or_else(|e| panic!("after undoing {}: {e}", case.sql));
    }
}

#[tokio::test]
async fn a_trigger_rule_or_row_security_that_migrate_did_not_create_is_refused() {
    assert_each_refused(&[
        Tampering {
            sql: "CREATE TRIGGER extra BEFORE UPDATE ON {t} FOR EACH ROW \
                  EXECUTE FUNCTION suppress_redundant_updates_trigger()",
            refused: |e| matches!(e, MigrateError::Triggers { triggers, .. } if triggers == &["extra"]),
            undo: "DROP TRIGGER extra ON {t}",
        },
        Tampering {
            // The rule that silently undoes revocations.
            sql: "CREATE RULE never_revoke AS ON UPDATE TO {t} DO INSTEAD NOTHING",
            refused: |e| matches!(e, MigrateError::Rules { rules, .. } if rules == &["never_revoke"]),
            undo: "DROP RULE never_revoke ON {t}",
        },
        Tampering {
            sql: "ALTER TABLE {t} ENABLE ROW LEVEL SECURITY",
            refused: |e| {
                matches!(e, MigrateError::RowSecurity { enabled: true, policies, .. } if policies.is_empty())
            },
            undo: "ALTER TABLE {t} DISABLE ROW LEVEL SECURITY",
        },
        Tampering {
            sql: "ALTER TABLE {t} FORCE ROW LEVEL SECURITY",
            refused: |e| matches!(e, MigrateError::RowSecurity { enabled: true, .. }),
            undo: "ALTER TABLE {t} NO FORCE ROW LEVEL SECURITY",
        },
        Tampering {
            sql: "CREATE POLICY hide_revoked ON {t} USING (revoked_at IS NULL)",
            refused: |e| {
                matches!(e, MigrateError::RowSecurity { enabled: false, policies, .. } if policies == &["hide_revoked"])
            },
            undo: "DROP POLICY hide_revoked ON {t}",
        },
    ])
    .await;
}

#[tokio::test]
async fn a_table_with_other_columns_or_no_primary_key_is_refused() {
    fn columns(e: &MigrateError, problem: &str) -> bool {
        matches!(e, MigrateError::Columns { problems, .. } if problems == &[problem])
    }
    assert_each_refused(&[
        Tampering {
            // The listing's `_stops` index computes with expires_at's type; migrate
            // recreates it after the undo.
            sql: "DROP INDEX \"{schema}\".\"{table}_stops\"; \
                  ALTER TABLE {t} ALTER COLUMN expires_at TYPE text",
            refused: |e| columns(e, "column expires_at is text, not timestamp with time zone"),
            undo: "ALTER TABLE {t} ALTER COLUMN expires_at TYPE timestamptz \
                   USING expires_at::timestamptz",
        },
        Tampering {
            sql: "ALTER TABLE {t} ALTER COLUMN created_at TYPE timestamp",
            refused: |e| {
                columns(
                    e,
                    "column created_at is timestamp without time zone, not timestamp with time zone",
                )
            },
            undo: "ALTER TABLE {t} ALTER COLUMN created_at TYPE timestamptz",
        },
        Tampering {
            sql: "ALTER TABLE {t} DROP COLUMN name",
            refused: |e| columns(e, "column name (text NOT NULL) is missing"),
            undo: "ALTER TABLE {t} ADD COLUMN name text NOT NULL",
        },
        Tampering {
            sql: "ALTER TABLE {t} ADD COLUMN note text",
            refused: |e| columns(e, "column note (text) is not one of ours"),
            undo: "ALTER TABLE {t} DROP COLUMN note",
        },
        Tampering {
            sql: "ALTER TABLE {t} ALTER COLUMN name DROP NOT NULL",
            refused: |e| columns(e, "column name is nullable, not NOT NULL"),
            undo: "ALTER TABLE {t} ALTER COLUMN name SET NOT NULL",
        },
        Tampering {
            sql: "ALTER TABLE {t} DROP CONSTRAINT {table}_pkey",
            refused: |e| matches!(e, MigrateError::NoPrimaryKey { .. }),
            undo: "ALTER TABLE {t} ADD PRIMARY KEY (id)",
        },
    ])
    .await;
}

#[tokio::test]
async fn a_view_or_a_taken_index_name_is_refused() {
    let admin = pool().await;
    let schema = fresh_schema(&admin).await;
    let view = PgKeyStore::new(admin.clone()).with_schema(&schema).unwrap();
    exec(
        &admin,
        format!("CREATE VIEW {} AS SELECT 'x'::text AS id", qualified(&view)),
    )
    .await;
    match view.migrate().await {
        Err(MigrateError::NotATable { kind, .. }) => assert_eq!(kind, "view"),
        other => panic!("expected NotATable, got {other:?}"),
    }
    exec(&admin, format!("DROP SCHEMA \"{schema}\" CASCADE")).await;

    assert_each_refused(&[
        Tampering {
            sql: "DROP INDEX \"{schema}\".\"{table}_newest\";
              CREATE SEQUENCE \"{schema}\".\"{table}_newest\"",
            refused: |e| matches!(e, MigrateError::IndexNameTaken { .. }),
            undo: "DROP SEQUENCE \"{schema}\".\"{table}_newest\"",
        },
        Tampering {
            sql: "DROP INDEX \"{schema}\".\"{table}_heirs\";
              CREATE SEQUENCE \"{schema}\".\"{table}_heirs\"",
            refused: |e| {
                matches!(e, MigrateError::IndexNameTaken { index, .. } if index.ends_with("_heirs"))
            },
            undo: "DROP SEQUENCE \"{schema}\".\"{table}_heirs\"",
        },
    ])
    .await;
}

#[tokio::test]
async fn a_nullable_column_of_a_newer_release_is_added_to_an_older_table() {
    let store = fresh_store(pool().await).await;
    let old = sample_record("old", &[], 0);
    store.insert(&old).await.unwrap();
    // A table from before `rotated_from` existed.
    exec(
        store.pool(),
        format!("ALTER TABLE {} DROP COLUMN rotated_from", qualified(&store)),
    )
    .await;
    store.migrate().await.expect("the column is added");
    assert_same_record(&store.get(old.id()).await.unwrap().unwrap(), &old);
    let rotated = sample_record("new", &[], 1).with_rotated_from(Some(*old.id()));
    store.insert(&rotated).await.unwrap();
    assert_same_record(&store.get(rotated.id()).await.unwrap().unwrap(), &rotated);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrating_as_an_owner_role_and_serving_with_a_least_privileged_role_works() {
    let admin = pool().await;
    let schema = fresh_schema(&admin).await;
    let (owner, app) = (
        TestRole::create(&admin, "owner").await,
        TestRole::create(&admin, "app").await,
    );
    exec(
        &admin,
        format!(
            "GRANT USAGE, CREATE ON SCHEMA \"{schema}\" TO \"{owner}\";
             GRANT USAGE ON SCHEMA \"{schema}\" TO \"{app}\"",
            owner = owner.name,
            app = app.name
        ),
    )
    .await;
    let owner_pool = owner.pool().await;
    let migrated = PgKeyStore::new(owner_pool.clone())
        .with_schema(&schema)
        .unwrap();
    migrated.migrate().await.expect("the owner migrates");
    exec(
        &owner_pool,
        format!(
            "GRANT SELECT, INSERT, UPDATE ON {} TO \"{}\"",
            qualified(&migrated),
            app.name
        ),
    )
    .await;

    // The serving role verifies at startup; it must name the owner to trust its table.
    let app_pool = app.pool().await;
    let serving = PgKeyStore::new(app_pool.clone())
        .with_schema(&schema)
        .unwrap();
    match serving.migrate().await {
        Err(MigrateError::UntrustedOwner {
            owner: found,
            current_user,
            ..
        }) => {
            assert_eq!(found, owner.name);
            assert_eq!(current_user, app.name);
        }
        other => panic!("expected UntrustedOwner, got {other:?}"),
    }
    let serving = serving.with_owner(&owner.name);
    assert_eq!(serving.owner(), Some(owner.name.as_str()));
    serving
        .migrate()
        .await
        .expect("the app verifies the owner's table");

    // Everything an instance does works with SELECT, INSERT and UPDATE: create, look
    // up, last-used, rotate (SELECT … FOR UPDATE), revoke, and LISTEN.
    let a = Instance::new(serving.clone());
    let mut b = Instance::new(same_table(&serving, app.pool().await));
    b.listen().await;
    let key = a.create("served").await;
    // Once the creation's notification reaches B's id filter.
    b.wait_for(&key, StatusCode::OK).await;
    serving
        .record_usage(&[KeyUsage::new(*key.id(), SystemTime::now())])
        .await
        .expect("last-used as the app");
    let successor = a
        .manager
        .rotate(key.id(), None)
        .await
        .expect("rotate as the app")
        .key;
    b.wait_for(&successor, StatusCode::OK).await;
    a.manager.revoke(key.id()).await.expect("revoke as the app");
    b.wait_for(&key, StatusCode::UNAUTHORIZED).await;
    b.stop_listening().await;

    // Sharing limits needs what the README's table says on the ledger's two tables.
    let lease = tower_apikey::limits::LeaseRequest::new(
        *successor.id(),
        tower_apikey::limits::InstanceId::random(),
        Some(tower_apikey::record::RateLimit::new(10, 60).unwrap()),
        None,
        3,
        SystemTime::now(),
    );
    assert!(
        tower_apikey::limits::LimitBackend::lease(&serving, &lease)
            .await
            .is_err(),
        "no privilege on the ledger yet"
    );
    let (schema_name, table) = (&schema, migrated.table());
    exec(
        &owner_pool,
        format!(
            "GRANT SELECT, INSERT, UPDATE ON \"{schema_name}\".\"{table}_limits\" TO \"{app}\";
             GRANT SELECT, INSERT, UPDATE, DELETE ON \"{schema_name}\".\"{table}_linst\" TO \"{app}\"",
            app = app.name
        ),
    )
    .await;
    let granted = tower_apikey::limits::LimitBackend::lease(&serving, &lease)
        .await
        .expect("lease as the app");
    assert_eq!(granted.granted, 3);

    // A column a newer release adds needs the owner: the app's migration says so.
    exec(
        &owner_pool,
        format!(
            "ALTER TABLE {} DROP COLUMN last_used_at",
            qualified(&migrated)
        ),
    )
    .await;
    match serving.migrate().await {
        Err(MigrateError::NotPermitted { role, action, .. }) => {
            assert_eq!(role, app.name);
            assert!(action.contains("add column last_used_at"), "{action}");
        }
        other => panic!("expected NotPermitted, got {other:?}"),
    }
    migrated.migrate().await.expect("the owner adds the column");
    serving
        .migrate()
        .await
        .expect("and the app trusts it again");

    for pool in [&owner_pool, &app_pool, b.store.get_ref().pool()] {
        pool.close().await;
    }
    owner.drop(&admin).await;
    app.drop(&admin).await;
    exec(&admin, format!("DROP SCHEMA \"{schema}\" CASCADE")).await;
}

/// A TCP proxy to PostgreSQL on loopback that can stop forwarding on the connections
/// it holds, as a network path that silently drops packets does: neither end sees a
/// close. Connections made after that are forwarded as usual.
struct BlackHoleProxy {
    addr: std::net::SocketAddr,
    /// Bumped to black-hole every connection opened before.
    epoch: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl BlackHoleProxy {
    async fn start(upstream: std::net::SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let epoch = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let shared = epoch.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let born = shared.load(Ordering::SeqCst);
                let epoch = shared.clone();
                tokio::spawn(async move {
                    let Ok(server) = tokio::net::TcpStream::connect(upstream).await else {
                        return;
                    };
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    let alive = move || epoch.load(Ordering::SeqCst) == born;
                    tokio::join!(pump(cr, sw, alive.clone()), pump(sr, cw, alive));
                });
            }
        });
        Self { addr, epoch }
    }

    /// From now on, the connections already open carry nothing, and stay open.
    fn black_hole(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
    }
}

/// Copies bytes while `alive()`, then holds both sockets open and silent.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    alive: impl Fn() -> bool,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if !alive() {
            // Swallow everything from now on, answering nothing.
            std::future::pending::<()>().await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// A pool to the test database through `proxy`.
async fn pool_through(proxy: &BlackHoleProxy) -> PgPool {
    let url = url::Url::parse(&database_url()).unwrap();
    let mut url = url.clone();
    url.set_host(Some("127.0.0.1")).unwrap();
    url.set_port(Some(proxy.addr.port())).unwrap();
    PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(2))
        .connect(url.as_str())
        .await
        .expect("connect through the proxy")
}

/// The database's address from `APIKEY_TEST_DATABASE_URL`.
fn database_addr() -> std::net::SocketAddr {
    let url = url::Url::parse(&database_url()).unwrap();
    let host = url.host_str().unwrap_or("127.0.0.1");
    let host = if host == "localhost" {
        "127.0.0.1"
    } else {
        host
    };
    format!("{host}:{}", url.port().unwrap_or(5432))
        .parse()
        .expect("APIKEY_TEST_DATABASE_URL names an IP address or localhost")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_black_holed_listener_is_found_dead_by_its_heartbeat_and_revocation_still_propagates() {
    let a = Instance::new(fresh_store(pool().await).await);
    let proxy = BlackHoleProxy::start(database_addr()).await;
    // B looks keys up directly; only its listener goes through the proxy.
    let b_store = same_table(a.store.get_ref(), pool().await);
    let b = CachedKeyStore::builder(b_store)
        .hit_ttl(Duration::from_secs(3600))
        .stale_hit_ttl(Duration::from_millis(500))
        .build();
    let feed = same_table(a.store.get_ref(), pool_through(&proxy).await)
        .heartbeat(Duration::from_millis(200), Duration::from_millis(300));
    let listener = tower_apikey::store::feed::KeyFeedListener::new(feed)
        .evict_from(&b)
        // Stay down once found dead, so the stale TTL is what is tested.
        .reconnect_backoff(Duration::from_secs(3600), Duration::from_secs(3600));
    let health = listener.health();
    let (stop, stopped) = oneshot::channel::<()>();
    let listening = tokio::spawn(listener.run(async {
        let _ = stopped.await;
    }));
    wait_for_filter(&b, tower_apikey::store::cached::FilterState::Fresh).await;
    assert!(health.is_up());
    let key = a.create("cached on B").await;
    let layer = ApiKeyV2Layer::new(b.clone());
    let call = |key: &PlaintextKey| {
        let service = layer.layer(service_fn(|_: Request<String>| async {
            Ok::<_, Infallible>(Response::new(String::new()))
        }));
        let request = Request::builder()
            .header(AUTHORIZATION, format!("ApiKey-v2 {}", key.expose_secret()))
            .body(String::new())
            .unwrap();
        async move { service.oneshot(request).await.unwrap().status() }
    };
    let start = Instant::now();
    while call(&key).await != StatusCode::OK {
        assert!(start.elapsed() < DEADLINE, "B never accepted the key");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert!(b.contains(key.id()));

    // The path to the listener goes silent; then A revokes, and the notification is
    // lost in the black hole.
    proxy.black_hole();
    let dead_at = Instant::now();
    while health.is_up() {
        assert!(
            dead_at.elapsed() < DEADLINE,
            "the heartbeat never found the dead connection"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!(
        "heartbeat (200 ms + 300 ms) found the black hole after {:?}",
        dead_at.elapsed()
    );
    assert_eq!(
        b.stats().filter,
        tower_apikey::store::cached::FilterState::Stale
    );
    a.manager.revoke(key.id()).await.unwrap();
    let revoked_at = Instant::now();
    while call(&key).await != StatusCode::UNAUTHORIZED {
        assert!(
            revoked_at.elapsed() < DEADLINE,
            "B kept accepting a revoked key while its listener was dead"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!(
        "revoked on A, refused on B with its listener dead after {:?} (stale hit TTL 500 ms)",
        revoked_at.elapsed()
    );
    stop.send(()).unwrap();
    listening.await.unwrap();
    assert!(!health.is_up());
}

/// Lookups that reach the store per second, at steady traffic over `keys` cached keys,
/// with the cache's hit TTL `ttl`; and the most the TTL allows.
async fn lookups_per_second(ttl: Duration, followed: bool) -> (f64, f64) {
    let store = fresh_store(pool().await).await;
    let counted = Counted::new(store.clone());
    let cache = CachedKeyStore::builder(counted.clone())
        .hit_ttl(ttl)
        .unfollowed_hit_ttl(ttl)
        .build();
    let manager = KeyManager::new(store.clone());
    let mut ids = Vec::new();
    for n in 0..50 {
        let created = manager
            .create(NewKey::new(format!("k{n}"), ["a:b"]))
            .await
            .unwrap();
        ids.push(*created.key.id());
    }
    let (stop, stopped) = oneshot::channel::<()>();
    let listening = followed.then(|| {
        tokio::spawn(cache.feed_listener().run(async {
            let _ = stopped.await;
        }))
    });
    if followed {
        wait_for_filter(&cache, tower_apikey::store::cached::FilterState::Fresh).await;
    }
    let before = counted.lookups();
    let start = Instant::now();
    let run = Duration::from_millis(1500);
    while start.elapsed() < run {
        for id in &ids {
            cache.lookup(id).await.unwrap().unwrap();
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let seconds = start.elapsed().as_secs_f64();
    let lookups = (counted.lookups() - before) as f64;
    let _ = stop.send(());
    if let Some(listening) = listening {
        listening.await.unwrap();
    }
    // Each key is loaded at most once per TTL, plus its first load.
    let most = ids.len() as f64 * (seconds / ttl.as_secs_f64()).ceil() + ids.len() as f64;
    assert!(lookups <= most, "{lookups} lookups, at most {most} allowed");
    (lookups / seconds, most / seconds)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_longer_hit_ttl_while_followed_divides_the_lookups_that_reach_the_database() {
    // 30 s against 10 min is a ratio of 20; scaled down to 25 ms against 500 ms so that
    // the test runs in seconds.
    let (short, _) = lookups_per_second(Duration::from_millis(25), false).await;
    let (long, _) = lookups_per_second(Duration::from_millis(500), true).await;
    println!(
        "50 keys under steady traffic: {short:.0} lookups/s with a 25 ms hit TTL, \
         {long:.0} lookups/s with 500 ms while followed (ratio {:.1})",
        short / long
    );
    assert!(long < short, "a longer TTL must not cost more lookups");
}

/// Two instances on one database, each serving the admin router with its own usage
/// tracker: the same key rotating itself on both at once (the default, until the new
/// key's first use) gets one successor (201) and one 409, over HTTP.
#[tokio::test]
async fn one_key_rotating_itself_on_two_instances_at_once_gets_one_successor() {
    let first = fresh_store(pool().await).await;
    let second = same_table(&first, pool().await);
    let manager = KeyManager::new(first.clone());
    let created = manager
        .create(NewKey::new("sync", ["keys:rotate-self"]))
        .await
        .unwrap();
    let mut addrs = Vec::new();
    for store in [first.clone(), second] {
        let router = tower_apikey_admin::router(KeyManager::new(store));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        addrs.push(listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    }
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<hyper::body::Bytes>>();
    let key = created.key.expose_secret().to_owned();
    let rotations = addrs.iter().map(|addr| {
        let request = Request::post(format!("http://{addr}/self/rotate"))
            .header(AUTHORIZATION, format!("ApiKey-v2 {key}"))
            .body(http_body_util::Empty::new())
            .unwrap();
        client.request(request)
    });
    let mut statuses: Vec<StatusCode> = futures_util::future::join_all(rotations)
        .await
        .into_iter()
        .map(|response| response.unwrap().status())
        .collect();
    statuses.sort();
    assert_eq!(statuses, [StatusCode::CREATED, StatusCode::CONFLICT]);
    let heirs: Vec<_> = first
        .list()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.rotated_from() == Some(created.record.id()))
        .collect();
    assert_eq!(heirs.len(), 1, "one successor in the database");
}
