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
//! Unless the body says otherwise (`overlap_secs`, or `until_first_use` with its own
//! `grace_secs`), the old key keeps working until 300 s
//! ([`DEFAULT_FIRST_USE_GRACE`](tower_apikey::manager::DEFAULT_FIRST_USE_GRACE)) after the new key's
//! first proven use, then ends: the integration switches when it is ready, and nobody
//! has to revoke the old key. That needs last-used times to reach the store (see
//! [`KeyManager::tracks_usage`]); without them the default is refused with 409,
//! and `{"overlap_secs": null}` asks for a plain rotation instead.
//!
//! A key that replaced another by rotating itself may not rotate itself again while
//! the key it replaced still works (409): a leaked copy cannot chain heirs. And the new
//! key is the old key's heir: revoking the old key while it still works revokes the
//! new one with it (DESIGN §10, [heirs](super#heirs)), so a thief who rotated a leaked
//! copy first keeps nothing once the owner revokes it. The integration's own next
//! rotation comes long after the old key ended, and revoking an ended key spares its
//! heirs.
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
use super::json;
use super::problem::AdminError;
use super::rotate_body::{RotateBody, RotateRequest};
use tower_apikey::KeyManager;
use tower_apikey::KeyStoreAdmin;
use tower_apikey::manager::{DEFAULT_FIRST_USE_GRACE, OldKeyPlan};

/// The scope a key needs to rotate itself with `POST /self/rotate`. `admin:keys` does
/// not imply it: a key rotates itself only if it was made to.
pub const ROTATE_SELF_SCOPE: &str = "keys:rotate-self";

/// `POST /self/rotate`
#[utoipa::path(
    post,
    path = "/self/rotate",
    operation_id = "rotateSelf",
    tag = "keys",
    summary = "The calling key rotates itself",
    description = "Authenticated by the key being rotated, which needs only `keys:rotate-self`. \
        Without a body the old key ends 300 s after the new key's first use. Refused (409) for \
        a key with a live successor, for a key that replaced another which still works, and \
        for `until_first_use` where no usage tracker writes the store.",
    request_body(content = RotateBody, content_type = "application/json"),
    responses(
        (status = 201, description = "Created: the new key's record and, this once, the key",
            body = super::view::CreatedView<'_>, content_type = "application/json",
            headers(
                ("Location" = String, description = "The new key's record, relative to this request: `../keys/{id}`"),
                ("Cache-Control" = String, description = "`no-store`: the answer holds a secret"),
            )),
    ),
)]
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
    let request = json::read_optional_json(&headers, body)?
        .map(RotateRequest::parse)
        .transpose()?;
    // DESIGN §11: by default the old key ends 300 s after the new key's first use.
    let plan = RotateRequest::plan(request, OldKeyPlan::UntilFirstUse(DEFAULT_FIRST_USE_GRACE));
    manager.check_self_rotation(&id).await?;
    let created = manager.acting_as(&actor).rotate_with(&id, plan).await?;
    // Relative to `…/self/rotate`, this names `…/keys/{new}` wherever the router is
    // mounted.
    super::created_answer(&created, format!("../keys/{}", created.record.id()))
}
