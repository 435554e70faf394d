//! The id filter of a [`CachedKeyStore`](super::cached::CachedKeyStore): which key ids
//! certainly do not exist, so that a forged id is refused without a query.
//!
//! Key ids are public and their checksum can be computed offline, so a flood of
//! well-formed keys, each with a fresh id, passes every check the middleware can make
//! before the store. Without a filter each one costs a database query; with one, a
//! forged id costs a few hashes in memory.
//!
//! The filter is a Bloom filter ([`fastbloom::AtomicBloomFilter`]: lock-free inserts and
//! reads), filled from a [`KeyIdFeed`](super::feed::KeyIdFeed)'s snapshot and kept up to
//! date by its stream of created ids (each checked against the store first: any
//! database role can send a notification). An id it has been told about is always let
//! through. Its false positives (a forged id let through to the store) are at most
//! [`FALSE_POSITIVE_RATE`] while it holds no more ids than it was sized for; it is sized
//! for twice the snapshot, and the listener takes a new snapshot (and a filter twice as
//! large) when that room runs out, following the old subscription until the new one is
//! in place. Revoked and expired ids stay in it: the middleware needs their records to
//! say "revoked" or "expired".
//!
//! A key created on another instance reaches this filter a few milliseconds after its
//! creator answered (the notification's round trip). So that a key used at once is not
//! refused meanwhile, ids the filter does not hold still reach the store at a small rate
//! ([`PassWindow`], 20 a second by default): a new key costs one query, and its record
//! then joins the filter; a flood of forged ids stays capped at that rate.
//!
//! The hash is foldhash with a per-process random seed, so an attacker cannot compute
//! offline which forged ids the filter lets through.

use std::collections::HashSet;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use fastbloom::AtomicBloomFilter;

use crate::key::KeyId;
use crate::metrics::{self, FilterRefusal};

/// The largest share of absent ids a fresh filter lets through (0.1 %).
pub(crate) const FALSE_POSITIVE_RATE: f64 = 0.001;
/// The fewest ids a filter is sized for, so that a small or new deployment does not
/// rebuild its filter at every other created key.
const MIN_CAPACITY: usize = 4096;

type Hasher = foldhash::fast::RandomState;

/// The most shed ids kept for the listener to check between two of its checks.
const MAX_SUSPECTS: usize = 1024;

/// How long a filter that grew still consults the one it replaced: far longer than a
/// subscription's backlog takes to apply.
const KEEP_PREVIOUS: Duration = Duration::from_secs(10);

/// How many recent passes the filter remembers, so that a request that took one when
/// asked at once is not charged again when it then waits for the store.
const REMEMBERED_PASSES: usize = 16;

/// What the filter says about an id before the store is asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// It may exist (or there is no filter yet, or it took one of this second's passes):
    /// ask the store.
    Ask,
    /// The filter is fresh and holds no such id, and this second's passes are spent:
    /// refuse it without a query.
    Absent,
    /// The filter is stale and holds no such id, and this second's passes are spent:
    /// refuse it as overloaded (503), since it may be a key created while the feed was
    /// down.
    Shed,
}

/// The filter one cache consults; see the [module documentation](self).
#[derive(Debug)]
pub(crate) struct IdFilter {
    /// `None` until a feed delivers its first snapshot, and after its listener stops:
    /// without a filter every id is asked for.
    bloom: ArcSwapOption<Bloom>,
    /// How many ids the filter does not hold may still reach the store each second.
    passes: PassWindow,
    /// The last few ids that took a pass, by hash (0: none), so that the same request
    /// asking again (at once, then waiting) takes one pass, not two.
    passed: [AtomicU64; REMEMBERED_PASSES],
    next_passed: AtomicUsize,
    hasher: Hasher,
    /// Ids a notification announced and the store has not confirmed yet: asked for at
    /// once (a key used right after its creation elsewhere must not wait for the
    /// check), but kept out of the Bloom filter until confirmed, so that a forged
    /// notification leaves nothing behind. At most one batch of the listener's.
    announced: Mutex<HashSet<KeyId, Hasher>>,
    /// Whether `announced` may hold anything, so that a flood of forged ids does not
    /// take its lock while there is nothing to find.
    any_announced: AtomicBool,
    /// While stale: a uniform sample of the ids shed since the listener last checked
    /// them against the store, so that a key created during the outage is found on a
    /// retry however many forged ids share its second.
    suspects: Mutex<Suspects>,
}

