//! Outcome metrics through the [`metrics`](https://docs.rs/metrics/0.24) facade
//! (feature `metrics`): how many requests were accepted and why the others were refused,
//! how long store lookups take, and whether the machinery around the middleware (cache,
//! id filter, usage tracker, event sink, feed listener) is healthy.
//!
//! The crate records; the application chooses where the figures go by installing a
//! recorder (`metrics-exporter-prometheus`, a StatsD or OpenTelemetry bridge, …), then
//! calls [`describe`] once so that the recorder knows each metric's help text and unit.
//! With no recorder installed, each call the request path makes is a thread-local read,
//! an atomic load and a call into a no-op (`BENCHMARKS.md` has the figures).
//!
//! ```
//! // In `main`, before serving: the Prometheus text is then `handle.render()`.
//! let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
//!     .install_recorder()
//!     .expect("no other recorder is installed");
//! tower_apikey::metrics::describe();
//! assert!(handle.render().contains(r#"apikey_requests_total{outcome="accepted"} 0"#));
//! ```
//!
//! # The metrics
//!
//! | name | type | labels | what it counts |
//! |---|---|---|---|
//! | [`apikey_requests_total`](REQUESTS_TOTAL) | counter | `outcome` | requests decided by an [`ApiKeyV2Layer`](crate::ApiKeyV2Layer), once each, by [outcome](OUTCOMES) |
//! | [`apikey_lookup_duration_seconds`](LOOKUP_DURATION_SECONDS) | histogram | | store lookups that had to wait (see below), up to the store's answer or the lookup timeout |
//! | [`apikey_cache_hits_total`](CACHE_HITS_TOTAL) | counter | | lookups a [`CachedKeyStore`](crate::store::cached::CachedKeyStore) answered from a cached record or "no such key" |
//! | [`apikey_cache_misses_total`](CACHE_MISSES_TOTAL) | counter | | lookups it passed to the wrapped store (joining a load under way included) |
//! | [`apikey_id_filter_refusals_total`](ID_FILTER_REFUSALS_TOTAL) | counter | `reason`: `absent`, `shed` | ids the cache's id filter refused without asking the store: certainly absent (fresh filter), or shed as overloaded (stale filter, its per-second passes spent) |
//! | [`apikey_usage_flushes_total`](USAGE_FLUSHES_TOTAL) | counter | | [`UsageTracker`](crate::usage::UsageTracker) flushes that wrote last-used times to the sink |
//! | [`apikey_usage_flush_failures_total`](USAGE_FLUSH_FAILURES_TOTAL) | counter | | flushes the sink failed or timed out on (the times are retried) |
//! | [`apikey_usage_dropped_total`](USAGE_DROPPED_TOTAL) | counter | | uses not recorded because the tracker held its maximum of distinct keys |
//! | [`apikey_event_sink_failures_total`](EVENT_SINK_FAILURES_TOTAL) | counter | | events an [`EventLog`](crate::event::EventLog)'s sink failed or timed out on (they stay in the store) |
//! | [`apikey_event_sink_dropped_total`](EVENT_SINK_DROPPED_TOTAL) | counter | | events not forwarded because the sink's queue was full (they stay in the store) |
//! | [`apikey_feed_connected`](FEED_CONNECTED) | gauge | | [`KeyFeedListener`](crate::store::feed::KeyFeedListener)s following their feed: 1 while the (usual single) listener is connected, 0 while it reconnects or after it stopped |
//! | [`apikey_limit_leases_total`](LIMIT_LEASES_TOTAL) | counter | | [`SharedLimits`](crate::limits::SharedLimits)' calls to its [`LimitBackend`](crate::limits::LimitBackend) (each one write) |
//! | [`apikey_limit_lease_failures_total`](LIMIT_LEASE_FAILURES_TOTAL) | counter | | those calls that failed or timed out |
//! | [`apikey_limit_backend_up`](LIMIT_BACKEND_UP) | gauge | | running `SharedLimits` tasks whose backend answers: 1 while the (usual single) one shares its limits, 0 while its keys run on their local share |
//! | [`apikey_throttle_saturation`](THROTTLE_SATURATION) | gauge | | the share (0 to 1) of a [`FailureThrottle`](crate::middleware::FailureThrottle)'s address cells that would refuse on their own ([`FailureThrottle::saturation`](crate::middleware::FailureThrottle::saturation)); computed at most once a second, when failures are counted or refused. Near 1, addresses that never failed are throttled too (a distributed flood) |
//!
//! Label values are a fixed set of static names. No metric is ever labelled with a key,
//! a key id, a digest, a key name or a client address: those would make one series per
//! caller (unbounded cardinality), and a key or digest would leak a secret to whoever
//! reads the dashboards. Per-key figures are in the store (`last_used_at`, the daily
//! request counts), behind the admin API.
//!
//! # Counted once per request
//!
//! An [`ApiKeyV2Layer`](crate::ApiKeyV2Layer) counts every request it decides exactly
//! once: a refusal when it is decided (before or after the lookup), an acceptance when
//! the inner service's answer is ready (or, if the caller goes away first, when the
//! request is dropped). A [`RequireScopesLayer`](crate::RequireScopesLayer) inside it
//! that refuses a key for its scopes marks its answer, and the layer outside counts that
//! request as `insufficient_scope` instead of `accepted`: one count, never two. A
//! `RequireScopesLayer` that finds no identity (no authentication layer ran) counts its
//! `missing` itself. Two authentication layers around one service count twice.
//!
//! # What the latency histogram leaves out
//!
//! [`apikey_lookup_duration_seconds`](LOOKUP_DURATION_SECONDS) times the lookups the
//! middleware had to wait for (a cache miss going to PostgreSQL, a store with no
//! synchronous answer), because that is where a slow database shows. Lookups answered
//! synchronously from memory ([`KeyStore::lookup_ready`](crate::KeyStore::lookup_ready):
//! a cache hit, the in-memory store) take nanoseconds and are not timed, which keeps
//! two clock reads off every cached request; the cache's hit counter says how many
//! there were. Requests refused before any lookup (`missing`, `invalid_request`,
//! `invalid_key` for a malformed key, `throttled`) are not timed either. The recorder
//! chooses the buckets: durations are in seconds, from microseconds (a caller joining a
//! load already under way) to the lookup timeout (3 s by default).

