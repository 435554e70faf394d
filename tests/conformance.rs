//! The store conformance suite against the stores this crate ships.

mod in_memory {
    tower_apikey::store_conformance_tests!(async { tower_apikey::InMemoryKeyStore::new() });
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
}

mod in_memory_events {
    tower_apikey::event_store_conformance_tests!(async { tower_apikey::InMemoryKeyStore::new() });
}
