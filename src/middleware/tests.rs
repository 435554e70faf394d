//! The middleware's behaviour, one test per promise, driven through `ServiceBuilder` +
//! `service_fn` + `oneshot`.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use http::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{Request, Response, StatusCode, Version};
use tower::{Service, ServiceBuilder, ServiceExt};

use crate::clock::{Clock, ManualClock};
use crate::error::StoreError;
use crate::key::{KeyId, KeyPrefix, PlaintextKey};
use crate::manager::{KeyManager, NewKey};
use crate::middleware::layer::ApiKeyV2Layer;
use crate::middleware::rejection::Rejection;
use crate::middleware::response_body::{ResponseBody, collect};
use crate::record::{ApiKeyIdentity, KeyRecord};
use crate::scope::Scopes;
use crate::store::KeyStore;
use crate::store::memory::InMemoryKeyStore;
use crate::testing::{FailingStore, HangingStore};

/// A store that counts lookups, answering from an in-memory store; `ready` chooses
/// whether it answers at once or only through the future.
#[derive(Debug, Clone)]
struct CountingStore {
    inner: InMemoryKeyStore,
    lookups: Arc<AtomicUsize>,
    ready: bool,
}

#[async_trait]
impl KeyStore for CountingStore {
    async fn lookup(&self, id: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        tokio::task::yield_now().await;
        self.inner.lookup(id).await
    }

    fn lookup_ready(&self, id: &KeyId) -> Option<Result<Option<KeyRecord>, StoreError>> {
        if !self.ready {
            return None;
        }
        self.lookups.fetch_add(1, Ordering::SeqCst);
        self.inner.lookup_ready(id)
    }
}

struct Fixture {
    store: InMemoryKeyStore,
    manager: KeyManager<InMemoryKeyStore>,
    clock: ManualClock,
}

impl Fixture {
    fn new() -> Self {
        let store = InMemoryKeyStore::new();
        let clock = ManualClock::starting_now();
        let manager = KeyManager::builder(store.clone())
            .clock(clock.clone())
            .build();
        Self {
            store,
            manager,
            clock,
        }
    }

    async fn key(&self, scopes: &[&str]) -> PlaintextKey {
        self.manager
            .create(NewKey::new("test key", scopes.iter().copied()))
            .await
            .unwrap()
            .key
    }

    fn layer(&self) -> ApiKeyV2Layer {
        ApiKeyV2Layer::new(self.store.clone()).clock(self.clock.clone())
    }
}

/// The inner service: 200 with the caller's name, or "anonymous".
async fn echo(req: Request<String>) -> Result<Response<String>, Infallible> {
    let name = req
        .extensions()
        .get::<ApiKeyIdentity>()
        .map_or("anonymous".to_owned(), |id| id.name().to_owned());
    Ok(Response::new(name))
}

async fn call(layer: ApiKeyV2Layer, authorization: Option<&str>) -> Response<String> {
    let mut req = Request::builder().uri("/");
    if let Some(value) = authorization {
        req = req.header(AUTHORIZATION, value);
    }
    ServiceBuilder::new()
        .layer(layer)
        .service_fn(echo)
        .oneshot(req.body(String::new()).unwrap())
        .await
        .map(read)
        .unwrap()
}

/// The layer's response with its body read: the inner service's text or the layer's
/// problem document.
fn read(response: Response<ResponseBody<String>>) -> Response<String> {
    response.map(|body| String::from_utf8(collect(body).to_vec()).expect("UTF-8 bodies"))
}

fn challenge(response: &Response<String>) -> &str {
    response.headers()[WWW_AUTHENTICATE].to_str().unwrap()
}

fn with_key(key: &PlaintextKey) -> String {
    format!("ApiKey-v2 {}", key.expose_secret())
}

/// The same key with its secret changed and its checksum fixed: well-formed, wrong.
fn wrong_secret(key: &PlaintextKey) -> String {
    format!(
        "ApiKey-v2 {}",
        crate::testing::with_wrong_secret(key.expose_secret())
    )
}

/// An unknown id with a valid checksum.
fn unknown_id() -> String {
    let key = PlaintextKey::generate(&KeyPrefix::default());
    with_key(&key)
}

#[tokio::test]
async fn a_valid_key_passes_and_the_identity_reaches_the_handler() {
    let f = Fixture::new();
    let key = f.key(&["reports:read"]).await;
    let response = call(f.layer(), Some(&with_key(&key))).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.body(), "test key");
    assert!(!response.headers().contains_key("apikey-expires"));
}

