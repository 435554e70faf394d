//! [`EventLog`]: stores events, then hands them to the sink through a bounded queue.

use std::fmt;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::Mutex as StdMutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, SystemTime};

use futures_util::FutureExt;
use futures_util::future::{Either, select};
use tokio::sync::{Mutex, mpsc, watch};
use tokio::time::Instant;

use crate::error::StoreError;
use crate::event::{
    DEFAULT_RETENTION, EventQuery, EventSink, EventSinkError, EventStore, KeyEvent, MIN_RETENTION,
    NewEvent, TracingEventSink,
};
use crate::metrics;
use crate::page::Page;

/// Events waiting for the sink, at most (default 1024); more are dropped and counted.
pub const DEFAULT_EVENT_QUEUE: usize = 1024;
/// How often the expiring pass of a manager's
/// [background](crate::KeyManager::background) looks for keys nearing their end and
/// prunes old events (default: hourly). Each threshold's
/// window is a day or more, so an hourly pass never misses one.
pub const DEFAULT_EXPIRING_EVERY: Duration = Duration::from_secs(60 * 60);
/// The longest the sink may take with one event before it counts as failed.
const DEFAULT_DELIVER_TIMEOUT: Duration = Duration::from_secs(10);
/// At most one warning per this period about a failing sink or a full queue.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// The audit trail of an application: an [`EventStore`] that keeps events and an
/// [`EventSink`] that forwards them.
///
/// [`emit`](Self::emit) stores an event and queues it for the sink without waiting for
/// the sink; [`run`](Self::run) is the future that delivers the queue, stopped by
/// [`shutdown`](Self::shutdown). Given to a manager
/// ([`KeyManagerBuilder::events`](crate::KeyManagerBuilder::events)), the log is run by
/// the manager's [background](crate::KeyManager::background) and stopped by its
/// [shutdown](crate::KeyManager::shutdown), after the last usage flush. The queue holds at
/// most [`queue`](EventLogBuilder::queue) events (default 1024): when the sink falls
/// that far behind, further events are stored but not forwarded, and counted in
/// [`EventLogStats::dropped`]. Failures of the sink are logged at most once a minute.
///
/// Clones share one log. See the [module documentation](crate::event).
#[derive(Clone)]
pub struct EventLog {
    inner: Arc<Inner>,
}

struct Inner {
    store: Box<dyn EventStore>,
    sink: Box<dyn EventSink>,
    queue: mpsc::Sender<KeyEvent>,
    /// Held by the running [`EventLog::run`]; a dropped `run` releases it.
    receiver: Mutex<mpsc::Receiver<KeyEvent>>,
    deliver_timeout: Option<Duration>,
    retention: Duration,
    expiring_every: Duration,
    shutdown: watch::Sender<bool>,
    stored: AtomicU64,
    delivered: AtomicU64,
    dropped: AtomicU64,
    sink_failures: AtomicU64,
    store_failures: AtomicU64,
    warned: RateLimit,
}

/// Counters since the log was built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct EventLogStats {
    /// Events the store took.
    pub stored: u64,
    /// Events the sink took.
    pub delivered: u64,
    /// Stored events not forwarded because the sink's queue was full.
    pub dropped: u64,
    /// Events the sink failed (or timed out) on.
    pub sink_failures: u64,
    /// Events [`EventLog::emit`] could not store (logged). Events stored with a change
    /// fail with it instead, and are not counted here.
    pub store_failures: u64,
}

/// Configures an [`EventLog`].
#[must_use = "call `build` to make the log"]
pub struct EventLogBuilder {
    store: Box<dyn EventStore>,
    sink: Box<dyn EventSink>,
    queue: usize,
    deliver_timeout: Option<Duration>,
    retention: Duration,
    expiring_every: Duration,
}

impl fmt::Debug for EventLogBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventLogBuilder")
            .field("store", &self.store)
            .field("sink", &self.sink)
            .field("queue", &self.queue)
            .finish_non_exhaustive()
    }
}

impl EventLogBuilder {
    /// Forwards events to `sink` instead of the log ([`TracingEventSink`]).
    pub fn sink(mut self, sink: impl EventSink) -> Self {
        self.sink = Box::new(sink);
        self
    }

    /// The most events waiting for the sink (default [`DEFAULT_EVENT_QUEUE`]); at least 1.
    pub fn queue(mut self, events: usize) -> Self {
        self.queue = events.max(1);
        self
    }

