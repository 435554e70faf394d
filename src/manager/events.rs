//! The manager's part of the audit trail: `created`, `rotated` and `revoked`.

use crate::event::{EventDetail, EventLog, EventType, NewEvent};
use crate::manager::KeyManager;
use crate::record::{ActorName, KeyRecord};
use crate::store::{KeyStoreAdmin, OldKeyEnd};

impl<S: KeyStoreAdmin> KeyManager<S> {
    /// Records `created`, `rotated` and `revoked` in `events`, with the acting
    /// [`Actor`](crate::Actor) (none when the application acts), and makes
    /// [`watch_expiring`](Self::watch_expiring) possible.
    ///
    /// An event is stored after the change it describes, in the same call; if the store
    /// cannot take it, the change stands, the failure is logged, and the call succeeds.
    /// The sink never delays the call (see [`EventLog`]).
    pub fn with_events(mut self, events: EventLog) -> Self {
        self.events = Some(events);
        self
    }

    /// Now, on this manager's clock: what "today" is for usage counts over HTTP.
    // Only the admin router calls this.
    #[cfg(feature = "admin")]
    pub(crate) fn now_for_views(&self) -> std::time::SystemTime {
        self.clock.now()
    }

    /// The event log, if the application gave one.
    pub fn events(&self) -> Option<&EventLog> {
        self.events.as_ref()
    }

    async fn emit(&self, event: NewEvent) {
        if let Some(events) = &self.events {
            // Logged and counted by the log; the key change itself succeeded.
            let _ = events.emit(event).await;
        }
    }

    pub(super) async fn record_created(&self, record: &KeyRecord) {
        let detail = EventDetail::default().with_related_key_id(record.rotated_from().copied());
        self.emit(
            NewEvent::new(EventType::Created, *record.id(), record.created_at())
                .with_actor(record.created_by().cloned())
                .with_detail(detail),
        )
        .await;
    }

    pub(super) async fn record_revoked(&self, record: &KeyRecord) {
        let at = record.revoked_at().unwrap_or_else(|| record.created_at());
        self.emit(
            NewEvent::new(EventType::Revoked, *record.id(), at)
                .with_actor(record.revoked_by().cloned()),
        )
        .await;
    }

    /// A change of name, limits or addresses, by `actor`, at this manager's time.
    pub(super) async fn record_changed(&self, record: &KeyRecord, actor: Option<ActorName>) {
        self.emit(NewEvent::new(EventType::Changed, *record.id(), self.now()).with_actor(actor))
            .await;
    }

    /// `old` as the rotation left it, `new` the successor.
    pub(super) async fn record_rotated(&self, old: &KeyRecord, new: &KeyRecord, end: OldKeyEnd) {
        self.record_created(new).await;
        let ends_at = match end {
            OldKeyEnd::EndAt(_) => old.ends_at(),
            _ => None,
        };
        let detail = EventDetail::default()
            .with_related_key_id(Some(*new.id()))
            .with_ends_at(ends_at);
        self.emit(
            NewEvent::new(EventType::Rotated, *old.id(), new.created_at())
                .with_actor(new.created_by().cloned())
                .with_detail(detail),
        )
        .await;
        if let OldKeyEnd::Revoke(_) = end {
            self.record_revoked(old).await;
        }
    }
}
