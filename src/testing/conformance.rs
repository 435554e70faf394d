//! The store conformance suite (feature `test-util`): the behaviour every
//! [`KeyStoreAdmin`] must have, as checks to run against your own store.
//!
//! Each check takes a fresh, empty store and panics, like `assert!`, with a message
//! naming the broken rule. [`store_conformance_tests!`](crate::testing::store_conformance_tests)
//! turns the whole suite into one `#[tokio::test]` per check:
//!
//! ```
//! # #[cfg(any())] mod doc {
//! tower_apikey::testing::store_conformance_tests!(async { MyStore::connect_to_a_fresh_schema().await });
//! # }
//! ```
//!
//! The records the checks write hold times in whole microseconds, the precision the
//! [`KeyManager`](crate::KeyManager) writes with. A store must keep every time exactly
//! as given (the application's clock, never the backend's), including revocation times
//! and the `ends_at` a rotation sets, and keep who acted (`created_by`, `revoked_by`).

pub mod events;
mod heirs;
pub mod limits;
mod paging;
pub mod rotation;
pub mod update;
pub mod usage;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::StoreError;
use crate::key::{KeyId, KeyPrefix, PlaintextKey};
use crate::record::{
    ActorName, AllowedIps, KeyName, KeyRecord, KeyState, Quota, QuotaPeriod, RateLimit, RecentIps,
    TenantId,
};
use crate::scope::Scopes;
use crate::store::{KeyStoreAdmin, OldKeyEnd, RotateOutcome};

pub use heirs::{
    an_heir_rotating_itself_meanwhile_leaves_no_live_heir,
    revoke_with_heirs_revokes_live_self_minted_heirs, revoking_an_ended_key_spares_its_heirs,
};
pub use paging::{
    list_page_filters_by_scope, list_page_filters_by_state, list_page_filters_by_tenant,
    list_page_is_stable_while_keys_are_created, list_page_searches_names_and_ids,
    list_page_visits_every_key_once_in_each_sort,
};

/// A fixed, whole-second time to build records around.
pub(super) fn t(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
}

/// A fresh record with a real digest, created at `t(created)`, valid for a day.
pub fn sample_record(name: &str, scopes: &[&str], created: u64) -> KeyRecord {
    let key = PlaintextKey::generate(&KeyPrefix::default());
    KeyRecord::new(
        *key.id(),
        KeyName::new(name).expect("sample names are valid"),
        Scopes::new(scopes).expect("sample scopes are valid"),
        key.digest(),
        t(created),
        t(created + 86_400),
    )
}

/// An actor name, for records and revocations.
pub(super) fn actor(name: &str) -> ActorName {
    ActorName::new(name).expect("sample actor names are valid")
}

/// Asserts that two records agree in every field.
#[track_caller]
pub fn assert_same_record(actual: &KeyRecord, expected: &KeyRecord) {
    assert_eq!(actual.id(), expected.id(), "id");
    assert_eq!(actual.name(), expected.name(), "name of {}", expected.id());
    assert_eq!(
        actual.scopes(),
        expected.scopes(),
        "scopes of {}",
        expected.id()
    );
    assert_eq!(
        actual.tenant(),
        expected.tenant(),
        "tenant of {}",
        expected.id()
    );
    assert!(
        actual.digest() == expected.digest(),
        "digest of {} differs",
        expected.id()
    );
    assert_eq!(
        actual.created_at(),
        expected.created_at(),
        "created_at of {}",
        expected.id()
    );
    assert_eq!(
        actual.expires_at(),
        expected.expires_at(),
        "expires_at of {}",
        expected.id()
    );
    assert_eq!(
        actual.revoked_at(),
        expected.revoked_at(),
        "revoked_at of {}",
        expected.id()
    );
    assert_eq!(
        actual.last_used_at(),
        expected.last_used_at(),
        "last_used_at of {}",
        expected.id()
    );
    assert_eq!(
        actual.rotated_from(),
        expected.rotated_from(),
        "rotated_from of {}",
        expected.id()
    );
    assert_eq!(
        actual.ends_at(),
        expected.ends_at(),
        "ends_at of {}",
        expected.id()
    );
    assert_eq!(
        actual.created_by(),
        expected.created_by(),
        "created_by of {}",
        expected.id()
    );
    assert_eq!(
        actual.revoked_by(),
        expected.revoked_by(),
        "revoked_by of {}",
        expected.id()
    );
    assert_eq!(
        actual.rate_limit(),
        expected.rate_limit(),
        "rate_limit of {}",
        expected.id()
    );
    assert_eq!(
        actual.quota(),
        expected.quota(),
        "quota of {}",
        expected.id()
    );
    assert_eq!(
        actual.allowed_ips(),
        expected.allowed_ips(),
        "allowed_ips of {}",
        expected.id()
    );
    assert_eq!(
        actual.recent_ips(),
        expected.recent_ips(),
        "recent_ips of {}",
        expected.id()
    );
}

