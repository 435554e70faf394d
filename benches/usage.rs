//! The request-path cost of `UsageTracker::record`: uncontended, two threads on one
//! key, two threads on distinct keys; and of `record_from` (with the client address the
//! layer passes, for `recent_ips`) on one thread and on two threads with distinct keys.
//! Throughput is in uses per second, so the two-thread rows compare directly with the
//! one-thread row of the same run.
//!
//! `cargo bench --bench usage`

use std::hint::black_box;
use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime};

mod common;

use common::slowest_thread;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tower_apikey::key::KeyPrefix;
use tower_apikey::usage::{TracingUsageSink, UsageTracker};
use tower_apikey::{KeyId, PlaintextKey};

fn key_id() -> KeyId {
    *PlaintextKey::generate(&KeyPrefix::default()).id()
}

/// Runs `iters` records on one thread per key, all starting together, each from `from`
/// if given (`record_from`), else without an address (`record`); the wall time.
fn run_threads(
    tracker: &UsageTracker,
    keys: &[KeyId],
    from: Option<IpAddr>,
    iters: u64,
) -> Duration {
    slowest_thread(keys.to_vec(), |key, ready| {
        let now = SystemTime::now();
        ready();
        let start = Instant::now();
        match from {
            Some(ip) => {
                for _ in 0..iters {
                    tracker.record_from(black_box(&key), black_box(now), black_box(ip));
                }
            }
            None => {
                for _ in 0..iters {
                    tracker.record(black_box(&key), black_box(now));
                }
            }
        }
        start.elapsed()
    })
}

fn record(c: &mut Criterion) {
    let tracker = UsageTracker::new(TracingUsageSink);
    let (a, b) = (key_id(), key_id());
    // Seen once, so the measured calls are the steady state (no allocation).
    tracker.record(&a, SystemTime::now());
    tracker.record(&b, SystemTime::now());

    let mut group = c.benchmark_group("usage_record");
    group.throughput(Throughput::Elements(1));
    let ip: IpAddr = "192.0.2.1".parse().expect("an address");
    group.bench_function("one_thread", |bench| {
        bench.iter_custom(|iters| run_threads(&tracker, &[a], None, iters))
    });
    group.bench_function("one_thread_from_address", |bench| {
        bench.iter_custom(|iters| run_threads(&tracker, &[a], Some(ip), iters))
    });
    group.throughput(Throughput::Elements(2));
    group.bench_function("two_threads_one_key", |bench| {
        bench.iter_custom(|iters| run_threads(&tracker, &[a, a], None, iters))
    });
    group.bench_function("two_threads_distinct_keys", |bench| {
        bench.iter_custom(|iters| run_threads(&tracker, &[a, b], None, iters))
    });
    group.bench_function("two_threads_distinct_keys_from_address", |bench| {
        bench.iter_custom(|iters| run_threads(&tracker, &[a, b], Some(ip), iters))
    });
    group.finish();
}

criterion_group!(benches, record);
criterion_main!(benches);
