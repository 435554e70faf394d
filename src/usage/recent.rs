//! A per-thread cache of the slots a thread used last, so that recording a use of a key
//! the thread has seen recently takes no lock, no locked instruction and no shared write.
//!
//! The lock-free map behind the tracker costs a locked exchange per lookup (to leave its
//! reclamation epoch); this cache answers most uses before that. It is direct-mapped:
//! each key id has one place, a newer key takes it over, and a stale entry costs only a
//! trip to the map. An entry holds its slot alive (`Arc`), so it can never point at
//! freed memory; a slot the flusher evicted reads as [`TOMBSTONE`](super::slot::TOMBSTONE)
//! and sends the use to the map, where a fresh slot is made.

use std::cell::{Cell, RefCell};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::key::KeyId;
use crate::usage::counts::{DayCounter, UsageDay};
use crate::usage::slot::Slot;
use crate::usage::striped::thread_index;

/// Entries per thread: enough for the keys one worker serves at once, small enough
/// (4 KiB) to stay in cache.
const ENTRIES: usize = 64;

pub(crate) struct Entry {
    tracker: u64,
    key: KeyId,
    slot: Arc<Slot>,
    /// This thread's counter in `slot`: written by this thread alone.
    counter: Arc<DayCounter>,
    /// The client address this thread last noted in `slot` (as IPv6 bits, IPv4
    /// mapped), and the slot's round then (truncated): while both hold, a use from that
    /// address notes nothing. Integers, so that the check is two compares.
    noted: Cell<(u128, u32)>,
}

/// No address noted yet: the all-ones address with the last round never matches a
/// real client's first use.
const NOTHING_NOTED: (u128, u32) = (u128::MAX, u32::MAX);

/// What a use tells about its client address: [`NoAddress`], or an [`IpAddr`]. A type
/// rather than an `Option`, so that `record`'s path compiles without the address check.
pub(crate) trait Address: Copy {
    /// Notes the address in `entry`'s slot unless its thread already did this round.
    fn note(self, entry: &Entry);
    /// The address, for the map's path.
    fn ip(self) -> Option<IpAddr>;
}

/// A use without a client address.
#[derive(Clone, Copy)]
pub(crate) struct NoAddress;

impl Address for NoAddress {
    #[inline(always)]
    fn note(self, _: &Entry) {}

    fn ip(self) -> Option<IpAddr> {
        None
    }
}

impl Address for IpAddr {
    #[inline(always)]
    fn note(self, entry: &Entry) {
        let bits = match self {
            IpAddr::V4(v4) => v4.to_ipv6_mapped().to_bits(),
            IpAddr::V6(v6) => v6.to_bits(),
        };
        let round = entry.slot.ips_round.load(Relaxed) as u32;
        if entry.noted.get() != (bits, round) {
            entry.slot.note_ip(self);
            entry.noted.set((bits, round));
        }
    }

