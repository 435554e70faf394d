//! An integration that rotates its own key before it expires, with
//! `tower_apikey::client::SelfRotateLayer` on a hyper client.
//!
//! ```text
//! cargo run --release --example demo                   # in one terminal; note its admin key
//! # make a key that may rotate itself, ending in an hour (inside the 30-day warning):
//! curl -s -X POST localhost:3000/admin/keys -H "Authorization: ApiKey-v2 $ADMIN" \
//!   -H 'content-type: application/json' \
//!   -d "{\"name\":\"billing-sync\",\"scopes\":[\"reports:read\",\"keys:rotate-self\"],\
//!        \"expires_at\":\"$(date -u -d '+1 hour' +%FT%TZ)\"}" \
//!   | grep -oE 'mkc_[0-9A-Za-z]{16}_[0-9A-Za-z]{49}' > integration.key
//! cargo run --example self_rotate -- --key-file integration.key --requests 3
//! ```
//!
//! Each request goes to `GET /whoami`. The first answer carries `ApiKey-Expires`, so
//! the layer calls `POST /admin/self/rotate`, writes the new key to the key file
//! (through a temporary file and a rename, mode 0600), and the next requests use it.
//! `tests/self_rotate.rs` runs [`run`] against an in-process demo.

use std::error::Error;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use http::Request;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::{Service, ServiceExt};
use tower_apikey::client::SelfRotateLayer;
use tower_apikey::{KeyId, PlaintextKey};
use tower_layer::Layer;

type BoxError = Box<dyn Error + Send + Sync>;

#[derive(Parser)]
#[command(about = "Calls the demo with a key that rotates itself before it expires")]
struct Args {
    /// The demo's address.
    #[arg(long, default_value = "http://127.0.0.1:3000")]
    base: String,
    /// The file holding the key; the new key replaces it.
    #[arg(long)]
    key_file: PathBuf,
    /// How many requests to send (default: until stopped).
    #[arg(long)]
    requests: Option<u64>,
    /// Seconds between requests.
    #[arg(long, default_value_t = 1)]
    every_secs: u64,
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    tracing_subscriber::fmt().with_target(false).init();
    let args = Args::parse();
    let id = run(
        &args.base,
        &args.key_file,
        args.requests,
        Duration::from_secs(args.every_secs),
    )
    .await?;
    println!("using key {id}");
    Ok(())
}

/// Sends `requests` requests (forever if `None`) to `<base>/whoami`, `every` apart,
/// with the key in `key_file`, rotating it when the answers warn of its expiry.
/// Prints each answer's status and the key id it used; returns the id in use at the end.
pub async fn run(
    base: &str,
    key_file: &Path,
    requests: Option<u64>,
    every: Duration,
) -> Result<KeyId, BoxError> {
    let key = PlaintextKey::parse(tokio::fs::read_to_string(key_file).await?.trim())?;
    let file = key_file.to_owned();
    let layer = SelfRotateLayer::new(&format!("{base}/admin"), key, move |new: PlaintextKey| {
        let file = file.clone();
        async move { save(&file, &new).await }
    })?;
    let http = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let mut client = layer.layer(http);
    let mut sent = 0;
    while requests.is_none_or(|n| sent < n) {
        if sent > 0 {
            tokio::time::sleep(every).await;
        }
        let used = client.key_id();
        let request = Request::get(format!("{base}/whoami")).body(Empty::new())?;
        let response = client.ready().await?.call(request).await?;
        let status = response.status();
        let expires = response.headers().get("apikey-expires").cloned();
        let body = response.into_body().collect().await?.to_bytes();
        println!(
            "{status} with key {used}{}: {}",
            expires.map_or(String::new(), |e| format!(" (ApiKey-Expires: {e:?})")),
            String::from_utf8_lossy(&body)
        );
        sent += 1;
    }
    Ok(client.key_id())
}

/// Replaces the key file: written in full beside it, readable by its owner only, then
/// renamed over it, so that a crash leaves the old key or the new one, never half.
async fn save(file: &Path, key: &PlaintextKey) -> std::io::Result<()> {
    let temporary = file.with_extension("new");
    let mut options = tokio::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut out = options.open(&temporary).await?;
    tokio::io::AsyncWriteExt::write_all(&mut out, key.expose_secret().as_bytes()).await?;
    out.sync_all().await?;
    drop(out);
    tokio::fs::rename(&temporary, file).await
}
