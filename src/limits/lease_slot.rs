//! [`LeaseSlot`]: one key's leased tokens on this instance, spent on the request path
//! with atomics only.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use crate::limits::backend::Exhausted;
use crate::time::NANOS_PER_SEC;

/// What [`LeaseSlot::take`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Take {
    /// A leased token was spent; `refill`: ask for more now.
    Spent { refill: bool },
    /// The backend's last answer was short: `limit` ran out. `ask`: ask the backend
    /// again now (now and then while refused); `current`: the backend's wait is not
    /// over (otherwise the refusal is one awaiting a lease).
    Short {
        limit: Exhausted,
        ask: bool,
        current: bool,
    },
    /// The tokens ran out before a refill came.
    Empty,
}

/// After a short answer, the backend is asked again at most this often per key and
/// instance while requests keep coming.
const RECHECK_SECS: u64 = 2;

/// The lease state in one key's limiter entry. Written by the request path (spend,
/// owe) and by [`SharedLimits`](crate::limits::SharedLimits)'s task (grant, return).
#[derive(Debug, Default)]
pub(crate) struct LeaseSlot {
    /// Leased tokens not yet spent.
    tokens: AtomicU32,
    /// Requests admitted without a lease (under the local share), not yet charged.
    owed: AtomicU32,
    /// Tokens spent since the last lease answer: the key's traffic, for the batch size.
    spent: AtomicU32,
    /// When the last lease answer came, nanoseconds since the epoch; 0 for never (the
    /// key is new to this instance, so it runs on the local share until one comes).
    leased_at: AtomicU64,
    /// Below this many tokens left, a refill is asked for.
    low_water: AtomicU32,
    /// `until_secs << 1 | is_quota` while the backend said a shared limit ran out; 0
    /// otherwise.
    exhausted: AtomicU64,
    /// After a short answer, when to ask the backend again (seconds since the epoch).
    recheck_at: AtomicU64,
    /// A refill is queued or in flight.
    pending: AtomicBool,
}

impl LeaseSlot {
    /// Spends one leased token, if there is one (see [`Take`]).
    pub(crate) fn take(&self, now_secs: u64) -> Take {
        let taken = self
            .tokens
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
        match taken {
            Ok(before) => {
                self.spent.fetch_add(1, Ordering::Relaxed);
                let refill = before - 1 <= self.low_water.load(Ordering::Relaxed)
                    && !self.is_exhausted(now_secs)
                    && !self.pending.swap(true, Ordering::AcqRel);
                Take::Spent { refill }
            }
            Err(_) => {
                let exhausted = self.exhausted.load(Ordering::Acquire);
                if exhausted == 0 {
                    return Take::Empty;
                }
                // The last answer was short: refuse, and ask again once its wait is
                // over, and now and then before (at most one call in flight), so that a
                // limit raised meanwhile, or room given back by another instance, is
                // seen before a long wait (a quota's) is over.
                let until = exhausted >> 1;
                let ask = (until <= now_secs
                    || now_secs >= self.recheck_at.load(Ordering::Acquire))
                    && !self.pending.swap(true, Ordering::AcqRel);
                if until <= now_secs {
                    // The backend's wait is over but no new answer came yet: the limit
                    // may have room again, so this refusal counts as one awaiting a
                    // lease.
                    let retry_after = Duration::from_secs(1);
                    return Take::Short {
                        limit: Exhausted::Rate { retry_after },
                        ask,
                        current: false,
                    };
                }
                let retry_after = Duration::from_secs(until - now_secs);
                let limit = if exhausted & 1 == 1 {
                    Exhausted::Quota { retry_after }
                } else {
                    Exhausted::Rate { retry_after }
                };
                Take::Short {
                    limit,
                    ask,
                    current: true,
                }
            }
        }
    }

    fn is_exhausted(&self, now_secs: u64) -> bool {
        self.exhausted.load(Ordering::Acquire) >> 1 > now_secs
    }

