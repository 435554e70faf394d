//! Soak: one million requests across 10,000 keys through `ApiKeyV2Layer`, in process, on
//! a two-worker tokio runtime. Every answer is checked, resident memory after a warm-up
//! must stay within a bound, and after `UsageTracker::shutdown` every key must show its
//! last-used time. Exits non-zero if any of that fails.
//!
//! ```text
//! cargo run --release --example soak                      # 1,000,000 requests, 10,000 keys
//! cargo run --release --example soak -- --requests 200000 --keys 5000
//! ```
//!
//! `tests/soak.rs` runs a reduced version of the same harness in the test suite.

mod harness;

use harness::{Config, run};

/// Growth of resident memory allowed after the warm-up (10% of the requests): the
/// tracker and store already hold every key by then, so what is left is allocator
/// noise and the in-flight requests. A leak of even 32 bytes per request would exceed
/// it about 30 times over.
const RSS_GROWTH_BOUND_KIB: u64 = 16 * 1024;

fn main() {
    let mut config = Config {
        requests: 1_000_000,
        keys: 10_000,
        workers: 2,
        concurrency: 64,
        warmup_fraction: 0.1,
        rss_growth_bound_kib: RSS_GROWTH_BOUND_KIB,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || -> usize {
            args.next()
                .and_then(|v| v.replace('_', "").parse().ok())
                .unwrap_or_else(|| panic!("{arg} needs a number"))
        };
        match arg.as_str() {
            "--requests" => config.requests = value(),
            "--keys" => config.keys = value(),
            other => panic!("unknown argument {other}; use --requests N --keys N"),
        }
    }
    println!(
        "soak: {} requests across {} keys, {} worker threads, {} in flight",
        config.requests, config.keys, config.workers, config.concurrency
    );
    let report = run(&config);
    println!("setup (creating keys):   {:.2?}", report.setup);
    println!(
        "requests:                {:.2?} ({:.0} requests/s)",
        report.elapsed,
        report.requests_per_second()
    );
    println!("answers:                 {:?}", report.statuses);
    println!("wrong answers:           {}", report.wrong);
    for wrong in &report.first_wrong {
        println!("    {wrong}");
    }
    println!(
        "RSS after warm-up:       {:.1} MiB",
        report.rss_after_warmup_kib as f64 / 1024.0
    );
    println!(
        "RSS peak after warm-up:  {:.1} MiB (growth {:.1} MiB, bound {:.1} MiB)",
        report.rss_peak_kib as f64 / 1024.0,
        report.rss_growth_kib() as f64 / 1024.0,
        config.rss_growth_bound_kib as f64 / 1024.0
    );
    println!(
        "RSS at the end:          {:.1} MiB",
        report.rss_end_kib as f64 / 1024.0
    );
    println!(
        "usage tracker:           {} uses, {} writes, {} dropped, {} keys tracked",
        report.usage.uses, report.usage.writes, report.usage.dropped, report.usage.tracked_keys
    );
    println!(
        "keys without last use:   {} of {}",
        report.keys_without_last_used, config.keys
    );
    if report.passed() {
        println!("soak passed");
    } else {
        println!("soak FAILED");
        std::process::exit(1);
    }
}