pub(super) async fn lookup<S: KeyStoreAdmin>(store: &S, id: &KeyId) -> Option<KeyRecord> {
    let found = store.lookup(id).await.expect("lookup");
    if let Some(ready) = store.lookup_ready(id) {
        let ready = ready.expect("lookup_ready");
        assert_eq!(
            ready.as_ref().map(KeyRecord::id),
            found.as_ref().map(KeyRecord::id),
            "lookup_ready must agree with lookup"
        );
    }
    found
}

/// An unknown id looks up as `None`, not as an error.
pub async fn unknown_id_is_none<S: KeyStoreAdmin>(store: S) {
    let id = *sample_record("x", &[], 0).id();
    assert!(
        lookup(&store, &id).await.is_none(),
        "unknown id must look up as None"
    );
    assert!(
        store.get(&id).await.expect("get").is_none(),
        "unknown id must get as None"
    );
}

/// Every field survives an insert and a lookup, a get and a list.
pub async fn insert_round_trips_every_field<S: KeyStoreAdmin>(store: S) {
    let first = sample_record(
        "billing sync (prod) — ü",
        &["reports:read", "reports:*", "admin:keys"],
        0,
    );
    let record = sample_record("second", &[], 10)
        .with_rotated_from(Some(*first.id()))
        .with_last_used_at(Some(t(20) + Duration::from_millis(250)))
        .with_ends_at(Some(t(3_600) + Duration::from_micros(1)))
        .with_revoked_at(Some(t(30)))
        .with_created_by(Some(ActorName::of_key(first.id())))
        .with_revoked_by(Some(actor("Zoë Ünal <zoe@example.com>")))
        // A tenant of the longest length and every kind of character (DESIGN §14).
        .with_tenant(Some(
            TenantId::new(&format!("org:Acme_2.eu-{}", "x".repeat(49))).expect("valid"),
        ))
        // Per-key limits (DESIGN §12), the largest counts included.
        .with_rate_limit(Some(RateLimit::new(u32::MAX, 86_400).expect("valid")))
        .with_quota(Some(Quota::new(10_000, QuotaPeriod::Month).expect("valid")))
        .with_allowed_ips(Some(
            AllowedIps::new(["203.0.113.0/24", "2001:db8::/32", "127.0.0.1"]).expect("valid"),
        ))
        // The last client addresses, newest first (at most five).
        .with_recent_ips(RecentIps::from_newest(
            [
                "198.51.100.7",
                "2001:db8::42",
                "10.0.0.1",
                "10.0.0.2",
                "127.0.0.1",
            ]
            .map(|ip| ip.parse().expect("valid")),
        ));
    store.insert(&first).await.expect("insert");
    store.insert(&record).await.expect("insert");
    for expected in [&first, &record] {
        let found = lookup(&store, expected.id())
            .await
            .expect("inserted record must be found");
        assert_same_record(&found, expected);
        let got = store
            .get(expected.id())
            .await
            .expect("get")
            .expect("get finds it");
        assert_same_record(&got, expected);
    }
    let listed = store.list().await.expect("list");
    assert_eq!(listed.len(), 2, "list holds both records");
}

