//! [`CacheMap`]: the bounded, expiring map of answers behind
//! [`CachedKeyStore`](super::CachedKeyStore).
//!
//! A cache hit is on the path of every authenticated request of a deployment with a
//! database, so it should cost what a lookup in [`InMemoryKeyStore`](crate::InMemoryKeyStore)
//! costs. A general-purpose cache does more on every read: moka's `get` records the
//! read for its admission and eviction policy and reads the precise clock, about 5× a
//! lock-free map's read. Here a hit is:
//!
//! - one read of a lock-free map (papaya, as in the in-memory store);
//! - one read of a **coarse monotonic clock** ([`coarsetime`]: `CLOCK_MONOTONIC_COARSE`
//!   on Linux, the kernel's last tick, a few nanoseconds instead of a few tens), against
//!   the deadline stamped on the entry when it was stored. The clock moves in ticks of
//!   1–10 ms (4 ms on most Linux kernels), so an entry lives its TTL give or take one
//!   tick. That is exact enough: a TTL bounds how stale a cached answer may be, and is
//!   no security deadline (a key's own `expires_at` is checked by the middleware against
//!   its [`Clock`](crate::Clock), to the nanosecond);
//! - at most once between two sweeps, setting the entry's reference bit.
//!
//! **The bound.** Entries queue in the order they were stored, with a second chance
//! (the CLOCK policy): an insert that takes the map past `max_entries` sweeps it, which
//! drops the expired entries, moves every entry read since the previous sweep to the
//! back of the queue (clearing its bit), and drops the oldest of the rest until the map
//! is down to 7/8 of the bound. Keys in use are read between two sweeps and stay; a
//! flood of one-off ids goes first. A sweep visits the map twice and sorts nothing (it
//! selects the cut-off age in linear time), and frees room for `max_entries / 8`
//! inserts, so its cost per insert is a few entries' visits. One caller sweeps at a
//! time; inserts that race with a sweep may pass the bound by as many entries as there
//! are concurrent inserters, until the next insert. papaya sizes its table by its live
//! entries, so the memory follows the bound too.
//!
//! Victims are chosen by age, never by their place in the table: evicting in table
//! order (the order papaya's `retain` visits) leaves the survivors packed at the
//! table's end, which papaya's bounded probing then cannot copy into a table of the
//! same size, and it allocates new tables without end (tried: gigabytes within seconds).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, TryLockError};
use std::time::Duration;

use crate::key::KeyId;

/// A point on the coarse monotonic clock, in its ticks (2^32 per second).
pub(super) type Tick = u64;

/// The coarse monotonic clock now.
#[inline]
pub(super) fn now() -> Tick {
    // `now()` would also store the reading in a global shared by every thread (for
    // `coarsetime::Instant::recent`): a cache line that two cores would pass between
    // them on every hit.
    coarsetime::Instant::now_without_cache_update().as_ticks()
}

/// `ttl` in ticks of the coarse clock, saturating.
pub(super) fn ticks(ttl: Duration) -> Tick {
    let ticks = (ttl.as_nanos() << 32) / 1_000_000_000;
    Tick::try_from(ticks).unwrap_or(Tick::MAX)
}

/// What is kept for an id: a value, when it stops being served, its place in the
/// queue, and whether it was read since the last sweep.
struct Entry<V> {
    value: V,
    /// The first tick at which the entry is no longer served.
    deadline: Tick,
    /// Its place in the queue: lower is older. Unique; a second chance gives a new one.
    age: AtomicU64,
    referenced: AtomicBool,
}

type Hasher = foldhash::fast::RandomState;

/// A concurrent map from key ids to values, each with a deadline, holding at most about
/// `max_entries` (see the [module documentation](self)).
pub(super) struct CacheMap<V> {
    map: papaya::HashMap<KeyId, Entry<V>, Hasher>,
    max_entries: usize,
    /// The next place in the queue.
    next_age: AtomicU64,
    /// Held by the one caller sweeping.
    sweeping: Mutex<()>,
}

impl<V: Clone> CacheMap<V> {
    pub(super) fn new(max_entries: usize) -> Self {
        Self {
            map: papaya::HashMap::builder()
                .hasher(Hasher::default())
                .resize_mode(papaya::ResizeMode::Blocking)
                .build(),
            max_entries,
            next_age: AtomicU64::new(0),
            sweeping: Mutex::new(()),
        }
    }

