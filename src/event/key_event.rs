//! The audit trail's events, their store and their sink, as [`event`](super) documents.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use crate::error::BoxError;
use crate::error::StoreError;
use crate::key::KeyId;
use crate::page::{Page, PageCursor, PageError, PageLimit};
use crate::record::{ActorName, TenantId};

/// What happened to a key.
///
/// `#[non_exhaustive]`: later releases add types. A store that meets one it does not
/// know should store its [`as_str`](Self::as_str) name as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EventType {
    /// The key was created (by a rotation too: `detail.related_key_id` is then the key
    /// it replaces).
    Created,
    /// The key was rotated: `detail.related_key_id` is its successor, and
    /// `detail.ends_at` the end the rotation set, if any. An `until_first_use` rotation
    /// sets no end at first; a second `rotated` event, with the same successor and
    /// `detail.ends_at`, follows when the successor's first use sets it (recorded by
    /// the usage tracker, at that use, with no actor).
    Rotated,
    /// The key was revoked (by a rotation with no overlap too). An heir revoked with
    /// the key it was minted from by self-rotation (DESIGN §10) names that key, whose
    /// revocation revoked it, in `detail.related_key_id`.
    Revoked,
    /// The key's first proven use, as last-used tracking wrote it.
    FirstUsed,
    /// The key ends within `detail.days` days (30, 7 or 1), at `detail.ends_at`.
    Expiring,
    /// Someone proved the secret of a key that was revoked or ended by rotation: an
    /// integration that never switched, or a leaked copy. At most once per flush period
    /// per key.
    EndedKeyUsed,
    /// The key's name, limits or allowed addresses were changed (`PATCH /keys/{id}`,
    /// [`KeyManager::update`](crate::KeyManager::update)); the record shows what they
    /// are now. Lifting a limit gives a key power, so who did it is kept.
    Changed,
}

impl EventType {
    /// Every type, in the order of the list above.
    pub const ALL: [EventType; 7] = [
        Self::Created,
        Self::Rotated,
        Self::Revoked,
        Self::FirstUsed,
        Self::Expiring,
        Self::EndedKeyUsed,
        Self::Changed,
    ];

    /// The name in JSON and in the PostgreSQL table: `created`, `rotated`, `revoked`,
    /// `first_used`, `expiring`, `ended_key_used`, `changed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Rotated => "rotated",
            Self::Revoked => "revoked",
            Self::FirstUsed => "first_used",
            Self::Expiring => "expiring",
            Self::EndedKeyUsed => "ended_key_used",
            Self::Changed => "changed",
        }
    }

    /// The type named `name` (as [`as_str`](Self::as_str) writes it).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == name)
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An event's id: unique in its store, and larger for events stored later, so that
/// paging newest first is paging by descending id. Stable: an event keeps its id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventId(u64);

impl EventId {
    /// The id `n`, as a store hands it out (from 1).
    pub fn new(n: u64) -> Self {
        Self(n)
    }

    /// The number.
    pub fn get(self) -> u64 {
        self.0
    }

    /// The cursor of the page after the one ending with this event.
    pub fn cursor(self) -> PageCursor {
        PageCursor::from_fields([self.0.to_string().as_str()])
            .expect("a decimal number is a valid cursor field")
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What an event says besides its type, key, actor and time. Only some fields apply
/// to each type (see [`EventType`]); the others are `None`.
///
/// `#[non_exhaustive]`: build one with [`EventDetail::default`] and the `with_…`
/// setters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct EventDetail {
    /// The other key of a rotation: the successor (on `rotated`) or the key replaced
    /// (on `created`); on the `revoked` of an heir, the key whose revocation revoked it.
    pub related_key_id: Option<KeyId>,
    /// For `expiring`: the threshold crossed, 30, 7 or 1 days.
    pub days: Option<u32>,
    /// For `expiring`, when the key ends; for `rotated`, the end set for the old key.
    pub ends_at: Option<SystemTime>,
    /// For `ended_key_used`: how many proven attempts the flush period saw.
    pub attempts: Option<u64>,
}

impl EventDetail {
    /// Sets `related_key_id`.
    pub fn with_related_key_id(mut self, id: Option<KeyId>) -> Self {
        self.related_key_id = id;
        self
    }

