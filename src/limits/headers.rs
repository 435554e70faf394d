//! The `RateLimit-Policy` and `RateLimit` headers that report a limited key's state.
//!
//! On every answer to a limited key after the limits were applied (accepted, refused
//! for its scopes, or refused at a limit), in the syntax of
//! draft-ietf-httpapi-ratelimit-headers:
//!
//! - `RateLimit-Policy: "rate";q=N;w=S, "quota";q=N;w=<seconds in the current period>`
//! - `RateLimit: "rate";r=R;t=T, "quota";r=R;t=T`
//!
//! with an item only for the limits the key has. For the rate, `r` is how many requests
//! would be admitted right now and `t` the seconds (rounded up) until one more would
//! be; on a refusal `r` is 0 and `t` is the wait, the answer's `Retry-After`. For the
//! quota, `r` is what is left of the period and `t` the seconds until the period ends
//! (when the quota resets); a `quota_exceeded` answer's `Retry-After` is that `t`.

use std::sync::OnceLock;

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::limits::backend::Exhausted;
use crate::record::{Quota, RateLimit};

/// `RateLimit-Policy`.
pub(crate) static RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
/// `RateLimit`.
pub(crate) static RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

type Hasher = foldhash::fast::RandomState;

/// What the limits of a key looked like when they were applied: what the headers say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Seen {
    /// The `r` and `t` of the rate item, and of the quota item: small, because this
    /// travels in every limited request's future.
    rate: Option<(u32, u32)>,
    quota: Option<(u32, u32)>,
    /// `RateLimit-Policy`, shared from the [`Policies`] cache.
    policy: HeaderValue,
}

/// [`Seen`] before its policy value is attached: the rate's `(limit, r, t)` and the
/// quota's `(limit, period length, r, t)`.
#[derive(Debug)]
pub(crate) struct Counted {
    pub(crate) rate: Option<(RateLimit, u32, u64)>,
    pub(crate) quota: Option<(Quota, u64, u32, u64)>,
}

impl Counted {
    /// The state as a refusal by the shared limits reports it: nothing left of the limit
    /// that ran out, until its `Retry-After`.
    pub(crate) fn exhausted(mut self, limit: Exhausted) -> Self {
        match limit {
            Exhausted::Quota { retry_after } => {
                if let Some(q) = &mut self.quota {
                    q.2 = 0;
                    q.3 = retry_after.as_secs();
                }
            }
            Exhausted::Rate { retry_after } => {
                if let Some(r) = &mut self.rate {
                    r.1 = 0;
                    r.2 = retry_after.as_secs();
                }
            }
        }
        self
    }
}

/// A key's `RateLimit-Policy` value, first formatted or found: read without hashing
/// while the key's limits (and its quota's period length) stay the same.
pub(crate) type PolicyCell = OnceLock<(PolicyKey, HeaderValue)>;

/// The `RateLimit-Policy` values in use, formatted once each, so that an accepted
/// request formats and allocates only its `RateLimit` value. Cleared when the limits'
/// entries are swept, so that it stays as small as the set of limits in use.
pub(crate) struct Policies {
    values: papaya::HashMap<PolicyKey, HeaderValue, Hasher>,
}

impl Policies {
    pub(crate) fn new() -> Self {
        Self {
            values: papaya::HashMap::builder().hasher(Hasher::default()).build(),
        }
    }

    /// `counted` with its `RateLimit-Policy` value, from the key's `cell` or the cache.
    #[inline]
    pub(crate) fn seen(&self, cell: &PolicyCell, counted: Counted) -> Seen {
        let key: PolicyKey = (counted.rate.map(|r| r.0), counted.quota.map(|q| (q.0, q.1)));
        let policy = match cell.get() {
            Some((cached, policy)) if *cached == key => policy.clone(),
            _ => {
                let values = self.values.pin();
                let policy = match values.get(&key) {
                    Some(policy) => policy.clone(),
                    None => values
                        .get_or_insert_with(key, || policy_value(&key))
                        .clone(),
                };
                // The first set of limits the key is seen with stays cached in it.
                let _ = cell.set((key, policy.clone()));
                policy
            }
        };
        // `t` is at most a day (rate) or a month (quota): it fits.
        let short = |t: u64| u32::try_from(t).unwrap_or(u32::MAX);
        Seen {
            rate: counted.rate.map(|(_, r, t)| (r, short(t))),
            quota: counted.quota.map(|(_, _, r, t)| (r, short(t))),
            policy,
        }
    }

    pub(crate) fn clear(&self) {
        self.values.pin().clear();
    }
}

impl Seen {
    /// Writes `RateLimit-Policy` and `RateLimit` into `headers`.
    pub(crate) fn write(&self, headers: &mut HeaderMap) {
        let mut state = Buf::default();
        if let Some((r, t)) = self.rate {
            state.item("\"rate\";r=", u64::from(r), ";t=", u64::from(t));
        }
        if let Some((r, t)) = self.quota {
            let name = if self.rate.is_some() {
                ", \"quota\";r="
            } else {
                "\"quota\";r="
            };
            state.item(name, u64::from(r), ";t=", u64::from(t));
        }
        // Digits, quotes, letters and separators: always a valid header value.
        if let Ok(state) = HeaderValue::from_bytes(state.as_bytes()) {
            headers.insert(RATELIMIT_POLICY.clone(), self.policy.clone());
            headers.insert(RATELIMIT.clone(), state);
        }
    }
}

/// What `RateLimit-Policy` depends on: the limits, and the length of the quota's
/// current period.
pub(crate) type PolicyKey = (Option<RateLimit>, Option<(Quota, u64)>);

/// The `RateLimit-Policy` value of `key`.
fn policy_value(key: &PolicyKey) -> HeaderValue {
    let mut policy = Buf::default();
    if let Some(limit) = key.0 {
        policy.item(
            "\"rate\";q=",
            u64::from(limit.requests()),
            ";w=",
            u64::from(limit.per_secs()),
        );
    }
    if let Some((quota, w)) = key.1 {
        let name = if key.0.is_some() {
            ", \"quota\";q="
        } else {
            "\"quota\";q="
        };
        policy.item(name, u64::from(quota.requests()), ";w=", w);
    }
    HeaderValue::from_bytes(policy.as_bytes()).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// A header value being formatted on the stack, so that the only allocation is the
/// value's own. 96 bytes hold the longest (two items of ten-digit numbers).
struct Buf {
    bytes: [u8; 96],
    len: usize,
}

impl Default for Buf {
    fn default() -> Self {
        Self {
            bytes: [0; 96],
            len: 0,
        }
    }
}

impl Buf {
    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    /// `<a><x><b><y>`: an item's name and two parameters. Written by hand rather than
    /// with `core::fmt`, which cost most of a limited answer's instructions.
    fn item(&mut self, a: &str, x: u64, b: &str, y: u64) {
        self.text(a);
        self.number(x);
        self.text(b);
        self.number(y);
    }

    fn text(&mut self, s: &str) {
        self.bytes_in(s.as_bytes());
    }

    /// Appends `bytes`; what does not fit is dropped (nothing written here comes close).
    fn bytes_in(&mut self, bytes: &[u8]) {
        let end = (self.len + bytes.len()).min(self.bytes.len());
        let n = end - self.len;
        self.bytes[self.len..end].copy_from_slice(&bytes[..n]);
        self.len = end;
    }

    fn number(&mut self, mut n: u64) {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.bytes_in(&digits[i..]);
    }
}
