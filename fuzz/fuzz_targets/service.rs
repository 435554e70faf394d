//! The whole middleware, driven by arbitrary methods, paths, header names and values,
//! over stores that answer at once, answer through a future, or fail either way.
//!
//! Invariants, checked against an independent oracle of DESIGN §1–§3:
//!
//! - it never panics, and answers at once when the store does;
//! - the inner service runs (a 2xx that is not a gRPC refusal) only for exactly one
//!   `Authorization: ApiKey-v2 <key>` whose key is in the store, active, and holds the
//!   required scopes; and whenever that is so and the store works, it does run; the
//!   credential reaches it marked sensitive, if at all;
//! - a gRPC answer (HTTP 200, `grpc-status`, `content-type: application/grpc`, empty
//!   body) exactly for HTTP/2 requests whose `content-type` is `application/grpc` or
//!   starts with `application/grpc+` or `application/grpc;`; every other refusal is a
//!   non-2xx with a problem document of its own status;
//! - a 5xx (or gRPC UNAVAILABLE) only when the store failed, and a failed store always
//!   gives one to a request that reached it; never a 401 for a store failure; a 503
//!   says `Retry-After` and challenges nothing;
//! - a 403 only for an active, proven key lacking a scope, challenging with
//!   `insufficient_scope`;
//! - a 401 challenges `ApiKey-v2 realm="api"`: with no error code when there is no
//!   `Authorization` field, `invalid_request` when the fields are not one
//!   `ApiKey-v2 <token68>`, `invalid_token` otherwise; it says "revoked", "expired" or
//!   "ended" exactly when the caller proved that key (the whole key, as issued);
//! - every refusal says `Cache-Control: no-store`, once;
//! - `ApiKey-Expires` exactly on the answers that let a key through within 30 days of
//!   its end (expiry, or a rotation's scheduled end), naming that end;
//! - no answer ever contains a key's secret.

#![no_main]

use std::convert::Infallible;
use std::future::{Future, Ready, ready};
use std::sync::OnceLock;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, SystemTime};

use arbitrary::Arbitrary;
use async_trait::async_trait;
use http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{
    HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri, Version,
};
use http_body::Body as _;
use libfuzzer_sys::fuzz_target;
use tower_apikey::fuzzing::{parse_key, token};
use tower_apikey::{
    ApiKeyIdentity, ApiKeyV2Layer, ApiKeyV2Service, InMemoryKeyStore, KeyId, KeyRecord, KeyStore,
    KeyStoreAdmin, PlaintextKey, Scopes, StoreError,
};
use tower_apikey::key::KeyPrefix;
use tower_apikey::middleware::ResponseBody;
use tower_apikey::record::KeyName;
use tower_apikey::testing::ManualClock;
use tower_layer::Layer;
use tower_service::Service;

/// How the store behaves for one request.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum StoreMode {
    /// The in-memory store, answering through `lookup_ready`.
    Ready,
    /// The same records, answering only through the `lookup` future.
    Waiting,
    /// Fails through `lookup_ready`.
    FailsReady,
    /// Fails through the `lookup` future.
    FailsWaiting,
}

impl StoreMode {
    fn fails(self) -> bool {
        matches!(self, Self::FailsReady | Self::FailsWaiting)
    }

    fn index(self) -> usize {
        self as usize
    }
}

#[derive(Arbitrary, Debug)]
enum Name {
    Authorization,
    ContentType,
    Other(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum Scheme {
    Canonical,
    Lower,
    Upper,
    Other(Vec<u8>),
}

/// A one-byte change to a fixture key, its checksum optionally recomputed so that the
/// change reaches the store (a wrong secret rather than a typo).
#[derive(Arbitrary, Debug)]
struct Edit {
    position: u8,
    byte: u8,
    fix_checksum: bool,
}

#[derive(Arbitrary, Debug)]
enum Value {
    Raw(Vec<u8>),
    Key {
        scheme: Scheme,
        spaces: u8,
        key: u8,
        edit: Option<Edit>,
        trailer: Vec<u8>,
    },
    Grpc(Vec<u8>),
}

/// The request's HTTP version: gRPC answers are for HTTP/2 alone.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Http {
    V10,
    V11,
    V2,
    V3,
}

impl Http {
    fn version(self) -> Version {
        match self {
            Self::V10 => Version::HTTP_10,
            Self::V11 => Version::HTTP_11,
            Self::V2 => Version::HTTP_2,
            Self::V3 => Version::HTTP_3,
        }
    }
}

#[derive(Arbitrary, Debug)]
struct Input {
    store: StoreMode,
    http: Http,
    requirement: u8,
    method: Vec<u8>,
    path: Vec<u8>,
    headers: Vec<(Name, Value)>,
}

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

fn checksum(signed: &[u8]) -> [u8; 6] {
    let mut value = crc32fast::hash(signed);
    let mut out = [b'0'; 6];
    for digit in out.iter_mut().rev() {
        *digit = ALPHABET[(value % 62) as usize];
        value /= 62;
    }
    out
}

/// What a key's record says about it, once the secret is proven.
#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Active,
    Revoked,
    Expired,
    /// Ended by a rotation.
    Ended,
    /// Not in the store, or with a prefix the layer does not accept: unknown.
    Unknown,
}

