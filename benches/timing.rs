//! A dudect-style timing test of the refusal path: does the time the layer takes to
//! refuse a request tell an attacker whether a key id exists?
//!
//! Method (after Reparaz, Balasch and Verbauwhede, "Dude, is my code constant time?",
//! 2017):
//!
//! 1. Classes of input, 1,024 distinct inputs each, against an `InMemoryKeyStore` of
//!    10,000 keys. Whole requests through the layer (all refused with 401):
//!    - `unknown id`: a well-formed key (checksum right) whose id is not in the store;
//!    - `wrong secret`: a stored key's id with one secret character changed (checksum
//!      fixed, so it reaches the store and the digest comparison);
//!    - `bad checksum (known id)`: a stored key with its last checksum digit changed;
//!    - `bad checksum (unknown id)`: an unknown key with its last checksum digit changed.
//!
//!    And, to attribute what the first pair shows, the store's share alone: one
//!    `lookup_ready` of a known or an unknown id, and dropping its answer.
//! 2. Measurements are interleaved: each one picks its class and input at random (OS
//!    CSPRNG, drawn up front), so drift and noise from the rest of the machine fall on
//!    every class alike. A measurement is one `Service::call` and its (immediately
//!    ready) future, timed with `Instant` around the call; building the request (from a
//!    fresh copy of the header, so memory placement is the same lottery for every class)
//!    and dropping the response lie outside the timed region.
//! 3. For each pair of classes, Welch's t-statistic over all measurements, and again
//!    after cropping both classes at several percentiles of the pair's pooled
//!    distribution (dudect's way of discarding interrupts and other long tails).
//! 4. |t| < 4.5 on every crop: no timing difference detected at this sample size.
//!
//! DESIGN §1 promises the first two pairs are indistinguishable; `wrong secret` vs
//! `bad checksum` is expected to differ (a checksum is checked before anything secret is
//! touched, and an attacker can compute it himself). BENCHMARKS.md has the results and
//! how to read them.
//!
//! ```text
//! cargo bench --bench timing                         # 4,000,000 measurements
//! cargo bench --bench timing -- --samples 20000000
//! cargo bench --bench timing -- --strict             # exit 1 if a promised pair differs
//! ```

mod common;

use std::time::Instant;

use common::{Body, Ok200, request};
use futures_util::FutureExt;
use http::{HeaderValue, Request};
use tower::{Layer, Service};
use tower_apikey::key::KeyPrefix;
use tower_apikey::record::KeyName;
use tower_apikey::testing::{with_bad_checksum, with_wrong_secret};
use tower_apikey::{
    ApiKeyV2Layer, InMemoryKeyStore, KeyId, KeyRecord, KeyStore, KeyStoreAdmin, PlaintextKey,
    Scopes,
};

const STORED_KEYS: usize = 10_000;
const INPUTS_PER_CLASS: usize = 1_024;
const THRESHOLD: f64 = 4.5;
/// Percentiles of the pooled pair at which both classes are cropped; 100 = uncropped.
const CROPS: [f64; 7] = [100.0, 99.9, 99.0, 95.0, 90.0, 75.0, 50.0];

const CLASSES: [&str; 6] = [
    "unknown id",
    "wrong secret",
    "bad checksum (known id)",
    "bad checksum (unknown id)",
    "store lookup alone: unknown id",
    "store lookup alone: known id",
];
/// The pairs compared, and whether DESIGN §1 promises they are indistinguishable.
const PAIRS: [(usize, usize, bool); 4] = [(0, 1, true), (2, 3, true), (1, 2, false), (4, 5, false)];

fn header(text: &str) -> Vec<u8> {
    format!("ApiKey-v2 {text}").into_bytes()
}

/// Welford's running mean and variance.
#[derive(Default, Clone, Copy)]
struct Moments {
    n: f64,
    mean: f64,
    m2: f64,
}

impl Moments {
    fn push(&mut self, x: f64) {
        self.n += 1.0;
        let delta = x - self.mean;
        self.mean += delta / self.n;
        self.m2 += delta * (x - self.mean);
    }

    fn variance(&self) -> f64 {
        self.m2 / (self.n - 1.0)
    }
}

