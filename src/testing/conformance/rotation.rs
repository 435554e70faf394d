//! The conformance checks of `until_first_use` rotation (DESIGN §11): what every store
//! that is also the [`UsageSink`] of its keys must do.
//! [`rotation_conformance_tests!`](crate::testing::rotation_conformance_tests) turns them into
//! one `#[tokio::test]` each.
//!
//! The rule: a rotation with [`OldKeyEnd::UntilFirstUse`] stores the successor with its
//! grace and leaves the old key as it is; the usage write that stores the successor's
//! first use sets the old key's `ends_at` (that use plus the grace, unless the old key
//! is revoked or stops sooner anyway) in the same write, reports it in
//! [`UsageOutcome::ended`](crate::usage::UsageOutcome::ended), and a lookup afterwards (through
//! any cache the store has) shows the end.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::record::KeyRecord;
use crate::store::{KeyStoreAdmin, OldKeyEnd, RotateOutcome};
use crate::testing::conformance::sample_record;
use crate::usage::{KeyUsage, RotationEnd, UsageBatch, UsageBatchId, UsageOutcome, UsageSink};

fn t(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
}

const GRACE: Duration = Duration::from_secs(300);

/// Stores `old` (created at `t(0)`, valid for a day) and rotates it into a successor
/// created at `t(10)` with `until_first_use` and [`GRACE`].
async fn rotated<S: KeyStoreAdmin>(store: &S) -> (KeyRecord, KeyRecord) {
    let old = sample_record("old", &["a:b"], 0);
    store.insert(&old).await.expect("insert");
    let new = sample_record("old", &["a:b"], 10).with_rotated_from(Some(*old.id()));
    match store
        .rotate(old.id(), &new, OldKeyEnd::UntilFirstUse(GRACE))
        .await
        .expect("rotate")
    {
        RotateOutcome::Rotated(left) => {
            assert_eq!(
                left.ends_at(),
                None,
                "an until_first_use rotation leaves the old key without an end until the \
                 new key's first use"
            );
            assert_eq!(left.revoked_at(), None, "and does not revoke it");
        }
        other => panic!("rotating an active key must succeed, got {other:?}"),
    }
    (old, new)
}

async fn record<S: UsageSink>(store: &S, uses: &[KeyUsage]) -> UsageOutcome {
    store
        .record_usage_batch(&UsageBatch::new(UsageBatchId::random(), uses))
        .await
        .expect("record_usage_batch")
}

async fn fresh<S: KeyStoreAdmin>(store: &S, record: &KeyRecord) -> KeyRecord {
    store
        .get(record.id())
        .await
        .expect("get")
        .expect("the record exists")
}

async fn looked_up<S: KeyStoreAdmin>(store: &S, record: &KeyRecord) -> KeyRecord {
    store
        .lookup(record.id())
        .await
        .expect("lookup")
        .expect("the record exists")
}

/// The successor is stored with its grace; its first use ends the old key at that use
/// plus the grace (whole microseconds kept), reported once, and seen by lookups at
/// once, through any cache; later uses change nothing.
pub async fn first_use_ends_the_old_key_after_the_grace<S: KeyStoreAdmin + UsageSink>(store: S) {
    let (old, new) = rotated(&store).await;
    assert_eq!(
        fresh(&store, &new).await.predecessor_grace(),
        Some(GRACE),
        "the successor of an until_first_use rotation is stored with its grace"
    );
    // A cache in front of the store now holds the old record without an end.
    assert_eq!(looked_up(&store, &old).await.ends_at(), None);

    let used = t(100) + Duration::from_micros(123_456);
    let outcome = record(&store, &[KeyUsage::new(*new.id(), used)]).await;
    assert_eq!(outcome.first_used, [*new.id()], "the new key's first use");
    assert_eq!(
        outcome.ended,
        [RotationEnd::new(*old.id(), *new.id(), used + GRACE)],
        "the write that stores the new key's first use reports the old key's end"
    );
    assert_eq!(
        fresh(&store, &old).await.ends_at(),
        Some(used + GRACE),
        "the old key ends at the new key's first use plus the grace"
    );
    assert_eq!(
        looked_up(&store, &old).await.ends_at(),
        Some(used + GRACE),
        "a lookup after the write sees the end (a cache must drop the old record)"
    );
    assert_eq!(
        fresh(&store, &old).await.expires_at(),
        old.expires_at(),
        "expires_at is kept"
    );

    let outcome = record(&store, &[KeyUsage::new(*new.id(), t(5_000))]).await;
    assert!(
        outcome.first_used.is_empty() && outcome.ended.is_empty(),
        "a later use is no first use and ends nothing: {outcome:?}"
    );
    assert_eq!(
        fresh(&store, &old).await.ends_at(),
        Some(used + GRACE),
        "a later use of the new key never moves the end"
    );
}

