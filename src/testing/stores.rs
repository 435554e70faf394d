//! Stores that fail as a database can: for checking that the middleware fails closed.

use async_trait::async_trait;

use crate::error::StoreError;
use crate::key::KeyId;
use crate::record::KeyRecord;
use crate::store::KeyStore;

/// A store whose every lookup fails, like a database that is down: for checking that
/// requests are refused with 503 (never let through, never told 401).
#[derive(Debug, Clone, Copy, Default)]
pub struct FailingStore;

#[async_trait]
impl KeyStore for FailingStore {
    async fn lookup(&self, _: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
        Err(StoreError::unavailable("connection refused"))
    }
}

/// A store whose lookups never answer, like a database that hangs: for checking the
/// layer's lookup timeout.
#[derive(Debug, Clone, Copy, Default)]
pub struct HangingStore;

#[async_trait]
impl KeyStore for HangingStore {
    async fn lookup(&self, _: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
        std::future::pending().await
    }
}
