//! Interleaved measurement: every row is measured once per round, round after round, so
//! that drift on a shared machine (another build starting, the CPU clocking down, a
//! neighbour's cache traffic) falls on every row alike, and a ratio between two rows
//! can be taken within each round, where both saw the same machine.
//!
//! Why not criterion: criterion measures one benchmark to the end (warm-up, then all of
//! its samples) before it starts the next, and has no hook to alternate samples between
//! benchmarks; `iter_custom` only changes how one sample of one benchmark is timed.
//! Interleaving through it would mean registering rows × rounds benchmarks and throwing
//! its statistics away. What the auth rows need is small: a calibrated sample per row
//! per round, the per-round figures written out, and medians of per-round ratios,
//! which `scripts/bench-table` computes.
//!
//! A sample times a loop over requests built beforehand, in chunks of [`CHUNK`] (so
//! they do not crowd the caches); each request is handed to the service and its
//! response dropped inside the timed region, as a server would.
//!
//! Arguments (after `cargo bench --bench NAME --`): `--rounds N` (default 100),
//! `--sample-ms N` (default 3: how long one row's sample runs), and any other word
//! filters rows by substring. Run by `cargo test --benches` (without cargo bench's
//! `--bench`), every row runs one short sample, as a smoke test.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use http::{Request, Response};
use tower::Service;

use super::{Body, drive};

/// Requests built per chunk of a sample.
pub const CHUNK: u64 = 1_024;

/// Runs `iters` requests and returns the time they took (setup excluded).
pub type Sample = Box<dyn FnMut(u64) -> Duration>;

/// A sample of `service`: requests from `make`, built outside the timed region in chunks,
/// each called and its response dropped inside it.
pub fn serial<S, B>(mut service: S, make: impl Fn() -> Request<Body> + 'static) -> Sample
where
    S: Service<Request<Body>, Response = Response<B>, Error = Infallible> + 'static,
    B: 'static,
{
    let mut batch = Vec::with_capacity(CHUNK as usize);
    Box::new(move |iters| {
        let mut total = Duration::ZERO;
        let mut left = iters;
        while left > 0 {
            let n = left.min(CHUNK);
            batch.extend((0..n).map(|_| make()));
            let start = Instant::now();
            for req in batch.drain(..) {
                drop(black_box(drive(&mut service, req)));
            }
            total += start.elapsed();
            left -= n;
        }
        total
    })
}

/// How a run is shaped, from the command line.
#[derive(Debug, Clone)]
pub struct Settings {
    pub rounds: usize,
    pub sample: Duration,
    /// Run by `cargo test`: one short sample per row, nothing written.
    pub smoke: bool,
    filters: Vec<String>,
}

impl Settings {
    pub fn from_args() -> Self {
        let mut settings = Settings {
            rounds: 100,
            sample: Duration::from_millis(3),
            smoke: true,
            filters: Vec::new(),
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let mut number = |name: &str| -> u64 {
                args.next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| panic!("{name} takes a number"))
            };
            match arg.as_str() {
                "--bench" => settings.smoke = false,
                "--rounds" => settings.rounds = number("--rounds").max(1) as usize,
                "--sample-ms" => settings.sample = Duration::from_millis(number("--sample-ms")),
                flag if flag.starts_with('-') => eprintln!("note: {flag} ignored"),
                word => settings.filters.push(word.to_owned()),
            }
        }
        if settings.smoke {
            settings.rounds = 1;
        }
        settings
    }

    pub fn wants(&self, name: &str) -> bool {
        self.filters.is_empty() || self.filters.iter().any(|f| name.contains(f.as_str()))
    }
}

struct Row {
    name: String,
    sample: Sample,
    iters: u64,
    /// Nanoseconds per iteration, one figure per round.
    ns: Vec<f64>,
}

/// The rows of one bench, measured round by round.
pub struct Rounds {
    settings: Settings,
    rows: Vec<Row>,
}

impl Rounds {
    pub fn new(settings: Settings) -> Self {
        Self {
            settings,
            rows: Vec::new(),
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Adds a row, unless the command line filters it out.
    pub fn row(&mut self, name: impl Into<String>, sample: Sample) {
        let name = name.into();
        if self.settings.wants(&name) {
            self.rows.push(Row {
                name,
                sample,
                iters: CHUNK,
                ns: Vec::new(),
            });
        }
    }

    /// Warms every row up and sizes its sample, then measures all rows once per round,
    /// starting each round one row further on, so that no row always follows the same
    /// one. Prints a summary and writes every figure to `target/bench-results/NAME.json`.
    pub fn run(mut self, bench: &str) {
        if self.settings.smoke {
            for row in &mut self.rows {
                (row.sample)(CHUNK);
            }
            println!("{bench}: {} rows ran (smoke test)", self.rows.len());
            return;
        }
        let target = self.settings.sample.as_nanos() as f64;
        for row in &mut self.rows {
            (row.sample)(CHUNK);
            let took = (row.sample)(4 * CHUNK).as_nanos() as f64 / (4 * CHUNK) as f64;
            let chunks = (target / took / CHUNK as f64).ceil().max(1.0) as u64;
            row.iters = chunks * CHUNK;
        }
        let count = self.rows.len();
        let started = Instant::now();
        for round in 0..self.settings.rounds {
            for k in 0..count {
                let row = &mut self.rows[(round + k) % count];
                let took = (row.sample)(row.iters);
                row.ns.push(took.as_nanos() as f64 / row.iters as f64);
            }
        }
        println!(
            "{bench}: {} rows × {} rounds in {:.1} s (one sample per row per round, ~{} ms)",
            count,
            self.settings.rounds,
            started.elapsed().as_secs_f64(),
            self.settings.sample.as_millis()
        );
        println!(
            "{:<40} {:>12} {:>12} {:>12}",
            "row", "median ns", "min", "max"
        );
        for row in &self.rows {
            let mut sorted = row.ns.clone();
            sorted.sort_by(f64::total_cmp);
            println!(
                "{:<40} {:>12.1} {:>12.1} {:>12.1}",
                row.name,
                sorted[sorted.len() / 2],
                sorted[0],
                sorted[sorted.len() - 1]
            );
        }
        let rows: BTreeMap<&str, &[f64]> = self
            .rows
            .iter()
            .map(|r| (r.name.as_str(), r.ns.as_slice()))
            .collect();
        let json = serde_json::json!({
            "bench": bench,
            "rounds": self.settings.rounds,
            "sample_ms": self.settings.sample.as_millis() as u64,
            "ns_per_iteration_by_round": rows,
        });
        write_results(bench, &json);
    }
}

/// Where results go: `$CARGO_TARGET_DIR/bench-results`, or `target/bench-results` under
/// the package (cargo runs benches there).
pub fn results_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| PathBuf::from("target"), PathBuf::from)
        .join("bench-results")
}

/// Writes `json` to `results_dir()/NAME.json` and says where.
pub fn write_results(bench: &str, json: &serde_json::Value) {
    let dir = results_dir();
    std::fs::create_dir_all(&dir).expect("create the bench results directory");
    let path = dir.join(format!("{bench}.json"));
    std::fs::write(&path, serde_json::to_string_pretty(json).unwrap())
        .expect("write the bench results");
    println!("written to {}", path.display());
}
