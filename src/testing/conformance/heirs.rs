//! The conformance checks of revocation with heirs (DESIGN §10): what
//! [`KeyStoreAdmin::live_heirs`] and [`KeyStoreAdmin::revoke_with_heirs`] must do. Part
//! of [`store_conformance_tests!`](crate::testing::store_conformance_tests).
//!
//! A key's heirs are the records whose `rotated_from` is the key and whose
//! `created_by` is the key's own id (it rotated itself), and theirs in turn. Revoking a
//! key that was active until then revokes its live heirs in the same step, as of the
//! same time and actor; a key that no longer worked revokes nothing more.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::key::KeyId;
use crate::record::{ActorName, KeyRecord};
use crate::store::{KeyStoreAdmin, OldKeyEnd, RotateOutcome};
use crate::testing::conformance::sample_record;

fn t(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
}

fn actor(name: &str) -> ActorName {
    ActorName::new(name).expect("sample actor names are valid")
}

/// A record minted by `parent` rotating itself, created at `t(created)`.
fn heir_of(parent: &KeyRecord, created: u64) -> KeyRecord {
    sample_record(parent.name().as_str(), &["a:b"], created)
        .with_rotated_from(Some(*parent.id()))
        .with_created_by(Some(actor(parent.id().as_str())))
}

fn ids(records: &[KeyRecord]) -> Vec<KeyId> {
    records.iter().map(|r| *r.id()).collect()
}

async fn stored<S: KeyStoreAdmin>(store: &S, id: &KeyId) -> KeyRecord {
    store
        .get(id)
        .await
        .expect("get")
        .expect("the record is stored")
}

/// Revoking a working key revokes its live heirs, at any depth, with the same time and
/// actor, and names them, parents first; successors an administrator rotated, and
/// heirs that no longer work, are left alone. A repeat changes nothing.
pub async fn revoke_with_heirs_revokes_live_self_minted_heirs<S: KeyStoreAdmin>(store: S) {
    let leaked = sample_record("sync", &["a:b"], 0);
    let heir = heir_of(&leaked, 1);
    let grandchild = heir_of(&heir, 2);
    // Minted by an administrator rotating the key: a successor, not an heir.
    let by_admin = sample_record("sync", &["a:b"], 3)
        .with_rotated_from(Some(*leaked.id()))
        .with_created_by(Some(actor("admin@example.com")));
    // An heir that ended before the revocation, and its own live heir.
    let expired = heir_of(&leaked, 4).with_ends_at(Some(t(5)));
    let under_expired = heir_of(&expired, 6);
    for record in [
        &leaked,
        &heir,
        &grandchild,
        &by_admin,
        &expired,
        &under_expired,
    ] {
        store.insert(record).await.expect("insert");
    }
    assert_eq!(
        ids(&store
            .live_heirs(leaked.id(), t(10))
            .await
            .expect("live_heirs")),
        [*heir.id(), *grandchild.id(), *under_expired.id()],
        "live heirs at any depth, oldest first, looking through one that ended"
    );

    let by = actor("alice@example.com");
    let revocation = store
        .revoke_with_heirs(leaked.id(), t(10), Some(&by), &[])
        .await
        .expect("revoke_with_heirs")
        .expect("the key exists");
    assert!(revocation.revoked_now, "this call revoked the key");
    assert_eq!(revocation.record.revoked_at(), Some(t(10)));
    let mut revoked = ids(&revocation.heirs);
    revoked.sort();
    let mut expected = vec![*heir.id(), *grandchild.id(), *under_expired.id()];
    expected.sort();
    assert_eq!(revoked, expected, "every live heir is revoked and named");
    for id in &expected {
        let record = stored(&store, id).await;
        assert_eq!(record.revoked_at(), Some(t(10)), "heir {id}: the same time");
        assert_eq!(record.revoked_by(), Some(&by), "heir {id}: the same actor");
    }
    for id in [by_admin.id(), expired.id()] {
        assert_eq!(
            stored(&store, id).await.revoked_at(),
            None,
            "{id} is not a live heir and stays as it was"
        );
    }
    assert!(
        store
            .live_heirs(leaked.id(), t(10))
            .await
            .expect("live_heirs")
            .is_empty()
    );

    let again = store
        .revoke_with_heirs(leaked.id(), t(20), None, &[])
        .await
        .expect("revoke_with_heirs")
        .expect("the key exists");
    assert!(!again.revoked_now, "a repeat revokes nothing");
    assert!(again.heirs.is_empty());
    assert_eq!(
        again.record.revoked_at(),
        Some(t(10)),
        "the first time stays"
    );

    let unknown = *sample_record("u", &[], 0).id();
    assert!(
        store
            .revoke_with_heirs(&unknown, t(10), None, &[])
            .await
            .expect("revoke_with_heirs")
            .is_none()
    );
}

/// Revoking a key that had already ended by its rotation (or expired) revokes it but
/// none of its heirs: the integration's new key survives the old one's tidying up.
pub async fn revoking_an_ended_key_spares_its_heirs<S: KeyStoreAdmin>(store: S) {
    let old = sample_record("sync", &["a:b"], 0);
    store.insert(&old).await.expect("insert");
    let new = heir_of(&old, 10);
    match store
        .rotate(old.id(), &new, OldKeyEnd::EndAt(t(20)))
        .await
        .expect("rotate")
    {
        RotateOutcome::Rotated(_) => {}
        other => panic!("expected Rotated, got {other:?}"),
    }
    assert_eq!(
        ids(&store.live_heirs(old.id(), t(30)).await.expect("live_heirs")),
        [*new.id()],
        "the heir is live (what revoking would take with it, had the key still worked)"
    );
    let revocation = store
        .revoke_with_heirs(old.id(), t(30), None, &[])
        .await
        .expect("revoke_with_heirs")
        .expect("the key exists");
    assert!(revocation.revoked_now);
    assert!(
        revocation.heirs.is_empty(),
        "a key that had ended revokes no heir: {:?}",
        ids(&revocation.heirs)
    );
    assert_eq!(stored(&store, new.id()).await.revoked_at(), None);
}

/// An heir rotating itself while its parent is revoked leaves no live heir behind:
/// the search and the revocation are one step (or repeated until none is left).
pub async fn an_heir_rotating_itself_meanwhile_leaves_no_live_heir<S: KeyStoreAdmin>(store: S) {
    for round in 0..8u64 {
        let leaked = sample_record("race", &["a:b"], round * 100);
        let heir = heir_of(&leaked, round * 100 + 1);
        store.insert(&leaked).await.expect("insert");
        store.insert(&heir).await.expect("insert");
        let at = t(round * 100 + 50);
        // The heir mints a chain of its own, each rotating itself, while the owner
        // revokes the leaked key.
        let chain = async {
            let mut parent = heir.clone();
            for step in 0..4 {
                let next = heir_of(&parent, round * 100 + 2 + step);
                match store
                    .rotate(parent.id(), &next, OldKeyEnd::Keep)
                    .await
                    .expect("rotate")
                {
                    RotateOutcome::Rotated(_) => parent = next,
                    _ => break,
                }
            }
        };
        let revoke = store.revoke_with_heirs(leaked.id(), at, None, &[]);
        let ((), revocation) = futures_util::future::join(chain, revoke).await;
        assert!(
            revocation
                .expect("revoke_with_heirs")
                .expect("the key exists")
                .revoked_now
        );
        let left = store.live_heirs(leaked.id(), at).await.expect("live_heirs");
        assert!(
            left.is_empty(),
            "round {round}: heirs minted during the revocation survived it: {:?}",
            ids(&left)
        );
    }
}
