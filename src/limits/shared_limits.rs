//! [`SharedLimits`]: the per-key limits of the layers given it, shared with other
//! instances through a [`LimitBackend`]; its task takes the leases in the background.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::clock::{Clock, SystemClock};
use crate::key::KeyId;
use crate::limits::backend::Exhausted;
use crate::limits::backend::{InstanceId, LeaseRequest, LimitBackend};
use crate::limits::headers::Seen;
use crate::limits::lease_slot::Take;
use crate::limits::local::{Charge, Entry, LocalLimits};
use crate::record::{Quota, RateLimit};
use crate::time::{epoch_nanos, epoch_secs};

/// Default time a lease's tokens are kept unspent before they are given back (10 s).
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(10);
/// Default traffic a batch is sized for (2 s of the key's recent rate on this instance).
pub const DEFAULT_BATCH_SPAN: Duration = Duration::from_secs(2);
/// Default number of instances an instance assumes while it has never heard a count
/// from the backend (8); see [`SharedLimits::expected_instances`].
pub const DEFAULT_EXPECTED_INSTANCES: u32 = 8;
/// How often the task gives back lapsed leases, reports what was admitted on the
/// local share and sends its heartbeat (1 s).
const TICK: Duration = Duration::from_secs(1);
/// A lease call that takes longer counts as failed (500 ms). Short, because while a
/// call hangs (a black-holed database), a key past its owed batch is refused: this is
/// the longest a silent outage can refuse valid keys before the local share takes over.
/// A lease is one small transaction; a healthy database answers it in milliseconds.
const CALL_TIMEOUT: Duration = Duration::from_millis(500);
/// Refills queued at most; past this a request's refill is asked for again later.
const QUEUE: usize = 4096;
/// Calls per tick at most for returns and reports, so that a tick after an outage
/// does not flood the recovering backend.
const CALLS_PER_TICK: usize = 256;

/// Per-key limits shared by many instances: build one per process and give it to the
/// key manager ([`KeyManagerBuilder::shared_limits`](crate::KeyManagerBuilder::shared_limits)),
/// whose layers then count through it, whose background runs its task
/// ([`run`](Self::run)) and whose shutdown gives back the unspent tokens. (A layer
/// built without a manager takes it with
/// [`ApiKeyV2Layer::shared_limits`](crate::ApiKeyV2Layer::shared_limits); then spawn
/// `run` yourself.)
///
/// # How it works
///
/// The decision stays in memory and never waits: a request for a key with a
/// [`RateLimit`] or [`Quota`] spends a *leased token* with one atomic operation. The
/// task leases tokens in batches from the [`LimitBackend`], each token one request of
/// the rate limit and one of the quota, asking for a refill when half a batch is
/// left. A batch is the key's recent traffic on this instance over
/// [`batch_span`](Self::batch_span) (2 s), at least 1 and at most 5 % of the smaller
/// limit, so a busy key costs the backend one write per batch and a quiet key holds
/// one token. Unspent tokens are given back after [`lease_ttl`](Self::lease_ttl) (10 s)
/// idle (tokens of a key with only a rate limit are dropped instead: the rate
/// recovers by itself, so returning them would cost a write for nothing).
///
/// A key new to this instance, or whose tokens ran out before its refill came, may
/// **owe** up to one batch while it waits: those requests are admitted and charged
/// with the next call. Once an answer is short (the shared limit ran out), the key is
/// refused on this instance until an answer grants again; the backend is asked again
/// at most every 2 s while requests keep coming, so a limit raised meanwhile is seen.
///
/// While the backend fails or takes longer than 500 ms to answer (or the task is not
/// running), every key runs on the
/// **local share**: its limits divided by the number of instances the backend last
/// reported, and what is admitted is owed and charged once the backend answers again,
/// so the shared count stays true. A failing backend is logged once when it starts
/// failing and once when it recovers; it never makes a valid key refused for want of a
/// lease, nor a 503.
///
/// The task sends a heartbeat every second ([`LimitBackend::heartbeat`]), leases or
/// not, so every instance that ever reached the backend knows the count, and an idle
/// instance is counted by the others. One that has never heard a count (it started
/// while the backend failed) divides by
/// [`expected_instances`](Self::expected_instances) instead (default
/// [`DEFAULT_EXPECTED_INSTANCES`], 8).
///
/// # What leasing costs (DESIGN §12)
///
/// - **Admitted beyond the limit**: at most what each instance owes at once (one
///   batch), charged late, plus, over windows shorter than a lease, the tokens it holds
///   (a batch and a half): per instance at most 2.5 batches, 5 % of the limit each.
/// - **While the backend fails**: each instance admits its local share of each limit,
///   counting what it admitted itself earlier in the period (the rate's window, the
///   quota's day or month), so the requests admitted during the outage total at most
///   the limit, as long as each instance's divisor is at least the number of instances
///   running: true for the count heard from the heartbeats (it counts for 30 s an
///   instance that stopped), and for an instance started during the outage if
///   `expected_instances` is at least that number. Each instance admits at least one
///   request, so a limit smaller than the number of instances admits one per
///   instance.
/// - **Refused within the limit**: at most what the other instances hold unspent (a
///   batch and a half each), plus the requests an instance gets past its owed batch
///   while a lease is in flight (one backend round trip), which
///   [`SharedLimitsStats::refused_awaiting_lease`] counts.
///
/// BENCHMARKS.md measures both with two instances and a limit of 100 per minute.
#[derive(Clone)]
pub struct SharedLimits {
    shared: Arc<Shared>,
    /// Made when the first layer asks, so that the builder methods can still change
    /// `shared` before.
    local: Arc<OnceLock<Arc<LocalLimits>>>,
    /// The task's own state, locked by the running task for its whole life. A task that
    /// stops or is dropped leaves it here, leases and queued refills included, so that
    /// nothing leased is lost: the next [`run`](SharedLimits::run), or
    /// [`give_back`](SharedLimits::give_back), settles it.
    leasing: Arc<tokio::sync::Mutex<Leasing>>,
}

