//! Who may do what, over HTTP: the admin router behind a real server on loopback, called
//! by a real client with admin keys of different powers. No key grants more than it
//! holds, the catalogue bounds what exists, rotation never revives a key, records name
//! their actors, and hostile bodies are refused without a large answer.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::net::SocketAddr;
use std::time::{Duration, UNIX_EPOCH};

use common::Answer;
use http::header::CONTENT_TYPE;
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use tower_apikey::manager::ScopeCatalogue;
use tower_apikey::record::{AllowedIps, Quota, QuotaPeriod, RateLimit};
use tower_apikey::testing::ManualClock;
use tower_apikey::{InMemoryKeyStore, KeyManager, NewKey};
use tower_apikey_admin::AdminRouter;

/// 2026-05-01T12:00:00Z.
const START_SECS: u64 = 1_777_636_800;

const CATALOGUE: [(&str, &str); 4] = [
    ("reports:read", "Read reports"),
    ("reports:write", "Create reports"),
    ("keys:rotate-self", "Rotate this key itself"),
    ("admin:keys", "Manage API keys"),
];

struct Server {
    addr: SocketAddr,
    client: Client<HttpConnector, Full<Bytes>>,
    clock: ManualClock,
    /// The application's own manager: it acts unrestricted, and without the catalogue.
    app: KeyManager<InMemoryKeyStore>,
    store: InMemoryKeyStore,
}

/// An admin key made by the application: its plaintext and id.
struct Admin {
    key: String,
    id: String,
}

impl Server {
    async fn start() -> Self {
        let store = InMemoryKeyStore::new();
        let clock = ManualClock::new(UNIX_EPOCH + Duration::from_secs(START_SECS));
        // The application mints keys outside the catalogue; the router's manager, on the
        // same store and clock, declares it.
        let app = KeyManager::builder(store.clone())
            .clock(clock.clone())
            .build();
        let declared = KeyManager::builder(store.clone())
            .clock(clock.clone())
            .catalogue(ScopeCatalogue::new(CATALOGUE).unwrap())
            .build();
        let router = AdminRouter::new(declared).into_router();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // With each connection's peer address: keys with an allowlist need it.
        tokio::spawn(async move {
            let app = router.into_make_service_with_connect_info::<SocketAddr>();
            axum::serve(listener, app).await.unwrap()
        });
        Self {
            addr,
            client: Client::builder(TokioExecutor::new()).build_http(),
            clock,
            app,
            store,
        }
    }

    /// A key the application makes, holding `scopes` (no catalogue applies).
    async fn admin(&self, name: &str, scopes: &[&str]) -> Admin {
        let created = self
            .app
            .create(NewKey::new(name, scopes.iter().copied()))
            .await
            .unwrap();
        Admin {
            key: created.key.expose_secret().to_owned(),
            id: created.record.id().to_string(),
        }
    }

    /// A key the application makes, holding `scopes`, with the limits `limit` sets.
    async fn restricted_admin(
        &self,
        name: &str,
        scopes: &[&str],
        limit: impl FnOnce(NewKey) -> NewKey,
    ) -> Admin {
        let created = self
            .app
            .create(limit(NewKey::new(name, scopes.iter().copied())))
            .await
            .unwrap();
        Admin {
            key: created.key.expose_secret().to_owned(),
            id: created.record.id().to_string(),
        }
    }

    async fn patch(&self, admin: &Admin, id: &str, body: Value) -> Answer {
        self.send(
            Method::PATCH,
            &format!("/keys/{id}"),
            &admin.key,
            Some(body.to_string().into_bytes()),
        )
        .await
    }

    async fn send(&self, method: Method, path: &str, key: &str, body: Option<Vec<u8>>) -> Answer {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr))
            .header("authorization", format!("ApiKey-v2 {key}"));
        if body.is_some() {
            request = request.header(CONTENT_TYPE, "application/json");
        }
        let body = Full::new(Bytes::from(body.unwrap_or_default()));
        let response = self
            .client
            .request(request.body(body).unwrap())
            .await
            .unwrap();
        Answer::read(response).await
    }

    async fn create(&self, admin: &Admin, body: Value) -> Answer {
        self.send(
            Method::POST,
            "/keys",
            &admin.key,
            Some(body.to_string().into_bytes()),
        )
        .await
    }

    async fn get(&self, admin: &Admin, path: &str) -> Value {
        let answer = self.send(Method::GET, path, &admin.key, None).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        json_of(&answer)
    }
}

