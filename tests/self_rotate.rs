//! An integration rotating its own key (`client::SelfRotateLayer`) against the demo,
//! served in-process on loopback: `examples/self_rotate.rs` as it runs, a `store` that
//! fails and is retried after a backoff, and many answers at once with the warning.

#[path = "../examples/demo/app.rs"]
mod app;
mod common;
#[allow(dead_code)]
#[path = "../examples/self_rotate.rs"]
mod self_rotate;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use common::Answer;
use http::header::CONTENT_TYPE;
use http::{Method, Request, StatusCode};
use http_body_util::{Empty, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tower::{Service, ServiceExt};
use tower_apikey::client::SelfRotateLayer;
use tower_apikey::testing::ManualClock;
use tower_apikey::{Clock, InMemoryKeyStore, KeyId, PlaintextKey, SystemClock};
use tower_layer::Layer;

struct Demo {
    addr: SocketAddr,
    admin: String,
}

async fn demo() -> Demo {
    let demo = app::build(
        InMemoryKeyStore::new(),
        Duration::from_secs(1),
        Arc::new(SystemClock),
        app::FAILURES_PER_MINUTE,
    )
    .await
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = demo.router;
    tokio::spawn(demo.tracker.clone().run());
    tokio::spawn(async move {
        let app = router.into_make_service_with_connect_info::<SocketAddr>();
        axum::serve(listener, app).await.unwrap()
    });
    Demo {
        addr,
        admin: demo.admin_key.expose_secret().to_owned(),
    }
}

impl Demo {
    async fn send(&self, method: Method, path: &str, key: &str, body: Option<Value>) -> Answer {
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let mut request = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr))
            .header("authorization", format!("ApiKey-v2 {key}"));
        if body.is_some() {
            request = request.header(CONTENT_TYPE, "application/json");
        }
        let body = Full::new(Bytes::from(
            body.map_or_else(String::new, |b| b.to_string()),
        ));
        Answer::read(client.request(request.body(body).unwrap()).await.unwrap()).await
    }

    /// A key that may rotate itself and ends in an hour, well inside the demo's 30-day
    /// warning window: every answer to it carries `ApiKey-Expires`.
    async fn near_its_end(&self, name: &str) -> (PlaintextKey, Value) {
        let in_an_hour = OffsetDateTime::from(SystemTime::now() + Duration::from_secs(3_600))
            .format(&Rfc3339)
            .unwrap();
        let answer = self
            .send(
                Method::POST,
                "/admin/keys",
                &self.admin,
                Some(
                    json!({"name": name, "scopes": ["reports:read", "keys:rotate-self"],
                            "expires_at": in_an_hour}),
                ),
            )
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
        assert_eq!(answer.headers["cache-control"], "no-store");
        let record: Value = serde_json::from_str(&answer.body).unwrap();
        let key = PlaintextKey::parse(record["key"].as_str().unwrap()).unwrap();
        (key, record)
    }

    async fn record(&self, id: &str) -> Value {
        let answer = self
            .send(Method::GET, &format!("/admin/keys/{id}"), &self.admin, None)
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        serde_json::from_str(&answer.body).unwrap()
    }

    /// The keys rotated from `id`.
    async fn successors(&self, id: &str) -> Vec<Value> {
        let answer = self
            .send(Method::GET, "/admin/keys", &self.admin, None)
            .await;
        let all: Vec<Value> = serde_json::from_str(&answer.body).unwrap();
        all.into_iter()
            .filter(|r| r["rotated_from"] == id)
            .collect()
    }
}

fn lifetime(record: &Value) -> time::Duration {
    let at =
        |field: &str| OffsetDateTime::parse(record[field].as_str().unwrap(), &Rfc3339).unwrap();
    at("expires_at") - at("created_at")
}