    /// The longest the sink may take with one event (default 10 s; `None`: no limit).
    pub fn deliver_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.deliver_timeout = timeout;
        self
    }

    /// How long events and usage counts are kept (default [`DEFAULT_RETENTION`], 400
    /// days; at least [`MIN_RETENTION`], 31 days, so that a stored `expiring` event
    /// outlives its key and never fires twice): older ones are deleted by the expiring
    /// pass of a manager's [background](crate::KeyManager::background).
    pub fn retention(mut self, retention: Duration) -> Self {
        self.retention = retention.max(MIN_RETENTION);
        self
    }

    /// How often a manager's [background](crate::KeyManager::background) runs its
    /// expiring pass (default [`DEFAULT_EXPIRING_EVERY`]); at least one second.
    pub fn expiring_every(mut self, every: Duration) -> Self {
        self.expiring_every = every.max(Duration::from_secs(1));
        self
    }

    /// Builds the log. Nothing is forwarded until [`EventLog::run`] runs (a manager's
    /// background runs it).
    pub fn build(self) -> EventLog {
        let (queue, receiver) = mpsc::channel(self.queue);
        EventLog {
            inner: Arc::new(Inner {
                store: self.store,
                sink: self.sink,
                queue,
                receiver: Mutex::new(receiver),
                deliver_timeout: self.deliver_timeout,
                retention: self.retention,
                expiring_every: self.expiring_every,
                shutdown: watch::Sender::new(false),
                stored: AtomicU64::new(0),
                delivered: AtomicU64::new(0),
                dropped: AtomicU64::new(0),
                sink_failures: AtomicU64::new(0),
                store_failures: AtomicU64::new(0),
                warned: RateLimit::default(),
            }),
        }
    }
}

impl EventLog {
    /// A log keeping events in `store` and forwarding them to the `tracing` log.
    pub fn new(store: impl EventStore) -> Self {
        Self::builder(store).build()
    }

    /// A builder for a log keeping events in `store`.
    pub fn builder(store: impl EventStore) -> EventLogBuilder {
        EventLogBuilder {
            store: Box::new(store),
            sink: Box::new(TracingEventSink),
            queue: DEFAULT_EVENT_QUEUE,
            deliver_timeout: Some(DEFAULT_DELIVER_TIMEOUT),
            retention: DEFAULT_RETENTION,
            expiring_every: DEFAULT_EXPIRING_EVERY,
        }
    }

    /// Stores `event` and queues it for the sink, without waiting for the sink: for an
    /// event that is no change of its own (`expiring`, `ended_key_used`), or whose change
    /// a store could not keep with it. A key change's events are stored with the change
    /// instead (see [`KeyManagerBuilder::events`](crate::KeyManagerBuilder::events)).
    ///
    /// Returns the stored event, or `None` when the store declined it (an `expiring`
    /// event another instance already stored): then the sink does not get it either.
    ///
    /// # Errors
    ///
    /// The store's error, counted in [`EventLogStats::store_failures`] and logged.
    pub async fn emit(&self, event: NewEvent) -> Result<Option<KeyEvent>, StoreError> {
        let inner = &*self.inner;
        let stored = match inner.store.record_event(&event).await {
            Ok(stored) => stored,
            Err(error) => {
                inner.store_failures.fetch_add(1, Relaxed);
                tracing::error!(
                    %error,
                    kind = event.kind().as_str(),
                    key_id = %event.key_id(),
                    "an API key event could not be stored"
                );
                return Err(error);
            }
        };
        let Some(stored) = stored else {
            return Ok(None);
        };
        self.queue(stored.clone());
        Ok(Some(stored))
    }

    /// Queues for the sink events a store already stored together with the change they
    /// describe (DESIGN §10), without waiting for the sink; counted as stored.
    pub(crate) fn forward(&self, stored: &[KeyEvent]) {
        for event in stored {
            self.queue(event.clone());
        }
    }

    /// Counts a stored event and queues it for the sink, or drops it (counted) when the
    /// queue is full.
    fn queue(&self, stored: KeyEvent) {
        let inner = &*self.inner;
        inner.stored.fetch_add(1, Relaxed);
        if inner.queue.try_send(stored).is_err() {
            inner.dropped.fetch_add(1, Relaxed);
            metrics::event_sink_dropped();
            if let Some(suppressed) = inner.warned.admit() {
                tracing::warn!(
                    suppressed,
                    "the event sink's queue is full; events are stored but not forwarded"
                );
            }
        }
    }

