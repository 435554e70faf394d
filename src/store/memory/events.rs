//! The in-memory store's events: a bounded ring, and a bounded history per key.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};
use std::time::SystemTime;

use async_trait::async_trait;

use crate::error::StoreError;
use crate::event::{EXPIRING_DAYS, EventId, EventQuery, EventStore, EventType, KeyEvent, NewEvent};
use crate::key::KeyId;
use crate::page::Page;
use crate::record::TenantId;
use crate::store::memory::InMemoryKeyStore;

/// The most recent events kept for all keys together.
pub(crate) const MAX_EVENTS: usize = 100_000;
/// The most recent events kept for each key, so that a key's history survives a flood
/// of other keys' events.
pub(crate) const MAX_EVENTS_PER_KEY: usize = 256;

/// Events in memory. One lock: events are written by management calls and flushes,
/// never by requests.
#[derive(Default)]
pub(super) struct Events(Mutex<Ring>);

#[derive(Default)]
struct Ring {
    next: u64,
    all: VecDeque<KeyEvent>,
    by_key: HashMap<KeyId, VecDeque<KeyEvent>, foldhash::fast::RandomState>,
    /// For each key, the `expiring` thresholds already recorded (bit i: `EXPIRING_DAYS[i]`),
    /// kept apart from the histories so that a threshold fires once even after its
    /// event left them. One byte per key that ever neared its end.
    expiring: HashMap<KeyId, u8, foldhash::fast::RandomState>,
}

impl Events {
    fn ring(&self) -> std::sync::MutexGuard<'_, Ring> {
        // Every update below leaves the ring consistent before it can panic.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stores `events` in order, under one lock. The store's key changes call this
    /// while they hold the write lock, so that a change and its events are made in
    /// one step that no await point, and so no cancelled caller, can split.
    /// `tenant_of` reads the tenant of an event's key, which each stored event carries.
    pub(super) fn push_all<'a>(
        &self,
        events: impl IntoIterator<Item = &'a NewEvent>,
        tenant_of: impl Fn(&KeyId) -> Option<TenantId>,
    ) -> Vec<KeyEvent> {
        let mut ring = self.ring();
        events
            .into_iter()
            .filter_map(|event| ring.push(event, tenant_of(event.key_id())))
            .collect()
    }
}

impl Ring {
    /// Stores `event` with the next id; `None` for an `expiring` threshold already
    /// stored for its key.
    fn push(&mut self, event: &NewEvent, tenant: Option<TenantId>) -> Option<KeyEvent> {
        if event.kind() == EventType::Expiring {
            let bit = event
                .detail()
                .days
                .and_then(|days| EXPIRING_DAYS.iter().position(|&d| d == days))
                .map_or(0x80, |i| 1u8 << i);
            let fired = self.expiring.entry(*event.key_id()).or_default();
            if *fired & bit != 0 {
                return None;
            }
            *fired |= bit;
        }
        self.next += 1;
        let stored = event
            .clone()
            .stored(EventId::new(self.next))
            .with_tenant(tenant);
        if self.all.len() == MAX_EVENTS {
            self.all.pop_front();
        }
        self.all.push_back(stored.clone());
        let history = self.by_key.entry(*event.key_id()).or_default();
        if history.len() == MAX_EVENTS_PER_KEY {
            history.pop_front();
        }
        history.push_back(stored.clone());
        Some(stored)
    }
}

#[async_trait]
impl EventStore for InMemoryKeyStore {
    /// Keeps the 100 000 most recent events, and for each key its
    /// 256 most recent ones, whichever holds longer.
    async fn record_event(&self, event: &NewEvent) -> Result<Option<KeyEvent>, StoreError> {
        let tenant = self.tenant_of(event.key_id());
        Ok(self.inner.events.ring().push(event, tenant))
    }

    /// Under the write lock as well, so that a page never shows a key change's events
    /// half-stored: a reader that saw a change (lookups take no lock) finds its events.
    async fn events(&self, query: &EventQuery) -> Result<Page<KeyEvent>, StoreError> {
        let _writes = self.write_lock();
        let ring = self.inner.events.ring();
        let newest_first = |events: &VecDeque<KeyEvent>| {
            query.page(events.iter().rev().filter(|e| query.matches(e)).cloned())
        };
        Ok(match query.key_id() {
            None => newest_first(&ring.all),
            Some(id) => {
                // The key's own history, topped up from the ring where it holds older ones.
                let own = ring.by_key.get(id);
                let oldest_own = own.and_then(|h| h.front()).map(KeyEvent::id);
                let older = ring
                    .all
                    .iter()
                    .rev()
                    .filter(|e| e.key_id() == id && oldest_own.is_some_and(|o| e.id() < o));
                let chain: Vec<KeyEvent> = own
                    .into_iter()
                    .flat_map(|h| h.iter().rev())
                    .chain(older)
                    .filter(|e| query.matches(e))
                    .cloned()
                    .collect();
                query.page(chain)
            }
        })
    }

    async fn prune_events(&self, before: SystemTime) -> Result<u64, StoreError> {
        let mut ring = self.inner.events.ring();
        let was = ring.all.len();
        ring.all.retain(|e| e.at() >= before);
        let pruned = (was - ring.all.len()) as u64;
        ring.by_key.retain(|_, history| {
            history.retain(|e| e.at() >= before);
            !history.is_empty()
        });
        Ok(pruned)
    }
}
