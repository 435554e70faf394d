//! Key management behind the application's own login, instead of a pasted admin key:
//! `cargo run --example admin_behind_login`.
//!
//! People sign in to the application with an e-mail address and a password (a cookie
//! session from [`axum-login`](https://docs.rs/axum-login) over
//! [`tower-sessions`](https://docs.rs/tower-sessions)), then manage keys in the
//! "Connector Access Control" panel at `/admin/`. The admin router sits behind that
//! login ([`AdminRouter::behind_login`]): a small layer turns the signed-in person into
//! an [`Actor`] with the scopes that person may grant, and the router records them as
//! `created_by` / `revoked_by` and never lets them grant more.
//!
//! Three people, with passwords made at each start and printed once. The application says
//! for each whether they are an operator or a tenant's administrator (DESIGN §14): there
//! is no default.
//!
//! - `alice@example.com`, an operator, may grant every scope of the catalogue,
//!   `admin:keys` included, in every tenant;
//! - `bob@example.com`, an operator, may grant `reports:read` only: he can make read-only
//!   keys for integrations, and cannot make (or rotate, or revoke) anything stronger;
//! - `carol@acme.example` administers the tenant `acme`: she sees and manages acme's
//!   keys alone, and the panel says "Keys of tenant acme".
//!
//! `GET /ping` is the application's API, for any valid key.
//!
//! The session cookie is `HttpOnly`, `SameSite=Strict` and `Secure` (browsers accept
//! `Secure` cookies from `http://localhost`; serve anything else over TLS), and ends
//! after 30 minutes without a request. A real application keeps its people in a database
//! and their passwords as slow hashes (Argon2, for example with the `password-auth`
//! crate); the random 128-bit passwords here make a plain SHA-256 digest enough.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use axum_login::tower_sessions::cookie::SameSite;
use axum_login::tower_sessions::{Expiry, MemoryStore, SessionManagerLayer};
use axum_login::{AuthManagerLayerBuilder, AuthSession, AuthUser, AuthnBackend, UserId};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tower_apikey::manager::{ScopeCatalogue, Tenancy};
use tower_apikey::record::TenantId;
use tower_apikey::{Actor, ApiKeyV2Layer, InMemoryKeyStore, KeyManager, Scopes};
use tower_apikey_admin::AdminRouter;

/// The scopes this application declares.
pub const CATALOGUE: [(&str, &str); 3] = [
    ("reports:read", "Read reports"),
    ("reports:write", "Create reports"),
    ("admin:keys", "Manage API keys"),
];

/// Who may sign in, what each may grant, and the tenant each administers (`None`: an
/// operator, of every tenant).
pub const PEOPLE: [(&str, &[&str], Option<&str>); 3] = [
    (
        "alice@example.com",
        &["reports:read", "reports:write", "admin:keys"],
        None,
    ),
    ("bob@example.com", &["reports:read"], None),
    (
        "carol@acme.example",
        &["reports:read", "reports:write", "admin:keys"],
        Some("acme"),
    ),
];

/// The application, built and not yet serving.
pub struct App {
    /// `/`, `/login`, `/logout`, `/ping` and the key management under `/admin`.
    pub router: Router,
    /// Each person's e-mail address and password, to print once.
    pub passwords: Vec<(String, String)>,
}

/// Builds the application over `store`, with a new password for each of [`PEOPLE`].
pub fn build(store: InMemoryKeyStore) -> App {
    let catalogue = ScopeCatalogue::new(CATALOGUE).expect("the catalogue is valid");
    let mut people = HashMap::new();
    let mut passwords = Vec::new();
    for (email, may_grant, tenant) in PEOPLE {
        let password = new_password();
        let may_grant = Scopes::new(may_grant).expect("valid scopes");
        let tenancy = match tenant {
            Some(tenant) => Tenancy::Tenant(TenantId::new(tenant).expect("a valid tenant")),
            None => Tenancy::Operator,
        };
        let person = Person {
            actor: Actor::person(email, may_grant, tenancy).expect("a valid name"),
            password_digest: Sha256::digest(password.as_bytes()).into(),
        };
        people.insert(email.to_owned(), person);
        passwords.push((email.to_owned(), password));
    }
    let people = People(Arc::new(people));

    let sessions = SessionManagerLayer::new(MemoryStore::default())
        .with_same_site(SameSite::Strict)
        .with_http_only(true)
        .with_expiry(Expiry::OnInactivity(time::Duration::minutes(30)));
    let login = AuthManagerLayerBuilder::new(people, sessions).build();

    let manager = KeyManager::builder(store.clone())
        .catalogue(catalogue)
        .build();
    let admin = AdminRouter::new(manager)
        .behind_login()
        .into_router()
        // Inside the login layer: the signed-in person, if any, acts.
        .layer(middleware::from_fn(signed_in_person_acts));
    let api = Router::new()
        .route("/ping", get(|| async { "pong" }))
        .route_layer(ApiKeyV2Layer::new(store));
    let router = Router::new()
        .route("/", get(home))
        .route("/login", post(log_in))
        .route("/logout", post(log_out))
        .merge(api)
        .nest_service("/admin", admin)
        .layer(login);
    App { router, passwords }
}