    /// A page of stored events, newest first.
    ///
    /// # Errors
    ///
    /// The store's error.
    pub async fn events(&self, query: &EventQuery) -> Result<Page<KeyEvent>, StoreError> {
        self.inner.store.events(query).await
    }

    /// Deletes events older than the retention before `now`. Returns how many.
    ///
    /// # Errors
    ///
    /// The store's error.
    pub async fn prune(&self, now: SystemTime) -> Result<u64, StoreError> {
        match self.prune_before(now) {
            Some(before) => self.inner.store.prune_events(before).await,
            None => Ok(0),
        }
    }

    /// What [`prune`](Self::prune) at `now` deletes before: `now` less the retention
    /// (`None` before the clock has run that long). The manager's background prunes
    /// usage counts before it too.
    pub(crate) fn prune_before(&self, now: SystemTime) -> Option<SystemTime> {
        now.checked_sub(self.inner.retention)
    }

    /// The period of the expiring pass of a manager's
    /// [background](crate::KeyManager::background).
    pub fn expiring_every(&self) -> Duration {
        self.inner.expiring_every
    }

    /// Delivers queued events to the sink, one at a time, until
    /// [`shutdown`](Self::shutdown); then delivers what is still queued and ends. Spawn
    /// it on the runtime (`tokio::spawn(log.run())`). Dropping it leaves the queue for
    /// the next `run`.
    pub fn run(&self) -> impl Future<Output = ()> + Send + 'static {
        let log = self.clone();
        async move {
            let inner = &*log.inner;
            let mut receiver = inner.receiver.lock().await;
            let mut stop = inner.shutdown.subscribe();
            while !*stop.borrow_and_update() {
                let next = pin!(receiver.recv());
                let stopped = pin!(stop.changed());
                match select(next, stopped).await {
                    Either::Left((Some(event), _)) => log.deliver(&event).await,
                    Either::Left((None, _)) | Either::Right(_) => break,
                }
            }
            while let Ok(event) = receiver.try_recv() {
                log.deliver(&event).await;
            }
        }
    }

    /// Stops [`run`](Self::run) once it has delivered what is queued, and waits for it.
    /// Without a running `run` (never spawned, or dropped), delivers the queue itself.
    /// Safe to call again: it then delivers what was queued since.
    pub async fn shutdown(&self) {
        self.inner.shutdown.send_replace(true);
        // `run` holds the receiver until it has drained the queue; what is left is what
        // no `run` was there to deliver.
        let mut receiver = self.inner.receiver.lock().await;
        while let Ok(event) = receiver.try_recv() {
            self.deliver(&event).await;
        }
    }

    /// The counters.
    pub fn stats(&self) -> EventLogStats {
        let inner = &*self.inner;
        EventLogStats {
            stored: inner.stored.load(Relaxed),
            delivered: inner.delivered.load(Relaxed),
            dropped: inner.dropped.load(Relaxed),
            sink_failures: inner.sink_failures.load(Relaxed),
            store_failures: inner.store_failures.load(Relaxed),
        }
    }

    async fn deliver(&self, event: &KeyEvent) {
        let inner = &*self.inner;
        // A sink that panics fails this event, not the loop.
        let delivery = std::panic::AssertUnwindSafe(inner.sink.deliver(event))
            .catch_unwind()
            .map(|outcome| {
                outcome.unwrap_or_else(|_| Err(EventSinkError::sink("the event sink panicked")))
            });
        let result = match inner.deliver_timeout {
            Some(limit) => tokio::time::timeout(limit, delivery)
                .await
                .unwrap_or(Err(EventSinkError::Timeout(limit))),
            None => delivery.await,
        };
        match result {
            Ok(()) => {
                inner.delivered.fetch_add(1, Relaxed);
            }
            Err(error) => {
                inner.sink_failures.fetch_add(1, Relaxed);
                metrics::event_sink_failed();
                if let Some(suppressed) = inner.warned.admit() {
                    tracing::warn!(
                        %error,
                        event_id = %event.id(),
                        suppressed,
                        "the event sink failed; the event stays in the store"
                    );
                }
            }
        }
    }
}

