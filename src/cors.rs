//! Letting browsers read the layer's headers across origins.
//!
//! A page on one origin that calls an API on another reads only the CORS-safelisted
//! response headers (`Content-Type`, `Cache-Control`, …) unless the API exposes more
//! with `Access-Control-Expose-Headers`. So a browser application never sees
//! `ApiKey-Expires`, and cannot warn its people that its key is about to end, unless
//! the API says it may. [`EXPOSED_HEADERS`] names what to expose; with tower-http's
//! [`CorsLayer`](https://docs.rs/tower-http/latest/tower_http/cors/struct.CorsLayer.html):
//!
//! ```
//! use axum::{Router, routing::get};
//! use http::{HeaderValue, header::AUTHORIZATION};
//! use tower_apikey::{ApiKeyV2Layer, InMemoryKeyStore};
//! use tower_apikey::cors::EXPOSED_HEADERS;
//! use tower_http::cors::CorsLayer;
//!
//! let cors = CorsLayer::new()
//!     .allow_origin(HeaderValue::from_static("https://app.example.com"))
//!     .allow_headers([AUTHORIZATION])
//!     .expose_headers(EXPOSED_HEADERS);
//! let app: Router = Router::new()
//!     .route("/ping", get(|| async { "pong" }))
//!     .layer(ApiKeyV2Layer::new(InMemoryKeyStore::new()))
//!     // Outside the key layer: the browser's preflight (`OPTIONS`, which carries no
//!     // key) is answered here, and refusals (401, 403, 503) carry the CORS headers
//!     // too, so that the page can read why it was refused.
//!     .layer(cors);
//! ```
//!
//! Name the origins you serve rather than allowing any: a key in a page is readable by
//! every script on that page, so serve such keys only to pages you trust, and prefer
//! keys with narrow scopes and short lives there.

use http::HeaderName;

/// `ApiKey-Expires`: on an authenticated response while the key is within the expiry
/// warning window, the key's end as an IMF-fixdate
/// ([`ApiKeyV2Layer::expiry_warning`](crate::ApiKeyV2Layer::expiry_warning)).
pub const API_KEY_EXPIRES: HeaderName = HeaderName::from_static("apikey-expires");

/// The response headers the layer sets that a browser page may need to read, for
/// `Access-Control-Expose-Headers` (tower-http's `CorsLayer::expose_headers` takes
/// this array as it is):
///
/// - `ApiKey-Expires`, the warning before a key's end;
/// - `WWW-Authenticate`, which says why a key was refused (`error`, and `scope` for a
///   missing scope);
/// - `Retry-After`, when to try again after a 503 or 429.
pub const EXPOSED_HEADERS: [HeaderName; 3] = [
    API_KEY_EXPIRES,
    http::header::WWW_AUTHENTICATE,
    http::header::RETRY_AFTER,
];
