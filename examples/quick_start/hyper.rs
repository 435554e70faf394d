//! hyper: `cargo run --example quick_start_hyper`, then
//! `curl -H "Authorization: ApiKey-v2 <key>" http://127.0.0.1:3000/`.

use std::convert::Infallible;
use std::error::Error;

use http::{Request, Response};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower_apikey::{ApiKeyIdentity, InMemoryKeyStore, KeyManager, NewKey, Scopes};

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error + Send + Sync>> {
    // 1. One value owns the configuration: the store, and what runs beside it.
    let manager = KeyManager::new(InMemoryKeyStore::new());
    let created = manager
        .create(NewKey::new("greeter", ["greetings:read"]))
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
    // 2. The manager's layer checks each key and records its last use.
    let service = ServiceBuilder::new()
        .layer(
            manager
                .layer()
                .require_scopes(Scopes::new(["greetings:read"])?),
        )
        .service_fn(hello);

    // 3. One future runs every background loop: here, writing last-used times.
    let running = tokio::spawn(manager.background());
    let connections = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, _peer) = tokio::select! {
            accepted = listener.accept() => accepted?,
            () = &mut shutdown => break,
        };
        let service = TowerToHyperService::new(service.clone());
        let connection = auto::Builder::new(TokioExecutor::new())
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        let connection = connections.watch(connection);
        tokio::spawn(async move {
            let _ = connection.await;
        });
    }
    connections.shutdown().await; // the requests in flight are answered
    // 4. Once the server has stopped: write what is pending, stop the loops.
    manager.shutdown().await?;
    running.await?;
    Ok(())
}

async fn hello(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    // Only authenticated requests get here, with the caller in the extensions.
    let name = req
        .extensions()
        .get::<ApiKeyIdentity>()
        .map(|c| c.name().to_owned());
    let body = format!("hello, {}", name.unwrap_or_default());
    Ok(Response::new(Full::new(Bytes::from(body))))
}
