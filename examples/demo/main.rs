//! The demo server (DESIGN §7): `cargo run --release --example demo`.
//!
//! An axum server with the in-memory key store. It prints `admin key: <key>` once, a
//! key holding every scope of the demo's catalogue (`reports:read`, `reports:write`,
//! `keys:rotate-self`, `admin:keys`) for the key-management routes under `/admin`, and serves:
//!
//! - `GET /health`: 200 without a key;
//! - `GET /ping`: `pong` for any valid key;
//! - `GET /whoami`: the caller's key id, name, scopes and expiry as JSON;
//! - `GET /reports` (scope `reports:read`), `POST /reports` (scope `reports:write`);
//! - `/admin/keys…`: create, list, show, rotate and revoke keys (see `tower_apikey::admin`);
//! - `/admin/`: the same in a browser, the "Connector Access Control" panel;
//! - `/admin/openapi.json`: the admin API as an OpenAPI 3.1 document (with the admin key).
//!
//! With `--metrics-addr HOST:PORT` it also serves `GET /metrics`, the outcome metrics in
//! Prometheus text without a key, on that second listener only (see `metrics.rs`); the
//! main listener answers 404 there.
//!
//! It is meant to survive the internet (see `serve.rs`): a header-read timeout, an idle
//! timeout, a request timeout, a connection cap and a cap per client, each with a flag.
//! A client address that sends 10 wrong keys in a row, then more than 10 a minute, gets
//! 429 with `Retry-After` until it slows down (see `tower_apikey::middleware::FailureThrottle`).
//! Behind reverse proxies named with `--trusted-proxies`, the client address is the one
//! they forward. Ctrl-C or SIGTERM stops it gracefully: in-flight requests finish, then
//! pending last-used times are written.
//!
//! `--database-url URL` keeps the keys in PostgreSQL
//! instead (behind a `CachedKeyStore`, with a `KeyFeedListener`), so several demo
//! processes on one database act as one system: keys, revocations, last-used times and
//! the keys' rate limits and quotas (a `SharedLimits` on the database) are shared. The admin key then lives in a file (`--admin-key-file`, see
//! `admin_key.rs`), so restarts print the same key instead of minting another.

mod admin_key;
mod app;
mod client_slots;
mod key_file;
mod metrics;
mod serve;

use std::error::Error;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tower_apikey::client_addr::TrustedProxies;
use tower_apikey::{InMemoryKeyStore, KeyManager, KeyStoreAdmin, SystemClock};

/// ApiKey-v2 demo server: key management at /admin, protected routes at /ping, /whoami
/// and /reports.
#[derive(Debug, Parser)]
#[command(name = "demo")]
struct Args {
    /// Address to listen on, as HOST:PORT.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:3000")]
    addr: String,

    /// Seconds between writes of last-used times to the store.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 300,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    usage_flush_secs: u64,

    /// Wrong keys a client address may send per minute (and in a row) before its
    /// requests get 429 without a lookup; 0 turns the throttle off (scripts/flood does,
    /// to measure what reaches the store).
    #[arg(long, value_name = "N", default_value_t = app::FAILURES_PER_MINUTE)]
    failures_per_minute: u32,