// Within this module `metrics` is also our own name at the crate root, so the facade is
// always named `::metrics`.

#[cfg(feature = "metrics")]
pub use on::{
    CACHE_HITS_TOTAL, CACHE_MISSES_TOTAL, EVENT_SINK_DROPPED_TOTAL, EVENT_SINK_FAILURES_TOTAL,
    FEED_CONNECTED, ID_FILTER_REFUSALS_TOTAL, LIMIT_BACKEND_UP, LIMIT_LEASE_FAILURES_TOTAL,
    LIMIT_LEASES_TOTAL, LOOKUP_DURATION_SECONDS, OUTCOMES, REQUESTS_TOTAL, THROTTLE_SATURATION,
    USAGE_DROPPED_TOTAL, USAGE_FLUSH_FAILURES_TOTAL, USAGE_FLUSHES_TOTAL, describe,
};

// The crate's call sites: the same names with the feature and without, so that each is
// one line, and compiles to nothing without it.
// The cache's and the listener's are used only with the `cache` feature.
#[cfg(not(feature = "metrics"))]
#[allow(unused_imports)]
pub(crate) use off::{
    Accepted, LookupTimer, cache_hit, cache_miss, event_sink_dropped, event_sink_failed,
    feed_listening, feed_up, id_filter_refused, limit_backend_up, limit_leased, refused,
    scope_refused, throttle_saturation, usage_dropped, usage_flush_failed, usage_flushed,
};
#[cfg(feature = "metrics")]
#[cfg_attr(not(feature = "cache"), allow(unused_imports))]
pub(crate) use on::{
    Accepted, LookupTimer, cache_hit, cache_miss, event_sink_dropped, event_sink_failed,
    feed_listening, feed_up, id_filter_refused, limit_backend_up, limit_leased, refused,
    scope_refused, throttle_saturation, usage_dropped, usage_flush_failed, usage_flushed,
};

/// Why the id filter refused an id (the `reason` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(feature = "cache"), allow(dead_code))] // the id filter is the cache's
pub(crate) enum FilterRefusal {
    /// The filter is fresh and does not hold the id.
    Absent,
    /// The filter is stale and its passes for this second are spent.
    Shed,
}

#[cfg(feature = "metrics")]
#[cfg_attr(not(feature = "cache"), allow(dead_code))]
mod on {
    use std::time::Instant;

    use ::metrics::{Key, Label, Level, Metadata, Unit};
    use http::{Extensions, Response};