/// A second insert with the same id is [`StoreError::Duplicate`] and changes nothing.
pub async fn duplicate_id_is_refused<S: KeyStoreAdmin>(store: S) {
    let record = sample_record("a", &["x"], 0);
    store.insert(&record).await.expect("insert");
    let clash = KeyRecord::new(
        *record.id(),
        KeyName::new("b").unwrap(),
        Scopes::new(["y"]).unwrap(),
        *sample_record("c", &[], 0).digest(),
        t(5),
        t(6),
    );
    match store.insert(&clash).await {
        Err(StoreError::Duplicate(id)) => assert_eq!(id, *record.id()),
        other => panic!("a duplicate id must give StoreError::Duplicate, got {other:?}"),
    }
    assert_same_record(&lookup(&store, record.id()).await.unwrap(), &record);
}

/// `list` is newest first.
pub async fn list_is_newest_first<S: KeyStoreAdmin>(store: S) {
    let records = [
        sample_record("old", &[], 0),
        sample_record("new", &[], 200),
        sample_record("mid", &[], 100),
    ];
    for record in &records {
        store.insert(record).await.expect("insert");
    }
    let names: Vec<String> = store
        .list()
        .await
        .expect("list")
        .iter()
        .map(|r| r.name().to_string())
        .collect();
    assert_eq!(names, ["new", "mid", "old"], "list must be newest first");
}

/// Lookups return revoked and expired records: the middleware decides.
pub async fn lookup_returns_revoked_and_expired_records<S: KeyStoreAdmin>(store: S) {
    let record = sample_record("r", &[], 0);
    store.insert(&record).await.expect("insert");
    store.revoke(record.id(), t(1), None).await.expect("revoke");
    let found = lookup(&store, record.id())
        .await
        .expect("a revoked record must still be found");
    assert_eq!(found.revoked_at(), Some(t(1)));
}

/// Revoking sets `revoked_at`; revoking again keeps the first time; unknown is `None`.
pub async fn revoke_is_idempotent<S: KeyStoreAdmin>(store: S) {
    let record = sample_record("r", &[], 0);
    store.insert(&record).await.expect("insert");
    let revoked = store
        .revoke(record.id(), t(10), None)
        .await
        .expect("revoke")
        .expect("known id");
    assert_eq!(revoked.revoked_at(), Some(t(10)));
    let again = store
        .revoke(record.id(), t(20), None)
        .await
        .expect("revoke")
        .expect("known id");
    assert_eq!(
        again.revoked_at(),
        Some(t(10)),
        "a second revoke must keep the first time"
    );
    assert_eq!(
        lookup(&store, record.id()).await.unwrap().revoked_at(),
        Some(t(10))
    );
    let unknown = *sample_record("u", &[], 0).id();
    assert!(
        store
            .revoke(&unknown, t(10), None)
            .await
            .expect("revoke")
            .is_none()
    );
}

/// A revocation stores the time it is given (the application's clock, even one far
/// ahead of the store's), and the record is revoked at once.
pub async fn revoke_stores_the_given_time<S: KeyStoreAdmin>(store: S) {
    let record = sample_record("r", &[], 0);
    store.insert(&record).await.expect("insert");
    // Ten years after the record's creation: no backend clock is anywhere near it.
    let ahead = t(10 * 365 * 86_400) + Duration::from_micros(7);
    store
        .revoke(record.id(), ahead, None)
        .await
        .expect("revoke");
    let found = lookup(&store, record.id()).await.expect("found");
    assert_eq!(
        found.revoked_at(),
        Some(ahead),
        "revoked_at must be the time given to revoke, not the store's clock"
    );
    assert_eq!(found.state_at(t(1)), KeyState::Revoked);
}

