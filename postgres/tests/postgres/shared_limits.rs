//! Limits shared by two instances through PostgreSQL (issue 20, DESIGN §12): each
//! instance a real axum server on loopback with its own pool, cache and
//! `SharedLimits`, called by a real client. The assertions are the documented bounds on
//! counts (see `SharedLimits`), never times; the figures are printed for BENCHMARKS.md
//! (`cargo test --all-features --test postgres shared_limits -- --nocapture`).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use http::header::AUTHORIZATION;
use http::{Request, StatusCode};
use http_body_util::Empty;
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use sqlx::postgres::PgPoolOptions;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tower_apikey::limits::SharedLimits;
use tower_apikey::record::RateLimit;
use tower_apikey::store::cached::CachedKeyStore;
use tower_apikey::{ApiKeyV2Layer, KeyManager, NewKey};
use tower_apikey_postgres::PgKeyStore;

use super::{SCHEMA, ThrowawayCluster, fresh_store, pool};

type HttpClient = Client<HttpConnector, Empty<Bytes>>;

/// One API instance sharing its limits through `store`'s database.
struct Instance {
    addr: SocketAddr,
    limits: SharedLimits,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Instance {
    async fn start(store: PgKeyStore) -> Self {
        let limits = SharedLimits::new(store.clone());
        // A cache in front of the lookups, as a deployment runs it: during an outage it
        // keeps proving keys, so that what is tested is the limits' fallback.
        let layer = ApiKeyV2Layer::new(CachedKeyStore::new(store)).shared_limits(&limits);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(limits.run(async move {
            let _ = stopped.await;
        }));
        let app = Router::new()
            .route("/ping", get(|| async { "pong" }))
            .layer(layer);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            addr,
            limits,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// The demo's app (`examples/demo`) over `store` behind a cache, with its limits
    /// shared through `store`'s database as `--database-url` runs it: the API and the
    /// admin routes.
    async fn demo(store: PgKeyStore) -> Self {
        let limits = SharedLimits::new(store.clone());
        let admin_key = super::app::mint_admin_key(&KeyManager::new(store.clone()))
            .await
            .unwrap();
        let demo = super::app::build_with_admin_key(
            CachedKeyStore::new(store),
            Duration::from_secs(300),
            std::sync::Arc::new(tower_apikey::SystemClock),
            admin_key,
            0,
            Some(&limits),
            tower_apikey::client_addr::TrustedProxies::none(),
        );
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(limits.run(async move {
            let _ = stopped.await;
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = demo.router;
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        Self {
            addr,
            limits,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Stops the lease task, which gives back what it holds.
    async fn shut_down(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
    }
}

/// Warms both instances up (their pools' connections opened, a first lease taken) with
/// a key of their own, as a running deployment is: what is measured next is a key new
/// to the instances, not a process that just started.
async fn warm_up(instances: &[Instance; 2], manager: &KeyManager<PgKeyStore>) {
    let key = manager
        .create(
            NewKey::new("warm-up", ["reports:read"]).rate_limit(RateLimit::new(1000, 60).unwrap()),
        )
        .await
        .unwrap()
        .key;
    let client = client();
    for instance in instances {
        let deadline = Instant::now() + Duration::from_secs(20);
        while instance.limits.stats().granted == 0 {
            assert!(Instant::now() < deadline, "no lease within 20 s");
            assert_eq!(
                call(&client, instance.addr, key.expose_secret()).await,
                StatusCode::OK
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// A store on its own pool: a second instance's view of the same tables.
async fn same_tables(url: &str, store: &PgKeyStore) -> PgKeyStore {
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(2))
        .connect(url)
        .await
        .unwrap();
    PgKeyStore::new(pool)
        .with_schema(SCHEMA)
        .unwrap()
        .with_table(store.table())
        .unwrap()
}

fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

async fn call(client: &HttpClient, addr: SocketAddr, key: &str) -> StatusCode {
    call_path(client, addr, "/ping", key).await
}

async fn call_path(client: &HttpClient, addr: SocketAddr, path: &str, key: &str) -> StatusCode {
    let request = Request::get(format!("http://{addr}{path}"))
        .header(AUTHORIZATION, format!("ApiKey-v2 {key}"))
        .body(Empty::new())
        .unwrap();
    client.request(request).await.unwrap().status()
}

/// What one run of traffic gave.
#[derive(Debug, Default)]
struct Tally {
    admitted: u64,
    refused: u64,
}

/// Sends `total` requests, `share_a` of every 10 to instance A and the rest to B.
async fn traffic(instances: &[Instance; 2], key: &str, total: u64, share_a: u64) -> Tally {
    let client = client();
    let mut tally = Tally::default();
    for i in 0..total {
        let to = if i % 10 < share_a {
            &instances[0]
        } else {
            &instances[1]
        };
        match call(&client, to.addr, key).await {
            StatusCode::OK => tally.admitted += 1,
            StatusCode::TOO_MANY_REQUESTS => tally.refused += 1,
            other => panic!("a valid key got {other}: never a 503 or a 401 for want of a lease"),
        }
    }
    tally
}

fn calls(instances: &[Instance; 2]) -> u64 {
    instances.iter().map(|i| i.limits.stats().calls).sum()
}

fn awaiting(instances: &[Instance; 2]) -> u64 {
    instances
        .iter()
        .map(|i| i.limits.stats().refused_awaiting_lease)
        .sum()
}

#[tokio::test]
async fn two_instances_admit_a_limit_of_100_per_minute_within_the_documented_bounds() {
    let url = super::database_url();
    let store = fresh_store(pool().await).await;
    let manager = KeyManager::new(store.clone());
    let rate = RateLimit::new(100, 60).unwrap();
    // 5 % of 100: the most a batch holds, and the most an instance owes while it waits.
    let cap = 5u64;
    let interval = Duration::from_millis(600);
    let mut instances = [
        Instance::start(store.clone()).await,
        Instance::start(same_tables(&url, &store).await).await,
    ];
    warm_up(&instances, &manager).await;
    for (split, share_a) in [("50/50", 5), ("90/10", 9)] {
        let key = manager
            .create(NewKey::new(format!("split {split}"), ["reports:read"]).rate_limit(rate))
            .await
            .unwrap()
            .key;
        let calls_before = calls(&instances);
        let awaiting_before = awaiting(&instances);
        let started = Instant::now();
        let tally = traffic(&instances, key.expose_secret(), 300, share_a).await;
        let elapsed = started.elapsed();
        let waited = awaiting(&instances) - awaiting_before;
        // What one GCRA would have admitted over the same span.
        let recovered = (elapsed.as_nanos() / interval.as_nanos()) as u64;
        let ideal = (100 + recovered).min(300);
        let over = tally.admitted.saturating_sub(ideal + 1);
        let under = ideal.saturating_sub(tally.admitted);
        println!(
            "split {split}: 300 requests over {elapsed:?}: admitted {}, refused {}; one GCRA: {ideal}; \
             admitted beyond it {over}, refused within it {under} ({waited} awaiting a lease); \
             lease calls {}",
            tally.admitted,
            tally.refused,
            calls(&instances) - calls_before,
        );
        assert_eq!(tally.admitted + tally.refused, 300);
        // Beyond the limit: at most what each instance owes at once, charged or not yet
        // charged (SharedLimits' first bound), two instances.
        assert!(
            tally.admitted <= ideal + 1 + 2 * 2 * cap,
            "admitted {} of a bound of {}",
            tally.admitted,
            ideal + 1 + 4 * cap
        );
        // Within the limit: at most what the other instance holds unspent (a batch plus
        // the half batch left when it asked for more), plus the refusals awaiting a lease
        // (a burst this fast outruns a round trip of a busy database; they are counted).
        assert!(
            tally.admitted + waited + 2 * (cap + cap / 2) >= ideal,
            "admitted {} and {waited} refused awaiting a lease, where one GCRA admits {ideal}",
            tally.admitted
        );
    }
    for instance in &mut instances {
        instance.shut_down().await;
    }
}

/// 10 requests a second for 20 s against 100 a minute (a burst of 100, then one every
/// 0.6 s), split between the instances `share_a` in 10 to A: the steady state after the
/// burst, where the leases cycle. Returns (admitted, refused awaiting a lease, what one
/// GCRA admits).
async fn sustained(share_a: u64) -> (u64, u64, u64) {
    let url = super::database_url();
    let store = fresh_store(pool().await).await;
    let manager = KeyManager::new(store.clone());
    let key = manager
        .create(
            NewKey::new("sustained", ["reports:read"]).rate_limit(RateLimit::new(100, 60).unwrap()),
        )
        .await
        .unwrap()
        .key;
    let mut instances = [
        Instance::start(store.clone()).await,
        Instance::start(same_tables(&url, &store).await).await,
    ];
    warm_up(&instances, &manager).await;
    let client = client();
    let started = Instant::now();
    let mut ticker = tokio::time::interval(Duration::from_millis(100));
    let mut admitted = 0u64;
    let mut first = None;
    for i in 0..200u64 {
        ticker.tick().await;
        let to = if i % 10 < share_a {
            &instances[0]
        } else {
            &instances[1]
        };
        match call(&client, to.addr, key.expose_secret()).await {
            StatusCode::OK => {
                first.get_or_insert_with(Instant::now);
                admitted += 1;
            }
            StatusCode::TOO_MANY_REQUESTS => {}
            other => panic!("a valid key got {other}"),
        }
    }
    let span = started.elapsed();
    // One GCRA over the same span, the arrivals being the same: a burst of 100, then
    // one per 0.6 s.
    let ideal = (100 + (span.as_millis() / 600) as u64).min(200);
    let calls = calls(&instances);
    let waited = awaiting(&instances);
    println!(
        "sustained {share_a}0/{}0: 200 requests over {span:?}: admitted {admitted}, one GCRA {ideal}; beyond it {}, within it refused {} ({waited} awaiting a lease); lease calls {calls}",
        10 - share_a,
        admitted.saturating_sub(ideal),
        ideal.saturating_sub(admitted),
    );
    for instance in &mut instances {
        instance.shut_down().await;
    }
    (admitted, waited, ideal)
}

#[tokio::test]
async fn sustained_traffic_split_evenly_stays_within_the_bounds() {
    assert_sustained_bounds(5).await;
}

#[tokio::test]
async fn sustained_traffic_split_90_10_stays_within_the_bounds() {
    assert_sustained_bounds(9).await;
}

/// Beyond: at most 2.5 batches per instance; within, besides the refusals awaiting a
/// lease: at most 1.5 batches per other instance and one owed batch each (SharedLimits'
/// bounds; a batch here is 5).
async fn assert_sustained_bounds(share_a: u64) {
    let (admitted, waited, ideal) = sustained(share_a).await;
    assert!(admitted <= ideal + 2 * 13, "admitted {admitted} of {ideal}");
    assert!(
        admitted + waited + 2 * 13 >= ideal,
        "admitted {admitted} and {waited} awaiting a lease, of {ideal}"
    );
}

#[tokio::test]
async fn a_busy_key_costs_a_write_per_batch_and_a_quiet_key_holds_one_token() {
    let url = super::database_url();
    let store = fresh_store(pool().await).await;
    let manager = KeyManager::new(store.clone());
    let mut instances = [
        Instance::start(store.clone()).await,
        Instance::start(same_tables(&url, &store).await).await,
    ];
    // Busy: far below its limit, so that every request is admitted.
    let busy = manager
        .create(
            NewKey::new("busy", ["reports:read"])
                .rate_limit(RateLimit::new(1_000_000, 60).unwrap()),
        )
        .await
        .unwrap()
        .key;
    let before = calls(&instances);
    let tally = traffic(&instances, busy.expose_secret(), 10_000, 5).await;
    let busy_calls = calls(&instances) - before;
    assert_eq!(tally.admitted, 10_000);
    // Quiet: one request every 200 ms on each instance in turn.
    let quiet = manager
        .create(NewKey::new("quiet", ["reports:read"]).rate_limit(RateLimit::new(100, 60).unwrap()))
        .await
        .unwrap()
        .key;
    let client = client();
    let before = calls(&instances);
    let mut quiet_admitted = 0u64;
    for i in 0..20 {
        let to = &instances[i % 2];
        if call(&client, to.addr, quiet.expose_secret()).await == StatusCode::OK {
            quiet_admitted += 1;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let quiet_calls = calls(&instances) - before;
    println!(
        "busy key: {busy_calls} lease calls for 10,000 admitted; quiet key (5/s): {quiet_calls} \
         for {quiet_admitted} admitted, {} per 10,000",
        quiet_calls * 10_000 / quiet_admitted.max(1)
    );
    assert_eq!(quiet_admitted, 20, "5 a second is well within 100 a minute");
    // A write per batch: far fewer than one per request for the busy key.
    assert!(busy_calls * 20 <= tally.admitted, "{busy_calls} calls");
    assert!(
        quiet_calls <= quiet_admitted + 2,
        "{quiet_calls} calls for {quiet_admitted}"
    );
    for instance in &mut instances {
        instance.shut_down().await;
    }
}

#[tokio::test]
async fn with_postgresql_stopped_valid_keys_keep_working_on_local_limits_and_sharing_resumes() {
    let cluster = ThrowawayCluster::create();
    cluster.start();
    let url = cluster.url();
    let first = PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(2))
        .connect(&url)
        .await
        .unwrap();
    let store = PgKeyStore::new(first)
        .with_schema(SCHEMA)
        .unwrap()
        .with_table("outage_limits")
        .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE SCHEMA IF NOT EXISTS {SCHEMA}"
    )))
    .execute(store.pool())
    .await
    .unwrap();
    store.migrate().await.unwrap();
    let manager = KeyManager::new(store.clone());
    let key = manager
        .create(
            NewKey::new("outage", ["reports:read"]).rate_limit(RateLimit::new(1000, 60).unwrap()),
        )
        .await
        .unwrap()
        .key;
    let mut instances = [
        Instance::start(store.clone()).await,
        Instance::start(same_tables(&url, &store).await).await,
    ];
    let before = traffic(&instances, key.expose_secret(), 40, 5).await;
    assert_eq!(before.admitted, 40);
    assert!(instances.iter().all(|i| i.limits.stats().healthy));

    cluster.stop();
    // Each instance now admits its local share, 1000 ÷ 2 a minute: 100 requests are
    // well within it, and none may be refused or answered 503.
    let during = traffic(&instances, key.expose_secret(), 100, 5).await;
    assert_eq!(
        during.admitted, 100,
        "valid keys keep working during the outage"
    );
    // The lease task finds the backend down within a tick.
    let deadline = Instant::now() + Duration::from_secs(10);
    while instances.iter().any(|i| i.limits.stats().healthy) {
        assert!(Instant::now() < deadline, "the outage was never noticed");
        let _ = traffic(&instances, key.expose_secret(), 2, 5).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let failures: u64 = instances.iter().map(|i| i.limits.stats().failures).sum();
    assert!(failures > 0);

    cluster.start();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !instances.iter().all(|i| i.limits.stats().healthy) {
        assert!(Instant::now() < deadline, "sharing never resumed");
        let _ = traffic(&instances, key.expose_secret(), 2, 5).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let after = traffic(&instances, key.expose_secret(), 40, 5).await;
    assert_eq!(after.admitted, 40);
    // What was admitted during the outage was charged when the backend came back.
    let spent: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM {SCHEMA}.outage_limits_limits"
    )))
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(spent, 1, "one ledger row, for the one key");
    for instance in &mut instances {
        instance.shut_down().await;
    }
}

/// Sends requests with `key` to `instance` until its lease task has found the backend
/// failing (bounded): how many were admitted meanwhile.
async fn until_unhealthy(client: &HttpClient, instance: &Instance, key: &str) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut admitted = 0;
    while instance.limits.stats().healthy {
        assert!(Instant::now() < deadline, "the outage was never noticed");
        match call(client, instance.addr, key).await {
            StatusCode::OK => admitted += 1,
            StatusCode::TOO_MANY_REQUESTS => {}
            other => panic!("a valid key got {other} during an outage of the ledger"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    admitted
}

/// L2 (red team, 2026-12-07) on PostgreSQL, as the red team ran it: three instances,
/// A and B serving a key with a quota of 20 a day, C started but idle; then the ledger
/// table is locked (lock contention, a slow migration), while keys are still proven.
/// C had never leased, believed it was alone and admitted the whole quota by itself (26
/// of 20 in all). Now every instance heartbeats, so each divides by three.
#[tokio::test]
async fn l2_three_instances_one_idle_admit_at_most_the_quota_while_the_ledger_is_locked() {
    let url = super::database_url();
    let store = fresh_store(pool().await).await;
    let manager = KeyManager::new(store.clone());
    let mut instances = [
        Instance::start(same_tables(&url, &store).await).await,
        Instance::start(same_tables(&url, &store).await).await,
        Instance::start(same_tables(&url, &store).await).await,
    ];
    // Their heartbeats, the first at once. Waited for with a bound, not asserted: what
    // is asserted is the total below.
    let deadline = Instant::now() + Duration::from_secs(10);
    while instances.iter().any(|i| i.limits.stats().instances != 3) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let key = manager
        .create(NewKey::new("metered", ["reports:read"]).quota(
            tower_apikey::record::Quota::new(20, tower_apikey::record::QuotaPeriod::Day).unwrap(),
        ))
        .await
        .unwrap()
        .key;
    let key = key.expose_secret();
    let client = client();
    let mut total = 0;
    for instance in &instances[..2] {
        for _ in 0..3 {
            if call(&client, instance.addr, key).await == StatusCode::OK {
                total += 1;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    assert!(total >= 2, "the key was served before the outage: {total}");
    // C proves the key once the ledger is locked: its first lookup reads the key table,
    // which the lock leaves alone.
    let mut lock = store.pool().begin().await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "LOCK TABLE {SCHEMA}.\"{}_limits\" IN ACCESS EXCLUSIVE MODE",
        store.table()
    )))
    .execute(&mut *lock)
    .await
    .unwrap();
    let mut during = Vec::new();
    for instance in &instances {
        let mut admitted = until_unhealthy(&client, instance, key).await;
        for _ in 0..30 {
            match call(&client, instance.addr, key).await {
                StatusCode::OK => admitted += 1,
                StatusCode::TOO_MANY_REQUESTS => {}
                other => panic!("a valid key got {other} during an outage of the ledger"),
            }
        }
        during.push(admitted);
    }
    total += during.iter().sum::<u64>();
    println!(
        "ledger locked, quota 20 on 3 instances (one idle before): admitted {total} in all, \
         during the outage {during:?}; instances heard {:?}",
        instances
            .iter()
            .map(|i| i.limits.stats().instances)
            .collect::<Vec<_>>()
    );
    lock.rollback().await.unwrap();
    assert!(
        total <= 20,
        "admitted {total} of a quota of 20 (during the outage: {during:?})"
    );
    assert!(
        during.iter().all(|&n| n > 0),
        "every instance kept serving the key: {during:?}"
    );
    for instance in &mut instances {
        instance.shut_down().await;
    }
}

/// L3 (red team, 2026-12-07) on two demos sharing one database: the admin routes'
/// guard counted a key's limits apart from the API's, and per instance, so an admin key
/// limited to 2 an hour got 10 answers on three instances. Now the API and the admin
/// routes of both demos spend one budget, within the bounds of leasing (`SharedLimits`:
/// at most 2.5 batches per instance beyond the limit; a batch is 1 here).
#[tokio::test]
async fn l3_a_key_limited_to_10_an_hour_gets_10_answers_across_the_api_and_admin_routes_of_two_demos()
 {
    let url = super::database_url();
    let store = fresh_store(pool().await).await;
    let manager = KeyManager::new(store.clone());
    let mut demos = [
        Instance::demo(same_tables(&url, &store).await).await,
        Instance::demo(same_tables(&url, &store).await).await,
    ];
    let key = manager
        .create(
            NewKey::new("limited admin", ["admin:keys", "reports:read"])
                .rate_limit(RateLimit::new(10, 3600).unwrap()),
        )
        .await
        .unwrap()
        .key;
    let client = client();
    let mut admitted = std::collections::BTreeMap::new();
    for _ in 0..10 {
        for (name, demo) in ["A", "B"].iter().zip(&demos) {
            for path in ["/ping", "/admin/keys"] {
                let status = call_path(&client, demo.addr, path, key.expose_secret()).await;
                assert!(
                    [StatusCode::OK, StatusCode::TOO_MANY_REQUESTS].contains(&status),
                    "{name} {path}: {status}"
                );
                if status == StatusCode::OK {
                    *admitted.entry(format!("{name} {path}")).or_insert(0u64) += 1;
                }
                // Paced, so that leases come back between requests.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    let total: u64 = admitted.values().sum();
    let waited = demos
        .iter()
        .map(|d| d.limits.stats().refused_awaiting_lease)
        .sum::<u64>();
    println!("10 an hour, two demos, API and admin routes: {admitted:?}, {total} in all");
    assert!(total <= 10 + 2 * 2, "admitted {total}: {admitted:?}");
    assert!(
        total + waited + 2 * 2 >= 10,
        "admitted only {total} ({waited} refused awaiting a lease): {admitted:?}"
    );
    for demo in &mut demos {
        demo.shut_down().await;
    }
}
