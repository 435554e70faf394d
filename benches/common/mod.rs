//! What the auth-path benches share: one request shape, one inner service (an empty
//! 200), the alternatives measured against, and stores holding 1 to 1,000,000 keys.

#![allow(dead_code)] // each bench binary uses part of this module

pub mod rounds;

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::{Ready, ready};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::FutureExt;
use http::header::AUTHORIZATION;
use http::{HeaderValue, Request, Response, StatusCode};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tower::Service;
use tower_apikey::key::KeyPrefix;
use tower_apikey::record::KeyName;
use tower_apikey::usage::{TracingUsageSink, UsageTracker};
use tower_apikey::{
    ApiKeyV2Layer, InMemoryKeyStore, KeyId, KeyRecord, KeyStoreAdmin, PlaintextKey, Scopes,
};

pub type Body = http_body_util::Full<Bytes>;

/// The inner service of every row: an empty 200.
#[derive(Clone, Copy, Default)]
pub struct Ok200;

impl<B> Service<Request<B>> for Ok200 {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Ready<Result<Response<Body>, Infallible>>;
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }
    fn call(&mut self, _: Request<B>) -> Self::Future {
        ready(Ok(Response::new(Body::default())))
    }
}

/// The same request for every row: `GET /` with an `Authorization` value (or none).
pub fn request(authorization: Option<&HeaderValue>) -> Request<Body> {
    let mut req = Request::new(Body::default());
    if let Some(value) = authorization {
        req.headers_mut().insert(AUTHORIZATION, value.clone());
    }
    req
}

/// Calls a service whose future is ready at once (all rows here), without a runtime.
/// Any response body: the layer's rows answer a `ResponseBody<Body>`.
pub fn drive<S, B>(service: &mut S, req: Request<Body>) -> Response<B>
where
    S: Service<Request<Body>, Response = Response<B>, Error = Infallible>,
{
    let waker = futures_util::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    assert!(service.poll_ready(&mut cx).is_ready());
    service
        .call(req)
        .now_or_never()
        .expect("every benched service answers at once")
        .unwrap()
}

/// The floor of key authentication, inline: parse, one SHA-256 of the key, one
/// hash-map lookup, one constant-time compare. No scopes, expiry, identity or logging.
#[derive(Clone)]
pub struct Floor<S> {
    pub inner: S,
    pub digests: Arc<HashMap<[u8; 16], [u8; 32], foldhash::fast::RandomState>>,
}

impl<S: Service<Request<Body>, Response = Response<Body>>> Service<Request<Body>> for Floor<S> {
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = futures_util::future::Either<S::Future, Ready<Result<Response<Body>, S::Error>>>;
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }
    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let proven = req
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.as_bytes().strip_prefix(b"ApiKey-v2 "))
            .filter(|key| key.len() == 70)
            .is_some_and(|key| {
                let id: [u8; 16] = key[4..20].try_into().unwrap();
                let digest = Sha256::digest(key);
                self.digests
                    .get(&id)
                    .is_some_and(|stored| bool::from(stored.ct_eq(digest.as_slice())))
            });
        if proven {
            futures_util::future::Either::Left(self.inner.call(req))
        } else {
            let mut response = Response::new(Body::default());
            *response.status_mut() = StatusCode::UNAUTHORIZED;
            futures_util::future::Either::Right(ready(Ok(response)))
        }
    }
}

/// The tutorial middleware: a `HashMap<String, _>` keyed by the raw plaintext key,
/// the caller's name put into the extensions.
#[derive(Clone)]
pub struct Naive<S> {
    pub inner: S,
    pub keys: Arc<HashMap<String, Arc<str>>>,
}

impl<S: Service<Request<Body>, Response = Response<Body>>> Service<Request<Body>> for Naive<S> {
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = futures_util::future::Either<S::Future, Ready<Result<Response<Body>, S::Error>>>;
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }
    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        let name = req
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("ApiKey-v2 "))
            .and_then(|key| self.keys.get(key))
            .cloned();
        match name {
            Some(name) => {
                req.extensions_mut().insert(name);
                futures_util::future::Either::Left(self.inner.call(req))
            }
            None => {
                let mut response = Response::new(Body::default());
                *response.status_mut() = StatusCode::UNAUTHORIZED;
                futures_util::future::Either::Right(ready(Ok(response)))
            }
        }
    }
}

/// An `InMemoryKeyStore` with `n` keys, and the headers for every benched case.
pub struct Keys {
    pub store: InMemoryKeyStore,
    /// A valid key with scope `reports:read`.
    pub valid: HeaderValue,
    /// A second valid key, for a second thread.
    pub valid2: HeaderValue,
    pub valid_text: String,
    /// The first valid key's id.
    pub valid_id: KeyId,
    pub unknown_id: HeaderValue,
    pub wrong_secret: HeaderValue,
    pub bad_checksum: HeaderValue,
    pub malformed: HeaderValue,
    pub expired: HeaderValue,
    pub revoked: HeaderValue,
    /// The floor's map: id → digest of every key.
    pub floor: Arc<HashMap<[u8; 16], [u8; 32], foldhash::fast::RandomState>>,
    /// The naive map: plaintext → name of the valid keys.
    pub naive: Arc<HashMap<String, Arc<str>>>,
}

