//! The conformance checks of [`UsageCounts`]: a store's daily request counts, written
//! through its [`UsageSink`], read back and pruned.
//! [`usage_conformance_tests!`](crate::testing::usage_conformance_tests) turns them into
//! one `#[tokio::test]` each.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::store::KeyStoreAdmin;
use crate::usage::{KeyUsage, UsageBatch, UsageBatchId, UsageCounts, UsageDay, UsageSink};

fn t(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
}

/// A new key, stored, and the UTC day its uses are counted on.
async fn stored_key<S: KeyStoreAdmin>(store: &S, name: &str) -> (crate::key::KeyId, UsageDay) {
    let record = super::sample_record(name, &["a:b"], 0);
    store.insert(&record).await.expect("insert");
    (*record.id(), UsageDay::of(t(10)))
}

/// Daily counts are added per key and day; a batch sent again with the same id (a
/// retry after a timeout) adds nothing; other keys and days are apart; and a key's
/// first stored use is reported once.
pub async fn usage_counts_are_added_once_per_batch<S: UsageSink + UsageCounts + KeyStoreAdmin>(
    store: S,
) {
    let (id, day) = stored_key(&store, "counted").await;
    let usage = |n, at| KeyUsage::new(id, at).with_requests(day, n);
    let first = [usage(5, t(10))];
    let batch = UsageBatch::new(UsageBatchId::random(), &first);
    let outcome = store.record_usage_batch(&batch).await.expect("record");
    assert_eq!(outcome.first_used, [id], "the first stored use is reported");
    let again = store.record_usage_batch(&batch).await.expect("record");
    assert!(again.first_used.is_empty(), "a first use is reported once");
    let second = [usage(2, t(20)).with_requests(day.next(), 4)];
    store
        .record_usage_batch(&UsageBatch::new(UsageBatchId::random(), &second))
        .await
        .expect("record");
    let counts = store
        .daily_requests(&id, day.previous(), day.next().next())
        .await
        .expect("daily_requests");
    assert_eq!(
        counts,
        [(day, 7), (day.next(), 4)],
        "5 + 2 on the first day (the retried batch counted once), 4 on the next"
    );
    let other = super::sample_record("other", &["a:b"], 0);
    assert!(
        store
            .daily_requests(other.id(), day, day)
            .await
            .expect("daily_requests")
            .is_empty()
    );
}

/// Pruning deletes the counts of the days before `before`'s day, and keeps that day's
/// and later ones.
pub async fn prune_usage_deletes_only_older_days<S: UsageSink + UsageCounts + KeyStoreAdmin>(
    store: S,
) {
    let (id, day) = stored_key(&store, "pruned").await;
    let usages = [KeyUsage::new(id, t(10))
        .with_requests(day, 1)
        .with_requests(day.next(), 2)
        .with_requests(day.next().next(), 3)];
    store
        .record_usage_batch(&UsageBatch::new(UsageBatchId::random(), &usages))
        .await
        .expect("record");
    store
        .prune_usage(t(10) + Duration::from_secs(86_400))
        .await
        .expect("prune_usage");
    let left = store
        .daily_requests(&id, day, day.next().next())
        .await
        .expect("daily_requests");
    assert_eq!(
        left,
        [(day.next(), 2), (day.next().next(), 3)],
        "the day before `before`'s day is gone, that day and later are kept"
    );
}

/// Expands to one `#[tokio::test]` per usage-count check, each on a fresh store made by
/// the given `async` expression: a [`KeyStoreAdmin`] that is its own [`UsageSink`]
/// and keeps [`UsageCounts`], as every shipped store is.
// Exported at the crate root, as every `#[macro_export]` macro is, and hidden there:
// its documented path is `testing::…`.
#[doc(hidden)]
#[macro_export]
macro_rules! usage_conformance_tests {
    ($make:expr) => {
        $crate::__conformance!(tests [usage] $make;
            usage_counts_are_added_once_per_batch,
            prune_usage_deletes_only_older_days,
        );
    };
}