fn json_of(answer: &Answer) -> Value {
    serde_json::from_str(&answer.body).unwrap_or_else(|e| panic!("{e}: {}", answer.body))
}

/// A 403 of the ceiling: a problem document naming `scopes`.
#[track_caller]
fn assert_not_grantable(answer: &Answer, scopes: &[&str]) {
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.body);
    assert_eq!(answer.headers[CONTENT_TYPE], "application/problem+json");
    let problem = json_of(answer);
    assert_eq!(problem["status"], 403);
    assert_eq!(problem["not_grantable"], json!(scopes), "{problem}");
    let detail = problem["detail"].as_str().unwrap();
    for scope in scopes {
        assert!(detail.contains(scope), "{detail}");
    }
}

/// A 403 of the restrictions' ceiling: a problem document naming the fields `too_loose`
/// and, in its detail, each restriction's loosest value.
#[track_caller]
fn assert_too_loose(answer: &Answer, fields: &[&str], detail_says: &[&str]) {
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.body);
    assert_eq!(answer.headers[CONTENT_TYPE], "application/problem+json");
    let problem = json_of(answer);
    assert_eq!(problem["status"], 403);
    assert_eq!(problem["too_loose"], json!(fields), "{problem}");
    let detail = problem["detail"].as_str().unwrap();
    for says in detail_says {
        assert!(detail.contains(says), "{says:?} not in {detail:?}");
    }
}

#[tokio::test]
async fn a_key_with_admin_keys_alone_cannot_mint_reports_read() {
    let server = Server::start().await;
    let admin = server.admin("keys only", &["admin:keys"]).await;
    let answer = server
        .create(
            &admin,
            json!({"name": "export", "scopes": ["reports:read"]}),
        )
        .await;
    assert_not_grantable(&answer, &["reports:read"]);
    assert_eq!(server.store.len(), 1, "nothing was stored");
    // What it holds, it may grant; and a key that only authenticates.
    for scopes in [json!(["admin:keys"]), json!([])] {
        let answer = server
            .create(&admin, json!({"name": "peer", "scopes": scopes}))
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
        assert_eq!(json_of(&answer)["created_by"], admin.id.as_str());
    }
}

