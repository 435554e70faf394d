//! A counter that many threads bump without a locked instruction or a shared cache line.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

/// Threads that get a stripe of their own; later threads share one.
const OWNED_STRIPES: usize = 64;

/// One cache line (two, on CPUs that prefetch pairs) per stripe.
#[repr(align(128))]
#[derive(Default)]
struct Stripe(AtomicU64);

/// A statistics counter for the request path.
///
/// Each of the first 64 threads that count gets a stripe it alone writes, so adding is
/// a plain load and store (no locked read-modify-write, no cache line shared with
/// another thread); any further thread adds atomically to a shared overflow stripe.
/// Reading sums the stripes.
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

/// This thread's index, assigned once, in the order threads first count. Indexes are
/// never reused, so a stripe is only ever written by the one thread that owns it.
fn thread_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    INDEX.with(|index| {
        let mut i = index.get();
        if i == usize::MAX {
            i = NEXT.fetch_add(1, Relaxed);
            index.set(i);
        }
        i
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
