//! The store conformance suite against the stores this crate ships.

mod in_memory {
    tower_apikey::testing::store_conformance_tests!(async {
        tower_apikey::InMemoryKeyStore::new()
    });
    tower_apikey::testing::rotation_conformance_tests!(async {
        tower_apikey::InMemoryKeyStore::new()
    });
    tower_apikey::testing::update_conformance_tests!(async {
        tower_apikey::InMemoryKeyStore::new()
    });
    tower_apikey::testing::usage_conformance_tests!(async {
        tower_apikey::InMemoryKeyStore::new()
    });
}

mod shared_in_memory {
    use std::sync::Arc;
    tower_apikey::testing::store_conformance_tests!(async {
        Arc::new(tower_apikey::InMemoryKeyStore::new())
    });
    tower_apikey::testing::update_conformance_tests!(async {
        Arc::new(tower_apikey::InMemoryKeyStore::new())
    });
}

#[cfg(feature = "cache")]
mod cached_in_memory {
    tower_apikey::testing::store_conformance_tests!(async {
        tower_apikey::store::cached::CachedKeyStore::new(tower_apikey::InMemoryKeyStore::new())
    });
    tower_apikey::testing::rotation_conformance_tests!(async {
        tower_apikey::store::cached::CachedKeyStore::new(tower_apikey::InMemoryKeyStore::new())
    });
    tower_apikey::testing::update_conformance_tests!(async {
        tower_apikey::store::cached::CachedKeyStore::new(tower_apikey::InMemoryKeyStore::new())
    });
    tower_apikey::testing::usage_conformance_tests!(async {
        tower_apikey::store::cached::CachedKeyStore::new(tower_apikey::InMemoryKeyStore::new())
    });
}

/// A user's store written before paging: it implements only the required methods, so
/// `list_page` is the default over `list`.
mod default_list_page {
    use std::time::SystemTime;

    use async_trait::async_trait;
    use tower_apikey::record::ActorName;
    use tower_apikey::store::{OldKeyEnd, RotateOutcome};
    use tower_apikey::{InMemoryKeyStore, KeyId, KeyRecord, KeyStore, KeyStoreAdmin, StoreError};

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
            by: Option<&ActorName>,
        ) -> Result<Option<KeyRecord>, StoreError> {
            self.0.revoke(id, at, by).await
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

    tower_apikey::testing::store_conformance_tests!(async { ListOnly::default() });
}

mod in_memory_events {
    tower_apikey::testing::event_store_conformance_tests!(async {
        tower_apikey::InMemoryKeyStore::new()
    });
}

/// The shared limits' ledger in memory keeps the `LimitBackend` contract.
mod memory_limit_backend {
    tower_apikey::testing::limit_backend_conformance_tests!(async {
        tower_apikey::limits::InMemoryLimitBackend::new()
    });
}
