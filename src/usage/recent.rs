//! A per-thread cache of the slots a thread used last, so that recording a use of a key
//! the thread has seen recently takes no lock, no locked instruction and no shared write.
//!
//! The lock-free map behind the tracker costs a locked exchange per lookup (to leave its
//! reclamation epoch); this cache answers most uses before that. It is direct-mapped:
//! each key id has one place, a newer key takes it over, and a stale entry costs only a
//! trip to the map. An entry holds its slot alive (`Arc`), so it can never point at
//! freed memory; a slot the flusher evicted reads as [`TOMBSTONE`](super::slot::TOMBSTONE)
//! and sends the use to the map, where a fresh slot is made.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::key::KeyId;
use crate::usage::counts::{DayCounter, UsageDay};
use crate::usage::slot::Slot;
use crate::usage::striped::thread_index;

/// Entries per thread: enough for the keys one worker serves at once, small enough
/// (2 KiB) to stay in cache.
const ENTRIES: usize = 64;

struct Entry {
    tracker: u64,
    key: KeyId,
    slot: Arc<Slot>,
    /// This thread's counter in `slot`: written by this thread alone.
    counter: Arc<DayCounter>,
}

thread_local! {
    static RECENT: RefCell<[Option<Entry>; ENTRIES]> = const { RefCell::new([const { None }; ENTRIES]) };
}

/// A number no other tracker in this process has, to tell whose slot an entry holds.
pub(crate) fn tracker_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Relaxed)
}

/// The place of `key`: its bytes are random characters, so a few of them suffice.
fn place(key: &KeyId) -> usize {
    let bytes = key.as_bytes();
    let mixed = u64::from_le_bytes([
        bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7],
    ])
    .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (mixed >> 58) as usize % ENTRIES
}

/// Raises the cached slot of `key` in `tracker` to `ms` and counts the request. False
/// if this thread has no live slot for it (the caller then goes to the map, and
/// nothing was counted).
pub(crate) fn bump(tracker: u64, key: &KeyId, ms: u64) -> bool {
    RECENT
        .try_with(|recent| match &recent.borrow()[place(key)] {
            Some(entry) if entry.tracker == tracker && entry.key == *key => {
                let live = entry.slot.bump(ms);
                if live {
                    entry.counter.add(UsageDay::of_millis(ms));
                }
                live
            }
            _ => false,
        })
        // During thread teardown the cache may be gone: use the map.
        .unwrap_or(false)
}

/// Caches `slot` as this thread's slot of `key` in `tracker`, and counts the request
/// at `ms` in this thread's counter of it.
pub(crate) fn remember(tracker: u64, key: &KeyId, slot: &Arc<Slot>, ms: u64) {
    let day = UsageDay::of_millis(ms);
    let cached = RECENT.try_with(|recent| {
        let counter = slot.counts.counter_for(thread_index());
        counter.add(day);
        recent.borrow_mut()[place(key)] = Some(Entry {
            tracker,
            key: *key,
            slot: Arc::clone(slot),
            counter,
        });
    });
    if cached.is_err() {
        // Thread teardown: no cache, and perhaps no thread index; count under the lock.
        slot.counts.add_locked(day);
    }
}
