//! Tenants kept apart over HTTP, as an attacker would try it (DESIGN §14, issue 31): the
//! admin router behind a real server on loopback, called by a real client.
//!
//! The suite iterates the router's route table (`AdminRouter::route_scopings`) and
//! matches every row's [`Scoping`] without a wildcard, so that a new kind of route fails
//! to compile here until its isolation is checked, and a new per-tenant route fails the
//! test until it has its own check:
//!
//! - per key: tenant A's administrator with tenant B's key ids gets 404, exactly the
//!   bytes an unknown id gets, and B's records and events are unchanged afterwards;
//! - per tenant: A never sees B's rows (lists, search, events, the catalogue), and
//!   `?tenant=B` gives an empty page; create naming B is 403 and stores nothing, create
//!   naming no tenant makes the key in A;
//! - the rest: A's key rotating itself keeps A; the document and the panel's assets name
//!   no key of B.
//!
//! Then the per-key and per-tenant checks again behind `examples/admin_behind_login.rs`,
//! signed in as that example's person of tenant `globex`.

#[path = "../../tests/common/mod.rs"]
mod common;
#[allow(dead_code)]
#[path = "../examples/admin_behind_login.rs"]
mod example;

use std::net::SocketAddr;
use std::time::{Duration, UNIX_EPOCH};

use common::Answer;
use http::header::{AUTHORIZATION, CONTENT_TYPE, COOKIE, DATE, LOCATION, SET_COOKIE};
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use tower_apikey::event::EventLog;
use tower_apikey::record::TenantId;
use tower_apikey::testing::ManualClock;
use tower_apikey::{InMemoryKeyStore, KeyManager, NewKey};
use tower_apikey_admin::{AdminRouter, RouteScoping, Scoping};

/// 2026-05-01T12:00:00Z.
const START_SECS: u64 = 1_777_636_800;

/// A valid key id that no key has.
const UNKNOWN_ID: &str = "0000000000000000";

/// The scopes every administrator of this suite holds.
const ADMIN: [&str; 4] = [
    "admin:keys",
    "reports:read",
    "reports:write",
    "keys:rotate-self",
];

fn tenant(id: &str) -> TenantId {
    TenantId::new(id).unwrap()
}

/// How a request is authenticated: an admin key, or a signed-in person's session.
#[derive(Clone, Copy)]
enum Auth<'a> {
    Key(&'a str),
    Cookie(&'a str),
    Nobody,
}

/// A real client of one server on loopback, where the admin router is mounted at `base`.
struct Http {
    addr: SocketAddr,
    base: &'static str,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Http {
    /// Serves `router` on loopback (with each connection's peer address); a client of it.
    async fn serve(router: axum::Router, base: &'static str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let service = router.into_make_service_with_connect_info::<SocketAddr>();
        tokio::spawn(async move { axum::serve(listener, service).await.unwrap() });
        let client = Client::builder(TokioExecutor::new()).build_http();
        Self { addr, base, client }
    }

    /// `GET path` under the admin router's mount point.
    async fn get(&self, path: &str, auth: Auth<'_>) -> Answer {
        self.call(&Method::GET, path, auth, None).await
    }

    /// `method path` under the admin router's mount point.
    async fn call(
        &self,
        method: &Method,
        path: &str,
        auth: Auth<'_>,
        json: Option<&Value>,
    ) -> Answer {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("http://{}{}{path}", self.addr, self.base));
        match auth {
            Auth::Key(key) => request = request.header(AUTHORIZATION, format!("ApiKey-v2 {key}")),
            Auth::Cookie(cookie) => request = request.header(COOKIE, cookie),
            Auth::Nobody => {}
        }
        let body = match json {
            Some(json) => {
                request = request.header(CONTENT_TYPE, "application/json");
                json.to_string()
            }
            None => String::new(),
        };
        let request = request.body(Full::new(Bytes::from(body))).unwrap();
        Answer::read(self.client.request(request).await.unwrap()).await
    }

    /// The login example's sign-in form, sent with `form`.
    async fn log_in(&self, form: String) -> Answer {
        let request = Request::post(format!("http://{}/login", self.addr))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Full::new(Bytes::from(form)))
            .unwrap();
        Answer::read(self.client.request(request).await.unwrap()).await
    }
}

fn json_of(answer: &Answer) -> Value {
    serde_json::from_str(&answer.body).unwrap_or_else(|e| panic!("{e}: {}", answer.body))
}

