//! A key id in a path: its parameter's documentation, and its reading.

use axum::extract::Path;
use axum::extract::rejection::PathRejection;
use utoipa::IntoParams;

use super::problem::AdminError;
use tower_apikey::KeyId;

/// The key id in a path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // Only its description is used; the handlers read the path themselves.
pub(super) struct KeyIdParam {
    /// The key's id: 16 base62 characters. Anything else names no key (404).
    #[param(pattern = "^[0-9A-Za-z]{16}$")]
    id: String,
}

/// The id in the path. A segment that cannot be a key id names no key: 404.
pub(super) fn key_id(path: Result<Path<String>, PathRejection>) -> Result<KeyId, AdminError> {
    let Ok(Path(id)) = path else {
        return Err(AdminError::NotFound);
    };
    KeyId::new(&id).map_err(|_| AdminError::NotFound)
}
