//! A [`CachedKeyStore`] over a store with a [`KeyIdFeed`] makes the listener that keeps
//! it in step with that store.

use crate::store::KeyStore;
use crate::store::cached::CachedKeyStore;
use crate::store::feed::{KeyFeedListener, KeyIdFeed};

impl<S: KeyIdFeed + KeyStore + Clone> CachedKeyStore<S> {
    /// A [`KeyFeedListener`] on the wrapped store's feed that applies it to this cache:
    /// give it to the manager
    /// ([`KeyManagerBuilder::feed_listener`](crate::KeyManagerBuilder::feed_listener)).
    pub fn feed_listener(&self) -> KeyFeedListener {
        KeyFeedListener::new(self.get_ref().clone()).evict_from(self)
    }
}
