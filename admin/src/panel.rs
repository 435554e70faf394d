//! The "Connector Access Control" panel: one HTML page, its script and its stylesheet,
//! compiled into the crate and served by the admin router beside the JSON API.
//!
//! The page holds no data and no secret, so it is served without a key. With the key
//! guard, the script asks the administrator for an admin key, keeps it in
//! `sessionStorage`, and sends it with every call to the JSON API, which stays guarded
//! by `admin:keys`. Behind the application's login, the page says so in a `<meta>`
//! element, and the script sends the browser's session (same-origin cookies) instead,
//! asking for nothing. Every response
//! carries a Content-Security-Policy that allows only this server's own script, styles
//! and API (no inline script or style, no framing), `nosniff` and `no-referrer`.
//!
//! # Where the page is
//!
//! At the router's root. The script finds the API beside its own URL, so the panel
//! works wherever the application mounts the router. Mounted with
//! `Router::nest("/admin", …)`, axum routes `/admin` to the page but not `/admin/`;
//! with `Router::nest_service("/admin", …)` both reach it. Either way the page names its
//! assets relative to the address it was asked for (`./admin/panel.js` from `/admin`,
//! `panel.js` from `/admin/`), which also holds behind a proxy that strips a prefix.

use axum::extract::OriginalUri;
use axum::http::HeaderValue;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, HeaderName, REFERRER_POLICY,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::response::{IntoResponse, Response};
use utoipa::openapi::path::{HttpMethod, OperationBuilder};
use utoipa::openapi::security::SecurityRequirement;
use utoipa::openapi::{ContentBuilder, ObjectBuilder, Paths, ResponseBuilder, Type};

use super::routes::{Row, Scoping};

const PAGE: &str = include_str!("panel/index.html");

/// One of the page's static assets: where it is served, what it is, and its bytes.
struct Asset {
    path: &'static str,
    /// Its operation in the OpenAPI document.
    operation_id: &'static str,
    /// What it is, for the document.
    summary: &'static str,
    /// `Content-Type`, with its charset.
    content_type: &'static str,
    body: &'static str,
}

/// The page's static assets, each public (they hold no data) and `no-cache`.
const ASSETS: &[Asset] = &[
    Asset {
        path: "/dom.js",
        operation_id: "panelDomScript",
        // The helpers the other scripts share; the page loads it first.
        summary: "The panel's DOM helpers",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("panel/dom.js"),
    },
    Asset {
        path: "/panel.js",
        operation_id: "panelScript",
        summary: "The panel's script",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("panel/panel.js"),
    },
    Asset {
        path: "/panel.css",
        operation_id: "panelStyle",
        summary: "The panel's stylesheet",
        content_type: "text/css; charset=utf-8",
        body: include_str!("panel/panel.css"),
    },
    Asset {
        path: "/history.js",
        operation_id: "panelHistoryScript",
        // The audit trail's part of the page: history, activity, usage charts.
        summary: "The panel's history view",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("panel/history.js"),
    },
    Asset {
        path: "/limits.js",
        operation_id: "panelLimitsScript",
        // Each key's limits, recent addresses and editor.
        summary: "The panel's limits editor",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("panel/limits.js"),
    },
];

/// Where the page names its assets; replaced by [`asset_base`] on every request.
const BASE_PLACEHOLDER: &str = "{{base}}";

/// How the page authenticates its API calls; replaced by [`PanelAuth::as_str`].
const AUTH_PLACEHOLDER: &str = "{{auth}}";
/// Replaced by `on` or `off`: whether the audit trail's routes exist.
const AUDIT_PLACEHOLDER: &str = "{{audit}}";

/// How the panel's API calls are authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PanelAuth {
    /// An admin key the administrator pastes, in the `Authorization` header.
    Key,
    /// The application's login session, in same-origin cookies.
    Session,
}

impl PanelAuth {
    fn as_str(self) -> &'static str {
        match self {
            Self::Key => "key",
            Self::Session => "session",
        }
    }
}

/// Only this server's own script, styles and API; no inline code, plugins, `<base>`,
/// form posts or framing. `img-src data:` is for the page's empty favicon.
pub(super) const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// The page and its assets, each a row the router serves *outside* its key guard.
pub(super) fn rows<S>(auth: PanelAuth, audit: bool) -> Vec<Row<S>>
where
    S: Clone + Send + Sync + 'static,
{
    let page = Row::documented(
        Scoping::NotByKey,
        __path_page,
        move |uri: OriginalUri| async move { page(uri, auth, audit) },
    );
    let assets = ASSETS.iter().map(|one| {
        Row::get(Scoping::NotByKey, one.path, move || async move {
            asset(one.body, one.content_type, "no-cache")
        })
    });
    std::iter::once(page).chain(assets).collect()
}

