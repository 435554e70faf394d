//! Key management over HTTP for [`tower_apikey`]: an axum [`Router`] an application mounts,
//! guarded by the middleware with scope [`admin:keys`](ADMIN_SCOPE), or by the
//! application's own login ([`AdminRouter::behind_login`]).
//!
//! | method and path | does | answer |
//! |---|---|---|
//! | `POST /keys` `{"name", "scopes", "expires_at"?, "rate_limit"?, "quota"?, "allowed_ips"?}` | create | 201, the record and `"key"` (shown once) |
//! | `GET /keys` `?limit=&cursor=&state=&q=&scope=&sort=` | one page of keys, newest first by default ([listing](#listing)) | 200, a JSON array of records; the next page in `Link` |
//! | `GET /keys/{id}` | one record | 200 / 404 |
//! | `POST /keys/{id}/rotate` `{"overlap_secs"?}`, `{"until_first_use": true, "grace_secs"?}` or no body | new key, same name and scopes | 201, like create |
//! | `PATCH /keys/{id}` `{"name"?, "rate_limit"?, "quota"?, "allowed_ips"?}` | change the name, limits or addresses | 200, the record |
//! | `DELETE /keys/{id}` | revoke, with the keys it minted for itself ([heirs](#heirs)) | 200, `{"record", "heirs"}`; revoking twice answers the record again, with no heirs |
//! | `GET /keys/{id}/heirs` | the keys that revoking it now would revoke with it | 200, a JSON array of records |
//! | `POST /self/rotate` the rotate body, or none for `until_first_use` with 300 s of grace | the calling key rotates itself; needs only [`keys:rotate-self`](ROTATE_SELF_SCOPE) | 201, like create |
//! | `GET /scopes` | the scope catalogue, and what the caller may grant | 200 |
//! | `GET /openapi.json` | this API as an OpenAPI 3.1 document ([OpenAPI](#openapi)) | 200 |
//!
//! A record is a JSON object with `id`, `name`, `scopes`, `created_at`, `expires_at`,
//! `ends_at`, `revoked_at`, `last_used_at`, `rotated_from`, `created_by` and `revoked_by`,
//! and, for a key that has them, `rate_limit`, `quota` and `allowed_ips` (as create
//! takes them) and `predecessor_grace_secs` (the successor of an `until_first_use`
//! rotation: its first use ends `rotated_from` that many seconds later) and `recent_ips`
//! (its last 5 client addresses, newest first, written with last-used times);
//! times are RFC 3339 in UTC (`2026-05-01T12:00:00Z`), absent ones `null`.
//! `created_by` and `revoked_by` say who acted: the admin key's id, the name the
//! application's login gives a person, or `null` when the application itself acted
//! (through [`KeyManager`]'s own methods). Only the answers to create and rotate add
//! `"key"`: the plaintext, which exists nowhere else and cannot be shown again. No answer
//! ever carries a digest.
//!
//! # Who may do what
//!
//! Every request acts for an [`Actor`](tower_apikey::Actor): the admin key that authenticated it
//! (named by its id, granting its own scopes), or, [behind a login](#behind-the-applications-login),
//! the person the application signed in. The router manages keys through
//! [`KeyManager::acting_as`](tower_apikey::KeyManager::acting_as), so:
//!
//! - a key can only be given scopes the actor's own scopes grant (wildcards count):
//!   a key holding `admin:keys` alone can create keys holding `admin:keys` or nothing;
//!   to mint `reports:read` it must hold `reports:read` or `reports:*`. Otherwise 403,
//!   and the problem document's `not_grantable` names the scopes;
//! - rotating a key copies its scopes, revoking a key can cut off the people who
//!   hold more, and changing a key's limits can lift them: all three need the actor
//!   to grant every scope of that key (403 likewise);
//! - restrictions are part of the ceiling (DESIGN §12): an admin key with a rate limit,
//!   a quota or an allowlist may not loosen its own, and every key it creates, rotates
//!   (the new key copies the old key's limits) or changes must be at least as
//!   restricted as itself: a rate limit with a burst and a rate no higher, a quota over
//!   the same period with no more requests, an allowlist inside its own; a missing limit
//!   is looser than any. Otherwise 403, and the problem document's `too_loose` names the
//!   fields, its `detail` the loosest value each may have;
//! - with a [`ScopeCatalogue`] ([`AdminRouter::catalogue`]), create refuses any scope
//!   it does not declare (422 naming it); rotation keeps a key's scopes as they are;
//! - rotating a revoked, expired or ended key is refused (409): rotation never revives
//!   a key;
//! - rotation never grows a key's life: the new key lives as long as the old key was
//!   created to live (a one-hour key rotates into a one-hour key), at most 365 days;
//! - a key that already has a live successor (a key rotated from it, still active)
//!   cannot be rotated again (409), so that a leaked copy cannot mint a second heir;
//!   rotate the successor, or revoke it first if its plaintext was lost;
//! - `POST /self/rotate` is authenticated by the key it rotates, which needs only
//!   [`keys:rotate-self`](ROTATE_SELF_SCOPE) (not `admin:keys`, which alone does not
//!   allow it): an integration replaces its own key, and nothing else (see
//!   [Self-rotation](self#self-rotation));
//! - records and log lines name the actor.
//!
//! `GET /scopes` answers the catalogue (`null` without one), each scope with whether
//! the caller may grant it, and who the caller is:
//!
//! ```json
//! {"catalogue": [{"scope": "reports:read", "description": "Read reports", "grantable": true}],
//!  "actor": {"name": "7Fq2LxW9aZ3kPm4R", "may_grant": ["admin:keys", "reports:read"]}}
//! ```
//!
//! # Requests
//!
//! - **Create**: `name` (1–128 characters, no control characters, no invisible or
//!   text-reordering characters such as zero-width spaces and bidirectional controls, no
//!   surrounding white space) and `scopes` (an array, `[]` for a key that only
//!   authenticates) are required;
//!   `expires_at` (RFC 3339, any offset) is optional and defaults to the 365-day maximum.
//!   The limits are optional (DESIGN §12): `"rate_limit": {"requests": N, "per_secs": S}`
//!   (S at most 86400), `"quota": {"requests": N, "per": "day" | "month"}`, and
//!   `"allowed_ips"`, 1 to 64 addresses or CIDR networks; each problem is a 422 naming the
//!   field (`rate_limit.requests`, `quota.per`, …).
//!   Any other field is refused, so that a typo such as `"expires"` cannot silently give
//!   a key the longest life.
//! - **Rotate**: no body (or an empty one) keeps the old key working until it is revoked,
//!   so an integration can switch and verify first. `{"overlap_secs": N}` ends the old
//!   key N seconds from now: its `ends_at` is set (unless it expires sooner) and its
//!   `expires_at` stays as it was; from then on it is refused as "ended by rotation".
//!   `0` revokes it at once, for a leaked key. N is at most 365 days. A revoked,
//!   expired or ended key cannot be rotated (409).
//!   `{"until_first_use": true, "grace_secs": N}` keeps the old key working until N
//!   seconds (default 300, at most 7 days) after the new key's first proven use, then
//!   ends it (`ends_at` is set then): the integration switches when it is ready, and the
//!   old key goes only once the new one has worked. The first use is what the usage
//!   tracker writes, so it is seen within one flush period; with several instances the
//!   end holds everywhere within one flush period plus the grace plus the cache's
//!   revocation bound. Refused with 409 where last-used times do not reach the store (the
//!   end would never come; see [`KeyManager::tracks_usage`]); combined with
//!   `overlap_secs`, 422. The new key's record shows `predecessor_grace_secs`. A new
//!   key that is never used leaves the old one to its own end.
//! - **Change** (`PATCH`): `name`, `rate_limit`, `quota` and `allowed_ips`, as create
//!   takes them; a field left out stays as it is, and `null` removes a limit or the
//!   allowlist (a name cannot be removed). `scopes` cannot be changed (422 naming it):
//!   a key keeps the scopes it was granted; create a new key instead. Every instance
//!   enforces the change within the store's revocation bound.
//! - Bodies are JSON (`content-type: application/json`, or any `application/*+json`)
//!   and at most [`MAX_BODY_BYTES`]. A field given twice (`{"overlap_secs": 0,
//!   "overlap_secs": null}`) is refused rather than resolved one way or the other.
//!
//! # Listing
//!
//! `GET /keys` answers one page, a JSON array, and names the next one in
//! `Link: <?…&cursor=…>; rel="next"` (RFC 8288), relative to the request and keeping
//! its filters, so a client behind any mount point follows it as it is. The last page
//! has no `Link`. Parameters, each at most once; any other is a 422:
//!
//! | parameter | means |
//! |---|---|
//! | `limit` | keys per page, 1 to 1000 (default 100) |
//! | `cursor` | where the page starts: the value a `Link` gave; opaque |
//! | `state` | `active`; `expiring` (active, ending within 30 days); `expired` (past its expiry or a rotation's end); `revoked`; `dormant` (active, and last used more than 30 days ago, or never used and created more than 7 days ago) |
//! | `q` | name or id contains this, ignoring case; at most 128 characters |
//! | `scope` | keys whose scopes grant this one (`reports:*` grants `reports:read`) |
//! | `sort` | `created`, `last_used` or `expires`, `-` first for descending; default `-created` |
//!
//! Ties are broken by id, and a key never used counts as used before every other, so
//! each order is total and a cursor names a place in it, not an offset: keys created
//! between two requests neither repeat nor hide keys on the next page. A cursor is
//! refused (422) under a sort other than the one it was made for. States are judged at
//! the manager's clock, never the database's. See [`KeyQuery`](tower_apikey::store::KeyQuery).
//!
//! # Errors
//!
//! Every error is an RFC 9457 problem document (`application/problem+json`) whose
//! `detail` says what to do; nothing is stored when a request fails.
//!
//! | problem | status |
//! |---|---|
//! | no key, or not `admin:keys` | 401 / 403, from the middleware |
//! | behind a login: no [`Actor`](tower_apikey::Actor) in the request | 401 |
//! | behind a login: an unsafe method from another site | 403 |
//! | a scope the actor may not grant, or a key beyond what it may grant | 403, with `not_grantable` |
//! | a key less restricted than the acting key, or the acting key loosening itself | 403, with `too_loose` |
//! | too many wrong keys from the client's address (with a [`FailureThrottle`]) | 429 with `Retry-After`, from the middleware |
//! | not JSON (`content-type`) | 415 |
//! | body over [`MAX_BODY_BYTES`] | 413 |
//! | body is not well-formed JSON | 400 |
//! | a field is missing, unknown, repeated, of the wrong type or invalid, or a scope the catalogue does not declare | 422, with `errors` |
//! | unknown key id, or a path segment that is not a key id | 404 |
//! | `POST /self/rotate` with a key lacking `keys:rotate-self` | 403 `insufficient_scope`, from the middleware |
//! | rotating a revoked, expired or ended key, or one with a live successor | 409 |
//! | `until_first_use` where no usage tracker writes the store | 409 |
//! | the store is unavailable | 503 with `Retry-After` |
//!
//! A 422 lists every invalid field at once in `errors`, each `{"field", "detail"}`, and
//! repeats the first one's name in a top-level `field`; of unknown fields it lists the
//! first 20, so that a body of nothing but unknown fields cannot make a large answer:
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
//! # OpenAPI
//!
//! `GET /openapi.json` answers an OpenAPI 3.1 document of every route above (and the
//! panel's), generated from the code: each route is registered from its handler's
//! `#[utoipa::path]`, the answers' schemas are derived from the types the handlers
//! serialise, and the bodies' schemas from the very types the handlers read them into.
//! It describes the security scheme (`Authorization: ApiKey-v2 <key>`, an
//! `apiKey` in the `Authorization` header), every parameter, body, answer and header
//! (`Location`, `Link`, `Retry-After`, `WWW-Authenticate`), every problem document, and
//! links from each created key to the operations on it. With a [`ScopeCatalogue`], the
//! scopes a key may be given are the catalogue's `enum`. Rules a schema cannot state (an
//! `expires_at` in the future and at most 365 days ahead, the scopes the actor may grant,
//! a cursor made for this `sort`, a key that may still be rotated) are described, with
//! their 422, 403 and 409.
//!
//! The document sits behind the same guard as the API (or the application's login):
//! it holds no key, but it maps a key-management endpoint, which nobody without a key
//! needs to see. Tools that read it send the admin key as they would to the API; an
//! application that wants it public serves [`AdminRouter::openapi_json`] on a route of
//! its own. Paths are relative to where the router is mounted (`servers` is `.`).
//! The document is built once, when the router is.
//!
//! # Self-rotation
//!
//! `POST /self/rotate` takes the rotate body and answers like rotate; the key in the
//! `Authorization` header is the one rotated, and the record's `created_by` is its own
//! id. Without a body (or with one that names no end) the old key ends 300 s after the
//! new key's first use, as `{"until_first_use": true}` asks; `{"overlap_secs": null}`
//! keeps it until it is revoked, as a plain rotation. The route authenticates by key even
//! [behind the application's login](#behind-the-applications-login), with the guard's
//! settings (realm, usage tracker, throttle, proxies): it is for machines, so the
//! application's login layer must let requests to it through without a session.
//! The crate's client layer (feature `client`) calls it when responses start carrying
//! `ApiKey-Expires`.
//!
//! # Heirs
//!
//! A key's heirs are the keys it minted for itself with `POST /self/rotate` (`rotated_from`
//! and `created_by` are its own id), and theirs in turn. `DELETE /keys/{id}` of a key
//! that still works revokes its live heirs with it, in the same step, as the same actor:
//! whoever self-rotated a leaked copy first keeps nothing once the owner revokes the
//! leaked key. A key that has already ended by its rotation (or expired) revokes nothing
//! more, so an integration's new key survives when its owner tidies up the old one. The
//! answer lists the heirs it revoked:
//!
//! ```json
//! {"record": {"id": "RjNF98fThLsvFSDV", "revoked_at": "2026-05-01T12:00:00Z", …},
//!  "heirs": [{"id": "Hs5ZZI1y4m5QeDYC", "rotated_from": "RjNF98fThLsvFSDV", …}]}
//! ```
//!
//! and each heir's `revoked` event names the key whose revocation revoked it in
//! `detail.related_key_id`. `GET /keys/{id}/heirs` answers beforehand the records a
//! revocation now would take with it, as the panel's revoke dialog shows them.
//!
//! # Mounting
//!
//! The router authenticates its own requests with a layer of its manager
//! ([`KeyManager::layer`]), requiring `admin:keys`, so it is safe wherever it is mounted.
//! Nest it *outside* the application's own authentication layer (after `route_layer`,
//! or in a router that layer does not wrap), or requests would be checked twice:
//!
//! ```
//! use axum::{Router, routing::get};
//! use tower_apikey::{InMemoryKeyStore, KeyManager};
//! use tower_apikey_admin::AdminRouter;
//!
//! let manager = KeyManager::new(InMemoryKeyStore::new());
//! let layer = manager.layer().realm("billing");
//! // The guard is the application's layer: one realm, one throttle, and an admin
//! // key's requests here and to the API spend one rate limit and one quota.
//! let admin = AdminRouter::new(manager).guard(layer.clone()).into_router();
//! let app: Router = Router::new()
//!     .route("/ping", get(|| async { "pong" }))
//!     .route_layer(layer)
//!     .nest("/admin", admin);
//! ```
//!
//! Every layer of one manager records uses in its tracker and counts limits in one
//! place (across instances with the manager's shared limits), so the default guard,
//! `manager.layer()`, already does both; [`AdminRouter::guard`] gives it the
//! application's realm, failure throttle and trusted proxies too.
//!
//! # Behind the application's login
//!
//! An application whose administrators already sign in to it can put the router behind
//! that login instead of the key guard: [`AdminRouter::behind_login`] removes the guard,
//! and the application's layer, after authenticating a person, inserts an [`Actor`](tower_apikey::Actor)
//! into the request's extensions, with the scopes that person may grant. A request
//! without one gets 401. `examples/admin_behind_login.rs` does it with `axum-login`:
//!
//! ```
//! use axum::{Router, extract::Request, middleware::{self, Next}, response::Response};
//! use tower_apikey::{Actor, InMemoryKeyStore, KeyManager, Scopes, manager::Tenancy};
//! use tower_apikey_admin::AdminRouter;
//!
//! /// Stands in for the application's login: who is signed in, and what they may grant.
//! async fn signed_in(mut request: Request, next: Next) -> Response {
//!     let may_grant = Scopes::new(["reports:read"]).expect("valid scopes");
//!     let alice = Actor::person("alice@example.com", may_grant, Tenancy::Operator).expect("a valid name");
//!     request.extensions_mut().insert(alice);
//!     next.run(request).await
//! }
//!
//! let admin: Router = AdminRouter::new(KeyManager::new(InMemoryKeyStore::new()))
//!     .behind_login()
//!     .into_router()
//!     .layer(middleware::from_fn(signed_in));
//! ```
//!
//! Sessions usually ride on cookies, which a browser sends with requests that other
//! sites make it send. So behind a login the router refuses unsafe methods (`POST`, `PATCH`,
//! `DELETE`) from another origin: a request whose `Sec-Fetch-Site` is `cross-site` or
//! `same-site`, or, from a browser that does not send that header, whose `Origin` is
//! not the request's own host, gets 403. Clients that are not browsers send neither
//! header and are not affected. Set the session cookie `SameSite=Strict` or `Lax`
//! as well.
//!
//! # The panel
//!
//! The router also serves "Connector Access Control", a key-management page for people:
//! `GET /` (so `/admin` when nested there; see below for `/admin/`), with its script
//! and stylesheet at `GET /panel.js` and `GET /panel.css` (and its parts at
//! `GET /dom.js`, `GET /history.js` and `GET /limits.js`). With the key guard, the
//! administrator pastes an admin key once; the page keeps it in the tab's
//! `sessionStorage` and sends it with every call to the JSON API above. Behind a login,
//! the page asks for nothing: the browser's session cookie goes with each call. It finds
//! keys among thousands: a search by name or id, a state filter and sortable columns,
//! each answered by `GET /keys` one page (100 keys) at a time, with "Show more keys"
//! following its `Link` header, and "Export CSV" of every key the search and filter
//! match (name, id, scopes, created, expires, ends, last used, state, created_by; never
//! a key or digest; every cell quoted, and a `'` before any `=`, `+`, `-` or `@` that
//! starts a cell or follows a `,`, `;` or tab inside it, so that no spreadsheet runs a
//! formula whatever its list separator), built in the browser from pages of 1000. It
//! lists
//! the keys with their state (active,
//! expiring within 30 days, expired, ended by rotation, revoked), the end a rotation
//! scheduled, last-used time and rotation links,
//! flags dormant keys (unused for 30 days, or never used and older than 7 days), shows
//! who created and revoked each key, and creates, rotates and revokes keys, showing a
//! new key once. Each key's limits show beside its scopes and its recent addresses
//! beside its last use; "Limits" edits the name, limits and allowed addresses through
//! `PATCH /keys/{id}`; its `recent_ips` are listed newest first (the newest with the
//! key's last use), unchecked, and "Restrict to checked addresses" fills the allowlist
//! with those checked once a confirmation has listed them. With a catalogue, it offers the declared scopes as checkboxes with
//! their descriptions, those the signed-in actor may not grant disabled.
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

