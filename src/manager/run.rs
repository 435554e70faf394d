//! [`Run`]: what the manager's background and its shutdown share, across the
//! manager's clones: which loops run, and which were asked to stop.

use std::future::Future;
use std::sync::atomic::AtomicBool;

use tokio::sync::{Mutex, watch};

#[cfg(feature = "cache")]
use crate::store::feed_listener::KeyFeedListener;

/// The loops, one bit each: in [`Run::stop`] when shutdown asked it to stop, in
/// [`Run::loops`] while it runs.
pub(super) const EXPIRING: u8 = 1;
pub(super) const LIMITS: u8 = 1 << 1;
pub(super) const FEED: u8 = 1 << 2;
pub(super) const USAGE: u8 = 1 << 3;
pub(super) const EVENTS: u8 = 1 << 4;

/// What the background and shutdown share, across the manager's clones.
pub(super) struct Run {
    /// The loops shutdown has asked to stop (the usage flush and the event queue have
    /// their own signals).
    pub(super) stop: watch::Sender<u8>,
    /// The loops running now; each clears its bit when it ends, dropped included.
    pub(super) loops: watch::Sender<u8>,
    /// Whether a background future is running: one at a time.
    pub(super) active: AtomicBool,
    /// One shutdown at a time, so that a second call waits for the first and then
    /// finds nothing left to do.
    pub(super) shutting: Mutex<()>,
    /// The cache's feed listener, if the application gave one. Kept here rather than
    /// consumed, so that a background started again after one was dropped follows it.
    #[cfg(feature = "cache")]
    pub(super) feed: Option<KeyFeedListener>,
}

impl Run {
    pub(super) fn new(#[cfg(feature = "cache")] feed: Option<KeyFeedListener>) -> Self {
        Self {
            stop: watch::Sender::new(0),
            loops: watch::Sender::new(0),
            active: AtomicBool::new(false),
            shutting: Mutex::new(()),
            #[cfg(feature = "cache")]
            feed,
        }
    }

    /// Completes once shutdown has asked the loop `bit` to stop.
    pub(super) fn stopped(&self, bit: u8) -> impl Future<Output = ()> + Send + 'static {
        let mut stop = self.stop.subscribe();
        async move {
            // The sender lives as long as any manager clone, which this loop holds.
            let _ = stop.wait_for(|asked| asked & bit != 0).await;
        }
    }

    /// Asks the loop `bit` to stop, and waits until it has (at once if it is not
    /// running).
    pub(super) async fn stop_and_wait(&self, bit: u8) {
        self.stop.send_modify(|asked| *asked |= bit);
        let mut loops = self.loops.subscribe();
        let _ = loops.wait_for(|running| running & bit == 0).await;
    }

    /// Runs `work` as the loop `bit`: marked running until it ends or is dropped.
    pub(super) async fn tracked(&self, bit: u8, work: impl Future<Output = ()>) {
        self.loops.send_modify(|running| *running |= bit);
        let _ended = Ended { run: self, bit };
        work.await;
    }
}

/// Clears a loop's bit however it ends, so that a shutdown never waits for a loop
/// whose future was dropped.
struct Ended<'a> {
    run: &'a Run,
    bit: u8,
}

impl Drop for Ended<'_> {
    fn drop(&mut self) {
        self.run.loops.send_modify(|running| *running &= !self.bit);
    }
}