/// Welch's t-statistic of two samples.
fn welch(a: &Moments, b: &Moments) -> f64 {
    (a.mean - b.mean) / (a.variance() / a.n + b.variance() / b.n).sqrt()
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn main() {
    let mut samples: usize = 4_000_000;
    let mut strict = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        // `cargo bench` passes `--bench`; anything else unknown is ignored likewise.
        if arg == "--strict" {
            strict = true;
        } else if arg == "--samples" {
            samples = args
                .next()
                .and_then(|v| v.replace('_', "").parse().ok())
                .expect("--samples needs a number");
        }
    }

    let store = InMemoryKeyStore::new();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let prefix = KeyPrefix::default();
    let now = std::time::SystemTime::now();
    let year = now + std::time::Duration::from_secs(365 * 86_400);
    let scopes = Scopes::new(["reports:read"]).unwrap();
    let mut stored = Vec::with_capacity(STORED_KEYS);
    for _ in 0..STORED_KEYS {
        let key = PlaintextKey::generate(&prefix);
        let record = KeyRecord::new(
            *key.id(),
            KeyName::new("timing").unwrap(),
            scopes.clone(),
            key.digest(),
            now,
            year,
        );
        runtime.block_on(store.insert(&record)).unwrap();
        stored.push(key.expose_secret().to_owned());
    }
    let unknown: Vec<String> = (0..INPUTS_PER_CLASS)
        .map(|_| PlaintextKey::generate(&prefix).expose_secret().to_owned())
        .collect();
    let inputs: [Vec<Vec<u8>>; 4] = [
        unknown.iter().map(|k| header(k)).collect(),
        stored[..INPUTS_PER_CLASS]
            .iter()
            .map(|k| header(&with_wrong_secret(k)))
            .collect(),
        stored[INPUTS_PER_CLASS..2 * INPUTS_PER_CLASS]
            .iter()
            .map(|k| header(&with_bad_checksum(k)))
            .collect(),
        unknown
            .iter()
            .map(|k| header(&with_bad_checksum(k)))
            .collect(),
    ];

    let id = |text: &String| *PlaintextKey::parse(text.as_str()).unwrap().id();
    let ids: [Vec<KeyId>; 2] = [
        unknown.iter().map(id).collect(),
        stored[..INPUTS_PER_CLASS].iter().map(id).collect(),
    ];

    let mut service = ApiKeyV2Layer::new(store.clone()).layer(Ok200);
    let waker = futures_util::task::noop_waker();
    let mut cx = std::task::Context::from_waker(&waker);
    let mut measure = |value: &[u8]| -> (u64, u16) {
        // A fresh copy of the header for every request, so that where an input's bytes
        // happen to sit in memory (and in the caches) is the same lottery for every class.
        let value = HeaderValue::from_bytes(value).unwrap();
        let req = request(Some(&value));
        assert!(Service::<Request<Body>>::poll_ready(&mut service, &mut cx).is_ready());
        let started = Instant::now();
        let response = service.call(req).now_or_never();
        let elapsed = started.elapsed();
        let status = response
            .expect("the in-memory store answers at once")
            .unwrap()
            .status()
            .as_u16();
        (elapsed.as_nanos() as u64, status)
    };
    // The store's share: the lookup the layer makes, and dropping what it returns.
    let lookup = |id: &KeyId| -> u64 {
        let started = Instant::now();
        drop(std::hint::black_box(store.lookup_ready(id)));
        started.elapsed().as_nanos() as u64
    };
    let mut sample = |class: usize, input: usize| -> u64 {
        if class < 4 {
            let (nanos, status) = measure(&inputs[class][input]);
            assert_eq!(status, 401, "{}", CLASSES[class]);
            nanos
        } else {
            lookup(&ids[class - 4][input])
        }
    };

    // Random classes and inputs, drawn up front so that drawing costs nothing inside.
    let mut random = vec![0u8; samples * 3];
    getrandom::fill(&mut random).expect("the OS CSPRNG");
    // Warm-up: caches, branch predictors, the allocator.
    for (i, &draw) in random.iter().take(samples / 20).enumerate() {
        sample(usize::from(draw) % CLASSES.len(), i % INPUTS_PER_CLASS);
    }
    let mut times: [Vec<u64>; CLASSES.len()] = Default::default();
    let started = Instant::now();
    for draw in random.chunks_exact(3) {
        // 256 is not a multiple of 6: the classes' shares differ by under 1%.
        let class = usize::from(draw[0]) % CLASSES.len();
        let input = usize::from(u16::from_le_bytes([draw[1], draw[2]])) % INPUTS_PER_CLASS;
        times[class].push(sample(class, input));
    }
    let took = started.elapsed();

    println!(
        "dudect-style timing test: {samples} measurements in {took:.1?}, {} stored keys, \
         {INPUTS_PER_CLASS} inputs per class",
        STORED_KEYS
    );
    println!();
    println!("| class | measurements | median (ns) | mean (ns) |");
    println!("|---|---:|---:|---:|");
    for (class, name) in CLASSES.iter().enumerate() {
        let mut sorted = times[class].clone();
        sorted.sort_unstable();
        let mean = sorted.iter().sum::<u64>() as f64 / sorted.len() as f64;
        println!(
            "| {name} | {} | {} | {mean:.1} |",
            sorted.len(),
            percentile(&sorted, 50.0)
        );
    }
    println!();
    let crops: Vec<String> = CROPS
        .iter()
        .map(|p| {
            if *p == 100.0 {
                "all".to_owned()
            } else {
                format!("< p{p}")
            }
        })
        .collect();
    println!("| pair | {} | max \\|t\\| | verdict |", crops.join(" | "));
    println!("|---|{}---:|---|", "---:|".repeat(CROPS.len()));
    let mut failed = false;
    for (a, b, must_match) in PAIRS {
        let mut pooled: Vec<u64> = times[a].iter().chain(&times[b]).copied().collect();
        pooled.sort_unstable();
        let mut ts = Vec::new();
        for p in CROPS {
            let limit = if p == 100.0 {
                u64::MAX
            } else {
                percentile(&pooled, p)
            };
            let moments = |class: usize| {
                let mut m = Moments::default();
                for &t in times[class].iter().filter(|&&t| t <= limit) {
                    m.push(t as f64);
                }
                m
            };
            ts.push(welch(&moments(a), &moments(b)));
        }
        let max = ts.iter().fold(0.0f64, |m, t| m.max(t.abs()));
        let verdict = match (max < THRESHOLD, must_match) {
            (true, _) => "no difference detected",
            (false, true) => {
                failed = true;
                "DIFFERENCE DETECTED"
            }
            (false, false) => "differs",
        };
        let cells: Vec<String> = ts.iter().map(|t| format!("{t:+.2}")).collect();
        println!(
            "| {} vs {} | {} | {max:.2} | {verdict} |",
            CLASSES[a],
            CLASSES[b],
            cells.join(" | ")
        );
    }
    println!();
    println!(
        "Reading the verdicts: a pair is \"no difference detected\" when |t| < {THRESHOLD} on \
         every crop. See BENCHMARKS.md for what each pair means."
    );
    if failed && strict {
        std::process::exit(1);
    }
}
