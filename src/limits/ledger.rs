//! [`LedgerState`]: the shared state of one key's limits and the arithmetic of a lease,
//! for every [`LimitBackend`](crate::limits::LimitBackend) to run the same way.

use std::time::{Duration, SystemTime};

use crate::limits::backend::{Exhausted, LeaseRequest};
use crate::limits::calendar::Period;
use crate::time::{ceil_secs, epoch_nanos};

/// What a backend stores per key: three numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LedgerState {
    /// The rate limit's GCRA theoretical arrival time, nanoseconds since the Unix epoch
    /// (0 for a key never leased).
    pub tat_nanos: u64,
    /// The quota's period that `spent` counts (a UTC day or month number).
    pub period: u32,
    /// Quota requests granted or charged in `period`.
    pub spent: u32,
}

/// What [`LedgerState::lease`] decided: the state to store, and the answer's grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LedgerOutcome {
    /// The state to write back.
    pub state: LedgerState,
    /// Tokens granted.
    pub granted: u32,
    /// The limit that stopped the grant short of what was wanted.
    pub exhausted: Option<Exhausted>,
}

impl LedgerState {
    /// Runs `request` against this state at `now` (the backend's time): charges
    /// `owed`, credits `returned`, then grants what both limits have room for, at most
    /// `wanted`. Pure, so a backend runs it under its own lock or transaction.
    pub fn lease(self, request: &LeaseRequest, now: SystemTime) -> LedgerOutcome {
        let now = epoch_nanos(now);
        let mut state = self;
        let period = request.quota.map(|q| Period::of(q.per(), now));
        if let Some(period) = period {
            if state.period != period.index {
                // A new period: what was spent in the last one no longer counts, and
                // tokens returned from it are worth nothing in this one.
                state.period = period.index;
                state.spent = 0;
            } else {
                state.spent = state.spent.saturating_sub(request.returned);
            }
            state.spent = state.spent.saturating_add(request.owed);
        }
        let mut rate_room = u32::MAX;
        if let Some(limit) = request.rate {
            let interval = limit.interval_nanos();
            let window = interval.saturating_mul(u64::from(limit.requests()));
            // Giving back: as if those requests had not been admitted, never before now.
            if state.tat_nanos > now {
                let credit = interval.saturating_mul(u64::from(request.returned));
                state.tat_nanos = state.tat_nanos.saturating_sub(credit).max(now);
            }
            // Charging without a check: these requests were admitted already.
            let debit = interval.saturating_mul(u64::from(request.owed));
            state.tat_nanos = state.tat_nanos.max(now).saturating_add(debit);
            // GCRA admits one more while `max(TAT, now) + T - now <= N·T`.
            let ahead = state.tat_nanos - now;
            rate_room = u32::try_from(window.saturating_sub(ahead) / interval).unwrap_or(u32::MAX);
        }
        let quota_room = match request.quota {
            Some(quota) => quota.requests().saturating_sub(state.spent),
            None => u32::MAX,
        };
        let granted = request.wanted.min(rate_room).min(quota_room);
        if let Some(limit) = request.rate {
            let interval = limit.interval_nanos();
            state.tat_nanos = state
                .tat_nanos
                .max(now)
                .saturating_add(interval.saturating_mul(u64::from(granted)));
        }
        if request.quota.is_some() {
            state.spent = state.spent.saturating_add(granted);
        }
        let rate_wait = |limit: crate::record::RateLimit| {
            let interval = limit.interval_nanos();
            let window = interval.saturating_mul(u64::from(limit.requests()));
            let wait = (state.tat_nanos.max(now) + interval - now).saturating_sub(window);
            Exhausted::Rate {
                retry_after: Duration::from_secs(ceil_secs(wait).max(1)),
            }
        };
        let exhausted = (granted < request.wanted).then(|| match (request.rate, period) {
            (Some(limit), Some(_)) if rate_room < quota_room => rate_wait(limit),
            (Some(limit), None) => rate_wait(limit),
            (_, Some(period)) => Exhausted::Quota {
                retry_after: Duration::from_secs(period.secs_left(now)),
            },
            // Neither limit: nothing can run out (`wanted` was granted).
            (None, None) => Exhausted::Rate {
                retry_after: Duration::from_secs(1),
            },
        });
        LedgerOutcome {
            state,
            granted,
            exhausted,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;
    use crate::key::KeyId;
    use crate::limits::backend::InstanceId;
    use crate::record::{Quota, QuotaPeriod, RateLimit};

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn request(rate: Option<RateLimit>, quota: Option<Quota>, wanted: u32) -> LeaseRequest {
        LeaseRequest::new(
            KeyId::new("abcdefghijklmnop").unwrap(),
            InstanceId::random(),
            rate,
            quota,
            wanted,
            at(0),
        )
    }

    #[test]
    fn grants_the_burst_then_one_per_emission_interval() {
        let rate = RateLimit::new(10, 10).unwrap(); // one a second, burst 10
        let now = at(1_800_000_000);
        let out = LedgerState::default().lease(&request(Some(rate), None, 25), now);
        assert_eq!(out.granted, 10);
        assert_eq!(
            out.exhausted,
            Some(Exhausted::Rate {
                retry_after: Duration::from_secs(1)
            })
        );
        let out2 = out
            .state
            .lease(&request(Some(rate), None, 25), now + Duration::from_secs(3));
        assert_eq!(out2.granted, 3);
    }

    #[test]
    fn owed_is_charged_and_returned_is_credited() {
        let rate = RateLimit::new(10, 10).unwrap();
        let quota = Quota::new(100, QuotaPeriod::Day).unwrap();
        let now = at(1_800_000_000);
        let out = LedgerState::default().lease(&request(Some(rate), Some(quota), 0).owing(8), now);
        assert_eq!((out.granted, out.state.spent), (0, 8));
        let out = out.state.lease(&request(Some(rate), Some(quota), 10), now);
        assert_eq!(out.granted, 2, "8 of the burst of 10 were owed");
        let out = out
            .state
            .lease(&request(Some(rate), Some(quota), 10).returning(2), now);
        assert_eq!(out.granted, 2, "what was given back can be leased again");
        assert_eq!(out.state.spent, 10);
    }

    #[test]
    fn the_quota_stops_the_grant_and_resets_with_its_period() {
        let quota = Quota::new(5, QuotaPeriod::Day).unwrap();
        let day_end = at(1_805_673_600 - 10);
        let out = LedgerState::default().lease(&request(None, Some(quota), 8), day_end);
        assert_eq!(out.granted, 5);
        assert_eq!(
            out.exhausted,
            Some(Exhausted::Quota {
                retry_after: Duration::from_secs(10)
            })
        );
        let out = out.state.lease(
            &request(None, Some(quota), 8),
            day_end + Duration::from_secs(10),
        );
        assert_eq!(out.granted, 5, "a new UTC day");
    }
}
