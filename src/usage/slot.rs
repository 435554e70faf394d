//! One key's last-used state, shared by the request path and the flush loop.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::usage::counts::KeyCounts;

/// A slot whose key was evicted; a use that finds it inserts a fresh slot.
pub(crate) const TOMBSTONE: u64 = u64::MAX;

/// One key's uses, in milliseconds since the Unix epoch.
pub(crate) struct Slot {
    /// The latest use; only ever raised (or set to [`TOMBSTONE`] by the flusher).
    pub(crate) latest: AtomicU64,
    /// The latest use the sink has accepted. Written only by the flusher.
    pub(crate) written: AtomicU64,
    /// The flush round of that acceptance, to tell idle keys. Flusher only.
    pub(crate) written_in: AtomicU64,
    /// Requests per UTC day, one counter per thread.
    pub(crate) counts: KeyCounts,
}

impl Slot {
    pub(crate) fn new(ms: u64) -> Self {
        Self {
            latest: AtomicU64::new(ms),
            written: AtomicU64::new(0),
            written_in: AtomicU64::new(0),
            counts: KeyCounts::default(),
        }
    }

    /// Raises `latest` to `ms`. False if the slot was evicted, so the caller inserts a
    /// new one. A read first: when the time has not moved (many requests in the same
    /// millisecond) the cache line is only read, never written, so threads sharing a
    /// key do not fight over it.
    pub(crate) fn bump(&self, ms: u64) -> bool {
        let current = self.latest.load(Relaxed);
        if current == TOMBSTONE {
            return false;
        }
        ms <= current || self.latest.fetch_max(ms, Relaxed) != TOMBSTONE
    }
}
