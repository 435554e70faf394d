//! The integration's side (feature `client`): a tower [`Layer`] for an HTTP client that
//! sends its API key and rotates it before it expires.
//!
//! [`SelfRotateLayer`] wraps the service an integration sends its requests through (a
//! hyper client, or any `Service<http::Request<B>>`). It
//!
//! 1. adds `Authorization: ApiKey-v2 <current key>` to every request;
//! 2. watches the answers for [`ApiKey-Expires`](crate::cors::API_KEY_EXPIRES), which
//!    the server sends while the key is within its expiry warning window;
//! 3. when it sees it, calls `POST <admin base>/self/rotate` through the same inner
//!    service (one rotation at a time, however many answers carry the warning), reads
//!    the new key from the 201;
//! 4. hands the new key to the application's `store` closure, which keeps it wherever
//!    the application keeps secrets (no secret store is assumed);
//! 5. and only once that succeeded, sends the new key.
//!
//! The rotation sends no body, so the server ends the old key 300 s after the new key's
//! first use (the route's default, `until_first_use`): the old key keeps working until
//! the integration has switched and been seen using the new one, and needs no
//! revocation afterwards.
//!
//! The key needs the scope `keys:rotate-self` (see the admin router's
//! self-rotation in the crate `tower-apikey-admin`).
//!
//! ```no_run
//! use tower::{Service, ServiceExt};
//! use tower_apikey::PlaintextKey;
//! use tower_apikey::client::SelfRotateLayer;
//! use tower_layer::Layer;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let key = PlaintextKey::parse(std::env::var("API_KEY")?)?;
//! let layer = SelfRotateLayer::new("http://127.0.0.1:3000/admin", key, |new: PlaintextKey| async move {
//!     // Keep it where the next start finds it, before the layer switches to it. In
//!     // production, a secret store, or a file only this user can read (mode 0600, as
//!     // examples/self_rotate.rs writes it): `fs::write` uses the umask.
//!     tokio::fs::write("api.key", new.expose_secret()).await
//! })?;
//! let http = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
//!     .build_http::<http_body_util::Empty<bytes::Bytes>>();
//! let mut client = layer.layer(http);
//! let request = http::Request::get("http://127.0.0.1:3000/ping").body(Default::default())?;
//! let response = client.ready().await?.call(request).await?;
//! # Ok(()) }
//! ```
//!
//! # What happens when
//!
//! - The request whose answer first carries the warning waits for the rotation and
//!   the `store` closure before its answer is returned: one extra round trip, once. No
//!   task is spawned and no timer runs; the layer acts only on answers.
//! - If the rotation fails (network, 5xx, or a refusal such as 403 for a key without
//!   `keys:rotate-self`) or `store` fails, the old key stays in use and a later answer
//!   tries again, after a backoff that doubles from [`DEFAULT_BACKOFF`] up to
//!   [`DEFAULT_MAX_BACKOFF`] ([`SelfRotateLayer::backoff`]). When `store` fails the
//!   new key is kept in memory and handed to `store` again on the retry: the server
//!   refuses a second heir while the first lives (409), so rotating again would not
//!   help.
//! - If the request is dropped mid-way (a timeout, a cancelled task), nothing is left
//!   half-done: a new key already received is kept for the next try, and the next
//!   answer with the warning resumes.
//! - A key this layer rotated into is rotated again only once it has lived at least as
//!   long as it has left, so that a key whose whole life lies inside the warning window
//!   (a 7-day key under a 30-day window) is rotated once per half-life, not on every
//!   answer. After a restart, [`SelfRotateLayer::obtained_at`] carries that over.
//! - If the process stops after the server issued a new key but before `store`
//!   succeeded, that key is lost while the old one keeps working; the server then
//!   answers 409 to further self-rotations until an administrator revokes the lost
//!   key. The layer logs this case.
//!
//! Keys never appear in logs or `Debug` output: only their ids.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use http::header::{AUTHORIZATION, CONTENT_LENGTH};
use http::{HeaderValue, Method, Request, Response, StatusCode, Uri};
use http_body::Body;
use http_body_util::{BodyExt, Limited};
use tower_layer::Layer;
use tower_service::Service;
use zeroize::Zeroizing;

