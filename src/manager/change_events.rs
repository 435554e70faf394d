//! The events of each change the manager makes: `created`, `rotated`, `revoked` and
//! `changed`, as it hands them to the store with the change (DESIGN §10).

use std::time::SystemTime;

use crate::event::{EventDetail, EventType, NewEvent};
use crate::key::KeyId;
use crate::record::{ActorName, KeyRecord};
use crate::store::OldKeyEnd;

/// `created`, for a new key or a rotation's successor.
pub(super) fn created(record: &KeyRecord) -> NewEvent {
    let detail = EventDetail::default().with_related_key_id(record.rotated_from().copied());
    NewEvent::new(EventType::Created, *record.id(), record.created_at())
        .with_actor(record.created_by().cloned())
        .with_detail(detail)
}

/// `revoked`, of `id` at `at` by `by`.
pub(super) fn revoked(id: KeyId, at: SystemTime, by: Option<&ActorName>) -> NewEvent {
    NewEvent::new(EventType::Revoked, id, at).with_actor(by.cloned())
}

/// `changed`: a new name, limits or addresses, by `actor`.
pub(super) fn changed(id: KeyId, at: SystemTime, actor: Option<&ActorName>) -> NewEvent {
    NewEvent::new(EventType::Changed, id, at).with_actor(actor.cloned())
}

/// The events of rotating `old` (as read before the rotation) into `new`: the
/// successor's `created`, the old key's `rotated` with the end the rotation sets, and
/// its `revoked` when the rotation revokes it.
pub(super) fn rotated(old: &KeyRecord, new: &KeyRecord, end: OldKeyEnd) -> Vec<NewEvent> {
    // As the store sets it: an end only where it ends the key sooner. The store
    // refuses the rotation if the old key changed in a way that matters (revoked, or
    // given a live successor), so the record read before is the one it ends.
    let ends_at = match end {
        OldKeyEnd::EndAt(at) if at < old.stops_at() => Some(at),
        OldKeyEnd::EndAt(_) => old.ends_at(),
        _ => None,
    };
    let detail = EventDetail::default()
        .with_related_key_id(Some(*new.id()))
        .with_ends_at(ends_at);
    let mut events = vec![
        created(new),
        NewEvent::new(EventType::Rotated, *old.id(), new.created_at())
            .with_actor(new.created_by().cloned())
            .with_detail(detail),
    ];
    if let OldKeyEnd::Revoke(at) = end {
        events.push(revoked(*old.id(), at, new.created_by()));
    }
    events
}
