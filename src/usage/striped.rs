//! A counter that many threads bump without a locked instruction or a shared cache line.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Mutex, PoisonError};

/// Threads that get a stripe of their own; later threads share one.
const OWNED_STRIPES: usize = 64;

/// One cache line (two, on CPUs that prefetch pairs) per stripe.
#[repr(align(128))]
#[derive(Default)]
struct Stripe(AtomicU64);

/// A statistics counter for the request path.
///
/// Each of up to 64 live threads that count gets a stripe it alone writes, so adding is
/// a plain load and store (no locked read-modify-write, no cache line shared with
/// another thread); threads beyond 64 alive at once add atomically to a shared overflow
/// stripe. Reading sums the stripes.
pub(crate) struct StripedCounter {
    owned: [Stripe; OWNED_STRIPES],
    shared: Stripe,
}

impl Default for StripedCounter {
    fn default() -> Self {
        Self {
            owned: std::array::from_fn(|_| Stripe::default()),
            shared: Stripe::default(),
        }
    }
}

impl StripedCounter {
    pub(crate) fn add(&self, n: u64) {
        match self.owned.get(thread_index()) {
            // Sole writer: a load and a store cannot lose an update.
            Some(own) => own.0.store(own.0.load(Relaxed).wrapping_add(n), Relaxed),
            None => {
                self.shared.0.fetch_add(n, Relaxed);
            }
        }
    }

    pub(crate) fn sum(&self) -> u64 {
        self.owned
            .iter()
            .chain(std::iter::once(&self.shared))
            .map(|s| s.0.load(Relaxed))
            .fold(0, u64::wrapping_add)
    }
}

/// This thread's index: the lowest free one, taken on the thread's first count and
/// given back when the thread exits, so that threads which come and go (a blocking
/// pool, a benchmark) reuse stripes instead of spilling into the shared one. An index
/// belongs to one live thread at a time, so a stripe only ever has one writer.
pub(crate) fn thread_index() -> usize {
    /// Indexes given back by exited threads.
    static FREE: Mutex<Vec<usize>> = Mutex::new(Vec::new());
    static NEXT: AtomicUsize = AtomicUsize::new(0);

    struct Owned(usize);
    impl Drop for Owned {
        fn drop(&mut self) {
            FREE.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(self.0);
        }
    }

    thread_local! {
        static INDEX: Owned = Owned(
            FREE.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop()
                .unwrap_or_else(|| NEXT.fetch_add(1, Relaxed)),
        );
    }
    // During thread teardown the slot may be gone: count into the shared stripe.
    INDEX.try_with(|index| index.0).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exited_threads_give_their_stripe_back() {
        let first = std::thread::spawn(thread_index).join().unwrap();
        let later: Vec<usize> = (0..200)
            .map(|_| std::thread::spawn(thread_index).join().unwrap())
            .collect();
        // One thread at a time: each reuses a freed index, never running past the
        // owned stripes however many threads have come and gone.
        assert!(
            later.iter().all(|&i| i < OWNED_STRIPES),
            "{first} {later:?}"
        );
    }

    #[test]
    fn sums_across_more_threads_than_stripes() {
        let counter = std::sync::Arc::new(StripedCounter::default());
        let threads: Vec<_> = (0..OWNED_STRIPES + 8)
            .map(|_| {
                let counter = counter.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        counter.add(1);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(counter.sum(), (OWNED_STRIPES as u64 + 8) * 1000);
    }
}