#[tokio::test]
async fn the_scheme_is_case_insensitive_and_spaces_may_repeat() {
    let f = Fixture::new();
    let key = f.key(&[]).await;
    for value in [
        format!("apikey-v2 {}", key.expose_secret()),
        format!("APIKEY-V2    {}", key.expose_secret()),
    ] {
        assert_eq!(call(f.layer(), Some(&value)).await.status(), 200, "{value}");
    }
}

#[tokio::test]
async fn no_header_gets_a_challenge_without_an_error_code() {
    let f = Fixture::new();
    let response = call(f.layer().realm("billing"), None).await;
    assert_eq!(response.status(), 401);
    assert_eq!(challenge(&response), "ApiKey-v2 realm=\"billing\"");
    assert_eq!(response.headers()[CONTENT_TYPE], "application/problem+json");
}

#[tokio::test]
async fn bad_headers_are_invalid_requests() {
    let f = Fixture::new();
    for value in ["Bearer abc", "ApiKey-v2", "ApiKey-v2 a b", "ApiKey-v2 ü"] {
        let response = call(f.layer(), Some(value)).await;
        assert_eq!(response.status(), 401, "{value}");
        assert!(
            challenge(&response).contains("error=\"invalid_request\""),
            "{value}"
        );
    }
}

#[tokio::test]
async fn several_authorization_headers_are_refused() {
    let f = Fixture::new();
    let key = f.key(&[]).await;
    let req = Request::builder()
        .header(AUTHORIZATION, with_key(&key))
        .header(AUTHORIZATION, with_key(&key))
        .body(String::new())
        .unwrap();
    let response = ServiceBuilder::new()
        .layer(f.layer())
        .service_fn(echo)
        .oneshot(req)
        .await
        .map(read)
        .unwrap();
    assert_eq!(response.status(), 401);
    assert!(challenge(&response).contains("invalid_request"));
}