    /// Seconds a client may take to send a request's headers, from when its connection
    /// opens or falls idle; then the connection is closed.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 10,
        value_parser = clap::value_parser!(u64).range(1..=86_400)
    )]
    header_read_timeout_secs: u64,

    /// Seconds a connection may stay open with no request in flight (an idle HTTP/1
    /// connection already closes at the header-read timeout, if that is shorter).
    #[arg(
        long,
        value_name = "N",
        default_value_t = 60,
        value_parser = clap::value_parser!(u64).range(1..=86_400)
    )]
    idle_timeout_secs: u64,

    /// Seconds a request, reading its body included, may take before it is answered
    /// 408; also how long a stop waits for requests in flight.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 30,
        value_parser = clap::value_parser!(u64).range(1..=86_400)
    )]
    request_timeout_secs: u64,

    /// Connections served at once; more wait to be accepted. Each holds a file
    /// descriptor: keep it below `ulimit -n`.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 1024,
        value_parser = clap::value_parser!(u32).range(1..=1_000_000)
    )]
    max_connections: u32,

    /// Connections one client address may hold (IPv6: one /64); its connections beyond
    /// that are closed at once, while other clients are served. Connections from
    /// --trusted-proxies are not capped: cap them at the proxy.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 64,
        value_parser = clap::value_parser!(u32).range(1..=1_000_000)
    )]
    max_connections_per_client: u32,

    /// Reverse proxies whose forwarding header the demo believes (default: none), as IP
    /// addresses or CIDR networks: 10.0.0.0/8,::1. A request from one of them counts,
    /// for the failure throttle, keys' allowlists and recent addresses, as coming from
    /// the address the header names (read from the right, past the trusted hops). Name
    /// only proxies you run: anyone else can write any address there.
    #[arg(
        long,
        value_name = "CIDR[,CIDR…]",
        value_delimiter = ',',
        value_parser = trusted_proxy
    )]
    trusted_proxies: Vec<String>,

    /// The header --trusted-proxies write: `x-forwarded-for`, or `forwarded` (RFC 7239's
    /// `for=`). Only that one is read; a client can send the other, which no proxy
    /// touched.
    #[arg(
        long,
        value_enum,
        value_name = "HEADER",
        default_value_t = ProxyHeader::XForwardedFor,
        requires = "trusted_proxies"
    )]
    proxy_header: ProxyHeader,

    /// Serve `GET /metrics` (Prometheus text, without a key) on this second listener,
    /// as HOST:PORT; keep it internal, as 127.0.0.1:9100. Default: no listener and no
    /// metrics. The main listener answers 404 at /metrics either way.
    #[arg(long, value_name = "HOST:PORT")]
    metrics_addr: Option<String>,

    /// Keep keys in this PostgreSQL database (postgres://user:password@host/db) instead
    /// of in memory; the table is created if missing.
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,

    /// With --database-url: the most connections the pool opens (one of them is held
    /// by the listener that follows created and revoked keys).
    #[arg(
        long,
        value_name = "N",
        default_value_t = 10,
        value_parser = clap::value_parser!(u32).range(2..)
    )]
    database_pool_size: u32,

    /// The schema of the keys' table (`api_keys`) in that database; created if missing.
    #[arg(
        long,
        value_name = "NAME",
        default_value = "public",
        requires = "database_url"
    )]
    database_schema: String,

    /// With --database-url: the file that keeps the admin key between starts (mode
    /// 0600). Created with a new key if missing; its key is reused while the database
    /// holds it active, and replaced otherwise. Share it between demos on one database.
    #[arg(
        long,
        value_name = "PATH",
        default_value = "demo-admin.key",
        requires = "database_url"
    )]
    admin_key_file: std::path::PathBuf,
}

/// The header trusted proxies write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ProxyHeader {
    /// `X-Forwarded-For: client, proxy1, …` (nginx, HAProxy, most load balancers).
    XForwardedFor,
    /// `Forwarded: for=client, for=proxy1, …` (RFC 7239).
    Forwarded,
}

/// One entry of `--trusted-proxies`, checked as the library will read it.
fn trusted_proxy(entry: &str) -> Result<String, String> {
    TrustedProxies::x_forwarded_for([entry]).map_err(|e| e.to_string())?;
    Ok(entry.to_owned())
}

impl Args {
    fn limits(&self) -> serve::Limits {
        serve::Limits {
            header_read_timeout: Duration::from_secs(self.header_read_timeout_secs),
            idle_timeout: Duration::from_secs(self.idle_timeout_secs),
            request_timeout: Duration::from_secs(self.request_timeout_secs),
            max_connections: self.max_connections as usize,
            max_connections_per_client: self.max_connections_per_client as usize,
        }
    }

