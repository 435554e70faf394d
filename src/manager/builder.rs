//! [`KeyManagerBuilder`]: the one value that owns the configuration (DESIGN §4).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::run::Run;
use crate::clock::{Clock, SystemClock};
use crate::event::EventLog;
use crate::key::KeyPrefix;
use crate::limits::shared_limits::SharedLimits;
use crate::manager::{KeyManager, ScopeCatalogue};
use crate::store::KeyStoreAdmin;
#[cfg(feature = "cache")]
use crate::store::feed_listener::KeyFeedListener;
use crate::usage::UsageSink;

/// How often the manager's tracker writes last-used times and usage counts by default:
/// every five minutes.
const DEFAULT_USAGE_FLUSH: Duration = Duration::from_secs(300);

/// Configures a [`KeyManager`]: the store, and what runs beside it. Start one with
/// [`KeyManager::builder`], end it with [`build`](Self::build).
///
/// ```
/// use std::time::Duration;
/// use tower_apikey::{InMemoryKeyStore, KeyManager};
/// use tower_apikey::event::EventLog;
/// use tower_apikey::manager::ScopeCatalogue;
///
/// let store = InMemoryKeyStore::new();
/// let manager = KeyManager::builder(store.clone())
///     .catalogue(ScopeCatalogue::new([("reports:read", "Read reports")])?)
///     .events(EventLog::new(store)) // the audit trail, and the expiring pass
///     .usage_flush_period(Duration::from_secs(60))
///     .build();
/// // `manager.layer()` checks keys and records their use; `manager.background()` runs
/// // every loop; `manager.shutdown()` writes what is pending.
/// # drop(manager);
/// # Ok::<(), tower_apikey::manager::CatalogueError>(())
/// ```
///
/// What the built manager runs beside the store, each only when configured except the
/// first:
///
/// | what | set with | loop in [`background`](KeyManager::background) | written or stopped by [`shutdown`](KeyManager::shutdown) |
/// |---|---|---|---|
/// | last-used times and usage counts | always (the store, or [`usage_sink`](Self::usage_sink)); [`usage_flush_period`](Self::usage_flush_period) | the usage flush | the last times and counts, in one write |
/// | the audit trail | [`events`](Self::events) | the sink's queue; the expiring pass and pruning | the events still queued |
/// | limits shared with other instances | [`shared_limits`](Self::shared_limits) | lease refills and heartbeats | unspent tokens given back |
/// | the cache's feed (feature `cache`) | `feed_listener` | the feed listener | the listener stops |
///
/// # Last-used times always go somewhere
///
/// The manager's [layer](KeyManager::layer) records every proven use, and the manager
/// writes them to its usage sink: by default the store itself, which is why
/// [`build`](Self::build) needs the store to be a [`UsageSink`] (every store this
/// crate ships is). For a store of your own that is not, say where last-used times go
/// with [`usage_sink`](Self::usage_sink); until then `build` does not compile, so that no
/// manager's layer silently loses them (one of the seed's four promises).
#[must_use = "call `build` to make the manager"]
pub struct KeyManagerBuilder<S, U = S> {
    store: S,
    usage: U,
    /// Whether `usage` is the store (no [`usage_sink`](Self::usage_sink) call), so that
    /// the store sees each key's first use.
    usage_is_store: bool,
    clock: Arc<dyn Clock>,
    prefix: KeyPrefix,
    catalogue: Option<ScopeCatalogue>,
    events: Option<EventLog>,
    limits: Option<SharedLimits>,
    usage_flush: Duration,
    #[cfg(feature = "cache")]
    feed: Option<KeyFeedListener>,
}

impl<S: KeyStoreAdmin + Clone> KeyManager<S> {
    /// Starts configuring a manager over `store`: with the system clock, prefix `mkc`,
    /// no scope catalogue, no audit trail, limits kept per instance, and last-used times
    /// written to `store` every five minutes. See [`KeyManagerBuilder`].
    pub fn builder(store: S) -> KeyManagerBuilder<S> {
        KeyManagerBuilder {
            usage: store.clone(),
            store,
            usage_is_store: true,
            clock: Arc::new(SystemClock),
            prefix: KeyPrefix::default(),
            catalogue: None,
            events: None,
            limits: None,
            usage_flush: DEFAULT_USAGE_FLUSH,
            #[cfg(feature = "cache")]
            feed: None,
        }
    }
}

impl<S, U> KeyManagerBuilder<S, U> {
    /// Uses `clock` for creation, expiry and revocation times, and in the manager's
    /// layers (default: the system clock).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Issues keys with `prefix` (default `mkc`); the manager's layers accept only it.
    pub fn prefix(mut self, prefix: KeyPrefix) -> Self {
        self.prefix = prefix;
        self
    }

    /// Declares the scopes that exist: create then refuses any other with
    /// [`ManagerError::UndeclaredScopes`](crate::ManagerError::UndeclaredScopes),
    /// whoever acts. Rotation keeps a key's scopes as they are, even ones the catalogue
    /// does not declare.
    pub fn catalogue(mut self, catalogue: ScopeCatalogue) -> Self {
        self.catalogue = Some(catalogue);
        self
    }

