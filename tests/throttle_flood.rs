//! H1 (red team, 2026-12-07): a flood of failures spread over the /64s of one IPv6 /48
//! saturated the failure throttle's cells, and then valid keys from addresses that never
//! failed got 429. These are the red team's burst and sustained experiments, turned
//! around: valid keys from fresh addresses must get 200 in every row, while a single
//! guessing address is still throttled. In-process (the peer inserted as servers do),
//! since loopback cannot bind 65,536 IPv6 networks, and on tokio's paused clock for the
//! sustained rows.

use std::convert::Infallible;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use async_trait::async_trait;
use http::header::AUTHORIZATION;
use http::{Request, Response, StatusCode};
use tower::{ServiceBuilder, ServiceExt};
use tower_apikey::key::KeyPrefix;
use tower_apikey::middleware::FailureThrottle;
use tower_apikey::{
    ApiKeyV2Layer, InMemoryKeyStore, KeyId, KeyManager, KeyRecord, KeyStore, NewKey, PlaintextKey,
    StoreError,
};

/// The in-memory store, answering only through the future, as a database does: every
/// request that reaches it passed the throttle's check first.
#[derive(Debug, Clone)]
struct WaitingStore(InMemoryKeyStore);

#[async_trait]
impl KeyStore for WaitingStore {
    async fn lookup(&self, id: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
        self.0.lookup(id).await
    }
}

async fn echo(_: Request<String>) -> Result<Response<String>, Infallible> {
    Ok(Response::new(String::from("ok")))
}

async fn call(layer: &ApiKeyV2Layer, from: IpAddr, key: &str) -> StatusCode {
    let mut request = Request::get("/")
        .header(AUTHORIZATION, format!("ApiKey-v2 {key}"))
        .body(String::new())
        .unwrap();
    request
        .extensions_mut()
        .insert(SocketAddr::new(from, 40_000));
    ServiceBuilder::new()
        .layer(layer.clone())
        .service_fn(echo)
        .oneshot(request)
        .await
        .unwrap()
        .status()
}

fn forged() -> String {
    PlaintextKey::generate(&KeyPrefix::default())
        .expose_secret()
        .to_owned()
}

/// The attacker's /64 number `net`, all inside 2001:db8:0::/48.
fn attacker(net: u32) -> IpAddr {
    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, net as u16, 0, 0, 0, 1))
}

/// Legitimate client number `n`, on a /64 the attacker never used.
fn client(n: u32) -> IpAddr {
    IpAddr::V6(Ipv6Addr::new(0x2a00, 0x1450, 1, n as u16, 0, 0, 0, 7))
}

/// Two layers over one store, sharing one throttle as the demo does: one whose store
/// answers at once (memory), one whose store must be waited for (a database).
struct Rig {
    ready: ApiKeyV2Layer,
    waiting: ApiKeyV2Layer,
    throttle: FailureThrottle,
    good: String,
}

impl Rig {
    async fn new() -> Self {
        let store = InMemoryKeyStore::new();
        let good = KeyManager::new(store.clone())
            .create(NewKey::new("victim", Vec::<String>::new()))
            .await
            .unwrap()
            .key
            .expose_secret()
            .to_owned();
        // As in the demo: ten failures a minute.
        let throttle = FailureThrottle::per_minute(10);
        Self {
            ready: ApiKeyV2Layer::new(store.clone()).throttle_failures(throttle.clone()),
            waiting: ApiKeyV2Layer::new(WaitingStore(store)).throttle_failures(throttle.clone()),
            throttle,
            good,
        }
    }

    /// How many of `clients` fresh clients presenting the valid key are refused, on
    /// each layer.
    async fn refused(&self, clients: u32) -> (u32, u32) {
        let mut refused = (0, 0);
        for n in 0..clients {
            if call(&self.ready, client(n), &self.good).await != StatusCode::OK {
                refused.0 += 1;
            }
            if call(&self.waiting, client(n), &self.good).await != StatusCode::OK {
                refused.1 += 1;
            }
        }
        refused
    }

    /// A single guesser from a fresh IPv4 address: throttled after its ten failures
    /// (`exact`), or sooner if a full table makes it look worse than it is.
    async fn assert_a_guesser_is_still_throttled(&self, exact: bool) {
        let from: IpAddr = "198.51.100.23".parse().unwrap();
        let key = forged();
        let answers: Vec<u16> = answers_of(&self.waiting, from, &key, 11).await;
        if exact {
            assert_eq!(answers[..10], [401; 10], "{answers:?}");
        }
        assert_eq!(answers[10], 429, "{answers:?}");
    }
}