    /// The value of `id`, unless it is absent or its deadline has come; a hit marks the
    /// entry as read.
    #[inline]
    pub(super) fn get(&self, id: &KeyId, now: Tick) -> Option<V> {
        let map = self.map.pin();
        let entry = map.get(id)?;
        if now >= entry.deadline {
            return None;
        }
        // Read first, so that a hot entry's cache line stays shared between cores: the
        // bit is written once per sweep, not once per hit.
        if !entry.referenced.load(Ordering::Relaxed) {
            entry.referenced.store(true, Ordering::Relaxed);
        }
        Some(entry.value.clone())
    }

    /// Whether `id` has a value that is still served; not counted as a read.
    pub(super) fn contains(&self, id: &KeyId, now: Tick) -> bool {
        self.map
            .pin()
            .get(id)
            .is_some_and(|entry| now < entry.deadline)
    }

    /// Stores `value` for `id` until `deadline`, replacing what was there, then sweeps
    /// if the map is over its bound. A map bounded to no entry stores nothing.
    pub(super) fn insert(&self, id: KeyId, value: V, deadline: Tick, now: Tick) {
        if self.max_entries == 0 || deadline <= now {
            return;
        }
        let map = self.map.pin();
        map.insert(
            id,
            Entry {
                value,
                deadline,
                age: AtomicU64::new(self.next_age.fetch_add(1, Ordering::Relaxed)),
                referenced: AtomicBool::new(false),
            },
        );
        if map.len() > self.max_entries {
            self.sweep(now);
        }
    }

    pub(super) fn remove(&self, id: &KeyId) {
        self.map.pin().remove(id);
    }

    /// Removes `id`'s entry if its value is one `stale` says no longer holds.
    pub(super) fn remove_if(&self, id: &KeyId, stale: impl Fn(&V) -> bool) {
        let _ = self.map.pin().remove_if(id, |_, entry| stale(&entry.value));
    }

    pub(super) fn clear(&self) {
        self.map.pin().clear();
    }

    /// Drops the expired entries, then counts the rest.
    pub(super) fn purge_and_count(&self, now: Tick) -> usize {
        let map = self.map.pin();
        map.retain(|_, entry| now < entry.deadline);
        map.len()
    }

