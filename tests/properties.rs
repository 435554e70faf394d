//! Property tests (proptest): the key format round-trips, typos never authenticate,
//! random `Authorization` values never authenticate, the scope laws hold, and expiry is
//! monotonic in time; behind trusted proxies, a client cannot choose its address.
//! Requests go through the real layer, driven synchronously (the
//! in-memory store answers at once).

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use futures_util::FutureExt;
use http::header::AUTHORIZATION;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt;
use proptest::prelude::*;
use tower::{Layer, Service, ServiceExt};
use tower_apikey::client_addr::{ClientAddr, TrustedProxies};
use tower_apikey::key::{KeyDigest, KeyPrefix};
use tower_apikey::record::{KeyName, KeyState};
use tower_apikey::testing::ManualClock;
use tower_apikey::{
    ApiKeyIdentity, ApiKeyV2Layer, ApiKeyV2Service, InMemoryKeyStore, KeyId, KeyManager, KeyRecord,
    NewKey, PlaintextKey, Scope, Scopes,
};

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// The inner service: 200 carrying the caller's key id, reached only with an identity.
#[derive(Clone, Copy)]
struct Echo;

impl Service<Request<String>> for Echo {
    type Response = Response<String>;
    type Error = Infallible;
    type Future = Ready<Result<Response<String>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<String>) -> Self::Future {
        let identity = req
            .extensions()
            .get::<ApiKeyIdentity>()
            .expect("the inner service is reached only with an identity");
        ready(Ok(Response::new(identity.key_id().to_string())))
    }
}

/// A store with a few keys and the layer over it, on a clock that moves only when told.
struct World {
    manager: KeyManager<InMemoryKeyStore>,
    clock: ManualClock,
    keys: Vec<PlaintextKey>,
}

impl World {
    fn new(keys: usize) -> Self {
        let clock = ManualClock::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000));
        let manager = KeyManager::builder(InMemoryKeyStore::new())
            .clock(clock.clone())
            .build();
        let mut world = Self {
            manager,
            clock,
            keys: Vec::new(),
        };
        for _ in 0..keys {
            let key = world.create(NewKey::new("prop", ["reports:read"])).key;
            world.keys.push(key);
        }
        world
    }

    fn create(&self, new: NewKey) -> tower_apikey::CreatedKey {
        self.manager
            .create(new)
            .now_or_never()
            .expect("the in-memory store answers at once")
            .unwrap()
    }

    fn service(&self, required: Scopes) -> ApiKeyV2Service<Echo> {
        ApiKeyV2Layer::new(self.manager.store().clone())
            .clock(self.clock.clone())
            .require_scopes(required)
            .layer(Echo)
    }

    /// The answer to one request with this `Authorization` value.
    fn call(
        &self,
        service: &ApiKeyV2Service<Echo>,
        authorization: HeaderValue,
    ) -> Response<String> {
        let mut req = Request::new(String::new());
        req.headers_mut().insert(AUTHORIZATION, authorization);
        let response = service
            .clone()
            .oneshot(req)
            .now_or_never()
            .expect("the in-memory store answers at once")
            .unwrap();
        // The layer's body: the inner text or its problem document, ready at once.
        response.map(|body| {
            let bytes = body.collect().now_or_never().unwrap().unwrap().to_bytes();
            String::from_utf8(bytes.to_vec()).unwrap()
        })
    }
}

fn header(key: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("ApiKey-v2 {key}")).unwrap()
}

/// The CRC-32 of `signed` as six base62 digits: what makes a forged key well-formed.
fn checksum(signed: &str) -> String {
    let mut value = crc32fast::hash(signed.as_bytes());
    let mut out = [b'0'; 6];
    for digit in out.iter_mut().rev() {
        *digit = ALPHABET[(value % 62) as usize];
        value /= 62;
    }
    String::from_utf8(out.to_vec()).unwrap()
}

fn prefix() -> impl Strategy<Value = KeyPrefix> {
    "[a-z0-9]{1,8}".prop_map(|p| KeyPrefix::new(&p).unwrap())
}

