//! [`ApiKeyV2Layer`]: the middleware's configuration.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tower_layer::Layer;

use crate::client_addr::TrustedProxies;
use crate::clock::Clock;
use crate::key::KeyPrefix;
use crate::limits::limiter::Limiter;
use crate::limits::shared_limits::SharedLimits;
use crate::middleware::config::Config;
use crate::middleware::rejection::{Answers, DefaultRejection};
use crate::middleware::service::ApiKeyV2Service;
use crate::middleware::throttle::FailureThrottle;
use crate::scope::Scopes;
use crate::store::KeyStore;
use crate::usage::UsageTracker;

/// Adds ApiKey-v2 authentication to a service.
///
/// Each request must carry `Authorization: ApiKey-v2 <key>` for a key the store knows,
/// that is neither expired nor revoked, and that holds every
/// [required scope](ApiKeyV2Layer::require_scopes). The caller's [`ApiKeyIdentity`]
/// then goes into the request's extensions; otherwise the request is answered as
/// [`middleware`](crate::middleware#refusals) describes and never reaches the inner service.
///
/// Keys with a [`RateLimit`](crate::record::RateLimit), a [`Quota`](crate::record::Quota) or
/// [`AllowedIps`](crate::record::AllowedIps) are held to them. The limits' state lives in the
/// layer: clones of it (and the services it makes) share one budget per key, so build
/// one layer and clone it for each route that needs other scopes.
///
/// ```
/// use tower::ServiceBuilder;
/// use tower_apikey::{ApiKeyV2Layer, InMemoryKeyStore, Scopes};
///
/// let store = InMemoryKeyStore::new();
/// let service = ServiceBuilder::new()
///     .layer(
///         ApiKeyV2Layer::new(store)
///             .realm("billing")
///             .require_scopes(Scopes::new(["reports:read"]).unwrap()),
///     )
///     .service_fn(|_req: http::Request<String>| async {
///         Ok::<_, std::convert::Infallible>(http::Response::new(String::from("ok")))
///     });
/// ```
///
/// [`ApiKeyIdentity`]: crate::ApiKeyIdentity
#[derive(Clone)]
pub struct ApiKeyV2Layer<R = DefaultRejection> {
    config: Arc<Config>,
    on_rejection: R,
}

impl ApiKeyV2Layer {
    /// A layer that looks keys up in `store`, with the defaults: realm `api`, prefix
    /// `mkc`, no required scope, the system clock, a 30-day expiry warning, a 3 s
    /// lookup timeout, no failure throttle and no trusted proxy.
    pub fn new(store: impl KeyStore) -> Self {
        Self::from_shared_store(Arc::new(store))
    }

    /// Like [`new`](Self::new), for a store already shared as `Arc<dyn KeyStore>`.
    pub fn from_shared_store(store: Arc<dyn KeyStore>) -> Self {
        Self {
            config: Arc::new(Config::new(store)),
            on_rejection: DefaultRejection,
        }
    }
}

impl<R> ApiKeyV2Layer<R> {
    fn config_mut(&mut self) -> &mut Config {
        Arc::make_mut(&mut self.config)
    }

    /// The realm named in `WWW-Authenticate` challenges (default `api`).
    ///
    /// The answers to refused requests are built here, once, and each distinct realm's
    /// (and required scopes') answers are kept for the life of the process, so that a
    /// refusal copies them without touching a reference count: a few kilobytes per
    /// distinct setting, never per layer built or per request.
    ///
    /// # Panics
    ///
    /// If `realm` holds `"`, `\` or anything but printable ASCII.
    pub fn realm(mut self, realm: &str) -> Self {
        let config = self.config_mut();
        config.answers = Answers::new(realm).requiring(&config.required);
        self
    }

    /// Scopes every request needs (all of them); default none. For per-route
    /// requirements, see [`RequireScopesLayer`](crate::RequireScopesLayer).
    pub fn require_scopes(mut self, scopes: Scopes) -> Self {
        let config = self.config_mut();
        config.answers = config.answers.clone().requiring(&scopes);
        config.required = scopes;
        self
    }