    /// The proxies of `--trusted-proxies`, with the header of `--proxy-header`.
    fn trusted_proxies(&self) -> TrustedProxies {
        let proxies = match self.proxy_header {
            ProxyHeader::XForwardedFor => TrustedProxies::x_forwarded_for(&self.trusted_proxies),
            ProxyHeader::Forwarded => TrustedProxies::forwarded(&self.trusted_proxies),
        };
        proxies.expect("each entry was checked when the flags were parsed")
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    // Logs go to stderr; stdout carries only the `admin key:` line, for scripts.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("demo: {error}");
            ExitCode::FAILURE
        }
    }
}

/// The listeners: the main one, and the metrics one if `--metrics-addr` was given.
struct Listeners {
    main: TcpListener,
    metrics: Option<(TcpListener, PrometheusHandle)>,
}

async fn run(args: Args) -> Result<(), Box<dyn Error>> {
    // Bind first: a taken port fails before any key exists.
    let main = TcpListener::bind(&args.addr)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.addr))?;
    let metrics = match &args.metrics_addr {
        Some(addr) => {
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|e| format!("cannot listen on {addr} (--metrics-addr): {e}"))?;
            // Before anything records: the admin key's creation is counted from here on.
            Some((listener, metrics::install()?))
        }
        None => None,
    };
    let listeners = Listeners { main, metrics };

    if let Some(url) = &args.database_url {
        return serve_postgres(listeners, url, &args).await;
    }
    // In memory, every start has a new store, hence a new admin key.
    let store = InMemoryKeyStore::new();
    let clock = Arc::new(SystemClock);
    let admin_key = app::mint_admin_key(&KeyManager::new(store.clone())).await?;
    let demo = app::build_with_admin_key(
        store,
        Duration::from_secs(args.usage_flush_secs),
        clock,
        admin_key,
        args.failures_per_minute,
        None,
        args.trusted_proxies(),
    );
    serve(listeners, demo, &args).await
}

/// Serves the demo over PostgreSQL: the store behind a cache, with a feed listener
/// that keeps the cache in step with every instance (created ids fill its id filter, so
/// forged ids are refused without a query; revoked ids are evicted), and the keys'
/// limits shared through the database. The manager runs both beside the store.
async fn serve_postgres(
    listeners: Listeners,
    url: &str,
    args: &Args,
) -> Result<(), Box<dyn Error>> {
    use tower_apikey::limits::SharedLimits;
    use tower_apikey::store::cached::CachedKeyStore;
    use tower_apikey_postgres::PgKeyStore;

    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(args.database_pool_size)
        // A database outage answers 503 within this bound instead of hanging requests.
        .acquire_timeout(Duration::from_secs(2))
        .connect(url)
        .await
        .map_err(|e| format!("cannot connect to the database: {e}"))?;
    let store = PgKeyStore::new(pool)
        .with_schema(&args.database_schema)
        .map_err(|e| format!("--database-schema: {e}"))?;
    store.migrate().await?;
    // Checked against the database itself, not through the cache.
    let admin_key = admin_key::from_file(
        &args.admin_key_file,
        &KeyManager::new(store.clone()),
        &SystemClock,
    )
    .await?;
    // Demos on one database share their keys' rate limits and quotas through it.
    let limits = SharedLimits::new(store.clone());
    let store = CachedKeyStore::new(store);
    let clock = Arc::new(SystemClock);
    let manager = app::manager(
        store.clone(),
        Duration::from_secs(args.usage_flush_secs),
        clock.clone(),
    )
    .shared_limits(limits)
    .feed_listener(store.feed_listener())
    .build();
    let demo = app::wire(
        manager,
        clock,
        admin_key,
        args.failures_per_minute,
        args.trusted_proxies(),
    );
    serve(listeners, demo, args).await
}