/// What the task works through: the refills requests asked for, and the leases held.
struct Leasing {
    receiver: mpsc::Receiver<Refill>,
    held: HashMap<KeyId, Refill>,
}

/// What the request path and the task share.
pub(crate) struct Shared {
    backend: Arc<dyn LimitBackend>,
    instance: InstanceId,
    clock: Arc<dyn Clock>,
    sender: mpsc::Sender<Refill>,
    healthy: AtomicBool,
    /// The task runs: without it nothing would ever be leased, so keys run on their
    /// local share instead of being refused once they owe a batch.
    running: AtomicBool,
    /// The count of instances the backend last reported; 0 until it reports one.
    instances: AtomicU32,
    /// The divisor of the local share until the backend reports a count.
    expected_instances: u32,
    lease_ttl: Duration,
    batch_span: Duration,
    calls: AtomicU64,
    failures: AtomicU64,
    granted: AtomicU64,
    awaiting: AtomicU64,
}

/// A key whose slot wants a lease call.
#[derive(Clone)]
pub(crate) struct Refill {
    pub(crate) id: KeyId,
    pub(crate) entry: Arc<Entry>,
    pub(crate) rate: Option<RateLimit>,
    pub(crate) quota: Option<Quota>,
}

/// What [`SharedLimits::stats`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SharedLimitsStats {
    /// Lease calls made (each one backend write).
    pub calls: u64,
    /// Lease calls that failed or timed out.
    pub failures: u64,
    /// Tokens granted in all.
    pub granted: u64,
    /// Requests refused with no token at hand while no answer of the backend said the
    /// limit had run out: the key owed a batch already and its lease was in flight, or
    /// the backend's last wait was over and its next answer had not come. They bound
    /// from above the refusals leasing may add within the limit besides the tokens
    /// other instances hold (many of them would have been refused anyway: waits are
    /// whole seconds). A count that grows with traffic below the limit says a batch is
    /// too small for it, or the backend slow (see [`SharedLimits::batch_span`]).
    pub refused_awaiting_lease: u64,
    /// Whether the last call succeeded (the instance is not on local limits).
    pub healthy: bool,
    /// Instances the backend last reported, by a heartbeat or a lease; 0 before it
    /// reported any (the local share then divides by
    /// [`SharedLimits::expected_instances`]).
    pub instances: u32,
}