/// [`KeyStoreAdmin::revoke`] records who revoked the key; a repeated revocation
/// keeps the first actor, like the first time; the application revoking records none.
pub async fn revoke_records_who_revoked<S: KeyStoreAdmin>(store: S) {
    let by_alice = sample_record("r", &[], 0);
    store.insert(&by_alice).await.expect("insert");
    let alice = actor("alice@example.com");
    let revoked = store
        .revoke(by_alice.id(), t(10), Some(&alice))
        .await
        .expect("revoke")
        .expect("known id");
    assert_eq!(revoked.revoked_by(), Some(&alice), "revoked_by as returned");
    let again = store
        .revoke(by_alice.id(), t(20), Some(&actor("mallory@example.com")))
        .await
        .expect("revoke")
        .expect("known id");
    assert_eq!(
        again.revoked_by(),
        Some(&alice),
        "a second revoke must keep the first actor"
    );
    assert_eq!(again.revoked_at(), Some(t(10)));
    let stored = lookup(&store, by_alice.id()).await.unwrap();
    assert_eq!(stored.revoked_by(), Some(&alice), "revoked_by as stored");

    let by_application = sample_record("a", &[], 0);
    store.insert(&by_application).await.expect("insert");
    store
        .revoke(by_application.id(), t(10), None)
        .await
        .expect("revoke");
    let again = store
        .revoke(by_application.id(), t(20), Some(&alice))
        .await
        .expect("revoke")
        .expect("known id");
    assert_eq!(
        again.revoked_by(),
        None,
        "a second revoke must keep the first (application) actor"
    );
}

/// A rotation stores the new key's `created_by`; one that revokes the old key at once
/// records the same actor as the old key's `revoked_by`, and one that only schedules an
/// end records none.
pub async fn rotate_records_who_rotated<S: KeyStoreAdmin>(store: S) {
    let old = sample_record("rot", &["a:b"], 0).with_created_by(Some(actor("ops@example.com")));
    store.insert(&old).await.expect("insert");
    let heir_id = *sample_record("x", &[], 0).id();
    let new = sample_record("rot", &["a:b"], 60)
        .with_rotated_from(Some(*old.id()))
        .with_created_by(Some(ActorName::of_key(&heir_id)));
    match store
        .rotate(old.id(), &new, OldKeyEnd::EndAt(t(3_600)))
        .await
        .expect("rotate")
    {
        RotateOutcome::Rotated(ended) => {
            assert_eq!(ended.revoked_by(), None, "an end is not a revocation");
            assert_eq!(ended.created_by(), old.created_by(), "old created_by kept");
        }
        other => panic!("expected Rotated, got {other:?}"),
    }
    assert_same_record(&lookup(&store, new.id()).await.unwrap(), &new);

    let leaked = sample_record("leaked", &["a:b"], 0);
    store.insert(&leaked).await.expect("insert");
    let alice = actor("alice@example.com");
    let heir = sample_record("leaked", &["a:b"], 60)
        .with_rotated_from(Some(*leaked.id()))
        .with_created_by(Some(alice.clone()));
    match store
        .rotate(leaked.id(), &heir, OldKeyEnd::Revoke(t(60)))
        .await
        .expect("rotate")
    {
        RotateOutcome::Rotated(revoked) => {
            assert_eq!(
                revoked.revoked_by(),
                Some(&alice),
                "a rotation that revokes records its actor as revoked_by"
            );
        }
        other => panic!("expected Rotated, got {other:?}"),
    }
    let stored = lookup(&store, leaked.id()).await.unwrap();
    assert_eq!(stored.revoked_by(), Some(&alice), "stored revoked_by");
    assert_eq!(stored.revoked_at(), Some(t(60)));
    assert_same_record(&lookup(&store, heir.id()).await.unwrap(), &heir);
}