    /// Sets `days`.
    pub fn with_days(mut self, days: Option<u32>) -> Self {
        self.days = days;
        self
    }

    /// Sets `ends_at`.
    pub fn with_ends_at(mut self, at: Option<SystemTime>) -> Self {
        self.ends_at = at;
        self
    }

    /// Sets `attempts`.
    pub fn with_attempts(mut self, attempts: Option<u64>) -> Self {
        self.attempts = attempts;
        self
    }
}

/// An event before a store gave it an id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    kind: EventType,
    key_id: KeyId,
    actor: Option<ActorName>,
    at: SystemTime,
    detail: EventDetail,
}

impl NewEvent {
    /// `kind` happened to `key_id` at `at` (the application's clock), with no actor
    /// (the application acted) and no detail.
    pub fn new(kind: EventType, key_id: KeyId, at: SystemTime) -> Self {
        Self {
            kind,
            key_id,
            actor: None,
            at,
            detail: EventDetail::default(),
        }
    }

    /// Who acted: an admin key's id or a person's name, as in `created_by`.
    pub fn with_actor(mut self, actor: Option<ActorName>) -> Self {
        self.actor = actor;
        self
    }

    /// What else the event says.
    pub fn with_detail(mut self, detail: EventDetail) -> Self {
        self.detail = detail;
        self
    }

    /// The type.
    pub fn kind(&self) -> EventType {
        self.kind
    }

    /// The key.
    pub fn key_id(&self) -> &KeyId {
        &self.key_id
    }

    /// Who acted, or `None` for the application (and for events of the request path).
    pub fn actor(&self) -> Option<&ActorName> {
        self.actor.as_ref()
    }

    /// When it happened.
    pub fn at(&self) -> SystemTime {
        self.at
    }

    /// The detail.
    pub fn detail(&self) -> &EventDetail {
        &self.detail
    }

    /// This event told of `heir`, a key revoked together with this event's key because
    /// it was minted from it by self-rotation (DESIGN §10): the same type, actor, time
    /// and detail, about `heir`, with `detail.related_key_id` naming this event's key.
    /// What [`KeyStoreAdmin::revoke_with_heirs`](crate::KeyStoreAdmin::revoke_with_heirs)
    /// stores for each heir.
    pub fn for_heir(&self, heir: KeyId) -> NewEvent {
        let mut event = self.clone();
        event.detail.related_key_id = Some(self.key_id);
        event.key_id = heir;
        event
    }

    /// The event as stored with `id`: for [`EventStore`] implementations.
    pub fn stored(self, id: EventId) -> KeyEvent {
        KeyEvent {
            id,
            event: self,
            tenant: None,
        }
    }
}

/// A stored event: a [`NewEvent`] and its [`EventId`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyEvent {
    id: EventId,
    event: NewEvent,
    tenant: Option<TenantId>,
}

impl KeyEvent {
    /// The id.
    pub fn id(&self) -> EventId {
        self.id
    }

    /// The type.
    pub fn kind(&self) -> EventType {
        self.event.kind
    }

    /// The key.
    pub fn key_id(&self) -> &KeyId {
        &self.event.key_id
    }

    /// Who acted, or `None` for the application (and for events of the request path).
    pub fn actor(&self) -> Option<&ActorName> {
        self.event.actor.as_ref()
    }

    /// When it happened (the application's clock).
    pub fn at(&self) -> SystemTime {
        self.event.at
    }

    /// The detail.
    pub fn detail(&self) -> &EventDetail {
        &self.event.detail
    }

