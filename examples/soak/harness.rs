//! The soak harness: many requests across many keys through the layer, in process, on
//! a two-worker tokio runtime. Shared by `examples/soak` (full size) and `tests/soak.rs`
//! (reduced).
//!
//! Every answer is checked against what the request deserves; resident memory is read
//! from `/proc/self/status` after a warm-up and sampled until the end; after
//! `UsageTracker::shutdown` every key must show a last-used time from the run.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use http::header::AUTHORIZATION;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt;
use tower::{Layer, ServiceExt};
use tower_apikey::key::KeyPrefix;
use tower_apikey::testing::{with_bad_checksum, with_wrong_secret};
use tower_apikey::usage::{UsageTracker, UsageTrackerStats};
use tower_apikey::{
    ApiKeyIdentity, ApiKeyV2Layer, InMemoryKeyStore, KeyManager, NewKey, PlaintextKey, Scopes,
};

/// The size of a soak run.
#[derive(Debug, Clone)]
pub struct Config {
    /// Requests in total, warm-up included.
    pub requests: usize,
    /// Distinct keys, each used at least once.
    pub keys: usize,
    /// Tokio worker threads.
    pub workers: usize,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// The share of requests sent before the memory baseline is read.
    pub warmup_fraction: f64,
    /// The most resident memory may grow after the warm-up, in KiB.
    pub rss_growth_bound_kib: u64,
}

/// What a soak run saw.
#[derive(Debug)]
pub struct Report {
    pub config: Config,
    pub setup: Duration,
    pub elapsed: Duration,
    pub statuses: [(u16, usize); 3],
    /// Answers that differ from what the request deserved, with the first few described.
    pub wrong: usize,
    pub first_wrong: Vec<String>,
    pub rss_after_warmup_kib: u64,
    pub rss_peak_kib: u64,
    pub rss_end_kib: u64,
    /// Keys without a last-used time from the run after `shutdown()`.
    pub keys_without_last_used: usize,
    pub usage: UsageTrackerStats,
}

impl Report {
    pub fn rss_growth_kib(&self) -> u64 {
        self.rss_peak_kib.saturating_sub(self.rss_after_warmup_kib)
    }

    pub fn passed(&self) -> bool {
        self.wrong == 0
            && self.keys_without_last_used == 0
            && self.rss_growth_kib() <= self.config.rss_growth_bound_kib
            && self.usage.dropped == 0
    }

    pub fn requests_per_second(&self) -> f64 {
        self.config.requests as f64 / self.elapsed.as_secs_f64()
    }
}

/// Resident memory of this process, in KiB (Linux; 0 elsewhere).
pub fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
            line.split_whitespace().nth(1)?.parse().ok()
        })
        .unwrap_or(0)
}

/// What one request is, and what it deserves.
#[derive(Clone, Copy, Debug)]
enum Kind {
    /// A valid key, no scope required: 200 as that key.
    Valid(usize),
    /// A valid key where `reports:read` is required: 200 if it holds it, else 403.
    Scoped(usize),
    /// A known id with a wrong secret (checksum fixed): 401.
    WrongSecret(usize),
    /// A well-formed key whose id is not in the store: 401.
    UnknownId(usize),
    /// A valid key with a broken checksum: 401 without a lookup.
    BadChecksum(usize),
    /// No `Authorization` header: 401.
    Missing,
}

/// The plan: 16 in 20 requests carry a valid key (consecutive valid requests walk the
/// keys in turn, so every key is used), the rest are refusals of four kinds.
fn kind(i: usize, keys: usize) -> Kind {
    let round = i / 20;
    match i % 20 {
        slot @ 0..=13 => Kind::Valid((round * 16 + slot) % keys),
        slot @ 14..=15 => Kind::Scoped((round * 16 + slot) % keys),
        16 => Kind::WrongSecret(round % keys),
        17 => Kind::UnknownId(round % UNKNOWN),
        18 => Kind::BadChecksum(round % keys),
        _ => Kind::Missing,
    }
}

const UNKNOWN: usize = 256;

fn header(text: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("ApiKey-v2 {text}")).unwrap()
}

