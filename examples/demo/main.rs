//! The demo server (DESIGN §7): `cargo run --release --example demo`.
//!
//! An axum server with the in-memory key store. It prints `admin key: <key>` once, a
//! key with scope `admin:keys` for the key-management routes under `/admin`, and serves:
//!
//! - `GET /health`: 200 without a key;
//! - `GET /ping`: `pong` for any valid key;
//! - `GET /whoami`: the caller's key id, name, scopes and expiry as JSON;
//! - `GET /reports` (scope `reports:read`), `POST /reports` (scope `reports:write`);
//! - `/admin/keys…`: create, list, show, rotate and revoke keys (see `tower_apikey::admin`);
//! - `/admin/`: the same in a browser, the "Connector Access Control" panel.
//!
//! A client address that sends 10 wrong keys in a row, then more than 10 a minute, gets
//! 429 with `Retry-After` until it slows down (see `tower_apikey::FailureThrottle`).
//!
//! Ctrl-C or SIGTERM stops it gracefully: in-flight requests finish, then pending
//! last-used times are written.
//!
//! Built with `--features postgres`, `--database-url URL` keeps the keys in PostgreSQL
//! instead (behind a `CachedKeyStore`, with a `RevocationListener`), so several demo
//! processes on one database act as one system: keys, revocations and last-used times
//! are shared.

mod app;

use std::error::Error;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use tokio::net::TcpListener;
use tower_apikey::{InMemoryKeyStore, KeyStoreAdmin, SystemClock, UsageSink};

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

    /// Keep keys in this PostgreSQL database (postgres://user:password@host/db) instead
    /// of in memory; the table is created if missing.
    #[cfg(feature = "postgres")]
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,
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

    #[cfg(feature = "postgres")]
    if let Some(url) = &args.database_url {
        return serve_postgres(listener, url, &args).await;
    }
    serve(listener, InMemoryKeyStore::new(), &args).await
}

/// Serves the demo over PostgreSQL: the store behind a cache, revocations from other
/// instances evicted by a listener that stops with the server.
#[cfg(feature = "postgres")]
async fn serve_postgres(
    listener: TcpListener,
    url: &str,
    args: &Args,
) -> Result<(), Box<dyn Error>> {
    use tower_apikey::{CachedKeyStore, PgKeyStore};

    let pool = sqlx::postgres::PgPoolOptions::new()
        // A database outage answers 503 within this bound instead of hanging requests.
        .acquire_timeout(Duration::from_secs(2))
        .connect(url)
        .await
        .map_err(|e| format!("cannot connect to the database: {e}"))?;
    let store = CachedKeyStore::new(PgKeyStore::new(pool));
    store.get_ref().migrate().await?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let revocations = tokio::spawn(store.revocation_listener().run(async {
        let _ = stopped.await;
    }));
    let served = serve(listener, store, args).await;
    let _ = stop.send(());
    revocations.await?;
    served
}

/// Serves the demo over `store` until Ctrl-C or SIGTERM, then writes pending last-used
/// times.
async fn serve<S>(listener: TcpListener, store: S, args: &Args) -> Result<(), Box<dyn Error>>
where
    S: KeyStoreAdmin + UsageSink + Clone,
{
    let app::Demo {
        router,
        tracker,
        admin_key,
    } = app::build(
        store,
        Duration::from_secs(args.usage_flush_secs),
        Arc::new(SystemClock),
    )
    .await?;

    let flushing = tokio::spawn(tracker.run());

    // Printed once, after the listener is bound, so that the server answers as soon as
    // this line appears. The plaintext is dropped (and zeroed) right after.
    println!("admin key: {}", admin_key.expose_secret());
    drop(admin_key);
    tracing::info!(
        addr = %listener.local_addr()?,
        usage_flush_secs = args.usage_flush_secs,
        "demo listening"
    );

    // With each connection's peer in `ConnectInfo`, where the failure throttle reads it.
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(stop_signal())
    .await?;

    tracing::info!("stopped taking requests; writing pending last-used times");
    tracker.shutdown().await?;
    flushing.await?;
    tracing::info!("demo stopped");
    Ok(())
}

/// Resolves on Ctrl-C (SIGINT) or, on Unix, SIGTERM.
async fn stop_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("Ctrl-C received"),
        () = terminate => tracing::info!("SIGTERM received"),
    }
}
