//! Store lookups side by side: the in-memory store, a cache hit over it, and an
//! uncached PostgreSQL lookup over loopback; each alone and through the middleware.
//!
//! ```text
//! APIKEY_TEST_DATABASE_URL=postgres://… cargo bench --features postgres --bench store
//! ```
//!
//! Without `APIKEY_TEST_DATABASE_URL` the PostgreSQL benchmarks are left out (with a
//! note on stderr). The PostgreSQL lookup also prints its p50 and p99 over 2 000
//! sequential lookups, which criterion's mean does not show.
//!
//! Paged listing (issue 21) prints p50 and p99 of `list_page` for the first page, a
//! filtered page, a page deep in the list and a `q` search: over 100,000 keys in
//! PostgreSQL and 1,000,000 in the in-memory store (`cargo bench … -- listing` runs
//! only those).

use std::convert::Infallible;
use std::hint::black_box;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use criterion::{Criterion, criterion_group, criterion_main};
use futures_util::FutureExt;
use http::header::AUTHORIZATION;
use http::{Request, Response};
use sqlx::postgres::PgPoolOptions;
use tower::{Layer, Service, ServiceExt, service_fn};
use tower_apikey::key::KeyDigest;
use tower_apikey::record::KeyName;
use tower_apikey::store::cached::CachedKeyStore;
use tower_apikey::store::{KeyFilter, KeyQuery};
use tower_apikey::{
    ApiKeyV2Layer, InMemoryKeyStore, KeyId, KeyManager, KeyRecord, KeyStore, KeyStoreAdmin, NewKey,
    PlaintextKey, Scope, Scopes, UsageSink,
};
use tower_apikey_postgres::PgKeyStore;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A store holding 10 000 keys and one more whose key is returned.
async fn filled<S: KeyStoreAdmin + UsageSink + Clone>(store: S) -> PlaintextKey {
    let manager = KeyManager::new(store);
    for n in 0..10_000 {
        manager
            .create(NewKey::new(format!("k{n}"), ["reports:read"]))
            .await
            .unwrap();
    }
    manager
        .create(NewKey::new("bench", ["reports:read"]))
        .await
        .unwrap()
        .key
}

fn request(key: &PlaintextKey) -> Request<String> {
    Request::builder()
        .uri("/")
        .header(AUTHORIZATION, format!("ApiKey-v2 {}", key.expose_secret()))
        .body(String::new())
        .unwrap()
}

/// Authenticates one request through the layer over `store`, per iteration, for stores
/// that answer at once: the response future is complete on its first poll, so no
/// runtime is involved and the figure is the middleware's own cost.
fn bench_middleware_ready(c: &mut Criterion, name: &str, store: impl KeyStore, key: &PlaintextKey) {
    let mut service = ApiKeyV2Layer::new(store).layer(service_fn(|_: Request<String>| async {
        Ok::<_, Infallible>(Response::new(String::new()))
    }));
    c.bench_function(name, |b| {
        b.iter(|| {
            let response = service
                .call(request(key))
                .now_or_never()
                .expect("a store that answers at once")
                .unwrap();
            assert_eq!(response.status(), 200);
            black_box(response)
        })
    });
}

fn in_memory_and_cached(c: &mut Criterion) {
    let rt = runtime();
    let memory = InMemoryKeyStore::new();
    let key = rt.block_on(filled(memory.clone()));
    let cached = CachedKeyStore::new(memory.clone());
    assert!(cached.lookup_ready(key.id()).is_some(), "warm the cache");
    assert!(cached.contains(key.id()));

    let id = *key.id();
    c.bench_function("lookup/in_memory", |b| {
        b.iter(|| black_box(memory.lookup_ready(black_box(&id))))
    });
    c.bench_function("lookup/cached_hit_over_in_memory", |b| {
        b.iter(|| black_box(cached.lookup_ready(black_box(&id))))
    });
    bench_middleware_ready(c, "middleware/in_memory", memory, &key);
    bench_middleware_ready(c, "middleware/cached_hit", cached, &key);
}