/// At most [`MAX_SUSPECTS`] ids, each of the `offered` ones equally likely to be kept
/// (reservoir sampling): a flood cannot crowd a real key out by arriving first.
#[derive(Debug, Default)]
struct Suspects {
    ids: Vec<KeyId>,
    offered: u64,
}

/// One generation of the filter, built from one snapshot.
#[derive(Debug)]
struct Bloom {
    bits: Arc<AtomicBloomFilter<Hasher>>,
    /// The filter this one grew from, consulted until the given time: ids added to it
    /// after the new snapshot was read (by the old subscription, a lookup, an insert
    /// here) reach the new filter only when the new subscription's backlog is applied.
    previous: Option<(Arc<AtomicBloomFilter<Hasher>>, Instant)>,
    /// How many ids it was sized for at [`FALSE_POSITIVE_RATE`].
    capacity: usize,
    /// How many ids were put in (an id created twice counts twice, which only makes the
    /// next rebuild come a little early).
    len: AtomicUsize,
    /// False while the feed is down: created ids may be missing, so its negatives are
    /// not trusted (see [`Admission::Shed`]).
    fresh: AtomicBool,
}

impl Bloom {
    /// Whether the filter this one grew from holds `id`, while it is still consulted.
    fn previously(&self, id: &KeyId) -> bool {
        self.previous
            .as_ref()
            .is_some_and(|(bits, until)| bits.contains(id.as_bytes()) && Instant::now() < *until)
    }
}

/// What [`IdFilter::stats`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FilterStats {
    pub(crate) fresh: bool,
    pub(crate) ids: usize,
    pub(crate) capacity: usize,
    pub(crate) bytes: usize,
}

impl IdFilter {
    /// An empty filter (every id is asked for) that lets `passes_per_sec` ids it does
    /// not hold through to the store each second.
    pub(crate) fn new(passes_per_sec: u32) -> Self {
        Self {
            bloom: ArcSwapOption::empty(),
            passes: PassWindow::new(passes_per_sec),
            passed: Default::default(),
            next_passed: AtomicUsize::new(0),
            hasher: Hasher::default(),
            announced: Mutex::default(),
            any_announced: AtomicBool::new(false),
            suspects: Mutex::default(),
        }
    }

    /// Ids a notification announced, to be asked for until [`settle`](Self::settle).
    pub(crate) fn announce(&self, ids: &[KeyId]) {
        let mut announced = self.announced_ids();
        announced.extend(ids.iter().copied());
        self.any_announced
            .store(!announced.is_empty(), Ordering::Release);
    }

    /// The store answered for the announced `ids`: those that exist were inserted, the
    /// others were forged; neither needs the announcement any more.
    pub(crate) fn settle(&self, ids: &[KeyId]) {
        let mut announced = self.announced_ids();
        for id in ids {
            announced.remove(id);
        }
        self.any_announced
            .store(!announced.is_empty(), Ordering::Release);
    }

    /// Offers a shed id to the sample the listener checks while the feed is down.
    fn suspect(&self, id: &KeyId) {
        let mut suspects = self.suspects.lock().unwrap_or_else(PoisonError::into_inner);
        suspects.offered += 1;
        if suspects.ids.len() < MAX_SUSPECTS {
            suspects.ids.push(*id);
            return;
        }
        // Keep it with probability MAX_SUSPECTS / offered, in place of a random one. The
        // hash is keyed per process, so the choice cannot be predicted from outside.
        let offered = suspects.offered;
        let slot = self.hasher.hash_one((offered, id.as_bytes())) % offered;
        if let Some(kept) = usize::try_from(slot)
            .ok()
            .and_then(|slot| suspects.ids.get_mut(slot))
        {
            *kept = *id;
        }
    }

    /// The ids shed since the last call, to check against the store.
    pub(crate) fn take_suspects(&self) -> Vec<KeyId> {
        let mut suspects = self.suspects.lock().unwrap_or_else(PoisonError::into_inner);
        suspects.offered = 0;
        std::mem::take(&mut suspects.ids)
    }

    /// Whether the filter holds `id` or it was announced, spending no pass (`true`
    /// without a filter: every id is asked for then).
    pub(crate) fn holds(&self, id: &KeyId) -> bool {
        self.bloom
            .load()
            .as_deref()
            .is_none_or(|bloom| self.holds_in(bloom, id))
    }

