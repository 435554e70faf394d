//! The authenticated caller, as handlers see it: a view of the [`KeyRecord`](super::KeyRecord)
//! it shares its fields with.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use super::record_data::RecordData;
use super::{KeyName, Limits, TenantId};
use crate::key::KeyId;
use crate::scope::Scopes;

/// Who called: put into the request's extensions when a key is accepted.
///
/// Cloning is cheap (one reference count). It carries the key's id, name, scopes,
/// expiry and scheduled end, never its secret or digest.
///
/// ```
/// # use tower_apikey::ApiKeyIdentity;
/// fn handler(req: http::Request<()>) {
///     if let Some(caller) = req.extensions().get::<ApiKeyIdentity>() {
///         tracing::info!(key_id = %caller.key_id(), name = caller.name(), "called");
///     }
/// }
/// ```
#[derive(Clone)]
pub struct ApiKeyIdentity(Arc<RecordData>);

impl ApiKeyIdentity {
    /// The identity of a record: it shares the record's fields (one reference count),
    /// and shows only the id, name, scopes, expiry and scheduled end.
    pub(crate) fn from_data(data: Arc<RecordData>) -> Self {
        Self(data)
    }

    /// The key's public id.
    pub fn key_id(&self) -> &KeyId {
        &self.0.id
    }

    /// The name the administrator gave the key.
    pub fn name(&self) -> &str {
        self.0.name.as_str()
    }

    /// The key's name as its validated type.
    pub fn key_name(&self) -> &KeyName {
        &self.0.name
    }

    /// The tenant the key belongs to (DESIGN §14): scope the caller's data by it. `None`
    /// for a key of the application itself.
    pub fn tenant(&self) -> Option<&TenantId> {
        self.0.tenant.as_ref()
    }

    /// What the key may do.
    pub fn scopes(&self) -> &Scopes {
        &self.0.scopes
    }

    /// When the key expires (its lifetime; see also [`ends_at`](Self::ends_at)).
    pub fn expires_at(&self) -> SystemTime {
        self.0.expires_at
    }

    /// When the key ends because a rotation replaced it, if one did: the caller should
    /// switch to the new key before then.
    pub fn ends_at(&self) -> Option<SystemTime> {
        self.0.ends_at
    }

    /// The key's limits and allowlist, as the layer applied them: an acting key's
    /// restrictions, which bound the keys it manages (DESIGN §12).
    pub(crate) fn limits(&self) -> &Limits {
        &self.0.limits
    }
}

impl fmt::Debug for ApiKeyIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeyIdentity")
            .field("key_id", &self.0.id)
            .field("name", &self.0.name)
            .field("scopes", &self.0.scopes)
            .field("tenant", &self.0.tenant)
            .field("expires_at", &self.0.expires_at)
            .field("ends_at", &self.0.ends_at)
            .finish()
    }
}
