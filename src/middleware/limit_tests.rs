//! Per-key limits and restrictions through the layer (DESIGN §12), on the manual clock:
//! the order of the checks, what each refusal consumes, the exact headers, addresses,
//! the gRPC codes.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::{Duration, UNIX_EPOCH};

use http::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{Request, Response, Version};
use tower::{ServiceBuilder, ServiceExt};

use crate::client_addr::TrustedProxies;
use crate::clock::ManualClock;
use crate::key::PlaintextKey;
use crate::manager::{KeyManager, NewKey};
use crate::middleware::layer::ApiKeyV2Layer;
use crate::middleware::response_body::{ResponseBody, collect};
use crate::record::{AllowedIps, Quota, QuotaPeriod, RateLimit};
use crate::scope::Scopes;
use crate::store::memory::InMemoryKeyStore;

/// 2027-01-15T08:00:00Z: 16 hours before the end of the UTC day.
const START: u64 = 1_800_000_000;

struct Fixture {
    store: InMemoryKeyStore,
    manager: KeyManager<InMemoryKeyStore>,
    clock: ManualClock,
}

impl Fixture {
    fn new() -> Self {
        let store = InMemoryKeyStore::new();
        let clock = ManualClock::new(UNIX_EPOCH + Duration::from_secs(START));
        let manager = KeyManager::builder(store.clone())
            .clock(clock.clone())
            .build();
        Self {
            store,
            manager,
            clock,
        }
    }

    async fn key(&self, new: NewKey) -> PlaintextKey {
        self.manager.create(new).await.unwrap().key
    }

    fn layer(&self) -> ApiKeyV2Layer {
        ApiKeyV2Layer::new(self.store.clone()).clock(self.clock.clone())
    }
}

async fn ok(_: Request<String>) -> Result<Response<String>, Infallible> {
    Ok(Response::new("ok".to_owned()))
}

fn request(key: &PlaintextKey, peer: Option<&str>) -> Request<String> {
    let mut req = Request::builder()
        .header(AUTHORIZATION, format!("ApiKey-v2 {}", key.expose_secret()))
        .body(String::new())
        .unwrap();
    if let Some(peer) = peer {
        req.extensions_mut()
            .insert(peer.parse::<SocketAddr>().unwrap());
    }
    req
}

async fn send(layer: &ApiKeyV2Layer, req: Request<String>) -> Response<String> {
    ServiceBuilder::new()
        .layer(layer.clone())
        .service_fn(ok)
        .oneshot(req)
        .await
        .map(|r: Response<ResponseBody<String>>| {
            r.map(|b| String::from_utf8(collect(b).to_vec()).unwrap())
        })
        .unwrap()
}

fn limited() -> NewKey {
    NewKey::new("limited", ["reports:read"])
        .rate_limit(RateLimit::new(2, 10).unwrap())
        .quota(Quota::new(3, QuotaPeriod::Day).unwrap())
}

