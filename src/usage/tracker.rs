//! [`UsageTracker`]: the debouncer between the request path and a [`UsageSink`].

use std::fmt;
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, SystemTime};

use std::panic::AssertUnwindSafe;

use futures_util::FutureExt;
use futures_util::future::{Either, select};
use papaya::{Compute, Operation};
use tokio::sync::{Mutex, watch};

use crate::event::{EventDetail, EventLog, EventType, NewEvent};
use crate::key::KeyId;
use crate::metrics;
use crate::usage::batch::{UsageBatch, UsageBatchId};
use crate::usage::ended::EndedUses;
use crate::usage::recent;
use crate::usage::slot::{Slot, TOMBSTONE};
use crate::usage::striped::StripedCounter;
use crate::usage::{KeyUsage, UsageSink, UsageSinkError};

/// Default flush period: five minutes.
const DEFAULT_PERIOD: Duration = Duration::from_secs(300);
/// Default bound on distinct keys held.
const DEFAULT_MAX_KEYS: usize = 100_000;
/// Default first retry delay after a failed flush; it doubles up to the period.
const DEFAULT_RETRY_BACKOFF: Duration = Duration::from_secs(1);
/// Default bound on one call to the sink.
const DEFAULT_FLUSH_TIMEOUT: Duration = Duration::from_secs(30);

struct Inner {
    /// Unique among trackers, so that per-thread caches can tell whose slot they hold.
    id: u64,
    slots: papaya::HashMap<KeyId, Arc<Slot>, foldhash::fast::RandomState>,
    sink: Box<dyn UsageSink>,
    period: Duration,
    max_keys: usize,
    retry_backoff: Duration,
    flush_timeout: Option<Duration>,
    /// One flush at a time: the loop's and an explicit `flush`/`shutdown`.
    flushing: Mutex<()>,
    rounds: AtomicU64,
    shutdown: watch::Sender<bool>,
    uses: StripedCounter,
    dropped: StripedCounter,
    /// Whether a drop has been logged since the last flush (one warning per period).
    drop_logged: AtomicBool,
    writes: AtomicU64,
    failures: AtomicU64,
    /// Where `first_used` and `ended_key_used` go, if anywhere.
    events: Option<EventLog>,
    /// Proven attempts with ended keys since the last flush.
    ended: EndedUses,
    /// The batch whose send failed, to send again as it is (at most `max_keys` keys).
    sealed: std::sync::Mutex<Option<(UsageBatchId, Vec<KeyUsage>)>>,
}

/// Counters since the tracker was built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct UsageTrackerStats {
    /// Uses recorded (proven requests), dropped ones included.
    pub uses: u64,
    /// Key times the sink accepted.
    pub writes: u64,
    /// Flushes that failed (the sink errored or timed out); their times were retried.
    pub failures: u64,
    /// Uses not recorded because the tracker held its maximum of distinct keys.
    pub dropped: u64,
    /// Distinct keys held now.
    pub tracked_keys: usize,
}

/// Debounces last-used times between the request path and a [`UsageSink`].
///
/// [`record`](Self::record) is the request path: O(1), never awaits, takes no lock
/// (the per-key map is lock-free), and allocates only the first time it sees a key.
/// [`run`](Self::run) is the flush loop (a [`KeyManager`](crate::KeyManager)'s
/// [background](crate::KeyManager::background) runs its tracker's); every period it sends
/// the sink the keys used since their last successful write, with their latest time.
/// A failed or timed-out flush keeps its times, retries with backoff, and merges them
/// with newer uses; requests never notice. [`shutdown`](Self::shutdown) stops the loop
/// and writes everything pending.
///
/// Memory is bounded by the number of distinct keys, at most
/// [`max_keys`](UsageTrackerBuilder::max_keys) (default 100 000); uses of further keys
/// are counted in [`UsageTrackerStats::dropped`] and logged. Keys idle for a whole period are
/// reclaimed once the tracker holds more than half its maximum.
///
/// Clones share one tracker.
#[derive(Clone)]
pub struct UsageTracker {
    inner: Arc<Inner>,
}