async fn answers_of(layer: &ApiKeyV2Layer, from: IpAddr, key: &str, times: usize) -> Vec<u16> {
    let mut answers = Vec::with_capacity(times);
    for _ in 0..times {
        answers.push(call(layer, from, key).await.as_u16());
    }
    answers
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn h1_a_burst_from_one_48_locks_out_no_valid_key_from_a_fresh_address() {
    for sources in [4_096u32, 16_384, 32_768, 65_536] {
        let rig = Rig::new().await;
        let key = forged();
        let mut attack = 0u64;
        for net in 0..sources {
            // Each source fails until it is itself throttled (at most 11 tries), half
            // of them on the layer whose store answers at once.
            let layer = if net.is_multiple_of(2) {
                &rig.ready
            } else {
                &rig.waiting
            };
            for _ in 0..11 {
                attack += 1;
                if call(layer, attacker(net), &key).await == StatusCode::TOO_MANY_REQUESTS {
                    break;
                }
            }
        }
        let (ready, waiting) = rig.refused(1_000).await;
        println!(
            "H1 burst: {sources} attacking /64s of one /48, {attack} requests -> valid keys \
             from 1,000 fresh addresses refused: {ready} (store answers at once), {waiting} \
             (store waited for); saturation {:.4}",
            rig.throttle.saturation()
        );
        assert_eq!((ready, waiting), (0, 0), "{sources} sources");
        rig.assert_a_guesser_is_still_throttled(true).await;
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn h1_a_sustained_flood_from_one_48_locks_out_no_valid_key_from_a_fresh_address() {
    // Failed requests a second, and every how many seconds they come as one burst.
    for (rate, burst) in [(2_000u32, 1u32), (4_000, 1), (4_000, 30)] {
        let rig = Rig::new().await;
        let key = forged();
        let mut next = 0u32;
        let mut worst = (0, 0);
        for second in 1..=120u32 {
            let now = if second.is_multiple_of(burst) {
                rate * burst
            } else {
                0
            };
            for _ in 0..now {
                let layer = if next.is_multiple_of(2) {
                    &rig.ready
                } else {
                    &rig.waiting
                };
                call(layer, attacker(next % 65_536), &key).await;
                next += 1;
            }
            tokio::time::advance(Duration::from_secs(1)).await;
            if second.is_multiple_of(15) {
                let (ready, waiting) = rig.refused(500).await;
                worst = (worst.0.max(ready), worst.1.max(waiting));
            }
        }
        println!(
            "H1 sustained: {rate} failed requests/s from one /48 (a burst every {burst} s), \
             120 s -> most valid keys from 500 fresh addresses refused at any probe: {} \
             (store answers at once), {} (store waited for)",
            worst.0, worst.1
        );
        assert_eq!(worst, (0, 0), "{rate}/s, burst every {burst} s");
        rig.assert_a_guesser_is_still_throttled(true).await;
    }
}

// On tokio's paused clock: the cells refill with time, so a slow machine must not read
// a different saturation than a fast one.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn h1_a_flood_from_many_48s_shows_as_saturation_and_never_refuses_a_key_proven_from_memory() {
    // Beyond the red team's rows: 16,384 /48s, one /64 each, each failing until it is
    // throttled. That is a distributed attack the per-/48 count cannot stop, so the
    // table saturates; keys whose store answers at once still get through, and the
    // saturation says what happened to the others.
    let rig = Rig::new().await;
    let key = forged();
    assert_eq!(rig.throttle.saturation(), 0.0);
    for net in 0..16_384u32 {
        let from = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, net as u16, 1, 0, 0, 0, 1));
        for _ in 0..11 {
            if call(&rig.waiting, from, &key).await == StatusCode::TOO_MANY_REQUESTS {
                break;
            }
        }
    }
    let saturation = rig.throttle.saturation();
    let (ready, waiting) = rig.refused(1_000).await;
    println!(
        "H1 distributed: 16,384 /48s failing at the limit -> saturation {saturation:.3}; \
         valid keys from 1,000 fresh addresses refused: {ready} (store answers at once), \
         {waiting} (store waited for)"
    );
    assert!(saturation > 0.5, "{saturation}");
    assert_eq!(ready, 0);
    rig.assert_a_guesser_is_still_throttled(false).await;
}