impl SharedLimits {
    /// Limits shared through `backend`, with the defaults.
    pub fn new(backend: impl LimitBackend) -> Self {
        Self::from_shared_backend(Arc::new(backend))
    }

    /// Like [`new`](Self::new), for a backend already shared as `Arc<dyn LimitBackend>`.
    pub fn from_shared_backend(backend: Arc<dyn LimitBackend>) -> Self {
        let (sender, receiver) = mpsc::channel(QUEUE);
        let shared = Arc::new(Shared {
            backend,
            instance: InstanceId::random(),
            clock: Arc::new(SystemClock),
            sender,
            healthy: AtomicBool::new(true),
            running: AtomicBool::new(false),
            instances: AtomicU32::new(0),
            expected_instances: DEFAULT_EXPECTED_INSTANCES,
            lease_ttl: DEFAULT_LEASE_TTL,
            batch_span: DEFAULT_BATCH_SPAN,
            calls: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            granted: AtomicU64::new(0),
            awaiting: AtomicU64::new(0),
        });
        Self {
            local: Arc::new(OnceLock::new()),
            shared,
            leasing: Arc::new(tokio::sync::Mutex::new(Leasing {
                receiver,
                held: HashMap::new(),
            })),
        }
    }

    fn shared_mut(&mut self) -> &mut Shared {
        Arc::get_mut(&mut self.shared).expect(
            "configure SharedLimits before cloning it or giving it to a layer (builder methods \
             come first)",
        )
    }