/// Configures a [`UsageTracker`].
#[derive(Debug)]
#[must_use = "call `build` to make the tracker"]
pub struct UsageTrackerBuilder {
    sink: Box<dyn UsageSink>,
    period: Duration,
    max_keys: usize,
    retry_backoff: Duration,
    flush_timeout: Option<Duration>,
    events: Option<EventLog>,
}

impl UsageTrackerBuilder {
    /// Records `first_used` (a key's first stored use), the `rotated` of an
    /// `until_first_use` rotation's end, and `ended_key_used` (proven attempts with
    /// revoked or ended keys, once per key per flush, with a warning line) in `events`.
    /// All ride on the flush: nothing is added to the request path.
    ///
    /// The first two are changes, stored in the same write as the usage that makes them
    /// ([`UsageBatch::wants_events`](crate::usage::UsageBatch::wants_events)): if the store
    /// cannot keep them, the write fails and is retried with the next flush. `events`
    /// must keep its events in the sink's store.
    pub fn events(mut self, events: EventLog) -> Self {
        self.events = Some(events);
        self
    }

    /// How often pending times and counts are written (default 300 s).
    ///
    /// # Panics
    ///
    /// If `period` is zero or longer than a day (daily counts keep two days per thread,
    /// so a flush must come at least daily).
    pub fn period(mut self, period: Duration) -> Self {
        assert!(
            !period.is_zero() && period <= Duration::from_secs(86_400),
            "the usage flush period must be more than zero and at most a day"
        );
        self.period = period;
        self
    }

    /// The most distinct keys held at once (default 100 000).
    ///
    /// # Panics
    ///
    /// If `max_keys` is zero.
    pub fn max_keys(mut self, max_keys: usize) -> Self {
        assert!(max_keys > 0, "the usage tracker must hold at least one key");
        self.max_keys = max_keys;
        self
    }

    /// The first retry delay after a failed flush (default 1 s); it doubles on each
    /// further failure, up to the period.
    pub fn retry_backoff(mut self, first: Duration) -> Self {
        self.retry_backoff = first;
        self
    }

    /// The longest one call to the sink may take before it counts as failed
    /// (default 30 s; `None` waits as long as the sink does).
    pub fn flush_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.flush_timeout = timeout;
        self
    }

    /// Builds the tracker. Nothing is written until [`UsageTracker::run`] runs, or
    /// [`flush`](UsageTracker::flush) or [`shutdown`](UsageTracker::shutdown) is called.
    /// A [`KeyManager`](crate::KeyManager) builds its own: build one only for a layer
    /// without a manager.
    pub fn build(self) -> UsageTracker {
        UsageTracker {
            inner: Arc::new(Inner {
                id: recent::tracker_id(),
                slots: papaya::HashMap::builder()
                    .hasher(foldhash::fast::RandomState::default())
                    .build(),
                sink: self.sink,
                period: self.period,
                max_keys: self.max_keys,
                retry_backoff: self.retry_backoff,
                flush_timeout: self.flush_timeout,
                flushing: Mutex::new(()),
                rounds: AtomicU64::new(0),
                shutdown: watch::Sender::new(false),
                uses: StripedCounter::default(),
                dropped: StripedCounter::default(),
                drop_logged: AtomicBool::new(false),
                writes: AtomicU64::new(0),
                failures: AtomicU64::new(0),
                events: self.events,
                ended: EndedUses::default(),
                sealed: std::sync::Mutex::new(None),
            }),
        }
    }
}

impl UsageTracker {
    /// A tracker writing to `sink` with the defaults (period 300 s, 100 000 keys).
    pub fn new(sink: impl UsageSink) -> Self {
        Self::builder(sink).build()
    }

    /// A builder for a tracker writing to `sink`.
    pub fn builder(sink: impl UsageSink) -> UsageTrackerBuilder {
        UsageTrackerBuilder {
            sink: Box::new(sink),
            period: DEFAULT_PERIOD,
            max_keys: DEFAULT_MAX_KEYS,
            retry_backoff: DEFAULT_RETRY_BACKOFF,
            flush_timeout: Some(DEFAULT_FLUSH_TIMEOUT),
            events: None,
        }
    }

