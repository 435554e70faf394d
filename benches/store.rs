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

use std::convert::Infallible;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use futures_util::FutureExt;
use http::header::AUTHORIZATION;
use http::{Request, Response};
use sqlx::postgres::PgPoolOptions;
use tower::{Layer, Service, ServiceExt, service_fn};
use tower_apikey::{
    ApiKeyV2Layer, CachedKeyStore, InMemoryKeyStore, KeyManager, KeyStore, KeyStoreAdmin, NewKey,
    PgKeyStore, PlaintextKey,
};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A store holding 10 000 keys and one more whose key is returned.
async fn filled<S: KeyStoreAdmin + Clone>(store: S) -> PlaintextKey {
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

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = in_memory_and_cached, postgres
}
criterion_main!(benches);
