//! axum integration (feature `axum`): the identity as an extractor. Per-route scopes
//! ([`RequireScopesLayer`](crate::RequireScopesLayer)) need no feature.
//!
//! ```
//! use axum::{Router, routing::get};
//! use tower_apikey::{ApiKeyIdentity, ApiKeyV2Layer, InMemoryKeyStore, RequireScopesLayer, Scopes};
//!
//! async fn whoami(caller: ApiKeyIdentity) -> String {
//!     format!("hello, {}", caller.name())
//! }
//!
//! let store = InMemoryKeyStore::new();
//! let app: Router = Router::new()
//!     .route("/whoami", get(whoami))
//!     .route(
//!         "/reports",
//!         get(|| async { "reports" })
//!             // `route_layer`, so that unknown paths stay 404 rather than 403.
//!             .route_layer(RequireScopesLayer::new(Scopes::new(["reports:read"]).unwrap())),
//!     )
//!     .layer(ApiKeyV2Layer::new(store));
//! ```

use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use axum_core::response::Response as AxumResponse;
use http::request::Parts;

use crate::middleware::rejection::is_grpc;
use crate::middleware::rejection::{Answers, DEFAULT_REALM, Rejection, RejectionKind};
use crate::record::ApiKeyIdentity;

impl<S: Send + Sync> FromRequestParts<S> for ApiKeyIdentity {
    type Rejection = AxumResponse;

    /// The identity the layer put into the extensions. Without one (the route is not
    /// behind [`ApiKeyV2Layer`](crate::ApiKeyV2Layer)), the answer is 401, never a
    /// pass and never a 500.
    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        match parts.extensions.get::<ApiKeyIdentity>() {
            Some(identity) => Ok(identity.clone()),
            None => {
                tracing::debug!(
                    "ApiKeyIdentity extracted on a request the ApiKeyV2Layer did not authenticate; answering 401"
                );
                let answers = Answers::new(DEFAULT_REALM);
                Err(Rejection::new(
                    RejectionKind::MissingCredentials,
                    is_grpc(parts.version, &parts.headers),
                    &answers,
                    http::HeaderMap::new(),
                )
                .into_response::<axum_core::body::Body>()
                .map(axum_core::body::Body::new))
            }
        }
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for ApiKeyIdentity {
    type Rejection = std::convert::Infallible;

    /// The identity if the request was authenticated, `None` otherwise.
    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<ApiKeyIdentity>().cloned())
    }
}