    /// Records a proven attempt with `id` after it was revoked or ended by rotation.
    /// Not a use: last-used does not move. The next flush logs one warning and records
    /// one `ended_key_used` event per such key. Off the path of good requests, so it
    /// takes a lock; at most 1024 such keys are held between flushes.
    pub fn record_ended(&self, id: &KeyId, at: SystemTime) {
        self.inner.ended.record(id, at);
    }

    /// Records a proven use of `id` at `at`. The request path: cheap and never waits.
    ///
    /// A key this thread used recently is found in a small per-thread cache without a
    /// lock, a locked instruction or a shared write; others go through the lock-free map.
    pub fn record(&self, id: &KeyId, at: SystemTime) {
        self.record_use(id, at, recent::NoAddress);
    }

    /// Records a proven use of `id` at `at` from the client address `ip`, as
    /// [`record`](Self::record) does; the key's
    /// [`recent_ips`](crate::KeyRecord::recent_ips) then show `ip`, from the next flush.
    /// The layer calls this when it knows the client's address.
    ///
    /// As cheap as `record` while a thread keeps seeing a key from one address: the
    /// address is compared with the one this thread last noted for the key, and noted
    /// (under a per-key lock) only when it changes, or once per flush.
    pub fn record_from(&self, id: &KeyId, at: SystemTime, ip: IpAddr) {
        self.record_use(id, at, ip);
    }

    #[inline(always)]
    fn record_use(&self, id: &KeyId, at: SystemTime, ip: impl recent::Address) {
        let inner = &*self.inner;
        inner.uses.add(1);
        let ms = to_millis(at);
        if !recent::bump(inner.id, id, ms, ip) {
            self.record_in_map(id, ms, ip.ip());
        }
    }

    fn record_in_map(&self, id: &KeyId, ms: u64, ip: Option<IpAddr>) {
        let inner = &*self.inner;
        let slots = inner.slots.pin();
        if let Some(slot) = slots.get(id) {
            if slot.bump(ms) {
                recent::remember(inner.id, id, slot, ms, ip);
                return;
            }
        } else if slots.len() >= inner.max_keys {
            inner.dropped.add(1);
            metrics::usage_dropped();
            if !inner.drop_logged.swap(true, Relaxed) {
                tracing::warn!(
                    max_keys = inner.max_keys,
                    "usage tracker holds its maximum of distinct keys; uses of further keys are dropped"
                );
            }
            return;
        }
        // First use, or the slot was just evicted: insert, or bump whatever a racing
        // request inserted meanwhile.
        let slot = match slots.compute(*id, |entry| match entry {
            Some((_, slot)) if slot.bump(ms) => Operation::Abort(Arc::clone(slot)),
            _ => Operation::Insert(Arc::new(Slot::new(ms))),
        }) {
            Compute::Inserted(_, slot) | Compute::Updated { new: (_, slot), .. } => {
                Arc::clone(slot)
            }
            Compute::Aborted(slot) => slot,
            Compute::Removed(..) => return,
        };
        recent::remember(inner.id, id, &slot, ms, ip);
    }

    /// Writes every pending time now and returns once the sink has them (or failed).
    /// On failure the times stay pending for the next flush.
    pub async fn flush(&self) -> Result<(), UsageSinkError> {
        let _one_at_a_time = self.inner.flushing.lock().await;
        self.flush_now().await
    }

