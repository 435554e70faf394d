//! The demo (`examples/demo`) behind a real server on loopback, driven by a real HTTP
//! client: the README's walkthrough end to end, then every refused request.

#[path = "../examples/demo/app.rs"]
mod app;
mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use common::Answer;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use tower_apikey::{InMemoryKeyStore, ManualClock, UsageTracker};

/// 2026-05-01T12:00:00Z: the demo runs on a manual clock, so times are exact.
const START_SECS: u64 = 1_777_636_800;

struct Demo {
    addr: SocketAddr,
    client: Client<HttpConnector, Full<Bytes>>,
    tracker: UsageTracker,
    clock: ManualClock,
    admin: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    fn header(&self, name: impl http::header::AsHeaderName) -> &str {
        self.headers
            .get(name)
            .expect("header present")
            .to_str()
            .unwrap()
    }

    /// A problem document: its status agrees with the response's.
    fn problem(&self) -> Value {
        assert_eq!(self.header(CONTENT_TYPE), "application/problem+json");
        let problem = self.json();
        assert_eq!(problem["status"], self.status.as_u16(), "{problem}");
        assert!(problem["detail"].is_string(), "{problem}");
        problem
    }
}

/// What a request carries.
enum Body<'a> {
    None,
    Json(Value),
    Raw(Option<&'a str>, Vec<u8>),
}

impl Demo {
    async fn start() -> Self {
        let clock = ManualClock::new(UNIX_EPOCH + Duration::from_secs(START_SECS));
        let demo = app::build(
            InMemoryKeyStore::new(),
            Duration::from_secs(300),
            Arc::new(clock.clone()),
        )
        .await
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = demo.router;
        tokio::spawn(async move {
            let app = router.into_make_service_with_connect_info::<SocketAddr>();
            axum::serve(listener, app).await.unwrap()
        });
        Self {
            addr,
            client: Client::builder(TokioExecutor::new()).build_http(),
            tracker: demo.tracker,
            clock,
            admin: demo.admin_key.expose_secret().to_owned(),
        }
    }

    async fn send(&self, method: Method, path: &str, key: Option<&str>, body: Body<'_>) -> Answer {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr));
        if let Some(key) = key {
            request = request.header("authorization", format!("ApiKey-v2 {key}"));
        }
        let bytes = match body {
            Body::None => Vec::new(),
            Body::Json(json) => {
                request = request.header(CONTENT_TYPE, "application/json");
                json.to_string().into_bytes()
            }
            Body::Raw(content_type, bytes) => {
                if let Some(content_type) = content_type {
                    request = request.header(CONTENT_TYPE, content_type);
                }
                bytes
            }
        };
        let response = self
            .client
            .request(request.body(Full::new(Bytes::from(bytes))).unwrap())
            .await
            .unwrap();
        Answer::read(response).await
    }

    async fn get(&self, path: &str, key: Option<&str>) -> Answer {
        self.send(Method::GET, path, key, Body::None).await
    }

    async fn admin(&self, method: Method, path: &str, body: Body<'_>) -> Answer {
        self.send(method, &format!("/admin{path}"), Some(&self.admin), body)
            .await
    }

    /// Creates a key through the admin API; returns (key, id).
    async fn create(&self, name: &str, scopes: &[&str]) -> (String, String) {
        let answer = self
            .admin(
                Method::POST,
                "/keys",
                Body::Json(json!({"name": name, "scopes": scopes})),
            )
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
        let created = answer.json();
        (
            created["key"].as_str().unwrap().to_owned(),
            created["id"].as_str().unwrap().to_owned(),
        )
    }

    async fn list(&self) -> Vec<Value> {
        let answer = self.admin(Method::GET, "/keys", Body::None).await;
        assert_eq!(answer.status, StatusCode::OK);
        answer.json().as_array().unwrap().clone()
    }
}

