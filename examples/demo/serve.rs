//! Serving the demo to the internet: HTTP/1.1 and HTTP/2 (prior knowledge) over TCP,
//! with the limits `axum::serve` does not offer.
//!
//! - **Header-read timeout**: a connection must deliver a request's headers within it,
//!   counted from when the connection opens and, for HTTP/1, from whenever a keep-alive
//!   connection falls idle (hyper's own timer); otherwise it is closed without an answer.
//!   A client that opens connections and sends a few bytes now and then holds nothing
//!   for long.
//! - **Idle timeout**: a connection with no request in flight for this long is closed
//!   gracefully. hyper has no idle timer for HTTP/2, nor one for HTTP/1 beyond the
//!   header-read timer above, so this module keeps one per connection. For HTTP/1 the
//!   smaller of the two timeouts therefore ends an idle keep-alive connection.
//! - **Request timeout**: a request (reading its body included) that has not been
//!   answered within it gets `408 Request Timeout`, so a client trickling a body holds
//!   a connection no longer than this.
//! - **Connection cap**: past it, new connections are not accepted: they wait in the
//!   kernel's accept backlog and are served as soon as another connection closes. Waiting
//!   rather than closing them at once means a burst of legitimate clients is served
//!   late instead of failing, while the connections an attacker holds cost little and
//!   expire through the timeouts above; the kernel bounds the backlog, and clients past
//!   it see their connection attempts time out.
//! - **Connections per client**: one client (an IPv4 address, an IPv6 /64) may hold
//!   this many connections; one more is closed as soon as it is accepted, so that one
//!   client cannot take every slot under the cap while others wait (see
//!   `client_slots.rs`). Trusted proxies are not capped per client.
//! - **Graceful shutdown**: when `shutdown` resolves, the listener closes, idle
//!   connections close, and requests in flight get up to the request timeout to finish
//!   (none may take longer); connections still open after that are closed.
//!
//! Each request carries its peer's address as
//! [`ConnectInfo<SocketAddr>`](axum::extract::ConnectInfo) in its extensions, as
//! `axum::serve` with `into_make_service_with_connect_info` provides it.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use axum::response::Response;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep, sleep_until};
use tower::ServiceExt;
use tower::util::Oneshot;
use tower_apikey::client_addr::TrustedProxies;
use tower_http::timeout::TimeoutLayer;

use crate::client_slots::{ClientSlot, ClientSlots};

/// The limits of [`serve`]; see the module's docs for what each one bounds.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// How long a client may take to send a request's headers.
    pub header_read_timeout: Duration,
    /// How long a connection may stay open with no request in flight.
    pub idle_timeout: Duration,
    /// How long a request may take, from its headers to its answer.
    pub request_timeout: Duration,
    /// How many connections are served at once.
    pub max_connections: usize,
    /// How many connections one client may hold.
    pub max_connections_per_client: usize,
}

/// Serves `router` on `listener` within `limits` until `shutdown` resolves, then shuts
/// down gracefully and returns once every connection is closed. Connections from
/// `proxies` are not capped per client.
///
/// Dropping the returned future closes the listener and every connection at once.
///
/// # Panics
///
/// If `max_connections` is 0 or above [`Semaphore::MAX_PERMITS`], or
/// `max_connections_per_client` is 0.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    proxies: TrustedProxies,
    shutdown: impl Future<Output = ()>,
) {
    assert!(
        (1..=Semaphore::MAX_PERMITS).contains(&limits.max_connections),
        "max_connections must be between 1 and {}",
        Semaphore::MAX_PERMITS
    );
    assert!(
        limits.max_connections_per_client > 0,
        "max_connections_per_client must be at least 1"
    );
    let clients = ClientSlots::new(limits.max_connections_per_client, proxies);
    let router = router.layer(TimeoutLayer::with_status_code(
        StatusCode::REQUEST_TIMEOUT,
        limits.request_timeout,
    ));
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let (stop, stopping) = watch::channel(false);
    // Aborts every connection if this future is dropped, and lets the drain below
    // close those that outlive it.
    let mut connections = JoinSet::new();
    let mut shutdown = pin!(shutdown);

    loop {
        // Finished connections are collected here, so the set holds at most the
        // connections open plus those that closed since the last accept.
        while let Some(finished) = connections.try_join_next() {
            if let Err(error) = finished {
                tracing::error!(%error, "a connection task failed");
            }
        }
        // A slot first, then `accept`: past the cap, connections wait in the backlog.
        let slot = tokio::select! {
            () = &mut shutdown => break,
            slot = Arc::clone(&slots).acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => unreachable!("the semaphore is never closed"),
            },
        };
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tokio::select! {
                        () = &mut shutdown => break,
                        () = accept_failed(error) => continue,
                    }
                }
            },
        };
        // Past its client's cap, the connection is closed at once: dropping the stream
        // sends FIN, and the slot under the server's cap is free for someone else.
        let Some(client_slot) = clients.take(peer.ip()) else {
            tracing::debug!(%peer, "closing a connection past its client's cap");
            continue;
        };
        connections.spawn(serve_connection(
            stream,
            peer,
            router.clone(),
            limits,
            stopping.clone(),
            (slot, client_slot),
        ));
    }

    // New connections are refused from here on.
    drop(listener);
    stop.send_replace(true);
    while connections.try_join_next().is_some() {}
    if !connections.is_empty() {
        tracing::info!(
            open = connections.len(),
            "waiting for open connections to finish"
        );
    }
    let drained = tokio::time::timeout(limits.request_timeout, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            open = connections.len(),
            "closing connections still open after the request timeout"
        );
        connections.shutdown().await;
    }
}

