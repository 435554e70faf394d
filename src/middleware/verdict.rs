//! Where a key is checked: what the caller presented, and the verdict on it.
//!
//! The checks run in this order, each owning its refusal (its row in
//! [`rejection`](super::rejection)):
//!
//! 1. **presented** ([`presenting`], before any lookup): one `Authorization`
//!    field in the `ApiKey-v2` scheme, a well-formed key with a good checksum; then
//!    ([`ready`] or [`before_lookup`]) the client's address not
//!    [throttled](super::throttle), unless the store answered at once with a record
//!    the key's SHA-256 matches, and the SHA-256 taken only after that check when it
//!    was not needed for it (a throttled request costs no hashing);
//! 2. **proof** ([`decide`], once the store answered): the digest compared in
//!    constant time with the record's, or with a dummy for an unknown id;
//! 3. **state**: revoked, ended by rotation or expired, said only now that the secret is
//!    proven; a proven key in a good state is a *use* (last-used tracking);
//! 4. **policies**, in the order of [`policy::POLICIES`]: the client's address, the
//!    key's rate limit and quota (read only), the required scopes. A new policy is one
//!    file in `policy/` and one row in that list, which also says what a refusal by it
//!    still does;
//! 5. **the use recorded** (last-used tracking), with the client's address unless the
//!    refusing policy's row says not to;
//! 6. **limits charged**: a request that passed the policies, or was refused by a policy
//!    whose row says a refusal charges, takes one request of the key's rate limit and
//!    quota (both or neither; see [`limits`](crate::limits::limiter)).
//!
//! Each step is a function here, called by name from `service.rs` (the ready path)
//! and `future.rs` (after waiting for the store).

use std::time::SystemTime;

use http::{Extensions, HeaderMap};

use crate::error::StoreError;
use crate::header::{self, HeaderError};
use crate::key::{self, KeyDigest, KeyFormatError, KeyId};
use crate::limits::headers::Seen;
use crate::middleware::config::Config;
use crate::middleware::policy::{self, Check, Effect, limits};
use crate::middleware::rejection::RejectionKind;
use crate::middleware::throttle::{Bucket, FailureThrottle};
use crate::record::{ApiKeyIdentity, KeyRecord, KeyState};

/// What the caller presented: a well-formed key's id and the digest of its text.
pub(crate) struct Presented {
    pub(crate) id: KeyId,
    pub(crate) digest: KeyDigest,
    /// The caller's throttle bucket, when throttling is on and the caller has an
    /// address: where a failure is counted.
    pub(crate) bucket: Option<Bucket>,
    /// Whether the digest matched the record the store answered at once, when that
    /// was already compared (so that it is compared once).
    proven: Option<bool>,
}

/// A well-formed key before its digest is taken: the text stays borrowed from the
/// request's headers, so that a request the throttle refuses costs no hashing.
pub(crate) struct Presenting<'a> {
    pub(crate) id: KeyId,
    token: &'a [u8],
    bucket: Option<Bucket>,
}

impl Presenting<'_> {
    /// Takes the digest; `proven` if it was already compared with a record.
    fn digest(self, digest: Option<KeyDigest>, proven: Option<bool>) -> Presented {
        Presented {
            id: self.id,
            digest: digest.unwrap_or_else(|| KeyDigest::of_bytes(self.token)),
            bucket: self.bucket,
            proven,
        }
    }
}

/// A key that passed every check, the time it was judged at, and its limits' state.
type Accepted = (KeyRecord, SystemTime, Option<Seen>);

/// The verdict on a request.
pub(crate) enum Decision {
    Accept {
        identity: ApiKeyIdentity,
        /// When the key stops working (its expiry, or a rotation's earlier end), if that
        /// is inside the warning window: the response then carries `ApiKey-Expires`
        /// (formatted only then, so the common case stays small).
        expires: Option<SystemTime>,
        /// The state of a limited key's limits, for the `RateLimit` headers.
        limits: Option<Seen>,
    },
    Reject {
        kind: RejectionKind,
        /// As for `Accept`, when the limits were applied or refused the request.
        limits: Option<Seen>,
    },
}