fn at(offset_secs: u64) -> String {
    let time =
        time::OffsetDateTime::from_unix_timestamp((START_SECS + offset_secs) as i64).unwrap();
    time.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

const YEAR_SECS: u64 = 365 * 24 * 60 * 60;

#[tokio::test]
async fn the_readme_walkthrough_runs_end_to_end() {
    let demo = Demo::start().await;

    // Health needs no key; the API does.
    let health = demo.get("/health", None).await;
    assert_eq!(
        (health.status, health.body.as_str()),
        (StatusCode::OK, "ok")
    );
    let anonymous = demo.get("/ping", None).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        anonymous.header(WWW_AUTHENTICATE),
        "ApiKey-v2 realm=\"demo\""
    );

    // Create: 201, the record and the key, shown once.
    demo.clock.advance(Duration::from_secs(1));
    let answer = demo
        .admin(
            Method::POST,
            "/keys",
            Body::Json(json!({"name": "billing-sync", "scopes": ["reports:read"]})),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    assert_eq!(answer.header(CACHE_CONTROL), "no-store");
    let created = answer.json();
    let old_key = created["key"].as_str().unwrap().to_owned();
    let old_id = created["id"].as_str().unwrap().to_owned();
    assert!(old_key.starts_with(&format!("mkc_{old_id}_")));
    assert_eq!(answer.header(LOCATION), format!("keys/{old_id}"));
    assert_eq!(
        created,
        json!({
            "id": old_id,
            "name": "billing-sync",
            "scopes": ["reports:read"],
            "created_at": at(1),
            "expires_at": at(1 + YEAR_SECS),
            "revoked_at": null,
            "last_used_at": null,
            "rotated_from": null,
            "key": old_key,
        })
    );

    // Use it.
    let ping = demo.get("/ping", Some(&old_key)).await;
    assert_eq!((ping.status, ping.body.as_str()), (StatusCode::OK, "pong"));
    let whoami = demo.get("/whoami", Some(&old_key)).await;
    assert_eq!(whoami.status, StatusCode::OK);
    assert_eq!(
        whoami.json(),
        json!({
            "id": old_id,
            "name": "billing-sync",
            "scopes": ["reports:read"],
            "expires_at": at(1 + YEAR_SECS),
        })
    );

    // Scopes per method: reading is allowed, writing needs `reports:write`.
    let reports = demo.get("/reports", Some(&old_key)).await;
    assert_eq!(
        (reports.status, reports.json()),
        (StatusCode::OK, json!([]))
    );
    let refused = demo
        .send(Method::POST, "/reports", Some(&old_key), Body::None)
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(
        refused
            .header(WWW_AUTHENTICATE)
            .contains("error=\"insufficient_scope\""),
        "{}",
        refused.header(WWW_AUTHENTICATE)
    );
    assert_eq!(refused.problem()["scope"], "reports:write");
    demo.clock.advance(Duration::from_secs(1));
    let (writer, writer_id) = demo.create("report writer", &["reports:write"]).await;
    let report = demo
        .send(Method::POST, "/reports", Some(&writer), Body::None)
        .await;
    assert_eq!(report.status, StatusCode::CREATED);
    assert_eq!(
        report.json()["created_by"],
        json!({"id": writer_id, "name": "report writer"})
    );
    let reports = demo.get("/reports", Some(&old_key)).await;
    assert_eq!(reports.json(), json!([report.json()]));

    // Rotate: a new key, same name and scopes; the old one keeps working.
    demo.clock.advance(Duration::from_secs(59));
    let answer = demo
        .admin(Method::POST, &format!("/keys/{old_id}/rotate"), Body::None)
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    let rotated = answer.json();
    let new_key = rotated["key"].as_str().unwrap().to_owned();
    let new_id = rotated["id"].as_str().unwrap().to_owned();
    assert_ne!(new_id, old_id);
    assert_eq!(answer.header(LOCATION), format!("../{new_id}"));
    assert_eq!(rotated["rotated_from"], old_id.as_str());
    assert_eq!(rotated["name"], "billing-sync");
    assert_eq!(rotated["scopes"], json!(["reports:read"]));
    assert_eq!(rotated["created_at"], at(61));
    assert_eq!(
        demo.get("/ping", Some(&old_key)).await.status,
        StatusCode::OK
    );

    // The integration switches; its next flush shows the new key's last use.
    demo.clock.advance(Duration::from_secs(10));
    assert_eq!(
        demo.get("/ping", Some(&new_key)).await.status,
        StatusCode::OK
    );
    let before_flush = demo
        .admin(Method::GET, &format!("/keys/{new_id}"), Body::None)
        .await;
    assert_eq!(before_flush.json()["last_used_at"], Value::Null);
    demo.tracker.flush().await.unwrap();
    let after_flush = demo
        .admin(Method::GET, &format!("/keys/{new_id}"), Body::None)
        .await;
    assert_eq!(after_flush.status, StatusCode::OK);
    assert_eq!(after_flush.json()["last_used_at"], at(71));
    assert!(after_flush.json().get("key").is_none());

    // Revoke the old key: 204, and 204 again.
    demo.clock.advance(Duration::from_secs(5));
    let path = format!("/keys/{old_id}");
    for _ in 0..2 {
        let revoked = demo.admin(Method::DELETE, &path, Body::None).await;
        assert_eq!(revoked.status, StatusCode::NO_CONTENT);
        assert!(revoked.body.is_empty());
    }
    let old = demo.admin(Method::GET, &path, Body::None).await.json();
    assert_eq!(old["revoked_at"], at(76));

    // The old key is refused, the new one works.
    let refused = demo.get("/ping", Some(&old_key)).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert!(
        refused
            .header(WWW_AUTHENTICATE)
            .contains("the key has been revoked")
    );
    assert_eq!(refused.problem()["error"], "invalid_token");
    assert_eq!(
        demo.get("/ping", Some(&new_key)).await.status,
        StatusCode::OK
    );

    // The listing: newest first, no keys, no digests.
    let listing = demo.admin(Method::GET, "/keys", Body::None).await;
    let ids: Vec<Value> = listing
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].clone())
        .collect();
    let admin_id = demo.admin.split('_').nth(1).unwrap();
    assert_eq!(
        ids,
        [
            json!(new_id),
            json!(writer_id),
            json!(old_id),
            json!(admin_id)
        ]
    );
    for secret in [&old_key, &new_key, &writer, &demo.admin] {
        assert!(!listing.body.contains(secret.as_str()));
    }
    for record in listing.json().as_array().unwrap() {
        let mut fields: Vec<&str> = record
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        fields.sort_unstable();
        assert_eq!(
            fields,
            [
                "created_at",
                "expires_at",
                "id",
                "last_used_at",
                "name",
                "revoked_at",
                "rotated_from",
                "scopes"
            ]
        );
    }
}