    fn ip(self) -> Option<IpAddr> {
        Some(self)
    }
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

/// Raises the cached slot of `key` in `tracker` to `ms`, counts the request and notes
/// the client address `ip`. False if this thread has no live slot for it (the caller
/// then goes to the map, and nothing was counted).
pub(crate) fn bump(tracker: u64, key: &KeyId, ms: u64, ip: impl Address) -> bool {
    RECENT
        .try_with(|recent| match &recent.borrow()[place(key)] {
            Some(entry) if entry.tracker == tracker && entry.key == *key => {
                let live = entry.slot.bump(ms);
                if live {
                    entry.counter.add(UsageDay::of_millis(ms));
                    ip.note(entry);
                }
                live
            }
            _ => false,
        })
        // During thread teardown the cache may be gone: use the map.
        .unwrap_or(false)
}

/// Caches `slot` as this thread's slot of `key` in `tracker`, counts the request at
/// `ms` in this thread's counter of it, and notes the client address `ip`.
pub(crate) fn remember(tracker: u64, key: &KeyId, slot: &Arc<Slot>, ms: u64, ip: Option<IpAddr>) {
    let day = UsageDay::of_millis(ms);
    let cached = RECENT.try_with(|recent| {
        let counter = slot.counts.counter_for(thread_index());
        counter.add(day);
        let entry = Entry {
            tracker,
            key: *key,
            slot: Arc::clone(slot),
            counter,
            noted: Cell::new(NOTHING_NOTED),
        };
        if let Some(ip) = ip {
            ip.note(&entry);
        }
        recent.borrow_mut()[place(key)] = Some(entry);
    });
    if cached.is_err() {
        // Thread teardown: no cache, and perhaps no thread index; count under the lock.
        slot.counts.add_locked(day);
        if let Some(ip) = ip {
            slot.note_ip(ip);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use crate::key::{KeyPrefix, PlaintextKey};
    use crate::record::{KeyName, KeyRecord};
    use crate::scope::Scopes;
    use crate::store::memory::InMemoryKeyStore;
    use crate::store::{KeyStore, KeyStoreAdmin};
    use crate::usage::{KeyUsage, UsageSink, UsageTracker};

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    async fn stored_key(store: &InMemoryKeyStore) -> KeyRecord {
        let key = PlaintextKey::generate(&KeyPrefix::default());
        let record = KeyRecord::new(
            *key.id(),
            KeyName::new("k").unwrap(),
            Scopes::empty(),
            key.digest(),
            at(0),
            at(86_400),
        );
        store.insert(&record).await.unwrap();
        record
    }

    fn recent(store: &InMemoryKeyStore, record: &KeyRecord) -> Vec<IpAddr> {
        let found = store
            .lookup_ready(record.id())
            .unwrap()
            .unwrap()
            .expect("stored");
        found.recent_ips().iter().collect()
    }

    #[tokio::test]
    async fn each_flush_carries_the_addresses_seen_since_newest_first() {
        let store = InMemoryKeyStore::new();
        let tracker = UsageTracker::new(store.clone());
        let record = stored_key(&store).await;
        let id = record.id();
        for (n, from) in ["10.0.0.1", "10.0.0.2", "10.0.0.1", "10.0.0.1"]
            .iter()
            .enumerate()
        {
            tracker.record_from(id, at(n as u64), ip(from));
        }
        tracker.record(id, at(9)); // no address known: nothing noted
        tracker.flush().await.unwrap();
        assert_eq!(recent(&store, &record), [ip("10.0.0.1"), ip("10.0.0.2")]);

        // A key still used from an address it was seen at before keeps reporting it,
        // so that it moves back in front of addresses seen meanwhile elsewhere.
        store
            .record_usage(&[KeyUsage::new(*id, at(10))
                .with_recent_ips(crate::record::RecentIps::from_newest([ip("192.0.2.9")]))])
            .await
            .unwrap();
        assert_eq!(recent(&store, &record)[0], ip("192.0.2.9"));
        tracker.record_from(id, at(11), ip("10.0.0.2"));
        tracker.flush().await.unwrap();
        assert_eq!(
            recent(&store, &record),
            [ip("10.0.0.2"), ip("192.0.2.9"), ip("10.0.0.1")]
        );
        // From another thread too (its own cache entry).
        let other = tracker.clone();
        let key = *id;
        std::thread::spawn(move || other.record_from(&key, at(12), ip("::ffff:10.0.0.7")))
            .join()
            .unwrap();
        tracker.flush().await.unwrap();
        assert_eq!(
            recent(&store, &record)[0],
            ip("10.0.0.7"),
            "IPv4-mapped as IPv4"
        );
    }

    #[tokio::test]
    async fn at_most_five_distinct_addresses_are_kept() {
        let store = InMemoryKeyStore::new();
        let tracker = UsageTracker::new(store.clone());
        let record = stored_key(&store).await;
        for n in 1..=8u64 {
            tracker.record_from(record.id(), at(n), ip(&format!("10.0.0.{n}")));
        }
        tracker.flush().await.unwrap();
        let expected: Vec<IpAddr> = (4..=8).rev().map(|n| ip(&format!("10.0.0.{n}"))).collect();
        assert_eq!(recent(&store, &record), expected);
    }
}
