//! The admin router's route table: one [`Row`] per route, each declaring who it serves
//! ([`Scoping`]). The router is built from the table and nothing else
//! (`AdminRouter::route_table`), and tests iterate it: every row is documented, and every
//! row that needs a key refuses a request without one.
//!
//! A row takes its method and path from its handler's `#[utoipa::path]` (the `__path_…`
//! type it writes), so a route is served where, and only where, its documentation says.
//!
//! A new route is a new row, which cannot be made without its [`Scoping`] (an argument of
//! every constructor; the field has no default); a new kind of scoping is a new variant,
//! which every `match` on it must then handle: the tenants' isolation suite
//! (`tests/tenants.rs`, through `AdminRouter::route_scopings`) matches without a wildcard.

use axum::Router;
use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{MethodFilter, on};
use utoipa::openapi::HttpMethod;

/// Whom a route acts for, and so how it is guarded and how tenants are kept apart
/// (DESIGN §14).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scoping {
    /// Acts on the one key its path names (`/keys/{id}…`): an admin key (`admin:keys`)
    /// or a login, which may act on that key. Another tenant's key is 404, as an unknown
    /// id.
    PerKey,
    /// Acts on, or answers from, the keys of the actor's tenant (create, the lists, the
    /// events, the catalogue naming the tenant): an admin key (`admin:keys`) or a login.
    /// A tenant's actor sees only its own tenant's rows.
    PerTenant,
    /// Acts across every tenant: an operator's admin key or login only. No route is
    /// operator-only yet; the tenants' routes will be.
    #[allow(dead_code)] // The tenants issue adds its rows.
    OperatorOnly,
    /// The calling key acts on itself (`POST /self/rotate`): authenticated by that key,
    /// holding `keys:rotate-self`, even behind a login.
    OwnKey,
    /// Needs an actor, as the keyed routes, but shows no key's data whatever the
    /// actor's tenant: the API's document.
    NoKeyData,
    /// Needs no key: the panel's page and assets, which hold no data.
    NotByKey,
}

impl Scoping {
    /// Whether the admin guard (or the application's login) authenticates the route.
    pub(super) fn by_admin(self) -> bool {
        match self {
            Self::PerKey | Self::PerTenant | Self::NoKeyData | Self::OperatorOnly => true,
            Self::OwnKey | Self::NotByKey => false,
        }
    }
}

/// One method of one route, and its scoping: what `AdminRouter::route_scopings` lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteScoping {
    /// The method.
    pub method: Method,
    /// The path, relative to where the router is mounted, with `{id}` for a key id.
    pub path: String,
    /// Whom the route acts for.
    pub scoping: Scoping,
}

/// One route: its method and path, its scoping, and how the router serves it.
pub(super) struct Row<S> {
    pub(super) scoping: Scoping,
    pub(super) path: String,
    pub(super) methods: Vec<HttpMethod>,
    serve: Serve<S>,
}

/// Adds a row's handler to a router, at its path, for its methods.
type Serve<S> = Box<dyn FnOnce(Router<S>, &str, MethodFilter) -> Router<S>>;

impl<S: Clone + Send + Sync + 'static> Row<S> {
    /// A route served where `P` (the `__path_…` type `#[utoipa::path]` writes) says.
    pub(super) fn documented<P, H, T>(scoping: Scoping, _documented: P, handler: H) -> Self
    where
        P: utoipa::Path,
        H: Handler<T, S>,
        T: 'static,
    {
        Self::new(scoping, P::path(), P::methods(), handler)
    }

    /// A `GET` route documented at run time (the panel's assets).
    pub(super) fn get<H, T>(scoping: Scoping, path: &str, handler: H) -> Self
    where
        H: Handler<T, S>,
        T: 'static,
    {
        Self::new(scoping, path.to_owned(), vec![HttpMethod::Get], handler)
    }

    fn new<H, T>(scoping: Scoping, path: String, methods: Vec<HttpMethod>, handler: H) -> Self
    where
        H: Handler<T, S>,
        T: 'static,
    {
        Self {
            scoping,
            path,
            methods,
            serve: Box::new(move |router, path, methods| router.route(path, on(methods, handler))),
        }
    }

    /// Adds this route to `router`.
    fn serve(self, router: Router<S>) -> Router<S> {
        let methods = self
            .methods
            .iter()
            .map(method_filter)
            .reduce(MethodFilter::or)
            .expect("`#[utoipa::path]` names a method");
        (self.serve)(router, &self.path, methods)
    }
}

/// One router serving every route of `rows`.
pub(super) fn serve_all<S: Clone + Send + Sync + 'static>(
    rows: impl IntoIterator<Item = Row<S>>,
) -> Router<S> {
    rows.into_iter()
        .fold(Router::new(), |router, row| row.serve(router))
}

/// `method` as HTTP names it.
pub(super) fn method(method: &HttpMethod) -> Method {
    match method {
        HttpMethod::Get => Method::GET,
        HttpMethod::Post => Method::POST,
        HttpMethod::Put => Method::PUT,
        HttpMethod::Delete => Method::DELETE,
        HttpMethod::Patch => Method::PATCH,
        HttpMethod::Head => Method::HEAD,
        HttpMethod::Options => Method::OPTIONS,
        HttpMethod::Trace => Method::TRACE,
    }
}

