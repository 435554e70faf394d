//! The soak of `examples/soak`, reduced: 50,000 requests across 1,000 keys, in process
//! on two worker threads. Every answer must be right, memory must stop growing after the
//! warm-up, and every key must have its last-used time after `shutdown()`.

#[path = "../examples/soak/harness.rs"]
mod harness;

use harness::{Config, run};

#[test]
fn fifty_thousand_requests_across_a_thousand_keys_are_all_answered_right_and_every_key_has_its_last_use()
 {
    let report = run(&Config {
        requests: 50_000,
        keys: 1_000,
        workers: 2,
        concurrency: 32,
        warmup_fraction: 0.2,
        // Debug builds allocate more per request; a leak of 200 bytes per request would
        // still exceed this.
        rss_growth_bound_kib: 8 * 1024,
    });
    eprintln!(
        "setup {:.2?}, requests {:.2?} ({:.0}/s), RSS {} KiB after warm-up, {} KiB peak, {} KiB at the end",
        report.setup,
        report.elapsed,
        report.requests_per_second(),
        report.rss_after_warmup_kib,
        report.rss_peak_kib,
        report.rss_end_kib
    );
    assert_eq!(report.wrong, 0, "{:?}", report.first_wrong);
    let total: usize = report.statuses.iter().map(|(_, n)| n).sum();
    assert_eq!(total, 50_000);
    // 16 in 20 carry a valid key; a third of the scoped ones lack the scope.
    assert_eq!(report.usage.uses, 40_000);
    assert_eq!(report.usage.dropped, 0);
    assert_eq!(report.keys_without_last_used, 0);
    assert!(
        report.rss_growth_kib() <= report.config.rss_growth_bound_kib,
        "resident memory grew {} KiB after the warm-up",
        report.rss_growth_kib()
    );
    assert!(report.passed());
}