/// Per key: its id, whether it holds `reports:read`, and its headers.
struct Fixture {
    ids: Vec<String>,
    reader: Vec<bool>,
    valid: Vec<HeaderValue>,
    wrong_secret: Vec<HeaderValue>,
    bad_checksum: Vec<HeaderValue>,
    unknown: Vec<HeaderValue>,
}

impl Fixture {
    fn request(&self, kind: Kind) -> Request<String> {
        let mut req = Request::new(String::new());
        let value = match kind {
            Kind::Valid(k) | Kind::Scoped(k) => Some(&self.valid[k]),
            Kind::WrongSecret(k) => Some(&self.wrong_secret[k]),
            Kind::UnknownId(u) => Some(&self.unknown[u]),
            Kind::BadChecksum(k) => Some(&self.bad_checksum[k]),
            Kind::Missing => None,
        };
        if let Some(value) = value {
            req.headers_mut().insert(AUTHORIZATION, value.clone());
        }
        req
    }

    /// The status and (for 200) body the request deserves.
    fn expected(&self, kind: Kind) -> (StatusCode, Option<&str>) {
        match kind {
            Kind::Valid(k) => (StatusCode::OK, Some(&self.ids[k])),
            Kind::Scoped(k) if self.reader[k] => (StatusCode::OK, Some(&self.ids[k])),
            Kind::Scoped(_) => (StatusCode::FORBIDDEN, None),
            _ => (StatusCode::UNAUTHORIZED, None),
        }
    }
}

/// The inner service: 200 with the caller's key id.
async fn whoami(req: Request<String>) -> Result<Response<String>, Infallible> {
    let caller = req
        .extensions()
        .get::<ApiKeyIdentity>()
        .expect("reached only with an identity");
    Ok(Response::new(caller.key_id().to_string()))
}

struct Tally {
    ok: AtomicUsize,
    forbidden: AtomicUsize,
    unauthorized: AtomicUsize,
    wrong: AtomicUsize,
    first_wrong: std::sync::Mutex<Vec<String>>,
}

/// Runs the soak and reports; the caller judges the report.
pub fn run(config: &Config) -> Report {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.workers)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(soak(config.clone()))
}

