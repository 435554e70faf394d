//! A tonic 0.14 gRPC server behind `ApiKeyV2Layer`, and a tonic client calling it.
//!
//! ```text
//! cargo run --example tonic
//! ```
//!
//! The service is the standard gRPC health service (`tonic-health` ships its generated
//! code, so no `protoc` is needed), implemented here so that its handler can read the
//! caller's `ApiKeyIdentity` from the request's extensions. The layer answers refused
//! gRPC calls with a proper status: `Unauthenticated` without a valid key,
//! `PermissionDenied` without the scope `health:read`, and `ResourceExhausted` to a
//! client address that keeps sending wrong keys.
//!
//! The layer is the key manager's, which records each key's last use; the manager's
//! background runs beside the server, and its shutdown, once the server has stopped,
//! writes those uses (the example prints the monitor key's). `tests/tonic.rs` drives
//! the same `serve` and `client` over loopback; `examples/quick_start/tonic.rs` is the
//! shorter version the README shows.

use std::error::Error;
use std::net::SocketAddr;

use futures_util::stream::BoxStream;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::net::TcpListener;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::server::{TcpConnectInfo, TcpIncoming};
use tonic::transport::{Channel, Server};
use tonic::{Request, Response, Status};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};
use tower::util::MapRequestLayer;
use tower_apikey::middleware::FailureThrottle;
use tower_apikey::{ApiKeyIdentity, InMemoryKeyStore, KeyManager, NewKey, Scopes};

/// Wrong keys one client address may send in a row, and per minute after that.
pub const FAILURES_PER_MINUTE: u32 = 10;

/// Response metadata naming the key the handler saw.
pub const CALLER_KEY_ID: &str = "x-caller-key-id";

/// The health service, answering `SERVING` to authenticated callers and saying which
/// key it saw.
#[derive(Debug, Default)]
struct CallerAwareHealth;

#[tonic::async_trait]
impl Health for CallerAwareHealth {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        // The layer put the identity into the HTTP request's extensions; tonic hands
        // them on to `tonic::Request::extensions()`.
        let caller = request
            .extensions()
            .get::<ApiKeyIdentity>()
            .ok_or_else(|| Status::unauthenticated("no API key identity"))?;
        let mut response = Response::new(HealthCheckResponse {
            status: ServingStatus::Serving as i32,
        });
        // A key id is base62, always a valid metadata value.
        if let Ok(id) = MetadataValue::try_from(caller.key_id().as_str()) {
            response.metadata_mut().insert(CALLER_KEY_ID, id);
        }
        Ok(response)
    }

    type WatchStream = BoxStream<'static, Result<HealthCheckResponse, Status>>;

    async fn watch(
        &self,
        _request: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        // The health protocol tells clients not to retry UNIMPLEMENTED.
        Err(Status::unimplemented("this example serves Check only"))
    }
}

/// Serves the health service behind `manager`'s layer (scope `health:read`, wrong keys
/// throttled per client address) on `listener`, until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    manager: &KeyManager<InMemoryKeyStore>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), tonic::transport::Error> {
    let required = Scopes::new(["health:read"]).expect("a valid scope");
    Server::builder()
        // tonic records each connection's peer as `TcpConnectInfo`; the layer reads a
        // plain `SocketAddr`. Layers run in the order added: this one first.
        .layer(MapRequestLayer::new(peer_address))
        .layer(
            manager
                .layer()
                .require_scopes(required)
                .throttle_failures(FailureThrottle::per_minute(FAILURES_PER_MINUTE)),
        )
        .add_service(HealthServer::new(CallerAwareHealth))
        .serve_with_incoming_shutdown(TcpIncoming::from(listener), shutdown)
        .await
}

/// Copies tonic's record of the connection's peer into a `SocketAddr` extension.
fn peer_address(mut req: http::Request<tonic::body::Body>) -> http::Request<tonic::body::Body> {
    let peer = req
        .extensions()
        .get::<TcpConnectInfo>()
        .and_then(TcpConnectInfo::remote_addr);
    if let Some(peer) = peer {
        req.extensions_mut().insert::<SocketAddr>(peer);
    }
    req
}

/// A client-side interceptor that sends `authorization: ApiKey-v2 <key>` with every call
/// (or nothing, to show the refusal).
#[derive(Clone)]
pub struct ApiKeyAuth(Option<MetadataValue<Ascii>>);

impl ApiKeyAuth {
    /// Sends `key`, if any.
    pub fn new(key: Option<&str>) -> Self {
        Self(key.map(|key| {
            let mut value = MetadataValue::try_from(format!("ApiKey-v2 {key}"))
                .expect("a key is ASCII, a valid metadata value");
            // Keeps the key out of `Debug` output and HPACK tables.
            value.set_sensitive(true);
            value
        }))
    }
}

impl Interceptor for ApiKeyAuth {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// A health client over `channel` that authenticates with `key`, if any.
pub fn client(
    channel: Channel,
    key: Option<&str>,
) -> HealthClient<InterceptedService<Channel, ApiKeyAuth>> {
    HealthClient::with_interceptor(channel, ApiKeyAuth::new(key))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error + Send + Sync>> {
    let manager = KeyManager::new(InMemoryKeyStore::new());
    let monitor = manager
        .create(NewKey::new("uptime monitor", ["health:read"]))
        .await?;
    let other = manager
        .create(NewKey::new("unrelated job", ["reports:read"]))
        .await?;

    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    // Every background loop of the manager: here, writing last-used times.
    let running = tokio::spawn(manager.background());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = manager.clone();
    let serving = tokio::spawn(async move {
        serve(listener, &server, async {
            let _ = stopped.await;
        })
        .await
    });
    let channel = Channel::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;

    let calls = [
        ("without a key", None),
        (
            "with a key lacking health:read",
            Some(other.key.expose_secret()),
        ),
        ("with the monitor's key", Some(monitor.key.expose_secret())),
    ];
    for (label, key) in calls {
        let answer = client(channel.clone(), key)
            .check(HealthCheckRequest::default())
            .await;
        match answer {
            Ok(response) => {
                let seen = response
                    .metadata()
                    .get(CALLER_KEY_ID)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("?")
                    .to_owned();
                let status = response.into_inner().status();
                println!("Check {label}: Ok({status:?}); the handler saw key {seen}");
            }
            Err(status) => println!("Check {label}: {:?}: {}", status.code(), status.message()),
        }
    }

    // Once the server has stopped, the manager writes what is pending.
    drop(channel);
    let _ = stop.send(());
    serving.await??;
    manager.shutdown().await?;
    running.await?;
    if let Some(at) = manager.get(monitor.record.id()).await?.last_used_at() {
        let at = OffsetDateTime::from(at).format(&Rfc3339)?;
        println!("the monitor key's last use, written on shutdown: {at}");
    }
    Ok(())
}
