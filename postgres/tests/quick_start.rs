//! The PostgreSQL quick start of the README and the crate docs
//! (`examples/quick_start/postgres.rs` of the core), run as written against a real
//! PostgreSQL (`APIKEY_TEST_DATABASE_URL`; scripts/test provides one): its `manager` over
//! a table of this test's own, its `serve` behind a real server on loopback, a request
//! with a key, the shutdown it does once the server has stopped, and then the key's
//! last-used time in the database (the flush period is five minutes, so only that
//! shutdown can have written it).

#[allow(dead_code)]
#[path = "../../examples/quick_start/postgres.rs"]
mod postgres_quick_start;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::AUTHORIZATION;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use sqlx::postgres::PgPoolOptions;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tower_apikey::{KeyStore, NewKey};
use tower_apikey_postgres::PgKeyStore;

/// The schema the PostgreSQL tests share (`tests/postgres.rs` drops its stale tables).
const SCHEMA: &str = "apikey_tests";

/// The longest a stopping server may take, so that a bug fails the test instead of
/// hanging it. Not a measure of speed.
const PATIENCE: Duration = Duration::from_secs(30);

/// A table no other test or run uses, named as `tests/postgres.rs` names them.
fn unique_table() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    format!(
        "t{}_{}_q{}",
        now.as_secs(),
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postgres_quick_start_writes_the_last_use_when_it_stops() {
    let url = std::env::var("APIKEY_TEST_DATABASE_URL").expect(
        "APIKEY_TEST_DATABASE_URL must name a PostgreSQL database for this test: run \
         scripts/test, which provides one, or set it yourself",
    );
    let pool = PgPoolOptions::new()
        .acquire_timeout(Duration::from_secs(5))
        .connect(&url)
        .await
        .expect("connect to APIKEY_TEST_DATABASE_URL");
    let store = PgKeyStore::new(pool)
        .with_schema(SCHEMA)
        .unwrap()
        .with_table(&unique_table())
        .unwrap();

    // As the quick start's `main` does, on this test's table.
    let manager = postgres_quick_start::manager(store.clone()).await.unwrap();
    let created = manager
        .create(NewKey::new("caller", ["reports:read"]))
        .await
        .unwrap();
    let id = *created.record.id();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let serving = tokio::spawn(postgres_quick_start::serve(
        manager.clone(),
        listener,
        async {
            let _ = stopped.await;
        },
    ));

    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let request = Request::get(format!("http://{addr}/reports"))
        .header(
            AUTHORIZATION,
            format!("ApiKey-v2 {}", created.key.expose_secret()),
        )
        .body(Empty::new())
        .unwrap();
    let response = client.request(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(status, StatusCode::OK, "{body:?}");
    assert_eq!(body, "reports for caller");

    // Read from the table itself, not through the manager's cache.
    let last_used =
        |store: PgKeyStore| async move { store.lookup(&id).await.unwrap().unwrap().last_used_at() };
    assert_eq!(
        last_used(store.clone()).await,
        None,
        "nothing written before the shutdown"
    );
    let _ = stop.send(());
    tokio::time::timeout(PATIENCE, serving)
        .await
        .expect("the server stops")
        .unwrap()
        .unwrap();
    assert!(
        last_used(store).await.is_some(),
        "the shutdown wrote the key's last use to the database"
    );
}