/// Everything of an answer but its `date`: what an unknown id and another tenant's id
/// must answer alike.
fn comparable(answer: &Answer) -> (StatusCode, Vec<(String, Vec<u8>)>, String) {
    let mut headers: Vec<(String, Vec<u8>)> = answer
        .headers
        .iter()
        .filter(|(name, _)| *name != DATE)
        .map(|(name, value)| (name.to_string(), value.as_bytes().to_vec()))
        .collect();
    headers.sort();
    (answer.status, headers, answer.body.clone())
}

/// The body a per-key route is sent: a change for `PATCH`, none otherwise (rotation and
/// revocation take none).
fn body_for(method: &Method) -> Option<Value> {
    (method == Method::PATCH).then(|| json!({"name": "taken over"}))
}

/// One side of the suite: a server, the tenant A actor's credentials, an operator's
/// (who observes B's side before and after), and B's key ids.
struct Side<'a> {
    http: &'a Http,
    /// Tenant A's administrator.
    a: Auth<'a>,
    a_tenant: &'a str,
    /// An operator, who sees every tenant.
    operator: Auth<'a>,
    b_tenant: &'a str,
    /// Ids of keys of tenant B.
    b_ids: &'a [String],
    /// Whether the manager keeps an event log (without one the event routes are 404).
    events: bool,
}

