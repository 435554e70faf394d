//! Secrets hygiene: no key and no digest in `Debug`, `Display`, error messages, panic
//! messages, answers, or the `tracing` output of full request cycles (success and every
//! refusal of DESIGN §3, store failure and timeout included) and of key management and
//! last-used tracking around them.
//!
//! A leak is searched for in every form it could take: the key text, any 12-character
//! run of its secret, the digest in hex (either case), base64 (standard and URL-safe,
//! padded or not) and as a `Debug` byte array, and the key's bytes as a `Debug` array.
//! The crate has no serde support yet, so there is no serialised form to check.

use std::convert::Infallible;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Request, Response};
use http_body_util::BodyExt;
use tower::{Layer, ServiceExt};
use tower_apikey::key::{KeyDigest, KeyPrefix};
use tower_apikey::store::RotateOutcome;
use tower_apikey::testing::ManualClock;
use tower_apikey::testing::{FailingStore, HangingStore};
use tower_apikey::usage::{TracingUsageSink, UsageTracker};
use tower_apikey::{
    ApiKeyIdentity, ApiKeyV2Layer, CreatedKey, InMemoryKeyStore, KeyManager, KeyStore, NewKey,
    PlaintextKey, Scopes, StoreError,
};

/// Key material that must never be shown, and the ways it could be shown.
struct Secrets {
    /// Every form of every key and digest, as text to search for.
    forms: Vec<String>,
}

impl Secrets {
    fn new() -> Self {
        Self { forms: Vec::new() }
    }

    /// A key text (real or forged: a forged key is still someone's guess at a secret).
    fn key(&mut self, text: &str) {
        self.forms.push(text.to_owned());
        self.forms.push(format!("{:?}", text.as_bytes()));
        // The secret and checksum are the last 49 characters; any 12 of them in a row
        // is a partial leak (the 16-character id before them is public).
        let secret = &text[text.len().saturating_sub(49)..];
        for window in secret.as_bytes().windows(12) {
            self.forms
                .push(String::from_utf8(window.to_vec()).expect("keys are ASCII"));
        }
        self.digest(&KeyDigest::of(text));
    }

    fn digest(&mut self, digest: &KeyDigest) {
        let bytes = digest.as_bytes();
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        // Any 16 hex digits in a row (64 bits) of the digest.
        for window in hex.as_bytes().windows(16) {
            let window = String::from_utf8(window.to_vec()).unwrap();
            self.forms.push(window.to_uppercase());
            self.forms.push(window);
        }
        for engine in [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD] {
            self.forms.push(engine.encode(bytes));
        }
        self.forms.push(format!("{bytes:?}"));
        self.forms.push(format!("{:?}", bytes.as_slice()));
    }

    /// Fails with the form found (not the text around it, which may hold more).
    #[track_caller]
    fn assert_absent(&self, what: &str, shown: &str) {
        assert!(!shown.is_empty(), "{what}: nothing to check");
        for form in &self.forms {
            assert!(
                !shown.contains(form.as_str()),
                "{what} shows key material (a form {} characters long)",
                form.len()
            );
        }
    }
}

/// Everything `tracing` writes, kept in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// Routes this thread's `tracing` events, at every level, here.
    fn install(&self) -> tracing::subscriber::DefaultGuard {
        let writer = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_default(subscriber)
    }
}

async fn echo(req: Request<String>) -> Result<Response<String>, Infallible> {
    let caller = req.extensions().get::<ApiKeyIdentity>().unwrap();
    tracing::info!(?caller, "handler reached");
    Ok(Response::new(format!("{caller:?}")))
}

/// One full request cycle through `layer`; returns the whole answer as text.
async fn cycle(layer: &ApiKeyV2Layer, headers: &[(&str, &[u8])]) -> String {
    // HTTP/2, so that a request that says it is gRPC gets the gRPC answer.
    let mut req = Request::builder()
        .uri("/reports")
        .version(http::Version::HTTP_2);
    for (name, value) in headers {
        req = req.header(*name, HeaderValue::from_bytes(value).unwrap());
    }
    let service = layer.layer(tower::service_fn(echo));
    let response = service
        .oneshot(req.body(String::new()).unwrap())
        .await
        .unwrap();
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    format!(
        "{} {:?} {}",
        parts.status,
        parts.headers,
        String::from_utf8_lossy(&body)
    )
}

/// The same key with one secret character changed and its checksum fixed.
fn forged(text: &str) -> String {
    const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut body = text[..text.len() - 6].to_owned();
    let last = body.pop().unwrap();
    body.push(if last == 'a' { 'b' } else { 'a' });
    let mut crc = crc32fast::hash(body.as_bytes());
    let mut sum = [b'0'; 6];
    for digit in sum.iter_mut().rev() {
        *digit = ALPHABET[(crc % 62) as usize];
        crc /= 62;
    }
    body + std::str::from_utf8(&sum).unwrap()
}