/// What the fixture knows about each of its keys.
struct FixtureKey {
    text: String,
    id: KeyId,
    state: State,
    scopes: Scopes,
    /// When an accepted request's answer carries `ApiKey-Expires`: its value.
    warning: Option<String>,
}

impl FixtureKey {
    fn active(&self) -> bool {
        self.state == State::Active
    }
}

/// The required scopes of each layer variant.
const REQUIREMENTS: [&[&str]; 4] = [
    &[],
    &["reports:read"],
    &["reports:write"],
    &["admin:keys", "reports:read"],
];

struct Fixture {
    keys: Vec<FixtureKey>,
    /// One service per store mode and requirement.
    services: Vec<ApiKeyV2Service<Echo>>,
}

/// Records served by `lookup` only, so that the middleware takes its waiting path.
#[derive(Debug)]
struct Waiting(InMemoryKeyStore);

#[async_trait]
impl KeyStore for Waiting {
    async fn lookup(&self, id: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
        self.0.lookup(id).await
    }
}

/// A store whose backend is down, answering at once or through the future.
#[derive(Debug)]
struct Failing {
    ready: bool,
}

#[async_trait]
impl KeyStore for Failing {
    async fn lookup(&self, _: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
        Err(StoreError::unavailable("connection refused"))
    }

    fn lookup_ready(&self, _: &KeyId) -> Option<Result<Option<KeyRecord>, StoreError>> {
        self.ready
            .then(|| Err(StoreError::unavailable("connection refused")))
    }
}

/// The inner service: 200 with the caller's key id in `x-inner`. Reaching it without
/// an identity is a bug in the layer.
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
            .expect("the inner service ran without an identity");
        // DESIGN §16: the credential stops at the layer, removed or marked sensitive.
        for credential in req.headers().get_all(AUTHORIZATION) {
            assert!(
                credential.is_sensitive(),
                "the credential reached the handler"
            );
        }
        let mut response = Response::new(String::from("inner"));
        response.headers_mut().insert(
            "x-inner",
            HeaderValue::from_str(identity.key_id().as_str()).unwrap(),
        );
        ready(Ok(response))
    }
}

/// Polls once: every store here answers without waiting.
fn at_once<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the service must answer at once when its store does"),
    }
}