    use super::FilterRefusal;
    use crate::outcome::{Outcome, outcome_list};

    /// Requests decided, by `outcome` (every name of [`OUTCOMES`], each once per request).
    pub const REQUESTS_TOTAL: &str = "apikey_requests_total";
    /// Seconds a store lookup that had to wait took (histogram).
    pub const LOOKUP_DURATION_SECONDS: &str = "apikey_lookup_duration_seconds";
    /// Lookups a `CachedKeyStore` answered from memory.
    pub const CACHE_HITS_TOTAL: &str = "apikey_cache_hits_total";
    /// Lookups a `CachedKeyStore` passed to the store it wraps.
    pub const CACHE_MISSES_TOTAL: &str = "apikey_cache_misses_total";
    /// Ids the id filter refused without a query, by `reason` (`absent`, `shed`).
    pub const ID_FILTER_REFUSALS_TOTAL: &str = "apikey_id_filter_refusals_total";
    /// Usage-tracker flushes that wrote last-used times.
    pub const USAGE_FLUSHES_TOTAL: &str = "apikey_usage_flushes_total";
    /// Usage-tracker flushes that failed or timed out.
    pub const USAGE_FLUSH_FAILURES_TOTAL: &str = "apikey_usage_flush_failures_total";
    /// Uses the usage tracker dropped because it held its maximum of distinct keys.
    pub const USAGE_DROPPED_TOTAL: &str = "apikey_usage_dropped_total";
    /// Events the event sink failed or timed out on.
    pub const EVENT_SINK_FAILURES_TOTAL: &str = "apikey_event_sink_failures_total";
    /// Events dropped for the sink because its queue was full.
    pub const EVENT_SINK_DROPPED_TOTAL: &str = "apikey_event_sink_dropped_total";
    /// Feed listeners connected to their feed (gauge).
    pub const FEED_CONNECTED: &str = "apikey_feed_connected";
    /// `SharedLimits`' calls to its limit backend.
    pub const LIMIT_LEASES_TOTAL: &str = "apikey_limit_leases_total";
    /// `SharedLimits`' calls to its limit backend that failed or timed out.
    pub const LIMIT_LEASE_FAILURES_TOTAL: &str = "apikey_limit_lease_failures_total";
    /// Running `SharedLimits` tasks whose backend answers (gauge).
    pub const LIMIT_BACKEND_UP: &str = "apikey_limit_backend_up";
    /// The share of a failure throttle's cells that would refuse on their own (gauge).
    pub const THROTTLE_SATURATION: &str = "apikey_throttle_saturation";

    macro_rules! outcome_names {
        ($($variant:ident => $name:literal),* $(,)?) => {
            /// Every value of the `outcome` label of [`REQUESTS_TOTAL`] (DESIGN §13), in
            /// the order [`describe`] registers them.
            pub const OUTCOMES: &[&str] = &[$($name),*];

            /// One prebuilt key per outcome, indexed by [`Outcome`]'s discriminant, so
            /// that counting a request builds nothing and allocates nothing.
            static REQUEST_KEYS: &[Key] = &[$({
                static LABELS: [Label; 1] = [Label::from_static_parts("outcome", $name)];
                Key::from_static_parts(REQUESTS_TOTAL, &LABELS)
            }),*];
        };
    }
    outcome_list!(outcome_names);

