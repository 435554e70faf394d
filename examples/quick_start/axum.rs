//! axum: `cargo run --example quick_start_axum`, then
//! `curl -H "Authorization: ApiKey-v2 <key>" http://127.0.0.1:3000/reports`.

use std::error::Error;

use axum::{Router, routing::get};
use tokio::net::TcpListener;
use tower_apikey::{
    ApiKeyIdentity, InMemoryKeyStore, KeyManager, NewKey, RequireScopesLayer, Scopes,
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error + Send + Sync>> {
    // 1. One value owns the configuration: the store, and what runs beside it.
    let manager = KeyManager::new(InMemoryKeyStore::new());
    let created = manager
        .create(NewKey::new("reporting job", ["reports:read"]))
        .await?;
    // Shown once: hand it to the key's owner. Only its digest is stored.
    println!("key: {}", created.key.expose_secret());

    let listener = TcpListener::bind("127.0.0.1:3000").await?;
    let ctrl_c = async { tokio::signal::ctrl_c().await.unwrap_or(()) };
    serve(manager, listener, ctrl_c).await
}

/// Serves the API on `listener` until `shutdown` completes, then writes what is pending.
pub async fn serve(
    manager: KeyManager<InMemoryKeyStore>,
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
        // 2. The manager's layer checks each key and records its last use.
        .layer(manager.layer());

    // 3. One future runs every background loop: here, writing last-used times.
    let running = tokio::spawn(manager.background());
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    // 4. Once the server has stopped: write what is pending, stop the loops.
    manager.shutdown().await?;
    running.await?;
    Ok(())
}