#[tokio::test]
async fn malformed_keys_and_bad_checksums_never_reach_the_store() {
    let f = Fixture::new();
    let key = f.key(&[]).await;
    let text = key.expose_secret();
    let mut typo = text.to_owned();
    typo.replace_range(30..31, if &text[30..31] == "x" { "y" } else { "x" });
    let lookups = Arc::new(AtomicUsize::new(0));
    let store = CountingStore {
        inner: f.store.clone(),
        lookups: lookups.clone(),
        ready: true,
    };
    for value in [
        "ApiKey-v2 short".to_owned(),
        format!("ApiKey-v2 {typo}"),
        format!("ApiKey-v2 acme{}", &text[3..]),
        format!("ApiKey-v2 {}", &text[..text.len() - 1]),
    ] {
        let layer = ApiKeyV2Layer::new(store.clone()).clock(f.clock.clone());
        let response = call(layer, Some(&value)).await;
        assert_eq!(response.status(), 401, "{value}");
        assert!(
            challenge(&response).contains("error=\"invalid_token\""),
            "{value}"
        );
    }
    assert_eq!(lookups.load(Ordering::SeqCst), 0, "the store was asked");
    let layer = ApiKeyV2Layer::new(store).clock(f.clock.clone());
    assert_eq!(call(layer, Some(&with_key(&key))).await.status(), 200);
    assert_eq!(lookups.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_unknown_id_and_a_wrong_secret_get_the_same_answer() {
    let f = Fixture::new();
    let key = f.key(&[]).await;
    let unknown = call(f.layer(), Some(&unknown_id())).await;
    let wrong = call(f.layer(), Some(&wrong_secret(&key))).await;
    assert_eq!(unknown.status(), 401);
    assert_eq!(unknown.status(), wrong.status());
    assert_eq!(unknown.headers(), wrong.headers());
    assert_eq!(unknown.body(), wrong.body());
    assert!(challenge(&unknown).contains("\"the key is not valid\""));
}

#[tokio::test]
async fn a_key_is_rejected_at_exactly_expires_at() {
    let f = Fixture::new();
    let created = f
        .manager
        .create(NewKey::new("short", Vec::<String>::new()).lifetime(Duration::from_secs(60)))
        .await
        .unwrap();
    let value = with_key(&created.key);
    f.clock
        .set(created.record.expires_at() - Duration::from_nanos(1));
    assert_eq!(call(f.layer(), Some(&value)).await.status(), 200);
    f.clock.set(created.record.expires_at());
    let response = call(f.layer(), Some(&value)).await;
    assert_eq!(response.status(), 401);
    assert!(challenge(&response).contains("\"the key has expired\""));
}

#[tokio::test]
async fn expired_ended_and_revoked_are_said_only_after_the_secret_is_proven() {
    let f = Fixture::new();
    let expired = f.key(&[]).await;
    let revoked = f.key(&[]).await;
    f.manager.revoke(revoked.id()).await.unwrap();
    let revoked_response = call(f.layer(), Some(&with_key(&revoked))).await;
    assert!(challenge(&revoked_response).contains("\"the key has been revoked\""));
    let forged = call(f.layer(), Some(&wrong_secret(&revoked))).await;
    assert!(challenge(&forged).contains("\"the key is not valid\""));

    let ended = f.key(&[]).await;
    f.manager
        .rotate(ended.id(), Some(Duration::from_secs(60)))
        .await
        .unwrap();
    f.clock.advance(Duration::from_secs(60));
    let ended_response = call(f.layer(), Some(&with_key(&ended))).await;
    assert!(challenge(&ended_response).contains("ended by rotation"));
    let forged = call(f.layer(), Some(&wrong_secret(&ended))).await;
    assert!(challenge(&forged).contains("\"the key is not valid\""));

    f.clock.advance(crate::manager::MAX_LIFETIME);
    let expired_response = call(f.layer(), Some(&with_key(&expired))).await;
    assert!(challenge(&expired_response).contains("\"the key has expired\""));
    let forged = call(f.layer(), Some(&wrong_secret(&expired))).await;
    assert!(challenge(&forged).contains("\"the key is not valid\""));
}

#[tokio::test]
async fn a_revoked_key_is_rejected_at_once() {
    let f = Fixture::new();
    let key = f.key(&[]).await;
    assert_eq!(call(f.layer(), Some(&with_key(&key))).await.status(), 200);
    f.manager.revoke(key.id()).await.unwrap();
    assert_eq!(call(f.layer(), Some(&with_key(&key))).await.status(), 401);
}

/// Instance A (a manager) runs 120 s ahead of instance B (a layer), on one store: the
/// revocation time A records lies in B's future, and must not matter.
#[tokio::test]
async fn a_key_revoked_by_an_instance_whose_clock_runs_ahead_is_refused_at_once() {
    let f = Fixture::new();
    let ahead = ManualClock::new(f.clock.now() + Duration::from_secs(120));
    let a = KeyManager::builder(f.store.clone()).clock(ahead).build();
    let revoked = f.key(&[]).await;
    let leaked = f.key(&[]).await;
    for key in [&revoked, &leaked] {
        assert_eq!(call(f.layer(), Some(&with_key(key))).await.status(), 200);
    }
    a.revoke(revoked.id()).await.unwrap();
    a.rotate(leaked.id(), Some(Duration::ZERO)).await.unwrap();
    for key in [&revoked, &leaked] {
        let response = call(f.layer(), Some(&with_key(key))).await;
        assert_eq!(response.status(), 401, "{}", key.id());
        assert!(challenge(&response).contains("\"the key has been revoked\""));
    }
}

#[tokio::test]
async fn a_backwards_clock_step_after_a_revocation_does_not_revive_the_key() {
    let f = Fixture::new();
    let revoked = f.key(&[]).await;
    let leaked = f.key(&[]).await;
    f.manager.revoke(revoked.id()).await.unwrap();
    f.manager
        .rotate(leaked.id(), Some(Duration::ZERO))
        .await
        .unwrap();
    f.clock.set(f.clock.now() - Duration::from_secs(5));
    for key in [&revoked, &leaked] {
        let response = call(f.layer(), Some(&with_key(key))).await;
        assert_eq!(response.status(), 401, "{}", key.id());
        assert!(challenge(&response).contains("\"the key has been revoked\""));
    }
}

#[tokio::test]
async fn a_missing_scope_is_403_naming_it() {
    let f = Fixture::new();
    let key = f.key(&["reports:read"]).await;
    let layer = f
        .layer()
        .require_scopes(Scopes::new(["reports:read", "reports:write"]).unwrap());
    let response = call(layer, Some(&with_key(&key))).await;
    assert_eq!(response.status(), 403);
    let challenge = challenge(&response);
    assert!(
        challenge.contains("error=\"insufficient_scope\""),
        "{challenge}"
    );
    assert!(challenge.contains("scope=\"reports:write\""), "{challenge}");
}

#[tokio::test]
async fn a_wildcard_scope_satisfies_a_requirement_under_it() {
    let f = Fixture::new();
    let key = f.key(&["reports:*"]).await;
    let layer = f
        .layer()
        .require_scopes(Scopes::new(["reports:write"]).unwrap());
    assert_eq!(call(layer, Some(&with_key(&key))).await.status(), 200);
}

#[tokio::test]
async fn rotation_keeps_the_old_key_working_until_it_is_revoked() {
    let f = Fixture::new();
    let old = f.key(&["a:b"]).await;
    let new = f.manager.rotate(old.id(), None).await.unwrap();
    assert_eq!(new.record.scopes(), &Scopes::new(["a:b"]).unwrap());
    assert_eq!(call(f.layer(), Some(&with_key(&old))).await.status(), 200);
    assert_eq!(
        call(f.layer(), Some(&with_key(&new.key))).await.status(),
        200
    );
    f.manager.revoke(old.id()).await.unwrap();
    assert_eq!(call(f.layer(), Some(&with_key(&old))).await.status(), 401);
    assert_eq!(
        call(f.layer(), Some(&with_key(&new.key))).await.status(),
        200
    );
}

#[tokio::test]
async fn rotation_with_an_overlap_ends_the_old_key_after_it() {
    let f = Fixture::new();
    let old = f.key(&[]).await;
    let expires_at = f
        .store
        .lookup(old.id())
        .await
        .unwrap()
        .unwrap()
        .expires_at();
    f.manager
        .rotate(old.id(), Some(Duration::from_secs(3600)))
        .await
        .unwrap();
    let ended = f.manager.get(old.id()).await.unwrap();
    assert_eq!(ended.expires_at(), expires_at, "the expiry is kept");
    let ends_at = ended.ends_at().expect("the end is its own field");
    f.clock.set(ends_at - Duration::from_nanos(1));
    let response = call(f.layer(), Some(&with_key(&old))).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["apikey-expires"],
        httpdate::fmt_http_date(ends_at).as_str(),
        "the expiry warning names the end"
    );
    f.clock.set(ends_at);
    let response = call(f.layer(), Some(&with_key(&old))).await;
    assert_eq!(response.status(), 401);
    assert!(
        challenge(&response)
            .contains("\"the key was ended by rotation; use the key that replaced it\"")
    );
}

#[tokio::test]
async fn rotation_with_zero_overlap_revokes_the_old_key_at_once() {
    let f = Fixture::new();
    let old = f.key(&[]).await;
    let new = f
        .manager
        .rotate(old.id(), Some(Duration::ZERO))
        .await
        .unwrap();
    let response = call(f.layer(), Some(&with_key(&old))).await;
    assert!(challenge(&response).contains("revoked"));
    assert_eq!(
        call(f.layer(), Some(&with_key(&new.key))).await.status(),
        200
    );
}

#[tokio::test]
async fn responses_warn_of_expiry_inside_the_window() {
    let f = Fixture::new();
    let created = f
        .manager
        .create(NewKey::new("k", Vec::<String>::new()))
        .await
        .unwrap();
    let value = with_key(&created.key);
    let response = call(f.layer(), Some(&value)).await;
    assert!(!response.headers().contains_key("apikey-expires"));
    f.clock
        .set(created.record.expires_at() - Duration::from_secs(29 * 86_400));
    let response = call(f.layer(), Some(&value)).await;
    assert_eq!(
        response.headers()["apikey-expires"],
        httpdate::fmt_http_date(created.record.expires_at()).as_str()
    );
    let response = call(f.layer().expiry_warning(None), Some(&value)).await;
    assert!(!response.headers().contains_key("apikey-expires"));
}

#[tokio::test]
async fn a_failing_store_gives_503_never_401_or_200() {
    let f = Fixture::new();
    let key = f.key(&[]).await;
    let response = call(ApiKeyV2Layer::new(FailingStore), Some(&with_key(&key))).await;
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()[RETRY_AFTER], "5");
}