impl Side<'_> {
    /// What the operator sees of tenant B: its records and, with a log, its events.
    async fn b_state(&self) -> (String, String) {
        let keys = self
            .http
            .get(&format!("/keys?tenant={}", self.b_tenant), self.operator)
            .await;
        assert_eq!(keys.status, StatusCode::OK, "{}", keys.body);
        assert!(!json_of(&keys).as_array().unwrap().is_empty());
        let events = self
            .http
            .get(&format!("/events?tenant={}", self.b_tenant), self.operator)
            .await;
        (keys.body, events.body)
    }

    /// No id of B, and not B's tenant, in `answer`.
    fn names_nothing_of_b(&self, what: &str, answer: &Answer) {
        for id in self.b_ids {
            assert!(
                !answer.body.contains(id.as_str()),
                "{what} shows B's key {id}: {}",
                answer.body
            );
        }
        assert!(
            !answer.body.contains(&format!("\"{}\"", self.b_tenant)),
            "{what} names tenant {}: {}",
            self.b_tenant,
            answer.body
        );
    }

    /// A per-key route with B's ids answers A exactly as with an unknown id, and
    /// changes nothing of B.
    async fn per_key(&self, route: &RouteScoping) {
        assert!(
            route.path.contains("{id}"),
            "a per-key route names a key: {}",
            route.path
        );
        let body = body_for(&route.method);
        let unknown = self
            .http
            .call(
                &route.method,
                &route.path.replace("{id}", UNKNOWN_ID),
                self.a,
                body.as_ref(),
            )
            .await;
        assert_eq!(
            unknown.status,
            StatusCode::NOT_FOUND,
            "{} {}: {}",
            route.method,
            route.path,
            unknown.body
        );
        let before = self.b_state().await;
        for id in self.b_ids {
            let path = route.path.replace("{id}", id);
            let answer = self
                .http
                .call(&route.method, &path, self.a, body.as_ref())
                .await;
            assert_eq!(
                comparable(&answer),
                comparable(&unknown),
                "{} {path}: B's key must answer as an unknown id",
                route.method
            );
        }
        assert_eq!(
            self.b_state().await,
            before,
            "{} {} changed B",
            route.method,
            route.path
        );
    }

    /// A per-tenant route shows A nothing of B; every per-tenant route must be here.
    async fn per_tenant(&self, route: &RouteScoping) {
        let (a, b) = (self.a_tenant, self.b_tenant);
        match (route.method.as_str(), route.path.as_str()) {
            ("GET", "/keys") => {
                for query in ["", "?state=active", "?limit=1000", "?q=b-"] {
                    let answer = self.http.get(&format!("/keys{query}"), self.a).await;
                    assert_eq!(answer.status, StatusCode::OK, "{query}: {}", answer.body);
                    let rows = json_of(&answer);
                    let rows = rows.as_array().unwrap();
                    assert!(
                        rows.iter().all(|row| row["tenant"] == a),
                        "{query}: {rows:?}"
                    );
                    self.names_nothing_of_b(&format!("GET /keys{query}"), &answer);
                }
                // Search for B's key by its exact id: nothing.
                for id in self.b_ids {
                    let answer = self.http.get(&format!("/keys?q={id}"), self.a).await;
                    assert_eq!(json_of(&answer), json!([]), "search for {id}");
                }
                let named = self.http.get(&format!("/keys?tenant={b}"), self.a).await;
                assert_eq!((named.status, json_of(&named)), (StatusCode::OK, json!([])));
                let own = self.http.get(&format!("/keys?tenant={a}"), self.a).await;
                assert!(
                    !json_of(&own).as_array().unwrap().is_empty(),
                    "A sees its own keys"
                );
                let invalid = self.http.get("/keys?tenant=no%20such", self.a).await;
                assert_eq!(invalid.status, StatusCode::UNPROCESSABLE_ENTITY);
                assert_eq!(json_of(&invalid)["field"], "tenant");
            }
            ("GET", "/events") => {
                let answer = self.http.get("/events?limit=1000", self.a).await;
                if !self.events {
                    assert_eq!(answer.status, StatusCode::NOT_FOUND);
                    return;
                }
                assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
                let rows = json_of(&answer);
                let rows = rows.as_array().unwrap();
                assert!(!rows.is_empty(), "A sees its own events");
                assert!(rows.iter().all(|row| row["tenant"] == a), "{rows:?}");
                self.names_nothing_of_b("GET /events", &answer);
                let named = self.http.get(&format!("/events?tenant={b}"), self.a).await;
                assert_eq!((named.status, json_of(&named)), (StatusCode::OK, json!([])));
                let unknown = self
                    .http
                    .get(&format!("/events?key_id={UNKNOWN_ID}"), self.a)
                    .await;
                // A filter: an unknown key has no events, and neither, to A, has B's.
                assert_eq!(
                    (unknown.status, json_of(&unknown)),
                    (StatusCode::OK, json!([]))
                );
                for id in self.b_ids {
                    let of_b = self.http.get(&format!("/events?key_id={id}"), self.a).await;
                    assert_eq!(
                        comparable(&of_b),
                        comparable(&unknown),
                        "events of B's key {id}"
                    );
                }
                let invalid = self.http.get("/events?tenant=", self.a).await;
                assert_eq!(invalid.status, StatusCode::UNPROCESSABLE_ENTITY);
            }
            ("GET", "/scopes") => {
                let answer = self.http.get("/scopes", self.a).await;
                assert_eq!(json_of(&answer)["tenant"], a, "the panel names A's tenant");
                self.names_nothing_of_b("GET /scopes", &answer);
            }
            ("POST", "/keys") => {
                let before = self.b_state().await;
                let other = json!({"name": "b-planted", "scopes": ["reports:read"], "tenant": b});
                let refused = self
                    .http
                    .call(&Method::POST, "/keys", self.a, Some(&other))
                    .await;
                assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
                let detail = json_of(&refused)["detail"].as_str().unwrap().to_owned();
                assert!(detail.contains("leave \"tenant\" out"), "{detail}");
                assert_eq!(self.b_state().await, before, "nothing stored in B");

                // Without a tenant, or naming its own: the key is A's.
                for body in [
                    json!({"name": "a-made", "scopes": ["reports:read"]}),
                    json!({"name": "a-named", "scopes": [], "tenant": a}),
                ] {
                    let made = self
                        .http
                        .call(&Method::POST, "/keys", self.a, Some(&body))
                        .await;
                    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
                    assert_eq!(json_of(&made)["tenant"], a);
                }
                let invalid = json!({"name": "x", "scopes": [], "tenant": "a b"});
                let refused = self
                    .http
                    .call(&Method::POST, "/keys", self.a, Some(&invalid))
                    .await;
                assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
                assert_eq!(json_of(&refused)["field"], "tenant");
            }
            (method, path) => panic!("no isolation check for the per-tenant route {method} {path}"),
        }
    }

    /// Every row of `table`, each checked as its scoping says.
    async fn every_row(&self, table: &[RouteScoping]) {
        let mut checked = 0;
        for route in table {
            match route.scoping {
                Scoping::PerKey => self.per_key(route).await,
                Scoping::PerTenant => self.per_tenant(route).await,
                // Operator-only routes: a tenant's actor gets no answer of any tenant.
                Scoping::OperatorOnly => {
                    let path = route.path.replace("{tenant}", self.b_tenant);
                    let answer = self.http.call(&route.method, &path, self.a, None).await;
                    assert!(!answer.status.is_success(), "{} {path}", route.method);
                    self.names_nothing_of_b(&path, &answer);
                }
                // The calling key acts on itself: checked where A's key rotates itself.
                Scoping::OwnKey => assert_eq!(route.path, "/self/rotate"),
                Scoping::NoKeyData => {
                    let answer = self
                        .http
                        .call(&route.method, &route.path, self.a, None)
                        .await;
                    assert_eq!(answer.status, StatusCode::OK, "{}", route.path);
                    self.names_nothing_of_b(&route.path, &answer);
                }
                Scoping::NotByKey => {
                    let answer = self
                        .http
                        .call(&route.method, &route.path, Auth::Nobody, None)
                        .await;
                    assert_eq!(answer.status, StatusCode::OK, "{}", route.path);
                    self.names_nothing_of_b(&route.path, &answer);
                }
            }
            checked += 1;
        }
        assert!(checked > 10, "the whole table was checked");
    }
}