/// Rotation stores the new record and ends the old one as asked: `ends_at` for an
/// overlap (never past the old key's own expiry), `revoked_at` for a leaked key, and
/// `expires_at` unchanged either way.
pub async fn rotate_ends_the_old_key_as_asked<S: KeyStoreAdmin>(store: S) {
    for (end, expect_ends, expect_revoked) in [
        (OldKeyEnd::Keep, None, None),
        (OldKeyEnd::EndAt(t(3_600)), Some(t(3_600)), None),
        // An overlap past the old key's own expiry never extends it: no end is set.
        (OldKeyEnd::EndAt(t(86_400)), None, None),
        (OldKeyEnd::EndAt(t(999_999)), None, None),
        (OldKeyEnd::Revoke(t(60)), None, Some(t(60))),
    ] {
        let old = sample_record("rot", &["a:b"], 0);
        store.insert(&old).await.expect("insert");
        let new = sample_record("rot", &["a:b"], 60).with_rotated_from(Some(*old.id()));
        match store.rotate(old.id(), &new, end).await.expect("rotate") {
            RotateOutcome::Rotated(ended) => {
                assert_eq!(ended.expires_at(), t(86_400), "{end:?}: old expiry");
                assert_eq!(ended.ends_at(), expect_ends, "{end:?}: old end");
                assert_eq!(
                    ended.revoked_at(),
                    expect_revoked,
                    "{end:?}: old revocation"
                );
            }
            other => panic!("{end:?}: expected Rotated, got {other:?}"),
        }
        let stored_old = lookup(&store, old.id()).await.unwrap();
        assert_eq!(
            stored_old.expires_at(),
            t(86_400),
            "{end:?}: stored old expiry"
        );
        assert_eq!(stored_old.ends_at(), expect_ends, "{end:?}: stored old end");
        assert_eq!(
            stored_old.revoked_at(),
            expect_revoked,
            "{end:?}: stored old revocation"
        );
        assert_same_record(
            &lookup(&store, new.id()).await.expect("new record stored"),
            &new,
        );
    }
}

/// A second rotation with an overlap can end a key sooner, never later.
pub async fn a_scheduled_end_is_never_postponed<S: KeyStoreAdmin>(store: S) {
    let old = sample_record("rot", &[], 0);
    store.insert(&old).await.expect("insert");
    let mut heir: Option<KeyId> = None;
    for (n, (at, expected)) in [
        (t(3_600), t(3_600)),
        (t(7_200), t(3_600)),
        (t(1_800), t(1_800)),
    ]
    .into_iter()
    .enumerate()
    {
        // A key rotates into one live heir at a time: the previous one is revoked.
        if let Some(heir) = heir {
            store
                .revoke(&heir, t(n as u64), None)
                .await
                .expect("revoke");
        }
        let new = sample_record("rot", &[], n as u64).with_rotated_from(Some(*old.id()));
        heir = Some(*new.id());
        match store
            .rotate(old.id(), &new, OldKeyEnd::EndAt(at))
            .await
            .expect("rotate")
        {
            RotateOutcome::Rotated(ended) => {
                assert_eq!(ended.ends_at(), Some(expected), "ending at {at:?}");
            }
            other => panic!("expected Rotated, got {other:?}"),
        }
        assert_eq!(
            lookup(&store, old.id()).await.unwrap().ends_at(),
            Some(expected),
            "stored end after ending at {at:?}"
        );
    }
}

/// Rotating an unknown or revoked key stores nothing.
pub async fn rotate_refuses_unknown_and_revoked_keys<S: KeyStoreAdmin>(store: S) {
    let new = sample_record("n", &[], 0);
    let unknown = *sample_record("u", &[], 0).id();
    assert!(matches!(
        store
            .rotate(&unknown, &new, OldKeyEnd::Keep)
            .await
            .expect("rotate"),
        RotateOutcome::NotFound
    ));
    let old = sample_record("o", &[], 0);
    store.insert(&old).await.expect("insert");
    store.revoke(old.id(), t(1), None).await.expect("revoke");
    assert!(matches!(
        store
            .rotate(old.id(), &new, OldKeyEnd::Keep)
            .await
            .expect("rotate"),
        RotateOutcome::Revoked
    ));
    assert!(
        lookup(&store, new.id()).await.is_none(),
        "a refused rotation must store nothing"
    );
}

