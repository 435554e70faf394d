//! The `expiring` pass: keys within 30, 7 and 1 days of their end, once each.

use std::time::Duration;

use crate::event::{EXPIRING_DAYS, EventDetail, EventType, NewEvent};
use crate::manager::{KeyManager, ManagerError};
use crate::record::KeyState;
use crate::store::KeyStoreAdmin;

const DAY: Duration = Duration::from_secs(24 * 60 * 60);

impl<S: KeyStoreAdmin> KeyManager<S> {
    /// One pass: records `expiring` for every active key whose end (its expiry, or a
    /// rotation's earlier end) is within 30, 7 or 1 days, the tightest threshold it has
    /// reached, once per key and threshold. Returns how many events this call stored.
    ///
    /// A key created with less than 30 days to live gets the tightest threshold it is
    /// within, not every wider one at once. With several instances on one database each
    /// threshold is stored once, and only the instance whose insert took forwards it to
    /// the sink. Without [events](crate::KeyManagerBuilder::events) the pass does
    /// nothing. The [background](Self::background) runs it hourly (see
    /// [`EventLogBuilder::expiring_every`](crate::event::EventLogBuilder::expiring_every)).
    ///
    /// # Errors
    ///
    /// The store's error, if it could not list the keys; a failed event insert is
    /// logged and the pass goes on.
    pub async fn warn_expiring(&self) -> Result<usize, ManagerError> {
        let Some(events) = &self.events else {
            return Ok(0);
        };
        let now = self.clock.now();
        let mut stored = 0;
        for record in self.store.list().await? {
            if record.state_at(now) != KeyState::Active {
                continue;
            }
            let end = record.stops_at();
            let left = end.duration_since(now).unwrap_or_default();
            let Some(days) = EXPIRING_DAYS.iter().rev().find(|&&days| left <= DAY * days) else {
                continue;
            };
            let event = NewEvent::new(EventType::Expiring, *record.id(), now).with_detail(
                EventDetail::default()
                    .with_days(Some(*days))
                    .with_ends_at(Some(end)),
            );
            if let Ok(Some(_)) = events.emit(event).await {
                stored += 1;
            }
        }
        Ok(stored)
    }
}
