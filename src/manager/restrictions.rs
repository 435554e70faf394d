//! Restrictions inside the ceiling (DESIGN §12): a restricted actor's keys are at least
//! as restricted as itself, and no actor loosens its own key.
//!
//! The scope ceiling (§10) keeps an actor from minting more power than it holds; limits
//! and allowlists are power too. An admin key limited to 3 requests an hour, or to the
//! office's addresses, would otherwise lift its own restrictions with a `PATCH`, or mint
//! an unrestricted twin holding the same scopes, and a thief of that key with it.
//!
//! The order, exactly as §12 defines it: where the actor has a rate limit, the key has
//! one with `requests` (the burst) no higher and `requests / per_secs` no higher; where
//! the actor has a quota, the key has one with the same period and `requests` no
//! higher; where the actor has an allowlist, every network of the key's lies inside one
//! of the actor's. A missing limit is looser than any limit. Where the actor has none of
//! a kind, the key may have any.

use std::fmt;

use ipnet::IpNet;

use crate::key::KeyId;
use crate::manager::Actor;
use crate::record::{AllowedIps, KeyRecord, Limits, Quota, RateLimit};

/// One restriction of an actor that a key it creates, rotates or changes must keep (see
/// [`ManagerError::CannotLoosen`](crate::ManagerError::CannotLoosen)), holding the
/// actor's own limit, the loosest the key may have.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Restriction {
    /// The key needs a rate limit with `requests` (the burst) no higher than this one's,
    /// and `requests / per_secs` no higher.
    RateLimit(RateLimit),
    /// The key needs a quota over the same period, with `requests` no higher.
    Quota(Quota),
    /// Every network of the key's allowlist must lie inside one of these.
    AllowedIps(AllowedIps),
}

impl Restriction {
    /// The record's field it bounds: `rate_limit`, `quota` or `allowed_ips`, as the
    /// admin API names them.
    pub fn field(&self) -> &'static str {
        match self {
            Self::RateLimit(_) => "rate_limit",
            Self::Quota(_) => "quota",
            Self::AllowedIps(_) => "allowed_ips",
        }
    }
}

impl fmt::Display for Restriction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::RateLimit(limit) => write!(
                f,
                "a rate_limit with requests (the burst) at most {n} and at most {n} requests \
                 per {s} s",
                n = limit.requests(),
                s = limit.per_secs()
            ),
            Self::Quota(quota) => write!(
                f,
                "a quota per {} of at most {} requests",
                quota.per(),
                quota.requests()
            ),
            Self::AllowedIps(ips) => {
                f.write_str("allowed_ips whose every network lies inside one of ")?;
                for (i, net) in ips.nets().iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{net}")?;
                }
                Ok(())
            }
        }
    }
}

/// What kind of change a [`Loosened`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChangeKind {
    /// A new key.
    Create,
    /// A rotation: the new key copies the old key's limits.
    Rotate,
    /// A `PATCH` of another key.
    Update,
    /// A `PATCH` of the actor's own key.
    UpdateOwn,
}

/// Why [`ManagerError::CannotLoosen`](crate::ManagerError::CannotLoosen) refused a
/// change: the key, and each restriction it would not keep. Nothing was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loosened {
    pub(crate) key: Option<KeyId>,
    pub(crate) change: ChangeKind,
    pub(crate) restrictions: Vec<Restriction>,
}

impl Loosened {
    /// The key changed or rotated; `None` for a key being created.
    pub fn key(&self) -> Option<&KeyId> {
        self.key.as_ref()
    }

    /// What the actor tried: a creation, a rotation or a change of a key.
    pub fn change(&self) -> ChangeKind {
        self.change
    }

    /// Whether the key is the actor's own (a key may not loosen itself).
    pub fn is_own_key(&self) -> bool {
        self.change == ChangeKind::UpdateOwn
    }

    /// Each restriction the key would not keep, in the order rate limit, quota,
    /// allowlist.
    pub fn restrictions(&self) -> &[Restriction] {
        &self.restrictions
    }

    /// The restrictions, as one sentence's list: each [`Restriction`]'s text, joined
    /// by `"; "`.
    pub fn listed(&self) -> String {
        let listed: Vec<String> = self.restrictions.iter().map(ToString::to_string).collect();
        listed.join("; ")
    }
}

