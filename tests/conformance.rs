//! The store conformance suite against the stores this crate ships.

mod in_memory {
    tower_apikey::testing::store_conformance_tests!(async {
        tower_apikey::InMemoryKeyStore::new()
    });
    tower_apikey::testing::rotation_conformance_tests!(async {
        tower_apikey::InMemoryKeyStore::new()
    });
}

mod shared_in_memory {
    use std::sync::Arc;
    tower_apikey::testing::store_conformance_tests!(async {
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
}

/// A user's store written before paging: it implements only the required methods (and
/// `update`, whose default refuses), so `list_page` is the default over `list`.
mod default_list_page {
    use std::time::SystemTime;

    use async_trait::async_trait;
    use tower_apikey::store::{KeyUpdate, OldKeyEnd, RotateOutcome};
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
        ) -> Result<Option<KeyRecord>, StoreError> {
            self.0.revoke(id, at).await
        }
        async fn revoke_by(
            &self,
            id: &KeyId,
            at: SystemTime,
            by: Option<&tower_apikey::record::ActorName>,
        ) -> Result<Option<KeyRecord>, StoreError> {
            self.0.revoke_by(id, at, by).await
        }
        async fn update(
            &self,
            id: &KeyId,
            update: &KeyUpdate,
        ) -> Result<Option<KeyRecord>, StoreError> {
            self.0.update(id, update).await
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

/// A store written before `update` existed: the default refuses, saying what to
/// implement, and the admin router answers 501 rather than pretend.
mod update_default {
    use std::time::SystemTime;

    use async_trait::async_trait;
    use tower_apikey::store::{KeyUpdate, OldKeyEnd, RotateOutcome};
    use tower_apikey::{
        InMemoryKeyStore, KeyId, KeyManager, KeyRecord, KeyStore, KeyStoreAdmin, ManagerError,
        NewKey, StoreError,
    };

    #[derive(Debug, Default, Clone)]
    struct Older(InMemoryKeyStore);

    #[async_trait]
    impl KeyStore for Older {
        async fn lookup(&self, id: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
            self.0.lookup(id).await
        }
    }

    #[async_trait]
    impl KeyStoreAdmin for Older {
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
        async fn rotate(
            &self,
            old: &KeyId,
            new: &KeyRecord,
            end: OldKeyEnd,
        ) -> Result<RotateOutcome, StoreError> {
            self.0.rotate(old, new, end).await
        }
    }

    #[tokio::test]
    async fn a_store_without_update_refuses_it_by_name() {
        // A 0.1 store is no `UsageSink` either: its manager logs last-used times.
        let manager = KeyManager::builder(Older::default())
            .usage_sink(tower_apikey::usage::TracingUsageSink)
            .build();
        let created = manager.create(NewKey::new("k", ["a:b"])).await.unwrap();
        match manager
            .update(created.record.id(), KeyUpdate::new().rate_limit(None))
            .await
        {
            Err(ManagerError::Store(error @ StoreError::Unsupported(_))) => {
                assert!(
                    error.to_string().contains("KeyStoreAdmin::update"),
                    "{error}"
                )
            }
            other => panic!("expected StoreError::Unsupported, got {other:?}"),
        }
    }
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