    static LOOKUP_KEY: Key = Key::from_static_name(LOOKUP_DURATION_SECONDS);
    static CACHE_HITS_KEY: Key = Key::from_static_name(CACHE_HITS_TOTAL);
    static CACHE_MISSES_KEY: Key = Key::from_static_name(CACHE_MISSES_TOTAL);
    static ABSENT_LABELS: [Label; 1] = [Label::from_static_parts("reason", "absent")];
    static SHED_LABELS: [Label; 1] = [Label::from_static_parts("reason", "shed")];
    static ID_FILTER_KEYS: [Key; 2] = [
        Key::from_static_parts(ID_FILTER_REFUSALS_TOTAL, &ABSENT_LABELS),
        Key::from_static_parts(ID_FILTER_REFUSALS_TOTAL, &SHED_LABELS),
    ];
    static USAGE_FLUSHES_KEY: Key = Key::from_static_name(USAGE_FLUSHES_TOTAL);
    static USAGE_FLUSH_FAILURES_KEY: Key = Key::from_static_name(USAGE_FLUSH_FAILURES_TOTAL);
    static USAGE_DROPPED_KEY: Key = Key::from_static_name(USAGE_DROPPED_TOTAL);
    static EVENT_SINK_FAILURES_KEY: Key = Key::from_static_name(EVENT_SINK_FAILURES_TOTAL);
    static EVENT_SINK_DROPPED_KEY: Key = Key::from_static_name(EVENT_SINK_DROPPED_TOTAL);
    static FEED_CONNECTED_KEY: Key = Key::from_static_name(FEED_CONNECTED);
    static LIMIT_LEASES_KEY: Key = Key::from_static_name(LIMIT_LEASES_TOTAL);
    static LIMIT_LEASE_FAILURES_KEY: Key = Key::from_static_name(LIMIT_LEASE_FAILURES_TOTAL);
    static LIMIT_BACKEND_UP_KEY: Key = Key::from_static_name(LIMIT_BACKEND_UP);
    static THROTTLE_SATURATION_KEY: Key = Key::from_static_name(THROTTLE_SATURATION);

    /// What recorders that filter by target or level see: this crate, at INFO.
    static METADATA: Metadata<'static> =
        Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

    /// Registers the help text and unit of every metric with the installed recorder,
    /// and starts every counter at 0, each outcome of [`REQUESTS_TOTAL`] included, so
    /// that a dashboard sees each series from the start and a rate over the first
    /// refusal of a kind is not lost. (The feed gauge appears when a listener starts.)
    ///
    /// Call it once, after installing the recorder: with none installed it does
    /// nothing. Calling it again changes nothing.
    pub fn describe() {
        ::metrics::describe_counter!(
            REQUESTS_TOTAL,
            Unit::Count,
            "Requests decided by the API-key middleware, by outcome."
        );
        ::metrics::describe_histogram!(
            LOOKUP_DURATION_SECONDS,
            Unit::Seconds,
            "Duration of key-store lookups the middleware waited for (not those answered from memory)."
        );
        ::metrics::describe_counter!(
            CACHE_HITS_TOTAL,
            Unit::Count,
            "Key lookups answered by the cache."
        );
        ::metrics::describe_counter!(
            CACHE_MISSES_TOTAL,
            Unit::Count,
            "Key lookups the cache passed to the store it wraps."
        );
        ::metrics::describe_counter!(
            ID_FILTER_REFUSALS_TOTAL,
            Unit::Count,
            "Key ids the id filter refused without a query, by reason."
        );
        ::metrics::describe_counter!(
            USAGE_FLUSHES_TOTAL,
            Unit::Count,
            "Usage-tracker flushes that wrote last-used times."
        );
        ::metrics::describe_counter!(
            USAGE_FLUSH_FAILURES_TOTAL,
            Unit::Count,
            "Usage-tracker flushes that failed or timed out; their times are retried."
        );
        ::metrics::describe_counter!(
            USAGE_DROPPED_TOTAL,
            Unit::Count,
            "Key uses not recorded because the usage tracker held its maximum of keys."
        );
        ::metrics::describe_counter!(
            EVENT_SINK_FAILURES_TOTAL,
            Unit::Count,
            "Key events the event sink failed or timed out on; they stay in the store."
        );
        ::metrics::describe_counter!(
            EVENT_SINK_DROPPED_TOTAL,
            Unit::Count,
            "Key events not forwarded because the sink's queue was full; they stay in the store."
        );
        ::metrics::describe_gauge!(
            FEED_CONNECTED,
            Unit::Count,
            "Key-feed listeners connected to their feed (1 up, 0 down for the usual one)."
        );
        ::metrics::describe_counter!(
            LIMIT_LEASES_TOTAL,
            Unit::Count,
            "Calls of the shared limits to their backend, each one write."
        );
        ::metrics::describe_counter!(
            LIMIT_LEASE_FAILURES_TOTAL,
            Unit::Count,
            "Calls of the shared limits to their backend that failed or timed out."
        );
        ::metrics::describe_gauge!(
            LIMIT_BACKEND_UP,
            Unit::Count,
            "Shared-limits tasks whose backend answers (1 up, 0 on local limits for the usual one)."
        );
        ::metrics::describe_gauge!(
            THROTTLE_SATURATION,
            Unit::Count,
            "Share of the failure throttle's address cells that would refuse on their own (0 to 1)."
        );
        let counters = REQUEST_KEYS.iter().chain(&ID_FILTER_KEYS).chain([
            &LIMIT_LEASES_KEY,
            &LIMIT_LEASE_FAILURES_KEY,
            &CACHE_HITS_KEY,
            &CACHE_MISSES_KEY,
            &USAGE_FLUSHES_KEY,
            &USAGE_FLUSH_FAILURES_KEY,
            &USAGE_DROPPED_KEY,
            &EVENT_SINK_FAILURES_KEY,
            &EVENT_SINK_DROPPED_KEY,
        ]);
        for key in counters {
            add(key, 0);
        }
    }

