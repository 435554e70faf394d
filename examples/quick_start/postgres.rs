//! PostgreSQL, for many instances: `cargo run --example quick_start_postgres --
//! postgres://user:password@127.0.0.1/db`, then
//! `curl -H "Authorization: ApiKey-v2 <key>" http://127.0.0.1:3000/reports`.
//! Every instance on the same database accepts the key, and a revocation on one is
//! refused by all within about a second.

use std::error::Error;
use std::time::Duration;

use axum::{Router, routing::get};
use sqlx::postgres::PgPoolOptions;
use tokio::net::TcpListener;
use tower_apikey::limits::SharedLimits;
use tower_apikey::store::cached::CachedKeyStore;
use tower_apikey::{ApiKeyIdentity, KeyManager, NewKey, RequireScopesLayer, Scopes};
use tower_apikey_postgres::PgKeyStore;

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error + Send + Sync>> {
    let url = std::env::args()
        .nth(1)
        .ok_or("give the database's URL: quick_start_postgres postgres://…")?;
    let pool = PgPoolOptions::new()
        // A database outage answers 503 within two seconds instead of hanging requests.
        .acquire_timeout(Duration::from_secs(2))
        .connect(&url)
        .await?;
    let manager = manager(PgKeyStore::new(pool)).await?;
    let created = manager
        .create(NewKey::new("reporting job", ["reports:read"]))
        .await?;
    // Shown once: hand it to the key's owner. Only its digest is stored.
    println!("key: {}", created.key.expose_secret());

    let listener = TcpListener::bind("127.0.0.1:3000").await?;
    let ctrl_c = async { tokio::signal::ctrl_c().await.unwrap_or(()) };
    serve(manager, listener, ctrl_c).await
}

/// One value owns the configuration (step 1): the store behind a cache, the feed that
/// keeps every instance's cache in step with the database, and limits shared through it.
pub async fn manager(
    store: PgKeyStore,
) -> Result<KeyManager<CachedKeyStore<PgKeyStore>>, Box<dyn Error + Send + Sync>> {
    store.migrate().await?; // idempotent; safe for instances starting together
    let limits = SharedLimits::new(store.clone()); // PgKeyStore is a LimitBackend
    let store = CachedKeyStore::new(store);
    Ok(KeyManager::builder(store.clone())
        .feed_listener(store.feed_listener())
        .shared_limits(limits)
        .build())
}

/// Serves the API on `listener` until `shutdown` completes, then writes what is pending.
pub async fn serve(
    manager: KeyManager<CachedKeyStore<PgKeyStore>>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Box<dyn Error + Send + Sync>> {
    let reports =
        get(|caller: ApiKeyIdentity| async move { format!("reports for {}", caller.name()) })
            // route_layer: unknown paths stay 404 instead of 403.
            .route_layer(RequireScopesLayer::new(Scopes::new(["reports:read"])?));
    let app = Router::new()
        .route("/ping", get(|| async { "pong" }))
        .route("/reports", reports)
        // 2. The manager's layer checks each key, records its last use and counts its
        // limits with every instance.
        .layer(manager.layer());

    // 3. One future runs every background loop: the feed, lease refills, last-used times.
    let running = tokio::spawn(manager.background());
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    // 4. Once the server has stopped: write the last uses, give back unspent limits,
    // stop the feed.
    manager.shutdown().await?;
    running.await?;
    Ok(())
}
