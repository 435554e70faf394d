//! The manager's part of the audit trail: its clock and log, and the events it hands
//! the store with each change (DESIGN §10), built by [`change_events`](super::change_events).

use crate::event::{EventLog, KeyEvent, NewEvent};
use crate::manager::KeyManager;
use crate::store::KeyStoreAdmin;

impl<S: KeyStoreAdmin> KeyManager<S> {
    /// This manager's clock (the system clock unless the builder's
    /// [`clock`](crate::KeyManagerBuilder::clock) gave another): what "now" and "today"
    /// are for an admin API's views, as for the manager's own checks.
    pub fn clock(&self) -> &dyn crate::Clock {
        self.clock.as_ref()
    }

    /// The event log, if the application gave one
    /// ([`KeyManagerBuilder::events`](crate::KeyManagerBuilder::events)).
    pub fn events(&self) -> Option<&EventLog> {
        self.events.as_ref()
    }

    /// The events to store with a change: those `make` builds when this manager keeps
    /// an audit trail, none otherwise.
    pub(super) fn audit(&self, make: impl FnOnce() -> Vec<NewEvent>) -> Vec<NewEvent> {
        if self.events.is_some() {
            make()
        } else {
            Vec::new()
        }
    }

    /// Queues events the store stored with a change for the sink.
    pub(super) fn forward(&self, stored: &[KeyEvent]) {
        if let Some(events) = &self.events {
            events.forward(stored);
        }
    }
}
