//! Who a request acts for: the [`Actor`] in its extensions.
//!
//! Behind the key guard, [`key_acts`] puts the authenticated key there; behind the
//! application's login, the application's layer does. Handlers take [`Acting`], which
//! answers 401 when there is none, so that no route can act for nobody.

use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;

use super::problem::AdminError;
use tower_apikey::Actor;
use tower_apikey::ApiKeyIdentity;

/// The actor of a request; 401 if there is none.
pub(super) struct Acting(pub(super) Actor);

impl<S: Send + Sync> FromRequestParts<S> for Acting {
    type Rejection = AdminError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Actor>()
            .cloned()
            .map(Self)
            .ok_or(AdminError::NoActor)
    }
}

/// After the key guard: the key it accepted acts, in place of any `Actor` a layer
/// outside the router inserted, so that a request authenticated by a key is always
/// bounded by that key's scopes.
pub(super) async fn key_acts(mut request: Request) -> Request {
    let actor = request.extensions().get::<ApiKeyIdentity>().map(Actor::key);
    match actor {
        Some(actor) => {
            request.extensions_mut().insert(actor);
        }
        // The guard always inserts an identity; without one, nobody acts (401).
        None => {
            request.extensions_mut().remove::<Actor>();
        }
    }
    request
}
