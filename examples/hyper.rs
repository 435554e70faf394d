//! `ApiKeyV2Layer` on a plain hyper 1 server (hyper-util), without axum.
//!
//! ```text
//! cargo run --example hyper
//! ```
//!
//! Starts the server on a free loopback port, with its manager's background; calls it
//! without a key, with a key that lacks the route's scope and with a good key, and
//! prints each answer; then stops the server, shuts the manager down, and prints the
//! good key's last-used time, which that shutdown wrote.
//!
//! Wrong keys are throttled per client address: `serve` puts each connection's peer
//! into its requests' extensions as a `SocketAddr`, where the layer finds it.
//! `tests/hyper.rs` drives the same `app` and `serve` through real connections.
//! `examples/quick_start/hyper.rs` is the shorter version the README shows.

use std::convert::Infallible;
use std::error::Error;

use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Bytes, Incoming};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower_apikey::middleware::{FailureThrottle, ResponseBody};
use tower_apikey::{ApiKeyIdentity, InMemoryKeyStore, KeyManager, NewKey, Scopes};

/// Wrong keys one client address may send in a row, and per minute after that.
pub const FAILURES_PER_MINUTE: u32 = 10;

/// The application: a tower service behind the manager's layer (which records each
/// key's last use), requiring `greetings:read` and throttling wrong keys per client
/// address.
///
/// The handler's body is `Full<Bytes>`; the layer wraps it in a `ResponseBody`, which
/// holds either that body or the layer's own answer to a refused request (its problem
/// document), so any body type would do.
pub fn app(
    manager: &KeyManager<InMemoryKeyStore>,
) -> impl tower::Service<
    Request<Incoming>,
    Response = Response<ResponseBody<Full<Bytes>>>,
    Error = Infallible,
    Future: Send,
> + Clone
+ Send
+ 'static {
    let required = Scopes::new(["greetings:read"]).expect("a valid scope");
    ServiceBuilder::new()
        .layer(
            manager
                .layer()
                .require_scopes(required)
                .throttle_failures(FailureThrottle::per_minute(FAILURES_PER_MINUTE)),
        )
        .service_fn(hello)
}

/// Only reached by authenticated requests: the layer put the caller's identity in the
/// request's extensions.
async fn hello(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let Some(caller) = req.extensions().get::<ApiKeyIdentity>() else {
        // Unreachable behind the layer; refuse rather than serve anonymously.
        let mut refused = Response::new(Full::default());
        *refused.status_mut() = StatusCode::UNAUTHORIZED;
        return Ok(refused);
    };
    let greeting = format!("hello, {} (key {})", caller.name(), caller.key_id());
    Ok(Response::new(Full::new(Bytes::from(greeting))))
}

/// Serves `service` on `listener` over HTTP/1.1 and HTTP/2, one task per connection,
/// each request carrying its connection's peer as a `SocketAddr` extension, until
/// `shutdown` completes; then waits for the requests in flight to be answered.
pub async fn serve<S, B>(listener: TcpListener, service: S, shutdown: impl Future<Output = ()>)
where
    S: tower::Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn Error + Send + Sync>>,
{
    let connections = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors and the like: keep serving the others.
                eprintln!("accept failed: {error}");
                continue;
            }
        };
        // The client address for per-address policies (the failure throttle).
        let service = ServiceBuilder::new()
            .map_request(move |mut req: Request<Incoming>| {
                req.extensions_mut().insert(peer);
                req
            })
            .service(service.clone());
        let service = TowerToHyperService::new(service);
        let connection = auto::Builder::new(TokioExecutor::new())
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        let connection = connections.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                eprintln!("connection from {peer} failed: {error}");
            }
        });
    }
    connections.shutdown().await;
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error + Send + Sync>> {
    let manager = KeyManager::new(InMemoryKeyStore::new());
    let reader = manager
        .create(NewKey::new("hyper example", ["greetings:read"]))
        .await?;
    let other = manager
        .create(NewKey::new("unrelated job", ["reports:read"]))
        .await?
        .key;

    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    // Every background loop of the manager: here, writing last-used times.
    let running = tokio::spawn(manager.background());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(serve(listener, app(&manager), async {
        let _ = stopped.await;
    }));

    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let calls = [
        ("without a key", None),
        ("with a key lacking greetings:read", Some(&other)),
        ("with a good key", Some(&reader.key)),
    ];
    for (label, key) in calls {
        let mut request = Request::get(format!("http://{addr}/"));
        if let Some(key) = key {
            request = request.header(
                "authorization",
                format!("ApiKey-v2 {}", key.expose_secret()),
            );
        }
        let response = client.request(request.body(Empty::new())?).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        println!(
            "GET / {label}: {status}\n  {}",
            String::from_utf8_lossy(&body)
        );
    }

    // Once the server has stopped, the manager writes what is pending.
    let _ = stop.send(());
    serving.await?;
    manager.shutdown().await?;
    running.await?;
    if let Some(at) = manager.get(reader.record.id()).await?.last_used_at() {
        let at = OffsetDateTime::from(at).format(&Rfc3339)?;
        println!("the good key's last use, written on shutdown: {at}");
    }
    Ok(())
}
