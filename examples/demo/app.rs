//! The demo's application: the routes of DESIGN §7 over a key store.
//!
//! Shared by `examples/demo/main.rs`, which serves it, and `tests/demo.rs`, which drives
//! it through a real HTTP client. It is generic over the store, so that another store
//! (PostgreSQL, behind a cache) plugs in without touching the routes.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tower_apikey::client_addr::TrustedProxies;
use tower_apikey::event::{EventLog, EventStore};
use tower_apikey::limits::SharedLimits;
use tower_apikey::manager::ScopeCatalogue;
use tower_apikey::middleware::FailureThrottle;
use tower_apikey::usage::UsageTracker;
use tower_apikey::{
    ApiKeyIdentity, Clock, KeyManager, KeyManagerBuilder, KeyStoreAdmin, ManagerError, NewKey,
    PlaintextKey, RequireScopesLayer, Scopes, UsageSink,
};
use tower_apikey_admin::{ADMIN_SCOPE, AdminRouter};

/// The realm in the demo's `WWW-Authenticate` challenges.
const REALM: &str = "demo";

/// Reports kept in memory; the oldest go first, so the demo's memory stays bounded.
const MAX_REPORTS: usize = 1_000;

/// Wrong keys a client address may send in a row, and per minute after that, before
/// its requests get 429 without a lookup. Generous for a person fixing a typo or a
/// misconfigured job, useless for guessing a 256-bit secret.
pub const FAILURES_PER_MINUTE: u32 = 10;

/// The demo, built and not yet serving.
pub struct Demo<S> {
    /// Every route: `/health`, `/ping`, `/whoami`, `/reports`, `/admin/…` and the key
    /// management panel at `/admin/`. Serve it with
    /// `into_make_service_with_connect_info::<SocketAddr>()`: failed keys are throttled
    /// per client address.
    pub router: Router,
    /// The manager's last-used tracking, for every key: its background writes it; the
    /// tests that include this file flush it by hand instead.
    // Read by the tests that include this file; main.rs leaves it to the manager.
    #[allow(dead_code)]
    pub tracker: UsageTracker,
    /// What runs beside the routes: spawn its `background()` before serving, and call
    /// its `shutdown()` once the server has stopped.
    // Read by main.rs; the tests that include this file drive the demo without it.
    #[allow(dead_code)]
    pub manager: KeyManager<S>,
    /// A key holding every scope of the [`CATALOGUE`], `admin:keys` included, for the
    /// operator; print it once.
    pub admin_key: PlaintextKey,
}

/// The scopes the demo declares, with what each allows: keys can hold these and no
/// others.
pub const CATALOGUE: [(&str, &str); 4] = [
    ("reports:read", "Read reports (GET /reports)"),
    ("reports:write", "Create reports (POST /reports)"),
    (
        "keys:rotate-self",
        "Rotate this key itself, before it expires",
    ),
    (
        ADMIN_SCOPE,
        "Manage API keys, granting at most the scopes this key holds",
    ),
];

/// The demo's [`CATALOGUE`] as the admin router takes it.
pub fn catalogue() -> ScopeCatalogue {
    ScopeCatalogue::new(CATALOGUE).expect("the demo's catalogue is valid")
}

/// The name of the operator's admin key.
pub const ADMIN_KEY_NAME: &str = "demo admin";

/// The scopes of the operator's admin key: the whole catalogue, so that it can give any
/// key any scope (an admin key grants at most what it holds).
pub const ADMIN_KEY_SCOPES: [&str; 4] = [
    "reports:read",
    "reports:write",
    "keys:rotate-self",
    ADMIN_SCOPE,
];

/// Builds the demo over `store` with a new admin key, trusting no proxy: see
/// [`build_with_admin_key`].
// For the tests that include this file; main.rs passes its flags to
// `build_with_admin_key`.
#[allow(dead_code)]
pub async fn build<S>(
    store: S,
    usage_flush: Duration,
    clock: Arc<dyn Clock>,
    failures_per_minute: u32,
) -> Result<Demo<S>, ManagerError>
where
    S: tower_apikey::store::KeyStoreUpdate + UsageSink + EventStore + Clone,
{
    let admin_key = mint_admin_key(
        &KeyManager::builder(store.clone())
            .clock(clock.clone())
            .build(),
    )
    .await?;
    Ok(build_with_admin_key(
        store,
        usage_flush,
        clock,
        admin_key,
        failures_per_minute,
        None,
        TrustedProxies::none(),
    ))
}