    /// Gives back a token taken by a request the local limits then refused.
    pub(crate) fn untake(&self) {
        self.tokens.fetch_add(1, Ordering::AcqRel);
        let _ = self
            .spent
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }

    /// Records a request admitted without a lease; whether to ask for a lease now.
    pub(crate) fn owe(&self) -> bool {
        // Saturating: an outage long enough to owe 4 billion requests must not wrap
        // the count to nothing.
        let _ = self
            .owed
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_add(1));
        !self.pending.swap(true, Ordering::AcqRel)
    }

    /// Like [`owe`](Self::owe) while fewer than `cap` are owed; `None` past it.
    pub(crate) fn owe_within(&self, cap: u32) -> Option<bool> {
        self.owed
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < cap).then_some(n + 1)
            })
            .ok()?;
        Some(!self.pending.swap(true, Ordering::AcqRel))
    }

    /// Gives back an owed request the local limits then refused.
    pub(crate) fn unowe(&self) {
        let _ = self
            .owed
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }

    /// What is owed, taken for a lease call (put back with [`restore`](Self::restore)
    /// if the call fails).
    pub(crate) fn take_owed(&self) -> u32 {
        self.owed.swap(0, Ordering::AcqRel)
    }

    /// Puts back what a failed call was to charge, or give back.
    pub(crate) fn restore(&self, owed: u32, returned: u32) {
        let _ = self
            .owed
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                Some(n.saturating_add(owed))
            });
        self.tokens.fetch_add(returned, Ordering::AcqRel);
    }

    /// The unspent tokens, taken to give back or to drop.
    pub(crate) fn take_tokens(&self) -> u32 {
        self.tokens.swap(0, Ordering::AcqRel)
    }

    /// Tokens spent since the last answer, and that answer's time (0: none).
    pub(crate) fn traffic(&self) -> (u32, u64) {
        (
            self.spent.swap(0, Ordering::AcqRel),
            self.leased_at.load(Ordering::Acquire),
        )
    }

    pub(crate) fn leased_at(&self) -> u64 {
        self.leased_at.load(Ordering::Acquire)
    }

    pub(crate) fn owed(&self) -> u32 {
        self.owed.load(Ordering::Acquire)
    }

    pub(crate) fn tokens(&self) -> u32 {
        self.tokens.load(Ordering::Acquire)
    }

    /// A lease answer: `granted` tokens for a batch of `batch`, at `now_nanos`.
    pub(crate) fn granted(
        &self,
        granted: u32,
        batch: u32,
        exhausted: Option<Exhausted>,
        now_nanos: u64,
    ) {
        self.tokens.fetch_add(granted, Ordering::AcqRel);
        self.low_water.store(batch / 2, Ordering::Relaxed);
        let now_secs = now_nanos / NANOS_PER_SEC;
        let packed = match exhausted {
            None => 0,
            Some(Exhausted::Rate { retry_after }) => (now_secs + retry_after.as_secs()) << 1,
            Some(Exhausted::Quota { retry_after }) => ((now_secs + retry_after.as_secs()) << 1) | 1,
        };
        self.exhausted.store(packed, Ordering::Release);
        self.recheck_at
            .store(now_secs + RECHECK_SECS, Ordering::Release);
        self.leased_at.store(now_nanos.max(1), Ordering::Release);
        self.pending.store(false, Ordering::Release);
    }

    /// The refill could not be asked for, or failed: a later request may ask again.
    pub(crate) fn not_pending(&self) {
        self.pending.store(false, Ordering::Release);
    }

    /// Back to the local share: the lease lapsed with the key idle, or the backend
    /// failed.
    pub(crate) fn lapse(&self) {
        self.leased_at.store(0, Ordering::Release);
    }

    /// Whether the slot holds nothing the ledger needs to hear of.
    pub(crate) fn is_settled(&self) -> bool {
        self.tokens() == 0 && self.owed() == 0 && !self.pending.load(Ordering::Acquire)
    }
}