/// 128 random bits, URL-safe base64.
fn new_password() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the operating system's random numbers");
    URL_SAFE_NO_PAD.encode(bytes)
}

// ---- the people and the login backend ----------------------------------------------

/// A person who may sign in.
#[derive(Clone)]
pub struct Person {
    actor: Actor,
    password_digest: [u8; 32],
}

impl fmt::Debug for Person {
    // axum-login logs users at debug level: never the password digest.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Person")
            .field("email", &self.actor.name())
            .finish()
    }
}

impl AuthUser for Person {
    type Id = String;

    fn id(&self) -> String {
        self.actor.name().to_string()
    }

    /// A new password ends the sessions made with the old one.
    fn session_auth_hash(&self) -> &[u8] {
        &self.password_digest
    }
}

/// What the sign-in form sends.
#[derive(Clone, Deserialize)]
pub struct Credentials {
    email: String,
    password: String,
}

/// The people, by e-mail address.
#[derive(Clone)]
pub struct People(Arc<HashMap<String, Person>>);

impl AuthnBackend for People {
    type User = Person;
    type Credentials = Credentials;
    type Error = std::convert::Infallible;

    async fn authenticate(&self, credentials: Credentials) -> Result<Option<Person>, Self::Error> {
        let digest: [u8; 32] = Sha256::digest(credentials.password.as_bytes()).into();
        Ok(self
            .0
            .get(&credentials.email)
            .filter(|person| bool::from(person.password_digest.ct_eq(&digest)))
            .cloned())
    }

    async fn get_user(&self, email: &UserId<Self>) -> Result<Option<Person>, Self::Error> {
        Ok(self.0.get(email).cloned())
    }
}

/// The layer between the login and the admin router: whoever is signed in acts, with
/// what they may grant. Without a session nothing is inserted, and the router answers
/// 401.
async fn signed_in_person_acts(
    session: AuthSession<People>,
    mut request: Request,
    next: Next,
) -> Response {
    if let Some(person) = session.user {
        request.extensions_mut().insert(person.actor);
    }
    next.run(request).await
}

// ---- pages ----------------------------------------------------------------------------

/// `GET /`: the sign-in form, or who is signed in.
async fn home(session: AuthSession<People>) -> Html<String> {
    match session.user {
        Some(person) => Html(format!(
            "<!doctype html><title>Signed in</title><link rel=\"icon\" href=\"data:,\">\
             <p>Signed in as {}. <a href=\"/admin/\">Manage API keys</a></p>\
             <form method=\"post\" action=\"/logout\"><button>Sign out</button></form>",
            escape(person.actor.name().as_str())
        )),
        None => Html(SIGN_IN.to_owned()),
    }
}

const SIGN_IN: &str = "<!doctype html><title>Sign in</title><link rel=\"icon\" href=\"data:,\">\
    <form method=\"post\" action=\"/login\">\
    <label>E-mail <input name=\"email\" type=\"email\" autocomplete=\"username\" required></label>\
    <label>Password <input name=\"password\" type=\"password\" autocomplete=\"current-password\" required></label>\
    <button>Sign in</button></form>";

/// `POST /login`: signs in and opens the panel, or answers 401 with the form again.
async fn log_in(
    mut session: AuthSession<People>,
    Form(credentials): Form<Credentials>,
) -> Response {
    let person = match session.authenticate(credentials).await {
        Ok(Some(person)) => person,
        Ok(None) => {
            let page = format!("{SIGN_IN}<p>Wrong e-mail address or password.</p>");
            return (StatusCode::UNAUTHORIZED, Html(page)).into_response();
        }
        Err(error) => {
            tracing::error!(%error, "sign-in failed");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    if let Err(error) = session.login(&person).await {
        tracing::error!(%error, "cannot store the session");
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    Redirect::to("/admin/").into_response()
}

/// `POST /logout`: ends the session.
async fn log_out(mut session: AuthSession<People>) -> Response {
    match session.logout().await {
        Ok(_) => Redirect::to("/").into_response(),
        Err(error) => {
            tracing::error!(%error, "cannot end the session");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let app = build(InMemoryKeyStore::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3001").await?;
    println!("open http://localhost:3001/ and sign in as:");
    for (email, password) in &app.passwords {
        println!("  {email}  password: {password}");
    }
    let service = app
        .router
        .into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, service)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
