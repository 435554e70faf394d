//! The conformance check of [`KeyStoreUpdate`], the optional capability of changing a
//! key in place. [`update_conformance_tests!`](crate::testing::update_conformance_tests)
//! turns it into a `#[tokio::test]`.

use crate::record::{AllowedIps, KeyName, Quota, QuotaPeriod, RateLimit};
use crate::store::{KeyStoreUpdate, KeyUpdate};

/// [`KeyStoreUpdate::update`] changes exactly what the update names: a field left out
/// stays, `None` clears a limit, and every other field (scopes, times, actors) is kept;
/// lookups see the change at once. An unknown id is `None`.
pub async fn update_changes_only_what_it_names<S: KeyStoreUpdate>(store: S) {
    let rate = RateLimit::new(100, 60).expect("valid");
    let quota = Quota::new(10_000, QuotaPeriod::Day).expect("valid");
    let record = super::sample_record("before", &["reports:read"], 0)
        .with_last_used_at(Some(super::t(20)))
        .with_ends_at(Some(super::t(3_600)))
        .with_created_by(Some(super::actor("alice@example.com")))
        .with_rate_limit(Some(rate))
        .with_quota(Some(quota));
    store.insert(&record).await.expect("insert");

    let ips = AllowedIps::new(["198.51.100.0/24", "2001:db8::1"]).expect("valid");
    let new_rate = RateLimit::new(u32::MAX, 1).expect("valid");
    let update = KeyUpdate::new()
        .name(KeyName::new("after — ü").expect("valid"))
        .rate_limit(Some(new_rate))
        .allowed_ips(Some(ips.clone()));
    let expected = update.apply_to(&record);
    assert_eq!(expected.quota(), Some(quota), "the quota is left out");
    let answered = store
        .update(record.id(), &update)
        .await
        .expect("update")
        .expect("update finds the key");
    super::assert_same_record(&answered, &expected);
    let found = super::lookup(&store, record.id()).await.expect("lookup");
    super::assert_same_record(&found, &expected);
    let got = store.get(record.id()).await.expect("get").expect("get");
    super::assert_same_record(&got, &expected);

    // `None` clears; the name and the rate limit now stay as they are.
    let clear = KeyUpdate::new().quota(None).allowed_ips(None);
    let cleared = store
        .update(record.id(), &clear)
        .await
        .expect("update")
        .expect("update finds the key");
    super::assert_same_record(&cleared, &clear.apply_to(&expected));
    assert_eq!(cleared.quota(), None, "quota cleared");
    assert_eq!(cleared.allowed_ips(), None, "allowed_ips cleared");
    assert_eq!(cleared.rate_limit(), Some(new_rate), "rate limit kept");
    super::assert_same_record(
        &super::lookup(&store, record.id()).await.expect("lookup"),
        &cleared,
    );

    // An empty update changes nothing; a revoked key may still change.
    store
        .revoke(record.id(), super::t(30), None)
        .await
        .expect("revoke");
    let revoked = store
        .update(record.id(), &KeyUpdate::new())
        .await
        .expect("update")
        .expect("update finds the key");
    assert_eq!(revoked.revoked_at(), Some(super::t(30)), "revoked_at kept");
    assert_eq!(revoked.rate_limit(), Some(new_rate));

    let unknown = *super::sample_record("x", &[], 0).id();
    assert!(
        store
            .update(&unknown, &KeyUpdate::new().rate_limit(None))
            .await
            .expect("update")
            .is_none(),
        "an unknown id updates as None"
    );
    assert!(
        super::lookup(&store, &unknown).await.is_none(),
        "and stores nothing"
    );
}

/// Expands to one `#[tokio::test]` per update check, each on a fresh store (a
/// [`KeyStoreUpdate`]) made by the given `async` expression.
// Exported at the crate root, as every `#[macro_export]` macro is, and hidden there:
// its documented path is `testing::…`.
#[doc(hidden)]
#[macro_export]
macro_rules! update_conformance_tests {
    ($make:expr) => {
        $crate::__conformance!(tests [update] $make;
            update_changes_only_what_it_names,
        );
    };
}
