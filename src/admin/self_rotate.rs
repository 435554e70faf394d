//! `POST /self/rotate`: a key rotates itself (DESIGN §11).
//!
//! An integration that holds one key and no admin key can still replace it before it
//! expires: the request is authenticated by the key being rotated, which needs only
//! [`ROTATE_SELF_SCOPE`], and it can rotate nothing but itself (the path names no key).
//! Everything else is [`POST /keys/{id}/rotate`](super#requests): the same body, the
//! same rules (the successor lives as long as the key was created to live, and a key
//! with a live successor cannot rotate again: 409), the same answer (201, the record
//! and `"key"` once). The key itself is the actor: the new record's `created_by` is its
//! id.
//!
//! Without a body, the old key keeps working until it is revoked or reaches its own
//! end, as in a plain rotation, so the integration switches and an administrator
//! revokes the old key once the new one shows a last-used time. (DESIGN §11 makes
//! "end the old key 300 s after the new key's first use" the default here; that comes
//! with first-use tracking.)
//!
//! The route always authenticates by key, also [behind the application's
//! login](super#behind-the-applications-login): it is for machines, which have a key
//! and no session.

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::HeaderMap;
use axum::response::Response;

use super::acting::Acting;
use super::body::{self, RotateRequest};
use super::problem::AdminError;
use crate::manager::KeyManager;
use crate::store::KeyStoreAdmin;

/// The scope a key needs to rotate itself with `POST /self/rotate`. `admin:keys` does
/// not imply it: a key rotates itself only if it was made to.
pub const ROTATE_SELF_SCOPE: &str = "keys:rotate-self";

/// `POST /self/rotate`
pub(super) async fn rotate_self<S: KeyStoreAdmin>(
    State(manager): State<KeyManager<S>>,
    Acting(actor): Acting,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, AdminError> {
    // The guard in front of this route is a key guard, so a key acts; anything else
    // acts for nobody.
    let Some(id) = actor.key_id().copied() else {
        return Err(AdminError::NoActor);
    };
    let overlap = match body::read_optional_json(&headers, body)? {
        None => None,
        Some(json) => RotateRequest::parse(json)?.overlap,
    };
    let created = manager.acting_as(&actor).rotate(&id, overlap).await?;
    // Relative to `…/self/rotate`, this names `…/keys/{new}` wherever the router is
    // mounted.
    super::created_answer(&created, format!("../keys/{}", created.record.id()))
}