impl fmt::Display for Loosened {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let listed = self.listed();
        let key = self.key.map(|k| k.to_string()).unwrap_or_default();
        match self.change {
            ChangeKind::Create => write!(
                f,
                "the actor may not create a key less restricted than itself: the key needs \
                 {listed} (a missing limit is looser than any)"
            ),
            ChangeKind::Rotate => write!(
                f,
                "the actor may not rotate key {key}: the new key would copy its limits, \
                 which are looser than the actor's own; it would need {listed}"
            ),
            ChangeKind::Update => write!(
                f,
                "the actor may not leave key {key} less restricted than itself: after the \
                 change it would need {listed} (a missing limit is looser than any)"
            ),
            ChangeKind::UpdateOwn => write!(
                f,
                "the actor may not loosen its own key {key}: it must keep {listed}"
            ),
        }
    }
}

/// Refuses `limits` for a key `actor` creates (`key` `None`) or rotates (the old key's
/// limits, which the new key copies).
pub(super) fn check(
    actor: &Actor,
    key: Option<KeyId>,
    change: ChangeKind,
    limits: &Limits,
) -> Result<(), Loosened> {
    refuse(key, change, loosened(actor.limits(), limits))
}

/// Refuses a change of `before` into `after` by `actor`: `after` must be at least as
/// restricted as the actor and, when it is the actor's own key, as the key was.
pub(super) fn check_update(
    actor: &Actor,
    before: &KeyRecord,
    after: &KeyRecord,
) -> Result<(), Loosened> {
    let mut refused = loosened(actor.limits(), after.limits());
    let change = if actor.key_id() == Some(before.id()) {
        // The key as stored may be tighter than the actor's copy (an administrator
        // tightened it a moment ago, and the guard read it from a cache): it must not
        // loosen either.
        for restriction in loosened(before.limits(), after.limits()) {
            if !refused.iter().any(|r| r.field() == restriction.field()) {
                refused.push(restriction);
            }
        }
        refused.sort_by_key(|r| match r {
            Restriction::RateLimit(_) => 0,
            Restriction::Quota(_) => 1,
            Restriction::AllowedIps(_) => 2,
        });
        ChangeKind::UpdateOwn
    } else {
        ChangeKind::Update
    };
    refuse(Some(*before.id()), change, refused)
}

fn refuse(
    key: Option<KeyId>,
    change: ChangeKind,
    restrictions: Vec<Restriction>,
) -> Result<(), Loosened> {
    if restrictions.is_empty() {
        return Ok(());
    }
    Err(Loosened {
        key,
        change,
        restrictions,
    })
}

/// The restrictions of `ceiling` that `target` does not keep (§12's order).
pub(crate) fn loosened(ceiling: &Limits, target: &Limits) -> Vec<Restriction> {
    let mut refused = Vec::new();
    if let Some(limit) = ceiling.rate_limit
        && !target.rate_limit.is_some_and(|t| rate_within(t, limit))
    {
        refused.push(Restriction::RateLimit(limit));
    }
    if let Some(quota) = ceiling.quota
        && !target
            .quota
            .is_some_and(|t| t.per() == quota.per() && t.requests() <= quota.requests())
    {
        refused.push(Restriction::Quota(quota));
    }
    if let Some(ips) = &ceiling.allowed_ips
        && !target
            .allowed_ips
            .as_ref()
            .is_some_and(|t| t.nets().iter().all(|net| inside(net, ips)))
    {
        refused.push(Restriction::AllowedIps(ips.clone()));
    }
    refused
}

/// `target`'s burst is no higher than `ceiling`'s, nor its rate: `t.requests / t.per_secs
/// <= c.requests / c.per_secs`, compared as products so that nothing rounds.
fn rate_within(target: RateLimit, ceiling: RateLimit) -> bool {
    target.requests() <= ceiling.requests()
        && u64::from(target.requests()) * u64::from(ceiling.per_secs())
            <= u64::from(ceiling.requests()) * u64::from(target.per_secs())
}

