//! The [`LimitBackend`] contract, as checks to run against a backend: each takes a
//! fresh backend (no key leased yet) and panics with the rule it broke.
//! [`limit_backend_conformance_tests!`](crate::testing::limit_backend_conformance_tests) turns
//! them into one `#[tokio::test]` each.
//!
//! The limits are long (a day's rate window, a month's quota), so that the checks hold
//! on a backend that uses its own clock, as `tower_apikey_postgres::PgKeyStore` does.

use std::sync::Arc;
use std::time::SystemTime;

use crate::key::{KeyId, KeyPrefix, PlaintextKey};
use crate::limits::backend::{Exhausted, InstanceId, LeaseRequest, LimitBackend};
use crate::record::{Quota, QuotaPeriod, RateLimit};

fn key() -> KeyId {
    *PlaintextKey::generate(&KeyPrefix::default()).id()
}

/// 10 a day: nothing recovers while a check runs.
fn slow_rate() -> RateLimit {
    RateLimit::new(10, 86_400).expect("a valid rate limit")
}

fn ask(key: KeyId, instance: InstanceId, wanted: u32) -> LeaseRequest {
    LeaseRequest::new(
        key,
        instance,
        Some(slow_rate()),
        None,
        wanted,
        SystemTime::now(),
    )
}

/// Grants never exceed what is wanted, nor the burst; the answer names the rate.
pub async fn grants_at_most_the_burst<B: LimitBackend>(backend: B) {
    let (key, me) = (key(), InstanceId::random());
    let lease = backend.lease(&ask(key, me, 4)).await.expect("lease");
    assert_eq!(lease.granted, 4, "4 of a burst of 10 were wanted");
    assert_eq!(lease.exhausted, None, "nothing ran out");
    let lease = backend.lease(&ask(key, me, 10)).await.expect("lease");
    assert_eq!(lease.granted, 6, "6 of the burst were left");
    assert!(
        matches!(lease.exhausted, Some(Exhausted::Rate { retry_after }) if !retry_after.is_zero()),
        "a short grant names the rate and a wait: {:?}",
        lease.exhausted
    );
    let lease = backend.lease(&ask(key, me, 1)).await.expect("lease");
    assert_eq!(lease.granted, 0, "the burst is spent");
}

/// What an instance owes is charged before anything is granted.
pub async fn owed_requests_are_charged<B: LimitBackend>(backend: B) {
    let (key, me) = (key(), InstanceId::random());
    let lease = backend
        .lease(&ask(key, me, 0).owing(7))
        .await
        .expect("lease");
    assert_eq!(lease.granted, 0, "nothing was wanted");
    let lease = backend.lease(&ask(key, me, 10)).await.expect("lease");
    assert_eq!(lease.granted, 3, "7 of the burst of 10 were owed");
}

/// Tokens given back can be leased again.
pub async fn returned_tokens_are_credited<B: LimitBackend>(backend: B) {
    let (key, me) = (key(), InstanceId::random());
    assert_eq!(
        backend
            .lease(&ask(key, me, 10))
            .await
            .expect("lease")
            .granted,
        10
    );
    let lease = backend
        .lease(&ask(key, me, 0).returning(4))
        .await
        .expect("lease");
    assert_eq!(lease.granted, 0);
    let lease = backend.lease(&ask(key, me, 10)).await.expect("lease");
    assert_eq!(lease.granted, 4, "the 4 given back");
}

/// The quota bounds a grant as the rate does, and says so.
pub async fn the_quota_bounds_the_grant<B: LimitBackend>(backend: B) {
    let (key, me) = (key(), InstanceId::random());
    let quota = Quota::new(5, QuotaPeriod::Month).expect("a valid quota");
    let ask = |wanted| LeaseRequest::new(key, me, None, Some(quota), wanted, SystemTime::now());
    assert_eq!(backend.lease(&ask(3)).await.expect("lease").granted, 3);
    let lease = backend.lease(&ask(3)).await.expect("lease");
    assert_eq!(lease.granted, 2, "5 a month");
    assert!(
        matches!(lease.exhausted, Some(Exhausted::Quota { .. })),
        "a short grant names the quota: {:?}",
        lease.exhausted
    );
}

/// Each key has its own ledger.
pub async fn keys_are_separate<B: LimitBackend>(backend: B) {
    let me = InstanceId::random();
    let (a, b) = (key(), key());
    assert_eq!(
        backend.lease(&ask(a, me, 10)).await.expect("lease").granted,
        10
    );
    assert_eq!(
        backend.lease(&ask(b, me, 10)).await.expect("lease").granted,
        10
    );
}

/// The instances that called are counted, each once.
pub async fn instances_are_counted<B: LimitBackend>(backend: B) {
    let (key, one, two) = (key(), InstanceId::random(), InstanceId::random());
    for (caller, live) in [(one, 1), (one, 1), (two, 2)] {
        let lease = backend.lease(&ask(key, caller, 1)).await.expect("lease");
        assert_eq!(lease.instances, live, "instances after a call by {caller}");
    }
}

/// A heartbeat counts its instance as a lease does, each instance once, and the
/// count includes instances that only lease: an idle instance is counted.
pub async fn heartbeats_count_instances_that_lease_nothing<B: LimitBackend>(backend: B) {
    let (idle, other, leasing) = (
        InstanceId::random(),
        InstanceId::random(),
        InstanceId::random(),
    );
    let now = SystemTime::now();
    assert_eq!(backend.heartbeat(idle, now).await.expect("heartbeat"), 1);
    assert_eq!(backend.heartbeat(idle, now).await.expect("heartbeat"), 1);
    assert_eq!(backend.heartbeat(other, now).await.expect("heartbeat"), 2);
    let lease = backend.lease(&ask(key(), leasing, 1)).await.expect("lease");
    assert_eq!(lease.instances, 3, "the lease counts the idle instances");
    assert_eq!(
        backend.heartbeat(idle, now).await.expect("heartbeat"),
        3,
        "the heartbeat counts the leasing instance"
    );
}

/// Concurrent leases of one key never grant more than the burst in all.
pub async fn concurrent_leases_never_over_grant<B: LimitBackend>(backend: B) {
    let backend = Arc::new(backend);
    let key = key();
    let calls = (0..8).map(|_| {
        let backend = Arc::clone(&backend);
        tokio::spawn(async move {
            backend
                .lease(&ask(key, InstanceId::random(), 3))
                .await
                .expect("lease")
                .granted
        })
    });
    let mut granted = 0;
    for call in calls.collect::<Vec<_>>() {
        granted += call.await.expect("a lease task");
    }
    assert_eq!(granted, 10, "8 × 3 wanted of a burst of 10");
}

/// One `#[tokio::test]` per check of the [`LimitBackend`] contract, each with a fresh
/// backend from `$make` (an expression evaluating to a future of the backend):
///
/// ```
/// # #[cfg(any())] mod doc {
/// tower_apikey::testing::limit_backend_conformance_tests!(async { tower_apikey::limits::InMemoryLimitBackend::new() });
/// # }
/// ```
// Exported at the crate root, as every `#[macro_export]` macro is, and hidden there:
// its documented path is `testing::…`.
#[doc(hidden)]
#[macro_export]
macro_rules! limit_backend_conformance_tests {
    ($make:expr) => {
        $crate::__conformance!(tests [limits] $make;
            grants_at_most_the_burst,
            owed_requests_are_charged,
            returned_tokens_are_credited,
            the_quota_bounds_the_grant,
            keys_are_separate,
            instances_are_counted,
            heartbeats_count_instances_that_lease_nothing,
            concurrent_leases_never_over_grant,
        );
    };
}
