//! Key management over HTTP (feature `admin`): an axum [`Router`] an application mounts,
//! guarded by the middleware with scope [`admin:keys`](ADMIN_SCOPE).
//!
//! | method and path | does | answer |
//! |---|---|---|
//! | `POST /keys` `{"name", "scopes", "expires_at"?}` | create | 201, the record and `"key"` (shown once) |
//! | `GET /keys` | list, newest first | 200, a JSON array of records |
//! | `GET /keys/{id}` | one record | 200 / 404 |
//! | `POST /keys/{id}/rotate` `{"overlap_secs"?}` or no body | new key, same name and scopes | 201, like create |
//! | `DELETE /keys/{id}` | revoke | 204; revoking twice is 204 again |
//!
//! A record is a JSON object with `id`, `name`, `scopes`, `created_at`, `expires_at`,
//! `ends_at`, `revoked_at`, `last_used_at` and `rotated_from`; times are RFC 3339 in UTC
//! (`2026-05-01T12:00:00Z`), absent ones `null`. Only the answers to create and rotate add
//! `"key"`: the plaintext, which exists nowhere else and cannot be shown again. No answer
//! ever carries a digest.
//!
//! # Requests
//!
//! - **Create**: `name` (1–128 characters, no control characters, no surrounding white
//!   space) and `scopes` (an array, `[]` for a key that only authenticates) are required;
//!   `expires_at` (RFC 3339, any offset) is optional and defaults to the 365-day maximum.
//!   Any other field is refused, so that a typo such as `"expires"` cannot silently give
//!   a key the longest life.
//! - **Rotate**: no body (or an empty one) keeps the old key working until it is revoked,
//!   so an integration can switch and verify first. `{"overlap_secs": N}` ends the old
//!   key N seconds from now: its `ends_at` is set (unless it expires sooner) and its
//!   `expires_at` stays as it was; from then on it is refused as "ended by rotation".
//!   `0` revokes it at once, for a leaked key. N is at most 365 days. A revoked key
//!   cannot be rotated (409).
//! - Bodies are JSON (`content-type: application/json`, or any `application/*+json`)
//!   and at most [`MAX_BODY_BYTES`].
//!
//! # Errors
//!
//! Every error is an RFC 9457 problem document (`application/problem+json`) whose
//! `detail` says what to do; nothing is stored when a request fails.
//!
//! | problem | status |
//! |---|---|
//! | no key, or not `admin:keys` | 401 / 403, from the middleware |
//! | too many wrong keys from the client's address (with a [`FailureThrottle`]) | 429 with `Retry-After`, from the middleware |
//! | not JSON (`content-type`) | 415 |
//! | body over [`MAX_BODY_BYTES`] | 413 |
//! | body is not well-formed JSON | 400 |
//! | a field is missing, unknown, of the wrong type or invalid | 422, with `errors` |
//! | unknown key id, or a path segment that is not a key id | 404 |
//! | rotating a revoked key | 409 |
//! | the store is unavailable | 503 with `Retry-After` |
//!
//! A 422 lists every invalid field at once in `errors`, each `{"field", "detail"}`, and
//! repeats the first one's name in a top-level `field`:
//!
//! ```json
//! {"type":"about:blank","title":"Unprocessable Entity","status":422,
//!  "detail":"the request has invalid fields; see errors","field":"name",
//!  "errors":[{"field":"name","detail":"a key name cannot be empty; …"}]}
//! ```
//!
//! A malformed id in a path (`/keys/not-an-id`) is 404, like an unknown one: either way
//! no key is there, and one answer keeps clients simple.
//!
//! # Mounting
//!
//! The router authenticates its own requests with an [`ApiKeyV2Layer`] over the
//! manager's store, requiring `admin:keys`, so it is safe wherever it is mounted. Nest it
//! *outside* the application's own authentication layer (after `route_layer`, or in a
//! router that layer does not wrap), or requests would be checked twice:
//!
//! ```
//! use axum::{Router, routing::get};
//! use tower_apikey::{ApiKeyV2Layer, InMemoryKeyStore, KeyManager, admin};
//!
//! let store = InMemoryKeyStore::new();
//! let manager = KeyManager::new(store.clone());
//! let app: Router = Router::new()
//!     .route("/ping", get(|| async { "pong" }))
//!     .route_layer(ApiKeyV2Layer::new(store))
//!     .nest("/admin", admin::router(manager));
//! ```
//!
//! [`AdminRouter`] sets the realm, the usage tracker, the failure throttle and the
//! trusted proxies of that guard.
//!
//! # The panel
//!
//! The router also serves "Connector Access Control", a key-management page for people:
//! `GET /` (so `/admin` when nested there; see below for `/admin/`), with its script
//! and stylesheet at `GET /panel.js` and `GET /panel.css`. The administrator pastes an
//! admin key once; the page keeps it in the tab's `sessionStorage` and sends it with
//! every call to the JSON API above. It lists the keys with their state (active,
//! expiring within 30 days, expired, ended by rotation, revoked), the end a rotation
//! scheduled, last-used time and rotation links,
//! flags dormant keys (unused for 30 days, or never used and older than 7 days), and
//! creates, rotates and revokes keys, showing a new key once.
//!
//! The page and its assets need no key (they hold no data), are compiled into the crate
//! (no CDN, no build step), and carry a Content-Security-Policy that allows only this
//! server's own script, styles and API, with `frame-ancestors 'none'`,
//! `X-Content-Type-Options: nosniff` and `Referrer-Policy: no-referrer`.
//!
//! `Router::nest("/admin", …)` routes `/admin` to the page but not `/admin/` (axum's
//! nesting never matches the trailing slash); `Router::nest_service("/admin", …)`
//! routes both. The page finds its assets and the API relative to the address it was
//! opened at, so either works, as does a proxy that strips a path prefix.
//! [`AdminRouter::panel`] leaves the page out for an API-only deployment.