use crate::clock::{Clock, SystemClock};
use crate::cors::API_KEY_EXPIRES;
use crate::error::BoxError;
use crate::key::{KeyId, PlaintextKey};

/// The first wait before retrying a failed rotation or `store`: 10 s.
pub const DEFAULT_BACKOFF: Duration = Duration::from_secs(10);

/// The longest wait between retries: 1 hour.
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(60 * 60);

/// The largest rotation answer read: a record and a key are well under 4 KiB.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// The future `store` returns, boxed.
type StoreFuture = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>>;
type StoreFn = dyn Fn(PlaintextKey) -> StoreFuture + Send + Sync;

/// Why a [`SelfRotateLayer`] could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The admin base is not a URI to which `/self/rotate` can be appended.
    #[error(
        "the admin base {0:?} is not an absolute URI; give where the admin router is \
         mounted, such as http://127.0.0.1:3000/admin"
    )]
    InvalidBase(String),
}

/// Adds the current key to every request and rotates it when answers warn of its
/// expiry. See the [module docs](self).
#[derive(Clone)]
pub struct SelfRotateLayer {
    shared: Arc<Shared>,
}

/// The service [`SelfRotateLayer`] makes.
#[derive(Clone)]
pub struct SelfRotate<S> {
    inner: S,
    shared: Arc<Shared>,
}

struct Shared {
    rotate_uri: Uri,
    store: Box<StoreFn>,
    clock: Box<dyn Clock>,
    backoff: Duration,
    max_backoff: Duration,
    state: Mutex<State>,
}

struct State {
    /// `ApiKey-v2 <key>`, marked sensitive.
    authorization: HeaderValue,
    id: KeyId,
    /// When this layer switched to the current key; `None` for the key it was given.
    switched_at: Option<SystemTime>,
    /// A rotation or a `store` is under way.
    busy: bool,
    /// A new key the server issued that `store` has not yet accepted.
    pending: Option<PlaintextKey>,
    /// Failures in a row, for the backoff.
    failures: u32,
    /// No new attempt before this time.
    retry_at: Option<SystemTime>,
}

impl SelfRotateLayer {
    /// A layer that sends `key` and rotates it through `POST <admin_base>/self/rotate`
    /// (`admin_base` is where the admin router is mounted, such as
    /// `http://127.0.0.1:3000/admin`), handing each new key to `store` before using it.
    ///
    /// `store` may be async and fallible; on `Err` the old key stays in use and `store`
    /// is called again with the same new key after a backoff.
    pub fn new<F, Fut, E>(
        admin_base: &str,
        key: PlaintextKey,
        store: F,
    ) -> Result<Self, ClientError>
    where
        F: Fn(PlaintextKey) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<BoxError>,
    {
        let trimmed = admin_base.trim_end_matches('/');
        let rotate_uri: Uri = format!("{trimmed}/self/rotate")
            .parse()
            .map_err(|_| ClientError::InvalidBase(admin_base.to_owned()))?;
        if rotate_uri.scheme().is_none() || rotate_uri.authority().is_none() {
            return Err(ClientError::InvalidBase(admin_base.to_owned()));
        }
        let store: Box<StoreFn> = Box::new(move |key| {
            let stored = store(key);
            Box::pin(async move { stored.await.map_err(Into::into) })
        });
        Ok(Self {
            shared: Arc::new(Shared {
                rotate_uri,
                store,
                clock: Box::new(SystemClock),
                backoff: DEFAULT_BACKOFF,
                max_backoff: DEFAULT_MAX_BACKOFF,
                state: Mutex::new(State {
                    authorization: authorization(&key),
                    id: *key.id(),
                    switched_at: None,
                    busy: false,
                    pending: None,
                    failures: 0,
                    retry_at: None,
                }),
            }),
        })
    }

    /// Waits `first` after a failed attempt, doubling up to `max` (defaults
    /// [`DEFAULT_BACKOFF`], [`DEFAULT_MAX_BACKOFF`]). Set before cloning the layer.
    pub fn backoff(mut self, first: Duration, max: Duration) -> Self {
        if let Some(shared) = Arc::get_mut(&mut self.shared) {
            shared.backoff = first;
            shared.max_backoff = max.max(first);
        }
        self
    }