/// The assets' operations, added to the OpenAPI document from the table (the assets
/// share one handler, which one `#[utoipa::path]` could not describe five times).
pub(super) fn document_assets(paths: &mut Paths) {
    for one in ASSETS {
        let summary = format!("{} (no key needed: it holds no data)", one.summary);
        let media = one.content_type.split(';').next().unwrap_or_default();
        let content = ContentBuilder::new()
            .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
            .build();
        let response = ResponseBuilder::new()
            .description(summary.clone())
            .content(media, content)
            .build();
        let operation = OperationBuilder::new()
            .operation_id(Some(one.operation_id))
            .tag("panel")
            .summary(Some(summary))
            .security(SecurityRequirement::default())
            .response("200", response)
            .build();
        paths.add_path_operation(one.path, vec![HttpMethod::Get], operation);
    }
}

/// `GET /`: the page, naming its assets relative to the address it was asked for.
#[utoipa::path(
    get,
    path = "/",
    operation_id = "panelPage",
    tag = "panel",
    summary = "The key-management panel, a page for people (no key needed: it holds no data)",
    security(()),
    responses((status = 200, description = "The key-management panel, a page for people (no key needed: it holds no data)", body = String, content_type = "text/html")),
)]
fn page(OriginalUri(uri): OriginalUri, auth: PanelAuth, audit: bool) -> Response {
    let html = PAGE
        .replace(BASE_PLACEHOLDER, &asset_base(uri.path()))
        .replace(AUTH_PLACEHOLDER, auth.as_str())
        // Whether the manager has an event log: without one the audit routes do not
        // exist, and history.js stays out of the way.
        .replace(AUDIT_PLACEHOLDER, if audit { "on" } else { "off" });
    // The page is tiny and holds no data, but a stored copy could outlive a fix to it.
    asset(html, "text/html; charset=utf-8", "no-store")
}