/// The layer's body, read whole: it answers at once (the inner text, or its own
/// problem document).
fn body_text(body: ResponseBody<String>) -> String {
    let mut body = std::pin::pin!(body);
    let mut text = Vec::new();
    while let Some(frame) = at_once(std::future::poll_fn(|cx| body.as_mut().poll_frame(cx))) {
        if let Ok(data) = frame.expect("the inner body cannot fail").into_data() {
            text.extend_from_slice(&data);
        }
    }
    String::from_utf8(text).expect("UTF-8 bodies")
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let year = Duration::from_secs(365 * 86_400);
        let day = Duration::from_secs(86_400);
        let store = InMemoryKeyStore::new();
        let mkc = KeyPrefix::default();
        let acme = KeyPrefix::new("acme").unwrap();
        /// How a fixture key's record is made.
        #[derive(Clone, Copy)]
        enum Plan {
            Active,
            Revoked,
            /// `expires_at` is now: refused at and after it.
            Expired,
            /// `ends_at` passed: ended by a rotation.
            Ended,
            /// Expires in 10 days: inside the 30-day warning.
            Expiring,
            /// A rotation ends it in 5 days, before its expiry.
            Ending,
            NotStored,
        }
        let plan: [(&KeyPrefix, &[&str], Plan); 10] = [
            (&mkc, &["reports:read"], Plan::Active),
            (&mkc, &["reports:*", "admin:keys"], Plan::Active),
            (&mkc, &[], Plan::Active),
            (&mkc, &["reports:read"], Plan::Revoked),
            (&mkc, &["reports:read"], Plan::Expired),
            (&mkc, &["reports:read"], Plan::Ended),
            (&mkc, &["reports:read"], Plan::Expiring),
            (&mkc, &["reports:read", "admin:keys"], Plan::Ending),
            (&mkc, &["reports:read"], Plan::NotStored),
            // Stored, but with a prefix the layer does not accept.
            (&acme, &["reports:read"], Plan::Active),
        ];
        let keys = plan
            .iter()
            .map(|&(prefix, scopes, plan)| {
                let key = PlaintextKey::generate(prefix);
                let scopes = Scopes::new(scopes).unwrap();
                let (created, expires) = match plan {
                    Plan::Expired => (now - year, now),
                    Plan::Expiring => (now - year + 10 * day, now + 10 * day),
                    _ => (now, now + year),
                };
                let ends = match plan {
                    Plan::Ended => Some(now - Duration::from_secs(1)),
                    Plan::Ending => Some(now + 5 * day),
                    _ => None,
                };
                let record = KeyRecord::new(
                    *key.id(),
                    KeyName::new("fuzz").unwrap(),
                    scopes.clone(),
                    key.digest(),
                    created,
                    expires,
                )
                .with_ends_at(ends)
                .with_revoked_at(
                    matches!(plan, Plan::Revoked).then_some(now - Duration::from_secs(1)),
                );
                if !matches!(plan, Plan::NotStored) {
                    at_once(store.insert(&record)).unwrap();
                }
                let state = match plan {
                    _ if *prefix != mkc => State::Unknown,
                    Plan::NotStored => State::Unknown,
                    Plan::Revoked => State::Revoked,
                    Plan::Expired => State::Expired,
                    Plan::Ended => State::Ended,
                    Plan::Active | Plan::Expiring | Plan::Ending => State::Active,
                };
                let warning = match plan {
                    Plan::Expiring => Some(httpdate::fmt_http_date(expires)),
                    Plan::Ending => ends.map(httpdate::fmt_http_date),
                    _ => None,
                };
                FixtureKey {
                    text: key.expose_secret().to_owned(),
                    id: *key.id(),
                    state,
                    scopes,
                    warning,
                }
            })
            .collect();
        let clock = ManualClock::new(now);
        let mut services = Vec::new();
        for mode in [
            StoreMode::Ready,
            StoreMode::Waiting,
            StoreMode::FailsReady,
            StoreMode::FailsWaiting,
        ] {
            assert_eq!(services.len(), mode.index() * REQUIREMENTS.len());
            for required in REQUIREMENTS {
                let layer = match mode {
                    StoreMode::Ready => ApiKeyV2Layer::new(store.clone()),
                    StoreMode::Waiting => ApiKeyV2Layer::new(Waiting(store.clone())),
                    StoreMode::FailsReady => ApiKeyV2Layer::new(Failing { ready: true }),
                    StoreMode::FailsWaiting => ApiKeyV2Layer::new(Failing { ready: false }),
                };
                let layer = layer
                    .clock(clock.clone())
                    .require_scopes(Scopes::new(required).unwrap())
                    // No timer: the waiting stores answer on the first poll, and the
                    // fuzzer runs without a tokio runtime.
                    .lookup_timeout(None);
                services.push(layer.layer(Echo));
            }
        }
        Fixture { keys, services }
    })
}

fn header_value(value: Value, keys: &[FixtureKey]) -> Option<HeaderValue> {
    let bytes = match value {
        Value::Raw(bytes) => bytes,
        Value::Grpc(suffix) => [b"application/grpc".as_slice(), &suffix].concat(),
        Value::Key {
            scheme,
            spaces,
            key,
            edit,
            trailer,
        } => {
            let mut bytes = match scheme {
                Scheme::Canonical => b"ApiKey-v2".to_vec(),
                Scheme::Lower => b"apikey-v2".to_vec(),
                Scheme::Upper => b"APIKEY-V2".to_vec(),
                Scheme::Other(other) => other,
            };
            bytes.extend(std::iter::repeat_n(b' ', usize::from(spaces % 4)));
            let mut text = keys[usize::from(key) % keys.len()]
                .text
                .clone()
                .into_bytes();
            if let Some(edit) = edit {
                let at = usize::from(edit.position) % text.len();
                text[at] = edit.byte;
                if edit.fix_checksum {
                    let body = text.len() - 6;
                    let sum = checksum(&text[..body]);
                    text[body..].copy_from_slice(&sum);
                }
            }
            bytes.extend_from_slice(&text);
            bytes.extend_from_slice(&trailer);
            bytes
        }
    };
    HeaderValue::from_bytes(&bytes).ok()
}