/// Characters to substitute beyond printable ASCII: controls, DEL, Latin-1, multi-byte
/// and astral characters, and whatever else proptest draws.
fn more_chars() -> impl Strategy<Value = Vec<char>> {
    prop::collection::vec(any::<char>(), 8).prop_map(|mut drawn| {
        drawn.extend([
            '\0', '\t', '\n', '\x7f', 'é', 'ß', '€', '中', '🔑', '\u{200b}',
        ]);
        drawn
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn generated_keys_parse_back_to_themselves(prefix in prefix()) {
        let key = PlaintextKey::generate(&prefix);
        let text = key.expose_secret();
        prop_assert_eq!(text.len(), prefix.as_str().len() + 67);
        // The scanner regex of DESIGN §2, by position.
        let body = &text.as_bytes()[prefix.as_str().len()..];
        prop_assert_eq!(body[0], b'_');
        prop_assert_eq!(body[17], b'_');
        prop_assert!(body[1..17].iter().chain(&body[18..]).all(|b| ALPHABET.contains(b)));
        prop_assert_eq!(&text[text.len() - 6..], checksum(&text[..text.len() - 6]));

        let parsed = PlaintextKey::parse(text).unwrap();
        prop_assert_eq!(parsed.id(), key.id());
        prop_assert_eq!(parsed.expose_secret(), text);
        prop_assert!(parsed.digest() == key.digest());
        prop_assert_eq!(KeyId::new(key.id().as_str()).unwrap(), *key.id());
    }

    #[test]
    fn random_authorization_values_never_authenticate(value in random_authorization()) {
        let world = world_with_keys();
        let Ok(value) = HeaderValue::from_bytes(&value) else {
            // Not sendable as a header at all.
            return Ok(());
        };
        let response = world.call(&world.service(Scopes::empty()), value);
        prop_assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
}

proptest! {
    // Each case sends thousands of requests; 24 keys cover every position many times.
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn every_single_character_change_to_a_valid_key_is_refused(
        prefix in prefix(),
        more in more_chars(),
    ) {
        let world = World::new(0);
        let key = KeyManager::builder(world.manager.store().clone())
            .clock(world.clock.clone())
            .prefix(prefix.clone())
            .build()
            .create(NewKey::new("typo", Vec::<String>::new()))
            .now_or_never()
            .unwrap()
            .unwrap()
            .key;
        let service = ApiKeyV2Layer::new(world.manager.store().clone())
            .clock(world.clock.clone())
            .prefix(prefix)
            .layer(Echo);
        let text = key.expose_secret();
        prop_assert_eq!(world.call(&service, header(text)).status(), StatusCode::OK);

        let printable = (b' '..=b'~').map(char::from);
        let replacements: Vec<char> = printable.chain(more.iter().copied()).collect();
        let chars: Vec<char> = text.chars().collect();
        for position in 0..chars.len() {
            for &c in &replacements {
                if c == chars[position] {
                    continue;
                }
                let mut changed = chars.clone();
                changed[position] = c;
                let changed: String = changed.into_iter().collect();
                // Refused offline: CRC-32 catches every single-character substitution.
                prop_assert!(
                    PlaintextKey::parse(changed.as_str()).is_err(),
                    "position {} to {:?} parsed", position, c
                );
                // And refused by the layer, whenever it can be sent at all.
                if let Ok(value) = HeaderValue::from_bytes(format!("ApiKey-v2 {changed}").as_bytes()) {
                    let status = world.call(&service, value).status();
                    prop_assert_eq!(status, StatusCode::UNAUTHORIZED, "position {} to {:?}", position, c);
                }
            }
            // Dropping or doubling a character: refused by the layer too.
            let mut dropped = chars.clone();
            dropped.remove(position);
            let mut doubled = chars.clone();
            doubled.insert(position, chars[position]);
            for changed in [dropped, doubled] {
                let changed: String = changed.into_iter().collect();
                let status = world.call(&service, header(&changed)).status();
                prop_assert_eq!(status, StatusCode::UNAUTHORIZED, "{} chars", changed.len());
            }
        }
    }
}

/// A world shared by the cheap cases: built once per test thread.
fn world_with_keys() -> &'static World {
    thread_local! {
        static WORLD: &'static World = Box::leak(Box::new(World::new(8)));
    }
    WORLD.with(|world| *world)
}

/// `Authorization` values an attacker without a key could send: random bytes, random
/// text after the scheme, random key-shaped text, and well-formed keys (checksum
/// fixed) with random ids or with a real id and a random secret.
fn random_authorization() -> impl Strategy<Value = Vec<u8>> {
    let world = world_with_keys();
    let known: Vec<String> = world.keys.iter().map(|k| k.id().to_string()).collect();
    let shaped = "mkc_[0-9A-Za-z]{16}_[0-9A-Za-z]{49}";
    let well_formed = |key: String| {
        let body = &key[..key.len() - 6];
        format!("ApiKey-v2 {body}{}", checksum(body)).into_bytes()
    };
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..300),
        "[ -~]{0,120}".prop_map(|s| format!("ApiKey-v2 {s}").into_bytes()),
        "(?i:apikey-v2) +[A-Za-z0-9._~+/=-]{1,100}".prop_map(String::into_bytes),
        shaped.prop_map(|s| format!("ApiKey-v2 {s}").into_bytes()),
        shaped.prop_map(well_formed),
        (prop::sample::select(known), "[0-9A-Za-z]{49}")
            .prop_map(move |(id, tail)| well_formed(format!("mkc_{id}_{tail}"))),
    ]
}