fn method_filter(method: &HttpMethod) -> MethodFilter {
    match method {
        HttpMethod::Get => MethodFilter::GET,
        HttpMethod::Post => MethodFilter::POST,
        HttpMethod::Put => MethodFilter::PUT,
        HttpMethod::Delete => MethodFilter::DELETE,
        HttpMethod::Patch => MethodFilter::PATCH,
        HttpMethod::Head => MethodFilter::HEAD,
        HttpMethod::Options => MethodFilter::OPTIONS,
        HttpMethod::Trace => MethodFilter::TRACE,
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use axum::body::Bytes;
    use axum::http::{Method, Request, StatusCode, header::AUTHORIZATION};
    use http_body_util::Empty;
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;
    use serde_json::Value;
    use tower_apikey::{InMemoryKeyStore, KeyManager, NewKey};

    use super::Scoping;
    use crate::AdminRouter;

    fn method_name(method: &super::HttpMethod) -> String {
        let name = serde_json::to_value(method).unwrap();
        name.as_str().unwrap().to_owned()
    }

    /// Serves `router` on loopback; its address.
    async fn serve(router: axum::Router) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = router.into_make_service_with_connect_info::<SocketAddr>();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        addr
    }

    /// The status of `method path` at `addr`, with `key` if any.
    async fn call(addr: SocketAddr, method: &Method, path: &str, key: Option<&str>) -> StatusCode {
        let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
        let mut request = Request::builder()
            .method(method)
            .uri(format!("http://{addr}{path}"));
        if let Some(key) = key {
            request = request.header(AUTHORIZATION, format!("ApiKey-v2 {key}"));
        }
        let request = request.body(Empty::new()).unwrap();
        client.request(request).await.unwrap().status()
    }

    /// Each row's method and path, with `{id}` filled in.
    fn requests(
        rows: &[super::Row<KeyManager<InMemoryKeyStore>>],
        id: &str,
    ) -> Vec<(Scoping, Method, String)> {
        rows.iter()
            .flat_map(|row| {
                row.methods.iter().map(|method| {
                    let name = method_name(method).to_uppercase();
                    let method = Method::from_bytes(name.as_bytes()).unwrap();
                    (row.scoping, method, row.path.replace("{id}", id))
                })
            })
            .collect()
    }

    /// Every row of the table is in the document with its method, and, through a real
    /// server on loopback, every row that needs a key refuses a request without one
    /// (401) and one with a key lacking the route's scope (403), while the rows that
    /// need none answer without one.
    #[tokio::test]
    async fn every_row_is_documented_and_guarded_as_its_scoping_says() {
        let manager = KeyManager::new(InMemoryKeyStore::new());
        let key = |name, scope| {
            let new = NewKey::new(name, [scope]);
            let manager = manager.clone();
            async move { manager.create(new).await.unwrap() }
        };
        // Holds `admin:keys` only: lacks `keys:rotate-self`.
        let admin = key("admin", "admin:keys").await;
        // Lacks `admin:keys`.
        let plain = key("plain", "reports:read").await;
        let router = AdminRouter::new(manager.clone());
        let document: Value = serde_json::from_str(&router.openapi_json()).unwrap();
        let rows = router.route_table();
        assert!(
            [
                Scoping::PerKey,
                Scoping::PerTenant,
                Scoping::NoKeyData,
                Scoping::OwnKey,
                Scoping::NotByKey
            ]
            .iter()
            .all(|scoping| rows.iter().any(|row| row.scoping == *scoping)),
            "the table has rows of every scoping in use"
        );
        for row in &rows {
            for method in &row.methods {
                let name = method_name(method);
                assert!(
                    document["paths"][&row.path][&name].is_object(),
                    "{name} {} is not in the document",
                    row.path
                );
            }
        }

        let requests = requests(&rows, &plain.record.id().to_string());
        let addr = serve(router.into_router()).await;
        for (scoping, method, path) in requests {
            let without = call(addr, &method, &path, None).await;
            let lacking = match scoping {
                Scoping::PerKey
                | Scoping::PerTenant
                | Scoping::NoKeyData
                | Scoping::OperatorOnly => &plain.key,
                Scoping::OwnKey => &admin.key,
                Scoping::NotByKey => {
                    assert_eq!(without, StatusCode::OK, "{method} {path}");
                    continue;
                }
            };
            assert_eq!(without, StatusCode::UNAUTHORIZED, "{method} {path}");
            let with = call(addr, &method, &path, Some(lacking.expose_secret())).await;
            assert_eq!(with, StatusCode::FORBIDDEN, "{method} {path}");
        }
    }

    /// Behind a login, the rows the admin guard would take need a signed-in person, whom
    /// no key stands in for (401 without one, even with an admin key); the calling key's
    /// own rows still take its key; the rest need nothing.
    #[tokio::test]
    async fn behind_a_login_every_row_is_guarded_as_its_scoping_says() {
        let manager = KeyManager::new(InMemoryKeyStore::new());
        let admin = manager
            .create(NewKey::new("admin", ["admin:keys"]))
            .await
            .unwrap();
        let router = AdminRouter::new(manager.clone()).behind_login();
        let requests = requests(&router.route_table(), &admin.record.id().to_string());
        let addr = serve(router.into_router()).await;
        for (scoping, method, path) in requests {
            let without = call(addr, &method, &path, None).await;
            let with = call(addr, &method, &path, Some(admin.key.expose_secret())).await;
            let (without_wanted, with_wanted) = match scoping {
                Scoping::PerKey
                | Scoping::PerTenant
                | Scoping::NoKeyData
                | Scoping::OperatorOnly => (StatusCode::UNAUTHORIZED, StatusCode::UNAUTHORIZED),
                // The admin key lacks `keys:rotate-self`.
                Scoping::OwnKey => (StatusCode::UNAUTHORIZED, StatusCode::FORBIDDEN),
                Scoping::NotByKey => (StatusCode::OK, StatusCode::OK),
            };
            assert_eq!(without, without_wanted, "{method} {path} without a key");
            assert_eq!(with, with_wanted, "{method} {path} with an admin key");
        }
    }
}
