//! Per-key limits and restrictions (DESIGN §12) through a real axum server on loopback,
//! called by real clients bound to different local addresses; time is a manual clock,
//! so that nothing depends on how fast the machine is.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::routing::get;
use common::Answer;
use http::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use http::{Request, StatusCode};
use http_body_util::Empty;
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tower_apikey::record::{AllowedIps, Quota, QuotaPeriod, RateLimit};
use tower_apikey::testing::ManualClock;
use tower_apikey::usage::UsageTracker;
use tower_apikey::{ApiKeyV2Layer, InMemoryKeyStore, KeyManager, NewKey};
use tower_apikey_admin as admin;

struct Server {
    addr: SocketAddr,
    manager: KeyManager<InMemoryKeyStore>,
    clock: ManualClock,
    /// Flushed by hand: the tests say when last uses and addresses are written.
    tracker: UsageTracker,
}

impl Server {
    async fn start() -> Self {
        let store = InMemoryKeyStore::new();
        // 2027-01-15T08:00:00Z.
        let clock = ManualClock::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000));
        let manager = KeyManager::builder(store.clone())
            .clock(clock.clone())
            .build();
        let tracker = UsageTracker::new(store.clone());
        let app = Router::new()
            .route("/ping", get(|| async { "pong" }))
            .route_layer(
                ApiKeyV2Layer::new(store.clone())
                    .clock(clock.clone())
                    .usage_tracker(tracker.clone()),
            )
            .nest("/admin", admin::router(manager.clone()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
            .unwrap()
        });
        Self {
            addr,
            manager,
            clock,
            tracker,
        }
    }

    async fn key(&self, new: NewKey) -> String {
        let created = self.manager.create(new).await.unwrap();
        created.key.expose_secret().to_owned()
    }

    /// `POST /admin/keys` with `body`, as a key holding `admin:keys`.
    async fn create(&self, body: serde_json::Value) -> Answer {
        let admin = self.key(NewKey::new("admin", ["admin:keys", "a:b"])).await;
        let client: Client<_, http_body_util::Full<Bytes>> =
            Client::builder(TokioExecutor::new()).build(HttpConnector::new());
        let request = Request::post(format!("http://{}/admin/keys", self.addr))
            .header(AUTHORIZATION, format!("ApiKey-v2 {admin}"))
            .header(CONTENT_TYPE, "application/json")
            .body(http_body_util::Full::new(Bytes::from(body.to_string())))
            .unwrap();
        Answer::read(client.request(request).await.unwrap()).await
    }

    /// `PATCH /admin/keys/{id}` with `body`, as `admin`.
    async fn patch(&self, admin: &str, id: &str, body: serde_json::Value) -> Answer {
        let client: Client<_, http_body_util::Full<Bytes>> =
            Client::builder(TokioExecutor::new()).build(HttpConnector::new());
        let request = Request::patch(format!("http://{}/admin/keys/{id}", self.addr))
            .header(AUTHORIZATION, format!("ApiKey-v2 {admin}"))
            .header(CONTENT_TYPE, "application/json")
            .body(http_body_util::Full::new(Bytes::from(body.to_string())))
            .unwrap();
        Answer::read(client.request(request).await.unwrap()).await
    }

    /// `GET /ping` with `key`, from a client bound to the local address `from`.
    async fn ping(&self, from: &str, key: &str) -> Answer {
        let mut connector = HttpConnector::new();
        connector.set_local_address(Some(from.parse::<IpAddr>().unwrap()));
        let client: Client<_, Empty<Bytes>> =
            Client::builder(TokioExecutor::new()).build(connector);
        let request = Request::get(format!("http://{}/ping", self.addr))
            .header(AUTHORIZATION, format!("ApiKey-v2 {key}"))
            .body(Empty::new())
            .unwrap();
        Answer::read(client.request(request).await.unwrap()).await
    }
}