/// `net` lies inside one of `ips`' networks. Both are canonical (an IPv4-mapped network
/// is its IPv4 form), so an IPv4 network is never inside an IPv6 one, nor the reverse.
fn inside(net: &IpNet, ips: &AllowedIps) -> bool {
    ips.nets().iter().any(|outer| outer.contains(net))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::QuotaPeriod;

    fn limits(
        rate: Option<(u32, u32)>,
        quota: Option<(u32, QuotaPeriod)>,
        ips: Option<&[&str]>,
    ) -> Limits {
        Limits {
            rate_limit: rate.map(|(n, s)| RateLimit::new(n, s).unwrap()),
            quota: quota.map(|(n, per)| Quota::new(n, per).unwrap()),
            allowed_ips: ips.map(|ips| AllowedIps::new(ips).unwrap()),
        }
    }

    fn fields(refused: Vec<Restriction>) -> Vec<&'static str> {
        refused.iter().map(Restriction::field).collect()
    }

    #[test]
    fn an_unrestricted_ceiling_allows_anything() {
        let none = Limits::default();
        assert!(loosened(&none, &none).is_empty());
        let some = limits(
            Some((1, 1)),
            Some((1, QuotaPeriod::Day)),
            Some(&["10.0.0.1"]),
        );
        assert!(loosened(&none, &some).is_empty());
    }

    #[test]
    fn a_rate_limit_bounds_the_burst_and_the_rate_and_a_missing_one_is_looser() {
        let ceiling = limits(Some((10, 60)), None, None);
        // Same, tighter burst, slower rate: within.
        for (n, s) in [(10, 60), (5, 60), (10, 600), (1, 6)] {
            assert!(
                loosened(&ceiling, &limits(Some((n, s)), None, None)).is_empty(),
                "{n}/{s}"
            );
        }
        // A higher burst (even at a slower rate), a faster rate (even with a smaller
        // burst), or none at all: looser.
        for target in [
            limits(Some((11, 600)), None, None),
            limits(Some((5, 29)), None, None),
            limits(None, None, None),
        ] {
            assert_eq!(fields(loosened(&ceiling, &target)), ["rate_limit"]);
        }
    }

    #[test]
    fn a_quota_needs_the_same_period_and_no_more_requests() {
        let ceiling = limits(None, Some((100, QuotaPeriod::Day)), None);
        assert!(loosened(&ceiling, &limits(None, Some((100, QuotaPeriod::Day)), None)).is_empty());
        assert!(loosened(&ceiling, &limits(None, Some((1, QuotaPeriod::Day)), None)).is_empty());
        for target in [
            limits(None, Some((101, QuotaPeriod::Day)), None),
            // A month is not a day: 100 a month may be spent in one day.
            limits(None, Some((100, QuotaPeriod::Month)), None),
            limits(Some((1, 1)), None, None),
        ] {
            assert_eq!(fields(loosened(&ceiling, &target)), ["quota"]);
        }
    }

    #[test]
    fn an_allowlist_needs_every_network_inside_one_of_the_actors() {
        let ceiling = limits(None, None, Some(&["10.0.0.0/8", "2001:db8::/32"]));
        for ips in [
            &["10.1.2.3"][..],
            &["10.0.0.0/8", "2001:db8:1::/48"][..],
            &["::ffff:10.0.0.0/104"][..],
        ] {
            assert!(
                loosened(&ceiling, &limits(None, None, Some(ips))).is_empty(),
                "{ips:?}"
            );
        }
        for ips in [
            &["10.1.2.3", "192.0.2.1"][..],
            &["0.0.0.0/0"][..],
            &["2001:db8::/31"][..],
            &["::/0"][..],
        ] {
            assert_eq!(
                fields(loosened(&ceiling, &limits(None, None, Some(ips)))),
                ["allowed_ips"],
                "{ips:?}"
            );
        }
        assert_eq!(
            fields(loosened(&ceiling, &Limits::default())),
            ["allowed_ips"]
        );
    }

    #[test]
    fn every_loosened_restriction_is_named_in_order() {
        let ceiling = limits(
            Some((3, 3600)),
            Some((3, QuotaPeriod::Day)),
            Some(&["127.0.0.1"]),
        );
        let refused = loosened(&ceiling, &Limits::default());
        assert_eq!(
            fields(refused.clone()),
            ["rate_limit", "quota", "allowed_ips"]
        );
        let text: Vec<String> = refused.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                "a rate_limit with requests (the burst) at most 3 and at most 3 requests per 3600 s",
                "a quota per day of at most 3 requests",
                "allowed_ips whose every network lies inside one of 127.0.0.1/32",
            ]
        );
    }
}