/// A key with a live successor (rotated from it, active at the new record's
/// `created_at`) is not rotated again; once that successor is revoked, expired or ended,
/// it may be.
pub async fn rotate_refuses_a_key_with_a_live_successor<S: KeyStoreAdmin>(store: S) {
    let old = sample_record("o", &["a:b"], 0);
    store.insert(&old).await.expect("insert");
    let heir = sample_record("o", &["a:b"], 60).with_rotated_from(Some(*old.id()));
    assert!(matches!(
        store
            .rotate(old.id(), &heir, OldKeyEnd::Keep)
            .await
            .expect("rotate"),
        RotateOutcome::Rotated(_)
    ));
    let second = sample_record("o", &["a:b"], 120).with_rotated_from(Some(*old.id()));
    match store
        .rotate(old.id(), &second, OldKeyEnd::Revoke(t(120)))
        .await
        .expect("rotate")
    {
        RotateOutcome::HasLiveSuccessor(found) => {
            assert_eq!(&found, heir.id(), "the live successor is named")
        }
        other => {
            panic!("a second heir while the first lives: expected HasLiveSuccessor, got {other:?}")
        }
    }
    assert!(
        lookup(&store, second.id()).await.is_none(),
        "a refused rotation must store nothing"
    );
    let old_now = lookup(&store, old.id()).await.expect("old kept");
    assert_eq!(
        old_now.revoked_at(),
        None,
        "a refused rotation must not end the old key"
    );

    // A successor that is no longer active does not count: revoked …
    store.revoke(heir.id(), t(130), None).await.expect("revoke");
    let third = sample_record("o", &["a:b"], 140).with_rotated_from(Some(*old.id()));
    assert!(
        matches!(
            store
                .rotate(old.id(), &third, OldKeyEnd::Keep)
                .await
                .expect("rotate"),
            RotateOutcome::Rotated(_)
        ),
        "the only successor is revoked"
    );
    // … expired at the new record's `created_at` (sample records live a day) …
    let fourth = sample_record("o", &["a:b"], 140 + 86_400).with_rotated_from(Some(*old.id()));
    assert!(
        matches!(
            store
                .rotate(old.id(), &fourth, OldKeyEnd::Keep)
                .await
                .expect("rotate"),
            RotateOutcome::Rotated(_)
        ),
        "the successor has expired by the time of this rotation"
    );
    // … or ended by a rotation of its own.
    let fifth_parent = sample_record("p", &[], 0);
    store.insert(&fifth_parent).await.expect("insert");
    let ending = sample_record("p", &[], 10).with_rotated_from(Some(*fifth_parent.id()));
    store
        .rotate(fifth_parent.id(), &ending, OldKeyEnd::Keep)
        .await
        .expect("rotate");
    let grandchild = sample_record("p", &[], 20).with_rotated_from(Some(*ending.id()));
    store
        .rotate(ending.id(), &grandchild, OldKeyEnd::EndAt(t(30)))
        .await
        .expect("rotate");
    let again = sample_record("p", &[], 40).with_rotated_from(Some(*fifth_parent.id()));
    assert!(
        matches!(
            store
                .rotate(fifth_parent.id(), &again, OldKeyEnd::Keep)
                .await
                .expect("rotate"),
            RotateOutcome::Rotated(_)
        ),
        "the successor was ended at t(30), before this rotation at t(40)"
    );
}