#[tokio::test]
async fn a_key_cannot_mint_admin_keys_plus_more_than_it_holds() {
    let server = Server::start().await;
    let admin = server
        .admin("reader admin", &["admin:keys", "reports:read"])
        .await;
    let answer = server
        .create(
            &admin,
            json!({"name": "escalate", "scopes": ["admin:keys", "reports:read", "reports:write", "keys:rotate-self"]}),
        )
        .await;
    assert_not_grantable(&answer, &["keys:rotate-self", "reports:write"]);
    assert_eq!(server.store.len(), 1, "nothing was stored");
    // A wildcard it holds grants what is under it.
    let wide = server
        .admin("reports admin", &["admin:keys", "reports:*"])
        .await;
    let answer = server
        .create(
            &wide,
            json!({"name": "writer", "scopes": ["reports:read", "reports:write"]}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
}

#[tokio::test]
async fn a_key_cannot_copy_or_cut_off_a_key_more_powerful_than_itself() {
    let server = Server::start().await;
    let root = server
        .admin("root", &["admin:keys", "reports:read", "reports:write"])
        .await;
    let junior = server
        .admin("junior", &["admin:keys", "reports:read"])
        .await;
    // Rotating the root key would hand the junior a copy of its power.
    let rotate = server
        .send(
            Method::POST,
            &format!("/keys/{}/rotate", root.id),
            &junior.key,
            None,
        )
        .await;
    assert_not_grantable(&rotate, &["reports:write"]);
    // Revoking it would lock the administrators above the junior out.
    let revoke = server
        .send(
            Method::DELETE,
            &format!("/keys/{}", root.id),
            &junior.key,
            None,
        )
        .await;
    assert_not_grantable(&revoke, &["reports:write"]);
    let stored = server.get(&root, &format!("/keys/{}", root.id)).await;
    assert_eq!(stored["revoked_at"], Value::Null);
    assert_eq!(server.store.len(), 2, "nothing was rotated");
    // Its own key, and keys within its scopes, it may rotate and revoke.
    let rotated = server
        .send(
            Method::POST,
            &format!("/keys/{}/rotate", junior.id),
            &junior.key,
            None,
        )
        .await;
    assert_eq!(rotated.status, StatusCode::CREATED, "{}", rotated.body);
    assert_eq!(json_of(&rotated)["created_by"], junior.id.as_str());
}

#[tokio::test]
async fn rotating_an_expired_ended_or_revoked_key_is_409_and_stores_nothing() {
    let server = Server::start().await;
    let admin = server
        .admin("root", &["admin:keys", "reports:read", "reports:write"])
        .await;
    let after = |secs: u64| {
        time::OffsetDateTime::from(UNIX_EPOCH + Duration::from_secs(START_SECS + secs))
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let short = json_of(
        &server
            .create(
                &admin,
                json!({"name": "one hour", "scopes": ["reports:read"], "expires_at": after(3_600)}),
            )
            .await,
    );
    let ending = json_of(
        &server
            .create(&admin, json!({"name": "ending", "scopes": []}))
            .await,
    );
    let rotate = |id: &str| format!("/keys/{id}/rotate");
    let heir = server
        .send(
            Method::POST,
            &rotate(ending["id"].as_str().unwrap()),
            &admin.key,
            Some(br#"{"overlap_secs": 60}"#.to_vec()),
        )
        .await;
    assert_eq!(heir.status, StatusCode::CREATED);
    server.clock.advance(Duration::from_secs(3_600));
    let before = server.store.len();
    for (id, said) in [(&short["id"], "expired"), (&ending["id"], "ended")] {
        let answer = server
            .send(
                Method::POST,
                &rotate(id.as_str().unwrap()),
                &admin.key,
                None,
            )
            .await;
        assert_eq!(answer.status, StatusCode::CONFLICT, "{}", answer.body);
        let problem = json_of(&answer);
        assert!(
            problem["detail"].as_str().unwrap().contains(said),
            "{problem}"
        );
    }
    assert_eq!(
        server.store.len(),
        before,
        "a refused rotation stores nothing"
    );
}

#[tokio::test]
async fn records_name_the_key_that_created_and_revoked_them() {
    let server = Server::start().await;
    let admin = server.admin("root", &["admin:keys", "reports:read"]).await;
    let created = json_of(
        &server
            .create(
                &admin,
                json!({"name": "export", "scopes": ["reports:read"]}),
            )
            .await,
    );
    assert_eq!(created["created_by"], admin.id.as_str());
    assert_eq!(created["revoked_by"], Value::Null);
    let id = created["id"].as_str().unwrap();
    // A rotation that revokes at once: the old key is revoked by the rotating key.
    let other = server.admin("other", &["admin:keys", "reports:read"]).await;
    let heir = server
        .send(
            Method::POST,
            &format!("/keys/{id}/rotate"),
            &other.key,
            Some(br#"{"overlap_secs": 0}"#.to_vec()),
        )
        .await;
    assert_eq!(heir.status, StatusCode::CREATED);
    let heir = json_of(&heir);
    assert_eq!(heir["created_by"], other.id.as_str());
    let old = server.get(&admin, &format!("/keys/{id}")).await;
    assert_eq!(old["revoked_by"], other.id.as_str());
    assert_eq!(old["created_by"], admin.id.as_str());
    // A plain revocation; revoking again keeps the first actor.
    let heir_id = heir["id"].as_str().unwrap();
    for key in [&admin, &other] {
        let answer = server
            .send(Method::DELETE, &format!("/keys/{heir_id}"), &key.key, None)
            .await;
        assert_eq!(answer.status, StatusCode::OK);
    }
    let revoked = server.get(&admin, &format!("/keys/{heir_id}")).await;
    assert_eq!(revoked["revoked_by"], admin.id.as_str());
    // Keys the application made name nobody.
    let root = server.get(&admin, &format!("/keys/{}", admin.id)).await;
    assert_eq!(root["created_by"], Value::Null);
}

#[tokio::test]
async fn the_catalogue_bounds_create_and_rotation_keeps_older_scopes() {
    let server = Server::start().await;
    let admin = server
        .admin("root", &["admin:keys", "reports:*", "legacy:sync"])
        .await;
    // `reports:*` is not declared, though the admin holds it: only declared scopes.
    let answer = server
        .create(
            &admin,
            json!({"name": "n", "scopes": ["reports:*", "legacy:sync", "reports:read"]}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    let problem = json_of(&answer);
    assert_eq!(problem["field"], "scopes");
    let detail = problem["errors"][0]["detail"].as_str().unwrap();
    assert!(
        detail.contains("legacy:sync reports:*") && detail.contains("GET /scopes"),
        "{detail}"
    );
    // A key from before the catalogue rotates with its scopes as they are.
    let legacy = server.admin("legacy", &["legacy:sync"]).await;
    let rotated = server
        .send(
            Method::POST,
            &format!("/keys/{}/rotate", legacy.id),
            &admin.key,
            None,
        )
        .await;
    assert_eq!(rotated.status, StatusCode::CREATED, "{}", rotated.body);
    assert_eq!(json_of(&rotated)["scopes"], json!(["legacy:sync"]));

    // GET /scopes: the catalogue, what this caller may grant, and who it is.
    let scopes = server.get(&admin, "/scopes").await;
    let grantable: Vec<(&str, bool)> = scopes["catalogue"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["scope"].as_str().unwrap(),
                e["grantable"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        grantable,
        [
            ("admin:keys", true),
            ("keys:rotate-self", false),
            ("reports:read", true),
            ("reports:write", true),
        ]
    );
    assert_eq!(scopes["catalogue"][0]["description"], "Manage API keys");
    assert_eq!(scopes["actor"]["name"], admin.id.as_str());
}

#[tokio::test]
async fn names_with_invisible_or_reordering_characters_are_refused() {
    let server = Server::start().await;
    let admin = server.admin("root", &["admin:keys"]).await;
    for name in [
        "billing\u{202E}txt.exe",
        "prod\u{200B}",
        "a\u{2066}b",
        "line\u{2028}two",
    ] {
        let answer = server
            .create(&admin, json!({"name": name, "scopes": []}))
            .await;
        assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{name:?}");
        let problem = json_of(&answer);
        assert_eq!(problem["field"], "name");
        assert!(
            problem["errors"][0]["detail"]
                .as_str()
                .unwrap()
                .contains("invisible"),
            "{problem}"
        );
    }
    assert_eq!(server.store.len(), 1);
}

#[tokio::test]
async fn a_body_of_unknown_fields_gets_a_short_answer() {
    let server = Server::start().await;
    let admin = server.admin("root", &["admin:keys"]).await;
    // As large a body as the router reads, all unknown fields with long names.
    let mut body = String::from(r#"{"name":"n","scopes":[]"#);
    let mut n = 0;
    while body.len() < 16 * 1024 - 100 {
        body.push_str(&format!(r#","{n:04}{}":0"#, "u".repeat(60)));
        n += 1;
    }
    body.push('}');
    let answer = server
        .send(Method::POST, "/keys", &admin.key, Some(body.into_bytes()))
        .await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    let problem = json_of(&answer);
    let errors = problem["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 20, "at most 20 unknown fields are listed");
    assert!(
        errors[19]["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("{} more", n - 20))
    );
    assert!(answer.body.len() < 8 * 1024, "{} bytes", answer.body.len());
}

#[tokio::test]
async fn a_field_given_twice_is_refused_and_changes_nothing() {
    let server = Server::start().await;
    let admin = server.admin("root", &["admin:keys"]).await;
    let key = server.admin("leaked", &[]).await;
    // Read as "revoke at once" or as "keep": either would be a guess.
    let answer = server
        .send(
            Method::POST,
            &format!("/keys/{}/rotate", key.id),
            &admin.key,
            Some(br#"{"overlap_secs":0,"overlap_secs":null}"#.to_vec()),
        )
        .await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    let problem = json_of(&answer);
    assert_eq!(problem["field"], "overlap_secs");
    assert!(
        problem["errors"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("more than once")
    );
    assert_eq!(server.store.len(), 2, "nothing was rotated");
    let create = server
        .send(
            Method::POST,
            "/keys",
            &admin.key,
            Some(br#"{"name":"a","scopes":[],"name":"b"}"#.to_vec()),
        )
        .await;
    assert_eq!(create.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(json_of(&create)["field"], "name");
    assert_eq!(server.store.len(), 2);
}

/// The PoC's admin key: limited to 10 requests an hour and 100 a day.
fn rate_and_quota(new: NewKey) -> NewKey {
    new.rate_limit(RateLimit::new(10, 3600).unwrap())
        .quota(Quota::new(100, QuotaPeriod::Day).unwrap())
}

/// M2 (red team, 2026-12-07): a rate-limited admin key PATCHed its own limits away
/// (`{"rate_limit": null, "quota": null}` → 200). Now it may tighten them, never loosen.
#[tokio::test]
async fn m2_a_limited_key_cannot_patch_its_own_limits_away_but_may_tighten_them() {
    let server = Server::start().await;
    let limited = server
        .restricted_admin(
            "limited admin",
            &["admin:keys", "reports:read"],
            rate_and_quota,
        )
        .await;
    let id = limited.id.clone();
    let refused = server
        .patch(&limited, &id, json!({"rate_limit": null, "quota": null}))
        .await;
    assert_too_loose(
        &refused,
        &["rate_limit", "quota"],
        &[
            "your own key",
            "at most 10 requests per 3600 s",
            "per day of at most 100",
        ],
    );
    // Looser in one way only is looser: a higher burst at a slower rate, a month of the
    // same count, or a bigger day.
    for body in [
        json!({"rate_limit": {"requests": 20, "per_secs": 86400}}),
        json!({"quota": {"requests": 100, "per": "month"}}),
        json!({"quota": {"requests": 101, "per": "day"}}),
    ] {
        let answer = server.patch(&limited, &id, body.clone()).await;
        assert_eq!(
            answer.status,
            StatusCode::FORBIDDEN,
            "{body}: {}",
            answer.body
        );
    }
    let stored = server.get(&limited, &format!("/keys/{id}")).await;
    assert_eq!(
        stored["rate_limit"],
        json!({"requests": 10, "per_secs": 3600})
    );
    assert_eq!(stored["quota"], json!({"requests": 100, "per": "day"}));
    // Tightening, adding an allowlist and renaming stay allowed.
    let tightened = server
        .patch(
            &limited,
            &id,
            json!({"name": "tighter", "rate_limit": {"requests": 9, "per_secs": 3600},
                   "quota": {"requests": 50, "per": "day"}, "allowed_ips": ["127.0.0.0/8"]}),
        )
        .await;
    assert_eq!(tightened.status, StatusCode::OK, "{}", tightened.body);
    let record = json_of(&tightened);
    assert_eq!(
        record["rate_limit"],
        json!({"requests": 9, "per_secs": 3600})
    );
    assert_eq!(record["allowed_ips"], json!(["127.0.0.0/8"]));
    // Now tighter, it may not go back to what it was.
    let back = server
        .patch(
            &limited,
            &id,
            json!({"rate_limit": {"requests": 10, "per_secs": 3600}}),
        )
        .await;
    assert_too_loose(&back, &["rate_limit"], &["at most 9 requests per 3600 s"]);
    // The application (unrestricted) still may.
    let lifted = server
        .app
        .update(
            &id.parse().unwrap(),
            tower_apikey::store::KeyUpdate::new().rate_limit(None),
        )
        .await
        .unwrap();
    assert_eq!(lifted.rate_limit(), None);
}

/// M2: an allowlisted admin key (127.0.0.1 only, 10 an hour) minted a twin with the
/// same scopes and no restriction, usable from anywhere. Now its keys are at least as
/// restricted as itself.
#[tokio::test]
async fn m2_an_allowlisted_key_cannot_mint_an_unrestricted_twin_but_may_mint_a_narrower_key() {
    let server = Server::start().await;
    let office = server
        .restricted_admin("office only", &["admin:keys", "reports:read"], |new| {
            new.rate_limit(RateLimit::new(10, 3600).unwrap())
                .allowed_ips(AllowedIps::new(["127.0.0.1/32"]).unwrap())
        })
        .await;
    let before = server.store.len();
    let twin = server
        .create(
            &office,
            json!({"name": "twin", "scopes": ["admin:keys", "reports:read"]}),
        )
        .await;
    assert_too_loose(
        &twin,
        &["rate_limit", "allowed_ips"],
        &["create a key less restricted", "inside one of 127.0.0.1/32"],
    );
    // A wider allowlist, or the right allowlist without the rate limit: refused too.
    for body in [
        json!({"name": "wide", "scopes": [], "rate_limit": {"requests": 1, "per_secs": 3600},
               "allowed_ips": ["127.0.0.1", "192.0.2.1"]}),
        json!({"name": "unlimited", "scopes": [], "allowed_ips": ["127.0.0.1"]}),
    ] {
        let answer = server.create(&office, body.clone()).await;
        assert_eq!(
            answer.status,
            StatusCode::FORBIDDEN,
            "{body}: {}",
            answer.body
        );
    }
    assert_eq!(server.store.len(), before, "nothing was stored");
    // Its own restrictions, or tighter ones, it may give.
    for body in [
        json!({"name": "same", "scopes": ["reports:read"],
               "rate_limit": {"requests": 10, "per_secs": 3600}, "allowed_ips": ["127.0.0.1"]}),
        json!({"name": "tighter", "scopes": ["reports:read"],
               "rate_limit": {"requests": 2, "per_secs": 720},
               "quota": {"requests": 5, "per": "month"}, "allowed_ips": ["::ffff:127.0.0.1"]}),
    ] {
        let answer = server.create(&office, body.clone()).await;
        assert_eq!(
            answer.status,
            StatusCode::CREATED,
            "{body}: {}",
            answer.body
        );
    }
    // Nor may it PATCH its own allowlist and rate away.
    let own = server
        .patch(
            &office,
            &office.id,
            json!({"allowed_ips": null, "rate_limit": null}),
        )
        .await;
    assert_too_loose(&own, &["rate_limit", "allowed_ips"], &["your own key"]);
}

/// M2, the rest of the class: a restricted key may not rotate a looser key (the
/// successor copies its limits, and the actor gets its plaintext), nor leave another
/// key looser than itself; rotating itself, or a key within its restrictions, keeps
/// the restrictions and is allowed.
#[tokio::test]
async fn m2_no_rotation_or_change_by_a_restricted_key_leaves_a_key_looser_than_it() {
    let server = Server::start().await;
    let limited = server
        .restricted_admin(
            "limited admin",
            &["admin:keys", "reports:read", "keys:rotate-self"],
            rate_and_quota,
        )
        .await;
    // A key the application made, unrestricted: rotating it would hand the limited key
    // an unrestricted copy.
    let loose = server.admin("loose", &["reports:read"]).await;
    let before = server.store.len();
    let rotate = server
        .send(
            Method::POST,
            &format!("/keys/{}/rotate", loose.id),
            &limited.key,
            None,
        )
        .await;
    assert_too_loose(
        &rotate,
        &["rate_limit", "quota"],
        &[&format!("rotate key {}", loose.id), "copy its limits"],
    );
    assert_eq!(server.store.len(), before, "nothing was rotated");
    // Nor may it touch that key without bringing it within its own restrictions.
    let rename = server
        .patch(&limited, &loose.id, json!({"name": "renamed"}))
        .await;
    assert_too_loose(
        &rename,
        &["rate_limit", "quota"],
        &["less restricted than your own"],
    );
    let within = server
        .patch(
            &limited,
            &loose.id,
            json!({"rate_limit": {"requests": 1, "per_secs": 360}, "quota": {"requests": 100, "per": "day"}}),
        )
        .await;
    assert_eq!(within.status, StatusCode::OK, "{}", within.body);
    // A key it made within its restrictions: it may not loosen it, and may rotate it.
    let made = server
        .create(
            &limited,
            json!({"name": "made", "scopes": ["reports:read"],
                   "rate_limit": {"requests": 5, "per_secs": 3600},
                   "quota": {"requests": 10, "per": "day"}}),
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    let made_id = json_of(&made)["id"].as_str().unwrap().to_owned();
    let loosen = server
        .patch(&limited, &made_id, json!({"quota": null}))
        .await;
    assert_too_loose(&loosen, &["quota"], &[&format!("key {made_id}")]);
    let rotated = server
        .send(
            Method::POST,
            &format!("/keys/{made_id}/rotate"),
            &limited.key,
            None,
        )
        .await;
    assert_eq!(rotated.status, StatusCode::CREATED, "{}", rotated.body);
    assert_eq!(
        json_of(&rotated)["quota"],
        json!({"requests": 10, "per": "day"})
    );
    // Rotating itself (as an admin, or through /self/rotate) keeps its own limits.
    let itself = server
        .send(
            Method::POST,
            "/self/rotate",
            &limited.key,
            Some(json!({"overlap_secs": null}).to_string().into_bytes()),
        )
        .await;
    assert_eq!(itself.status, StatusCode::CREATED, "{}", itself.body);
    assert_eq!(
        json_of(&itself)["rate_limit"],
        json!({"requests": 10, "per_secs": 3600})
    );
}
