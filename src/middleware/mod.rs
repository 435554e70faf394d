//! The tower middleware: [`ApiKeyV2Layer`](crate::ApiKeyV2Layer), [`ApiKeyV2Service`](crate::ApiKeyV2Service), [`ResponseFuture`](crate::ResponseFuture).
//!
//! Per request, in order:
//!
//! 1. read the one `Authorization: ApiKey-v2 <key>` header (length cap first);
//! 2. check the key's prefix, shape and CRC-32 checksum; a malformed key is refused
//!    here, without touching the store;
//! 3. with a [`FailureThrottle`](crate::FailureThrottle), refuse (429) a client
//!    address that sent too many wrong keys recently, still without touching the store;
//! 4. hash the key once (SHA-256) and look the id up in the
//!    [`KeyStore`](crate::KeyStore) (at once when the store can answer from memory,
//!    otherwise as a future bounded by the lookup timeout);
//! 5. compare digests in constant time (against a dummy for an unknown id), and count
//!    a mismatch against the client's address when throttling;
//! 6. only then say "revoked", "ended by rotation" or "expired", check the required
//!    scopes, and put the [`ApiKeyIdentity`](crate::ApiKeyIdentity) into the request's
//!    extensions.
//!
//! A store that cannot answer gets every request refused with 503; its errors are logged
//! at ERROR, at most one line per second for each kind of error, each line counting
//! (`suppressed`) those left out since the previous one.

mod config;
pub(crate) mod future;
pub(crate) mod layer;
pub mod rejection;
pub(crate) mod service;
mod store_failure_log;
pub(crate) mod throttle;

#[cfg(test)]
mod tests;
