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
//! - `GET /metrics`: the outcome metrics in Prometheus text, without a key (see
//!   `metrics.rs`).
//!
//! It is meant to survive the internet (see `serve.rs`): a header-read timeout, an idle
//! timeout, a request timeout and a connection cap, each with a flag. A client address
//! that sends 10 wrong keys in a row, then more than 10 a minute, gets 429 with
//! `Retry-After` until it slows down (see `tower_apikey::FailureThrottle`). Ctrl-C or
//! SIGTERM stops it gracefully: in-flight requests finish, then pending last-used times
//! are written.
//!
//! Built with `--features postgres`, `--database-url URL` keeps the keys in PostgreSQL
//! instead (behind a `CachedKeyStore`, with a `KeyFeedListener`), so several demo
//! processes on one database act as one system: keys, revocations, last-used times and
//! the keys' rate limits and quotas (a `SharedLimits` on the database) are shared. The admin key then lives in a file (`--admin-key-file`, see
//! `admin_key.rs`), so restarts print the same key instead of minting another.

#[cfg(feature = "postgres")]
mod admin_key;
mod app;
#[cfg(feature = "postgres")]
mod key_file;
mod metrics;
mod serve;

use std::error::Error;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tower_apikey::{InMemoryKeyStore, SystemClock};

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

    /// Keep keys in this PostgreSQL database (postgres://user:password@host/db) instead
    /// of in memory; the table is created if missing.
    #[cfg(feature = "postgres")]
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,

    /// With --database-url: the most connections the pool opens (one of them is held
    /// by the listener that follows created and revoked keys).
    #[cfg(feature = "postgres")]
    #[arg(
        long,
        value_name = "N",
        default_value_t = 10,
        value_parser = clap::value_parser!(u32).range(2..)
    )]
    database_pool_size: u32,

    /// The schema of the keys' table (`api_keys`) in that database; created if missing.
    #[cfg(feature = "postgres")]
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
    #[cfg(feature = "postgres")]
    #[arg(
        long,
        value_name = "PATH",
        default_value = "demo-admin.key",
        requires = "database_url"
    )]
    admin_key_file: std::path::PathBuf,
}

impl Args {
    fn limits(&self) -> serve::Limits {
        serve::Limits {
            header_read_timeout: Duration::from_secs(self.header_read_timeout_secs),
            idle_timeout: Duration::from_secs(self.idle_timeout_secs),
            request_timeout: Duration::from_secs(self.request_timeout_secs),
            max_connections: self.max_connections as usize,
        }
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

async fn run(args: Args) -> Result<(), Box<dyn Error>> {
    // Bind first: a taken port fails before any key exists.
    let listener = TcpListener::bind(&args.addr)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.addr))?;
    // Before anything records: the admin key's creation is counted from here on.
    let metrics = metrics::install()?;

    #[cfg(feature = "postgres")]
    if let Some(url) = &args.database_url {
        return serve_postgres(listener, url, &args, metrics).await;
    }
    // In memory, every start has a new store, hence a new admin key.
    let demo = app::build(
        InMemoryKeyStore::new(),
        Duration::from_secs(args.usage_flush_secs),
        Arc::new(SystemClock),
        args.failures_per_minute,
    )
    .await?;
    serve(listener, demo, &args, metrics).await
}

/// Serves the demo over PostgreSQL: the store behind a cache, with a listener that
/// stops with the server and keeps the cache in step with every instance: created ids
/// fill its id filter (forged ids are refused without a query), revoked ids are
/// evicted.
#[cfg(feature = "postgres")]
async fn serve_postgres(
    listener: TcpListener,
    url: &str,
    args: &Args,
    metrics: PrometheusHandle,
) -> Result<(), Box<dyn Error>> {
    use tower_apikey::{CachedKeyStore, KeyManager, PgKeyStore, SharedLimits};

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
        &KeyManager::new(store.clone()).with_clock(SystemClock),
        &SystemClock,
    )
    .await?;
    // Demos on one database share their keys' rate limits and quotas through it.
    let limits = SharedLimits::new(store.clone());
    let store = CachedKeyStore::new(store);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let following = tokio::spawn(store.feed_listener().run(async {
        let _ = stopped.await;
    }));
    let (stop_leasing, leasing_stopped) = tokio::sync::oneshot::channel::<()>();
    let leasing = tokio::spawn(limits.run(async {
        let _ = leasing_stopped.await;
    }));
    let demo = app::build_with_admin_key(
        store,
        Duration::from_secs(args.usage_flush_secs),
        Arc::new(SystemClock),
        admin_key,
        args.failures_per_minute,
        Some(&limits),
    );
    let served = serve(listener, demo, args, metrics).await;
    let _ = stop.send(());
    following.await?;
    // Unspent quota tokens go back to the database for the other demos.
    let _ = stop_leasing.send(());
    leasing.await?;
    served
}

/// Serves `demo`, and `GET /metrics` from `metrics`, until Ctrl-C or SIGTERM, then
/// writes pending last-used times.
async fn serve(
    listener: TcpListener,
    demo: app::Demo,
    args: &Args,
    metrics: PrometheusHandle,
) -> Result<(), Box<dyn Error>> {
    let app::Demo {
        router,
        tracker,
        events,
        expiring,
        stop_expiring,
        admin_key,
    } = demo;

    let router = router.merge(metrics::router(metrics.clone()));
    let upkeep = tokio::spawn(metrics::upkeep(metrics));
    let flushing = tokio::spawn(tracker.run());
    let forwarding = tokio::spawn(events.run());
    let expiring = tokio::spawn(expiring);
    let stop = stop_signal();

    // Printed once, after the listener is bound, so that the server answers as soon as
    // this line appears. The plaintext is dropped (and zeroed) right after.
    println!("admin key: {}", admin_key.expose_secret());
    drop(admin_key);
    let limits = args.limits();
    tracing::info!(
        addr = %listener.local_addr()?,
        usage_flush_secs = args.usage_flush_secs,
        header_read_timeout_secs = args.header_read_timeout_secs,
        idle_timeout_secs = args.idle_timeout_secs,
        request_timeout_secs = args.request_timeout_secs,
        max_connections = args.max_connections,
        "demo listening"
    );

    serve::serve(listener, router, limits, stop).await;

    tracing::info!("stopped taking requests; writing pending last-used times");
    tracker.shutdown().await?;
    flushing.await?;
    // After the tracker, whose last flush may record events.
    let _ = stop_expiring.send(());
    expiring.await?;
    events.shutdown().await;
    forwarding.await?;
    upkeep.abort();
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
