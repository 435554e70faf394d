//! Per-key limits shared by many instances (DESIGN §12).
//!
//! On one instance, a key's [`RateLimit`](crate::record::RateLimit) and
//! [`Quota`](crate::record::Quota) are decided in memory by the layer (see
//! [`ApiKeyV2Layer`](crate::ApiKeyV2Layer)). Behind a load balancer, N instances would
//! admit N times the limit. [`SharedLimits`] keeps the decision in memory and shares
//! only batches: each instance leases tokens for a key from a [`LimitBackend`] and
//! spends them locally, so the backend sees a write per batch, not per request.
//!
//! ```no_run
//! use tower_apikey::{KeyManager, KeyStoreAdmin, UsageSink};
//! use tower_apikey::limits::{LimitBackend, SharedLimits};
//!
//! // A store that is also the backend, such as `tower_apikey_postgres::PgKeyStore`:
//! // the deployment already runs the database.
//! # async fn run(store: impl KeyStoreAdmin + UsageSink + LimitBackend + Clone) {
//! let limits = SharedLimits::new(store.clone());
//! let manager = KeyManager::builder(store).shared_limits(limits).build();
//! let running = tokio::spawn(manager.background()); // takes the leases
//! // … serve with `manager.layer()`; once the server has stopped, give back the
//! // unspent tokens:
//! let _ = manager.shutdown().await;
//! let _ = running.await;
//! # }
//! ```
//!
//! The errors leasing costs, requests admitted beyond the limit and requests refused
//! within it, are bounded in [`SharedLimits`] and measured in BENCHMARKS.md.
//!
//! # The files
//!
//! One subject, cut by what each file decides; arrows run down this list only, and
//! the middleware only calls in (`middleware/policy/{rate_limit,quota,limits}.rs` turn
//! a refusal, an [`Exhausted`], into its answer):
//!
//! - `limiter.rs`: what the middleware holds, one layer's limits: the local state, and
//!   the shared limits' lease when there are any; consumes one request, both limits or
//!   neither;
//! - `shared_limits.rs`: [`SharedLimits`], its task, and the request path's use of a
//!   lease (`lease_slot.rs`: one key's leased tokens, spent with atomics);
//! - `local.rs`: one instance's state, the map of limited keys and each key's GCRA and
//!   quota count (check, then commit);
//! - `headers.rs`: `RateLimit-Policy` and `RateLimit`, formatted once per set of limits;
//! - `calendar.rs`: the UTC day and month a quota counts in;
//! - `backend.rs`, `ledger.rs`, `memory.rs`: the [`LimitBackend`] trait, the
//!   arithmetic every backend runs ([`LedgerState`]), and the in-memory backend.

pub(crate) mod backend;
pub(crate) mod calendar;
pub(crate) mod headers;
pub(crate) mod lease_slot;
pub(crate) mod ledger;
pub(crate) mod limiter;
pub(crate) mod local;
pub(crate) mod memory;
pub(crate) mod shared_limits;

pub use backend::{Exhausted, INSTANCE_TTL, InstanceId, Lease, LeaseRequest, LimitBackend};
pub use ledger::{LedgerOutcome, LedgerState};
pub use memory::InMemoryLimitBackend;
pub use shared_limits::{
    DEFAULT_BATCH_SPAN, DEFAULT_EXPECTED_INSTANCES, DEFAULT_LEASE_TTL, SharedLimits,
    SharedLimitsStats,
};