fn postgres(c: &mut Criterion) {
    let Ok(url) = std::env::var("APIKEY_TEST_DATABASE_URL") else {
        eprintln!("note: APIKEY_TEST_DATABASE_URL is unset: PostgreSQL benchmarks left out");
        return;
    };
    let rt = runtime();
    let store = rt.block_on(async {
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .connect(&url)
            .await
            .expect("connect to APIKEY_TEST_DATABASE_URL");
        let table = format!("bench_{}", std::process::id());
        let store = PgKeyStore::new(pool)
            .with_schema("apikey_bench")
            .unwrap()
            .with_table(&table)
            .unwrap();
        store.migrate().await.unwrap();
        store
    });
    let manager = KeyManager::new(store.clone());
    let key = rt.block_on(async {
        manager
            .create(NewKey::new("bench", ["reports:read"]))
            .await
            .unwrap()
            .key
    });
    let id = *key.id();

    // Percentiles of single lookups, after a warm-up that prepares the statement on
    // every pooled connection.
    let mut samples: Vec<Duration> = rt.block_on(async {
        for _ in 0..200 {
            store.lookup(&id).await.unwrap().unwrap();
        }
        let mut samples = Vec::with_capacity(2_000);
        for _ in 0..2_000 {
            let start = Instant::now();
            black_box(store.lookup(&id).await.unwrap());
            samples.push(start.elapsed());
        }
        samples
    });
    samples.sort();
    println!(
        "lookup/postgres_uncached over loopback, 2000 sequential lookups: p50 {:?}, p99 {:?}",
        samples[samples.len() / 2],
        samples[samples.len() * 99 / 100]
    );

    c.bench_function("lookup/postgres_uncached", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(store.lookup(&id).await.unwrap()) })
    });
    let service = ApiKeyV2Layer::new(store.clone()).layer(service_fn(|_: Request<String>| async {
        Ok::<_, Infallible>(Response::new(String::new()))
    }));
    c.bench_function("middleware/postgres_uncached", |b| {
        b.to_async(&rt).iter(|| async {
            let mut service = service.clone();
            let response = service
                .ready()
                .await
                .unwrap()
                .call(request(&key))
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
            black_box(response)
        })
    });

    rt.block_on(async {
        let drop = format!("DROP TABLE \"apikey_bench\".\"{}\"", store.table());
        sqlx::query(sqlx::AssertSqlSafe(drop))
            .execute(store.pool())
            .await
            .unwrap();
    });
}

// ---- paged listing (issue 21) ----------------------------------------------------

/// The application's clock in the listing benchmarks: 2027-01-15T08:00:00Z.
const LIST_NOW_SECS: u64 = 1_800_000_000;

fn list_now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(LIST_NOW_SECS)
}

/// The queries measured, as the admin API would make them.
fn list_queries() -> Vec<(&'static str, KeyQuery)> {
    let first = KeyQuery::new(list_now());
    vec![
        ("first page (100, -created)", first.clone()),
        (
            "filtered: state=dormant",
            first.clone().with_state(KeyFilter::Dormant),
        ),
        (
            "filtered: state=revoked",
            first.clone().with_state(KeyFilter::Revoked),
        ),
        (
            "filtered: scope=billing:read&sort=-last_used",
            first
                .clone()
                .with_scope(Scope::new("billing:read").unwrap())
                .with_sort("-last_used".parse().unwrap()),
        ),
        (
            "q=service 12345",
            first.with_search("service 12345").unwrap(),
        ),
    ]
}

/// Runs `query` `n` times after a warm-up and prints p50 and p99.
fn percentiles<S: KeyStoreAdmin>(
    rt: &tokio::runtime::Runtime,
    store: &S,
    label: &str,
    what: &str,
    query: &KeyQuery,
    n: usize,
) {
    let mut samples: Vec<Duration> = rt.block_on(async {
        for _ in 0..n / 10 + 1 {
            black_box(store.list_page(query).await.unwrap());
        }
        let mut samples = Vec::with_capacity(n);
        for _ in 0..n {
            let start = Instant::now();
            let page = store.list_page(query).await.unwrap();
            samples.push(start.elapsed());
            black_box(page);
        }
        samples
    });
    samples.sort();
    println!(
        "listing/{label}: {what}: p50 {:.2?}, p99 {:.2?} ({n} runs)",
        samples[samples.len() / 2],
        samples[samples.len() * 99 / 100]
    );
}

/// A page in the middle of the list: the cursor after 50,000 keys, newest first.
fn deep_query<S: KeyStoreAdmin>(rt: &tokio::runtime::Runtime, store: &S) -> KeyQuery {
    rt.block_on(async {
        let base = KeyQuery::new(list_now())
            .with_limit(tower_apikey::store::PageLimit::new(1000).unwrap());
        let mut query = base.clone();
        for _ in 0..50 {
            let next = store.list_page(&query).await.unwrap().next.unwrap();
            query = base.clone().after(&next).unwrap();
        }
        KeyQuery::new(list_now())
            .after(&store.list_page(&query).await.unwrap().next.unwrap())
            .unwrap()
    })
}

