//! The conformance checks of an [`EventStore`]: what every store that keeps the audit
//! trail must do. [`event_store_conformance_tests!`](crate::testing::event_store_conformance_tests)
//! turns them into one `#[tokio::test]` each.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::event::{EventDetail, EventQuery, EventStore, EventType, KeyEvent, NewEvent};
use crate::key::{KeyId, KeyPrefix, PlaintextKey};
use crate::page::PageLimit;
use crate::record::{ActorName, TenantId};
use crate::store::{KeyStoreAdmin, KeyStoreUpdate};
use crate::testing::conformance::sample_record;
use crate::usage::{KeyUsage, UsageBatch, UsageBatchId, UsageSink};

fn t(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
}

fn key() -> KeyId {
    *PlaintextKey::generate(&KeyPrefix::default()).id()
}

async fn all<S: EventStore>(store: &S, query: EventQuery) -> Vec<KeyEvent> {
    let mut out = Vec::new();
    let mut query = query;
    loop {
        let page = store.events(&query).await.expect("events");
        out.extend(page.items);
        match page.next {
            Some(next) => query = query.after(&next).expect("a page's own cursor"),
            None => return out,
        }
    }
}

/// Every field of an event reads back as written, times to the microsecond.
pub async fn events_round_trip_every_field<S: EventStore>(store: S) {
    let (id, other) = (key(), key());
    let at = t(1) + Duration::from_micros(123_456);
    let event = NewEvent::new(EventType::Rotated, id, at)
        .with_actor(Some(ActorName::new("alice@example.com").expect("valid")))
        .with_detail(
            EventDetail::default()
                .with_related_key_id(Some(other))
                .with_days(Some(7))
                .with_ends_at(Some(t(99)))
                .with_attempts(Some(3)),
        );
    let stored = store
        .record_event(&event)
        .await
        .expect("record_event")
        .expect("a rotated event is always stored");
    let read = all(&store, EventQuery::new()).await;
    assert_eq!(
        read,
        std::slice::from_ref(&stored),
        "the stored event reads back as it was"
    );
    assert_eq!(read[0].kind(), EventType::Rotated);
    assert_eq!(read[0].at(), at, "times are kept as given");
    assert_eq!(read[0].detail(), event.detail());
    assert_eq!(read[0].actor(), event.actor());
}

