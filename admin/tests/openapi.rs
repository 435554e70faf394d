//! `GET /openapi.json` (DESIGN §13), through a real server on loopback and a real
//! client: an OpenAPI 3.1 document behind the admin guard that lists every route the
//! router serves, and only those.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;

use common::Answer;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use tower_apikey::event::EventLog;
use tower_apikey::manager::ScopeCatalogue;
use tower_apikey::{InMemoryKeyStore, KeyManager, NewKey};
use tower_apikey_admin::AdminRouter;

/// Every route of the admin router, as this test knows it. The router registers its
/// routes from their `#[utoipa::path]`, and the crate's unit test
/// `the_router_serves_exactly_the_documented_operations` compares what it registered
/// with the document; here, a route documented but left out of this list fails
/// `the_document_lists_every_route`, and one documented but not served, or a method
/// served on a documented path but not documented, fails
/// `the_router_serves_what_the_document_lists`.
const ROUTES: &[(&str, &str)] = &[
    ("GET", "/"),
    ("GET", "/dom.js"),
    ("GET", "/events"),
    ("GET", "/history.js"),
    ("GET", "/keys"),
    ("POST", "/keys"),
    ("DELETE", "/keys/{id}"),
    ("GET", "/keys/{id}"),
    ("PATCH", "/keys/{id}"),
    ("GET", "/keys/{id}/events"),
    ("GET", "/keys/{id}/heirs"),
    ("POST", "/keys/{id}/rotate"),
    ("GET", "/keys/{id}/usage"),
    ("GET", "/limits.js"),
    ("GET", "/openapi.json"),
    ("GET", "/panel.css"),
    ("GET", "/panel.js"),
    ("GET", "/scopes"),
    ("POST", "/self/rotate"),
];

struct Server {
    addr: SocketAddr,
    client: Client<HttpConnector, Full<Bytes>>,
    admin_key: String,
    manager: KeyManager<InMemoryKeyStore>,
}

impl Server {
    /// The admin router at `/admin`, with a catalogue and an event log, and an admin key
    /// that may also rotate itself (so that its guard lets every method reach the router).
    async fn start() -> Self {
        let store = InMemoryKeyStore::new();
        let catalogue = ScopeCatalogue::new([
            ("reports:read", "Read reports"),
            ("admin:keys", "Manage keys"),
        ])
        .unwrap();
        let manager = KeyManager::builder(store.clone())
            .events(EventLog::new(store.clone()))
            .catalogue(catalogue)
            .build();
        // Minted by the application, which the catalogue does not bind: the catalogue
        // leaves `keys:rotate-self` out, so that the document lists only what it declares.
        let admin = KeyManager::new(store)
            .create(NewKey::new(
                "admin",
                ["admin:keys", "reports:read", "keys:rotate-self"],
            ))
            .await
            .unwrap();
        let router = AdminRouter::new(manager.clone()).into_router();
        let app = axum::Router::new().nest("/admin", router);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            addr,
            client: Client::builder(TokioExecutor::new()).build_http(),
            admin_key: admin.key.expose_secret().to_owned(),
            manager,
        }
    }

    /// Sends `method` to `path` of the admin router (`/` is `/admin` itself: axum's
    /// nesting does not route `/admin/`).
    async fn send(&self, method: Method, path: &str, key: bool) -> Answer {
        let path = if path == "/" { "" } else { path };
        let mut request = Request::builder()
            .method(method)
            .uri(format!("http://{}/admin{path}", self.addr));
        if key {
            request = request.header(AUTHORIZATION, format!("ApiKey-v2 {}", self.admin_key));
        }
        let request = request.body(Full::new(Bytes::new())).unwrap();
        Answer::read(self.client.request(request).await.unwrap()).await
    }

    async fn document(&self) -> Value {
        let answer = self.send(Method::GET, "/openapi.json", true).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        assert_eq!(answer.headers[CONTENT_TYPE], "application/json");
        serde_json::from_str(&answer.body).unwrap()
    }
}