    async fn flush_now(&self) -> Result<(), UsageSinkError> {
        let inner = &*self.inner;
        let round = inner.rounds.fetch_add(1, Relaxed) + 1;
        inner.drop_logged.store(false, Relaxed);
        self.report_ended().await;
        let (id, batch) = self.next_batch(round);
        if batch.is_empty() {
            return Ok(());
        }
        // Kept until the sink has it, so that a failed or timed-out send (which may have
        // been applied) is sent again with the same id and counts: counted once.
        *inner
            .sealed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some((id, batch.clone()));
        // A sink that panics is a failed write like any other: its times stay pending and
        // the flush loop keeps running, instead of dying with the task.
        // With an audit trail, the store keeps the events of what this write changes
        // (first uses, the ends they set) in the same write: no change without its event.
        let sealed = UsageBatch::new(id, &batch).events(inner.events.is_some());
        let write = AssertUnwindSafe(inner.sink.record_usage_batch(&sealed))
            .catch_unwind()
            .map(|outcome| {
                outcome.unwrap_or_else(|_| Err(UsageSinkError::sink("the usage sink panicked")))
            });
        let result = match inner.flush_timeout {
            Some(limit) => tokio::time::timeout(limit, write)
                .await
                .unwrap_or(Err(UsageSinkError::Timeout(limit))),
            None => write.await,
        };
        let outcome = match result {
            Ok(outcome) => outcome,
            Err(error) => {
                inner.failures.fetch_add(1, Relaxed);
                metrics::usage_flush_failed();
                tracing::warn!(%error, keys = batch.len(), "writing last-used times failed; they will be retried");
                return Err(error);
            }
        };
        inner
            .sealed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(events) = &inner.events {
            if outcome.events.is_empty() {
                // A sink that stores no events with its write (one written before
                // they were asked for): recorded now, after it. The store logs and
                // counts a failure; the use itself is written.
                for event in sealed.events_of(&outcome.first_used, &outcome.ended) {
                    let _ = events.emit(event).await;
                }
            } else {
                events.forward(&outcome.events);
            }
        }
        for end in &outcome.ended {
            tracing::info!(
                old_key_id = %end.key_id,
                key_id = %end.successor,
                "the new key of a rotation was first used; the old key ends after the grace"
            );
        }
        let slots = inner.slots.pin();
        for usage in &batch {
            if let Some(slot) = slots.get(&usage.key_id) {
                slot.written
                    .fetch_max(to_millis(usage.last_used_at), Relaxed);
                slot.written_in.store(round, Relaxed);
            }
        }
        inner.writes.fetch_add(batch.len() as u64, Relaxed);
        metrics::usage_flushed();
        tracing::debug!(keys = batch.len(), "last-used times written");
        Ok(())
    }

    /// One warning and one `ended_key_used` event per ended key used since the last flush.
    async fn report_ended(&self) {
        let inner = &*self.inner;
        for (id, attempts, at) in inner.ended.take() {
            tracing::warn!(
                key_id = %id,
                attempts,
                "a revoked or rotated-out API key is still in use: an integration that never switched, or a leaked copy"
            );
            if let Some(events) = &inner.events {
                let event = NewEvent::new(EventType::EndedKeyUsed, id, at)
                    .with_detail(EventDetail::default().with_attempts(Some(attempts)));
                let _ = events.emit(event).await;
            }
        }
    }

    /// The keys used since their last write, with their latest time and, if
    /// `take_counts`, the requests counted since the last take; reclaims idle slots
    /// when the map is more than half full (only when taking counts, so that no count
    /// is left in a reclaimed slot).
    fn pending(&self, round: u64, take_counts: bool) -> Vec<KeyUsage> {
        let inner = &*self.inner;
        let slots = inner.slots.pin();
        let reclaim = take_counts && slots.len() > inner.max_keys / 2;
        let mut batch = Vec::new();
        for (id, slot) in slots.iter() {
            let latest = slot.latest.load(Relaxed);
            let written = slot.written.load(Relaxed);
            if latest == TOMBSTONE {
                continue;
            }
            let counts = if take_counts {
                slot.counts.take()
            } else {
                Vec::new()
            };
            if latest > written || !counts.is_empty() {
                // Taken only with the key's time, so that no address waits in a slot
                // the batch leaves out.
                let mut usage = KeyUsage::new(*id, crate::time::from_epoch_millis(latest))
                    .with_recent_ips(slot.take_ips());
                for (day, n) in counts {
                    usage = usage.with_requests(day, n);
                }
                batch.push(usage);
            } else if reclaim
                && slot.written_in.load(Relaxed) + 1 < round
                // Only if no use arrived meanwhile; a use after this sees the tombstone
                // and inserts a fresh slot, so nothing is lost.
                && slot.latest.compare_exchange(latest, TOMBSTONE, Relaxed, Relaxed).is_ok()
            {
                slots
                    .remove_if(id, |_, s| s.latest.load(Relaxed) == TOMBSTONE)
                    .ok();
            }
        }
        batch
    }

