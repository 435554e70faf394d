//! The store conformance suite against the stores this crate ships.

mod in_memory {
    tower_apikey::store_conformance_tests!(async { tower_apikey::InMemoryKeyStore::new() });
    tower_apikey::rotation_conformance_tests!(async { tower_apikey::InMemoryKeyStore::new() });
}

mod shared_in_memory {
    use std::sync::Arc;
    tower_apikey::store_conformance_tests!(async {
        Arc::new(tower_apikey::InMemoryKeyStore::new())
    });
}

#[cfg(feature = "cache")]
mod cached_in_memory {
    tower_apikey::store_conformance_tests!(async {
        tower_apikey::CachedKeyStore::new(tower_apikey::InMemoryKeyStore::new())
    });
    tower_apikey::rotation_conformance_tests!(async {
        tower_apikey::CachedKeyStore::new(tower_apikey::InMemoryKeyStore::new())
    });
}

/// A user's store written before paging: it implements only the required methods, so
/// `list_page` is the default over `list`.
mod default_list_page {
    use std::time::SystemTime;

    use async_trait::async_trait;
    use tower_apikey::{
        InMemoryKeyStore, KeyId, KeyRecord, KeyStore, KeyStoreAdmin, OldKeyEnd, RotateOutcome,
        StoreError,
    };

    #[derive(Debug, Default)]
    struct ListOnly(InMemoryKeyStore);

    #[async_trait]
    impl KeyStore for ListOnly {
        async fn lookup(&self, id: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
            self.0.lookup(id).await
        }
    }

    #[async_trait]
    impl KeyStoreAdmin for ListOnly {
        async fn insert(&self, record: &KeyRecord) -> Result<(), StoreError> {
            self.0.insert(record).await
        }
        async fn list(&self) -> Result<Vec<KeyRecord>, StoreError> {
            self.0.list().await
        }
        async fn revoke(
            &self,
            id: &KeyId,
            at: SystemTime,
        ) -> Result<Option<KeyRecord>, StoreError> {
            self.0.revoke(id, at).await
        }
        async fn revoke_by(
            &self,
            id: &KeyId,
            at: SystemTime,
            by: Option<&tower_apikey::ActorName>,
        ) -> Result<Option<KeyRecord>, StoreError> {
            self.0.revoke_by(id, at, by).await
        }
        async fn rotate(
            &self,
            old: &KeyId,
            new: &KeyRecord,
            end: OldKeyEnd,
        ) -> Result<RotateOutcome, StoreError> {
            self.0.rotate(old, new, end).await
        }
    }

    tower_apikey::store_conformance_tests!(async { ListOnly::default() });
}

mod in_memory_events {
    tower_apikey::event_store_conformance_tests!(async { tower_apikey::InMemoryKeyStore::new() });
}