fn record(
    key: &PlaintextKey,
    scopes: &Scopes,
    created: SystemTime,
    expires: SystemTime,
) -> KeyRecord {
    KeyRecord::new(
        *key.id(),
        KeyName::new("bench").unwrap(),
        scopes.clone(),
        key.digest(),
        created,
        expires,
    )
}

fn header(text: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("ApiKey-v2 {text}")).unwrap()
}

impl Keys {
    /// A store holding `n` keys (at least the five named ones).
    pub fn new(n: usize) -> Self {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let store = InMemoryKeyStore::new();
        let now = SystemTime::now();
        let year = now + Duration::from_secs(365 * 86_400);
        let scopes = Scopes::new(["reports:read"]).unwrap();
        let prefix = KeyPrefix::default();
        let mut floor =
            HashMap::with_capacity_and_hasher(n, foldhash::fast::RandomState::default());
        let mut naive = HashMap::new();
        let mut add = |key: &PlaintextKey, record: KeyRecord| {
            rt.block_on(store.insert(&record)).unwrap();
            let id: [u8; 16] = key.id().as_str().as_bytes().try_into().unwrap();
            floor.insert(id, *key.digest().as_bytes());
        };
        let valid = PlaintextKey::generate(&prefix);
        add(&valid, record(&valid, &scopes, now, year));
        naive.insert(valid.expose_secret().to_owned(), Arc::from("bench"));
        let valid2 = PlaintextKey::generate(&prefix);
        add(&valid2, record(&valid2, &scopes, now, year));
        naive.insert(valid2.expose_secret().to_owned(), Arc::from("bench"));
        let expired = PlaintextKey::generate(&prefix);
        let past = now - Duration::from_secs(86_400);
        add(
            &expired,
            record(&expired, &scopes, past - Duration::from_secs(60), past),
        );
        let revoked = PlaintextKey::generate(&prefix);
        add(
            &revoked,
            record(&revoked, &scopes, now, year).with_revoked_at(Some(now)),
        );
        for _ in 4..n {
            let key = PlaintextKey::generate(&prefix);
            add(&key, record(&key, &scopes, now, year));
        }
        let text = valid.expose_secret().to_owned();
        let bad_checksum = tower_apikey::testing::with_bad_checksum(&text);
        Self {
            store,
            valid: header(&text),
            valid2: header(valid2.expose_secret()),
            unknown_id: header(PlaintextKey::generate(&prefix).expose_secret()),
            wrong_secret: header(&tower_apikey::testing::with_wrong_secret(&text)),
            bad_checksum: header(&bad_checksum),
            malformed: header("mkc_tooshort"),
            expired: header(expired.expose_secret()),
            revoked: header(revoked.expose_secret()),
            valid_text: text,
            valid_id: *valid.id(),
            floor: Arc::new(floor),
            naive: Arc::new(naive),
        }
    }

    /// Adds a valid key (scope `reports:read`) to the store, its record shaped by
    /// `limit` (limits, allowlists), and returns its `Authorization` value.
    #[allow(dead_code)] // Only the benches of limits use it.
    pub fn add_limited(&self, limit: impl FnOnce(KeyRecord) -> KeyRecord) -> HeaderValue {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let now = SystemTime::now();
        let scopes = Scopes::new(["reports:read"]).unwrap();
        let key = PlaintextKey::generate(&KeyPrefix::default());
        let record = limit(record(
            &key,
            &scopes,
            now,
            now + Duration::from_secs(365 * 86_400),
        ));
        rt.block_on(self.store.insert(&record)).unwrap();
        header(key.expose_secret())
    }

    /// The layer over this store, tracking uses or not.
    pub fn layer(&self, tracking: bool) -> ApiKeyV2Layer {
        let layer = ApiKeyV2Layer::new(self.store.clone());
        if tracking {
            layer.usage_tracker(UsageTracker::new(TracingUsageSink))
        } else {
            layer
        }
    }
}

/// Checks that a row answers as its name says, so that a broken row cannot pass for a
/// fast one.
pub fn expect_status<S, B>(service: &mut S, authorization: Option<&HeaderValue>, status: u16)
where
    S: Service<Request<Body>, Response = Response<B>, Error = Infallible>,
{
    let response = drive(service, request(authorization));
    assert_eq!(response.status(), status, "{authorization:?}");
}

/// Runs `work` on one thread per input, all started together (each calls `ready` when
/// its setup is done and it is about to be timed), and returns the time the slowest
/// thread reports: the wall time of the whole multi-threaded run.
pub fn slowest_thread<T, F>(inputs: Vec<T>, work: F) -> std::time::Duration
where
    T: Send,
    F: Fn(T, &dyn Fn()) -> std::time::Duration + Sync,
{
    let barrier = std::sync::Barrier::new(inputs.len());
    let ready = || {
        barrier.wait();
    };
    std::thread::scope(|scope| {
        let handles: Vec<_> = inputs
            .into_iter()
            .map(|input| {
                let (work, ready) = (&work, &ready);
                scope.spawn(move || work(input, ready))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a bench thread panicked"))
            .max()
            .expect("at least one thread")
    })
}