    /// The tenant of the event's key (DESIGN §14), as the store found it when it stored
    /// the event; `None` for a key of the application itself.
    pub fn tenant(&self) -> Option<&TenantId> {
        self.tenant.as_ref()
    }

    /// The event, of a key of `tenant`: for [`EventStore`] implementations, which set the
    /// tenant of the event's key as they store it (so that every writer of events, the
    /// request path's included, need not know it).
    pub fn with_tenant(mut self, tenant: Option<TenantId>) -> Self {
        self.tenant = tenant;
        self
    }
}

/// Which events to read: optionally one key's, `limit` of them, newest first, after a
/// cursor from an earlier page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventQuery {
    key_id: Option<KeyId>,
    tenant: Option<TenantId>,
    limit: PageLimit,
    before: Option<EventId>,
}

impl EventQuery {
    /// Every key's events, the default page size, from the newest.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only the events of `id`.
    pub fn key(mut self, id: KeyId) -> Self {
        self.key_id = Some(id);
        self
    }

    /// Only the events of `tenant`'s keys (DESIGN §14). A manager acting for a tenant's
    /// actor sets this from the actor, whatever was asked.
    pub fn with_tenant(mut self, tenant: TenantId) -> Self {
        self.tenant = Some(tenant);
        self
    }

    /// At most `limit` events.
    pub fn with_limit(mut self, limit: PageLimit) -> Self {
        self.limit = limit;
        self
    }

    /// The page after the one that gave `cursor` ([`Page::next`]).
    ///
    /// # Errors
    ///
    /// [`PageError::Cursor`] if `cursor` is not one an event page gave.
    pub fn after(mut self, cursor: &PageCursor) -> Result<Self, PageError> {
        let mut fields = cursor.fields();
        let id = match (fields.next(), fields.next()) {
            (Some(n), None) => n.parse::<u64>().map_err(|_| PageError::Cursor)?,
            _ => return Err(PageError::Cursor),
        };
        self.before = Some(EventId(id));
        Ok(self)
    }

    /// The key whose events are asked for, if one.
    pub fn key_id(&self) -> Option<&KeyId> {
        self.key_id.as_ref()
    }

    /// The tenant whose events are asked for, if one.
    pub fn tenant(&self) -> Option<&TenantId> {
        self.tenant.as_ref()
    }

    /// The page size.
    pub fn limit(&self) -> PageLimit {
        self.limit
    }

    #[deprecated(note = "use EventQuery::limit")]
    #[doc(hidden)]
    pub fn page_limit(&self) -> PageLimit {
        self.limit
    }

    /// Only events with an id below this one (the cursor's position), if given.
    pub fn before(&self) -> Option<EventId> {
        self.before
    }

    /// Whether `event` is one this query asks for (its key, its tenant, and before the
    /// cursor).
    pub fn matches(&self, event: &KeyEvent) -> bool {
        self.key_id.is_none_or(|id| *event.key_id() == id)
            && self
                .tenant
                .as_ref()
                .is_none_or(|t| event.tenant() == Some(t))
            && self.before.is_none_or(|before| event.id() < before)
    }

    /// A page of `newest_first` (already filtered by [`matches`](Self::matches)), with
    /// the cursor of the next page when there are more.
    pub fn page(&self, newest_first: impl IntoIterator<Item = KeyEvent>) -> Page<KeyEvent> {
        Page::from_sorted(newest_first, self.limit, |last| Ok(last.id().cursor()))
            .expect("an event id is always a valid cursor")
    }
}