/// A server over a store with an event log, with keys of tenants `acme` (A), `globex`
/// (B) and an operator's.
struct World {
    http: Http,
    app: KeyManager<InMemoryKeyStore>,
    table: Vec<RouteScoping>,
}

/// A key the application makes; its plaintext and id.
async fn made(app: &KeyManager<InMemoryKeyStore>, new: NewKey) -> (String, String) {
    let created = app.create(new).await.unwrap();
    (
        created.key.expose_secret().to_owned(),
        created.record.id().to_string(),
    )
}

/// The id of a `reports:read` key the application makes in `tenant`.
async fn key_in(app: &KeyManager<InMemoryKeyStore>, name: &str, tenant_id: &str) -> String {
    let new = NewKey::new(name, ["reports:read"]).tenant(tenant(tenant_id));
    made(app, new).await.1
}

impl World {
    async fn start() -> Self {
        let store = InMemoryKeyStore::new();
        let clock = ManualClock::new(UNIX_EPOCH + Duration::from_secs(START_SECS));
        let app = KeyManager::builder(store.clone())
            .clock(clock)
            .events(EventLog::new(store.clone()))
            .build();
        let admin = AdminRouter::new(app.clone());
        let table = admin.route_scopings();
        let http = Http::serve(admin.into_router(), "").await;
        Self { http, app, table }
    }
}

#[tokio::test]
async fn a_tenants_admin_key_reaches_no_other_tenants_key_on_any_route() {
    let world = World::start().await;
    let app = &world.app;
    let (a_admin, _) = made(app, NewKey::new("a-admin", ADMIN).tenant(tenant("acme"))).await;
    let a_key = key_in(app, "a-key", "acme").await;
    let (operator, _) = made(app, NewKey::new("operator", ADMIN)).await;
    let (_, b_admin) = made(app, NewKey::new("b-admin", ADMIN).tenant(tenant("globex"))).await;
    let b_key = key_in(app, "b-key", "globex").await;
    let b_revoked = key_in(app, "b-old", "globex").await;
    app.revoke(&b_revoked.parse().unwrap()).await.unwrap();
    let b_ids = [b_admin, b_key, b_revoked];

    let side = Side {
        http: &world.http,
        a: Auth::Key(&a_admin),
        a_tenant: "acme",
        operator: Auth::Key(&operator),
        b_tenant: "globex",
        b_ids: &b_ids,
        events: true,
    };
    side.every_row(&world.table).await;

    // Rotation keeps the tenant; PATCH cannot change it.
    let rotated = world
        .http
        .call(
            &Method::POST,
            &format!("/keys/{a_key}/rotate"),
            side.a,
            None,
        )
        .await;
    assert_eq!(rotated.status, StatusCode::CREATED, "{}", rotated.body);
    assert_eq!(json_of(&rotated)["tenant"], "acme");
    let moved = world
        .http
        .call(
            &Method::PATCH,
            &format!("/keys/{a_key}"),
            side.a,
            Some(&json!({"tenant": "globex"})),
        )
        .await;
    assert_eq!(
        moved.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        moved.body
    );
    assert_eq!(json_of(&moved)["field"], "tenant");
    let record = world.http.get(&format!("/keys/{a_key}"), side.a).await;
    assert_eq!(json_of(&record)["tenant"], "acme");
}

#[tokio::test]
async fn a_key_rotating_itself_keeps_its_tenant() {
    let world = World::start().await;
    let (key, id) = made(
        &world.app,
        NewKey::new("sync", ["keys:rotate-self"]).tenant(tenant("acme")),
    )
    .await;
    let rotated = world
        .http
        .call(&Method::POST, "/self/rotate", Auth::Key(&key), None)
        .await;
    assert_eq!(rotated.status, StatusCode::CREATED, "{}", rotated.body);
    let rotated = json_of(&rotated);
    assert_eq!(rotated["tenant"], "acme");
    assert_eq!(rotated["rotated_from"], id.as_str());
}