#[tokio::test(start_paused = true)]
async fn a_hanging_store_gives_503_after_the_lookup_timeout() {
    let f = Fixture::new();
    let key = f.key(&[]).await;
    let layer = ApiKeyV2Layer::new(HangingStore).lookup_timeout(Some(Duration::from_secs(2)));
    let started = tokio::time::Instant::now();
    let response = call(layer, Some(&with_key(&key))).await;
    assert_eq!(response.status(), 503);
    assert_eq!(started.elapsed(), Duration::from_secs(2));
}

#[tokio::test]
async fn stores_that_must_wait_get_the_same_answers() {
    let f = Fixture::new();
    let key = f.key(&["a:b"]).await;
    let revoked = f.key(&["a:b"]).await;
    f.manager.revoke(revoked.id()).await.unwrap();
    let lookups = Arc::new(AtomicUsize::new(0));
    let layer = || {
        ApiKeyV2Layer::new(CountingStore {
            inner: f.store.clone(),
            lookups: lookups.clone(),
            ready: false,
        })
        .clock(f.clock.clone())
    };
    let ok = call(layer(), Some(&with_key(&key))).await;
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.body(), "test key");
    assert_eq!(call(layer(), Some(&with_key(&revoked))).await.status(), 401);
    assert_eq!(call(layer(), Some(&unknown_id())).await.status(), 401);
    let scoped = layer().require_scopes(Scopes::new(["c:d"]).unwrap());
    assert_eq!(call(scoped, Some(&with_key(&key))).await.status(), 403);
    assert_eq!(lookups.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn grpc_requests_get_trailers_only_answers() {
    let f = Fixture::new();
    let key = f.key(&[]).await;
    for (value, status) in [(None, "16"), (Some(wrong_secret(&key)), "16")] {
        let mut req = Request::builder()
            .version(Version::HTTP_2)
            .header(CONTENT_TYPE, "application/grpc+proto");
        if let Some(value) = &value {
            req = req.header(AUTHORIZATION, value);
        }
        let response = ServiceBuilder::new()
            .layer(f.layer())
            .service_fn(echo)
            .oneshot(req.body(String::new()).unwrap())
            .await
            .map(read)
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["grpc-status"], status);
        assert!(response.body().is_empty());
    }
}

