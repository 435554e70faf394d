//! One key's last-used state, shared by the request path and the flush loop.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, PoisonError};

use crate::record::RecentIps;
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
    /// Client addresses seen since the flusher last took them, newest first.
    ips: Mutex<RecentIps>,
    /// How many times the flusher took them: a thread that noted an address in an
    /// earlier round notes it again, so that a key used from one address keeps
    /// reporting it, once per flush.
    pub(crate) ips_round: AtomicU64,
}

impl Slot {
    pub(crate) fn new(ms: u64) -> Self {
        Self {
            latest: AtomicU64::new(ms),
            written: AtomicU64::new(0),
            written_in: AtomicU64::new(0),
            counts: KeyCounts::default(),
            ips: Mutex::new(RecentIps::new()),
            ips_round: AtomicU64::new(0),
        }
    }

    /// Notes `ip` as the newest address. Off the common path: each thread calls it
    /// once per flush round per address change (see `recent`), so the lock is rare.
    pub(crate) fn note_ip(&self, ip: IpAddr) {
        self.ips
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(ip);
    }

    /// Takes the addresses noted since the last take, and starts a new round.
    pub(crate) fn take_ips(&self) -> RecentIps {
        let mut ips = self.ips.lock().unwrap_or_else(PoisonError::into_inner);
        // Under the lock, so that a thread that sees the new round notes its address
        // after this take, into the next one.
        self.ips_round.fetch_add(1, Relaxed);
        std::mem::take(&mut *ips)
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