fn asset(body: impl IntoResponse, content_type: &'static str, cache: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    for (name, value) in [
        (CONTENT_TYPE, content_type),
        (CACHE_CONTROL, cache),
        (CONTENT_SECURITY_POLICY, POLICY),
        (X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (REFERRER_POLICY, "no-referrer"),
        // For browsers that predate `frame-ancestors`.
        (X_FRAME_OPTIONS, "DENY"),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
        (
            HeaderName::from_static("cross-origin-resource-policy"),
            "same-origin",
        ),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// The prefix that makes the page's relative asset URLs land beside the router's
/// routes. A path ending in `/` is already the router's directory; otherwise the page
/// was asked for as `…/admin` and its assets are under `./admin/`. The `./` keeps a
/// segment holding `:` from reading as a URL scheme, and any byte outside the URL's
/// unreserved characters (and `%`, the path is already percent-encoded) is encoded, so
/// the result is safe inside an HTML attribute.
fn asset_base(path: &str) -> String {
    if path.ends_with('/') {
        return String::new();
    }
    let segment = path.rsplit('/').next().unwrap_or_default();
    if segment.is_empty() {
        return String::new();
    }
    let mut base = String::from("./");
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~%".contains(&byte) {
            base.push(char::from(byte));
        } else {
            base.push_str(&format!("%{byte:02X}"));
        }
    }
    base.push('/');
    base
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AdminRouter, router};
    use axum::Router;
    use axum::body::{Body, to_bytes};
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;
    use tower_apikey::InMemoryKeyStore;
    use tower_apikey::KeyManager;

    async fn get(app: &Router, path: &str) -> (StatusCode, axum::http::HeaderMap, String) {
        let request = Request::get(path).body(Body::empty()).unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        let (parts, body) = response.into_parts();
        let body = to_bytes(body, usize::MAX).await.unwrap();
        (
            parts.status,
            parts.headers,
            String::from_utf8(body.to_vec()).unwrap(),
        )
    }

    fn admin() -> Router {
        router(KeyManager::new(InMemoryKeyStore::new()))
    }

    #[tokio::test]
    async fn the_page_and_its_assets_are_public_with_security_headers() {
        let app = admin();
        for (path, content_type) in [
            ("/", "text/html; charset=utf-8"),
            ("/panel.js", "text/javascript; charset=utf-8"),
            ("/panel.css", "text/css; charset=utf-8"),
        ] {
            let (status, headers, body) = get(&app, path).await;
            assert_eq!(status, StatusCode::OK, "{path}");
            assert_eq!(headers[CONTENT_TYPE], content_type, "{path}");
            assert_eq!(headers[CONTENT_SECURITY_POLICY], POLICY, "{path}");
            assert_eq!(headers[X_CONTENT_TYPE_OPTIONS], "nosniff", "{path}");
            assert_eq!(headers[REFERRER_POLICY], "no-referrer", "{path}");
            assert!(!body.is_empty());
        }
        let (_, headers, html) = get(&app, "/").await;
        assert_eq!(headers[CACHE_CONTROL], "no-store");
        assert!(html.contains(r#"<script src="panel.js" defer></script>"#));
        assert!(!html.contains(BASE_PLACEHOLDER));
        assert!(html.contains(r#"<meta name="tower-apikey-auth" content="key">"#));
    }

    #[tokio::test]
    async fn behind_a_login_the_page_says_it_uses_the_session() {
        let app = AdminRouter::new(KeyManager::new(InMemoryKeyStore::new()))
            .behind_login()
            .into_router();
        let (status, _, html) = get(&app, "/").await;
        assert_eq!(status, StatusCode::OK);
        assert!(html.contains(r#"<meta name="tower-apikey-auth" content="session">"#));
        assert!(!html.contains(AUTH_PLACEHOLDER));
    }

    #[test]
    fn the_policy_forbids_inline_code_and_framing() {
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
        ] {
            assert!(POLICY.split("; ").any(|d| d == directive), "{directive}");
        }
        assert!(!POLICY.contains("unsafe"));
    }

    #[tokio::test]
    async fn the_json_api_still_needs_an_admin_key() {
        let app = admin();
        let (status, _, _) = get(&app, "/keys").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, _, body) = get(&app, "/nope").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(body.contains("no such key-management route"));
    }

    #[tokio::test]
    async fn the_page_names_its_assets_relative_to_where_it_is_mounted() {
        let nested = Router::new().nest("/admin", admin());
        let (status, _, html) = get(&nested, "/admin").await;
        assert_eq!(status, StatusCode::OK);
        assert!(html.contains(r#"src="./admin/panel.js""#), "{html}");
        assert!(html.contains(r#"href="./admin/panel.css""#));
        let (status, _, _) = get(&nested, "/admin/panel.js").await;
        assert_eq!(status, StatusCode::OK);

        let service = Router::new().nest_service("/ops/admin", admin());
        let (status, _, html) = get(&service, "/ops/admin/").await;
        assert_eq!(status, StatusCode::OK);
        assert!(html.contains(r#"src="panel.js""#));
        let (status, _, html) = get(&service, "/ops/admin").await;
        assert_eq!(status, StatusCode::OK);
        assert!(html.contains(r#"src="./admin/panel.js""#));
        let (status, _, _) = get(&service, "/ops/admin/keys").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }

    #[test]
    fn asset_bases_are_relative_and_safe_in_an_attribute() {
        assert_eq!(asset_base("/"), "");
        assert_eq!(asset_base("/admin/"), "");
        assert_eq!(asset_base("/admin"), "./admin/");
        assert_eq!(asset_base("/a/b%20c"), "./b%20c/");
        assert_eq!(asset_base("/x:y\"<"), "./x%3Ay%22%3C/");
    }

    #[tokio::test]
    async fn the_panel_can_be_left_out() {
        let app = AdminRouter::new(KeyManager::new(InMemoryKeyStore::new()))
            .panel(false)
            .into_router();
        for path in ["/", "/panel.js", "/panel.css"] {
            let (status, _, _) = get(&app, path).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        }
    }

    /// The rules the page's security rests on, checked in its sources: what the CSP
    /// would block anyway, and what no policy can catch.
    #[test]
    fn the_assets_keep_keys_out_of_markup_console_and_local_storage() {
        let body = |path: &str| ASSETS.iter().find(|a| a.path == path).unwrap().body;
        let style = body("/panel.css");
        let scripts = ASSETS
            .iter()
            .filter(|a| a.content_type.starts_with("text/javascript"));
        for (script, forbidden) in scripts.flat_map(|script| {
            [
                "innerHTML",
                "outerHTML",
                "insertAdjacentHTML",
                "document.write",
                "console.",
                "localStorage",
                "eval(",
                "new Function",
            ]
            .map(|forbidden| (script, forbidden))
        }) {
            assert!(
                !script.body.contains(forbidden),
                "{} uses {forbidden}",
                script.path
            );
        }
        assert!(body("/panel.js").contains("sessionStorage"));
        let html = PAGE.to_ascii_lowercase();
        assert!(!html.contains(" style="), "no inline styles");
        assert!(!html.contains("<style"), "no inline style sheets");
        assert_eq!(
            html.matches("<script").count(),
            html.matches("<script src=").count(),
            "no inline scripts"
        );
        let handlers = html
            .split(|c: char| c.is_whitespace())
            .filter(|word| word.starts_with("on") && word.contains('='))
            .collect::<Vec<_>>();
        assert!(handlers.is_empty(), "inline event handlers: {handlers:?}");
        assert!(!html.contains("http://") && !html.contains("https://"));
        assert!(!style.contains("http://") && !style.contains("https://"));
        assert!(!style.contains("@import"));
    }
}
