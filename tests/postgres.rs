//! `PgKeyStore`, `CachedKeyStore` over it and `RevocationListener` against a real
//! PostgreSQL. Two pools with a cache each, on one database, stand in for two instances.
//!
//! Needs `APIKEY_TEST_DATABASE_URL` (`scripts/test` provides one) and fails without it.
//! Each test works in its own table (`apikey_tests.t<unix time>_<pid>_<n>`); tables
//! older than an hour are dropped by the next run. The outage test runs its own
//! throwaway PostgreSQL cluster, from `APIKEY_TEST_PG_BINDIR` or the newest
//! `/usr/lib/postgresql/*/bin`.

use std::convert::Infallible;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http::header::AUTHORIZATION;
use http::{Request, Response, StatusCode};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tower::{Layer, ServiceExt, service_fn};
use tower_apikey::store::conformance::{assert_same_record, sample_record};
use tower_apikey::{
    ApiKeyV2Layer, CachedKeyStore, Clock, KeyManager, KeyStore, KeyStoreAdmin, KeyUsage,
    ManualClock, NewKey, PgKeyStore, PlaintextKey, StoreError, SystemClock, UsageSink,
};

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
    tower_apikey::store_conformance_tests!(async { super::fresh_store(super::pool().await).await });
}

mod cached_pg_conformance {
    tower_apikey::store_conformance_tests!(async {
        tower_apikey::CachedKeyStore::new(super::fresh_store(super::pool().await).await)
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
            manager: KeyManager::new(store.clone()).with_clock(clock.clone()),
            layer: ApiKeyV2Layer::new(store.clone()).clock(clock),
            store,
            listener: None,
        }
    }

    /// Starts the listener and waits until it listens; returns its backend's pid.
    async fn listen(&mut self) -> i32 {
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(self.store.revocation_listener().run(async {
            let _ = stopped.await;
        }));
        self.listener = Some((stop, task));
        listener_pid(self.store.get_ref(), None).await
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
            "SELECT pid FROM pg_stat_activity WHERE query = $1 AND pid <> $2 LIMIT 1",
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
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {qualified} VALUES ($1, $2, $3, $4, $5, $6, NULL, NULL, NULL)"
    )))
    .bind(old.id().as_str())
    .bind(old.name().as_str())
    .bind(vec!["a:b"])
    .bind(&old.digest().as_bytes()[..])
    .bind(time::OffsetDateTime::from(old.created_at()))
    .bind(time::OffsetDateTime::from(old.expires_at()))
    .execute(&pool)
    .await
    .expect("a row as 0.1 wrote it");

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
        .rotate(old.id(), &new, tower_apikey::OldKeyEnd::EndAt(end))
        .await
        .expect("rotate on the migrated table");
    let ended = store.get(old.id()).await.unwrap().unwrap();
    assert_eq!(ended.ends_at(), Some(end));
    assert_eq!(ended.expires_at(), old.expires_at());
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
    let use_of = |record: &tower_apikey::KeyRecord, s| KeyUsage {
        key_id: *record.id(),
        last_used_at: at(s),
    };
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
        assert_eq!(b.call(&key).await, StatusCode::OK);
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
        assert_eq!(b.call(key).await, StatusCode::OK);
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
    assert_eq!(b.call(&missed).await, StatusCode::OK);
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

    // And B listens again.
    let later = a.create("later").await;
    assert_eq!(b.call(&later).await, StatusCode::OK);
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

#[path = "../examples/demo/app.rs"]
#[allow(dead_code)]
mod app;

/// One demo process (`examples/demo` with `--database-url`): its app over a cache on its
/// own pool, served on loopback, with its revocation listener.
struct DemoInstance {
    addr: std::net::SocketAddr,
    admin_key: String,
    tracker: tower_apikey::UsageTracker,
    listening: (oneshot::Sender<()>, JoinHandle<()>),
}

impl DemoInstance {
    async fn start(store: PgKeyStore) -> Self {
        let store = CachedKeyStore::new(store);
        let (stop, stopped) = oneshot::channel::<()>();
        let listening = tokio::spawn(store.revocation_listener().run(async {
            let _ = stopped.await;
        }));
        listener_pid(store.get_ref(), None).await;
        let demo = app::build(
            store,
            Duration::from_secs(300),
            std::sync::Arc::new(tower_apikey::SystemClock),
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
    assert_eq!(
        b.send("GET", "/reports", &key, None).await.0,
        StatusCode::OK
    );
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
    assert_eq!(status, StatusCode::NO_CONTENT);
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