/// Creates an admin key (name [`ADMIN_KEY_NAME`], scopes [`ADMIN_KEY_SCOPES`]) in the
/// manager's store.
pub async fn mint_admin_key<S: KeyStoreAdmin>(
    manager: &KeyManager<S>,
) -> Result<PlaintextKey, ManagerError> {
    let created = manager
        .create(NewKey::new(ADMIN_KEY_NAME, ADMIN_KEY_SCOPES))
        .await?;
    Ok(created.key)
}

/// Builds the demo over `store`, for an operator holding `admin_key`: its manager
/// ([`manager`], with `shared_limits` if given, to share the keys' limits with other
/// demos) and the routes ([`wire`]).
pub fn build_with_admin_key<S>(
    store: S,
    usage_flush: Duration,
    clock: Arc<dyn Clock>,
    admin_key: PlaintextKey,
    failures_per_minute: u32,
    shared_limits: Option<&SharedLimits>,
    trusted_proxies: TrustedProxies,
) -> Demo<S>
where
    S: tower_apikey::store::KeyStoreUpdate + UsageSink + EventStore + Clone,
{
    let manager = manager(store, usage_flush, clock.clone());
    let manager = match shared_limits {
        Some(limits) => manager.shared_limits(limits.clone()),
        None => manager,
    };
    wire(
        manager.build(),
        clock,
        admin_key,
        failures_per_minute,
        trusted_proxies,
    )
}

/// The demo's manager over `store`, to finish with what runs beside it (shared limits,
/// a cache's feed listener): the [`CATALOGUE`], an audit trail in the store, last-used
/// times written every `usage_flush`, all on `clock`.
pub fn manager<S>(store: S, usage_flush: Duration, clock: Arc<dyn Clock>) -> KeyManagerBuilder<S>
where
    S: tower_apikey::store::KeyStoreUpdate + EventStore + Clone,
{
    KeyManager::builder(store.clone())
        .clock(clock)
        .catalogue(catalogue())
        .events(EventLog::new(store))
        .usage_flush_period(usage_flush)
}

/// The routes over `manager`, for an operator holding `admin_key`, with wrong keys
/// throttled at `failures_per_minute` per client address (0: off). The client address,
/// for the throttle, allowlists and recent addresses, is the peer's, or the one
/// `trusted_proxies` forward. `clock` dates the reports.
pub fn wire<S>(
    manager: KeyManager<S>,
    clock: Arc<dyn Clock>,
    admin_key: PlaintextKey,
    failures_per_minute: u32,
    trusted_proxies: TrustedProxies,
) -> Demo<S>
where
    S: tower_apikey::store::KeyStoreUpdate + Clone,
{
    // One throttle for the API and the admin routes, so that guesses at either count
    // together. The client address is the connection's peer (`main.rs` serves with
    // `ConnectInfo<SocketAddr>`), or what the trusted proxies forward: both guards read
    // it the same way.
    let throttle =
        (failures_per_minute > 0).then(|| FailureThrottle::per_minute(failures_per_minute));

    // The manager's layer records every key's last use, and counts its limits (through
    // the manager's `SharedLimits`, if any). The admin router's guard is a layer of the
    // same manager: a key limited to N requests an hour gets N in all, API and admin
    // routes together, and admin keys' uses are recorded like any other.
    let layer = manager
        .layer()
        .realm(REALM)
        .trusted_proxies(trusted_proxies);
    let layer = match throttle {
        Some(throttle) => layer.throttle_failures(throttle),
        None => layer,
    };
    let admin = AdminRouter::new(manager.clone()).guard(layer.clone());

    let api = Router::new()
        .route("/ping", get(|| async { "pong" }))
        .route("/whoami", get(whoami))
        // One method router per scope, so each method gets its own requirement.
        .route(
            "/reports",
            get(list_reports).route_layer(require("reports:read")),
        )
        .route(
            "/reports",
            post(create_report).route_layer(require("reports:write")),
        )
        .with_state(Reports {
            log: Arc::default(),
            clock: clock.clone(),
        })
        // `route_layer`: unknown paths stay 404 instead of asking for a key.
        .route_layer(layer);
    let admin = admin.into_router();
    let router = Router::new()
        .route("/health", get(|| async { "ok" }))
        .merge(api)
        // Outside the API's layer: the admin router authenticates itself (`admin:keys`).
        // `nest_service` rather than `nest`, so that the panel answers at `/admin/` as
        // well as at `/admin`.
        .nest_service("/admin", admin);
    Demo {
        router,
        tracker: manager.tracker().clone(),
        manager,
        admin_key,
    }
}

