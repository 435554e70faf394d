//! 0.1's ways to configure and run a manager, kept as hidden wrappers of the builder,
//! the layer and the background so that 0.1 code still compiles (CHANGELOG, 0.2.0).

use std::future::Future;
use std::sync::Arc;

use crate::clock::Clock;
use crate::event::EventLog;
use crate::key::KeyPrefix;
use crate::manager::{KeyManager, ScopeCatalogue};
use crate::middleware::layer::ApiKeyV2Layer;
use crate::store::KeyStoreAdmin;
use crate::usage::UsageTracker;

impl<S: KeyStoreAdmin + Clone> KeyManager<S> {
    /// 0.1: [`KeyManagerBuilder::clock`](crate::KeyManagerBuilder::clock).
    #[deprecated(note = "use KeyManager::builder(store).clock(clock).build()")]
    #[doc(hidden)]
    pub fn with_clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self.rewire();
        self
    }

    /// 0.1: [`KeyManagerBuilder::events`](crate::KeyManagerBuilder::events). The
    /// manager's tracker is built again, to record `first_used` there too.
    #[deprecated(note = "use KeyManager::builder(store).events(events).build()")]
    #[doc(hidden)]
    pub fn with_events(mut self, events: EventLog) -> Self {
        self.events = Some(events);
        self.rewire();
        self
    }

    /// 0.1: the manager's layers, background and shutdown use `tracker` instead of the
    /// manager's own, and the application says that `tracker` writes the store (so
    /// `until_first_use` rotations are allowed).
    #[deprecated(
        note = "the manager builds its own tracker: use manager.tracker(), or KeyManager::builder(store).usage_sink(sink)"
    )]
    #[doc(hidden)]
    pub fn with_usage_tracker(mut self, tracker: UsageTracker) -> Self {
        self.tracker = tracker;
        self.tracker_given = true;
        self.tracker_writes_store = true;
        self.rewire();
        self
    }

    /// 0.1: [`KeyManagerBuilder::prefix`](crate::KeyManagerBuilder::prefix).
    #[deprecated(note = "use KeyManager::builder(store).prefix(prefix).build()")]
    #[doc(hidden)]
    pub fn with_prefix(mut self, prefix: KeyPrefix) -> Self {
        self.prefix = prefix;
        self.rewire();
        self
    }

    /// 0.1: [`KeyManagerBuilder::catalogue`](crate::KeyManagerBuilder::catalogue).
    #[deprecated(note = "use KeyManager::builder(store).catalogue(catalogue).build()")]
    #[doc(hidden)]
    pub fn with_catalogue(mut self, catalogue: ScopeCatalogue) -> Self {
        self.catalogue = Some(catalogue);
        self
    }

    /// 0.1: the layer and the tracker behind it, whose loop the application ran. Now
    /// [`layer`](Self::layer) records uses itself and [`background`](Self::background)
    /// runs the loop; this returns the layer and the manager's tracker.
    #[deprecated(note = "use KeyManager::layer, which records last-used times, with \
                tokio::spawn(manager.background()) and manager.shutdown()")]
    #[doc(hidden)]
    pub fn layer_with_tracker(&self) -> (ApiKeyV2Layer, UsageTracker) {
        (self.layer(), self.tracker.clone())
    }

    /// 0.1: the expiring pass and pruning alone, until `stop`. Now part of
    /// [`background`](Self::background), stopped by [`shutdown`](Self::shutdown).
    #[deprecated(
        note = "use tokio::spawn(manager.background()), which runs the expiring pass, \
                and manager.shutdown()"
    )]
    #[doc(hidden)]
    pub fn watch_expiring(
        &self,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> impl Future<Output = ()> + Send + 'static {
        let manager = self.clone();
        async move {
            let Some(events) = manager.events.clone() else {
                tracing::warn!(
                    "watch_expiring needs events (KeyManager::builder(..).events(..)); it does nothing"
                );
                return;
            };
            manager.expiring_passes(&events, stop).await;
        }
    }
}