/// Concurrent rotations of one key store exactly one successor: the check for a live
/// successor and the insert are one step.
pub async fn concurrent_rotations_make_one_successor<S: KeyStoreAdmin>(store: S) {
    const RACERS: usize = 8;
    let old = sample_record("race", &["a:b"], 0);
    store.insert(&old).await.expect("insert");
    let heirs: Vec<KeyRecord> = (0..RACERS)
        .map(|_| sample_record("race", &["a:b"], 60).with_rotated_from(Some(*old.id())))
        .collect();
    let outcomes = futures_util::future::join_all(
        heirs
            .iter()
            .map(|heir| store.rotate(old.id(), heir, OldKeyEnd::Keep)),
    )
    .await;
    let mut rotated = Vec::new();
    for (heir, outcome) in heirs.iter().zip(outcomes) {
        match outcome.expect("rotate") {
            RotateOutcome::Rotated(_) => rotated.push(*heir.id()),
            RotateOutcome::HasLiveSuccessor(_) => {}
            other => panic!("expected Rotated or HasLiveSuccessor, got {other:?}"),
        }
    }
    assert_eq!(
        rotated.len(),
        1,
        "{RACERS} concurrent rotations of one key stored {} successors",
        rotated.len()
    );
    for heir in &heirs {
        assert_eq!(
            lookup(&store, heir.id()).await.is_some(),
            rotated.contains(heir.id()),
            "only the winning rotation's successor is stored"
        );
    }
}

/// Runs every check, each against a fresh store from `make`: the checks
/// [`store_conformance_tests!`](crate::testing::store_conformance_tests) lists.
pub async fn run_all<S, F, Fut>(mut make: F)
where
    S: KeyStoreAdmin,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = S>,
{
    crate::store_conformance_tests!(@checks run make);
}

/// Expands to one `#[tokio::test]` per conformance check, each on a fresh store made by
/// the given `async` expression. Needs `tokio` with the `macros` and `rt` features in
/// the calling crate's dev-dependencies.
// Exported at the crate root, as every `#[macro_export]` macro is, and hidden there:
// its documented path is `testing::…`.
#[doc(hidden)]
#[macro_export]
macro_rules! store_conformance_tests {
    ($make:expr) => {
        $crate::store_conformance_tests!(@checks tests $make);
    };
    // The suite's one list of checks, made into tests or run in turn (`run_all`).
    (@checks $how:ident $make:expr) => {
        $crate::__conformance!($how [] $make;
            unknown_id_is_none,
            insert_round_trips_every_field,
            duplicate_id_is_refused,
            list_is_newest_first,
            lookup_returns_revoked_and_expired_records,
            revoke_is_idempotent,
            revoke_stores_the_given_time,
            revoke_records_who_revoked,
            rotate_ends_the_old_key_as_asked,
            rotate_records_who_rotated,
            a_scheduled_end_is_never_postponed,
            rotate_refuses_unknown_and_revoked_keys,
            rotate_refuses_a_key_with_a_live_successor,
            concurrent_rotations_make_one_successor,
            revoke_with_heirs_revokes_live_self_minted_heirs,
            revoking_an_ended_key_spares_its_heirs,
            an_heir_rotating_itself_meanwhile_leaves_no_live_heir,
            list_page_visits_every_key_once_in_each_sort,
            list_page_filters_by_state,
            list_page_searches_names_and_ids,
            list_page_filters_by_scope,
            list_page_filters_by_tenant,
            list_page_is_stable_while_keys_are_created,
        );
    };
}

/// What every suite's macro expands its one list of checks to: `tests`, one
/// `#[tokio::test]` per check on a fresh store from `$make` (an `async` expression);
/// `run`, each check in turn on a fresh store from `$make` (a closure returning a
/// future). `[$suite]` names the module under `testing::conformance` that holds the
/// checks, `[]` this one.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance {
    (tests [$suite:ident] $make:expr; $($check:ident,)*) => {
        $(
            #[tokio::test]
            async fn $check() {
                $crate::testing::conformance::$suite::$check($make.await).await;
            }
        )*
    };
    (tests [] $make:expr; $($check:ident,)*) => {
        $(
            #[tokio::test]
            async fn $check() {
                $crate::testing::conformance::$check($make.await).await;
            }
        )*
    };
    (run [] $make:expr; $($check:ident,)*) => {
        $(
            $crate::testing::conformance::$check($make().await).await;
        )*
    };
}