/// Where events are kept: an optional capability of a key store, like
/// `KeyIdFeed` (feature `cache`). Both shipped stores implement it.
#[async_trait]
pub trait EventStore: fmt::Debug + Send + Sync + 'static {
    /// Stores `event` with the next id and returns it as stored.
    ///
    /// An `expiring` event is stored at most once per key and `detail.days`, however
    /// many instances try: the second and later attempts store nothing and return
    /// `Ok(None)`, so that only the instance whose insert took forwards it to the sink.
    async fn record_event(&self, event: &NewEvent) -> Result<Option<KeyEvent>, StoreError>;

    /// A page of events, newest first, as `query` asks.
    async fn events(&self, query: &EventQuery) -> Result<Page<KeyEvent>, StoreError>;

    /// Deletes events older than `before`. Returns how many were deleted. (A store's
    /// usage counts are pruned apart, through
    /// [`UsageCounts::prune_usage`](crate::usage::UsageCounts::prune_usage).)
    async fn prune_events(&self, before: SystemTime) -> Result<u64, StoreError>;
}

#[async_trait]
impl<T: EventStore + ?Sized> EventStore for Arc<T> {
    async fn record_event(&self, event: &NewEvent) -> Result<Option<KeyEvent>, StoreError> {
        (**self).record_event(event).await
    }

    async fn events(&self, query: &EventQuery) -> Result<Page<KeyEvent>, StoreError> {
        (**self).events(query).await
    }

    async fn prune_events(&self, before: SystemTime) -> Result<u64, StoreError> {
        (**self).prune_events(before).await
    }
}

/// Why a sink could not take an event. [`EventLog::run`](crate::event::EventLog::run) logs it (at most once a
/// minute, with how many were suppressed) and goes on with the next event: the event
/// is still in the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EventSinkError {
    /// The sink's backend failed.
    #[error("the event sink failed: {0}")]
    Sink(#[source] BoxError),
    /// The sink did not answer in time.
    #[error("the event sink did not answer within {0:?}")]
    Timeout(Duration),
}

impl EventSinkError {
    /// Wraps a backend error as [`EventSinkError::Sink`].
    pub fn sink(error: impl Into<BoxError>) -> Self {
        Self::Sink(error.into())
    }
}

/// Where events are forwarded: chat, e-mail, a SIEM. Called from [`EventLog::run`](crate::event::EventLog::run),
/// one event at a time in the order they were stored, never from a request or a
/// management call.
#[async_trait]
pub trait EventSink: fmt::Debug + Send + Sync + 'static {
    /// Forwards one event.
    async fn deliver(&self, event: &KeyEvent) -> Result<(), EventSinkError>;
}

#[async_trait]
impl<T: EventSink + ?Sized> EventSink for Arc<T> {
    async fn deliver(&self, event: &KeyEvent) -> Result<(), EventSinkError> {
        (**self).deliver(event).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::{KeyPrefix, PlaintextKey};

    #[test]
    fn types_round_trip_through_their_names() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(t));
        }
        assert_eq!(EventType::parse("deleted"), None);
    }

    #[test]
    fn a_cursor_names_the_last_event_and_nothing_else_is_accepted() {
        let query = EventQuery::new().after(&EventId(42).cursor()).unwrap();
        assert_eq!(query.before(), Some(EventId(42)));
        for bad in ["x", "1.2", "-3"] {
            let cursor = PageCursor::parse(bad).unwrap();
            assert_eq!(EventQuery::new().after(&cursor), Err(PageError::Cursor));
        }
    }

    #[test]
    fn a_query_pages_newest_first_and_names_the_next_page() {
        let id = *PlaintextKey::generate(&KeyPrefix::default()).id();
        let events: Vec<KeyEvent> = (1..=5)
            .rev()
            .map(|n| {
                NewEvent::new(EventType::Created, id, SystemTime::UNIX_EPOCH).stored(EventId(n))
            })
            .collect();
        let query = EventQuery::new().with_limit(PageLimit::new(2).unwrap());
        let page = query.page(events.iter().filter(|e| query.matches(e)).cloned());
        assert_eq!(page.items.len(), 2);
        let next = query.clone().after(page.next.as_ref().unwrap()).unwrap();
        let ids: Vec<u64> = next
            .page(events.iter().filter(|e| next.matches(e)).cloned())
            .items
            .iter()
            .map(|e| e.id().get())
            .collect();
        assert_eq!(ids, [3, 2]);
    }
}