#[tokio::test]
async fn admin_routes_need_a_key_with_admin_keys() {
    let demo = Demo::start().await;
    let (reader, _) = demo.create("reader", &["reports:read"]).await;

    let anonymous = demo.get("/admin/keys", None).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        anonymous.header(WWW_AUTHENTICATE),
        "ApiKey-v2 realm=\"demo\""
    );
    anonymous.problem();

    let not_admin = demo
        .send(
            Method::POST,
            "/admin/keys",
            Some(&reader),
            Body::Json(json!({"name": "sneaky", "scopes": ["admin:keys"]})),
        )
        .await;
    assert_eq!(not_admin.status, StatusCode::FORBIDDEN);
    assert_eq!(not_admin.problem()["scope"], "admin:keys");
    assert_eq!(demo.list().await.len(), 2, "nothing was created");

    // Unknown routes are 404 with or without a key.
    assert_eq!(demo.get("/nope", None).await.status, StatusCode::NOT_FOUND);
    let unknown = demo.get("/admin/nope", None).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    unknown.problem();
}

/// Sends a create request, expects `status` naming `field` (if any), and checks that
/// nothing was stored.
async fn refused_create(demo: &Demo, body: Body<'_>, status: StatusCode, field: Option<&str>) {
    let before = demo.list().await.len();
    let answer = demo.admin(Method::POST, "/keys", body).await;
    assert_eq!(answer.status, status, "{}", answer.body);
    let problem = answer.problem();
    if let Some(field) = field {
        assert_eq!(problem["field"], field, "{problem}");
        assert_eq!(problem["errors"][0]["field"], field, "{problem}");
        assert!(problem["errors"][0]["detail"].is_string(), "{problem}");
    }
    assert_eq!(
        demo.list().await.len(),
        before,
        "nothing is stored: {problem}"
    );
}

