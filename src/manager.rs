//! What key management takes and reports besides the names at the root
//! ([`KeyManager`], [`KeyManagerBuilder`](crate::KeyManagerBuilder),
//! [`Background`](crate::Background), [`NewKey`], [`CreatedKey`], [`ManagerError`],
//! [`ShutdownError`](crate::ShutdownError), [`Actor`]).
//!
//! - [`ActingAs`]: the manager acting for an [`Actor`], who is recorded on each key
//!   and event and may grant only what it holds.
//! - [`ScopeCatalogue`]: the scopes an organisation offers, with descriptions, and
//!   the only ones a key may then hold.
//! - [`Restriction`], [`Loosened`], [`ChangeKind`]: why a change that would loosen a
//!   restricted actor's key was refused.
//! - [`OldKeyPlan`]: what a rotation does with the old key, as one value; rotation
//!   until the new key's first use waits [`DEFAULT_FIRST_USE_GRACE`] by default.
//! - [`ExpiryError`], [`MAX_LIFETIME`]: the bounds of a key's expiry.
//!
//! # Managing keys
//!
//! ```
//! use std::time::Duration;
//! use tower_apikey::{InMemoryKeyStore, KeyManager, NewKey};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let manager = KeyManager::new(InMemoryKeyStore::new());
//!
//! // Create: the plaintext is in `created.key`, once. Store only what `record` holds.
//! let created = manager.create(NewKey::new("billing-sync", ["reports:read"])).await?;
//! assert_eq!(created.record.created_by(), None); // the application acted
//! let old_id = *created.record.id();
//!
//! // Rotate: a new key with the same name and scopes; the old one keeps working
//! // until it is revoked, so the integration can switch and verify first.
//! let rotated = manager.rotate(&old_id, None).await?;
//! assert_eq!(rotated.record.rotated_from(), Some(&old_id));
//!
//! // Revoke the old key once the new one shows a last-used time.
//! manager.revoke(&old_id).await?;
//! # Ok::<(), tower_apikey::ManagerError>(())
//! # }).unwrap();
//! ```

mod acting_as;
pub(crate) mod actor;
pub(crate) mod background;
pub(crate) mod builder;
mod catalogue;
mod change_events;
mod deprecated;
mod events;
mod expiring;
mod first_use;
pub(crate) mod key_manager;
mod old_key_plan;
mod restrictions;
mod run;
mod update;
mod usage;

pub use acting_as::ActingAs;
pub use actor::Tenancy;
pub use catalogue::{
    CatalogueEntry, CatalogueError, MAX_CATALOGUE_SCOPES, MAX_DESCRIPTION_CHARS, ScopeCatalogue,
};
pub use first_use::{DEFAULT_FIRST_USE_GRACE, MAX_FIRST_USE_GRACE};
pub use key_manager::{ExpiryError, MAX_LIFETIME};
pub use old_key_plan::OldKeyPlan;
pub use restrictions::{ChangeKind, Loosened, Restriction};

// The root's names (`KeyManager`, …) have their one public path at the crate root; the
// crate's own code also names them from here.
pub(crate) use actor::Actor;
pub(crate) use key_manager::{CreatedKey, KeyManager, ManagerError, NewKey};
// The manager's own helpers, for the files beside it.
use key_manager::{layer_for, tracker_for};