    /// The time source for expiry checks (default: the system clock).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.config_mut().clock = Arc::new(clock);
        self
    }

    /// The key prefix this service accepts (default `mkc`). Keys with another prefix are
    /// refused as malformed without a store lookup. Use the same prefix as the
    /// [`KeyManager`](crate::KeyManager) that issues the keys.
    pub fn prefix(mut self, prefix: KeyPrefix) -> Self {
        self.config_mut().prefix = prefix;
        self
    }

    /// How long before its end a key's responses carry `ApiKey-Expires` (default
    /// [`DEFAULT_EXPIRY_WARNING`](crate::middleware::DEFAULT_EXPIRY_WARNING), 30 days;
    /// `None` turns the header off).
    pub fn expiry_warning(mut self, window: Option<Duration>) -> Self {
        self.config_mut().expiry_warning = window;
        self
    }

    /// The longest a store lookup may take before the request is refused with 503
    /// (default [`DEFAULT_LOOKUP_TIMEOUT`](crate::middleware::DEFAULT_LOOKUP_TIMEOUT),
    /// 3 s; `None` waits as long as the store does). The timer needs a tokio
    /// runtime; stores that answer without waiting (the in-memory store, cache hits)
    /// never start it.
    pub fn lookup_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.config_mut().lookup_timeout = timeout;
        self
    }

    /// Records each proven use in `tracker`, which writes last-used times periodically.
    /// Without a tracker nothing is recorded and nothing runs in the background.
    ///
    /// [`KeyManager::layer`](crate::KeyManager::layer) sets the manager's tracker, whose
    /// loop its background runs: set one here only on a layer built without a manager.
    pub fn usage_tracker(mut self, tracker: UsageTracker) -> Self {
        self.config_mut().tracker = Some(tracker);
        self
    }

    /// Refuses, with 429 and before the lookup, requests from a client address that sent
    /// too many wrong keys recently; off by default. See [`FailureThrottle`] for what
    /// counts, and [`client_addr`](crate::client_addr) for where the address comes from:
    /// the server must record each connection's peer in the request's extensions.
    ///
    /// When off, it costs nothing. When on, a request with a well-formed key costs one
    /// hash of its address and four atomic reads before the lookup; a failure, four
    /// atomic updates.
    pub fn throttle_failures(mut self, throttle: FailureThrottle) -> Self {
        self.config_mut().throttle = Some(throttle);
        self
    }

    /// The reverse proxies whose forwarding header names the client address (default:
    /// none, the address is the connection's peer). Read the warnings in
    /// [`client_addr`](crate::client_addr#behind-reverse-proxies) first.
    pub fn trusted_proxies(mut self, proxies: TrustedProxies) -> Self {
        self.config_mut().proxies = proxies;
        self
    }

    /// Shares the per-key limits with other instances through `limits`' backend,
    /// instead of keeping them for this layer alone (see [`SharedLimits`]). Give every
    /// layer of the process the same `limits`, and spawn its
    /// [`run`](SharedLimits::run) task: without it, keys stay on their local share.
    ///
    /// A [`KeyManager`](crate::KeyManager) given the limits
    /// ([`KeyManagerBuilder::shared_limits`](crate::KeyManagerBuilder::shared_limits))
    /// does both for its layers: set them here only on a layer built without one.
    pub fn shared_limits(mut self, limits: &SharedLimits) -> Self {
        self.config_mut().limiter = Limiter::shared(limits);
        self
    }

    /// Counts each key's limits in `other`'s state (and so through its
    /// [`SharedLimits`], if it has one), so that a key's requests through both layers
    /// spend one budget: for a second layer in front of other routes of the same
    /// application, such as an admin API's guard.
    pub fn share_limits_with<R2>(mut self, other: &ApiKeyV2Layer<R2>) -> Self {
        self.config_mut().limiter = other.config.limiter.clone();
        self
    }

    /// Replaces the answer to refused requests; see [`OnRejection`](crate::middleware::OnRejection).
    pub fn on_rejection<R2>(self, on_rejection: R2) -> ApiKeyV2Layer<R2> {
        ApiKeyV2Layer {
            config: self.config,
            on_rejection,
        }
    }
}

// The service's own constructors live here, beside the layer they build, so that the
// arrow runs one way: the layer makes the service, the service knows no layer.
impl<S> ApiKeyV2Service<S> {
    /// Wraps `inner`, looking keys up in `store`, with the defaults of
    /// [`ApiKeyV2Layer::new`].
    pub fn new(inner: S, store: impl KeyStore) -> Self {
        ApiKeyV2Layer::new(store).layer(inner)
    }

    /// A layer that builds this service; the same as [`ApiKeyV2Layer::new`].
    pub fn layer(store: impl KeyStore) -> ApiKeyV2Layer {
        ApiKeyV2Layer::new(store)
    }
}

impl<S, R: Clone> Layer<S> for ApiKeyV2Layer<R> {
    type Service = ApiKeyV2Service<S, R>;

    fn layer(&self, inner: S) -> Self::Service {
        ApiKeyV2Service::from_parts(inner, self.config.clone(), self.on_rejection.clone())
    }
}

impl<R> fmt::Debug for ApiKeyV2Layer<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeyV2Layer")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}
