//! Daily request counts on the request path: one counter per thread per key, each
//! written by its thread alone (a load and a store, no locked instruction, no cache line
//! shared with another thread), read by the flusher.
//!
//! A counter holds the current UTC day's count and the previous day's, packed with
//! their day numbers, so that the flusher, which runs more often than once a day, sees
//! every count of a day that just ended. The flusher keeps what it has already taken in
//! the counter too (its own field), and sends only the difference: what it takes goes
//! into a sealed batch that is retried as it is, so no request is counted twice.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// Bits of a packed value that hold the count; the day number is above them.
const COUNT_BITS: u32 = 40;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;
const MS_PER_DAY: u64 = 86_400_000;

/// A UTC calendar day, as days since 1970-01-01.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UsageDay(u32);

impl UsageDay {
    /// The day `days` after 1970-01-01.
    pub fn from_days_since_epoch(days: u32) -> Self {
        Self(days)
    }

    /// The day that contains `at`; days before 1970 are 1970-01-01.
    pub fn of(at: std::time::SystemTime) -> Self {
        let secs = crate::time::epoch_secs(at);
        Self(u32::try_from(secs / 86_400).unwrap_or(u32::MAX))
    }

    pub(crate) fn of_millis(ms: u64) -> Self {
        Self(u32::try_from(ms / MS_PER_DAY).unwrap_or(u32::MAX))
    }

    /// Days since 1970-01-01.
    pub fn days_since_epoch(self) -> u32 {
        self.0
    }

    /// The day after.
    pub fn next(self) -> Self {
        Self(self.0.saturating_add(1))
    }

    /// The day before (1970-01-01 stays itself).
    pub fn previous(self) -> Self {
        Self(self.0.saturating_sub(1))
    }

    /// Year, month (1–12) and day (1–31), by Howard Hinnant's `civil_from_days`.
    pub fn ymd(self) -> (i64, u32, u32) {
        let z = i64::from(self.0) + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = yoe + era * 400 + i64::from(month <= 2);
        (year, month, day)
    }
}

impl fmt::Display for UsageDay {
    /// `YYYY-MM-DD`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, m, d) = self.ymd();
        write!(f, "{y:04}-{m:02}-{d:02}")
    }
}

impl fmt::Debug for UsageDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UsageDay({self})")
    }
}

fn pack(day: u32, count: u64) -> u64 {
    (u64::from(day) << COUNT_BITS) | (count & COUNT_MASK)
}

fn unpack(v: u64) -> (u32, u64) {
    ((v >> COUNT_BITS) as u32, v & COUNT_MASK)
}

/// One thread's counts of one key. Cache-line aligned so two threads' counters never
/// share a line.
#[repr(align(128))]
pub(crate) struct DayCounter {
    /// The thread index of its writer (see `striped::thread_index`).
    owner: usize,
    current: AtomicU64,
    previous: AtomicU64,
    /// What the flusher has taken of the two days it last read, packed like
    /// `current`. Flusher only.
    taken: [AtomicU64; 2],
}

impl DayCounter {
    fn new(owner: usize) -> Self {
        Self {
            owner,
            current: AtomicU64::new(0),
            previous: AtomicU64::new(0),
            taken: [AtomicU64::new(0), AtomicU64::new(0)],
        }
    }

    /// Counts one request on `day`. Only the owning thread (or a holder of the slot's
    /// lock, for the shared counter) calls this, so a load and a store lose nothing.
    /// The stores release, so that a flusher that sees a new `current` also sees the
    /// `previous` written before it (a plain store on x86).
    pub(crate) fn add(&self, day: UsageDay) {
        let v = self.current.load(Ordering::Relaxed);
        if v >> COUNT_BITS == u64::from(day.0) && v & COUNT_MASK != COUNT_MASK {
            self.current.store(v + 1, Ordering::Release);
        } else {
            self.roll(v, day);
        }
    }

    #[cold]
    fn roll(&self, v: u64, day: UsageDay) {
        let (current, _) = unpack(v);
        if day.0 > current || v == 0 {
            self.previous.store(v, Ordering::Release);
            self.current.store(pack(day.0, 1), Ordering::Release);
        } else if day.0 < current {
            // A use stamped before this counter's current day: another thread's last
            // use before midnight, on a counter a later thread took over. The previous
            // day if it is that one; else the current day rather than lost.
            let p = self.previous.load(Ordering::Relaxed);
            if p >> COUNT_BITS == u64::from(day.0) && p != 0 && p & COUNT_MASK != COUNT_MASK {
                self.previous.store(p + 1, Ordering::Release);
            } else if v & COUNT_MASK != COUNT_MASK {
                self.current.store(v + 1, Ordering::Release);
            }
        }
        // A count at its 2^40 maximum stays there.
    }