    /// How long leased tokens are kept unspent before they are given back (default
    /// [`DEFAULT_LEASE_TTL`]). Shorter holds less of the limit idle on this instance;
    /// longer costs fewer writes for keys used in bursts.
    ///
    /// # Panics
    ///
    /// If called after the value was cloned or given to a layer.
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.shared_mut().lease_ttl = ttl.max(TICK);
        self
    }

    /// How much of a key's recent traffic a batch covers (default
    /// [`DEFAULT_BATCH_SPAN`]); batches stay between 1 token and 5 % of the limit.
    ///
    /// # Panics
    ///
    /// If called after the value was cloned or given to a layer.
    pub fn batch_span(mut self, span: Duration) -> Self {
        self.shared_mut().batch_span = span;
        self
    }

    /// How many instances this one assumes share the limits while it has never heard a
    /// count from the backend (default [`DEFAULT_EXPECTED_INSTANCES`], 8; at least 1):
    /// the divisor of its local share if the backend fails before its first heartbeat
    /// is answered. Set it to the most instances you run (your autoscaler's maximum), so
    /// that an instance started during an outage cannot tip the total over the limit.
    ///
    /// Why 8 and not 1: an instance that assumed it was alone would admit each key's
    /// whole limit by itself during such an outage, on top of what the others admit
    /// (the red team measured 26 admitted of a quota of 20 on three instances). 8 covers
    /// most deployments, and what it costs a smaller one is bounded: a process started
    /// during an outage admits an eighth of each limit until the backend answers once.
    ///
    /// # Panics
    ///
    /// If called after the value was cloned or given to a layer.
    pub fn expected_instances(mut self, instances: u32) -> Self {
        self.shared_mut().expected_instances = instances.max(1);
        self
    }

    /// The clock the task times leases by (default the system clock); give the layers
    /// the same one.
    ///
    /// # Panics
    ///
    /// If called after the value was cloned or given to a layer.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.shared_mut().clock = Arc::new(clock);
        self
    }

    /// This process's id in the backend.
    pub fn instance(&self) -> InstanceId {
        self.shared.instance
    }

    /// Counts of calls and tokens, and the backend's health.
    pub fn stats(&self) -> SharedLimitsStats {
        let s = &self.shared;
        SharedLimitsStats {
            calls: s.calls.load(Ordering::Relaxed),
            failures: s.failures.load(Ordering::Relaxed),
            granted: s.granted.load(Ordering::Relaxed),
            refused_awaiting_lease: s.awaiting.load(Ordering::Relaxed),
            healthy: s.healthy.load(Ordering::Relaxed),
            instances: s.instances.load(Ordering::Relaxed),
        }
    }

    /// The state every layer given this value shares: the limits' entries, and the
    /// lease machinery (see [`Limiter::shared`](crate::limits::limiter::Limiter::shared)).
    pub(crate) fn parts(&self) -> (Arc<LocalLimits>, Arc<Shared>) {
        let local = self.local.get_or_init(|| Arc::new(LocalLimits::new()));
        (Arc::clone(local), Arc::clone(&self.shared))
    }

    /// The task: takes the leases requests ask for, gives back lapsed ones, reports
    /// what was admitted on the local share and sends a heartbeat every second, until
    /// `shutdown` completes; then gives back every unspent token and reports what is
    /// owed, once. Run one at a time (a second one, while the first runs, returns at
    /// once, logging a warning).
    ///
    /// A [`KeyManager`](crate::KeyManager) given these limits
    /// ([`KeyManagerBuilder::shared_limits`](crate::KeyManagerBuilder::shared_limits))
    /// runs this in its [`background`](crate::KeyManager::background) and stops it in
    /// its [`shutdown`](crate::KeyManager::shutdown): call it yourself only for limits
    /// no manager runs.
    ///
    /// Dropping the future leaves nothing half-done: the layers go back to the local
    /// share at once, a lease call cut short keeps what it would have charged for the
    /// next one, and the leases held stay here for the next `run` to settle.
    pub fn run(
        &self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> impl Future<Output = ()> + Send + 'static {
        let leasing = Arc::clone(&self.leasing);
        let shared = Arc::clone(&self.shared);
        let beating = Arc::clone(&self.shared);
        let leasing = async move {
            let Ok(mut state) = leasing.try_lock_owned() else {
                tracing::warn!(
                    "SharedLimits::run is already running; this second call does nothing"
                );
                return;
            };
            let running = Running::start(&shared);
            let Leasing { receiver, held } = &mut *state;
            let mut shutdown = std::pin::pin!(shutdown);
            let mut next_tick = tokio::time::Instant::now() + TICK;
            loop {
                let recv = std::pin::pin!(tokio::time::timeout_at(next_tick, receiver.recv()));
                let next = futures_util::future::select(shutdown.as_mut(), recv).await;
                match next {
                    futures_util::future::Either::Left(_) => break,
                    futures_util::future::Either::Right((Ok(Some(refill)), _)) => {
                        // Held before the call, so that a task dropped during it leaves
                        // the key for the next one to settle.
                        held.insert(refill.id, refill.clone());
                        shared.refill(&refill).await;
                    }
                    futures_util::future::Either::Right((Ok(None), _)) => break,
                    futures_util::future::Either::Right((Err(_), _)) => {
                        shared.tick(held).await;
                        next_tick = tokio::time::Instant::now() + TICK;
                    }
                }
            }
            // From here on the layers decide on the local share.
            drop(running);
            shared.settle_all(&mut state).await;
        };
        async move {
            // The heartbeats run beside the leases, in the same task, so that a slow
            // lease never delays them nor they a lease; they stop when the leasing does.
            let leasing = std::pin::pin!(leasing);
            let beating = std::pin::pin!(beating.heartbeats());
            futures_util::future::select(leasing, beating).await;
        }
    }

    /// Gives back every unspent token and reports what is owed, as [`run`](Self::run)
    /// does when it stops: for leases a dropped task left behind. Does nothing while a
    /// task runs (it settles them itself when it stops).
    pub(crate) async fn give_back(&self) {
        if let Ok(mut state) = self.leasing.try_lock() {
            self.shared.settle_all(&mut state).await;
        }
    }
}

/// Marks the task as running for the layers, until it is dropped: a task that stops,
/// or is dropped mid-way, puts every key back on its local share at once, instead of
/// leaving keys that owe a batch waiting for a lease no task will take.
struct Running<'a>(&'a Shared);

