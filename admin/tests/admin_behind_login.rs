//! `examples/admin_behind_login.rs` behind a real server on loopback, driven by a real
//! HTTP client that signs in with a password and carries the session cookie: key
//! management acts for the signed-in person, within what that person may grant, and
//! refuses requests with no person or from another site.

#[path = "../../tests/common/mod.rs"]
mod common;
#[allow(dead_code)]
#[path = "../examples/admin_behind_login.rs"]
mod example;

use std::net::SocketAddr;

use common::Answer;
use http::header::{CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use tower_apikey::InMemoryKeyStore;

struct Server {
    addr: SocketAddr,
    client: Client<HttpConnector, Full<Bytes>>,
    passwords: Vec<(String, String)>,
    store: InMemoryKeyStore,
}

/// What a request carries besides its method and path.
#[derive(Default)]
struct Extra<'a> {
    cookie: Option<&'a str>,
    json: Option<Value>,
    form: Option<String>,
    headers: &'a [(&'a str, &'a str)],
}

impl Server {
    async fn start() -> Self {
        let store = InMemoryKeyStore::new();
        let app = example::build(store.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = app.router;
        tokio::spawn(async move {
            let service = router.into_make_service_with_connect_info::<SocketAddr>();
            axum::serve(listener, service).await.unwrap()
        });
        Self {
            addr,
            client: Client::builder(TokioExecutor::new()).build_http(),
            passwords: app.passwords,
            store,
        }
    }

    async fn send(&self, method: Method, path: &str, extra: Extra<'_>) -> Answer {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr));
        if let Some(cookie) = extra.cookie {
            request = request.header(COOKIE, cookie);
        }
        for (name, value) in extra.headers {
            request = request.header(*name, *value);
        }
        let body = if let Some(json) = extra.json {
            request = request.header(CONTENT_TYPE, "application/json");
            json.to_string()
        } else if let Some(form) = extra.form {
            request = request.header(CONTENT_TYPE, "application/x-www-form-urlencoded");
            form
        } else {
            String::new()
        };
        let response = self
            .client
            .request(request.body(Full::new(Bytes::from(body))).unwrap())
            .await
            .unwrap();
        Answer::read(response).await
    }

    fn password(&self, email: &str) -> &str {
        &self
            .passwords
            .iter()
            .find(|(who, _)| who == email)
            .expect("a known person")
            .1
    }

    /// Signs in; returns the session cookie (`name=value`).
    async fn sign_in(&self, email: &str) -> String {
        let form = format!(
            "email={}&password={}",
            email.replace('@', "%40"),
            self.password(email)
        );
        let answer = self
            .send(
                Method::POST,
                "/login",
                Extra {
                    form: Some(form),
                    ..Extra::default()
                },
            )
            .await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
        assert_eq!(answer.headers[LOCATION], "/admin/");
        let cookie = answer.headers[SET_COOKIE].to_str().unwrap();
        for attribute in ["HttpOnly", "SameSite=Strict", "Secure"] {
            assert!(cookie.contains(attribute), "{cookie}");
        }
        cookie.split(';').next().unwrap().to_owned()
    }

    async fn admin(&self, method: Method, path: &str, cookie: &str, json: Option<Value>) -> Answer {
        self.send(
            method,
            &format!("/admin{path}"),
            Extra {
                cookie: Some(cookie),
                json,
                ..Extra::default()
            },
        )
        .await
    }
}

fn json_of(answer: &Answer) -> Value {
    serde_json::from_str(&answer.body).unwrap_or_else(|e| panic!("{e}: {}", answer.body))
}

#[tokio::test]
async fn a_signed_in_person_creates_and_revokes_and_the_records_name_them() {
    let server = Server::start().await;
    let alice = server.sign_in("alice@example.com").await;

    let created = server
        .admin(
            Method::POST,
            "/keys",
            &alice,
            Some(json!({"name": "nightly export", "scopes": ["reports:read"]})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let created = json_of(&created);
    assert_eq!(created["created_by"], "alice@example.com");
    let key = created["key"].as_str().unwrap();
    let id = created["id"].as_str().unwrap();

    // The key works against the application's API.
    let ping = server
        .send(
            Method::GET,
            "/ping",
            Extra {
                headers: &[("authorization", &format!("ApiKey-v2 {key}"))],
                ..Extra::default()
            },
        )
        .await;
    assert_eq!((ping.status, ping.body.as_str()), (StatusCode::OK, "pong"));

    // Who am I, and what may I grant?
    let scopes = json_of(&server.admin(Method::GET, "/scopes", &alice, None).await);
    assert_eq!(scopes["actor"]["name"], "alice@example.com");
    assert!(
        scopes["catalogue"]
            .as_array()
            .unwrap()
            .iter()
            .all(|entry| entry["grantable"] == true)
    );

    let revoked = server
        .admin(Method::DELETE, &format!("/keys/{id}"), &alice, None)
        .await;
    assert_eq!(revoked.status, StatusCode::OK);
    let record = json_of(
        &server
            .admin(Method::GET, &format!("/keys/{id}"), &alice, None)
            .await,
    );
    assert_eq!(record["revoked_by"], "alice@example.com");
    assert_eq!(record["created_by"], "alice@example.com");
}

#[tokio::test]
async fn a_person_grants_no_more_than_the_application_lets_them() {
    let server = Server::start().await;
    let alice = server.sign_in("alice@example.com").await;
    let bob = server.sign_in("bob@example.com").await;
    let refused = server
        .admin(
            Method::POST,
            "/keys",
            &bob,
            Some(json!({"name": "bob's admin", "scopes": ["admin:keys", "reports:read"]})),
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert_eq!(json_of(&refused)["not_grantable"], json!(["admin:keys"]));
    assert!(server.store.is_empty(), "nothing was stored");

    // Bob cannot rotate (copy) or revoke a key stronger than he may grant.
    let writer = json_of(
        &server
            .admin(
                Method::POST,
                "/keys",
                &alice,
                Some(json!({"name": "writer", "scopes": ["reports:write"]})),
            )
            .await,
    );
    let id = writer["id"].as_str().unwrap();
    for (method, path) in [
        (Method::POST, format!("/keys/{id}/rotate")),
        (Method::DELETE, format!("/keys/{id}")),
    ] {
        let answer = server.admin(method, &path, &bob, None).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{path}");
        assert_eq!(json_of(&answer)["not_grantable"], json!(["reports:write"]));
    }
    // Within his scopes he may.
    let reader = server
        .admin(
            Method::POST,
            "/keys",
            &bob,
            Some(json!({"name": "reader", "scopes": ["reports:read"]})),
        )
        .await;
    assert_eq!(reader.status, StatusCode::CREATED);
    assert_eq!(json_of(&reader)["created_by"], "bob@example.com");
}

#[tokio::test]
async fn a_request_without_a_signed_in_person_gets_401() {
    let server = Server::start().await;
    for (method, path) in [
        (Method::GET, "/keys"),
        (Method::POST, "/keys"),
        (Method::GET, "/scopes"),
        (Method::DELETE, "/keys/0000000000000000"),
    ] {
        let answer = server
            .send(
                method,
                &format!("/admin{path}"),
                Extra {
                    json: Some(json!({"name": "n", "scopes": []})),
                    ..Extra::default()
                },
            )
            .await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(answer.headers[CONTENT_TYPE], "application/problem+json");
        assert!(
            json_of(&answer)["detail"]
                .as_str()
                .unwrap()
                .contains("sign in")
        );
    }
    // A wrong password gives no session; an ended session no longer acts.
    let wrong = server
        .send(
            Method::POST,
            "/login",
            Extra {
                form: Some("email=alice%40example.com&password=guess".to_owned()),
                ..Extra::default()
            },
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(!wrong.headers.contains_key(SET_COOKIE));
    let alice = server.sign_in("alice@example.com").await;
    assert_eq!(
        server
            .admin(Method::GET, "/keys", &alice, None)
            .await
            .status,
        StatusCode::OK
    );
    let out = server
        .send(
            Method::POST,
            "/logout",
            Extra {
                cookie: Some(&alice),
                ..Extra::default()
            },
        )
        .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert_eq!(
        server
            .admin(Method::GET, "/keys", &alice, None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert!(server.store.is_empty());
}

#[tokio::test]
async fn a_change_sent_from_another_site_with_the_cookie_is_refused() {
    let server = Server::start().await;
    let alice = server.sign_in("alice@example.com").await;
    for headers in [
        &[("sec-fetch-site", "cross-site")][..],
        &[("origin", "https://evil.example")],
    ] {
        let answer = server
            .send(
                Method::POST,
                "/admin/keys",
                Extra {
                    cookie: Some(&alice),
                    json: Some(json!({"name": "planted", "scopes": ["admin:keys"]})),
                    headers,
                    ..Extra::default()
                },
            )
            .await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{headers:?}");
        assert!(
            json_of(&answer)["detail"]
                .as_str()
                .unwrap()
                .contains("another site")
        );
    }
    assert!(server.store.is_empty(), "nothing was created");
    // The panel's own calls are same-origin.
    let own = server
        .send(
            Method::POST,
            "/admin/keys",
            Extra {
                cookie: Some(&alice),
                json: Some(json!({"name": "own", "scopes": []})),
                headers: &[("sec-fetch-site", "same-origin")],
                ..Extra::default()
            },
        )
        .await;
    assert_eq!(own.status, StatusCode::CREATED);
    // The panel page knows to use the session rather than ask for a key.
    let page = server
        .send(
            Method::GET,
            "/admin/",
            Extra {
                cookie: Some(&alice),
                ..Extra::default()
            },
        )
        .await;
    assert!(
        page.body
            .contains(r#"<meta name="tower-apikey-auth" content="session">"#)
    );
}