#[tokio::test]
async fn an_http1_request_claiming_grpc_gets_the_plain_http_answer() {
    // gRPC runs over HTTP/2 only: over HTTP/1.1 the header must not turn a 401 into a
    // 200 in access logs.
    let f = Fixture::new();
    let response = ServiceBuilder::new()
        .layer(f.layer())
        .service_fn(echo)
        .oneshot(
            Request::builder()
                .version(Version::HTTP_11)
                .header(CONTENT_TYPE, "application/grpc")
                .body(String::new())
                .unwrap(),
        )
        .await
        .map(read)
        .unwrap();
    assert_eq!(response.status(), 401);
    assert!(!response.headers().contains_key("grpc-status"));
}

#[tokio::test]
async fn the_key_reaches_the_inner_service_marked_sensitive() {
    let f = Fixture::new();
    let key = f.key(&[]).await;
    let response = ServiceBuilder::new()
        .layer(f.layer())
        .service_fn(|req: Request<String>| async move {
            let header = &req.headers()[AUTHORIZATION];
            // `Debug` of a sensitive value prints `Sensitive`, never the key.
            let shown = format!("{:?}", req.headers());
            Ok::<_, Infallible>(Response::new(format!("{} {shown}", header.is_sensitive())))
        })
        .oneshot(
            Request::builder()
                .header(AUTHORIZATION, with_key(&key))
                .body(String::new())
                .unwrap(),
        )
        .await
        .map(read)
        .unwrap();
    assert!(response.body().starts_with("true "), "{}", response.body());
    assert!(!response.body().contains(key.expose_secret()));
}

#[tokio::test]
async fn a_custom_rejection_handler_replaces_the_answer() {
    let f = Fixture::new();
    let layer = f.layer().on_rejection(|rejection: Rejection| {
        let mut response = Response::new(ResponseBody::new(format!(
            "nope: {}",
            rejection.kind().description()
        )));
        *response.status_mut() = rejection.kind().status();
        response
    });
    let response = ServiceBuilder::new()
        .layer(layer)
        .service_fn(echo)
        .oneshot(Request::new(String::new()))
        .await
        .map(read)
        .unwrap();
    assert_eq!(response.status(), 401);
    assert!(response.body().starts_with("nope: an API key is required"));
}

