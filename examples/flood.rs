//! A flood of forged keys against a running demo, with real keys mixed in
//! (`scripts/flood` runs it; see BENCHMARKS.md).
//!
//! Forged keys are well-formed, with a correct checksum and a fresh random id each, as
//! an attacker without a key would send them. `--concurrency` workers each keep one
//! forged request in flight on their own HTTP/2 connection; every other request is
//! abandoned as soon as it is sent (the stream is reset), like a client that gives up.
//! Meanwhile one worker sends the real keys given with `--real-key`, in turn, and
//! counts how many are answered 200.
//!
//! Prints one line of `name=value` pairs, for the script to read.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use futures_util::FutureExt;
use http::Request;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;
use tower_apikey::PlaintextKey;
use tower_apikey::key::KeyPrefix;

/// Floods a demo with forged keys while checking that real keys still get 200.
#[derive(Debug, Parser)]
struct Args {
    /// The demo's address.
    #[arg(long, default_value = "127.0.0.1:3000")]
    addr: String,
    /// How many forged requests to send in all.
    #[arg(long, default_value_t = 200_000)]
    forged: u64,
    /// Forged requests in flight at once (one HTTP/2 connection each).
    #[arg(long, default_value_t = 40)]
    concurrency: usize,
    /// A real key to send during the flood (repeat the flag for several).
    #[arg(long = "real-key")]
    real_keys: Vec<String>,
    /// Pause between two real-key requests, in milliseconds.
    #[arg(long, default_value_t = 2)]
    real_pause_ms: u64,
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args = Args::parse();
    let sent = Arc::new(AtomicU64::new(0));
    let abandoned = Arc::new(AtomicU64::new(0));
    let statuses = Arc::new(Statuses::default());
    let start = Instant::now();

    let mut workers = Vec::with_capacity(args.concurrency);
    for _ in 0..args.concurrency {
        let sender = connect(&args.addr).await?;
        let (sent, abandoned, statuses) = (sent.clone(), abandoned.clone(), statuses.clone());
        let total = args.forged;
        let addr = args.addr.clone();
        workers.push(tokio::spawn(async move {
            forge(&addr, sender, total, &sent, &abandoned, &statuses).await
        }));
    }
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let real = tokio::spawn({
        let sender = connect(&args.addr).await?;
        let keys = args.real_keys.clone();
        let pause = Duration::from_millis(args.real_pause_ms);
        let done = done.clone();
        async move { send_real(sender, &keys, pause, &done).await }
    });
    for worker in workers {
        worker.await??;
    }
    done.store(true, Ordering::SeqCst);
    let (real_ok, real_total, real_other) = real.await??;
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "forged={} abandoned={} seconds={seconds:.1} forged_per_sec={:.0} \
         forged_401={} forged_503={} forged_other={} goaways={} real_ok={real_ok} \
         real_total={real_total} real_share_ok={:.4} real_other={real_other:?}",
        sent.load(Ordering::SeqCst),
        abandoned.load(Ordering::SeqCst),
        sent.load(Ordering::SeqCst) as f64 / seconds,
        statuses.unauthorized.load(Ordering::SeqCst),
        statuses.unavailable.load(Ordering::SeqCst),
        statuses.other.load(Ordering::SeqCst),
        statuses.goaways.load(Ordering::SeqCst),
        if real_total == 0 {
            1.0
        } else {
            real_ok as f64 / real_total as f64
        },
    );
    Ok(())
}

#[derive(Debug, Default)]
struct Statuses {
    unauthorized: AtomicUsize,
    unavailable: AtomicUsize,
    other: AtomicUsize,
    /// Connections the server closed on the flood (hyper sends GOAWAY to a client that
    /// resets too many streams), after which the worker connects again.
    goaways: AtomicUsize,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

async fn connect(addr: &str) -> Result<SendRequest<Empty<Bytes>>, BoxError> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    Ok(sender)
}

fn request(key: &str) -> Request<Empty<Bytes>> {
    Request::get("/ping")
        .header("authorization", format!("ApiKey-v2 {key}"))
        .body(Empty::new())
        .expect("a valid request")
}

/// Sends forged keys until `total` have been sent by all workers together; every other
/// one is abandoned right after it is sent. A connection the server closes (GOAWAY) is
/// replaced, at most 10,000 times per worker.
async fn forge(
    addr: &str,
    mut sender: SendRequest<Empty<Bytes>>,
    total: u64,
    sent: &AtomicU64,
    abandoned: &AtomicU64,
    statuses: &Statuses,
) -> Result<(), BoxError> {
    let prefix = KeyPrefix::default();
    let mut reconnects = 0;
    loop {
        let n = sent.fetch_add(1, Ordering::SeqCst);
        if n >= total {
            sent.fetch_sub(1, Ordering::SeqCst);
            return Ok(());
        }
        let key = PlaintextKey::generate(&prefix);
        let outcome = async {
            sender.ready().await?;
            let mut response = std::pin::pin!(sender.send_request(request(key.expose_secret())));
            if n.is_multiple_of(2) {
                // Polled once, the stream's headers are queued; dropping the future then
                // resets the stream (RST_STREAM CANCEL), as a client that gives up does.
                if response.as_mut().now_or_never().is_none() {
                    abandoned.fetch_add(1, Ordering::SeqCst);
                }
                tokio::task::yield_now().await;
                return Ok(None);
            }
            Ok::<_, hyper::Error>(Some(response.await?.status()))
        }
        .await;
        match outcome {
            Ok(None) => {}
            Ok(Some(status)) => {
                let counter = match status.as_u16() {
                    401 => &statuses.unauthorized,
                    503 => &statuses.unavailable,
                    _ => &statuses.other,
                };
                counter.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) if reconnects < 10_000 => {
                reconnects += 1;
                statuses.goaways.fetch_add(1, Ordering::Relaxed);
                sender = connect(addr).await?;
            }
            Err(error) => return Err(error.into()),
        }
    }
}

/// Sends the real keys in turn until the flood is done; counts the 200s.
async fn send_real(
    mut sender: SendRequest<Empty<Bytes>>,
    keys: &[String],
    pause: Duration,
    done: &std::sync::atomic::AtomicBool,
) -> Result<(u64, u64, Vec<u16>), hyper::Error> {
    let (mut ok, mut total, mut other) = (0, 0, Vec::new());
    if keys.is_empty() {
        return Ok((ok, total, other));
    }
    for key in keys.iter().cycle() {
        if done.load(Ordering::SeqCst) {
            break;
        }
        sender.ready().await?;
        let response = sender.send_request(request(key)).await?;
        let status = response.status();
        response.into_body().collect().await?;
        total += 1;
        if status == 200 {
            ok += 1;
        } else if other.len() < 20 {
            other.push(status.as_u16());
        }
        tokio::time::sleep(pause).await;
    }
    Ok((ok, total, other))
}