#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs, unreachable_pub, unsafe_code)]
#![warn(rust_2018_idioms, missing_debug_implementations)]

mod acting;
mod create_body;
mod cross_origin;
mod events;
mod heirs;
mod json;
mod key_id;
mod limits_body;
mod list;
mod openapi;
mod page;
mod panel;
mod patch_body;
mod problem;
mod rotate_body;
mod routes;
mod self_rotate;
mod utc;
mod view;
mod wire;

use std::fmt;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header::LOCATION};
use axum::middleware::map_request;
use axum::response::{IntoResponse, Response};

use acting::Acting;
use create_body::CreateKeyBody;
use key_id::{KeyIdParam, key_id};
use panel::PanelAuth;
use patch_body::UpdateKeyBody;
use problem::AdminError;
use rotate_body::{RotateBody, RotateRequest};
use routes::{Row, Scoping};
use tower_apikey::ApiKeyV2Layer;
use tower_apikey::KeyStoreAdmin;
use tower_apikey::Scopes;
use tower_apikey::client_addr::TrustedProxies;
use tower_apikey::limits::SharedLimits;
use tower_apikey::manager::{OldKeyPlan, ScopeCatalogue};
use tower_apikey::middleware::FailureThrottle;
use tower_apikey::store::KeyStoreUpdate;
use tower_apikey::usage::UsageTracker;
use tower_apikey::{CreatedKey, KeyManager};
use view::{CreatedView, KeyView, ScopesView};