    /// Takes what was counted since the last take: (day, requests) pairs, at most two.
    fn take(&self, out: &mut Vec<(UsageDay, u64)>) {
        // `current` first: if the writer rolls over in between, `previous` then holds
        // the final count of the day read, and the higher of the two readings counts.
        let current = unpack(self.current.load(Ordering::Acquire));
        let previous = unpack(self.previous.load(Ordering::Acquire));
        let taken = [
            unpack(self.taken[0].load(Ordering::Relaxed)),
            unpack(self.taken[1].load(Ordering::Relaxed)),
        ];
        let mut readings = [previous, current];
        if readings[0].0 == readings[1].0 {
            readings[0].1 = readings[0].1.max(readings[1].1);
            readings[1] = (0, 0);
        }
        let mut now_taken = [0u64; 2];
        for (i, (day, count)) in readings.into_iter().enumerate() {
            if count == 0 {
                continue;
            }
            // A day not among the two taken last is new to the flusher: a counter only
            // ever holds its current day and the one before.
            let before = taken
                .iter()
                .find(|(d, n)| *d == day && *n > 0)
                .map_or(0, |&(_, n)| n);
            let count = count.max(before);
            if count > before {
                out.push((UsageDay(day), count - before));
            }
            now_taken[i] = pack(day, count);
        }
        for (slot, value) in self.taken.iter().zip(now_taken) {
            slot.store(value, Ordering::Relaxed);
        }
    }
}

/// A key's counters: one per thread that counted it, and one shared, behind the lock,
/// for uses that could not use a thread's own.
#[derive(Default)]
pub(crate) struct KeyCounts {
    counters: Mutex<Vec<Arc<DayCounter>>>,
}

impl KeyCounts {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Arc<DayCounter>>> {
        self.counters.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// This thread's counter (made on its first use of the key). At most one per thread
    /// index, and thread indexes are reused, so the list is bounded by the threads alive
    /// at once.
    pub(crate) fn counter_for(&self, owner: usize) -> Arc<DayCounter> {
        let mut counters = self.lock();
        if let Some(c) = counters.iter().find(|c| c.owner == owner) {
            return Arc::clone(c);
        }
        let counter = Arc::new(DayCounter::new(owner));
        counters.push(Arc::clone(&counter));
        counter
    }

    /// Counts under the lock, for a thread without its own counter (thread teardown).
    pub(crate) fn add_locked(&self, day: UsageDay) {
        let mut counters = self.lock();
        let shared = match counters.iter().find(|c| c.owner == usize::MAX) {
            Some(c) => Arc::clone(c),
            None => {
                let c = Arc::new(DayCounter::new(usize::MAX));
                counters.push(Arc::clone(&c));
                c
            }
        };
        // The lock is held: this is the only writer of the shared counter.
        shared.add(day);
    }

    /// Everything counted since the last take, summed per day, oldest first.
    pub(crate) fn take(&self) -> Vec<(UsageDay, u64)> {
        let counters: Vec<Arc<DayCounter>> = self.lock().clone();
        let mut parts = Vec::new();
        for counter in &counters {
            counter.take(&mut parts);
        }
        parts.sort_by_key(|&(day, _)| day);
        let mut out: Vec<(UsageDay, u64)> = Vec::new();
        for (day, n) in parts {
            match out.last_mut() {
                Some((d, total)) if *d == day => *total += n,
                _ => out.push((day, n)),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_print_as_iso_dates() {
        assert_eq!(UsageDay(0).to_string(), "1970-01-01");
        assert_eq!(UsageDay(20_422).to_string(), "2025-11-30");
        assert_eq!(UsageDay(20_513).to_string(), "2026-03-01");
        assert_eq!(UsageDay(11_016).to_string(), "2000-02-29");
    }

    #[test]
    fn a_take_returns_each_count_once_across_a_day_change() {
        let counts = KeyCounts::default();
        let c = counts.counter_for(1);
        let d = UsageDay(20_000);
        for _ in 0..5 {
            c.add(d);
        }
        assert_eq!(counts.take(), [(d, 5)]);
        c.add(d);
        c.add(d.next());
        c.add(d.next());
        counts.add_locked(d.next());
        assert_eq!(counts.take(), [(d, 1), (d.next(), 3)]);
        assert_eq!(counts.take(), []);
    }
}
