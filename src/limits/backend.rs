//! [`LimitBackend`]: where instances share the limits of a key, and what they ask it.

use std::fmt;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use crate::error::BoxError;
use crate::key::KeyId;
use crate::record::{Quota, RateLimit};

/// How long an instance counts as live after its last lease call or heartbeat, in the
/// shipped backends ([`InMemoryLimitBackend`](crate::limits::InMemoryLimitBackend) and
/// `tower_apikey_postgres::PgKeyStore`): long enough to outlast a few missed
/// heartbeats (one a second), short enough that a stopped instance's share returns soon.
pub const INSTANCE_TTL: Duration = Duration::from_secs(30);

/// The shared ledger of per-key limits that many instances lease tokens from
/// (DESIGN §12; how the middleware uses it is in [`limits`](crate::limits)).
///
/// A backend keeps, per key, the rate limit's GCRA state and the quota's count in its
/// period, and answers one call: [`lease`](LimitBackend::lease). A call first charges
/// what the instance admitted without a lease ([`LeaseRequest::owed`]), then credits
/// what it gives back ([`LeaseRequest::returned`]), then grants up to
/// [`LeaseRequest::wanted`] tokens, each of which is one request of the rate limit *and*
/// one of the quota, as much as both have room for. Everything a call changes, it
/// changes atomically with respect to other calls for the same key, so that the tokens
/// granted to all instances together never exceed what one GCRA and one counter would
/// admit. [`ledger`](crate::limits::LedgerState) does the arithmetic, so that a backend
/// only has to store three numbers per key and run it under a lock or in a
/// transaction.
///
/// `tower_apikey_postgres::PgKeyStore` implements it on the database it already uses,
/// and [`InMemoryLimitBackend`](crate::limits::InMemoryLimitBackend)
/// for the layers of one process. For Redis or anything else, run
/// [`LedgerState::lease`](crate::limits::LedgerState::lease) in a transaction (in
/// Redis, a Lua script), and check the implementation with
/// `testing::limit_backend_conformance_tests!` (feature `test-util`).
///
/// The middleware never waits for a backend: leases are taken in the background, and
/// while the backend fails the instance falls back to local limits (see
/// [`SharedLimits`](crate::limits::SharedLimits)).
#[async_trait]
pub trait LimitBackend: fmt::Debug + Send + Sync + 'static {
    /// Charges, credits and grants for one key, as the trait's documentation says, and
    /// names the instances sharing the backend.
    ///
    /// # Errors
    ///
    /// A backend error. The instance keeps what it owes and reports it on the next
    /// successful call, so a failing call must change nothing.
    async fn lease(&self, request: &LeaseRequest) -> Result<Lease, BoxError>;

    /// Records that `instance` is live at `now` (the backend may use its own clock
    /// instead, as for [`lease`](Self::lease)), and answers how many instances were
    /// heard from recently (by a heartbeat or a lease; [`INSTANCE_TTL`] in the shipped
    /// backends),
    /// the caller included: at least 1.
    ///
    /// [`SharedLimits`](crate::limits::SharedLimits) calls it every second, leases or not, so
    /// that every instance that ever reached the backend knows how many share it, and
    /// an idle instance is counted by the others: while the backend fails, each
    /// instance admits its limits divided by that count, and the instances together
    /// admit at most the limit.
    ///
    /// # Errors
    ///
    /// A backend error; the instance keeps the count it last heard.
    async fn heartbeat(&self, instance: InstanceId, now: SystemTime) -> Result<u32, BoxError>;
}

/// A process sharing a [`LimitBackend`]: random per [`SharedLimits`](crate::limits::SharedLimits),
/// so that a restarted process is a new instance and its predecessor's heartbeat ages out.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct InstanceId(u64);

impl InstanceId {
    /// A fresh random id.
    pub fn random() -> Self {
        let mut bytes = [0u8; 8];
        // The OS's CSPRNG is not needed for secrecy here, only for uniqueness; if it is
        // unavailable the time stands in, which is unique enough for a heartbeat.
        if getrandom::fill(&mut bytes).is_err() {
            bytes = crate::time::epoch_nanos(SystemTime::now()).to_le_bytes();
        }
        Self(u64::from_le_bytes(bytes))
    }

    /// The id as a number, for a backend's storage.
    pub fn get(&self) -> u64 {
        self.0
    }
}

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl fmt::Debug for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InstanceId({self})")
    }
}

/// One instance's call to the shared ledger of one key.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LeaseRequest {
    /// The key whose limits are shared.
    pub key: KeyId,
    /// Who asks: the backend counts the instances it heard from recently.
    pub instance: InstanceId,
    /// The key's rate limit, if any; a key with neither limit is never leased.
    pub rate: Option<RateLimit>,
    /// The key's quota, if any.
    pub quota: Option<Quota>,
    /// Requests the instance admitted without a lease, under its local share while the
    /// key was new to it or the backend was failing: charged first, with no room check,
    /// so that the shared count stays true.
    pub owed: u32,
    /// Leased tokens the instance did not use and gives back.
    pub returned: u32,
    /// Tokens asked for; 0 only reports `owed` and `returned`.
    pub wanted: u32,
    /// The instance's time. A backend with a clock of its own (a database) should use
    /// that instead, so that instances with skewed clocks share one timeline.
    pub now: SystemTime,
}

impl LeaseRequest {
    /// A request for `wanted` tokens of `key`'s limits, owing and returning nothing.
    pub fn new(
        key: KeyId,
        instance: InstanceId,
        rate: Option<RateLimit>,
        quota: Option<Quota>,
        wanted: u32,
        now: SystemTime,
    ) -> Self {
        Self {
            key,
            instance,
            rate,
            quota,
            owed: 0,
            returned: 0,
            wanted,
            now,
        }
    }

    /// The same request, also charging `owed` admitted requests.
    pub fn owing(mut self, owed: u32) -> Self {
        self.owed = owed;
        self
    }

    /// The same request, also giving back `returned` unused tokens.
    pub fn returning(mut self, returned: u32) -> Self {
        self.returned = returned;
        self
    }
}

/// A backend's answer to a [`LeaseRequest`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Lease {
    /// Tokens granted, at most [`LeaseRequest::wanted`]: each admits one request.
    pub granted: u32,
    /// When fewer were granted than wanted: the limit that ran out, and when to ask
    /// again.
    pub exhausted: Option<Exhausted>,
    /// Instances the backend heard from recently, the caller included (at least 1): the
    /// divisor of the local share while the backend fails.
    pub instances: u32,
}

impl Lease {
    /// An answer granting `granted` tokens, with `exhausted` the limit that stopped it
    /// granting more, among `instances` instances.
    pub fn new(granted: u32, exhausted: Option<Exhausted>, instances: u32) -> Self {
        Self {
            granted,
            exhausted,
            instances: instances.max(1),
        }
    }
}

/// The shared limit that ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Exhausted {
    /// The rate limit, until one more request fits (rounded up to whole seconds).
    Rate {
        /// When to ask again.
        retry_after: Duration,
    },
    /// The quota, until its period ends.
    Quota {
        /// When the period ends.
        retry_after: Duration,
    },
}