/// Uses of the old key alone end nothing: a new key that is never used leaves the old
/// one to its own end.
pub async fn a_new_key_never_used_leaves_the_old_one<S: KeyStoreAdmin + UsageSink>(store: S) {
    let (old, _new) = rotated(&store).await;
    let outcome = record(&store, &[KeyUsage::new(*old.id(), t(100))]).await;
    assert_eq!(outcome.first_used, [*old.id()]);
    assert!(outcome.ended.is_empty(), "nothing ended: {outcome:?}");
    let stored = fresh(&store, &old).await;
    assert_eq!(stored.ends_at(), None, "the old key keeps working");
    assert_eq!(stored.last_used_at(), Some(t(100)));
}

/// When the old and the new key are both first used in one batch, the old key's own
/// use is stored and so is its end.
pub async fn both_keys_first_used_in_one_batch<S: KeyStoreAdmin + UsageSink>(store: S) {
    let (old, new) = rotated(&store).await;
    let outcome = record(
        &store,
        &[
            KeyUsage::new(*old.id(), t(90)),
            KeyUsage::new(*new.id(), t(100)),
        ],
    )
    .await;
    let mut first = outcome.first_used.clone();
    first.sort();
    let mut expected = vec![*old.id(), *new.id()];
    expected.sort();
    assert_eq!(first, expected, "both first uses are reported");
    assert_eq!(
        outcome.ended,
        [RotationEnd::new(*old.id(), *new.id(), t(100) + GRACE)]
    );
    let stored = fresh(&store, &old).await;
    assert_eq!(
        stored.last_used_at(),
        Some(t(90)),
        "the old key's use is kept"
    );
    assert_eq!(stored.ends_at(), Some(t(100) + GRACE), "and its end");
}

/// The end never lengthens a key's life and never touches a revoked key: past the old
/// key's expiry it is not set, and a revoked old key stays as it is.
pub async fn the_end_never_lengthens_or_revives<S: KeyStoreAdmin + UsageSink>(store: S) {
    let (old, new) = rotated(&store).await;
    // The old key expires at t(86_400); the use plus the grace is later.
    let outcome = record(&store, &[KeyUsage::new(*new.id(), t(86_200))]).await;
    assert!(
        outcome.ended.is_empty(),
        "no end past the expiry: {outcome:?}"
    );
    assert_eq!(fresh(&store, &old).await.ends_at(), None);

    let (old, new) = rotated(&store).await;
    store.revoke(old.id(), t(50), None).await.expect("revoke");
    let outcome = record(&store, &[KeyUsage::new(*new.id(), t(100))]).await;
    assert!(
        outcome.ended.is_empty(),
        "a revoked key is not ended: {outcome:?}"
    );
    let stored = fresh(&store, &old).await;
    assert_eq!(stored.ends_at(), None);
    assert_eq!(stored.revoked_at(), Some(t(50)));
}

/// Expands to one `#[tokio::test]` per `until_first_use` check, each on a fresh store
/// (a [`KeyStoreAdmin`] that is also its own [`UsageSink`]) made by the given `async`
/// expression.
// Exported at the crate root, as every `#[macro_export]` macro is, and hidden there:
// its documented path is `testing::…`.
#[doc(hidden)]
#[macro_export]
macro_rules! rotation_conformance_tests {
    ($make:expr) => {
        $crate::__conformance!(tests [rotation] $make;
            first_use_ends_the_old_key_after_the_grace,
            a_new_key_never_used_leaves_the_old_one,
            both_keys_first_used_in_one_batch,
            the_end_never_lengthens_or_revives,
        );
    };
}