fn listing_postgres(c: &mut Criterion) {
    let Ok(url) = std::env::var("APIKEY_TEST_DATABASE_URL") else {
        eprintln!("note: APIKEY_TEST_DATABASE_URL is unset: PostgreSQL listing left out");
        return;
    };
    let rt = runtime();
    let store = rt.block_on(async {
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .connect(&url)
            .await
            .expect("connect to APIKEY_TEST_DATABASE_URL");
        let store = PgKeyStore::new(pool)
            .with_schema("apikey_bench")
            .unwrap()
            .with_table(&format!("list_{}", std::process::id()))
            .unwrap();
        store.migrate().await.unwrap();
        // 100,000 keys as an organisation has them: most active and used, some never
        // used, a few revoked, expired, ended or expiring; four scope sets.
        let t = format!("\"{}\".\"{}\"", store.schema(), store.table());
        let load = format!(
            "INSERT INTO {t} (id, name, scopes, digest, created_at, expires_at, revoked_at,
                              last_used_at, ends_at)
             SELECT lpad(g::text, 16, '0'), 'service ' || g,
                    CASE g % 4 WHEN 0 THEN ARRAY['reports:read']
                               WHEN 1 THEN ARRAY['reports:read', 'reports:write']
                               WHEN 2 THEN ARRAY['billing:*']
                               ELSE ARRAY['admin:keys'] END,
                    decode(md5(g::text) || md5(g::text), 'hex'),
                    created,
                    CASE WHEN g % 50 = 0 THEN now_ - interval '1 day'
                         ELSE created + interval '365 days' END,
                    CASE WHEN g % 40 = 0 THEN now_ - interval '2 days' END,
                    CASE WHEN g % 5 <> 0 THEN now_ - (g % 60) * interval '1 day' END,
                    CASE WHEN g % 97 = 0 THEN now_ - interval '1 hour' END
             FROM generate_series(1, 100000) AS g,
                  LATERAL (SELECT to_timestamp({LIST_NOW_SECS}) AS now_) AS n,
                  LATERAL (SELECT n.now_ - (g % 340) * interval '1 day'
                                  - g * interval '1 second' AS created) AS c"
        );
        sqlx::raw_sql(sqlx::AssertSqlSafe(load))
            .execute(store.pool())
            .await
            .unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("ANALYZE {t}")))
            .execute(store.pool())
            .await
            .unwrap();
        store
    });
    let mut queries = list_queries();
    queries.insert(1, ("page after 50,000 keys", deep_query(&rt, &store)));
    for (what, query) in &queries {
        percentiles(&rt, &store, "postgres_100k", what, query, 500);
    }
    let first = KeyQuery::new(list_now());
    c.bench_function("listing/postgres_100k_first_page", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(store.list_page(&first).await.unwrap()) })
    });
    rt.block_on(async {
        let drop = format!("DROP TABLE \"apikey_bench\".\"{}\"", store.table());
        sqlx::query(sqlx::AssertSqlSafe(drop))
            .execute(store.pool())
            .await
            .unwrap();
    });
}

fn listing_in_memory(_: &mut Criterion) {
    let rt = runtime();
    let store = InMemoryKeyStore::new();
    let now = list_now();
    let day = Duration::from_secs(86_400);
    rt.block_on(async {
        for g in 1..=1_000_000u64 {
            let created = now - Duration::from_secs((g % 340) * 86_400 + g);
            let scopes: &[&str] = match g % 4 {
                0 => &["reports:read"],
                1 => &["reports:read", "reports:write"],
                2 => &["billing:*"],
                _ => &["admin:keys"],
            };
            let expires = if g % 50 == 0 {
                now - day
            } else {
                created + 365 * day
            };
            let record = KeyRecord::new(
                KeyId::new(&format!("{g:016}")).unwrap(),
                KeyName::new(&format!("service {g}")).unwrap(),
                Scopes::new(scopes).unwrap(),
                KeyDigest::from_bytes([0x5a; 32]),
                created,
                expires,
            )
            .with_revoked_at((g % 40 == 0).then(|| now - 2 * day))
            .with_last_used_at((g % 5 != 0).then(|| now - Duration::from_secs((g % 60) * 86_400)))
            .with_ends_at((g % 97 == 0).then(|| now - Duration::from_secs(3600)));
            store.insert(&record).await.unwrap();
        }
    });
    let mut queries = list_queries();
    queries.insert(1, ("page after 50,000 keys", deep_query(&rt, &store)));
    for (what, query) in &queries {
        percentiles(&rt, &store, "in_memory_1m", what, query, 50);
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = in_memory_and_cached, postgres, listing_postgres, listing_in_memory
}
criterion_main!(benches);