// ---- scopes ----

fn segment() -> impl Strategy<Value = String> {
    "[a-z0-9._-]{1,6}"
}

/// A scope without a wildcard, of 1 to 4 segments.
fn plain_scope() -> impl Strategy<Value = String> {
    prop::collection::vec(segment(), 1..=4).prop_map(|segments| segments.join(":"))
}

/// A scope of any form: plain, or a wildcard `p:*`.
fn any_scope() -> impl Strategy<Value = String> {
    (plain_scope(), any::<bool>()).prop_map(|(scope, wildcard)| {
        if wildcard {
            format!("{scope}:*")
        } else {
            scope
        }
    })
}

fn scope(text: &str) -> Scope {
    Scope::new(text).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn a_scope_grants_itself(s in any_scope()) {
        prop_assert!(scope(&s).grants(&scope(&s)));
    }

    #[test]
    fn a_wildcard_grants_everything_under_it(p in plain_scope(), under in any_scope()) {
        let wildcard = scope(&format!("{p}:*"));
        let below = scope(&format!("{p}:{under}"));
        prop_assert!(wildcard.grants(&below));
    }

    #[test]
    fn nothing_grants_upwards(p in plain_scope(), under in any_scope()) {
        let below = scope(&format!("{p}:{under}"));
        let wildcard = scope(&format!("{p}:*"));
        let above = scope(&p);
        prop_assert!(!below.grants(&above));
        prop_assert!(!wildcard.grants(&above));
        // A wildcard is not granted by one of the scopes it covers.
        prop_assert!(!below.grants(&wildcard));
    }

    #[test]
    fn nothing_grants_sideways(
        p in plain_scope(),
        a in segment(),
        b in segment(),
        rest in prop::option::of(any_scope()),
    ) {
        prop_assume!(a != b);
        let tail = rest.map_or(String::new(), |r| format!(":{r}"));
        let side = scope(&format!("{p}:{b}{tail}"));
        let sibling = scope(&format!("{p}:{a}"));
        let sibling_wildcard = scope(&format!("{p}:{a}:*"));
        prop_assert!(!sibling.grants(&side));
        prop_assert!(!sibling_wildcard.grants(&side));
    }

    #[test]
    fn a_plain_scope_grants_only_itself(s in plain_scope(), t in any_scope()) {
        prop_assert_eq!(scope(&s).grants(&scope(&t)), s == t);
    }

    #[test]
    fn a_set_grants_a_requirement_when_each_scope_is_granted_by_one_it_holds(
        held in prop::collection::vec(any_scope(), 0..6),
        required in prop::collection::vec(any_scope(), 0..6),
    ) {
        let held = Scopes::new(&held).unwrap();
        let required = Scopes::new(&required).unwrap();
        let each = required.iter().all(|r| held.iter().any(|h| h.grants(r)));
        prop_assert_eq!(held.grants_all(&required), each);
        let missing: Vec<&Scope> = held.missing(&required).collect();
        let expected: Vec<&Scope> = required.iter().filter(|r| !held.grants(r)).collect();
        prop_assert_eq!(missing, expected);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn the_layer_answers_403_exactly_when_a_required_scope_is_not_granted(
        held in prop::collection::vec(any_scope(), 0..4),
        required in prop::collection::vec(any_scope(), 0..4),
    ) {
        let world = World::new(0);
        let key = world.create(NewKey::new("scoped", held.clone())).key;
        let held = Scopes::new(&held).unwrap();
        let required = Scopes::new(&required).unwrap();
        let response = world.call(&world.service(required.clone()), header(key.expose_secret()));
        let expected = if held.grants_all(&required) {
            StatusCode::OK
        } else {
            StatusCode::FORBIDDEN
        };
        prop_assert_eq!(response.status(), expected);
    }
}

// ---- expiry ----

fn record(
    lifetime: Duration,
    revoked_after: Option<Duration>,
    ends_after: Option<Duration>,
) -> (KeyRecord, SystemTime) {
    let created = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let record = KeyRecord::new(
        *PlaintextKey::generate(&KeyPrefix::default()).id(),
        KeyName::new("expiry").unwrap(),
        Scopes::empty(),
        KeyDigest::of("not a key"),
        created,
        created + lifetime,
    )
    .with_revoked_at(revoked_after.map(|after| created + after))
    .with_ends_at(ends_after.map(|after| created + after));
    (record, created)
}

const YEAR_NANOS: u64 = 365 * 86_400 * 1_000_000_000;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn a_key_that_stops_being_active_never_becomes_active_again(
        lifetime in 1..=YEAR_NANOS,
        revoked_after in prop::option::of(0..=2 * YEAR_NANOS),
        ends_after in prop::option::of(0..=2 * YEAR_NANOS),
        mut times in prop::collection::vec(0..=2 * YEAR_NANOS, 2..16),
    ) {
        let (record, created) = record(
            Duration::from_nanos(lifetime),
            revoked_after.map(Duration::from_nanos),
            ends_after.map(Duration::from_nanos),
        );
        times.sort_unstable();
        let states: Vec<KeyState> = times
            .iter()
            .map(|&t| record.state_at(created + Duration::from_nanos(t)))
            .collect();
        let first_inactive = states.iter().position(|s| *s != KeyState::Active);
        if let Some(first) = first_inactive {
            prop_assert!(states[first..].iter().all(|s| *s != KeyState::Active), "{:?}", states);
        }
        for (&t, state) in times.iter().zip(&states) {
            let now = created + Duration::from_nanos(t);
            // A revocation holds whatever time it records, even one after `now`.
            let expected = if revoked_after.is_some() {
                KeyState::Revoked
            } else if ends_after.is_some_and(|e| e < lifetime && e <= t) {
                KeyState::Ended
            } else if now >= record.expires_at() {
                KeyState::Expired
            } else {
                KeyState::Active
            };
            prop_assert_eq!(*state, expected);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn the_layer_accepts_a_key_until_exactly_its_expiry(
        lifetime_secs in 1..=365 * 86_400u64,
        mut offsets in prop::collection::vec(-1_000_000_000i64..=1_000_000_000, 1..8),
    ) {
        let world = World::new(0);
        let created = world.create(
            NewKey::new("expiring", Vec::<String>::new())
                .lifetime(Duration::from_secs(lifetime_secs)),
        );
        let service = world.service(Scopes::empty());
        let expires = created.record.expires_at();
        // Around the expiry (±1 s, nanosecond steps), then exactly at it, in time order.
        offsets.push(0);
        offsets.sort_unstable();
        let mut refused = false;
        for offset in offsets {
            let now = if offset < 0 {
                expires - Duration::from_nanos(offset.unsigned_abs())
            } else {
                expires + Duration::from_nanos(offset.unsigned_abs())
            };
            world.clock.set(now);
            let status = world.call(&service, header(created.key.expose_secret())).status();
            let expected = if now < expires { StatusCode::OK } else { StatusCode::UNAUTHORIZED };
            prop_assert_eq!(status, expected, "{} ns from expiry", offset);
            // Monotonic: once refused for expiry, never accepted later.
            prop_assert!(!(refused && status == StatusCode::OK));
            refused |= status == StatusCode::UNAUTHORIZED;
        }
    }
}

// The client address behind trusted proxies: whatever the forwarding headers hold.

/// Addresses the headers, the peer and the trusted proxies are drawn from.
const POOL: [&str; 6] = [
    "203.0.113.9",
    "10.0.0.1",
    "10.0.0.2",
    "2001:db8::7",
    "::ffff:198.51.100.3",
    "fd00::1",
];

fn pooled(i: usize) -> ClientAddr {
    ClientAddr::new(POOL[i % POOL.len()].parse().unwrap())
}

/// One list entry: an address of the pool in one of the forms proxies write, or
/// something that is no address at all (no digit can parse as one).
fn forwarding_entry(forwarded: bool) -> impl Strategy<Value = String> {
    let address = (0..POOL.len(), 0..4u8, 1..=65535u16).prop_map(move |(i, form, port)| {
        let ip: std::net::IpAddr = POOL[i].parse().unwrap();
        let node = match (form, ip.is_ipv4()) {
            (0, _) => ip.to_string(),
            (1, true) => format!("{ip}:{port}"),
            (1, false) => format!("[{ip}]:{port}"),
            (2, true) => format!("\"{ip}\""),
            (2, false) => format!("\"[{ip}]\""),
            _ => format!(" {ip} "),
        };
        if forwarded {
            format!("proto=https;For={node}")
        } else {
            node
        }
    });
    prop_oneof![
        4 => address,
        1 => "[ g-z_;=\"\\[\\]]{0,12}",
    ]
}

/// Header values: several fields, each a comma-separated list.
fn forwarding_values(forwarded: bool) -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(
        prop::collection::vec(forwarding_entry(forwarded), 0..24).prop_map(|e| e.join(",")),
        0..4,
    )
}

fn forwarding_headers(forwarded: bool, values: &[String]) -> http::HeaderMap {
    let name = if forwarded {
        "forwarded"
    } else {
        "x-forwarded-for"
    };
    let mut headers = http::HeaderMap::new();
    for value in values {
        headers.append(name, HeaderValue::from_str(value).unwrap());
    }
    headers
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn the_client_behind_proxies_is_the_peer_or_a_forwarded_address_never_a_client_choice(
        forwarded in any::<bool>(),
        trusted in prop::collection::vec(any::<bool>(), POOL.len()),
        peer in 0..POOL.len(),
        values in any::<bool>().prop_flat_map(forwarding_values),
        spoof in prop::collection::vec(0..POOL.len(), 1..4),
    ) {
        let nets: Vec<&str> = POOL.iter().zip(&trusted).filter(|(_, t)| **t).map(|(a, _)| *a).collect();
        let proxies = if forwarded {
            TrustedProxies::forwarded(&nets)
        } else {
            TrustedProxies::x_forwarded_for(&nets)
        }
        .unwrap();
        let peer = pooled(peer);
        let headers = forwarding_headers(forwarded, &values);
        let client = proxies.client_behind(peer, &headers);

        // An untrusted peer is the client, whatever it sent.
        if !proxies.trusts(peer) {
            prop_assert_eq!(client, peer);
        }
        // Only the peer or an address from the header, canonical.
        prop_assert!(
            client == peer || (0..POOL.len()).any(|i| pooled(i) == client),
            "{client:?}"
        );
        // What a client writes left of the first untrusted address never matters.
        if !proxies.trusts(client) {
            let forged: Vec<String> = spoof
                .iter()
                .map(|&i| if forwarded { format!("for=\"{}\"", pooled(i)) } else { pooled(i).to_string() })
                .collect();
            let mut spoofed = vec![forged.join(", ")];
            spoofed.extend(values.iter().cloned());
            let again = proxies.client_behind(peer, &forwarding_headers(forwarded, &spoofed));
            prop_assert_eq!(again, client);
        }
    }
}
