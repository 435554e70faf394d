//! The tower middleware: [`ApiKeyV2Layer`](crate::ApiKeyV2Layer), [`ApiKeyV2Service`](crate::ApiKeyV2Service), [`ResponseFuture`](crate::ResponseFuture).
//!
//! A request's path through these files, top to bottom:
//!
//! 1. `layer.rs`: [`ApiKeyV2Layer`](crate::ApiKeyV2Layer) holds the settings
//!    (`config.rs`: store, prefix, clock, required scopes, throttle…) and wraps a service.
//! 2. `service.rs`: [`ApiKeyV2Service::call`](crate::ApiKeyV2Service) asks the verdict
//!    what was presented; then the store, at once when it can answer from memory
//!    ([`KeyStore::lookup_ready`](crate::KeyStore::lookup_ready)), otherwise as a future
//!    bounded by the lookup timeout.
//! 3. `verdict.rs`, the file to read first: what was presented (one `Authorization:
//!    ApiKey-v2 <key>` field, a well-formed key with a good CRC-32, the client's address
//!    not [throttled](crate::FailureThrottle), the SHA-256 taken once), then the checks
//!    once the store answered: proof (constant-time, against a dummy for an unknown id),
//!    state (revoked, ended by rotation, expired: said only after the proof), then each
//!    policy of `policy.rs` in order (the required scopes, and what comes next).
//! 4. `future.rs`: [`ResponseFuture`](crate::ResponseFuture), one state per step (waiting
//!    for the store, running the inner service, a ready refusal); one helper builds the
//!    state after the verdict for both the ready and the waiting path, and puts the
//!    [`ApiKeyIdentity`](crate::ApiKeyIdentity) into the request's extensions.
//!    `response_body.rs`: [`ResponseBody`](crate::ResponseBody), the body of every
//!    response, the inner service's or the layer's own answer, so that the layer works
//!    over any inner body type.
//! 5. [`rejection`]: one row per kind of refusal (status, RFC 6750 code, gRPC status,
//!    outcome, description) and the answers built from it.
//!
//! A store that cannot answer gets every request refused with 503; its errors are logged
//! at ERROR, at most one line per second for each kind of error, each line counting
//! (`suppressed`) those left out since the previous one.

mod config;
pub(crate) mod future;
mod interned;
pub(crate) mod layer;
mod policy;
pub mod rejection;
pub(crate) mod require_scopes;
pub(crate) mod response_body;
pub(crate) mod service;
mod store_failure_log;
pub(crate) mod throttle;
mod verdict;

pub use config::{DEFAULT_EXPIRY_WARNING, DEFAULT_LOOKUP_TIMEOUT};

#[cfg(test)]
mod tests;