/// `(METHOD, path)` of every operation in `document`.
fn operations(document: &Value) -> BTreeSet<(String, String)> {
    let mut operations = BTreeSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            operations.insert((method.to_uppercase(), path.clone()));
        }
    }
    operations
}

#[tokio::test]
async fn the_document_is_openapi_3_1_behind_the_admin_guard() {
    let server = Server::start().await;
    let refused = server.send(Method::GET, "/openapi.json", false).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    let document = server.document().await;
    assert_eq!(document["openapi"], "3.1.0");
    let scheme = &document["components"]["securitySchemes"]["ApiKeyV2"];
    assert_eq!(scheme["type"], "apiKey");
    assert_eq!(scheme["in"], "header");
    assert_eq!(scheme["name"], "Authorization");
    assert!(
        scheme["description"]
            .as_str()
            .unwrap()
            .contains("ApiKey-v2 <key>")
    );
    // The router's catalogue is the scopes a key may be given.
    let scopes = &document["components"]["schemas"]["CreateKeyBody"]["properties"]["scopes"];
    assert_eq!(
        scopes["items"]["enum"],
        serde_json::json!(["admin:keys", "reports:read"])
    );
}

#[tokio::test]
async fn the_document_lists_every_route() {
    let document = Server::start().await.document().await;
    let expected: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(method, path)| ((*method).to_owned(), (*path).to_owned()))
        .collect();
    assert_eq!(operations(&document), expected);
}

#[tokio::test]
async fn the_router_serves_what_the_document_lists() {
    let server = Server::start().await;
    let document = server.document().await;
    let victim = server
        .manager
        .create(NewKey::new("to be revoked", ["reports:read"]))
        .await
        .unwrap();
    let id = victim.record.id().to_string();
    let documented = operations(&document);
    for (method, path) in &documented {
        let concrete = path.replace("{id}", &id);
        let method: Method = method.parse().unwrap();
        let answer = server.send(method.clone(), &concrete, true).await;
        assert_ne!(
            answer.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path} is documented but not served"
        );
        assert!(
            answer.status != StatusCode::NOT_FOUND || answer.body.contains("no key has this id"),
            "{method} {path} is documented but not served: {}",
            answer.body
        );
    }
    // And on a documented path, nothing but the documented methods.
    let paths: BTreeSet<&String> = documented.iter().map(|(_, path)| path).collect();
    for path in paths {
        for method in [
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ] {
            if documented.contains(&(method.to_string(), path.clone())) {
                continue;
            }
            let answer = server
                .send(method.clone(), &path.replace("{id}", &id), true)
                .await;
            assert_eq!(
                answer.status,
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path} is served but not documented"
            );
        }
    }
}

#[tokio::test]
async fn every_key_operation_documents_its_refusals_as_problem_documents() {
    let document = Server::start().await.document().await;
    let create = &document["paths"]["/keys"]["post"]["responses"];
    for status in ["401", "403", "415", "422", "503"] {
        assert!(
            create[status]["content"]["application/problem+json"].is_object(),
            "POST /keys {status}: {}",
            create[status]
        );
    }
    assert!(create["503"]["headers"]["Retry-After"].is_object());
    assert!(create["401"]["headers"]["WWW-Authenticate"].is_object());
    assert_eq!(
        create["201"]["links"]["GetKey"]["parameters"]["id"],
        "$response.body#/id"
    );
    let list = &document["paths"]["/keys"]["get"];
    assert!(list["responses"]["200"]["headers"]["Link"].is_object());
    let parameters: BTreeSet<&str> = list["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        parameters,
        BTreeSet::from(["cursor", "limit", "q", "scope", "sort", "state", "tenant"])
    );
    // The panel needs no key; the API does.
    assert_eq!(
        document["paths"]["/"]["get"]["security"],
        serde_json::json!([{}])
    );
    assert!(
        document["paths"]["/keys/{id}"]["get"]
            .get("security")
            .is_none()
    );
    assert_eq!(document["security"], serde_json::json!([{"ApiKeyV2": []}]));
}
