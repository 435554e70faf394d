//! The layer's settings, shared by every clone of the service. The decision they feed
//! lives in [`verdict`](super::verdict), the answers in [`rejection`](super::rejection).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::client_addr::TrustedProxies;
use crate::clock::{Clock, SystemClock};
use crate::key::KeyPrefix;
use crate::limits::limiter::Limiter;
use crate::middleware::rejection::{Answers, DEFAULT_REALM};
use crate::middleware::store_failure_log::StoreFailureLog;
use crate::middleware::throttle::FailureThrottle;
use crate::scope::Scopes;
use crate::store::KeyStore;
use crate::usage::UsageTracker;

/// Default window before a key's end in which responses carry `ApiKey-Expires`
/// (30 days); see [`ApiKeyV2Layer::expiry_warning`](crate::ApiKeyV2Layer::expiry_warning).
pub const DEFAULT_EXPIRY_WARNING: Duration = Duration::from_secs(30 * 24 * 60 * 60);
/// Default bound on one store lookup (3 s), past which the request gets 503; see
/// [`ApiKeyV2Layer::lookup_timeout`](crate::ApiKeyV2Layer::lookup_timeout).
pub const DEFAULT_LOOKUP_TIMEOUT: Duration = Duration::from_secs(3);

/// Settings shared by every clone of the service.
#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) store: Arc<dyn KeyStore>,
    pub(crate) prefix: KeyPrefix,
    pub(crate) answers: Answers,
    pub(crate) required: Scopes,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) expiry_warning: Option<Duration>,
    pub(crate) lookup_timeout: Option<Duration>,
    pub(crate) tracker: Option<UsageTracker>,
    /// Shared by every clone, so that the limit holds for the layer as a whole.
    pub(crate) store_failures: Arc<StoreFailureLog>,
    pub(crate) throttle: Option<FailureThrottle>,
    pub(crate) proxies: TrustedProxies,
    /// Per-key rate limits and quotas, shared by every clone so that they hold for the
    /// layer as a whole.
    pub(crate) limiter: Limiter,
}

impl Config {
    pub(crate) fn new(store: Arc<dyn KeyStore>) -> Self {
        Self {
            store,
            prefix: KeyPrefix::default(),
            answers: Answers::new(DEFAULT_REALM),
            required: Scopes::empty(),
            clock: Arc::new(SystemClock),
            expiry_warning: Some(DEFAULT_EXPIRY_WARNING),
            lookup_timeout: Some(DEFAULT_LOOKUP_TIMEOUT),
            tracker: None,
            store_failures: Arc::new(StoreFailureLog::new()),
            throttle: None,
            proxies: TrustedProxies::none(),
            limiter: Limiter::new(),
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("store", &self.store)
            .field("prefix", &self.prefix)
            .field("answers", &self.answers)
            .field("required", &self.required)
            .field("clock", &self.clock)
            .field("expiry_warning", &self.expiry_warning)
            .field("lookup_timeout", &self.lookup_timeout)
            .field("tracker", &self.tracker)
            .field("throttle", &self.throttle)
            .field("proxies", &self.proxies)
            .finish()
    }
}
