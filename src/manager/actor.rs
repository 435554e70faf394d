//! [`Actor`]: who is managing keys, and the most they may grant.

use std::fmt;

use crate::key::KeyId;
use crate::record::{ActorName, ActorNameError, ApiKeyIdentity, KeyRecord, Limits, TenantId};
use crate::scope::Scopes;

/// Who is acting on keys through [`KeyManager::acting_as`](crate::KeyManager::acting_as):
/// a name for the records ([`KeyRecord::created_by`](crate::KeyRecord::created_by),
/// [`revoked_by`](crate::KeyRecord::revoked_by)) and the scopes this actor may grant,
/// its ceiling.
///
/// - [`Actor::key`]: an admin key acting; its name is the key's id and its ceiling the
///   key's own scopes and restrictions: the keys it creates, rotates or changes must be
///   at least as restricted as itself (its rate limit, quota and allowlist; DESIGN
///   §12), and it may not loosen its own. The admin router's key guard acts this way.
/// - [`Actor::person`]: a person the application's own login signed in; its name is
///   what the login calls them (such as an e-mail address), and the application says
///   what they may grant. Behind a login, the admin router reads this from the
///   request's extensions (see `tower_apikey_admin::AdminRouter::behind_login`).
///
/// ```
/// use tower_apikey::manager::Tenancy;
/// use tower_apikey::{Actor, Scopes};
///
/// let alice = Actor::person("alice@example.com", Scopes::new(["reports:*"])?, Tenancy::Operator)?;
/// assert_eq!(alice.name().as_str(), "alice@example.com");
/// assert!(alice.key_id().is_none());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Actor {
    name: ActorName,
    may_grant: Scopes,
    tenancy: Tenancy,
    key: Option<KeyId>,
    /// The acting key's limits and allowlist, as the guard applied them; none for a
    /// person.
    limits: Limits,
}

impl Actor {
    /// A key acting: named by its id, granting at most its own scopes (wildcards
    /// included, so a key holding `reports:*` may grant `reports:read`), and bounded by
    /// its own restrictions (see [`Restriction`](crate::manager::Restriction)).
    ///
    /// The key acts for its own tenant ([`Tenancy::Tenant`]); a key of no tenant, the
    /// application's own, is an [`Tenancy::Operator`].
    pub fn key(identity: &ApiKeyIdentity) -> Self {
        Self {
            name: ActorName::of_key(identity.key_id()),
            may_grant: identity.scopes().clone(),
            tenancy: identity
                .tenant()
                .map_or(Tenancy::Operator, |t| Tenancy::Tenant(t.clone())),
            key: Some(*identity.key_id()),
            limits: identity.limits().clone(),
        }
    }

    /// A person the application's login signed in, named `name` (such as their e-mail
    /// address), who may grant at most `may_grant`, and who acts for `tenancy`: the
    /// tenant the login says the person belongs to, or [`Tenancy::Operator`] for the
    /// application's own staff. There is no default: the login must say which.
    ///
    /// # Errors
    ///
    /// If `name` is not a valid [`ActorName`], or reads as a key id (16 letters and
    /// digits): records must tell a person from a key.
    pub fn person(name: &str, may_grant: Scopes, tenancy: Tenancy) -> Result<Self, ActorNameError> {
        let name = ActorName::new(name)?;
        if KeyId::new(name.as_str()).is_ok() {
            return Err(ActorNameError::LooksLikeKeyId);
        }
        Ok(Self {
            name,
            may_grant,
            tenancy,
            key: None,
            limits: Limits::default(),
        })
    }

    /// The name records keep for this actor.
    pub fn name(&self) -> &ActorName {
        &self.name
    }

    /// The most this actor may grant: a key it creates, rotates or revokes must hold
    /// only scopes these grant.
    pub fn may_grant(&self) -> &Scopes {
        &self.may_grant
    }

    /// Whose keys this actor manages: its tenant's, or every tenant's for an operator.
    pub fn tenancy(&self) -> &Tenancy {
        &self.tenancy
    }

    /// The acting key's id, when a key is acting.
    pub fn key_id(&self) -> Option<&KeyId> {
        self.key.as_ref()
    }

    /// The restrictions the keys this actor manages must keep: the acting key's limits
    /// and allowlist.
    pub(crate) fn limits(&self) -> &Limits {
        &self.limits
    }
}

impl fmt::Debug for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Actor")
            .field("name", &self.name)
            .field("may_grant", &self.may_grant)
            .field("tenancy", &self.tenancy)
            .field("is_key", &self.key.is_some())
            .field("restrictions", &self.limits)
            .finish()
    }
}

/// Whose keys an [`Actor`] manages (DESIGN §14).
///
/// An actor of [`Tenancy::Tenant`] sees and changes only that tenant's keys: every call
/// of [`ActingAs`](crate::manager::ActingAs) answers another tenant's key as it answers an
/// unknown id ([`ManagerError::NotFound`](crate::ManagerError::NotFound)), lists and
/// events show only the tenant's rows, and the keys it creates are the tenant's. An
/// [`Tenancy::Operator`] acts on every tenant's keys and on the application's own.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Tenancy {
    /// The application's own staff: every tenant's keys, and keys of no tenant.
    Operator,
    /// A customer organisation's administrator: that tenant's keys only.
    Tenant(TenantId),
}

impl Tenancy {
    /// Whether an actor of this tenancy may see and manage `record`.
    pub fn sees(&self, record: &KeyRecord) -> bool {
        match self {
            Self::Operator => true,
            Self::Tenant(tenant) => record.tenant() == Some(tenant),
        }
    }

    /// The tenant, for a tenant's actor; `None` for an operator.
    pub fn tenant(&self) -> Option<&TenantId> {
        match self {
            Self::Operator => None,
            Self::Tenant(tenant) => Some(tenant),
        }
    }
}

/// An actor as log lines show it: its name, or `application` when none acted.
pub(super) struct ActorLog<'a>(pub(super) Option<&'a Actor>);

impl fmt::Display for ActorLog<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(actor) if actor.key.is_some() => write!(f, "key {}", actor.name),
            Some(actor) => write!(f, "person {}", actor.name),
            None => f.write_str("application"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_person_cannot_be_named_like_a_key_id() {
        let scopes = Scopes::empty();
        assert_eq!(
            Actor::person("7Fq2LxW9aZ3kPm4R", scopes.clone(), Tenancy::Operator).unwrap_err(),
            ActorNameError::LooksLikeKeyId
        );
        assert_eq!(
            Actor::person("bob\u{200B}", scopes.clone(), Tenancy::Operator).unwrap_err(),
            ActorNameError::HiddenCharacter('\u{200B}')
        );
        assert!(Actor::person("administrator", scopes, Tenancy::Operator).is_ok());
    }

    #[test]
    fn log_lines_say_what_kind_of_actor_acted() {
        let alice = Actor::person("alice@example.com", Scopes::empty(), Tenancy::Operator).unwrap();
        assert_eq!(
            ActorLog(Some(&alice)).to_string(),
            "person alice@example.com"
        );
        assert_eq!(ActorLog(None).to_string(), "application");
    }
}