impl fmt::Debug for EventLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventLog")
            .field("store", &self.inner.store)
            .field("sink", &self.inner.sink)
            .field("stats", &self.stats())
            .finish()
    }
}

/// Admits one warning per [`WARN_EVERY`], counting those it suppresses.
#[derive(Default)]
struct RateLimit {
    last: StdMutex<Option<Instant>>,
    suppressed: AtomicU64,
}

impl RateLimit {
    /// `Some(suppressed since the last one)` if a warning may be logged now.
    fn admit(&self) -> Option<u64> {
        let now = Instant::now();
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_some_and(|at| now.duration_since(at) < WARN_EVERY) {
            self.suppressed.fetch_add(1, Relaxed);
            return None;
        }
        *last = Some(now);
        Some(self.suppressed.swap(0, Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use async_trait::async_trait;

    use super::*;
    use crate::event::EventType;
    use crate::key::{KeyId, KeyPrefix, PlaintextKey};
    use crate::store::memory::InMemoryKeyStore;

    #[test]
    fn a_retention_shorter_than_an_expiring_warning_is_raised_to_the_minimum() {
        let log = EventLog::builder(InMemoryKeyStore::new())
            .retention(Duration::from_secs(60))
            .build();
        assert_eq!(log.inner.retention, MIN_RETENTION);
        let log = EventLog::builder(InMemoryKeyStore::new())
            .retention(MIN_RETENTION * 2)
            .build();
        assert_eq!(log.inner.retention, MIN_RETENTION * 2);
    }

    /// A sink that hangs until told otherwise, then records.
    #[derive(Debug, Default)]
    struct SlowSink {
        hang: AtomicBool,
        got: StdMutex<Vec<KeyEvent>>,
    }

    #[async_trait]
    impl EventSink for Arc<SlowSink> {
        async fn deliver(&self, event: &KeyEvent) -> Result<(), EventSinkError> {
            if self.hang.load(Relaxed) {
                std::future::pending::<()>().await;
            }
            self.got.lock().unwrap().push(event.clone());
            Ok(())
        }
    }

    fn id() -> KeyId {
        *PlaintextKey::generate(&KeyPrefix::default()).id()
    }

    fn created(id: KeyId) -> NewEvent {
        NewEvent::new(EventType::Created, id, SystemTime::UNIX_EPOCH)
    }

    #[tokio::test(start_paused = true)]
    async fn a_hanging_sink_never_delays_emit_and_a_full_queue_drops_and_counts() {
        let sink = Arc::new(SlowSink::default());
        sink.hang.store(true, Relaxed);
        let log = EventLog::builder(InMemoryKeyStore::new())
            .sink(sink.clone())
            .queue(2)
            .deliver_timeout(Some(Duration::from_secs(5)))
            .build();
        let running = tokio::spawn(log.run());
        log.emit(created(id())).await.unwrap().unwrap();
        // `run` takes the first and hangs on it; two fill the queue, three are dropped,
        // and no emit waited for the sink.
        tokio::task::yield_now().await;
        for _ in 0..5 {
            log.emit(created(id())).await.unwrap().unwrap();
        }
        assert_eq!(log.stats().stored, 6);
        assert_eq!(log.stats().dropped, 3);
        // The hanging delivery times out after 5 s and the next one hangs in turn.
        tokio::time::sleep(Duration::from_secs(6)).await;
        assert_eq!(log.stats().sink_failures, 1);
        sink.hang.store(false, Relaxed);
        log.shutdown().await;
        running.await.unwrap();
        let stats = log.stats();
        assert_eq!((stats.sink_failures, stats.delivered), (2, 1), "{stats:?}");
        assert_eq!(sink.got.lock().unwrap().len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_delivers_what_is_queued() {
        let sink = Arc::new(SlowSink::default());
        let log = EventLog::builder(InMemoryKeyStore::new())
            .sink(sink.clone())
            .build();
        for _ in 0..5 {
            log.emit(created(id())).await.unwrap();
        }
        let running = tokio::spawn(log.run());
        log.shutdown().await;
        running.await.unwrap();
        assert_eq!(sink.got.lock().unwrap().len(), 5);
        let ids: Vec<u64> = sink
            .got
            .lock()
            .unwrap()
            .iter()
            .map(|e| e.id().get())
            .collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "in order: {ids:?}");
    }
}
