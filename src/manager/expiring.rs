//! The `expiring` pass: keys within 30, 7 and 1 days of their end, once each.

use std::future::Future;
use std::pin::pin;
use std::time::Duration;

use futures_util::future::{Either, select};

use crate::event::{EXPIRING_DAYS, EventDetail, EventType, NewEvent};
use crate::manager::{KeyManager, ManagerError};
use crate::record::KeyState;
use crate::store::KeyStoreAdmin;

const DAY: Duration = Duration::from_secs(24 * 60 * 60);

impl<S: KeyStoreAdmin + Clone> KeyManager<S> {
    /// One pass: records `expiring` for every active key whose end (its expiry, or a
    /// rotation's earlier end) is within 30, 7 or 1 days, the tightest threshold it has
    /// reached, once per key and threshold. Returns how many events this call stored.
    ///
    /// A key created with less than 30 days to live gets the tightest threshold it is
    /// within, not every wider one at once. With several instances on one database each
    /// threshold is stored once, and only the instance whose insert took forwards it to
    /// the sink. Without [`with_events`](Self::with_events) the pass does nothing.
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

    /// The background pass the application spawns: every
    /// [`EventLogBuilder::expiring_every`](crate::event::EventLogBuilder::expiring_every)
    /// (default hourly), [`warn_expiring`](Self::warn_expiring), then prunes events and
    /// usage counts past the log's retention. Ends when `stop` completes; dropping it
    /// leaves nothing behind.
    ///
    /// ```no_run
    /// # async fn run(manager: tower_apikey::KeyManager<tower_apikey::InMemoryKeyStore>) {
    /// let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    /// let pass = tokio::spawn(manager.watch_expiring(async { let _ = stopped.await; }));
    /// // … serve …
    /// let _ = stop.send(());
    /// pass.await.unwrap();
    /// # }
    /// ```
    pub fn watch_expiring(
        &self,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> impl Future<Output = ()> + Send + 'static {
        let manager = self.clone();
        async move {
            let Some(events) = manager.events.clone() else {
                tracing::warn!("watch_expiring needs KeyManager::with_events; it does nothing");
                return;
            };
            let mut stop = pin!(stop);
            loop {
                if let Err(error) = manager.warn_expiring().await {
                    tracing::warn!(%error, "the expiring pass could not list keys; it will retry");
                }
                if let Err(error) = events.prune(manager.clock.now()).await {
                    tracing::warn!(%error, "pruning old events failed; it will retry");
                }
                let tick = pin!(tokio::time::sleep(events.expiring_every()));
                if let Either::Right(_) = select(tick, stop.as_mut()).await {
                    break;
                }
            }
        }
    }
}
