//! The layer's settings and the decision it makes for each request.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::{Extensions, HeaderMap};

use crate::header::{self, HeaderError};
use crate::key::{self, KeyDigest};
use crate::middleware::rejection::{Answers, DEFAULT_REALM, Rejection, RejectionKind};
use crate::middleware::service::is_grpc;
use crate::middleware::store_failure_log::StoreFailureLog;
use crate::middleware::throttle::{Bucket, FailureThrottle};
use crate::store::StoreError;
use crate::{
    ApiKeyIdentity, Clock, KeyId, KeyPrefix, KeyRecord, KeyState, KeyStore, Scopes, SystemClock,
    TrustedProxies, UsageTracker,
};

/// Default window before expiry in which responses carry `ApiKey-Expires`.
pub(crate) const DEFAULT_EXPIRY_WARNING: Duration = Duration::from_secs(30 * 24 * 60 * 60);
/// Default bound on one store lookup.
pub(crate) const DEFAULT_LOOKUP_TIMEOUT: Duration = Duration::from_secs(3);

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
}

/// What the caller presented: a well-formed key's id and the digest of its text.
pub(crate) struct Presented {
    pub(crate) id: KeyId,
    pub(crate) digest: KeyDigest,
    /// The caller's throttle bucket, when throttling is on and the caller has an
    /// address: where a failure is counted.
    pub(crate) bucket: Option<Bucket>,
}

/// The verdict on a request.
pub(crate) enum Decision {
    Accept {
        identity: ApiKeyIdentity,
        /// When the key stops working (its expiry, or a rotation's earlier end), if that
        /// is inside the warning window: the response then
        /// carries `ApiKey-Expires` (formatted only then, so the common case stays small).
        expires: Option<SystemTime>,
    },
    Reject(RejectionKind),
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
        }
    }

    /// Reads and checks the credentials: header, key format, checksum, the client's
    /// throttle, then the digest. Nothing here touches the store.
    pub(crate) fn presented(
        &self,
        headers: &HeaderMap,
        extensions: &Extensions,
    ) -> Result<Presented, RejectionKind> {
        let token = header::credentials(headers).map_err(|error| match error {
            HeaderError::Missing => RejectionKind::MissingCredentials,
            other => RejectionKind::InvalidRequest(other),
        })?;
        let parsed = key::parse(token, Some(&self.prefix)).map_err(|error| {
            // Not even token68: the header is malformed, whatever the key would be.
            if header::is_token68(token) {
                RejectionKind::MalformedKey(error)
            } else {
                RejectionKind::InvalidRequest(HeaderError::Malformed)
            }
        })?;
        // Before the digest: a throttled request costs no hashing either.
        let bucket = match &self.throttle {
            Some(throttle) => self.throttle_bucket(throttle, headers, extensions)?,
            None => None,
        };
        Ok(Presented {
            id: parsed.id,
            digest: KeyDigest::of_bytes(token),
            bucket,
        })
    }

    /// The caller's bucket in `throttle`, or the refusal if it is throttled.
    fn throttle_bucket(
        &self,
        throttle: &FailureThrottle,
        headers: &HeaderMap,
        extensions: &Extensions,
    ) -> Result<Option<Bucket>, RejectionKind> {
        let Some(client) = self.proxies.client_addr(headers, extensions) else {
            throttle.warn_unaddressed();
            return Ok(None);
        };
        let bucket = throttle.bucket(client);
        match throttle.check(bucket) {
            Ok(()) => Ok(Some(bucket)),
            // Logged by the caller, with every refusal before the lookup.
            Err(retry_after) => Err(RejectionKind::Throttled { retry_after }),
        }
    }

    /// Decides on a request once the store has answered.
    pub(crate) fn decide(
        &self,
        found: Result<Option<KeyRecord>, StoreError>,
        presented: &Presented,
    ) -> Decision {
        let found = match found {
            Ok(found) => found,
            // Shed on purpose, under a flood: not a fault to log at ERROR per request.
            Err(StoreError::Overloaded) => {
                tracing::debug!(key_id = %presented.id, outcome = "overloaded", "lookup shed; refusing the request with 503");
                return Decision::Reject(RejectionKind::Overloaded);
            }
            Err(error) => {
                // At most one line per second per kind of failure: a flood of requests
                // during an outage must not become a flood of log lines.
                if let Some(suppressed) = self.store_failures.admit(&error) {
                    tracing::error!(key_id = %presented.id, %error, suppressed, "key store unavailable; refusing the request with 503");
                }
                return Decision::Reject(RejectionKind::StoreUnavailable);
            }
        };
        // An unknown id still costs one constant-time comparison, against a digest that
        // matches nothing, so that it answers like a wrong secret.
        let expected = found.as_ref().map_or(&KeyDigest::DUMMY, KeyRecord::digest);
        let proven = presented.digest.matches(expected);
        let record = match found {
            Some(record) if proven => record,
            _ => {
                tracing::debug!(key_id = %presented.id, outcome = "invalid_key", "API key refused");
                if let (Some(throttle), Some(bucket)) = (&self.throttle, presented.bucket) {
                    throttle.record_failure(bucket);
                }
                return Decision::Reject(RejectionKind::InvalidKey);
            }
        };
        let now = self.clock.now();
        match record.state_at(now) {
            KeyState::Active => {}
            KeyState::Expired => {
                tracing::debug!(key_id = %presented.id, outcome = "expired", "API key refused");
                return Decision::Reject(RejectionKind::Expired);
            }
            KeyState::Ended => {
                tracing::debug!(key_id = %presented.id, outcome = "ended", "API key refused");
                return Decision::Reject(RejectionKind::Ended);
            }
            KeyState::Revoked => {
                tracing::debug!(key_id = %presented.id, outcome = "revoked", "API key refused");
                return Decision::Reject(RejectionKind::Revoked);
            }
        }
        // A use is a proven key, whatever the scope check says next.
        if let Some(tracker) = &self.tracker {
            tracker.record(record.id(), now);
        }
        if !record.scopes().grants_all(&self.required) {
            let missing = record.scopes().missing_set(&self.required);
            tracing::debug!(key_id = %presented.id, outcome = "insufficient_scope", missing = %missing, "API key refused");
            return Decision::Reject(RejectionKind::InsufficientScope(missing));
        }
        tracing::trace!(key_id = %presented.id, outcome = "accepted", "API key accepted");
        // A rotation's scheduled end is when the key stops working: warn of that.
        let expires = self.expiry_warning(record.stops_at(), now);
        Decision::Accept {
            identity: record.into_identity(),
            expires,
        }
    }

    /// `stops_at`, if it is within the warning window.
    fn expiry_warning(&self, stops_at: SystemTime, now: SystemTime) -> Option<SystemTime> {
        let window = self.expiry_warning?;
        let within = now
            .checked_add(window)
            .is_none_or(|limit| stops_at <= limit);
        within.then_some(stops_at)
    }

    /// The rejection of a request with these headers (a gRPC call gets a gRPC answer).
    pub(crate) fn rejection(&self, kind: RejectionKind, headers: &HeaderMap) -> Rejection {
        Rejection::new(kind, is_grpc(headers), &self.answers)
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