    /// Uses `clock` for backoffs and key ages (default: the system clock). Set before
    /// cloning the layer.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        if let Some(shared) = Arc::get_mut(&mut self.shared) {
            shared.clock = Box::new(clock);
        }
        self
    }

    /// Says when the given key was made, for a key that this integration rotated into
    /// before it restarted (keep the time with the key): the half-life rule then
    /// applies to it too, so that restarts do not rotate a short-lived key each time.
    /// Without it, the given key rotates at the first warning.
    pub fn obtained_at(self, at: SystemTime) -> Self {
        self.shared.lock().switched_at = Some(at);
        self
    }

    /// The id of the key in use now (safe to log).
    pub fn key_id(&self) -> KeyId {
        self.shared.lock().id
    }
}

impl<S> Layer<S> for SelfRotateLayer {
    type Service = SelfRotate<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SelfRotate {
            inner,
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<S> SelfRotate<S> {
    /// The id of the key in use now (safe to log).
    pub fn key_id(&self) -> KeyId {
        self.shared.lock().id
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for SelfRotate<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError> + Send + 'static,
    ReqB: Default + Send + 'static,
    ResB: Body + Send + 'static,
    ResB::Data: Send,
    ResB::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqB>) -> Self::Future {
        // The key goes only to the admin router's origin: a client that also calls
        // webhooks or other APIs must not hand them the key, nor let their answers
        // start a rotation.
        if !self.shared.is_origin_of(request.uri()) {
            return Box::pin(self.inner.call(request));
        }
        let authorization = self.shared.lock().authorization.clone();
        request.headers_mut().insert(AUTHORIZATION, authorization);
        // Clone, then swap: the service made ready is the one called. It is then free
        // to send the rotation, if this answer calls for one.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let answer = inner.call(request);
        let shared = Arc::clone(&self.shared);
        Box::pin(async move {
            let response = answer.await?;
            let expires = response
                .headers()
                .get(&API_KEY_EXPIRES)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| httpdate::parse_http_date(v).ok());
            if let Some(expires) = expires {
                shared.maybe_rotate(inner, expires).await;
            }
            Ok(response)
        })
    }
}

/// What one attempt should do.
enum Attempt {
    Rotate,
    Store(PlaintextKey),
}

impl Shared {
    /// Whether `uri` goes to the origin (scheme, host and port) of the rotation's
    /// address. A request without an authority goes over a connection the application
    /// chose for it (hyper's `client::conn`), so it counts as that origin.
    fn is_origin_of(&self, uri: &Uri) -> bool {
        match uri.authority() {
            None => true,
            Some(authority) => {
                uri.scheme() == self.rotate_uri.scheme()
                    && port_or_default(uri) == port_or_default(&self.rotate_uri)
                    && self
                        .rotate_uri
                        .authority()
                        .is_some_and(|own| own.host().eq_ignore_ascii_case(authority.host()))
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update leaves the state whole, so a panic elsewhere cannot have broken it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Rotates, or retries `store`, unless another attempt is under way, the backoff
    /// runs, or the key is too young.
    async fn maybe_rotate<S, ReqB, ResB>(&self, service: S, expires: SystemTime)
    where
        S: Service<Request<ReqB>, Response = Response<ResB>>,
        S::Error: Into<BoxError>,
        ReqB: Default,
        ResB: Body,
        ResB::Error: Into<BoxError>,
    {
        let now = self.clock.now();
        let (attempt, current) = {
            let mut state = self.lock();
            if state.busy || state.retry_at.is_some_and(|at| now < at) {
                return;
            }
            let attempt = match state.pending.take() {
                Some(key) => Attempt::Store(key),
                None => {
                    let young = state.switched_at.is_some_and(|at| {
                        now.duration_since(at).unwrap_or_default()
                            < expires.duration_since(now).unwrap_or_default()
                    });
                    if young {
                        return;
                    }
                    Attempt::Rotate
                }
            };
            state.busy = true;
            (attempt, state.authorization.clone())
        };
        let mut busy = Busy {
            shared: self,
            pending: None,
        };
        let key = match attempt {
            Attempt::Store(key) => key,
            Attempt::Rotate => match self.rotate(service, current).await {
                Ok(key) => key,
                Err(why) => {
                    busy.failed(now);
                    tracing::warn!(
                        key_id = %busy.shared.lock().id,
                        error = %why,
                        "could not rotate the API key; keeping it and trying again later"
                    );
                    return;
                }
            },
        };
        let Some(copy) = copy(&key) else {
            busy.failed(now);
            return;
        };
        let id = *key.id();
        busy.pending = Some(key);
        match (self.store)(copy).await {
            Ok(()) => {
                if let Some(key) = busy.pending.take() {
                    let mut state = self.lock();
                    let old = state.id;
                    state.authorization = authorization(&key);
                    state.id = *key.id();
                    state.switched_at = Some(self.clock.now());
                    state.failures = 0;
                    state.retry_at = None;
                    tracing::info!(old_key_id = %old, key_id = %key.id(), "API key rotated; using the new key");
                }
            }
            Err(error) => {
                busy.failed(now);
                tracing::warn!(
                    key_id = %id,
                    %error,
                    "could not store the new API key; keeping the old one, storing again later"
                );
            }
        }
    }

    /// `POST /self/rotate` with the current key; the new key from the 201.
    async fn rotate<S, ReqB, ResB>(
        &self,
        mut service: S,
        authorization: HeaderValue,
    ) -> Result<PlaintextKey, BoxError>
    where
        S: Service<Request<ReqB>, Response = Response<ResB>>,
        S::Error: Into<BoxError>,
        ReqB: Default,
        ResB: Body,
        ResB::Error: Into<BoxError>,
    {
        let request = Request::builder()
            .method(Method::POST)
            .uri(self.rotate_uri.clone())
            .header(AUTHORIZATION, authorization)
            .header(CONTENT_LENGTH, "0")
            .body(ReqB::default())?;
        std::future::poll_fn(|cx| service.poll_ready(cx))
            .await
            .map_err(Into::into)?;
        let response = service.call(request).await.map_err(Into::into)?;
        let status = response.status();
        let body = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
            .collect()
            .await?
            .to_bytes();
        if status != StatusCode::CREATED {
            let hint = match status {
                StatusCode::CONFLICT => {
                    "the key already has a live successor, or cannot be rotated; if a new key \
                     was lost, an administrator must revoke it"
                }
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                    "the key may not rotate itself: it needs the scope keys:rotate-self"
                }
                _ => "the server could not rotate the key",
            };
            return Err(format!("POST {} answered {status}: {hint}", self.rotate_uri).into());
        }
        let json: serde_json::Value = serde_json::from_slice(&body)?;
        let text = json
            .get("key")
            .and_then(serde_json::Value::as_str)
            .ok_or("the rotation's answer holds no \"key\"")?;
        Ok(PlaintextKey::parse(text)?)
    }
}

/// Marks an attempt as under way; when dropped (finished or cancelled), clears the mark
/// and keeps a new key not yet stored for the next attempt.
struct Busy<'a> {
    shared: &'a Shared,
    pending: Option<PlaintextKey>,
}

impl Busy<'_> {
    /// Starts the backoff after a failed attempt at `now`.
    fn failed(&self, now: SystemTime) {
        let mut state = self.shared.lock();
        state.failures = state.failures.saturating_add(1);
        let doubling = 2u32.saturating_pow(state.failures - 1);
        let wait = self
            .shared
            .backoff
            .saturating_mul(doubling)
            .min(self.shared.max_backoff);
        state.retry_at = Some(now + wait);
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.busy = false;
        if let Some(key) = self.pending.take() {
            state.pending.get_or_insert(key);
        }
    }
}

/// `ApiKey-v2 <key>`, marked sensitive so that `Debug` and HTTP/2 header compression
/// leave it out.
fn authorization(key: &PlaintextKey) -> HeaderValue {
    let text = Zeroizing::new(format!("ApiKey-v2 {}", key.expose_secret()));
    // A parsed key is base62 and underscores, so always a valid header value.
    let mut value = HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""));
    value.set_sensitive(true);
    value
}