impl<'a> Running<'a> {
    fn start(shared: &'a Shared) -> Self {
        shared.running.store(true, Ordering::Release);
        crate::metrics::limit_backend_up(if shared.healthy.load(Ordering::Acquire) {
            1.0
        } else {
            0.0
        });
        Self(shared)
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.running.store(false, Ordering::Release);
        if self.0.healthy.load(Ordering::Acquire) {
            crate::metrics::limit_backend_up(-1.0);
        }
    }
}

/// Puts back what a lease call took from a slot, unless the call was answered: on a
/// failed call, and on a call cut short because its task was dropped.
struct Undo<'a> {
    slot: &'a crate::limits::lease_slot::LeaseSlot,
    owed: u32,
    returned: u32,
    /// Whether a later request may ask for a refill again (the call was one).
    refill: bool,
}

impl Undo<'_> {
    fn answered(mut self) {
        self.owed = 0;
        self.returned = 0;
        self.refill = false;
    }
}

impl Drop for Undo<'_> {
    fn drop(&mut self) {
        if self.owed > 0 || self.returned > 0 {
            self.slot.restore(self.owed, self.returned);
        }
        if self.refill {
            self.slot.not_pending();
        }
    }
}

impl Shared {
    /// The divisor of the local share: the count the backend last reported, or the
    /// expected count before it reported any.
    pub(crate) fn instances(&self) -> u32 {
        match self.instances.load(Ordering::Relaxed) {
            0 => self.expected_instances,
            heard => heard,
        }
    }