fn require(scope: &str) -> RequireScopesLayer {
    let scopes = Scopes::new([scope]).expect("the demo's scopes are valid");
    RequireScopesLayer::new(scopes).realm(REALM)
}

/// The caller as `/whoami` and reports show it: never the key.
#[derive(Clone, Serialize)]
struct Caller {
    id: String,
    name: String,
}

impl Caller {
    fn of(identity: &ApiKeyIdentity) -> Self {
        Self {
            id: identity.key_id().to_string(),
            name: identity.name().to_owned(),
        }
    }
}

/// `GET /whoami`: the caller's identity.
#[derive(Serialize)]
struct Whoami {
    #[serde(flatten)]
    caller: Caller,
    scopes: Vec<String>,
    expires_at: Option<String>,
    /// The customer organisation the key belongs to (DESIGN §14); `null` for the
    /// application's own keys, such as the operator's admin key. A handler scopes its
    /// data by it.
    tenant: Option<String>,
}

async fn whoami(identity: ApiKeyIdentity) -> Json<Whoami> {
    Json(Whoami {
        caller: Caller::of(&identity),
        scopes: identity.scopes().iter().map(ToString::to_string).collect(),
        expires_at: rfc3339(identity.expires_at()),
        tenant: identity.tenant().map(ToString::to_string),
    })
}

/// RFC 3339 UTC, or `None` for a time it cannot express (years outside 0–9999), which
/// no key created through a `KeyManager` has.
fn rfc3339(at: SystemTime) -> Option<String> {
    at.duration_since(UNIX_EPOCH)
        .ok()
        .and_then(|since| time::Duration::try_from(since).ok())
        .and_then(|since| OffsetDateTime::UNIX_EPOCH.checked_add(since))
        .and_then(|at| at.format(&Rfc3339).ok())
}

/// The reports created so far, newest last.
#[derive(Clone)]
struct Reports {
    log: Arc<Mutex<ReportLog>>,
    clock: Arc<dyn Clock>,
}

#[derive(Default)]
struct ReportLog {
    next_id: u64,
    reports: VecDeque<Report>,
}

#[derive(Clone, Serialize)]
struct Report {
    id: u64,
    created_at: Option<String>,
    created_by: Caller,
}

/// `GET /reports` (scope `reports:read`).
async fn list_reports(State(reports): State<Reports>) -> Json<Vec<Report>> {
    let log = reports.log.lock().unwrap_or_else(|e| e.into_inner());
    Json(log.reports.iter().cloned().collect())
}

/// `POST /reports` (scope `reports:write`): records a report run by the caller.
async fn create_report(
    State(reports): State<Reports>,
    identity: ApiKeyIdentity,
) -> impl IntoResponse {
    let mut log = reports.log.lock().unwrap_or_else(|e| e.into_inner());
    log.next_id += 1;
    let report = Report {
        id: log.next_id,
        created_at: rfc3339(reports.clock.now()),
        created_by: Caller::of(&identity),
    };
    if log.reports.len() == MAX_REPORTS {
        log.reports.pop_front();
    }
    log.reports.push_back(report.clone());
    (StatusCode::CREATED, Json(report))
}