    #[inline]
    fn add(key: &'static Key, n: u64) {
        ::metrics::with_recorder(|recorder| recorder.register_counter(key, &METADATA)).increment(n);
    }

    #[inline]
    fn request(outcome: Outcome) {
        add(&REQUEST_KEYS[outcome as usize], 1);
    }

    /// Counts a request the authentication layer refused (or, for `missing`, a
    /// `RequireScopesLayer` with no authentication layer outside it).
    #[inline]
    pub(crate) fn refused(outcome: Outcome) {
        request(outcome);
    }

    /// Marks the answer of a `RequireScopesLayer` that refused a key for its scopes, so
    /// that the authentication layer outside, which accepted the key, counts the request
    /// as `insufficient_scope`. The mark travels in the response's extensions, which
    /// take over the refused request's map (cleared): like the refusal's headers, it
    /// allocates nothing, the marker being of size zero.
    #[inline]
    pub(crate) fn scope_refused<B>(response: &mut Response<B>, request: &mut Extensions) {
        let mut extensions = std::mem::take(request);
        extensions.clear();
        extensions.insert(ScopeRefused);
        *response.extensions_mut() = extensions;
    }

    /// The mark of [`scope_refused`]: private, so no one else can set it.
    #[derive(Debug, Clone, Copy)]
    struct ScopeRefused;

    /// An accepted request, counted once: when the inner service's answer is ready
    /// ([`answered`](Self::answered)), or when it is dropped before (the caller went
    /// away, or the inner service failed).
    #[derive(Debug)]
    pub(crate) struct Accepted {
        pending: bool,
    }

    impl Accepted {
        #[inline]
        pub(crate) fn new() -> Self {
            Self { pending: true }
        }

        /// The inner service answered: `accepted`, or `insufficient_scope` if a
        /// `RequireScopesLayer` inside refused the key and marked its answer.
        #[inline]
        pub(crate) fn answered<B>(&mut self, response: &mut Response<B>) {
            if !std::mem::replace(&mut self.pending, false) {
                return;
            }
            let outcome = match response.extensions_mut().remove::<ScopeRefused>() {
                Some(ScopeRefused) => Outcome::InsufficientScope,
                None => Outcome::Accepted,
            };
            request(outcome);
        }
    }

    impl Drop for Accepted {
        fn drop(&mut self) {
            if self.pending {
                request(Outcome::Accepted);
            }
        }
    }

    /// Times a lookup that had to wait; recorded by [`finished`](Self::finished).
    #[derive(Debug)]
    pub(crate) struct LookupTimer(Instant);

    impl LookupTimer {
        #[inline]
        pub(crate) fn start() -> Self {
            Self(Instant::now())
        }

        /// The store answered (or the lookup timed out).
        #[inline]
        pub(crate) fn finished(self) {
            let seconds = self.0.elapsed().as_secs_f64();
            ::metrics::with_recorder(|recorder| {
                recorder.register_histogram(&LOOKUP_KEY, &METADATA)
            })
            .record(seconds);
        }
    }

    /// Counts an answer the cache gave from memory.
    #[inline]
    pub(crate) fn cache_hit() {
        add(&CACHE_HITS_KEY, 1);
    }

    /// Counts a lookup the cache passed to the store it wraps.
    #[inline]
    pub(crate) fn cache_miss() {
        add(&CACHE_MISSES_KEY, 1);
    }

    /// Counts an id the id filter refused.
    #[inline]
    pub(crate) fn id_filter_refused(reason: FilterRefusal) {
        add(&ID_FILTER_KEYS[reason as usize], 1);
    }

    /// Counts a flush that wrote last-used times.
    pub(crate) fn usage_flushed() {
        add(&USAGE_FLUSHES_KEY, 1);
    }