    /// The batch to send: the sealed one if the last send failed (same id and counts,
    /// times brought up to date, other keys' newer times added), else a fresh one.
    fn next_batch(&self, round: u64) -> (UsageBatchId, Vec<KeyUsage>) {
        let sealed = self
            .inner
            .sealed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        let Some((id, mut batch)) = sealed else {
            return (UsageBatchId::random(), self.pending(round, true));
        };
        for fresh in self.pending(round, false) {
            match batch.iter_mut().find(|u| u.key_id == fresh.key_id) {
                Some(usage) => {
                    usage.last_used_at = usage.last_used_at.max(fresh.last_used_at);
                    // Newer addresses first; a store applies the list once either way.
                    *usage =
                        usage.with_recent_ips(fresh.recent_ips().and_older(usage.recent_ips()));
                }
                None => batch.push(fresh),
            }
        }
        (id, batch)
    }

    /// The flush loop: every period, writes what is pending; after a failure, retries
    /// sooner (backoff doubling up to the period). Ends when [`shutdown`](Self::shutdown)
    /// is called. Spawn it on the runtime (`tokio::spawn(tracker.run())`), unless a
    /// manager's background runs it.
    pub fn run(&self) -> impl Future<Output = ()> + Send + 'static {
        let tracker = self.clone();
        async move {
            let inner = &*tracker.inner;
            let mut stop = inner.shutdown.subscribe();
            let mut delay = inner.period;
            let mut backoff = inner.retry_backoff;
            while !*stop.borrow_and_update() {
                let tick = std::pin::pin!(tokio::time::sleep(delay));
                let stopped = std::pin::pin!(stop.changed());
                if let Either::Right(_) = select(tick, stopped).await {
                    break;
                }
                match tracker.flush().await {
                    Ok(()) => {
                        delay = inner.period;
                        backoff = inner.retry_backoff;
                    }
                    Err(_) => {
                        delay = backoff.min(inner.period);
                        backoff = backoff.saturating_mul(2);
                    }
                }
            }
        }
    }

    /// Stops the flush loop and writes everything pending; returns when the sink has it.
    /// Call it on graceful shutdown, after the server has stopped taking requests.
    pub async fn shutdown(&self) -> Result<(), UsageSinkError> {
        self.inner.shutdown.send_replace(true);
        self.flush().await
    }

    /// The counters.
    pub fn stats(&self) -> UsageTrackerStats {
        let inner = &*self.inner;
        UsageTrackerStats {
            uses: inner.uses.sum(),
            writes: inner.writes.load(Relaxed),
            failures: inner.failures.load(Relaxed),
            dropped: inner.dropped.sum(),
            tracked_keys: inner.slots.len(),
        }
    }

    /// The flush period.
    pub fn period(&self) -> Duration {
        self.inner.period
    }
}

impl fmt::Debug for UsageTracker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UsageTracker")
            .field("sink", &self.inner.sink)
            .field("period", &self.inner.period)
            .field("max_keys", &self.inner.max_keys)
            .field("stats", &self.stats())
            .finish()
    }
}