/// Waits after a failed `accept`, unless the error concerned only that connection.
async fn accept_failed(error: io::Error) {
    if matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
    ) {
        return;
    }
    // Most likely out of file descriptors (EMFILE): retrying at once would spin, while
    // waiting lets connections close and free some. Connections keep waiting in the
    // backlog meanwhile.
    tracing::error!(%error, "cannot accept connections; retrying in 1 s");
    sleep(Duration::from_secs(1)).await;
}

/// Serves one connection until it closes, the idle or header-read timeout closes it, or
/// the server stops. `_slots` are its places under the connection cap and its client's
/// cap, freed on return.
async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    limits: Limits,
    mut stopping: watch::Receiver<bool>,
    _slots: (OwnedSemaphorePermit, ClientSlot),
) {
    let activity = Arc::new(Activity::new());
    let service = PeerService {
        router,
        peer: ConnectInfo(peer),
        activity: Arc::clone(&activity),
    };
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    // Without upgrades (the demo has no WebSockets): an upgraded connection would
    // leave hyper, and with it the timeouts and the cap.
    let mut connection = pin!(builder.serve_connection(TokioIo::new(stream), service));
    let mut watchdog = pin!(sleep_until(activity.deadline(&limits, Instant::now())));
    let mut closing = false;
    loop {
        tokio::select! {
            served = connection.as_mut() => {
                if let Err(error) = served {
                    // Clients reset, time out and speak garbage: routine on the internet.
                    tracing::debug!(%peer, %error, "connection closed with an error");
                }
                return;
            }
            () = &mut watchdog, if !closing => {
                let now = Instant::now();
                let deadline = activity.deadline(&limits, now);
                if deadline > now {
                    watchdog.as_mut().reset(deadline);
                } else {
                    tracing::debug!(%peer, "closing an idle connection");
                    connection.as_mut().graceful_shutdown();
                    closing = true;
                }
            }
            // An error means the server is gone: stop as well.
            _ = stopping.wait_for(|stop| *stop), if !closing => {
                connection.as_mut().graceful_shutdown();
                closing = true;
            }
        }
    }
}

/// When one connection last had a request in flight.
///
/// Updated by the connection's requests and read by its watchdog, possibly on another
/// thread. The orderings are relaxed because a stale read costs nothing: at worst the
/// watchdog closes a connection whose request has just begun, and a graceful shutdown
/// lets that request finish.
struct Activity {
    opened: Instant,
    in_flight: AtomicUsize,
    served_any: AtomicBool,
    /// Milliseconds from `opened` to when the last request finished.
    idle_since_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            opened: Instant::now(),
            in_flight: AtomicUsize::new(0),
            served_any: AtomicBool::new(false),
            idle_since_ms: AtomicU64::new(0),
        }
    }

    /// When the connection should close if nothing happens before: the idle timeout
    /// after its last request, and before its first request also the header-read
    /// timeout, which hyper's HTTP/1 timer does not cover until the first bytes show
    /// which protocol the client speaks. At or before `now` means close now.
    fn deadline(&self, limits: &Limits, now: Instant) -> Instant {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return now + limits.idle_timeout;
        }
        if self.served_any.load(Ordering::Relaxed) {
            let idle_since = Duration::from_millis(self.idle_since_ms.load(Ordering::Relaxed));
            self.opened + idle_since + limits.idle_timeout
        } else {
            self.opened + limits.idle_timeout.min(limits.header_read_timeout)
        }
    }

    /// Marks a request in flight until the returned guard drops.
    fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.served_any.store(true, Ordering::Relaxed);
        InFlight(Arc::clone(self))
    }
}

/// One request in flight on a connection; dropped when its answer is ready, or when
/// hyper drops the request because the client went away.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let activity = &self.0;
        let since = u64::try_from(activity.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        activity.idle_since_ms.store(since, Ordering::Relaxed);
        activity.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The router as one connection's hyper service: each request gets the peer's address
/// and counts as activity while it is in flight.
#[derive(Clone)]
struct PeerService {
    router: Router,
    peer: ConnectInfo<SocketAddr>,
    activity: Arc<Activity>,
}

impl hyper::service::Service<Request<Incoming>> for PeerService {
    type Response = Response;
    type Error = Infallible;
    type Future = Tracked<Oneshot<Router, Request<Incoming>>>;

    fn call(&self, mut request: Request<Incoming>) -> Self::Future {
        request.extensions_mut().insert(self.peer);
        Tracked {
            in_flight: self.activity.begin(),
            inner: self.router.clone().oneshot(request),
        }
    }
}

pin_project_lite::pin_project! {
    /// A response future that keeps its request counted as in flight.
    struct Tracked<F> {
        #[pin]
        inner: F,
        in_flight: InFlight,
    }
}

impl<F: Future> Future for Tracked<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.project().inner.poll(cx)
    }
}