pub use self_rotate::ROTATE_SELF_SCOPE;

/// [`ADMIN_SCOPE`] as the scopes a guard requires.
fn admin_scope() -> Scopes {
    Scopes::new([ADMIN_SCOPE]).expect("`admin:keys` is a valid scope")
}

/// The scope a key needs to use the admin router.
pub const ADMIN_SCOPE: &str = "admin:keys";

/// The largest request body the admin router reads: 16 KiB, several times the largest
/// valid create request (a 128-character name and 64 scopes of 128 bytes).
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// The key-management router with the defaults: guarded by a layer of the manager
/// ([`KeyManager::layer`]: same store, prefix and clock, realm `api`), so admin keys'
/// uses are recorded in the manager's tracker and their limits counted with the
/// application's, requiring [`ADMIN_SCOPE`].
///
/// See the [module docs](self) for routes, bodies and errors.
pub fn router<S>(manager: KeyManager<S>) -> Router
where
    S: KeyStoreUpdate + Clone,
{
    AdminRouter::new(manager).into_router()
}

/// Builds the key-management [`Router`], for when the defaults of [`router`] do not fit.
///
/// ```
/// use tower_apikey::{InMemoryKeyStore, KeyManager};
/// use tower_apikey_admin::AdminRouter;
///
/// let manager = KeyManager::new(InMemoryKeyStore::new());
/// // The application's layer: its realm, throttle and proxies guard both.
/// let layer = manager.layer().realm("billing");
/// let admin: axum::Router = AdminRouter::new(manager.clone())
///     .guard(layer.clone())
///     .into_router();
/// ```
pub struct AdminRouter<S> {
    manager: KeyManager<S>,
    guard: ApiKeyV2Layer,
    /// The application's login authenticates instead of `guard`.
    behind_login: bool,
    panel: bool,
}