#[tokio::test]
async fn answers_to_a_limited_key_carry_the_exact_ratelimit_headers_on_200_and_429() {
    let f = Fixture::new();
    let key = f.key(limited()).await;
    let layer = f.layer();

    let first = send(&layer, request(&key, None)).await;
    assert_eq!(first.status(), 200);
    assert_eq!(
        first.headers()["ratelimit-policy"],
        r#""rate";q=2;w=10, "quota";q=3;w=86400"#
    );
    assert_eq!(
        first.headers()["ratelimit"],
        r#""rate";r=1;t=5, "quota";r=2;t=57600"#
    );
    let second = send(&layer, request(&key, None)).await;
    assert_eq!(
        second.headers()["ratelimit"],
        r#""rate";r=0;t=5, "quota";r=1;t=57600"#
    );

    f.clock.advance(Duration::from_millis(1500));
    let refused = send(&layer, request(&key, None)).await;
    assert_eq!(refused.status(), 429);
    assert_eq!(refused.headers()[RETRY_AFTER], "4");
    assert_eq!(
        refused.headers()["ratelimit-policy"],
        r#""rate";q=2;w=10, "quota";q=3;w=86400"#
    );
    assert_eq!(
        refused.headers()["ratelimit"],
        r#""rate";r=0;t=4, "quota";r=1;t=57599"#
    );
    assert_eq!(refused.headers()[CONTENT_TYPE], "application/problem+json");
    assert!(!refused.headers().contains_key(WWW_AUTHENTICATE));
    assert!(refused.body().contains(r#""error":"rate_limited""#));

    // The refusal consumed nothing: the third request of the quota comes on time.
    f.clock.advance(Duration::from_millis(3500));
    let third = send(&layer, request(&key, None)).await;
    assert_eq!(third.status(), 200);
    assert_eq!(
        third.headers()["ratelimit"],
        r#""rate";r=0;t=5, "quota";r=0;t=57595"#
    );

    f.clock.advance(Duration::from_secs(20));
    let over = send(&layer, request(&key, None)).await;
    assert_eq!(over.status(), 429);
    assert_eq!(over.headers()[RETRY_AFTER], "57575");
    assert!(over.body().contains(r#""error":"quota_exceeded""#));
    assert_eq!(
        over.headers()["ratelimit"],
        r#""rate";r=2;t=0, "quota";r=0;t=57575"#
    );

    // The next UTC day starts a new quota.
    f.clock.advance(Duration::from_secs(57_575));
    assert_eq!(send(&layer, request(&key, None)).await.status(), 200);
}

#[tokio::test]
async fn a_key_without_limits_gets_no_ratelimit_headers() {
    let f = Fixture::new();
    let key = f.key(NewKey::new("plain", ["reports:read"])).await;
    let response = send(&f.layer(), request(&key, None)).await;
    assert_eq!(response.status(), 200);
    assert!(!response.headers().contains_key("ratelimit"));
    assert!(!response.headers().contains_key("ratelimit-policy"));
}

#[tokio::test]
async fn a_scope_refusal_has_used_its_rate_and_quota() {
    let f = Fixture::new();
    let key = f
        .key(NewKey::new("narrow", ["reports:read"]).rate_limit(RateLimit::new(1, 60).unwrap()))
        .await;
    // Clones of a layer share its limits' state, whatever scopes each requires.
    let layer = f.layer();
    let scoped = layer
        .clone()
        .require_scopes(Scopes::new(["reports:write"]).unwrap());
    let refused = send(&scoped, request(&key, None)).await;
    assert_eq!(refused.status(), 403);
    assert_eq!(refused.headers()["ratelimit"], r#""rate";r=0;t=60"#);
    // The one request of the minute went to the refused call.
    assert_eq!(send(&layer, request(&key, None)).await.status(), 429);
}

#[tokio::test]
async fn an_address_refusal_consumes_nothing_and_comes_before_the_rate_limit() {
    let f = Fixture::new();
    let key = f
        .key(
            NewKey::new("office", ["reports:read"])
                .rate_limit(RateLimit::new(1, 60).unwrap())
                .allowed_ips(AllowedIps::new(["203.0.113.0/24"]).unwrap()),
        )
        .await;
    let layer = f.layer();
    for _ in 0..3 {
        let refused = send(&layer, request(&key, Some("198.51.100.7:5000"))).await;
        assert_eq!(refused.status(), 403);
        assert!(refused.body().contains(r#""error":"address_not_allowed""#));
        assert!(!refused.headers().contains_key("ratelimit"));
    }
    assert_eq!(
        send(&layer, request(&key, Some("203.0.113.7:5000")))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn an_allowlist_matches_ipv4_ipv6_and_ipv4_mapped_peers() {
    let f = Fixture::new();
    let key = f
        .key(
            NewKey::new("office", ["reports:read"])
                .allowed_ips(AllowedIps::new(["203.0.113.0/24", "2001:db8::/32"]).unwrap()),
        )
        .await;
    let layer = f.layer();
    for (peer, status) in [
        ("203.0.113.7:1", 200),
        ("[2001:db8::5]:1", 200),
        ("[::ffff:203.0.113.8]:1", 200),
        ("192.0.2.1:1", 403),
        ("[2001:db9::1]:1", 403),
        ("[::ffff:192.0.2.1]:1", 403),
    ] {
        let response = send(&layer, request(&key, Some(peer))).await;
        assert_eq!(response.status(), status, "{peer}");
    }
}

#[tokio::test]
async fn a_restricted_key_without_a_client_address_is_refused() {
    let f = Fixture::new();
    let key = f
        .key(
            NewKey::new("office", ["reports:read"])
                .allowed_ips(AllowedIps::new(["127.0.0.1"]).unwrap()),
        )
        .await;
    assert_eq!(send(&f.layer(), request(&key, None)).await.status(), 403);
}

#[tokio::test]
async fn the_allowlist_reads_the_client_behind_trusted_proxies() {
    let f = Fixture::new();
    let key = f
        .key(
            NewKey::new("office", ["reports:read"])
                .allowed_ips(AllowedIps::new(["203.0.113.9"]).unwrap()),
        )
        .await;
    let layer = f
        .layer()
        .trusted_proxies(TrustedProxies::x_forwarded_for(["10.0.0.0/8"]).unwrap());
    let mut req = request(&key, Some("10.0.0.2:443"));
    req.headers_mut()
        .insert("x-forwarded-for", "203.0.113.9".parse().unwrap());
    assert_eq!(send(&layer, req).await.status(), 200);
    let mut req = request(&key, Some("10.0.0.2:443"));
    req.headers_mut()
        .insert("x-forwarded-for", "198.51.100.1".parse().unwrap());
    assert_eq!(send(&layer, req).await.status(), 403);
}

#[tokio::test]
async fn grpc_answers_permission_denied_and_resource_exhausted() {
    let f = Fixture::new();
    let restricted = f
        .key(
            NewKey::new("office", ["reports:read"])
                .allowed_ips(AllowedIps::new(["203.0.113.9"]).unwrap()),
        )
        .await;
    let rate = f
        .key(NewKey::new("rate", ["reports:read"]).rate_limit(RateLimit::new(1, 60).unwrap()))
        .await;
    let quota = f
        .key(
            NewKey::new("quota", ["reports:read"])
                .quota(Quota::new(1, QuotaPeriod::Month).unwrap()),
        )
        .await;
    let layer = f.layer();
    let grpc = |key: &PlaintextKey| {
        let mut req = request(key, Some("192.0.2.1:1"));
        *req.version_mut() = Version::HTTP_2;
        req.headers_mut()
            .insert(CONTENT_TYPE, "application/grpc".parse().unwrap());
        req
    };
    let denied = send(&layer, grpc(&restricted)).await;
    assert_eq!(denied.status(), 200);
    assert_eq!(denied.headers()["grpc-status"], "7");
    for key in [&rate, &quota] {
        let first = send(&layer, grpc(key)).await;
        assert!(!first.headers().contains_key("grpc-status"));
        assert!(first.headers().contains_key("ratelimit"));
        let exhausted = send(&layer, grpc(key)).await;
        assert_eq!(exhausted.status(), 200);
        assert_eq!(exhausted.headers()["grpc-status"], "8");
        assert!(exhausted.headers().contains_key(RETRY_AFTER));
    }
}

/// A new policy is one file and one row (`policy/probe.rs`, test-only): its row, not its
/// refusal's kind, says what a refusal does. The probe refuses with an address refusal,
/// whose own row charges nothing and records no address; the probe's row says the
/// opposite on both counts, and through the real layer the row wins.
#[tokio::test]
async fn a_test_only_policy_refuses_and_charges_as_its_row_says() {
    let f = Fixture::new();
    let probed = NewKey::new("probed", ["reports:read"]).rate_limit(RateLimit::new(2, 60).unwrap());
    let key = f.key(probed).await;
    let tracker = crate::usage::UsageTracker::new(f.store.clone());
    let layer = f.layer().usage_tracker(tracker.clone());
    let mut refused = request(&key, Some("203.0.113.9:5000"));
    refused
        .headers_mut()
        .insert("x-probe-refuse", http::HeaderValue::from_static("1"));
    let refused = send(&layer, refused).await;
    assert_eq!(refused.status(), 403);
    assert!(refused.body().contains(r#""error":"address_not_allowed""#));
    // Charged: one of the two requests of the minute is gone, and the headers say so.
    assert_eq!(refused.headers()["ratelimit"], r#""rate";r=1;t=30"#);
    let accepted = send(&layer, request(&key, None)).await;
    assert_eq!(accepted.status(), 200);
    assert_eq!(accepted.headers()["ratelimit"], r#""rate";r=0;t=30"#);
    assert_eq!(send(&layer, request(&key, None)).await.status(), 429);
    // Recorded: the use, with the address the probe refused.
    tracker.flush().await.unwrap();
    let record = f.manager.get(key.id()).await.unwrap();
    let recent: Vec<String> = record
        .recent_ips()
        .iter()
        .map(|ip| ip.to_string())
        .collect();
    assert_eq!(recent, ["203.0.113.9"]);
}