/// Reads and checks the credentials: header, key format, checksum, and where a
/// failure would count. Nothing here touches the store, and nothing hashes yet.
pub(crate) fn presenting<'a>(
    config: &Config,
    headers: &'a HeaderMap,
    extensions: &Extensions,
) -> Result<Presenting<'a>, RejectionKind> {
    let token = header::credentials(headers).map_err(|error| match error {
        HeaderError::Missing => RejectionKind::MissingCredentials,
        other => RejectionKind::InvalidRequest(other),
    })?;
    let parsed = key::parse(token, Some(&config.prefix)).map_err(|error| {
        // Not even token68: the header is malformed, whatever the key would be. A bad
        // checksum is found only after every character passed the key's alphabet,
        // which token68 holds, so it needs no second look.
        if matches!(error, KeyFormatError::Checksum) || header::is_token68(token) {
            RejectionKind::MalformedKey(error)
        } else {
            RejectionKind::InvalidRequest(HeaderError::Malformed)
        }
    })?;
    // Where a failure would count; the check itself waits for the store's answer
    // (`ready`): a key proven from memory is never throttled.
    let bucket = match &config.throttle {
        Some(throttle) => throttle_bucket(config, throttle, headers, extensions),
        None => None,
    };
    Ok(Presenting {
        id: parsed.id,
        token,
        bucket,
    })
}

/// The store answered at once: the key is hashed and compared if a record was found,
/// and otherwise (or if it does not match) the throttle is checked before any
/// hashing. A key proven from memory is never throttled (DESIGN §6).
pub(crate) fn ready(
    config: &Config,
    presenting: Presenting<'_>,
    found: &Result<Option<KeyRecord>, StoreError>,
) -> Result<Presented, RejectionKind> {
    if let Ok(Some(record)) = found {
        let digest = KeyDigest::of_bytes(presenting.token);
        let proven = digest.matches(record.digest());
        if !proven {
            throttled(config, &presenting)?;
        }
        return Ok(presenting.digest(Some(digest), Some(proven)));
    }
    throttled(config, &presenting)?;
    Ok(presenting.digest(None, None))
}

/// The store must be waited for: the throttle first, then the digest.
pub(crate) fn before_lookup(
    config: &Config,
    presenting: Presenting<'_>,
) -> Result<Presented, RejectionKind> {
    throttled(config, &presenting)?;
    Ok(presenting.digest(None, None))
}

/// The caller's bucket in `throttle`, if the request carries an address.
fn throttle_bucket(
    config: &Config,
    throttle: &FailureThrottle,
    headers: &HeaderMap,
    extensions: &Extensions,
) -> Option<Bucket> {
    let Some(client) = config.proxies.client_addr(headers, extensions) else {
        throttle.warn_unaddressed();
        return None;
    };
    Some(throttle.bucket(client))
}

/// The failure throttle's refusal of the caller, if its address is throttled.
fn throttled(config: &Config, presenting: &Presenting<'_>) -> Result<(), RejectionKind> {
    let (Some(throttle), Some(bucket)) = (&config.throttle, presenting.bucket) else {
        return Ok(());
    };
    throttle
        .check(bucket)
        .map_err(|retry_after| RejectionKind::Throttled { retry_after })
}

/// Decides on a request once the store has answered: proof, state, policies.
pub(crate) fn decide(
    config: &Config,
    found: Result<Option<KeyRecord>, StoreError>,
    presented: &Presented,
    headers: &HeaderMap,
    extensions: &Extensions,
) -> Decision {
    match check(config, found, presented, headers, extensions) {
        Ok((record, now, limits)) => {
            tracing::trace!(key_id = %presented.id, outcome = "accepted", "API key accepted");
            // A rotation's scheduled end is when the key stops working: warn of that.
            let expires = expiry_warning(config, record.stops_at(), now);
            Decision::Accept {
                identity: record.into_identity(),
                expires,
                limits,
            }
        }
        Err((kind, limits)) => {
            tracing::debug!(key_id = %presented.id, outcome = kind.outcome(), "API key refused");
            Decision::Reject { kind, limits }
        }
    }
}