    /// Brings the map down to 7/8 of its bound (see the module documentation), unless
    /// another caller is already at it.
    fn sweep(&self, now: Tick) {
        let _sweeping = match self.sweeping.try_lock() {
            Ok(held) => held,
            // The lock guards no data: a panic in another sweep left nothing half-done.
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => return,
        };
        let map = self.map.pin();
        let mut ages = Vec::with_capacity(map.len());
        for (_, entry) in map.iter() {
            if now >= entry.deadline {
                continue;
            }
            if entry.referenced.swap(false, Ordering::Relaxed) {
                let back = self.next_age.fetch_add(1, Ordering::Relaxed);
                entry.age.store(back, Ordering::Relaxed);
            }
            ages.push(entry.age.load(Ordering::Relaxed));
        }
        let keep = self.max_entries - self.max_entries / 8;
        let excess = ages.len().saturating_sub(keep);
        // Entries stored after the pass above are younger than every age in it, so
        // they are never the ones dropped.
        let cutoff = match excess {
            0 => None,
            n => Some(*ages.select_nth_unstable(n - 1).1),
        };
        map.retain(|_, entry| {
            now < entry.deadline && cutoff.is_none_or(|c| entry.age.load(Ordering::Relaxed) > c)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An id from a counter: distinct and well-formed.
    fn id_of(n: u64) -> KeyId {
        let mut text = [b'0'; 16];
        let mut rest = n;
        for digit in text.iter_mut().rev() {
            *digit = crate::key::ALPHABET[(rest % 62) as usize];
            rest /= 62;
        }
        KeyId::new(std::str::from_utf8(&text).unwrap()).unwrap()
    }

    const SECOND: Tick = 1 << 32;

    #[test]
    fn an_entry_is_served_until_its_deadline_and_not_at_it() {
        let map = CacheMap::new(10);
        let t0 = 100 * SECOND;
        map.insert(id_of(1), "a", t0 + SECOND, t0);
        assert_eq!(map.get(&id_of(1), t0), Some("a"));
        assert_eq!(map.get(&id_of(1), t0 + SECOND - 1), Some("a"));
        assert!(map.contains(&id_of(1), t0 + SECOND - 1));
        assert_eq!(map.get(&id_of(1), t0 + SECOND), None);
        assert!(!map.contains(&id_of(1), t0 + SECOND));
        assert_eq!(map.purge_and_count(t0 + SECOND), 0);
    }

    #[test]
    fn a_zero_ttl_or_a_zero_bound_stores_nothing() {
        let map = CacheMap::new(10);
        map.insert(id_of(1), (), 5 * SECOND, 5 * SECOND);
        assert_eq!(map.purge_and_count(0), 0);
        let none = CacheMap::new(0);
        none.insert(id_of(1), (), 9 * SECOND, SECOND);
        assert_eq!(none.purge_and_count(SECOND), 0);
    }

    #[test]
    fn ttls_convert_to_ticks_and_saturate() {
        assert_eq!(ticks(Duration::from_secs(3)), 3 * SECOND);
        assert_eq!(ticks(Duration::from_millis(500)), SECOND / 2);
        assert_eq!(ticks(Duration::MAX), Tick::MAX);
        assert_eq!(ticks(Duration::ZERO), 0);
    }

    #[test]
    fn the_coarse_clock_moves_forward() {
        let start = now();
        std::thread::sleep(Duration::from_millis(30));
        assert!(now() > start);
    }

    #[test]
    fn a_flood_of_a_million_ids_never_holds_more_than_the_bound() {
        let map = CacheMap::new(1_000);
        let deadline = Tick::MAX;
        for n in 0..1_000_000 {
            map.insert(id_of(n), n, deadline, 0);
            assert!(map.map.len() <= 1_000, "{} entries", map.map.len());
        }
        let held = map.purge_and_count(0);
        assert!((875..=1_000).contains(&held), "{held} entries");
    }

    #[test]
    fn entries_read_since_the_last_sweep_survive_it() {
        let map = CacheMap::new(100);
        let hot: Vec<KeyId> = (0..10).map(|n| id_of(1_000_000 + n)).collect();
        for id in &hot {
            map.insert(*id, 0, Tick::MAX, 0);
        }
        for n in 0..100_000 {
            map.insert(id_of(n), 1, Tick::MAX, 0);
            // Each hot id is read at least once between two sweeps (one every ~13
            // inserts).
            if n % 5 == 0 {
                for id in &hot {
                    assert_eq!(map.get(id, 0), Some(0), "a hot entry was evicted");
                }
            }
        }
    }

    #[test]
    fn expired_entries_go_first() {
        let map = CacheMap::new(8);
        for n in 0..7 {
            map.insert(id_of(n), n, 10, 0);
        }
        let live = id_of(100);
        map.insert(live, 100, 1_000, 0);
        // Past the bound at tick 20: the seven expired entries make the room.
        map.insert(id_of(101), 101, 1_000, 20);
        assert_eq!(map.get(&live, 20), Some(100));
        assert_eq!(map.purge_and_count(20), 2);
    }

    #[test]
    fn the_oldest_entries_not_read_since_the_last_sweep_go() {
        let map = CacheMap::new(8);
        for n in 0..8 {
            map.insert(id_of(n), n, Tick::MAX, 0);
        }
        assert_eq!(map.get(&id_of(0), 0), Some(0));
        // Past the bound: down to 7, so two go: the oldest unread, ids 1 and 2.
        map.insert(id_of(8), 8, Tick::MAX, 0);
        let held: Vec<u64> = (0..9).filter(|&n| map.contains(&id_of(n), 0)).collect();
        assert_eq!(held, [0, 3, 4, 5, 6, 7, 8]);
        // Id 0 went to the back of the queue: ids 3 and 4 are now the oldest.
        map.insert(id_of(9), 9, Tick::MAX, 0);
        map.insert(id_of(10), 10, Tick::MAX, 0);
        let held: Vec<u64> = (0..11).filter(|&n| map.contains(&id_of(n), 0)).collect();
        assert_eq!(held, [0, 5, 6, 7, 8, 9, 10]);
    }

    #[test]
    fn when_every_entry_was_read_the_oldest_still_make_room() {
        let map = CacheMap::new(16);
        for n in 0..16 {
            map.insert(id_of(n), n, Tick::MAX, 0);
            map.get(&id_of(n), 0);
        }
        map.insert(id_of(99), 99, Tick::MAX, 0);
        assert_eq!(map.purge_and_count(0), 14, "down to 7/8 of 16");
    }
}
