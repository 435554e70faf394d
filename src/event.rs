//! The audit trail (DESIGN §10): what happened to each key, kept by the store and handed
//! to an [`EventSink`].
//!
//! - [`KeyEvent`]: one thing that happened to a key, of an [`EventType`]: `created`,
//!   `rotated`, `revoked`, `first_used`, `expiring` (30, 7 and 1 days before the key's
//!   end, once each), `ended_key_used` (a proven attempt with a key after it was
//!   revoked or ended by rotation) and `changed` (name, limits or addresses). An event names the key by id and the actor by name;
//!   it never holds a key or its digest.
//! - [`EventStore`]: where events are kept and paged, newest first. Both shipped stores
//!   implement it: [`InMemoryKeyStore`](crate::InMemoryKeyStore) keeps a bounded ring,
//!   `tower_apikey_postgres::PgKeyStore` a table with a retention.
//! - [`EventSink`]: where events are forwarded (chat, e-mail, a SIEM); the default,
//!   [`TracingEventSink`], logs them.
//! - [`EventLog`]: ties a store and a sink together. Given to a manager
//!   ([`KeyManagerBuilder::events`]), it records `created`, `rotated`, `revoked` and
//!   `changed` with each change, `first_used` and `ended_key_used` with the usage flush
//!   of the request path's debounce, and `expiring` from the manager's
//!   [background](crate::KeyManager::background) pass.
//!
//! A change and its events are stored together, in one write of the store (one
//! transaction in PostgreSQL, one lock in memory): a key change, a first use, the end a
//! first use sets. A request cancelled halfway leaves both or neither, and if the
//! events cannot be stored the change fails with them. So the log's store must be the
//! store the manager and the tracker write.
//!
//! A slow or failing sink never slows a request or a management call: events reach it
//! through a bounded queue that the manager's [background](crate::KeyManager::background)
//! drains ([`EventLog::run`]), and its [shutdown](crate::KeyManager::shutdown) empties. A full queue drops events for the sink (they stay in the store) and counts
//! them in [`EventLogStats::dropped`](crate::event::EventLogStats::dropped).
//!
//! ```
//! use tower_apikey::{InMemoryKeyStore, KeyManager, NewKey};
//! use tower_apikey::event::EventLog;
//! use tower_apikey::event::{EventQuery, EventType};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! let store = InMemoryKeyStore::new();
//! let events = EventLog::new(store.clone());
//! let manager = KeyManager::builder(store).events(events.clone()).build();
//! let running = tokio::spawn(manager.background()); // the sink's queue, among others
//!
//! let created = manager.create(NewKey::new("billing", ["reports:read"])).await?;
//! manager.revoke(created.record.id()).await?;
//!
//! let page = events.events(&EventQuery::default()).await?;
//! let types: Vec<EventType> = page.items.iter().map(|e| e.kind()).collect();
//! assert_eq!(types, [EventType::Revoked, EventType::Created]); // newest first
//!
//! manager.shutdown().await?; // hands the sink what is queued, then the loops end
//! running.await.unwrap();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
//!
//! [`KeyManagerBuilder::events`]: crate::KeyManagerBuilder::events

mod key_event;
pub(crate) mod log;
mod tracing_sink;

use std::time::Duration;

pub use key_event::{
    EventDetail, EventId, EventQuery, EventSink, EventSinkError, EventStore, EventType, KeyEvent,
    NewEvent,
};
pub use log::{
    DEFAULT_EVENT_QUEUE, DEFAULT_EXPIRING_EVERY, EventLog, EventLogBuilder, EventLogStats,
};
pub use tracing_sink::TracingEventSink;

/// How long stores keep events and usage counts by default: 400 days, longer than a
/// key can live, so a key's whole history outlives it by a month.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(400 * 24 * 60 * 60);

/// The shortest retention an [`EventLog`] keeps: 31 days. The stored `expiring` event
/// is what keeps the pass from firing it again (across instances too), and the first
/// one comes 30 days before a key's end: kept any shorter, it would be pruned while the
/// key still lives, and fire a second time.
pub const MIN_RETENTION: Duration = Duration::from_secs(31 * 24 * 60 * 60);

/// The days before a key's end at which `expiring` fires, once each.
pub const EXPIRING_DAYS: [u32; 3] = [30, 7, 1];