#[tokio::test]
async fn tracing_output_of_every_request_outcome_holds_no_key_or_digest() {
    let captured = Captured::default();
    let _guard = captured.install();
    let mut secrets = Secrets::new();

    let store = InMemoryKeyStore::new();
    let clock = ManualClock::starting_now();
    let manager = KeyManager::builder(store.clone())
        .clock(clock.clone())
        .build();
    let tracker = UsageTracker::new(TracingUsageSink);
    let create = |name: &'static str, scopes: &'static [&'static str]| {
        let manager = manager.clone();
        async move {
            manager
                .create(NewKey::new(name, scopes.iter().copied()))
                .await
                .unwrap()
        }
    };
    let valid = create("valid", &["reports:read"]).await;
    let unscoped = create("unscoped", &[]).await;
    let revoked = create("revoked", &["reports:read"]).await;
    manager.revoke(revoked.key.id()).await.unwrap();
    let expiring = manager
        .create(NewKey::new("expiring", ["reports:read"]).lifetime(Duration::from_secs(60)))
        .await
        .unwrap();
    let rotated = manager.rotate(valid.key.id(), None).await.unwrap();
    let unknown = PlaintextKey::generate(&KeyPrefix::default());
    for key in [&valid, &unscoped, &revoked, &expiring, &rotated] {
        secrets.key(key.key.expose_secret());
    }
    secrets.key(unknown.expose_secret());
    let text = valid.key.expose_secret();
    let wrong_secret = forged(text);
    secrets.key(&wrong_secret);
    let mut bad_checksum = text.to_owned();
    bad_checksum.replace_range(
        text.len() - 1..,
        if text.ends_with('0') { "1" } else { "0" },
    );
    let other_prefix = format!("acme{}", &text[3..]);
    let auth = |key: &str| format!("ApiKey-v2 {key}").into_bytes();

    let layer = ApiKeyV2Layer::new(store.clone())
        .clock(clock.clone())
        .require_scopes(Scopes::new(["reports:read"]).unwrap())
        .usage_tracker(tracker.clone());
    let too_long = [auth(text), vec![b'A'; 300]].concat();
    let cases: Vec<Vec<(&str, Vec<u8>)>> = vec![
        vec![("authorization", auth(text))],
        vec![("authorization", auth(rotated.key.expose_secret()))],
        vec![],
        vec![("authorization", format!("Bearer {text}").into_bytes())],
        vec![("authorization", auth(text)), ("authorization", auth(text))],
        vec![("authorization", too_long)],
        vec![("authorization", format!("ApiKey-v2 {text} x").into_bytes())],
        vec![("authorization", auth(&text[..text.len() - 1]))],
        vec![("authorization", auth(&bad_checksum))],
        vec![("authorization", auth(&other_prefix))],
        vec![("authorization", auth(unknown.expose_secret()))],
        vec![("authorization", auth(&wrong_secret))],
        vec![("authorization", auth(revoked.key.expose_secret()))],
        vec![("authorization", auth(unscoped.key.expose_secret()))],
        vec![
            ("authorization", auth(&wrong_secret)),
            (CONTENT_TYPE.as_str(), b"application/grpc".to_vec()),
        ],
    ];
    let mut answers = String::new();
    for case in &cases {
        let headers: Vec<(&str, &[u8])> = case.iter().map(|(n, v)| (*n, v.as_slice())).collect();
        answers += &cycle(&layer, &headers).await;
    }
    // Expired: only once the clock has passed the expiry.
    clock.advance(Duration::from_secs(61));
    answers += &cycle(
        &layer,
        &[("authorization", &auth(expiring.key.expose_secret()))],
    )
    .await;
    // The store fails, or hangs past the lookup timeout.
    let failing = ApiKeyV2Layer::new(FailingStore);
    answers += &cycle(&failing, &[("authorization", &auth(text))]).await;
    let hanging = ApiKeyV2Layer::new(HangingStore).lookup_timeout(Some(Duration::from_millis(10)));
    answers += &cycle(&hanging, &[("authorization", &auth(text))]).await;
    // Last-used times reach the sink, which logs them.
    tracker.flush().await.unwrap();
    tracker.shutdown().await.unwrap();

    let log = captured.text();
    // The capture saw every kind of event, so a silent log cannot pass for a clean one.
    for expected in [
        "API key created",
        "API key revoked",
        "API key rotated",
        "API key accepted",
        "handler reached",
        "refused before lookup",
        "invalid_key",
        "revoked",
        "expired",
        "insufficient_scope",
        "key store unavailable",
        "did not answer within",
        "API key used",
        valid.key.id().as_str(),
    ] {
        assert!(
            log.contains(expected),
            "no {expected:?} in the captured log"
        );
    }
    secrets.assert_absent("the tracing output", &log);
    for expected in ["200 OK", "401", "403", "503", "grpc-status"] {
        assert!(
            answers.contains(expected),
            "no {expected:?} among the answers"
        );
    }
    secrets.assert_absent("the answers", &answers);
}

