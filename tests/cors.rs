//! `ApiKey-Expires` reaches a page on another origin once CORS exposes it: Debian's
//! `chromium`, headless, driven through `chromedriver` (WebDriver, via `fantoccini`),
//! opens a page on one loopback port and `fetch`es an API on another, as a browser
//! application calling its API does. The same API without
//! [`EXPOSED_HEADERS`](tower_apikey::cors::EXPOSED_HEADERS) is the control: the browser
//! hides the header there, which is why the helper exists.
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (`apt-get install chromium
//! chromium-driver`), or `CHROMIUM` and `CHROMEDRIVER` naming others; without them the
//! test fails and says so.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::Router;
use axum::response::Html;
use axum::routing::get;
use fantoccini::wd::Capabilities;
use fantoccini::{Client, ClientBuilder};
use http::HeaderValue;
use http::header::AUTHORIZATION;
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use tower_apikey::cors::EXPOSED_HEADERS;
use tower_apikey::{InMemoryKeyStore, KeyManager, NewKey};
use tower_http::cors::CorsLayer;

/// How long to wait for chromedriver; nothing is asserted about how long anything takes.
const PATIENCE: Duration = Duration::from_secs(30);

fn tool(variable: &str, default: &str, package: &str) -> PathBuf {
    let path = std::env::var_os(variable).map_or_else(|| PathBuf::from(default), PathBuf::from);
    assert!(
        path.is_file(),
        "the CORS browser test needs {} ({package}); install it with \
         `apt-get install chromium chromium-driver`, or set {variable}",
        path.display()
    );
    path
}

/// `chromedriver` in a process group of its own, so that it and its browser end with
/// the test, however the test ends.
struct Chromedriver {
    child: Child,
    url: String,
}

impl Chromedriver {
    fn start(path: &Path) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        let mut command = Command::new(path);
        command
            .arg(format!("--port={port}"))
            .arg("--log-level=SEVERE")
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", path.display()));
        Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    async fn session(&mut self, chromium: &Path, profile: &Path) -> Client {
        let mut capabilities = Capabilities::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                    format!("--user-data-dir={}", profile.display()),
                ],
            }),
        );
        let deadline = Instant::now() + PATIENCE;
        loop {
            match ClientBuilder::new(HttpConnector::new())
                .capabilities(capabilities.clone())
                .connect(&self.url)
                .await
            {
                Ok(client) => return client,
                Err(error) => {
                    if let Ok(Some(status)) = self.child.try_wait() {
                        panic!("chromedriver exited ({status}) before a session: {error}");
                    }
                    assert!(
                        Instant::now() < deadline,
                        "no WebDriver session within {PATIENCE:?}: {error}"
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        #[cfg(unix)]
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

/// What the page's cross-origin `fetch` saw: status and two headers (`null` if hidden).
async fn fetch_from_page(client: &Client, url: &str, key: &str) -> Value {
    client
        .execute_async(
            "const [url, key, done] = arguments;
             fetch(url, {headers: {Authorization: 'ApiKey-v2 ' + key}})
               .then(r => done({status: r.status,
                                expires: r.headers.get('ApiKey-Expires'),
                                challenge: r.headers.get('WWW-Authenticate')}))
               .catch(e => done({error: String(e)}));",
            vec![json!(url), json!(key)],
        )
        .await
        .expect("the page's script ran")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_on_another_origin_reads_api_key_expires_when_cors_exposes_it() {
    let chromium = tool("CHROMIUM", "/usr/bin/chromium", "Debian package chromium");
    let chromedriver = tool(
        "CHROMEDRIVER",
        "/usr/bin/chromedriver",
        "Debian package chromium-driver",
    );

    // The application's page, on its own origin.
    let page = serve(Router::new().route(
        "/",
        get(|| async { Html("<!doctype html><title>integration</title><p>app</p>") }),
    ))
    .await;
    let page_origin = format!("http://{page}");

    // A key within the 30-day warning window: its answers carry ApiKey-Expires.
    let manager = KeyManager::new(InMemoryKeyStore::new());
    let created = manager
        .create(NewKey::new("browser-app", ["reports:read"]).lifetime(Duration::from_secs(86_400)))
        .await
        .unwrap();
    let key = created.key.expose_secret().to_owned();
    let expected = httpdate::fmt_http_date(created.record.expires_at());

    // Two APIs on other ports: one exposing the layer's headers, one not.
    let api = |expose: bool| {
        let mut cors = CorsLayer::new()
            .allow_origin(HeaderValue::from_str(&page_origin).unwrap())
            .allow_headers([AUTHORIZATION]);
        if expose {
            cors = cors.expose_headers(EXPOSED_HEADERS);
        }
        Router::new()
            .route("/ping", get(|| async { "pong" }))
            .layer(manager.layer())
            .layer(cors)
    };
    let exposed = serve(api(true)).await;
    let hidden = serve(api(false)).await;

    let profile = std::env::temp_dir().join(format!("tower-apikey-cors-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&profile);
    std::fs::create_dir_all(&profile).unwrap();
    let mut driver = Chromedriver::start(&chromedriver);
    let client = driver.session(&chromium, &profile).await;
    // In a task of its own, so that the browser closes even when an assertion fails.
    let browsing = {
        let client = client.clone();
        tokio::spawn(async move {
            client.goto(&page_origin).await.unwrap();
            let seen = fetch_from_page(&client, &format!("http://{exposed}/ping"), &key).await;
            assert_eq!(seen["status"], 200, "{seen}");
            assert_eq!(
                seen["expires"], expected,
                "the page reads the warning across origins: {seen}"
            );
            let refused = fetch_from_page(
                &client,
                &format!("http://{exposed}/ping"),
                "mkc_0000000000000000_00000000000000000000000000000000000000000003HMsUU",
            )
            .await;
            assert_eq!(refused["status"], 401, "{refused}");
            assert!(
                refused["challenge"]
                    .as_str()
                    .is_some_and(|c| c.starts_with("ApiKey-v2")),
                "and why a key was refused: {refused}"
            );
            let control = fetch_from_page(&client, &format!("http://{hidden}/ping"), &key).await;
            assert_eq!(control["status"], 200, "{control}");
            assert_eq!(
                control["expires"],
                Value::Null,
                "without Access-Control-Expose-Headers the browser hides it: {control}"
            );
        })
    };
    let outcome = browsing.await;
    let _ = client.close().await;
    drop(driver);
    let _ = std::fs::remove_dir_all(&profile);
    if let Err(error) = outcome {
        std::panic::resume_unwind(error.into_panic());
    }
}