mod body;
mod panel;
mod problem;
mod view;

use std::fmt;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header::LOCATION};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::{
    ApiKeyV2Layer, CreatedKey, FailureThrottle, KeyId, KeyManager, KeyStoreAdmin, NewKey, Scopes,
    TrustedProxies, UsageTracker,
};
use body::{CreateRequest, RotateRequest};
use problem::AdminError;
use view::{CreatedView, KeyView};

/// The scope a key needs to use the admin router.
pub const ADMIN_SCOPE: &str = "admin:keys";

/// The largest request body the admin router reads: 16 KiB, several times the largest
/// valid create request (a 128-character name and 64 scopes of 128 bytes).
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// The key-management router with the defaults: guarded by [`ApiKeyV2Layer`] over the
/// manager's store (same prefix and clock), realm `api`, no usage tracking.
///
/// See the [module docs](self) for routes, bodies and errors.
pub fn router<S>(manager: KeyManager<S>) -> Router
where
    S: KeyStoreAdmin + Clone,
{
    AdminRouter::new(manager).into_router()
}

/// Builds the key-management [`Router`], for when the defaults of [`router`] do not fit.
///
/// ```
/// use tower_apikey::{InMemoryKeyStore, KeyManager, UsageTracker, admin::AdminRouter};
///
/// let store = InMemoryKeyStore::new();
/// let tracker = UsageTracker::new(store.clone());
/// let admin: axum::Router = AdminRouter::new(KeyManager::new(store))
///     .realm("billing")
///     .usage_tracker(tracker)
///     .into_router();
/// ```
pub struct AdminRouter<S> {
    manager: KeyManager<S>,
    guard: ApiKeyV2Layer,
    panel: bool,
}

impl<S> AdminRouter<S>
where
    S: KeyStoreAdmin + Clone,
{
    /// A router over `manager`, guarded by an [`ApiKeyV2Layer`] that looks keys up in the
    /// manager's store with the manager's prefix and clock, and requires
    /// [`ADMIN_SCOPE`].
    pub fn new(manager: KeyManager<S>) -> Self {
        let required = Scopes::new([ADMIN_SCOPE]).expect("`admin:keys` is a valid scope");
        let guard = manager.layer().require_scopes(required);
        Self {
            manager,
            guard,
            panel: true,
        }
    }

    /// The realm in the guard's challenges (default `api`); use the application's.
    ///
    /// # Panics
    ///
    /// If `realm` holds `"`, `\` or anything but printable ASCII.
    pub fn realm(mut self, realm: &str) -> Self {
        self.guard = self.guard.realm(realm);
        self
    }

    /// Records the uses of admin keys in the application's tracker, so their
    /// `last_used_at` moves like every other key's.
    pub fn usage_tracker(mut self, tracker: UsageTracker) -> Self {
        self.guard = self.guard.usage_tracker(tracker);
        self
    }

    /// Throttles failed keys per client address in the guard (off by default): pass a
    /// clone of the application's own [`FailureThrottle`], so that guesses at the admin
    /// routes and at the API count together. See
    /// [`ApiKeyV2Layer::throttle_failures`].
    pub fn throttle_failures(mut self, throttle: FailureThrottle) -> Self {
        self.guard = self.guard.throttle_failures(throttle);
        self
    }

    /// The reverse proxies whose forwarding header names the client address, as in
    /// [`ApiKeyV2Layer::trusted_proxies`].
    pub fn trusted_proxies(mut self, proxies: TrustedProxies) -> Self {
        self.guard = self.guard.trusted_proxies(proxies);
        self
    }

    /// Whether the router serves the [panel](self#the-panel) at `GET /` (default
    /// `true`). The JSON API is the same either way.
    pub fn panel(mut self, enabled: bool) -> Self {
        self.panel = enabled;
        self
    }

    /// The router, ready to `nest` (for example at `/admin`).
    pub fn into_router(self) -> Router {
        let api = Router::new()
            .route("/keys", post(create::<S>).get(list::<S>))
            .route("/keys/{id}", get(show::<S>).delete(revoke::<S>))
            .route("/keys/{id}/rotate", post(rotate::<S>))
            // `route_layer`: unknown paths get the 404 below without a key, like any
            // other route the application does not have.
            .route_layer(self.guard);
        // Merged after the guard, so that the page and its assets, which hold no data,
        // load without a key; the page then sends the key with every API call.
        let routes = if self.panel {
            api.merge(panel::routes())
        } else {
            api
        };
        routes
            .fallback(|| async { AdminError::NoSuchRoute })
            // Set here, inside the application's own limit, so that this one applies.
            .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
            .with_state(self.manager)
    }
}