impl<S> AdminRouter<S>
where
    S: KeyStoreUpdate + Clone,
{
    /// A router over `manager`, guarded by a layer of the manager
    /// ([`KeyManager::layer`]) that requires [`ADMIN_SCOPE`]: it looks keys up in the
    /// manager's store with its prefix and clock, records admin keys' uses in its
    /// tracker and counts their limits with every other layer of the manager. The scope
    /// catalogue is the manager's (`KeyManager::builder(store).catalogue(..)`).
    pub fn new(manager: KeyManager<S>) -> Self {
        let guard = manager.layer().require_scopes(admin_scope());
        Self {
            manager,
            guard,
            behind_login: false,
            panel: true,
        }
    }

    /// Guards the router with `layer`, adding [`ADMIN_SCOPE`]: give it the application's
    /// own layer, from the same manager, so that the admin routes answer with its realm,
    /// read the client address through its trusted proxies, and count failed keys in
    /// its [`FailureThrottle`] (guesses at the admin routes and at the API count
    /// together). A layer of the manager already records uses and counts limits with
    /// the application's; a layer built otherwise does only what it was built to do.
    ///
    /// The default, without this call, is `manager.layer()`: realm `api`, no throttle,
    /// the connection's peer as the client address.
    pub fn guard(mut self, layer: ApiKeyV2Layer) -> Self {
        self.guard = layer.require_scopes(admin_scope());
        self
    }

    /// 0.1's way to declare the scope catalogue.
    #[deprecated(note = "use KeyManager::builder(store).catalogue(catalogue).build()")]
    #[doc(hidden)]
    pub fn catalogue(mut self, catalogue: ScopeCatalogue) -> Self {
        #[allow(deprecated)]
        {
            self.manager = self.manager.with_catalogue(catalogue);
        }
        self
    }

    /// Puts the router behind the application's own login instead of its key guard.
    ///
    /// The application's layer around the router must authenticate each request and
    /// insert the signed-in person as an [`Actor`](tower_apikey::Actor) into its extensions
    /// ([`Actor::person`](tower_apikey::Actor::person), with the scopes that person may grant); a request without
    /// one gets 401. Unsafe methods from other origins get 403 (see
    /// [Behind the application's login](self#behind-the-applications-login)). The panel
    /// then relies on the browser's session instead of asking for an admin key.
    ///
    /// The [`guard`](Self::guard) then applies only to `POST /self/rotate`, which still
    /// authenticates by key (it is for machines).
    pub fn behind_login(mut self) -> Self {
        self.behind_login = true;
        self
    }

    /// 0.1's way to set the guard's realm.
    ///
    /// # Panics
    ///
    /// If `realm` holds `"`, `\` or anything but printable ASCII.
    #[deprecated(note = "use .guard(manager.layer().realm(realm))")]
    #[doc(hidden)]
    pub fn realm(mut self, realm: &str) -> Self {
        self.guard = self.guard.realm(realm);
        self
    }

    /// 0.1's way to record admin keys' uses: the default guard, a layer of the
    /// manager, records them in the manager's tracker already.
    #[deprecated(note = "the default guard records admin keys' uses in the manager's tracker")]
    #[doc(hidden)]
    pub fn usage_tracker(mut self, tracker: UsageTracker) -> Self {
        self.guard = self.guard.usage_tracker(tracker);
        self
    }

    /// 0.1's way to throttle failed keys in the guard.
    #[deprecated(note = "use .guard(manager.layer().throttle_failures(throttle))")]
    #[doc(hidden)]
    pub fn throttle_failures(mut self, throttle: FailureThrottle) -> Self {
        self.guard = self.guard.throttle_failures(throttle);
        self
    }

    /// 0.1's way to count admin keys' limits with the application's layer: the
    /// default guard, a layer of the manager, does already.
    #[deprecated(
        note = "the default guard counts limits with the manager's other layers; or use .guard(layer)"
    )]
    #[doc(hidden)]
    pub fn share_limits_with<R>(mut self, layer: &ApiKeyV2Layer<R>) -> Self {
        self.guard = self.guard.share_limits_with(layer);
        self
    }

    /// 0.1's way to share admin keys' limits across instances.
    #[deprecated(
        note = "use KeyManager::builder(store).shared_limits(limits): the guard is a layer of the manager"
    )]
    #[doc(hidden)]
    pub fn shared_limits(mut self, limits: &SharedLimits) -> Self {
        self.guard = self.guard.shared_limits(limits);
        self
    }

    /// 0.1's way to name the guard's trusted proxies.
    #[deprecated(note = "use .guard(manager.layer().trusted_proxies(proxies))")]
    #[doc(hidden)]
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

    /// The OpenAPI 3.1 document the router serves at `GET /openapi.json` (behind its
    /// guard), as JSON text: for an application that wants to serve it on a public route
    /// of its own, merge it into its own document, or check it in CI.
    ///
    /// ```
    /// use tower_apikey::{InMemoryKeyStore, KeyManager};
    /// use tower_apikey_admin::AdminRouter;
    ///
    /// let admin = AdminRouter::new(KeyManager::new(InMemoryKeyStore::new()));
    /// let document: serde_json::Value = serde_json::from_str(&admin.openapi_json()).unwrap();
    /// assert_eq!(document["openapi"], "3.1.0");
    /// ```
    pub fn openapi_json(&self) -> String {
        let document = openapi::document(self.manager.catalogue());
        String::from_utf8(document.to_vec()).expect("serde_json writes UTF-8")
    }

    /// The router, ready to `nest` (for example at `/admin`).
    pub fn into_router(self) -> Router {
        let manager = self.manager.clone();
        let (routes, _served) = self.documented_routes();
        routes
            .fallback(|| async { AdminError::NoSuchRoute })
            // Set here, inside the application's own limit, so that this one applies.
            .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
            .with_state(manager)
    }
}

