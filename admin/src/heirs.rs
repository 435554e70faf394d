//! Revoking a key with its heirs over HTTP (DESIGN §10): `DELETE /keys/{id}` answers
//! the key and the heirs revoked with it, and `GET /keys/{id}/heirs` says beforehand
//! which keys a revocation would take with it, for the panel's revoke dialog.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use super::acting::Acting;
use super::problem::AdminError;
use super::view::KeyView;
use tower_apikey::KeyManager;
use tower_apikey::KeyStoreAdmin;
use tower_apikey::store::Revocation;

/// The answer to `DELETE /keys/{id}`: the key, and the heirs revoked with it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Revocation)]
pub(super) struct RevokedView {
    /// The key as it now stands, with its `revoked_at` and `revoked_by` (the first
    /// ones, when it was revoked already).
    record: KeyView,
    /// The keys revoked with it: every live key it minted for itself by
    /// `POST /self/rotate`, and theirs in turn, oldest first. Empty when the key no
    /// longer worked (it had ended by its rotation, expired, or was revoked already).
    heirs: Vec<KeyView>,
}

impl RevokedView {
    pub(super) fn new(revocation: &Revocation) -> Result<Self, AdminError> {
        Ok(Self {
            record: KeyView::new(&revocation.record)?,
            heirs: revocation
                .heirs
                .iter()
                .map(KeyView::new)
                .collect::<Result<_, _>>()?,
        })
    }
}

/// `GET /keys/{id}/heirs`
#[utoipa::path(
    get,
    path = "/keys/{id}/heirs",
    operation_id = "listKeyHeirs",
    tag = "keys",
    summary = "The keys that revoking this key would revoke with it",
    description = "The live keys this key minted for itself by `POST /self/rotate`, and theirs \
        in turn, oldest first: `DELETE /keys/{id}` revokes them with it, so that a thief who \
        self-rotated a leaked key keeps nothing. Empty when the key no longer works (ended by \
        its rotation, expired or revoked): then revoking it revokes nothing more.",
    params(super::key_id::KeyIdParam),
    responses(
        (status = 200, description = "The heirs, as records", body = Vec<KeyView>,
            content_type = "application/json"),
    ),
)]
pub(super) async fn heirs<S: KeyStoreAdmin>(
    State(manager): State<KeyManager<S>>,
    Acting(actor): Acting,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, AdminError> {
    let heirs = manager
        .acting_as(&actor)
        .heirs(&super::key_id::key_id(id)?)
        .await?;
    let views = heirs
        .iter()
        .map(KeyView::new)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(axum::Json(views).into_response())
}