#[tokio::test]
async fn an_operator_sees_every_tenant_filters_by_one_and_creates_in_any() {
    let world = World::start().await;
    let app = &world.app;
    let (operator, _) = made(app, NewKey::new("operator", ADMIN)).await;
    let a_key = key_in(app, "a-key", "acme").await;
    let b_key = key_in(app, "b-key", "globex").await;
    let op = Auth::Key(&operator);
    let http = &world.http;

    let all = json_of(&http.get("/keys", op).await);
    let ids: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&a_key.as_str()) && ids.contains(&b_key.as_str()),
        "{ids:?}"
    );
    let globex = json_of(&http.get("/keys?tenant=globex", op).await);
    assert_eq!(globex.as_array().unwrap().len(), 1);
    assert_eq!(globex[0]["id"], b_key.as_str());
    let record = json_of(&http.get(&format!("/keys/{b_key}"), op).await);
    assert_eq!(record["tenant"], "globex");

    let events = json_of(&http.get("/events?tenant=acme", op).await);
    let events = events.as_array().unwrap();
    assert!(!events.is_empty());
    assert!(
        events
            .iter()
            .all(|e| e["tenant"] == "acme" && e["key_id"] == a_key.as_str())
    );
    let scopes = json_of(&http.get("/scopes", op).await);
    assert_eq!(scopes["tenant"], Value::Null);

    let made = http
        .call(
            &Method::POST,
            "/keys",
            op,
            Some(&json!({"name": "for globex", "scopes": ["admin:keys"], "tenant": "globex"})),
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    assert_eq!(json_of(&made)["tenant"], "globex");
    let own = http
        .call(
            &Method::POST,
            "/keys",
            op,
            Some(&json!({"name": "ours", "scopes": []})),
        )
        .await;
    assert_eq!(json_of(&own)["tenant"], Value::Null);
}

/// The example behind its login, on loopback, with the store it runs over.
async fn login_example() -> (Http, Vec<(String, String)>, InMemoryKeyStore) {
    let store = InMemoryKeyStore::new();
    let app = example::build(store.clone());
    let http = Http::serve(app.router, "/admin").await;
    (http, app.passwords, store)
}

/// Signs in as `email`; the session cookie.
async fn sign_in(http: &Http, passwords: &[(String, String)], email: &str) -> String {
    let password = &passwords.iter().find(|(who, _)| who == email).unwrap().1;
    let form = format!("email={}&password={password}", email.replace('@', "%40"));
    let answer = http.log_in(form).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    assert_eq!(answer.headers[LOCATION], "/admin/");
    let cookie = answer.headers[SET_COOKIE].to_str().unwrap();
    cookie.split(';').next().unwrap().to_owned()
}

#[tokio::test]
async fn behind_the_login_a_tenants_person_reaches_no_other_tenants_key() {
    let (http, passwords, store) = login_example().await;
    // The example's people say each an operator or a tenant, with no default.
    let carol = example::PEOPLE
        .iter()
        .find_map(|(email, _, role)| match role {
            example::Role::Tenant(tenant) => Some((*email, *tenant)),
            example::Role::Operator => None,
        })
        .expect("the example has a person of a tenant");
    assert_eq!(carol, ("carol@globex.example", "globex"));
    let (carol, a_tenant) = carol;
    let app = KeyManager::new(store.clone());
    key_in(&app, "globex-sync", a_tenant).await;
    let b_key = key_in(&app, "b-key", "initech").await;
    let (_, b_admin) = made(
        &app,
        NewKey::new("b-admin", ["admin:keys"]).tenant(tenant("initech")),
    )
    .await;
    let b_ids = [b_key, b_admin];

    let carol = sign_in(&http, &passwords, carol).await;
    let alice = sign_in(&http, &passwords, "alice@example.com").await;
    let side = Side {
        http: &http,
        a: Auth::Cookie(&carol),
        a_tenant,
        operator: Auth::Cookie(&alice),
        b_tenant: "initech",
        b_ids: &b_ids,
        events: false,
    };
    // The example's router is `AdminRouter::new(manager).behind_login()`: this table.
    let table = AdminRouter::new(KeyManager::new(store))
        .behind_login()
        .route_scopings();
    side.every_row(&table).await;
}