/// Serves `demo` on the main listener, and `GET /metrics` on the metrics listener if
/// any, until Ctrl-C or SIGTERM; then the manager writes what is pending (last-used
/// times, usage counts, events, unspent limit tokens) and stops its loops.
async fn serve<S: KeyStoreAdmin + Clone>(
    listeners: Listeners,
    demo: app::Demo<S>,
    args: &Args,
) -> Result<(), Box<dyn Error>> {
    let app::Demo {
        router,
        manager,
        admin_key,
        ..
    } = demo;

    // Every loop beside the routes, in one task: the usage flush, the audit trail's
    // queue and expiring pass, and, over PostgreSQL, the leases and the cache's feed.
    let running = tokio::spawn(manager.background());
    // One signal stops both listeners.
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let signal = stop_signal();
    tokio::spawn(async move {
        signal.await;
        stop.send_replace(true);
    });
    let stopped = move || {
        let mut stopping = stopping.clone();
        async move {
            // An error means the sender is gone, which only the process's end does.
            let _ = stopping.wait_for(|stop| *stop).await;
        }
    };
    let limits = args.limits();
    let proxies = args.trusted_proxies();
    let (metrics_served, upkeep) = match listeners.metrics {
        Some((listener, handle)) => {
            tracing::info!(addr = %listener.local_addr()?, "metrics listening");
            let served = tokio::spawn(serve::serve(
                listener,
                metrics::router(handle.clone()),
                limits,
                proxies.clone(),
                stopped(),
            ));
            (Some(served), Some(tokio::spawn(metrics::upkeep(handle))))
        }
        None => (None, None),
    };
    let listener = listeners.main;

    // Printed once, after the listener is bound, so that the server answers as soon as
    // this line appears. The plaintext is dropped (and zeroed) right after.
    println!("admin key: {}", admin_key.expose_secret());
    drop(admin_key);
    tracing::info!(
        addr = %listener.local_addr()?,
        usage_flush_secs = args.usage_flush_secs,
        header_read_timeout_secs = args.header_read_timeout_secs,
        idle_timeout_secs = args.idle_timeout_secs,
        request_timeout_secs = args.request_timeout_secs,
        max_connections = args.max_connections,
        max_connections_per_client = args.max_connections_per_client,
        trusted_proxies = args.trusted_proxies.len(),
        "demo listening"
    );

    serve::serve(listener, router, limits, proxies, stopped()).await;
    if let Some(metrics_served) = metrics_served {
        metrics_served.await?;
    }

    tracing::info!("stopped taking requests; writing pending last-used times");
    // In its documented order: last-used times and usage counts, then events (the
    // flush may record some), then unspent limit tokens, then the feed listener.
    manager.shutdown().await?;
    running.await?;
    if let Some(upkeep) = upkeep {
        upkeep.abort();
    }
    tracing::info!("demo stopped");
    Ok(())
}

/// Listens for Ctrl-C (SIGINT) and, on Unix, SIGTERM from this call on; the future
/// resolves on the first of them. Called before the demo announces itself, so that a
/// signal sent as soon as it has is never met by the default action, which would end
/// the process without a graceful stop.
fn stop_signal() -> impl Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::SignalKind;
        let ctrl_c = listen(SignalKind::interrupt(), "Ctrl-C");
        let terminate = listen(SignalKind::terminate(), "SIGTERM");
        async move {
            tokio::select! {
                () = ctrl_c => tracing::info!("Ctrl-C received"),
                () = terminate => tracing::info!("SIGTERM received"),
            }
        }
    }
    #[cfg(not(unix))]
    async {
        match tokio::signal::ctrl_c().await {
            Ok(()) => tracing::info!("Ctrl-C received"),
            Err(error) => {
                tracing::error!(%error, "cannot listen for Ctrl-C");
                std::future::pending::<()>().await;
            }
        }
    }
}

/// Resolves on the signal `kind`, registered now; never, if it cannot be.
#[cfg(unix)]
fn listen(kind: tokio::signal::unix::SignalKind, name: &'static str) -> impl Future<Output = ()> {
    let signal = tokio::signal::unix::signal(kind);
    async move {
        match signal {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for {name}");
                std::future::pending::<()>().await;
            }
        }
    }
}