/// The checks after the lookup, in order; the first refusal wins.
fn check(
    config: &Config,
    found: Result<Option<KeyRecord>, StoreError>,
    presented: &Presented,
    headers: &HeaderMap,
    extensions: &Extensions,
) -> Result<Accepted, (RejectionKind, Option<Seen>)> {
    let unlimited = |kind| (kind, None);
    let record = proof(config, found, presented).map_err(unlimited)?;
    let now = config.clock.now();
    if let Err((kind, reported)) = state(&record, now) {
        // A proven attempt with a revoked or ended key: reported once per flush.
        if let (Some(tracker), true) = (&config.tracker, reported) {
            tracker.record_ended(record.id(), now);
        }
        return Err(unlimited(kind));
    }
    let mut check = Check {
        config,
        record: &record,
        now,
        headers,
        extensions,
        limits: limits::Limited::default(),
    };
    // The first refusal, and its row's effect.
    let verdict: Result<(), (RejectionKind, Effect)> = policy::POLICIES
        .iter()
        .try_for_each(|policy| (policy.check)(&mut check).map_err(|kind| (kind, policy.effect)));
    // A use is a proven key in a good state, whatever the policies said. With the
    // client's address, for the key's `recent_ips` (no allocation: the peer is read
    // from the extensions, a forwarded hop only behind trusted proxies), unless the
    // refusing policy's row says not to.
    if let Some(tracker) = &config.tracker {
        let client = match &verdict {
            Err((_, effect)) if !effect.records_client => None,
            _ => config.proxies.client_addr(headers, extensions),
        };
        match client {
            Some(client) => tracker.record_from(record.id(), now, client.ip()),
            None => tracker.record(record.id(), now),
        }
    }
    // The limits' policies only read; the request is charged here, both or neither,
    // unless the refusing policy's row says a refusal charges nothing.
    let limits = match &verdict {
        Err((_, effect)) if !effect.charges => limits::peek(&check),
        _ => limits::charge(&mut check).map_err(|(kind, seen)| (kind, Some(seen)))?,
    };
    match verdict {
        Ok(()) => Ok((record, now, limits)),
        Err((kind, _)) => Err((kind, limits)),
    }
}

/// The store's answer, and the secret proven against it.
fn proof(
    config: &Config,
    found: Result<Option<KeyRecord>, StoreError>,
    presented: &Presented,
) -> Result<KeyRecord, RejectionKind> {
    let found = match found {
        Ok(found) => found,
        // Shed on purpose, under a flood: not a fault to log at ERROR per request.
        Err(StoreError::Overloaded) => return Err(RejectionKind::Overloaded),
        // The id filter knows no such id: an unknown id, but no failed proof (the
        // store was not asked), so the throttle does not count it.
        Err(StoreError::RuledOut) => return Err(RejectionKind::InvalidKey),
        Err(error) => {
            // At most one line per second per kind of failure: a flood of requests
            // during an outage must not become a flood of log lines.
            if let Some(suppressed) = config.store_failures.admit(&error) {
                tracing::error!(key_id = %presented.id, %error, suppressed, "key store unavailable; refusing the request with 503");
            }
            return Err(RejectionKind::StoreUnavailable);
        }
    };
    // An unknown id still costs one constant-time comparison, against a digest that
    // matches nothing, so that it answers like a wrong secret.
    let expected = found.as_ref().map_or(&KeyDigest::DUMMY, KeyRecord::digest);
    // Compared once: the ready path may have done it already.
    let proven = match (presented.proven, &found) {
        (Some(proven), Some(_)) => proven,
        _ => presented.digest.matches(expected),
    };
    match found {
        Some(record) if proven => Ok(record),
        _ => {
            if let (Some(throttle), Some(bucket)) = (&config.throttle, presented.bucket) {
                throttle.record_failure(bucket);
            }
            Err(RejectionKind::InvalidKey)
        }
    }
}

/// Revoked, ended by rotation or expired: said only to a caller who proved the secret.
/// With the refusal, whether the attempt is reported to the usage tracker (a revoked or
/// ended key's use; an expired key's end is on its record already).
fn state(record: &KeyRecord, now: SystemTime) -> Result<(), (RejectionKind, bool)> {
    match record.state_at(now) {
        KeyState::Active => Ok(()),
        KeyState::Expired => Err((RejectionKind::Expired, false)),
        KeyState::Ended => Err((RejectionKind::Ended, true)),
        // `KeyState` may grow; any state that is not active refuses, as revoked does.
        _ => Err((RejectionKind::Revoked, true)),
    }
}

/// `stops_at`, if it is within the warning window.
fn expiry_warning(config: &Config, stops_at: SystemTime, now: SystemTime) -> Option<SystemTime> {
    let window = config.expiry_warning?;
    let within = now
        .checked_add(window)
        .is_none_or(|limit| stops_at <= limit);
    within.then_some(stops_at)
}
