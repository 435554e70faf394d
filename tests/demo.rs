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
use tower_apikey::InMemoryKeyStore;
use tower_apikey::testing::ManualClock;
use tower_apikey::usage::UsageTracker;

/// 2026-05-01T12:00:00Z: the demo runs on a manual clock, so times are exact.
const START_SECS: u64 = 1_777_636_800;

struct Demo {
    addr: SocketAddr,
    client: Client<HttpConnector, Full<Bytes>>,
    tracker: UsageTracker,
    clock: ManualClock,
    admin: String,
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
            app::FAILURES_PER_MINUTE,
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
    // Created by the admin key: its id is the actor.
    let admin_id = demo.admin.split('_').nth(1).unwrap().to_owned();
    assert_eq!(
        created,
        json!({
            "id": old_id,
            "name": "billing-sync",
            "tenant": null,
            "scopes": ["reports:read"],
            "created_at": at(1),
            "expires_at": at(1 + YEAR_SECS),
            "ends_at": null,
            "revoked_at": null,
            "last_used_at": null,
            "rotated_from": null,
            "created_by": admin_id,
            "revoked_by": null,
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
            // A key the operator made for the application itself: no tenant.
            "tenant": null,
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

    // Revoke the old key: 200 with its record and no heirs (an administrator rotated
    // it), and the same again.
    demo.clock.advance(Duration::from_secs(5));
    let path = format!("/keys/{old_id}");
    for _ in 0..2 {
        let revoked = demo.admin(Method::DELETE, &path, Body::None).await;
        assert_eq!(revoked.status, StatusCode::OK);
        let revoked = revoked.json();
        assert_eq!(revoked["record"]["id"], old_id.as_str());
        assert_eq!(revoked["record"]["revoked_at"], at(76));
        assert_eq!(revoked["heirs"], serde_json::json!([]));
    }
    let old = demo.admin(Method::GET, &path, Body::None).await.json();
    assert_eq!(old["revoked_at"], at(76));
    assert_eq!(old["revoked_by"], admin_id.as_str(), "who revoked it");

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
        let mut expected = vec![
            "created_at",
            "created_by",
            "ends_at",
            "expires_at",
            "id",
            "last_used_at",
            "name",
            "revoked_at",
            "revoked_by",
            "rotated_from",
            "scopes",
            // DESIGN §14: `null` for the application's own keys.
            "tenant",
        ];
        // A key that was used shows the addresses it was used from: here, loopback.
        if !record["last_used_at"].is_null() {
            expected.insert(7, "recent_ips");
            assert_eq!(record["recent_ips"], json!(["127.0.0.1"]), "{record}");
        }
        assert_eq!(fields, expected);
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
async fn rotating_with_an_overlap_ends_the_old_key_then_as_ended_by_rotation() {
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
    assert_eq!(old.json()["ends_at"], at(3600));
    assert_eq!(
        old.json()["expires_at"],
        at(YEAR_SECS),
        "the expiry stays the key's own"
    );
    demo.clock.advance(Duration::from_secs(3599));
    assert_eq!(demo.get("/ping", Some(&key)).await.status, StatusCode::OK);
    demo.clock.advance(Duration::from_secs(1));
    let ended = demo.get("/ping", Some(&key)).await;
    assert_eq!(ended.status, StatusCode::UNAUTHORIZED);
    assert!(ended.header(WWW_AUTHENTICATE).contains("ended by rotation"));
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
    // The admin key holds the whole catalogue, so it can grant any scope.
    let catalogue: Vec<&str> = app::CATALOGUE.iter().map(|(scope, _)| *scope).collect();
    let mut held: Vec<&str> = me["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    held.sort_unstable();
    let mut expected = catalogue.clone();
    expected.sort_unstable();
    assert_eq!(held, expected);
    assert_eq!(me["created_by"], Value::Null, "the application made it");
    assert_eq!(me["name"], "demo admin");
}

#[tokio::test]
async fn guessing_keys_is_throttled_across_the_api_and_the_admin_routes() {
    let demo = Demo::start().await;
    let (key, _) = demo.create("guess target", &["reports:read"]).await;
    let wrong = tower_apikey::testing::with_wrong_secret(&key);
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
        let answer = demo.get(path, Some(&wrong)).await;
        assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS, "{path}");
        assert_eq!(answer.problem()["error"], "throttled");
        let retry_after: u64 = answer.header(RETRY_AFTER).parse().unwrap();
        assert!((1..=60).contains(&retry_after), "{retry_after}");
        // The right key, proven from memory, is never throttled (DESIGN §6): the API
        // lets it in, the admin routes refuse it only for its scopes.
        let expected = if path == "/ping" {
            StatusCode::OK
        } else {
            StatusCode::FORBIDDEN
        };
        assert_eq!(demo.get(path, Some(&key)).await.status, expected, "{path}");
    }
    // Requests that need no key are not refused.
    assert_eq!(demo.get("/health", None).await.status, StatusCode::OK);
}

/// L3 (red team, 2026-12-07): the admin routes' guard counted a key's limits apart from
/// the API's, so an admin key limited to 2 an hour got 2 on the API and 2 more from the
/// admin routes (10 on three instances). In the demo they share one budget.
#[tokio::test]
async fn l3_a_key_limited_to_3_an_hour_gets_3_answers_in_all_across_the_api_and_admin_routes() {
    let demo = Demo::start().await;
    let created = demo
        .admin(
            Method::POST,
            "/keys",
            Body::Json(json!({
                "name": "limited admin",
                "scopes": ["admin:keys", "reports:read"],
                "rate_limit": {"requests": 3, "per_secs": 3600},
            })),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let key = created.json()["key"].as_str().unwrap().to_owned();
    let mut answers = Vec::new();
    for _ in 0..4 {
        for path in ["/ping", "/admin/keys", "/reports", "/admin/scopes"] {
            let answer = demo.get(path, Some(&key)).await;
            answers.push((path, answer.status.as_u16()));
        }
    }
    let admitted = answers.iter().filter(|(_, status)| *status == 200).count();
    assert_eq!(admitted, 3, "{answers:?}");
    assert!(
        answers
            .iter()
            .all(|(_, status)| [200, 429].contains(status)),
        "{answers:?}"
    );
}

// The demo binary from outside: the limits of a server that faces the internet
// (`examples/demo/serve.rs`), through its flags, with real sockets.

#[path = "../examples/demo/client_slots.rs"]
mod client_slots;
#[path = "common/demo_client.rs"]
mod demo_client;
#[path = "common/demo_process.rs"]
mod demo_process;
#[path = "../examples/demo/serve.rs"]
mod serve;

use demo_client::{NEVER, get_health, http1, read_until_closed};
use demo_process::{DemoProcess, GUARD};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// `GET /health` on a new connection answers `ok`: the server is well.
async fn assert_healthy(addr: SocketAddr) {
    let (mut sender, _connection) = http1(addr).await;
    let answer = Answer::read(sender.send_request(get_health(addr)).await.unwrap()).await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (StatusCode::OK, "ok")
    );
}

#[tokio::test]
async fn a_half_sent_request_is_closed_after_the_header_read_timeout() {
    let demo = DemoProcess::start(&[
        "--header-read-timeout-secs",
        "1",
        "--idle-timeout-secs",
        NEVER,
        "--request-timeout-secs",
        NEVER,
    ])
    .await;

    // Headers begun and never finished: closed, unanswered.
    let mut half_sent = TcpStream::connect(demo.addr).await.unwrap();
    half_sent
        .write_all(b"GET /health HTTP/1.1\r\nHost: demo\r\nX-Slow: ")
        .await
        .unwrap();
    assert_eq!(read_until_closed(&mut half_sent).await, "");

    // A connection that never sends a byte: the same.
    let mut silent = TcpStream::connect(demo.addr).await.unwrap();
    assert_eq!(read_until_closed(&mut silent).await, "");

    assert_healthy(demo.addr).await;
    demo.stop().await;
}

#[tokio::test]
async fn an_idle_connection_is_closed_after_the_idle_timeout() {
    let demo = DemoProcess::start(&[
        "--idle-timeout-secs",
        "1",
        "--header-read-timeout-secs",
        NEVER,
    ])
    .await;

    // HTTP/1.1 keep-alive: one request, then nothing. The sender stays alive, so it is
    // the server that closes the connection.
    let (mut sender, connection) = http1(demo.addr).await;
    let answer = Answer::read(sender.send_request(get_health(demo.addr)).await.unwrap()).await;
    assert_eq!(answer.status, StatusCode::OK);
    tokio::time::timeout(GUARD, connection)
        .await
        .expect("the server closes an idle HTTP/1.1 connection")
        .unwrap()
        .unwrap();
    drop(sender);

    // HTTP/2 (prior knowledge), which hyper's header-read timer does not cover.
    let stream = TcpStream::connect(demo.addr).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    let connection = tokio::spawn(connection);
    let answer = Answer::read(sender.send_request(get_health(demo.addr)).await.unwrap()).await;
    assert_eq!(answer.status, StatusCode::OK);
    tokio::time::timeout(GUARD, connection)
        .await
        .expect("the server closes an idle HTTP/2 connection")
        .unwrap()
        .unwrap();
    drop(sender);

    demo.stop().await;
}

#[tokio::test]
async fn past_the_connection_cap_a_connection_waits_until_another_closes() {
    let demo = DemoProcess::start(&[
        "--max-connections",
        "2",
        "--idle-timeout-secs",
        NEVER,
        "--header-read-timeout-secs",
        NEVER,
    ])
    .await;
    let (mut first, first_connection) = http1(demo.addr).await;
    let (mut second, _second_connection) = http1(demo.addr).await;
    for sender in [&mut first, &mut second] {
        let answer = sender.send_request(get_health(demo.addr)).await.unwrap();
        assert_eq!(answer.status(), StatusCode::OK);
    }

    // The kernel completes the third connection, but the demo does not accept it.
    let (mut third, _third_connection) = http1(demo.addr).await;
    let mut answer = std::pin::pin!(third.send_request(get_health(demo.addr)));
    assert!(
        tokio::time::timeout(Duration::from_millis(500), &mut answer)
            .await
            .is_err(),
        "a third connection was served past the cap of 2"
    );

    // One closes: the third is accepted and served.
    first_connection.abort();
    drop(first);
    let answer = tokio::time::timeout(GUARD, answer)
        .await
        .expect("the third connection is served once another closes")
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    demo.stop().await;
}

/// Starts `POST /admin/keys` with a body of `length` bytes to come, asking to continue,
/// and returns once the demo answers `100 Continue`: the request is in flight and its
/// handler is reading the body.
async fn begin_create(demo: &DemoProcess, length: usize) -> TcpStream {
    let mut stream = TcpStream::connect(demo.addr).await.unwrap();
    let head = format!(
        "POST /admin/keys HTTP/1.1\r\nHost: demo\r\nAuthorization: ApiKey-v2 {}\r\n\
         Content-Type: application/json\r\nContent-Length: {length}\r\n\
         Expect: 100-continue\r\n\r\n",
        demo.admin_key
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut received = Vec::new();
    let continued = tokio::time::timeout(GUARD, async {
        while !received.ends_with(b"\r\n\r\n") {
            let mut byte = [0];
            assert_eq!(stream.read(&mut byte).await.unwrap(), 1, "closed early");
            received.push(byte[0]);
        }
    })
    .await;
    assert!(continued.is_ok(), "the demo never read the body");
    assert_eq!(received, b"HTTP/1.1 100 Continue\r\n\r\n");
    stream
}

#[tokio::test]
async fn a_request_body_that_outlasts_the_request_timeout_is_answered_408() {
    let demo = DemoProcess::start(&["--request-timeout-secs", "1"]).await;
    let mut stream = begin_create(&demo, 100).await;
    stream.write_all(b"{\"name\": ").await.unwrap();
    let answer = read_until_closed(&mut stream).await;
    assert!(
        answer.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
        "{answer}"
    );
    assert_healthy(demo.addr).await;
    demo.stop().await;
}

#[tokio::test]
async fn stopping_lets_a_request_in_flight_finish_and_refuses_new_connections() {
    let demo = DemoProcess::start(&["--request-timeout-secs", NEVER]).await;
    let body = r#"{"name": "created while stopping", "scopes": []}"#;
    let mut stream = begin_create(&demo, body.len()).await;

    demo.terminate();
    demo.wait_for_log("SIGTERM received").await;
    // The listener closes: new connections are refused.
    let refused = tokio::time::timeout(GUARD, async {
        while TcpStream::connect(demo.addr).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(refused.is_ok(), "the demo kept accepting connections");

    stream.write_all(body.as_bytes()).await.unwrap();
    let answer = read_until_closed(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 201 Created\r\n"), "{answer}");
    assert!(answer.contains("created while stopping"), "{answer}");

    let log = demo.log();
    let status = demo.wait().await;
    assert!(status.success(), "{status}: {log}");
}

#[tokio::test]
async fn the_admin_key_is_printed_once_on_stdout() {
    let demo = DemoProcess::start(&[]).await;
    assert_eq!(demo.stdout(), format!("admin key: {}\n", demo.admin_key));
    assert!(!demo.log().contains(&demo.admin_key));
    demo.stop().await;
}

#[tokio::test]
async fn each_request_carries_its_peer_address_as_connect_info() {
    use axum::extract::ConnectInfo;
    let router = axum::Router::new().route(
        "/peer",
        axum::routing::get(
            |ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.to_string() },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let limits = serve::Limits {
        header_read_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(60),
        request_timeout: Duration::from_secs(30),
        max_connections: 8,
        max_connections_per_client: 8,
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve::serve(
        listener,
        router,
        limits,
        tower_apikey::client_addr::TrustedProxies::none(),
        async {
            let _ = stopped.await;
        },
    ));

    for _ in 0..2 {
        let stream = TcpStream::connect(addr).await.unwrap();
        let local = stream.local_addr().unwrap();
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(connection);
        let request = Request::get(format!("http://{addr}/peer"))
            .header("host", addr.to_string())
            .body(Full::<Bytes>::default())
            .unwrap();
        let answer = Answer::read(sender.send_request(request).await.unwrap()).await;
        assert_eq!(answer.body, local.to_string());
    }

    stop.send(()).unwrap();
    tokio::time::timeout(GUARD, server).await.unwrap().unwrap();
}

/// DESIGN §7 and §14: the demo's admin key is an operator's; with `"tenant"` and
/// `admin:keys` it makes a tenant's administrator, who sees and manages that tenant
/// alone; `/whoami` names the tenant. The README's two-tenant walkthrough, as a test.
#[tokio::test]
async fn the_operator_makes_tenant_administrators_who_see_their_tenant_alone() {
    let demo = Demo::start().await;
    let operator = demo.get("/whoami", Some(&demo.admin)).await.json();
    assert_eq!(
        operator["tenant"],
        Value::Null,
        "the demo's admin key is an operator"
    );

    let mut admins = Vec::new();
    for tenant in ["acme", "globex"] {
        let answer = demo
            .admin(
                Method::POST,
                "/keys",
                Body::Json(json!({
                    "name": format!("{tenant} admin"),
                    "scopes": ["admin:keys", "reports:read"],
                    "tenant": tenant,
                })),
            )
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
        let created = answer.json();
        assert_eq!(created["tenant"], tenant);
        admins.push((
            created["key"].as_str().unwrap().to_owned(),
            created["id"].as_str().unwrap().to_owned(),
        ));
    }
    let [(acme, acme_id), (globex, globex_id)] = <[_; 2]>::try_from(admins).unwrap();
    let whoami = demo.get("/whoami", Some(&acme)).await;
    assert_eq!(whoami.status, StatusCode::OK);
    assert_eq!(whoami.json()["tenant"], "acme");

    // Acme's administrator creates in acme, whatever it leaves out.
    let made = demo
        .send(
            Method::POST,
            "/admin/keys",
            Some(&acme),
            Body::Json(json!({"name": "acme sync", "scopes": ["reports:read"]})),
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    assert_eq!(made.json()["tenant"], "acme");
    let sync_id = made.json()["id"].as_str().unwrap().to_owned();

    // It lists acme's keys only, and another tenant's key is not found, as an unknown id.
    let listed = demo
        .send(Method::GET, "/admin/keys", Some(&acme), Body::None)
        .await;
    assert_eq!(listed.status, StatusCode::OK);
    let mut ids: Vec<String> = listed
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    let mut expected = vec![acme_id.clone(), sync_id];
    expected.sort();
    assert_eq!(ids, expected);
    let other = demo
        .send(
            Method::GET,
            &format!("/admin/keys/{globex_id}"),
            Some(&acme),
            Body::None,
        )
        .await;
    let unknown = demo
        .send(
            Method::GET,
            "/admin/keys/0000000000000000",
            Some(&acme),
            Body::None,
        )
        .await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
    assert_eq!(other.body, unknown.body, "byte for byte an unknown id");

    // The operator sees both tenants, and narrows to one with `?tenant=`.
    assert_eq!(demo.list().await.len(), 4);
    let globex_only = demo
        .admin(Method::GET, "/keys?tenant=globex", Body::None)
        .await;
    assert_eq!(globex_only.status, StatusCode::OK);
    let globex_keys = globex_only.json();
    assert_eq!(globex_keys.as_array().unwrap().len(), 1);
    assert_eq!(globex_keys[0]["id"], globex_id.as_str());
    assert_eq!(
        demo.get("/whoami", Some(&globex)).await.json()["tenant"],
        "globex"
    );
}