impl<S: fmt::Debug> fmt::Debug for AdminRouter<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminRouter")
            .field("manager", &self.manager)
            .field("guard", &self.guard)
            .field("panel", &self.panel)
            .finish()
    }
}

/// `POST /keys`
async fn create<S: KeyStoreAdmin>(
    State(manager): State<KeyManager<S>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, AdminError> {
    let json = body::read_json(&headers, body)?;
    let request = CreateRequest::parse(json, &manager)?;
    let mut new = NewKey::new(request.name, request.scopes);
    if let Some(at) = request.expires_at {
        new = new.expires_at(at);
    }
    let created = manager.create(new).await?;
    created_answer(&created, format!("keys/{}", created.record.id()))
}

/// `GET /keys`
async fn list<S: KeyStoreAdmin>(
    State(manager): State<KeyManager<S>>,
) -> Result<Response, AdminError> {
    let records = manager.list().await?;
    let views = records
        .iter()
        .map(KeyView::new)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(axum::Json(views).into_response())
}

/// `GET /keys/{id}`
async fn show<S: KeyStoreAdmin>(
    State(manager): State<KeyManager<S>>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, AdminError> {
    let record = manager.get(&key_id(id)?).await?;
    Ok(axum::Json(KeyView::new(&record)?).into_response())
}

/// `POST /keys/{id}/rotate`
async fn rotate<S: KeyStoreAdmin>(
    State(manager): State<KeyManager<S>>,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, AdminError> {
    let id = key_id(id)?;
    let overlap = match body::read_optional_json(&headers, body)? {
        None => None,
        Some(json) => RotateRequest::parse(json)?.overlap,
    };
    let created = manager.rotate(&id, overlap).await?;
    // Relative to `…/keys/{old}/rotate`, this names `…/keys/{new}` wherever the router
    // is mounted.
    created_answer(&created, format!("../{}", created.record.id()))
}

/// `DELETE /keys/{id}`
async fn revoke<S: KeyStoreAdmin>(
    State(manager): State<KeyManager<S>>,
    id: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, AdminError> {
    manager.revoke(&key_id(id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The id in the path. A segment that cannot be a key id names no key: 404.
fn key_id(path: Result<Path<String>, PathRejection>) -> Result<KeyId, AdminError> {
    let Ok(Path(id)) = path else {
        return Err(AdminError::NotFound);
    };
    KeyId::new(&id).map_err(|_| AdminError::NotFound)
}

/// 201 with the new record, its one-time `"key"` and a relative `Location`.
fn created_answer(created: &CreatedKey, location: String) -> Result<Response, AdminError> {
    let view = CreatedView {
        record: KeyView::new(&created.record)?,
        key: created.key.expose_secret(),
    };
    let mut response = (StatusCode::CREATED, axum::Json(view)).into_response();
    // A key id is base62, so the location is always a valid header value.
    if let Ok(location) = HeaderValue::try_from(location) {
        response.headers_mut().insert(LOCATION, location);
    }
    // The answer holds a secret: no cache may keep it.
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    Ok(response)
}

/// The longest rotation overlap: a key never lives longer than 365 days anyway.
const MAX_OVERLAP: Duration = crate::MAX_LIFETIME;
