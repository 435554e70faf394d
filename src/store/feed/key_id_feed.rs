//! [`KeyIdFeed`], what it gives ([`KeyIdSubscription`]) and what it tells
//! ([`KeyChange`]), as [`feed`](super) documents.

use std::fmt;

use async_trait::async_trait;
use futures_util::stream::BoxStream;

use crate::error::StoreError;
use crate::key::KeyId;

/// A source of the ids a store holds and of their changes.
///
/// # Contract
///
/// [`subscribe`](Self::subscribe) starts following the store, then reads every id that
/// exists. Every change committed after the following started is delivered in
/// the subscription's changes, so nothing created between the snapshot and the
/// first change is missed (a change may also be in the snapshot: that is harmless).
/// The stream ends, or yields an error, when the subscription is lost; the listener
/// then subscribes again, which takes a new snapshot.
///
/// The stream should notice a dead connection on its own (a heartbeat), so that the
/// listener knows when its caches may be missing changes.
#[async_trait]
pub trait KeyIdFeed: fmt::Debug + Send + Sync + 'static {
    /// Starts following changes, then reads every id in the store (revoked and expired
    /// ones too: their records are needed to say "revoked" or "expired").
    async fn subscribe(&self) -> Result<KeyIdSubscription, StoreError>;

    /// Which of `ids` exist in the store now (in any order), read from the store itself.
    ///
    /// The listener checks every batch of [`KeyChange::Created`] ids with this before
    /// its id filters trust them: where anyone who can reach the change channel can
    /// send a change (PostgreSQL's NOTIFY is open to every role that can connect), a
    /// forged id must not fill the filter, let forged keys through to the store, or
    /// force every instance to read all ids again. One call per batch (up to a few
    /// hundred ids): answer it with one query.
    async fn existing(&self, ids: &[KeyId]) -> Result<Vec<KeyId>, StoreError>;

    /// Whether this feed can never subscribe again (for example, its pool was closed),
    /// so that the listener stops instead of retrying. The default is `false`.
    fn is_closed(&self) -> bool {
        false
    }
}

/// What [`KeyIdFeed::subscribe`] returns: every id that exists, and the changes since.
pub struct KeyIdSubscription {
    snapshot: Vec<KeyId>,
    changes: BoxStream<'static, Result<KeyChange, StoreError>>,
}

impl KeyIdSubscription {
    /// A subscription from the ids read after following began, and the changes.
    pub fn new(
        snapshot: Vec<KeyId>,
        changes: BoxStream<'static, Result<KeyChange, StoreError>>,
    ) -> Self {
        Self { snapshot, changes }
    }

    pub(crate) fn into_parts(
        self,
    ) -> (
        Vec<KeyId>,
        BoxStream<'static, Result<KeyChange, StoreError>>,
    ) {
        (self.snapshot, self.changes)
    }
}

impl fmt::Debug for KeyIdSubscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyIdSubscription")
            .field("snapshot", &self.snapshot.len())
            .finish_non_exhaustive()
    }
}

/// One change to a store's keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyChange {
    /// A key was created (by any instance).
    Created(KeyId),
    /// A key's record changed (revoked, ended early): cached copies must go.
    Changed(KeyId),
}
