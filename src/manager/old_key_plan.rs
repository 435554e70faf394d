//! [`OldKeyPlan`]: what a rotation does with the old key, as one value.

use std::time::Duration;

/// What a rotation does with the old key: the choice behind
/// [`KeyManager::rotate`](crate::KeyManager::rotate) and
/// [`KeyManager::rotate_until_first_use`](crate::KeyManager::rotate_until_first_use), as one value for an
/// admin API that reads it from a request ([`ActingAs::rotate_with`](crate::manager::ActingAs::rotate_with)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OldKeyPlan {
    /// `None`: keep it until it is revoked; `Some(ZERO)`: revoke it now; `Some(d)`:
    /// end it `d` from now.
    Overlap(Option<Duration>),
    /// End it this grace after the new key's first proven use.
    UntilFirstUse(Duration),
}
