//! Revocation with heirs (DESIGN §10): [`Revocation`], what
//! [`KeyStoreAdmin::revoke_with_heirs`](crate::KeyStoreAdmin::revoke_with_heirs) did,
//! and which keys are a key's heirs.
//!
//! A key's heirs are the keys minted from it by self-rotation: a record whose
//! `rotated_from` is the key and whose `created_by` is the key itself (a key rotating
//! itself, `POST /self/rotate`, records its own id as the actor), then the heirs of
//! those, at any depth. Revoking a key that still works revokes its live heirs with it,
//! so that a thief who self-rotated a leaked key keeps nothing once the owner revokes
//! it. A key already ended by its rotation revokes nothing more: the integration's
//! legitimate new key survives when its owner tidies up the old one.

use std::collections::HashMap;
use std::time::SystemTime;

use crate::event::KeyEvent;
use crate::key::KeyId;
use crate::record::{KeyRecord, KeyState};

/// What [`KeyStoreAdmin::revoke_with_heirs`](crate::KeyStoreAdmin::revoke_with_heirs)
/// did: the key as it now stands, the heirs revoked with it, and the events stored with
/// the change.
///
/// `#[non_exhaustive]`: build one with [`Revocation::first`] or
/// [`Revocation::repeated`] and the `with_…` setters.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Revocation {
    /// The key as it now stands.
    pub record: KeyRecord,
    /// Whether this call revoked the key. `false` when it was revoked already: then
    /// nothing changed, no heir was revoked and no event was stored.
    pub revoked_now: bool,
    /// The heirs revoked with the key, as they now stand, oldest first. Empty when the key no longer worked (revoked, expired or ended by its
    /// rotation) before this call.
    pub heirs: Vec<KeyRecord>,
    /// The events stored in the same write, in the order they were stored.
    pub events: Vec<KeyEvent>,
}

impl Revocation {
    /// This call revoked `record` (which now holds its `revoked_at`).
    pub fn first(record: KeyRecord) -> Self {
        Self {
            record,
            revoked_now: true,
            heirs: Vec::new(),
            events: Vec::new(),
        }
    }

    /// `record` was revoked already; this call changed nothing.
    pub fn repeated(record: KeyRecord) -> Self {
        Self {
            revoked_now: false,
            ..Self::first(record)
        }
    }

    /// The heirs revoked with the key.
    pub fn with_heirs(mut self, heirs: Vec<KeyRecord>) -> Self {
        self.heirs = heirs;
        self
    }

    /// The events stored with the change.
    pub fn with_events(mut self, events: Vec<KeyEvent>) -> Self {
        self.events = events;
        self
    }
}

/// Whether `record` was minted by `parent` rotating itself.
pub(crate) fn is_heir_of(record: &KeyRecord, parent: &KeyId) -> bool {
    record.rotated_from() == Some(parent)
        && record
            .created_by()
            .is_some_and(|by| by.as_str() == parent.as_str())
}

/// The heirs of `id` among `records` that are active at `at`, at any depth, oldest
/// first (by `created_at`, then id), as PostgreSQL orders them. An heir that no longer
/// works is looked through: the keys it minted are still heirs of `id`.
pub(crate) fn live_heirs_in<'a>(
    records: impl IntoIterator<Item = &'a KeyRecord>,
    id: &KeyId,
    at: SystemTime,
) -> Vec<KeyRecord> {
    // One pass to index children by parent, then a walk from `id`: the embedded store
    // and the default method scan every record once.
    let mut children: HashMap<KeyId, Vec<&KeyRecord>> = HashMap::new();
    for record in records {
        if let Some(parent) = record.rotated_from()
            && is_heir_of(record, parent)
        {
            children.entry(*parent).or_default().push(record);
        }
    }
    let mut live = Vec::new();
    let mut next = vec![*id];
    // Ids are unique and each record has one parent, so the walk visits each record
    // once; `seen` guards against a store holding a cycle all the same.
    let mut seen = std::collections::HashSet::from([*id]);
    while let Some(parent) = next.pop() {
        for child in children.get(&parent).into_iter().flatten() {
            if !seen.insert(*child.id()) {
                continue;
            }
            if child.state_at(at) == KeyState::Active {
                live.push((*child).clone());
            }
            next.push(*child.id());
        }
    }
    live.sort_by(|a, b| {
        a.created_at()
            .cmp(&b.created_at())
            .then_with(|| a.id().cmp(b.id()))
    });
    live
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::key::{KeyPrefix, PlaintextKey};
    use crate::record::{ActorName, KeyName};
    use crate::scope::Scopes;

    fn t(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
    }

    fn key(from: Option<&KeyRecord>, by: Option<&KeyRecord>) -> KeyRecord {
        let plain = PlaintextKey::generate(&KeyPrefix::default());
        KeyRecord::new(
            *plain.id(),
            KeyName::new("k").unwrap(),
            Scopes::new(["a:b"]).unwrap(),
            plain.digest(),
            t(0),
            t(1000),
        )
        .with_rotated_from(from.map(|r| *r.id()))
        .with_created_by(by.map(|r| ActorName::of_key(r.id())))
    }

    #[test]
    fn heirs_are_self_minted_descendants_that_still_work() {
        let admin = key(None, None);
        let a = key(None, None);
        let b = key(Some(&a), Some(&a));
        let c = key(Some(&b), Some(&b));
        // Rotated by an administrator: a successor, not an heir.
        let by_admin = key(Some(&a), Some(&admin));
        // An heir that ended, whose own heir still works.
        let ended = key(Some(&a), Some(&a)).with_ends_at(Some(t(5)));
        let under_ended = key(Some(&ended), Some(&ended));
        let revoked = key(Some(&c), Some(&c)).with_revoked_at(Some(t(1)));
        let all = [
            &admin,
            &a,
            &b,
            &c,
            &by_admin,
            &ended,
            &under_ended,
            &revoked,
        ];
        let ids = |heirs: Vec<KeyRecord>| {
            let mut ids: Vec<KeyId> = heirs.iter().map(|r| *r.id()).collect();
            ids.sort();
            ids
        };
        let mut expected = vec![*b.id(), *c.id(), *under_ended.id()];
        expected.sort();
        assert_eq!(ids(live_heirs_in(all, a.id(), t(10))), expected);
        assert_eq!(ids(live_heirs_in(all, c.id(), t(10))), Vec::<KeyId>::new());
        assert_eq!(ids(live_heirs_in(all, b.id(), t(10))), vec![*c.id()]);
    }
}
