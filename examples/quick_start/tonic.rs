//! tonic: `cargo run --example quick_start_tonic`, then a gRPC health check on
//! 127.0.0.1:50051 with `authorization: ApiKey-v2 <key>` metadata.

use std::error::Error;

use tokio::net::TcpListener;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tower_apikey::{InMemoryKeyStore, KeyManager, NewKey, Scopes};

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error + Send + Sync>> {
    // 1. One value owns the configuration: the store, and what runs beside it.
    let manager = KeyManager::new(InMemoryKeyStore::new());
    let created = manager
        .create(NewKey::new("uptime monitor", ["health:read"]))
        .await?;
    // Shown once: hand it to the key's owner. Only its digest is stored.
    println!("key: {}", created.key.expose_secret());

    let listener = TcpListener::bind("127.0.0.1:50051").await?;
    let ctrl_c = async { tokio::signal::ctrl_c().await.unwrap_or(()) };
    serve(manager, listener, ctrl_c).await
}

/// Serves the gRPC health service on `listener` until `shutdown` completes, then writes
/// what is pending.
pub async fn serve(
    manager: KeyManager<InMemoryKeyStore>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Box<dyn Error + Send + Sync>> {
    let (_reporter, health) = tonic_health::server::health_reporter();

    // 3. One future runs every background loop: here, writing last-used times.
    let running = tokio::spawn(manager.background());
    Server::builder()
        // 2. The manager's layer checks each call's key and records its last use;
        // refused calls get a gRPC status (Unauthenticated, PermissionDenied, …).
        .layer(
            manager
                .layer()
                .require_scopes(Scopes::new(["health:read"])?),
        )
        .add_service(health)
        .serve_with_incoming_shutdown(TcpIncoming::from(listener), shutdown)
        .await?;
    // 4. Once the server has stopped: write what is pending, stop the loops.
    manager.shutdown().await?;
    running.await?;
    Ok(())
}
