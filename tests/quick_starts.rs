//! The quick starts of the README and the crate docs (`examples/quick_start/`), each run
//! as written: its `serve` behind a real server on loopback, a request with a key, the
//! shutdown it does once the server has stopped, and then the key's last-used time in
//! the store (the flush period is five minutes, so only that shutdown can have written
//! it). The crate docs include the files; the README must show each as it is.

#[allow(dead_code)]
#[path = "../examples/quick_start/axum.rs"]
mod axum_quick_start;
#[allow(dead_code)]
#[path = "../examples/quick_start/hyper.rs"]
mod hyper_quick_start;
#[allow(dead_code)]
#[path = "../examples/quick_start/tonic.rs"]
mod tonic_quick_start;

use std::error::Error;
use std::net::SocketAddr;
use std::time::Duration;

use http::header::AUTHORIZATION;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tonic::metadata::MetadataValue;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tower_apikey::{InMemoryKeyStore, KeyId, KeyManager, NewKey};

type Served = Result<(), Box<dyn Error + Send + Sync>>;

/// The longest a stopping server may take, so that a bug fails the test instead of
/// hanging it. Not a measure of speed.
const PATIENCE: Duration = Duration::from_secs(30);

/// A quick start's `serve`, running on loopback with a key holding `scope`.
struct Running {
    manager: KeyManager<InMemoryKeyStore>,
    key: String,
    id: KeyId,
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    serving: tokio::task::JoinHandle<Served>,
}

impl Running {
    async fn start<F>(
        scope: &str,
        serve: impl FnOnce(
            KeyManager<InMemoryKeyStore>,
            TcpListener,
            std::pin::Pin<Box<dyn Future<Output = ()> + Send>>,
        ) -> F,
    ) -> Self
    where
        F: Future<Output = Served> + Send + 'static,
    {
        // As the quick starts' `main` does.
        let manager = KeyManager::new(InMemoryKeyStore::new());
        let created = manager
            .create(NewKey::new("caller", [scope]))
            .await
            .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let signal = Box::pin(async {
            let _ = stopped.await;
        });
        let serving = tokio::spawn(serve(manager.clone(), listener, signal));
        Self {
            manager,
            key: created.key.expose_secret().to_owned(),
            id: *created.record.id(),
            addr,
            stop,
            serving,
        }
    }

    /// GET `path` with the key: the status and the body.
    async fn get(&self, path: &str) -> (StatusCode, String) {
        let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
        let request = Request::get(format!("http://{}{path}", self.addr))
            .header(AUTHORIZATION, format!("ApiKey-v2 {}", self.key))
            .body(Empty::new())
            .unwrap();
        let response = client.request(request).await.unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    /// Sends the stop signal and waits for `serve` to return, shutdown included; then
    /// checks the key's last use was written.
    async fn stop_and_check_the_last_use(self) {
        assert_eq!(
            self.manager.get(&self.id).await.unwrap().last_used_at(),
            None,
            "nothing written before the shutdown"
        );
        let _ = self.stop.send(());
        tokio::time::timeout(PATIENCE, self.serving)
            .await
            .expect("the server stops")
            .unwrap()
            .unwrap();
        assert!(
            self.manager
                .get(&self.id)
                .await
                .unwrap()
                .last_used_at()
                .is_some(),
            "the shutdown wrote the key's last use"
        );
    }
}

#[tokio::test]
async fn the_axum_quick_start_writes_the_last_use_when_it_stops() {
    let running = Running::start("reports:read", axum_quick_start::serve).await;
    let (status, body) = running.get("/reports").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, "reports for caller");
    running.stop_and_check_the_last_use().await;
}

#[tokio::test]
async fn the_hyper_quick_start_writes_the_last_use_when_it_stops() {
    let running = Running::start("greetings:read", hyper_quick_start::serve).await;
    let (status, body) = running.get("/").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, "hello, caller");
    running.stop_and_check_the_last_use().await;
}

#[tokio::test]
async fn the_tonic_quick_start_writes_the_last_use_when_it_stops() {
    let running = Running::start("health:read", tonic_quick_start::serve).await;
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", running.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut request = tonic::Request::new(HealthCheckRequest::default());
    let value = MetadataValue::try_from(format!("ApiKey-v2 {}", running.key)).unwrap();
    request.metadata_mut().insert("authorization", value);
    let answer = HealthClient::new(channel)
        .check(request)
        .await
        .expect("the key is accepted");
    assert_eq!(answer.into_inner().status(), ServingStatus::Serving);
    running.stop_and_check_the_last_use().await;
}

#[test]
fn the_readme_shows_each_quick_start_as_it_is_and_the_crate_docs_include_it() {
    let readme = include_str!("../README.md");
    let lib = include_str!("../src/lib.rs");
    for (name, file) in [
        ("axum", include_str!("../examples/quick_start/axum.rs")),
        ("hyper", include_str!("../examples/quick_start/hyper.rs")),
        ("tonic", include_str!("../examples/quick_start/tonic.rs")),
        // Run against a real PostgreSQL by postgres/tests/quick_start.rs.
        (
            "postgres",
            include_str!("../examples/quick_start/postgres.rs"),
        ),
    ] {
        assert!(
            readme.contains(&format!("```rust,no_run\n{file}```\n")),
            "README.md must show examples/quick_start/{name}.rs as it is, in a \
             ```rust,no_run block: copy the file there again"
        );
        assert!(
            lib.contains(&format!(
                "include_str!(\"../examples/quick_start/{name}.rs\")"
            )),
            "the crate docs must include examples/quick_start/{name}.rs"
        );
    }
}