    /// Keeps an audit trail in `events`: `created`, `rotated`, `revoked` and `changed`
    /// with each change, `first_used` and `ended_key_used` with the usage flush, and
    /// `expiring` from the background's hourly pass, which also prunes events and usage
    /// counts past the log's retention.
    ///
    /// Each change is stored together with its events, in one write of the manager's
    /// store (PostgreSQL: one transaction; memory: under one lock), so that no change
    /// is ever kept without its event: if the store cannot keep the events, the change
    /// fails with the store's error and nothing is changed, and a caller that gives up
    /// halfway (a cancelled request) leaves both or neither. `events` must therefore keep
    /// its events in the manager's store (`EventLog::new(store.clone())`), where
    /// [`EventLog::events`] reads them back; a store that cannot store events with its
    /// changes refuses them ([`StoreError::Unsupported`](crate::StoreError::Unsupported)).
    /// After the write, the events are queued for the sink, which never delays the call:
    /// the background delivers them (see [`EventLog`]).
    pub fn events(mut self, events: EventLog) -> Self {
        self.events = Some(events);
        self
    }

    /// Shares the per-key limits of the manager's layers with other instances through
    /// `limits` (see [`SharedLimits`]): the background takes the leases, and shutdown
    /// gives back the tokens left unspent. Without it, each process keeps its own
    /// limits, shared by every layer of this manager.
    ///
    /// Configure `limits` first: its builder methods panic once it is given here.
    pub fn shared_limits(mut self, limits: SharedLimits) -> Self {
        self.limits = Some(limits);
        self
    }

    /// Keeps a cache in step with other instances through `listener` (feature
    /// `cache`; `CachedKeyStore::feed_listener` makes one for the cache in front of a
    /// store with a feed): the background follows the feed, and shutdown stops it.
    #[cfg(feature = "cache")]
    #[cfg_attr(docsrs, doc(cfg(feature = "cache")))]
    pub fn feed_listener(mut self, listener: KeyFeedListener) -> Self {
        self.feed = Some(listener);
        self
    }

    /// How often the background writes last-used times and usage counts (default five
    /// minutes): at most one write per key per period, whatever the traffic.
    ///
    /// # Panics
    ///
    /// If `period` is zero or longer than a day, as
    /// [`UsageTrackerBuilder::period`](crate::usage::UsageTrackerBuilder::period).
    pub fn usage_flush_period(mut self, period: Duration) -> Self {
        assert!(
            !period.is_zero() && period <= Duration::from_secs(86_400),
            "the usage flush period must be more than zero and at most a day"
        );
        self.usage_flush = period;
        self
    }

    /// Writes last-used times and usage counts to `sink` instead of the store: for a
    /// store that is not a [`UsageSink`] itself. Then the store never sees a key's first
    /// use, so [`rotate_until_first_use`](KeyManager::rotate_until_first_use) is refused
    /// ([`ManagerError::UsageNotTracked`](crate::ManagerError::UsageNotTracked)). To
    /// log the uses and keep no times, pass [`TracingUsageSink`](crate::usage::TracingUsageSink).
    pub fn usage_sink<V: UsageSink>(self, sink: V) -> KeyManagerBuilder<S, V> {
        KeyManagerBuilder {
            store: self.store,
            usage: sink,
            usage_is_store: false,
            clock: self.clock,
            prefix: self.prefix,
            catalogue: self.catalogue,
            events: self.events,
            limits: self.limits,
            usage_flush: self.usage_flush,
            #[cfg(feature = "cache")]
            feed: self.feed,
        }
    }
}

impl<S: KeyStoreAdmin + Clone, U: UsageSink> KeyManagerBuilder<S, U> {
    /// The manager. Nothing runs until its [`background`](KeyManager::background) is
    /// spawned.
    pub fn build(self) -> KeyManager<S> {
        let usage_sink: Arc<dyn UsageSink> = Arc::new(self.usage);
        let tracker = super::tracker_for(&usage_sink, self.usage_flush, self.events.as_ref());
        let layer = super::layer_for(
            &self.store,
            &self.prefix,
            &self.clock,
            &tracker,
            self.limits.as_ref(),
        );
        KeyManager {
            store: self.store,
            clock: self.clock,
            prefix: self.prefix,
            catalogue: self.catalogue,
            events: self.events,
            usage_sink,
            usage_flush: self.usage_flush,
            tracker,
            tracker_writes_store: self.usage_is_store,
            tracker_given: false,
            limits: self.limits,
            layer,
            run: Arc::new(Run::new(
                #[cfg(feature = "cache")]
                self.feed,
            )),
        }
    }
}

impl<S: fmt::Debug, U: fmt::Debug> fmt::Debug for KeyManagerBuilder<S, U> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = f.debug_struct("KeyManagerBuilder");
        out.field("store", &self.store)
            .field("usage_sink", &self.usage)
            .field("clock", &self.clock)
            .field("prefix", &self.prefix)
            .field("catalogue", &self.catalogue)
            .field("events", &self.events)
            .field("shared_limits", &self.limits)
            .field("usage_flush_period", &self.usage_flush);
        #[cfg(feature = "cache")]
        out.field("feed_listener", &self.feed);
        out.finish()
    }
}