/// A second handle to a key's text, for `store`, while the layer keeps its own until
/// `store` succeeds. (The text parsed before, so it parses again.)
fn copy(key: &PlaintextKey) -> Option<PlaintextKey> {
    PlaintextKey::parse(key.expose_secret().to_owned()).ok()
}

impl fmt::Debug for SelfRotateLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.shared.fmt(f)
    }
}

impl<S: fmt::Debug> fmt::Debug for SelfRotate<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SelfRotate")
            .field("inner", &self.inner)
            .field("shared", &self.shared)
            .finish()
    }
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("SelfRotateLayer")
            .field("rotate_uri", &self.rotate_uri)
            .field("key_id", &state.id)
            .field(
                "pending_key_id",
                &state.pending.as_ref().map(PlaintextKey::id),
            )
            .field("failures", &state.failures)
            .finish_non_exhaustive()
    }
}

/// The port `uri` names, or its scheme's default.
fn port_or_default(uri: &Uri) -> Option<u16> {
    uri.port_u16().or(match uri.scheme_str() {
        Some("https") => Some(443),
        Some("http") => Some(80),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::KeyPrefix;

    fn layer(key: PlaintextKey) -> SelfRotateLayer {
        SelfRotateLayer::new(
            "http://127.0.0.1:3000/admin/",
            key,
            |_key: PlaintextKey| async { Ok::<(), std::io::Error>(()) },
        )
        .unwrap()
    }

    #[test]
    fn debug_shows_the_key_id_and_never_the_key() {
        let key = PlaintextKey::generate(&KeyPrefix::default());
        let text = key.expose_secret().to_owned();
        let id = key.id().to_string();
        let layer = layer(key);
        let service = layer.layer(());
        for shown in [format!("{layer:?}"), format!("{service:?}")] {
            assert!(shown.contains(&id), "{shown}");
            assert!(!shown.contains(&text[text.len() - 49..]), "{shown}");
        }
        let header = layer.shared.lock().authorization.clone();
        assert!(header.is_sensitive(), "kept out of Debug and HPACK tables");
        assert!(!format!("{header:?}").contains(&text));
    }

    #[tokio::test]
    async fn the_key_goes_only_to_the_admin_routers_origin() {
        use tower::{ServiceExt, service_fn};
        let key = PlaintextKey::generate(&KeyPrefix::default());
        // Echoes whether the request carried a key, and never warns of an expiry.
        let echo = service_fn(|request: Request<String>| async move {
            let sent = request.headers().contains_key(AUTHORIZATION);
            Ok::<_, std::convert::Infallible>(Response::new(sent.to_string()))
        });
        let service = layer(key).layer(echo);
        for (uri, sent) in [
            ("http://127.0.0.1:3000/reports", true),
            ("http://127.0.0.1:3000/admin/keys", true),
            ("/reports", true),
            ("http://127.0.0.1:3001/reports", false),
            ("https://127.0.0.1:3000/reports", false),
            ("http://hooks.example.com/event", false),
            ("http://127.0.0.1.example.com:3000/", false),
        ] {
            let request = Request::builder().uri(uri).body(String::new()).unwrap();
            let answer = service.clone().oneshot(request).await.unwrap();
            assert_eq!(answer.body(), &sent.to_string(), "{uri}");
        }
    }

    #[test]
    fn the_rotation_goes_to_self_rotate_under_the_admin_base() {
        let key = || PlaintextKey::generate(&KeyPrefix::default());
        assert_eq!(
            layer(key()).shared.rotate_uri,
            "http://127.0.0.1:3000/admin/self/rotate"
        );
        for base in ["admin", "/admin", "not a uri"] {
            assert!(
                matches!(
                    SelfRotateLayer::new(base, key(), |_k: PlaintextKey| async {
                        Ok::<(), std::io::Error>(())
                    }),
                    Err(ClientError::InvalidBase(_))
                ),
                "{base}"
            );
        }
    }

    #[test]
    fn the_backoff_doubles_up_to_its_bound() {
        let layer = layer(PlaintextKey::generate(&KeyPrefix::default()))
            .backoff(Duration::from_secs(10), Duration::from_secs(35));
        let busy = Busy {
            shared: &layer.shared,
            pending: None,
        };
        let now = SystemTime::UNIX_EPOCH;
        let waits: Vec<_> = (0..4)
            .map(|_| {
                busy.failed(now);
                layer
                    .shared
                    .lock()
                    .retry_at
                    .unwrap()
                    .duration_since(now)
                    .unwrap()
            })
            .collect();
        assert_eq!(waits, [10, 20, 35, 35].map(Duration::from_secs));
    }
}