async fn soak(config: Config) -> Report {
    let setup_started = Instant::now();
    let store = InMemoryKeyStore::new();
    let manager = KeyManager::new(store.clone());
    let mut fixture = Fixture {
        ids: Vec::with_capacity(config.keys),
        reader: Vec::with_capacity(config.keys),
        valid: Vec::with_capacity(config.keys),
        wrong_secret: Vec::with_capacity(config.keys),
        bad_checksum: Vec::with_capacity(config.keys),
        unknown: Vec::with_capacity(UNKNOWN),
    };
    for k in 0..config.keys {
        let reader = k % 3 != 0;
        let scopes: &[&str] = if reader {
            &["reports:read"]
        } else {
            &["billing:read"]
        };
        let created = manager
            .create(NewKey::new(format!("soak {k}"), scopes.iter().copied()))
            .await
            .expect("creating a key in memory");
        let text = created.key.expose_secret();
        fixture.ids.push(created.key.id().to_string());
        fixture.reader.push(reader);
        fixture.valid.push(header(text));
        fixture.wrong_secret.push(header(&with_wrong_secret(text)));
        fixture.bad_checksum.push(header(&with_bad_checksum(text)));
    }
    for _ in 0..UNKNOWN {
        let key = PlaintextKey::generate(&KeyPrefix::default());
        fixture.unknown.push(header(key.expose_secret()));
    }
    let fixture = Arc::new(fixture);

    let tracker = UsageTracker::builder(store.clone())
        .period(Duration::from_millis(250))
        .build();
    let flushing = tokio::spawn(tracker.run());
    let layer = ApiKeyV2Layer::new(store.clone()).usage_tracker(tracker.clone());
    let open = layer.clone().layer(tower::service_fn(whoami));
    let scoped = layer
        .require_scopes(Scopes::new(["reports:read"]).unwrap())
        .layer(tower::service_fn(whoami));
    let tally = Arc::new(Tally {
        ok: AtomicUsize::new(0),
        forbidden: AtomicUsize::new(0),
        unauthorized: AtomicUsize::new(0),
        wrong: AtomicUsize::new(0),
        first_wrong: std::sync::Mutex::new(Vec::new()),
    });
    let setup = setup_started.elapsed();
    let started_at = SystemTime::now() - Duration::from_millis(1);
    let started = Instant::now();

    // Sends requests `from..to`, `concurrency` tasks each taking every n-th one.
    let phase = |from: usize, to: usize| {
        let mut tasks = Vec::with_capacity(config.concurrency);
        for lane in 0..config.concurrency {
            let fixture = fixture.clone();
            let tally = tally.clone();
            let open = open.clone();
            let scoped = scoped.clone();
            let keys = config.keys;
            tasks.push(tokio::spawn(async move {
                for i in (from + lane..to).step_by(config.concurrency) {
                    let kind = kind(i, keys);
                    let req = fixture.request(kind);
                    let response = match kind {
                        Kind::Scoped(_) => scoped.clone().oneshot(req).await,
                        _ => open.clone().oneshot(req).await,
                    };
                    let Ok(response) = response;
                    // The layer's body: the handler's text, or the refusal's document.
                    let (parts, body) = response.into_parts();
                    let bytes = body
                        .collect()
                        .await
                        .map(|b| b.to_bytes())
                        .unwrap_or_default();
                    let response =
                        Response::from_parts(parts, String::from_utf8_lossy(&bytes).into_owned());
                    let (status, body) = fixture.expected(kind);
                    let counter = match response.status() {
                        StatusCode::OK => &tally.ok,
                        StatusCode::FORBIDDEN => &tally.forbidden,
                        StatusCode::UNAUTHORIZED => &tally.unauthorized,
                        _ => &tally.wrong,
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                    let right =
                        response.status() == status && body.is_none_or(|id| response.body() == id);
                    if !right {
                        tally.wrong.fetch_add(1, Ordering::Relaxed);
                        let mut first = tally.first_wrong.lock().unwrap();
                        if first.len() < 5 {
                            first.push(format!(
                                "request {i} ({kind:?}): {} {:?}, expected {status}",
                                response.status(),
                                response.body()
                            ));
                        }
                    }
                }
            }));
        }
        async move {
            for task in tasks {
                task.await.expect("a soak task panicked");
            }
        }
    };

    let warmup = ((config.requests as f64) * config.warmup_fraction) as usize;
    phase(0, warmup).await;
    let rss_after_warmup_kib = rss_kib();
    let peak = Arc::new(AtomicU64::new(rss_after_warmup_kib));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(rss_kib(), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    phase(warmup, config.requests).await;
    let elapsed = started.elapsed();
    done.store(true, Ordering::Relaxed);
    sampler.await.unwrap();
    let rss_end_kib = rss_kib();
    peak.fetch_max(rss_end_kib, Ordering::Relaxed);

    tracker
        .shutdown()
        .await
        .expect("the in-memory sink never fails");
    flushing.await.unwrap();
    let finished_at = SystemTime::now() + Duration::from_millis(1);
    let mut keys_without_last_used = 0;
    for id in &fixture.ids {
        let record = manager
            .get(&id.parse().unwrap())
            .await
            .expect("every soak key exists");
        let used = record
            .last_used_at()
            .is_some_and(|at| started_at <= at && at <= finished_at);
        keys_without_last_used += usize::from(!used);
    }

    let first_wrong = tally.first_wrong.lock().unwrap().clone();
    Report {
        config,
        setup,
        elapsed,
        statuses: [
            (200, tally.ok.load(Ordering::Relaxed)),
            (401, tally.unauthorized.load(Ordering::Relaxed)),
            (403, tally.forbidden.load(Ordering::Relaxed)),
        ],
        wrong: tally.wrong.load(Ordering::Relaxed),
        first_wrong,
        rss_after_warmup_kib,
        rss_peak_kib: peak.load(Ordering::Relaxed),
        rss_end_kib,
        keys_without_last_used,
        usage: tracker.stats(),
    }
}