/// The fixture key an `Authorization` field carries exactly, per DESIGN §1: one field,
/// `ApiKey-v2` in any case, one or more spaces, the key, at most 256 bytes.
fn presented<'k>(headers: &HeaderMap, keys: &'k [FixtureKey]) -> Option<&'k FixtureKey> {
    let mut fields = headers.get_all(AUTHORIZATION).iter();
    let value = fields.next()?.as_bytes();
    if fields.next().is_some() || value.len() > 256 || value.len() < 10 {
        return None;
    }
    if !value[..9].eq_ignore_ascii_case(b"ApiKey-v2") || value[9] != b' ' {
        return None;
    }
    let spaces = value[9..].iter().take_while(|&&b| b == b' ').count();
    let key = &value[9 + spaces..];
    keys.iter().find(|k| k.text.as_bytes() == key)
}

/// Whether the middleware would ask the store: one well-formed `mkc` key.
fn reaches_store(headers: &HeaderMap) -> bool {
    let mut fields = headers.get_all(AUTHORIZATION).iter();
    match (fields.next(), fields.next()) {
        (Some(value), None) => token(value.as_bytes())
            .is_ok_and(|key| parse_key(key, Some(&KeyPrefix::default())).is_ok()),
        _ => false,
    }
}

/// Whether the request is a gRPC call per DESIGN §3: HTTP/2, and a first `content-type`
/// of `application/grpc` exactly or followed by `+` or `;`.
fn grpc_call(version: Version, headers: &HeaderMap) -> bool {
    let Some(content_type) = headers.get(CONTENT_TYPE) else {
        return false;
    };
    let value = content_type.as_bytes();
    let base = b"application/grpc";
    version == Version::HTTP_2
        && value.len() >= base.len()
        && &value[..base.len()] == base
        && (value.len() == base.len() || value[base.len()] == b'+' || value[base.len()] == b';')
}

/// Whether the `Authorization` fields are one `ApiKey-v2 <token68>` at all (whatever the
/// token): otherwise the refusal is `invalid_request`.
fn one_well_formed_field(headers: &HeaderMap) -> bool {
    let mut fields = headers.get_all(AUTHORIZATION).iter();
    match (fields.next(), fields.next()) {
        (Some(value), None) => token(value.as_bytes()).is_ok(),
        _ => false,
    }
}