    /// Whether a filter is in use and holds `id` or it was announced (an id created
    /// after a miss was read); unlike [`holds`](Self::holds), `false` without a filter.
    pub(crate) fn knows(&self, id: &KeyId) -> bool {
        self.bloom
            .load()
            .as_deref()
            .is_some_and(|bloom| self.holds_in(bloom, id))
    }

    /// Whether `bloom` (or the filter it grew from, still consulted) holds `id`, or it
    /// was announced.
    fn holds_in(&self, bloom: &Bloom, id: &KeyId) -> bool {
        bloom.bits.contains(id.as_bytes()) || self.is_announced(id) || bloom.previously(id)
    }

    fn is_announced(&self, id: &KeyId) -> bool {
        self.any_announced.load(Ordering::Acquire) && self.announced_ids().contains(id)
    }

    fn announced_ids(&self) -> std::sync::MutexGuard<'_, HashSet<KeyId, Hasher>> {
        // One set operation per critical section: a panic cannot leave it half-done.
        self.announced
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether `id` may be asked for. `again`: the same request already asked (at
    /// once, and now waits for the store), so a pass it took then still holds.
    pub(crate) fn admit(&self, id: &KeyId, again: bool) -> Admission {
        let bloom = self.bloom.load();
        let Some(bloom) = bloom.as_deref() else {
            return Admission::Ask;
        };
        if self.holds_in(bloom, id) {
            return Admission::Ask;
        }
        let hash = self.hasher.hash_one(id.as_bytes()).max(1);
        if again && self.take_remembered(hash) {
            return Admission::Ask;
        }
        if self.passes.try_take() {
            let slot = self.next_passed.fetch_add(1, Ordering::Relaxed) % REMEMBERED_PASSES;
            self.passed[slot].store(hash, Ordering::Relaxed);
            return Admission::Ask;
        }
        if bloom.fresh.load(Ordering::Acquire) {
            // Counted by the cache where the refusal is final: a lookup that is ruled
            // out at once may still wait for an announcement.
            Admission::Absent
        } else {
            metrics::id_filter_refused(FilterRefusal::Shed);
            self.suspect(id);
            Admission::Shed
        }
    }

    /// Whether a recent pass was taken for `hash`; it is used up.
    fn take_remembered(&self, hash: u64) -> bool {
        self.passed.iter().any(|slot| {
            slot.compare_exchange(hash, 0, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        })
    }

    /// Adds an id that exists (created, or found by the store while the filter was
    /// stale).
    pub(crate) fn insert(&self, id: &KeyId) {
        if let Some(bloom) = self.bloom.load().as_deref() {
            bloom.bits.insert(id.as_bytes());
            bloom.len.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Replaces the filter by a fresh one holding exactly `ids`.
    pub(crate) fn replace(&self, ids: &[KeyId]) {
        self.build(ids, None);
    }

    /// Replaces the filter by a larger one holding `ids`, a snapshot read while the
    /// feed was followed without a gap; the one it replaces is still consulted for
    /// [`KEEP_PREVIOUS`], until the new subscription has caught up.
    pub(crate) fn regrow(&self, ids: &[KeyId]) {
        let previous = self
            .bloom
            .load()
            .as_deref()
            .map(|bloom| (Arc::clone(&bloom.bits), Instant::now() + KEEP_PREVIOUS));
        self.build(ids, previous);
    }

    fn build(&self, ids: &[KeyId], previous: Option<(Arc<AtomicBloomFilter<Hasher>>, Instant)>) {
        let capacity = ids.len().saturating_mul(2).max(MIN_CAPACITY);
        let bits = AtomicBloomFilter::with_false_pos(FALSE_POSITIVE_RATE)
            .hasher(Hasher::default())
            .expected_items(capacity);
        for id in ids {
            bits.insert(id.as_bytes());
        }
        self.bloom.store(Some(Arc::new(Bloom {
            bits: Arc::new(bits),
            previous,
            capacity,
            len: AtomicUsize::new(ids.len()),
            fresh: AtomicBool::new(true),
        })));
    }

    /// Marks the filter stale: the feed is down, so ids created meanwhile may be
    /// missing. Its negatives then reach the store at a bounded rate.
    pub(crate) fn mark_stale(&self) {
        if let Some(bloom) = self.bloom.load().as_deref() {
            bloom.fresh.store(false, Ordering::Release);
        }
    }

    /// Drops the filter: every id is asked for again (its listener stopped).
    pub(crate) fn clear(&self) {
        self.bloom.store(None);
    }

    /// Whether the filter holds more ids than it was sized for, so that its false
    /// positive rate has started to climb and a new snapshot is due.
    pub(crate) fn is_full(&self) -> bool {
        self.bloom
            .load()
            .as_deref()
            .is_some_and(|bloom| bloom.len.load(Ordering::Relaxed) > bloom.capacity)
    }

    pub(crate) fn stats(&self) -> Option<FilterStats> {
        self.bloom.load().as_deref().map(|bloom| FilterStats {
            fresh: bloom.fresh.load(Ordering::Acquire),
            ids: bloom.len.load(Ordering::Relaxed),
            capacity: bloom.capacity,
            bytes: bloom.bits.num_bits() / 8,
        })
    }
}

/// At most `per_sec` passes in each whole second since it was made: a fixed window,
/// one atomic word, no lock. Only consulted for ids the filter does not hold.
#[derive(Debug)]
struct PassWindow {
    per_sec: u32,
    start: Instant,
    /// The window's second in the high 32 bits, the passes taken in it in the low 32.
    state: AtomicU64,
}

impl PassWindow {
    fn new(per_sec: u32) -> Self {
        Self {
            per_sec,
            start: Instant::now(),
            state: AtomicU64::new(0),
        }
    }

    fn try_take(&self) -> bool {
        // Wraps after 136 years; a wrapped second only starts a new window early.
        let now = self.start.elapsed().as_secs() as u32;
        let mut current = self.state.load(Ordering::Relaxed);
        loop {
            let (second, taken) = ((current >> 32) as u32, current as u32);
            let taken = if second == now { taken } else { 0 };
            if taken >= self.per_sec {
                return false;
            }
            let next = (u64::from(now) << 32) | u64::from(taken + 1);
            match self.state.compare_exchange_weak(
                current,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(seen) => current = seen,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::conformance::sample_record;

    fn ids(n: u64) -> Vec<KeyId> {
        (0..n).map(|i| *sample_record("f", &[], i).id()).collect()
    }

    fn random_id() -> KeyId {
        KeyId::generate()
    }

    #[test]
    fn without_a_snapshot_every_id_is_asked_for() {
        let filter = IdFilter::new(0);
        assert_eq!(filter.admit(&random_id(), false), Admission::Ask);
        filter.insert(&random_id()); // no filter yet: nothing to add to
        assert!(filter.stats().is_none());
    }

    #[test]
    fn known_ids_pass_and_forged_ids_are_absent_within_the_rate() {
        let known = ids(10_000);
        let filter = IdFilter::new(0);
        filter.replace(&known);
        assert!(
            known
                .iter()
                .all(|id| filter.admit(id, false) == Admission::Ask)
        );
        let trials = 200_000;
        let passed = (0..trials)
            .filter(|_| filter.admit(&random_id(), false) == Admission::Ask)
            .count();
        // 0.1 % of 200,000 is 200; the filter is sized for twice what it holds, so it
        // does better. 400 leaves room for chance without hiding a broken filter.
        assert!(passed <= 400, "{passed} of {trials} forged ids passed");
    }

    #[test]
    fn a_created_id_passes_once_inserted() {
        let filter = IdFilter::new(0);
        filter.replace(&ids(3));
        let new = random_id();
        filter.insert(&new);
        assert_eq!(filter.admit(&new, false), Admission::Ask);
    }

    #[test]
    fn a_stale_filter_lets_a_bounded_number_of_negatives_through_each_second() {
        let filter = IdFilter::new(5);
        filter.replace(&ids(3));
        filter.mark_stale();
        let answers: Vec<_> = (0..50).map(|_| filter.admit(&random_id(), false)).collect();
        let asked = answers.iter().filter(|a| **a == Admission::Ask).count();
        let shed = answers.iter().filter(|a| **a == Admission::Shed).count();
        // A second boundary may fall inside the loop: at most two windows' worth.
        assert!((5..=10).contains(&asked), "{asked} asked");
        assert_eq!(asked + shed, 50, "{answers:?}");
        filter.replace(&ids(3));
        assert!(filter.stats().unwrap().fresh, "fresh again");
    }

    #[test]
    fn m1_a_fresh_filter_still_passes_a_bounded_number_of_ids_it_does_not_hold() {
        // A key created a moment ago on another instance is not in the filter yet: it
        // must reach the store, while a flood of forged ids stays capped.
        let filter = IdFilter::new(5);
        filter.replace(&ids(3));
        let answers: Vec<_> = (0..50).map(|_| filter.admit(&random_id(), false)).collect();
        let asked = answers.iter().filter(|a| **a == Admission::Ask).count();
        let absent = answers.iter().filter(|a| **a == Admission::Absent).count();
        // A second boundary may fall inside the loop: at most two windows' worth.
        assert!((5..=10).contains(&asked), "{asked} asked");
        assert_eq!(asked + absent, 50, "{answers:?}");
    }

    #[test]
    fn m1_a_request_that_asks_again_while_waiting_keeps_its_pass() {
        let filter = IdFilter::new(1);
        filter.replace(&ids(3));
        let new = random_id();
        assert_eq!(filter.admit(&new, false), Admission::Ask, "asked at once");
        assert_eq!(
            filter.admit(&new, true),
            Admission::Ask,
            "asked again, waiting"
        );
        // Only an id that took a pass is remembered.
        let other = random_id();
        assert!(!filter.take_remembered(filter.hasher.hash_one(other.as_bytes()).max(1)));
    }

    #[test]
    fn l6_an_announced_id_is_asked_for_until_settled_and_never_joins_the_filter_by_itself() {
        let filter = IdFilter::new(0);
        filter.replace(&ids(3));
        let announced = random_id();
        filter.announce(&[announced]);
        assert_eq!(filter.admit(&announced, false), Admission::Ask);
        filter.settle(&[announced]);
        assert_eq!(filter.admit(&announced, false), Admission::Absent);
        assert_eq!(filter.stats().unwrap().ids, 3);
    }

    #[test]
    fn l10_shed_ids_are_sampled_uniformly_and_boundedly_for_the_listener_to_check() {
        let filter = IdFilter::new(0);
        filter.replace(&ids(3));
        filter.mark_stale();
        // A real key arrives after 2,047 forged ones: it is kept with probability
        // 1,024 / 2,048 like any of them, not never, as first-come sampling would do.
        let mut kept = 0;
        for _ in 0..200 {
            for _ in 0..2_047 {
                assert_eq!(filter.admit(&random_id(), false), Admission::Shed);
            }
            let real = random_id();
            assert_eq!(filter.admit(&real, false), Admission::Shed);
            let sample = filter.take_suspects();
            assert_eq!(sample.len(), MAX_SUSPECTS, "bounded");
            kept += usize::from(sample.contains(&real));
        }
        // Binomial(200, 0.5): 100 ± 7; 60..=140 leaves room for chance only.
        assert!((60..=140).contains(&kept), "{kept} of 200");
        assert!(filter.take_suspects().is_empty());
    }

    #[test]
    fn a_filter_past_its_capacity_asks_for_a_new_snapshot() {
        let filter = IdFilter::new(0);
        filter.replace(&[]);
        let capacity = filter.stats().unwrap().capacity;
        assert_eq!(capacity, MIN_CAPACITY);
        for _ in 0..capacity {
            filter.insert(&random_id());
        }
        assert!(!filter.is_full());
        filter.insert(&random_id());
        assert!(filter.is_full());
    }

    #[test]
    fn a_cleared_filter_asks_for_everything() {
        let filter = IdFilter::new(0);
        filter.replace(&ids(3));
        filter.clear();
        assert_eq!(filter.admit(&random_id(), false), Admission::Ask);
    }

    #[test]
    fn memory_at_a_million_ids() {
        let filter = IdFilter::new(0);
        filter.replace(&[]);
        let empty = filter.stats().unwrap();
        // Sized as a snapshot of 1,000,000 ids would be: for 2,000,000.
        let bits = AtomicBloomFilter::with_false_pos(FALSE_POSITIVE_RATE)
            .hasher(Hasher::default())
            .expected_items(2_000_000);
        let bytes = bits.num_bits() / 8;
        // About 14.4 bits per id of capacity: 3.6 MB. README and BENCHMARKS.md say so.
        assert!((3_000_000..4_500_000).contains(&bytes), "{bytes} bytes");
        assert!(empty.bytes < bytes);
    }
}
