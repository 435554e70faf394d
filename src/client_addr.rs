//! The client's address: the connection's peer, or, behind proxies the application
//! trusts, the address they forwarded.
//!
//! Per-address policies read it: [`FailureThrottle`](crate::middleware::FailureThrottle) counts
//! failed attempts per client address.
//!
//! # Where the peer comes from
//!
//! The server knows each connection's peer; the middleware finds it in the request's
//! extensions, as one of:
//!
//! - a [`std::net::SocketAddr`], which hyper and tonic servers insert with a one-line
//!   layer (`examples/hyper.rs` and `examples/tonic.rs` show it; tonic inserts a
//!   `TcpConnectInfo` whose `remote_addr()` is that address);
//! - axum's `ConnectInfo<SocketAddr>` (feature `axum`), when the application is served
//!   with `into_make_service_with_connect_info::<SocketAddr>()`:
//!
//! ```no_run
//! use std::net::SocketAddr;
//! use axum::{Router, routing::get};
//!
//! # async fn run(app: Router) -> std::io::Result<()> {
//! let listener = tokio::net::TcpListener::bind("0.0.0.0:3000").await?;
//! axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await
//! # }
//! ```
//!
//! A plain `SocketAddr` wins when both are present. An IPv4-mapped IPv6 address
//! (`::ffff:192.0.2.7`, what a dual-stack socket reports for an IPv4 client) is the
//! IPv4 address it maps, so one client is one address whichever socket it reached.
//!
//! # Behind reverse proxies
//!
//! Behind a load balancer or reverse proxy every connection comes from the proxy, and
//! only the proxy knows the client. Name your proxies in [`TrustedProxies`]: when the
//! peer is one of them, the address is read from the header they set
//! (`X-Forwarded-For` or `Forwarded`, RFC 7239), walking from its right end leftwards
//! past the proxies you trust, to the first address you do not trust.
//!
//! **Trust these headers only from proxies you run.** Anyone can send
//! `X-Forwarded-For: 1.2.3.4`; the header means something only when it was written by a
//! proxy that replaces or appends to it, and only the entries that proxy appended. So:
//!
//! - never trust a network that clients can connect from (such as `0.0.0.0/0`): every
//!   client could then choose its address, and a throttled client would simply pick
//!   another one;
//! - name the header your proxies actually write: a client can send the other one, and
//!   no proxy will have touched it;
//! - make sure clients cannot reach the service except through those proxies.
//!
//! Without trusted proxies (the default), the headers are never read.
//!
//! ```
//! use std::net::SocketAddr;
//! use tower_apikey::client_addr::{ClientAddr, TrustedProxies};
//!
//! let proxies = TrustedProxies::x_forwarded_for(["10.0.0.0/8", "fd00::/8"])?;
//! let mut request = http::Request::new(());
//! request.headers_mut().insert("x-forwarded-for", "203.0.113.9, 10.1.2.3".parse()?);
//! request.extensions_mut().insert("10.0.0.5:41234".parse::<SocketAddr>()?);
//!
//! let client = proxies.client_addr(request.headers(), request.extensions());
//! assert_eq!(client, Some(ClientAddr::from("203.0.113.9".parse::<std::net::IpAddr>()?)));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod addr;
mod forwarded;
mod trusted_proxies;

pub use addr::ClientAddr;
pub use trusted_proxies::{TrustedProxies, TrustedProxiesError};