fuzz_target!(|input: Input| {
    let fixture = fixture();
    let required = Scopes::new(REQUIREMENTS[usize::from(input.requirement) % 4]).unwrap();
    let index = input.store.index() * REQUIREMENTS.len() + usize::from(input.requirement) % 4;
    let mut service = fixture.services[index].clone();

    let mut request = Request::new(String::new());
    *request.method_mut() = Method::from_bytes(&input.method).unwrap_or(Method::GET);
    *request.uri_mut() = Uri::try_from(input.path).unwrap_or_else(|_| Uri::from_static("/"));
    *request.version_mut() = input.http.version();
    for (name, value) in input.headers {
        let name = match name {
            Name::Authorization => AUTHORIZATION,
            Name::ContentType => CONTENT_TYPE,
            Name::Other(bytes) => match HeaderName::from_bytes(&bytes) {
                Ok(name) => name,
                Err(_) => continue,
            },
        };
        if let Some(value) = header_value(value, &fixture.keys) {
            request.headers_mut().append(name, value);
        }
    }
    let headers = request.headers().clone();
    let grpc = grpc_call(input.http.version(), &headers);
    let key = presented(&headers, &fixture.keys);
    let store_works = !input.store.fails();
    let should_pass =
        store_works && key.is_some_and(|k| k.active() && k.scopes.grants_all(&required));
    let reached_store = reaches_store(&headers);

    assert!(at_once(std::future::poll_fn(|cx| service.poll_ready(cx))).is_ok());
    let response = at_once(service.call(request)).expect("the error type is infallible");
    let (parts, body) = response.into_parts();
    let response = Response::from_parts(parts, body_text(body));

    let status = response.status();
    let answer = response.headers();
    let passed = answer.contains_key("x-inner");
    let grpc_status = answer
        .get("grpc-status")
        .map(|s| s.to_str().unwrap().to_owned());
    // Nothing in the answer echoes a secret.
    let shown = format!("{answer:?} {}", response.body());
    for k in &fixture.keys {
        assert!(!shown.contains(&k.text[k.text.len() - 49..]), "{shown}");
    }
    // A warning of the key's end exactly when it lets a key through within 30 days of it.
    let warning = answer.get("apikey-expires").map(|v| v.to_str().unwrap());
    let expected_warning = if passed {
        key.and_then(|k| k.warning.as_deref())
    } else {
        None
    };
    assert_eq!(warning, expected_warning, "{status} for {headers:?}");

    // The inner service runs exactly for a valid, permitted key, as that key.
    assert_eq!(passed, should_pass, "{status} for {headers:?}");
    if passed {
        assert_eq!(status, StatusCode::OK);
        assert_eq!(answer["x-inner"], key.unwrap().id.as_str());
        assert!(
            !answer.contains_key(CACHE_CONTROL),
            "the inner service's answer, unchanged"
        );
        return;
    }

    // Every refusal: no cache may keep it.
    let cache: Vec<_> = answer.get_all(CACHE_CONTROL).iter().collect();
    assert_eq!(cache, ["no-store"], "{status} {grpc_status:?}");
    // What it says about the key (problem detail or gRPC message).
    let said = if grpc {
        assert_eq!(status, StatusCode::OK, "gRPC refusals are trailers-only");
        assert_eq!(answer[CONTENT_TYPE], "application/grpc");
        assert!(response.body().is_empty());
        assert!(grpc_status.is_some(), "a gRPC refusal carries its status");
        answer["grpc-message"].to_str().unwrap().to_owned()
    } else {
        assert!(!status.is_success(), "{status} without the inner service");
        assert!(
            grpc_status.is_none(),
            "{grpc_status:?} over {:?} for {headers:?}",
            input.http
        );
        assert_eq!(answer[CONTENT_TYPE], "application/problem+json");
        let body = response.body();
        assert!(body.starts_with('{') && body.ends_with('}'), "{body}");
        assert!(
            body.contains(&format!("\"status\":{}", status.as_u16())),
            "{body}"
        );
        body.clone()
    };
    let challenge = answer.get(WWW_AUTHENTICATE).map(|v| v.to_str().unwrap());

    // 5xx only when the store failed, and always when it failed a request that reached it.
    let unavailable = if grpc {
        grpc_status.as_deref() == Some("14")
    } else {
        status.is_server_error()
    };
    assert_eq!(
        unavailable,
        input.store.fails() && reached_store,
        "{status} {grpc_status:?}"
    );
    if unavailable {
        if !grpc {
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        }
        assert!(answer.contains_key(RETRY_AFTER));
        assert_eq!(challenge, None, "a 503 is not about the key");
        return;
    }
    // 403 only for an active key lacking a scope.
    let forbidden = if grpc {
        grpc_status.as_deref() == Some("7")
    } else {
        status == StatusCode::FORBIDDEN
    };
    let lacks_scope =
        store_works && key.is_some_and(|k| k.active() && !k.scopes.grants_all(&required));
    assert_eq!(forbidden, lacks_scope, "{status} {grpc_status:?}");
    if forbidden {
        let challenge = challenge.expect("a 403 for a scope challenges");
        assert!(
            challenge.contains("error=\"insufficient_scope\""),
            "{challenge}"
        );
        return;
    }
    // Otherwise 401, challenging as §3 says.
    if grpc {
        assert_eq!(grpc_status.as_deref(), Some("16"));
    } else {
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let challenge = challenge.expect("a 401 challenges");
    let realm = "ApiKey-v2 realm=\"api\"";
    if !headers.contains_key(AUTHORIZATION) {
        assert_eq!(challenge, realm);
    } else if !one_well_formed_field(&headers) {
        assert!(
            challenge.starts_with(&format!("{realm}, error=\"invalid_request\"")),
            "{challenge}"
        );
    } else {
        assert!(
            challenge.starts_with(&format!("{realm}, error=\"invalid_token\"")),
            "{challenge}"
        );
    }
    // The state of a key is said only to the caller who proved it.
    let proven = key.map_or(State::Unknown, |k| k.state);
    for (state, word) in [
        (State::Revoked, "revoked"),
        (State::Expired, "expired"),
        (State::Ended, "ended"),
    ] {
        assert_eq!(
            said.contains(word),
            proven == state,
            "{said:?} for {headers:?}"
        );
    }
});
