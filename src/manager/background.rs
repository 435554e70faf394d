//! The manager's one background future ([`KeyManager::background`]) and its one
//! shutdown ([`KeyManager::shutdown`]), in a documented order (DESIGN §4).

use std::fmt;
use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use futures_util::future::{join5, select};

use super::run::{EVENTS, EXPIRING, FEED, LIMITS, Run, USAGE};
use crate::event::EventLog;
use crate::manager::KeyManager;
use crate::store::KeyStoreAdmin;
use crate::usage::UsageSinkError;

/// Lets another background run once this one ends or is dropped.
struct Active<'a>(&'a Run);

impl Drop for Active<'_> {
    fn drop(&mut self) {
        self.0.active.store(false, Ordering::Release);
    }
}

/// Why [`KeyManager::shutdown`] could not write everything pending. Everything else
/// was still done: the loops stopped, the events delivered, the tokens given back.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShutdownError {
    /// The last write of last-used times and usage counts failed (the sink errored or
    /// timed out). They are still pending: calling `shutdown` again tries again.
    #[error(
        "the last write of last-used times and usage counts failed; calling shutdown again retries it"
    )]
    Usage(#[source] UsageSinkError),
}

/// Every background loop of a [`KeyManager`], as one future: see
/// [`KeyManager::background`]. Spawn it; it ends after [`KeyManager::shutdown`].
#[must_use = "the loops run only while this future is polled: spawn it"]
pub struct Background {
    future: Pin<Box<dyn Future<Output = ()> + Send>>,
}

impl Future for Background {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.future.as_mut().poll(cx)
    }
}

impl fmt::Debug for Background {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Background").finish_non_exhaustive()
    }
}

impl<S: KeyStoreAdmin + Clone> KeyManager<S> {
    /// One future that runs every background loop of this manager, until
    /// [`shutdown`](Self::shutdown):
    ///
    /// - the usage flush: last-used times, usage counts and recent addresses, every
    ///   [period](crate::KeyManagerBuilder::usage_flush_period);
    /// - with [events](crate::KeyManagerBuilder::events): the sink's queue, and the
    ///   expiring pass with event pruning (hourly by default);
    /// - with [shared limits](crate::KeyManagerBuilder::shared_limits): lease refills,
    ///   returns and heartbeats;
    /// - with a feed listener (`KeyManagerBuilder::feed_listener`, feature `cache`):
    ///   the feed that keeps the cache in step with other instances.
    ///
    /// Spawn it once, before serving: `let running = tokio::spawn(manager.background());`.
    /// The library never spawns a task of its own. One runs at a time: a second one,
    /// while the first runs, ends at once with a warning.
    ///
    /// It takes no stop signal, on purpose: the loops must outlive the server, whose
    /// last requests still record uses, so the application's signal stops the server,
    /// and [`shutdown`](Self::shutdown), called once the server has stopped, stops the
    /// loops in order and writes what is pending. One signal, one order, nothing lost
    /// in between.
    ///
    /// Dropping the future (aborting its task) stops every loop and leaves nothing
    /// half-done: pending times, queued events and held leases stay for
    /// [`shutdown`](Self::shutdown) to write, or for a new `background` to carry on
    /// with.
    pub fn background(&self) -> Background {
        let manager = self.clone();
        Background {
            future: Box::pin(async move { manager.run_loops().await }),
        }
    }

    async fn run_loops(&self) {
        let run = &*self.run;
        if run.active.swap(true, Ordering::AcqRel) {
            tracing::warn!(
                "KeyManager::background is already running; this second one does nothing"
            );
            return;
        }
        let _active = Active(run);
        let usage = run.tracked(USAGE, self.tracker.run());
        let events = async {
            if let Some(events) = &self.events {
                run.tracked(EVENTS, events.run()).await;
            }
        };
        let expiring = async {
            if let Some(events) = &self.events {
                run.tracked(
                    EXPIRING,
                    self.expiring_passes(events, run.stopped(EXPIRING)),
                )
                .await;
            }
        };
        let limits = async {
            if let Some(limits) = &self.limits {
                run.tracked(LIMITS, limits.run(run.stopped(LIMITS))).await;
            }
        };
        let feed = async {
            #[cfg(feature = "cache")]
            if let Some(feed) = &run.feed {
                run.tracked(FEED, feed.follow_until(run.stopped(FEED)))
                    .await;
            }
        };
        join5(usage, events, expiring, limits, feed).await;
    }

    /// The expiring pass and pruning, now and then every
    /// [`EventLogBuilder::expiring_every`](crate::event::EventLogBuilder::expiring_every),
    /// until `stop`. A pass under way when `stop` comes is cut short: what it had not
    /// done yet, the next pass does (on any instance; each threshold is stored once).
    pub(super) async fn expiring_passes(&self, events: &EventLog, stop: impl Future<Output = ()>) {
        let passes = async {
            loop {
                if let Err(error) = self.warn_expiring().await {
                    tracing::warn!(%error, "the expiring pass could not list keys; it will retry");
                }
                let now = self.clock.now();
                if let Err(error) = events.prune(now).await {
                    tracing::warn!(%error, "pruning old events failed; it will retry");
                }
                // Usage counts are kept as long as events: the sink that writes them
                // prunes them, when it keeps them where they can be read.
                if let (Some(counts), Some(before)) =
                    (self.usage_counts(), events.prune_before(now))
                    && let Err(error) = counts.prune_usage(before).await
                {
                    tracing::warn!(%error, "pruning old usage counts failed; it will retry");
                }
                tokio::time::sleep(events.expiring_every()).await;
            }
        };
        // `stop` first: a background started after shutdown makes no pass.
        select(pin!(stop), pin!(passes)).await;
    }

    /// Stops every background loop and writes what is pending, in this order, once the
    /// server has stopped taking requests:
    ///
    /// 1. the expiring pass stops (one under way is cut short; the next pass, on any
    ///    instance, does the rest);
    /// 2. **last-used times and usage counts**: the tracker's last write, one batch,
    ///    which may itself record events (`first_used`, the end of an `until_first_use`
    ///    rotation, `ended_key_used`), hence before the events;
    /// 3. **events**: everything queued for the sink is delivered;
    /// 4. **limits**: unspent tokens are given back and owed requests reported, so that
    ///    other instances can spend them;
    /// 5. the **feed listener** stops.
    ///
    /// Then the [`background`](Self::background) future ends. Each step runs even if an
    /// earlier one failed; the error is the tracker's, whose times stay pending.
    ///
    /// Safe to call again, and to cancel: a second call (or one after a cancelled one)
    /// does what is left, such as writing uses recorded since, or retrying a failed
    /// write; concurrent calls take turns. It works without a running background too
    /// (never spawned, or dropped): then it writes and delivers what is pending itself.
    ///
    /// # Errors
    ///
    /// [`ShutdownError::Usage`] if the last write of last-used times failed.
    pub async fn shutdown(&self) -> Result<(), ShutdownError> {
        let run = &*self.run;
        let _one_at_a_time = run.shutting.lock().await;
        run.stop_and_wait(EXPIRING).await;
        let usage = self.tracker.shutdown().await;
        if let Some(events) = &self.events {
            events.shutdown().await;
        }
        if let Some(limits) = &self.limits {
            run.stop_and_wait(LIMITS).await;
            // The leases a dropped background left behind, if any.
            limits.give_back().await;
        }
        run.stop_and_wait(FEED).await;
        usage.map_err(ShutdownError::Usage)
    }
}