#[tokio::test]
async fn the_service_calls_the_inner_service_that_was_made_ready() {
    // A service whose clones are not ready until polled: calling a fresh clone instead
    // of the readied one would panic inside `call`.
    #[derive(Clone, Default)]
    struct MustBeReady {
        ready: bool,
    }
    impl Service<Request<String>> for MustBeReady {
        type Response = Response<String>;
        type Error = Infallible;
        type Future = std::future::Ready<Result<Response<String>, Infallible>>;
        fn poll_ready(
            &mut self,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), Infallible>> {
            self.ready = true;
            std::task::Poll::Ready(Ok(()))
        }
        fn call(&mut self, _: Request<String>) -> Self::Future {
            assert!(self.ready, "called without poll_ready");
            self.ready = false;
            std::future::ready(Ok(Response::new(String::new())))
        }
    }
    let f = Fixture::new();
    let key = f.key(&[]).await;
    let store = CountingStore {
        inner: f.store.clone(),
        lookups: Arc::default(),
        ready: false,
    };
    let mut service = ServiceBuilder::new()
        .layer(ApiKeyV2Layer::new(store))
        .service(MustBeReady::default());
    for _ in 0..3 {
        let req = Request::builder()
            .header(AUTHORIZATION, with_key(&key))
            .body(String::new())
            .unwrap();
        let response = service.ready().await.unwrap().call(req).await.unwrap();
        assert_eq!(response.status(), 200);
    }
}

#[test]
fn the_service_is_clone_send_and_sync_when_the_inner_service_is() {
    fn assert_traits<T: Clone + Send + Sync>(_: &T) {}
    let service = ServiceBuilder::new()
        .layer(ApiKeyV2Layer::new(InMemoryKeyStore::new()))
        .service_fn(echo);
    assert_traits(&service);
    fn assert_send<T: Send>(_: T) {}
    let mut service = service;
    assert_send(service.call(Request::new(String::new())));
}

/// A store whose lookups fail with `StoreError::Corrupt` while `corrupt` is set and
/// with `StoreError::Unavailable` otherwise.
#[derive(Debug, Clone, Default)]
struct BrokenStore {
    corrupt: Arc<std::sync::atomic::AtomicBool>,
}

#[async_trait]
impl KeyStore for BrokenStore {
    async fn lookup(&self, _: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
        Err(if self.corrupt.load(Ordering::SeqCst) {
            StoreError::Corrupt("a row that is not a record".into())
        } else {
            StoreError::unavailable("connection refused")
        })
    }
}

/// What a `tracing` subscriber wrote, for counting log lines.
#[derive(Clone, Default)]
struct LogBuffer(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuffer {
    type Writer = LogBuffer;
    fn make_writer(&'a self) -> LogBuffer {
        self.clone()
    }
}

impl LogBuffer {
    /// The lines about refusing a request for a store failure.
    fn store_failure_lines(&self) -> Vec<String> {
        String::from_utf8(self.0.lock().unwrap().clone())
            .unwrap()
            .lines()
            .filter(|line| line.contains("refusing the request with 503"))
            .map(str::to_owned)
            .collect()
    }
}

#[tokio::test(start_paused = true)]
async fn store_failures_are_logged_at_most_once_per_second_per_kind_with_a_count() {
    let log = LogBuffer::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(log.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let store = BrokenStore::default();
    let layer = ApiKeyV2Layer::new(store.clone());
    let key = unknown_id();
    let requests = |n: usize| {
        let layer = layer.clone();
        let key = key.clone();
        async move {
            for _ in 0..n {
                assert_eq!(call(layer.clone(), Some(&key)).await.status(), 503);
            }
        }
    };

    requests(100).await;
    let lines = log.store_failure_lines();
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(lines[0].contains("connection refused") && lines[0].contains("suppressed=0"));

    // Another kind of failure has a line of its own.
    store.corrupt.store(true, Ordering::SeqCst);
    requests(10).await;
    store.corrupt.store(false, Ordering::SeqCst);
    let lines = log.store_failure_lines();
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert!(lines[1].contains("not a record") && lines[1].contains("suppressed=0"));

    tokio::time::advance(Duration::from_millis(999)).await;
    requests(10).await;
    assert_eq!(log.store_failure_lines().len(), 2);

    // A second after the first line, the next one says how many were left out.
    tokio::time::advance(Duration::from_millis(1)).await;
    requests(1).await;
    let lines = log.store_failure_lines();
    assert_eq!(lines.len(), 3, "{lines:#?}");
    assert!(lines[2].contains("connection refused"));
    assert!(lines[2].contains("suppressed=109"), "{}", lines[2]);

    store.corrupt.store(true, Ordering::SeqCst);
    requests(1).await;
    let lines = log.store_failure_lines();
    assert_eq!(lines.len(), 4, "{lines:#?}");
    assert!(lines[3].contains("not a record") && lines[3].contains("suppressed=9"));
}