#[tokio::test]
async fn a_rate_limited_key_gets_its_burst_then_429_with_the_ratelimit_headers() {
    let server = Server::start().await;
    let key = server
        .key(NewKey::new("burst", ["a:b"]).rate_limit(RateLimit::new(3, 30).unwrap()))
        .await;
    for left in ["2", "1", "0"] {
        let answer = server.ping("127.0.0.1", &key).await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.headers["ratelimit-policy"], r#""rate";q=3;w=30"#);
        assert_eq!(
            answer.headers["ratelimit"],
            format!(r#""rate";r={left};t=10"#).as_str()
        );
    }
    let refused = server.ping("127.0.0.1", &key).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.headers[RETRY_AFTER], "10");
    assert_eq!(refused.headers["ratelimit"], r#""rate";r=0;t=10"#);
    assert_eq!(refused.headers[CONTENT_TYPE], "application/problem+json");
    let problem: serde_json::Value = serde_json::from_str(&refused.body).unwrap();
    assert_eq!(problem["error"], "rate_limited");
    assert_eq!(problem["status"], 429);

    server.clock.advance(Duration::from_secs(10));
    assert_eq!(server.ping("127.0.0.1", &key).await.status, StatusCode::OK);
    assert_eq!(
        server.ping("127.0.0.1", &key).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn a_monthly_quota_is_spent_then_refused_until_the_month_ends() {
    let server = Server::start().await;
    let key = server
        .key(NewKey::new("monthly", ["a:b"]).quota(Quota::new(2, QuotaPeriod::Month).unwrap()))
        .await;
    for _ in 0..2 {
        let answer = server.ping("127.0.0.1", &key).await;
        assert_eq!(answer.status, StatusCode::OK);
        // January: 31 days.
        assert_eq!(
            answer.headers["ratelimit-policy"],
            r#""quota";q=2;w=2678400"#
        );
    }
    let refused = server.ping("127.0.0.1", &key).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    let problem: serde_json::Value = serde_json::from_str(&refused.body).unwrap();
    assert_eq!(problem["error"], "quota_exceeded");
    // From Jan 15 08:00 to Feb 1 00:00: 16 days and 16 hours.
    let wait = 16 * 86_400 + 16 * 3_600;
    assert_eq!(refused.headers[RETRY_AFTER], wait.to_string().as_str());
    server.clock.advance(Duration::from_secs(wait));
    let february = server.ping("127.0.0.1", &key).await;
    assert_eq!(february.status, StatusCode::OK);
    assert_eq!(
        february.headers["ratelimit-policy"],
        r#""quota";q=2;w=2419200"#
    );
}

#[tokio::test]
async fn a_key_restricted_to_an_address_is_refused_from_another() {
    let server = Server::start().await;
    let key = server
        .key(NewKey::new("office", ["a:b"]).allowed_ips(AllowedIps::new(["127.0.0.1"]).unwrap()))
        .await;
    assert_eq!(server.ping("127.0.0.1", &key).await.status, StatusCode::OK);
    let refused = server.ping("127.0.0.2", &key).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let problem: serde_json::Value = serde_json::from_str(&refused.body).unwrap();
    assert_eq!(problem["error"], "address_not_allowed");
    assert_eq!(problem["status"], 403);
}

#[tokio::test]
async fn the_admin_api_creates_a_key_with_limits_and_shows_them() {
    let server = Server::start().await;
    let created = server
        .create(serde_json::json!({
            "name": "metered",
            "scopes": ["a:b"],
            "rate_limit": {"requests": 1, "per_secs": 60},
            "quota": {"requests": 1000, "per": "month"},
            "allowed_ips": ["127.0.0.1", "::ffff:10.0.0.0/104"],
        }))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let record: serde_json::Value = serde_json::from_str(&created.body).unwrap();
    assert_eq!(
        record["rate_limit"],
        serde_json::json!({"requests": 1, "per_secs": 60})
    );
    assert_eq!(
        record["quota"],
        serde_json::json!({"requests": 1000, "per": "month"})
    );
    assert_eq!(
        record["allowed_ips"],
        serde_json::json!(["127.0.0.1/32", "10.0.0.0/8"])
    );
    let key = record["key"].as_str().unwrap();
    assert_eq!(server.ping("127.0.0.1", key).await.status, StatusCode::OK);
    assert_eq!(
        server.ping("127.0.0.1", key).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        server.ping("127.0.0.2", key).await.status,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn invalid_limits_get_a_422_naming_each_field() {
    let server = Server::start().await;
    let refused = server
        .create(serde_json::json!({
            "name": "metered",
            "scopes": ["a:b"],
            "rate_limit": {"requests": 0, "per_secs": 60},
            "quota": {"requests": 10, "per": "week"},
            "allowed_ips": ["not an address"],
        }))
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    let problem: serde_json::Value = serde_json::from_str(&refused.body).unwrap();
    let text = problem.to_string();
    for field in ["rate_limit.requests", "quota.per", "allowed_ips"] {
        assert!(text.contains(field), "{field} in {text}");
    }
    assert!(
        text.contains("203.0.113.0/24"),
        "says what to write: {text}"
    );
}

/// The id part of a plaintext key (`mkc_<id>_…`).
fn id_of(key: &str) -> &str {
    key.split('_').nth(1).unwrap()
}

#[tokio::test]
async fn a_patch_changes_limits_and_addresses_at_once_and_keeps_the_rest() {
    let server = Server::start().await;
    let admin = server
        .key(NewKey::new("admin", ["admin:keys", "a:b"]))
        .await;
    let key = server
        .key(NewKey::new("hourly", ["a:b"]).rate_limit(RateLimit::new(1, 3_600).unwrap()))
        .await;
    let id = id_of(&key);
    assert_eq!(server.ping("127.0.0.1", &key).await.status, StatusCode::OK);
    assert_eq!(
        server.ping("127.0.0.1", &key).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );

    let changed = server
        .patch(
            &admin,
            id,
            serde_json::json!({"rate_limit": null, "allowed_ips": ["127.0.0.2"], "name": "office"}),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
    let record: serde_json::Value = serde_json::from_str(&changed.body).unwrap();
    assert_eq!(record["name"], "office");
    assert_eq!(record["scopes"], serde_json::json!(["a:b"]), "scopes kept");
    assert!(record.get("rate_limit").is_none(), "cleared: {record}");
    assert_eq!(record["allowed_ips"], serde_json::json!(["127.0.0.2/32"]));
    assert!(record.get("key").is_none(), "no key in a PATCH answer");
    // In memory the change holds from the next request on.
    assert_eq!(
        server.ping("127.0.0.1", &key).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(server.ping("127.0.0.2", &key).await.status, StatusCode::OK);

    // Fields left out stay; `null` lifts the allowlist; a quota can be added.
    let changed = server
        .patch(
            &admin,
            id,
            serde_json::json!({"allowed_ips": null, "quota": {"requests": 1, "per": "day"}}),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
    let record: serde_json::Value = serde_json::from_str(&changed.body).unwrap();
    assert_eq!(record["name"], "office", "left out, so kept");
    assert!(record.get("allowed_ips").is_none(), "{record}");
    assert_eq!(server.ping("127.0.0.1", &key).await.status, StatusCode::OK);
    let spent = server.ping("127.0.0.1", &key).await;
    assert_eq!(spent.status, StatusCode::TOO_MANY_REQUESTS);
    let problem: serde_json::Value = serde_json::from_str(&spent.body).unwrap();
    assert_eq!(problem["error"], "quota_exceeded");
}

#[tokio::test]
async fn a_bad_patch_names_each_field_refuses_scopes_and_changes_nothing() {
    let server = Server::start().await;
    let admin = server
        .key(NewKey::new("admin", ["admin:keys", "a:b"]))
        .await;
    let key = server
        .key(NewKey::new("k", ["a:b"]).rate_limit(RateLimit::new(5, 1).unwrap()))
        .await;
    let id = id_of(&key);
    let refused = server
        .patch(
            &admin,
            id,
            serde_json::json!({
                "name": "",
                "rate_limit": {"requests": 1, "per_secs": 0},
                "quota": {"requests": 1, "per": "week"},
                "allowed_ips": ["10.0.0.0/33"],
                "scopes": ["admin:keys"],
                "ratelimit": 3,
            }),
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    let problem: serde_json::Value = serde_json::from_str(&refused.body).unwrap();
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        [
            "name",
            "rate_limit.per_secs",
            "quota.per",
            "allowed_ips",
            "scopes",
            "ratelimit"
        ]
    );
    assert!(
        problem.to_string().contains("scopes cannot be changed"),
        "{problem}"
    );
    let kept = server.manager.get(&id.parse().unwrap()).await.unwrap();
    assert_eq!(kept.name().as_str(), "k");
    assert_eq!(kept.rate_limit(), Some(RateLimit::new(5, 1).unwrap()));

    let unknown = server
        .patch(&admin, "0000000000000000", serde_json::json!({"name": "x"}))
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_admin_key_cannot_lift_the_limits_of_a_key_beyond_its_scopes() {
    let server = Server::start().await;
    let admin_only = server.key(NewKey::new("junior", ["admin:keys"])).await;
    let key = server
        .key(NewKey::new("k", ["a:b"]).rate_limit(RateLimit::new(1, 60).unwrap()))
        .await;
    let refused = server
        .patch(
            &admin_only,
            id_of(&key),
            serde_json::json!({"rate_limit": null}),
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    let problem: serde_json::Value = serde_json::from_str(&refused.body).unwrap();
    assert_eq!(problem["not_grantable"], serde_json::json!(["a:b"]));
    let kept = server
        .manager
        .get(&id_of(&key).parse().unwrap())
        .await
        .unwrap();
    assert_eq!(kept.rate_limit(), Some(RateLimit::new(1, 60).unwrap()));
}

#[tokio::test]
async fn a_record_shows_the_last_client_addresses_newest_first_after_a_flush() {
    let server = Server::start().await;
    let admin = server
        .key(NewKey::new("admin", ["admin:keys", "a:b"]))
        .await;
    let key = server.key(NewKey::new("fleet", ["a:b"])).await;
    for from in ["127.0.0.2", "127.0.0.3", "127.0.0.2", "127.0.0.4"] {
        assert_eq!(server.ping(from, &key).await.status, StatusCode::OK);
    }
    let shown = |server: &Server| {
        let id = id_of(&key).parse().unwrap();
        let manager = server.manager.clone();
        async move { manager.get(&id).await.unwrap() }
    };
    assert!(
        shown(&server).await.recent_ips().is_empty(),
        "not before the flush"
    );
    server.tracker.flush().await.unwrap();
    // The admin API shows them too: PATCH with nothing answers the record.
    let answer = server
        .patch(&admin, id_of(&key), serde_json::json!({}))
        .await;
    let record: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
    assert_eq!(
        record["recent_ips"],
        serde_json::json!(["127.0.0.4", "127.0.0.2", "127.0.0.3"])
    );
    // A refused request is not a use: its address is not recorded.
    let restricted = server
        .patch(
            &admin,
            id_of(&key),
            serde_json::json!({"allowed_ips": ["127.0.0.2", "127.0.0.4"]}),
        )
        .await;
    assert_eq!(restricted.status, StatusCode::OK);
    assert_eq!(
        server.ping("127.0.0.5", &key).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(server.ping("127.0.0.2", &key).await.status, StatusCode::OK);
    server.tracker.flush().await.unwrap();
    let addresses: Vec<String> = shown(&server)
        .await
        .recent_ips()
        .iter()
        .map(|ip| ip.to_string())
        .collect();
    assert_eq!(addresses, ["127.0.0.2", "127.0.0.4", "127.0.0.3"]);
}

/// L1 (red team, 2026-12-07): the limiter's sweep decided whether an entry still
/// counted a quota from the quota the key had when its entry was made. A quota added
/// by PATCH afterwards was then swept as "nothing counted", and the key got its quota
/// again the same day.
#[tokio::test]
async fn l1_a_quota_added_by_patch_survives_the_limiters_sweep() {
    let server = Server::start().await;
    let admin = server
        .key(NewKey::new("admin", ["admin:keys", "a:b"]))
        .await;
    // A rate limit alone: the key's entry is made with no quota.
    let rate = RateLimit::new(100, 1).unwrap();
    let key = server
        .key(NewKey::new("metered later", ["a:b"]).rate_limit(rate))
        .await;
    assert_eq!(server.ping("127.0.0.1", &key).await.status, StatusCode::OK);
    let patched = server
        .patch(
            &admin,
            id_of(&key),
            serde_json::json!({"quota": {"requests": 3, "per": "day"}}),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    let mut today = Vec::new();
    for _ in 0..4 {
        today.push(server.ping("127.0.0.1", &key).await.status.as_u16());
    }
    assert_eq!(today, [200, 200, 200, 429]);
    // Two seconds on, the same UTC day: the rate has recovered, and 1,100 other limited
    // keys, each used once, make the limiter's map double, so that it sweeps.
    server.clock.advance(Duration::from_secs(2));
    for i in 0..1100 {
        let other = server
            .key(NewKey::new(format!("other {i}"), ["a:b"]).rate_limit(rate))
            .await;
        assert_eq!(
            server.ping("127.0.0.1", &other).await.status,
            StatusCode::OK
        );
    }
    let mut after = Vec::new();
    for _ in 0..3 {
        after.push(server.ping("127.0.0.1", &key).await.status.as_u16());
    }
    assert_eq!(
        after,
        [429, 429, 429],
        "the day's quota is spent, sweep or not"
    );
}