    /// Counts a flush that failed.
    pub(crate) fn usage_flush_failed() {
        add(&USAGE_FLUSH_FAILURES_KEY, 1);
    }

    /// Counts a use the tracker dropped.
    #[inline]
    pub(crate) fn usage_dropped() {
        add(&USAGE_DROPPED_KEY, 1);
    }

    /// Counts an event the sink failed on.
    pub(crate) fn event_sink_failed() {
        add(&EVENT_SINK_FAILURES_KEY, 1);
    }

    /// Counts an event dropped for a full queue.
    pub(crate) fn event_sink_dropped() {
        add(&EVENT_SINK_DROPPED_KEY, 1);
    }

    fn feed_gauge() -> ::metrics::Gauge {
        ::metrics::with_recorder(|recorder| recorder.register_gauge(&FEED_CONNECTED_KEY, &METADATA))
    }

    /// A listener starts: the gauge appears (at 0 until its feed is up), so that an
    /// alert on `== 0` fires for a listener that never connects.
    pub(crate) fn feed_listening() {
        feed_gauge().increment(0.0);
    }

    /// A listener's feed went up (`true`) or down; called on changes only.
    pub(crate) fn feed_up(up: bool) {
        if up {
            feed_gauge().increment(1.0);
        } else {
            feed_gauge().decrement(1.0);
        }
    }

    /// Counts a call of the shared limits to their backend, and whether it failed.
    pub(crate) fn limit_leased(failed: bool) {
        add(&LIMIT_LEASES_KEY, 1);
        if failed {
            add(&LIMIT_LEASE_FAILURES_KEY, 1);
        }
    }

    /// A shared-limits task's backend went up (`+1`), down (`-1`), or the task started
    /// down (`0`, so that the gauge appears); called on changes only.
    pub(crate) fn limit_backend_up(change: f64) {
        ::metrics::with_recorder(|recorder| {
            recorder.register_gauge(&LIMIT_BACKEND_UP_KEY, &METADATA)
        })
        .increment(change);
    }

    /// A failure throttle's saturation, freshly computed.
    pub(crate) fn throttle_saturation(share: f64) {
        ::metrics::with_recorder(|recorder| {
            recorder.register_gauge(&THROTTLE_SATURATION_KEY, &METADATA)
        })
        .set(share);
    }
}

/// The same names without the feature: nothing, inlined away.
#[cfg(not(feature = "metrics"))]
#[allow(dead_code)]
mod off {
    use http::{Extensions, Response};

    use super::FilterRefusal;
    use crate::outcome::Outcome;

    #[inline(always)]
    pub(crate) fn refused(_: Outcome) {}

    #[inline(always)]
    pub(crate) fn scope_refused<B>(_: &mut Response<B>, _: &mut Extensions) {}

    #[derive(Debug)]
    pub(crate) struct Accepted;

    impl Accepted {
        #[inline(always)]
        pub(crate) fn new() -> Self {
            Self
        }

        #[inline(always)]
        pub(crate) fn answered<B>(&mut self, _: &mut Response<B>) {}
    }

    #[derive(Debug)]
    pub(crate) struct LookupTimer;

    impl LookupTimer {
        #[inline(always)]
        pub(crate) fn start() -> Self {
            Self
        }

        #[inline(always)]
        pub(crate) fn finished(self) {}
    }

    #[inline(always)]
    pub(crate) fn cache_hit() {}

    #[inline(always)]
    pub(crate) fn cache_miss() {}

    #[inline(always)]
    pub(crate) fn id_filter_refused(_: FilterRefusal) {}

    #[inline(always)]
    pub(crate) fn usage_flushed() {}

    #[inline(always)]
    pub(crate) fn usage_flush_failed() {}

    #[inline(always)]
    pub(crate) fn usage_dropped() {}

    #[inline(always)]
    pub(crate) fn event_sink_failed() {}

    #[inline(always)]
    pub(crate) fn event_sink_dropped() {}

    #[inline(always)]
    pub(crate) fn feed_listening() {}

    #[inline(always)]
    pub(crate) fn feed_up(_: bool) {}

    #[inline(always)]
    pub(crate) fn limit_leased(_: bool) {}

    #[inline(always)]
    pub(crate) fn limit_backend_up(_: f64) {}

    pub(crate) fn throttle_saturation(_: f64) {}
}

#[cfg(all(test, feature = "metrics"))]
mod tests;