/// Milliseconds since the Unix epoch, saturating below [`TOMBSTONE`]; 0 before 1970.
fn to_millis(at: SystemTime) -> u64 {
    crate::time::epoch_millis(at).min(TOMBSTONE - 1)
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex as StdMutex;
    use std::sync::atomic::AtomicUsize;
    use std::time::UNIX_EPOCH;

    use async_trait::async_trait;

    use super::*;
    use crate::key::{KeyPrefix, PlaintextKey};

    /// A sink that keeps every batch it accepts and can be told to fail or hang.
    #[derive(Debug, Default)]
    struct RecordingSink {
        batches: StdMutex<Vec<Vec<KeyUsage>>>,
        failures_left: AtomicUsize,
        hang: AtomicBool,
        calls: AtomicUsize,
    }

    impl RecordingSink {
        fn writes_for(&self, id: &KeyId) -> Vec<SystemTime> {
            self.batches
                .lock()
                .unwrap()
                .iter()
                .flatten()
                .filter(|u| u.key_id == *id)
                .map(|u| u.last_used_at)
                .collect()
        }
    }

    #[async_trait]
    impl UsageSink for Arc<RecordingSink> {
        async fn record_usage(&self, batch: &[KeyUsage]) -> Result<(), UsageSinkError> {
            self.calls.fetch_add(1, Relaxed);
            if self.hang.load(Relaxed) {
                std::future::pending::<()>().await;
            }
            if self
                .failures_left
                .fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1))
                .is_ok()
            {
                return Err(UsageSinkError::sink("database is down"));
            }
            let mut ids: Vec<_> = batch.iter().map(|u| u.key_id).collect();
            ids.sort();
            ids.dedup();
            assert_eq!(
                ids.len(),
                batch.len(),
                "a batch holds each key at most once"
            );
            self.batches.lock().unwrap().push(batch.to_vec());
            Ok(())
        }
    }

    fn id() -> KeyId {
        *PlaintextKey::generate(&KeyPrefix::default()).id()
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
    }

    fn tracker(sink: &Arc<RecordingSink>) -> UsageTracker {
        UsageTracker::builder(sink.clone())
            .period(Duration::from_secs(300))
            .build()
    }

    #[tokio::test(start_paused = true)]
    async fn a_thousand_uses_in_a_period_give_one_write_with_the_latest_time() {
        let sink = Arc::new(RecordingSink::default());
        let tracker = tracker(&sink);
        let loop_ = tokio::spawn(tracker.run());
        let key = id();
        for i in 0..1000 {
            tracker.record(&key, at(i / 10) + Duration::from_millis(i % 10));
        }
        tokio::time::sleep(Duration::from_secs(301)).await;
        assert_eq!(sink.writes_for(&key), [at(99) + Duration::from_millis(9)]);
        assert_eq!(tracker.stats().uses, 1000);
        assert_eq!(tracker.stats().writes, 1);
        tracker.shutdown().await.unwrap();
        loop_.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_key_is_written_at_most_once_per_period() {
        let sink = Arc::new(RecordingSink::default());
        let tracker = tracker(&sink);
        let loop_ = tokio::spawn(tracker.run());
        let key = id();
        // A use every 10 s for 3 periods and a bit: three flushes, one write each.
        for i in 0..95 {
            tracker.record(&key, at(i * 10));
            tokio::time::sleep(Duration::from_secs(10)).await;
        }
        let writes = sink.writes_for(&key);
        assert_eq!(writes.len(), 3, "{writes:?}");
        assert!(writes.windows(2).all(|w| w[0] < w[1]), "{writes:?}");
        tracker.shutdown().await.unwrap();
        loop_.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn keys_are_debounced_independently() {
        let sink = Arc::new(RecordingSink::default());
        let tracker = tracker(&sink);
        let (a, b) = (id(), id());
        tracker.record(&a, at(1));
        tracker.flush().await.unwrap();
        tracker.record(&b, at(2));
        tracker.flush().await.unwrap();
        // `a` was not used again: it is not rewritten with `b`.
        assert_eq!(sink.writes_for(&a), [at(1)]);
        assert_eq!(sink.writes_for(&b), [at(2)]);
        tracker.record(&a, at(3));
        tracker.flush().await.unwrap();
        assert_eq!(sink.writes_for(&a), [at(1), at(3)]);
        assert_eq!(sink.writes_for(&b), [at(2)]);
    }

    #[tokio::test(start_paused = true)]
    async fn an_older_use_never_moves_a_time_backwards() {
        let sink = Arc::new(RecordingSink::default());
        let tracker = tracker(&sink);
        let key = id();
        tracker.record(&key, at(50));
        tracker.record(&key, at(10));
        tracker.flush().await.unwrap();
        tracker.record(&key, at(20));
        tracker.flush().await.unwrap();
        // The second write carries the older use's count, never its time.
        assert_eq!(sink.writes_for(&key), [at(50), at(50)]);
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_writes_everything_pending_and_stops_the_loop() {
        let sink = Arc::new(RecordingSink::default());
        let tracker = tracker(&sink);
        let loop_ = tokio::spawn(tracker.run());
        let keys: Vec<KeyId> = (0..50).map(|_| id()).collect();
        for (i, key) in keys.iter().enumerate() {
            tracker.record(key, at(i as u64));
        }
        tracker.shutdown().await.unwrap();
        loop_.await.unwrap();
        for (i, key) in keys.iter().enumerate() {
            assert_eq!(sink.writes_for(key), [at(i as u64)]);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_sink_is_retried_and_the_latest_time_is_written() {
        let sink = Arc::new(RecordingSink::default());
        sink.failures_left.store(3, Relaxed);
        let tracker = tracker(&sink);
        let loop_ = tokio::spawn(tracker.run());
        let key = id();
        tracker.record(&key, at(1));
        // The flush at 300 s fails; retries follow after 1 s, 2 s and 4 s, and the
        // fourth attempt succeeds with the newest time seen meanwhile.
        tokio::time::sleep(Duration::from_secs(300)).await;
        tracker.record(&key, at(2));
        tokio::time::sleep(Duration::from_millis(2500)).await;
        tracker.record(&key, at(3));
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(sink.writes_for(&key), [at(3)]);
        let stats = tracker.stats();
        assert_eq!(stats.failures, 3);
        assert_eq!(stats.writes, 1);
        tracker.shutdown().await.unwrap();
        loop_.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_hanging_sink_times_out_and_loses_nothing() {
        let sink = Arc::new(RecordingSink::default());
        sink.hang.store(true, Relaxed);
        let tracker = UsageTracker::builder(sink.clone())
            .flush_timeout(Some(Duration::from_secs(5)))
            .build();
        let key = id();
        tracker.record(&key, at(1));
        let error = tracker.flush().await.unwrap_err();
        assert!(matches!(error, UsageSinkError::Timeout(_)), "{error}");
        // Meanwhile uses keep being recorded without waiting.
        tracker.record(&key, at(2));
        sink.hang.store(false, Relaxed);
        tracker.flush().await.unwrap();
        assert_eq!(sink.writes_for(&key), [at(2)]);
    }

    /// Panics on its first call, then records.
    #[derive(Debug, Default)]
    struct PanicsOnce {
        panicked: AtomicBool,
        inner: Arc<RecordingSink>,
    }

    #[async_trait]
    impl UsageSink for PanicsOnce {
        async fn record_usage(&self, batch: &[KeyUsage]) -> Result<(), UsageSinkError> {
            if !self.panicked.swap(true, Relaxed) {
                panic!("sink bug");
            }
            self.inner.record_usage(batch).await
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_panicking_sink_fails_the_flush_but_not_the_loop() {
        let recorded = Arc::new(RecordingSink::default());
        let tracker = UsageTracker::new(PanicsOnce {
            panicked: AtomicBool::new(false),
            inner: recorded.clone(),
        });
        let loop_ = tokio::spawn(tracker.run());
        let key = id();
        tracker.record(&key, at(1));
        tokio::time::sleep(Duration::from_secs(301)).await; // the flush panics
        assert_eq!(tracker.stats().failures, 1);
        tokio::time::sleep(Duration::from_secs(2)).await; // the retry writes it
        assert_eq!(recorded.writes_for(&key), [at(1)]);
        assert!(!loop_.is_finished(), "the flush loop survived the panic");
        tracker.shutdown().await.unwrap();
        loop_.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn the_cap_bounds_distinct_keys_and_counts_the_drops() {
        let sink = Arc::new(RecordingSink::default());
        let cap = 1000;
        let tracker = UsageTracker::builder(sink.clone()).max_keys(cap).build();
        let keys: Vec<KeyId> = (0..cap + 100).map(|_| id()).collect();
        for key in &keys {
            tracker.record(key, at(1));
        }
        let stats = tracker.stats();
        assert_eq!(stats.tracked_keys, cap);
        assert_eq!(stats.dropped, 100);
        assert_eq!(stats.uses, (cap + 100) as u64);
        // Keys already held keep being tracked at the cap.
        tracker.record(&keys[0], at(2));
        tracker.flush().await.unwrap();
        assert_eq!(sink.writes_for(&keys[0]), [at(2)]);
        assert_eq!(tracker.stats().dropped, 100);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_keys_are_reclaimed_under_pressure_without_losing_a_use() {
        let sink = Arc::new(RecordingSink::default());
        let tracker = UsageTracker::builder(sink.clone()).max_keys(10).build();
        let old: Vec<KeyId> = (0..8).map(|_| id()).collect();
        for key in &old {
            tracker.record(key, at(1));
        }
        tracker.flush().await.unwrap(); // written
        tracker.flush().await.unwrap(); // idle for a round: reclaimable next
        tracker.flush().await.unwrap(); // reclaimed
        assert_eq!(tracker.stats().tracked_keys, 0);
        // A reclaimed key used again is tracked afresh.
        tracker.record(&old[0], at(5));
        tracker.flush().await.unwrap();
        assert_eq!(sink.writes_for(&old[0]), [at(1), at(5)]);
    }

    /// Applies each batch to a memory store, then says it timed out the first `n`
    /// times: what a database that committed but answered too late looks like.
    #[derive(Debug)]
    struct AppliedThenFailed {
        store: crate::store::memory::InMemoryKeyStore,
        failures_left: AtomicUsize,
    }

    #[async_trait]
    impl UsageSink for AppliedThenFailed {
        async fn record_usage(&self, batch: &[KeyUsage]) -> Result<(), UsageSinkError> {
            self.store.record_usage(batch).await
        }

        async fn record_usage_batch(
            &self,
            batch: &UsageBatch<'_>,
        ) -> Result<crate::usage::UsageOutcome, UsageSinkError> {
            let outcome = self.store.record_usage_batch(batch).await?;
            if self
                .failures_left
                .fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1))
                .is_ok()
            {
                return Err(UsageSinkError::Timeout(Duration::from_secs(30)));
            }
            Ok(outcome)
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_retried_flush_never_counts_a_request_twice() {
        use crate::usage::UsageCounts;
        use crate::usage::UsageDay;
        let store = crate::store::memory::InMemoryKeyStore::new();
        let sink = AppliedThenFailed {
            store: store.clone(),
            failures_left: AtomicUsize::new(2),
        };
        let tracker = UsageTracker::new(sink);
        let (a, b) = (id(), id());
        for _ in 0..10 {
            tracker.record(&a, at(1));
        }
        tracker.record(&b, at(1));
        assert!(
            tracker.flush().await.is_err(),
            "applied, but reported failed"
        );
        // More uses while the batch is out: counted in a later batch.
        for _ in 0..3 {
            tracker.record(&a, at(2));
        }
        assert!(
            tracker.flush().await.is_err(),
            "the retry fails the same way"
        );
        tracker.flush().await.unwrap(); // the retry goes through
        tracker.flush().await.unwrap(); // then the three newer uses
        let day = UsageDay::of(at(1));
        let counted = |id| {
            let store = store.clone();
            async move { store.daily_requests(&id, day, day).await.unwrap() }
        };
        assert_eq!(counted(a).await, [(day, 13)]);
        assert_eq!(counted(b).await, [(day, 1)]);
    }

    #[tokio::test(start_paused = true)]
    async fn requests_are_counted_per_utc_day_on_every_thread() {
        use crate::usage::UsageDay;
        let sink = Arc::new(RecordingSink::default());
        let tracker = tracker(&sink);
        let key = id();
        let midnight = UNIX_EPOCH + Duration::from_secs(20_000 * 86_400);
        let threads: Vec<_> = (0..3)
            .map(|_| {
                let tracker = tracker.clone();
                std::thread::spawn(move || {
                    for _ in 0..100 {
                        tracker.record(&key, midnight - Duration::from_secs(1));
                    }
                    for _ in 0..50 {
                        tracker.record(&key, midnight + Duration::from_secs(1));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        tracker.flush().await.unwrap();
        let batches = sink.batches.lock().unwrap().clone();
        let usage = batches.iter().flatten().find(|u| u.key_id == key).unwrap();
        let day = UsageDay::of(midnight);
        assert_eq!(
            usage.requests().collect::<Vec<_>>(),
            [(day.previous(), 300), (day, 150)]
        );
        // Nothing is sent again.
        tracker.flush().await.unwrap();
        assert_eq!(sink.batches.lock().unwrap().len(), 1);
    }
}