/// Events come newest (highest id) first; ids grow and do not change; pages follow
/// their cursors without gaps or repeats; a key filter keeps only that key's events.
pub async fn events_are_newest_first_paged_and_filtered<S: EventStore>(store: S) {
    let (a, b) = (key(), key());
    let mut ids = Vec::new();
    for i in 0..7 {
        let id = if i % 2 == 0 { a } else { b };
        let e = store
            .record_event(&NewEvent::new(EventType::Created, id, t(i)))
            .await
            .expect("record_event")
            .expect("stored");
        ids.push(e.id());
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids grow: {ids:?}");
    let limit = PageLimit::new(3).expect("valid");
    let read: Vec<_> = all(&store, EventQuery::new().with_limit(limit))
        .await
        .iter()
        .map(KeyEvent::id)
        .collect();
    let mut newest_first = ids.clone();
    newest_first.reverse();
    assert_eq!(read, newest_first, "pages of 3, newest first, nothing lost");
    let of_a = all(&store, EventQuery::new().key(a).with_limit(limit)).await;
    assert_eq!(of_a.len(), 4, "a's events only");
    assert!(of_a.iter().all(|e| *e.key_id() == a));
    assert!(of_a.windows(2).all(|w| w[0].id() > w[1].id()));
}

/// `expiring` is stored once per key and threshold: a second insert stores nothing
/// and says so, which is what lets only one instance forward it.
pub async fn expiring_is_stored_once_per_key_and_threshold<S: EventStore>(store: S) {
    let id = key();
    let expiring = |days, at| {
        NewEvent::new(EventType::Expiring, id, at)
            .with_detail(EventDetail::default().with_days(Some(days)))
    };
    assert!(
        store
            .record_event(&expiring(30, t(1)))
            .await
            .expect("record")
            .is_some()
    );
    assert!(
        store
            .record_event(&expiring(30, t(2)))
            .await
            .expect("record")
            .is_none(),
        "the same threshold again must store nothing"
    );
    assert!(
        store
            .record_event(&expiring(7, t(3)))
            .await
            .expect("record")
            .is_some()
    );
    assert!(
        store
            .record_event(&expiring(30, t(1)))
            .await
            .expect("record")
            .is_none(),
        "the same threshold again must store nothing"
    );
    let other = NewEvent::new(EventType::Expiring, key(), t(4))
        .with_detail(EventDetail::default().with_days(Some(30)));
    assert!(store.record_event(&other).await.expect("record").is_some());
    // Other types repeat freely.
    for _ in 0..2 {
        assert!(
            store
                .record_event(&NewEvent::new(EventType::EndedKeyUsed, id, t(5)))
                .await
                .expect("record")
                .is_some()
        );
    }
    assert_eq!(all(&store, EventQuery::new().key(id)).await.len(), 4);
}

/// Pruning deletes the events before the given time and keeps the rest.
pub async fn prune_deletes_only_older_events<S: EventStore>(store: S) {
    let id = key();
    for i in 0..4 {
        store
            .record_event(&NewEvent::new(EventType::FirstUsed, id, t(i * 100)))
            .await
            .expect("record_event");
    }
    let pruned = store.prune_events(t(200)).await.expect("prune");
    assert_eq!(pruned, 2);
    let left: Vec<_> = all(&store, EventQuery::new())
        .await
        .iter()
        .map(KeyEvent::at)
        .collect();
    assert_eq!(left, [t(300), t(200)]);
}

/// Each change stores the events it is given in the same write (DESIGN §10), with the
/// next ids, and returns them as stored: created, changed, rotated and revoked, the
/// revocation's events also told of each heir it revoked
/// ([`NewEvent::for_heir`](crate::event::NewEvent::for_heir)). A change that does not happen
/// (a duplicate id, an unknown key, a refused rotation, a repeated revocation) stores
/// no event.
pub async fn changes_store_their_events_with_them<S: EventStore + KeyStoreUpdate>(store: S) {
    use crate::error::StoreError;
    use crate::store::{KeyUpdate, OldKeyEnd, RotateOutcome};

    let by = ActorName::new("alice@example.com").expect("valid");
    let record = super::sample_record("audited", &["a:b"], 0);
    let id = *record.id();
    let created = NewEvent::new(EventType::Created, id, t(0)).with_actor(Some(by.clone()));
    let stored = store
        .insert_with_events(&record, std::slice::from_ref(&created))
        .await
        .expect("insert_with_events");
    assert_eq!(stored.len(), 1, "the created event is returned as stored");
    assert!(matches!(
        store
            .insert_with_events(&record, std::slice::from_ref(&created))
            .await,
        Err(StoreError::Duplicate(_))
    ));

    let changed = NewEvent::new(EventType::Changed, id, t(1)).with_actor(Some(by.clone()));
    let update = KeyUpdate::new().rate_limit(None);
    let (_, stored) = store
        .update_with_events(&id, &update, std::slice::from_ref(&changed))
        .await
        .expect("update_with_events")
        .expect("the key exists");
    assert_eq!(stored.len(), 1);
    let unknown = key();
    let nothing = NewEvent::new(EventType::Changed, unknown, t(1));
    assert!(
        store
            .update_with_events(&unknown, &update, &[nothing])
            .await
            .expect("update_with_events")
            .is_none()
    );

    // The key rotates itself: its successor is its heir.
    let heir = super::sample_record("audited", &["a:b"], 2)
        .with_rotated_from(Some(id))
        .with_created_by(Some(
            ActorName::new(id.as_str()).expect("a key id is a name"),
        ));
    let rotation = [
        NewEvent::new(EventType::Created, *heir.id(), t(2)),
        NewEvent::new(EventType::Rotated, id, t(2))
            .with_detail(EventDetail::default().with_related_key_id(Some(*heir.id()))),
    ];
    let (outcome, stored) = store
        .rotate_with_events(&id, &heir, OldKeyEnd::Keep, &rotation)
        .await
        .expect("rotate_with_events");
    assert!(matches!(outcome, RotateOutcome::Rotated(_)), "{outcome:?}");
    assert_eq!(stored.len(), 2);
    let second = super::sample_record("audited", &["a:b"], 3).with_rotated_from(Some(id));
    let (outcome, stored) = store
        .rotate_with_events(
            &id,
            &second,
            OldKeyEnd::Keep,
            &[NewEvent::new(EventType::Created, *second.id(), t(3))],
        )
        .await
        .expect("rotate_with_events");
    assert!(
        matches!(outcome, RotateOutcome::HasLiveSuccessor(_)),
        "{outcome:?}"
    );
    assert!(stored.is_empty(), "a refused rotation stores no event");

    let revoked = NewEvent::new(EventType::Revoked, id, t(4)).with_actor(Some(by.clone()));
    let revocation = store
        .revoke_with_heirs(&id, t(4), Some(&by), std::slice::from_ref(&revoked))
        .await
        .expect("revoke_with_heirs")
        .expect("the key exists");
    assert_eq!(
        revocation
            .events
            .iter()
            .map(|e| (*e.key_id(), e.detail().related_key_id))
            .collect::<Vec<_>>(),
        [(id, None), (*heir.id(), Some(id))],
        "the key's revoked event, then its heir's, naming the key"
    );
    assert!(
        store
            .revoke_with_heirs(&id, t(5), None, &[revoked])
            .await
            .expect("revoke_with_heirs")
            .expect("the key exists")
            .events
            .is_empty(),
        "a repeated revocation stores no event"
    );

    let kinds = |events: Vec<KeyEvent>| events.iter().map(KeyEvent::kind).collect::<Vec<_>>();
    assert_eq!(
        kinds(all(&store, EventQuery::new().key(id)).await),
        [
            EventType::Revoked,
            EventType::Rotated,
            EventType::Changed,
            EventType::Created
        ],
        "the key's events, newest first, each once"
    );
    let heir_events = all(&store, EventQuery::new().key(*heir.id())).await;
    assert_eq!(
        kinds(heir_events.clone()),
        [EventType::Revoked, EventType::Created]
    );
    assert_eq!(
        heir_events[0].actor(),
        Some(&by),
        "revoked by the same actor"
    );
    assert!(
        all(&store, EventQuery::new().key(unknown)).await.is_empty()
            && all(&store, EventQuery::new().key(*second.id()))
                .await
                .is_empty(),
        "changes that did not happen stored no event"
    );
}

/// A usage write that wants events stores them in the same write: `first_used` for
/// each first use, and `rotated` (with the end) for each old key an `until_first_use`
/// rotation ends, as [`UsageBatch::events_of`] makes them; a retry stores none again,
/// and a batch that wants none stores none.
pub async fn usage_writes_store_their_events_with_them<
    S: EventStore + UsageSink + KeyStoreAdmin,
>(
    store: S,
) {
    use crate::store::OldKeyEnd;

    let old = super::sample_record("old", &["a:b"], 0);
    store.insert(&old).await.expect("insert");
    let new = super::sample_record("old", &["a:b"], 10).with_rotated_from(Some(*old.id()));
    store
        .rotate(
            old.id(),
            &new,
            OldKeyEnd::UntilFirstUse(Duration::from_secs(300)),
        )
        .await
        .expect("rotate");
    let quiet = super::sample_record("quiet", &["a:b"], 0);
    store.insert(&quiet).await.expect("insert");

    let used = [KeyUsage::new(*new.id(), t(20))];
    let batch = UsageBatch::new(UsageBatchId::random(), &used).events(true);
    let outcome = store.record_usage_batch(&batch).await.expect("record");
    assert_eq!(outcome.first_used, [*new.id()]);
    assert_eq!(outcome.ended.len(), 1, "the old key ends");
    let kinds: Vec<(EventType, KeyId)> = outcome
        .events
        .iter()
        .map(|e| (e.kind(), *e.key_id()))
        .collect();
    assert_eq!(
        kinds,
        [
            (EventType::FirstUsed, *new.id()),
            (EventType::Rotated, *old.id())
        ],
        "the events of the write, as stored"
    );
    let rotated = &outcome.events[1];
    assert_eq!(rotated.detail().related_key_id, Some(*new.id()));
    assert_eq!(rotated.detail().ends_at, Some(t(320)));
    assert_eq!(rotated.at(), t(20));
    assert_eq!(
        all(&store, EventQuery::new().key(*new.id())).await,
        outcome.events[..1],
        "kept in the store"
    );
    let again = store.record_usage_batch(&batch).await.expect("record");
    assert!(
        again.events.is_empty(),
        "a retry changes nothing and stores no event"
    );

    let plain = [KeyUsage::new(*quiet.id(), t(30))];
    let outcome = store
        .record_usage_batch(&UsageBatch::new(UsageBatchId::random(), &plain))
        .await
        .expect("record");
    assert_eq!(outcome.first_used, [*quiet.id()]);
    assert!(
        outcome.events.is_empty(),
        "a batch that wants no events gets none"
    );
    assert!(
        all(&store, EventQuery::new().key(*quiet.id()))
            .await
            .is_empty()
    );
}

/// Each stored event carries the tenant of its key, whoever wrote it (a management
/// change or the request path), and a tenant filter answers that tenant's events only,
/// never another's or the application's own (DESIGN §14).
pub async fn events_carry_their_keys_tenant<S: EventStore + KeyStoreAdmin>(store: S) {
    let tenant = |id: &str| TenantId::new(id).expect("a tenant id");
    let acme = sample_record("acme", &[], 0).with_tenant(Some(tenant("acme")));
    let globex = sample_record("globex", &[], 1).with_tenant(Some(tenant("globex")));
    let own = sample_record("own", &[], 2);
    for record in [&acme, &globex, &own] {
        let created = NewEvent::new(EventType::Created, *record.id(), record.created_at());
        let stored = store
            .insert_with_events(record, &[created])
            .await
            .expect("insert_with_events");
        assert_eq!(stored.len(), 1);
        assert_eq!(
            stored[0].tenant(),
            record.tenant(),
            "as stored with the key"
        );
    }
    // The request path knows only the key's id.
    let used = store
        .record_event(&NewEvent::new(EventType::FirstUsed, *acme.id(), t(3)))
        .await
        .expect("record_event")
        .expect("stored");
    assert_eq!(
        used.tenant(),
        Some(&tenant("acme")),
        "the key's tenant, looked up"
    );
    let of = |query: EventQuery| {
        let store = &store;
        async move {
            all(store, query)
                .await
                .iter()
                .map(|e| (*e.key_id(), e.tenant().cloned()))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        of(EventQuery::new().with_tenant(tenant("acme"))).await,
        vec![(*acme.id(), Some(tenant("acme"))); 2],
        "acme's two events, and nothing else"
    );
    assert_eq!(
        of(EventQuery::new()
            .with_tenant(tenant("acme"))
            .key(*globex.id()))
        .await,
        [],
        "another tenant's key, under a tenant filter: nothing"
    );
    assert_eq!(
        of(EventQuery::new().with_tenant(tenant("initech"))).await,
        []
    );
    let everything = of(EventQuery::new()).await;
    assert_eq!(
        everything.len(),
        4,
        "no filter: every tenant's, and the application's"
    );
    assert!(everything.contains(&(*own.id(), None)));
}

/// Expands to one `#[tokio::test]` per event-store check, each on a fresh store made by
/// the given `async` expression: a store that is also a [`UsageSink`] and a
/// [`KeyStoreAdmin`], as both shipped stores are.
// Exported at the crate root, as every `#[macro_export]` macro is, and hidden there:
// its documented path is `testing::…`.
#[doc(hidden)]
#[macro_export]
macro_rules! event_store_conformance_tests {
    ($make:expr) => {
        $crate::__conformance!(tests [events] $make;
            events_round_trip_every_field,
            events_are_newest_first_paged_and_filtered,
            expiring_is_stored_once_per_key_and_threshold,
            prune_deletes_only_older_events,
            changes_store_their_events_with_them,
            usage_writes_store_their_events_with_them,
            events_carry_their_keys_tenant,
        );
    };
}