#[tokio::test]
async fn the_self_rotate_example_ends_on_a_new_working_key_that_it_stored() {
    let demo = demo().await;
    let (key, old) = demo.near_its_end("billing-sync").await;
    let dir = std::env::temp_dir().join(format!("tower-apikey-self-rotate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key_file = dir.join("integration.key");
    std::fs::write(&key_file, key.expose_secret()).unwrap();

    let base = format!("http://{}", demo.addr);
    let used = self_rotate::run(&base, &key_file, Some(3), Duration::ZERO)
        .await
        .unwrap();

    let stored = PlaintextKey::parse(std::fs::read_to_string(&key_file).unwrap()).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_ne!(stored.id(), key.id(), "the closure stored a new key");
    assert_eq!(&used, stored.id(), "and the client ended on it");
    let whoami = demo
        .send(Method::GET, "/whoami", stored.expose_secret(), None)
        .await;
    assert_eq!(
        whoami.status,
        StatusCode::OK,
        "the new key works: {}",
        whoami.body
    );
    let record = demo.record(stored.id().as_str()).await;
    assert_eq!(record["rotated_from"], old["id"]);
    assert_eq!(record["created_by"], old["id"], "the key rotated itself");
    assert_eq!(
        lifetime(&record),
        lifetime(&old),
        "with the old key's lifetime"
    );
    assert_eq!(demo.successors(old["id"].as_str().unwrap()).await.len(), 1);
}

#[tokio::test]
async fn a_failing_store_keeps_the_old_key_and_is_retried_with_the_same_new_key() {
    let demo = demo().await;
    let (key, old) = demo.near_its_end("flaky-vault").await;
    let old_id = *key.id();
    let clock = ManualClock::new(SystemTime::now());
    // What `store` was given, and whether it fails.
    let given: Arc<Mutex<Vec<KeyId>>> = Arc::default();
    let layer = {
        let given = Arc::clone(&given);
        SelfRotateLayer::new(
            &format!("http://{}/admin", demo.addr),
            key,
            move |new: PlaintextKey| {
                let given = Arc::clone(&given);
                async move {
                    let mut given = given.lock().unwrap();
                    given.push(*new.id());
                    if given.len() == 1 {
                        Err("the vault is down")
                    } else {
                        Ok(())
                    }
                }
            },
        )
        .unwrap()
        .clock(clock.clone())
        .backoff(Duration::from_secs(10), Duration::from_secs(60))
    };
    let http = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let mut client = layer.layer(http);
    let url = format!("http://{}/whoami", demo.addr);
    let mut get = async || {
        let request = Request::get(&url).body(Empty::new()).unwrap();
        let response = client.ready().await.unwrap().call(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    };

    get().await;
    assert_eq!(given.lock().unwrap().len(), 1, "rotated, and store failed");
    assert_eq!(layer.key_id(), old_id, "so the old key stays in use");
    get().await;
    assert_eq!(
        given.lock().unwrap().len(),
        1,
        "nothing is tried during the backoff"
    );
    clock.advance(Duration::from_secs(10));
    get().await;
    let given = given.lock().unwrap().clone();
    assert_eq!(given.len(), 2, "retried after the backoff");
    assert_eq!(
        given[0], given[1],
        "with the same new key, not a second rotation"
    );
    assert_eq!(layer.key_id(), given[0], "and then switched to it");
    let heirs = demo.successors(old["id"].as_str().unwrap()).await;
    assert_eq!(heirs.len(), 1, "{heirs:?}");
    assert_eq!(heirs[0]["id"], given[0].as_str());
    // The new key's answers warn too (it ends within the window), but it is young:
    // no rotation of it.
    get().await;
    assert!(demo.successors(given[0].as_str()).await.is_empty());
}

#[tokio::test]
async fn many_answers_with_the_warning_make_one_rotation() {
    let demo = demo().await;
    let (key, old) = demo.near_its_end("busy").await;
    let stored: Arc<Mutex<Vec<KeyId>>> = Arc::default();
    let layer = {
        let stored = Arc::clone(&stored);
        SelfRotateLayer::new(
            &format!("http://{}/admin/", demo.addr),
            key,
            move |new: PlaintextKey| {
                let stored = Arc::clone(&stored);
                async move {
                    stored.lock().unwrap().push(*new.id());
                    Ok::<(), std::io::Error>(())
                }
            },
        )
        .unwrap()
    };
    let http = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    // Counts the rotations the client sends: the server's own 409 would also keep the
    // stored successors at one, so only this shows that the client sent one.
    let rotations = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counting = {
        let rotations = Arc::clone(&rotations);
        tower::ServiceBuilder::new()
            .map_request(move |request: Request<Empty<Bytes>>| {
                if request.uri().path().ends_with("/self/rotate") {
                    rotations.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
                request
            })
            .service(http)
    };
    let client = layer.layer(counting);
    let url = format!("http://{}/whoami", demo.addr);
    let requests = (0..16).map(|_| {
        let client = client.clone();
        let url = url.clone();
        tokio::spawn(async move {
            let request = Request::get(url).body(Empty::new()).unwrap();
            client.oneshot(request).await.unwrap().status()
        })
    });
    for status in futures_util::future::join_all(requests).await {
        assert_eq!(status.unwrap(), StatusCode::OK);
    }
    assert_eq!(stored.lock().unwrap().len(), 1, "one rotation, stored once");
    assert_eq!(
        rotations.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "one POST /self/rotate sent"
    );
    assert_eq!(demo.successors(old["id"].as_str().unwrap()).await.len(), 1);
    assert_eq!(layer.key_id(), stored.lock().unwrap()[0]);
}

#[tokio::test]
async fn a_key_obtained_recently_waits_for_half_its_life_before_rotating() {
    let demo = demo().await;
    let (key, old) = demo.near_its_end("restarted").await;
    let old_id = *key.id();
    let clock = ManualClock::new(SystemTime::now());
    let layer = SelfRotateLayer::new(
        &format!("http://{}/admin", demo.addr),
        key,
        |_new: PlaintextKey| async { Ok::<(), std::io::Error>(()) },
    )
    .unwrap()
    .clock(clock.clone())
    .obtained_at(clock.now());
    let http = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let mut client = layer.layer(http);
    let url = format!("http://{}/whoami", demo.addr);
    let mut get = async || {
        let request = Request::get(&url).body(Empty::new()).unwrap();
        let response = client.ready().await.unwrap().call(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert!(response.headers().contains_key("apikey-expires"));
    };
    get().await;
    assert_eq!(
        layer.key_id(),
        old_id,
        "an hour left, a moment lived: too young"
    );
    assert!(
        demo.successors(old["id"].as_str().unwrap())
            .await
            .is_empty()
    );
    // Past half of its one-hour life (on the client's clock).
    clock.advance(Duration::from_secs(31 * 60));
    get().await;
    assert_ne!(
        layer.key_id(),
        old_id,
        "rotated once it had lived as long as it had left"
    );
    assert_eq!(demo.successors(old["id"].as_str().unwrap()).await.len(), 1);
}