impl<S> AdminRouter<S>
where
    S: KeyStoreUpdate + Clone,
{
    /// The route table: every route the router serves, each with its scoping. The
    /// router is built from it alone (see [`routes`]); later routes are later rows.
    fn route_table(&self) -> Vec<Row<KeyManager<S>>> {
        use Scoping::{OwnKey, PerKey, PerTenant};
        // Built once per router, with its catalogue; each request clones the bytes.
        let document = openapi::document(self.manager.catalogue());
        // For an actor only, as every keyed route: behind a login the application's
        // layer may let a request through with nobody signed in.
        let serve_document = move |_: Acting| {
            let document = document.clone();
            async move { openapi::openapi_json(document) }
        };
        let mut rows = vec![
            Row::documented(PerTenant, __path_create, create::<S>),
            Row::documented(PerTenant, list::__path_list, list::list::<S>),
            Row::documented(PerKey, __path_show, show::<S>),
            Row::documented(PerKey, __path_update, update::<S>),
            Row::documented(PerKey, __path_revoke, revoke::<S>),
            Row::documented(PerKey, heirs::__path_heirs, heirs::heirs::<S>),
            Row::documented(PerKey, __path_rotate, rotate::<S>),
            Row::documented(PerTenant, __path_scopes, scopes::<S>),
            Row::documented(PerTenant, events::__path_list, events::list::<S>),
            Row::documented(PerKey, events::__path_of_key, events::of_key::<S>),
            Row::documented(PerKey, events::__path_usage, events::usage::<S>),
            Row::documented(PerTenant, openapi::__path_openapi_json, serve_document),
            Row::documented(
                OwnKey,
                self_rotate::__path_rotate_self,
                self_rotate::rotate_self::<S>,
            ),
        ];
        if self.panel {
            let auth = if self.behind_login {
                PanelAuth::Session
            } else {
                PanelAuth::Key
            };
            rows.extend(panel::rows(auth, self.manager.events().is_some()));
        }
        rows
    }

    /// The routes of the [table](Self::route_table), each guarded as its scoping says,
    /// and the `(path, method)` pairs served, which the document lists.
    fn documented_routes(
        self,
    ) -> (
        Router<KeyManager<S>>,
        Vec<(String, utoipa::openapi::HttpMethod)>,
    ) {
        let rows = self.route_table();
        let served = rows
            .iter()
            .flat_map(|row| {
                row.methods
                    .iter()
                    .map(|method| (row.path.clone(), method.clone()))
            })
            .collect();
        let (admin, rest): (Vec<_>, Vec<_>) =
            rows.into_iter().partition(|row| row.scoping.by_admin());
        let (own, public): (Vec<_>, Vec<_>) = rest
            .into_iter()
            .partition(|row| row.scoping == Scoping::OwnKey);
        // A key rotating itself needs only `keys:rotate-self`, behind a login too:
        // machines have no session. Layers added later run first.
        let own_scope = Scopes::new([ROTATE_SELF_SCOPE]).expect("a valid scope");
        let own = routes::serve_all(own)
            .route_layer(map_request(acting::key_acts))
            .route_layer(self.guard.clone().require_scopes(own_scope));
        // `route_layer`: unknown paths get the 404 of `into_router` without a key, like
        // any other route the application does not have.
        let api = routes::serve_all(admin);
        let api = if self.behind_login {
            // The application's layer outside inserts the `Actor`; cookies make
            // cross-site requests possible, so those are refused first.
            api.route_layer(map_request(cross_origin::refuse_unsafe_cross_origin))
        } else {
            // Layers added later run first: the guard, then the key as the actor,
            // replacing any `Actor` from outside.
            api.route_layer(map_request(acting::key_acts))
                .route_layer(self.guard)
        };
        // Merged after the guard, so that the page and its assets, which hold no data,
        // load without a key; the page then sends the key with every API call.
        let routes = api.merge(own).merge(routes::serve_all(public));
        (routes, served)
    }
}