    /// A heartbeat every [`TICK`], the first at once, forever (the caller stops it). A
    /// failed or slow one keeps the count last heard, and says nothing of health: the
    /// ledger can fail while the heartbeats pass (a lock on the ledger's table), and
    /// only the leases decide whether keys are on their local share.
    async fn heartbeats(self: Arc<Self>) {
        let mut ticks = tokio::time::interval(TICK);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let now = self.clock.now();
            let answer =
                tokio::time::timeout(CALL_TIMEOUT, self.backend.heartbeat(self.instance, now))
                    .await;
            if let Ok(Ok(instances)) = answer {
                self.instances.store(instances.max(1), Ordering::Relaxed);
            }
        }
    }

    /// `rate` and `quota` divided among the instances the backend last reported (each at
    /// least 1 request): what decides on this instance while the backend fails.
    #[cold]
    pub(crate) fn local_share(
        &self,
        rate: Option<RateLimit>,
        quota: Option<Quota>,
    ) -> (Option<RateLimit>, Option<Quota>) {
        let instances = self.instances();
        (
            rate.map(|r| {
                RateLimit::new((r.requests() / instances).max(1), r.per_secs()).unwrap_or(r)
            }),
            quota.map(|q| Quota::new((q.requests() / instances).max(1), q.per()).unwrap_or(q)),
        )
    }

    /// Consumes one request of `entry`'s limits and a leased token, or owes the request
    /// (see [`SharedLimits`]): [`Limiter::consume`](crate::limits::limiter::Limiter::consume)
    /// when the limits are shared, kept out of line so that one instance's path stays
    /// as small as it was.
    #[inline(never)]
    pub(crate) fn consume(
        &self,
        local: &LocalLimits,
        charge: &Charge<'_>,
    ) -> Result<Seen, (Exhausted, Seen)> {
        let Charge {
            id,
            entry,
            local: (rate, quota),
            own,
            now,
        } = *charge;
        let commit = |undo: &dyn Fn()| match entry.commit(rate, quota, now) {
            Ok(counted) => Ok(local.seen(entry, counted)),
            Err((limit, counted)) => {
                undo();
                Err((limit, local.seen(entry, counted)))
            }
        };
        let ask = || self.ask(id, entry, own.0, own.1);
        let refused = |limit: Exhausted| {
            let counted = entry.peek(rate, quota, now).exhausted(limit);
            Err((limit, local.seen(entry, counted)))
        };
        if !self.is_healthy() {
            // The local share decides; the backend hears of it when it is back.
            let admitted = commit(&|| {});
            if admitted.is_ok() && entry.lease.owe() {
                ask();
            }
            return admitted;
        }
        match entry.lease.take(epoch_secs(now)) {
            Take::Spent { refill } => {
                let admitted = commit(&|| entry.lease.untake());
                if refill {
                    ask();
                }
                admitted
            }
            Take::Short {
                limit,
                ask: again,
                current,
            } => {
                if again {
                    ask();
                }
                if !current {
                    self.refused_awaiting_lease();
                }
                refused(limit)
            }
            // No token, and the backend did not say the limit ran out (the key is new
            // here, or its refill is in flight): up to one batch is owed.
            Take::Empty => match entry.lease.owe_within(batch_cap(own.0, own.1)) {
                Some(first) => {
                    let admitted = commit(&|| entry.lease.unowe());
                    if first {
                        ask();
                    }
                    admitted
                }
                None => {
                    self.refused_awaiting_lease();
                    refused(Exhausted::Rate {
                        retry_after: Duration::from_secs(1),
                    })
                }
            },
        }
    }

    /// Counts a refusal for want of a lease (see
    /// [`SharedLimitsStats::refused_awaiting_lease`]).
    pub(crate) fn refused_awaiting_lease(&self) {
        self.awaiting.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether leased tokens decide (else the local share does): the task runs and
    /// the backend's last answer was a success.
    pub(crate) fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed) && self.running.load(Ordering::Relaxed)
    }

    /// Queues a lease call for `id`; if the queue is full, a later request asks again.
    pub(crate) fn ask(
        &self,
        id: &KeyId,
        entry: &Arc<Entry>,
        rate: Option<RateLimit>,
        quota: Option<Quota>,
    ) {
        let refill = Refill {
            id: *id,
            entry: Arc::clone(entry),
            rate,
            quota,
        };
        if self.sender.try_send(refill).is_err() {
            entry.lease.not_pending();
        }
    }

    /// The batch for a key with these limits and this traffic.
    fn batch(&self, refill: &Refill, spent: u32, since: u64, now: u64) -> u32 {
        let cap = batch_cap(refill.rate, refill.quota);
        let elapsed = now.saturating_sub(since).max(1);
        let per_span = if since == 0 {
            u64::from(refill.entry.lease.owed().max(1))
        } else {
            u64::from(spent)
                .saturating_mul(u64::try_from(self.batch_span.as_nanos()).unwrap_or(u64::MAX))
                / elapsed
        };
        u32::try_from(per_span).unwrap_or(u32::MAX).clamp(1, cap)
    }

    /// One lease call: charges what is owed, asks for a batch.
    async fn refill(&self, refill: &Refill) {
        let now = self.clock.now();
        let now_nanos = epoch_nanos(now);
        let slot = &refill.entry.lease;
        let (spent, since) = slot.traffic();
        let batch = self.batch(refill, spent, since, now_nanos);
        let owed = slot.take_owed();
        let undo = Undo {
            slot,
            owed,
            returned: 0,
            refill: true,
        };
        let request = LeaseRequest::new(
            refill.id,
            self.instance,
            refill.rate,
            refill.quota,
            batch,
            now,
        )
        .owing(owed);
        if let Some(lease) = self.call(&request).await {
            undo.answered();
            self.granted
                .fetch_add(u64::from(lease.granted), Ordering::Relaxed);
            slot.granted(lease.granted, batch, lease.exhausted, now_nanos);
        }
    }

    /// Gives back (or drops) unspent tokens and reports what is owed; with `all`,
    /// whatever the lease's age.
    async fn settle(&self, refill: &Refill, all: bool) -> bool {
        let now = self.clock.now();
        let now_nanos = epoch_nanos(now);
        let slot = &refill.entry.lease;
        let lapsed = all
            || now_nanos.saturating_sub(slot.leased_at())
                >= u64::try_from(self.lease_ttl.as_nanos()).unwrap_or(u64::MAX);
        let returned = if lapsed && slot.tokens() > 0 {
            let tokens = slot.take_tokens();
            slot.lapse();
            // Rate tokens recover by themselves: only a quota's are worth a write.
            if refill.quota.is_some() { tokens } else { 0 }
        } else {
            0
        };
        if returned == 0 && !all {
            // Owed requests (admitted on the local share, during an outage say) are
            // charged with a fresh batch, so that the key leases again at once.
            if slot.owed() == 0 {
                return false;
            }
            self.refill(refill).await;
            return true;
        }
        let owed = slot.take_owed();
        if owed == 0 && returned == 0 {
            return false;
        }
        let undo = Undo {
            slot,
            owed,
            returned,
            refill: false,
        };
        let request =
            LeaseRequest::new(refill.id, self.instance, refill.rate, refill.quota, 0, now)
                .owing(owed)
                .returning(returned);
        if self.call(&request).await.is_some() {
            undo.answered();
        }
        true
    }

    /// What a stopping task does last: every unspent token given back and every owed
    /// request reported, whatever the lease's age, for the leases held and the refills
    /// still queued (whose requests then ask again, if any come). A lease whose call
    /// fails stays held, for the next settling.
    async fn settle_all(&self, state: &mut Leasing) {
        while let Ok(refill) = state.receiver.try_recv() {
            refill.entry.lease.not_pending();
            state.held.insert(refill.id, refill);
        }
        for refill in state.held.values() {
            self.settle(refill, true).await;
        }
        state
            .held
            .retain(|_, refill| !refill.entry.lease.is_settled());
    }

    /// Every second: lapsed leases and owed requests, at most [`CALLS_PER_TICK`] calls.
    async fn tick(&self, held: &mut HashMap<KeyId, Refill>) {
        let mut calls = 0;
        for refill in held.values() {
            if calls >= CALLS_PER_TICK {
                break;
            }
            // While the backend fails, one call per tick finds out whether it is back.
            if !self.is_healthy() && calls > 0 {
                break;
            }
            if self.settle(refill, false).await {
                calls += 1;
            }
        }
        held.retain(|_, refill| !refill.entry.lease.is_settled());
    }

    /// The backend call, with a timeout; logs a change of health.
    async fn call(&self, request: &LeaseRequest) -> Option<crate::limits::backend::Lease> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let answer = tokio::time::timeout(CALL_TIMEOUT, self.backend.lease(request)).await;
        match answer {
            Ok(Ok(lease)) => {
                self.instances
                    .store(lease.instances.max(1), Ordering::Relaxed);
                if !self.healthy.swap(true, Ordering::AcqRel) {
                    tracing::info!(
                        instances = lease.instances,
                        "limit backend answers again; limits are shared again"
                    );
                }
                Some(lease)
            }
            failed => {
                crate::metrics::limit_leased(true);
                self.failures.fetch_add(1, Ordering::Relaxed);
                if self.healthy.swap(false, Ordering::AcqRel) {
                    if self.running.load(Ordering::Acquire) {
                        crate::metrics::limit_backend_up(-1.0);
                    }
                    let instances = self.instances();
                    match failed {
                        Ok(Err(error)) => tracing::warn!(
                            %error, instances,
                            "limit backend failed; each key now gets its limits divided by the last known number of instances until it answers again"
                        ),
                        _ => tracing::warn!(
                            timeout = ?CALL_TIMEOUT, instances,
                            "limit backend did not answer in time; each key now gets its limits divided by the last known number of instances until it answers again"
                        ),
                    }
                }
                None
            }
        }
    }
}

impl fmt::Debug for SharedLimits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedLimits")
            .field("backend", &self.shared.backend)
            .field("instance", &self.shared.instance)
            .field("lease_ttl", &self.shared.lease_ttl)
            .field("batch_span", &self.shared.batch_span)
            .field("expected_instances", &self.shared.expected_instances)
            .field("stats", &self.stats())
            .finish()
    }
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("instance", &self.instance)
            .finish_non_exhaustive()
    }
}

/// The largest batch for a key with these limits: 5 % of the smaller, at least 1. Also
/// what a key may owe while it waits for a lease.
fn batch_cap(rate: Option<RateLimit>, quota: Option<Quota>) -> u32 {
    let smaller = match (rate, quota) {
        (Some(r), Some(q)) => r.requests().min(q.requests()),
        (Some(r), None) => r.requests(),
        (None, Some(q)) => q.requests(),
        (None, None) => 1,
    };
    (smaller / 20).max(1)
}