#[tokio::test]
async fn bad_create_requests_are_refused_naming_the_field_and_store_nothing() {
    let demo = Demo::start().await;
    let json = Some("application/json");

    // Not JSON at all, or not declared as JSON.
    refused_create(
        &demo,
        Body::Raw(json, b"{\"name\": \"x\",".to_vec()),
        StatusCode::BAD_REQUEST,
        None,
    )
    .await;
    refused_create(
        &demo,
        Body::Raw(json, b"".to_vec()),
        StatusCode::BAD_REQUEST,
        None,
    )
    .await;
    let valid = br#"{"name": "x", "scopes": []}"#.to_vec();
    refused_create(
        &demo,
        Body::Raw(Some("text/plain"), valid.clone()),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        None,
    )
    .await;
    refused_create(
        &demo,
        Body::Raw(None, valid),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        None,
    )
    .await;
    refused_create(
        &demo,
        Body::Raw(json, b"[]".to_vec()),
        StatusCode::UNPROCESSABLE_ENTITY,
        None,
    )
    .await;

    // Too large.
    let huge = json!({"name": "x".repeat(17 * 1024), "scopes": []});
    refused_create(&demo, Body::Json(huge), StatusCode::PAYLOAD_TOO_LARGE, None).await;

    // Names.
    let unprocessable = StatusCode::UNPROCESSABLE_ENTITY;
    for name in [
        json!(""),
        json!("   "),
        json!("x".repeat(129)),
        json!(" padded"),
        json!("a\nb"),
        json!(7),
    ] {
        refused_create(
            &demo,
            Body::Json(json!({"name": name, "scopes": []})),
            unprocessable,
            Some("name"),
        )
        .await;
    }
    refused_create(
        &demo,
        Body::Json(json!({"scopes": []})),
        unprocessable,
        Some("name"),
    )
    .await;

    // Scopes.
    for scopes in [
        json!(["Reports:Read"]),
        json!(["reports:"]),
        json!(["*"]),
        json!("reports:read"),
        json!([1]),
    ] {
        refused_create(
            &demo,
            Body::Json(json!({"name": "n", "scopes": scopes})),
            unprocessable,
            Some("scopes"),
        )
        .await;
    }
    refused_create(
        &demo,
        Body::Json(json!({"name": "n"})),
        unprocessable,
        Some("scopes"),
    )
    .await;

    // Expiry: in the past, now, beyond 365 days, not RFC 3339.
    for expires_at in [
        at(0).as_str(),
        "2020-01-01T00:00:00Z",
        &at(YEAR_SECS + 1),
        "2026-06-01",
        "soon",
    ] {
        let body = json!({"name": "n", "scopes": [], "expires_at": expires_at});
        refused_create(&demo, Body::Json(body), unprocessable, Some("expires_at")).await;
    }

    // Unknown fields are refused rather than ignored.
    let typo = json!({"name": "n", "scopes": [], "expires": at(60)});
    refused_create(&demo, Body::Json(typo), unprocessable, Some("expires")).await;

    // Every invalid field at once.
    let answer = demo
        .admin(
            Method::POST,
            "/keys",
            Body::Json(
                json!({"name": "", "scopes": ["Bad"], "expires_at": "2020-01-01T00:00:00Z"}),
            ),
        )
        .await;
    let fields: Vec<Value> = answer.problem()["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].clone())
        .collect();
    assert_eq!(
        fields,
        [json!("name"), json!("scopes"), json!("expires_at")]
    );

    // And the boundaries are accepted: 128 characters, 365 days exactly, an offset.
    let answer = demo
        .admin(
            Method::POST,
            "/keys",
            Body::Json(json!({"name": "é".repeat(128), "scopes": [], "expires_at": at(YEAR_SECS)})),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    assert_eq!(answer.json()["expires_at"], at(YEAR_SECS));
    let answer = demo
        .admin(
            Method::POST,
            "/keys",
            Body::Json(
                json!({"name": "n", "scopes": [], "expires_at": "2026-05-01T14:00:00+02:00"}),
            ),
        )
        .await;
    assert_eq!(
        answer.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "that is now, in UTC"
    );
    let answer = demo
        .admin(
            Method::POST,
            "/keys",
            Body::Json(
                json!({"name": "n", "scopes": [], "expires_at": "2026-05-01T14:00:01+02:00"}),
            ),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    assert_eq!(answer.json()["expires_at"], at(1));
}

#[tokio::test]
async fn unknown_or_malformed_ids_are_404_and_revoked_keys_cannot_rotate() {
    let demo = Demo::start().await;
    let before = demo.list().await.len();
    for id in ["AAAAAAAAAAAAAAAA", "not-an-id", "AAAAAAAAAAAAAAA%C3%A9"] {
        for (method, path) in [
            (Method::GET, format!("/keys/{id}")),
            (Method::DELETE, format!("/keys/{id}")),
            (Method::POST, format!("/keys/{id}/rotate")),
        ] {
            let answer = demo.admin(method.clone(), &path, Body::None).await;
            assert_eq!(answer.status, StatusCode::NOT_FOUND, "{method} {path}");
            answer.problem();
        }
    }
    assert_eq!(demo.list().await.len(), before);

    let (key, id) = demo.create("leaked", &["reports:read"]).await;
    let rotate = format!("/keys/{id}/rotate");

    // Rotation bodies: JSON only, `overlap_secs` only, whole seconds up to 365 days.
    let before = demo.list().await.len();
    for (body, status, field) in [
        (
            Body::Raw(Some("text/plain"), b"{}".to_vec()),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            None,
        ),
        (
            Body::Raw(Some("application/json"), b"{".to_vec()),
            StatusCode::BAD_REQUEST,
            None,
        ),
        (
            Body::Json(json!({"overlap_secs": -1})),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("overlap_secs"),
        ),
        (
            Body::Json(json!({"overlap_secs": YEAR_SECS + 1})),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("overlap_secs"),
        ),
        (
            Body::Json(json!({"overlap": 60})),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("overlap"),
        ),
    ] {
        let answer = demo.admin(Method::POST, &rotate, body).await;
        assert_eq!(answer.status, status, "{}", answer.body);
        assert_eq!(
            answer.problem()["field"],
            field.map_or(Value::Null, Value::from)
        );
    }
    assert_eq!(demo.list().await.len(), before, "nothing is stored");
    assert_eq!(demo.get("/ping", Some(&key)).await.status, StatusCode::OK);

    // A leaked key: rotate with overlap 0 revokes it at once.
    let answer = demo
        .admin(
            Method::POST,
            &rotate,
            Body::Json(json!({"overlap_secs": 0})),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    let new_key = answer.json()["key"].as_str().unwrap().to_owned();
    assert_eq!(
        demo.get("/ping", Some(&key)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        demo.get("/ping", Some(&new_key)).await.status,
        StatusCode::OK
    );

    // A revoked key cannot be rotated again.
    let again = demo.admin(Method::POST, &rotate, Body::None).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert!(
        again.problem()["detail"]
            .as_str()
            .unwrap()
            .contains("create a new key")
    );
}

#[tokio::test]
async fn rotating_with_an_overlap_ends_the_old_key_then() {
    let demo = Demo::start().await;
    let (key, id) = demo.create("overlapping", &[]).await;
    let answer = demo
        .admin(
            Method::POST,
            &format!("/keys/{id}/rotate"),
            Body::Json(json!({"overlap_secs": 3600})),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    let old = demo
        .admin(Method::GET, &format!("/keys/{id}"), Body::None)
        .await;
    assert_eq!(old.json()["expires_at"], at(3600));
    demo.clock.advance(Duration::from_secs(3599));
    assert_eq!(demo.get("/ping", Some(&key)).await.status, StatusCode::OK);
    demo.clock.advance(Duration::from_secs(1));
    let expired = demo.get("/ping", Some(&key)).await;
    assert_eq!(expired.status, StatusCode::UNAUTHORIZED);
    assert!(
        expired
            .header(WWW_AUTHENTICATE)
            .contains("the key has expired")
    );
}

#[tokio::test]
async fn admin_key_uses_are_tracked_like_any_other() {
    let demo = Demo::start().await;
    demo.clock.advance(Duration::from_secs(30));
    let admin_id = demo.admin.split('_').nth(1).unwrap().to_owned();
    demo.list().await;
    demo.tracker.shutdown().await.unwrap();
    let me = demo
        .admin(Method::GET, &format!("/keys/{admin_id}"), Body::None)
        .await
        .json();
    assert_eq!(me["last_used_at"], at(30));
    assert_eq!(me["scopes"], json!(["admin:keys"]));
    assert_eq!(me["name"], "demo admin");
}

#[tokio::test]
async fn guessing_keys_is_throttled_across_the_api_and_the_admin_routes() {
    let demo = Demo::start().await;
    let (key, _) = demo.create("guess target", &["reports:read"]).await;
    let wrong = tower_apikey::test_util::with_wrong_secret(&key);
    // Guesses at the admin routes and at the API count together.
    for i in 0..app::FAILURES_PER_MINUTE {
        let answer = if i % 2 == 0 {
            demo.send(Method::GET, "/admin/keys", Some(&wrong), Body::None)
                .await
        } else {
            demo.get("/ping", Some(&wrong)).await
        };
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "guess {i}");
    }
    for path in ["/ping", "/admin/keys"] {
        let answer = demo.get(path, Some(&key)).await;
        assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS, "{path}");
        assert_eq!(answer.problem()["error"], "throttled");
        let retry_after: u64 = answer.header(RETRY_AFTER).parse().unwrap();
        assert!((1..=60).contains(&retry_after), "{retry_after}");
    }
    // Requests that need no key are not refused.
    assert_eq!(demo.get("/health", None).await.status, StatusCode::OK);
}
