//! The tower middleware: [`ApiKeyV2Layer`](crate::ApiKeyV2Layer), [`ApiKeyV2Service`](crate::ApiKeyV2Service), [`ResponseFuture`].
//!
//! A request's path through these files, top to bottom:
//!
//! 1. `layer.rs`: [`ApiKeyV2Layer`](crate::ApiKeyV2Layer) holds the settings
//!    (`config.rs`: store, prefix, clock, required scopes, throttle, limits…) and wraps
//!    a service.
//! 2. `service.rs`: [`ApiKeyV2Service::call`](crate::ApiKeyV2Service) asks the verdict
//!    what was presented (`verdict::presenting`, then `verdict::ready` or
//!    `verdict::before_lookup`); then the store, at once when it can answer from memory
//!    ([`KeyStore::lookup_ready`](crate::KeyStore::lookup_ready)), otherwise as a future
//!    bounded by the lookup timeout; then `verdict::decide`.
//! 3. `verdict.rs`, the file to read first, plain functions top to bottom: what was
//!    presented (one `Authorization: ApiKey-v2 <key>` field, a well-formed key with a
//!    good CRC-32, the client's address not
//!    [throttled](crate::middleware::FailureThrottle), the SHA-256 taken once), then the
//!    checks once the store answered: proof (constant-time, against a dummy for an
//!    unknown id), state (revoked, ended by rotation, expired: said only after the
//!    proof), then each row of `policy.rs` in order (the client's address, the key's
//!    rate limit and quota, the required scopes), each row saying what a refusal by
//!    its policy still does (charge the limits, record the client's address); the use
//!    recorded; the limits charged (`policy/limits.rs`, over
//!    [`limits`](crate::limits)' `Limiter`).
//! 4. `future.rs`: [`ResponseFuture`], one state per step (waiting
//!    for the store, running the inner service, a ready refusal); one helper builds the
//!    state after the verdict for both the ready and the waiting path, and puts the
//!    [`ApiKeyIdentity`](crate::ApiKeyIdentity) into the request's extensions.
//!    `response_body.rs`: [`ResponseBody`], the body of every
//!    response, the inner service's or the layer's own answer, so that the layer works
//!    over any inner body type.
//! 5. `rejection.rs`: one row per kind of refusal (status, RFC 6750 code, gRPC status,
//!    outcome, description) and the answers built from it (`Rejection::of`, where
//!    every refusal is counted), [below](#refusals).
//!
//! # Refusals
//!
//! | situation | HTTP | `WWW-Authenticate` error | gRPC status |
//! |---|---|---|---|
//! | no `Authorization` header | 401 | (none) | 16 UNAUTHENTICATED |
//! | another scheme, several headers, not `ApiKey-v2 <token68>` | 401 | `invalid_request` | 16 |
//! | malformed key, bad checksum | 401 | `invalid_token` | 16 |
//! | unknown id or wrong secret (one answer for both) | 401 | `invalid_token` | 16 |
//! | expired, ended by rotation, revoked (said only once the secret is proven) | 401 | `invalid_token` | 16 |
//! | key restricted to other addresses, or no client address known (fail closed) | 403 | (none; problem `"error":"address_not_allowed"`) | 7 PERMISSION_DENIED |
//! | key over its rate limit | 429 + `Retry-After` + `RateLimit` headers | (none; problem `"error":"rate_limited"`) | 8 RESOURCE_EXHAUSTED |
//! | key's quota used up for the UTC day or month | 429 + `Retry-After` + `RateLimit` headers | (none; problem `"error":"quota_exceeded"`) | 8 RESOURCE_EXHAUSTED |
//! | missing scope | 403 | `insufficient_scope`, `scope="…"` | 7 PERMISSION_DENIED |
//! | a well-formed key from an address [throttled](crate::middleware::FailureThrottle) for failing | 429 + `Retry-After` | (none; problem `"error":"throttled"`) | 8 RESOURCE_EXHAUSTED |
//! | key store unavailable | 503 + `Retry-After` | (none) | 14 UNAVAILABLE |
//! | lookup shed (too many in flight) | 503 + `Retry-After` | (none) | 14 UNAVAILABLE |
//!
//! HTTP answers carry an RFC 9457 problem document (`application/problem+json`), whatever
//! the inner service's body type: the answer travels in a [`ResponseBody`]. HTTP/2 requests whose
//! `content-type` is `application/grpc`, or starts with `application/grpc+` or
//! `application/grpc;`, get a gRPC trailers-only answer: HTTP 200 with `grpc-status`
//! and `grpc-message` (what the HTTP answer says, the missing scopes included) and an
//! empty body, which tonic and every other gRPC client read as a proper status. Over
//! HTTP/1.1, or with any other content type (`application/grpc-web`, …), the plain
//! HTTP answer. Every refusal, gRPC ones too, carries `Cache-Control: no-store`.
//!
//! Limits and restrictions (DESIGN §12) are checked in the order of the table: address,
//! rate limit, quota, scopes. A request refused for its address, rate or quota consumes
//! nothing; one refused for its scopes has used its rate and quota (as each policy's
//! row in `policy.rs` says). Answers to a key
//! with a rate limit or a quota carry `RateLimit-Policy` and `RateLimit` (see
//! `limits/headers.rs` for what each item says). The limits' state is in memory and belongs
//! to the layer: every service it makes, and every clone of it, shares it; two layers
//! built separately count separately.
//!
//! A store that cannot answer gets every request refused with 503; its errors are logged
//! at ERROR, at most one line per second for each kind of error, each line counting
//! (`suppressed`) those left out since the previous one.

mod config;
pub(crate) mod future;
mod interned;
pub(crate) mod layer;
mod policy;
pub(crate) mod rejection;
pub(crate) mod require_scopes;
pub(crate) mod response_body;
pub(crate) mod service;
mod store_failure_log;
pub(crate) mod throttle;
mod verdict;

pub use crate::header::HeaderError;
pub use crate::problem::RETRY_AFTER_SECS;
pub use config::{DEFAULT_EXPIRY_WARNING, DEFAULT_LOOKUP_TIMEOUT};
pub use future::ResponseFuture;
pub use rejection::{DefaultRejection, OnRejection, Rejection, RejectionKind};
pub use require_scopes::{RequireScopes, RequireScopesFuture};
pub use response_body::ResponseBody;
pub use throttle::FailureThrottle;

#[cfg(test)]
mod limit_tests;
#[cfg(test)]
mod tests;