impl<S: fmt::Debug> fmt::Debug for AdminRouter<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminRouter")
            .field("manager", &self.manager)
            .field("guard", &self.guard)
            .field("behind_login", &self.behind_login)
            .field("panel", &self.panel)
            .finish()
    }
}

/// `POST /keys`
#[utoipa::path(
    post,
    path = "/keys",
    operation_id = "createKey",
    tag = "keys",
    summary = "Create a key",
    description = "Creates a key and answers its record with the plaintext `key`, shown this \
        once. Only scopes the acting key's own scopes grant may be given (403 otherwise), and \
        with a scope catalogue only declared ones (422). `expires_at` must lie in the future and \
        at most 365 days ahead (422 otherwise); left out, it is the 365-day maximum.",
    request_body(content = CreateKeyBody, content_type = "application/json"),
    responses(
        (status = 201, description = "Created: the record and, this once, the key",
            body = CreatedView<'_>, content_type = "application/json",
            headers(
                ("Location" = String, description = "The new key's record, relative to this request: `keys/{id}`"),
                ("Cache-Control" = String, description = "`no-store`: the answer holds a secret"),
            )),
    ),
)]
async fn create<S: KeyStoreAdmin>(
    State(manager): State<KeyManager<S>>,
    Acting(actor): Acting,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, AdminError> {
    let json = json::read_json(&headers, body)?;
    let new = CreateKeyBody::parse(json, &manager)?.into_new_key();
    let created = manager.acting_as(&actor).create(new).await?;
    created_answer(&created, format!("keys/{}", created.record.id()))
}

/// `GET /keys/{id}`
#[utoipa::path(
    get,
    path = "/keys/{id}",
    operation_id = "getKey",
    tag = "keys",
    summary = "One key's record",
    params(KeyIdParam),
    responses(
        (status = 200, description = "The record; a revoked key's too, since revocation keeps it",
            body = KeyView, content_type = "application/json"),
    ),
)]
async fn show<S: KeyStoreAdmin>(
    State(manager): State<KeyManager<S>>,
    Acting(actor): Acting,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, AdminError> {
    // Another tenant's key is not found, as an unknown id (DESIGN §14).
    let record = manager.acting_as(&actor).get(&key_id(id)?).await?;
    Ok(axum::Json(KeyView::new(&record)?).into_response())
}

/// `PATCH /keys/{id}`
#[utoipa::path(
    patch,
    path = "/keys/{id}",
    operation_id = "updateKey",
    tag = "keys",
    summary = "Change a key's name, limits or allowed addresses",
    description = "A field left out stays as it is; `null` removes a limit or the allowlist. \
        Scopes cannot be changed (422). The acting key must grant every scope of the key (403).",
    params(KeyIdParam),
    request_body(content = UpdateKeyBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The changed record", body = KeyView,
            content_type = "application/json"),
    ),
)]
async fn update<S: KeyStoreUpdate>(
    State(manager): State<KeyManager<S>>,
    Acting(actor): Acting,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, AdminError> {
    let id = key_id(id)?;
    let update = patch_body::parse(&json::read_json(&headers, body)?)?;
    let record = manager.acting_as(&actor).update(&id, update).await?;
    Ok(axum::Json(KeyView::new(&record)?).into_response())
}

/// `POST /keys/{id}/rotate`
#[utoipa::path(
    post,
    path = "/keys/{id}/rotate",
    operation_id = "rotateKey",
    tag = "keys",
    summary = "Rotate a key: a new key with the same name, scopes and limits",
    description = "Without a body the old key keeps working until it is revoked. A revoked, \
        expired or ended key, or one with a live successor, cannot be rotated (409); nor can \
        `until_first_use` be asked where no usage tracker writes the store (409).",
    params(KeyIdParam),
    request_body(content = RotateBody, content_type = "application/json"),
    responses(
        (status = 201, description = "Created: the new key's record and, this once, the key",
            body = CreatedView<'_>, content_type = "application/json",
            headers(
                ("Location" = String, description = "The new key's record, relative to this request: `../{id}`"),
                ("Cache-Control" = String, description = "`no-store`: the answer holds a secret"),
            )),
    ),
)]
async fn rotate<S: KeyStoreAdmin>(
    State(manager): State<KeyManager<S>>,
    Acting(actor): Acting,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, AdminError> {
    let id = key_id(id)?;
    let request = json::read_optional_json(&headers, body)?
        .map(RotateRequest::parse)
        .transpose()?;
    // Without a body, the old key keeps working until it is revoked.
    let plan = RotateRequest::plan(request, OldKeyPlan::Overlap(None));
    let created = manager.acting_as(&actor).rotate_with(&id, plan).await?;
    // Relative to `…/keys/{old}/rotate`, this names `…/keys/{new}` wherever the router
    // is mounted.
    created_answer(&created, format!("../{}", created.record.id()))
}

/// `DELETE /keys/{id}`
#[utoipa::path(
    delete,
    path = "/keys/{id}",
    operation_id = "revokeKey",
    tag = "keys",
    summary = "Revoke a key, and the keys it minted for itself",
    description = "Revokes the key and, if it still worked, every live key it minted for \
        itself by `POST /self/rotate` (and theirs in turn), in one step: a thief who \
        self-rotated a leaked key keeps nothing. A key that had already ended by its rotation \
        (or expired) revokes nothing more, so an integration's new key survives when the old one \
        is tidied up. `GET /keys/{id}/heirs` says beforehand which keys go with it. Revoking \
        twice answers the record again, with no heirs. The record stays (with `revoked_at` and \
        `revoked_by`): `GET /keys/{id}` still answers it.",
    params(KeyIdParam),
    responses(
        (status = 200, description = "Revoked: the record and the heirs revoked with it",
            body = heirs::RevokedView, content_type = "application/json"),
    ),
)]
async fn revoke<S: KeyStoreAdmin>(
    State(manager): State<KeyManager<S>>,
    Acting(actor): Acting,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, AdminError> {
    let revocation = manager.acting_as(&actor).revoke(&key_id(id)?).await?;
    Ok(axum::Json(heirs::RevokedView::new(&revocation)?).into_response())
}

/// `GET /scopes`
#[utoipa::path(
    get,
    path = "/scopes",
    operation_id = "listScopes",
    tag = "keys",
    summary = "The scope catalogue, and what the caller may grant",
    responses(
        (status = 200, description = "The catalogue (`null` without one) and the caller",
            body = ScopesView<'_>, content_type = "application/json"),
    ),
)]
async fn scopes<S: KeyStoreAdmin>(
    State(manager): State<KeyManager<S>>,
    Acting(actor): Acting,
) -> Response {
    axum::Json(ScopesView::new(manager.catalogue(), &actor)).into_response()
}

/// 201 with the new record, its one-time `"key"` and a relative `Location`.
fn created_answer(created: &CreatedKey, location: String) -> Result<Response, AdminError> {
    let view = CreatedView::new(KeyView::new(&created.record)?, &created.key);
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
const MAX_OVERLAP: Duration = tower_apikey::manager::MAX_LIFETIME;