#[tokio::test]
async fn debug_and_display_of_every_type_holding_a_key_show_neither_key_nor_digest() {
    let store = InMemoryKeyStore::new();
    let manager = KeyManager::new(store.clone());
    let created: CreatedKey = manager
        .create(NewKey::new("shown", ["reports:read"]))
        .await
        .unwrap();
    let mut secrets = Secrets::new();
    secrets.key(created.key.expose_secret());
    let key = &created.key;
    let digest = key.digest();
    let record = store.lookup(key.id()).await.unwrap().unwrap();
    let identity = record.identity().clone();
    let parsed = PlaintextKey::parse(key.expose_secret()).unwrap();
    let tracker = UsageTracker::new(store.clone());
    tracker.record(key.id(), std::time::SystemTime::now());
    let layer = ApiKeyV2Layer::new(store.clone()).usage_tracker(tracker.clone());
    let service = layer.layer(tower::service_fn(echo));

    let shown = [
        format!("{key:?}"),
        format!("{key:#?}"),
        format!("{key}"),
        format!("{parsed:?} {parsed}"),
        format!("{digest:?}"),
        format!("{digest:#?}"),
        format!("{record:?}"),
        format!("{record:#?}"),
        format!("{created:?}"),
        format!("{created:#?}"),
        format!("{identity:?}"),
        format!("{identity:#?}"),
        format!("{:?}", RotateOutcome::Rotated(record.clone())),
        format!("{:?}", Ok::<_, ()>(Some(record.clone()))),
        format!("{store:?} {manager:?} {tracker:?} {layer:?} {service:?}"),
    ];
    for (i, text) in shown.iter().enumerate() {
        secrets.assert_absent(&format!("output #{i}"), text);
    }
    // The public id is what they show instead.
    assert!(shown[0].contains(key.id().as_str()));
    assert!(shown[2].contains(key.id().as_str()));
    assert_eq!(shown[4], "KeyDigest(<redacted>)");
}

#[tokio::test]
async fn error_messages_about_a_key_never_contain_it() {
    let store = InMemoryKeyStore::new();
    let manager = KeyManager::new(store.clone());
    let created = manager.create(NewKey::new("k", ["a:b"])).await.unwrap();
    let text = created.key.expose_secret();
    let mut secrets = Secrets::new();
    secrets.key(text);

    let mut errors = Vec::new();
    // Every format error a copy of this key can produce.
    let mut typo = text.to_owned();
    typo.replace_range(30..31, if &text[30..31] == "x" { "y" } else { "x" });
    let mut bad_char = text.to_owned();
    bad_char.replace_range(30..31, "+");
    let mut bad_separator = text.to_owned();
    bad_separator.replace_range(3..4, "-");
    for candidate in [
        typo,
        bad_char,
        bad_separator,
        text[..text.len() - 1].to_owned(),
        text.to_uppercase(),
        format!("{text}{text}"),
    ] {
        let error = PlaintextKey::parse(candidate.as_str()).unwrap_err();
        errors.push(format!("{error} {error:?} {error:#?}"));
    }
    // Management errors about it.
    manager.revoke(created.key.id()).await.unwrap();
    let revoked = manager.rotate(created.key.id(), None).await.unwrap_err();
    errors.push(format!("{revoked} {revoked:?}"));
    let duplicate = StoreError::Duplicate(*created.key.id());
    errors.push(format!("{duplicate} {duplicate:?}"));
    let unavailable = StoreError::unavailable("connection refused");
    errors.push(format!("{unavailable} {unavailable:?}"));

    for (i, error) in errors.iter().enumerate() {
        secrets.assert_absent(&format!("error #{i}"), error);
    }
}

#[test]
fn panic_messages_that_involve_a_key_never_contain_it() {
    let key = PlaintextKey::generate(&KeyPrefix::default());
    let mut secrets = Secrets::new();
    secrets.key(key.expose_secret());
    let text = key.expose_secret().to_owned();

    let payload = |outcome: std::thread::Result<()>| -> String {
        let payload = outcome.expect_err("the closure panics");
        payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .expect("a text panic payload")
    };
    // An application unwrapping the wrong way round: the panic prints the key's Debug.
    let unwrapped = payload(std::panic::catch_unwind(|| {
        PlaintextKey::parse(text.as_str()).unwrap_err();
    }));
    assert!(unwrapped.contains("PlaintextKey"), "{unwrapped}");
    secrets.assert_absent("the unwrap_err panic", &unwrapped);
    // Unwrapping a refused key: the panic prints the error.
    let mut typo = text.clone();
    typo.replace_range(40..41, if &text[40..41] == "x" { "y" } else { "x" });
    let refused = payload(std::panic::catch_unwind(|| {
        PlaintextKey::parse(typo.as_str()).map(drop).unwrap();
    }));
    assert!(refused.contains("Checksum"), "{refused}");
    secrets.assert_absent("the unwrap panic", &refused);
    // An assertion on two keys prints both with Debug.
    let other = PlaintextKey::generate(&KeyPrefix::default());
    let asserted = payload(std::panic::catch_unwind(|| {
        assert_eq!(format!("{key:?}"), format!("{other:?}"), "{key} vs {other}");
    }));
    secrets.assert_absent("the assertion panic", &asserted);
}
